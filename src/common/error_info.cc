#include "src/common/error_info.h"

#include "absl/strings/cord.h"

namespace shoal {

rpc::ErrorInfo MakeError(rpc::ErrorType type, std::string message) {
  rpc::ErrorInfo info;
  info.set_type(type);
  info.set_message(std::move(message));
  return info;
}

rpc::ErrorInfo TaskException(std::string exception_type, std::string message, std::string traceback,
                             std::string data) {
  rpc::ErrorInfo info = MakeError(rpc::TASK_EXCEPTION, std::move(message));
  info.set_exception_type(std::move(exception_type));
  info.set_traceback(std::move(traceback));
  info.set_data(std::move(data));
  return info;
}

absl::StatusCode StatusCodeFor(rpc::ErrorType type) {
  switch (type) {
    case rpc::TASK_EXCEPTION:
    case rpc::WORKER_DIED:
    case rpc::NODE_DIED:
      return absl::StatusCode::kAborted;
    case rpc::ACTOR_DIED:
    case rpc::RUNTIME_ENV_SETUP_FAILED:
      return absl::StatusCode::kFailedPrecondition;
    case rpc::ACTOR_UNSCHEDULABLE:
    case rpc::TASK_UNSCHEDULABLE:
    case rpc::OBJECT_STORE_FULL:
    case rpc::OUT_OF_MEMORY:
    case rpc::PENDING_CALLS_LIMIT_EXCEEDED:
      return absl::StatusCode::kResourceExhausted;
    case rpc::OBJECT_LOST:
    case rpc::OWNER_DIED:
      return absl::StatusCode::kNotFound;
    case rpc::TASK_CANCELLED:
      return absl::StatusCode::kCancelled;
    case rpc::GET_TIMEOUT:
      return absl::StatusCode::kDeadlineExceeded;
    case rpc::RAYLET_UNAVAILABLE:
      return absl::StatusCode::kUnavailable;
    case rpc::SYSTEM_ERROR:
    case rpc::ERROR_TYPE_UNSPECIFIED:
    default:
      return absl::StatusCode::kInternal;
  }
}

absl::Status ErrorStatus(const rpc::ErrorInfo& info) {
  absl::Status status(StatusCodeFor(info.type()), info.message().empty() ? ErrorTypeName(info) : info.message());
  status.SetPayload(kErrorInfoUrl, absl::Cord(info.SerializeAsString()));
  return status;
}

std::optional<rpc::ErrorInfo> ErrorInfoOf(const absl::Status& status) {
  if (status.ok()) return std::nullopt;
  auto payload = status.GetPayload(kErrorInfoUrl);
  if (!payload) return std::nullopt;
  rpc::ErrorInfo info;
  if (!info.ParseFromString(std::string(*payload))) return std::nullopt;
  return info;
}

rpc::ErrorInfo ToErrorInfo(const absl::Status& status, rpc::ErrorType fallback) {
  if (auto info = ErrorInfoOf(status)) return *std::move(info);
  return MakeError(fallback, std::string(status.message()));
}

rpc::ErrorType ErrorTypeOf(const absl::Status& status) {
  auto info = ErrorInfoOf(status);
  return info ? info->type() : rpc::ERROR_TYPE_UNSPECIFIED;
}

std::string ErrorTypeName(const rpc::ErrorInfo& info) {
  if (info.type() == rpc::TASK_EXCEPTION && !info.exception_type().empty()) return info.exception_type();
  return rpc::ErrorType_Name(info.type());
}

}  // namespace shoal
