// A caller's side of actor method calls (DESIGN.md section 2, "Actors").
//
// For each actor this process holds a handle to, the submitter follows the actor's GCS entry
// (ActorService.GetActorInfo long polls) and pushes method tasks straight to the actor's worker
// while it is ALIVE. Order: calls are pushed in the order they were reserved (Reserve, at
// submission, before their arguments resolve), each numbered with a sequence number that starts
// at 0 for every incarnation of the actor (a restart makes a new worker); the worker runs one
// caller's calls in that order (core_worker.cc). While the actor is PENDING or RESTARTING calls
// wait; when it is DEAD, waiting and later calls fail with ActorDiedError naming the cause.
// A push that breaks (the worker died) is retried on the next incarnation while the handle's
// max_task_retries allows (-1: always), else it fails with ActorDiedError. A push that never
// connected (the call was not delivered) always waits for the GCS's next word instead: sent
// again to the same or a restarted worker, or failed when the actor is dead. After a broken push
// the actor's address is suspect: no call is pushed until the GCS reports a change (or a poll
// passes without one).
// Threading: any thread. Transport callbacks mutate state under one mutex; pushes and the done
// callback run after it is released.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "shoal/gcs.pb.h"
#include "shoal/worker.pb.h"
#include "src/common/clock.h"
#include "src/common/ids.h"
#include "src/worker/task_submitter.h"

namespace shoal {

// The RPCs the submitter makes; GrpcTransport in production.
class ActorTransport {
 public:
  using PushCallback = std::function<void(absl::Status, rpc::PushTaskReply)>;
  using InfoCallback = std::function<void(absl::Status, rpc::GetActorInfoReply)>;
  virtual ~ActorTransport() = default;
  virtual void PushTask(const std::string& worker_address, SharedPushRequest request, PushCallback done) = 0;
  // Long poll of the GCS for `actor`'s entry (ActorService.GetActorInfo).
  virtual void GetActorInfo(const ActorId& actor, int64_t after_version, absl::Duration wait, InfoCallback done) = 0;
};

struct ActorSubmitterOptions {
  std::string caller_id;  // this worker's id (hex): the ordering key on the actor's side
  absl::Duration poll_wait = absl::Seconds(30);
  absl::Duration poll_retry_delay = absl::Milliseconds(500);
  // Called (outside the lock) when a poll retry is set for Tick: the owner's loop may be ticking
  // slowly. May be empty.
  std::function<void()> on_timed_work;
};

class ActorSubmitter {
 public:
  ActorSubmitter(ActorTransport& transport, const Clock& clock, ActorSubmitterOptions options,
                 TaskDoneCallback done);
  ActorSubmitter(const ActorSubmitter&) = delete;
  ActorSubmitter& operator=(const ActorSubmitter&) = delete;

  // Starts following `actor` (idempotent; the first call's max_task_retries stays).
  void AddActor(const ActorId& actor, int max_task_retries);
  // Takes the next place in `actor`'s call order (AddActor first). With max_pending >= 0, a
  // caller that already has that many calls to the actor not finished (waiting to be pushed or
  // pushed and unanswered) is refused: PENDING_CALLS_LIMIT_EXCEEDED naming the limit.
  absl::StatusOr<uint64_t> Reserve(const ActorId& actor, int max_pending = -1);
  // Queues the call holding place `order` (arguments resolved, actor_id set).
  void Submit(uint64_t order, rpc::TaskSpec spec);
  // The call holding `order` will not be submitted (its arguments failed): later calls go on.
  void Abandon(const ActorId& actor, uint64_t order);
  // This process killed the actor for good (the GCS said so): later calls fail at once instead
  // of racing the news of its death to a worker that is still being stopped.
  void MarkKilled(const ActorId& actor, const std::string& cause);
  // Cancels a call (Ray's cancel of an actor task) the caller knows is not finished: one still
  // waiting to be pushed fails at once with TASK_CANCELLED; for one pushed, the answer names the
  // worker to ask (its reply then
  // decides: a value if it finished, TaskCancelledError if the worker cancelled it, and a
  // broken push fails TASK_CANCELLED instead of being retried). Unknown calls: found false.
  struct CancelResult {
    bool found = false;
    bool pushed = false;
    std::string worker_address;
  };
  CancelResult Cancel(const TaskId& task);
  // Retries failed polls. Call every few milliseconds.
  void Tick();
  // True while no failed poll waits for its retry.
  bool Quiet() const;
  // Stops polling; drops queued calls. Idempotent.
  void Shutdown();

  // The last entry the GCS answered for `actor`, if any.
  std::optional<rpc::ActorInfo> Info(const ActorId& actor) const;

 private:
  struct Call {
    std::optional<rpc::TaskSpec> spec;  // unset: reserved, not submitted yet
  };
  struct State {
    int max_task_retries = 0;
    rpc::ActorInfo info;
    bool known = false;
    std::string address;        // the ALIVE incarnation's worker
    bool suspect = false;       // a push to `address` broke; hold calls until the GCS says more
    int64_t next_seq = 0;
    uint64_t next_order = 0;
    std::map<uint64_t, Call> waiting;  // by order
    int inflight = 0;
    absl::flat_hash_set<std::string> cancelled;  // task ids (binary) of pushed calls Cancel was asked for
    bool polling = false;
    absl::Time retry_poll_at = absl::InfiniteFuture();
  };
  using Actions = std::vector<std::function<void()>>;

  void StartPoll(const ActorId& actor, State& s, Actions& actions) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void OnInfo(const ActorId& actor, const absl::Status& status, rpc::GetActorInfoReply reply);
  void Pump(const ActorId& actor, State& s, Actions& actions) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void FailWaiting(State& s, const std::string& why, Actions& actions) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void OnPushReply(const ActorId& actor, uint64_t order, const std::string& address, SharedPushRequest pushed,
                   const absl::Status& status, rpc::PushTaskReply reply);
  std::string DeathMessage(const ActorId& actor, const State& s) const;
  // The error type calls to a DEAD actor fail with: the GCS's death_type, else ACTOR_DIED.
  static rpc::ErrorType DeathType(const State& s);
  void Fail(rpc::TaskSpec spec, rpc::ErrorType type, const std::string& message, Actions& actions);
  // done_ with the returns of a pushed call, outside the lock.
  void Finish(SharedPushRequest pushed, std::vector<rpc::ObjectValue> returns, Actions& actions);
  static void Run(Actions& actions);

  ActorTransport& transport_;
  const Clock& clock_;
  const ActorSubmitterOptions options_;
  const TaskDoneCallback done_;

  mutable absl::Mutex mu_;
  bool shutdown_ ABSL_GUARDED_BY(mu_) = false;
  absl::flat_hash_map<ActorId, State> actors_ ABSL_GUARDED_BY(mu_);
};

}  // namespace shoal
