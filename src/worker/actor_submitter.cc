#include "src/worker/actor_submitter.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "spdlog/spdlog.h"
#include "src/worker/core_worker.h"
#include "src/worker/object_value.h"
#include "src/worker/task_spec.h"
#include "src/worker/task_transport.h"

namespace shoal {

ActorSubmitter::ActorSubmitter(ActorTransport& transport, const Clock& clock, ActorSubmitterOptions options,
                               TaskDoneCallback done)
    : transport_(transport), clock_(clock), options_(std::move(options)), done_(std::move(done)) {}

void ActorSubmitter::Run(Actions& actions) {
  for (auto& a : actions) a();
}

void ActorSubmitter::AddActor(const ActorId& actor, int max_task_retries) {
  Actions actions;
  {
    absl::MutexLock lock(&mu_);
    if (shutdown_) return;
    auto [it, inserted] = actors_.try_emplace(actor);
    if (!inserted) return;
    it->second.max_task_retries = max_task_retries;
    StartPoll(actor, it->second, actions);
  }
  Run(actions);
}

absl::StatusOr<uint64_t> ActorSubmitter::Reserve(const ActorId& actor, int max_pending) {
  absl::MutexLock lock(&mu_);
  State& s = actors_[actor];
  if (max_pending >= 0 && static_cast<int64_t>(s.waiting.size()) + s.inflight >= max_pending) {
    return ErrorStatus(rpc::PENDING_CALLS_LIMIT_EXCEEDED,
                       absl::StrCat("The actor ", actor.Hex(), " already has ", s.waiting.size() + s.inflight,
                                    " pending calls from this caller (max_pending_calls=", max_pending, ")"));
  }
  const uint64_t order = s.next_order++;
  s.waiting.emplace(order, Call{});
  return order;
}

void ActorSubmitter::Submit(uint64_t order, rpc::TaskSpec spec) {
  Actions actions;
  {
    absl::MutexLock lock(&mu_);
    if (shutdown_) return;
    auto actor = ActorId::FromBinary(spec.actor_id());
    if (!actor.ok()) {
      Fail(std::move(spec), rpc::SYSTEM_ERROR, "an actor task without a valid actor id", actions);
    } else {
      State& s = actors_[*actor];
      auto it = s.waiting.find(order);
      if (s.known && s.info.state() == rpc::ActorInfo::DEAD) {
        if (it != s.waiting.end()) s.waiting.erase(it);
        Fail(std::move(spec), DeathType(s), DeathMessage(*actor, s), actions);
      } else {
        s.waiting[order].spec = std::move(spec);
      }
      Pump(*actor, s, actions);
    }
  }
  Run(actions);
}

void ActorSubmitter::Abandon(const ActorId& actor, uint64_t order) {
  Actions actions;
  {
    absl::MutexLock lock(&mu_);
    auto it = actors_.find(actor);
    if (it == actors_.end()) return;
    it->second.waiting.erase(order);
    Pump(actor, it->second, actions);
  }
  Run(actions);
}

void ActorSubmitter::StartPoll(const ActorId& actor, State& s, Actions& actions) {
  if (s.polling || shutdown_) return;
  if (s.known && s.info.state() == rpc::ActorInfo::DEAD) return;
  s.polling = true;
  s.retry_poll_at = absl::InfiniteFuture();
  const int64_t after = s.known ? s.info.version() : 0;
  actions.push_back([this, actor, after] {
    transport_.GetActorInfo(actor, after, options_.poll_wait,
                            [this, actor](absl::Status status, rpc::GetActorInfoReply reply) {
                              OnInfo(actor, status, std::move(reply));
                            });
  });
}

void ActorSubmitter::OnInfo(const ActorId& actor, const absl::Status& status, rpc::GetActorInfoReply reply) {
  Actions actions;
  {
    absl::MutexLock lock(&mu_);
    if (shutdown_) return;
    auto it = actors_.find(actor);
    if (it == actors_.end()) return;
    State& s = it->second;
    s.polling = false;
    if (absl::IsNotFound(status)) {
      s.known = true;
      s.info.set_state(rpc::ActorInfo::DEAD);
      s.info.set_death_cause(absl::StrCat("the GCS does not know actor ", actor.Hex(), ": ", status.message()));
      FailWaiting(s, DeathMessage(actor, s), actions);
    } else if (!status.ok()) {
      if (!absl::IsCancelled(status)) {
        s.retry_poll_at = clock_.Now() + options_.poll_retry_delay;
        if (options_.on_timed_work) actions.push_back(options_.on_timed_work);
      }
    } else if (s.known && s.info.state() == rpc::ActorInfo::DEAD) {
      // DEAD is final (an older answer may still arrive after MarkKilled).
    } else {
      const rpc::ActorInfo& info = reply.info();
      const bool changed = !s.known || info.version() != s.info.version();
      if (changed || s.suspect) s.suspect = false;  // a poll that passed without a change clears it too
      s.known = true;
      s.info = info;
      if (info.state() == rpc::ActorInfo::ALIVE) {
        if (info.worker_address() != s.address) {
          s.address = info.worker_address();
          s.next_seq = 0;  // a new incarnation numbers this caller's calls from 0 again
        }
      } else {
        s.address.clear();
      }
      if (info.state() == rpc::ActorInfo::DEAD) {
        FailWaiting(s, DeathMessage(actor, s), actions);
      } else {
        StartPoll(actor, s, actions);
      }
      Pump(actor, s, actions);
    }
  }
  Run(actions);
}

rpc::ErrorType ActorSubmitter::DeathType(const State& s) {
  // An actor whose placement group was removed is dead like any other (Ray's ActorDiedError);
  // its death cause says why.
  if (s.info.death_type() == rpc::ERROR_TYPE_UNSPECIFIED || s.info.death_type() == rpc::PLACEMENT_GROUP_REMOVED) {
    return rpc::ACTOR_DIED;
  }
  return s.info.death_type();
}

std::string ActorSubmitter::DeathMessage(const ActorId& actor, const State& s) const {
  std::string name = s.info.class_name().empty() ? std::string("actor") : s.info.class_name();
  return absl::StrCat("The actor ", name, " (", actor.Hex(), ") is dead: ",
                      s.info.death_cause().empty() ? std::string("unknown cause") : s.info.death_cause());
}

void ActorSubmitter::Fail(rpc::TaskSpec spec, rpc::ErrorType type, const std::string& message,
                          Actions& actions) {
  std::vector<rpc::ObjectValue> returns = ErrorReturns(spec, type, message);
  actions.push_back([this, spec = std::move(spec), returns = std::move(returns)]() mutable {
    done_(spec, std::move(returns));
  });
}

void ActorSubmitter::FailWaiting(State& s, const std::string& why, Actions& actions) {
  for (auto it = s.waiting.begin(); it != s.waiting.end();) {
    if (it->second.spec) {
      Fail(std::move(*it->second.spec), DeathType(s), why, actions);
      it = s.waiting.erase(it);
    } else {
      ++it;  // Submit fails it when it comes
    }
  }
}

void ActorSubmitter::Pump(const ActorId& actor, State& s, Actions& actions) {
  if (!s.known || s.info.state() != rpc::ActorInfo::ALIVE || s.address.empty() || s.suspect) return;
  while (!s.waiting.empty()) {
    auto it = s.waiting.begin();
    if (!it->second.spec) return;  // an earlier call still resolves its arguments
    const uint64_t order = it->first;
    auto request = std::make_shared<rpc::PushTaskRequest>();
    rpc::TaskSpec& spec = *request->mutable_spec();
    spec = std::move(*it->second.spec);  // both on the heap: a swap, not a copy
    s.waiting.erase(it);
    spec.set_sequence_number(s.next_seq++);
    spec.set_caller_id(options_.caller_id);
    ++s.inflight;
    const std::string address = s.address;
    actions.push_back([this, actor, order, address, pushed = SharedPushRequest(std::move(request))]() mutable {
      transport_.PushTask(address, pushed,
                          [this, actor, order, address, pushed](absl::Status status, rpc::PushTaskReply reply) mutable {
                            OnPushReply(actor, order, address, std::move(pushed), status, std::move(reply));
                          });
    });
  }
}

void ActorSubmitter::Finish(SharedPushRequest pushed, std::vector<rpc::ObjectValue> returns, Actions& actions) {
  actions.push_back([this, pushed = std::move(pushed), returns = std::move(returns)]() mutable {
    done_(pushed->spec(), std::move(returns));
  });
}

void ActorSubmitter::OnPushReply(const ActorId& actor, uint64_t order, const std::string& address,
                                 SharedPushRequest pushed, const absl::Status& status, rpc::PushTaskReply reply) {
  Actions actions;
  {
    absl::MutexLock lock(&mu_);
    if (shutdown_) return;
    State& s = actors_[actor];
    --s.inflight;
    const rpc::TaskSpec& sent = pushed->spec();  // copied below only where the call fails or goes again
    const bool cancelled = s.cancelled.erase(sent.task_id()) > 0;
    if (!status.ok() && cancelled) {
      // Cancelled while pushed: the worker dropped it before it ran, or the push broke.
      std::string why = absl::StrCat(DescribeTask(sent), " was cancelled");
      Fail(sent, rpc::TASK_CANCELLED, why, actions);
    } else if (status.ok()) {
      std::vector<rpc::ObjectValue> returns;
      if (reply.returns_size() != static_cast<int>(std::max<uint32_t>(sent.num_returns(), 1))) {
        Fail(sent, rpc::SYSTEM_ERROR,
             absl::StrCat(DescribeTask(sent), ": the actor answered ", reply.returns_size(),
                          " return values, expected ", sent.num_returns()),
             actions);
      } else {
        for (int i = 0; i < reply.returns_size(); ++i) {
          rpc::ObjectValue& v = *reply.mutable_returns(i);
          v.set_object_id(ReturnObjectId(sent, i + 1).Binary());
          returns.push_back(std::move(v));
        }
        Finish(std::move(pushed), std::move(returns), actions);
      }
    } else if (absl::IsInvalidArgument(status)) {
      // The worker refused the call itself (it names a concurrency group the actor lacks): the
      // worker is fine and a retry would be refused the same way.
      std::string why = absl::StrCat(DescribeTask(sent), ": ", status.message());
      Fail(sent, rpc::SYSTEM_ERROR, why, actions);
    } else {
      rpc::TaskSpec spec = sent;
      if (address == s.address) s.suspect = true;
      const bool dead = s.known && s.info.state() == rpc::ActorInfo::DEAD;
      // A call that never reached the worker (no connection) did not run: it waits for what
      // the GCS says next (the same worker, a restart, or death) whatever the retries.
      const bool undelivered = IsUndelivered(status);
      const bool may_retry = undelivered || s.max_task_retries < 0 || spec.attempt() < s.max_task_retries;
      if (!dead && may_retry) {
        if (!undelivered) spec.set_attempt(spec.attempt() + 1);
        s.waiting[order].spec = std::move(spec);  // keeps its place among the waiting calls
      } else {
        Fail(std::move(spec), dead ? DeathType(s) : rpc::ACTOR_DIED,
             dead ? DeathMessage(actor, s)
                  : absl::StrCat("The actor ", actor.Hex(), " died before the call finished (its worker at ",
                                 address, " broke: ", status.message(), ")"),
             actions);
      }
      StartPoll(actor, s, actions);
    }
    Pump(actor, s, actions);
  }
  Run(actions);
}

void ActorSubmitter::MarkKilled(const ActorId& actor, const std::string& cause) {
  Actions actions;
  {
    absl::MutexLock lock(&mu_);
    if (shutdown_) return;
    auto it = actors_.find(actor);
    if (it == actors_.end()) return;
    State& s = it->second;
    s.known = true;
    s.info.set_state(rpc::ActorInfo::DEAD);
    s.info.set_death_cause(cause);
    s.address.clear();
    FailWaiting(s, DeathMessage(actor, s), actions);
  }
  Run(actions);
}

ActorSubmitter::CancelResult ActorSubmitter::Cancel(const TaskId& task) {
  CancelResult result;
  Actions actions;
  {
    absl::MutexLock lock(&mu_);
    auto found = actors_.find(task.Actor());
    if (found == actors_.end()) return result;
    const ActorId& actor = found->first;
    State& s = found->second;
    const std::string id = task.Binary();
    for (auto it = s.waiting.begin(); it != s.waiting.end(); ++it) {
      if (it->second.spec && it->second.spec->task_id() == id) {
        rpc::TaskSpec spec = std::move(*it->second.spec);
        s.waiting.erase(it);
        Fail(std::move(spec), rpc::TASK_CANCELLED,
             absl::StrCat("the call ", task.Hex(), " was cancelled before it was sent"), actions);
        Pump(actor, s, actions);  // later calls may go now
        result.found = true;
        break;
      }
    }
    if (!result.found && s.inflight > 0 && !s.address.empty()) {
      // Not waiting and (the caller checked) not finished: pushed to the actor's worker.
      result = {.found = true, .pushed = true, .worker_address = s.address};
      s.cancelled.insert(id);
    }
  }
  Run(actions);
  return result;
}

void ActorSubmitter::Tick() {
  Actions actions;
  {
    absl::MutexLock lock(&mu_);
    if (shutdown_) return;
    const absl::Time now = clock_.Now();
    for (auto& [actor, s] : actors_) {
      if (!s.polling && s.retry_poll_at <= now) StartPoll(actor, s, actions);
    }
  }
  Run(actions);
}

bool ActorSubmitter::Quiet() const {
  absl::MutexLock lock(&mu_);
  if (shutdown_) return true;
  for (const auto& [actor, s] : actors_) {
    if (!s.polling && s.retry_poll_at != absl::InfiniteFuture()) return false;
  }
  return true;
}

void ActorSubmitter::Shutdown() {
  absl::MutexLock lock(&mu_);
  shutdown_ = true;
  actors_.clear();
}

std::optional<rpc::ActorInfo> ActorSubmitter::Info(const ActorId& actor) const {
  absl::MutexLock lock(&mu_);
  auto it = actors_.find(actor);
  if (it == actors_.end() || !it->second.known) return std::nullopt;
  return it->second.info;
}

}  // namespace shoal
