#include "src/gcs/actor_grpc.h"

#include "spdlog/spdlog.h"
#include "src/common/rpc.h"

namespace shoal {
namespace {

constexpr absl::Duration kReturnTimeout = absl::Seconds(10);

grpc::ServerUnaryReactor* FinishNow(grpc::CallbackServerContext* ctx, const absl::Status& status) {
  grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
  reactor->Finish(ToGrpcStatus(status));
  return reactor;
}

}  // namespace

// --- GrpcActorTransport ---

GrpcActorTransport::~GrpcActorTransport() { Shutdown(absl::Seconds(2)); }

rpc::LeaseService::Stub* GrpcActorTransport::Raylet(const std::string& address) {
  absl::MutexLock lock(&mu_);
  auto& stub = raylets_[address];
  if (stub == nullptr) stub = rpc::LeaseService::NewStub(MakeChannel(address));
  return stub.get();
}

rpc::CoreWorkerService::Stub* GrpcActorTransport::Worker(const std::string& address) {
  absl::MutexLock lock(&mu_);
  auto& stub = workers_[address];
  if (stub == nullptr) stub = rpc::CoreWorkerService::NewStub(MakeChannel(address));
  return stub.get();
}

bool GrpcActorTransport::Begin(bool cancellable, uint64_t key, grpc::ClientContext* ctx) {
  absl::MutexLock lock(&mu_);
  if (shutdown_ && cancellable) return false;
  ++outstanding_;
  if (cancellable) cancellable_[key] = ctx;
  return true;
}

void GrpcActorTransport::End(bool cancellable, uint64_t key) {
  absl::MutexLock lock(&mu_);
  if (cancellable) cancellable_.erase(key);
  --outstanding_;
}

void GrpcActorTransport::RequestWorkerLease(uint64_t request_id, const std::string& raylet_address,
                                            rpc::RequestWorkerLeaseRequest request, LeaseCallback done) {
  struct Call {
    grpc::ClientContext ctx;
    rpc::RequestWorkerLeaseRequest request;
    rpc::RequestWorkerLeaseReply reply;
  };
  auto call = std::make_shared<Call>();
  call->request = std::move(request);
  auto* stub = Raylet(raylet_address);
  if (!Begin(/*cancellable=*/true, request_id, &call->ctx)) return;
  stub->async()->RequestWorkerLease(&call->ctx, &call->request, &call->reply,
                                    [this, call, request_id, done = std::move(done)](grpc::Status s) {
                                      // Unregistered first: CancelLeaseRequest must not touch a finished context.
                                      {
                                        absl::MutexLock lock(&mu_);
                                        cancellable_.erase(request_id);
                                      }
                                      done(FromGrpcStatus(s), std::move(call->reply));
                                      End(/*cancellable=*/false, request_id);
                                    });
}

void GrpcActorTransport::CancelLeaseRequest(uint64_t request_id) {
  absl::MutexLock lock(&mu_);
  if (auto it = cancellable_.find(request_id); it != cancellable_.end()) it->second->TryCancel();
}

void GrpcActorTransport::ReturnWorker(const std::string& raylet_address, const std::string& lease_id,
                                      bool worker_failed) {
  struct Call {
    grpc::ClientContext ctx;
    rpc::ReturnWorkerRequest request;
    rpc::ReturnWorkerReply reply;
  };
  auto call = std::make_shared<Call>();
  call->request.set_lease_id(lease_id);
  call->request.set_worker_failed(worker_failed);
  call->ctx.set_deadline(absl::ToChronoTime(absl::Now() + kReturnTimeout));
  auto* stub = Raylet(raylet_address);
  if (!Begin(/*cancellable=*/false, 0, &call->ctx)) return;
  stub->async()->ReturnWorker(&call->ctx, &call->request, &call->reply,
                              [this, call, raylet_address](grpc::Status s) {
                                if (!s.ok() && s.error_code() != grpc::StatusCode::NOT_FOUND) {
                                  spdlog::warn("returning lease {} to raylet {} failed: {}",
                                               call->request.lease_id(), raylet_address, s.error_message());
                                }
                                End(/*cancellable=*/false, 0);
                              });
}

void GrpcActorTransport::PushTask(const std::string& worker_address, rpc::PushTaskRequest request,
                                  PushCallback done) {
  struct Call {
    grpc::ClientContext ctx;
    rpc::PushTaskRequest request;
    rpc::PushTaskReply reply;
  };
  auto call = std::make_shared<Call>();
  call->request = std::move(request);
  auto* stub = Worker(worker_address);
  uint64_t key;
  {
    absl::MutexLock lock(&mu_);
    key = next_push_key_++;
  }
  if (!Begin(/*cancellable=*/true, key, &call->ctx)) return;
  stub->async()->PushTask(&call->ctx, &call->request, &call->reply,
                          [this, call, key, done = std::move(done)](grpc::Status s) {
                            {
                              absl::MutexLock lock(&mu_);
                              cancellable_.erase(key);
                            }
                            done(FromGrpcStatus(s), std::move(call->reply));
                            End(/*cancellable=*/false, key);
                          });
}

void GrpcActorTransport::Shutdown(absl::Duration timeout) {
  absl::MutexLock lock(&mu_);
  shutdown_ = true;
  for (auto& [key, ctx] : cancellable_) ctx->TryCancel();
  auto idle = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return outstanding_ == 0; };
  mu_.AwaitWithTimeout(absl::Condition(&idle), timeout);
}

// --- ActorGrpcService ---

grpc::ServerUnaryReactor* ActorGrpcService::RegisterActor(grpc::CallbackServerContext* ctx,
                                                          const rpc::RegisterActorRequest* req,
                                                          rpc::RegisterActorReply* reply) {
  auto r = actors_.RegisterActor(*req);
  if (r.ok()) *reply = *std::move(r);
  return FinishNow(ctx, r.status());
}

grpc::ServerUnaryReactor* ActorGrpcService::GetActorInfo(grpc::CallbackServerContext* ctx,
                                                         const rpc::GetActorInfoRequest* req,
                                                         rpc::GetActorInfoReply* reply) {
  grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
  // The manager answers exactly once (at the latest at its Shutdown, before the server's).
  actors_.GetActorInfo(*req, [reactor, reply](absl::StatusOr<rpc::ActorInfo> info) {
    if (info.ok()) *reply->mutable_info() = *std::move(info);
    reactor->Finish(ToGrpcStatus(info.status()));
  });
  return reactor;
}

grpc::ServerUnaryReactor* ActorGrpcService::GetNamedActor(grpc::CallbackServerContext* ctx,
                                                          const rpc::GetNamedActorRequest* req,
                                                          rpc::GetNamedActorReply* reply) {
  auto info = actors_.GetNamedActor(req->name(), req->ray_namespace());
  if (info.ok()) *reply->mutable_info() = *std::move(info);
  return FinishNow(ctx, info.status());
}

grpc::ServerUnaryReactor* ActorGrpcService::ListActors(grpc::CallbackServerContext* ctx,
                                                       const rpc::ListActorsRequest* req,
                                                       rpc::ListActorsReply* reply) {
  auto r = actors_.ListActors(*req);
  if (r.ok()) *reply = *std::move(r);
  return FinishNow(ctx, r.status());
}

grpc::ServerUnaryReactor* ActorGrpcService::KillActor(grpc::CallbackServerContext* ctx,
                                                      const rpc::KillActorRequest* req, rpc::KillActorReply*) {
  return FinishNow(ctx, actors_.KillActor(*req));
}

grpc::ServerUnaryReactor* ActorGrpcService::ReportWorkerDeath(grpc::CallbackServerContext* ctx,
                                                              const rpc::ReportWorkerDeathRequest* req,
                                                              rpc::ReportWorkerDeathReply*) {
  return FinishNow(ctx, actors_.ReportWorkerDeath(*req));
}

}  // namespace shoal
