// The actor table after a GCS restart: Load() brings actors back with their creation tasks.
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

TEMPLATE_TEST_CASE("actors survive a GCS restart in the store", "[actor_manager]", test::MemoryBackend,
                   test::RedisBackend) {
  SHOAL_BACKEND(backend);
  std::string alive_lease, alive_worker;
  rpc::RegisterActorRequest alive = MakeActor([] {
    ActorOptions o;
    o.name = "svc";
    o.max_restarts = 2;
    return o;
  }());
  rpc::RegisterActorRequest pending = MakeActor();
  rpc::RegisterActorRequest dead = MakeActor();
  {
    Gcs gcs(&backend.store());
    gcs.AddNode(1, {{"CPU", 4}}, true);
    std::tie(alive_lease, alive_worker) = CreateAlive(gcs, alive);
    REQUIRE_OK(gcs.actors->RegisterActor(pending));
    REQUIRE_OK(gcs.actors->RegisterActor(dead));
    REQUIRE_OK(gcs.actors->KillActor(Kill(IdOf(dead), true)));
    gcs.actors->Shutdown();
  }
  Gcs gcs(&backend.Reopen());
  REQUIRE_OK(gcs.nodes.Load());
  REQUIRE_OK(gcs.actors->Load());
  rpc::ListActorsRequest list;
  auto all = gcs.actors->ListActors(list);
  REQUIRE_OK(all);
  CHECK(all->total() == 3);
  CHECK(Info(gcs, IdOf(alive)).state() == rpc::ActorInfo::ALIVE);
  CHECK(Info(gcs, IdOf(dead)).state() == rpc::ActorInfo::DEAD);
  CHECK(gcs.actors->GetNamedActor("svc", "")->actor_id() == alive.creation_spec().actor_id());
  // The pending one is scheduled again.
  CHECK(Info(gcs, IdOf(pending)).state() == rpc::ActorInfo::PENDING);
  auto call = gcs.net.TakeLease();
  REQUIRE(call.has_value());
  CHECK(call->raylet == RayletOf(1));

  // The alive one is still watched and its lease is known.
  REQUIRE_OK(gcs.actors->ReportWorkerDeath(Death(alive_worker, "exited with code 1")));
  CHECK(Info(gcs, IdOf(alive)).state() == rpc::ActorInfo::RESTARTING);
  CHECK(Returned(gcs, alive_lease, true));
  // And it restarts from its stored creation task (the GCS used to restore ALIVE actors without
  // it, so the restart's lease named no worker command).
  auto restart = gcs.net.TakeLease();
  REQUIRE(restart.has_value());
  CHECK(restart->request.worker_command_size() == 1);
  CHECK(restart->request.worker_command(0) == "/bin/worker");
  CHECK(ResourceSet::FromProto(restart->request.resources()) == RS({{"CPU", 1}}));
  const std::string worker = WorkerId::FromRandom().Hex();
  restart->done(absl::OkStatus(), Granted("lease-after-restart", worker, "10.0.0.1:9100"));
  auto push = gcs.net.TakePush();
  REQUIRE(push.has_value());
  CHECK(push->request.spec().SerializeAsString() == alive.creation_spec().SerializeAsString());
  push->done(absl::OkStatus(), rpc::PushTaskReply());
  rpc::ActorInfo info = Info(gcs, IdOf(alive));
  CHECK(info.state() == rpc::ActorInfo::ALIVE);
  CHECK(info.worker_id() == worker);
  CHECK(info.num_restarts() == 1);

  SECTION("a second GCS restart keeps the creation task too") {
    gcs.actors->Shutdown();
    Gcs third(&backend.Reopen());
    REQUIRE_OK(third.nodes.Load());
    REQUIRE_OK(third.actors->Load());
    REQUIRE_OK(third.actors->ReportWorkerDeath(Death(worker, "killed by signal 9")));
    CHECK(Info(third, IdOf(alive)).state() == rpc::ActorInfo::RESTARTING);
    auto again = third.net.TakeLease();
    REQUIRE(again.has_value());
    CHECK(again->request.worker_command_size() == 1);
  }
}

TEMPLATE_TEST_CASE("a restored actor whose creation task is missing dies naming why instead of restarting",
                   "[actor_manager]", test::MemoryBackend, test::RedisBackend) {
  SHOAL_BACKEND(backend);
  ActorOptions o;
  o.max_restarts = -1;
  o.detached = true;
  rpc::RegisterActorRequest req = MakeActor(o);
  std::string worker;
  {
    Gcs gcs(&backend.store());
    gcs.AddNode(1, {{"CPU", 4}}, true);
    worker = CreateAlive(gcs, req).second;
    gcs.actors->Shutdown();
  }
  // As if written by a GCS that kept no creation tasks.
  REQUIRE_OK(backend.store().Delete("actor_specs", IdOf(req).Hex()));
  Gcs gcs(&backend.Reopen());
  REQUIRE_OK(gcs.nodes.Load());
  REQUIRE_OK(gcs.actors->Load());
  CHECK(Info(gcs, IdOf(req)).state() == rpc::ActorInfo::ALIVE);
  REQUIRE_OK(gcs.actors->ReportWorkerDeath(Death(worker, "killed by signal 9")));
  rpc::ActorInfo info = Info(gcs, IdOf(req));
  CHECK(info.state() == rpc::ActorInfo::DEAD);
  CHECK(info.death_cause() ==
        "the actor's worker died: killed by signal 9; it cannot restart: the GCS restarted and lost the actor's "
        "creation task");
  CHECK(gcs.net.NumLeaseCalls() == 0);
}

}  // namespace
}  // namespace shoal
