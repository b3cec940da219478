// PlacementGroupService end to end in this process: a real GCS (memory storage) reserving a
// group's bundles over gRPC on a fake raylet's BundleService.
#include "src/gcs/gcs_server.h"

#include <catch2/catch.hpp>

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "shoal/gcs.grpc.pb.h"
#include "shoal/raylet.grpc.pb.h"
#include "src/common/bundle_resources.h"
#include "src/common/rpc.h"
#include "src/common/rpc_client.h"
#include "src/gcs/store_client.h"
#include "tests/test_util/resource_helpers.h"
#include "tests/test_util/status_matchers.h"

namespace shoal {
namespace {

using test_util::ResourceMapOf;
using Info = rpc::PlacementGroupInfo;
constexpr CallOptions kCall{.timeout = absl::Seconds(10)};

// A raylet that answers health checks and grants every bundle call, recording them.
class FakeRaylet final : public rpc::BundleService::Service, public rpc::NodeManagerService::Service {
 public:
  struct Seen {
    std::string method;
    std::vector<rpc::Bundle> bundles;
    bool group_removed = false;
  };

  FakeRaylet() {
    grpc::ServerBuilder builder;
    builder.RegisterService(static_cast<rpc::BundleService::Service*>(this));
    builder.RegisterService(static_cast<rpc::NodeManagerService::Service*>(this));
    auto server = StartServer(builder, "127.0.0.1", 0, &port_);
    REQUIRE_OK(server);
    server_ = *std::move(server);
  }
  ~FakeRaylet() override { server_->Shutdown(); }
  int port() const { return port_; }

  grpc::Status HealthCheck(grpc::ServerContext*, const rpc::HealthCheckRequest*, rpc::HealthCheckReply*) override {
    return grpc::Status::OK;
  }
  grpc::Status PrepareBundles(grpc::ServerContext*, const rpc::PrepareBundlesRequest* req,
                              rpc::PrepareBundlesReply*) override {
    Record(req->commit() ? "prepare+commit" : "prepare", req->bundles(), false);
    return grpc::Status::OK;
  }
  grpc::Status CommitBundles(grpc::ServerContext*, const rpc::CommitBundlesRequest* req,
                             rpc::CommitBundlesReply*) override {
    Record("commit", req->bundles(), false);
    return grpc::Status::OK;
  }
  grpc::Status CancelBundles(grpc::ServerContext*, const rpc::CancelBundlesRequest* req,
                             rpc::CancelBundlesReply*) override {
    Record("cancel", req->bundles(), req->group_removed());
    return grpc::Status::OK;
  }
  grpc::Status ReleaseUnusedBundles(grpc::ServerContext*, const rpc::ReleaseUnusedBundlesRequest* req,
                                    rpc::ReleaseUnusedBundlesReply*) override {
    Record("release", req->in_use(), false);
    return grpc::Status::OK;
  }

  // Waits up to 10 s for a call of `method`.
  std::optional<Seen> WaitFor(const std::string& method) {
    const absl::Time deadline = absl::Now() + absl::Seconds(10);
    for (;;) {
      {
        absl::MutexLock lock(&mu_);
        for (const Seen& s : seen_) {
          if (s.method == method) return s;
        }
      }
      if (absl::Now() > deadline) return std::nullopt;
      absl::SleepFor(absl::Milliseconds(20));
    }
  }

 private:
  void Record(const std::string& method, const google::protobuf::RepeatedPtrField<rpc::Bundle>& bundles,
              bool group_removed) {
    absl::MutexLock lock(&mu_);
    seen_.push_back({method, {bundles.begin(), bundles.end()}, group_removed});
  }

  absl::Mutex mu_;
  std::vector<Seen> seen_ ABSL_GUARDED_BY(mu_);
  std::unique_ptr<grpc::Server> server_;
  int port_ = 0;
};

TEST_CASE("PlacementGroupService reserves bundles on a raylet over gRPC", "[placement_groups][grpc]") {
  FakeRaylet raylet;
  GcsOptions options;
  options.port = 0;
  GcsServer gcs(std::make_unique<InMemoryStoreClient>(), options);
  REQUIRE_OK(gcs.Start());
  auto channel = MakeChannel(absl::StrCat("127.0.0.1:", gcs.port()));
  auto nodes = rpc::NodeInfoService::NewStub(channel);
  auto groups = rpc::PlacementGroupService::NewStub(channel);
  auto status = rpc::ClusterStatusService::NewStub(channel);

  const NodeId node = NodeId::FromRandom();
  rpc::RegisterNodeRequest reg;
  reg.mutable_node()->set_node_id(node.Hex());
  reg.mutable_node()->set_address("127.0.0.1");
  reg.mutable_node()->set_raylet_port(raylet.port());
  *reg.mutable_node()->mutable_resources_total() = ResourceMapOf({{"CPU", 4}});
  rpc::RegisterNodeReply reg_reply;
  REQUIRE_OK(UnaryCall(*nodes, &rpc::NodeInfoService::Stub::RegisterNode, reg, &reg_reply, kCall));

  const PlacementGroupId id = PlacementGroupId::FromRandom();
  rpc::CreatePlacementGroupRequest create;
  create.mutable_info()->set_placement_group_id(id.Binary());
  create.mutable_info()->set_name("pg");
  create.mutable_info()->set_strategy(Info::STRICT_PACK);
  for (int i = 0; i < 2; ++i) {
    rpc::Bundle* b = create.mutable_info()->add_bundles();
    b->set_bundle_index(i);
    *b->mutable_resources() = ResourceMapOf({{"CPU", 1}});
  }
  rpc::CreatePlacementGroupReply create_reply;
  REQUIRE_OK(UnaryCall(*groups, &rpc::PlacementGroupService::Stub::CreatePlacementGroup, create, &create_reply, kCall));

  rpc::WaitPlacementGroupUntilReadyRequest wait;
  wait.set_placement_group_id(id.Binary());
  wait.set_timeout_ms(10000);
  rpc::WaitPlacementGroupUntilReadyReply ready;
  REQUIRE_OK(UnaryCall(*groups, &rpc::PlacementGroupService::Stub::WaitPlacementGroupUntilReady, wait, &ready, kCall));
  CHECK(ready.info().state() == Info::CREATED);
  REQUIRE(ready.info().bundles_size() == 2);
  CHECK(ready.info().bundles(0).node_id() == node.Hex());
  // One node takes both bundles: prepared and committed in one call.
  auto prepared = raylet.WaitFor("prepare+commit");
  REQUIRE(prepared.has_value());
  CHECK(prepared->bundles.size() == 2);

  // The raylet reports its total with the committed bundles: the node table shows it.
  rpc::ReportResourcesRequest report;
  report.set_node_id(node.Hex());
  const std::string bundle_cpu = BundleResourceName("CPU", id, 0);
  *report.mutable_resources_available() = ResourceMapOf({{"CPU", 2}, {bundle_cpu, 1}});
  *report.mutable_resources_total() = ResourceMapOf({{"CPU", 4}, {bundle_cpu, 1}});
  rpc::ReportResourcesReply report_reply;
  REQUIRE_OK(UnaryCall(*nodes, &rpc::NodeInfoService::Stub::ReportResources, report, &report_reply, kCall));
  rpc::GetClusterStatusReply cluster;
  REQUIRE_OK(UnaryCall(*status, &rpc::ClusterStatusService::Stub::GetClusterStatus, rpc::GetClusterStatusRequest(),
                       &cluster, kCall));
  REQUIRE(cluster.nodes_size() == 1);
  CHECK(cluster.nodes(0).resources_total().amounts().contains(bundle_cpu));
  CHECK(cluster.placement_groups_by_state().at("CREATED") == 1);
  CHECK(cluster.pending_placement_groups().empty());

  rpc::GetPlacementGroupRequest by_name;
  by_name.set_name("pg");
  rpc::GetPlacementGroupReply got;
  REQUIRE_OK(UnaryCall(*groups, &rpc::PlacementGroupService::Stub::GetPlacementGroup, by_name, &got, kCall));
  CHECK(got.info().placement_group_id() == id.Binary());

  rpc::RemovePlacementGroupRequest remove;
  remove.set_placement_group_id(id.Binary());
  rpc::RemovePlacementGroupReply remove_reply;
  REQUIRE_OK(UnaryCall(*groups, &rpc::PlacementGroupService::Stub::RemovePlacementGroup, remove, &remove_reply, kCall));
  auto cancelled = raylet.WaitFor("cancel");
  REQUIRE(cancelled.has_value());
  CHECK(cancelled->group_removed);
  CHECK(cancelled->bundles.size() == 2);
  CHECK_CODE(UnaryCall(*groups, &rpc::PlacementGroupService::Stub::WaitPlacementGroupUntilReady, wait, &ready, kCall),
             kFailedPrecondition);
  rpc::GetAllPlacementGroupReply all;
  REQUIRE_OK(UnaryCall(*groups, &rpc::PlacementGroupService::Stub::GetAllPlacementGroup,
                       rpc::GetAllPlacementGroupRequest(), &all, kCall));
  REQUIRE(all.groups_size() == 1);
  CHECK(all.groups(0).state() == Info::REMOVED);
  gcs.Stop();
}

}  // namespace
}  // namespace shoal
