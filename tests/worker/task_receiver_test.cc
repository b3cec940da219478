#include "src/worker/task_receiver.h"

#include <catch2/catch.hpp>

#include <algorithm>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "src/common/fake_clock.h"
#include "src/worker/task_spec.h"

namespace shoal {
namespace {

const JobId kJob = JobId::FromInt(3);

// A push as the gRPC edge holds it: request, reply and the answer once `done` ran.
struct Push {
  rpc::PushTaskRequest request;
  rpc::PushTaskReply reply;
  absl::Mutex mu;
  bool answered ABSL_GUARDED_BY(mu) = false;
  absl::Status status ABSL_GUARDED_BY(mu);

  TaskReceiver::Done Done() {
    return [this](absl::Status s) {
      absl::MutexLock lock(&mu);
      answered = true;
      status = std::move(s);
    };
  }
  // Waits (bounded) for the answer.
  absl::Status Await() {
    absl::MutexLock lock(&mu);
    auto is_answered = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) { return answered; };
    REQUIRE(mu.AwaitWithTimeout(absl::Condition(&is_answered), absl::Seconds(10)));
    return status;
  }
  bool IsAnswered() {
    absl::MutexLock lock(&mu);
    return answered;
  }
};

std::unique_ptr<Push> NormalTask(const std::string& function, int max_calls = 0) {
  auto p = std::make_unique<Push>();
  rpc::TaskSpec& spec = *p->request.mutable_spec();
  spec.set_task_id(TaskId::ForNormalTask(kJob).Binary());
  spec.set_function_name(function);
  spec.set_num_returns(1);
  spec.set_max_calls(max_calls);
  return p;
}

std::unique_ptr<Push> MethodCall(const ActorId& actor, const std::string& caller, int64_t seq) {
  auto p = std::make_unique<Push>();
  rpc::TaskSpec& spec = *p->request.mutable_spec();
  spec.set_task_id(TaskId::ForActorTask(actor).Binary());
  spec.set_actor_id(actor.Binary());
  spec.set_function_name(absl::StrCat("m", seq));
  spec.set_caller_id(caller);
  spec.set_sequence_number(seq);
  spec.set_num_returns(1);
  return p;
}

// Records what ran, in order; answers the function name as the value.
struct Runner {
  absl::Mutex mu;
  std::vector<std::string> ran ABSL_GUARDED_BY(mu);
  TaskReceiver::Runner Fn() {
    return [this](const rpc::PushTaskRequest& req) {
      {
        absl::MutexLock lock(&mu);
        ran.push_back(req.spec().function_name());
      }
      rpc::PushTaskReply reply;
      reply.add_returns()->set_inline_data(req.spec().function_name());
      return reply;
    };
  }
  std::vector<std::string> Ran() {
    absl::MutexLock lock(&mu);
    return ran;
  }
};

std::unique_ptr<Push> Constructor(const ActorId& actor, int max_concurrency,
                                  std::map<std::string, int> groups = {}) {
  auto p = std::make_unique<Push>();
  rpc::TaskSpec& spec = *p->request.mutable_spec();
  spec.set_task_id(TaskId::ForActorTask(actor).Binary());
  spec.set_actor_id(actor.Binary());
  spec.set_actor_creation(true);
  spec.set_function_name("ctor");
  spec.set_max_concurrency(max_concurrency);
  for (const auto& [name, limit] : groups) (*spec.mutable_concurrency_groups())[name] = limit;
  return p;
}

// Holds every method call until Open(); counts the calls running at once, by group.
struct Gate {
  absl::Mutex mu;
  bool open ABSL_GUARDED_BY(mu) = false;
  std::map<std::string, int> running ABSL_GUARDED_BY(mu);
  std::map<std::string, int> peak ABSL_GUARDED_BY(mu);
  int started ABSL_GUARDED_BY(mu) = 0;

  TaskReceiver::Runner Fn() {
    return [this](const rpc::PushTaskRequest& req) {
      if (req.spec().actor_creation()) return rpc::PushTaskReply();
      const std::string group = req.spec().concurrency_group();
      absl::MutexLock lock(&mu);
      ++started;
      int& now = ++running[group];
      peak[group] = std::max(peak[group], now);
      mu.Await(absl::Condition(&open));
      --running[group];
      rpc::PushTaskReply reply;
      reply.add_returns()->set_inline_data(req.spec().function_name());
      return reply;
    };
  }
  // Waits (bounded) until `n` calls have started.
  void AwaitStarted(int n) {
    absl::MutexLock lock(&mu);
    auto enough = [this, n]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) { return started >= n; };
    REQUIRE(mu.AwaitWithTimeout(absl::Condition(&enough), absl::Seconds(10)));
  }
  int Started() {
    absl::MutexLock lock(&mu);
    return started;
  }
  void Open() {
    absl::MutexLock lock(&mu);
    open = true;
  }
  int Peak(const std::string& group) {
    absl::MutexLock lock(&mu);
    return peak[group];
  }
};

TEST_CASE("receiver: a concurrent actor runs up to max_concurrency calls at once, after its constructor",
          "[task_receiver]") {
  FakeClock clock;
  Gate gate;
  TaskReceiver receiver(clock, gate.Fn(), {});
  const ActorId actor = ActorId::Of(kJob);
  auto ctor = Constructor(actor, /*max_concurrency=*/3);
  std::vector<std::unique_ptr<Push>> calls;
  receiver.Push(&ctor->request, &ctor->reply, ctor->Done());
  for (int i = 0; i < 5; ++i) {
    calls.push_back(MethodCall(actor, "c", i));
    receiver.Push(&calls.back()->request, &calls.back()->reply, calls.back()->Done());
  }
  CHECK(gate.Started() == 0);  // nothing runs before the constructor
  std::thread loop([&] { (void)receiver.Run(); });
  REQUIRE(ctor->Await().ok());
  gate.AwaitStarted(3);
  absl::SleepFor(absl::Milliseconds(50));  // a fourth would have started by now
  CHECK(gate.Started() == 3);
  gate.Open();
  for (auto& c : calls) REQUIRE(c->Await().ok());
  CHECK(gate.Peak("") == 3);
  receiver.RequestExit(absl::OkStatus());
  loop.join();
}

TEST_CASE("receiver: each concurrency group runs up to its own limit", "[task_receiver]") {
  FakeClock clock;
  Gate gate;
  TaskReceiver receiver(clock, gate.Fn(), {});
  const ActorId actor = ActorId::Of(kJob);
  auto ctor = Constructor(actor, /*max_concurrency=*/1, {{"io", 2}, {"compute", 4}});
  receiver.Push(&ctor->request, &ctor->reply, ctor->Done());
  std::thread loop([&] { (void)receiver.Run(); });
  REQUIRE(ctor->Await().ok());
  std::vector<std::unique_ptr<Push>> calls;
  const char* groups[] = {"io", "compute", "", "io", "compute", "", "io", "compute", "compute", "compute", "io"};
  int seq = 0;
  for (const char* g : groups) {
    calls.push_back(MethodCall(actor, "c", seq++));
    calls.back()->request.mutable_spec()->set_concurrency_group(g);
    receiver.Push(&calls.back()->request, &calls.back()->reply, calls.back()->Done());
  }
  gate.AwaitStarted(2 + 4 + 1);
  absl::SleepFor(absl::Milliseconds(50));
  CHECK(gate.Started() == 7);
  gate.Open();
  for (auto& c : calls) REQUIRE(c->Await().ok());
  CHECK(gate.Peak("io") == 2);
  CHECK(gate.Peak("compute") == 4);
  CHECK(gate.Peak("") == 1);
  receiver.RequestExit(absl::OkStatus());
  loop.join();
}

TEST_CASE("receiver: a call naming an unknown group is refused in its turn, the caller's next calls run",
          "[task_receiver]") {
  FakeClock clock;
  Runner runner;
  TaskReceiver receiver(clock, runner.Fn(), {});
  const ActorId actor = ActorId::Of(kJob);
  auto ctor = Constructor(actor, 2, {{"io", 1}});
  receiver.Push(&ctor->request, &ctor->reply, ctor->Done());
  std::thread loop([&] { (void)receiver.Run(); });
  REQUIRE(ctor->Await().ok());
  auto bad = MethodCall(actor, "c", 0);
  bad->request.mutable_spec()->set_concurrency_group("nope");
  auto next = MethodCall(actor, "c", 1);
  receiver.Push(&next->request, &next->reply, next->Done());
  receiver.Push(&bad->request, &bad->reply, bad->Done());
  absl::Status refused = bad->Await();
  CHECK(absl::IsInvalidArgument(refused));
  CHECK(absl::StrContains(refused.message(), "nope"));
  REQUIRE(next->Await().ok());  // no sequence gap was left behind
  CHECK(runner.Ran() == std::vector<std::string>{"ctor", "m1"});
  receiver.RequestExit(absl::OkStatus());
  loop.join();
}

TEST_CASE("receiver: a plain actor refuses a call naming a group", "[task_receiver]") {
  FakeClock clock;
  Runner runner;
  TaskReceiver receiver(clock, runner.Fn(), {});
  const ActorId actor = ActorId::Of(kJob);
  auto ctor = Constructor(actor, 1);
  receiver.Push(&ctor->request, &ctor->reply, ctor->Done());
  std::thread loop([&] { (void)receiver.Run(); });
  REQUIRE(ctor->Await().ok());
  auto bad = MethodCall(actor, "c", 0);
  bad->request.mutable_spec()->set_concurrency_group("io");
  receiver.Push(&bad->request, &bad->reply, bad->Done());
  CHECK(absl::IsInvalidArgument(bad->Await()));
  receiver.RequestExit(absl::OkStatus());
  loop.join();
}

TEST_CASE("receiver: exit answers calls still queued in groups and joins the groups' threads", "[task_receiver]") {
  FakeClock clock;
  Gate gate;
  auto ctor = Constructor(ActorId::Of(kJob), 1, {{"io", 1}});
  const ActorId actor = ActorId::FromBinary(ctor->request.spec().actor_id()).value();
  std::vector<std::unique_ptr<Push>> calls;
  {
    TaskReceiver receiver(clock, gate.Fn(), {});
    receiver.Push(&ctor->request, &ctor->reply, ctor->Done());
    std::thread loop([&] { (void)receiver.Run(); });
    REQUIRE(ctor->Await().ok());
    for (int i = 0; i < 3; ++i) {
      calls.push_back(MethodCall(actor, "c", i));
      calls.back()->request.mutable_spec()->set_concurrency_group("io");
      receiver.Push(&calls.back()->request, &calls.back()->reply, calls.back()->Done());
    }
    gate.AwaitStarted(1);
    receiver.RequestExit(absl::OkStatus());
    loop.join();
    CHECK(absl::IsUnavailable(calls[1]->Await()));
    CHECK(absl::IsUnavailable(calls[2]->Await()));
    gate.Open();  // the running call finishes; Drain (the destructor) joins its thread
  }
  CHECK(calls[0]->Await().ok());
}

TEST_CASE("receiver: a queued call can be cancelled before it runs, a running one cannot", "[task_receiver]") {
  FakeClock clock;
  Gate gate;
  TaskReceiver receiver(clock, gate.Fn(), {});
  const ActorId actor = ActorId::Of(kJob);
  auto ctor = Constructor(actor, 1);
  receiver.Push(&ctor->request, &ctor->reply, ctor->Done());
  std::thread loop([&] { (void)receiver.Run(); });
  REQUIRE(ctor->Await().ok());
  auto running = MethodCall(actor, "c", 0);
  auto queued = MethodCall(actor, "c", 1);
  receiver.Push(&running->request, &running->reply, running->Done());
  receiver.Push(&queued->request, &queued->reply, queued->Done());
  gate.AwaitStarted(1);
  CHECK_FALSE(receiver.CancelQueued(SpecTaskId(running->request.spec())));
  CHECK(receiver.CancelQueued(SpecTaskId(queued->request.spec())));
  CHECK(absl::IsCancelled(queued->Await()));
  CHECK_FALSE(receiver.CancelQueued(SpecTaskId(queued->request.spec())));  // gone
  gate.Open();
  REQUIRE(running->Await().ok());
  CHECK(gate.Started() == 1);
  receiver.RequestExit(absl::OkStatus());
  loop.join();
}

TEST_CASE("receiver: runs pushed tasks in order and answers each", "[task_receiver]") {
  FakeClock clock;
  Runner runner;
  TaskReceiver receiver(clock, runner.Fn(), {});
  auto a = NormalTask("a");
  auto b = NormalTask("b");
  receiver.Push(&a->request, &a->reply, a->Done());
  receiver.Push(&b->request, &b->reply, b->Done());
  std::thread loop([&] { CHECK(receiver.Run().ok()); });
  REQUIRE(a->Await().ok());
  REQUIRE(b->Await().ok());
  CHECK(a->reply.returns(0).inline_data() == "a");
  CHECK(b->reply.returns(0).inline_data() == "b");
  CHECK(runner.Ran() == std::vector<std::string>{"a", "b"});
  receiver.RequestExit(absl::OkStatus());
  loop.join();
}

TEST_CASE("receiver: a worker exits after max_calls of a function", "[task_receiver]") {
  FakeClock clock;
  Runner runner;
  TaskReceiver receiver(clock, runner.Fn(), {});
  auto first = NormalTask("f", /*max_calls=*/2);
  auto other = NormalTask("g", /*max_calls=*/2);  // counted apart from f
  auto second = NormalTask("f", /*max_calls=*/2);
  auto after = NormalTask("h");
  receiver.Push(&first->request, &first->reply, first->Done());
  receiver.Push(&other->request, &other->reply, other->Done());
  receiver.Push(&second->request, &second->reply, second->Done());
  receiver.Push(&after->request, &after->reply, after->Done());
  absl::Status exit = absl::UnknownError("not run");
  std::thread loop([&] { exit = receiver.Run(); });
  loop.join();  // Run returns by itself after the limit
  CHECK(exit.ok());
  REQUIRE(first->Await().ok());
  CHECK_FALSE(first->reply.worker_exiting());
  CHECK_FALSE(other->reply.worker_exiting());
  REQUIRE(second->Await().ok());
  CHECK(second->reply.worker_exiting());
  // The task queued behind the last call never runs: it is answered Unavailable.
  CHECK(absl::IsUnavailable(after->Await()));
  CHECK(runner.Ran() == std::vector<std::string>{"f", "g", "f"});
  CHECK(receiver.exiting());
}

TEST_CASE("receiver: actor calls run in each caller's order, gaps are released", "[task_receiver]") {
  FakeClock clock;
  Runner runner;
  int held = 0;
  TaskReceiver receiver(clock, runner.Fn(),
                        {.sequence_gap_timeout = absl::Seconds(2), .on_held_call = [&held] { ++held; }});
  const ActorId actor = ActorId::Of(kJob);
  auto c2 = MethodCall(actor, "c", 2);
  auto c1 = MethodCall(actor, "c", 1);
  auto c0 = MethodCall(actor, "c", 0);
  auto d1 = MethodCall(actor, "d", 1);  // d's call 0 never comes
  receiver.Push(&c2->request, &c2->reply, c2->Done());
  receiver.Push(&d1->request, &d1->reply, d1->Done());
  receiver.Push(&c1->request, &c1->reply, c1->Done());
  receiver.Push(&c0->request, &c0->reply, c0->Done());
  CHECK(held == 4);  // each push left a call held (d1 waits for d's call 0 throughout)
  std::thread loop([&] { (void)receiver.Run(); });
  REQUIRE(c2->Await().ok());
  CHECK(runner.Ran() == std::vector<std::string>{"m0", "m1", "m2"});
  receiver.ReleaseSequenceGaps();  // too early: d1 still waits
  CHECK_FALSE(d1->IsAnswered());
  CHECK_FALSE(receiver.Quiet());  // d1 is held: the loop must keep ticking for it
  clock.Advance(absl::Seconds(3));
  receiver.ReleaseSequenceGaps();
  CHECK(receiver.Quiet());
  REQUIRE(d1->Await().ok());
  receiver.RequestExit(absl::OkStatus());
  loop.join();
}

TEST_CASE("receiver: exit answers queued and held pushes, and later ones at once", "[task_receiver]") {
  FakeClock clock;
  Runner runner;
  auto held = MethodCall(ActorId::Of(kJob), "c", 5);  // waits for 0..4
  auto queued = NormalTask("q");
  {
    TaskReceiver receiver(clock, runner.Fn(), {});
    receiver.Push(&held->request, &held->reply, held->Done());
    receiver.RequestExit(absl::UnavailableError("raylet gone"));
    receiver.Push(&queued->request, &queued->reply, queued->Done());
    CHECK(absl::IsUnavailable(queued->Await()));
    CHECK(absl::IsUnavailable(receiver.Run()));  // the first exit status
    CHECK(absl::IsUnavailable(held->Await()));
  }
  CHECK(runner.Ran().empty());
}

TEST_CASE("receiver: destruction answers pushes no loop took", "[task_receiver]") {
  FakeClock clock;
  Runner runner;
  auto queued = NormalTask("q");
  {
    TaskReceiver receiver(clock, runner.Fn(), {});
    receiver.Push(&queued->request, &queued->reply, queued->Done());
    CHECK_FALSE(queued->IsAnswered());
  }
  CHECK(absl::IsUnavailable(queued->Await()));
}

TEST_CASE("receiver: after Drain it stays usable and answers pushes at once, running none",
          "[task_receiver]") {
  FakeClock clock;
  Runner runner;
  auto queued = NormalTask("q");
  auto late = NormalTask("late");
  TaskReceiver receiver(clock, runner.Fn(), {});
  receiver.Push(&queued->request, &queued->reply, queued->Done());
  receiver.Drain();
  CHECK(absl::IsUnavailable(queued->Await()));
  // What a server still feeding it delivers now is refused, not touched after destruction.
  receiver.Push(&late->request, &late->reply, late->Done());
  CHECK(late->IsAnswered());
  CHECK(absl::IsUnavailable(late->Await()));
  receiver.Drain();  // idempotent
  CHECK(runner.Ran().empty());
}

TEST_CASE("receiver: knows the running task and the actor after its constructor", "[task_receiver]") {
  FakeClock clock;
  absl::Notification started, release;
  TaskId seen_running;
  TaskReceiver* self = nullptr;
  bool running_inside = false;
  TaskReceiver receiver(
      clock,
      [&](const rpc::PushTaskRequest& req) {
        running_inside = self->IsRunning(SpecTaskId(req.spec()));
        started.Notify();
        release.WaitForNotification();
        return rpc::PushTaskReply();
      },
      {});
  self = &receiver;
  const ActorId actor = ActorId::Of(kJob);
  auto ctor = std::make_unique<Push>();
  rpc::TaskSpec& spec = *ctor->request.mutable_spec();
  spec.set_task_id(TaskId::ForActorTask(actor).Binary());
  spec.set_actor_id(actor.Binary());
  spec.set_actor_creation(true);
  spec.set_max_concurrency(1);
  receiver.Push(&ctor->request, &ctor->reply, ctor->Done());
  CHECK(receiver.actor().IsNil());
  std::thread loop([&] { (void)receiver.Run(); });
  started.WaitForNotification();
  CHECK(running_inside);
  CHECK(receiver.IsRunning(SpecTaskId(spec)));
  release.Notify();
  REQUIRE(ctor->Await().ok());
  CHECK_FALSE(receiver.IsRunning(SpecTaskId(spec)));
  CHECK(receiver.actor() == actor);
  receiver.RequestExit(absl::OkStatus());
  loop.join();
}

// An AsyncRunner that holds every call it starts until the test finishes it.
struct AsyncCalls {
  absl::Mutex mu;
  std::vector<std::string> started ABSL_GUARDED_BY(mu);
  std::map<std::string, std::function<void(rpc::PushTaskReply)>> pending ABSL_GUARDED_BY(mu);
  int peak ABSL_GUARDED_BY(mu) = 0;

  TaskReceiver::AsyncRunner Fn() {
    return [this](const rpc::PushTaskRequest& req, std::function<void(rpc::PushTaskReply)> finished) {
      absl::MutexLock lock(&mu);
      started.push_back(req.spec().function_name());
      pending[req.spec().function_name()] = std::move(finished);
      peak = std::max(peak, static_cast<int>(pending.size()));
    };
  }
  std::vector<std::string> Started() {
    absl::MutexLock lock(&mu);
    return started;
  }
  void AwaitStarted(size_t n) {
    absl::MutexLock lock(&mu);
    auto enough = [this, n]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) { return started.size() >= n; };
    REQUIRE(mu.AwaitWithTimeout(absl::Condition(&enough), absl::Seconds(10)));
  }
  // Finishes a started call with its function name as the value.
  void Finish(const std::string& name) {
    std::function<void(rpc::PushTaskReply)> finished;
    {
      absl::MutexLock lock(&mu);
      auto it = pending.find(name);
      REQUIRE(it != pending.end());
      finished = std::move(it->second);
      pending.erase(it);
    }
    rpc::PushTaskReply reply;
    reply.add_returns()->set_inline_data(name);
    finished(std::move(reply));
  }
  int Peak() {
    absl::MutexLock lock(&mu);
    return peak;
  }
};

std::unique_ptr<Push> AsyncConstructor(const ActorId& actor, int max_concurrency) {
  auto p = Constructor(actor, max_concurrency);
  p->request.mutable_spec()->set_is_asyncio(true);
  return p;
}

TEST_CASE("receiver: an async actor starts up to max_concurrency calls without threads, in order, answering each "
          "when it finishes", "[task_receiver]") {
  FakeClock clock;
  Runner runner;
  AsyncCalls async;
  TaskReceiver receiver(clock, runner.Fn(), {}, async.Fn());
  const ActorId actor = ActorId::Of(kJob);
  auto ctor = AsyncConstructor(actor, /*max_concurrency=*/3);
  receiver.Push(&ctor->request, &ctor->reply, ctor->Done());
  std::vector<std::unique_ptr<Push>> calls;
  for (int i = 0; i < 5; ++i) {
    calls.push_back(MethodCall(actor, "c", i));
    receiver.Push(&calls.back()->request, &calls.back()->reply, calls.back()->Done());
  }
  CHECK(async.Started().empty());  // nothing starts before the constructor
  std::thread loop([&] { (void)receiver.Run(); });
  REQUIRE(ctor->Await().ok());
  async.AwaitStarted(3);
  CHECK(async.Started() == std::vector<std::string>{"m0", "m1", "m2"});
  CHECK(receiver.IsRunning(SpecTaskId(calls[1]->request.spec())));
  CHECK_FALSE(calls[1]->IsAnswered());
  async.Finish("m1");  // its slot lets the next call in
  REQUIRE(calls[1]->Await().ok());
  CHECK(calls[1]->reply.returns(0).inline_data() == "m1");
  CHECK_FALSE(receiver.IsRunning(SpecTaskId(calls[1]->request.spec())));
  CHECK(async.Started() == std::vector<std::string>{"m0", "m1", "m2", "m3"});
  for (const char* name : {"m0", "m2", "m3"}) async.Finish(name);
  async.AwaitStarted(5);
  async.Finish("m4");
  for (auto& c : calls) REQUIRE(c->Await().ok());
  CHECK(async.Peak() == 3);
  CHECK(runner.Ran() == std::vector<std::string>{"ctor"});  // no method call took a thread
  receiver.RequestExit(absl::OkStatus());
  loop.join();
}

TEST_CASE("receiver: an async actor's streaming calls run on threads, its groups count their own calls",
          "[task_receiver]") {
  FakeClock clock;
  Runner runner;
  AsyncCalls async;
  TaskReceiver receiver(clock, runner.Fn(), {}, async.Fn());
  const ActorId actor = ActorId::Of(kJob);
  auto ctor = AsyncConstructor(actor, /*max_concurrency=*/1);
  (*ctor->request.mutable_spec()->mutable_concurrency_groups())["io"] = 1;
  receiver.Push(&ctor->request, &ctor->reply, ctor->Done());
  std::thread loop([&] { (void)receiver.Run(); });
  REQUIRE(ctor->Await().ok());
  auto plain = MethodCall(actor, "c", 0);
  auto io = MethodCall(actor, "c", 1);
  io->request.mutable_spec()->set_concurrency_group("io");
  auto stream = MethodCall(actor, "c", 2);
  stream->request.mutable_spec()->set_streaming(true);
  for (Push* p : {plain.get(), io.get(), stream.get()}) receiver.Push(&p->request, &p->reply, p->Done());
  async.AwaitStarted(2);  // one in each group, though each group's limit is 1
  REQUIRE(stream->Await().ok());  // on a thread of the default group
  CHECK(runner.Ran() == std::vector<std::string>{"ctor", "m2"});
  async.Finish("m0");
  async.Finish("m1");
  REQUIRE(plain->Await().ok());
  REQUIRE(io->Await().ok());
  receiver.RequestExit(absl::OkStatus());
  loop.join();
}

TEST_CASE("receiver: a call that finishes inside its own start lets the next ones start", "[task_receiver]") {
  FakeClock clock;
  Runner runner;
  std::vector<std::string> order;
  TaskReceiver receiver(clock, runner.Fn(), {},
                        [&order](const rpc::PushTaskRequest& req, std::function<void(rpc::PushTaskReply)> finished) {
                          order.push_back(req.spec().function_name());  // one thread starts them, one at a time
                          finished(rpc::PushTaskReply());
                        });
  const ActorId actor = ActorId::Of(kJob);
  auto ctor = AsyncConstructor(actor, /*max_concurrency=*/2);
  receiver.Push(&ctor->request, &ctor->reply, ctor->Done());
  std::vector<std::unique_ptr<Push>> calls;
  for (int i = 0; i < 6; ++i) {
    calls.push_back(MethodCall(actor, "c", i));
    receiver.Push(&calls.back()->request, &calls.back()->reply, calls.back()->Done());
  }
  std::thread loop([&] { (void)receiver.Run(); });
  REQUIRE(ctor->Await().ok());
  for (auto& c : calls) REQUIRE(c->Await().ok());
  CHECK(order == std::vector<std::string>{"m0", "m1", "m2", "m3", "m4", "m5"});
  receiver.RequestExit(absl::OkStatus());
  loop.join();
}

TEST_CASE("receiver: an async call waiting for a slot can be cancelled, Drain answers those in flight and drops "
          "a finish that comes later", "[task_receiver]") {
  FakeClock clock;
  Runner runner;
  AsyncCalls async;
  const ActorId actor = ActorId::Of(kJob);
  auto ctor = AsyncConstructor(actor, /*max_concurrency=*/2);
  std::vector<std::unique_ptr<Push>> calls;
  {
    TaskReceiver receiver(clock, runner.Fn(), {}, async.Fn());
    receiver.Push(&ctor->request, &ctor->reply, ctor->Done());
    std::thread loop([&] { (void)receiver.Run(); });
    REQUIRE(ctor->Await().ok());
    for (int i = 0; i < 4; ++i) {
      calls.push_back(MethodCall(actor, "c", i));
      receiver.Push(&calls.back()->request, &calls.back()->reply, calls.back()->Done());
    }
    async.AwaitStarted(2);
    CHECK_FALSE(receiver.CancelQueued(SpecTaskId(calls[0]->request.spec())));  // in flight
    CHECK(receiver.CancelQueued(SpecTaskId(calls[2]->request.spec())));
    CHECK(absl::IsCancelled(calls[2]->Await()));
    receiver.RequestExit(absl::OkStatus());
    loop.join();
    receiver.Drain();
    CHECK(absl::IsUnavailable(calls[0]->Await()));
    CHECK(absl::IsUnavailable(calls[1]->Await()));
    CHECK(absl::IsUnavailable(calls[3]->Await()));
    async.Finish("m0");  // comes after Drain: dropped (the push was answered)
    CHECK(calls[0]->reply.returns_size() == 0);
    CHECK(async.Started() == std::vector<std::string>{"m0", "m1"});
  }
}

}  // namespace
}  // namespace shoal
