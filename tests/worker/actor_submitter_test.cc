// ActorSubmitter with a fake transport: order, incarnations, suspect addresses, retries, death.
#include "src/worker/actor_submitter.h"

#include <catch2/catch.hpp>

#include <deque>

#include "absl/strings/match.h"

#include "src/common/fake_clock.h"
#include "src/worker/core_worker.h"
#include "src/worker/fake_actor_transport.h"
#include "src/worker/task_spec.h"

namespace shoal {
namespace {

const JobId kJob = *JobId::FromHex("01000000");

struct SubmitterTest {
  SubmitterTest()
      : submitter(transport, clock,
                  ActorSubmitterOptions{.caller_id = "caller", .on_timed_work = [this] { ++timed_work; }},
                  [this](const rpc::TaskSpec& spec, std::vector<rpc::ObjectValue> returns) {
                    done.push_back({spec, std::move(returns)});
                  }) {}

  // Answers the oldest poll with `state` at `address`, as version `version`.
  void Answer(rpc::ActorInfo::State state, const std::string& address, int64_t version,
              const std::string& cause = "") {
    REQUIRE(!transport.polls.empty());
    auto poll = std::move(transport.polls.front());
    transport.polls.pop_front();
    rpc::GetActorInfoReply reply;
    reply.mutable_info()->set_actor_id(actor.Binary());
    reply.mutable_info()->set_state(state);
    reply.mutable_info()->set_worker_address(address);
    reply.mutable_info()->set_version(version);
    reply.mutable_info()->set_death_cause(cause);
    poll.done(absl::OkStatus(), reply);
  }

  uint64_t Call(int tag) {
    const uint64_t order = *submitter.Reserve(actor);
    rpc::TaskSpec spec;
    spec.set_task_id(TaskId::ForActorTask(actor).Binary());
    spec.set_actor_id(actor.Binary());
    spec.set_function_name("m" + std::to_string(tag));
    spec.set_num_returns(1);
    pending_specs[order] = spec;
    return order;
  }
  void Submit(uint64_t order) { submitter.Submit(order, pending_specs.at(order)); }

  // Replies OK to the oldest push.
  std::string ReplyOk() {
    auto push = std::move(transport.pushes.front());
    transport.pushes.pop_front();
    rpc::PushTaskReply reply;
    reply.add_returns()->set_inline_data("r");
    push.done(absl::OkStatus(), reply);
    return push.request.spec().function_name();
  }

  FakeActorTransport transport;
  FakeClock clock;
  ActorId actor = ActorId::Of(kJob);
  std::map<uint64_t, rpc::TaskSpec> pending_specs;
  std::vector<std::pair<rpc::TaskSpec, std::vector<rpc::ObjectValue>>> done;
  ActorSubmitter submitter;
  int timed_work = 0;  // on_timed_work calls
};

TEST_CASE("actor calls wait for ALIVE, then go out in reservation order with sequence numbers",
          "[actor_submitter]") {
  SubmitterTest t;
  t.submitter.AddActor(t.actor, 0);
  REQUIRE(t.transport.polls.size() == 1);
  uint64_t a = t.Call(0), b = t.Call(1), c = t.Call(2);
  t.Submit(c);  // b and a still resolve their arguments
  t.Submit(a);
  CHECK(t.transport.pushes.empty());  // PENDING: nothing goes out
  t.Answer(rpc::ActorInfo::ALIVE, "w1:1", 1);
  REQUIRE(t.transport.pushes.size() == 1);  // a; c waits for b
  CHECK(t.transport.pushes[0].request.spec().sequence_number() == 0);
  t.Submit(b);
  REQUIRE(t.transport.pushes.size() == 3);
  CHECK(t.transport.pushes[1].request.spec().function_name() == "m1");
  CHECK(t.transport.pushes[2].request.spec().sequence_number() == 2);
  CHECK(t.transport.pushes[2].request.spec().caller_id() == "caller");
  t.ReplyOk();
  t.ReplyOk();
  t.ReplyOk();
  CHECK(t.done.size() == 3);
  CHECK(t.done[0].second[0].object_id() == ReturnObjectId(t.done[0].first, 1).Binary());
}

TEST_CASE("an abandoned call does not hold the later ones", "[actor_submitter]") {
  SubmitterTest t;
  t.submitter.AddActor(t.actor, 0);
  t.Answer(rpc::ActorInfo::ALIVE, "w1:1", 1);
  uint64_t a = t.Call(0), b = t.Call(1);
  t.Submit(b);
  CHECK(t.transport.pushes.empty());
  t.submitter.Abandon(t.actor, a);
  REQUIRE(t.transport.pushes.size() == 1);
  CHECK(t.transport.pushes[0].request.spec().sequence_number() == 0);
}

TEST_CASE("a broken push retries on the restarted actor, numbering from 0 again", "[actor_submitter]") {
  SubmitterTest t;
  t.submitter.AddActor(t.actor, /*max_task_retries=*/1);
  t.Answer(rpc::ActorInfo::ALIVE, "w1:1", 1);
  uint64_t a = t.Call(0);
  t.Submit(a);
  auto push = std::move(t.transport.pushes.front());
  t.transport.pushes.pop_front();
  push.done(absl::UnavailableError("Socket closed"), {});  // died mid-call
  // Suspect: a new call waits too.
  uint64_t b = t.Call(1);
  t.Submit(b);
  CHECK(t.transport.pushes.empty());
  t.Answer(rpc::ActorInfo::RESTARTING, "", 2, "the actor's worker died");
  CHECK(t.transport.pushes.empty());
  t.Answer(rpc::ActorInfo::ALIVE, "w2:1", 3);
  REQUIRE(t.transport.pushes.size() == 2);
  CHECK(t.transport.pushes[0].address == "w2:1");
  CHECK(t.transport.pushes[0].request.spec().function_name() == "m0");
  CHECK(t.transport.pushes[0].request.spec().sequence_number() == 0);
  CHECK(t.transport.pushes[0].request.spec().attempt() == 1);
  CHECK(t.transport.pushes[1].request.spec().sequence_number() == 1);
}

TEST_CASE("without retries a broken call fails, an undelivered one waits for the GCS", "[actor_submitter]") {
  SubmitterTest t;
  t.submitter.AddActor(t.actor, 0);
  t.Answer(rpc::ActorInfo::ALIVE, "w1:1", 1);
  uint64_t a = t.Call(0), b = t.Call(1);
  t.Submit(a);
  t.Submit(b);
  REQUIRE(t.transport.pushes.size() == 2);
  auto first = std::move(t.transport.pushes.front());
  t.transport.pushes.pop_front();
  auto second = std::move(t.transport.pushes.front());
  t.transport.pushes.pop_front();
  first.done(absl::UnavailableError("Socket closed"), {});
  REQUIRE(t.done.size() == 1);
  CHECK(t.done[0].second[0].error().type() == rpc::ACTOR_DIED);
  second.done(Undelivered(absl::UnavailableError("failed to connect to all addresses")), {});
  CHECK(t.done.size() == 1);  // never delivered: it waits
  // The poll comes back with nothing new: the worker is fine after all, the call goes again.
  t.Answer(rpc::ActorInfo::ALIVE, "w1:1", 1);
  REQUIRE(t.transport.pushes.size() == 1);
  CHECK(t.transport.pushes[0].request.spec().function_name() == "m1");
  CHECK(t.transport.pushes[0].request.spec().attempt() == 0);
}

TEST_CASE("a dead actor fails waiting and later calls with its cause", "[actor_submitter]") {
  SubmitterTest t;
  t.submitter.AddActor(t.actor, -1);
  uint64_t a = t.Call(0);
  t.Submit(a);
  uint64_t b = t.Call(1);  // reserved, not yet submitted
  t.Answer(rpc::ActorInfo::DEAD, "", 2, "killed by shoal.kill()");
  REQUIRE(t.done.size() == 1);
  CHECK(t.done[0].second[0].error().type() == rpc::ACTOR_DIED);
  CHECK_THAT(t.done[0].second[0].error().message(), Catch::Contains("killed by shoal.kill()"));
  t.Submit(b);
  uint64_t c = t.Call(2);
  t.Submit(c);
  CHECK(t.done.size() == 3);
  CHECK(t.transport.pushes.empty());
  CHECK(t.transport.polls.empty());  // a dead actor is not followed any more
}

TEST_CASE("after this process killed the actor, calls fail at once", "[actor_submitter]") {
  SubmitterTest t;
  t.submitter.AddActor(t.actor, -1);
  t.Answer(rpc::ActorInfo::ALIVE, "w1:1", 1);
  t.submitter.MarkKilled(t.actor, "killed by shoal.kill()");
  uint64_t a = t.Call(0);
  t.Submit(a);
  CHECK(t.transport.pushes.empty());  // not sent to the worker that is being stopped
  REQUIRE(t.done.size() == 1);
  CHECK(t.done[0].second[0].error().type() == rpc::ACTOR_DIED);
}

TEST_CASE("a failed poll is retried after the delay", "[actor_submitter]") {
  SubmitterTest t;
  t.submitter.AddActor(t.actor, 0);
  CHECK(t.submitter.Quiet());  // a poll out: its answer comes as a post, not a tick
  auto poll = std::move(t.transport.polls.front());
  t.transport.polls.pop_front();
  CHECK(t.timed_work == 0);
  poll.done(absl::UnavailableError("GCS restarting"), {});
  CHECK_FALSE(t.submitter.Quiet());  // the retry waits for a tick...
  CHECK(t.timed_work == 1);          // ...and the owner's loop is told
  t.submitter.Tick();
  CHECK(t.transport.polls.empty());
  t.clock.Advance(absl::Seconds(1));
  t.submitter.Tick();
  CHECK(t.transport.polls.size() == 1);
  CHECK(t.submitter.Quiet());
}

TEST_CASE("max_pending refuses a call while that many are unfinished", "[actor_submitter]") {
  SubmitterTest t;
  t.submitter.AddActor(t.actor, 0);
  t.Answer(rpc::ActorInfo::ALIVE, "w1:1", 1);
  auto first = t.submitter.Reserve(t.actor, 2);
  auto second = t.submitter.Reserve(t.actor, 2);
  REQUIRE(first.ok());
  REQUIRE(second.ok());
  auto third = t.submitter.Reserve(t.actor, 2);
  REQUIRE_FALSE(third.ok());
  CHECK(ErrorInfoOf(third.status())->type() == rpc::PENDING_CALLS_LIMIT_EXCEEDED);
  CHECK(absl::StrContains(third.status().message(), "max_pending_calls=2"));
  CHECK(t.submitter.Reserve(t.actor, -1).ok());  // no limit for this call
  t.submitter.Abandon(t.actor, *first);
  t.submitter.Abandon(t.actor, 2);
  CHECK(t.submitter.Reserve(t.actor, 2).ok());  // one pending again: below the limit
}

TEST_CASE("cancel: a waiting call fails TASK_CANCELLED and is never pushed, later calls go on",
          "[actor_submitter]") {
  SubmitterTest t;
  t.submitter.AddActor(t.actor, 0);
  uint64_t a = t.Call(0), b = t.Call(1);
  t.Submit(a);
  t.Submit(b);  // PENDING: both wait
  const TaskId task = *TaskId::FromBinary(t.pending_specs.at(a).task_id());
  ActorSubmitter::CancelResult r = t.submitter.Cancel(task);
  CHECK(r.found);
  CHECK_FALSE(r.pushed);
  REQUIRE(t.done.size() == 1);
  CHECK(t.done[0].second[0].error().type() == rpc::TASK_CANCELLED);
  t.Answer(rpc::ActorInfo::ALIVE, "w1:1", 1);
  REQUIRE(t.transport.pushes.size() == 1);
  CHECK(t.transport.pushes[0].request.spec().function_name() == "m1");
  CHECK(t.transport.pushes[0].request.spec().sequence_number() == 0);  // no gap left
  CHECK_FALSE(t.submitter.Cancel(TaskId::ForActorTask(ActorId::Of(kJob))).found);  // an actor not followed
}

TEST_CASE("cancel: a pushed call names its worker, a dropped push fails TASK_CANCELLED without retry",
          "[actor_submitter]") {
  SubmitterTest t;
  t.submitter.AddActor(t.actor, /*max_task_retries=*/-1);
  t.Answer(rpc::ActorInfo::ALIVE, "w1:1", 1);
  uint64_t a = t.Call(0), b = t.Call(1);
  t.Submit(a);
  t.Submit(b);
  REQUIRE(t.transport.pushes.size() == 2);
  ActorSubmitter::CancelResult r = t.submitter.Cancel(*TaskId::FromBinary(t.pending_specs.at(a).task_id()));
  CHECK(r.found);
  CHECK(r.pushed);
  CHECK(r.worker_address == "w1:1");
  auto push = std::move(t.transport.pushes.front());
  t.transport.pushes.pop_front();
  push.done(absl::CancelledError("cancelled before it ran"), {});
  REQUIRE(t.done.size() == 1);
  CHECK(t.done[0].second[0].error().type() == rpc::TASK_CANCELLED);
  // The worker is fine: the next call's reply is taken as usual.
  CHECK(t.ReplyOk() == "m1");
  CHECK(t.done.size() == 2);
  CHECK_FALSE(t.done[1].second[0].has_error());
}

TEST_CASE("a call the worker refuses as invalid fails at once and does not make the worker suspect",
          "[actor_submitter]") {
  SubmitterTest t;
  t.submitter.AddActor(t.actor, -1);
  t.Answer(rpc::ActorInfo::ALIVE, "w1:1", 1);
  uint64_t a = t.Call(0);
  t.Submit(a);
  auto push = std::move(t.transport.pushes.front());
  t.transport.pushes.pop_front();
  push.done(absl::InvalidArgumentError("the actor has no concurrency group 'x'"), {});
  REQUIRE(t.done.size() == 1);
  CHECK(t.done[0].second[0].error().type() == rpc::SYSTEM_ERROR);
  CHECK(absl::StrContains(t.done[0].second[0].error().message(), "concurrency group 'x'"));
  uint64_t b = t.Call(1);
  t.Submit(b);
  CHECK(t.transport.pushes.size() == 1);  // pushed at once: not held as after a broken push
}

}  // namespace
}  // namespace shoal
