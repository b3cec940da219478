#include "src/worker/dependency_resolver.h"

#include <catch2/catch.hpp>

#include <optional>

#include "src/worker/object_value.h"

namespace shoal {
namespace {

const JobId kJob = JobId::FromInt(4);

ObjectId NewId(uint32_t i) { return ObjectId::FromTask(TaskId::ForNormalTask(kJob), i); }

struct Outcome {
  bool called = false;
  rpc::TaskSpec spec;
  std::optional<rpc::ErrorInfo> failed;
  DependencyResolver::Done Done() {
    return [this](rpc::TaskSpec s, std::optional<rpc::ErrorInfo> f) {
      REQUIRE_FALSE(called);  // exactly once
      called = true;
      spec = std::move(s);
      failed = std::move(f);
    };
  }
};

TEST_CASE("resolver: values only are done at once, in order", "[resolver]") {
  MemoryStore store;
  DependencyResolver resolver(store);
  Outcome out;
  resolver.Resolve(rpc::TaskSpec(), {TaskArg::Value("a"), TaskArg::Value("b")}, out.Done());
  REQUIRE(out.called);
  CHECK_FALSE(out.failed);
  REQUIRE(out.spec.args_size() == 2);
  CHECK(out.spec.args(0).inline_value() == "a");
  CHECK(out.spec.args(1).inline_value() == "b");
}

TEST_CASE("resolver: refs become inline values or store locations when ready", "[resolver]") {
  MemoryStore store;
  DependencyResolver resolver(store);
  const ObjectId small = NewId(1), big = NewId(2);
  Outcome out;
  resolver.Resolve(rpc::TaskSpec(), {TaskArg::Ref(small), TaskArg::Value("v"), TaskArg::Ref(big)}, out.Done());
  CHECK_FALSE(out.called);
  store.Put(big, StoreValue(big, "10.0.0.2:7000", NodeId::FromRandom()));
  CHECK_FALSE(out.called);
  store.Put(small, InlineValue(small, "tiny"));
  REQUIRE(out.called);
  CHECK_FALSE(out.failed);
  REQUIRE(out.spec.args_size() == 3);
  CHECK(out.spec.args(0).inline_value() == "tiny");
  CHECK(out.spec.args(1).inline_value() == "v");
  CHECK(out.spec.args(2).object().in_store());
  CHECK(out.spec.args(2).object().raylet_address() == "10.0.0.2:7000");
  CHECK(store.num_async_waiters() == 0);
}

TEST_CASE("resolver: a cancelled resolution is done at once with the error, and never again", "[resolver]") {
  MemoryStore store;
  DependencyResolver resolver(store);
  const TaskId task = TaskId::ForNormalTask(kJob);
  rpc::TaskSpec spec;
  spec.set_task_id(task.Binary());
  const ObjectId never = NewId(7);
  Outcome out;
  resolver.Resolve(spec, {TaskArg::Ref(never), TaskArg::Value("v")}, out.Done());
  CHECK_FALSE(out.called);
  REQUIRE(resolver.Cancel(task, MakeError(rpc::TASK_CANCELLED, "cancelled")));
  REQUIRE(out.called);
  REQUIRE(out.failed);
  CHECK(out.failed->type() == rpc::TASK_CANCELLED);
  CHECK_FALSE(resolver.Cancel(task, MakeError(rpc::TASK_CANCELLED, "again")));  // no longer waiting
  store.Put(never, InlineValue(never, "late"));  // done is not called a second time (Outcome checks)
  // A resolution that finished is not cancelled.
  const TaskId other = TaskId::ForNormalTask(kJob);
  spec.set_task_id(other.Binary());
  Outcome done;
  resolver.Resolve(spec, {TaskArg::Value("only values")}, done.Done());
  REQUIRE(done.called);
  CHECK_FALSE(resolver.Cancel(other, MakeError(rpc::TASK_CANCELLED, "late")));
}

TEST_CASE("resolver: a failed argument fails the task with its error, after all are in", "[resolver]") {
  MemoryStore store;
  DependencyResolver resolver(store);
  const ObjectId a = NewId(1), b = NewId(2);
  Outcome out;
  resolver.Resolve(rpc::TaskSpec(), {TaskArg::Ref(a), TaskArg::Ref(b)}, out.Done());
  store.Put(a, ErrorValue(a, TaskException("ValueError", "bad input")));
  CHECK_FALSE(out.called);
  store.Put(b, InlineValue(b, "fine"));
  REQUIRE(out.called);
  REQUIRE(out.failed.has_value());
  CHECK(out.failed->type() == rpc::TASK_EXCEPTION);
  CHECK(out.failed->exception_type() == "ValueError");
}

TEST_CASE("resolver: an argument freed before it was ready is OBJECT_LOST", "[resolver]") {
  MemoryStore store;
  DependencyResolver resolver(store);
  const ObjectId a = NewId(1);
  Outcome out;
  resolver.Resolve(rpc::TaskSpec(), {TaskArg::Ref(a)}, out.Done());
  store.Erase(a);
  REQUIRE(out.called);
  REQUIRE(out.failed.has_value());
  CHECK(out.failed->type() == rpc::OBJECT_LOST);
  CHECK_THAT(out.failed->message(), Catch::Contains(a.Hex()));
}

TEST_CASE("resolver: keeps arguments the spec already has", "[resolver]") {
  MemoryStore store;
  DependencyResolver resolver(store);
  rpc::TaskSpec spec;
  spec.add_args()->set_inline_value("first");
  const ObjectId a = NewId(1);
  store.Put(a, InlineValue(a, "second"));
  Outcome out;
  resolver.Resolve(spec, {TaskArg::Ref(a)}, out.Done());
  REQUIRE(out.called);
  REQUIRE(out.spec.args_size() == 2);
  CHECK(out.spec.args(0).inline_value() == "first");
  CHECK(out.spec.args(1).inline_value() == "second");
}

}  // namespace
}  // namespace shoal
