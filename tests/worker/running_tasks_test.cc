// RunningTasks (which task each thread runs) and CallGate, on plain threads.
#include "src/worker/running_tasks.h"

#include <catch2/catch.hpp>

#include <thread>

#include "absl/synchronization/notification.h"
#include "src/worker/call_gate.h"
#include "src/worker/task_spec.h"

namespace shoal {
namespace {

const JobId kJob = JobId::FromInt(3);

rpc::TaskSpec Spec() {
  rpc::TaskSpec spec;
  spec.set_task_id(TaskId::ForNormalTask(kJob).Binary());
  spec.set_function_name("f");
  return spec;
}

CurrentTaskInfo Info(const rpc::TaskSpec& spec) {
  CurrentTaskInfo info;
  info.task_id = SpecTaskId(spec).Hex();
  info.function_name = spec.function_name();
  return info;
}

// Marks what the describe step saw, as the core worker adds the resources.
CurrentTaskInfo Described(CurrentTaskInfo info, const rpc::TaskSpec& spec) {
  info.resources["seen:" + spec.function_name()] = 1;
  return info;
}

CurrentTaskInfo FromOtherThread(RunningTasks& running) {
  CurrentTaskInfo out;
  std::thread([&] { out = running.Current(Described); }).join();
  return out;
}

TEST_CASE("running tasks: each thread's task, lent to the user's threads only one at a time",
          "[running_tasks]") {
  RunningTasks running;
  CHECK(running.Current(Described).task_id.empty());
  CHECK(RunningTasks::ThisThread().task_id.empty());

  const rpc::TaskSpec spec = Spec();
  running.Enter(spec, Info(spec));
  CurrentTaskInfo here = running.Current(Described);
  CHECK(here.task_id == SpecTaskId(spec).Hex());
  CHECK(here.resources.count("seen:f") == 1);
  CHECK(RunningTasks::ThisThread().task_id == here.task_id);
  // A thread the user started inside it: the worker runs one task at a time, so it is this one.
  CHECK(FromOtherThread(running).task_id == here.task_id);
  running.Leave();
  CHECK(running.Current(Described).task_id.empty());
  CHECK(FromOtherThread(running).task_id.empty());

  // A threaded actor: its calls' own threads see their calls, other threads none.
  running.SetOneAtATime(false);
  running.Enter(spec, Info(spec));
  CHECK(running.Current(Described).task_id == SpecTaskId(spec).Hex());
  CHECK(FromOtherThread(running).task_id.empty());
  running.Leave();
}

TEST_CASE("running tasks: what a task submits is its children until it ends", "[running_tasks]") {
  RunningTasks running;
  const ObjectId child = ObjectId::FromTask(TaskId::ForNormalTask(kJob), 1);
  running.AddChild(child);  // outside tasks: nobody's
  const rpc::TaskSpec spec = Spec();
  const TaskId parent = SpecTaskId(spec);
  CHECK(running.TakeChildren(parent).empty());

  running.Enter(spec, Info(spec));
  running.AddChild(child);
  CHECK(running.TakeChildren(parent) == std::vector<ObjectId>{child});
  CHECK(running.TakeChildren(parent).empty());  // taken
  running.AddChild(child);
  running.Leave();
  CHECK(running.TakeChildren(parent).empty());  // dropped with the task
}

TEST_CASE("call gate: entries until Close, which waits for those inside", "[running_tasks]") {
  CallGate gate;
  {
    CallGate::Entry outer(gate);
    CallGate::Entry nested(gate);
    CHECK(outer);
    CHECK(nested);
  }
  absl::Notification inside, release, closed;
  std::thread holder([&] {
    CallGate::Entry entry(gate);
    REQUIRE(entry);
    inside.Notify();
    release.WaitForNotification();
  });
  inside.WaitForNotification();
  std::thread closer([&] {
    gate.Close();
    closed.Notify();
  });
  CHECK_FALSE(closed.WaitForNotificationWithTimeout(absl::Milliseconds(50)));  // still inside
  release.Notify();
  holder.join();
  closer.join();
  CHECK(closed.HasBeenNotified());
  CallGate::Entry late(gate);
  CHECK_FALSE(late);
}

}  // namespace
}  // namespace shoal
