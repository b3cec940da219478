#include "src/worker/object_value.h"

#include <algorithm>

#include "src/worker/task_spec.h"


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

rpc::ObjectValue ErrorValue(const ObjectId& id, rpc::ErrorInfo info) {
  rpc::ObjectValue v;
  v.set_object_id(id.Binary());
  *v.mutable_error() = std::move(info);
  return v;
}

std::vector<rpc::ObjectValue> ErrorReturns(const rpc::TaskSpec& spec, const rpc::ErrorInfo& error) {
  std::vector<rpc::ObjectValue> out;
  for (uint32_t i = 1; i <= std::max<uint32_t>(spec.num_returns(), 1); ++i) {
    out.push_back(ErrorValue(ReturnObjectId(spec, i), error));
  }
  return out;
}

rpc::ErrorInfo TaskFailureInfo(const absl::Status& status) {
  if (auto info = ErrorInfoOf(status)) return *std::move(info);
  return TaskException(absl::StatusCodeToString(status.code()), std::string(status.message()));
}

}  // namespace shoal
