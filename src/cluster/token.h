// The dashboard's bearer token: `shoal start --head` makes one and writes it to
// <session>/dashboard_token (local_state.h); the dashboard checks requests against it.
// Threading: any thread.
#pragma once

#include <string>

#include "absl/status/statusor.h"

namespace shoal::cluster {

// A new random token: 32 lowercase hex digits, 128 bits from the kernel's random source
// (getrandom(2)). Unavailable when the kernel gives no random bytes.
absl::StatusOr<std::string> NewToken();

}  // namespace shoal::cluster
