#include "src/worker/object_value.h"

#include <optional>

#include "absl/strings/cord.h"
#include "src/worker/core_worker.h"

namespace shoal {

rpc::ObjectValue InlineValue(const ObjectId& id, std::string bytes) {
  rpc::ObjectValue v;
  v.set_object_id(id.Binary());
  v.set_inline_data(std::move(bytes));
  return v;
}

rpc::ObjectValue StoreValue(const ObjectId& id, const std::string& raylet_address, const NodeId& node) {
  rpc::ObjectValue v;
  v.set_object_id(id.Binary());
  v.set_in_store(true);
  v.set_raylet_address(raylet_address);
  v.set_node_id(node.Hex());
  return v;
}

rpc::ObjectValue ErrorValue(const ObjectId& id, std::string type, std::string message) {
  rpc::ObjectValue v;
  v.set_object_id(id.Binary());
  v.set_is_error(true);
  v.set_error_type(std::move(type));
  v.set_error_message(std::move(message));
  return v;
}

rpc::ObjectValue ErrorValueFromStatus(const ObjectId& id, const absl::Status& status) {
  auto type = status.GetPayload(kErrorTypeUrl);
  rpc::ObjectValue v = ErrorValue(id, type ? std::string(*type) : absl::StatusCodeToString(status.code()),
                                  std::string(status.message()));
  if (auto data = status.GetPayload(kErrorDataUrl)) v.set_error_data(std::string(*data));
  return v;
}

bool IsSystemErrorType(std::string_view type) {
  for (std::string_view t : {kWorkerCrashedError, kTaskUnschedulableError, kRayletUnavailableError, kObjectLostError,
                             kOwnerDiedError, kObjectStoreFullError, kSystemError, kTaskCancelledError, kActorDiedError}) {
    if (type == t) return true;
  }
  return false;
}

absl::Status ErrorValueToStatus(const rpc::ObjectValue& value) {
  const absl::StatusCode code =
      IsSystemErrorType(value.error_type()) ? absl::StatusCode::kUnavailable : absl::StatusCode::kAborted;
  absl::Status status(code, value.error_message().empty() ? value.error_type() : value.error_message());
  status.SetPayload(kErrorTypeUrl, absl::Cord(value.error_type()));
  if (!value.error_data().empty()) status.SetPayload(kErrorDataUrl, absl::Cord(value.error_data()));
  return status;
}

}  // namespace shoal
