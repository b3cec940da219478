#include "src/gcs/actor_placement.h"

#include <algorithm>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "spdlog/spdlog.h"

namespace shoal {
namespace {

std::string RayletAddress(const rpc::NodeInfo& node) { return absl::StrCat(node.address(), ":", node.raylet_port()); }

// `from` less `taken`, each amount floored at zero.
void SubtractFloored(ResourceSet& from, const ResourceSet& taken) {
  for (const auto& [name, amount] : taken.entries()) {
    const int64_t left = from.Get(name).units() - amount.units();
    from.Set(name, FixedPoint::FromUnits(std::max<int64_t>(0, left)));
  }
}

}  // namespace

ClusterResourceView NodeTableView(const std::vector<rpc::NodeInfo>& nodes,
                                  const absl::flat_hash_map<NodeId, ResourceSet>& placed) {
  ClusterResourceView view;
  for (const rpc::NodeInfo& info : nodes) {
    auto id = NodeId::FromHex(info.node_id());
    if (!id.ok()) continue;
    NodeView node;
    node.id = *id;
    node.total = ResourceSet::FromProto(info.resources_total());
    node.available = ResourceSet::FromProto(info.resources_available());
    if (!node.total.Contains(node.available)) node.available = node.total;
    if (auto it = placed.find(*id); it != placed.end()) SubtractFloored(node.available, it->second);
    node.labels = {info.labels().begin(), info.labels().end()};
    node.alive = info.state() == rpc::NodeInfo::ALIVE;
    node.scheduling_disabled = info.scheduling_disabled();
    node.is_head = info.is_head();
    if (auto s = view.AddOrUpdateNode(std::move(node)); !s.ok()) {
      spdlog::warn("the GCS's cluster view ignores node {}: {}", id->Hex(), s.ToString());
    }
  }
  return view;
}

ActorPlacement::ActorPlacement(const NodeTable& nodes, std::unique_ptr<SchedulingPolicy> policy)
    : nodes_(nodes), policy_(std::move(policy)) {}

absl::StatusOr<Placement> ActorPlacement::Place(const ResourceSet& demand, const rpc::SchedulingStrategy& strategy) {
  const std::vector<rpc::NodeInfo> nodes = nodes_.GetAll(/*alive_only=*/false);  // head first, then oldest
  absl::flat_hash_map<NodeId, std::string> raylets;
  const rpc::NodeInfo* fallback = nullptr;  // where an infeasible request waits
  // What the GCS placed that the nodes' reports do not show yet.
  absl::flat_hash_map<NodeId, ResourceSet> placed = granted_since_report_;
  for (const auto& [request_id, sent] : outstanding_) {
    if (sent.now) placed[sent.node].Add(sent.demand);
  }
  ClusterResourceView view = NodeTableView(nodes, placed);
  for (const rpc::NodeInfo& info : nodes) {
    auto id = NodeId::FromHex(info.node_id());
    if (!id.ok() || view.Find(*id) == nullptr) continue;
    raylets[*id] = RayletAddress(info);
    if (fallback == nullptr && info.state() == rpc::NodeInfo::ALIVE) fallback = &info;
  }

  auto decision = policy_->Schedule(view, NodeId::Nil(), SchedulingRequest{demand, strategy});
  if (!decision.ok()) return decision.status();
  Placement out;
  out.reason = decision->reason;
  switch (decision->kind) {
    case SchedulingDecision::Kind::kSpillback:
      if (auto it = raylets.find(decision->node); it != raylets.end()) {
        out.kind = Placement::Kind::kAsk;
        out.node = decision->node;
        out.raylet = it->second;
        out.grant_or_reject = decision->available_now;
        return out;
      }
      out.reason = absl::StrCat("the policy chose node ", decision->node.Hex(), ", which the node table does not list");
      return out;  // kRetry
    case SchedulingDecision::Kind::kInfeasible:
      if (fallback == nullptr) {
        out.reason = "no node is alive";
        return out;  // kRetry
      }
      out.kind = Placement::Kind::kAsk;
      out.node = *NodeId::FromHex(fallback->node_id());
      out.raylet = RayletAddress(*fallback);
      out.grant_or_reject = false;
      return out;
    case SchedulingDecision::Kind::kUnschedulable:
      out.kind = Placement::Kind::kUnschedulable;
      return out;
    case SchedulingDecision::Kind::kRunLocal:
    case SchedulingDecision::Kind::kQueue:
      break;
  }
  out.reason = absl::StrCat("the policy answered ", decision->ToString(), " for the GCS, which is no node");
  return out;  // kRetry
}

void ActorPlacement::RequestSent(uint64_t request_id, const Placement& placement, const ResourceSet& demand) {
  outstanding_[request_id] = Sent{.node = placement.node, .demand = demand, .now = placement.grant_or_reject};
}

void ActorPlacement::RequestEnded(uint64_t request_id, bool granted) {
  auto it = outstanding_.find(request_id);
  if (it == outstanding_.end()) return;
  if (granted) granted_since_report_[it->second.node].Add(it->second.demand);
  outstanding_.erase(it);
}

void ActorPlacement::NodeReported(const NodeId& node) { granted_since_report_.erase(node); }

}  // namespace shoal
