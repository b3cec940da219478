// Start-up and shut-down helpers shared by Shoal's long-running binaries.
#pragma once

#include <optional>
#include <string>

#include "absl/status/status.h"
#include "src/common/flags.h"

namespace shoal {

// Blocks SIGTERM, SIGINT and SIGHUP in the calling thread and every thread it starts later.
// Call first thing in main(), then WaitForTerminationSignal() once the process is serving.
void BlockTerminationSignals();
// Waits for one of the blocked signals; answers its number.
int WaitForTerminationSignal();

// Writes `contents` to `path` atomically (temporary file, then rename).
absl::Status WriteFileAtomically(const std::string& path, const std::string& contents);

// Prints "error: <message>" to stderr as one line and, if logging is up, logs it too.
void ReportFatal(const std::string& message);

// The cluster-token flags every daemon takes (auth.h): --auth-token-file and --disable-auth.
struct AuthFlags {
  std::string token_file;
  bool disable_auth = false;
};
void AddAuthFlags(FlagSet& flags, AuthFlags* out);
// Sets the process's cluster token from the flags and environment (DaemonToken). With auth
// disabled, logs a warning that anyone who can reach the ports can run code on the cluster.
absl::Status ConfigureDaemonAuth(const AuthFlags& flags, const std::string& program);

// Parses a daemon's command line. Answers nothing to go on, or the exit code to stop with:
// 0 after printing --help, 2 after reporting a bad flag with ReportFatal.
std::optional<int> ParseDaemonFlags(FlagSet& flags, int argc, char** argv);

}  // namespace shoal
