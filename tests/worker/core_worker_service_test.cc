// CoreWorkerService on an in-process gRPC server, over a real TaskReceiver, memory store and
// reference counter, with a fake clock.
#include "src/worker/core_worker_service.h"

#include <catch2/catch.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <future>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "grpcpp/grpcpp.h"
#include "src/common/fake_clock.h"
#include "src/common/rpc.h"
#include "src/common/rpc_client.h"
#include "src/worker/object_value.h"
#include "src/worker/push_streams.h"
#include "src/worker/task_transport.h"
#include "tests/test_util/status_matchers.h"
#include "tests/worker/push_test_util.h"

namespace shoal {
namespace {

const JobId kJob = JobId::FromInt(5);
constexpr CallOptions kCall{.timeout = absl::Seconds(10)};

ObjectId NewObjectId() { return ObjectId::FromTask(TaskId::ForNormalTask(kJob), 1); }

// The service's parts and a client; `runner` decides what a pushed task does.
struct Served {
  explicit Served(bool runs_tasks, TaskReceiver::Runner runner = nullptr)
      : receiver(clock, runner ? std::move(runner) : [](const rpc::PushTaskRequest&) { return rpc::PushTaskReply(); },
                 TaskReceiver::Options{}),
        service(receiver, memory, refs, clock,
                {.runs_tasks = runs_tasks,
                 .force_exit = [this] { force_exits.fetch_add(1); },
                 .cancel_children = [this](const TaskId& parent, bool force) {
                   absl::MutexLock lock(&children_mu);
                   children_cancelled.emplace_back(parent.Hex(), force);
                 }}) {
    grpc::ServerBuilder builder;
    builder.RegisterService(&service);
    int port = 0;
    auto started = StartServer(builder, "127.0.0.1", 0, &port);
    REQUIRE_OK(started);
    server = *std::move(started);
    address = absl::StrCat("127.0.0.1:", port);
    stub = rpc::CoreWorkerService::NewStub(MakeChannel(address));
  }
  ~Served() {
    receiver.RequestExit(absl::OkStatus());
    if (loop.joinable()) loop.join();
    memory.CancelAll();
    server->Shutdown(absl::ToChronoTime(absl::Now() + absl::Seconds(1)));
  }
  // Runs the receiver's task loop until Exit.
  void StartLoop() {
    loop = std::thread([this] { loop_status = receiver.Run(); });
  }
  absl::StatusOr<rpc::GetObjectReply> GetObject(const ObjectId& id, int64_t timeout_ms) {
    rpc::GetObjectRequest request;
    request.set_object_id(id.Binary());
    request.set_timeout_ms(timeout_ms);
    rpc::GetObjectReply reply;
    absl::Status s = UnaryCall(*stub, &rpc::CoreWorkerService::Stub::GetObject, request, &reply, kCall);
    if (!s.ok()) return s;
    return reply;
  }
  absl::StatusOr<rpc::CancelTaskReply> Cancel(const TaskId& task, bool force, bool recursive = false) {
    rpc::CancelTaskRequest request;
    request.set_task_id(task.Binary());
    request.set_force(force);
    request.set_recursive(recursive);
    rpc::CancelTaskReply reply;
    absl::Status s = UnaryCall(*stub, &rpc::CoreWorkerService::Stub::CancelTask, request, &reply, kCall);
    if (!s.ok()) return s;
    return reply;
  }
  // Waits (bounded) until the memory store holds `n` async waiters.
  void AwaitWaiters(size_t n) {
    const absl::Time give_up = absl::Now() + absl::Seconds(10);
    while (memory.num_async_waiters() != n) {
      REQUIRE(absl::Now() < give_up);
      absl::SleepFor(absl::Milliseconds(1));
    }
  }

  FakeClock clock;
  MemoryStore memory;
  ReferenceCounter refs;
  TaskReceiver receiver;
  std::atomic<int> force_exits{0};
  absl::Mutex children_mu;
  std::vector<std::pair<std::string, bool>> children_cancelled ABSL_GUARDED_BY(children_mu);  // (task, force)
  CoreWorkerService service;
  std::unique_ptr<grpc::Server> server;
  std::string address;
  std::unique_ptr<rpc::CoreWorkerService::Stub> stub;
  std::thread loop;
  absl::Status loop_status;
};

TEST_CASE("service: GetObject answers owned values, ready or once put", "[core_worker_service]") {
  Served s(/*runs_tasks=*/false);
  const ObjectId ready = NewObjectId(), later = NewObjectId();
  s.refs.AddOwned(ready);
  s.refs.AddOwned(later);
  s.memory.Put(ready, InlineValue(ready, "now"));
  auto reply = s.GetObject(ready, -1);
  REQUIRE_OK(reply);
  CHECK(reply->ready());
  CHECK(reply->value().inline_data() == "now");

  auto pending = std::async(std::launch::async, [&] { return s.GetObject(later, -1); });
  s.AwaitWaiters(1);
  s.memory.Put(later, InlineValue(later, "later"));
  reply = pending.get();
  REQUIRE_OK(reply);
  CHECK(reply->ready());
  CHECK(reply->value().inline_data() == "later");
}

TEST_CASE("service: GetObject refuses objects it does not own", "[core_worker_service]") {
  Served s(/*runs_tasks=*/false);
  const ObjectId borrowed = NewObjectId(), unknown = NewObjectId();
  s.refs.AddBorrowed(borrowed, "127.0.0.1:1");
  s.memory.Put(borrowed, InlineValue(borrowed, "theirs"));
  REQUIRE_CODE(s.GetObject(borrowed, -1), kNotFound);
  REQUIRE_CODE(s.GetObject(unknown, -1), kNotFound);
  rpc::GetObjectRequest bad;
  bad.set_object_id("short");
  rpc::GetObjectReply reply;
  CHECK_FALSE(UnaryCall(*s.stub, &rpc::CoreWorkerService::Stub::GetObject, bad, &reply, kCall).ok());
}

TEST_CASE("service: GetObject's long poll ends not ready at the clock's deadline, NotFound when freed",
          "[core_worker_service]") {
  Served s(/*runs_tasks=*/false);
  const ObjectId id = NewObjectId();
  s.refs.AddOwned(id);
  auto timed = std::async(std::launch::async, [&] { return s.GetObject(id, 1000); });
  s.AwaitWaiters(1);
  s.clock.Advance(absl::Milliseconds(999));
  s.memory.Tick(s.clock.Now());
  CHECK(s.memory.num_async_waiters() == 1);  // the fake clock, not the wall clock, sets the deadline
  s.clock.Advance(absl::Milliseconds(1));
  s.memory.Tick(s.clock.Now());
  auto reply = timed.get();
  REQUIRE_OK(reply);
  CHECK_FALSE(reply->ready());

  auto freed = std::async(std::launch::async, [&] { return s.GetObject(id, 1000); });
  s.AwaitWaiters(1);
  s.memory.Erase(id);
  auto answer = freed.get();
  REQUIRE_CODE(answer, kNotFound);
  CHECK(absl::StrContains(answer.status().message(), "was freed"));
}

TEST_CASE("service: a driver refuses pushed tasks, a worker runs them", "[core_worker_service]") {
  rpc::PushTaskRequest request;
  request.mutable_spec()->set_task_id(TaskId::ForNormalTask(kJob).Binary());
  request.mutable_spec()->set_function_name("f");
  request.mutable_spec()->set_num_returns(1);
  rpc::PushTaskReply reply;
  {
    Served driver(/*runs_tasks=*/false);
    REQUIRE_CODE(UnaryCall(*driver.stub, &rpc::CoreWorkerService::Stub::PushTask, request, &reply, kCall),
                 kFailedPrecondition);
  }
  Served worker(/*runs_tasks=*/true, [](const rpc::PushTaskRequest& req) {
    rpc::PushTaskReply r;
    r.add_returns()->set_inline_data("ran " + req.spec().function_name());
    return r;
  });
  worker.StartLoop();
  REQUIRE_OK(UnaryCall(*worker.stub, &rpc::CoreWorkerService::Stub::PushTask, request, &reply, kCall));
  REQUIRE(reply.returns_size() == 1);
  CHECK(reply.returns(0).inline_data() == "ran f");
}

TEST_CASE("service: Exit ends the task loop", "[core_worker_service]") {
  Served s(/*runs_tasks=*/true);
  s.StartLoop();
  rpc::ExitReply reply;
  REQUIRE_OK(UnaryCall(*s.stub, &rpc::CoreWorkerService::Stub::Exit, rpc::ExitRequest(), &reply, kCall));
  s.loop.join();
  CHECK(s.loop_status.ok());
  CHECK(s.receiver.exiting());
}

TEST_CASE("service: PrintLogs hands the lines to the log handler", "[core_worker_service]") {
  Served s(/*runs_tasks=*/false);
  std::vector<std::string> got;
  bool got_stderr = false;
  s.service.SetLogHandler([&](const std::vector<std::string>& lines, bool is_stderr) {
    got = lines;
    got_stderr = is_stderr;
  });
  rpc::PrintLogsRequest request;
  request.add_lines("one");
  request.add_lines("two");
  request.set_is_stderr(true);
  rpc::PrintLogsReply reply;
  REQUIRE_OK(UnaryCall(*s.stub, &rpc::CoreWorkerService::Stub::PrintLogs, request, &reply, kCall));
  CHECK(got == std::vector<std::string>{"one", "two"});
  CHECK(got_stderr);
  rpc::PingReply pong;
  REQUIRE_OK(UnaryCall(*s.stub, &rpc::CoreWorkerService::Stub::Ping, rpc::PingRequest(), &pong, kCall));
}

TEST_CASE("service: CancelTask interrupts a running task, or exits with force", "[core_worker_service]") {
  absl::Notification started, release;
  Served s(/*runs_tasks=*/true, [&](const rpc::PushTaskRequest&) {
    started.Notify();
    release.WaitForNotification();
    return rpc::PushTaskReply();
  });
  absl::Mutex mu;
  std::vector<std::string> interrupted;
  s.service.SetInterruptHandler([&](const std::string& task) {
    absl::MutexLock lock(&mu);
    interrupted.push_back(task);
  });
  const TaskId task = TaskId::ForNormalTask(kJob);

  auto idle = s.Cancel(task, /*force=*/false);  // nothing runs it
  REQUIRE_OK(idle);
  CHECK_FALSE(idle->running());

  s.StartLoop();
  rpc::PushTaskRequest request;
  request.mutable_spec()->set_task_id(task.Binary());
  request.mutable_spec()->set_function_name("slow");
  request.mutable_spec()->set_num_returns(1);
  auto pushed = std::async(std::launch::async, [&] {
    rpc::PushTaskReply reply;
    return UnaryCall(*s.stub, &rpc::CoreWorkerService::Stub::PushTask, request, &reply, kCall);
  });
  REQUIRE(started.WaitForNotificationWithTimeout(absl::Seconds(10)));
  auto soft = s.Cancel(task, /*force=*/false);
  REQUIRE_OK(soft);
  CHECK(soft->running());
  {
    absl::MutexLock lock(&mu);
    CHECK(interrupted == std::vector<std::string>{task.Hex()});
  }
  CHECK(s.force_exits.load() == 0);
  {
    absl::MutexLock lock(&s.children_mu);
    CHECK(s.children_cancelled.empty());  // not recursive: its children run on
  }
  REQUIRE_OK(s.Cancel(task, /*force=*/false, /*recursive=*/true));
  auto forced = s.Cancel(task, /*force=*/true, /*recursive=*/true);
  REQUIRE_OK(forced);
  CHECK(forced->running());
  CHECK(s.force_exits.load() == 1);
  {
    absl::MutexLock lock(&s.children_mu);
    CHECK(s.children_cancelled ==
          std::vector<std::pair<std::string, bool>>{{task.Hex(), false}, {task.Hex(), true}});
  }
  {
    absl::MutexLock lock(&mu);
    CHECK(interrupted.size() == 2);  // the soft cancels interrupt; force does not, it exits
  }
  release.Notify();
  REQUIRE_OK(pushed.get());
}

using Answers = PushAnswers;

PushStreams::StubFor Stubs() {
  return [](const std::string& address) {
    return std::shared_ptr<rpc::CoreWorkerService::Stub>(rpc::CoreWorkerService::NewStub(MakeChannel(address)));
  };
}

TEST_CASE("push streams: a burst of pushes to one worker is answered push by push, each once", "[push_streams]") {
  Served worker(/*runs_tasks=*/true, [](const rpc::PushTaskRequest& req) {
    rpc::PushTaskReply r;
    r.add_returns()->set_inline_data("ran " + req.spec().function_name());
    return r;
  });
  worker.StartLoop();
  PushStreams streams(Stubs());
  Answers answers;
  constexpr int kPushes = 500;
  // From two threads at once: one stream, shared.
  std::thread other([&] {
    for (int i = 1; i < kPushes; i += 2) streams.Push(worker.address, NamedPush(absl::StrCat("f", i)), answers.For(i));
  });
  for (int i = 0; i < kPushes; i += 2) streams.Push(worker.address, NamedPush(absl::StrCat("f", i)), answers.For(i));
  other.join();
  REQUIRE(answers.Await(kPushes));
  absl::MutexLock lock(&answers.mu);
  for (int i = 0; i < kPushes; ++i) {
    INFO("push " << i);
    REQUIRE_OK(answers.got[i].status);
    REQUIRE(answers.got[i].reply.returns_size() == 1);
    CHECK(answers.got[i].reply.returns(0).inline_data() == absl::StrCat("ran f", i));
    CHECK(answers.calls[i] == 1);
  }
}

TEST_CASE("push streams: a driver refuses them, nobody listening is undelivered", "[push_streams]") {
  Served driver(/*runs_tasks=*/false);
  PushStreams streams(Stubs());
  Answers answers;
  streams.Push(driver.address, NamedPush("f"), answers.For(0));
  const std::string closed = absl::StrCat("127.0.0.1:", ClosedLoopbackPort());
  streams.Push(closed, NamedPush("g"), answers.For(1));
  REQUIRE(answers.Await(2));
  absl::MutexLock lock(&answers.mu);
  CHECK(answers.got[0].status.code() == absl::StatusCode::kFailedPrecondition);
  CHECK_FALSE(IsUndelivered(answers.got[0].status));  // it reached a process, which said no
  CHECK(answers.got[1].status.code() == absl::StatusCode::kUnavailable);
  CHECK(IsUndelivered(answers.got[1].status));
}

TEST_CASE("push streams: pushes in flight fail when the worker goes, the next push opens a new stream",
          "[push_streams]") {
  absl::Notification release;
  std::atomic<int> started{0};
  auto worker = std::make_unique<Served>(/*runs_tasks=*/true, [&](const rpc::PushTaskRequest& req) {
    rpc::PushTaskReply r;
    if (req.spec().function_name() == "slow") {
      started.fetch_add(1);
      release.WaitForNotification();
    }
    r.add_returns()->set_inline_data(req.spec().function_name());
    return r;
  });
  worker->StartLoop();
  PushStreams streams(Stubs());
  Answers answers;
  streams.Push(worker->address, NamedPush("slow"), answers.For(0));
  streams.Push(worker->address, NamedPush("queued"), answers.For(1));
  while (started.load() == 0) absl::SleepFor(absl::Milliseconds(1));
  // The worker's server goes (its streams are cancelled); the task it runs ends afterwards.
  std::thread stop([&] { worker->server->Shutdown(absl::ToChronoTime(absl::Now() + absl::Milliseconds(100))); });
  REQUIRE(answers.Await(2));
  release.Notify();
  stop.join();
  {
    absl::MutexLock lock(&answers.mu);
    for (int i : {0, 1}) {
      INFO("push " << i);
      CHECK_FALSE(answers.got[i].status.ok());
      CHECK_FALSE(IsUndelivered(answers.got[i].status));  // written: it may have run
    }
  }
  worker.reset();

  Served again(/*runs_tasks=*/true, [](const rpc::PushTaskRequest& req) {
    rpc::PushTaskReply r;
    r.add_returns()->set_inline_data(req.spec().function_name());
    return r;
  });
  again.StartLoop();
  streams.Push(again.address, NamedPush("fresh"), answers.For(2));
  REQUIRE(answers.Await(3));
  absl::MutexLock lock(&answers.mu);
  REQUIRE_OK(answers.got[2].status);
  CHECK(answers.got[2].reply.returns(0).inline_data() == "fresh");
}

TEST_CASE("push streams: Shutdown cancels what is unanswered and drops later pushes", "[push_streams]") {
  absl::Notification release;
  Served worker(/*runs_tasks=*/true, [&](const rpc::PushTaskRequest&) {
    release.WaitForNotification();
    return rpc::PushTaskReply();
  });
  worker.StartLoop();
  auto streams = std::make_unique<PushStreams>(Stubs());
  Answers answers;
  streams->Push(worker.address, NamedPush("held"), answers.For(0));
  streams->Shutdown(absl::Seconds(5));
  {
    absl::MutexLock lock(&answers.mu);
    REQUIRE(answers.got.size() == 1);
    CHECK(answers.got[0].status.code() == absl::StatusCode::kCancelled);
  }
  streams->Push(worker.address, NamedPush("late"), answers.For(1));
  release.Notify();
  streams.reset();
  absl::SleepFor(absl::Milliseconds(50));
  absl::MutexLock lock(&answers.mu);
  CHECK(answers.got.size() == 1);  // the late push was dropped, its callback never ran
}

}  // namespace
}  // namespace shoal
