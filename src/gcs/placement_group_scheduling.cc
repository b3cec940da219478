// PlacementGroupManager's scheduling: which pending group is reserved next, where its bundles go
// (PlaceBundles over the alive nodes' reported resources less this manager's reservations since
// each report), and the two phases of a reservation (prepare on every chosen node, then commit),
// with what follows a failed prepare or commit. The table and its life cycle are in
// placement_group_manager.cc; placement_group_manager.h describes both.
#include <algorithm>
#include <optional>
#include <set>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "spdlog/spdlog.h"
#include "src/gcs/actor_placement.h"
#include "src/gcs/placement_group_manager.h"
#include "src/scheduler/bundle_policy.h"

namespace shoal {
namespace {

using Info = rpc::PlacementGroupInfo;

PlacementStrategy StrategyOf(Info::Strategy s) {
  switch (s) {
    case Info::PACK:
      return PlacementStrategy::kPack;
    case Info::SPREAD:
      return PlacementStrategy::kSpread;
    case Info::STRICT_PACK:
      return PlacementStrategy::kStrictPack;
    default:
      return PlacementStrategy::kStrictSpread;
  }
}

}  // namespace

void PlacementGroupManager::Reserve(const NodeId& node, const ResourceSet& amount) {
  reserved_since_report_[node].Add(amount);
}

void PlacementGroupManager::Unreserve(const NodeId& node, const ResourceSet& amount) {
  auto it = reserved_since_report_.find(node);
  if (it == reserved_since_report_.end()) return;
  ResourceSet left;
  for (const auto& [name, have] : it->second.entries()) {
    const int64_t units = have.units() - amount.Get(name).units();
    if (units > 0) left.Set(name, FixedPoint::FromUnits(units));
  }
  it->second = std::move(left);
}

void PlacementGroupManager::Backoff(Group& g) {
  g.backoff = g.backoff == absl::ZeroDuration() ? options_.retry_initial : std::min(g.backoff * 2, options_.retry_max);
  g.next_try = clock_.Now() + g.backoff;
  if (!wake_ || g.next_try < *wake_) wake_ = g.next_try;
}

void PlacementGroupManager::RetryAllNow() {
  for (const auto& [seq, id] : pending_) groups_.at(id).next_try = absl::InfinitePast();
}

void PlacementGroupManager::SetPending(const PlacementGroupId& id, Group& g, const std::string& reason,
                                       bool infeasible, Actions& actions) {
  if (g.info.pending_reason() == reason && g.info.infeasible() == infeasible) return;
  g.info.set_pending_reason(reason);
  g.info.set_infeasible(infeasible);
  Changed(id, g, actions);
}

void PlacementGroupManager::TrySchedule(Actions& actions) {
  if (shutdown_ || attempt_ || releasing_ > 0 || pending_.empty()) return;
  const absl::Time now = clock_.Now();
  // Bundles never ask for other groups' resources: the nodes without them are cheaper to copy.
  const std::vector<rpc::NodeInfo> nodes = nodes_.GetAllWithoutBundles(/*alive_only=*/true);
  for (const auto& [seq, id] : pending_) {
    Group& g = groups_.at(id);
    if (g.next_try > now) continue;
    std::vector<int> lost;
    std::vector<ResourceSet> demand;
    std::vector<Labels> selectors;  // per lost bundle; all empty when none has one
    bool any_selector = false;
    std::set<std::string> holding;  // hex ids of nodes holding its other bundles
    for (const rpc::Bundle& b : g.info.bundles()) {
      if (b.node_id().empty()) {
        lost.push_back(b.bundle_index());
        demand.push_back(ResourceSet::FromProto(b.resources()));
        selectors.emplace_back(b.label_selector().begin(), b.label_selector().end());
        any_selector = any_selector || !b.label_selector().empty();
      } else {
        holding.insert(b.node_id());
      }
    }
    if (lost.empty()) continue;  // cannot happen: a group with every bundle placed is CREATED
    // The nodes the lost bundles may go to: STRICT_SPREAD keeps away from the group's other
    // nodes, STRICT_PACK stays on its node.
    std::vector<rpc::NodeInfo> candidates;
    for (const rpc::NodeInfo& node : nodes) {
      const bool holds = holding.contains(node.node_id());
      if (g.info.strategy() == Info::STRICT_SPREAD && holds) continue;
      if (g.info.strategy() == Info::STRICT_PACK && !holding.empty() && !holds) continue;
      candidates.push_back(node);
    }
    const std::vector<Labels> bundle_selectors = any_selector ? selectors : std::vector<Labels>{};
    // PACK and SPREAD are preferences: lost bundles go back beside the group's other bundles
    // (PACK) or onto nodes that hold none of them (SPREAD) when those nodes have room, and
    // anywhere else that fits when they do not, as Ray re-places them.
    std::optional<absl::StatusOr<BundlePlacement>> preferred;
    if (!holding.empty() &&
        (g.info.strategy() == Info::PACK || g.info.strategy() == Info::SPREAD)) {
      std::vector<rpc::NodeInfo> nearer;
      for (const rpc::NodeInfo& node : candidates) {
        if (holding.contains(node.node_id()) == (g.info.strategy() == Info::PACK)) nearer.push_back(node);
      }
      if (!nearer.empty() && nearer.size() < candidates.size()) {
        auto attempt = PlaceBundles(NodeTableView(nearer, reserved_since_report_), demand,
                                    StrategyOf(g.info.strategy()), bundle_selectors);
        if (attempt.ok() && attempt->kind == BundlePlacement::Kind::kPlaced) preferred = std::move(attempt);
      }
    }
    auto placed = preferred.has_value()
                      ? std::move(*preferred)
                      : PlaceBundles(NodeTableView(candidates, reserved_since_report_), demand,
                                     StrategyOf(g.info.strategy()), bundle_selectors);
    if (!placed.ok()) {
      SetPending(id, g, std::string(placed.status().message()), /*infeasible=*/true, actions);
      continue;
    }
    if (placed->kind == BundlePlacement::Kind::kPlaced) {
      StartAttempt(id, g, lost, placed->nodes, actions);
      return;
    }
    const bool infeasible = placed->kind == BundlePlacement::Kind::kInfeasible;
    std::string reason = placed->reason;
    if (reason.empty()) reason = infeasible ? "no set of alive nodes can hold the bundles" : "waiting for resources";
    SetPending(id, g, reason, infeasible, actions);
  }
}

std::vector<rpc::Bundle> PlacementGroupManager::BundlesOf(const Info& info, const std::vector<int>& indices,
                                                          const NodeId& node) const {
  std::vector<rpc::Bundle> out;
  for (int i : indices) {
    rpc::Bundle b = info.bundles(i);
    b.set_node_id(node.Hex());
    out.push_back(std::move(b));
  }
  return out;
}

void PlacementGroupManager::StartAttempt(const PlacementGroupId& id, Group& g, const std::vector<int>& indices,
                                         const std::vector<NodeId>& nodes, Actions& actions) {
  Attempt a;
  a.id = next_attempt_++;
  a.pg = id;
  for (size_t i = 0; i < indices.size(); ++i) a.parts[nodes[i]].indices.push_back(indices[i]);
  // One node takes everything placed now: its prepare alone is all or nothing, so it commits
  // in the same call. The reply is then the commit's (OnReply), and a failure the prepare's.
  a.one_call = options_.one_call_for_one_node && a.parts.size() == 1;
  a.committing = a.one_call;
  for (auto& [node, part] : a.parts) {
    auto raylet = RayletOf(node);
    part.raylet = raylet.value_or("");
    ++a.outstanding;
    actions.push_back([this, attempt = a.id, node, raylet = part.raylet, one_call = a.one_call,
                       bundles = BundlesOf(g.info, part.indices, node)]() mutable {
      client_.PrepareBundles(raylet, std::move(bundles), one_call, [this, attempt, node, one_call](absl::Status s) {
        OnReply(attempt, node, /*commit=*/one_call, s);
      });
    });
  }
  spdlog::info("placement group {}: preparing {} bundles on {} nodes", id.Hex(), indices.size(), a.parts.size());
  attempt_ = std::move(a);
}

void PlacementGroupManager::OnReply(uint64_t attempt_id, const NodeId& node, bool commit, const absl::Status& status) {
  Actions actions;
  {
    absl::MutexLock lock(&mu_);
    if (shutdown_ || !attempt_ || attempt_->id != attempt_id || attempt_->committing != commit) return;
    auto it = attempt_->parts.find(node);
    if (it == attempt_->parts.end() || it->second.answered) return;  // its node died already
    Part& part = it->second;
    part.answered = true;
    part.ok = status.ok();
    part.refused = (!commit || attempt_->one_call) && absl::IsResourceExhausted(status);
    if (!status.ok()) part.error = status.ToString();
    if (part.ok && (!commit || attempt_->one_call)) {
      const Group* g = Find(attempt_->pg);
      if (g != nullptr) {
        for (int i : part.indices) Reserve(node, ResourceSet::FromProto(g->info.bundles(i).resources()));
      }
    }
    if (--attempt_->outstanding == 0) {
      if (attempt_->one_call && !part.ok) {
        AfterPrepare(actions);  // the one call failed: as a failed prepare (cancel, back off)
      } else if (commit) {
        AfterCommit(actions);
      } else {
        AfterPrepare(actions);
      }
    }
  }
  Finish(actions);
}

void PlacementGroupManager::AfterPrepare(Actions& actions) {
  Attempt& a = *attempt_;
  Group* g = Find(a.pg);
  const bool removed = g == nullptr || g->info.state() == Info::REMOVED;
  bool all_ok = true;
  std::vector<std::string> errors;
  for (const auto& [node, part] : a.parts) {
    if (part.ok) continue;
    all_ok = false;
    errors.push_back(absl::StrCat("node ", node.Hex(), ": ", part.dead ? "the node died" : part.error));
  }
  if (!removed && all_ok) {
    a.committing = true;
    for (auto& [node, part] : a.parts) {
      part.answered = false;
      ++a.outstanding;
      actions.push_back([this, attempt = a.id, node, raylet = part.raylet,
                         bundles = BundlesOf(g->info, part.indices, node)]() mutable {
        client_.CommitBundles(raylet, std::move(bundles), [this, attempt, node](absl::Status s) {
          OnReply(attempt, node, /*commit=*/true, s);
        });
      });
    }
    return;
  }
  // Give back whatever may have been prepared (a failed call may still have been made).
  for (const auto& [node, part] : a.parts) {
    if (part.dead || part.refused) continue;
    if (part.ok && g != nullptr) {
      for (int i : part.indices) Unreserve(node, ResourceSet::FromProto(g->info.bundles(i).resources()));
    }
    if (g != nullptr) {
      if (auto raylet = RayletOf(node)) SendCancel(g->info, *raylet, part.indices, removed, actions);
    }
  }
  const PlacementGroupId id = a.pg;
  attempt_.reset();
  if (g == nullptr) return TrySchedule(actions);
  if (removed) {
    TrimRemoved();
  } else {
    const std::string reason = absl::StrCat("preparing bundles failed (", absl::StrJoin(errors, "; "), "); retrying");
    spdlog::warn("placement group {}: {}", id.Hex(), reason);
    Backoff(*g);
    SetPending(id, *g, reason, /*infeasible=*/false, actions);
  }
  TrySchedule(actions);
}

void PlacementGroupManager::AfterCommit(Actions& actions) {
  Attempt& a = *attempt_;
  const PlacementGroupId id = a.pg;
  Group* g = Find(id);
  if (g == nullptr || g->info.state() == Info::REMOVED) {
    // Removed meanwhile: Remove cancelled the parts; cancel again those that committed since.
    if (g != nullptr) {
      for (const auto& [node, part] : a.parts) {
        if (part.dead) continue;
        if (auto raylet = RayletOf(node)) SendCancel(g->info, *raylet, part.indices, /*group_removed=*/true, actions);
      }
    }
    attempt_.reset();
    TrimRemoved();
    TrySchedule(actions);
    return;
  }
  std::vector<std::string> errors;
  for (const auto& [node, part] : a.parts) {
    if (part.ok) {
      for (int i : part.indices) g->info.mutable_bundles(i)->set_node_id(node.Hex());
      PublishResources(id, g->info, node);
      continue;
    }
    errors.push_back(absl::StrCat("node ", node.Hex(), ": ", part.dead ? "the node died" : part.error));
    for (int i : part.indices) Unreserve(node, ResourceSet::FromProto(g->info.bundles(i).resources()));
    if (part.dead) continue;
    if (auto raylet = RayletOf(node)) SendCancel(g->info, *raylet, part.indices, /*group_removed=*/false, actions);
  }
  attempt_.reset();
  bool all_placed = true;
  bool some_placed = false;
  for (const rpc::Bundle& b : g->info.bundles()) {
    all_placed = all_placed && !b.node_id().empty();
    some_placed = some_placed || !b.node_id().empty();
  }
  if (all_placed) {
    g->info.set_state(Info::CREATED);
    g->info.set_created_time_ms(absl::ToUnixMillis(clock_.Now()));
    g->info.clear_pending_reason();
    g->info.clear_infeasible();
    g->backoff = absl::ZeroDuration();
    g->next_try = absl::InfinitePast();
    pending_.erase(g->seq);
    spdlog::info("placement group {} is CREATED", id.Hex());
  } else {
    g->info.set_state(some_placed ? Info::RESCHEDULING : Info::PENDING);
    std::string reason = errors.empty() ? "a node holding bundles died; placing them again"
                                        : absl::StrCat("committing bundles failed (", absl::StrJoin(errors, "; "),
                                                       "); placing them again");
    spdlog::warn("placement group {}: {}", id.Hex(), reason);
    g->info.set_pending_reason(std::move(reason));
    g->info.set_infeasible(false);
  }
  Changed(id, *g, actions);
  TrySchedule(actions);
}

// --- cluster events ---

}  // namespace shoal
