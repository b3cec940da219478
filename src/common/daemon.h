// Start-up and shut-down helpers shared by Shoal's long-running binaries.
#pragma once

#include <optional>
#include <string>

#include "absl/status/status.h"
#include "src/common/flags.h"
#include "src/common/tls.h"

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

// The security flags every daemon takes: the cluster token (auth.h: --auth-token-file,
// --disable-auth) and mutual TLS (tls.h: --tls-cert, --tls-key, --tls-ca).
struct AuthFlags {
  std::string token_file;
  bool disable_auth = false;
  TlsFiles tls;
};
void AddAuthFlags(FlagSet& flags, AuthFlags* out);
// Sets the process's cluster token from the flags and environment (DaemonToken) and its TLS
// files (ConfigureDaemonTls), and exports the TLS files' absolute paths as $SHOAL_TLS_* for the
// processes it starts. With auth disabled, logs a warning that anyone who can reach the ports
// can run code on the cluster.
absl::Status ConfigureDaemonAuth(const AuthFlags& flags, const std::string& program);
// Sets $SHOAL_TLS_CERT, $SHOAL_TLS_KEY and $SHOAL_TLS_CA to the absolute paths of the TLS files
// in use (unsets them when TLS is off), for the processes this one starts.
void ExportTlsEnvironment();

// Parses a daemon's command line. Answers nothing to go on, or the exit code to stop with:
// 0 after printing --help, 2 after reporting a bad flag with ReportFatal.
std::optional<int> ParseDaemonFlags(FlagSet& flags, int argc, char** argv);

}  // namespace shoal
