// The task submitter when a raylet kills a leased worker itself (its memory monitor): the owner
// learns why from the lease's return, retries the task on its OOM budget after a growing delay,
// and past that budget (or at once when max_retries=0) fails it with the raylet's error. Over a
// fake transport and clock.
#include "src/worker/task_submitter.h"

#include <catch2/catch.hpp>

#include <algorithm>
#include <string>
#include <utility>
#include <vector>

#include "src/common/error_info.h"
#include "src/common/fake_clock.h"
#include "src/worker/fake_task_transport.h"
#include "src/worker/object_value.h"
#include "src/worker/task_spec.h"
#include "tests/test_util/status_matchers.h"

namespace shoal {
namespace {

const JobId kJob = JobId::FromInt(9);
constexpr char kLocal[] = "10.0.0.1:7000";
constexpr char kOwner[] = "10.0.0.1:4000";

struct Fixture {
  FakeTaskTransport transport;
  FakeClock clock;
  absl::Mutex mu;
  std::vector<std::pair<rpc::TaskSpec, std::vector<rpc::ObjectValue>>> done;
  TaskSubmitter submitter{transport, clock,
                          TaskSubmitterOptions{.local_raylet_address = kLocal,
                                               .owner_address = kOwner,
                                               .task_oom_retries = 2,
                                               .oom_retry_delay_base = absl::Seconds(1),
                                               .oom_retry_delay_max = absl::Seconds(60)},
                          [this](const rpc::TaskSpec& spec, std::vector<rpc::ObjectValue> returns) {
                            absl::MutexLock lock(&mu);
                            done.emplace_back(spec, std::move(returns));
                          }};

  Fixture() { transport.HoldFailedReturns(); }

  rpc::TaskSpec Spec(const std::string& fn, int max_retries) {
    TaskOptions options;
    options.max_retries = max_retries;
    auto spec = BuildTaskSpec(kJob, fn, options, kOwner, {"/bin/driver"});
    REQUIRE_OK(spec);
    return *spec;
  }
  size_t num_done() {
    absl::MutexLock lock(&mu);
    return done.size();
  }
  // The raylet's answer to the return of a lease whose worker it killed for memory.
  static rpc::ReturnWorkerReply KilledForMemory() {
    rpc::ReturnWorkerReply reply;
    *reply.mutable_failure() = MakeError(
        rpc::OUT_OF_MEMORY, "the worker w (pid 5) was killed by the memory monitor of node abc (10.0.0.1): memory "
                            "use 7.00 GiB of 8.00 GiB (0.875) was above the threshold 0.750 (6.00 GiB)");
    return reply;
  }
  // The running task's worker dies; the raylet says it killed it for memory (or says nothing).
  void KillRunning(const std::string& lease_id, bool for_memory = true) {
    transport.FailNext(absl::UnavailableError("connection reset"));
    CHECK(transport.AnswerFailedReturn(absl::OkStatus(), for_memory ? KilledForMemory() : rpc::ReturnWorkerReply{}) ==
          lease_id);
  }
  // Moves the clock by `d` and lets the submitter act on it.
  void Wait(absl::Duration d) {
    clock.Advance(d);
    submitter.Tick();
  }
};

TEST_CASE_METHOD(Fixture, "submitter: quiet only with nothing queued, requested or leased", "[submitter]") {
  CHECK(submitter.Quiet());
  submitter.Submit(Spec("f", 0));
  CHECK_FALSE(submitter.Quiet());  // a lease request out
  transport.GrantNext("10.0.0.1:9001", "L1");
  CHECK_FALSE(submitter.Quiet());  // pushed, running
  transport.ReplyNext(rpc::PushTaskReply());
  REQUIRE(num_done() == 1);
  CHECK_FALSE(submitter.Quiet());  // the lease is kept a moment for the next task
  Wait(absl::Seconds(1));          // idle past the lease timeout: returned
  REQUIRE(transport.returns().size() == 1);
  CHECK(submitter.Quiet());
}

TEST_CASE_METHOD(Fixture, "submitter: a lease request says whether its tasks may be retried", "[submitter][oom]") {
  submitter.Submit(Spec("f", 3));
  submitter.Submit(Spec("g", 0));
  // Same shape, but retriable and final tasks never share a lease (the raylet kills retriable
  // leases first).
  REQUIRE(transport.num_pending_leases() == 2);
  auto first = transport.TakeLease();
  auto second = transport.TakeLease();
  CHECK(first.request.retriable());
  CHECK_FALSE(second.request.retriable());
  CHECK(SchedulingKey::Of(Spec("f", 3)) == SchedulingKey::Of(Spec("h", -1)));
  CHECK_FALSE(SchedulingKey::Of(Spec("f", 3)) == SchedulingKey::Of(Spec("f", 0)));
}

TEST_CASE_METHOD(Fixture, "submitter: a worker killed for memory past its retries fails the task with OUT_OF_MEMORY",
                 "[submitter][oom]") {
  submitter.Submit(Spec("Hog", 0));
  transport.GrantNext("10.0.0.1:9001", "L1");
  transport.FailNext(absl::UnavailableError("connection reset"));
  // Nothing is decided until the raylet says why the worker died.
  REQUIRE(transport.num_pending_failed_returns() == 1);
  REQUIRE(transport.returns().size() == 1);
  CHECK(transport.returns()[0].lease_id == "L1");
  CHECK(transport.returns()[0].worker_failed);
  CHECK(num_done() == 0);
  CHECK(transport.AnswerFailedReturn(absl::OkStatus(), KilledForMemory()) == "L1");
  REQUIRE(num_done() == 1);
  const rpc::ObjectValue& v = done[0].second[0];
  REQUIRE(v.has_error());
  CHECK(v.error().type() == rpc::OUT_OF_MEMORY);
  CHECK_THAT(v.error().message(), Catch::StartsWith("task 'Hog'"));
  CHECK_THAT(v.error().message(), Catch::Contains("after 1 attempt(s)"));
  CHECK_THAT(v.error().message(), Catch::Contains("memory monitor of node abc"));
  CHECK_THAT(v.error().message(), Catch::Contains("threshold 0.750"));
  CHECK_THAT(v.error().message(), Catch::Contains("max_retries=0: not retried"));
  Wait(absl::Minutes(5));
  CHECK(transport.num_pending_leases() == 0);
}

TEST_CASE_METHOD(Fixture, "submitter: a worker killed for memory with retries left is retried", "[submitter][oom]") {
  rpc::TaskSpec spec = Spec("Hog", 1);
  submitter.Submit(spec);
  transport.GrantNext("10.0.0.1:9001", "L1");
  transport.FailNext(absl::UnavailableError("connection reset"));
  CHECK(transport.num_pending_leases() == 0);  // not before the raylet answered
  transport.AnswerFailedReturn(absl::OkStatus(), KilledForMemory());
  // After the base delay, for memory to come back.
  Wait(absl::Milliseconds(999));
  CHECK(transport.num_pending_leases() == 0);
  CHECK(submitter.stats().queued == 1);
  Wait(absl::Milliseconds(1));
  REQUIRE(transport.num_pending_leases() == 1);
  CHECK(transport.TakeLease().request.retriable());
  CHECK(num_done() == 0);
}

TEST_CASE_METHOD(Fixture, "submitter: memory kills spend task_oom_retries, not max_retries, with growing delays",
                 "[submitter][oom]") {
  rpc::TaskSpec spec = Spec("Hog", 1);  // one retry for other failures; the OOM budget is 2
  submitter.Submit(spec);
  transport.GrantNext("10.0.0.1:9001", "L1");
  KillRunning("L1");
  Wait(absl::Seconds(1));
  transport.GrantNext("10.0.0.1:9002", "L2");
  auto retry = transport.TakePush();
  CHECK(retry.request.spec().task_id() == spec.task_id());
  CHECK(retry.request.spec().attempt() == 1);
  CHECK(retry.request.spec().oom_retries() == 1);
  retry.done(absl::UnavailableError("socket closed"), {});
  CHECK(transport.AnswerFailedReturn(absl::OkStatus(), KilledForMemory()) == "L2");
  // The second retry waits twice as long.
  Wait(absl::Milliseconds(1999));
  CHECK(transport.num_pending_leases() == 0);
  Wait(absl::Milliseconds(1));
  transport.GrantNext("10.0.0.1:9003", "L3");
  KillRunning("L3");  // the budget of 2 is spent
  REQUIRE(num_done() == 1);
  const rpc::ErrorInfo& error = done[0].second[0].error();
  CHECK(error.type() == rpc::OUT_OF_MEMORY);
  CHECK_THAT(error.message(), Catch::Contains("after 3 attempt(s)"));
  CHECK_THAT(error.message(), Catch::Contains("2 retries after memory kills, task_oom_retries=2"));
  CHECK(done[0].first.attempt() == 2);
}

TEST_CASE_METHOD(Fixture, "submitter: after memory kills a task keeps its max_retries for other failures",
                 "[submitter][oom]") {
  submitter.Submit(Spec("Hog", 1));
  transport.GrantNext("10.0.0.1:9001", "L1");
  KillRunning("L1");
  Wait(absl::Seconds(1));
  transport.GrantNext("10.0.0.1:9002", "L2");
  KillRunning("L2", /*for_memory=*/false);  // a plain crash: its one retry, at once
  REQUIRE(transport.num_pending_leases() == 1);
  transport.GrantNext("10.0.0.1:9003", "L3");
  KillRunning("L3", /*for_memory=*/false);  // past max_retries=1
  REQUIRE(num_done() == 1);
  CHECK(done[0].second[0].error().type() == rpc::WORKER_DIED);
  CHECK_THAT(done[0].second[0].error().message(), Catch::Contains("after 3 attempt(s)"));
}

TEST_CASE("submitter: task_oom_retries=-1 retries memory kills without limit, the delay capped", "[submitter][oom]") {
  FakeTaskTransport transport;
  transport.HoldFailedReturns();
  FakeClock clock;
  int finished = 0;
  TaskSubmitter submitter(transport, clock,
                          TaskSubmitterOptions{.local_raylet_address = kLocal,
                                               .owner_address = kOwner,
                                               .task_oom_retries = -1,
                                               .oom_retry_delay_base = absl::Seconds(1),
                                               .oom_retry_delay_max = absl::Seconds(8)},
                          [&](const rpc::TaskSpec&, std::vector<rpc::ObjectValue>) { ++finished; });
  TaskOptions options;
  options.max_retries = 1;
  auto spec = BuildTaskSpec(kJob, "Hog", options, kOwner, {"/bin/driver"});
  REQUIRE_OK(spec);
  submitter.Submit(*spec);
  for (int i = 0; i < 12; ++i) {
    const std::string lease = "L" + std::to_string(i);
    transport.GrantNext("10.0.0.1:9001", lease);
    transport.FailNext(absl::UnavailableError("connection reset"));
    CHECK(transport.AnswerFailedReturn(absl::OkStatus(), Fixture::KilledForMemory()) == lease);
    // 1, 2, 4, then 8 s each time: never longer than the cap.
    clock.Advance(std::min(absl::Seconds(1) * (1 << std::min(i, 10)), absl::Seconds(8)) - absl::Milliseconds(1));
    submitter.Tick();
    CHECK(transport.num_pending_leases() == 0);
    clock.Advance(absl::Milliseconds(1));
    submitter.Tick();
    REQUIRE(transport.num_pending_leases() == 1);
  }
  CHECK(finished == 0);
}

TEST_CASE_METHOD(Fixture, "submitter: a task cancelled while it waits to be retried after a memory kill",
                 "[submitter][oom]") {
  rpc::TaskSpec spec = Spec("Hog", 3);
  submitter.Submit(spec);
  transport.GrantNext("10.0.0.1:9001", "L1");
  KillRunning("L1");
  CHECK(submitter.Cancel(SpecTaskId(spec)).found);
  REQUIRE(num_done() == 1);
  CHECK(done[0].second[0].error().type() == rpc::TASK_CANCELLED);
  CHECK_THAT(done[0].second[0].error().message(), Catch::Contains("waiting to be retried"));
  Wait(absl::Minutes(1));
  CHECK(transport.num_pending_leases() == 0);
}

TEST_CASE_METHOD(Fixture, "submitter: with no cause from the raylet a dead worker is WORKER_DIED",
                 "[submitter][oom]") {
  submitter.Submit(Spec("a", 0));
  submitter.Submit(Spec("b", 0));
  transport.GrantNext("10.0.0.1:9001", "L1");
  transport.GrantNext("10.0.0.1:9002", "L2");
  transport.FailNext(absl::UnavailableError("connection reset"));
  transport.FailNext(absl::UnavailableError("connection reset"));
  transport.AnswerFailedReturn(absl::OkStatus(), {});                               // knows nothing
  transport.AnswerFailedReturn(absl::DeadlineExceededError("raylet gone"), KilledForMemory());  // no answer
  REQUIRE(num_done() == 2);
  for (const auto& [spec, returns] : done) {
    CHECK(returns[0].error().type() == rpc::WORKER_DIED);
    CHECK_THAT(returns[0].error().message(), Catch::Contains("died or became unreachable: connection reset"));
  }
}

TEST_CASE_METHOD(Fixture, "submitter: a task cancelled while its raylet is asked why is cancelled",
                 "[submitter][oom]") {
  rpc::TaskSpec spec = Spec("Hog", 3);
  submitter.Submit(spec);
  transport.GrantNext("10.0.0.1:9001", "L1");
  transport.FailNext(absl::UnavailableError("connection reset"));
  TaskSubmitter::CancelResult cancel = submitter.Cancel(SpecTaskId(spec));
  CHECK(cancel.found);
  CHECK_FALSE(cancel.running);  // nothing to interrupt: it runs nowhere
  transport.AnswerFailedReturn(absl::OkStatus(), KilledForMemory());
  REQUIRE(num_done() == 1);
  CHECK(done[0].second[0].error().type() == rpc::TASK_CANCELLED);
  CHECK(transport.num_pending_leases() == 0);  // not retried
}

TEST_CASE_METHOD(Fixture, "submitter: after shutdown a late answer finishes nothing", "[submitter][oom]") {
  submitter.Submit(Spec("Hog", 3));
  transport.GrantNext("10.0.0.1:9001", "L1");
  transport.FailNext(absl::UnavailableError("connection reset"));
  submitter.Shutdown();
  transport.AnswerFailedReturn(absl::OkStatus(), KilledForMemory());
  CHECK(num_done() == 0);
  CHECK(transport.num_pending_leases() == 0);
}

}  // namespace
}  // namespace shoal
