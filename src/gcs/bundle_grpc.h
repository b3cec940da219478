// The placement group manager's gRPC edges: GrpcBundleClient (its calls to the raylets'
// BundleService) and PlacementGroupGrpcService (PlacementGroupService, on gRPC's callback API so
// that a WaitPlacementGroupUntilReady long poll holds no thread while it waits).
// Threading: any thread; callbacks run on gRPC's threads.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "grpcpp/grpcpp.h"
#include "shoal/gcs.grpc.pb.h"
#include "shoal/raylet.grpc.pb.h"
#include "src/common/rpc_client.h"
#include "src/gcs/placement_group_manager.h"

namespace shoal {

// Over the generic client pieces (src/common/rpc_client.h): one channel per raylet address, kept
// for the client's lifetime; every call carries the cluster token and a deadline (`timeout`), so
// that a raylet that never answers fails the call rather than holding a reservation forever.
class GrpcBundleClient : public BundleClient {
 public:
  explicit GrpcBundleClient(absl::Duration timeout = absl::Seconds(30)) : timeout_(timeout) {}
  ~GrpcBundleClient() override;  // Shutdown(2 s)
  GrpcBundleClient(const GrpcBundleClient&) = delete;
  GrpcBundleClient& operator=(const GrpcBundleClient&) = delete;

  void PrepareBundles(const std::string& raylet, std::vector<rpc::Bundle> bundles, bool commit, Done done) override;
  void CommitBundles(const std::string& raylet, std::vector<rpc::Bundle> bundles, Done done) override;
  void CancelBundles(const std::string& raylet, std::vector<rpc::Bundle> bundles, bool group_removed,
                     Done done) override;
  void ReleaseUnusedBundles(const std::string& raylet, std::vector<rpc::Bundle> in_use, ReleaseDone done) override;

  // Cancels the calls in flight (cancels excepted: they still go out) and waits up to `timeout`
  // for their callbacks. Later prepares and commits are dropped. Idempotent.
  void Shutdown(absl::Duration timeout) { calls_.Shutdown(timeout); }

 private:
  const absl::Duration timeout_;
  ChannelCache channels_;
  StubCache<rpc::BundleService> raylets_{channels_};
  AsyncCalls calls_;  // last: destroyed first, while the stubs are still there
};

// PlacementGroupService over a PlacementGroupManager.
class PlacementGroupGrpcService final : public rpc::PlacementGroupService::CallbackService {
 public:
  explicit PlacementGroupGrpcService(PlacementGroupManager& groups) : groups_(groups) {}

  grpc::ServerUnaryReactor* CreatePlacementGroup(grpc::CallbackServerContext* ctx,
                                                 const rpc::CreatePlacementGroupRequest* req,
                                                 rpc::CreatePlacementGroupReply* reply) override;
  grpc::ServerUnaryReactor* RemovePlacementGroup(grpc::CallbackServerContext* ctx,
                                                 const rpc::RemovePlacementGroupRequest* req,
                                                 rpc::RemovePlacementGroupReply* reply) override;
  grpc::ServerUnaryReactor* GetPlacementGroup(grpc::CallbackServerContext* ctx,
                                              const rpc::GetPlacementGroupRequest* req,
                                              rpc::GetPlacementGroupReply* reply) override;
  grpc::ServerUnaryReactor* GetAllPlacementGroup(grpc::CallbackServerContext* ctx,
                                                 const rpc::GetAllPlacementGroupRequest* req,
                                                 rpc::GetAllPlacementGroupReply* reply) override;
  grpc::ServerUnaryReactor* WaitPlacementGroupUntilReady(grpc::CallbackServerContext* ctx,
                                                         const rpc::WaitPlacementGroupUntilReadyRequest* req,
                                                         rpc::WaitPlacementGroupUntilReadyReply* reply) override;

 private:
  PlacementGroupManager& groups_;
};

}  // namespace shoal
