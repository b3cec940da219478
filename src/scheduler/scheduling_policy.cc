#include "src/scheduler/scheduling_policy.h"

#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"

namespace shoal {
namespace {

std::string ShortId(const NodeId& id) { return id.Hex().substr(0, 8); }

std::string NoRoomNow(const ResourceSet& demand) {
  return absl::StrCat("no node has ", demand.ToString(), " free now");
}

std::string NoNodeEver(const ResourceSet& demand) {
  return absl::StrCat("no schedulable node has ", demand.ToString(), " in total");
}

// Schedulable nodes (in NodeId order) that could hold `demand` in total, and those that hold it
// now.
struct Candidates {
  std::vector<const NodeView*> feasible;
  std::vector<const NodeView*> available;
};

Candidates FindCandidates(const ClusterResourceView& view, const ResourceSet& demand) {
  Candidates out;
  for (const auto& [id, node] : view.nodes()) {
    if (!node.Schedulable() || !node.IsFeasible(demand)) continue;
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

// --- SchedulingDecision ---

SchedulingDecision SchedulingDecision::RunLocal(const NodeId& local) {
  return {.kind = Kind::kRunLocal, .node = local, .available_now = true, .reason = ""};
}

SchedulingDecision SchedulingDecision::Spillback(const NodeId& target, bool available_now,
                                                 std::string reason) {
  return {.kind = Kind::kSpillback,
          .node = target,
          .available_now = available_now,
          .reason = std::move(reason)};
}

SchedulingDecision SchedulingDecision::Queue(const NodeId& local, std::string reason) {
  return {.kind = Kind::kQueue, .node = local, .available_now = false, .reason = std::move(reason)};
}

SchedulingDecision SchedulingDecision::Infeasible(std::string reason) {
  return {.kind = Kind::kInfeasible,
          .node = NodeId::Nil(),
          .available_now = false,
          .reason = std::move(reason)};
}

std::string SchedulingDecision::ToString() const {
  switch (kind) {
    case Kind::kRunLocal:
      return absl::StrCat("run_local(", ShortId(node), ")");
    case Kind::kSpillback:
      return available_now ? absl::StrCat("spillback(", ShortId(node), ", now)")
                           : absl::StrCat("spillback(", ShortId(node), ", wait): ", reason);
    case Kind::kQueue:
      return absl::StrCat("queue(", ShortId(node), "): ", reason);
    case Kind::kInfeasible:
      return absl::StrCat("infeasible: ", reason);
  }
  return "unknown decision";
}

// --- SchedulingPolicy ---

absl::StatusOr<SchedulingDecision> SchedulingPolicy::Schedule(const ClusterResourceView& view,
                                                              const NodeId& local,
                                                              const SchedulingRequest& request) {
  if (auto s = ValidateDemand(request.demand); !s.ok()) return s;
  if (const auto* affinity = std::get_if<NodeAffinityStrategy>(&request.strategy)) {
    if (affinity->node.IsNil()) {
      return absl::InvalidArgumentError("node affinity must name a node, got the nil id");
    }
    return Affinity(view, local, request.demand, *affinity);
  }
  if (std::holds_alternative<SpreadStrategy>(request.strategy)) {
    return Spread(view, local, request.demand);
  }
  return Hybrid(view, local, request.demand);
}

SchedulingDecision SchedulingPolicy::Hybrid(const ClusterResourceView& view, const NodeId& local,
                                            const ResourceSet& demand) const {
  Candidates candidates = FindCandidates(view, demand);
  if (candidates.feasible.empty()) return SchedulingDecision::Infeasible(NoNodeEver(demand));

  const NodeView* local_node = view.Find(local);
  const bool local_schedulable = local_node != nullptr && local_node->Schedulable();
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

SchedulingDecision SchedulingPolicy::Spread(const ClusterResourceView& view, const NodeId& local,
                                            const ResourceSet& demand) {
  Candidates candidates = FindCandidates(view, demand);
  if (candidates.feasible.empty()) return SchedulingDecision::Infeasible(NoNodeEver(demand));
  if (!candidates.available.empty()) {
    const NodeView* chosen = FirstAfter(candidates.available, last_spread_);
    last_spread_ = chosen->id;
    return RunOrSpill(*chosen, local);
  }
  const NodeView* local_node = view.Find(local);
  if (local_node != nullptr && local_node->Schedulable() && local_node->IsFeasible(demand)) {
    return SchedulingDecision::Queue(local, NoRoomNow(demand));
  }
  return SchedulingDecision::Spillback(FirstAfter(candidates.feasible, last_spread_)->id,
                                       /*available_now=*/false, NoRoomNow(demand));
}

SchedulingDecision SchedulingPolicy::Affinity(const ClusterResourceView& view, const NodeId& local,
                                              const ResourceSet& demand,
                                              const NodeAffinityStrategy& affinity) const {
  const NodeView* target = view.Find(affinity.node);
  std::string problem;
  if (target == nullptr) {
    problem = absl::StrCat("node ", affinity.node.Hex(), " is unknown");
  } else if (!target->alive) {
    problem = absl::StrCat("node ", affinity.node.Hex(), " is dead");
  } else if (target->scheduling_disabled) {
    problem = absl::StrCat("node ", affinity.node.Hex(), " has scheduling disabled");
  } else if (!target->IsFeasible(demand)) {
    problem = absl::StrCat("node ", affinity.node.Hex(), " has ", target->total.ToString(),
                           " in total, which cannot hold ", demand.ToString());
  }
  if (!problem.empty()) {
    if (affinity.soft) return Hybrid(view, local, demand);
    return SchedulingDecision::Infeasible(std::move(problem));
  }
  if (target->IsAvailable(demand)) return RunOrSpill(*target, local);
  std::string why = absl::StrCat("node ", ShortId(target->id), " has ",
                                 target->available.ToString(), " free, wants ", demand.ToString());
  if (target->id == local) return SchedulingDecision::Queue(local, std::move(why));
  return SchedulingDecision::Spillback(target->id, /*available_now=*/false, std::move(why));
}

}  // namespace shoal
