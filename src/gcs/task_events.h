// The GCS's view of recent tasks, from the events owners and workers report
// (TaskEventService): the latest state of up to `capacity` tasks (the least recently updated
// are forgotten first) and counts by state for /metrics. Nothing here is persisted: after a
// GCS restart the table starts empty.
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
#include "absl/synchronization/mutex.h"
#include "shoal/gcs.pb.h"

namespace shoal {

class TaskEventTable {
 public:
  explicit TaskEventTable(size_t capacity = 10000) : capacity_(capacity) {}

  void Report(const rpc::ReportTaskEventsRequest& request);
  // Most recently updated first; `limit` is clamped to 1..10000 (0: 100).
  rpc::ListTasksReply List(int limit, const std::string& job_id) const;

 private:
  struct Entry {
    rpc::TaskSummary summary;
    std::list<std::string>::iterator position;  // in recency_
  };
  void CountState(rpc::TaskEvent::State state, int delta) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Apply(const rpc::TaskEvent& event) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const size_t capacity_;
  mutable absl::Mutex mu_;
  absl::flat_hash_map<std::string, Entry> tasks_ ABSL_GUARDED_BY(mu_);  // by task id bytes
  std::list<std::string> recency_ ABSL_GUARDED_BY(mu_);                   // front: most recent
  int64_t pending_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t running_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t finished_total_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t failed_total_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t dropped_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace shoal
