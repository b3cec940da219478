// The owner's side of streaming generators (Ray's num_returns="streaming"): the items a running
// generator task reports, in order, until the caller takes them.
//
// A stream starts when its task is submitted (Add) and is keyed by the task. The executor reports
// item i (ReportGeneratorItem, 0-based) with return id i + 2; the first report of each index is
// kept as an owned object (the owner's language handle takes a reference when Next hands it out),
// later ones (a retried attempt yielding the same items again, or an attempt older than one
// already seen) are answered and dropped. When the task is done for good (Finish), the stream
// ends after the items received; if the task failed, its error becomes one more item, so the
// caller sees it where the next value would have been, as in Ray.
// Backpressure: a report is answered only while fewer than the task's
// generator_backpressure_num_objects items are received and not yet taken; the rest wait (their
// `done` is kept) until Next takes one, the stream is released or the task finishes.
// Release (the caller dropped its generator) frees the items not taken and drops those still to
// come; the stream is forgotten once it is both released and finished.
// Lineage (ObjectRecovery): a finished generator whose stored items were lost runs again;
// Reconstruct names the items it must make anew, and that run's reports of them are kept (as
// the items' new values) while its other reports are dropped; when it finishes, an item it did
// not yield again gets an OBJECT_LOST error as its value.
// Threading: any thread. `done` callbacks run outside the lock, on the thread that made them due.
// Ownership: the reference counter and owned objects are the caller's and must outlive this.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "shoal/worker.pb.h"
#include "src/common/ids.h"
#include "src/worker/owned_objects.h"
#include "src/worker/reference_counter.h"

namespace shoal {

class GeneratorStreams {
 public:
  using Done = std::function<void(absl::Status)>;

  GeneratorStreams(ReferenceCounter& refs, OwnedObjects& objects) : refs_(refs), objects_(objects) {}
  GeneratorStreams(const GeneratorStreams&) = delete;
  GeneratorStreams& operator=(const GeneratorStreams&) = delete;

  // A streaming task was submitted (spec.streaming set).
  void Add(const rpc::TaskSpec& spec);
  // An item of a running generator. NotFound (through `done`) for a task with no stream here;
  // InvalidArgument for an index past the next one expected (a gap).
  void ReportItem(const rpc::ReportGeneratorItemRequest& request, Done done);
  // The task is done for good with these returns (its single completion return).
  void Finish(const rpc::TaskSpec& spec, const std::vector<rpc::ObjectValue>& returns);

  // The id of the next item, waiting until `deadline` (a real-time absl::Time; InfiniteFuture:
  // forever) for it; nullopt when the stream ended. DeadlineExceeded (GET_TIMEOUT) when no item
  // came in time; NotFound for an unknown or released stream.
  absl::StatusOr<std::optional<ObjectId>> Next(const TaskId& task, absl::Time deadline);
  // Every item was taken and the stream ended (true for an unknown stream).
  bool IsFinished(const TaskId& task) const;
  // Next would answer without waiting: an item is there, or the stream ended (or is unknown).
  bool NextReady(const TaskId& task) const;
  // The caller dropped its generator. Unknown tasks are ignored.
  void Release(const TaskId& task);
  // Items (ids of `task`'s items) to take from its run `attempt` (or later), which re-makes them.
  void Reconstruct(const TaskId& task, int32_t attempt, const std::vector<ObjectId>& items);
  // The items of `task` received and kept in a node's object store (for its lineage).
  std::vector<ObjectId> StoredItems(const TaskId& task) const;

  size_t size() const;

 private:
  struct Stream {
    int64_t received = 0;        // items 0..received-1 arrived
    int64_t taken = 0;           // items 0..taken-1 were handed out by Next
    int64_t end = -1;            // the item count once finished (-1 while running)
    int32_t attempt = 0;         // the newest attempt that reported
    int64_t backpressure = -1;   // <= 0: none
    bool released = false;
    std::vector<Done> parked;    // reports held back by backpressure
    std::vector<ObjectId> stored;  // items kept whose values are in a store
  };
  // A run that re-makes lost items (Reconstruct).
  struct Rebuild {
    int32_t attempt = 0;
    absl::flat_hash_set<int64_t> pending;  // item indexes still to come
  };
  static ObjectId ItemId(const TaskId& task, int64_t index) {
    return ObjectId::FromTask(task, static_cast<uint32_t>(index + 2));
  }
  // The parked reports that may go now (all of them when `all`).
  static std::vector<Done> Unpark(Stream& s, bool all);

  ReferenceCounter& refs_;
  OwnedObjects& objects_;

  mutable absl::Mutex mu_;
  absl::flat_hash_map<TaskId, Stream> streams_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<TaskId, Rebuild> rebuilds_ ABSL_GUARDED_BY(mu_);
};

}  // namespace shoal
