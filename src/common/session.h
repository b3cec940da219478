// Session directories and per-process logging.
//
// Every `shoal start` makes a session directory under the temp root ($SHOAL_TMPDIR, default
// /tmp/shoal): session_<YYYY-MM-DD_HH-MM-SS_micros>_<pid>/ with logs/ inside, and points the
// root's session_latest link at the newest one.
#pragma once

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace shoal {

// $SHOAL_TMPDIR when set, else /tmp/shoal.
std::string ShoalTempRoot();

// Which session `session_latest` names.
enum class SessionLink {
  kAlways,      // this new one (a head's, a standalone daemon's)
  kUnlessHead,  // this new one, unless it names a head's session (one holding processes/gcs.json):
                // a node joining from the head's machine leaves the head's session latest
};
// Creates a new session directory (and its logs/) under `root` and updates session_latest.
absl::StatusOr<std::string> CreateSessionDir(const std::string& root, SessionLink link = SessionLink::kAlways);

// Sends the process's spdlog output to <log_dir>/<component>.log (made if missing); warnings
// and errors also go to stderr. Safe to call once per process, before other threads start.
absl::Status InitLogging(const std::string& component, const std::string& log_dir);

// Start-up of a daemon: uses `session_dir` (or, when empty, a new session directory under
// ShoalTempRoot()) and sends `component`'s log to its logs/. Answers the session directory.
absl::StatusOr<std::string> SetUpDaemonSession(const std::string& component, const std::string& session_dir);

}  // namespace shoal
