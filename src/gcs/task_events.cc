#include "src/gcs/task_events.h"

#include <algorithm>

#include "absl/strings/str_cat.h"

namespace shoal {
namespace {

bool Terminal(rpc::TaskEvent::State s) { return s == rpc::TaskEvent::FINISHED || s == rpc::TaskEvent::FAILED; }

}  // namespace

void TaskEventTable::CountState(rpc::TaskEvent::State state, int delta) {
  switch (state) {
    case rpc::TaskEvent::PENDING:
      pending_ += delta;
      break;
    case rpc::TaskEvent::RUNNING:
      running_ += delta;
      break;
    case rpc::TaskEvent::FINISHED:
      if (delta > 0) finished_total_ += delta;  // cumulative: forgetting a task keeps its count
      break;
    case rpc::TaskEvent::FAILED:
      if (delta > 0) failed_total_ += delta;
      break;
    default:
      break;
  }
}

void TaskEventTable::Apply(const rpc::TaskEvent& event) {
  auto it = tasks_.find(event.task_id());
  if (it == tasks_.end()) {
    recency_.push_front(event.task_id());
    Entry entry;
    entry.position = recency_.begin();
    rpc::TaskSummary& s = entry.summary;
    s.set_task_id(event.task_id());
    s.set_state(event.state());
    s.set_attempt(event.attempt());
    it = tasks_.emplace(event.task_id(), std::move(entry)).first;
    CountState(event.state(), +1);
    // Forget the least recently updated tasks beyond the limit.
    while (tasks_.size() > std::max<size_t>(limits_.max_tasks, 1)) {
      const std::string victim = recency_.back();
      recency_.pop_back();
      auto v = tasks_.find(victim);
      if (v != tasks_.end()) {
        if (!Terminal(v->second.summary.state())) CountState(v->second.summary.state(), -1);
        tasks_.erase(v);
        ++tasks_dropped_;
      }
    }
  } else {
    rpc::TaskSummary& s = it->second.summary;
    const bool newer_attempt = event.attempt() > s.attempt();
    const bool forward = event.state() > s.state() && !Terminal(s.state());
    if (newer_attempt && !Terminal(s.state())) {
      CountState(s.state(), -1);
      s.set_state(event.state());
      s.set_attempt(event.attempt());
      CountState(event.state(), +1);
    } else if (forward && event.attempt() == s.attempt()) {
      CountState(s.state(), -1);
      s.set_state(event.state());
      CountState(event.state(), +1);
    }
    recency_.splice(recency_.begin(), recency_, it->second.position);
  }
  rpc::TaskSummary& s = it->second.summary;
  if (!event.name().empty()) s.set_name(event.name());
  if (!event.job_id().empty()) s.set_job_id(event.job_id());
  if (!event.actor_id().empty()) s.set_actor_id(event.actor_id());
  switch (event.state()) {
    case rpc::TaskEvent::PENDING:
      if (s.submit_time_ms() == 0) s.set_submit_time_ms(event.time_ms());
      break;
    case rpc::TaskEvent::RUNNING:
      s.set_start_time_ms(event.time_ms());
      if (!event.node_id().empty()) s.set_node_id(event.node_id());
      if (!event.worker_id().empty()) s.set_worker_id(event.worker_id());
      break;
    default:
      s.set_end_time_ms(event.time_ms());
      if (!event.error_type().empty()) s.set_error_type(event.error_type());
      break;
  }
}

absl::Status TaskEventTable::Report(const rpc::ReportTaskEventsRequest& request) {
  const size_t size = static_cast<size_t>(request.events_size());
  if (size > limits_.max_batch_events) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "ReportTaskEvents: the batch holds ", size, " events, over the limit of ", limits_.max_batch_events,
        " events per batch (shoal-gcs --task-events-max-batch-size)"));
  }
  absl::MutexLock lock(&mu_);
  dropped_ += std::max<int64_t>(request.dropped(), 0);
  for (const auto& event : request.events()) {
    if (event.task_id().empty()) continue;
    Apply(event);
  }
  return absl::OkStatus();
}

rpc::ListTasksReply TaskEventTable::List(int limit, const std::string& job_id) const {
  if (limit <= 0) limit = 100;
  limit = std::min(limit, 10000);
  rpc::ListTasksReply reply;
  absl::MutexLock lock(&mu_);
  for (const std::string& id : recency_) {
    if (reply.tasks_size() >= limit) break;
    const rpc::TaskSummary& s = tasks_.at(id).summary;
    if (!job_id.empty() && s.job_id() != job_id) continue;
    *reply.add_tasks() = s;
  }
  auto& counts = *reply.mutable_count_by_state();
  counts["PENDING"] = pending_;
  counts["RUNNING"] = running_;
  counts["FINISHED"] = finished_total_;
  counts["FAILED"] = failed_total_;
  reply.set_num_tracked(static_cast<int64_t>(tasks_.size()));
  reply.set_events_dropped(dropped_);
  reply.set_tasks_dropped(tasks_dropped_);
  return reply;
}

}  // namespace shoal
