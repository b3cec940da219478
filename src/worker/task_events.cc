#include "src/worker/task_events.h"

#include "absl/time/clock.h"

namespace shoal {

std::string TaskDisplayName(const std::string& function_name) {
  if (function_name.rfind("py:", 0) == 0) {
    size_t second = function_name.find(':', 3);
    if (second != std::string::npos) return function_name.substr(second + 1);
  }
  return function_name;
}

void TaskEventBuffer::Add(const rpc::TaskSpec& spec, rpc::TaskEvent::State state, const std::string& node_id,
                          const std::string& worker_id, const std::string& error_type) {
  rpc::TaskEvent event;
  event.set_task_id(spec.task_id());
  event.set_name(TaskDisplayName(spec.function_name()));
  event.set_job_id(spec.job_id());
  event.set_state(state);
  event.set_time_ms(absl::ToUnixMillis(absl::Now()));
  event.set_node_id(node_id);
  event.set_worker_id(worker_id);
  event.set_actor_id(spec.actor_id());
  event.set_error_type(error_type);
  event.set_attempt(spec.attempt());
  absl::MutexLock lock(&mu_);
  if (events_.size() >= max_events_) {
    ++dropped_;
    return;
  }
  events_.push_back(std::move(event));
}

rpc::ReportTaskEventsRequest TaskEventBuffer::TakeBatch() {
  std::vector<rpc::TaskEvent> events;
  int64_t dropped = 0;
  {
    absl::MutexLock lock(&mu_);
    events.swap(events_);
    dropped = dropped_;
    dropped_ = 0;
  }
  rpc::ReportTaskEventsRequest request;
  request.mutable_events()->Reserve(static_cast<int>(events.size()));
  for (auto& e : events) *request.add_events() = std::move(e);
  request.set_dropped(dropped);
  return request;
}

}  // namespace shoal
