// The pieces every gRPC client in Shoal is built from: one channel per address, one stub per
// service and address, a blocking unary call with a deadline, and asynchronous unary calls
// (gRPC's callback API) that a Shutdown cancels and waits for.
//
//   ChannelCache channels;
//   StubCache<rpc::LeaseService> raylets{channels};
//   AsyncCalls calls;
//   calls.Start(raylets.Get(address), &rpc::LeaseService::Stub::async::ReturnWorker, request,
//               {.timeout = absl::Seconds(10)}, nullptr);
//
// Threading: every class here may be used from any thread. Async callbacks run on gRPC's
// threads, once each, never inside Start.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "grpcpp/grpcpp.h"
#include "src/common/rpc.h"

namespace shoal {

// Whether a failed call never reached the server: no connection could be made, so the request
// was not delivered and sending it again is not a repeat. gRPC says so only in its status
// text; this is the one place that reads it.
bool NeverConnected(const absl::Status& status);

// One channel per address, made with MakeChannel on first use and kept.
class ChannelCache {
 public:
  ChannelCache() = default;
  ChannelCache(const ChannelCache&) = delete;
  ChannelCache& operator=(const ChannelCache&) = delete;

  std::shared_ptr<grpc::Channel> Get(const std::string& address);
  // Forgets `address`'s channel if it is still `channel` (so that concurrent resets after one
  // failure make one new channel): the next Get dials anew. Calls in flight keep the old one.
  void Reset(const std::string& address, const std::shared_ptr<grpc::Channel>& channel);

 private:
  absl::Mutex mu_;
  absl::flat_hash_map<std::string, std::shared_ptr<grpc::Channel>> channels_ ABSL_GUARDED_BY(mu_);
};

// One stub of `Service` per address, over a ChannelCache's channels; a stub whose channel was
// reset is made again. A stub handed out stays valid for as long as its holder keeps it.
template <typename Service>
class StubCache {
 public:
  using Stub = typename Service::Stub;
  explicit StubCache(ChannelCache& channels) : channels_(channels) {}
  StubCache(const StubCache&) = delete;
  StubCache& operator=(const StubCache&) = delete;

  std::shared_ptr<Stub> Get(const std::string& address) {
    std::shared_ptr<grpc::Channel> channel = channels_.Get(address);
    absl::MutexLock lock(&mu_);
    Entry& entry = stubs_[address];
    if (entry.channel != channel) entry = Entry{channel, std::shared_ptr<Stub>(Service::NewStub(channel))};
    return entry.stub;
  }
  // Every address a stub was made for.
  std::vector<std::string> Addresses() {
    absl::MutexLock lock(&mu_);
    std::vector<std::string> out;
    for (const auto& [address, entry] : stubs_) out.push_back(address);
    return out;
  }

 private:
  struct Entry {
    std::shared_ptr<grpc::Channel> channel;
    std::shared_ptr<Stub> stub;
  };
  ChannelCache& channels_;
  absl::Mutex mu_;
  absl::flat_hash_map<std::string, Entry> stubs_ ABSL_GUARDED_BY(mu_);
};

struct CallOptions {
  absl::Duration timeout = absl::InfiniteDuration();  // from the start of the call
  // Wait for a connection (until the deadline) instead of failing at once when the server
  // cannot be reached.
  bool wait_for_ready = false;
};

// Sets `options`' deadline and wait-for-ready on `context`, and the cluster token (auth.h).
void ApplyCallOptions(const CallOptions& options, grpc::ClientContext& context);

// A stub's blocking method, e.g. &rpc::KVService::Stub::Get.
template <typename Stub, typename Request, typename Reply>
using SyncMethod = grpc::Status (Stub::*)(grpc::ClientContext*, const Request&, Reply*);

// Runs one blocking unary call. The server's status, or gRPC's (Unavailable, DeadlineExceeded).
template <typename Stub, typename Request, typename Reply>
absl::Status UnaryCall(Stub& stub, SyncMethod<Stub, Request, Reply> method, const Request& request, Reply* reply,
                       const CallOptions& options) {
  grpc::ClientContext context;
  ApplyCallOptions(options, context);
  return FromGrpcStatus((stub.*method)(&context, request, reply));
}

// A stub's callback-API method, e.g. &rpc::LeaseService::Stub::async::RequestWorkerLease.
template <typename Stub, typename Request, typename Reply>
using AsyncMethod = void (Stub::async::*)(grpc::ClientContext*, const Request*, Reply*,
                                          std::function<void(grpc::Status)>);

struct AsyncCallOptions {
  absl::Duration timeout = absl::InfiniteDuration();
  bool wait_for_ready = false;
  // A call that may wait forever (a queued lease request, a task push, a long poll) is
  // cancelled by Shutdown, and refused once it began. Clean-up calls (returning a lease) are
  // not: they still go out during shutdown, and Shutdown waits for them too.
  bool cancel_on_shutdown = false;
  // Names the call for Cancel(); 0 for none. REQUIRES: below 2^63, and unique among the calls
  // in flight.
  uint64_t cancel_key = 0;
};

// Asynchronous unary calls in flight, so that they can be cancelled and waited for.
class AsyncCalls {
 public:
  template <typename Reply>
  using Callback = std::function<void(absl::Status, Reply)>;

  AsyncCalls() = default;
  ~AsyncCalls();  // Shutdown(2 s)
  AsyncCalls(const AsyncCalls&) = delete;
  AsyncCalls& operator=(const AsyncCalls&) = delete;

  // Starts `method` on `stub`; `done` (may be empty) runs once with the outcome. Dropped, and
  // `done` never runs, when cancel_on_shutdown is set and Shutdown has begun.
  template <typename Stub, typename Request, typename Reply>
  void Start(std::shared_ptr<Stub> stub, AsyncMethod<Stub, Request, Reply> method,
             std::type_identity_t<Request> request, const AsyncCallOptions& options,
             std::type_identity_t<Callback<Reply>> done);

  // Cancels the call named `key`; its callback still runs (Cancelled, or the reply that raced
  // the cancellation). Unknown keys are ignored.
  void Cancel(uint64_t key);

  // Cancels the calls marked cancel_on_shutdown and waits up to `timeout` until no callback is
  // outstanding. Idempotent.
  void Shutdown(absl::Duration timeout);

 private:
  // Registers a call; 0 when it is refused (shut down). Answers the key it is known by.
  uint64_t Begin(const AsyncCallOptions& options, grpc::ClientContext* context);
  // The call's callback is about to run: Cancel must no longer touch its context.
  void Unregister(uint64_t key);
  // The call's callback has run.
  void End();

  absl::Mutex mu_;
  bool shutdown_ ABSL_GUARDED_BY(mu_) = false;
  int64_t outstanding_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t next_key_ ABSL_GUARDED_BY(mu_) = uint64_t{1} << 63;  // apart from callers' keys
  struct Cancellable {
    grpc::ClientContext* context;
    bool on_shutdown;
  };
  absl::flat_hash_map<uint64_t, Cancellable> cancellable_ ABSL_GUARDED_BY(mu_);
};

template <typename Stub, typename Request, typename Reply>
void AsyncCalls::Start(std::shared_ptr<Stub> stub, AsyncMethod<Stub, Request, Reply> method,
                       std::type_identity_t<Request> request, const AsyncCallOptions& options,
                       std::type_identity_t<Callback<Reply>> done) {
  struct Call {
    std::shared_ptr<Stub> stub;  // kept until the call ends
    grpc::ClientContext context;
    Request request;
    Reply reply;
    Callback<Reply> done;
    uint64_t key = 0;
  };
  auto call = std::make_shared<Call>();
  call->stub = std::move(stub);
  call->request = std::move(request);
  call->done = std::move(done);
  ApplyCallOptions({.timeout = options.timeout, .wait_for_ready = options.wait_for_ready}, call->context);
  call->key = Begin(options, &call->context);
  if (call->key == 0) return;
  (call->stub->async()->*method)(&call->context, &call->request, &call->reply, [this, call](grpc::Status status) {
    Unregister(call->key);
    if (call->done) call->done(FromGrpcStatus(status), std::move(call->reply));
    call->done = nullptr;
    End();
  });
}

}  // namespace shoal
