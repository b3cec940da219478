// Typed errors (proto ErrorInfo) and their one mapping to absl::Status.
//
// A failure that crosses a process boundary travels as an rpc::ErrorInfo: a type from the
// ErrorType enum, the message, the remote exception's type name and traceback, the language
// layer's serialized exception, and the failure it follows from. Inside a process it travels as
// an absl::Status whose code says what the caller can do about it (STYLE.md's retry meanings,
// table in error_info.cc) and whose kErrorInfoUrl payload is the serialized ErrorInfo, so that
// the type survives every hop. Language layers pick their exception class from `type` through
// one table each (src/api/api.cc, python_bindings/shoal/exceptions.py); nothing matches text.
// Threading: free functions; any thread.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "shoal/common.pb.h"

namespace shoal {

// The payload of a status that carries an ErrorInfo (its serialized bytes).
inline constexpr char kErrorInfoUrl[] = "shoal.io/error_info";

// An ErrorInfo with `type` and `message`.
rpc::ErrorInfo MakeError(rpc::ErrorType type, std::string message);
// A TASK_EXCEPTION: the user's function raised `exception_type` with `message`.
rpc::ErrorInfo TaskException(std::string exception_type, std::string message, std::string traceback = "",
                             std::string data = "");

// The status code for a type: kAborted for a task exception, a dead worker or node (retry
// higher up: submit again), kFailedPrecondition for a dead actor or a failed runtime env,
// kResourceExhausted for no node, a full store or out of memory, kNotFound for lost objects and
// dead owners, kCancelled, kDeadlineExceeded for get timeouts, kUnavailable for a gone raylet
// (retry the same call), kInternal for system errors.
absl::StatusCode StatusCodeFor(rpc::ErrorType type);

// A status with StatusCodeFor(info.type()), the message, and `info` as its kErrorInfoUrl payload.
absl::Status ErrorStatus(const rpc::ErrorInfo& info);
inline absl::Status ErrorStatus(rpc::ErrorType type, std::string message) {
  return ErrorStatus(MakeError(type, std::move(message)));
}

// The ErrorInfo a status carries; nullopt for an OK status or one without the payload.
std::optional<rpc::ErrorInfo> ErrorInfoOf(const absl::Status& status);
// The ErrorInfo a status carries, or one made from it: `fallback` typed, with its message.
// REQUIRES: !status.ok().
rpc::ErrorInfo ToErrorInfo(const absl::Status& status, rpc::ErrorType fallback);
// The type a status carries (ERROR_TYPE_UNSPECIFIED when it carries none).
rpc::ErrorType ErrorTypeOf(const absl::Status& status);

// A short name for listings and task events: the exception's type for a TASK_EXCEPTION that
// names one, else the enum's name ("WORKER_DIED").
std::string ErrorTypeName(const rpc::ErrorInfo& info);

}  // namespace shoal
