// The single-node cluster a driver starts for itself when shoal::Init gets no address.
//
// Start() makes a fresh temp root (used as SHOAL_TMPDIR, so this cluster never meets one that
// `shoal start` made elsewhere), starts a watchdog, then runs `shoal start --head --port 0`
// under that root. The watchdog holds the read end of a pipe whose write end only this process
// holds (close-on-exec, so programs it runs do not inherit it): when the write end closes, at
// Stop() or because this process died in any way, the watchdog runs `shoal stop --force` for
// the root and deletes it. So a driver that crashes leaves no daemons behind (unless it forked
// children without exec that outlive it: they hold the pipe open too).
// Threading: one thread (shoal::Init / shoal::Shutdown).
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/statusor.h"

namespace shoal::api {

struct LocalClusterOptions {
  std::string bin_dir;  // holds shoal, shoal-gcs and shoal-raylet
  int num_cpus = -1;    // -1: let `shoal start` detect
  int num_gpus = -1;
  std::string resources;  // JSON, "" for none
  int64_t object_store_memory = -1;  // bytes; -1: `shoal start`'s default
};

class LocalCluster {
 public:
  // Unavailable (with the output of `shoal start`) when the cluster does not come up; nothing
  // is left running then.
  static absl::StatusOr<std::unique_ptr<LocalCluster>> Start(const LocalClusterOptions& options);
  ~LocalCluster();  // Stop()
  LocalCluster(const LocalCluster&) = delete;
  LocalCluster& operator=(const LocalCluster&) = delete;

  // Stops the cluster and removes its root; returns when that is done. Idempotent.
  void Stop();

  const std::string& address() const { return address_; }  // the GCS, host:port
  const std::string& auth_token() const { return auth_token_; }  // the cluster's token

 private:
  LocalCluster(std::string root, pid_t watchdog, int watchdog_fd)
      : root_(std::move(root)), watchdog_(watchdog), watchdog_fd_(watchdog_fd) {}

  std::string root_;
  std::string address_;
  std::string auth_token_;
  pid_t watchdog_ = -1;
  int watchdog_fd_ = -1;  // write end of the watchdog's pipe
};

// The directory with the Shoal binaries: $SHOAL_BIN_DIR, else the build's bin directory, else
// this executable's directory; the first that holds `shoal`. NotFound when none does.
absl::StatusOr<std::string> FindBinDir();

}  // namespace shoal::api
