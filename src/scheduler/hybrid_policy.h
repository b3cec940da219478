// The default scheduling policy (DESIGN.md section 3): hybrid placement, SPREAD and node
// affinity, for the raylets' lease managers and the GCS's actor placement alike.
//
// Strategies (rpc::SchedulingStrategy::Kind):
//  - DEFAULT (hybrid). Among schedulable nodes that can run the demand now, score each by its
//    utilisation (NodeView::Utilization, before placing), counted as 0 below
//    spread_threshold, and take the lowest score; ties go to the local node, then to the lowest
//    NodeId. So the local node wins while it is under the threshold, and above it the
//    least-utilised node wins. With avoid_gpu_nodes, a demand with no GPU considers only nodes
//    without GPUs whenever one of them can run it now. An empty demand runs locally whenever the
//    local node is schedulable.
//  - SPREAD. Round robin in NodeId order over the schedulable nodes that can run the demand now,
//    starting after the node this policy chose last for a spread request, so N requests land on
//    N different nodes even before any node reports new availability. GPU nodes are not avoided.
//  - NODE_AFFINITY{node, soft}. The named node when it is alive, schedulable and feasible: it
//    runs there now if it fits, otherwise it waits there. When it is not: a soft affinity falls
//    back to hybrid; a hard one is unschedulable when the node is dead, has scheduling disabled
//    or is too small in total (none of which changes), and infeasible (it waits) when the node
//    is unknown, since it may still be joining.
// Label selector (every kind): only nodes whose labels match it (label_selector.h) count, for
// feasibility, availability and waiting alike; none matching makes the request infeasible. A
// node-affinity target that does not match is treated like one too small in total (labels do
// not change): unschedulable when hard, hybrid over the matching nodes when soft.
// When no node can run a feasible demand now (hybrid, spread): queue on the local node if the
// local node is feasible, else spill back to a feasible node (chosen as when running now) to wait
// there; `available_now` is then false. A demand that no alive schedulable node's total could
// hold is infeasible: the caller keeps it waiting and reports it (SummarizeDemand).
//
// A raylet that receives a spilled-back request should grant or queue it rather than consult
// the policy again, so that a request cannot bounce between nodes.
//
// Threading: one thread at a time; Schedule mutates the spread cursor.
// Ownership: keeps no reference to the view between calls.
#pragma once

#include <optional>
#include <string>

#include "src/scheduler/scheduling_policy.h"

namespace shoal {

struct SchedulingOptions {
  // Utilisation below which a node counts as idle in the hybrid score.
  double spread_threshold = 0.5;
  // Keep GPU-free demands off GPU nodes while a node without GPUs can run them now.
  bool avoid_gpu_nodes = true;
};

class HybridSchedulingPolicy final : public SchedulingPolicy {
 public:
  explicit HybridSchedulingPolicy(SchedulingOptions options = {}) : options_(options) {}

  HybridSchedulingPolicy(const HybridSchedulingPolicy&) = delete;
  HybridSchedulingPolicy& operator=(const HybridSchedulingPolicy&) = delete;

  absl::StatusOr<SchedulingDecision> Schedule(const ClusterResourceView& view, const NodeId& local,
                                              const SchedulingRequest& request) override;

 private:
  SchedulingDecision Hybrid(const ClusterResourceView& view, const NodeId& local,
                            const ResourceSet& demand, const LabelSelector& selector) const;
  SchedulingDecision Spread(const ClusterResourceView& view, const NodeId& local,
                            const ResourceSet& demand, const LabelSelector& selector);
  SchedulingDecision Affinity(const ClusterResourceView& view, const NodeId& local,
                              const ResourceSet& demand, const LabelSelector& selector,
                              const NodeId& target, bool soft) const;

  SchedulingOptions options_;
  std::optional<NodeId> last_spread_;  // the node the last spread request went to
};

}  // namespace shoal
