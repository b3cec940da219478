// The owner's and worker's task-event buffer (src/worker/task_events.h): what goes in comes out
// in the batch, fields as the GCS merges them, and a full buffer drops and counts.
#include "src/worker/task_events.h"

#include <catch2/catch.hpp>

#include "src/common/ids.h"

namespace shoal {
namespace {

rpc::TaskSpec Spec(const std::string& function, bool actor_call, uint32_t attempt = 0) {
  rpc::TaskSpec spec;
  const JobId job = JobId::FromInt(7);
  spec.set_job_id(job.Binary());
  spec.set_task_id(TaskId::ForNormalTask(job).Binary());
  spec.set_function_name(function);
  spec.set_attempt(attempt);
  if (actor_call) spec.set_actor_id(ActorId::Of(job).Binary());
  return spec;
}

TEST_CASE("task events: each state's event carries what the GCS merges, nothing empty", "[task_events]") {
  TaskEventBuffer events;
  events.SetWorker("node-hex", "worker-hex");
  const rpc::TaskSpec task = Spec("py:0123456789abcdef0123456789abcdef01234567:train_one_epoch_of_a_long_name", false);
  const rpc::TaskSpec call = Spec("get", true, 2);
  events.Add(task, rpc::TaskEvent::PENDING);
  events.Add(task, rpc::TaskEvent::RUNNING);
  events.Add(call, rpc::TaskEvent::FAILED, "RayActorError");
  rpc::ReportTaskEventsRequest batch = events.TakeBatch();
  REQUIRE(batch.events_size() == 3);
  CHECK(batch.dropped() == 0);

  const rpc::TaskEvent& pending = batch.events(0);
  CHECK(pending.task_id() == task.task_id());
  CHECK(pending.job_id() == task.job_id());
  CHECK(pending.name() == "train_one_epoch_of_a_long_name");
  CHECK(pending.state() == rpc::TaskEvent::PENDING);
  CHECK(pending.time_ms() > 0);
  CHECK(pending.actor_id().empty());
  CHECK(pending.node_id().empty());  // only a RUNNING event names where it runs
  CHECK(pending.worker_id().empty());
  CHECK(pending.error_type().empty());

  const rpc::TaskEvent& running = batch.events(1);
  CHECK(running.state() == rpc::TaskEvent::RUNNING);
  CHECK(running.node_id() == "node-hex");
  CHECK(running.worker_id() == "worker-hex");

  const rpc::TaskEvent& failed = batch.events(2);
  CHECK(failed.state() == rpc::TaskEvent::FAILED);
  CHECK(failed.actor_id() == call.actor_id());
  CHECK(failed.name() == "get");
  CHECK(failed.attempt() == 2);
  CHECK(failed.error_type() == "RayActorError");
  CHECK(failed.node_id().empty());

  CHECK(events.TakeBatch().events_size() == 0);  // taken once
}

TEST_CASE("task events: a full buffer drops new events and counts them until the next batch", "[task_events]") {
  TaskEventBuffer events(/*max_events=*/2);
  const rpc::TaskSpec task = Spec("f", false);
  for (int i = 0; i < 5; ++i) events.Add(task, rpc::TaskEvent::PENDING);
  rpc::ReportTaskEventsRequest batch = events.TakeBatch();
  CHECK(batch.events_size() == 2);
  CHECK(batch.dropped() == 3);
  events.Add(task, rpc::TaskEvent::FINISHED);
  batch = events.TakeBatch();
  CHECK(batch.events_size() == 1);
  CHECK(batch.dropped() == 0);
}

TEST_CASE("task events: display names", "[task_events]") {
  CHECK(TaskDisplayName("py:abc:f") == "f");
  CHECK(TaskDisplayName("py:abc:Actor.method") == "Actor.method");
  CHECK(TaskDisplayName("driver::Counter::Add") == "driver::Counter::Add");
  CHECK(TaskDisplayName("py:no-second-colon") == "py:no-second-colon");
}

}  // namespace
}  // namespace shoal
