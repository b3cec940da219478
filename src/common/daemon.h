// Start-up and shut-down helpers shared by Shoal's long-running binaries.
#pragma once

#include <string>

#include "absl/status/status.h"

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

}  // namespace shoal
