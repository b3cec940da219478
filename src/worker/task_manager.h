// The owner's bookkeeping of the tasks it submits, from submission to their results (DESIGN.md
// section 2), shared by normal tasks, actor method calls and actor constructors:
//   Prepare  checks the arguments (every ref must be owned or borrowed here), moves large
//            by-value arguments to the store, counts the references the task holds and adds
//            its return objects;
//   Resolve  waits for the ref arguments (DependencyResolver), then hands the task to a
//            submitter, unless an argument failed or the task was cancelled meanwhile: then
//            the task finishes with that error without running;
//   Finish   stores the task's returns and releases its arguments' references; the task's
//            lineage goes to ObjectRecovery (a lost return can be made again).
// Task events: PENDING at Resolve, FINISHED or FAILED at Finish.
// Threading: any thread. Resolve's callbacks run where the resolver's `done` runs (the caller's
// thread, or the one that stores the last missing value).
// Ownership: every part given is the caller's and must outlive the manager.
#pragma once

#include <functional>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "shoal/worker.pb.h"
#include "src/common/ids.h"
#include "src/worker/core_worker.h"
#include "src/worker/dependency_resolver.h"
#include "src/worker/generator_streams.h"
#include "src/worker/object_recovery.h"
#include "src/worker/owned_objects.h"
#include "src/worker/reference_counter.h"
#include "src/worker/task_events.h"

namespace shoal {

class TaskManager {
 public:
  using Submit = std::function<void(rpc::TaskSpec resolved)>;

  // `recovery` (may be null) is told each finished task's lineage (not a streaming task's: its
  // items are not made again). `streams` (may be null: streaming tasks are refused) follows
  // streaming generator tasks from Prepare to Finish.
  TaskManager(ReferenceCounter& refs, OwnedObjects& objects, DependencyResolver& resolver, TaskEventBuffer& events,
              ObjectRecovery* recovery = nullptr, GeneratorStreams* streams = nullptr)
      : refs_(refs), objects_(objects), resolver_(resolver), events_(events), recovery_(recovery), streams_(streams) {}
  TaskManager(const TaskManager&) = delete;
  TaskManager& operator=(const TaskManager&) = delete;

  // Answers the task's return ids. `args` change in place (large values become store refs).
  // `nested_refs` are refs inside by-value arguments. With `pin_forever` the arguments stay
  // referenced for good (an actor constructor runs again at every restart); else until Finish.
  // InvalidArgument for a ref this worker neither owns nor borrows; a failed store put as is.
  absl::StatusOr<std::vector<ObjectId>> Prepare(const rpc::TaskSpec& spec, std::vector<TaskArg>& args,
                                                const std::vector<ObjectId>& nested_refs, bool pin_forever);
  // Fills the spec's arguments once every ref argument has a value, then calls `submit`; when
  // an argument failed or the task was cancelled meanwhile, finishes the task with that error
  // and calls `on_failed` (if set). Starts the fetches of borrowed arguments.
  void Resolve(rpc::TaskSpec spec, std::vector<TaskArg> args, Submit submit, std::function<void()> on_failed);
  // The task is done for good: stores its returns and releases its arguments.
  void Finish(const rpc::TaskSpec& spec, std::vector<rpc::ObjectValue> returns);
  // `task` is still resolving its arguments: it is dropped (TASK_CANCELLED) once they are.
  void CancelBeforeSubmit(const TaskId& task);

 private:
  ReferenceCounter& refs_;
  OwnedObjects& objects_;
  DependencyResolver& resolver_;
  TaskEventBuffer& events_;
  ObjectRecovery* const recovery_;
  GeneratorStreams* const streams_;

  absl::Mutex mu_;
  absl::flat_hash_map<TaskId, std::vector<ObjectId>> arg_refs_ ABSL_GUARDED_BY(mu_);  // released at Finish
  absl::flat_hash_set<TaskId> cancelled_before_submit_ ABSL_GUARDED_BY(mu_);
};

}  // namespace shoal
