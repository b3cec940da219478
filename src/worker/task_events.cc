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

void TaskEventBuffer::SetWorker(std::string node_id, std::string worker_id) {
  absl::MutexLock lock(&mu_);
  node_id_ = std::move(node_id);
  worker_id_ = std::move(worker_id);
}

void TaskEventBuffer::Add(const rpc::TaskSpec& spec, rpc::TaskEvent::State state, std::string_view error_type) {
  Record r{state, absl::ToUnixMillis(absl::Now()), spec.attempt(),
           {spec.task_id().begin(), spec.task_id().end()}, {spec.job_id().begin(), spec.job_id().end()},
           {spec.actor_id().begin(), spec.actor_id().end()}, TaskDisplayName(spec.function_name()),
           std::string(error_type)};
  absl::MutexLock lock(&mu_);
  if (events_.size() >= max_events_) {
    ++dropped_;
    return;
  }
  events_.push_back(std::move(r));
}

rpc::ReportTaskEventsRequest TaskEventBuffer::TakeBatch() {
  std::vector<Record> records;
  int64_t dropped = 0;
  std::string node_id, worker_id;
  {
    absl::MutexLock lock(&mu_);
    records.swap(events_);
    dropped = dropped_;
    dropped_ = 0;
    node_id = node_id_;
    worker_id = worker_id_;
  }
  rpc::ReportTaskEventsRequest request;
  request.mutable_events()->Reserve(static_cast<int>(records.size()));
  for (Record& r : records) {
    rpc::TaskEvent* event = request.add_events();
    event->set_task_id(std::string(r.task_id.begin(), r.task_id.end()));
    event->set_name(std::move(r.name));
    event->set_job_id(std::string(r.job_id.begin(), r.job_id.end()));
    event->set_state(r.state);
    event->set_time_ms(r.time_ms);
    event->set_attempt(r.attempt);
    // Fields left empty stay unset (the GCS merges only what an event carries).
    if (!r.actor_id.empty()) event->set_actor_id(std::string(r.actor_id.begin(), r.actor_id.end()));
    if (!r.error_type.empty()) event->set_error_type(std::move(r.error_type));
    if (r.state == rpc::TaskEvent::RUNNING) {
      if (!node_id.empty()) event->set_node_id(node_id);
      if (!worker_id.empty()) event->set_worker_id(worker_id);
    }
  }
  request.set_dropped(dropped);
  return request;
}

}  // namespace shoal
