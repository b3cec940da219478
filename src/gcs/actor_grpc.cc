#include "src/gcs/actor_grpc.h"

#include "spdlog/spdlog.h"
#include "src/common/auth.h"
#include "src/common/lease_rpc.h"
#include "src/common/rpc.h"

namespace shoal {
namespace {

grpc::ServerUnaryReactor* FinishNow(grpc::CallbackServerContext* ctx, const absl::Status& status) {
  grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
  reactor->Finish(ToGrpcStatus(status));
  return reactor;
}

}  // namespace

// --- GrpcActorTransport ---

GrpcActorTransport::~GrpcActorTransport() { Shutdown(absl::Seconds(2)); }

void GrpcActorTransport::RequestWorkerLease(uint64_t request_id, const std::string& raylet_address,
                                            rpc::RequestWorkerLeaseRequest request, LeaseCallback done) {
  calls_.Start(raylets_.Get(raylet_address), &rpc::LeaseService::Stub::async::RequestWorkerLease, std::move(request),
               {.cancel_on_shutdown = true, .cancel_key = request_id}, std::move(done));
}

void GrpcActorTransport::CancelLeaseRequest(uint64_t request_id) { calls_.Cancel(request_id); }

void GrpcActorTransport::ReturnWorker(const std::string& raylet_address, const std::string& lease_id,
                                      bool worker_failed) {
  ReturnLease(calls_, raylets_, raylet_address, lease_id, worker_failed);
}

void GrpcActorTransport::PushTask(const std::string& worker_address, rpc::PushTaskRequest request,
                                  PushCallback done) {
  calls_.Start(workers_.Get(worker_address), &rpc::CoreWorkerService::Stub::async::PushTask, std::move(request),
               {.cancel_on_shutdown = true}, std::move(done));
}

// --- ActorGrpcService ---

grpc::ServerUnaryReactor* ActorGrpcService::RegisterActor(grpc::CallbackServerContext* ctx,
                                                          const rpc::RegisterActorRequest* req,
                                                          rpc::RegisterActorReply* reply) {
  SHOAL_AUTHENTICATE_REACTOR(ctx);
  auto r = actors_.RegisterActor(*req);
  if (r.ok()) *reply = *std::move(r);
  return FinishNow(ctx, r.status());
}

grpc::ServerUnaryReactor* ActorGrpcService::CreateActor(grpc::CallbackServerContext* ctx,
                                                        const rpc::CreateActorRequest* req, rpc::CreateActorReply*) {
  SHOAL_AUTHENTICATE_REACTOR(ctx);
  return FinishNow(ctx, actors_.CreateActor(*req));
}

grpc::ServerUnaryReactor* ActorGrpcService::GetActorInfo(grpc::CallbackServerContext* ctx,
                                                         const rpc::GetActorInfoRequest* req,
                                                         rpc::GetActorInfoReply* reply) {
  SHOAL_AUTHENTICATE_REACTOR(ctx);
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
  SHOAL_AUTHENTICATE_REACTOR(ctx);
  auto info = actors_.GetNamedActor(req->name(), req->ray_namespace());
  if (info.ok()) *reply->mutable_info() = *std::move(info);
  return FinishNow(ctx, info.status());
}

grpc::ServerUnaryReactor* ActorGrpcService::ListActors(grpc::CallbackServerContext* ctx,
                                                       const rpc::ListActorsRequest* req,
                                                       rpc::ListActorsReply* reply) {
  SHOAL_AUTHENTICATE_REACTOR(ctx);
  auto r = actors_.ListActors(*req);
  if (r.ok()) *reply = *std::move(r);
  return FinishNow(ctx, r.status());
}

grpc::ServerUnaryReactor* ActorGrpcService::KillActor(grpc::CallbackServerContext* ctx,
                                                      const rpc::KillActorRequest* req, rpc::KillActorReply*) {
  SHOAL_AUTHENTICATE_REACTOR(ctx);
  return FinishNow(ctx, actors_.KillActor(*req));
}

grpc::ServerUnaryReactor* ActorGrpcService::ReportWorkerDeath(grpc::CallbackServerContext* ctx,
                                                              const rpc::ReportWorkerDeathRequest* req,
                                                              rpc::ReportWorkerDeathReply*) {
  SHOAL_AUTHENTICATE_REACTOR(ctx);
  return FinishNow(ctx, actors_.ReportWorkerDeath(*req));
}

}  // namespace shoal
