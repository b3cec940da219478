#include "src/raylet/lease_manager.h"

#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "shoal/common.pb.h"
#include "src/common/fake_clock.h"
#include "src/raylet/fake_process_spawner.h"
#include "src/scheduler/fake_scheduling_policy.h"
#include "src/scheduler/hybrid_policy.h"
#include "tests/raylet/lease_test_fixture.h"
#include "tests/test_util/printers.h"
#include "tests/test_util/resource_helpers.h"
#include "tests/test_util/status_matchers.h"
#include "tests/test_util/temp_dir.h"

namespace shoal {
namespace {

using test_util::RS;
using test_util::Id;

using Reply = rpc::RequestWorkerLeaseReply;

using namespace raylet_test;  // NOLINT: the fixture's names

TEST_CASE("Fractional GPU leases pack best-fit: two halves share device 0, the third opens device 1",
          "[lease_manager]") {
  LeaseTest t;
  Reply a = t.Grant({{"GPU", 0.5}});
  Reply b = t.Grant({{"GPU", 0.5}});
  Reply c = t.Grant({{"GPU", 0.5}});
  CHECK(Devices(a) == std::vector<int>{0});
  CHECK(Devices(b) == std::vector<int>{0});
  CHECK(Devices(c) == std::vector<int>{1});
  CHECK(Shares(c) == std::vector<int64_t>{5000});
  CHECK(ResourceSet::FromProto(c.granted()) == RS({{"GPU", 0.5}}));
  CHECK_FALSE(c.lease_id().empty());
  CHECK(c.worker_address().rfind("10.0.0.1:", 0) == 0);
  CHECK(t.leases.Available() == RS({{"CPU", 4}, {"GPU", 0.5}}));
  CHECK(t.spawner.spawned().size() == 3);
}

TEST_CASE("Whole GPU leases take whole free devices", "[lease_manager]") {
  LeaseTest t;
  Reply half = t.Grant({{"GPU", 0.5}});
  Reply one = t.Grant({{"GPU", 1}});
  CHECK(Devices(half) == std::vector<int>{0});
  CHECK(Devices(one) == std::vector<int>{1});  // device 0 is not whole
  CHECK(Shares(one) == std::vector<int64_t>{10000});
  uint64_t waiting = t.Request({{"GPU", 1}});  // 0.5 free, but no whole device
  t.RegisterAll();
  CHECK_FALSE(t.Answered(waiting));

  REQUIRE_OK(t.leases.ReturnWorker(half.lease_id(), false));
  REQUIRE_OK(t.leases.ReturnWorker(one.lease_id(), false));
  CHECK(Devices(t.ReplyOf(waiting)) == std::vector<int>{0});
  REQUIRE_OK(t.leases.ReturnWorker(t.ReplyOf(waiting).lease_id(), false));
  Reply two = t.Grant({{"GPU", 2}, {"CPU", 1}});
  CHECK(Devices(two) == std::vector<int>{0, 1});
  CHECK(Shares(two) == std::vector<int64_t>{10000, 10000});
}

TEST_CASE("An empty resource map asks for nothing (an actor holding no resources)", "[lease_manager]") {
  LeaseTest t;
  Reply r = t.Grant({});
  CHECK(ResourceSet::FromProto(r.granted()).IsEmpty());
  CHECK(r.gpus().device_ids().empty());
  CHECK(t.leases.Available() == RS({{"CPU", 4}, {"GPU", 2}}));
}

TEST_CASE("A request the local node cannot hold spills back to a node that fits", "[lease_manager]") {
  LeaseTest t(Options{.resources = {{"CPU", 1}}});
  t.leases.UpdateClusterView({Node(1, {{"CPU", 99}}), Node(2, {{"CPU", 8}}), Node(3, {{"CPU", 2}})});
  uint64_t id = t.Request({{"CPU", 4}});
  const Reply& r = t.ReplyOf(id);
  CHECK(r.kind() == Reply::SPILLBACK);
  CHECK(r.spillback_raylet_address() == "10.0.0.2:7002");
  CHECK(r.spillback_node_id() == Id(2).Hex());
  CHECK(t.spawner.spawned().empty());
  CHECK(t.leases.Available() == t.Total());
  // The node's own entry in the GCS table is ignored: its resources are known here.
  CHECK(t.leases.view().Find(Id(1))->total == RS({{"CPU", 1}}));
}

TEST_CASE("A burst of spilled requests spreads over the nodes that have room", "[lease_manager]") {
  // This node has no GPU; two others have one each. Three halves: two share one node's device,
  // the third goes to the other node, even before either reports its new availability.
  LeaseTest t(Options{.resources = {{"CPU", 4}}});
  t.leases.UpdateClusterView({Node(2, {{"CPU", 4}, {"GPU", 1}}), Node(3, {{"CPU", 4}, {"GPU", 1}})});
  std::map<std::string, int> per_node;
  for (int i = 0; i < 3; ++i) {
    const Reply& r = t.ReplyOf(t.Request({{"GPU", 0.5}}));
    REQUIRE(r.kind() == Reply::SPILLBACK);
    ++per_node[r.spillback_node_id()];
  }
  CHECK(per_node.size() == 2);
  CHECK(per_node[Id(2).Hex()] + per_node[Id(3).Hex()] == 3);
  // A fourth fits nowhere now, and this node could never hold it: it is sent to wait on a node
  // that could.
  const Reply& fourth = t.ReplyOf(t.Request({{"GPU", 0.5}}));
  CHECK(fourth.kind() == Reply::SPILLBACK);
  // The next report is the truth again.
  t.leases.UpdateClusterView({Node(2, {{"CPU", 4}, {"GPU", 1}}), Node(3, {{"CPU", 4}, {"GPU", 1}})});
  CHECK(t.leases.view().Find(Id(2))->available == RS({{"CPU", 4}, {"GPU", 1}}));
}

TEST_CASE("A request spilled here is granted or queued, never spilled again", "[lease_manager]") {
  LeaseTest t(Options{.resources = {{"CPU", 2}}});
  t.leases.UpdateClusterView({Node(2, {{"CPU", 8}})});
  Reply first = t.Grant({{"CPU", 2}});
  uint64_t id = t.Request({{"CPU", 2}}, kJob.Hex(), kCommand, /*grant_or_reject=*/true);
  t.RegisterAll();
  CHECK_FALSE(t.Answered(id));
  REQUIRE_OK(t.leases.ReturnWorker(first.lease_id(), false));
  CHECK(t.ReplyOf(id).kind() == Reply::GRANTED);
}

TEST_CASE("A request that does not fit now waits and is granted when a lease returns", "[lease_manager]") {
  LeaseTest t;
  Reply first = t.Grant({{"CPU", 4}});
  uint64_t waiting = t.Request({{"CPU", 2}});
  t.RegisterAll();
  CHECK_FALSE(t.Answered(waiting));
  auto demands = t.leases.Demands();
  REQUIRE(demands.size() == 1);
  CHECK(demands[0] == DemandSummary{.shape = RS({{"CPU", 2}}), .count = 1, .infeasible = false});
  CHECK(t.leases.stats().queued == 1);

  REQUIRE_OK(t.leases.ReturnWorker(first.lease_id(), false));
  const Reply& r = t.ReplyOf(waiting);
  CHECK(r.kind() == Reply::GRANTED);
  CHECK(r.worker_id() == first.worker_id());  // the returned worker, reused
  CHECK(t.spawner.spawned().size() == 1);
  CHECK(t.leases.Demands().empty());
  CHECK(t.leases.Available() == RS({{"CPU", 2}, {"GPU", 2}}));
}

TEST_CASE("An infeasible request waits as infeasible demand until a node that fits joins",
          "[lease_manager]") {
  LeaseTest t(Options{.resources = {{"CPU", 4}, {"GPU", 1}}});
  t.leases.UpdateClusterView({Node(2, {{"CPU", 4}, {"GPU", 1}})});
  uint64_t id = t.Request({{"GPU", 2}});
  uint64_t other = t.Request({{"GPU", 2}});
  t.leases.Tick();
  CHECK_FALSE(t.Answered(id));
  auto demands = t.leases.Demands();
  REQUIRE(demands.size() == 1);
  CHECK(demands[0] == DemandSummary{.shape = RS({{"GPU", 2}}), .count = 2, .infeasible = true});

  t.leases.UpdateClusterView({Node(2, {{"CPU", 4}, {"GPU", 1}}), Node(3, {{"CPU", 4}, {"GPU", 2}})});
  for (uint64_t r : {id, other}) {
    CHECK(t.ReplyOf(r).kind() == Reply::SPILLBACK);
    CHECK(t.ReplyOf(r).spillback_node_id() == Id(3).Hex());
    CHECK(t.ReplyOf(r).spillback_raylet_address() == "10.0.0.3:7003");
  }
  CHECK(t.leases.Demands().empty());
  CHECK(t.spawner.spawned().empty());
}

TEST_CASE("Invalid requests are rejected with a reason, and take nothing", "[lease_manager]") {
  LeaseTest t;
  auto rejected = [&](uint64_t id) {
    const Reply& r = t.ReplyOf(id);
    CHECK(r.kind() == Reply::REJECTED);
    return r.message();
  };
  CHECK_THAT(rejected(t.Request({{"CPU", -1}})), Catch::Contains("must not be negative"));
  CHECK_THAT(rejected(t.Request({{"GPU", 1.5}})), Catch::Contains("whole"));
  CHECK_THAT(rejected(t.Request({{"CPU", 1e14}})), Catch::Contains("more than any node"));
  CHECK_THAT(rejected(t.Request({{"my resource", 1}})), Catch::Contains("space"));
  CHECK_THAT(rejected(t.Request({{"CPU", 1}}, "")), Catch::Contains("job_id"));
  CHECK_THAT(rejected(t.Request({{"CPU", 1}}, "zz")), Catch::Contains("job_id"));
  CHECK_THAT(rejected(t.Request({{"CPU", 1}}, kJob.Hex(), {})), Catch::Contains("worker_command"));
  rpc::RequestWorkerLeaseRequest req;
  req.set_job_id(kJob.Hex());
  req.add_worker_command("/bin/worker");
  req.mutable_strategy()->set_kind(rpc::SchedulingStrategy::NODE_AFFINITY);
  req.mutable_strategy()->set_node_id("nope");
  CHECK_THAT(rejected(t.Send(req)), Catch::Contains("node affinity"));
  req.mutable_strategy()->set_kind(static_cast<rpc::SchedulingStrategy::Kind>(42));
  CHECK_THAT(rejected(t.Send(req)), Catch::Contains("strategy"));

  CHECK(t.spawner.spawned().empty());
  CHECK(t.leases.Available() == t.Total());
  CHECK(t.leases.Demands().empty());
}

TEST_CASE("Node affinity: granted here, spilled to the named node, rejected once that node is dead",
          "[lease_manager]") {
  LeaseTest t;
  t.leases.UpdateClusterView({Node(2, {{"CPU", 4}}), Node(3, {{"CPU", 4}})});
  auto affinity = [&](int node, bool soft) {
    rpc::RequestWorkerLeaseRequest req;
    req.set_job_id(kJob.Hex());
    req.add_worker_command("/bin/worker");
    (*req.mutable_resources()->mutable_amounts())["CPU"] = FixedPoint::kScale;
    req.mutable_strategy()->set_kind(rpc::SchedulingStrategy::NODE_AFFINITY);
    req.mutable_strategy()->set_node_id(Id(node).Hex());
    req.mutable_strategy()->set_soft(soft);
    return t.Send(req);
  };
  uint64_t here = affinity(1, false);
  t.RegisterAll();
  CHECK(t.ReplyOf(here).kind() == Reply::GRANTED);
  uint64_t there = affinity(2, false);
  CHECK(t.ReplyOf(there).kind() == Reply::SPILLBACK);
  CHECK(t.ReplyOf(there).spillback_node_id() == Id(2).Hex());

  t.leases.UpdateClusterView({Node(2, {{"CPU", 4}}, {}, /*alive=*/false), Node(3, {{"CPU", 4}})});
  uint64_t dead = affinity(2, false);
  CHECK(t.ReplyOf(dead).kind() == Reply::REJECTED);
  CHECK_THAT(t.ReplyOf(dead).message(), Catch::Contains("dead"));
  // A soft one falls back to the default strategy, which keeps CPU work off this GPU node.
  uint64_t soft = affinity(2, true);
  CHECK(t.ReplyOf(soft).kind() == Reply::SPILLBACK);
  CHECK(t.ReplyOf(soft).spillback_node_id() == Id(3).Hex());
  uint64_t unknown = affinity(9, false);  // may still be joining: waits
  t.leases.Tick();
  CHECK_FALSE(t.Answered(unknown));
}

// ------------------------------------------------------------------ the injected policy

// A lease manager whose policy is a fake the test scripts; `policy` stays valid while `t` lives.
struct FakePolicyTest {
  FakePolicyTest() : FakePolicyTest(std::make_unique<FakeSchedulingPolicy>()) {}
  explicit FakePolicyTest(std::unique_ptr<FakeSchedulingPolicy> fake)
      : policy(fake.get()), t(Options{.resources = {{"CPU", 4}}}, std::move(fake)) {}
  FakeSchedulingPolicy* policy;
  LeaseTest t;
};

TEST_CASE("The lease manager places each request where its injected policy says", "[lease_manager][policy]") {
  FakePolicyTest f;
  f.t.leases.UpdateClusterView({Node(2, {{"CPU", 4}}), Node(3, {{"CPU", 4}})});
  // The hybrid policy would run this here (the local node is idle); the fake sends it to node 3.
  f.policy->set_decide([](const ClusterResourceView&, const NodeId&, const SchedulingRequest&) {
    return SchedulingDecision::Spillback(Id(3), /*available_now=*/true);
  });
  rpc::RequestWorkerLeaseRequest req;
  req.set_job_id(kJob.Hex());
  req.add_worker_command("/bin/worker");
  (*req.mutable_resources()->mutable_amounts())["CPU"] = FixedPoint::kScale;
  *req.mutable_strategy() = SpreadStrategy();
  const Reply& r = f.t.ReplyOf(f.t.Send(req));
  CHECK(r.kind() == Reply::SPILLBACK);
  CHECK(r.spillback_node_id() == Id(3).Hex());
  CHECK(r.spillback_raylet_address() == "10.0.0.3:7003");
  CHECK(f.t.spawner.spawned().empty());
  // The policy saw the request as sent, from this node, over the whole view.
  REQUIRE(f.policy->calls().size() == 1);
  const FakeSchedulingPolicy::Call& call = f.policy->calls()[0];
  CHECK(call.local == Id(1));
  CHECK(call.request.demand == RS({{"CPU", 1}}));
  CHECK(call.request.strategy.kind() == rpc::SchedulingStrategy::SPREAD);
  CHECK(call.view_size == 3);

  // Told to run it here, the manager grants it here.
  f.policy->set_decide([](const ClusterResourceView&, const NodeId& local, const SchedulingRequest&) {
    return SchedulingDecision::RunLocal(local);
  });
  f.t.Grant({{"CPU", 1}});
  CHECK(f.t.leases.Available() == RS({{"CPU", 3}}));
  CHECK(f.policy->calls().size() == 2);
}

TEST_CASE("The injected policy's queue, unschedulable and error answers", "[lease_manager][policy]") {
  FakePolicyTest f;
  f.policy->set_decide([](const ClusterResourceView&, const NodeId& local, const SchedulingRequest&) {
    return SchedulingDecision::Queue(local, "the fake says wait");
  });
  uint64_t waiting = f.t.Request({{"CPU", 1}});
  f.t.RegisterAll();
  f.t.leases.Tick();
  CHECK_FALSE(f.t.Answered(waiting));
  CHECK(f.t.spawner.spawned().empty());
  CHECK(f.t.leases.stats().queued == 1);
  // A second, equal request waits too; each pass asks the policy about the pair once.
  uint64_t twin = f.t.Request({{"CPU", 1}});
  const size_t before = f.policy->calls().size();
  f.t.leases.Tick();
  CHECK(f.policy->calls().size() == before + 1);
  CHECK(f.t.leases.stats().queued == 2);

  // Once the policy lets them run, the next pass grants both.
  f.policy->set_decide([](const ClusterResourceView&, const NodeId& local, const SchedulingRequest&) {
    return SchedulingDecision::RunLocal(local);
  });
  f.t.leases.Tick();
  f.t.RegisterAll();
  CHECK(f.t.ReplyOf(waiting).kind() == Reply::GRANTED);
  CHECK(f.t.ReplyOf(twin).kind() == Reply::GRANTED);

  f.policy->set_decide([](const ClusterResourceView&, const NodeId&, const SchedulingRequest&) {
    return SchedulingDecision::Unschedulable("the fake says never");
  });
  uint64_t never = f.t.Request({{"CPU", 1}});
  CHECK(f.t.ReplyOf(never).kind() == Reply::REJECTED);
  CHECK(f.t.ReplyOf(never).message() == "the fake says never");

  f.policy->set_decide([](const ClusterResourceView&, const NodeId&,
                          const SchedulingRequest&) -> absl::StatusOr<SchedulingDecision> {
    return absl::InvalidArgumentError("the fake refuses");
  });
  uint64_t refused = f.t.Request({{"CPU", 1}});
  CHECK(f.t.ReplyOf(refused).kind() == Reply::REJECTED);
  CHECK(f.t.ReplyOf(refused).message() == "the fake refuses");
  CHECK(f.t.leases.Available() == RS({{"CPU", 2}}));  // only the two granted leases hold anything
}

TEST_CASE("A request spilled here is not put to the policy again", "[lease_manager][policy]") {
  FakePolicyTest f;
  uint64_t id = f.t.Request({{"CPU", 1}}, kJob.Hex(), kCommand, /*grant_or_reject=*/true);
  f.t.RegisterAll();
  CHECK(f.t.ReplyOf(id).kind() == Reply::GRANTED);
  CHECK(f.policy->calls().empty());
}


TEST_CASE("A worker's death ends its lease and frees exactly its resources", "[lease_manager]") {
  LeaseTest t;
  Reply keep = t.Grant({{"CPU", 1}, {"GPU", 0.5}});
  Reply dies = t.Grant({{"CPU", 2}, {"GPU", 0.5}});
  CHECK(Devices(dies) == std::vector<int>{0});
  t.spawner.Exit(t.PidOfWorker(dies.worker_id()), 1);
  t.leases.Tick();
  CHECK(t.leases.Available() == RS({{"CPU", 3}, {"GPU", 1.5}}));
  CHECK(t.leases.stats().leases == 1);
  CHECK_CODE(t.leases.ReturnWorker(dies.lease_id(), false), kNotFound);  // already ended
  REQUIRE(t.deaths.size() == 1);  // reported (to the GCS, by the raylet)
  CHECK(t.deaths[0].worker == dies.worker_id());
  CHECK(t.deaths[0].reason.find("exited with code 1") != std::string::npos);
  CHECK_FALSE(t.deaths[0].owner_gone);
  REQUIRE_OK(t.leases.ReturnWorker(keep.lease_id(), false));
  CHECK(t.deaths.size() == 1);  // a plain return is no death
  CHECK(t.leases.Available() == t.Total());
  CHECK(t.leases.resources().Instances("GPU")->free() ==
        std::vector<FixedPoint>{FixedPoint::FromInt(1), FixedPoint::FromInt(1)});
}

TEST_CASE("A worker returned as failed is killed, not reused", "[lease_manager]") {
  LeaseTest t;
  Reply r = t.Grant({{"CPU", 1}});
  int64_t pid = t.PidOfWorker(r.worker_id());
  REQUIRE_OK(t.leases.ReturnWorker(r.lease_id(), /*worker_failed=*/true));
  CHECK(t.spawner.process(pid).killed);
  t.leases.Tick();
  CHECK(t.deaths.empty());  // the owner asked for it: not reported
  CHECK(t.leases.Available() == t.Total());
  Reply next = t.Grant({{"CPU", 1}});
  CHECK(next.worker_id() != r.worker_id());
  CHECK_CODE(t.leases.ReturnWorker("not hex", false), kInvalidArgument);
}

TEST_CASE("A node with scheduling disabled never grants leases itself", "[lease_manager]") {
  LeaseTest t(Options{.resources = {{"CPU", 8}}, .scheduling_disabled = true});
  uint64_t plain = t.Request({{"CPU", 1}});
  uint64_t spilled_here = t.Request({{"CPU", 1}}, kJob.Hex(), kCommand, /*grant_or_reject=*/true);
  t.leases.Tick();
  CHECK_FALSE(t.Answered(plain));
  CHECK_FALSE(t.Answered(spilled_here));
  auto demands = t.leases.Demands();
  REQUIRE(demands.size() == 1);
  CHECK(demands[0].infeasible);  // no schedulable node at all
  CHECK(demands[0].count == 2);

  t.leases.UpdateClusterView({Node(2, {{"CPU", 2}})});
  CHECK(t.ReplyOf(plain).kind() == Reply::SPILLBACK);
  CHECK(t.ReplyOf(spilled_here).kind() == Reply::SPILLBACK);
  CHECK(t.ReplyOf(plain).spillback_node_id() == Id(2).Hex());
  CHECK(t.spawner.spawned().empty());
  CHECK(t.leases.Available() == t.Total());
}

TEST_CASE("A cancelled request is forgotten, one waiting for its worker gives its resources back",
          "[lease_manager]") {
  LeaseTest t;
  uint64_t infeasible = t.Request({{"CPU", 16}});
  CHECK(t.leases.Demands().size() == 1);
  CHECK(t.leases.CancelRequest(infeasible));
  CHECK_FALSE(t.leases.CancelRequest(infeasible));
  CHECK(t.leases.Demands().empty());

  uint64_t starting = t.Request({{"CPU", 4}});
  CHECK(t.leases.Available() == RS({{"GPU", 2}}));  // held while its worker starts
  CHECK(t.leases.stats().waiting_worker == 1);
  CHECK(t.leases.CancelRequest(starting));
  CHECK(t.leases.Available() == t.Total());
  t.RegisterAll();  // the worker arrives anyway and just idles
  t.leases.Tick();
  CHECK(t.replies.empty());
  CHECK(t.leases.stats().leases == 0);
  CHECK_FALSE(t.leases.CancelRequest(12345));

  // The idle worker serves the next request of its job.
  Reply r = t.Grant({{"CPU", 1}});
  CHECK(t.spawner.spawned().size() == 1);
  CHECK(r.worker_id() == t.spawner.spawned()[0]->Env("SHOAL_WORKER_ID"));
}

TEST_CASE("Workers serve only their own job and command", "[lease_manager]") {
  LeaseTest t;
  Reply a = t.Grant({{"CPU", 1}});
  REQUIRE_OK(t.leases.ReturnWorker(a.lease_id(), false));
  uint64_t other_job = t.Request({{"CPU", 1}}, JobId::FromInt(8).Hex());
  uint64_t other_command = t.Request({{"CPU", 1}}, kJob.Hex(), {"/bin/worker", "--python"});
  t.RegisterAll();
  CHECK(t.ReplyOf(other_job).worker_id() != a.worker_id());
  CHECK(t.ReplyOf(other_command).worker_id() != a.worker_id());
  CHECK(t.spawner.spawned().size() == 3);
  CHECK(t.spawner.spawned()[1]->Env("SHOAL_JOB_ID") == JobId::FromInt(8).Hex());
  CHECK(t.spawner.spawned()[2]->spec.argv == std::vector<std::string>{"/bin/worker", "--python"});
}

TEST_CASE("A worker command that cannot start gets its requests rejected, and frees what they held",
          "[lease_manager]") {
  SECTION("the executable does not exist") {
    LeaseTest t;
    t.spawner.FailNextSpawn(absl::NotFoundError("cannot find executable 'nope' in PATH"));
    uint64_t id = t.Request({{"CPU", 1}}, kJob.Hex(), {"nope"});
    CHECK(t.ReplyOf(id).kind() == Reply::REJECTED);
    CHECK_THAT(t.ReplyOf(id).message(), Catch::Contains("cannot find executable"));
    CHECK(t.leases.Available() == t.Total());
  }
  SECTION("the worker never registers") {
    LeaseTest t;  // start timeout 30s, 3 failed starts
    uint64_t id = t.Request({{"CPU", 1}});
    uint64_t queued_same = t.Request({{"CPU", 4}});  // same job and command, no room yet
    for (int i = 0; i < 2; ++i) {
      t.clock.Advance(absl::Seconds(30));
      t.leases.Tick();
      CHECK_FALSE(t.Answered(id));
    }
    CHECK(t.spawner.spawned().size() == 3);  // each timed-out start is replaced
    CHECK(t.spawner.NumRunning() == 1);
    t.clock.Advance(absl::Seconds(30));
    t.leases.Tick();
    CHECK(t.ReplyOf(id).kind() == Reply::REJECTED);
    CHECK_THAT(t.ReplyOf(id).message(), Catch::Contains("failed to start 3 times"));
    CHECK(t.ReplyOf(queued_same).kind() == Reply::REJECTED);
    CHECK(t.leases.Available() == t.Total());
    CHECK(t.spawner.NumRunning() == 0);
    CHECK(t.leases.stats().queued + t.leases.stats().waiting_worker == 0);
  }
  SECTION("a worker that exits before registering, then one that works") {
    LeaseTest t;
    uint64_t id = t.Request({{"CPU", 1}});
    t.spawner.Exit(t.spawner.spawned()[0]->pid, 1);
    t.leases.Tick();
    CHECK_FALSE(t.Answered(id));
    REQUIRE(t.spawner.spawned().size() == 2);
    t.RegisterAll();
    CHECK(t.ReplyOf(id).kind() == Reply::GRANTED);
  }
}

TEST_CASE("When a local worker that owns leases dies, its leases end and their workers are killed",
          "[lease_manager]") {
  LeaseTest t;
  Reply owner = t.Grant({{"CPU", 1}});
  uint64_t id = t.Request({{"CPU", 2}}, kJob.Hex(), kCommand, false, owner.worker_address());
  t.RegisterAll();
  const Reply child = t.ReplyOf(id);
  REQUIRE(child.kind() == Reply::GRANTED);
  t.spawner.Exit(t.PidOfWorker(owner.worker_id()), 137);
  t.leases.Tick();
  CHECK(t.spawner.process(t.PidOfWorker(child.worker_id())).killed);
  CHECK(t.leases.Available() == t.Total());
  CHECK(t.leases.stats().leases == 0);
  CHECK(t.leases.LeaseOwners().empty());
}

TEST_CASE("An owner that shuts down loses its leases and its waiting requests, not others'",
          "[lease_manager]") {
  LeaseTest t;  // 4 CPUs
  const std::string owner = "10.0.0.9:4000", other = "10.0.0.8:4000";
  uint64_t held = t.Request({{"CPU", 3}}, kJob.Hex(), kCommand, false, owner);
  uint64_t others = t.Request({{"CPU", 1}}, kJob.Hex(), kCommand, false, other);
  t.RegisterAll();
  REQUIRE(t.ReplyOf(held).kind() == Reply::GRANTED);
  REQUIRE(t.ReplyOf(others).kind() == Reply::GRANTED);
  // Waits for room; once the owner's own lease ends it must not be granted to that owner.
  uint64_t waiting = t.Request({{"CPU", 2}}, kJob.Hex(), kCommand, false, owner);
  t.RegisterAll();
  REQUIRE_FALSE(t.Answered(waiting));

  CHECK(t.leases.ReleaseLeasesOfOwner(owner, "shut down") == 1);
  REQUIRE(t.deaths.size() == 1);
  CHECK(t.deaths[0].worker == t.ReplyOf(held).worker_id());
  CHECK(t.deaths[0].owner_gone);
  CHECK(t.deaths[0].reason == "killed: the owner of its lease, 10.0.0.9:4000, shut down");
  REQUIRE(t.Answered(waiting));
  CHECK(absl::IsUnavailable(t.replies.at(waiting).status()));
  CHECK(t.spawner.process(t.PidOfWorker(t.ReplyOf(held).worker_id())).killed);
  CHECK(t.leases.stats().leases == 1);  // the other owner's lease stays
  CHECK(t.leases.stats().queued == 0);
  CHECK(t.leases.Available() == RS({{"CPU", 3}, {"GPU", 2}}));
}

TEST_CASE("A blocked worker lends its lease's CPUs and frees exactly what it holds at the end",
          "[lease_manager]") {
  LeaseTest t;  // 4 CPUs
  Reply parent = t.Grant({{"CPU", 4}});
  uint64_t child = t.Request({{"CPU", 2}});
  t.RegisterAll();
  REQUIRE_FALSE(t.Answered(child));

  REQUIRE_OK(t.leases.SetWorkerBlocked(parent.worker_id(), true));
  t.RegisterAll();
  REQUIRE(t.ReplyOf(child).kind() == Reply::GRANTED);  // runs on the lent CPUs
  CHECK(t.leases.Available() == RS({{"CPU", 2}, {"GPU", 2}}));
  // Unblocked while the child still runs: only 2 CPUs are free, so the parent runs over.
  REQUIRE_OK(t.leases.SetWorkerBlocked(parent.worker_id(), false));
  CHECK(t.leases.Available() == RS({{"CPU", 2}, {"GPU", 2}}));
  REQUIRE_OK(t.leases.ReturnWorker(t.ReplyOf(child).lease_id(), false));
  REQUIRE_OK(t.leases.ReturnWorker(parent.lease_id(), false));
  CHECK(t.leases.Available() == t.Total());

  // Blocked and unblocked with room: the CPUs go and come back.
  Reply again = t.Grant({{"CPU", 1}});
  REQUIRE_OK(t.leases.SetWorkerBlocked(again.worker_id(), true));
  CHECK(t.leases.Available() == t.Total());
  REQUIRE_OK(t.leases.SetWorkerBlocked(again.worker_id(), false));
  CHECK(t.leases.Available() == RS({{"CPU", 3}, {"GPU", 2}}));
  REQUIRE_OK(t.leases.ReturnWorker(again.lease_id(), false));
  CHECK(t.leases.Available() == t.Total());
  CHECK(absl::IsNotFound(t.leases.SetWorkerBlocked(again.worker_id(), true)));
  CHECK(absl::IsInvalidArgument(t.leases.SetWorkerBlocked("zz", true)));
}

TEST_CASE("Shutdown answers every waiting request and refuses new ones", "[lease_manager]") {
  LeaseTest t;
  uint64_t starting = t.Request({{"CPU", 4}});
  uint64_t queued = t.Request({{"CPU", 4}});
  t.leases.Shutdown(absl::UnavailableError("stopping"));
  CHECK_CODE(t.replies.at(starting), kUnavailable);
  CHECK_CODE(t.replies.at(queued), kUnavailable);
  CHECK(t.leases.Available() == t.Total());
  uint64_t late = t.Request({{"CPU", 1}});
  CHECK_CODE(t.replies.at(late), kUnavailable);
}

TEST_CASE("Many grant, return, fail and death cycles leak nothing", "[lease_manager]") {
  LeaseTest t(Options{.resources = {{"CPU", 8}, {"GPU", 4}, {"memory", 1000}}});
  t.leases.UpdateClusterView({Node(2, {{"CPU", 1}})});
  std::mt19937 rng(42);
  const std::vector<std::map<std::string, double>> shapes = {
      {{"CPU", 1}}, {{"CPU", 2}, {"GPU", 0.5}}, {{"GPU", 0.25}}, {{"GPU", 1}}, {{"GPU", 2}},
      {{"CPU", 0.5}, {"memory", 100}}, {{"GPU", 0.75}}, {}, {{"CPU", 8}}};
  std::vector<Reply> held;
  std::vector<uint64_t> waiting;
  int granted = 0;
  for (int round = 0; round < 2000; ++round) {
    switch (rng() % 5) {
      case 0:
      case 1:
        waiting.push_back(t.Request(shapes[rng() % shapes.size()]));
        break;
      case 2:
        t.RegisterAll();
        break;
      case 3:
        if (!held.empty()) {
          size_t i = rng() % held.size();
          const Reply r = held[i];
          held.erase(held.begin() + i);
          switch (rng() % 3) {
            case 0: CHECK_OK(t.leases.ReturnWorker(r.lease_id(), false)); break;
            case 1: CHECK_OK(t.leases.ReturnWorker(r.lease_id(), true)); break;
            case 2: t.spawner.Exit(t.PidOfWorker(r.worker_id()), 1); break;
          }
        }
        break;
      case 4:
        if (!waiting.empty() && rng() % 4 == 0) {
          size_t i = rng() % waiting.size();
          if (t.leases.CancelRequest(waiting[i])) waiting.erase(waiting.begin() + i);
        }
        t.clock.Advance(absl::Seconds(1));
        t.leases.Tick();
        break;
    }
    // Collect what was answered.
    for (auto it = waiting.begin(); it != waiting.end();) {
      auto found = t.replies.find(*it);
      if (found == t.replies.end()) {
        ++it;
        continue;
      }
      REQUIRE_OK(found->second);
      const Reply& r = *found->second;
      REQUIRE(r.kind() != Reply::REJECTED);
      if (r.kind() == Reply::GRANTED) {
        held.push_back(r);
        ++granted;
      }
      it = waiting.erase(it);
    }
  }
  CHECK(granted > 200);
  for (uint64_t id : waiting) CHECK(t.leases.CancelRequest(id));
  t.leases.Tick();  // reaps the last deaths
  for (const Reply& r : held) (void)t.leases.ReturnWorker(r.lease_id(), false);
  CHECK(t.leases.stats().leases == 0);
  t.leases.Shutdown(absl::UnavailableError("done"));
  CHECK(t.leases.Available() == t.Total());
  CHECK(t.leases.stats().leases == 0);
  const auto* gpus = t.leases.resources().Instances("GPU");
  for (FixedPoint f : gpus->free()) CHECK(f == FixedPoint::FromInt(1));
}

// ------------------------------------------------------------------ label selectors

rpc::RequestWorkerLeaseRequest SelectorRequest(const std::map<std::string, double>& resources,
                                               const std::map<std::string, std::string>& selector) {
  rpc::RequestWorkerLeaseRequest req;
  RS(resources).ToProto(req.mutable_resources());
  req.set_job_id(kJob.Hex());
  for (const auto& c : kCommand) req.add_worker_command(c);
  req.mutable_strategy()->mutable_label_selector()->insert(selector.begin(), selector.end());
  return req;
}

rpc::NodeInfo Labelled(rpc::NodeInfo info, const std::map<std::string, std::string>& labels) {
  info.mutable_labels()->insert(labels.begin(), labels.end());
  return info;
}

TEST_CASE("Label selectors: matching nodes only, infeasible demand until one joins",
          "[lease_manager][labels]") {
  LeaseTest t(Options{.resources = {{"CPU", 4}}, .labels = {{"zone", "a"}}});
  t.leases.UpdateClusterView({Labelled(Node(2, {{"CPU", 4}}), {{"zone", "b"}})});
  const Reply& to_b = t.ReplyOf(t.Send(SelectorRequest({{"CPU", 1}}, {{"zone", "b"}})));
  CHECK(to_b.kind() == Reply::SPILLBACK);
  CHECK(to_b.spillback_node_id() == Id(2).Hex());
  uint64_t here = t.Send(SelectorRequest({{"CPU", 1}}, {{"zone", "!b"}}));
  t.RegisterAll();
  CHECK(t.ReplyOf(here).kind() == Reply::GRANTED);

  // Spilled here with a selector this node fails: not granted here blindly.
  rpc::RequestWorkerLeaseRequest spilled = SelectorRequest({{"CPU", 1}}, {{"zone", "b"}});
  spilled.set_grant_or_reject(true);
  const Reply& bounced = t.ReplyOf(t.Send(spilled));
  CHECK(bounced.kind() == Reply::SPILLBACK);

  // Nobody has zone c: it waits as infeasible demand, apart from the plain shape.
  uint64_t c1 = t.Send(SelectorRequest({{"CPU", 1}}, {{"zone", "c"}}));
  uint64_t c2 = t.Send(SelectorRequest({{"CPU", 1}}, {{"zone", "c"}}));
  t.leases.Tick();
  CHECK_FALSE(t.Answered(c1));
  auto demands = t.leases.Demands();
  REQUIRE(demands.size() == 1);
  CHECK(demands[0] == DemandSummary{.shape = RS({{"CPU", 1}}), .count = 2, .infeasible = true,
                                    .label_selector = {{"zone", "c"}}});

  t.leases.UpdateClusterView({Labelled(Node(2, {{"CPU", 4}}), {{"zone", "b"}}),
                              Labelled(Node(3, {{"CPU", 4}}), {{"zone", "c"}})});
  for (uint64_t id : {c1, c2}) {
    CHECK(t.ReplyOf(id).kind() == Reply::SPILLBACK);
    CHECK(t.ReplyOf(id).spillback_node_id() == Id(3).Hex());
  }
  CHECK(t.leases.Demands().empty());

  // A malformed selector is rejected, naming the key.
  const Reply& bad = t.ReplyOf(t.Send(SelectorRequest({{"CPU", 1}}, {{"zone", "in()"}})));
  CHECK(bad.kind() == Reply::REJECTED);
  CHECK_THAT(bad.message(), Catch::Contains("`zone`"));
}

TEST_CASE("A waiting request with a selector does not hold back an equal shape without one",
          "[lease_manager][labels]") {
  LeaseTest t(Options{.resources = {{"CPU", 1}}});
  Reply first = t.Grant({{"CPU", 1}});
  uint64_t nowhere = t.Send(SelectorRequest({{"CPU", 1}}, {{"zone", "x"}}));
  uint64_t plain = t.Request({{"CPU", 1}});
  t.RegisterAll();
  CHECK_FALSE(t.Answered(plain));
  REQUIRE_OK(t.leases.ReturnWorker(first.lease_id(), false));
  t.RegisterAll();
  CHECK(t.ReplyOf(plain).kind() == Reply::GRANTED);
  CHECK_FALSE(t.Answered(nowhere));
}

// ------------------------------------------------------------------ GPU shares of other nodes

TEST_CASE("Other nodes' per-device GPU shares decide where a GPU request spills",
          "[lease_manager][gpu]") {
  LeaseTest t(Options{.resources = {{"CPU", 4}}});
  // Node 2: two devices with 0.5 free each (1 GPU in sum, no whole device). Node 3: one whole
  // device free but busier, so judged by sums alone node 2 would win.
  rpc::NodeInfo two = Node(2, {{"CPU", 4}, {"GPU", 2}}, {{{"CPU", 4}, {"GPU", 1}}});
  two.add_gpu_free(5000);
  two.add_gpu_free(5000);
  rpc::NodeInfo three = Node(3, {{"CPU", 4}, {"GPU", 1}}, {{{"CPU", 1}, {"GPU", 1}}});
  three.add_gpu_free(10000);
  t.leases.UpdateClusterView({two, three});
  REQUIRE(t.leases.view().Find(Id(2))->gpu_free.size() == 2);
  const Reply& whole = t.ReplyOf(t.Request({{"GPU", 1}}));
  CHECK(whole.kind() == Reply::SPILLBACK);
  CHECK(whole.spillback_node_id() == Id(3).Hex());

  SECTION("shares that disagree with the sums are ignored") {
    rpc::NodeInfo stale = Node(2, {{"CPU", 4}, {"GPU", 2}}, {{{"CPU", 4}, {"GPU", 1}}});
    stale.add_gpu_free(10000);
    stale.add_gpu_free(10000);  // sums to 2, available says 1
    rpc::NodeInfo short_list = Node(3, {{"CPU", 4}, {"GPU", 1}});
    short_list.add_gpu_free(10000);
    short_list.add_gpu_free(0);  // two shares for one device
    t.leases.UpdateClusterView({stale, short_list});
    CHECK(t.leases.view().Find(Id(2))->gpu_free.empty());
    CHECK(t.leases.view().Find(Id(3))->gpu_free.empty());
  }
}

TEST_CASE("A burst of fractional GPU spillbacks takes shares per device", "[lease_manager][gpu]") {
  LeaseTest t(Options{.resources = {{"CPU", 4}}});
  rpc::NodeInfo two = Node(2, {{"CPU", 8}, {"GPU", 2}}, {{{"CPU", 8}, {"GPU", 1}}});
  two.add_gpu_free(5000);
  two.add_gpu_free(5000);
  rpc::NodeInfo three = Node(3, {{"CPU", 8}, {"GPU", 1}});
  three.add_gpu_free(10000);
  t.leases.UpdateClusterView({two, three});
  std::map<std::string, int> per_node;
  for (int i = 0; i < 4; ++i) {
    const Reply& r = t.ReplyOf(t.Request({{"GPU", 0.5}}));
    REQUIRE(r.kind() == Reply::SPILLBACK);
    ++per_node[r.spillback_node_id()];
  }
  // Each node has two halves free, on whatever devices: two each, never three on one.
  CHECK(per_node[Id(2).Hex()] == 2);
  CHECK(per_node[Id(3).Hex()] == 2);
  CHECK(t.leases.view().Find(Id(2))->gpu_free == std::vector<FixedPoint>{FixedPoint(), FixedPoint()});
  CHECK(t.leases.view().Find(Id(3))->gpu_free == std::vector<FixedPoint>{FixedPoint()});
  // Judged by per-device shares, a whole GPU fits nowhere now.
  CHECK_FALSE(t.leases.view().Find(Id(3))->IsAvailable(RS({{"GPU", 1}})));
}

rpc::RequestWorkerLeaseRequest EnvRequest(const std::string& var_value) {
  rpc::RequestWorkerLeaseRequest req;
  (*req.mutable_resources()->mutable_amounts())["CPU"] = FixedPoint::kScale;
  req.set_job_id(kJob.Hex());
  req.add_worker_command("/usr/bin/python3");
  req.add_worker_command("-m");
  req.add_worker_command("shoal.worker");
  (*req.mutable_runtime_env()->mutable_env_vars())["MY_VAR"] = var_value;
  return req;
}

TEST_CASE("a worker in a runtime env starts once the env is set up, inside it") {
  LeaseTest t;
  const rpc::RequestWorkerLeaseRequest req = EnvRequest("1");
  const uint64_t id = t.Send(req);
  CHECK(t.envs.prepares >= 1);
  CHECK(t.spawner.spawned().empty());  // being set up
  CHECK_FALSE(t.Answered(id));
  RuntimeEnvContext context;
  context.env = {{"MY_VAR", "1"}, {"SHOAL_WORKER_ID", "not-this-one"}};
  context.cwd = "/pkgs/wd";
  context.interpreter = "/usr/bin/python3";
  context.python = "/envs/abc/bin/python";
  t.envs.answers[RuntimeEnvKey(req.runtime_env())] = context;
  t.leases.Reschedule();
  REQUIRE(t.spawner.spawned().size() == 1);
  const auto* p = t.spawner.spawned()[0];
  CHECK(p->spec.argv == std::vector<std::string>{"/envs/abc/bin/python", "-m", "shoal.worker"});
  CHECK(p->spec.cwd == "/pkgs/wd");
  CHECK(p->Env("MY_VAR") == "1");
  CHECK(p->Env("SHOAL_WORKER_ID") != "not-this-one");  // the pool's own variables win
  t.RegisterAll();
  const Reply& granted = t.ReplyOf(id);
  REQUIRE(granted.kind() == Reply::GRANTED);

  // The same env reuses the worker once it is idle; another env gets a worker of its own.
  REQUIRE_OK(t.leases.ReturnWorker(granted.lease_id(), false));
  const uint64_t same = t.Send(req);
  REQUIRE(t.ReplyOf(same).kind() == Reply::GRANTED);
  CHECK(t.ReplyOf(same).worker_id() == granted.worker_id());
  const rpc::RequestWorkerLeaseRequest other_req = EnvRequest("2");
  t.envs.answers[RuntimeEnvKey(other_req.runtime_env())] = RuntimeEnvContext{};
  const uint64_t other = t.Send(other_req);
  CHECK(t.spawner.spawned().size() == 2);
  t.RegisterAll();
  CHECK(t.ReplyOf(other).worker_id() != granted.worker_id());
}

TEST_CASE("a runtime env that cannot be set up rejects its requests with RUNTIME_ENV_SETUP_FAILED") {
  LeaseTest t(Options{.resources = {{"CPU", 2}}});
  const rpc::RequestWorkerLeaseRequest req = EnvRequest("1");
  const uint64_t a = t.Send(req);
  const uint64_t b = t.Send(req);
  t.envs.answers[RuntimeEnvKey(req.runtime_env())] = absl::FailedPreconditionError("pip install failed: no such package");
  t.leases.Reschedule();
  for (uint64_t id : {a, b}) {
    const Reply& r = t.ReplyOf(id);
    CHECK(r.kind() == Reply::REJECTED);
    CHECK(r.failure().type() == rpc::RUNTIME_ENV_SETUP_FAILED);
    CHECK(r.failure().message().find("no such package") != std::string::npos);
  }
  CHECK(t.spawner.spawned().empty());
  CHECK(t.leases.Available() == t.Total());  // what the requests held is back
  // A plain request still runs.
  CHECK(t.Grant({{"CPU", 1}}).kind() == Reply::GRANTED);
}

TEST_CASE("a raylet without a runtime env provider refuses requests that name an env, invalid envs are refused") {
  LeaseTest t(Options{.runtime_envs = false});
  const uint64_t id = t.Send(EnvRequest("1"));
  CHECK(t.ReplyOf(id).kind() == Reply::REJECTED);
  CHECK(t.ReplyOf(id).message().find("cannot set up runtime environments") != std::string::npos);
  LeaseTest u;
  rpc::RequestWorkerLeaseRequest bad = EnvRequest("1");
  bad.mutable_runtime_env()->set_working_dir("s3://bucket/x.zip");
  const uint64_t refused = u.Send(bad);
  CHECK(u.ReplyOf(refused).kind() == Reply::REJECTED);
  CHECK(u.envs.prepares == 0);
}

}  // namespace
}  // namespace shoal

namespace shoal {
namespace {

TEST_CASE("A request naming a program the node does not trust is rejected before anything starts",
          "[lease_manager]") {
  test_util::TempDir dir{"shoal-lease-policy"};
  const std::string program = dir.path + "/worker";
  {
    std::ofstream out(program);
    out << "#!/bin/sh\n";
  }
  std::filesystem::permissions(program, std::filesystem::perms::owner_all);
  WorkerCommandPolicyOptions policy_options;
  policy_options.program_dirs = {dir.path};
  const WorkerCommandPolicy policy(policy_options);
  Options o;
  o.worker_commands = &policy;
  LeaseTest t(o);

  const uint64_t attack = t.Request({{"CPU", 1}}, kJob.Hex(), {"/bin/sh", "-c", "touch /tmp/pwned"});
  REQUIRE(t.ReplyOf(attack).kind() == Reply::REJECTED);
  CHECK_THAT(t.ReplyOf(attack).message(), Catch::Contains("/bin/sh"));
  CHECK_THAT(t.ReplyOf(attack).message(), Catch::Contains("is not one this node may start"));

  // A trusted program, but a runtime env whose interpreter (run to build a virtualenv) is not.
  rpc::RequestWorkerLeaseRequest req;
  (*req.mutable_resources()->mutable_amounts())["CPU"] = FixedPoint::kScale;
  req.set_job_id(kJob.Hex());
  req.add_worker_command(program);
  req.mutable_runtime_env()->set_interpreter("/bin/sh");
  req.mutable_runtime_env()->add_pip_packages("requests");
  const uint64_t env_attack = t.Send(req);
  REQUIRE(t.ReplyOf(env_attack).kind() == Reply::REJECTED);
  CHECK_THAT(t.ReplyOf(env_attack).message(), Catch::Contains("is not an interpreter this node trusts"));
  CHECK(t.spawner.spawned().empty());
  CHECK(t.envs.prepares == 0);

  const uint64_t fine = t.Request({{"CPU", 1}}, kJob.Hex(), {program});
  CHECK_FALSE(t.Answered(fine));  // waits for its worker, which is being started
  CHECK(t.spawner.spawned().size() == 1);
}

}  // namespace
}  // namespace shoal
