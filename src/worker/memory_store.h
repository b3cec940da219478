// The owner's in-process object table: ObjectId -> value (inline bytes, a store location or an
// error), with blocking waits (Get, Wait) and callbacks (GetAsync) for values not there yet.
// Values are immutable once put; the first Put of an id wins.
// Threading: any thread. Callbacks run outside the lock: those that Put or Erase make due go to
// the `dispatch` given (the core worker's event loop, so that a value stored from a gRPC reply
// never runs a continuation on the gRPC thread; inline when there is none or it refuses); those
// of Tick and CancelAll run on their caller; GetAsync of a value already there runs at once on
// the caller's thread. Blocking Get and Wait are woken directly by Put.
#pragma once

#include <atomic>
#include <cstddef>
#include <functional>
#include <memory>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/functional/any_invocable.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "shoal/worker.pb.h"
#include "src/common/ids.h"
#include "src/common/spin.h"

namespace shoal {

using ValuePtr = std::shared_ptr<const rpc::ObjectValue>;

class MemoryStore {
 public:
  // Called once with the value, or with nullptr when the deadline passed (seen by Tick), the
  // id was erased, or the store was cancelled.
  using Callback = absl::AnyInvocable<void(ValuePtr)>;

  // Runs a callback somewhere else; false if it cannot (then the callback runs inline).
  using Dispatch = std::function<bool(std::function<void()>)>;

  static constexpr size_t kMaxSpinIds = 8;  // SpinFor does not spin for more ids

  MemoryStore() = default;
  // `spin_budget`: SpinFor's (src/common/spin.h); the process's SpinBudget() by default.
  explicit MemoryStore(Dispatch dispatch, absl::Duration spin_budget = SpinBudget())
      : dispatch_(std::move(dispatch)), spin_(spin_budget) {}
  MemoryStore(const MemoryStore&) = delete;
  MemoryStore& operator=(const MemoryStore&) = delete;

  // Stores `value` for `id` and wakes its waiters. Answers false, changing nothing, if `id`
  // has a value already.
  bool Put(const ObjectId& id, rpc::ObjectValue value);
  // The value, or nullptr if there is none yet.
  ValuePtr GetIfReady(const ObjectId& id) const;
  // Waits until every id has a value, one of them holds an error, or `deadline` passes. One
  // entry per id; nullptr for ids still without a value then.
  std::vector<ValuePtr> Get(const std::vector<ObjectId>& ids, absl::Time deadline) const;
  // Before a Get that would sleep: spins while the values are likely to come within the spin
  // budget (a sync call's return; src/common/spin.h). Answers true once all of `ids` are there
  // or one holds an error; false (at once) for more than kMaxSpinIds ids, a deadline closer than
  // the budget, or a site that rests.
  bool SpinFor(const std::vector<ObjectId>& ids, absl::Time deadline) const;
  // Waits until at least `num_ready` of `ids` have values (every one, if fewer) or `deadline`
  // passes. Answers a ready flag per id.
  std::vector<bool> Wait(const std::vector<ObjectId>& ids, size_t num_ready, absl::Time deadline) const;
  // Calls `callback` when `id` has a value (see Callback for the other outcomes).
  void GetAsync(const ObjectId& id, absl::Time deadline, Callback callback);
  // Answers callbacks whose deadline is at or before `now` with nullptr.
  void Tick(absl::Time now);
  // True while no callback has a deadline for Tick to see.
  bool Quiet() const;
  // Runs `fn` (on GetAsync's caller, outside the lock) whenever a callback with a deadline is
  // added: the owner's loop may be ticking slowly. Call before any GetAsync.
  void SetTimedWaitHook(std::function<void()> fn) { timed_wait_hook_ = std::move(fn); }
  // Drops the value of `id` (if any); its pending callbacks get nullptr.
  void Erase(const ObjectId& id);
  // Answers every pending callback with nullptr (shutdown).
  void CancelAll();

  size_t size() const;
  size_t num_async_waiters() const;

 private:
  struct AsyncWaiter {
    absl::Time deadline;
    Callback callback;
  };
  size_t CountReady(const std::vector<ObjectId>& ids) const ABSL_SHARED_LOCKS_REQUIRED(mu_);
  void RunDue(std::vector<AsyncWaiter> due, ValuePtr value);

  const Dispatch dispatch_;

  mutable absl::Mutex mu_;
  absl::flat_hash_map<ObjectId, ValuePtr> values_ ABSL_GUARDED_BY(mu_);
  mutable AdaptiveSpin spin_;      // SpinFor's
  std::atomic<uint64_t> puts_{0};  // values put: SpinFor looks again when it moves
  int64_t errors_put_ ABSL_GUARDED_BY(mu_) = 0;  // how many error values were ever put (Get's early end)
  absl::flat_hash_map<ObjectId, std::vector<AsyncWaiter>> async_waiters_ ABSL_GUARDED_BY(mu_);
  std::function<void()> timed_wait_hook_;
};

}  // namespace shoal
