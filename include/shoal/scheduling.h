// Scheduling strategies for tasks (TaskCaller::SetSchedulingStrategy).
// Threading: values; any thread.
#pragma once

#include <map>
#include <string>
#include <utility>

namespace shoal {

// Where a task may run. The default is the hybrid policy (the local node while it has room,
// else the least-loaded node that fits); Spread puts consecutive tasks on different nodes;
// NodeAffinity pins a task to one node (hex id, see shoal::CurrentNodeId), or prefers it when soft.
// InPlacementGroup runs it in bundle `bundle_index` (-1: any bundle) of a placement group
// (shoal/placement_group.h, PlacementGroup::GetID()); with capture_child_tasks, the tasks and
// actors it submits without a strategy of their own run in the group too.
//
// label_selector, with any kind, restricts the task to nodes whose labels match (Ray's
// label_selector): each key maps to "v" (equal), "!v" (absent or not equal), "in(v1,v2)" or
// "!in(v1,v2)"; every key must match. A malformed selector makes the submit throw Error.
struct SchedulingStrategy {
  enum class Kind { kDefault, kSpread, kNodeAffinity, kPlacementGroup };
  static SchedulingStrategy Default() { return {}; }
  static SchedulingStrategy Spread() { return {Kind::kSpread, {}, false}; }
  static SchedulingStrategy NodeAffinity(std::string node_id, bool soft = false) {
    return {Kind::kNodeAffinity, std::move(node_id), soft};
  }
  static SchedulingStrategy InPlacementGroup(std::string placement_group_id, int bundle_index = -1,
                                             bool capture_child_tasks = false) {
    SchedulingStrategy s;
    s.kind = Kind::kPlacementGroup;
    s.placement_group_id = std::move(placement_group_id);
    s.bundle_index = bundle_index;
    s.capture_child_tasks = capture_child_tasks;
    return s;
  }
  Kind kind = Kind::kDefault;
  std::string node_id;
  bool soft = false;
  std::string placement_group_id;  // hex, kPlacementGroup
  int bundle_index = -1;
  bool capture_child_tasks = false;
  std::map<std::string, std::string> label_selector;
};

}  // namespace shoal
