// Runs an owner's normal tasks on leased workers (DESIGN.md section 2, steps 2, 3 and 6).
//
// Tasks queue per SchedulingKey. For each key the submitter keeps up to
// min(queue length, max_pending_lease_requests) lease requests at the local raylet, follows
// spillbacks (asking the named raylet with grant_or_reject), and pushes tasks to granted
// workers one at a time per lease. Lease reuse (not for SPREAD keys, whose leases go back after
// one task so that each task is placed on its own): a lease whose task finished takes the next task
// of its key at once; with its key's queue empty it is returned at once if another key has
// tasks waiting for a lease, else kept idle and returned after lease_idle_timeout (Tick). For
// fairness, a lease held longer than lease_max_hold is returned when its task finishes if
// another key has tasks waiting (its own key asks again), so one long queue cannot starve
// other shapes.
// Failures: a push that fails (the worker or its node died) returns the lease as failed and,
// once the raylet has answered (its reply says why when it killed the worker itself, e.g. its
// memory monitor), retries the task (attempt + 1) while CanRetry, after which the task's result
// is the raylet's error (OUT_OF_MEMORY) or else a WorkerCrashedError. A task whose function
// failed (reply.application_error) is retried only with retry_exceptions. A REJECTED lease
// fails the key's queued tasks (TaskUnschedulableError); lease requests that break are retried
// after lease_retry_delay, and after max_lease_failures breaks in a row at the local raylet the
// key's queued tasks fail (RayletUnavailableError).
// Threading: any thread. Transport callbacks and Tick() mutate state under one mutex; RPCs and
// the TaskDone callback are issued after the mutex is released, in order.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "shoal/worker.pb.h"
#include "src/common/clock.h"
#include "src/worker/task_spec.h"
#include "src/worker/task_transport.h"

namespace shoal {

struct TaskSubmitterOptions {
  std::string local_raylet_address;
  std::string owner_address;  // sent with lease requests
  int max_pending_lease_requests = 10;  // per scheduling key
  absl::Duration lease_idle_timeout = absl::Milliseconds(10);
  absl::Duration lease_max_hold = absl::Seconds(1);
  absl::Duration lease_retry_delay = absl::Milliseconds(200);
  int max_lease_failures = 50;
  // Retries of a retriable task (max_retries != 0) whose worker the memory monitor killed, on a
  // budget of their own (Ray's task_oom_retries); -1: no limit. The n-th such retry waits
  // oom_retry_delay_base * 2^(n-1), at most oom_retry_delay_max, for memory to come back.
  int task_oom_retries = -1;
  absl::Duration oom_retry_delay_base = absl::Seconds(1);
  absl::Duration oom_retry_delay_max = absl::Seconds(60);
};

// Called once per task when it will not run again: its return values in order (values,
// store locations or errors), with object ids set.
using TaskDoneCallback = std::function<void(const rpc::TaskSpec& spec, std::vector<rpc::ObjectValue> returns)>;

class TaskSubmitter {
 public:
  // `transport` and `clock` must outlive the submitter.
  TaskSubmitter(TaskTransport& transport, const Clock& clock, TaskSubmitterOptions options, TaskDoneCallback done);
  TaskSubmitter(const TaskSubmitter&) = delete;
  TaskSubmitter& operator=(const TaskSubmitter&) = delete;

  // Queues a task whose arguments are resolved (inline values or store locations).
  void Submit(rpc::TaskSpec spec);
  // Cancels a task (see CoreWorker::CancelTask): a queued one finishes at once with
  // TaskCancelledError; a running one is marked, so that its reply or failure finishes it with
  // TaskCancelledError and no retry, and the answer names its worker. Unknown tasks: found false.
  struct CancelResult {
    bool found = false;
    bool running = false;
    std::string worker_address;
  };
  CancelResult Cancel(const TaskId& task);
  // Returns leases idle for lease_idle_timeout and renews lease requests whose retry delay has
  // passed. Call periodically (every few milliseconds).
  void Tick();
  // True while Tick has nothing to do: no lease held, no request and no task delayed or queued
  // (what is waiting on a reply is posted to the loop when it comes).
  bool Quiet() const;
  // Returns every lease (busy ones as failed: their workers are mid-task and must not be
  // reused) and drops queued tasks; replies that arrive later are ignored and later grants
  // returned at once. Idempotent.
  void Shutdown();

  struct Stats {
    size_t queued = 0;                  // tasks waiting for a worker
    size_t pending_lease_requests = 0;
    size_t leases = 0;                  // held now
    size_t busy_leases = 0;
    size_t keys = 0;
  };
  Stats stats() const;

 private:
  struct Lease {
    std::string id;
    std::string raylet;  // the raylet that granted it, which takes it back
    std::string worker_address;
    rpc::GpuAssignment gpus;
    SchedulingKey key;
    SharedPushRequest running;  // the task pushed to it, null while idle
    absl::Time idle_since;
    absl::Time granted_at;
  };
  struct KeyState {
    std::deque<rpc::TaskSpec> queue;
    rpc::RequestWorkerLeaseRequest request;  // template for this key's lease requests
    int pending_requests = 0;
    int num_leases = 0;
    std::vector<uint64_t> idle;              // handles of idle leases
    int lease_failures = 0;                  // in a row, at the local raylet
    absl::Time retry_at = absl::InfinitePast();
  };
  using Actions = std::vector<std::function<void()>>;

  void Pump(const SchedulingKey& key, KeyState& ks, Actions& actions) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void RequestLease(const SchedulingKey& key, const KeyState& ks, const std::string& raylet, bool grant_or_reject,
                    Actions& actions) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Assign(uint64_t handle, rpc::TaskSpec spec, Actions& actions) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // A lease with no task: takes the next one of its key, or goes back, or idles.
  void OnLeaseFree(uint64_t handle, Actions& actions) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // A lease whose task finished well: OnLeaseFree, or back at once for a SPREAD key.
  void AfterTask(uint64_t handle, Actions& actions) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void ReturnLease(uint64_t handle, bool worker_failed, Actions& actions) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Drops a lease from the books without telling its raylet.
  Lease ForgetLease(uint64_t handle) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Queues a task under its key (at the front for a retry) and pumps the key.
  void Enqueue(rpc::TaskSpec spec, bool front, Actions& actions) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The worker running `spec` failed and its raylet answered (`cause`: why, if it killed it).
  void OnWorkerFailed(rpc::TaskSpec spec, const std::string& worker, const absl::Status& push_status,
                      std::optional<rpc::ErrorInfo> cause);
  bool OtherKeyWaiting(const SchedulingKey& key) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Finish(rpc::TaskSpec spec, std::vector<rpc::ObjectValue> returns, Actions& actions);
  void Finish(SharedPushRequest pushed, std::vector<rpc::ObjectValue> returns, Actions& actions);
  void FailQueued(KeyState& ks, rpc::ErrorType type, const std::string& why, Actions& actions)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void OnLeaseReply(const SchedulingKey& key, const std::string& raylet, const absl::Status& status,
                    const rpc::RequestWorkerLeaseReply& reply);
  void OnPushReply(uint64_t handle, const absl::Status& status, rpc::PushTaskReply reply);
  static void Run(Actions& actions);

  TaskTransport& transport_;
  const Clock& clock_;
  const TaskSubmitterOptions options_;
  const TaskDoneCallback done_;

  mutable absl::Mutex mu_;
  bool shutdown_ ABSL_GUARDED_BY(mu_) = false;
  // Retries after a memory kill, waiting out their delay (Tick enqueues them when due).
  std::multimap<absl::Time, rpc::TaskSpec> delayed_ ABSL_GUARDED_BY(mu_);
  uint64_t next_handle_ ABSL_GUARDED_BY(mu_) = 1;
  absl::flat_hash_map<SchedulingKey, KeyState> keys_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<uint64_t, Lease> leases_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_set<TaskId> cancelled_ ABSL_GUARDED_BY(mu_);  // running tasks being cancelled
  absl::flat_hash_set<TaskId> failing_ ABSL_GUARDED_BY(mu_);    // worker failed, raylet not yet answered
};

}  // namespace shoal
