// Task events a core worker reports to the GCS (TaskEventService, see gcs.proto): PENDING when
// it submits a task, RUNNING when it starts one, FINISHED/FAILED when a task it owns is done.
// Events are buffered and sent in batches (the core worker flushes once a second); a full
// buffer drops new events and counts them, so reporting never slows tasks down.
//
// An event is kept as a compact record (ids in place, short strings inline) and made into its
// protobuf message only when the batch is taken, on the flushing thread: Add sits on every
// task's path (two events per call at its owner), and a message with a heap string per field
// cost about ten allocations there.
// Threading: thread-safe.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/inlined_vector.h"
#include "absl/synchronization/mutex.h"
#include "shoal/gcs.pb.h"
#include "shoal/worker.pb.h"

namespace shoal {

class TaskEventBuffer {
 public:
  explicit TaskEventBuffer(size_t max_events = 100000) : max_events_(max_events) {}

  // The node and worker (hex ids) this buffer's RUNNING events name: the worker it is in.
  void SetWorker(std::string node_id, std::string worker_id);
  // An event for `spec` in `state`; an error type for FAILED.
  void Add(const rpc::TaskSpec& spec, rpc::TaskEvent::State state, std::string_view error_type = {});
  // Takes what is buffered (and the count dropped since the last flush); empty when nothing is.
  rpc::ReportTaskEventsRequest TakeBatch();

 private:
  struct Record {
    rpc::TaskEvent::State state;
    int64_t time_ms;
    uint32_t attempt;
    absl::InlinedVector<char, 24> task_id;  // binary ids, as the spec holds them
    absl::InlinedVector<char, 4> job_id;
    absl::InlinedVector<char, 16> actor_id;
    std::string name;        // the display name: short ones stay inline
    std::string error_type;  // empty but for FAILED
  };

  const size_t max_events_;
  absl::Mutex mu_;
  std::string node_id_ ABSL_GUARDED_BY(mu_);
  std::string worker_id_ ABSL_GUARDED_BY(mu_);
  std::vector<Record> events_ ABSL_GUARDED_BY(mu_);
  int64_t dropped_ ABSL_GUARDED_BY(mu_) = 0;
};

// A task's name for people: "f" for Python's "py:<id>:f", the name itself otherwise.
std::string TaskDisplayName(const std::string& function_name);

}  // namespace shoal
