#include "src/gcs/actor_placement.h"

#include <catch2/catch.hpp>

#include <map>
#include <memory>
#include <optional>
#include <string>

#include "src/common/fake_clock.h"
#include "src/scheduler/fake_scheduling_policy.h"
#include "src/scheduler/hybrid_policy.h"
#include "tests/test_util/resource_helpers.h"
#include "tests/test_util/status_matchers.h"

namespace shoal {
namespace {

using test_util::Id;
using test_util::RS;

// A node table over a memory store, and a placement with the hybrid policy (or a fake).
struct Table {
  InMemoryStoreClient store;
  FakeClock clock;
  NodeChangeFeed feed;
  NodeTable nodes{store, clock, feed};

  NodeId Add(int n, const std::map<std::string, double>& total, bool is_head = false,
             std::optional<std::map<std::string, double>> available = std::nullopt) {
    rpc::NodeInfo node;
    node.set_node_id(Id(n).Hex());
    node.set_address("10.0.0." + std::to_string(n));
    node.set_raylet_port(7000);
    node.set_is_head(is_head);
    RS(total).ToProto(node.mutable_resources_total());
    REQUIRE_OK(nodes.Register(node));
    if (available) {
      rpc::ResourceMap map;
      RS(*available).ToProto(&map);
      REQUIRE(nodes.ReportResources(Id(n), map, {}));
    }
    return Id(n);
  }
};

std::string RayletOf(int n) { return "10.0.0." + std::to_string(n) + ":7000"; }

Placement Place(ActorPlacement& p, const std::map<std::string, double>& demand,
                const rpc::SchedulingStrategy& strategy = DefaultStrategy()) {
  auto placed = p.Place(RS(demand), strategy);
  REQUIRE_OK(placed);
  return *placed;
}

TEST_CASE("placement asks the chosen node's raylet, expecting a grant when it has room now", "[actor_placement]") {
  Table t;
  t.Add(1, {{"CPU", 1}}, /*is_head=*/true);
  t.Add(2, {{"CPU", 4}});
  ActorPlacement placement(t.nodes, std::make_unique<HybridSchedulingPolicy>());
  Placement p = Place(placement, {{"CPU", 1}});
  CHECK(p.kind == Placement::Kind::kAsk);
  CHECK(p.node == Id(1));
  CHECK(p.raylet == RayletOf(1));
  CHECK(p.grant_or_reject);
  // Requests sent with a grant expected count at their node while they are out...
  placement.RequestSent(1, p, RS({{"CPU", 1}}));
  Placement second = Place(placement, {{"CPU", 1}});
  CHECK(second.node == Id(2));
  // ...and so do grants, until the node reports.
  placement.RequestEnded(1, /*granted=*/true);
  CHECK(Place(placement, {{"CPU", 1}}).node == Id(2));
  placement.NodeReported(Id(1));
  CHECK(Place(placement, {{"CPU", 1}}).node == Id(1));
  // A request that ended without a grant (refused, spilled, cancelled) counts no more.
  placement.RequestSent(2, p, RS({{"CPU", 1}}));
  placement.RequestEnded(2, /*granted=*/false);
  placement.NodeReported(Id(1));
  CHECK(Place(placement, {{"CPU", 1}}).node == Id(1));
  placement.RequestEnded(99, true);  // unknown: ignored
  placement.NodeReported(Id(1));
  CHECK(Place(placement, {{"CPU", 1}}).node == Id(1));
}

TEST_CASE("a request sent to wait takes nothing from its node's room", "[actor_placement]") {
  Table t;
  t.Add(1, {{"CPU", 2}}, true, std::map<std::string, double>{{"CPU", 1}});
  t.Add(2, {{"CPU", 2}});
  ActorPlacement placement(t.nodes, std::make_unique<HybridSchedulingPolicy>());
  const rpc::SchedulingStrategy on_1 = NodeAffinityStrategy(Id(1), false);
  Placement busy = Place(placement, {{"CPU", 2}}, on_1);  // fits node 1 once it is idle
  CHECK(busy.kind == Placement::Kind::kAsk);
  CHECK(busy.node == Id(1));
  CHECK_FALSE(busy.grant_or_reject);
  placement.RequestSent(1, busy, RS({{"CPU", 2}}));
  Placement big = Place(placement, {{"CPU", 4}});  // fits no node: waits at the head
  CHECK(big.kind == Placement::Kind::kAsk);
  CHECK(big.node == Id(1));
  CHECK_FALSE(big.grant_or_reject);
  placement.RequestSent(2, big, RS({{"CPU", 4}}));
  // Node 1's free CPU is still free.
  Placement small = Place(placement, {{"CPU", 1}}, on_1);
  CHECK(small.node == Id(1));
  CHECK(small.grant_or_reject);
}

TEST_CASE("placement retries with no node alive and fails what can never be placed", "[actor_placement]") {
  Table t;
  ActorPlacement placement(t.nodes, std::make_unique<HybridSchedulingPolicy>());
  CHECK(Place(placement, {{"CPU", 1}}).kind == Placement::Kind::kRetry);
  const NodeId head = t.Add(1, {{"CPU", 1}}, true);
  REQUIRE_OK(t.nodes.MarkDead(head, "gone"));
  CHECK(Place(placement, {{"CPU", 1}}).kind == Placement::Kind::kRetry);
  Placement dead = Place(placement, {{"CPU", 1}}, NodeAffinityStrategy(head, false));
  CHECK(dead.kind == Placement::Kind::kUnschedulable);
  CHECK_THAT(dead.reason, Catch::Contains("is dead"));
  CHECK_CODE(placement.Place(RS({{"GPU", 1.5}}), DefaultStrategy()), kInvalidArgument);
}

TEST_CASE("placement answers what its policy decides, as seen from no node", "[actor_placement]") {
  Table t;
  t.Add(1, {{"CPU", 1}}, true);
  t.Add(2, {{"CPU", 1}});
  auto owned = std::make_unique<FakeSchedulingPolicy>();
  FakeSchedulingPolicy* policy = owned.get();
  ActorPlacement placement(t.nodes, std::move(owned));
  policy->set_decide([](const ClusterResourceView&, const NodeId&, const SchedulingRequest&) {
    return SchedulingDecision::Spillback(Id(2), /*available_now=*/true);
  });
  Placement p = Place(placement, {{"CPU", 1}}, SpreadStrategy());
  CHECK(p.node == Id(2));
  CHECK(p.grant_or_reject);
  REQUIRE(policy->calls().size() == 1);
  CHECK(policy->calls()[0].local.IsNil());
  CHECK(policy->calls()[0].request.strategy.kind() == rpc::SchedulingStrategy::SPREAD);
  // A node the table does not list, or a decision meant for a node (run here, queue here):
  // nothing to ask; try again later.
  policy->set_decide([](const ClusterResourceView&, const NodeId&, const SchedulingRequest&) {
    return SchedulingDecision::Spillback(Id(7), true);
  });
  CHECK(Place(placement, {{"CPU", 1}}).kind == Placement::Kind::kRetry);
  policy->set_decide([](const ClusterResourceView&, const NodeId& local, const SchedulingRequest&) {
    return SchedulingDecision::RunLocal(local);
  });
  CHECK(Place(placement, {{"CPU", 1}}).kind == Placement::Kind::kRetry);
}

}  // namespace
}  // namespace shoal
