// The actor manager's gRPC edges: GrpcActorTransport (its outgoing calls to raylets and
// workers) and ActorGrpcService (ActorService, on gRPC's callback API so that a GetActorInfo
// long poll holds no thread while it waits).
// Threading: any thread; callbacks run on gRPC's threads.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "absl/time/time.h"
#include "grpcpp/grpcpp.h"
#include "shoal/gcs.grpc.pb.h"
#include "shoal/raylet.grpc.pb.h"
#include "shoal/worker.grpc.pb.h"
#include "src/common/rpc_client.h"
#include "src/gcs/actor_manager.h"

namespace shoal {

// Over the generic client pieces (src/common/rpc_client.h): one channel per address, kept for
// the transport's lifetime. Lease requests and pushes may wait forever; Shutdown cancels them
// and waits for their callbacks.
class GrpcActorTransport : public ActorCreationTransport {
 public:
  GrpcActorTransport() = default;
  ~GrpcActorTransport() override;  // Shutdown(2 s)
  GrpcActorTransport(const GrpcActorTransport&) = delete;
  GrpcActorTransport& operator=(const GrpcActorTransport&) = delete;

  void RequestWorkerLease(uint64_t request_id, const std::string& raylet_address,
                          rpc::RequestWorkerLeaseRequest request, LeaseCallback done) override;
  void CancelLeaseRequest(uint64_t request_id) override;
  void ReturnWorker(const std::string& raylet_address, const std::string& lease_id, bool worker_failed) override;
  void PushTask(const std::string& worker_address, rpc::PushTaskRequest request, PushCallback done) override;

  // Cancels the calls that may wait forever and waits up to `timeout` until no callback is
  // outstanding. Later calls are dropped (their callbacks never run). Idempotent.
  void Shutdown(absl::Duration timeout) { calls_.Shutdown(timeout); }

 private:
  ChannelCache channels_;
  StubCache<rpc::LeaseService> raylets_{channels_};
  StubCache<rpc::CoreWorkerService> workers_{channels_};
  AsyncCalls calls_;  // last: destroyed first, while the stubs are still there
};

// ActorService over an ActorManager.
class ActorGrpcService final : public rpc::ActorService::CallbackService {
 public:
  explicit ActorGrpcService(ActorManager& actors) : actors_(actors) {}

  grpc::ServerUnaryReactor* RegisterActor(grpc::CallbackServerContext* ctx, const rpc::RegisterActorRequest* req,
                                          rpc::RegisterActorReply* reply) override;
  grpc::ServerUnaryReactor* CreateActor(grpc::CallbackServerContext* ctx, const rpc::CreateActorRequest* req,
                                        rpc::CreateActorReply* reply) override;
  grpc::ServerUnaryReactor* GetActorInfo(grpc::CallbackServerContext* ctx, const rpc::GetActorInfoRequest* req,
                                         rpc::GetActorInfoReply* reply) override;
  grpc::ServerUnaryReactor* GetNamedActor(grpc::CallbackServerContext* ctx, const rpc::GetNamedActorRequest* req,
                                          rpc::GetNamedActorReply* reply) override;
  grpc::ServerUnaryReactor* ListActors(grpc::CallbackServerContext* ctx, const rpc::ListActorsRequest* req,
                                       rpc::ListActorsReply* reply) override;
  grpc::ServerUnaryReactor* KillActor(grpc::CallbackServerContext* ctx, const rpc::KillActorRequest* req,
                                      rpc::KillActorReply* reply) override;
  grpc::ServerUnaryReactor* ReportWorkerDeath(grpc::CallbackServerContext* ctx,
                                              const rpc::ReportWorkerDeathRequest* req,
                                              rpc::ReportWorkerDeathReply* reply) override;

 private:
  ActorManager& actors_;
};

}  // namespace shoal
