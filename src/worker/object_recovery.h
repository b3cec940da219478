// Lineage reconstruction: an owner re-runs the task that made an object whose every copy was
// lost with its node (DESIGN.md section 2; Ray's object reconstruction). A streaming
// generator's stored items are covered too: the generator runs again and its owner's
// GeneratorStreams takes the new values of the items still in scope (Options::rerun_stream).
//
// The owner keeps the resolved spec of each finished normal task that stored a return in a
// node's object store (its lineage), while any of those returns is in scope and up to
// max_lineage_bytes (the oldest go first). When a Get finds that such a return cannot be read,
// Recover re-runs the task as attempt + 1, within the task's max_retries (-1: no limit; 0: the
// task is never re-run, as in Ray): its returns are erased from the memory store so that
// waiters see the new values. An argument of the task that was stored on a node now dead and
// that this owner can itself reconstruct (still in scope, with lineage) is re-made first, and
// the task waits for it.
// What cannot be reconstructed answers OBJECT_LOST saying why: made by put, made by an actor
// method, lineage evicted or out of scope, retries used up.
//
// Threading: any thread. Re-submission happens on the caller's thread, or where the memory store
// dispatches the last awaited argument (the core worker's loop).
// Ownership: the memory store must outlive this object.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <string>
#include <vector>
#include "absl/strings/string_view.h"

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "shoal/worker.pb.h"
#include "src/common/ids.h"
#include "src/worker/memory_store.h"

namespace shoal {

class ObjectRecovery {
 public:
  struct Options {
    // Submits a resolved spec again (the owner's task submitter); its results reach the owner
    // as a first run's do (TaskManager::Finish).
    std::function<void(rpc::TaskSpec spec)> resubmit;
    // The nodes (hex ids) known to be dead (the GCS's node table); asked once per Recover,
    // outside any lock. May be empty.
    std::function<absl::flat_hash_set<std::string>()> dead_nodes;
    // A streaming generator task is about to run again to make its lost items: `items` (its
    // stored items still in scope, whose values were just erased) get the new run's values
    // (GeneratorStreams::Reconstruct). Required for streaming lineage to be kept.
    std::function<void(const TaskId& task, int32_t attempt, const std::vector<ObjectId>& items)> rerun_stream;
    int64_t max_lineage_bytes = int64_t{256} << 20;
  };

  ObjectRecovery(MemoryStore& memory, Options options) : memory_(memory), options_(std::move(options)) {}
  ObjectRecovery(const ObjectRecovery&) = delete;
  ObjectRecovery& operator=(const ObjectRecovery&) = delete;

  // A task finished (a first run or a re-run): keeps its lineage when it can be re-run and a
  // return went to a store. `in_scope`: its returns still referenced (for a streaming
  // generator: its items kept in a store and still referenced).
  void AddLineage(const rpc::TaskSpec& spec, bool any_in_store, const std::vector<ObjectId>& in_scope);
  // `id` went out of scope: its task's lineage goes once none of its returns is in scope.
  void Forget(const ObjectId& id) { Forget(std::vector<ObjectId>{id}); }
  // The same for many (one lock).
  void Forget(const std::vector<ObjectId>& ids);
  // Every copy of `id`'s value is lost (`why`: what reading it answered). Starts re-running the
  // task that made it (once, however many callers ask meanwhile): OK means the memory store
  // will get a new value for `id`. OBJECT_LOST (ErrorStatus) when it cannot be reconstructed.
  absl::Status Recover(const ObjectId& id, absl::string_view why);
  // A pushed task's worker could not read its argument `arg_index` (an object in a store; `why`:
  // what reading it answered). Re-makes that argument (Recover) and submits `spec` again, as
  // attempt + 1, once the argument has a new value: OK means the task will finish again through
  // the resubmit callback. OBJECT_LOST when the argument cannot be made again.
  absl::Status RerunWithLostArgument(const rpc::TaskSpec& spec, int arg_index, absl::string_view why);

  size_t num_lineage_tasks() const;
  int64_t lineage_bytes() const;

 private:
  struct Lineage {
    rpc::TaskSpec spec;
    std::vector<ObjectId> outputs;  // the returns (or generator items) it was kept for
    int64_t bytes = 0;
    int live_returns = 0;  // returns still in scope
    bool recovering = false;  // a re-run is under way
  };

  // What a Recover knows is gone: the raylet whose copy could not be read, and dead nodes.
  struct Gone {
    std::string holder;
    absl::flat_hash_set<std::string> dead_nodes;
  };
  absl::Status RecoverLocked(const ObjectId& id, absl::string_view why, const Gone& gone,
                             std::vector<std::function<void()>>& after) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Re-runs `spec` once the arguments at `waiting` (indexes into spec.args) have new values.
  void SubmitWhenArgumentsReady(rpc::TaskSpec spec, std::vector<std::pair<int, ObjectId>> waiting);
  void EvictOldest() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void ForgetLocked(const ObjectId& id) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  MemoryStore& memory_;
  const Options options_;

  mutable absl::Mutex mu_;
  absl::flat_hash_map<TaskId, Lineage> lineage_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<ObjectId, TaskId> made_by_ ABSL_GUARDED_BY(mu_);  // return -> its task
  absl::flat_hash_set<ObjectId> evicted_ ABSL_GUARDED_BY(mu_);  // in scope, lineage dropped for room
  std::deque<TaskId> order_ ABSL_GUARDED_BY(mu_);  // lineage, oldest first (may hold stale ids)
  int64_t bytes_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace shoal
