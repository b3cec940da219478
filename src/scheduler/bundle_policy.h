// Places the bundles of a placement group: one node per bundle, taking each bundle from the
// room left by the group's earlier bundles on the same node.
//
// Strategies:
//  - STRICT_PACK: every bundle on one node, or no placement.
//  - STRICT_SPREAD: every bundle on a different node, or no placement. Found by bipartite
//    matching, so it succeeds whenever some assignment exists.
//  - PACK: one node if any can hold the whole group (as STRICT_PACK); otherwise greedily, bundle
//    by bundle, onto a node the group already uses, else onto the next node in order.
//  - SPREAD: different nodes if possible (as STRICT_SPREAD); otherwise greedily onto a node the
//    group does not use yet, else onto the used node holding the fewest of its bundles.
// Bundle label selectors (Ray's bundle_label_selector): when given, one per bundle, and bundle i
// goes only to a node whose labels match selector i (label_selector.h); an empty selector
// matches every node.
// Nodes are tried least-utilised first (NodeView::Utilization), ties by NodeId; only alive,
// schedulable nodes take bundles, and GPU nodes are not avoided.
//
// The outcome is kPlaced when the group fits the nodes' free resources now; kQueue when it would
// fit were the nodes idle (feasible against totals); kInfeasible otherwise. PACK and SPREAD are
// greedy past their first attempt, so for them kInfeasible means "this policy cannot place it on
// these nodes"; callers keep the group pending and try again when nodes join.
//
// Threading: pure function of its arguments; any thread that owns the view.
// Errors: InvalidArgument for no bundles, an empty bundle, a non-whole GPU amount above 1, a
// malformed selector (naming the bundle and key), or selectors not one per bundle.
#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "src/common/ids.h"
#include "src/common/resources.h"
#include "src/scheduler/cluster_view.h"
#include "src/scheduler/label_selector.h"

namespace shoal {

enum class PlacementStrategy { kPack, kSpread, kStrictPack, kStrictSpread };

// "PACK", "SPREAD", "STRICT_PACK", "STRICT_SPREAD".
const char* PlacementStrategyName(PlacementStrategy strategy);

struct BundlePlacement {
  enum class Kind { kPlaced, kQueue, kInfeasible };

  Kind kind = Kind::kInfeasible;
  // kPlaced: nodes[i] takes bundles[i]. Empty otherwise.
  std::vector<NodeId> nodes;
  // Why the group is not placed (kQueue, kInfeasible); empty when placed.
  std::string reason;
};

absl::StatusOr<BundlePlacement> PlaceBundles(const ClusterResourceView& view,
                                             const std::vector<ResourceSet>& bundles,
                                             PlacementStrategy strategy,
                                             const std::vector<Labels>& bundle_label_selectors = {});

}  // namespace shoal
