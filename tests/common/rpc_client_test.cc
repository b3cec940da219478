// The generic client pieces (src/common/rpc_client.h) against a small server in this process.
#include "src/common/rpc_client.h"

#include <catch2/catch.hpp>

#include <future>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "shoal/worker.grpc.pb.h"
#include "tests/test_util/status_matchers.h"

namespace shoal {
namespace {

// A CoreWorkerService whose PushTask never answers until Release (so a call waits), whose
// Ping answers at once, and whose CancelTask answers Unavailable (an error of the server's own).
class HangingService final : public rpc::CoreWorkerService::CallbackService {
 public:
  grpc::ServerUnaryReactor* PushTask(grpc::CallbackServerContext* ctx, const rpc::PushTaskRequest*,
                                     rpc::PushTaskReply*) override {
    absl::MutexLock lock(&mu_);
    parked_.push_back(ctx->DefaultReactor());
    return parked_.back();
  }
  grpc::ServerUnaryReactor* Ping(grpc::CallbackServerContext* ctx, const rpc::PingRequest*, rpc::PingReply*) override {
    grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
    reactor->Finish(grpc::Status::OK);
    return reactor;
  }
  grpc::ServerUnaryReactor* CancelTask(grpc::CallbackServerContext* ctx, const rpc::CancelTaskRequest*,
                                       rpc::CancelTaskReply*) override {
    grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
    reactor->Finish(grpc::Status(grpc::StatusCode::UNAVAILABLE, "busy"));
    return reactor;
  }
  // Answers every parked push.
  void Release() {
    absl::MutexLock lock(&mu_);
    for (grpc::ServerUnaryReactor* reactor : parked_) reactor->Finish(grpc::Status::OK);
    parked_.clear();
  }
  int parked() {
    absl::MutexLock lock(&mu_);
    return static_cast<int>(parked_.size());
  }

 private:
  absl::Mutex mu_;
  std::vector<grpc::ServerUnaryReactor*> parked_ ABSL_GUARDED_BY(mu_);
};

struct TestServer {
  TestServer() {
    grpc::ServerBuilder builder;
    builder.RegisterService(&service);
    auto started = StartServer(builder, "127.0.0.1", 0, &port);
    REQUIRE_OK(started);
    server = *std::move(started);
  }
  ~TestServer() {
    service.Release();
    server->Shutdown(absl::ToChronoTime(absl::Now() + absl::Seconds(5)));
  }
  std::string address() const { return absl::StrCat("127.0.0.1:", port); }

  HangingService service;
  int port = 0;
  std::unique_ptr<grpc::Server> server;
};

// A port nothing listens on (it was bound a moment ago, then closed).
std::string ClosedAddress() {
  TestServer server;
  return server.address();
}

TEST_CASE("ChannelCache keeps one channel per address until it is reset", "[rpc_client]") {
  ChannelCache channels;
  auto a = channels.Get("127.0.0.1:1");
  CHECK(channels.Get("127.0.0.1:1") == a);
  CHECK(channels.Get("127.0.0.1:2") != a);
  channels.Reset("127.0.0.1:1", channels.Get("127.0.0.1:2"));  // not its channel: kept
  CHECK(channels.Get("127.0.0.1:1") == a);
  channels.Reset("127.0.0.1:1", a);
  auto b = channels.Get("127.0.0.1:1");
  CHECK(b != a);

  StubCache<rpc::CoreWorkerService> stubs(channels);
  auto stub = stubs.Get("127.0.0.1:1");
  CHECK(stubs.Get("127.0.0.1:1") == stub);
  channels.Reset("127.0.0.1:1", b);
  CHECK(stubs.Get("127.0.0.1:1") != stub);  // made again over the new channel
  CHECK(stubs.Addresses() == std::vector<std::string>{"127.0.0.1:1"});
}

TEST_CASE("UnaryCall: the server's answer, and NeverConnected only when nothing was reached", "[rpc_client]") {
  TestServer server;
  ChannelCache channels;
  StubCache<rpc::CoreWorkerService> stubs(channels);
  rpc::PingReply pong;
  REQUIRE_OK(UnaryCall(*stubs.Get(server.address()), &rpc::CoreWorkerService::Stub::Ping, rpc::PingRequest(), &pong,
                       {.timeout = absl::Seconds(30)}));

  rpc::CancelTaskReply cancelled;
  absl::Status busy = UnaryCall(*stubs.Get(server.address()), &rpc::CoreWorkerService::Stub::CancelTask,
                                rpc::CancelTaskRequest(), &cancelled, {.timeout = absl::Seconds(30)});
  REQUIRE_CODE(busy, kUnavailable);
  CHECK_FALSE(NeverConnected(busy));  // the server said so: the request arrived

  absl::Status refused = UnaryCall(*stubs.Get(ClosedAddress()), &rpc::CoreWorkerService::Stub::Ping,
                                   rpc::PingRequest(), &pong, {.timeout = absl::Seconds(30)});
  REQUIRE_CODE(refused, kUnavailable);
  CHECK(NeverConnected(refused));

  rpc::PushTaskReply never;
  absl::Status late = UnaryCall(*stubs.Get(server.address()), &rpc::CoreWorkerService::Stub::PushTask,
                                rpc::PushTaskRequest(), &never, {.timeout = absl::Milliseconds(200)});
  CHECK(absl::IsDeadlineExceeded(late));
}

TEST_CASE("AsyncCalls: Cancel ends the call named by its key", "[rpc_client]") {
  TestServer server;
  ChannelCache channels;
  StubCache<rpc::CoreWorkerService> stubs(channels);
  AsyncCalls calls;
  std::promise<absl::Status> pushed;
  calls.Start(stubs.Get(server.address()), &rpc::CoreWorkerService::Stub::async::PushTask, rpc::PushTaskRequest(),
              {.cancel_key = 7}, [&](absl::Status status, rpc::PushTaskReply) { pushed.set_value(status); });
  calls.Cancel(8);  // unknown: ignored
  calls.Cancel(7);
  REQUIRE_CODE(pushed.get_future().get(), kCancelled);
}

TEST_CASE("AsyncCalls: Shutdown cancels waiting calls, waits for callbacks, refuses new waiting calls",
          "[rpc_client]") {
  TestServer server;
  ChannelCache channels;
  StubCache<rpc::CoreWorkerService> stubs(channels);
  AsyncCalls calls;
  std::promise<absl::Status> waiting;
  std::promise<absl::Status> cleanup;
  calls.Start(stubs.Get(server.address()), &rpc::CoreWorkerService::Stub::async::PushTask, rpc::PushTaskRequest(),
              {.cancel_on_shutdown = true},
              [&](absl::Status status, rpc::PushTaskReply) { waiting.set_value(status); });
  // Not cancelled by Shutdown: it answers once the server releases it.
  calls.Start(stubs.Get(server.address()), &rpc::CoreWorkerService::Stub::async::PushTask, rpc::PushTaskRequest(),
              {.timeout = absl::Seconds(60)},
              [&](absl::Status status, rpc::PushTaskReply) { cleanup.set_value(status); });
  while (server.service.parked() < 2) absl::SleepFor(absl::Milliseconds(5));

  std::future<void> shutdown = std::async(std::launch::async, [&] { calls.Shutdown(absl::Seconds(60)); });
  REQUIRE_CODE(waiting.get_future().get(), kCancelled);
  // Shutdown still waits for the clean-up call's callback.
  CHECK(shutdown.wait_for(std::chrono::milliseconds(0)) == std::future_status::timeout);
  server.service.Release();
  REQUIRE_OK(cleanup.get_future().get());
  shutdown.get();

  bool ran = false;
  calls.Start(stubs.Get(server.address()), &rpc::CoreWorkerService::Stub::async::Ping, rpc::PingRequest(),
              {.cancel_on_shutdown = true}, [&](absl::Status, rpc::PingReply) { ran = true; });
  std::promise<absl::Status> after;
  calls.Start(stubs.Get(server.address()), &rpc::CoreWorkerService::Stub::async::Ping, rpc::PingRequest(),
              {.timeout = absl::Seconds(30)}, [&](absl::Status status, rpc::PingReply) { after.set_value(status); });
  REQUIRE_OK(after.get_future().get());  // clean-up calls still go out
  calls.Shutdown(absl::Seconds(30));
  CHECK_FALSE(ran);  // the waiting kind was dropped
}

}  // namespace
}  // namespace shoal
