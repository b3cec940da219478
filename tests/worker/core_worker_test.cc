// Unit tests of the core worker's parts that need no processes: the memory store, reference
// counting, task specs and scheduling keys, the submitter (lease reuse, spillback, retries,
// errors) over a fake transport and clock, and the executor over a fake store.
#include <catch2/catch.hpp>

#include <cstdlib>
#include <stdexcept>
#include <thread>

#include "absl/strings/cord.h"
#include "src/common/fake_clock.h"
#include "src/scheduler/scheduling_policy.h"
#include "src/worker/core_worker.h"
#include "src/worker/fake_store_access.h"
#include "src/worker/fake_task_transport.h"
#include "src/worker/memory_store.h"
#include "src/worker/object_value.h"
#include "src/worker/reference_counter.h"
#include "src/worker/task_executor.h"
#include "src/worker/task_spec.h"
#include "src/worker/task_submitter.h"
#include "tests/test_util/status_matchers.h"

namespace shoal {
namespace {

const JobId kJob = JobId::FromInt(7);

ObjectId NewObjectId() { return ObjectId::FromTask(TaskId::ForNormalTask(kJob), 1); }

std::string ErrorType(const absl::Status& s) {
  auto info = ErrorInfoOf(s);
  return info ? ErrorTypeName(*info) : std::string();
}

// ---------------------------------------------------------------------------------------------
// Memory store

TEST_CASE("memory store: put, get and first put wins", "[memory_store]") {
  MemoryStore store;
  const ObjectId id = NewObjectId();
  CHECK(store.GetIfReady(id) == nullptr);
  REQUIRE(store.Put(id, InlineValue(id, "one")));
  CHECK_FALSE(store.Put(id, InlineValue(id, "two")));
  REQUIRE(store.GetIfReady(id) != nullptr);
  CHECK(store.GetIfReady(id)->inline_data() == "one");
  CHECK(store.size() == 1);
  store.Erase(id);
  CHECK(store.GetIfReady(id) == nullptr);
}

TEST_CASE("memory store: a blocked get ends as soon as one id holds an error", "[memory_store]") {
  MemoryStore store;
  const ObjectId never = NewObjectId(), failed = NewObjectId(), fine = NewObjectId();
  store.Put(fine, InlineValue(fine, "ok"));
  std::vector<ValuePtr> got;
  std::thread getter([&] { got = store.Get({never, failed, fine}, absl::InfiniteFuture()); });
  absl::SleepFor(absl::Milliseconds(50));  // the getter waits
  store.Put(failed, ErrorValue(failed, TaskException("ValueError", "boom")));
  getter.join();  // would hang without the early end
  REQUIRE(got.size() == 3);
  CHECK(got[0] == nullptr);
  REQUIRE(got[1] != nullptr);
  CHECK(got[1]->has_error());
  // An error already there ends it at once too.
  CHECK(store.Get({never, failed}, absl::InfiniteFuture())[1]->has_error());
}

TEST_CASE("memory store: SpinFor ends when the values come, on an error, and refuses waits it would not finish",
          "[memory_store]") {
  MemoryStore store(nullptr, absl::Hours(1));
  const ObjectId a = NewObjectId(), b = NewObjectId(), failed = NewObjectId(), never = NewObjectId();
  store.Put(a, InlineValue(a, "a"));
  CHECK(store.SpinFor({a}, absl::InfiniteFuture()));  // there already
  // A value put by another thread while it spins (a budget of an hour: without the put it would
  // run past the test's time limit).
  std::thread putter([&] {
    absl::SleepFor(absl::Microseconds(300));
    store.Put(b, InlineValue(b, "b"));
  });
  CHECK(store.SpinFor({a, b}, absl::InfiniteFuture()));
  putter.join();
  // An error among the ids ends it, as it ends Get.
  store.Put(failed, ErrorValue(failed, TaskException("ValueError", "boom")));
  CHECK(store.SpinFor({never, failed}, absl::InfiniteFuture()));
  // A deadline closer than the budget, or more ids than it spins for: false at once.
  CHECK_FALSE(store.SpinFor({never}, absl::Now() + absl::Minutes(30)));
  std::vector<ObjectId> many(MemoryStore::kMaxSpinIds + 1, a);
  many.back() = never;
  CHECK_FALSE(store.SpinFor(many, absl::InfiniteFuture()));
}

TEST_CASE("memory store: get times out with the missing ids as null", "[memory_store]") {
  MemoryStore store;
  const ObjectId a = NewObjectId(), b = NewObjectId();
  store.Put(a, InlineValue(a, "a"));
  auto values = store.Get({a, b}, absl::Now());  // deadline already here: no waiting
  REQUIRE(values.size() == 2);
  REQUIRE(values[0] != nullptr);
  CHECK(values[0]->inline_data() == "a");
  CHECK(values[1] == nullptr);
}

TEST_CASE("memory store: a blocked get wakes when another thread puts", "[memory_store]") {
  MemoryStore store;
  const ObjectId a = NewObjectId(), b = NewObjectId();
  std::vector<ValuePtr> got;
  std::thread getter([&] { got = store.Get({a, b}, absl::InfiniteFuture()); });
  store.Put(b, InlineValue(b, "b"));
  store.Put(a, ErrorValue(a, TaskException("std::runtime_error", "boom")));
  getter.join();
  REQUIRE(got.size() == 2);
  REQUIRE(got[0] != nullptr);
  CHECK(got[0]->has_error());
  CHECK(got[1]->inline_data() == "b");
}

TEST_CASE("memory store: wait answers once enough are ready", "[memory_store]") {
  MemoryStore store;
  const ObjectId a = NewObjectId(), b = NewObjectId(), c = NewObjectId();
  store.Put(b, InlineValue(b, "b"));
  CHECK(store.Wait({a, b, c}, 1, absl::InfiniteFuture()) == std::vector<bool>{false, true, false});
  CHECK(store.Wait({a, b, c}, 2, absl::Now()) == std::vector<bool>{false, true, false});  // timed out
  std::vector<bool> ready;
  std::thread waiter([&] { ready = store.Wait({a, b, c}, 2, absl::InfiniteFuture()); });
  store.Put(c, InlineValue(c, "c"));
  waiter.join();
  CHECK(ready == std::vector<bool>{false, true, true});
  // num_ready above the number of ids means all of them.
  store.Put(a, InlineValue(a, "a"));
  CHECK(store.Wait({a}, 5, absl::InfiniteFuture()) == std::vector<bool>{true});
}

TEST_CASE("memory store: async waiters fire on put, deadline, erase and cancel", "[memory_store]") {
  MemoryStore store;
  const ObjectId a = NewObjectId(), b = NewObjectId(), c = NewObjectId(), d = NewObjectId();
  const absl::Time t0 = absl::FromUnixSeconds(1000);
  std::vector<std::string> events;
  auto record = [&events](std::string name) {
    return [&events, name](ValuePtr v) { events.push_back(name + (v ? ":" + v->inline_data() : ":null")); };
  };
  store.Put(a, InlineValue(a, "A"));
  store.GetAsync(a, absl::InfiniteFuture(), record("a"));  // ready: answers at once
  CHECK(events == std::vector<std::string>{"a:A"});
  store.GetAsync(b, absl::InfiniteFuture(), record("b"));
  store.GetAsync(c, t0 + absl::Seconds(1), record("c"));
  store.GetAsync(d, absl::InfiniteFuture(), record("d"));
  CHECK(store.num_async_waiters() == 3);
  store.Put(b, InlineValue(b, "B"));
  store.Tick(t0);  // c's deadline not yet
  store.Tick(t0 + absl::Seconds(1));
  store.Erase(d);
  CHECK(events == std::vector<std::string>{"a:A", "b:B", "c:null", "d:null"});
  store.GetAsync(c, absl::InfiniteFuture(), record("c2"));
  store.CancelAll();
  CHECK(events.back() == "c2:null");
  CHECK(store.num_async_waiters() == 0);
}

TEST_CASE("memory store: a waiter with a deadline runs the hook and keeps the store from quiet", "[memory_store]") {
  MemoryStore store;
  int hooks = 0;
  store.SetTimedWaitHook([&hooks] { ++hooks; });
  const ObjectId a = NewObjectId(), b = NewObjectId();
  const absl::Time t0 = absl::FromUnixSeconds(1000);
  CHECK(store.Quiet());
  store.GetAsync(a, absl::InfiniteFuture(), [](ValuePtr) {});
  CHECK(hooks == 0);  // no deadline: nothing for Tick to see
  CHECK(store.Quiet());
  store.GetAsync(b, t0 + absl::Seconds(1), [](ValuePtr) {});
  CHECK(hooks == 1);
  CHECK_FALSE(store.Quiet());
  store.Tick(t0 + absl::Seconds(1));  // its deadline passed
  CHECK(store.Quiet());
  store.Put(b, InlineValue(b, "B"));
  store.GetAsync(b, t0 + absl::Seconds(5), [](ValuePtr) {});  // ready: answered at once, no hook
  CHECK(hooks == 1);
  CHECK(store.Quiet());
}

TEST_CASE("memory store: callbacks that Put and Erase make due go to the dispatch", "[memory_store]") {
  std::vector<std::function<void()>> posted;
  bool accepting = true;
  MemoryStore store([&](std::function<void()> fn) {
    if (!accepting) return false;
    posted.push_back(std::move(fn));
    return true;
  });
  const ObjectId a = NewObjectId(), b = NewObjectId(), c = NewObjectId();
  std::vector<std::string> events;
  auto record = [&events](std::string name) {
    return [&events, name](ValuePtr v) { events.push_back(name + (v ? ":" + v->inline_data() : ":null")); };
  };
  store.GetAsync(a, absl::InfiniteFuture(), record("a1"));
  store.GetAsync(a, absl::InfiniteFuture(), record("a2"));
  store.GetAsync(b, absl::InfiniteFuture(), record("b"));
  store.Put(a, InlineValue(a, "A"));
  store.Erase(b);
  CHECK(events.empty());  // nothing ran on the putting thread
  REQUIRE(posted.size() == 2);
  // A blocking Get is woken by the put itself, not by the dispatched work.
  REQUIRE(store.Get({a}, absl::Now())[0] != nullptr);
  for (auto& fn : posted) fn();
  CHECK(events == std::vector<std::string>{"a1:A", "a2:A", "b:null"});

  // A dispatch that refuses (a stopped loop) leaves the callbacks to run inline.
  accepting = false;
  store.GetAsync(c, absl::InfiniteFuture(), record("c"));
  store.Put(c, InlineValue(c, "C"));
  CHECK(events.back() == "c:C");
  CHECK(posted.size() == 2);
}

TEST_CASE("error values map to statuses by type", "[object_value]") {
  const ObjectId id = NewObjectId();
  absl::Status app = ErrorValueToStatus(ErrorValue(id, TaskException("std::out_of_range", "index 9")));
  CHECK(app.code() == absl::StatusCode::kAborted);
  CHECK(app.message() == "index 9");
  CHECK(ErrorType(app) == "std::out_of_range");
  absl::Status crashed = ErrorValueToStatus(ErrorValue(id, rpc::WORKER_DIED, "worker died"));
  CHECK(crashed.code() == absl::StatusCode::kAborted);
  CHECK(ErrorTypeOf(crashed) == rpc::WORKER_DIED);
  CHECK(ErrorType(crashed) == "WORKER_DIED");
  CHECK(ErrorValueToStatus(ErrorValue(id, rpc::OBJECT_STORE_FULL, "full")).code() ==
        absl::StatusCode::kResourceExhausted);
  CHECK(ErrorValueToStatus(ErrorValue(id, rpc::TASK_CANCELLED, "x")).code() == absl::StatusCode::kCancelled);
  CHECK(ErrorValueToStatus(ErrorValue(id, rpc::OBJECT_LOST, "x")).code() == absl::StatusCode::kNotFound);
  CHECK(ErrorValueToStatus(ErrorValue(id, rpc::RAYLET_UNAVAILABLE, "x")).code() == absl::StatusCode::kUnavailable);

  // A function's status that carries an ErrorInfo keeps it; any other is a TASK_EXCEPTION named
  // after its code.
  absl::Status typed = ErrorStatus(TaskException("DeserializationError", "bad msgpack"));
  CHECK(TaskFailureInfo(typed).exception_type() == "DeserializationError");
  CHECK(TaskFailureInfo(typed).message() == "bad msgpack");
  rpc::ErrorInfo plain = TaskFailureInfo(absl::InvalidArgumentError("x"));
  CHECK(plain.type() == rpc::TASK_EXCEPTION);
  CHECK(plain.exception_type() == "INVALID_ARGUMENT");
}

TEST_CASE("every error type maps to a status code and back", "[object_value]") {
  for (int t = rpc::ErrorType_MIN; t <= rpc::ErrorType_MAX; ++t) {
    if (!rpc::ErrorType_IsValid(t)) continue;
    const auto type = static_cast<rpc::ErrorType>(t);
    rpc::ErrorInfo info = MakeError(type, "why");
    *info.mutable_cause() = MakeError(rpc::OBJECT_LOST, "first");
    absl::Status s = ErrorStatus(info);
    REQUIRE_FALSE(s.ok());
    CHECK(s.code() == StatusCodeFor(type));
    auto back = ErrorInfoOf(s);
    REQUIRE(back.has_value());
    CHECK(back->type() == type);
    CHECK(back->cause().type() == rpc::OBJECT_LOST);
  }
  CHECK_FALSE(ErrorInfoOf(absl::OkStatus()).has_value());
  CHECK_FALSE(ErrorInfoOf(absl::InternalError("no payload")).has_value());
  CHECK(ToErrorInfo(absl::InternalError("no payload"), rpc::SYSTEM_ERROR).type() == rpc::SYSTEM_ERROR);
}

// ---------------------------------------------------------------------------------------------
// Reference counting

TEST_CASE("reference counter: objects leave scope when the last reference goes", "[refs]") {
  ReferenceCounter refs;
  const ObjectId a = NewObjectId();
  refs.AddOwned(a);
  CHECK(refs.Contains(a));
  CHECK_FALSE(refs.RemoveLocal(a));  // never referenced: nothing to drop
  refs.AddLocal(a);
  refs.AddLocal(a);
  CHECK_FALSE(refs.RemoveLocal(a));
  refs.AddSubmitted({a});  // a pending task needs it
  CHECK_FALSE(refs.RemoveLocal(a));
  CHECK(refs.Contains(a));
  auto gone = refs.RemoveSubmitted({a});
  REQUIRE(gone.size() == 1);
  CHECK(gone[0].id == a);
  CHECK(gone[0].owned);
  CHECK_FALSE(refs.Contains(a));
  CHECK(refs.size() == 0);
}

TEST_CASE("reference counter: borrowed objects know their owner", "[refs]") {
  ReferenceCounter refs;
  const ObjectId a = NewObjectId(), b = NewObjectId();
  refs.AddOwned(a);
  refs.AddBorrowed(b, "10.0.0.2:5000");
  CHECK(refs.OwnerAddress(a) == std::optional<std::string>(""));
  CHECK(refs.OwnerAddress(b) == std::optional<std::string>("10.0.0.2:5000"));
  CHECK_FALSE(refs.OwnerAddress(NewObjectId()).has_value());
  refs.AddLocal(b);
  auto gone = refs.RemoveLocal(b);
  REQUIRE(gone.has_value());
  CHECK_FALSE(gone->owned);
}

// ---------------------------------------------------------------------------------------------
// Task specs and scheduling keys

TEST_CASE("task spec: defaults and ids", "[task_spec]") {
  auto spec = BuildTaskSpec(kJob, "Add", TaskOptions{}, "10.0.0.1:4000", {"/bin/driver", "--x"});
  REQUIRE_OK(spec);
  CHECK(spec->function_name() == "Add");
  CHECK(spec->job_id() == kJob.Hex());
  CHECK(SpecTaskId(*spec).Job() == kJob);
  CHECK(ResourceSet::FromProto(spec->resources()).Get(kCPU) == FixedPoint::FromInt(1));
  CHECK(ResourceSet::FromProto(spec->resources()).entries().size() == 1);
  CHECK(spec->max_retries() == 3);
  CHECK(spec->attempt() == 0);
  CHECK(spec->num_returns() == 1);
  CHECK(spec->owner_address() == "10.0.0.1:4000");
  CHECK(spec->worker_command_size() == 2);
  CHECK(ReturnObjectId(*spec, 1) == ObjectId::FromTask(SpecTaskId(*spec), 1));
  CHECK(ReturnObjectId(*spec, 1).Task() == SpecTaskId(*spec));
  auto other = BuildTaskSpec(kJob, "Add", TaskOptions{}, "", {});
  CHECK(other->task_id() != spec->task_id());
}

TEST_CASE("task spec: an actor call's spec has the call fields and nothing of resources or placement",
          "[task_spec]") {
  const ActorId actor = ActorId::Of(kJob);
  TaskOptions options;
  options.num_returns = 2;
  options.max_retries = 0;
  options.concurrency_group = "io";
  options.resources = *ResourceSet::FromDoubles({{"GPU", 1}});  // an actor's, not a call's: not carried
  options.strategy.set_kind(rpc::SchedulingStrategy::SPREAD);
  options.runtime_env.mutable_env_vars()->insert({"A", "1"});
  auto spec = BuildActorCallSpec(kJob, actor, "get", options, "10.0.0.1:4000");
  REQUIRE_OK(spec);
  CHECK(spec->function_name() == "get");
  CHECK(spec->actor_id() == actor.Binary());
  CHECK(SpecTaskId(*spec).Actor() == actor);
  CHECK(spec->job_id() == kJob.Hex());
  CHECK(spec->num_returns() == 2);
  CHECK(spec->max_retries() == 0);
  CHECK(spec->concurrency_group() == "io");
  CHECK(spec->owner_address() == "10.0.0.1:4000");
  CHECK(spec->attempt() == 0);
  CHECK(spec->resources().amounts_size() == 0);
  CHECK_FALSE(spec->has_strategy());
  CHECK_FALSE(spec->has_runtime_env());
  CHECK(BuildActorCallSpec(kJob, actor, "get", options, "")->task_id() != spec->task_id());
  // The call fields are checked as a task's are.
  options.num_returns = 0;
  REQUIRE_CODE(BuildActorCallSpec(kJob, actor, "get", options, ""), kInvalidArgument);
  options.num_returns = 1;
  options.max_retries = -2;
  REQUIRE_CODE(BuildActorCallSpec(kJob, actor, "get", options, ""), kInvalidArgument);
  options.max_retries = 0;
  options.generator_dynamic = true;  // without streaming
  REQUIRE_CODE(BuildActorCallSpec(kJob, actor, "get", options, ""), kInvalidArgument);
  options.generator_dynamic = false;
  REQUIRE_CODE(BuildActorCallSpec(kJob, actor, "", options, ""), kInvalidArgument);
}

TEST_CASE("task spec: bad options are refused", "[task_spec]") {
  TaskOptions gpus;
  gpus.resources = *ResourceSet::FromDoubles({{"GPU", 1.5}});
  REQUIRE_CODE(BuildTaskSpec(kJob, "f", gpus, "", {}), kInvalidArgument);
  gpus.resources = *ResourceSet::FromDoubles({{"GPU", 0.5}});
  REQUIRE_OK(BuildTaskSpec(kJob, "f", gpus, "", {}));
  gpus.resources = *ResourceSet::FromDoubles({{"GPU", 2}});
  REQUIRE_OK(BuildTaskSpec(kJob, "f", gpus, "", {}));

  TaskOptions retries;
  retries.max_retries = -2;
  REQUIRE_CODE(BuildTaskSpec(kJob, "f", retries, "", {}), kInvalidArgument);
  retries.max_retries = -1;  // no limit
  REQUIRE_OK(BuildTaskSpec(kJob, "f", retries, "", {}));

  TaskOptions affinity;
  affinity.strategy.set_kind(rpc::SchedulingStrategy::NODE_AFFINITY);
  REQUIRE_CODE(BuildTaskSpec(kJob, "f", affinity, "", {}), kInvalidArgument);  // which node?
  affinity.strategy.set_node_id("not hex");
  REQUIRE_CODE(BuildTaskSpec(kJob, "f", affinity, "", {}), kInvalidArgument);
  const NodeId node = NodeId::FromRandom();
  affinity.strategy.set_node_id(node.Hex());
  affinity.strategy.set_soft(true);
  auto spec = BuildTaskSpec(kJob, "f", affinity, "", {});
  REQUIRE_OK(spec);
  // The spec carries the strategy as it was given.
  CHECK(spec->strategy().kind() == rpc::SchedulingStrategy::NODE_AFFINITY);
  CHECK(spec->strategy().node_id() == node.Hex());
  CHECK(spec->strategy().soft());
  TaskOptions unknown;
  unknown.strategy.set_kind(static_cast<rpc::SchedulingStrategy::Kind>(42));
  REQUIRE_CODE(BuildTaskSpec(kJob, "f", unknown, "", {}), kInvalidArgument);

  REQUIRE_CODE(BuildTaskSpec(kJob, "", TaskOptions{}, "", {}), kInvalidArgument);
}

TEST_CASE("retry bookkeeping: attempts up to max_retries", "[task_spec]") {
  rpc::TaskSpec spec;
  spec.set_max_retries(2);
  spec.set_attempt(0);
  CHECK(CanRetry(spec));
  spec.set_attempt(1);
  CHECK(CanRetry(spec));
  spec.set_attempt(2);
  CHECK_FALSE(CanRetry(spec));
  spec.set_max_retries(0);
  spec.set_attempt(0);
  CHECK_FALSE(CanRetry(spec));
  spec.set_max_retries(-1);
  spec.set_attempt(1000);
  CHECK(CanRetry(spec));
}

TEST_CASE("scheduling key: resources, strategy and worker command, not the function", "[task_spec]") {
  auto key = [](const std::string& fn, std::map<std::string, double> res, const rpc::SchedulingStrategy& strategy,
                std::vector<std::string> cmd) {
    TaskOptions o;
    o.resources = *ResourceSet::FromDoubles(res);
    o.strategy = strategy;
    return SchedulingKey::Of(*BuildTaskSpec(kJob, fn, o, "", cmd));
  };
  const NodeId a = *NodeId::FromHex(std::string(56, 'a'));
  const NodeId b = *NodeId::FromHex(std::string(56, 'b'));
  const rpc::SchedulingStrategy plain = DefaultStrategy();
  const auto base = key("f", {{"CPU", 1}}, plain, {"/a"});
  CHECK(key("g", {{"CPU", 1}}, plain, {"/a"}) == base);
  CHECK(key("f", {}, plain, {"/a"}) == base);  // empty means {CPU: 1}
  CHECK_FALSE(key("f", {{"CPU", 2}}, plain, {"/a"}) == base);
  CHECK_FALSE(key("f", {{"CPU", 1}, {"GPU", 0.5}}, plain, {"/a"}) == base);
  CHECK_FALSE(key("f", {{"CPU", 1}}, SpreadStrategy(), {"/a"}) == base);
  CHECK_FALSE(key("f", {{"CPU", 1}}, NodeAffinityStrategy(a, false), {"/a"}) == base);
  CHECK(key("f", {{"CPU", 1}}, NodeAffinityStrategy(a, false), {"/a"}) ==
        key("g", {{"CPU", 1}}, NodeAffinityStrategy(a, false), {"/a"}));
  CHECK_FALSE(key("f", {{"CPU", 1}}, NodeAffinityStrategy(a, false), {"/a"}) ==
              key("f", {{"CPU", 1}}, NodeAffinityStrategy(b, false), {"/a"}));
  CHECK_FALSE(key("f", {{"CPU", 1}}, NodeAffinityStrategy(a, false), {"/a"}) ==
              key("f", {{"CPU", 1}}, NodeAffinityStrategy(a, true), {"/a"}));
  CHECK_FALSE(key("f", {{"CPU", 1}}, plain, {"/b"}) == base);
  CHECK_FALSE(key("f", {{"CPU", 1}}, plain, {"/a", "x"}) == base);
  // Argument boundaries matter: {"ab"} differs from {"a", "b"}.
  CHECK_FALSE(key("f", {}, plain, {"ab"}) == key("f", {}, plain, {"a", "b"}));
}

// ---------------------------------------------------------------------------------------------
// Submitter

constexpr char kLocal[] = "10.0.0.1:7000";

struct SubmitterFixture {
  FakeTaskTransport transport;
  FakeClock clock;
  absl::Mutex mu;
  std::vector<std::pair<rpc::TaskSpec, std::vector<rpc::ObjectValue>>> done;
  TaskSubmitter submitter{transport, clock,
                          TaskSubmitterOptions{.local_raylet_address = kLocal,
                                               .owner_address = "10.0.0.1:4000",
                                               .max_pending_lease_requests = 10,
                                               .lease_idle_timeout = absl::Milliseconds(10),
                                               .lease_retry_delay = absl::Milliseconds(200),
                                               .max_lease_failures = 3},
                          [this](const rpc::TaskSpec& spec, std::vector<rpc::ObjectValue> returns) {
                            absl::MutexLock lock(&mu);
                            done.emplace_back(spec, std::move(returns));
                          }};

  rpc::TaskSpec Spec(const std::string& fn, TaskOptions options = {}) {
    auto spec = BuildTaskSpec(kJob, fn, options, "10.0.0.1:4000", {"/bin/driver"});
    REQUIRE_OK(spec);
    return *spec;
  }
  static rpc::PushTaskReply Ok(const std::string& bytes) {
    rpc::PushTaskReply reply;
    *reply.add_returns() = InlineValue(ObjectId::Nil(), bytes);
    return reply;
  }
  static rpc::PushTaskReply AppError(const std::string& type, const std::string& message) {
    rpc::PushTaskReply reply;
    *reply.add_returns() = ErrorValue(ObjectId::Nil(), TaskException(type, message));
    reply.set_application_error(true);
    return reply;
  }
  size_t num_done() {
    absl::MutexLock lock(&mu);
    return done.size();
  }
};

TEST_CASE_METHOD(SubmitterFixture, "submitter: lease, push, result, idle return", "[submitter]") {
  TaskOptions gpu;
  gpu.resources = *ResourceSet::FromDoubles({{"CPU", 1}, {"GPU", 0.5}});
  rpc::TaskSpec spec = Spec("f", gpu);
  submitter.Submit(spec);
  REQUIRE(transport.num_pending_leases() == 1);
  auto lease = transport.TakeLease();
  CHECK(lease.raylet == kLocal);
  CHECK(lease.request.owner_address() == "10.0.0.1:4000");
  CHECK(lease.request.job_id() == kJob.Hex());
  CHECK(lease.request.worker_command_size() == 1);
  CHECK_FALSE(lease.request.grant_or_reject());
  CHECK(ResourceSet::FromProto(lease.request.resources()) == gpu.resources);

  rpc::RequestWorkerLeaseReply grant;
  grant.set_kind(rpc::RequestWorkerLeaseReply::GRANTED);
  grant.set_lease_id("L1");
  grant.set_worker_address("10.0.0.1:9001");
  grant.mutable_gpus()->add_device_ids(1);
  grant.mutable_gpus()->add_shares(5000);
  lease.done(absl::OkStatus(), grant);

  REQUIRE(transport.num_pending_pushes() == 1);
  auto push = transport.TakePush();
  CHECK(push.worker == "10.0.0.1:9001");
  CHECK(push.request.spec().task_id() == spec.task_id());
  CHECK(push.request.gpus().device_ids(0) == 1);
  push.done(absl::OkStatus(), Ok("3"));

  REQUIRE(num_done() == 1);
  CHECK(done[0].first.task_id() == spec.task_id());
  REQUIRE(done[0].second.size() == 1);
  CHECK(done[0].second[0].inline_data() == "3");
  CHECK(done[0].second[0].object_id() == ReturnObjectId(spec, 1).Binary());

  // Kept idle for reuse, returned once idle for lease_idle_timeout.
  CHECK(submitter.stats().leases == 1);
  clock.Advance(absl::Milliseconds(9));
  submitter.Tick();
  CHECK(transport.returns().empty());
  clock.Advance(absl::Milliseconds(1));
  submitter.Tick();
  REQUIRE(transport.returns().size() == 1);
  CHECK(transport.returns()[0].lease_id == "L1");
  CHECK(transport.returns()[0].raylet == kLocal);
  CHECK_FALSE(transport.returns()[0].worker_failed);
  CHECK(submitter.stats().leases == 0);
  submitter.Tick();
  CHECK(submitter.stats().keys == 0);
}

TEST_CASE_METHOD(SubmitterFixture, "submitter: a lease runs queued tasks of its key one at a time", "[submitter]") {
  for (int i = 0; i < 3; ++i) submitter.Submit(Spec("f"));
  CHECK(transport.num_pending_leases() == 3);  // min(queue, 10)
  transport.GrantNext("w1:1", "L1");
  CHECK(transport.num_pending_pushes() == 1);  // one task at a time per lease
  for (int i = 0; i < 3; ++i) {
    REQUIRE(transport.num_pending_pushes() == 1);
    auto push = transport.TakePush();
    CHECK(push.worker == "w1:1");
    push.done(absl::OkStatus(), Ok(std::to_string(i)));
  }
  CHECK(num_done() == 3);
  // Late grants find the queue empty and idle; nothing was returned yet.
  transport.GrantNext("w2:1", "L2");
  transport.GrantNext("w3:1", "L3");
  CHECK(transport.num_pending_pushes() == 0);
  CHECK(transport.returns().empty());
  // A new task reuses an idle lease without a new request.
  submitter.Submit(Spec("g"));
  CHECK(transport.num_pending_leases() == 0);
  CHECK(transport.num_pending_pushes() == 1);
}

TEST_CASE_METHOD(SubmitterFixture, "submitter: at most 10 lease requests per key", "[submitter]") {
  for (int i = 0; i < 25; ++i) submitter.Submit(Spec("f"));
  CHECK(transport.num_pending_leases() == 10);
  CHECK(submitter.stats().queued == 25);
  transport.GrantNext("w1:1", "L1");
  // One task went to the new lease; 24 still queue, so the request is renewed.
  CHECK(transport.num_pending_leases() == 10);
  CHECK(submitter.stats().queued == 24);
  // A different shape gets its own requests.
  TaskOptions two;
  two.resources = *ResourceSet::FromDoubles({{"CPU", 2}});
  submitter.Submit(Spec("f", two));
  CHECK(transport.num_pending_leases() == 11);
  CHECK(submitter.stats().keys == 2);
}

TEST_CASE_METHOD(SubmitterFixture, "submitter: spillback asks the other raylet, which takes the lease back",
                 "[submitter]") {
  submitter.Submit(Spec("f"));
  auto first = transport.TakeLease();
  rpc::RequestWorkerLeaseReply spill;
  spill.set_kind(rpc::RequestWorkerLeaseReply::SPILLBACK);
  spill.set_spillback_raylet_address("10.0.0.2:7000");
  first.done(absl::OkStatus(), spill);
  REQUIRE(transport.num_pending_leases() == 1);
  auto second = transport.TakeLease();
  CHECK(second.raylet == "10.0.0.2:7000");
  CHECK(second.request.grant_or_reject());
  rpc::RequestWorkerLeaseReply grant;
  grant.set_kind(rpc::RequestWorkerLeaseReply::GRANTED);
  grant.set_lease_id("R1");
  grant.set_worker_address("10.0.0.2:9001");
  second.done(absl::OkStatus(), grant);
  transport.ReplyNext(Ok("x"));
  clock.Advance(absl::Seconds(1));
  submitter.Tick();
  REQUIRE(transport.returns().size() == 1);
  CHECK(transport.returns()[0].raylet == "10.0.0.2:7000");
  CHECK(transport.returns()[0].lease_id == "R1");
}

TEST_CASE_METHOD(SubmitterFixture, "submitter: a dead worker's task is retried on a new lease", "[submitter]") {
  rpc::TaskSpec spec = Spec("f");  // max_retries 3
  submitter.Submit(spec);
  transport.GrantNext("w1:1", "L1");
  auto failed = transport.FailNext(absl::UnavailableError("connection reset"));
  CHECK(failed.spec().attempt() == 0);
  REQUIRE(transport.returns().size() == 1);
  CHECK(transport.returns()[0].lease_id == "L1");
  CHECK(transport.returns()[0].worker_failed);
  CHECK(num_done() == 0);
  REQUIRE(transport.num_pending_leases() == 1);  // a fresh lease for the retry
  transport.GrantNext("w2:1", "L2");
  auto retried = transport.TakePush();
  CHECK(retried.worker == "w2:1");
  CHECK(retried.request.spec().attempt() == 1);
  CHECK(retried.request.spec().task_id() == spec.task_id());
  retried.done(absl::OkStatus(), Ok("ok"));
  REQUIRE(num_done() == 1);
  CHECK(done[0].second[0].inline_data() == "ok");
}

TEST_CASE_METHOD(SubmitterFixture, "submitter: WorkerCrashedError after max_retries", "[submitter]") {
  TaskOptions once;
  once.max_retries = 1;
  submitter.Submit(Spec("Flaky", once));
  transport.GrantNext("w1:1", "L1");
  transport.FailNext(absl::UnavailableError("connection reset"));
  transport.GrantNext("w2:1", "L2");
  transport.FailNext(absl::UnavailableError("socket closed"));
  REQUIRE(num_done() == 1);
  const rpc::ObjectValue& v = done[0].second[0];
  CHECK(v.has_error());
  CHECK(v.error().type() == rpc::WORKER_DIED);
  CHECK_THAT(v.error().message(), Catch::Contains("Flaky"));
  CHECK_THAT(v.error().message(), Catch::Contains("2 attempt"));
  CHECK_THAT(v.error().message(), Catch::Contains("socket closed"));
  CHECK(transport.num_pending_leases() == 0);
  CHECK(transport.returns().size() == 2);

  TaskOptions never;
  never.max_retries = 0;
  submitter.Submit(Spec("Once", never));
  transport.GrantNext("w3:1", "L3");
  transport.FailNext(absl::UnavailableError("gone"));
  REQUIRE(num_done() == 2);
  CHECK(done[1].second[0].error().type() == rpc::WORKER_DIED);
}

TEST_CASE_METHOD(SubmitterFixture, "submitter: application errors are not retried unless asked", "[submitter]") {
  submitter.Submit(Spec("f"));
  transport.GrantNext("w1:1", "L1");
  transport.ReplyNext(AppError("std::runtime_error", "bad"));
  REQUIRE(num_done() == 1);
  CHECK(done[0].second[0].has_error());
  CHECK(done[0].second[0].error().exception_type() == "std::runtime_error");
  CHECK(transport.returns().empty());  // the worker is fine: the lease stays

  TaskOptions retry;
  retry.retry_exceptions = true;
  retry.max_retries = 2;
  submitter.Submit(Spec("g", retry));
  // The idle lease takes it; two retries on the same worker, then the error stands.
  for (int attempt = 0; attempt < 3; ++attempt) {
    REQUIRE(transport.num_pending_pushes() == 1);
    auto req = transport.ReplyNext(AppError("std::runtime_error", "still bad"));
    CHECK(req.spec().attempt() == attempt);
  }
  REQUIRE(num_done() == 2);
  CHECK(done[1].second[0].error().message() == "still bad");
  CHECK(transport.num_pending_pushes() == 0);

  // A retried exception that then succeeds answers the value.
  submitter.Submit(Spec("h", retry));
  transport.ReplyNext(AppError("std::runtime_error", "once"));
  transport.ReplyNext(Ok("fine"));
  REQUIRE(num_done() == 3);
  CHECK(done[2].second[0].inline_data() == "fine");
}

TEST_CASE_METHOD(SubmitterFixture, "submitter: a worker that exits after its reply (max_calls) is not reused",
                 "[submitter]") {
  submitter.Submit(Spec("f"));
  submitter.Submit(Spec("f"));
  transport.GrantNext("w1:1", "L1");
  rpc::PushTaskReply last = Ok("one");
  last.set_worker_exiting(true);
  transport.ReplyNext(last);
  REQUIRE(num_done() == 1);
  // The lease went back (its worker is ending) and the second task asks for a new one.
  REQUIRE(transport.returns().size() == 1);
  CHECK(transport.returns()[0].lease_id == "L1");
  CHECK(transport.num_pending_pushes() == 0);
  transport.GrantNext("w2:1", "L2");
  auto req = transport.ReplyNext(Ok("two"));
  CHECK(req.spec().attempt() == 0);
  REQUIRE(num_done() == 2);
  CHECK(done[1].second[0].inline_data() == "two");
}

TEST_CASE_METHOD(SubmitterFixture, "submitter: a SPREAD task's lease goes back after it, never reused",
                 "[submitter]") {
  TaskOptions spread;
  spread.strategy = SpreadStrategy();
  submitter.Submit(Spec("f", spread));
  submitter.Submit(Spec("f", spread));
  REQUIRE(transport.num_pending_leases() == 2);
  transport.GrantNext("w1:1", "L1");
  transport.ReplyNext(Ok("one"));
  // L1 went back; the second task waits for its own lease instead of taking L1.
  REQUIRE(transport.returns().size() == 1);
  CHECK(transport.returns()[0].lease_id == "L1");
  CHECK_FALSE(transport.returns()[0].worker_failed);
  CHECK(transport.num_pending_pushes() == 0);
  CHECK(transport.num_pending_leases() == 1);
  transport.GrantNext("w2:1", "L2");
  auto second = transport.TakePush();
  CHECK(second.worker == "w2:1");
  second.done(absl::OkStatus(), Ok("two"));
  REQUIRE(num_done() == 2);
  REQUIRE(transport.returns().size() == 2);
  CHECK(transport.returns()[1].lease_id == "L2");
  CHECK(submitter.stats().leases == 0);
  // A later SPREAD task asks for a new lease too: none is kept idle.
  submitter.Submit(Spec("f", spread));
  CHECK(transport.num_pending_leases() == 1);
}

TEST_CASE_METHOD(SubmitterFixture, "submitter: an error the task marks not retryable is not retried",
                 "[submitter]") {
  TaskOptions retry;
  retry.retry_exceptions = true;
  retry.max_retries = 3;
  submitter.Submit(Spec("f", retry));
  transport.GrantNext("w1:1", "L1");
  rpc::PushTaskReply reply = AppError("KeyError", "not in the list");
  reply.mutable_returns(0)->mutable_error()->set_not_retryable(true);
  auto req = transport.ReplyNext(reply);
  CHECK(req.spec().attempt() == 0);
  REQUIRE(num_done() == 1);
  CHECK(transport.num_pending_pushes() == 0);
  CHECK(done[0].second[0].error().exception_type() == "KeyError");
}

TEST_CASE_METHOD(SubmitterFixture, "submitter: a rejected lease fails the key's queued tasks", "[submitter]") {
  submitter.Submit(Spec("f"));
  submitter.Submit(Spec("f"));
  auto lease = transport.TakeLease();
  rpc::RequestWorkerLeaseReply reject;
  reject.set_kind(rpc::RequestWorkerLeaseReply::REJECTED);
  reject.set_message("no such node");
  lease.done(absl::OkStatus(), reject);
  REQUIRE(num_done() == 2);
  for (const auto& [spec, returns] : done) {
    CHECK(returns[0].error().type() == rpc::TASK_UNSCHEDULABLE);
    CHECK_THAT(returns[0].error().message(), Catch::Contains("no such node"));
  }
  // The other request finds nothing to run when granted, and idles.
  transport.GrantNext("w1:1", "L1");
  CHECK(transport.num_pending_pushes() == 0);
}

TEST_CASE_METHOD(SubmitterFixture, "submitter: an idle lease goes back at once when another key waits",
                 "[submitter]") {
  TaskOptions big;
  big.resources = *ResourceSet::FromDoubles({{"CPU", 4}});
  submitter.Submit(Spec("small"));
  transport.GrantNext("w1:1", "L1");
  submitter.Submit(Spec("big", big));  // its lease request waits at the raylet
  CHECK(transport.num_pending_leases() == 1);
  transport.ReplyNext(Ok("done"));
  REQUIRE(transport.returns().size() == 1);  // not kept idle: the big task needs the room
  CHECK(transport.returns()[0].lease_id == "L1");
}

TEST_CASE_METHOD(SubmitterFixture, "submitter: a lease held long gives way to other keys", "[submitter]") {
  TaskOptions big;
  big.resources = *ResourceSet::FromDoubles({{"CPU", 4}});
  for (int i = 0; i < 3; ++i) submitter.Submit(Spec("small"));
  transport.GrantNext("w1:1", "L1");
  submitter.Submit(Spec("big", big));
  transport.ReplyNext(Ok("1"));  // held briefly: keeps serving its own queue
  CHECK(transport.returns().empty());
  CHECK(transport.num_pending_pushes() == 1);
  clock.Advance(absl::Seconds(1));  // lease_max_hold
  transport.ReplyNext(Ok("2"));
  REQUIRE(transport.returns().size() == 1);  // back to the raylet, so the big task can get room
  CHECK(transport.num_pending_pushes() == 0);
  CHECK(submitter.stats().queued == 2);  // one small task left, and the big one
  // The small key still has its lease requests out.
  CHECK(transport.num_pending_leases() >= 2);
}

TEST_CASE_METHOD(SubmitterFixture, "submitter: lease requests that break are retried, then fail the tasks",
                 "[submitter]") {
  submitter.Submit(Spec("f"));
  transport.TakeLease().done(absl::UnavailableError("raylet down"), {});
  CHECK(transport.num_pending_leases() == 0);  // waits lease_retry_delay
  submitter.Tick();
  CHECK(transport.num_pending_leases() == 0);
  clock.Advance(absl::Milliseconds(200));
  submitter.Tick();
  REQUIRE(transport.num_pending_leases() == 1);
  transport.TakeLease().done(absl::UnavailableError("raylet down"), {});
  clock.Advance(absl::Milliseconds(200));
  submitter.Tick();
  transport.TakeLease().done(absl::UnavailableError("raylet down"), {});  // third failure in a row
  REQUIRE(num_done() == 1);
  CHECK(done[0].second[0].error().type() == rpc::RAYLET_UNAVAILABLE);

  // A spilled-back raylet that breaks sends the request home again (after the delay).
  submitter.Submit(Spec("g"));
  rpc::RequestWorkerLeaseReply spill;
  spill.set_kind(rpc::RequestWorkerLeaseReply::SPILLBACK);
  spill.set_spillback_raylet_address("10.0.0.3:7000");
  transport.TakeLease().done(absl::OkStatus(), spill);
  auto remote = transport.TakeLease();
  CHECK(remote.raylet == "10.0.0.3:7000");
  remote.done(absl::UnavailableError("node died"), {});
  clock.Advance(absl::Milliseconds(200));
  submitter.Tick();
  REQUIRE(transport.num_pending_leases() == 1);
  CHECK(transport.GrantNext("w1:1", "L1") == kLocal);
  transport.ReplyNext(Ok("ok"));
  CHECK(num_done() == 2);
}

TEST_CASE_METHOD(SubmitterFixture, "submitter: shutdown returns leases, busy ones as failed", "[submitter]") {
  submitter.Submit(Spec("a"));
  submitter.Submit(Spec("b"));
  submitter.Submit(Spec("c"));
  transport.GrantNext("w1:1", "L1");
  transport.GrantNext("w2:1", "L2");
  auto push = transport.TakePush();  // L1 busy with a
  transport.ReplyNext(Ok("b"));      // L2 takes c
  transport.ReplyNext(Ok("c"));      // L2 idle
  submitter.Shutdown();
  auto returns = transport.returns();
  REQUIRE(returns.size() == 2);
  for (const auto& r : returns) CHECK(r.worker_failed == (r.lease_id == "L1"));
  // Late answers are ignored; late grants go straight back.
  push.done(absl::OkStatus(), Ok("a"));
  CHECK(num_done() == 2);
  REQUIRE(transport.num_pending_leases() == 1);
  transport.GrantNext("w3:1", "L3");
  REQUIRE(transport.returns().size() == 3);
  CHECK(transport.returns()[2].lease_id == "L3");
  CHECK_FALSE(transport.returns()[2].worker_failed);
  submitter.Submit(Spec("d"));
  CHECK(transport.num_pending_leases() == 0);
  CHECK(transport.num_pending_pushes() == 0);
}

// ---------------------------------------------------------------------------------------------
// Executor

struct ExecutorFixture {
  FakeStoreAccess store;
  TaskExecutor executor{store};

  static bool registered;
  ExecutorFixture() {
    if (registered) return;
    registered = true;
    RegisterTaskFunction("test.concat", [](const std::vector<std::string>& args) -> absl::StatusOr<std::string> {
      std::string out;
      for (const auto& a : args) out += a;
      return out;
    });
    RegisterTaskFunction("test.cuda", [](const std::vector<std::string>&) -> absl::StatusOr<std::string> {
      const char* v = std::getenv("CUDA_VISIBLE_DEVICES");
      return v == nullptr ? std::string("<unset>") : std::string(v);
    });
    RegisterTaskFunction("test.throw", [](const std::vector<std::string>&) -> absl::StatusOr<std::string> {
      throw std::out_of_range("index 9 out of range");
    });
    RegisterTaskFunction("test.throw_int", [](const std::vector<std::string>&) -> absl::StatusOr<std::string> {
      throw 42;
    });
    RegisterTaskFunction("test.fail", [](const std::vector<std::string>&) -> absl::StatusOr<std::string> {
      return ErrorStatus(TaskException("ParseError", "cannot parse"));
    });
    RegisterTaskFunction("test.big", [](const std::vector<std::string>& args) -> absl::StatusOr<std::string> {
      return std::string(std::stoul(args.at(0)), 'z');
    });
  }

  static rpc::PushTaskRequest Request(const std::string& fn, const std::vector<std::string>& args) {
    rpc::PushTaskRequest req;
    *req.mutable_spec() = *BuildTaskSpec(kJob, fn, TaskOptions{}, "", {});
    for (const auto& a : args) req.mutable_spec()->add_args()->set_inline_value(a);
    return req;
  }
};
bool ExecutorFixture::registered = false;

TEST_CASE_METHOD(ExecutorFixture, "executor: runs the function on inline and store arguments", "[executor]") {
  CHECK_FALSE(RegisterTaskFunction("test.concat", nullptr));  // names are unique
  rpc::PushTaskRequest req = Request("test.concat", {"a", "b"});
  const ObjectId stored = NewObjectId();
  store.Insert(stored, "C");
  *req.mutable_spec()->add_args()->mutable_object() = StoreValue(stored, "10.0.0.9:7000", NodeId::FromRandom());
  rpc::PushTaskReply reply = executor.Execute(req);
  CHECK_FALSE(reply.application_error());
  REQUIRE(reply.returns_size() == 1);
  CHECK(reply.returns(0).inline_data() == "abC");
  CHECK(reply.returns(0).object_id() == ReturnObjectId(req.spec(), 1).Binary());
}

TEST_CASE_METHOD(ExecutorFixture, "executor: exports the granted GPUs", "[executor]") {
  rpc::PushTaskRequest req = Request("test.cuda", {});
  req.mutable_gpus()->add_device_ids(1);
  req.mutable_gpus()->add_device_ids(3);
  CHECK(executor.Execute(req).returns(0).inline_data() == "1,3");
  req.clear_gpus();
  CHECK(executor.Execute(req).returns(0).inline_data() == "");
}

TEST_CASE_METHOD(ExecutorFixture, "executor: an actor's methods keep the GPUs of its creation", "[executor]") {
  const ActorId actor = ActorId::Of(kJob);
  rpc::PushTaskRequest create = Request("test.cuda", {});
  create.mutable_spec()->set_actor_id(actor.Binary());
  create.mutable_spec()->set_actor_creation(true);
  create.mutable_gpus()->add_device_ids(2);
  CHECK(executor.Execute(create).returns(0).inline_data() == "2");
  rpc::PushTaskRequest method = Request("test.cuda", {});  // method calls carry no GPUs
  method.mutable_spec()->set_actor_id(actor.Binary());
  CHECK(executor.Execute(method).returns(0).inline_data() == "2");
}

TEST_CASE_METHOD(ExecutorFixture, "executor: failures become application errors", "[executor]") {
  rpc::PushTaskReply unknown = executor.Execute(Request("test.nope", {}));
  CHECK(unknown.application_error());
  CHECK(unknown.returns(0).has_error());
  CHECK(unknown.returns(0).error().message() == "function 'test.nope' is not registered in this worker");

  rpc::PushTaskReply thrown = executor.Execute(Request("test.throw", {}));
  CHECK(thrown.application_error());
  CHECK(thrown.returns(0).error().exception_type() == "std::out_of_range");
  CHECK(thrown.returns(0).error().message() == "index 9 out of range");

  rpc::PushTaskReply thrown_int = executor.Execute(Request("test.throw_int", {}));
  CHECK(thrown_int.application_error());
  CHECK(thrown_int.returns(0).error().exception_type() == "int");

  rpc::PushTaskReply failed = executor.Execute(Request("test.fail", {}));
  CHECK(failed.application_error());
  CHECK(failed.returns(0).error().exception_type() == "ParseError");
  CHECK(failed.returns(0).error().message() == "cannot parse");
}

TEST_CASE_METHOD(ExecutorFixture, "executor: large results go to the store", "[executor]") {
  rpc::PushTaskRequest small = Request("test.big", {std::to_string(kMaxInlineObjectSize)});
  CHECK_FALSE(executor.Execute(small).returns(0).in_store());

  rpc::PushTaskRequest big = Request("test.big", {std::to_string(kMaxInlineObjectSize + 1)});
  rpc::PushTaskReply reply = executor.Execute(big);
  CHECK_FALSE(reply.application_error());
  REQUIRE(reply.returns(0).in_store());
  CHECK(reply.returns(0).raylet_address() == "10.0.0.1:7000");
  CHECK(reply.returns(0).inline_data().empty());
  const ObjectId id = ReturnObjectId(big.spec(), 1);
  CHECK(store.Contains(id));
  CHECK(store.Read(reply.returns(0), absl::InfiniteFuture())->size() == kMaxInlineObjectSize + 1);

  store.set_full(true);
  rpc::PushTaskReply full = executor.Execute(Request("test.big", {std::to_string(kMaxInlineObjectSize + 1)}));
  CHECK(full.returns(0).error().type() == rpc::OBJECT_STORE_FULL);
  CHECK_FALSE(full.application_error());
}

TEST_CASE_METHOD(ExecutorFixture, "executor: an unreadable argument is a system error", "[executor]") {
  rpc::PushTaskRequest req = Request("test.concat", {});
  *req.mutable_spec()->add_args()->mutable_object() = StoreValue(NewObjectId(), "10.0.0.9:7000", NodeId::FromRandom());
  rpc::PushTaskReply reply = executor.Execute(req);
  CHECK_FALSE(reply.application_error());
  CHECK(reply.returns(0).error().type() == rpc::OBJECT_LOST);
  CHECK_THAT(reply.returns(0).error().message(), Catch::Contains("test.concat"));
}

}  // namespace
}  // namespace shoal
