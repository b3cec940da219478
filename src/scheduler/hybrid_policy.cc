#include "src/scheduler/hybrid_policy.h"

#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"

namespace shoal {
namespace {

std::string ShortId(const NodeId& id) { return id.Hex().substr(0, 8); }

std::string NoRoomNow(const ResourceSet& demand) {
  return absl::StrCat("no node has ", demand.ToString(), " free now");
}

std::string NoNodeEver(const ResourceSet& demand, const LabelSelector& selector) {
  if (selector.empty()) {
    return absl::StrCat("no schedulable node has ", demand.ToString(), " in total");
  }
  return absl::StrCat("no schedulable node matching label selector ", selector.ToString(),
                      " has ", demand.ToString(), " in total");
}

// The node may take the request at all: schedulable, its labels match, its total holds it.
bool Eligible(const NodeView& node, const ResourceSet& demand, const LabelSelector& selector) {
  return node.Schedulable() && selector.Matches(node.labels) && node.IsFeasible(demand);
}

// Schedulable nodes (in NodeId order) that could hold `demand` in total, and those that hold it
// now.
struct Candidates {
  std::vector<const NodeView*> feasible;
  std::vector<const NodeView*> available;
};

Candidates FindCandidates(const ClusterResourceView& view, const ResourceSet& demand,
                          const LabelSelector& selector) {
  Candidates out;
  for (const auto& [id, node] : view.nodes()) {
    if (!Eligible(node, demand, selector)) continue;
    out.feasible.push_back(&node);
    if (node.IsAvailable(demand)) out.available.push_back(&node);
  }
  return out;
}

// The first of `nodes` (in NodeId order) after `after`, wrapping around. REQUIRES: non-empty.
const NodeView* FirstAfter(const std::vector<const NodeView*>& nodes,
                           const std::optional<NodeId>& after) {
  if (after.has_value()) {
    for (const NodeView* node : nodes) {
      if (*after < node->id) return node;
    }
  }
  return nodes.front();
}

// Run on the local node when `target` is it, else send the request there.
SchedulingDecision RunOrSpill(const NodeView& target, const NodeId& local) {
  return target.id == local ? SchedulingDecision::RunLocal(local)
                            : SchedulingDecision::Spillback(target.id, /*available_now=*/true);
}

}  // namespace

absl::StatusOr<SchedulingDecision> HybridSchedulingPolicy::Schedule(const ClusterResourceView& view,
                                                                    const NodeId& local,
                                                                    const SchedulingRequest& request) {
  if (auto s = ValidateDemand(request.demand); !s.ok()) return s;
  if (auto s = ValidateStrategy(request.strategy); !s.ok()) return s;
  LabelSelector selector;
  if (!request.strategy.label_selector().empty()) {
    selector = *LabelSelector::Parse(request.strategy.label_selector());  // validated above
  }
  switch (request.strategy.kind()) {
    case rpc::SchedulingStrategy::NODE_AFFINITY:
      return Affinity(view, local, request.demand, selector,
                      *NodeId::FromHex(request.strategy.node_id()), request.strategy.soft());
    case rpc::SchedulingStrategy::SPREAD:
      return Spread(view, local, request.demand, selector);
    default:
      return Hybrid(view, local, request.demand, selector);
  }
}

SchedulingDecision HybridSchedulingPolicy::Hybrid(const ClusterResourceView& view, const NodeId& local,
                                                  const ResourceSet& demand,
                                                  const LabelSelector& selector) const {
  Candidates candidates = FindCandidates(view, demand, selector);
  if (candidates.feasible.empty()) {
    return SchedulingDecision::Infeasible(NoNodeEver(demand, selector));
  }

  const NodeView* local_node = view.Find(local);
  const bool local_schedulable = local_node != nullptr && local_node->Schedulable() &&
                                 selector.Matches(local_node->labels);
  if (demand.IsEmpty() && local_schedulable) return SchedulingDecision::RunLocal(local);

  // The lowest-scoring node of `nodes`: ties to the local node, then the lowest id.
  auto best = [&](const std::vector<const NodeView*>& nodes) {
    bool gpu_free_only = false;
    if (options_.avoid_gpu_nodes && demand.Get(kGPU).IsZero()) {
      for (const NodeView* node : nodes) gpu_free_only |= !node->HasGpus();
    }
    const NodeView* chosen = nullptr;
    double chosen_score = 0;
    for (const NodeView* node : nodes) {
      if (gpu_free_only && node->HasGpus()) continue;
      double score = node->Utilization();
      if (score < options_.spread_threshold) score = 0;
      if (chosen == nullptr || score < chosen_score ||
          (score == chosen_score && node->id == local)) {
        chosen = node;
        chosen_score = score;
      }
    }
    return chosen;
  };

  if (!candidates.available.empty()) return RunOrSpill(*best(candidates.available), local);
  if (local_schedulable && local_node->IsFeasible(demand)) {
    return SchedulingDecision::Queue(local, NoRoomNow(demand));
  }
  return SchedulingDecision::Spillback(best(candidates.feasible)->id, /*available_now=*/false,
                                       NoRoomNow(demand));
}

SchedulingDecision HybridSchedulingPolicy::Spread(const ClusterResourceView& view, const NodeId& local,
                                                  const ResourceSet& demand,
                                                  const LabelSelector& selector) {
  Candidates candidates = FindCandidates(view, demand, selector);
  if (candidates.feasible.empty()) {
    return SchedulingDecision::Infeasible(NoNodeEver(demand, selector));
  }
  if (!candidates.available.empty()) {
    const NodeView* chosen = FirstAfter(candidates.available, last_spread_);
    last_spread_ = chosen->id;
    return RunOrSpill(*chosen, local);
  }
  const NodeView* local_node = view.Find(local);
  if (local_node != nullptr && Eligible(*local_node, demand, selector)) {
    return SchedulingDecision::Queue(local, NoRoomNow(demand));
  }
  return SchedulingDecision::Spillback(FirstAfter(candidates.feasible, last_spread_)->id,
                                       /*available_now=*/false, NoRoomNow(demand));
}

SchedulingDecision HybridSchedulingPolicy::Affinity(const ClusterResourceView& view, const NodeId& local,
                                                    const ResourceSet& demand,
                                                    const LabelSelector& selector,
                                                    const NodeId& target_id, bool soft) const {
  const NodeView* target = view.Find(target_id);
  std::string problem;
  bool never = true;  // the problem cannot go away
  if (target == nullptr) {
    problem = absl::StrCat("node ", target_id.Hex(), " is unknown");
    never = false;  // it may still be joining
  } else if (!target->alive) {
    problem = absl::StrCat("node ", target_id.Hex(), " is dead");
  } else if (target->scheduling_disabled) {
    problem = absl::StrCat("node ", target_id.Hex(), " has scheduling disabled");
  } else if (!target->IsFeasible(demand)) {
    problem = absl::StrCat("node ", target_id.Hex(), " has ", target->total.ToString(),
                           " in total, which cannot hold ", demand.ToString());
  } else if (!selector.Matches(target->labels)) {
    problem = absl::StrCat("node ", target_id.Hex(), " does not match label selector ",
                           selector.ToString());
  }
  if (!problem.empty()) {
    if (soft) return Hybrid(view, local, demand, selector);
    return never ? SchedulingDecision::Unschedulable(std::move(problem))
                 : SchedulingDecision::Infeasible(std::move(problem));
  }
  if (target->IsAvailable(demand)) return RunOrSpill(*target, local);
  std::string why = absl::StrCat("node ", ShortId(target->id), " has ",
                                 target->available.ToString(), " free, wants ", demand.ToString());
  if (target->id == local) return SchedulingDecision::Queue(local, std::move(why));
  return SchedulingDecision::Spillback(target->id, /*available_now=*/false, std::move(why));
}

}  // namespace shoal
