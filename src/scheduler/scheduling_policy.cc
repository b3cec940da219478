#include "src/scheduler/scheduling_policy.h"

#include <utility>

#include "absl/strings/str_cat.h"

namespace shoal {
namespace {

std::string ShortId(const NodeId& id) { return id.Hex().substr(0, 8); }

}  // namespace

// --- strategies ---

rpc::SchedulingStrategy DefaultStrategy() { return rpc::SchedulingStrategy(); }

rpc::SchedulingStrategy SpreadStrategy() {
  rpc::SchedulingStrategy s;
  s.set_kind(rpc::SchedulingStrategy::SPREAD);
  return s;
}

rpc::SchedulingStrategy NodeAffinityStrategy(const NodeId& node, bool soft) {
  rpc::SchedulingStrategy s;
  s.set_kind(rpc::SchedulingStrategy::NODE_AFFINITY);
  s.set_node_id(node.Hex());
  s.set_soft(soft);
  return s;
}

absl::Status ValidateStrategy(const rpc::SchedulingStrategy& strategy) {
  if (!strategy.label_selector().empty()) {
    if (auto selector = LabelSelector::Parse(strategy.label_selector()); !selector.ok()) {
      return selector.status();
    }
  }
  switch (strategy.kind()) {
    case rpc::SchedulingStrategy::DEFAULT:
    case rpc::SchedulingStrategy::SPREAD:
      return absl::OkStatus();
    case rpc::SchedulingStrategy::NODE_AFFINITY: {
      if (strategy.node_id().empty()) return absl::InvalidArgumentError("node affinity needs a node id");
      absl::StatusOr<NodeId> node = NodeId::FromHex(strategy.node_id());
      if (!node.ok()) return absl::InvalidArgumentError(absl::StrCat("node affinity: ", node.status().message()));
      if (node->IsNil()) return absl::InvalidArgumentError("node affinity must name a node, got the nil id");
      return absl::OkStatus();
    }
    case rpc::SchedulingStrategy::PLACEMENT_GROUP:
      return absl::InvalidArgumentError(
          "a placement group strategy reaches the scheduler as bundle resources, never as itself");
    default:
      return absl::InvalidArgumentError(absl::StrCat("unknown scheduling strategy ", strategy.kind()));
  }
}

std::string StrategyKey(const rpc::SchedulingStrategy& strategy) {
  if (strategy.label_selector().empty()) return strategy.SerializeAsString();
  rpc::SchedulingStrategy rest = strategy;
  rest.clear_label_selector();
  std::string key = rest.SerializeAsString();
  const Labels sorted(strategy.label_selector().begin(), strategy.label_selector().end());
  for (const auto& [name, condition] : sorted) {
    // Length-prefixed: no separator ambiguity.
    absl::StrAppend(&key, "|", name.size(), ":", name, condition.size(), ":", condition);
  }
  return key;
}

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

SchedulingDecision SchedulingDecision::Unschedulable(std::string reason) {
  return {.kind = Kind::kUnschedulable,
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
    case Kind::kUnschedulable:
      return absl::StrCat("unschedulable: ", reason);
  }
  return "unknown decision";
}

}  // namespace shoal
