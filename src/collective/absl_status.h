// The collective library's Status as an absl::Status, for the core's side of the seam (the
// codes share Abseil's numbering).
#pragma once

#include "absl/status/status.h"
#include "src/collective/status.h"

namespace shoal::collective {

inline absl::Status ToAbsl(const Status& s) {
  if (s.ok()) return absl::OkStatus();
  return absl::Status(static_cast<absl::StatusCode>(s.code()), s.message());
}

inline Status FromAbsl(const absl::Status& s) {
  if (s.ok()) return Status::Ok();
  switch (s.code()) {
    case absl::StatusCode::kInvalidArgument:
    case absl::StatusCode::kDeadlineExceeded:
    case absl::StatusCode::kNotFound:
    case absl::StatusCode::kAlreadyExists:
    case absl::StatusCode::kFailedPrecondition:
    case absl::StatusCode::kAborted:
    case absl::StatusCode::kInternal:
    case absl::StatusCode::kUnavailable:
      return Status(static_cast<Code>(s.code()), std::string(s.message()));
    default:
      return Status(Code::kInternal, std::string(s.message()));
  }
}

}  // namespace shoal::collective
