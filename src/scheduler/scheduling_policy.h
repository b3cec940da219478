// Chooses the node for one task or actor request: run it here, send it to another raylet
// (spillback), queue it here, or report it infeasible.
//
// Strategies:
//  - Default (hybrid). Among schedulable nodes that can run the demand now, score each by its
//    utilisation (NodeView::Utilization, before placing), counted as 0 below
//    spread_threshold, and take the lowest score; ties go to the local node, then to the lowest
//    NodeId. So the local node wins while it is under the threshold, and above it the
//    least-utilised node wins. With avoid_gpu_nodes, a demand with no GPU considers only nodes
//    without GPUs whenever one of them can run it now. An empty demand runs locally whenever the
//    local node is schedulable.
//  - Spread. Round robin in NodeId order over the schedulable nodes that can run the demand now,
//    starting after the node this policy chose last for a spread request, so N requests land on
//    N different nodes even before any node reports new availability. GPU nodes are not avoided.
//  - NodeAffinity{node, soft}. The named node when it is alive, schedulable and feasible: it
//    runs there now if it fits, otherwise it waits there. When the node is dead, unknown,
//    scheduling-disabled or too small: a hard affinity is infeasible (with the reason); a soft one
//    falls back to hybrid.
// When no node can run a feasible demand now (hybrid, spread): queue on the local node if the
// local node is feasible, else spill back to a feasible node (chosen as when running now) to wait
// there; `available_now` is then false. A demand that no alive schedulable node's total could
// hold is infeasible: the caller keeps it queued and reports it (SummarizeDemand).
//
// A raylet that receives a spilled-back request should grant or queue it rather than consult
// the policy again, so that a request cannot bounce between nodes.
//
// Threading: one thread (the owner's event loop); Schedule mutates the spread cursor.
// Ownership: keeps no reference to the view between calls.
// Errors: InvalidArgument for an invalid request; scheduling outcomes are decisions, not errors.
#pragma once

#include <optional>
#include <string>
#include <variant>

#include "absl/status/statusor.h"
#include "src/common/ids.h"
#include "src/common/resources.h"
#include "src/scheduler/cluster_view.h"

namespace shoal {

struct DefaultStrategy {};
struct SpreadStrategy {};
struct NodeAffinityStrategy {
  NodeId node;
  bool soft = false;
};
using SchedulingStrategy = std::variant<DefaultStrategy, SpreadStrategy, NodeAffinityStrategy>;

struct SchedulingRequest {
  ResourceSet demand;
  SchedulingStrategy strategy = DefaultStrategy{};
};

struct SchedulingOptions {
  // Utilisation below which a node counts as idle in the hybrid score.
  double spread_threshold = 0.5;
  // Keep GPU-free demands off GPU nodes while a node without GPUs can run them now.
  bool avoid_gpu_nodes = true;
};

struct SchedulingDecision {
  enum class Kind {
    kRunLocal,    // grant on the local node now
    kSpillback,   // send the request to `node`
    kQueue,       // feasible, but nothing can run it now: wait on the local node
    kInfeasible,  // no node the strategy allows could ever run it
  };

  static SchedulingDecision RunLocal(const NodeId& local);
  static SchedulingDecision Spillback(const NodeId& target, bool available_now,
                                      std::string reason = "");
  static SchedulingDecision Queue(const NodeId& local, std::string reason);
  static SchedulingDecision Infeasible(std::string reason);

  Kind kind = Kind::kInfeasible;
  // kRunLocal, kQueue: the local node; kSpillback: the target; kInfeasible: nil.
  NodeId node;
  // True when, by the view, `node` can run the demand now (always for kRunLocal, never for
  // kQueue or kInfeasible). A kSpillback with false sends the request to wait on `node`.
  bool available_now = false;
  // Why it does not run now (kQueue, kInfeasible, waiting kSpillback); empty otherwise.
  std::string reason;

  // "run_local(ab12…)", "spillback(cd34…, now)", "queue(ab12…): why", "infeasible: why".
  std::string ToString() const;
  friend bool operator==(const SchedulingDecision&, const SchedulingDecision&) = default;
};

class SchedulingPolicy {
 public:
  explicit SchedulingPolicy(SchedulingOptions options = {}) : options_(options) {}

  SchedulingPolicy(const SchedulingPolicy&) = delete;
  SchedulingPolicy& operator=(const SchedulingPolicy&) = delete;

  // Decides where `request` goes, as seen from `local` (which need not be in the view).
  // InvalidArgument for a non-whole GPU amount above 1 or a node affinity to the nil id.
  absl::StatusOr<SchedulingDecision> Schedule(const ClusterResourceView& view, const NodeId& local,
                                              const SchedulingRequest& request);

 private:
  SchedulingDecision Hybrid(const ClusterResourceView& view, const NodeId& local,
                            const ResourceSet& demand) const;
  SchedulingDecision Spread(const ClusterResourceView& view, const NodeId& local,
                            const ResourceSet& demand);
  SchedulingDecision Affinity(const ClusterResourceView& view, const NodeId& local,
                              const ResourceSet& demand,
                              const NodeAffinityStrategy& affinity) const;

  SchedulingOptions options_;
  std::optional<NodeId> last_spread_;  // the node the last spread request went to
};

}  // namespace shoal
