// Resolves a task's reference arguments before the task is pushed: once every referenced object
// has a value, the argument becomes that value (inline bytes) or its store location, so the
// worker that runs the task never asks anyone for it. The one copy of this logic serves normal
// tasks, actor method calls and actor constructors.
//
// An argument whose value is an error (its task failed), or that was freed before it became
// ready, fails the task: `done` gets the error (OBJECT_LOST for a freed one) and the task must
// not run. Refs must be owned or borrowed by this worker; the caller starts borrowed fetches.
// Cancel ends a resolution that still waits (a task cancelled before its arguments were ready
// fails at once rather than when they come, if ever).
// Threading: Resolve and Cancel from any thread. `done` runs exactly once: on the calling thread when no
// argument waits, else where the memory store runs the callback of the last missing value (its
// dispatch: the core worker's loop).
// Ownership: the resolver keeps nothing after `done`; the memory store must outlive it.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"

#include "shoal/worker.pb.h"
#include "src/common/error_info.h"
#include "src/worker/core_worker.h"
#include "src/worker/memory_store.h"

namespace shoal {

class DependencyResolver {
 public:
  // `failed` is set when an argument failed; `spec` then has its arguments partly filled.
  using Done = std::function<void(rpc::TaskSpec spec, std::optional<rpc::ErrorInfo> failed)>;

  explicit DependencyResolver(MemoryStore& store) : store_(store) {}
  DependencyResolver(const DependencyResolver&) = delete;
  DependencyResolver& operator=(const DependencyResolver&) = delete;

  // Appends `args` to spec.args (values as they are, refs once resolved), then calls `done`.
  void Resolve(rpc::TaskSpec spec, std::vector<TaskArg> args, Done done);
  // Ends the resolution of `task` if it still waits for arguments: its `done` runs now (on this
  // thread) with `error`, and never again. Answers whether it was waiting.
  bool Cancel(const TaskId& task, rpc::ErrorInfo error);

 private:
  struct Resolution;
  // The resolutions that wait, shared with their callbacks (which may outlive the resolver).
  struct Waiting {
    absl::Mutex mu;
    absl::flat_hash_map<TaskId, std::weak_ptr<Resolution>> by_task ABSL_GUARDED_BY(mu);
  };
  MemoryStore& store_;
  const std::shared_ptr<Waiting> waiting_ = std::make_shared<Waiting>();
};

}  // namespace shoal
