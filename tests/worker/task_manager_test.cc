// TaskManager over fakes: argument checks, large arguments to the store, references held until
// the task finishes, failed and cancelled arguments, task events.
#include "src/worker/task_manager.h"

#include <catch2/catch.hpp>

#include <optional>
#include <string>
#include <vector>

#include "src/common/error_info.h"
#include "src/worker/object_value.h"
#include "src/worker/task_spec.h"
#include "tests/test_util/status_matchers.h"
#include "tests/worker/owner_parts.h"

namespace shoal {
namespace {

const JobId kJob = JobId::FromInt(11);

rpc::TaskSpec Spec(const std::string& function = "f", uint32_t num_returns = 1) {
  rpc::TaskSpec spec;
  spec.set_task_id(TaskId::ForNormalTask(kJob).Binary());
  spec.set_job_id(kJob.Hex());
  spec.set_function_name(function);
  spec.set_num_returns(num_returns);
  return spec;
}

struct Fixture : test::OwnerParts {
  Fixture() : OwnerParts(kJob) {}
  // An owned object with an inline value and one local reference.
  ObjectId Owned(const std::string& value) {
    auto id = objects.Put(value);
    REQUIRE_OK(id);
    refs.AddLocal(*id);
    return *id;
  }
  // Resolves `spec`; answers the spec submitted (nullopt when none was).
  std::optional<rpc::TaskSpec> Resolve(rpc::TaskSpec spec, std::vector<TaskArg> args, bool* failed = nullptr) {
    std::optional<rpc::TaskSpec> submitted;
    tasks.Resolve(
        std::move(spec), std::move(args), [&](rpc::TaskSpec resolved) { submitted = std::move(resolved); },
        [failed] {
          if (failed != nullptr) *failed = true;
        });
    return submitted;
  }
};

TEST_CASE_METHOD(Fixture, "task manager: refs this worker does not know are refused", "[task_manager]") {
  const ObjectId stranger = ObjectId::FromTask(TaskId::ForNormalTask(kJob), 1);
  std::vector<TaskArg> args{TaskArg::Ref(stranger)};
  REQUIRE_CODE(tasks.Prepare(Spec(), args, {}, false), kInvalidArgument);
  std::vector<TaskArg> plain{TaskArg::Value("x")};
  REQUIRE_CODE(tasks.Prepare(Spec(), plain, {stranger}, false), kInvalidArgument);
  CHECK(refs.size() == 0);  // no return objects added
}

TEST_CASE_METHOD(Fixture, "task manager: returns are owned, large values go to the store", "[task_manager]") {
  const rpc::TaskSpec spec = Spec("f", 2);
  std::vector<TaskArg> args{TaskArg::Value("small"), TaskArg::Value(std::string(kMaxInlineObjectSize + 1, 'x'))};
  auto returns = tasks.Prepare(spec, args, {}, false);
  REQUIRE_OK(returns);
  REQUIRE(returns->size() == 2);
  CHECK((*returns)[0] == ReturnObjectId(spec, 1));
  CHECK(refs.OwnerAddress((*returns)[1]) == std::string());
  CHECK_FALSE(args[0].is_ref);
  REQUIRE(args[1].is_ref);
  REQUIRE(memory.GetIfReady(args[1].ref) != nullptr);
  CHECK(memory.GetIfReady(args[1].ref)->in_store());
}

TEST_CASE_METHOD(Fixture, "task manager: arguments stay referenced until the task finishes", "[task_manager]") {
  const ObjectId arg = Owned("value");
  const rpc::TaskSpec spec = Spec();
  std::vector<TaskArg> args{TaskArg::Ref(arg)};
  auto returns = tasks.Prepare(spec, args, {}, false);
  REQUIRE_OK(returns);
  auto submitted = Resolve(spec, args);
  REQUIRE(submitted.has_value());
  REQUIRE(submitted->args_size() == 1);
  CHECK(submitted->args(0).inline_value() == "value");

  objects.RemoveLocalReference(arg);  // the task still holds it
  CHECK(refs.Contains(arg));
  tasks.Finish(*submitted, {InlineValue(returns->front(), "result")});
  CHECK_FALSE(refs.Contains(arg));
  CHECK(memory.GetIfReady(arg) == nullptr);
  REQUIRE(memory.GetIfReady(returns->front()) != nullptr);
  CHECK(memory.GetIfReady(returns->front())->inline_data() == "result");
  CHECK(TakeEventStates() == std::vector{rpc::TaskEvent::PENDING, rpc::TaskEvent::FINISHED});
}

TEST_CASE_METHOD(Fixture, "task manager: pinned arguments outlive the task", "[task_manager]") {
  const ObjectId arg = Owned("ctor arg");
  const rpc::TaskSpec spec = Spec();
  std::vector<TaskArg> args{TaskArg::Ref(arg)};
  auto returns = tasks.Prepare(spec, args, {}, /*pin_forever=*/true);
  REQUIRE_OK(returns);
  objects.RemoveLocalReference(arg);
  tasks.Finish(spec, {InlineValue(returns->front(), "done")});
  CHECK(refs.Contains(arg));
}

TEST_CASE_METHOD(Fixture, "task manager: a failed argument fails the task without submitting it", "[task_manager]") {
  const ObjectId arg = ObjectId::FromTask(TaskId::ForNormalTask(kJob), 1);
  refs.AddOwned(arg);
  refs.AddLocal(arg);
  memory.Put(arg, ErrorValue(arg, TaskException("ValueError", "bad input")));
  const rpc::TaskSpec spec = Spec();
  std::vector<TaskArg> args{TaskArg::Ref(arg)};
  auto returns = tasks.Prepare(spec, args, {}, false);
  REQUIRE_OK(returns);
  bool failed = false;
  CHECK_FALSE(Resolve(spec, args, &failed).has_value());
  CHECK(failed);
  ValuePtr result = memory.GetIfReady(returns->front());
  REQUIRE(result != nullptr);
  REQUIRE(result->has_error());
  CHECK(result->error().message() == "bad input");
  CHECK(TakeEventStates() == std::vector{rpc::TaskEvent::PENDING, rpc::TaskEvent::FAILED});
}

TEST_CASE_METHOD(Fixture, "task manager: a task cancelled while resolving is dropped", "[task_manager]") {
  const ObjectId arg = ObjectId::FromTask(TaskId::ForNormalTask(kJob), 1);
  refs.AddOwned(arg);
  refs.AddLocal(arg);
  const rpc::TaskSpec spec = Spec();
  std::vector<TaskArg> args{TaskArg::Ref(arg)};
  auto returns = tasks.Prepare(spec, args, {}, false);
  REQUIRE_OK(returns);
  bool failed = false;
  CHECK_FALSE(Resolve(spec, args, &failed).has_value());  // waits for `arg`
  tasks.CancelBeforeSubmit(SpecTaskId(spec));
  memory.Put(arg, InlineValue(arg, "late"));
  CHECK(failed);
  ValuePtr result = memory.GetIfReady(returns->front());
  REQUIRE(result != nullptr);
  REQUIRE(result->has_error());
  CHECK(result->error().type() == rpc::TASK_CANCELLED);
}

}  // namespace
}  // namespace shoal
