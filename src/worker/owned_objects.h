// The objects a core worker owns or borrows: their values (inline in the memory store, or in
// this node's object store), Put, Get and Wait over them, the values of borrowed objects fetched
// from their owners, and freeing what goes out of scope (memory-store entries and, for owned
// objects, their store copies).
//
// Reference counts live in the ReferenceCounter; this class keeps values in line with them: a
// value that arrives for an object nobody references any more is dropped at once.
// Threading: every method from any thread. A borrowed value arriving runs through
// Options::post (the core worker's loop). Dropping a reference (maybe from a finalizer) only
// queues the free; FreePending, called by the loop (the first free queued asks for it through
// Options::post, later ones join the batch; the tick does it too) does it: the loop is woken
// once per batch, not per dropped reference.
// Ownership: the memory store, reference counter, store access and transport are the caller's
// and must outlive this object.
// Errors: Get answers each object's own failure as its ErrorStatus; a get that times out is
// GET_TIMEOUT; an id this worker neither owns nor borrows is InvalidArgument. A store value that
// cannot be read is re-made through Options::recovery when it can be (object_recovery.h), else
// OBJECT_LOST.
#pragma once

#include <atomic>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "shoal/worker.pb.h"
#include "src/common/clock.h"
#include "src/common/ids.h"
#include "src/worker/core_worker.h"
#include "src/worker/memory_store.h"
#include "src/worker/object_recovery.h"
#include "src/worker/reference_counter.h"
#include "src/worker/store_access.h"

namespace shoal {

// The RPCs behind objects: asking an owner for a borrowed value, freeing store copies.
// GrpcTransport in production; a fake in tests. Callbacks may run on any thread.
class ObjectTransport {
 public:
  using GetObjectCallback = std::function<void(absl::Status, rpc::GetObjectReply)>;
  virtual ~ObjectTransport() = default;
  // Waits at the owner until the object is ready; NotFound when the owner freed it.
  virtual void GetObject(const std::string& owner_address, const ObjectId& id, GetObjectCallback done) = 0;
  // Fire and forget.
  virtual void FreeObjects(const std::string& raylet_address, const std::vector<ObjectId>& ids) = 0;
};

class OwnedObjects {
 public:
  struct Options {
    std::string address;   // this worker's CoreWorkerService: owned objects name it as owner
    TaskId put_task;       // Put objects are numbered under it
    // Called with true before a Get or Wait blocks and false after (a worker lends its CPUs
    // meanwhile); empty for a driver.
    std::function<void(bool blocked)> set_blocked;
    // Runs continuations (the core worker's loop).
    std::function<void(std::function<void()>)> post;
    // Re-makes owned task results whose every copy is lost (may be null: they fail OBJECT_LOST).
    ObjectRecovery* recovery = nullptr;
  };

  OwnedObjects(MemoryStore& memory, ReferenceCounter& refs, ObjectStoreAccess& store, ObjectTransport& transport,
               const Clock& clock, Options options);
  OwnedObjects(const OwnedObjects&) = delete;
  OwnedObjects& operator=(const OwnedObjects&) = delete;

  // As CoreWorker::Put / PutParts.
  absl::StatusOr<ObjectId> Put(std::string bytes);
  absl::StatusOr<ObjectId> PutParts(const std::vector<std::string_view>& parts);
  // As CoreWorker::Get, GetBuffers and Wait.
  absl::StatusOr<std::vector<absl::StatusOr<std::string>>> Get(const std::vector<ObjectId>& ids,
                                                               absl::Duration timeout);
  absl::StatusOr<std::vector<absl::StatusOr<ObjectBuffer>>> GetBuffers(
      const std::vector<ObjectId>& ids, absl::Duration timeout, std::function<bool()> interrupted = nullptr);
  absl::StatusOr<std::vector<bool>> Wait(const std::vector<ObjectId>& ids, int num_ready, absl::Duration timeout,
                                         bool fetch_local = false);
  // Waits for the values of `ids` (owned or borrowed); DeadlineExceeded (GET_TIMEOUT) when not
  // all came in `timeout` (negative: forever). With `interrupted`, asks it every
  // kInterruptCheckPeriod while it waits and answers Cancelled when it says true.
  absl::StatusOr<std::vector<ValuePtr>> WaitForValues(const std::vector<ObjectId>& ids, absl::Duration timeout,
                                                      const std::function<bool()>& interrupted = nullptr);
  static constexpr absl::Duration kInterruptCheckPeriod = absl::Milliseconds(100);
  // The least time between two asks of the loop to free at once (RemoveLocalReference).
  static constexpr absl::Duration kUrgentFreeSpacing = absl::Milliseconds(1);

  // Starts asking the owner of `id` for its value, if `id` is borrowed and not fetched yet.
  void FetchIfBorrowed(const ObjectId& id);
  // Stores the value of an object (a task's result, a borrowed value), unless it went out of
  // scope meanwhile: then it is dropped with, when `owned`, its store copy.
  void StoreResult(const ObjectId& id, rpc::ObjectValue value, bool owned);
  // Drops a local reference; what goes out of scope is queued for FreePending.
  void RemoveLocalReference(const ObjectId& id);
  // Frees what RemoveLocalReference queued.
  void FreePending();
  // True while no free waits for FreePending.
  bool Quiet() const;
  // Frees objects that went out of scope: memory-store values and owned store copies.
  void Free(const std::vector<ReferenceCounter::OutOfScope>& gone);
  // Language layers that keep state per object (GPU tensors another worker holds for it) hear
  // when a watched object is freed: the handler runs on the freeing thread (the loop's tick),
  // with the watched ids of one Free, and must not block.
  void WatchFree(const ObjectId& id);
  void SetFreedHandler(std::function<void(std::vector<ObjectId>)> handler);

 private:
  class BlockedScope;
  ObjectId NewPutId() { return ObjectId::FromTask(options_.put_task, put_index_.fetch_add(1) + 1); }
  // Stores a new owned object with `value` (its id set).
  ObjectId AddOwned(const ObjectId& id, rpc::ObjectValue value);
  absl::Status CheckKnown(const std::vector<ObjectId>& ids);
  // Wait with fetch_local: copies the ready store values held on other nodes here; those not
  // copied by `deadline` are not ready.
  void FetchReady(const std::vector<ObjectId>& ids, std::vector<bool>& ready, absl::Time deadline);
  // The value's bytes; a store copy is read (copied here first if need be) until `deadline`.
  absl::StatusOr<std::string> ToBytes(const ValuePtr& value, absl::Time deadline);
  absl::StatusOr<ObjectBuffer> ToBuffer(const ValuePtr& value, absl::Time deadline);
  // read(value, deadline), and when the store copy of an owned task result is lost, the same after
  // Options::recovery made it again (waiting for it until `deadline`).
  template <typename T, typename Read>
  absl::StatusOr<T> ReadRecovering(const ObjectId& id, ValuePtr value, absl::Time deadline, Read read);

  MemoryStore& memory_;
  ReferenceCounter& refs_;
  ObjectStoreAccess& store_;
  ObjectTransport& transport_;
  const Clock& clock_;
  const Options options_;
  std::atomic<uint32_t> put_index_{0};

  mutable absl::Mutex mu_;
  absl::flat_hash_set<ObjectId> fetching_ ABSL_GUARDED_BY(mu_);  // borrowed values asked for
  std::vector<ReferenceCounter::OutOfScope> pending_free_ ABSL_GUARDED_BY(mu_);
  bool urgent_free_posted_ ABSL_GUARDED_BY(mu_) = false;  // FreePending asked of the loop
  absl::Time next_urgent_post_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();  // kUrgentFreeSpacing
  std::atomic<bool> any_watched_{false};
  absl::flat_hash_set<ObjectId> watched_ ABSL_GUARDED_BY(mu_);
  std::function<void(std::vector<ObjectId>)> freed_handler_ ABSL_GUARDED_BY(mu_);
};

}  // namespace shoal
