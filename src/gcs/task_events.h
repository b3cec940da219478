// The GCS's view of recent tasks, from the events owners and workers report
// (TaskEventService): the latest state of up to `max_tasks` tasks and counts by state for
// /metrics. Nothing here is persisted: after a GCS restart the table starts empty.
//
// Bounded as Ray's GCS task manager is (task_events_max_num_task_in_gcs): when a new task would
// pass the limit, the least recently updated task is forgotten and counted in tasks_dropped.
// A batch of more than `max_batch_events` events is refused whole (ResourceExhausted, naming
// the limit and the batch's size) and changes nothing.
//
// Events of one task may arrive out of order (the owner and the executing worker report
// separately): a task's state only moves forward (PENDING < RUNNING < FINISHED/FAILED), except
// that a new attempt (retry) may take it from RUNNING back to PENDING/RUNNING.
// Threading: thread-safe (one mutex).
#pragma once

#include <cstdint>
#include <list>
#include <map>
#include <string>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "shoal/gcs.pb.h"

namespace shoal {

struct TaskEventLimits {
  size_t max_tasks = 100000;          // Ray's task_events_max_num_task_in_gcs default
  size_t max_batch_events = 100000;   // a core worker buffers at most this many (src/worker)
};

class TaskEventTable {
 public:
  explicit TaskEventTable(TaskEventLimits limits = {}) : limits_(limits) {}

  // Applies the batch's events in order; ResourceExhausted (nothing applied) over the limit.
  absl::Status Report(const rpc::ReportTaskEventsRequest& request);
  // Most recently updated first; `limit` is clamped to 1..10000 (0: 100).
  rpc::ListTasksReply List(int limit, const std::string& job_id) const;

 private:
  struct Entry {
    rpc::TaskSummary summary;
    std::list<std::string>::iterator position;  // in recency_
  };
  void CountState(rpc::TaskEvent::State state, int delta) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Apply(const rpc::TaskEvent& event) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const TaskEventLimits limits_;
  mutable absl::Mutex mu_;
  absl::flat_hash_map<std::string, Entry> tasks_ ABSL_GUARDED_BY(mu_);  // by task id bytes
  std::list<std::string> recency_ ABSL_GUARDED_BY(mu_);                   // front: most recent
  int64_t pending_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t running_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t finished_total_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t failed_total_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t dropped_ ABSL_GUARDED_BY(mu_) = 0;        // reported by reporters
  int64_t tasks_dropped_ ABSL_GUARDED_BY(mu_) = 0;  // forgotten here to stay within max_tasks
};

}  // namespace shoal
