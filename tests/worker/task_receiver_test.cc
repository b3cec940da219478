#include "src/worker/task_receiver.h"

#include <catch2/catch.hpp>

#include <memory>
#include <string>
#include <thread>
#include <vector>

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

TEST_CASE("receiver: actor calls run in each caller's order; gaps are released", "[task_receiver]") {
  FakeClock clock;
  Runner runner;
  TaskReceiver receiver(clock, runner.Fn(), {.sequence_gap_timeout = absl::Seconds(2)});
  const ActorId actor = ActorId::Of(kJob);
  auto c2 = MethodCall(actor, "c", 2);
  auto c1 = MethodCall(actor, "c", 1);
  auto c0 = MethodCall(actor, "c", 0);
  auto d1 = MethodCall(actor, "d", 1);  // d's call 0 never comes
  receiver.Push(&c2->request, &c2->reply, c2->Done());
  receiver.Push(&d1->request, &d1->reply, d1->Done());
  receiver.Push(&c1->request, &c1->reply, c1->Done());
  receiver.Push(&c0->request, &c0->reply, c0->Done());
  std::thread loop([&] { (void)receiver.Run(); });
  REQUIRE(c2->Await().ok());
  CHECK(runner.Ran() == std::vector<std::string>{"m0", "m1", "m2"});
  receiver.ReleaseSequenceGaps();  // too early: d1 still waits
  CHECK_FALSE(d1->IsAnswered());
  clock.Advance(absl::Seconds(3));
  receiver.ReleaseSequenceGaps();
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

}  // namespace
}  // namespace shoal
