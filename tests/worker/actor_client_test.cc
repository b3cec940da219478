// ActorClient against a real GCS in this process (memory storage, no nodes, so actors stay
// PENDING), with the owner parts over fakes and a fake actor transport.
#include "src/worker/actor_client.h"

#include <catch2/catch.hpp>

#include <memory>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "src/common/error_info.h"
#include "src/gcs/gcs_server.h"
#include "src/gcs/store_client.h"
#include "src/worker/fake_actor_transport.h"
#include "src/worker/object_value.h"
#include "src/worker/task_spec.h"
#include "tests/test_util/status_matchers.h"
#include "tests/worker/owner_parts.h"

namespace shoal {
namespace {

const JobId kJob = JobId::FromInt(12);

std::unique_ptr<GcsServer> StartGcs() {
  GcsOptions options;
  options.port = 0;  // a free port
  auto gcs = std::make_unique<GcsServer>(std::make_unique<InMemoryStoreClient>(), options);
  REQUIRE_OK(gcs->Start());
  return gcs;
}

struct Fixture : test::OwnerParts {
  Fixture() : OwnerParts(kJob) {}
  ActorOptions Detached(const std::string& name = "") {
    ActorOptions o;
    o.class_name = "Counter";
    o.name = name;
    o.detached = true;
    o.handle_data = "handle";
    return o;
  }
  std::vector<rpc::ObjectValue> done_calls;

  std::unique_ptr<GcsServer> server = StartGcs();
  GcsClient gcs{{.address = absl::StrCat("127.0.0.1:", server->port()), .timeout = absl::Seconds(10)}};
  FakeActorTransport actor_transport;
  ActorSubmitter submitter{actor_transport, clock, ActorSubmitterOptions{.caller_id = "caller"},
                           [this](const rpc::TaskSpec&, std::vector<rpc::ObjectValue> returns) {
                             for (auto& r : returns) done_calls.push_back(std::move(r));
                           }};
  ActorClient actors{gcs, tasks, objects, resolver, submitter, {.job = kJob, .address = test::kOwnerAddress}};
};

TEST_CASE_METHOD(Fixture, "actor client: creates an actor through the GCS and follows it", "[actor_client]") {
  auto created = actors.Create("Counter.__init__", {TaskArg::Value("0")}, TaskOptions{}, Detached("c"));
  REQUIRE_OK(created);
  CHECK(created->class_name == "Counter");
  CHECK(created->state == "PENDING");
  CHECK_FALSE(created->existed);
  CHECK(created->id.Job() == kJob);
  auto info = gcs.GetActorInfo(created->id);
  REQUIRE_OK(info);
  CHECK(info->class_name() == "Counter");
  CHECK(info->name() == "c");
  CHECK(info->detached());
  CHECK(info->owner_address().empty());  // detached: no owner
  REQUIRE(actor_transport.polls.size() == 1);  // the submitter follows the new actor
  CHECK(actor_transport.polls.front().actor == created->id);

  auto described = actors.GetInfo(created->id);
  REQUIRE_OK(described);
  CHECK(described->handle_data == "handle");
}

TEST_CASE_METHOD(Fixture, "actor client: a named actor is found, or reused with get_if_exists", "[actor_client]") {
  auto missing = actors.GetNamed("c", "default");
  REQUIRE_CODE(missing, kNotFound);
  CHECK(absl::StrContains(missing.status().message(), "Failed to look up actor with name 'c' in namespace 'default'"));
  auto first = actors.Create("Counter.__init__", {}, TaskOptions{}, Detached("c"));
  REQUIRE_OK(first);
  auto found = actors.GetNamed("c", "default");
  REQUIRE_OK(found);
  CHECK(found->id == first->id);
  CHECK_FALSE(actors.Create("Counter.__init__", {}, TaskOptions{}, Detached("c")).ok());
  ActorOptions again = Detached("c");
  again.get_if_exists = true;
  auto reused = actors.Create("Counter.__init__", {}, TaskOptions{}, again);
  REQUIRE_OK(reused);
  CHECK(reused->existed);
  CHECK(reused->id == first->id);
}

TEST_CASE_METHOD(Fixture, "actor client: bad options register nothing", "[actor_client]") {
  ActorOptions zero = Detached("a");
  zero.max_concurrency = 0;
  REQUIRE_CODE(actors.Create("Counter.__init__", {}, TaskOptions{}, zero), kInvalidArgument);
  ActorOptions restarts = Detached("b");
  restarts.max_restarts = -2;
  REQUIRE_CODE(actors.Create("Counter.__init__", {}, TaskOptions{}, restarts), kInvalidArgument);
  const ObjectId stranger = ObjectId::FromTask(TaskId::ForNormalTask(kJob), 1);
  REQUIRE_CODE(actors.Create("Counter.__init__", {TaskArg::Ref(stranger)}, TaskOptions{}, Detached("c")),
               kInvalidArgument);
  auto listed = gcs.ListActors(10);
  REQUIRE_OK(listed);
  CHECK(listed->actors_size() == 0);
}

TEST_CASE_METHOD(Fixture, "actor client: a failed constructor argument ends the actor with its error", "[actor_client]") {
  const ObjectId arg = ObjectId::FromTask(TaskId::ForNormalTask(kJob), 1);
  refs.AddOwned(arg);
  refs.AddLocal(arg);
  // Registered at once, as in Ray (creation does not wait for the arguments)...
  auto created = actors.Create("Counter.__init__", {TaskArg::Ref(arg)}, TaskOptions{}, Detached("c"));
  REQUIRE_OK(created);
  CHECK(created->state == "PENDING");
  auto waiting = actors.GetInfo(created->id);
  REQUIRE_OK(waiting);
  CHECK(waiting->state == "PENDING");
  // ...and dead, with the argument's error, once that argument fails.
  memory.Put(arg, ErrorValue(arg, TaskException("ValueError", "bad input")));
  auto info = actors.GetInfo(created->id);
  REQUIRE_OK(info);
  CHECK(info->state == "DEAD");
  CHECK(absl::StrContains(info->death_cause, "an argument of the constructor of Counter failed"));
  CHECK(absl::StrContains(info->death_cause, "bad input"));
  CHECK(gcs.GetNamedActor("c", "default").status().code() == absl::StatusCode::kNotFound);
}

TEST_CASE_METHOD(Fixture, "actor client: kill for good fails later calls at once", "[actor_client]") {
  auto created = actors.Create("Counter.__init__", {}, TaskOptions{}, Detached("c"));
  REQUIRE_OK(created);
  REQUIRE_OK(actors.Kill(created->id, /*no_restart=*/true));
  auto info = actors.GetInfo(created->id);
  REQUIRE_OK(info);
  CHECK(info->state == "DEAD");
  const uint64_t order = *submitter.Reserve(created->id);
  rpc::TaskSpec call;
  call.set_task_id(TaskId::ForActorTask(created->id).Binary());
  call.set_actor_id(created->id.Binary());
  call.set_function_name("Counter.add");
  call.set_num_returns(1);
  submitter.Submit(order, call);
  REQUIRE(done_calls.size() == 1);
  REQUIRE(done_calls[0].has_error());
  CHECK(absl::StrContains(done_calls[0].error().message(), "killed by shoal.kill()"));
  CHECK(actor_transport.pushes.empty());
}

TEST_CASE_METHOD(Fixture, "actor client: method calls go to the actor's worker in order, without resources",
                 "[actor_client]") {
  auto created = actors.Create("Counter.__init__", {}, TaskOptions{}, Detached("c"));
  REQUIRE_OK(created);
  TaskOptions options;
  options.resources = *ResourceSet::FromDoubles({{"CPU", 2}});
  auto first = actors.Call(created->id, "Counter.add", {TaskArg::Value("1")}, options);
  REQUIRE_OK(first);
  REQUIRE(first->size() == 1);
  auto second = actors.Call(created->id, "Counter.get", {}, TaskOptions{});
  REQUIRE_OK(second);
  CHECK(actor_transport.pushes.empty());  // PENDING: the calls wait
  REQUIRE(actor_transport.polls.size() == 1);
  auto poll = std::move(actor_transport.polls.front());
  actor_transport.polls.pop_front();
  rpc::GetActorInfoReply alive;
  alive.mutable_info()->set_actor_id(created->id.Binary());
  alive.mutable_info()->set_state(rpc::ActorInfo::ALIVE);
  alive.mutable_info()->set_worker_address("127.0.0.1:5001");
  alive.mutable_info()->set_version(1);
  poll.done(absl::OkStatus(), alive);
  REQUIRE(actor_transport.pushes.size() == 2);
  const rpc::TaskSpec& add = actor_transport.pushes[0].request.spec();
  CHECK(actor_transport.pushes[0].address == "127.0.0.1:5001");
  CHECK(add.function_name() == "Counter.add");
  CHECK(add.resources().amounts().empty());
  CHECK(add.args(0).inline_value() == "1");
  CHECK(ReturnObjectId(add, 1) == first->front());
  CHECK(actor_transport.pushes[1].request.spec().function_name() == "Counter.get");
  CHECK(add.sequence_number() < actor_transport.pushes[1].request.spec().sequence_number());
}

}  // namespace
}  // namespace shoal
