// Scheduling strategies for tasks (TaskCaller::SetSchedulingStrategy).
// Threading: values; any thread.
#pragma once

#include <string>
#include <utility>

namespace shoal {

// Where a task may run. The default is the hybrid policy (the local node while it has room,
// else the least-loaded node that fits); Spread puts consecutive tasks on different nodes;
// NodeAffinity pins a task to one node (hex id, see shoal::CurrentNodeId), or prefers it when soft.
struct SchedulingStrategy {
  enum class Kind { kDefault, kSpread, kNodeAffinity };
  static SchedulingStrategy Default() { return {}; }
  static SchedulingStrategy Spread() { return {Kind::kSpread, {}, false}; }
  static SchedulingStrategy NodeAffinity(std::string node_id, bool soft = false) {
    return {Kind::kNodeAffinity, std::move(node_id), soft};
  }
  Kind kind = Kind::kDefault;
  std::string node_id;
  bool soft = false;
};

}  // namespace shoal
