// Which task each thread of a worker runs: what the runtime context reports, what a running task
// submits (its children, for a recursive cancel), and where a task that captures child tasks
// sends them. The core worker calls Enter and Leave around each pushed task on the thread that
// runs it.
//
// A worker that runs one task at a time (a task worker, or an actor with max_concurrency 1, no
// concurrency groups and no async methods) also lends its task to threads the user started, as
// Ray does; on a threaded or async actor those threads belong to no task.
// Threading: Enter, Leave, ThisThread and AddChild on the thread running the task; the others
// from any thread.
#pragma once

#include <atomic>
#include <functional>
#include <vector>

#include "absl/container/flat_hash_map.h"

#include "absl/synchronization/mutex.h"
#include "shoal/worker.pb.h"
#include "src/common/ids.h"
#include "src/worker/core_worker.h"

namespace shoal {

class RunningTasks {
 public:
  // The calling thread starts running `spec` (the caller keeps it until Leave), described by
  // `info`.
  void Enter(const rpc::TaskSpec& spec, CurrentTaskInfo info);
  // The calling thread's task ended.
  void Leave();
  // Set by an actor's creation task: whether the actor runs its calls one at a time (a task
  // worker does; that is the default).
  void SetOneAtATime(bool one_at_a_time) { one_at_a_time_.store(one_at_a_time, std::memory_order_relaxed); }

  // The task of the calling thread, else (a thread the user started) the task of a worker that
  // runs one at a time, passed through `describe` (which may add what only the caller knows);
  // an empty description outside tasks.
  using Describe = std::function<CurrentTaskInfo(CurrentTaskInfo, const rpc::TaskSpec&)>;
  CurrentTaskInfo Current(const Describe& describe);

  // The calling thread's own task (empty outside tasks).
  static const CurrentTaskInfo& ThisThread();
  // The calling thread's task submitted a task or actor call that returns `first_return`
  // (nothing outside tasks): a recursive cancel of the task reaches it while the task runs.
  void AddChild(const ObjectId& first_return);
  // What the running task `parent` submitted, forgotten here (its recursive cancel).
  std::vector<ObjectId> TakeChildren(const TaskId& parent);

 private:
  std::atomic<bool> one_at_a_time_{true};
  absl::Mutex mu_;
  const rpc::TaskSpec* sole_spec_ ABSL_GUARDED_BY(mu_) = nullptr;
  CurrentTaskInfo sole_info_ ABSL_GUARDED_BY(mu_);
  absl::Mutex children_mu_;
  // Running task -> the first return of each task and actor call it submitted; dropped by Leave.
  absl::flat_hash_map<TaskId, std::vector<ObjectId>> children_ ABSL_GUARDED_BY(children_mu_);
};

}  // namespace shoal
