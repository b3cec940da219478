#include "src/gcs/task_events.h"

#include <catch2/catch.hpp>

#include "absl/strings/match.h"
#include "src/common/ids.h"

namespace shoal {
namespace {

rpc::TaskEvent Event(const TaskId& task, rpc::TaskEvent::State state, int attempt = 0, int64_t time_ms = 1) {
  rpc::TaskEvent e;
  e.set_task_id(task.Binary());
  e.set_name("f");
  e.set_job_id("01000000");
  e.set_state(state);
  e.set_attempt(attempt);
  e.set_time_ms(time_ms);
  return e;
}

void Report(TaskEventTable& table, std::vector<rpc::TaskEvent> events, int64_t dropped = 0) {
  rpc::ReportTaskEventsRequest req;
  for (auto& e : events) *req.add_events() = e;
  req.set_dropped(dropped);
  REQUIRE(table.Report(req).ok());
}

int64_t Count(const rpc::ListTasksReply& reply, const char* state) { return reply.count_by_state().at(state); }

TEST_CASE("task events: states move forward and are counted", "[task_events]") {
  TaskEventTable table;
  const JobId job = *JobId::FromHex("01000000");
  TaskId a = TaskId::ForNormalTask(job), b = TaskId::ForNormalTask(job);
  Report(table, {Event(a, rpc::TaskEvent::PENDING), Event(b, rpc::TaskEvent::PENDING)});
  auto reply = table.List(10, "");
  CHECK(Count(reply, "PENDING") == 2);
  // Out of order: the owner's FINISHED arrives before the worker's RUNNING.
  Report(table, {Event(a, rpc::TaskEvent::FINISHED, 0, 5), Event(a, rpc::TaskEvent::RUNNING, 0, 3)});
  Report(table, {Event(b, rpc::TaskEvent::RUNNING)}, /*dropped=*/7);
  reply = table.List(10, "");
  CHECK(Count(reply, "PENDING") == 0);
  CHECK(Count(reply, "RUNNING") == 1);
  CHECK(Count(reply, "FINISHED") == 1);
  CHECK(reply.events_dropped() == 7);
  REQUIRE(reply.tasks_size() == 2);
  CHECK(reply.tasks(0).task_id() == b.Binary());  // most recently updated first
  CHECK(reply.tasks(1).state() == rpc::TaskEvent::FINISHED);
  CHECK(reply.tasks(1).end_time_ms() == 5);
  // A retry takes b back to RUNNING in attempt 1, then it fails.
  Report(table, {Event(b, rpc::TaskEvent::RUNNING, 1), Event(b, rpc::TaskEvent::FAILED, 1)});
  reply = table.List(10, "");
  CHECK(Count(reply, "RUNNING") == 0);
  CHECK(Count(reply, "FAILED") == 1);
  CHECK(table.List(10, "02000000").tasks_size() == 0);
}

TEST_CASE("task events: the table is bounded, terminal counts stay", "[task_events]") {
  TaskEventTable table(TaskEventLimits{.max_tasks = 100});
  const JobId job = *JobId::FromHex("01000000");
  for (int i = 0; i < 1000; ++i) {
    TaskId t = TaskId::ForNormalTask(job);
    Report(table, {Event(t, rpc::TaskEvent::PENDING), Event(t, rpc::TaskEvent::FINISHED)});
  }
  TaskId pending = TaskId::ForNormalTask(job);
  Report(table, {Event(pending, rpc::TaskEvent::PENDING)});
  auto reply = table.List(10000, "");
  CHECK(reply.num_tracked() == 100);
  CHECK(reply.tasks_size() == 100);
  CHECK(Count(reply, "FINISHED") == 1000);
  CHECK(Count(reply, "PENDING") == 1);
  CHECK(table.List(0, "").tasks_size() == 100);  // 0: the default of 100
  // Each task forgotten to stay within the limit is counted, as Ray counts dropped task events.
  CHECK(reply.tasks_dropped() == 1001 - 100);
  CHECK(reply.events_dropped() == 0);  // that count is the reporters' own
}

TEST_CASE("task events: the least recently updated task is the one dropped", "[task_events]") {
  TaskEventTable table(TaskEventLimits{.max_tasks = 2});
  const JobId job = *JobId::FromHex("01000000");
  TaskId a = TaskId::ForNormalTask(job), b = TaskId::ForNormalTask(job), c = TaskId::ForNormalTask(job);
  REQUIRE(table.Report([&] {
    rpc::ReportTaskEventsRequest r;
    *r.add_events() = Event(a, rpc::TaskEvent::PENDING);
    *r.add_events() = Event(b, rpc::TaskEvent::PENDING);
    *r.add_events() = Event(a, rpc::TaskEvent::RUNNING);  // a is now the most recent
    *r.add_events() = Event(c, rpc::TaskEvent::PENDING);
    return r;
  }()).ok());
  auto reply = table.List(10, "");
  REQUIRE(reply.tasks_size() == 2);
  CHECK(reply.tasks(0).task_id() == c.Binary());
  CHECK(reply.tasks(1).task_id() == a.Binary());
  CHECK(reply.tasks_dropped() == 1);
  // b was PENDING when dropped: it no longer counts as pending.
  CHECK(Count(reply, "PENDING") == 1);
  CHECK(Count(reply, "RUNNING") == 1);
}

TEST_CASE("task events: a batch over the limit is refused whole, naming the limit and its size", "[task_events]") {
  TaskEventTable table(TaskEventLimits{.max_tasks = 100, .max_batch_events = 3});
  const JobId job = *JobId::FromHex("01000000");
  rpc::ReportTaskEventsRequest batch;
  for (int i = 0; i < 4; ++i) *batch.add_events() = Event(TaskId::ForNormalTask(job), rpc::TaskEvent::PENDING);
  batch.set_dropped(5);
  absl::Status s = table.Report(batch);
  CHECK(s.code() == absl::StatusCode::kResourceExhausted);
  CHECK(absl::StrContains(s.message(), "holds 4 events"));
  CHECK(absl::StrContains(s.message(), "limit of 3"));
  CHECK(absl::StrContains(s.message(), "--task-events-max-batch-size"));
  auto reply = table.List(10, "");
  CHECK(reply.num_tracked() == 0);
  CHECK(reply.events_dropped() == 0);
  // At the limit it is taken.
  batch.mutable_events()->RemoveLast();
  CHECK(table.Report(batch).ok());
  CHECK(table.List(10, "").num_tracked() == 3);
}

}  // namespace
}  // namespace shoal
