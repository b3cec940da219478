// GeneratorStreams over fakes (through the TaskManager that starts and ends each stream): items in
// order, the end, a failure as the last item, repeats of a retried attempt, backpressure, and
// freeing what the caller never took.
#include "src/worker/generator_streams.h"

#include <catch2/catch.hpp>

#include <memory>
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

const JobId kJob = JobId::FromInt(12);
const absl::Time kNow = absl::InfinitePast();  // a deadline already passed: Next does not wait

struct Fixture : test::OwnerParts {
  Fixture() : OwnerParts(kJob) {
    spec.set_task_id(TaskId::ForNormalTask(kJob).Binary());
    spec.set_job_id(kJob.Hex());
    spec.set_function_name("gen");
    spec.set_num_returns(1);
    spec.set_streaming(true);
  }
  TaskId task() const { return SpecTaskId(spec); }
  // Submits the task (TaskManager::Prepare starts its stream).
  void Submit(int64_t backpressure = -1) {
    spec.set_generator_backpressure_num_objects(backpressure);
    std::vector<TaskArg> args;
    auto ids = tasks.Prepare(spec, args, {}, false);
    REQUIRE_OK(ids);
    REQUIRE(ids->size() == 1);
    refs.AddLocal((*ids)[0]);
  }
  // Reports item `index` of `attempt` holding `value`; answers whether the owner answered at
  // once (not held back), with the status in `*status`.
  bool Report(int64_t index, const std::string& value, int attempt = 0, absl::Status* status = nullptr) {
    rpc::ReportGeneratorItemRequest request;
    request.set_task_id(task().Binary());
    request.set_index(index);
    request.set_attempt(attempt);
    *request.mutable_value() = InlineValue(ObjectId::FromTask(task(), index + 2), value);
    // Shared: a held-back report is answered later (e.g. by Release), after this returns.
    auto answered = std::make_shared<bool>(false);
    streams.ReportItem(request, [answered, status](absl::Status s) {
      *answered = true;
      if (status != nullptr) *status = s;
    });
    return *answered;
  }
  // The value of the next item (nullopt at the end); the test takes the caller's reference.
  std::optional<std::string> Take() {
    auto next = streams.Next(task(), kNow);
    REQUIRE_OK(next);
    if (!next->has_value()) return std::nullopt;
    refs.AddLocal(**next);
    auto got = objects.Get({**next}, absl::ZeroDuration());
    REQUIRE_OK(got);
    REQUIRE_OK((*got)[0]);
    return *(*got)[0];
  }
  void Finish(std::optional<rpc::ErrorInfo> error = std::nullopt) {
    std::vector<rpc::ObjectValue> returns;
    if (error) {
      returns = ErrorReturns(spec, *error);
    } else {
      returns.push_back(InlineValue(ReturnObjectId(spec, 1), "done"));
    }
    tasks.Finish(spec, std::move(returns));
  }

  rpc::TaskSpec spec;
};

TEST_CASE_METHOD(Fixture, "generator streams: items come in order, then the end", "[generator]") {
  Submit();
  REQUIRE_CODE(streams.Next(task(), kNow), kDeadlineExceeded);  // nothing yet
  CHECK(Report(0, "a"));
  CHECK(Report(1, "b"));
  CHECK(Take() == "a");
  CHECK_FALSE(streams.IsFinished(task()));
  Finish();
  CHECK_FALSE(streams.IsFinished(task()));  // "b" is not taken yet
  CHECK(Take() == "b");
  CHECK(Take() == std::nullopt);
  CHECK(streams.IsFinished(task()));
  CHECK(Take() == std::nullopt);  // stays ended
  streams.Release(task());
  CHECK(streams.size() == 0);
}

TEST_CASE_METHOD(Fixture, "generator streams: a failure is the item after the last value", "[generator]") {
  Submit();
  CHECK(Report(0, "a"));
  Finish(TaskException("ValueError", "boom"));
  CHECK(Take() == "a");
  auto next = streams.Next(task(), kNow);
  REQUIRE_OK(next);
  REQUIRE(next->has_value());
  auto got = objects.Get({**next}, absl::ZeroDuration());
  REQUIRE_OK(got);
  CHECK_FALSE((*got)[0].ok());
  CHECK(std::string((*got)[0].status().message()).find("boom") != std::string::npos);
  CHECK(Take() == std::nullopt);
}

TEST_CASE_METHOD(Fixture, "generator streams: a retried attempt's repeats and an older attempt are dropped",
                 "[generator]") {
  Submit();
  CHECK(Report(0, "a"));
  CHECK(Report(1, "b"));
  // Attempt 1 runs the generator again from the start: only item 2 is new.
  CHECK(Report(0, "a-again", 1));
  CHECK(Report(1, "b-again", 1));
  CHECK(Report(2, "c", 1));
  // A late report of the first attempt changes nothing.
  CHECK(Report(3, "stale", 0));
  absl::Status gap;
  CHECK(Report(5, "gap", 1, &gap));
  CHECK(gap.code() == absl::StatusCode::kInvalidArgument);
  Finish();
  CHECK(Take() == "a");
  CHECK(Take() == "b");
  CHECK(Take() == "c");
  CHECK(Take() == std::nullopt);
}

TEST_CASE_METHOD(Fixture, "generator streams: reports wait while the caller is backpressure items behind",
                 "[generator]") {
  Submit(/*backpressure=*/2);
  CHECK(Report(0, "a"));
  absl::Status held;
  bool answered = false;
  {
    rpc::ReportGeneratorItemRequest request;
    request.set_task_id(task().Binary());
    request.set_index(1);
    *request.mutable_value() = InlineValue(ObjectId::FromTask(task(), 3), "b");
    streams.ReportItem(request, [&](absl::Status s) {
      answered = true;
      held = s;
    });
  }
  CHECK_FALSE(answered);  // two items received, none taken
  CHECK(Take() == "a");
  CHECK(answered);  // one taken: the generator may go on
  CHECK(held.ok());
  CHECK(Take() == "b");
}

TEST_CASE_METHOD(Fixture, "generator streams: release frees untaken items and drops later ones", "[generator]") {
  Submit(/*backpressure=*/1);
  CHECK_FALSE(Report(0, "a"));  // held back: one item not taken
  CHECK(refs.Contains(ObjectId::FromTask(task(), 2)));
  streams.Release(task());  // answers the held report
  objects.FreePending();
  CHECK_FALSE(refs.Contains(ObjectId::FromTask(task(), 2)));
  CHECK(memory.GetIfReady(ObjectId::FromTask(task(), 2)) == nullptr);
  // A store copy reported after the release is freed at its raylet.
  rpc::ReportGeneratorItemRequest request;
  request.set_task_id(task().Binary());
  request.set_index(1);
  rpc::ObjectValue stored;
  stored.set_object_id(ObjectId::FromTask(task(), 3).Binary());
  stored.set_in_store(true);
  stored.set_raylet_address("127.0.0.1:5000");
  *request.mutable_value() = stored;
  bool answered = false;
  streams.ReportItem(request, [&](absl::Status s) { answered = s.ok(); });
  CHECK(answered);
  REQUIRE(transport.freed().size() == 1);
  CHECK(transport.freed()[0].raylet == "127.0.0.1:5000");
  REQUIRE_CODE(streams.Next(task(), kNow), kNotFound);
  Finish();
  CHECK(streams.size() == 0);  // released and finished: forgotten
}

TEST_CASE_METHOD(Fixture, "generator streams: unknown tasks are refused", "[generator]") {
  absl::Status status;
  CHECK(Report(0, "a", 0, &status));
  CHECK(status.code() == absl::StatusCode::kNotFound);
  REQUIRE_CODE(streams.Next(task(), kNow), kNotFound);
  CHECK(streams.IsFinished(task()));
}

TEST_CASE_METHOD(Fixture, "generator streams: a task cancelled before it ran ends its stream with the error",
                 "[generator]") {
  Submit();
  tasks.CancelBeforeSubmit(task());
  std::vector<TaskArg> args;
  tasks.Resolve(spec, std::move(args), [](rpc::TaskSpec) { FAIL("a cancelled task was submitted"); }, nullptr);
  auto next = streams.Next(task(), kNow);
  REQUIRE_OK(next);
  REQUIRE(next->has_value());
  auto got = objects.Get({**next}, absl::ZeroDuration());
  REQUIRE_OK(got);
  CHECK(ErrorTypeOf((*got)[0].status()) == rpc::TASK_CANCELLED);
  CHECK(Take() == std::nullopt);
}

TEST_CASE_METHOD(Fixture, "generator streams: a run that re-makes lost items replaces just those", "[generator]") {
  Submit();
  auto report_stored = [&](int64_t index, int attempt, const std::string& raylet) {
    rpc::ReportGeneratorItemRequest request;
    request.set_task_id(task().Binary());
    request.set_index(index);
    request.set_attempt(attempt);
    *request.mutable_value() = StoreValue(ObjectId::FromTask(task(), index + 2), raylet, NodeId::FromRandom());
    absl::Status answer = absl::UnknownError("not answered");
    streams.ReportItem(request, [&](absl::Status s) { answer = s; });
    return answer;
  };
  const ObjectId item0 = ObjectId::FromTask(task(), 2), item1 = ObjectId::FromTask(task(), 3);
  REQUIRE_OK(report_stored(0, 0, "10.0.0.2:7000"));
  REQUIRE_OK(report_stored(1, 0, "10.0.0.2:7000"));
  CHECK(streams.StoredItems(task()) == std::vector<ObjectId>{item0, item1});
  Finish();
  // Both were on a node that died: the recovery erased them and runs the generator again.
  memory.Erase(item0);
  memory.Erase(item1);
  streams.Reconstruct(task(), /*attempt=*/1, {item0, item1});
  CHECK_OK(report_stored(0, 0, "10.0.0.9:7000"));  // an older attempt's report: dropped
  CHECK(memory.GetIfReady(item0) == nullptr);
  CHECK_OK(report_stored(0, 1, "10.0.0.3:7000"));
  REQUIRE(memory.GetIfReady(item0) != nullptr);
  CHECK(memory.GetIfReady(item0)->raylet_address() == "10.0.0.3:7000");
  CHECK_OK(report_stored(5, 1, "10.0.0.3:7000"));  // never lost: dropped, no gap error
  rpc::TaskSpec rerun = spec;
  rerun.set_attempt(1);
  tasks.Finish(rerun, {InlineValue(ReturnObjectId(spec, 1), "done")});
  // Item 1 did not come again: its value is the loss, not a wait forever.
  REQUIRE(memory.GetIfReady(item1) != nullptr);
  CHECK(memory.GetIfReady(item1)->error().type() == rpc::OBJECT_LOST);
  CHECK_THAT(memory.GetIfReady(item1)->error().message(), Catch::Contains("did not yield it"));
  CHECK(memory.GetIfReady(item0)->raylet_address() == "10.0.0.3:7000");
}

}  // namespace
}  // namespace shoal
