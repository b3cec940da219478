// Object values as the core worker keeps and ships them (rpc::ObjectValue): inline bytes, a
// location in a node's object store, or an error stored as the result of a failed task.
// Threading: free functions over values; any thread.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "shoal/worker.pb.h"
#include "src/common/error_info.h"
#include "src/common/ids.h"

namespace shoal {

// Values up to this size travel inline (in task specs, replies and the owner's memory); larger
// ones go through the object store.
inline constexpr uint64_t kMaxInlineObjectSize = 100 * 1024;

rpc::ObjectValue InlineValue(const ObjectId& id, std::string bytes);
rpc::ObjectValue StoreValue(const ObjectId& id, const std::string& raylet_address, const NodeId& node);
// A failure stored as the object's value (Get answers ErrorStatus(info)).
rpc::ObjectValue ErrorValue(const ObjectId& id, rpc::ErrorInfo info);
inline rpc::ObjectValue ErrorValue(const ObjectId& id, rpc::ErrorType type, std::string message) {
  return ErrorValue(id, MakeError(type, std::move(message)));
}

// One error value per return of `spec` (at least one), each holding `error`.
std::vector<rpc::ObjectValue> ErrorReturns(const rpc::TaskSpec& spec, const rpc::ErrorInfo& error);
inline std::vector<rpc::ObjectValue> ErrorReturns(const rpc::TaskSpec& spec, rpc::ErrorType type,
                                                  std::string message) {
  return ErrorReturns(spec, MakeError(type, std::move(message)));
}

// What a task function's failure status means: the ErrorInfo it carries, else a
// TASK_EXCEPTION typed with the code's name (e.g. "INVALID_ARGUMENT").
rpc::ErrorInfo TaskFailureInfo(const absl::Status& status);

// What Get answers for an error value: ErrorStatus(value.error()). REQUIRES: value.has_error().
inline absl::Status ErrorValueToStatus(const rpc::ObjectValue& value) { return ErrorStatus(value.error()); }

}  // namespace shoal
