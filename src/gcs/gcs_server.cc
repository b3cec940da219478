#include "src/gcs/gcs_server.h"

#include <algorithm>
#include <map>
#include <set>

#include "absl/strings/str_cat.h"
#include "shoal/gcs.grpc.pb.h"
#include "shoal/raylet.grpc.pb.h"
#include "spdlog/spdlog.h"
#include "src/common/auth.h"
#include "src/common/rpc.h"
#include "src/common/rpc_client.h"
#include "src/common/rpc_metrics.h"
#include "src/common/runtime_env.h"
#include "src/gcs/node_change_stream.h"
#include "src/scheduler/hybrid_policy.h"

namespace shoal {
namespace {

// Health checks over gRPC: one cached channel per raylet address, asynchronous calls.
class GrpcHealthCheckTransport : public HealthCheckTransport {
 public:
  void Check(const NodeId& node, const std::string& address, absl::Time deadline,
             std::function<void(bool ok)> done) override {
    calls_.Start(stubs_.Get(address), &rpc::NodeManagerService::Stub::async::HealthCheck, rpc::HealthCheckRequest(),
                 {.timeout = std::max(deadline - absl::Now(), absl::ZeroDuration()), .cancel_on_shutdown = true},
                 [done = std::move(done)](absl::Status status, rpc::HealthCheckReply) { done(status.ok()); });
  }

 private:
  ChannelCache channels_;
  StubCache<rpc::NodeManagerService> stubs_{channels_};
  AsyncCalls calls_;  // last: destroyed first, cancelling the checks in flight and waiting for them
};

std::string NodeAddress(const rpc::NodeInfo& node) {
  return absl::StrCat(node.address(), ":", node.raylet_port());
}

}  // namespace

class GcsServer::Services final
    : public rpc::NodeInfoService::WithCallbackMethod_SubscribeNodeChanges<rpc::NodeInfoService::Service>,
      public rpc::KVService::Service,
      public rpc::JobInfoService::Service,
      public rpc::ClusterStatusService::Service,
      public rpc::TaskEventService::Service {
 public:
  explicit Services(GcsServer& gcs) : gcs_(gcs) {}

  // --- rpc stats ---
  grpc::Status GetRpcStats(grpc::ServerContext* ctx, const rpc::GetRpcStatsRequest*, rpc::GetRpcStatsReply* reply) override {
    SHOAL_AUTHENTICATE(ctx);
    RpcMetrics::Global().ToProto(reply->mutable_stats());
    return grpc::Status::OK;
  }

  // --- task events ---
  grpc::Status ReportTaskEvents(grpc::ServerContext* ctx, const rpc::ReportTaskEventsRequest* req,
                                rpc::ReportTaskEventsReply*) override {
    SHOAL_AUTHENTICATE(ctx);
    return ToGrpcStatus(gcs_.task_events_.Report(*req));
  }
  grpc::Status ListTasks(grpc::ServerContext* ctx, const rpc::ListTasksRequest* req, rpc::ListTasksReply* reply) override {
    SHOAL_AUTHENTICATE(ctx);
    *reply = gcs_.task_events_.List(req->limit(), req->job_id());
    return grpc::Status::OK;
  }

  // --- nodes ---
  grpc::Status RegisterNode(grpc::ServerContext* ctx, const rpc::RegisterNodeRequest* req,
                            rpc::RegisterNodeReply*) override {
    SHOAL_AUTHENTICATE(ctx);
    auto s = gcs_.nodes_.Register(req->node());
    if (s.ok()) {
      const NodeId id = *NodeId::FromHex(req->node().node_id());
      gcs_.health_.OnNodeRegistered(id, NodeAddress(req->node()));
      gcs_.placement_groups_.OnNodeAdded(id);
    }
    return ToGrpcStatus(s);
  }

  grpc::Status UnregisterNode(grpc::ServerContext* ctx, const rpc::UnregisterNodeRequest* req,
                              rpc::UnregisterNodeReply*) override {
    SHOAL_AUTHENTICATE(ctx);
    auto id = NodeId::FromHex(req->node_id());
    if (!id.ok()) return ToGrpcStatus(id.status());
    gcs_.health_.OnNodeRemoved(*id);
    std::string reason = req->reason().empty() ? "unregistered" : req->reason();
    return ToGrpcStatus(gcs_.MarkNodeDead(*id, reason));
  }

  grpc::Status GetAllNodeInfo(grpc::ServerContext* ctx, const rpc::GetAllNodeInfoRequest* req,
                              rpc::GetAllNodeInfoReply* reply) override {
    SHOAL_AUTHENTICATE(ctx);
    for (auto& node : gcs_.nodes_.GetAll(req->alive_only())) *reply->add_nodes() = std::move(node);
    return grpc::Status::OK;
  }

  grpc::Status ReportResources(grpc::ServerContext* ctx, const rpc::ReportResourcesRequest* req,
                               rpc::ReportResourcesReply* reply) override {
    SHOAL_AUTHENTICATE(ctx);
    auto id = NodeId::FromHex(req->node_id());
    if (!id.ok()) return ToGrpcStatus(id.status());
    std::vector<rpc::ResourceDemand> demands(req->demands().begin(), req->demands().end());
    reply->set_known(gcs_.nodes_.ReportResources(*id, req->resources_available(), demands, req->resources_total(),
                                                 {req->gpu_free().begin(), req->gpu_free().end()}));
    if (reply->known()) {
      gcs_.actors_.OnResourcesReported(*id);
      gcs_.placement_groups_.OnResourcesReported(*id);
    }
    return grpc::Status::OK;
  }

  grpc::ServerWriteReactor<rpc::NodeChange>* SubscribeNodeChanges(grpc::CallbackServerContext* ctx,
                                                                   const rpc::SubscribeRequest*) override {
    return NodeChangeStream::Start(ctx, gcs_.feed_, [this] { return gcs_.nodes_.GetAll(/*alive_only=*/false); });
  }

  // --- KV ---
  grpc::Status Put(grpc::ServerContext* ctx, const rpc::KVPutRequest* req, rpc::KVPutReply* reply) override {
    SHOAL_AUTHENTICATE(ctx);
    auto added = gcs_.kv_.Put(req->ns(), req->key(), req->value(), req->overwrite());
    if (!added.ok()) return ToGrpcStatus(added.status());
    reply->set_added(*added);
    return grpc::Status::OK;
  }

  grpc::Status Get(grpc::ServerContext* ctx, const rpc::KVGetRequest* req, rpc::KVGetReply* reply) override {
    SHOAL_AUTHENTICATE(ctx);
    auto value = gcs_.kv_.Get(req->ns(), req->key());
    if (!value.ok()) return ToGrpcStatus(value.status());
    reply->set_found(value->has_value());
    if (value->has_value()) reply->set_value(**value);
    return grpc::Status::OK;
  }

  grpc::Status Del(grpc::ServerContext* ctx, const rpc::KVDelRequest* req, rpc::KVDelReply* reply) override {
    SHOAL_AUTHENTICATE(ctx);
    auto deleted = gcs_.kv_.Delete(req->ns(), req->key(), req->by_prefix());
    if (!deleted.ok()) return ToGrpcStatus(deleted.status());
    reply->set_deleted(*deleted);
    return grpc::Status::OK;
  }

  grpc::Status Keys(grpc::ServerContext* ctx, const rpc::KVKeysRequest* req, rpc::KVKeysReply* reply) override {
    SHOAL_AUTHENTICATE(ctx);
    auto keys = gcs_.kv_.Keys(req->ns(), req->prefix());
    if (!keys.ok()) return ToGrpcStatus(keys.status());
    for (auto& k : *keys) reply->add_keys(std::move(k));
    return grpc::Status::OK;
  }

  // --- jobs ---
  grpc::Status AddJob(grpc::ServerContext* ctx, const rpc::AddJobRequest* req, rpc::AddJobReply* reply) override {
    SHOAL_AUTHENTICATE(ctx);
    auto id = gcs_.jobs_.Add(req->job());
    if (!id.ok()) return ToGrpcStatus(id.status());
    reply->set_job_id(*id);
    return grpc::Status::OK;
  }

  grpc::Status MarkJobFinished(grpc::ServerContext* ctx, const rpc::MarkJobFinishedRequest* req,
                               rpc::MarkJobFinishedReply*) override {
    SHOAL_AUTHENTICATE(ctx);
    return ToGrpcStatus(gcs_.FinishJob(req->job_id()));
  }

  grpc::Status GetAllJobInfo(grpc::ServerContext* ctx, const rpc::GetAllJobInfoRequest*,
                             rpc::GetAllJobInfoReply* reply) override {
    SHOAL_AUTHENTICATE(ctx);
    auto jobs = gcs_.jobs_.GetAll();
    if (!jobs.ok()) return ToGrpcStatus(jobs.status());
    for (auto& j : *jobs) *reply->add_jobs() = std::move(j);
    return grpc::Status::OK;
  }

  // --- cluster status ---
  grpc::Status GetClusterStatus(grpc::ServerContext* ctx, const rpc::GetClusterStatusRequest*,
                                rpc::GetClusterStatusReply* reply) override {
    SHOAL_AUTHENTICATE(ctx);
    for (auto& node : gcs_.nodes_.GetAll(/*alive_only=*/false)) *reply->add_nodes() = std::move(node);
    ClusterSummary summary = gcs_.nodes_.Summarize();
    summary.total.ToProto(reply->mutable_total());
    summary.available.ToProto(reply->mutable_available());
    for (auto& d : summary.demands) *reply->add_demands() = std::move(d);
    PlacementGroupSummary groups = gcs_.placement_groups_.Summarize();
    for (auto& g : groups.pending) *reply->add_pending_placement_groups() = std::move(g);
    for (const auto& [state, n] : groups.by_state) (*reply->mutable_placement_groups_by_state())[state] = n;
    reply->set_storage(gcs_.store_->Name());
    reply->set_gcs_start_time_ms(gcs_.start_time_ms_);
    return grpc::Status::OK;
  }

 private:
  GcsServer& gcs_;
};

GcsServer::GcsServer(std::unique_ptr<StoreClient> store, GcsOptions options)
    : options_(std::move(options)),
      store_(std::move(store)),
      nodes_(*store_, clock_, feed_),
      jobs_(*store_, clock_),
      kv_(*store_, options_.kv_max_value_bytes),
      task_events_(options_.task_events),
      health_transport_(std::make_unique<GrpcHealthCheckTransport>()),
      health_(clock_, *health_transport_, options_.health),
      // A driver is given as long as a node: the checks a raylet may fail, each after its timeout.
      drivers_(options_.health.period * options_.health.failure_threshold + options_.health.timeout),
      actor_transport_(std::make_unique<GrpcActorTransport>()),
      actors_(*store_, clock_, nodes_, *actor_transport_, std::make_unique<HybridSchedulingPolicy>(),
              WithGroupCheck(options_.actors, placement_groups_)),
      bundle_client_(std::make_unique<GrpcBundleClient>()),
      placement_groups_(*store_, clock_, nodes_, *bundle_client_, WithRemoval(options_.placement_groups, actors_)),
      services_(std::make_unique<Services>(*this)),
      actor_service_(std::make_unique<ActorGrpcService>(actors_)),
      placement_group_service_(std::make_unique<PlacementGroupGrpcService>(placement_groups_)) {}

ActorManagerOptions GcsServer::WithGroupCheck(ActorManagerOptions options, const PlacementGroupManager& groups) {
  // Called only once serving, when the manager (constructed after the actors) exists.
  options.placement_group_removed = [&groups](const std::string& id) { return groups.IsRemoved(id); };
  return options;
}

PlacementGroupManagerOptions GcsServer::WithRemoval(PlacementGroupManagerOptions options, ActorManager& actors) {
  // A reservation on one node takes one raylet call (bench/README.md, placement groups).
  options.one_call_for_one_node = true;
  // A removed group's actors die for good.
  options.on_removed = [&actors](const PlacementGroupId& id) { actors.OnPlacementGroupRemoved(id.Binary()); };
  return options;
}

GcsServer::~GcsServer() { Stop(); }

absl::Status GcsServer::Start() {
  start_time_ms_ = absl::ToUnixMillis(clock_.Now());
  auto alive = nodes_.Load();
  if (!alive.ok()) return alive.status();
  for (const auto& node : *alive) {
    // Nodes alive before a restart are checked again; a raylet that died meanwhile is found dead.
    health_.OnNodeRegistered(*NodeId::FromHex(node.node_id()), NodeAddress(node));
  }
  if (!alive->empty()) spdlog::info("restored {} alive nodes from {}", alive->size(), store_->Name());
  if (options_.port != 0) actors_.SetGcsAddress(absl::StrCat(options_.host, ":", options_.port));
  if (auto s = actors_.Load(); !s.ok()) return s;
  if (auto s = placement_groups_.Load(); !s.ok()) return s;  // after the nodes: it asks their raylets

  grpc::ServerBuilder builder;
  builder.RegisterService(static_cast<rpc::NodeInfoService::Service*>(services_.get()));
  builder.RegisterService(static_cast<rpc::KVService::Service*>(services_.get()));
  builder.RegisterService(static_cast<rpc::JobInfoService::Service*>(services_.get()));
  builder.RegisterService(static_cast<rpc::ClusterStatusService::Service*>(services_.get()));
  builder.RegisterService(static_cast<rpc::TaskEventService::Service*>(services_.get()));
  builder.RegisterService(actor_service_.get());
  builder.RegisterService(placement_group_service_.get());
  // Room for the largest KV value the limit allows, so that its own clear error answers a
  // value over it rather than gRPC's message-size error.
  builder.SetMaxReceiveMessageSize(
      static_cast<int>(std::max<size_t>(size_t{64} << 20, options_.kv_max_value_bytes + (size_t{1} << 20))));
  auto server = StartServer(builder, options_.host, options_.port, &port_);
  if (!server.ok()) return server.status();
  server_ = *std::move(server);
  actors_.SetGcsAddress(absl::StrCat(options_.host, ":", port_));
  health_thread_ = std::thread([this] { HealthLoop(); });
  actor_thread_ = std::thread([this] { ActorLoop(); });
  spdlog::info("GCS listening on {}:{} with {} storage", options_.host, port_, store_->Name());
  return absl::OkStatus();
}

void GcsServer::HealthLoop() {
  const absl::Duration tick = std::clamp(options_.health.period / 4, absl::Milliseconds(10), absl::Milliseconds(250));
  while (!stopping_) {
    for (const NodeId& dead : health_.Tick()) {
      auto s = MarkNodeDead(dead, absl::StrCat("health check failed ", options_.health.failure_threshold,
                                               " times in a row (raylet unreachable)"));
      if (!s.ok()) spdlog::error("cannot mark node {} dead: {}", dead.Hex(), s.ToString());
    }
    CheckDrivers();
    absl::SleepFor(tick);
  }
}

absl::Status GcsServer::FinishJob(const std::string& job_id) {
  absl::Status s = jobs_.MarkFinished(job_id);
  if (!s.ok()) return s;
  // Its default-lifetime actors die with it (MarkFinished validated the id).
  const JobId job = *JobId::FromHex(job_id);
  actors_.OnJobFinished(job);
  placement_groups_.OnJobFinished(job);  // its groups that are not detached
  ReleasePackagesOf(job);
  return absl::OkStatus();
}

void GcsServer::CheckDrivers() {
  const absl::Time now = clock_.Now();
  if (now - last_driver_check_ < absl::Milliseconds(500)) return;
  last_driver_check_ = now;
  absl::StatusOr<std::vector<rpc::JobInfo>> jobs = jobs_.GetAll();
  if (!jobs.ok()) return;
  std::map<std::string, std::vector<std::string>> running;  // driver address -> its jobs
  for (const rpc::JobInfo& job : *jobs) {
    if (!job.is_dead() && !job.driver_address().empty()) running[job.driver_address()].push_back(job.job_id());
  }
  std::set<std::string> addresses;
  for (const auto& [address, ids] : running) addresses.insert(address);
  // And the owners of actors still waiting for their constructor's arguments: no lease of
  // theirs lets a raylet notice when such an owner dies.
  const std::set<std::string> owners = actors_.OwnersOfWaitingActors();
  addresses.insert(owners.begin(), owners.end());
  for (const std::string& address : drivers_.Check(addresses, now)) {
    if (owners.contains(address)) {
      spdlog::warn("{}, the owner of actors waiting for their arguments, is unreachable: they end", address);
      actors_.OnOwnerDead(address);
    }
    for (const std::string& job : running[address]) {
      absl::Status s = FinishJob(job);
      if (s.ok()) {
        spdlog::warn("job {}: its driver at {} is unreachable (exited without shutting down); finished the job, "
                     "its actors and placement groups", job, address);
      } else {
        spdlog::error("job {}: its driver at {} is unreachable, but the job cannot be finished: {}", job, address,
                      s.ToString());
      }
    }
  }
}

void GcsServer::ReleasePackagesOf(const JobId& job) {
  rpc::ListActorsRequest request;
  request.set_job_id(job.Hex());
  request.set_limit(1000000);
  if (auto actors = actors_.ListActors(request); actors.ok()) {
    for (const rpc::ActorInfo& a : actors->actors()) {
      if (a.detached() && a.state() != rpc::ActorInfo::DEAD) return;
    }
  }
  const std::string prefix = job.Hex() + "|";
  absl::StatusOr<std::vector<std::string>> mine = kv_.Keys(kPackageRefsNamespace, prefix);
  if (!mine.ok() || mine->empty()) return;
  std::set<std::string> released;
  for (const std::string& key : *mine) {
    released.insert(key.substr(prefix.size()));
    (void)kv_.Delete(kPackageRefsNamespace, key, /*by_prefix=*/false);
  }
  absl::StatusOr<std::vector<std::string>> rest = kv_.Keys(kPackageRefsNamespace, "");
  if (!rest.ok()) return;
  for (const std::string& key : *rest) {
    if (size_t bar = key.find('|'); bar != std::string::npos) released.erase(key.substr(bar + 1));
  }
  for (const std::string& uri : released) {
    (void)kv_.Delete(kPackageNamespace, absl::StrCat(uri, "#"), /*by_prefix=*/true);  // its chunks
    absl::StatusOr<int64_t> deleted = kv_.Delete(kPackageNamespace, uri, /*by_prefix=*/false);
    if (deleted.ok() && *deleted > 0) spdlog::info("deleted package {} (no job uses it)", uri);
  }
}

absl::Status GcsServer::MarkNodeDead(const NodeId& id, const std::string& reason) {
  auto s = nodes_.MarkDead(id, reason);
  if (s.ok()) {
    actors_.OnNodeDead(id);
    placement_groups_.OnNodeDead(id);
  }
  return s;
}

void GcsServer::ActorLoop() {
  while (!stopping_) {
    actors_.Tick();
    placement_groups_.Tick();
    absl::SleepFor(absl::Milliseconds(20));
  }
}

void GcsServer::Stop() {
  if (stopping_.exchange(true)) return;
  actors_.Shutdown();  // answers long polls, so that the server's shutdown finds none waiting
  placement_groups_.Shutdown();
  feed_.Close();       // ends the subscription streams, likewise
  if (server_) server_->Shutdown(absl::ToChronoTime(absl::Now() + absl::Seconds(2)));
  if (health_thread_.joinable()) health_thread_.join();
  health_transport_.reset();  // ends the checks in flight while the checker they report to lives
  if (actor_thread_.joinable()) actor_thread_.join();
  actor_transport_->Shutdown(absl::Seconds(2));
  bundle_client_->Shutdown(absl::Seconds(2));
}

}  // namespace shoal
