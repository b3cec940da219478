// Starting, watching and stopping the daemons `shoal start` and a local cluster (src/api) run.
//
// A pid alone can be recycled once its process is gone, so a process is named by its pid and
// its start time: field 22 of /proc/<pid>/stat (clock ticks since boot), fixed for the life of
// the process. Nothing here signals a pid whose start time no longer matches, and a zombie
// counts as gone (it has exited; only its parent can reap it).
// Threading: any thread; no shared state. Linux only (reads /proc, uses pidfds).
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace shoal::cluster {

struct ProcessId {
  pid_t pid = 0;
  uint64_t start_time = 0;  // /proc/<pid>/stat field 22
  friend bool operator==(const ProcessId&, const ProcessId&) = default;
};

struct DaemonSpec {
  std::string binary;                      // path of the executable
  std::vector<std::string> args;           // argv[1..]
  std::string stdout_path;                 // created, or appended to
  std::string stderr_path;
  std::map<std::string, std::string> env;  // set in the child on top of this process's environment
  int stdin_fd = -1;                       // the child's stdin; -1 reads /dev/null
};

// Starts `spec` detached from the terminal: a new session, stdin from `stdin_fd` or /dev/null,
// stdout and stderr appended to the given files (they may be the same file), no other descriptors inherited. The daemon is this process's child
// until this process exits; reap it with ReapIfExited while waiting on it.
// Unavailable when the binary cannot be started (missing, not executable, log not writable).
absl::StatusOr<ProcessId> SpawnDaemon(const DaemonSpec& spec);

// The start time of `pid`. NotFound when no such process exists.
absl::StatusOr<uint64_t> ReadStartTime(pid_t pid);

// True while `id` runs: /proc/<pid> exists, its start time matches and it is not a zombie.
bool IsRunning(const ProcessId& id);

// Sends `sig` to `id` through a pidfd, so a recycled pid is never hit. OK when `id` is already
// gone; PermissionDenied when the process belongs to someone else.
absl::Status SendSignal(const ProcessId& id, int sig);

// Polls until none of `ids` runs or `timeout` passes; answers those still running.
std::vector<ProcessId> WaitUntilGone(std::vector<ProcessId> ids, absl::Duration timeout);

// For a direct child: nullopt while it runs; once it has ended, reaps it and says how
// ("exited with code 1", "was killed by signal 9").
std::optional<std::string> ReapIfExited(pid_t child);

struct StopOutcome {
  std::vector<ProcessId> terminated;  // ended after SIGTERM within the grace period
  std::vector<ProcessId> killed;      // needed SIGKILL
  std::vector<ProcessId> remaining;   // still running: not ours to signal, or unkillable
};

// Sends SIGTERM to every id, waits up to `grace`, sends SIGKILL to those left and waits a few
// seconds more. Reaps any that are children of this process.
StopOutcome StopProcesses(const std::vector<ProcessId>& ids, absl::Duration grace);

}  // namespace shoal::cluster
