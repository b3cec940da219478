// Object values as the core worker keeps and ships them (rpc::ObjectValue): inline bytes, a
// location in a node's object store, or an error stored as the result of a failed task.
// Threading: free functions over values; any thread.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "shoal/worker.pb.h"
#include "src/common/ids.h"

namespace shoal {

// Values up to this size travel inline (in task specs, replies and the owner's memory); larger
// ones go through the object store.
inline constexpr uint64_t kMaxInlineObjectSize = 100 * 1024;

rpc::ObjectValue InlineValue(const ObjectId& id, std::string bytes);
rpc::ObjectValue StoreValue(const ObjectId& id, const std::string& raylet_address, const NodeId& node);
rpc::ObjectValue ErrorValue(const ObjectId& id, std::string type, std::string message);
// An application error from a task function's status: the type is the status's kErrorTypeUrl
// payload when it has one, else the code's name (e.g. "INVALID_ARGUMENT").
rpc::ObjectValue ErrorValueFromStatus(const ObjectId& id, const absl::Status& status);

// True for the error types the runtime itself produces (see core_worker.h).
bool IsSystemErrorType(std::string_view type);

// What Get answers for an error value: kUnavailable for system errors, kAborted for
// application errors; the type rides in the kErrorTypeUrl payload.
// REQUIRES: value.is_error().
absl::Status ErrorValueToStatus(const rpc::ObjectValue& value);

}  // namespace shoal
