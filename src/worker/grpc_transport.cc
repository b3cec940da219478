#include "src/worker/grpc_transport.h"

#include "src/common/rpc.h"

namespace shoal {
namespace {
constexpr absl::Duration kShortCallTimeout = absl::Seconds(10);

// Whether a failed call never reached the server. gRPC reports a connection that could not be
// made only in its status text; this edge is the one place that reads it, so that callers
// decide on IsUndelivered instead.
bool NeverConnected(const absl::Status& status) {
  if (!absl::IsUnavailable(status)) return false;
  const std::string message(status.message());
  for (const char* words : {"failed to connect", "Connection refused", "connection attempt timed out"}) {
    if (message.find(words) != std::string::npos) return true;
  }
  return false;
}
}  // namespace

GrpcTransport::~GrpcTransport() { Shutdown(absl::Seconds(2)); }

rpc::LeaseService::Stub* GrpcTransport::Raylet(const std::string& address) {
  absl::MutexLock lock(&mu_);
  auto& stub = raylets_[address];
  if (stub == nullptr) stub = rpc::LeaseService::NewStub(MakeChannel(address));
  return stub.get();
}

rpc::CoreWorkerService::Stub* GrpcTransport::Worker(const std::string& address) {
  absl::MutexLock lock(&mu_);
  auto& stub = workers_[address];
  if (stub == nullptr) stub = rpc::CoreWorkerService::NewStub(MakeChannel(address));
  return stub.get();
}

rpc::ActorService::Stub* GrpcTransport::Actors(const std::string& address) {
  absl::MutexLock lock(&mu_);
  auto& stub = actor_services_[address];
  if (stub == nullptr) stub = rpc::ActorService::NewStub(MakeChannel(address));
  return stub.get();
}

rpc::TaskEventService::Stub* GrpcTransport::TaskEvents(const std::string& address) {
  absl::MutexLock lock(&mu_);
  auto& stub = task_event_services_[address];
  if (stub == nullptr) stub = rpc::TaskEventService::NewStub(MakeChannel(address));
  return stub.get();
}

template <typename Request, typename Reply, typename Start>
void GrpcTransport::Issue(Start start, Request request, absl::Duration timeout, bool cancel_on_shutdown,
                          std::function<void(absl::Status, Reply)> done) {
  struct Call {
    grpc::ClientContext ctx;
    Request request;
    Reply reply;
    std::function<void(absl::Status, Reply)> done;
    uint64_t id = 0;
  };
  auto call = std::make_shared<Call>();
  call->request = std::move(request);
  call->done = std::move(done);
  if (timeout != absl::InfiniteDuration()) call->ctx.set_deadline(absl::ToChronoTime(absl::Now() + timeout));
  {
    absl::MutexLock lock(&mu_);
    // During shutdown only clean-up calls go out (returning a lease that was granted while the
    // request was being cancelled, freeing objects); Shutdown() waits for them too.
    if (shutdown_ && cancel_on_shutdown) return;
    call->id = next_call_++;
    ++outstanding_;
    if (cancel_on_shutdown) cancellable_[call->id] = &call->ctx;
  }
  start(&call->ctx, &call->request, &call->reply, [this, call](grpc::Status s) {
    {
      absl::MutexLock lock(&mu_);
      cancellable_.erase(call->id);
    }
    if (call->done) call->done(FromGrpcStatus(s), std::move(call->reply));
    call->done = nullptr;
    absl::MutexLock lock(&mu_);
    --outstanding_;
  });
}

void GrpcTransport::RequestWorkerLease(const std::string& raylet_address, rpc::RequestWorkerLeaseRequest request,
                                       LeaseCallback done) {
  auto* stub = Raylet(raylet_address);
  Issue<rpc::RequestWorkerLeaseRequest, rpc::RequestWorkerLeaseReply>(
      [stub](auto* ctx, auto* req, auto* reply, auto on_done) {
        stub->async()->RequestWorkerLease(ctx, req, reply, std::move(on_done));
      },
      std::move(request), absl::InfiniteDuration(), /*cancel_on_shutdown=*/true, std::move(done));
}

void GrpcTransport::ReturnWorker(const std::string& raylet_address, const std::string& lease_id,
                                 bool worker_failed) {
  auto* stub = Raylet(raylet_address);
  rpc::ReturnWorkerRequest request;
  request.set_lease_id(lease_id);
  request.set_worker_failed(worker_failed);
  Issue<rpc::ReturnWorkerRequest, rpc::ReturnWorkerReply>(
      [stub](auto* ctx, auto* req, auto* reply, auto on_done) {
        stub->async()->ReturnWorker(ctx, req, reply, std::move(on_done));
      },
      std::move(request), kShortCallTimeout, /*cancel_on_shutdown=*/false, nullptr);
}

void GrpcTransport::PushTask(const std::string& worker_address, rpc::PushTaskRequest request,
                             TaskTransport::PushCallback done) {
  auto* stub = Worker(worker_address);
  Issue<rpc::PushTaskRequest, rpc::PushTaskReply>(
      [stub](auto* ctx, auto* req, auto* reply, auto on_done) {
        stub->async()->PushTask(ctx, req, reply, std::move(on_done));
      },
      std::move(request), absl::InfiniteDuration(), /*cancel_on_shutdown=*/true,
      [done = std::move(done)](absl::Status status, rpc::PushTaskReply reply) {
        done(NeverConnected(status) ? Undelivered(std::move(status)) : std::move(status), std::move(reply));
      });
}

void GrpcTransport::GetObject(const std::string& owner_address, const ObjectId& id, GetObjectCallback done) {
  auto* stub = Worker(owner_address);
  rpc::GetObjectRequest request;
  request.set_object_id(id.Binary());
  request.set_timeout_ms(-1);
  Issue<rpc::GetObjectRequest, rpc::GetObjectReply>(
      [stub](auto* ctx, auto* req, auto* reply, auto on_done) {
        stub->async()->GetObject(ctx, req, reply, std::move(on_done));
      },
      std::move(request), absl::InfiniteDuration(), /*cancel_on_shutdown=*/true, std::move(done));
}

void GrpcTransport::FreeObjects(const std::string& raylet_address, const std::vector<ObjectId>& ids) {
  auto* stub = Raylet(raylet_address);
  rpc::FreeObjectsRequest request;
  for (const auto& id : ids) request.add_object_ids(id.Binary());
  Issue<rpc::FreeObjectsRequest, rpc::FreeObjectsReply>(
      [stub](auto* ctx, auto* req, auto* reply, auto on_done) {
        stub->async()->FreeObjects(ctx, req, reply, std::move(on_done));
      },
      std::move(request), kShortCallTimeout, /*cancel_on_shutdown=*/false, nullptr);
}

void GrpcTransport::GetActorInfo(const std::string& gcs_address, const ActorId& actor, int64_t after_version,
                                 absl::Duration wait, std::function<void(absl::Status, rpc::GetActorInfoReply)> done) {
  auto* stub = Actors(gcs_address);
  rpc::GetActorInfoRequest request;
  request.set_actor_id(actor.Binary());
  request.set_after_version(after_version);
  request.set_wait_ms(absl::ToInt64Milliseconds(wait));
  Issue<rpc::GetActorInfoRequest, rpc::GetActorInfoReply>(
      [stub](auto* ctx, auto* req, auto* reply, auto on_done) {
        stub->async()->GetActorInfo(ctx, req, reply, std::move(on_done));
      },
      std::move(request), wait + absl::Seconds(10), /*cancel_on_shutdown=*/true, std::move(done));
}

void GrpcTransport::ReportTaskEvents(const std::string& gcs_address, rpc::ReportTaskEventsRequest request) {
  auto* stub = TaskEvents(gcs_address);
  Issue<rpc::ReportTaskEventsRequest, rpc::ReportTaskEventsReply>(
      [stub](auto* ctx, auto* req, auto* reply, auto on_done) {
        stub->async()->ReportTaskEvents(ctx, req, reply, std::move(on_done));
      },
      std::move(request), kShortCallTimeout, /*cancel_on_shutdown=*/false, nullptr);
}

void GrpcTransport::Shutdown(absl::Duration timeout) {
  absl::MutexLock lock(&mu_);
  shutdown_ = true;
  for (auto& [id, ctx] : cancellable_) ctx->TryCancel();
  auto idle = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return outstanding_ == 0; };
  mu_.AwaitWithTimeout(absl::Condition(&idle), timeout);
}

void GrpcTransport::ReleaseOwnerLeases(const std::string& owner_address, absl::Duration timeout) {
  std::vector<rpc::LeaseService::Stub*> stubs;
  {
    absl::MutexLock lock(&mu_);
    for (auto& [address, stub] : raylets_) stubs.push_back(stub.get());
  }
  rpc::ReleaseOwnerLeasesRequest request;
  request.set_owner_address(owner_address);
  for (auto* stub : stubs) {
    grpc::ClientContext ctx;
    ctx.set_deadline(absl::ToChronoTime(absl::Now() + timeout));
    rpc::ReleaseOwnerLeasesReply reply;
    (void)stub->ReleaseOwnerLeases(&ctx, request, &reply);  // best effort: the raylet may be gone
  }
}

void GrpcTransport::NotifyWorkerBlocked(const std::string& raylet_address, const WorkerId& worker, bool blocked,
                                        absl::Duration timeout) {
  rpc::NotifyWorkerBlockedRequest request;
  request.set_worker_id(worker.Hex());
  request.set_blocked(blocked);
  rpc::NotifyWorkerBlockedReply reply;
  grpc::ClientContext ctx;
  ctx.set_deadline(absl::ToChronoTime(absl::Now() + timeout));
  (void)Raylet(raylet_address)->NotifyWorkerBlocked(&ctx, request, &reply);
}

absl::Status GrpcTransport::PrintLogs(const std::string& address, const std::vector<std::string>& lines,
                                      bool is_stderr, absl::Duration timeout) {
  rpc::PrintLogsRequest request;
  for (const auto& line : lines) request.add_lines(line);
  request.set_is_stderr(is_stderr);
  rpc::PrintLogsReply reply;
  grpc::ClientContext ctx;
  ctx.set_deadline(absl::ToChronoTime(absl::Now() + timeout));
  return FromGrpcStatus(Worker(address)->PrintLogs(&ctx, request, &reply));
}

absl::Status GrpcTransport::CancelTask(const std::string& address, const TaskId& task, bool force,
                                       absl::Duration timeout) {
  rpc::CancelTaskRequest request;
  request.set_task_id(task.Binary());
  request.set_force(force);
  rpc::CancelTaskReply reply;
  grpc::ClientContext ctx;
  ctx.set_deadline(absl::ToChronoTime(absl::Now() + timeout));
  return FromGrpcStatus(Worker(address)->CancelTask(&ctx, request, &reply));
}

}  // namespace shoal
