// Task events a core worker reports to the GCS (TaskEventService, see gcs.proto): PENDING when
// it submits a task, RUNNING when it starts one, FINISHED/FAILED when a task it owns is done.
// Events are buffered and sent in batches (the core worker flushes once a second); a full
// buffer drops new events and counts them, so reporting never slows tasks down.
// Threading: thread-safe.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "shoal/gcs.pb.h"
#include "shoal/worker.pb.h"

namespace shoal {

class TaskEventBuffer {
 public:
  explicit TaskEventBuffer(size_t max_events = 100000) : max_events_(max_events) {}

  // An event for `spec` in `state`; node/worker for RUNNING, error type for FAILED.
  void Add(const rpc::TaskSpec& spec, rpc::TaskEvent::State state, const std::string& node_id = "",
           const std::string& worker_id = "", const std::string& error_type = "");
  // Takes what is buffered (and the count dropped since the last flush); empty when nothing is.
  rpc::ReportTaskEventsRequest TakeBatch();

 private:
  const size_t max_events_;
  absl::Mutex mu_;
  std::vector<rpc::TaskEvent> events_ ABSL_GUARDED_BY(mu_);
  int64_t dropped_ ABSL_GUARDED_BY(mu_) = 0;
};

// A task's name for people: "f" for Python's "py:<id>:f", the name itself otherwise.
std::string TaskDisplayName(const std::string& function_name);

}  // namespace shoal
