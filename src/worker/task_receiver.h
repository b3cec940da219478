// The worker side of the core worker: takes the tasks owners push, puts an actor's method calls
// in each caller's order (call_order.h), runs them on the task loop, and answers each push when
// its task has run.
//
// Push queues a task; Run takes tasks off the queue one at a time and hands each to the runner
// (the TaskExecutor, wrapped by the core worker), then calls the push's `done` with the reply
// filled. A concurrent actor (max_concurrency > 1 or concurrency groups in its creation task)
// runs its calls in groups (Ray's concurrency groups): each named group runs at most its limit
// of calls at once, and calls outside every group share max_concurrency. A group's threads are
// started when its calls need them (after the constructor), up to its limit, and then wait for
// more: an async actor's default of 1000 costs threads only for calls in flight. Run's own
// thread then only waits for exit. A call naming a group the actor lacks is answered
// InvalidArgument in its turn (its caller's later calls go on). A normal task with max_calls > 0
// counts the calls of its function: the call that reaches the limit answers worker_exiting and
// the loop ends after it (Ray's max_calls; the worker then exits and its lease ends).
// An async actor (is_asyncio in its creation task) with an AsyncRunner runs its calls that are
// not streaming without threads: each starts through the AsyncRunner, from the thread that made
// it due (the push's gRPC thread, the ticker, or the thread finishing an earlier call), in its
// caller's order, while its group has fewer calls in flight than its limit; the push is answered
// when the runner's `finished` comes. Streaming calls of such an actor run on the group's threads
// as above (each kind counts its own calls against the limit).
// RequestExit ends the loop: tasks queued or held are answered Unavailable ("exiting");
// CancelQueued answers one queued task Cancelled instead of running it.
// Threading: Push, CancelQueued, the queries, RequestExit and ReleaseSequenceGaps from any thread
// (gRPC's and the ticker); Run on the thread that calls it; the groups' threads are started by
// Push and Run and joined by Drain (the destructor); an AsyncRunner's `finished` from any thread,
// once per call, also after Drain (it is then dropped: Drain answered the call). Ownership:
// `request` and `reply` of a push stay the caller's until `done`.
#pragma once

#include <atomic>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "shoal/worker.pb.h"
#include "src/common/clock.h"
#include "src/common/ids.h"
#include "src/common/spin.h"
#include "src/worker/call_order.h"

namespace shoal {

class TaskReceiver {
 public:
  // Runs one task and answers its reply (never throws).
  using Runner = std::function<rpc::PushTaskReply(const rpc::PushTaskRequest&)>;
  // Answers a push: OK once `reply` is filled, or why the task did not run.
  using Done = std::function<void(absl::Status)>;
  // Starts one call of an async actor and returns; `finished` gets its reply when it ended.
  using AsyncRunner =
      std::function<void(const rpc::PushTaskRequest&, std::function<void(rpc::PushTaskReply)> finished)>;

  struct Options {
    absl::Duration sequence_gap_timeout = absl::Seconds(2);  // see CallOrder
    // Called (outside the lock) when a push leaves a method call held for a missing predecessor
    // (ReleaseSequenceGaps then has work): the owner's loop may be ticking slowly. May be empty.
    std::function<void()> on_held_call;
  };

  // `clock` must outlive the receiver. Without `async_runner`, every call runs on a thread.
  TaskReceiver(const Clock& clock, Runner runner, Options options, AsyncRunner async_runner = nullptr);
  // Drain(). REQUIRES: Run has returned (or never ran).
  ~TaskReceiver();
  TaskReceiver(const TaskReceiver&) = delete;
  TaskReceiver& operator=(const TaskReceiver&) = delete;

  // Queues a pushed task (an actor's method call waits for its caller's earlier calls).
  // After RequestExit, answers Unavailable at once.
  void Push(const rpc::PushTaskRequest* request, rpc::PushTaskReply* reply, Done done);
  // Runs queued tasks until RequestExit (or a max_calls limit); answers the exit status.
  absl::Status Run();
  // Ends Run: queued tasks are answered Unavailable. The first call's status is what Run answers.
  void RequestExit(absl::Status why);
  // Requests exit, joins the threads Run started and answers every push still queued
  // (Unavailable). Later pushes are answered at once, so the receiver may outlive the server
  // that feeds it by a moment. Idempotent. REQUIRES: Run has returned (or never ran).
  void Drain();
  // Runs method calls whose predecessors never came (see CallOrder). Call it every few ms.
  void ReleaseSequenceGaps();
  // True while no method call waits for a predecessor (ReleaseSequenceGaps has nothing to do).
  bool Quiet() const;

  // Whether the task is running now (a cancel interrupts it only then).
  bool IsRunning(const TaskId& task) const;
  // A cancel of a task queued here that has not started: it is answered Cancelled at once and
  // never runs. Answers whether it was found.
  bool CancelQueued(const TaskId& task);
  // The actor whose constructor ran here (nil before).
  ActorId actor() const;
  bool exiting() const;

 private:
  struct Pushed {
    const rpc::PushTaskRequest* request;
    rpc::PushTaskReply* reply;
    Done done;
  };
  // A concurrent actor's concurrency group: its calls, and the threads that run them.
  struct Group {
    int limit = 1;      // calls at once
    int threads = 0;    // loops started for it
    int idle = 0;       // of those, waiting for a call
    std::deque<Pushed> queue;
    // An async actor's calls that start through the AsyncRunner: waiting, and in flight.
    std::deque<Pushed> async_queue;
    int async_running = 0;
  };
  // An async call started (or about to be), until its `finished`.
  struct InFlight {
    Pushed call;
    Group* group;
  };
  struct ToStart {
    uint64_t key;  // in in_flight_
    const rpc::PushTaskRequest* request;
  };
  // Queues a push; answers those that cannot run (a call naming a group the actor lacks).
  std::vector<Pushed> Enqueue(Pushed task) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Queues a call whose turn came (in its caller's order) on its group's queue.
  void Route(Pushed call, std::vector<Pushed>& refused) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Answers pushes that will not run: InvalidArgument for an unknown group, else exiting.
  void Refuse(std::vector<Pushed>& refused) ABSL_LOCKS_EXCLUDED(mu_);
  // Starts loops for `group` while it has more queued calls than idle loops and is under its limit.
  void StartLoops(Group& group) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // A loop of a concurrency group: runs its calls until exit.
  void RunGroup(Group* group);
  // Runs one task taken off a queue (mu_ not held), then answers its push.
  void RunOne(Pushed task);
  // Moves `group`'s waiting async calls in flight (to_start_) while it is under its limit.
  void TakeAsync(Group& group) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Starts the calls in to_start_ through the AsyncRunner, in order (one thread at a time).
  void StartAsync() ABSL_LOCKS_EXCLUDED(mu_, start_mu_);
  // An async call's `finished`: answers its push and starts what its slot lets in.
  void FinishAsync(uint64_t key, rpc::PushTaskReply reply) ABSL_LOCKS_EXCLUDED(mu_);
  // Every push still queued or held (queue_, the groups, the call order).
  std::vector<Pushed> TakeQueued() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // After a task ran: notes the actor, starts a concurrent actor's loops, counts max_calls.
  // Answers true (and marks the reply worker_exiting) when this worker must exit after it.
  bool AfterRun(const rpc::TaskSpec& spec, rpc::PushTaskReply& reply);

  const Clock& clock_;
  const Runner runner_;
  const Options options_;
  const AsyncRunner async_runner_;

  mutable absl::Mutex mu_;
  std::deque<Pushed> queue_ ABSL_GUARDED_BY(mu_);
  std::atomic<size_t> queued_{0};  // queue_.size(), or 1 once exiting: what Run spins on
  AdaptiveSpin spin_;               // Run's, before it sleeps
  CallOrder<Pushed> call_order_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_set<TaskId> running_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<std::string, int64_t> calls_ ABSL_GUARDED_BY(mu_);  // by function, for max_calls
  ActorId actor_ ABSL_GUARDED_BY(mu_);
  bool exiting_ ABSL_GUARDED_BY(mu_) = false;
  absl::Status exit_status_ ABSL_GUARDED_BY(mu_);
  // A concurrent actor's groups by name ("" the default group), set when its creation task is
  // pushed; `created_` once the constructor ran (no call runs before).
  absl::flat_hash_map<std::string, std::unique_ptr<Group>> groups_ ABSL_GUARDED_BY(mu_);
  bool created_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<std::thread> loops_ ABSL_GUARDED_BY(mu_);  // the groups'; joined by Drain
  // An async actor (and an AsyncRunner to run it): its calls go through async_queue.
  bool asyncio_ ABSL_GUARDED_BY(mu_) = false;
  uint64_t next_key_ ABSL_GUARDED_BY(mu_) = 0;
  absl::flat_hash_map<uint64_t, InFlight> in_flight_ ABSL_GUARDED_BY(mu_);
  std::vector<ToStart> to_start_ ABSL_GUARDED_BY(mu_);
  // Held while starting calls, so that they start in the order they were taken; Drain takes it
  // to wait for a start in progress.
  absl::Mutex start_mu_ ABSL_ACQUIRED_BEFORE(mu_);
};

}  // namespace shoal
