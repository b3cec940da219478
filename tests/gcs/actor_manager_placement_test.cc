// The actor manager places actors with the scheduler library's policy (actor_manager.h).
#include "src/gcs/actor_manager.h"
#include "src/common/error_info.h"

#include <catch2/catch.hpp>

#include <map>
#include <memory>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "absl/strings/match.h"
#include "absl/synchronization/notification.h"
#include "src/common/fake_clock.h"
#include "src/gcs/fake_actor_transport.h"
#include "src/scheduler/fake_scheduling_policy.h"
#include "src/scheduler/hybrid_policy.h"
#include "tests/test_util/printers.h"
#include "tests/test_util/resource_helpers.h"
#include "tests/test_util/status_matchers.h"
#include "tests/test_util/store_backends.h"
#include "tests/gcs/actor_test_util.h"

namespace shoal {
namespace {

using namespace actor_test;  // the helpers these tests share (actor_test_util.h)

// ------------------------------------------------------------------ placement (the scheduler's policy)

// The raylet the next lease request went to, and whether the GCS expects a grant there now.
std::pair<std::string, bool> NextAsk(Gcs& gcs) {
  auto call = gcs.net.TakeLease();
  REQUIRE(call.has_value());
  return {call->raylet, call->request.grant_or_reject()};
}

TEST_CASE("the GCS places actors with the hybrid policy, counting what it placed until nodes report",
          "[actor_manager][placement]") {
  Gcs gcs;
  gcs.AddNode(1, {{"CPU", 2}}, /*is_head=*/true);
  gcs.AddNode(2, {{"CPU", 2}});
  ActorOptions one_cpu;
  one_cpu.resources = {{"CPU", 1}};
  // A burst of four: no node reports in between, yet they fill both nodes, two each, each asked
  // to grant now (a node at half its CPUs is no longer idle, so the other one is chosen).
  std::vector<std::string> asked;
  for (int i = 0; i < 4; ++i) {
    REQUIRE_OK(gcs.actors->RegisterActor(MakeActor(one_cpu)));
    auto [raylet, now] = NextAsk(gcs);
    CHECK(now);
    asked.push_back(raylet);
  }
  CHECK(asked == std::vector<std::string>{RayletOf(1), RayletOf(2), RayletOf(1), RayletOf(2)});
  // A fifth has no room anywhere now: it is sent to wait, and that raylet decides.
  REQUIRE_OK(gcs.actors->RegisterActor(MakeActor(one_cpu)));
  auto [raylet, now] = NextAsk(gcs);
  CHECK(raylet == RayletOf(1));
  CHECK_FALSE(now);

  // Demand that fits a node's total but not the sum of its reports and placements waits; an
  // empty one (an actor holding nothing) keeps off GPU nodes like CPU work.
  Gcs gpu;
  gpu.AddNode(1, {{"CPU", 2}, {"GPU", 1}}, true);
  gpu.AddNode(2, {{"CPU", 2}});
  REQUIRE_OK(gpu.actors->RegisterActor(MakeActor(ActorOptions{.resources = {}})));
  CHECK(NextAsk(gpu) == std::make_pair(RayletOf(2), true));
  REQUIRE_OK(gpu.actors->RegisterActor(MakeActor(ActorOptions{.resources = {{"GPU", 1}}})));
  CHECK(NextAsk(gpu) == std::make_pair(RayletOf(1), true));
}

TEST_CASE("a grant counts at its node until that node reports again", "[actor_manager][placement]") {
  Gcs gcs;
  const NodeId a = gcs.AddNode(1, {{"CPU", 1}}, true);
  gcs.AddNode(2, {{"CPU", 1}});
  ActorOptions one_cpu;
  one_cpu.resources = {{"CPU", 1}};
  auto first = MakeActor(one_cpu);
  REQUIRE_OK(gcs.actors->RegisterActor(first));
  GrantNext(gcs);  // on node 1, whose last report still shows its CPU free
  PushOk(gcs);
  REQUIRE_OK(gcs.actors->RegisterActor(MakeActor(one_cpu)));
  CHECK(NextAsk(gcs) == std::make_pair(RayletOf(2), true));
  // Node 1 reports its CPU free again (the first actor died there, say): it takes the next.
  REQUIRE(gcs.nodes.ReportResources(a, Map({{"CPU", 1}}), {}));
  gcs.actors->OnResourcesReported(a);
  REQUIRE_OK(gcs.actors->RegisterActor(MakeActor(one_cpu)));
  CHECK(NextAsk(gcs) == std::make_pair(RayletOf(1), true));
}

TEST_CASE("SPREAD actors land on different nodes", "[actor_manager][placement]") {
  Gcs gcs;
  gcs.AddNode(1, {{"CPU", 4}}, true);
  gcs.AddNode(2, {{"CPU", 4}});
  gcs.AddNode(3, {{"CPU", 4}});
  ActorOptions spread;
  spread.strategy = SpreadStrategy();
  std::set<std::string> raylets;
  for (int i = 0; i < 3; ++i) {
    auto req = MakeActor(spread);
    REQUIRE_OK(gcs.actors->RegisterActor(req));
    auto call = gcs.net.TakeLease();
    REQUIRE(call.has_value());
    CHECK(call->request.grant_or_reject());  // the raylet must not spread it again
    CHECK(call->request.strategy().kind() == rpc::SchedulingStrategy::SPREAD);
    raylets.insert(call->raylet);
  }
  CHECK(raylets == std::set<std::string>{RayletOf(1), RayletOf(2), RayletOf(3)});
}

TEST_CASE("node affinity: hard and soft, alive, dead, unknown and too small", "[actor_manager][placement]") {
  Gcs gcs;
  gcs.AddNode(1, {{"CPU", 4}}, true);
  const NodeId b = gcs.AddNode(2, {{"CPU", 4}});
  const NodeId c = gcs.AddNode(3, {{"CPU", 4}});
  REQUIRE_OK(gcs.nodes.MarkDead(c, "health check failed"));
  auto with = [](const NodeId& node, bool soft, std::map<std::string, double> resources = {{"CPU", 1}}) {
    ActorOptions o;
    o.strategy = NodeAffinityStrategy(node, soft);
    o.resources = std::move(resources);
    return MakeActor(o);
  };

  // To an alive node: asked there, hard or soft, even though node 1 would do as well.
  for (bool soft : {false, true}) {
    REQUIRE_OK(gcs.actors->RegisterActor(with(b, soft)));
    auto call = gcs.net.TakeLease();
    REQUIRE(call.has_value());
    CHECK(call->raylet == RayletOf(2));
    CHECK(call->request.grant_or_reject());
    CHECK(call->request.strategy().node_id() == b.Hex());
  }

  // Soft, to a dead node: placed as by default.
  REQUIRE_OK(gcs.actors->RegisterActor(with(c, true)));
  CHECK(gcs.net.TakeLease()->raylet == RayletOf(1));

  // Hard, to a dead node or to one too small: never; the actor is DEAD, typed unschedulable.
  for (const auto& req : {with(c, false), with(b, false, {{"CPU", 8}})}) {
    REQUIRE_OK(gcs.actors->RegisterActor(req));
    CHECK(gcs.net.NumLeaseCalls() == 0);
    rpc::ActorInfo info = Info(gcs, IdOf(req));
    CHECK(info.state() == rpc::ActorInfo::DEAD);
    CHECK(info.death_type() == rpc::ACTOR_UNSCHEDULABLE);
    CHECK_THAT(info.death_cause(), Catch::StartsWith("the actor cannot be scheduled: node "));
  }

  // Hard, to a node not known yet: it waits at the head's raylet, which sends it on once the
  // node joins.
  const NodeId later = test_util::Id(9);
  auto waits = with(later, false);
  REQUIRE_OK(gcs.actors->RegisterActor(waits));
  CHECK(NextAsk(gcs) == std::make_pair(RayletOf(1), false));
  CHECK(Info(gcs, IdOf(waits)).state() == rpc::ActorInfo::PENDING);
}

TEST_CASE("an actor pinned to a node that dies is unschedulable, not restarted elsewhere",
          "[actor_manager][placement]") {
  Gcs gcs;
  gcs.AddNode(1, {{"CPU", 4}}, true);
  const NodeId b = gcs.AddNode(2, {{"CPU", 4}});
  ActorOptions o;
  o.max_restarts = -1;
  o.strategy = NodeAffinityStrategy(b, /*soft=*/false);
  auto req = MakeActor(o);
  REQUIRE_OK(gcs.actors->RegisterActor(req));
  GrantNext(gcs, "10.0.0.2:9000");
  PushOk(gcs);
  REQUIRE_OK(gcs.nodes.MarkDead(b, "health check failed"));
  gcs.actors->OnNodeDead(b);
  rpc::ActorInfo info = Info(gcs, IdOf(req));
  CHECK(info.state() == rpc::ActorInfo::DEAD);
  CHECK(info.death_type() == rpc::ACTOR_UNSCHEDULABLE);
  CHECK(info.num_restarts() == 1);
  CHECK(gcs.net.NumLeaseCalls() == 0);
}

TEST_CASE("an actor no node can hold yet waits at the head as infeasible demand", "[actor_manager][placement]") {
  Gcs gcs;
  gcs.AddNode(2, {{"CPU", 8}, {"GPU", 1}});
  gcs.AddNode(1, {{"CPU", 2}}, /*is_head=*/true);
  ActorOptions huge;
  huge.resources = {{"GPU", 4}};
  auto req = MakeActor(huge);
  REQUIRE_OK(gcs.actors->RegisterActor(req));
  CHECK(NextAsk(gcs) == std::make_pair(RayletOf(1), false));
  CHECK(Info(gcs, IdOf(req)).state() == rpc::ActorInfo::PENDING);
}

TEST_CASE("the actor manager uses the policy it is given", "[actor_manager][placement]") {
  auto owned = std::make_unique<FakeSchedulingPolicy>();
  FakeSchedulingPolicy* policy = owned.get();
  Gcs gcs(nullptr, std::move(owned));
  gcs.AddNode(1, {{"CPU", 4}}, true);
  gcs.AddNode(2, {{"CPU", 4}});
  // The hybrid policy would take node 1; this one sends everything to node 2, to wait there.
  policy->set_decide([](const ClusterResourceView&, const NodeId&, const SchedulingRequest&) {
    return SchedulingDecision::Spillback(test_util::Id(2), /*available_now=*/false, "fake");
  });
  ActorOptions spread;
  spread.strategy = SpreadStrategy();
  spread.resources = {{"CPU", 2}};
  REQUIRE_OK(gcs.actors->RegisterActor(MakeActor(spread)));
  CHECK(NextAsk(gcs) == std::make_pair(RayletOf(2), false));
  REQUIRE(policy->calls().size() == 1);
  CHECK(policy->calls()[0].local.IsNil());  // the GCS is no node
  CHECK(policy->calls()[0].request.demand == RS({{"CPU", 2}}));
  CHECK(policy->calls()[0].request.strategy.kind() == rpc::SchedulingStrategy::SPREAD);
  CHECK(policy->calls()[0].view_size == 2);

  policy->set_decide([](const ClusterResourceView&, const NodeId&, const SchedulingRequest&) {
    return SchedulingDecision::Unschedulable("the fake says never");
  });
  auto never = MakeActor();
  REQUIRE_OK(gcs.actors->RegisterActor(never));
  rpc::ActorInfo info = Info(gcs, IdOf(never));
  CHECK(info.state() == rpc::ActorInfo::DEAD);
  CHECK(info.death_type() == rpc::ACTOR_UNSCHEDULABLE);
  CHECK(info.death_cause() == "the actor cannot be scheduled: the fake says never");

  // Infeasible everywhere, by the policy: the head's raylet keeps it waiting.
  policy->set_decide([](const ClusterResourceView&, const NodeId&, const SchedulingRequest&) {
    return SchedulingDecision::Infeasible("fake");
  });
  REQUIRE_OK(gcs.actors->RegisterActor(MakeActor()));
  CHECK(NextAsk(gcs) == std::make_pair(RayletOf(1), false));
}

TEST_CASE("registration refuses a strategy or demand the scheduler cannot read", "[actor_manager][placement]") {
  Gcs gcs;
  gcs.AddNode(1, {{"CPU", 4}}, true);
  ActorOptions o;
  o.strategy.set_kind(rpc::SchedulingStrategy::NODE_AFFINITY);  // no node
  CHECK_CODE(gcs.actors->RegisterActor(MakeActor(o)), kInvalidArgument);
  o.strategy.set_kind(static_cast<rpc::SchedulingStrategy::Kind>(42));
  CHECK_CODE(gcs.actors->RegisterActor(MakeActor(o)), kInvalidArgument);
  ActorOptions odd;
  odd.resources = {{"GPU", 1.5}};
  CHECK_CODE(gcs.actors->RegisterActor(MakeActor(odd)), kInvalidArgument);
  CHECK(gcs.net.NumLeaseCalls() == 0);
  rpc::ListActorsRequest list;
  CHECK(gcs.actors->ListActors(list)->total() == 0);
}

}  // namespace
}  // namespace shoal
