#include "src/gcs/bundle_grpc.h"

#include "src/common/auth.h"
#include "src/common/rpc.h"

namespace shoal {
namespace {

grpc::ServerUnaryReactor* FinishNow(grpc::CallbackServerContext* ctx, const absl::Status& status) {
  grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
  reactor->Finish(ToGrpcStatus(status));
  return reactor;
}

template <typename Request>
Request WithBundles(std::vector<rpc::Bundle> bundles) {
  Request request;
  for (auto& b : bundles) *request.add_bundles() = std::move(b);
  return request;
}

}  // namespace

// --- GrpcBundleClient ---

GrpcBundleClient::~GrpcBundleClient() { Shutdown(absl::Seconds(2)); }

void GrpcBundleClient::PrepareBundles(const std::string& raylet, std::vector<rpc::Bundle> bundles, bool commit,
                                      Done done) {
  rpc::PrepareBundlesRequest request = WithBundles<rpc::PrepareBundlesRequest>(std::move(bundles));
  request.set_commit(commit);
  calls_.Start(raylets_.Get(raylet), &rpc::BundleService::Stub::async::PrepareBundles, std::move(request),
               {.timeout = timeout_, .cancel_on_shutdown = true},
               [done = std::move(done)](absl::Status s, rpc::PrepareBundlesReply) { done(s); });
}

void GrpcBundleClient::CommitBundles(const std::string& raylet, std::vector<rpc::Bundle> bundles, Done done) {
  calls_.Start(raylets_.Get(raylet), &rpc::BundleService::Stub::async::CommitBundles,
               WithBundles<rpc::CommitBundlesRequest>(std::move(bundles)),
               {.timeout = timeout_, .cancel_on_shutdown = true},
               [done = std::move(done)](absl::Status s, rpc::CommitBundlesReply) { done(s); });
}

void GrpcBundleClient::CancelBundles(const std::string& raylet, std::vector<rpc::Bundle> bundles,
                                     bool group_removed, Done done) {
  auto request = WithBundles<rpc::CancelBundlesRequest>(std::move(bundles));
  request.set_group_removed(group_removed);
  // Clean-up: still sent while shutting down.
  calls_.Start(raylets_.Get(raylet), &rpc::BundleService::Stub::async::CancelBundles, std::move(request),
               {.timeout = timeout_}, [done = std::move(done)](absl::Status s, rpc::CancelBundlesReply) {
                 if (done) done(s);
               });
}

void GrpcBundleClient::ReleaseUnusedBundles(const std::string& raylet, std::vector<rpc::Bundle> in_use,
                                            ReleaseDone done) {
  rpc::ReleaseUnusedBundlesRequest request;
  for (auto& b : in_use) *request.add_in_use() = std::move(b);
  calls_.Start(raylets_.Get(raylet), &rpc::BundleService::Stub::async::ReleaseUnusedBundles, std::move(request),
               {.timeout = timeout_, .cancel_on_shutdown = true},
               [done = std::move(done)](absl::Status s, rpc::ReleaseUnusedBundlesReply r) { done(s, r.released()); });
}

// --- PlacementGroupGrpcService ---

grpc::ServerUnaryReactor* PlacementGroupGrpcService::CreatePlacementGroup(grpc::CallbackServerContext* ctx,
                                                                          const rpc::CreatePlacementGroupRequest* req,
                                                                          rpc::CreatePlacementGroupReply*) {
  SHOAL_AUTHENTICATE_REACTOR(ctx);
  return FinishNow(ctx, groups_.Create(req->info()));
}

grpc::ServerUnaryReactor* PlacementGroupGrpcService::RemovePlacementGroup(grpc::CallbackServerContext* ctx,
                                                                          const rpc::RemovePlacementGroupRequest* req,
                                                                          rpc::RemovePlacementGroupReply*) {
  SHOAL_AUTHENTICATE_REACTOR(ctx);
  return FinishNow(ctx, groups_.Remove(req->placement_group_id()));
}

grpc::ServerUnaryReactor* PlacementGroupGrpcService::GetPlacementGroup(grpc::CallbackServerContext* ctx,
                                                                       const rpc::GetPlacementGroupRequest* req,
                                                                       rpc::GetPlacementGroupReply* reply) {
  SHOAL_AUTHENTICATE_REACTOR(ctx);
  auto info = groups_.Get(*req);
  if (info.ok()) *reply->mutable_info() = *std::move(info);
  return FinishNow(ctx, info.status());
}

grpc::ServerUnaryReactor* PlacementGroupGrpcService::GetAllPlacementGroup(grpc::CallbackServerContext* ctx,
                                                                          const rpc::GetAllPlacementGroupRequest* req,
                                                                          rpc::GetAllPlacementGroupReply* reply) {
  SHOAL_AUTHENTICATE_REACTOR(ctx);
  *reply = groups_.GetAll(req->limit());
  return FinishNow(ctx, absl::OkStatus());
}

grpc::ServerUnaryReactor* PlacementGroupGrpcService::WaitPlacementGroupUntilReady(
    grpc::CallbackServerContext* ctx, const rpc::WaitPlacementGroupUntilReadyRequest* req,
    rpc::WaitPlacementGroupUntilReadyReply* reply) {
  SHOAL_AUTHENTICATE_REACTOR(ctx);
  grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
  // The manager answers exactly once (at the latest at its Shutdown, before the server's).
  groups_.WaitUntilReady(*req, [reactor, reply](absl::StatusOr<rpc::PlacementGroupInfo> info) {
    if (info.ok()) *reply->mutable_info() = *std::move(info);
    reactor->Finish(ToGrpcStatus(info.status()));
  });
  return reactor;
}

}  // namespace shoal
