// ObjectRecovery: lineage kept and dropped, re-runs of lost task results (arguments first),
// and the reasons an object cannot be made again.
#include "src/worker/object_recovery.h"

#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include "src/common/error_info.h"
#include "src/worker/object_value.h"
#include "src/worker/task_spec.h"
#include "tests/test_util/status_matchers.h"

namespace shoal {
namespace {

const JobId kJob = JobId::FromInt(3);
constexpr char kDeadRaylet[] = "10.0.0.2:7000";
constexpr char kLiveRaylet[] = "10.0.0.3:7000";

struct Fixture {
  MemoryStore memory;
  std::vector<rpc::TaskSpec> resubmitted;
  absl::flat_hash_set<std::string> dead;
  struct Rerun {
    TaskId task;
    int32_t attempt;
    std::vector<ObjectId> items;
  };
  std::vector<Rerun> reruns;
  ObjectRecovery recovery{memory, ObjectRecovery::Options{
                                      .resubmit = [this](rpc::TaskSpec s) { resubmitted.push_back(std::move(s)); },
                                      .dead_nodes = [this] { return dead; },
                                      .rerun_stream = [this](const TaskId& t, int32_t a, const std::vector<ObjectId>& i) {
                                        reruns.push_back({t, a, i});
                                      }}};
  NodeId dead_node = NodeId::FromRandom();
  NodeId live_node = NodeId::FromRandom();

  rpc::TaskSpec Spec(int max_retries = 3) {
    TaskOptions options;
    options.max_retries = max_retries;
    auto spec = BuildTaskSpec(kJob, "f", options, "10.0.0.1:4000", {"/bin/driver"});
    REQUIRE_OK(spec);
    return *spec;
  }
  // The task finished with its return in the store at `raylet`.
  ObjectId FinishInStore(const rpc::TaskSpec& spec, const std::string& raylet, const NodeId& node) {
    const ObjectId id = ReturnObjectId(spec, 1);
    memory.Put(id, StoreValue(id, raylet, node));
    recovery.AddLineage(spec, /*any_in_store=*/true, {id});
    return id;
  }
  static void AddStoreArg(rpc::TaskSpec& spec, const ObjectId& id, const std::string& raylet, const NodeId& node) {
    *spec.add_args()->mutable_object() = StoreValue(id, raylet, node);
  }
};

TEST_CASE_METHOD(Fixture, "recovery: a lost task result is made again once, as the next attempt", "[recovery]") {
  rpc::TaskSpec spec = Spec();
  const ObjectId id = FinishInStore(spec, kDeadRaylet, dead_node);
  CHECK(recovery.num_lineage_tasks() == 1);
  REQUIRE_OK(recovery.Recover(id, "connection refused"));
  // The stale location is gone, so that a Get waits for the new one.
  CHECK(memory.GetIfReady(id) == nullptr);
  REQUIRE(resubmitted.size() == 1);
  CHECK(resubmitted[0].task_id() == spec.task_id());
  CHECK(resubmitted[0].attempt() == 1);
  // A second caller while the re-run is under way starts nothing more.
  REQUIRE_OK(recovery.Recover(id, "connection refused"));
  CHECK(resubmitted.size() == 1);
  // The re-run finishes (TaskManager::Finish): a later loss can be recovered again.
  memory.Put(id, StoreValue(id, kLiveRaylet, live_node));
  recovery.AddLineage(resubmitted[0], true, {id});
  REQUIRE_OK(recovery.Recover(id, "lost again"));
  REQUIRE(resubmitted.size() == 2);
  CHECK(resubmitted[1].attempt() == 2);
}

TEST_CASE_METHOD(Fixture, "recovery: re-runs count against max_retries", "[recovery]") {
  rpc::TaskSpec spec = Spec(/*max_retries=*/1);
  const ObjectId id = FinishInStore(spec, kDeadRaylet, dead_node);
  REQUIRE_OK(recovery.Recover(id, "gone"));
  recovery.AddLineage(resubmitted[0], true, {id});
  absl::Status again = recovery.Recover(id, "gone again");
  CHECK(ErrorTypeOf(again) == rpc::OBJECT_LOST);
  CHECK_THAT(std::string(again.message()), Catch::Contains("max_retries is 1"));
  CHECK(resubmitted.size() == 1);
}

TEST_CASE_METHOD(Fixture, "recovery: what cannot be made again is OBJECT_LOST saying why", "[recovery]") {
  SECTION("a put object, or any id without lineage") {
    const ObjectId put = ObjectId::FromTask(TaskId::ForNormalTask(kJob), 9);
    absl::Status s = recovery.Recover(put, "node died");
    CHECK(ErrorTypeOf(s) == rpc::OBJECT_LOST);
    CHECK_THAT(std::string(s.message()), Catch::Contains("made by put") && Catch::Contains("node died"));
  }
  SECTION("a task with max_retries=0 keeps no lineage") {
    rpc::TaskSpec spec = Spec(/*max_retries=*/0);
    const ObjectId id = FinishInStore(spec, kDeadRaylet, dead_node);
    CHECK(recovery.num_lineage_tasks() == 0);
    CHECK(ErrorTypeOf(recovery.Recover(id, "x")) == rpc::OBJECT_LOST);
  }
  SECTION("an actor method's result") {
    rpc::TaskSpec spec = Spec();
    spec.set_actor_id(std::string(16, 'a'));
    const ObjectId id = FinishInStore(spec, kDeadRaylet, dead_node);
    CHECK(recovery.num_lineage_tasks() == 0);
    CHECK(ErrorTypeOf(recovery.Recover(id, "x")) == rpc::OBJECT_LOST);
  }
  CHECK(resubmitted.empty());
}

TEST_CASE_METHOD(Fixture, "recovery: lineage goes when its results go out of scope", "[recovery]") {
  rpc::TaskSpec spec = Spec();
  spec.set_num_returns(2);
  const ObjectId a = ReturnObjectId(spec, 1), b = ReturnObjectId(spec, 2);
  recovery.AddLineage(spec, true, {a, b});
  CHECK(recovery.lineage_bytes() > 0);
  recovery.Forget(a);
  CHECK(recovery.num_lineage_tasks() == 1);  // b still needs it
  recovery.Forget(b);
  CHECK(recovery.num_lineage_tasks() == 0);
  CHECK(recovery.lineage_bytes() == 0);
  CHECK(ErrorTypeOf(recovery.Recover(a, "x")) == rpc::OBJECT_LOST);
  // Results that were all inline, or none in scope, keep nothing.
  recovery.AddLineage(Spec(), /*any_in_store=*/false, {ObjectId::FromTask(TaskId::ForNormalTask(kJob), 1)});
  recovery.AddLineage(Spec(), true, {});
  CHECK(recovery.num_lineage_tasks() == 0);
}

TEST_CASE("recovery: past max_lineage_bytes the oldest lineage is dropped, and says so", "[recovery]") {
  MemoryStore memory;
  std::vector<rpc::TaskSpec> resubmitted;
  TaskOptions options;
  auto first = BuildTaskSpec(kJob, "f", options, "o", {"/bin/driver"});
  REQUIRE_OK(first);
  const int64_t one = static_cast<int64_t>(first->ByteSizeLong());
  ObjectRecovery recovery(memory, {.resubmit = [&](rpc::TaskSpec s) { resubmitted.push_back(std::move(s)); },
                                   .max_lineage_bytes = one + one / 2});
  auto second = BuildTaskSpec(kJob, "f", options, "o", {"/bin/driver"});
  REQUIRE_OK(second);
  recovery.AddLineage(*first, true, {ReturnObjectId(*first, 1)});
  recovery.AddLineage(*second, true, {ReturnObjectId(*second, 1)});
  CHECK(recovery.num_lineage_tasks() == 1);
  absl::Status s = recovery.Recover(ReturnObjectId(*first, 1), "gone");
  CHECK(ErrorTypeOf(s) == rpc::OBJECT_LOST);
  CHECK_THAT(std::string(s.message()), Catch::Contains("lineage was dropped"));
  REQUIRE_OK(recovery.Recover(ReturnObjectId(*second, 1), "gone"));
  CHECK(resubmitted.size() == 1);
}

TEST_CASE_METHOD(Fixture, "recovery: a lost argument is made again first, and the task waits for it", "[recovery]") {
  // x = f() on the node that died; y = g(x) also there; z = h(w) with w on a live node.
  rpc::TaskSpec f = Spec();
  const ObjectId x = FinishInStore(f, kDeadRaylet, dead_node);
  rpc::TaskSpec w_task = Spec();
  const ObjectId w = FinishInStore(w_task, kLiveRaylet, live_node);
  rpc::TaskSpec g = Spec();
  AddStoreArg(g, x, kDeadRaylet, dead_node);
  AddStoreArg(g, w, kLiveRaylet, live_node);
  const ObjectId y = FinishInStore(g, kDeadRaylet, dead_node);

  REQUIRE_OK(recovery.Recover(y, "connection refused"));
  // f runs again at once; g waits for x's new value.
  REQUIRE(resubmitted.size() == 1);
  CHECK(resubmitted[0].task_id() == f.task_id());
  CHECK(memory.GetIfReady(x) == nullptr);
  CHECK(memory.GetIfReady(w) != nullptr);  // on a live node: left alone
  memory.Put(x, StoreValue(x, kLiveRaylet, live_node));
  REQUIRE(resubmitted.size() == 2);
  const rpc::TaskSpec& again = resubmitted[1];
  CHECK(again.task_id() == g.task_id());
  CHECK(again.args(0).object().raylet_address() == kLiveRaylet);  // x's new copy
  CHECK(again.args(1).object().raylet_address() == kLiveRaylet);  // w as it was
}

TEST_CASE_METHOD(Fixture, "recovery: an argument on a node the GCS lists dead counts as lost", "[recovery]") {
  rpc::TaskSpec f = Spec();
  const NodeId other_dead = NodeId::FromRandom();
  const ObjectId x = FinishInStore(f, "10.0.0.4:7000", other_dead);
  rpc::TaskSpec g = Spec();
  AddStoreArg(g, x, "10.0.0.4:7000", other_dead);
  const ObjectId y = FinishInStore(g, kDeadRaylet, dead_node);
  dead.insert(other_dead.Hex());
  REQUIRE_OK(recovery.Recover(y, "gone"));
  REQUIRE(resubmitted.size() == 1);
  CHECK(resubmitted[0].task_id() == f.task_id());
}

TEST_CASE_METHOD(Fixture, "recovery: a lost argument without lineage here is left to the worker to report", "[recovery]") {
  const ObjectId put = ObjectId::FromTask(TaskId::ForNormalTask(kJob), 9);  // no lineage: not re-made
  rpc::TaskSpec g = Spec();
  AddStoreArg(g, put, kDeadRaylet, dead_node);
  const ObjectId y = FinishInStore(g, kDeadRaylet, dead_node);
  // Not ours to re-make: g runs again and its worker reports the argument it cannot read.
  REQUIRE_OK(recovery.Recover(y, "gone"));
  CHECK(resubmitted.size() == 1);
}

TEST_CASE_METHOD(Fixture, "recovery: a task whose worker could not read a lost argument runs again after it is "
                 "made again", "[recovery]") {
  rpc::TaskSpec maker = Spec();
  const ObjectId x = FinishInStore(maker, kDeadRaylet, dead_node);
  rpc::TaskSpec user = Spec();
  AddStoreArg(user, x, kDeadRaylet, dead_node);
  REQUIRE_OK(recovery.RerunWithLostArgument(user, 0, "argument 0 could not be read: connection refused"));
  // x's task first; the user task waits for x's new value.
  REQUIRE(resubmitted.size() == 1);
  CHECK(resubmitted[0].task_id() == maker.task_id());
  memory.Put(x, StoreValue(x, kLiveRaylet, live_node));
  REQUIRE(resubmitted.size() == 2);
  CHECK(resubmitted[1].task_id() == user.task_id());
  CHECK(resubmitted[1].attempt() == 1);
  CHECK(resubmitted[1].args(0).object().raylet_address() == kLiveRaylet);
}

TEST_CASE_METHOD(Fixture, "recovery: a lost argument this owner cannot make again fails the task", "[recovery]") {
  rpc::TaskSpec user = Spec();
  const ObjectId put = ObjectId::FromRandom();  // no lineage: made by put, or another owner's
  AddStoreArg(user, put, kDeadRaylet, dead_node);
  user.add_args()->set_inline_value("v");
  absl::Status s = recovery.RerunWithLostArgument(user, 0, "connection refused");
  CHECK(ErrorTypeOf(s) == rpc::OBJECT_LOST);
  CHECK_THAT(std::string(s.message()), Catch::Contains("cannot be reconstructed"));
  CHECK(ErrorTypeOf(recovery.RerunWithLostArgument(user, 1, "x")) == rpc::OBJECT_LOST);  // inline
  CHECK(ErrorTypeOf(recovery.RerunWithLostArgument(user, 7, "x")) == rpc::OBJECT_LOST);  // no such argument
  CHECK(resubmitted.empty());
}

TEST_CASE_METHOD(Fixture, "recovery: a lost generator item runs the generator again for its stored items",
                 "[recovery]") {
  rpc::TaskSpec gen = Spec();
  gen.set_streaming(true);
  const TaskId task = SpecTaskId(gen);
  const ObjectId item0 = ObjectId::FromTask(task, 2), item1 = ObjectId::FromTask(task, 3);
  memory.Put(item0, StoreValue(item0, kDeadRaylet, dead_node));
  memory.Put(item1, StoreValue(item1, kDeadRaylet, dead_node));
  recovery.AddLineage(gen, /*any_in_store=*/true, {item0, item1});
  REQUIRE_OK(recovery.Recover(item1, "connection refused"));
  REQUIRE(reruns.size() == 1);
  CHECK(reruns[0].task == task);
  CHECK(reruns[0].attempt == 1);
  CHECK(reruns[0].items == std::vector<ObjectId>{item0, item1});
  CHECK(memory.GetIfReady(item0) == nullptr);  // both wait for the new run
  CHECK(memory.GetIfReady(item1) == nullptr);
  REQUIRE(resubmitted.size() == 1);
  CHECK(resubmitted[0].streaming());
  CHECK(resubmitted[0].attempt() == 1);
  // Once an item is out of scope, a later re-run makes only the others.
  recovery.AddLineage(resubmitted[0], true, {item0, item1});
  recovery.Forget(item0);
  memory.Put(item1, StoreValue(item1, kDeadRaylet, dead_node));
  REQUIRE_OK(recovery.Recover(item1, "lost again"));
  REQUIRE(reruns.size() == 2);
  CHECK(reruns[1].items == std::vector<ObjectId>{item1});
}

}  // namespace
}  // namespace shoal
