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

TEST_CASE("an actor is created on a leased worker and becomes ALIVE", "[actor_manager]") {
  Gcs gcs;
  const NodeId head = gcs.AddNode(1, {{"CPU", 4}}, /*is_head=*/true);
  auto req = MakeActor();
  const ActorId id = IdOf(req);
  auto reply = gcs.actors->RegisterActor(req);
  REQUIRE_OK(reply);
  CHECK(reply->actor_id() == id.Binary());
  CHECK_FALSE(reply->existed());

  rpc::ActorInfo info = Info(gcs, id);
  CHECK(info.state() == rpc::ActorInfo::PENDING);
  CHECK(info.version() == 1);
  CHECK(info.job_id() == JobId::FromInt(1).Hex());
  CHECK(info.owner_address() == kOwner);
  CHECK(info.start_time_ms() == absl::ToUnixMillis(gcs.clock.Now()));
  CHECK(ResourceSet::FromProto(info.resources()) == RS({{"CPU", 1}}));

  auto call = gcs.net.TakeLease();
  REQUIRE(call.has_value());
  CHECK(call->raylet == RayletOf(1));
  CHECK(call->request.owner_address() == kOwner);
  CHECK(call->request.job_id() == JobId::FromInt(1).Hex());
  CHECK(call->request.worker_command(0) == "/bin/worker");
  CHECK(call->request.grant_or_reject());  // placed where it fits now: grant it or keep it there
  CHECK(ResourceSet::FromProto(call->request.resources()) == RS({{"CPU", 1}}));
  const std::string worker = WorkerId::FromRandom().Hex();
  call->done(absl::OkStatus(), Granted("aa", worker, "10.0.0.1:9001"));
  CHECK(gcs.actors->NumLeasesHeld() == 1);

  auto push = gcs.net.TakePush();
  REQUIRE(push.has_value());
  CHECK(push->worker == "10.0.0.1:9001");
  CHECK(push->request.spec().actor_id() == id.Binary());
  CHECK(push->request.spec().actor_creation());
  CHECK(push->request.gpus().device_ids(0) == 0);
  CHECK(Info(gcs, id).state() == rpc::ActorInfo::PENDING);
  push->done(absl::OkStatus(), rpc::PushTaskReply());

  info = Info(gcs, id);
  CHECK(info.state() == rpc::ActorInfo::ALIVE);
  CHECK(info.version() == 2);
  CHECK(info.worker_address() == "10.0.0.1:9001");
  CHECK(info.worker_id() == worker);
  CHECK(info.node_id() == head.Hex());
  CHECK(info.gpus().device_ids_size() == 1);
  CHECK(gcs.net.returns().empty());
}

TEST_CASE("a detached actor's lease is owned by the GCS", "[actor_manager]") {
  Gcs gcs;
  gcs.AddNode(1, {{"CPU", 4}}, true);
  ActorOptions o;
  o.detached = true;
  o.name = "keeper";
  auto req = MakeActor(o);
  REQUIRE_OK(gcs.actors->RegisterActor(req));
  auto call = gcs.net.TakeLease();
  REQUIRE(call.has_value());
  CHECK(call->request.owner_address() == kGcsAddress);
  CHECK(Info(gcs, IdOf(req)).owner_address().empty());
}

TEST_CASE("registration validates the request", "[actor_manager]") {
  Gcs gcs;
  gcs.AddNode(1, {{"CPU", 4}}, true);
  auto req = MakeActor();
  req.mutable_creation_spec()->set_actor_id("short");
  CHECK_CODE(gcs.actors->RegisterActor(req), kInvalidArgument);

  req = MakeActor();
  req.mutable_creation_spec()->set_actor_creation(false);
  CHECK_CODE(gcs.actors->RegisterActor(req), kInvalidArgument);

  req = MakeActor();
  req.mutable_info()->set_actor_id(ActorId::Of(JobId::FromInt(1)).Binary());
  CHECK_CODE(gcs.actors->RegisterActor(req), kInvalidArgument);

  req = MakeActor();
  req.mutable_info()->clear_owner_address();
  req.mutable_creation_spec()->clear_owner_address();
  CHECK_CODE(gcs.actors->RegisterActor(req), kInvalidArgument);
  CHECK(gcs.net.NumLeaseCalls() == 0);

  // A retried registration answers the same actor.
  req = MakeActor();
  REQUIRE_OK(gcs.actors->RegisterActor(req));
  auto again = gcs.actors->RegisterActor(req);
  REQUIRE_OK(again);
  CHECK(again->actor_id() == req.creation_spec().actor_id());
  CHECK(gcs.net.NumLeaseCalls() == 1);

  rpc::GetActorInfoRequest get;
  get.set_actor_id(ActorId::Of(JobId::FromInt(1)).Binary());
  std::optional<absl::Status> status;
  gcs.actors->GetActorInfo(get, [&](absl::StatusOr<rpc::ActorInfo> r) { status = r.status(); });
  REQUIRE(status.has_value());
  CHECK_CODE(*status, kNotFound);
  CHECK_CODE(gcs.actors->KillActor(Kill(ActorId::Of(JobId::FromInt(1)), true)), kNotFound);
}

// ------------------------------------------------------------------ the store, outside the lock

// A memory store that runs `on_write` before each write and can fail the writes to one table.
class TestStore : public StoreClient {
 public:
  absl::StatusOr<bool> Put(const std::string& table, const std::string& key, const std::string& value,
                           bool overwrite) override {
    if (on_write) on_write();
    if (table == fail_table) return absl::UnavailableError("the store is down");
    return inner_.Put(table, key, value, overwrite);
  }
  absl::StatusOr<std::optional<std::string>> Get(const std::string& table, const std::string& key) override {
    return inner_.Get(table, key);
  }
  absl::StatusOr<std::vector<std::pair<std::string, std::string>>> GetAll(const std::string& table) override {
    return inner_.GetAll(table);
  }
  absl::StatusOr<bool> Delete(const std::string& table, const std::string& key) override {
    if (on_write) on_write();
    return inner_.Delete(table, key);
  }
  absl::StatusOr<std::vector<std::string>> Keys(const std::string& table, const std::string& prefix) override {
    return inner_.Keys(table, prefix);
  }
  absl::StatusOr<int64_t> Increment(const std::string& name) override { return inner_.Increment(name); }
  std::string Name() const override { return "test"; }

  std::function<void()> on_write;
  std::string fail_table;

 private:
  InMemoryStoreClient inner_;
};

TEST_CASE("the actor manager writes to the store without holding its lock", "[actor_manager][store]") {
  TestStore store;
  Gcs gcs(&store);
  gcs.AddNode(1, {{"CPU", 4}}, true);
  const NodeId b = gcs.AddNode(2, {{"CPU", 4}});
  // Every write checks, from another thread, that the manager answers meanwhile. Were the write
  // made under the manager's lock, that thread would wait for it and the deadline would pass.
  int probes = 0;
  int blocked = 0;
  std::vector<std::thread> threads;
  store.on_write = [&] {
    ++probes;
    if (blocked > 0) return;
    auto answered = std::make_shared<absl::Notification>();
    threads.emplace_back([&gcs, answered] {
      (void)gcs.actors->NumWaiters();
      answered->Notify();
    });
    if (!answered->WaitForNotificationWithTimeout(absl::Seconds(20))) ++blocked;
  };

  ActorOptions o;
  o.max_restarts = 1;
  o.name = "probe";
  auto req = MakeActor(o);
  REQUIRE_OK(gcs.actors->RegisterActor(req));         // spec and entry
  auto [lease, worker] = GrantNext(gcs);               // lease
  PushOk(gcs);                                         // ALIVE
  REQUIRE_OK(gcs.actors->ReportWorkerDeath(Death(worker, "exited with code 1")));  // RESTARTING
  GrantNext(gcs);
  PushOk(gcs);
  REQUIRE_OK(gcs.nodes.MarkDead(b, "gone"));
  gcs.actors->OnNodeDead(b);
  REQUIRE_OK(gcs.actors->KillActor(Kill(IdOf(req), true)));  // DEAD: entry, spec and lease rows
  auto other = MakeActor();
  REQUIRE_OK(gcs.actors->RegisterActor(other));
  gcs.actors->OnJobFinished(JobId::FromInt(1));
  for (auto& t : threads) t.join();
  CHECK(blocked == 0);
  CHECK(probes >= 12);
  CHECK(Info(gcs, IdOf(req)).state() == rpc::ActorInfo::DEAD);
}

TEST_CASE("a registration whose rows cannot be written is undone", "[actor_manager][store]") {
  TestStore store;
  Gcs gcs(&store);
  gcs.AddNode(1, {{"CPU", 4}}, true);
  ActorOptions named;
  named.name = "svc";
  store.fail_table = "actors";
  auto req = MakeActor(named);
  CHECK_CODE(gcs.actors->RegisterActor(req), kUnavailable);
  CHECK(gcs.net.NumLeaseCalls() == 0);
  rpc::ListActorsRequest list;
  CHECK(gcs.actors->ListActors(list)->total() == 0);
  CHECK_CODE(gcs.actors->GetNamedActor("svc", ""), kNotFound);
  // The store is back: the same registration goes through, name and all.
  store.fail_table.clear();
  REQUIRE_OK(gcs.actors->RegisterActor(req));
  CHECK(gcs.actors->GetNamedActor("svc", "")->actor_id() == req.creation_spec().actor_id());
  CHECK(gcs.net.NumLeaseCalls() == 1);
  auto spec = store.Get("actor_specs", IdOf(req).Hex());
  REQUIRE_OK(spec);
  CHECK(spec->has_value());
}

TEST_CASE("spillback is followed with grant_or_reject", "[actor_manager]") {
  Gcs gcs;
  gcs.AddNode(1, {{"CPU", 4}}, true);
  const NodeId b = gcs.AddNode(2, {{"CPU", 4}});
  auto req = MakeActor();
  REQUIRE_OK(gcs.actors->RegisterActor(req));
  auto call = gcs.net.TakeLease();
  rpc::RequestWorkerLeaseReply spill;
  spill.set_kind(rpc::RequestWorkerLeaseReply::SPILLBACK);
  spill.set_spillback_raylet_address(RayletOf(2));
  spill.set_spillback_node_id(b.Hex());
  call->done(absl::OkStatus(), spill);

  auto second = gcs.net.TakeLease();
  REQUIRE(second.has_value());
  CHECK(second->raylet == RayletOf(2));
  CHECK(second->request.grant_or_reject());
  second->done(absl::OkStatus(), Granted("bb", WorkerId::FromRandom().Hex(), "10.0.0.2:9000"));
  PushOk(gcs);
  rpc::ActorInfo info = Info(gcs, IdOf(req));
  CHECK(info.state() == rpc::ActorInfo::ALIVE);
  CHECK(info.node_id() == b.Hex());
}

TEST_CASE("a rejected lease request makes the actor DEAD with the raylet's message", "[actor_manager]") {
  Gcs gcs;
  gcs.AddNode(1, {{"CPU", 4}}, true);
  ActorOptions o;
  o.max_restarts = -1;
  auto req = MakeActor(o);
  REQUIRE_OK(gcs.actors->RegisterActor(req));
  rpc::RequestWorkerLeaseReply rejected;
  rejected.set_kind(rpc::RequestWorkerLeaseReply::REJECTED);
  rejected.set_message("the worker failed to start 3 times in a row");
  gcs.net.TakeLease()->done(absl::OkStatus(), rejected);
  rpc::ActorInfo info = Info(gcs, IdOf(req));
  CHECK(info.state() == rpc::ActorInfo::DEAD);
  CHECK(info.death_cause() == "the worker failed to start 3 times in a row");
  CHECK(info.end_time_ms() > 0);
}

TEST_CASE("a lease request that fails at the transport is retried after the delay", "[actor_manager]") {
  Gcs gcs;
  gcs.AddNode(1, {{"CPU", 4}}, true);
  auto req = MakeActor();
  REQUIRE_OK(gcs.actors->RegisterActor(req));
  gcs.net.TakeLease()->done(absl::UnavailableError("connection refused"), {});
  gcs.actors->Tick();
  CHECK(gcs.net.NumLeaseCalls() == 0);
  gcs.clock.Advance(absl::Seconds(1));
  gcs.actors->Tick();
  CHECK(gcs.net.NumLeaseCalls() == 1);
  CHECK(Info(gcs, IdOf(req)).state() == rpc::ActorInfo::PENDING);
}

TEST_CASE("with no node alive the actor waits until one registers", "[actor_manager]") {
  Gcs gcs;
  auto req = MakeActor();
  REQUIRE_OK(gcs.actors->RegisterActor(req));
  CHECK(gcs.net.NumLeaseCalls() == 0);
  gcs.AddNode(1, {{"CPU", 4}}, true);
  gcs.clock.Advance(absl::Seconds(1));
  gcs.actors->Tick();
  CHECK(gcs.net.TakeLease()->raylet == RayletOf(1));
}

TEST_CASE("a constructor that raises makes the actor DEAD and returns the lease", "[actor_manager]") {
  Gcs gcs;
  gcs.AddNode(1, {{"CPU", 4}}, true);
  ActorOptions o;
  o.max_restarts = 5;  // not used: a constructor error is not retried
  auto req = MakeActor(o);
  REQUIRE_OK(gcs.actors->RegisterActor(req));
  auto [lease, worker] = GrantNext(gcs);
  auto push = gcs.net.TakePush();
  rpc::PushTaskReply reply;
  reply.set_application_error(true);
  rpc::ObjectValue* error = reply.add_returns();
  *error->mutable_error() = TaskException("ValueError", "bad start value", "", "pickled-exception");
  push->done(absl::OkStatus(), reply);

  rpc::ActorInfo info = Info(gcs, IdOf(req));
  CHECK(info.state() == rpc::ActorInfo::DEAD);
  CHECK(info.creation_error_type() == "ValueError");
  CHECK(info.creation_error_data() == "pickled-exception");
  CHECK(info.death_cause() == "the actor's constructor raised ValueError: bad start value");
  CHECK(info.num_restarts() == 0);
  CHECK(Returned(gcs, lease, /*worker_failed=*/true));
  CHECK(gcs.actors->NumLeasesHeld() == 0);
  CHECK(gcs.net.NumLeaseCalls() == 0);
}

TEST_CASE("a dead worker restarts the actor until its restarts are used up", "[actor_manager]") {
  Gcs gcs;
  gcs.AddNode(1, {{"CPU", 4}}, true);
  ActorOptions o;
  o.max_restarts = 1;
  auto req = MakeActor(o);
  const ActorId id = IdOf(req);
  auto [lease1, worker1] = CreateAlive(gcs, req);

  REQUIRE_OK(gcs.actors->ReportWorkerDeath(Death(worker1, "exited with code 9")));
  rpc::ActorInfo info = Info(gcs, id);
  CHECK(info.state() == rpc::ActorInfo::RESTARTING);
  CHECK(info.num_restarts() == 1);
  CHECK(info.death_cause() == "the actor's worker died: exited with code 9");
  CHECK(info.worker_address().empty());
  CHECK(Returned(gcs, lease1, true));

  auto [lease2, worker2] = GrantNext(gcs, "10.0.0.1:9002");
  PushOk(gcs);
  info = Info(gcs, id);
  CHECK(info.state() == rpc::ActorInfo::ALIVE);
  CHECK(info.worker_id() == worker2);
  CHECK(info.worker_address() == "10.0.0.1:9002");
  CHECK(info.num_restarts() == 1);
  CHECK(info.death_cause().empty());

  // The old worker's death again changes nothing.
  const int64_t version = info.version();
  REQUIRE_OK(gcs.actors->ReportWorkerDeath(Death(worker1, "exited with code 9")));
  CHECK(Info(gcs, id).version() == version);

  REQUIRE_OK(gcs.actors->ReportWorkerDeath(Death(worker2, "killed by signal 9")));
  info = Info(gcs, id);
  CHECK(info.state() == rpc::ActorInfo::DEAD);
  CHECK(info.death_cause() == "the actor's worker died: killed by signal 9");
  CHECK(Returned(gcs, lease2, true));
  CHECK(gcs.net.NumLeaseCalls() == 0);
  CHECK(gcs.actors->NumLeasesHeld() == 0);
}

TEST_CASE("a creation push that breaks goes to the same worker again, and a worker that keeps failing it died",
          "[actor_manager]") {
  Gcs gcs;
  gcs.AddNode(1, {{"CPU", 4}}, true);
  ActorOptions o;
  o.max_restarts = -1;
  // A push on a connection that had just broken (its address's previous worker was killed a
  // moment ago): pushed again to the same worker, which answers; no restart is counted.
  auto first = MakeActor(o);
  REQUIRE_OK(gcs.actors->RegisterActor(first));
  auto [first_lease, first_worker] = GrantNext(gcs);
  auto push = gcs.net.TakePush();
  REQUIRE(push);
  push->done(absl::UnavailableError("Socket closed"), {});
  auto again = gcs.net.TakePush();
  REQUIRE(again);
  CHECK(again->worker == push->worker);
  CHECK(again->request.spec().task_id() == push->request.spec().task_id());
  again->done(absl::OkStatus(), {});
  CHECK(Info(gcs, IdOf(first)).state() == rpc::ActorInfo::ALIVE);
  CHECK(Info(gcs, IdOf(first)).num_restarts() == 0);
  // A worker that fails every push (kCreationPushAttempts of them) counts as dead.
  auto req = MakeActor(o);
  REQUIRE_OK(gcs.actors->RegisterActor(req));
  auto [lease, worker] = GrantNext(gcs);
  for (int i = 0; i < ActorManager::kCreationPushAttempts; ++i) {
    auto attempt = gcs.net.TakePush();
    REQUIRE(attempt);
    CHECK(Info(gcs, IdOf(req)).num_restarts() == 0);
    attempt->done(absl::UnavailableError("connection refused"), {});
  }
  CHECK(gcs.net.NumPushCalls() == 0);
  rpc::ActorInfo info = Info(gcs, IdOf(req));
  CHECK(info.state() == rpc::ActorInfo::RESTARTING);
  CHECK(info.num_restarts() == 1);
  CHECK(absl::StartsWith(info.death_cause(), "the actor's worker died: "));
  CHECK(Returned(gcs, lease, true));
  CHECK(gcs.net.NumLeaseCalls() == 1);
}

TEST_CASE("a node's death restarts its actors elsewhere", "[actor_manager]") {
  Gcs gcs;
  gcs.AddNode(1, {{"CPU", 4}}, true);
  const NodeId b = gcs.AddNode(2, {{"CPU", 4}});
  ActorOptions o;
  o.max_restarts = -1;
  auto req = MakeActor(o);
  REQUIRE_OK(gcs.actors->RegisterActor(req));
  auto call = gcs.net.TakeLease();
  rpc::RequestWorkerLeaseReply spill;
  spill.set_kind(rpc::RequestWorkerLeaseReply::SPILLBACK);
  spill.set_spillback_raylet_address(RayletOf(2));
  spill.set_spillback_node_id(b.Hex());
  call->done(absl::OkStatus(), spill);
  auto [lease, worker] = GrantNext(gcs, "10.0.0.2:9000");
  PushOk(gcs);
  REQUIRE(Info(gcs, IdOf(req)).node_id() == b.Hex());

  REQUIRE_OK(gcs.nodes.MarkDead(b, "health check failed"));
  gcs.actors->OnNodeDead(b);
  rpc::ActorInfo info = Info(gcs, IdOf(req));
  CHECK(info.state() == rpc::ActorInfo::RESTARTING);
  CHECK(info.death_cause() == "the actor's node " + b.Hex() + " died");
  CHECK(info.num_restarts() == 1);
  CHECK(gcs.net.returns().empty());  // nobody to give it back to
  auto again = gcs.net.TakeLease();
  REQUIRE(again.has_value());
  CHECK(again->raylet == RayletOf(1));

  // A node's death also moves lease requests that wait there.
  const NodeId c = gcs.AddNode(3, {{"CPU", 4}});
  rpc::RequestWorkerLeaseReply spill_c = spill;
  spill_c.set_spillback_raylet_address(RayletOf(3));
  spill_c.set_spillback_node_id(c.Hex());
  again->done(absl::OkStatus(), spill_c);
  auto waiting = gcs.net.TakeLease();
  REQUIRE(waiting->raylet == RayletOf(3));
  REQUIRE_OK(gcs.nodes.MarkDead(c, "unregistered"));
  gcs.actors->OnNodeDead(c);
  CHECK(gcs.net.cancelled() == std::vector<uint64_t>{waiting->request_id});
  CHECK(gcs.net.TakeLease()->raylet == RayletOf(1));
  CHECK(Info(gcs, IdOf(req)).num_restarts() == 1);
}

TEST_CASE("an actor whose owner died is DEAD without a restart", "[actor_manager]") {
  Gcs gcs;
  gcs.AddNode(1, {{"CPU", 4}}, true);
  ActorOptions o;
  o.max_restarts = -1;
  auto req = MakeActor(o);
  auto [lease, worker] = CreateAlive(gcs, req);
  REQUIRE_OK(gcs.actors->ReportWorkerDeath(Death(worker, "the owner went away", /*owner_gone=*/true)));
  rpc::ActorInfo info = Info(gcs, IdOf(req));
  CHECK(info.state() == rpc::ActorInfo::DEAD);
  CHECK(info.death_cause() == std::string("its owner ") + kOwner + " died or exited");
  CHECK(gcs.net.NumLeaseCalls() == 0);
}

TEST_CASE("KillActor", "[actor_manager]") {
  Gcs gcs;
  gcs.AddNode(1, {{"CPU", 4}}, true);
  ActorOptions o;
  o.max_restarts = 3;

  SECTION("no_restart: DEAD, lease returned as failed") {
    auto req = MakeActor(o);
    auto [lease, worker] = CreateAlive(gcs, req);
    REQUIRE_OK(gcs.actors->KillActor(Kill(IdOf(req), true)));
    rpc::ActorInfo info = Info(gcs, IdOf(req));
    CHECK(info.state() == rpc::ActorInfo::DEAD);
    CHECK(info.death_cause() == "killed by shoal.kill()");
    CHECK(Returned(gcs, lease, true));
    const int64_t version = info.version();
    REQUIRE_OK(gcs.actors->KillActor(Kill(IdOf(req), true)));  // again: nothing changes
    CHECK(Info(gcs, IdOf(req)).version() == version);
  }
  SECTION("restartable: handled as a crash") {
    auto req = MakeActor(o);
    auto [lease, worker] = CreateAlive(gcs, req);
    REQUIRE_OK(gcs.actors->KillActor(Kill(IdOf(req), false)));
    rpc::ActorInfo info = Info(gcs, IdOf(req));
    CHECK(info.state() == rpc::ActorInfo::RESTARTING);
    CHECK(info.num_restarts() == 1);
    CHECK(Returned(gcs, lease, true));
    CHECK(gcs.net.NumLeaseCalls() == 1);
  }
  SECTION("while the lease request waits: cancelled, and a late grant goes back") {
    auto req = MakeActor(o);
    REQUIRE_OK(gcs.actors->RegisterActor(req));
    REQUIRE(gcs.actors->NumLeaseRequests() == 1);
    REQUIRE_OK(gcs.actors->KillActor(Kill(IdOf(req), true)));
    CHECK(Info(gcs, IdOf(req)).state() == rpc::ActorInfo::DEAD);
    auto call = gcs.net.TakeLease();
    CHECK(gcs.net.cancelled() == std::vector<uint64_t>{call->request_id});
    CHECK(gcs.actors->NumLeaseRequests() == 0);
    call->done(absl::OkStatus(), Granted("late", WorkerId::FromRandom().Hex(), "10.0.0.1:9000"));
    CHECK(Returned(gcs, "late", /*worker_failed=*/false));
    CHECK(gcs.net.NumPushCalls() == 0);
    CHECK(gcs.actors->NumLeasesHeld() == 0);
  }
  SECTION("while its constructor runs: the lease goes back and a late reply is ignored") {
    auto req = MakeActor(o);
    REQUIRE_OK(gcs.actors->RegisterActor(req));
    auto [lease, worker] = GrantNext(gcs);
    REQUIRE_OK(gcs.actors->KillActor(Kill(IdOf(req), true)));
    CHECK(Returned(gcs, lease, true));
    const int64_t version = Info(gcs, IdOf(req)).version();
    PushOk(gcs);
    CHECK(Info(gcs, IdOf(req)).state() == rpc::ActorInfo::DEAD);
    CHECK(Info(gcs, IdOf(req)).version() == version);
  }
}

TEST_CASE("actor names are unique per namespace among live actors", "[actor_manager]") {
  Gcs gcs;
  gcs.AddNode(1, {{"CPU", 4}}, true);
  ActorOptions o;
  o.name = "counter";
  o.ns = "app";
  auto first = MakeActor(o);
  REQUIRE_OK(gcs.actors->RegisterActor(first));

  auto taken = gcs.actors->RegisterActor(MakeActor(o));
  REQUIRE_CODE(taken, kAlreadyExists);
  CHECK(std::string(taken.status().message()) == "actor name 'counter' is already taken in namespace 'app'");

  ActorOptions get = o;
  get.get_if_exists = true;
  auto existing = gcs.actors->RegisterActor(MakeActor(get));
  REQUIRE_OK(existing);
  CHECK(existing->existed());
  CHECK(existing->actor_id() == first.creation_spec().actor_id());

  ActorOptions other_ns = o;
  other_ns.ns = "other";
  REQUIRE_OK(gcs.actors->RegisterActor(MakeActor(other_ns)));

  auto named = gcs.actors->GetNamedActor("counter", "app");
  REQUIRE_OK(named);
  CHECK(named->actor_id() == first.creation_spec().actor_id());
  CHECK(named->handle_data() == "handle");
  CHECK_CODE(gcs.actors->GetNamedActor("counter", "nowhere"), kNotFound);

  REQUIRE_OK(gcs.actors->KillActor(Kill(IdOf(first), true)));
  CHECK_CODE(gcs.actors->GetNamedActor("counter", "app"), kNotFound);
  auto reborn = MakeActor(o);
  auto r = gcs.actors->RegisterActor(reborn);
  REQUIRE_OK(r);
  CHECK_FALSE(r->existed());
  CHECK(gcs.actors->GetNamedActor("counter", "app")->actor_id() == reborn.creation_spec().actor_id());
}

TEST_CASE("GetActorInfo long polls", "[actor_manager]") {
  Gcs gcs;
  gcs.AddNode(1, {{"CPU", 4}}, true);
  auto req = MakeActor();
  const ActorId id = IdOf(req);
  REQUIRE_OK(gcs.actors->RegisterActor(req));

  rpc::GetActorInfoRequest poll;
  poll.set_actor_id(id.Binary());
  poll.set_after_version(1);
  poll.set_wait_ms(5000);

  std::vector<rpc::ActorInfo> answers;
  auto record = [&](absl::StatusOr<rpc::ActorInfo> info) {
    REQUIRE_OK(info);
    answers.push_back(*info);
  };
  gcs.actors->GetActorInfo(poll, record);
  CHECK(answers.empty());
  CHECK(gcs.actors->NumWaiters() == 1);

  GrantNext(gcs);
  PushOk(gcs);  // the change wakes the poll
  REQUIRE(answers.size() == 1);
  CHECK(answers[0].state() == rpc::ActorInfo::ALIVE);
  CHECK(answers[0].version() == 2);

  poll.set_after_version(2);
  gcs.actors->GetActorInfo(poll, record);
  gcs.clock.Advance(absl::Milliseconds(4999));
  gcs.actors->Tick();
  CHECK(answers.size() == 1);
  gcs.clock.Advance(absl::Milliseconds(1));
  gcs.actors->Tick();
  REQUIRE(answers.size() == 2);
  CHECK(answers[1].version() == 2);  // timed out: the same entry

  poll.set_after_version(1);  // already newer: at once
  gcs.actors->GetActorInfo(poll, record);
  CHECK(answers.size() == 3);

  poll.set_after_version(2);
  gcs.actors->GetActorInfo(poll, record);
  gcs.actors->GetActorInfo(poll, record);
  CHECK(gcs.actors->NumWaiters() == 2);
  gcs.actors->Shutdown();
  CHECK(answers.size() == 5);
  CHECK(gcs.actors->NumWaiters() == 0);
  gcs.actors->GetActorInfo(poll, record);  // after shutdown: at once
  CHECK(answers.size() == 6);
}

TEST_CASE("ListActors: newest first, limit and job filter", "[actor_manager]") {
  Gcs gcs;
  gcs.AddNode(1, {{"CPU", 4}}, true);
  std::vector<ActorId> job1, job2;
  for (int i = 0; i < 5; ++i) {
    ActorOptions o;
    o.job = JobId::FromInt(i % 2 == 0 ? 1 : 2);
    auto req = MakeActor(o);
    REQUIRE_OK(gcs.actors->RegisterActor(req));
    (i % 2 == 0 ? job1 : job2).push_back(IdOf(req));
    gcs.clock.Advance(absl::Milliseconds(10));
  }
  rpc::ListActorsRequest all;
  auto r = gcs.actors->ListActors(all);
  REQUIRE_OK(r);
  CHECK(r->total() == 5);
  REQUIRE(r->actors_size() == 5);
  CHECK(r->actors(0).actor_id() == job1.back().Binary());
  for (int i = 1; i < 5; ++i) CHECK(r->actors(i - 1).start_time_ms() > r->actors(i).start_time_ms());

  rpc::ListActorsRequest limited;
  limited.set_limit(2);
  limited.set_job_id(JobId::FromInt(1).Hex());
  r = gcs.actors->ListActors(limited);
  REQUIRE_OK(r);
  CHECK(r->total() == 3);
  REQUIRE(r->actors_size() == 2);
  CHECK(r->actors(0).actor_id() == job1[2].Binary());
  CHECK(r->actors(1).actor_id() == job1[1].Binary());

  limited.set_job_id("zz");
  CHECK_CODE(gcs.actors->ListActors(limited), kInvalidArgument);
}

TEST_CASE("a finished job's actors die, except detached ones", "[actor_manager]") {
  Gcs gcs;
  gcs.AddNode(1, {{"CPU", 4}}, true);
  ActorOptions o;
  o.max_restarts = -1;
  auto normal = MakeActor(o);
  auto [lease, worker] = CreateAlive(gcs, normal);
  auto pending = MakeActor(o);
  REQUIRE_OK(gcs.actors->RegisterActor(pending));
  ActorOptions d = o;
  d.detached = true;
  auto detached = MakeActor(d);
  REQUIRE_OK(gcs.actors->RegisterActor(detached));
  ActorOptions other = o;
  other.job = JobId::FromInt(2);
  auto other_job = MakeActor(other);
  REQUIRE_OK(gcs.actors->RegisterActor(other_job));

  gcs.actors->OnJobFinished(JobId::FromInt(1));
  CHECK(Info(gcs, IdOf(normal)).state() == rpc::ActorInfo::DEAD);
  CHECK(Info(gcs, IdOf(normal)).death_cause() == std::string("its owner ") + kOwner + " died or exited");
  CHECK(Returned(gcs, lease, true));
  CHECK(Info(gcs, IdOf(pending)).state() == rpc::ActorInfo::DEAD);
  CHECK(Info(gcs, IdOf(detached)).state() == rpc::ActorInfo::PENDING);
  CHECK(Info(gcs, IdOf(other_job)).state() == rpc::ActorInfo::PENDING);
  CHECK(gcs.net.cancelled().size() == 1);
}

TEST_CASE("1000 create/kill cycles leave no lease held", "[actor_manager]") {
  Gcs gcs;
  gcs.AddNode(1, {{"CPU", 4}}, true);
  std::mt19937 rng(7);
  std::set<std::string> granted;
  std::vector<ActorId> ids;
  for (int i = 0; i < 1000; ++i) {
    ActorOptions o;
    o.max_restarts = static_cast<int>(rng() % 3);
    if (i % 10 == 0) o.name = "n" + std::to_string(i % 30);
    auto req = MakeActor(o);
    const ActorId id = IdOf(req);
    auto r = gcs.actors->RegisterActor(req);
    REQUIRE_OK(r);
    ids.push_back(id);
    auto call = gcs.net.TakeLease();
    REQUIRE(call.has_value());
    const std::string lease = "lease" + std::to_string(i);
    granted.insert(lease);
    switch (rng() % 4) {
      case 0:  // killed while the request waits; the grant comes late
        REQUIRE_OK(gcs.actors->KillActor(Kill(id, true)));
        call->done(absl::OkStatus(), Granted(lease, WorkerId::FromRandom().Hex(), "w:1"));
        break;
      case 1: {  // killed while constructing
        call->done(absl::OkStatus(), Granted(lease, WorkerId::FromRandom().Hex(), "w:1"));
        REQUIRE_OK(gcs.actors->KillActor(Kill(id, true)));
        PushOk(gcs);
        break;
      }
      case 2: {  // alive, its worker dies (restarts maybe), then killed
        const std::string worker = WorkerId::FromRandom().Hex();
        call->done(absl::OkStatus(), Granted(lease, worker, "w:1"));
        PushOk(gcs);
        REQUIRE_OK(gcs.actors->ReportWorkerDeath(Death(worker, "exited with code 1")));
        if (auto again = gcs.net.TakeLease()) {
          const std::string lease2 = lease + "b";
          granted.insert(lease2);
          again->done(absl::OkStatus(), Granted(lease2, WorkerId::FromRandom().Hex(), "w:2"));
          PushOk(gcs);
        }
        REQUIRE_OK(gcs.actors->KillActor(Kill(id, rng() % 2 == 0)));
        if (auto again = gcs.net.TakeLease()) {  // restarted by the kill: kill it for good
          REQUIRE_OK(gcs.actors->KillActor(Kill(id, true)));
          again->done(absl::OkStatus(), Granted(lease + "c", WorkerId::FromRandom().Hex(), "w:3"));
          granted.insert(lease + "c");
        }
        break;
      }
      default:  // alive, then killed
        call->done(absl::OkStatus(), Granted(lease, WorkerId::FromRandom().Hex(), "w:1"));
        PushOk(gcs);
        REQUIRE_OK(gcs.actors->KillActor(Kill(id, true)));
        break;
    }
    REQUIRE(gcs.net.NumLeaseCalls() == 0);
    REQUIRE(gcs.net.NumPushCalls() == 0);
  }
  CHECK(gcs.actors->NumLeasesHeld() == 0);
  CHECK(gcs.actors->NumLeaseRequests() == 0);
  std::multiset<std::string> returned;
  for (const auto& r : gcs.net.returns()) returned.insert(r.lease_id);
  for (const auto& lease : granted) CHECK(returned.count(lease) == 1);
  CHECK(returned.size() == granted.size());
  rpc::ListActorsRequest list;
  list.set_limit(5000);
  auto all = gcs.actors->ListActors(list);
  REQUIRE_OK(all);
  CHECK(all->total() == 1000);
  for (const auto& info : all->actors()) CHECK(info.state() == rpc::ActorInfo::DEAD);
  for (int i = 0; i < 30; i += 10) CHECK_CODE(gcs.actors->GetNamedActor("n" + std::to_string(i), ""), kNotFound);
}

}  // namespace
}  // namespace shoal

namespace shoal {
namespace {

using namespace actor_test;

TEST_CASE("an actor registered before its arguments waits for CreateActor", "[actor_manager]") {
  Gcs gcs;
  gcs.AddNode(1, {{"CPU", 4}}, /*is_head=*/true);
  auto req = MakeActor();
  const ActorId id = IdOf(req);
  req.set_dependencies_unready(true);
  REQUIRE_OK(gcs.actors->RegisterActor(req));
  CHECK(Info(gcs, id).state() == rpc::ActorInfo::PENDING);
  CHECK(Info(gcs, id).dependencies_unready());
  CHECK_FALSE(gcs.net.TakeLease().has_value());  // not scheduled yet
  CHECK(gcs.actors->OwnersOfWaitingActors() == std::set<std::string>{kOwner});

  // Bad input: an unknown actor, a spec that is not its constructor; nothing changes.
  rpc::CreateActorRequest unknown;
  unknown.mutable_creation_spec()->set_actor_id(ActorId::Of(JobId::FromInt(1)).Binary());
  CHECK_CODE(gcs.actors->CreateActor(unknown), kNotFound);
  rpc::CreateActorRequest not_constructor;
  *not_constructor.mutable_creation_spec() = req.creation_spec();
  not_constructor.mutable_creation_spec()->set_actor_creation(false);
  CHECK_CODE(gcs.actors->CreateActor(not_constructor), kInvalidArgument);
  CHECK(Info(gcs, id).dependencies_unready());

  rpc::CreateActorRequest create;
  *create.mutable_creation_spec() = req.creation_spec();
  REQUIRE_OK(gcs.actors->CreateActor(create));
  CHECK_FALSE(Info(gcs, id).dependencies_unready());
  CHECK(gcs.net.TakeLease().has_value());  // scheduled now
  REQUIRE_OK(gcs.actors->CreateActor(create));  // again: answered, nothing more
  CHECK_FALSE(gcs.net.TakeLease().has_value());
  CHECK(gcs.actors->OwnersOfWaitingActors().empty());
}

TEST_CASE("a failed argument or a dead owner ends an actor waiting for its arguments", "[actor_manager]") {
  Gcs gcs;
  gcs.AddNode(1, {{"CPU", 4}}, /*is_head=*/true);
  auto failed = MakeActor();
  failed.set_dependencies_unready(true);
  REQUIRE_OK(gcs.actors->RegisterActor(failed));
  rpc::CreateActorRequest create;
  *create.mutable_creation_spec() = failed.creation_spec();
  *create.mutable_failed() = TaskException("ValueError", "bad input");
  REQUIRE_OK(gcs.actors->CreateActor(create));
  rpc::ActorInfo dead = Info(gcs, IdOf(failed));
  CHECK(dead.state() == rpc::ActorInfo::DEAD);
  CHECK(absl::StrContains(dead.death_cause(), "bad input"));

  auto orphan = MakeActor();
  orphan.set_dependencies_unready(true);
  REQUIRE_OK(gcs.actors->RegisterActor(orphan));
  gcs.actors->OnOwnerDead(kOwner);
  rpc::ActorInfo gone = Info(gcs, IdOf(orphan));
  CHECK(gone.state() == rpc::ActorInfo::DEAD);
  CHECK(absl::StrContains(gone.death_cause(), "owner"));
  CHECK_FALSE(gcs.net.TakeLease().has_value());
}

}  // namespace
}  // namespace shoal
