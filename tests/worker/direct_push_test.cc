// Direct pushes (src/worker/direct_push.h): a real DirectPushServer over a real TaskReceiver,
// and the caller's DirectPushes, on loopback sockets.
#include "src/worker/direct_push.h"
#include "src/common/socket.h"

#include <catch2/catch.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "src/common/auth.h"
#include "src/common/fake_clock.h"
#include "src/worker/task_receiver.h"
#include "src/worker/task_transport.h"
#include "tests/test_util/status_matchers.h"
#include "tests/worker/push_test_util.h"

namespace shoal {
namespace {

rpc::PushTaskReply Echo(const rpc::PushTaskRequest& req) {
  rpc::PushTaskReply r;
  r.add_returns()->set_inline_data("ran " + req.spec().function_name());
  return r;
}

// A worker's end: a receiver running its task loop, and its direct push server.
struct Worker {
  explicit Worker(TaskReceiver::Runner runner = Echo) : receiver(clock, std::move(runner), TaskReceiver::Options{}) {
    loop = std::thread([this] { (void)receiver.Run(); });
    auto started = server.Start("127.0.0.1");
    REQUIRE_OK(started);
    port = *started;
    address = "127.0.0.1:" + std::to_string(10000);  // the gRPC address; only its host is used
  }
  ~Worker() { Stop(); }
  void Stop() {
    server.Stop();
    receiver.RequestExit(absl::OkStatus());
    if (loop.joinable()) loop.join();
  }
  FakeClock clock;
  TaskReceiver receiver;
  DirectPushServer server{receiver};
  std::thread loop;
  int port = 0;
  std::string address;
};

using Answers = PushAnswers;

// Pushes to `port` whatever the address; nothing falls back.
DirectPushes ToPort(const int* port) {
  return DirectPushes([port](const std::string&) -> absl::StatusOr<int> { return *port; },
                      [](const std::string&, SharedPushRequest, DirectPushes::Callback) {
                        std::fprintf(stderr, "a push fell back where none should\n");  // on a connection's thread
                        std::abort();
                      });
}

// The writer thread spins after running what was posted: posts that come while it spins, and
// posts after it went to sleep, all run, in order, once; Stop runs what is left.
TEST_CASE("hand-off thread: posts during its spin and after its sleep all run in order", "[direct_push]") {
  auto writer = std::make_unique<direct_push::HandOffThread>("test-writer");
  absl::Mutex mu;
  std::vector<int> ran;
  for (int i = 0; i < 3000; ++i) {
    REQUIRE(writer->Post([&mu, &ran, i] {
      absl::MutexLock lock(&mu);
      ran.push_back(i);
    }));
    if (i % 500 == 499) absl::SleepFor(absl::Milliseconds(5));  // past any spin: it sleeps
    else if (i % 7 == 0) absl::SleepFor(absl::Microseconds(30));  // within a spin
  }
  writer->Stop();
  CHECK_FALSE(writer->Post([] {}));  // after Stop: the caller runs it
  REQUIRE(ran.size() == 3000);
  for (int i = 0; i < 3000; ++i) CHECK(ran[i] == i);
}

TEST_CASE("direct pushes: a burst from two threads is answered push by push, each once", "[direct_push]") {
  Worker worker;
  DirectPushes pushes = ToPort(&worker.port);
  Answers answers;
  constexpr int kPushes = 500;
  std::thread other([&] {
    for (int i = 1; i < kPushes; i += 2) pushes.Push(worker.address, SharedNamedPush(absl::StrCat("f", i)), answers.For(i));
  });
  for (int i = 0; i < kPushes; i += 2) pushes.Push(worker.address, SharedNamedPush(absl::StrCat("f", i)), answers.For(i));
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

TEST_CASE("direct pushes: workers that take none get the pushes through the fallback, asked once",
          "[direct_push]") {
  std::atomic<int> asked{0};
  absl::Mutex mu;
  std::vector<std::string> fell_back;
  DirectPushes pushes(
      [&](const std::string&) -> absl::StatusOr<int> {
        asked.fetch_add(1);
        return 0;
      },
      [&](const std::string& address, SharedPushRequest request, DirectPushes::Callback done) {
        {
          absl::MutexLock lock(&mu);
          fell_back.push_back(address + "/" + request->spec().function_name());
        }
        done(absl::OkStatus(), Echo(*request));
      });
  Answers answers;
  for (int i = 0; i < 3; ++i) pushes.Push("127.0.0.1:1", SharedNamedPush(absl::StrCat("f", i)), answers.For(i));
  REQUIRE(answers.Await(3));
  pushes.Push("127.0.0.1:1", SharedNamedPush("later"), answers.For(3));
  REQUIRE(answers.Await(4));
  CHECK(asked.load() == 1);
  absl::MutexLock lock(&mu);
  CHECK(fell_back == std::vector<std::string>{"127.0.0.1:1/f0", "127.0.0.1:1/f1", "127.0.0.1:1/f2", "127.0.0.1:1/later"});
}

TEST_CASE("direct pushes: nobody listening is undelivered", "[direct_push]") {
  const int port = ClosedLoopbackPort();
  DirectPushes pushes = ToPort(&port);
  Answers answers;
  pushes.Push("127.0.0.1:1", SharedNamedPush("f"), answers.For(0));
  REQUIRE(answers.Await(1));
  absl::MutexLock lock(&answers.mu);
  CHECK(answers.got[0].status.code() == absl::StatusCode::kUnavailable);
  CHECK(IsUndelivered(answers.got[0].status));
}

TEST_CASE("direct pushes: pushes in flight fail when the worker goes, the next push connects again",
          "[direct_push]") {
  absl::Notification release;
  std::atomic<int> started{0};
  auto worker = std::make_unique<Worker>([&](const rpc::PushTaskRequest& req) {
    if (req.spec().function_name() == "slow") {
      started.fetch_add(1);
      release.WaitForNotification();
    }
    return Echo(req);
  });
  int port = worker->port;
  DirectPushes pushes = ToPort(&port);
  Answers answers;
  pushes.Push(worker->address, SharedNamedPush("slow"), answers.For(0));
  pushes.Push(worker->address, SharedNamedPush("queued"), answers.For(1));
  while (started.load() == 0) absl::SleepFor(absl::Milliseconds(1));
  std::thread stop([&] { worker->server.Stop(); });  // closes the connection; the task still runs
  REQUIRE(answers.Await(2));
  release.Notify();
  stop.join();
  {
    absl::MutexLock lock(&answers.mu);
    for (int i : {0, 1}) {
      INFO("push " << i);
      CHECK(answers.got[i].status.code() == absl::StatusCode::kUnavailable);
      CHECK_FALSE(IsUndelivered(answers.got[i].status));  // written: it may have run
    }
  }
  worker.reset();

  Worker again;
  port = again.port;
  pushes.Push(again.address, SharedNamedPush("fresh"), answers.For(2));
  REQUIRE(answers.Await(3));
  absl::MutexLock lock(&answers.mu);
  REQUIRE_OK(answers.got[2].status);
  CHECK(answers.got[2].reply.returns(0).inline_data() == "ran fresh");
}

TEST_CASE("direct pushes: a connection without the cluster token is refused and runs nothing", "[direct_push]") {
  std::atomic<int> ran{0};
  Worker worker([&](const rpc::PushTaskRequest& req) {
    ran.fetch_add(1);
    return Echo(req);
  });
  SetClusterToken("the-right-token");
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<uint16_t>(worker.port));
  REQUIRE(connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0);
  REQUIRE_OK(net::WriteFrame(fd, "a-wrong-token"));
  rpc::PushTaskBatch batch;  // sent anyway: must not run
  batch.add_items()->mutable_request()->CopyFrom(NamedPush("f"));
  (void)net::WriteFrame(fd, batch.SerializeAsString());
  absl::StatusOr<std::string> verdict = net::ReadFrame(fd, 4096);
  REQUIRE_OK(verdict);
  rpc::PushTaskAnswers answers;
  REQUIRE(answers.ParseFromString(*verdict));
  REQUIRE(answers.answers_size() == 1);
  CHECK(answers.answers(0).code() == static_cast<int>(absl::StatusCode::kUnauthenticated));
  CHECK_FALSE(net::ReadFrame(fd, 4096).ok());  // then closed
  close(fd);

  // The same through DirectPushes, with the token: runs.
  DirectPushes pushes = ToPort(&worker.port);
  Answers got;
  pushes.Push(worker.address, SharedNamedPush("g"), got.For(0));
  REQUIRE(got.Await(1));
  SetClusterToken("");
  CHECK(ran.load() == 1);
  absl::MutexLock lock(&got.mu);
  REQUIRE_OK(got.got[0].status);
}

TEST_CASE("direct pushes: Shutdown cancels what is not answered and drops later pushes", "[direct_push]") {
  absl::Notification release;
  std::atomic<int> started{0};
  Worker worker([&](const rpc::PushTaskRequest& req) {
    started.fetch_add(1);
    release.WaitForNotification();
    return Echo(req);
  });
  DirectPushes pushes = ToPort(&worker.port);
  Answers answers;
  pushes.Push(worker.address, SharedNamedPush("slow"), answers.For(0));
  while (started.load() == 0) absl::SleepFor(absl::Milliseconds(1));
  pushes.Shutdown(absl::Seconds(5));
  REQUIRE(answers.Await(1));
  pushes.Push(worker.address, SharedNamedPush("after"), answers.For(1));
  release.Notify();
  absl::SleepFor(absl::Milliseconds(100));
  absl::MutexLock lock(&answers.mu);
  CHECK(answers.got.size() == 1);
  CHECK(answers.got[0].status.code() == absl::StatusCode::kCancelled);
}

}  // namespace
}  // namespace shoal
