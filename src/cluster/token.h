// The cluster token (src/common/auth.h) as the machine keeps it: `shoal start --head` makes one
// and writes it to <session>/auth_token (mode 0600); the GCS, the raylets and the dashboard
// read it from there, and clients on the same machine find it by themselves.
// Threading: any thread.
#pragma once

#include <string>

#include "absl/status/statusor.h"

namespace shoal::cluster {

// A new random token: 32 lowercase hex digits, 128 bits from the kernel's random source
// (getrandom(2)). Unavailable when the kernel gives no random bytes.
absl::StatusOr<std::string> NewToken();

// Writes `token` to <session_dir>/auth_token, readable by this user only; answers the path.
// AlreadyExists if the file is there.
absl::StatusOr<std::string> WriteTokenFile(const std::string& session_dir, const std::string& token);

// Writes the current cluster's token beside the current-cluster file (local_state.h).
absl::Status WriteCurrentClusterToken(const std::string& root, const std::string& token);

// The token a client of the cluster whose GCS is at `gcs_address` sends: $SHOAL_AUTH_TOKEN,
// else the file named by $SHOAL_AUTH_TOKEN_FILE, else, when `gcs_address` is the cluster last
// started on this machine (or is empty), that cluster's token (<root>/shoal_current_cluster_token). "" when none is
// found: the cluster may run with auth disabled, and if it does not, its servers answer
// UNAUTHENTICATED with a message saying where the token is. An error only for a token that is
// given but unreadable or too short.
absl::StatusOr<std::string> FindClusterToken(const std::string& gcs_address);

}  // namespace shoal::cluster
