// Chooses the raylet the GCS asks for an actor's worker lease, with the scheduler library's
// policy (the code the raylets run: node affinity, SPREAD, hybrid), over a view of the node table.
//
// The view holds every node the table knows, dead ones included (so that a hard affinity to a
// dead node is told apart from one to a node that has not joined yet), with its total and last
// reported free resources, less what the GCS itself has placed there since: the demand of each
// lease request still outstanding that the node was to take now (grant_or_reject), and of each
// grant the node made after its last report. So a burst of actors spreads over the nodes with room before any of them reports again.
// The GCS is no node: it asks the policy as NodeId::Nil().
//
// What the decision becomes (Placement::Kind):
//   kAsk            the policy chose a node: ask its raylet. With grant_or_reject when the view
//                   says it has room now (the raylet grants it, or keeps it waiting there); without
//                   when it must wait for room anyway (the raylet places it by its own exact view,
//                   and may spill it back once).
//                   Infeasible for now (no node could hold it yet, or a hard affinity names a node
//                   that has not joined): ask the head's raylet (else the first alive node's)
//                   without grant_or_reject: it waits there as an infeasible demand (shoal status)
//                   until a node that fits joins, and that raylet spills it there.
//   kRetry          no node is alive: try again later.
//   kUnschedulable  the strategy can never be met (a hard affinity to a dead node, one with
//                   scheduling disabled, or one too small): the actor fails, ACTOR_UNSCHEDULABLE.
//
// Threading: not synchronized; the actor manager calls it under its own lock.
// Ownership: owns the policy; borrows the node table, which must outlive it.
// Errors: InvalidArgument for a demand or strategy the policy refuses.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "shoal/common.pb.h"
#include "src/common/ids.h"
#include "src/common/resources.h"
#include "src/gcs/gcs_tables.h"
#include "src/scheduler/scheduling_policy.h"

namespace shoal {

// The view the GCS places work on: every node of `nodes` (node table entries) with its total and
// last reported free resources, less `placed` (what the GCS put on each node since its report),
// floored at zero. Nodes the view refuses are left out, with a warning.
ClusterResourceView NodeTableView(const std::vector<rpc::NodeInfo>& nodes,
                                  const absl::flat_hash_map<NodeId, ResourceSet>& placed);

struct Placement {
  enum class Kind { kAsk, kRetry, kUnschedulable };
  Kind kind = Kind::kRetry;
  NodeId node;               // kAsk
  std::string raylet;        // kAsk: host:port of the node's raylet
  bool grant_or_reject = false;
  std::string reason;        // kRetry, kUnschedulable; kAsk when the request is to wait there
};

class ActorPlacement {
 public:
  ActorPlacement(const NodeTable& nodes, std::unique_ptr<SchedulingPolicy> policy);
  ActorPlacement(const ActorPlacement&) = delete;
  ActorPlacement& operator=(const ActorPlacement&) = delete;

  absl::StatusOr<Placement> Place(const ResourceSet& demand, const rpc::SchedulingStrategy& strategy);

  // Bookkeeping of what the GCS sent where. `request_id` names one lease request, sent to
  // `placement.node` (a kAsk) for `demand`.
  void RequestSent(uint64_t request_id, const Placement& placement, const ResourceSet& demand);
  // The request was answered or given up. A grant keeps counting at its node until the node's
  // next report. Unknown ids are ignored (a reply that raced a cancellation).
  void RequestEnded(uint64_t request_id, bool granted);
  // `node` reported its free resources: they include every grant it made before.
  void NodeReported(const NodeId& node);

 private:
  struct Sent {
    NodeId node;
    ResourceSet demand;
    bool now = false;  // sent with grant_or_reject: the node is to take it now
  };

  const NodeTable& nodes_;
  std::unique_ptr<SchedulingPolicy> policy_;
  absl::flat_hash_map<uint64_t, Sent> outstanding_;
  absl::flat_hash_map<NodeId, ResourceSet> granted_since_report_;
};

}  // namespace shoal
