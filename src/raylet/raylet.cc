#include "src/raylet/raylet.h"

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>

#include <set>

#include "absl/strings/str_cat.h"
#include "shoal/raylet.grpc.pb.h"
#include "spdlog/spdlog.h"
#include "src/common/auth.h"
#include "src/common/error_info.h"
#include "src/common/rpc.h"
#include "src/common/rpc_metrics.h"
#include "src/common/spin.h"
#include "src/common/system.h"
#include "src/common/tls.h"
#include "src/gcs_client/package_store.h"
#include "src/scheduler/hybrid_policy.h"

namespace shoal {
namespace {

grpc::Status Stopping() { return grpc::Status(grpc::StatusCode::UNAVAILABLE, "the raylet is stopping"); }

// Runs `fn` on `loop` and finishes the call with its status.
grpc::ServerUnaryReactor* FinishOnLoop(EventLoop& loop, grpc::CallbackServerContext* ctx,
                                       std::function<absl::Status()> fn) {
  grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
  if (!loop.Post([reactor, fn = std::move(fn)] { reactor->Finish(ToGrpcStatus(fn())); })) {
    reactor->Finish(Stopping());
  }
  return reactor;
}

}  // namespace

class Raylet::Service final : public rpc::NodeManagerService::Service {
 public:
  explicit Service(const NodeId& id) : id_hex_(id.Hex()) {}
  grpc::Status HealthCheck(grpc::ServerContext* ctx, const rpc::HealthCheckRequest*,
                           rpc::HealthCheckReply* reply) override {
    SHOAL_AUTHENTICATE(ctx);
    reply->set_node_id(id_hex_);
    return grpc::Status::OK;
  }

 private:
  const std::string id_hex_;
};

// LeaseService on the callback API: each handler posts its work to the event loop and returns;
// the loop finishes the call. A queued RequestWorkerLease is just a reactor waiting in the lease
// manager, so any number of them hold no thread. Cancelling one (the owner gave up, its deadline
// passed or it died) removes it from the queue.
class Raylet::LeaseGrpcService final : public rpc::LeaseService::CallbackService {
 public:
  explicit LeaseGrpcService(Raylet& raylet) : raylet_(raylet) {}

  grpc::ServerUnaryReactor* RequestWorkerLease(grpc::CallbackServerContext* ctx,
                                               const rpc::RequestWorkerLeaseRequest* req,
                                               rpc::RequestWorkerLeaseReply* reply) override {
    SHOAL_AUTHENTICATE_REACTOR(ctx);
    auto* reactor = new LeaseReactor(raylet_, next_request_id_.fetch_add(1));
    bool posted = raylet_.loop_->Post([this, reactor, req, reply] {
      raylet_.leases_->RequestLease(reactor->id(), *req,
                                    [reactor, reply](absl::StatusOr<rpc::RequestWorkerLeaseReply> r) {
                                      if (!r.ok()) {
                                        reactor->Finish(ToGrpcStatus(r.status()));
                                        return;
                                      }
                                      *reply = *std::move(r);
                                      reactor->Finish(grpc::Status::OK);
                                    });
    });
    if (!posted) reactor->Finish(Stopping());
    return reactor;
  }

  grpc::ServerUnaryReactor* ReturnWorker(grpc::CallbackServerContext* ctx, const rpc::ReturnWorkerRequest* req,
                                         rpc::ReturnWorkerReply* reply) override {
    SHOAL_AUTHENTICATE_REACTOR(ctx);
    return OnLoop(ctx, [this, req, reply] {
      // A lease this raylet ended by killing its worker: the owner learns why (e.g. memory).
      if (std::optional<rpc::ErrorInfo> cause = raylet_.leases_->TakeDeathCause(req->lease_id())) {
        *reply->mutable_failure() = *std::move(cause);
        return absl::OkStatus();
      }
      return raylet_.leases_->ReturnWorker(req->lease_id(), req->worker_failed());
    });
  }

  grpc::ServerUnaryReactor* RegisterWorker(grpc::CallbackServerContext* ctx, const rpc::RegisterWorkerRequest* req,
                                           rpc::RegisterWorkerReply* reply) override {
    SHOAL_AUTHENTICATE_REACTOR(ctx);
    return OnLoop(ctx, [this, req, reply] {
      absl::Status s = raylet_.leases_->RegisterWorker(req->worker_id(), req->port(), req->pid());
      if (s.ok()) reply->set_node_id(raylet_.node_id_.Hex());
      return s;
    });
  }

  grpc::ServerUnaryReactor* FreeObjects(grpc::CallbackServerContext* ctx, const rpc::FreeObjectsRequest* req,
                                        rpc::FreeObjectsReply*) override {
    SHOAL_AUTHENTICATE_REACTOR(ctx);
    // A quick local IPC per object; it needs nothing from the loop.
    std::vector<ObjectId> ids;
    absl::Status status;
    for (const std::string& bin : req->object_ids()) {
      auto id = ObjectId::FromBinary(bin);
      if (!id.ok()) {
        status = absl::InvalidArgumentError(absl::StrCat("object_ids: ", id.status().message()));
        break;
      }
      ids.push_back(*id);
    }
    for (size_t i = 0; status.ok() && i < ids.size(); ++i) {
      absl::Status s = raylet_.store_client_->Delete(ids[i]);
      if (!s.ok() && !absl::IsNotFound(s)) status = s;
    }
    auto* reactor = ctx->DefaultReactor();
    reactor->Finish(ToGrpcStatus(status));
    return reactor;
  }

  grpc::ServerUnaryReactor* ReleaseOwnerLeases(grpc::CallbackServerContext* ctx,
                                               const rpc::ReleaseOwnerLeasesRequest* req,
                                               rpc::ReleaseOwnerLeasesReply* reply) override {
    SHOAL_AUTHENTICATE_REACTOR(ctx);
    return OnLoop(ctx, [this, req, reply] {
      if (req->owner_address().empty()) return absl::InvalidArgumentError("owner_address must not be empty");
      reply->set_released(raylet_.leases_->ReleaseLeasesOfOwner(req->owner_address(), "shut down"));
      return absl::OkStatus();
    });
  }

  grpc::ServerUnaryReactor* NotifyWorkerBlocked(grpc::CallbackServerContext* ctx,
                                                const rpc::NotifyWorkerBlockedRequest* req,
                                                rpc::NotifyWorkerBlockedReply*) override {
    SHOAL_AUTHENTICATE_REACTOR(ctx);
    return OnLoop(ctx, [this, req] { return raylet_.leases_->SetWorkerBlocked(req->worker_id(), req->blocked()); });
  }

  grpc::ServerUnaryReactor* GetNodeStats(grpc::CallbackServerContext* ctx, const rpc::GetNodeStatsRequest* req,
                                         rpc::GetNodeStatsReply* reply) override {
    SHOAL_AUTHENTICATE_REACTOR(ctx);
    return OnLoop(ctx, [this, req, reply] {
      if (req->include_workers()) {
        for (const auto& [id, w] : raylet_.pool_->workers()) {
          rpc::WorkerSummary* out = reply->add_workers();
          out->set_worker_id(id.Hex());
          out->set_pid(w.pid);
          out->set_state(w.state == WorkerPool::State::kStarting ? "STARTING"
                         : w.state == WorkerPool::State::kIdle   ? "IDLE"
                                                                 : "LEASED");
          out->set_job_id(w.key.job.Hex());
          out->set_address(w.address);
          out->set_start_time_ms(absl::ToUnixMillis(w.started_at));
        }
      }
      const WorkerPool::Stats workers = raylet_.pool_->stats();
      const LeaseManager::Stats leases = raylet_.leases_->stats();
      reply->set_num_workers(workers.workers);
      reply->set_num_idle_workers(workers.idle);
      reply->set_num_leased_workers(workers.leased);
      reply->set_num_queued_leases(leases.queued + leases.waiting_worker);
      raylet_.leases_->Available().ToProto(reply->mutable_available());
      for (std::string& key : raylet_.runtime_envs_->SettingUp()) reply->add_runtime_envs_setting_up(std::move(key));
      RpcMetrics::Global().ToProto(reply->mutable_rpc_stats());
      if (const ResourceInstances* gpus = raylet_.leases_->resources().Instances(kGPU); gpus != nullptr) {
        for (const FixedPoint& free : gpus->free()) reply->add_gpu_free(free.units());
      }
      if (auto store = raylet_.store_client_->Stats(); store.ok()) {
        reply->set_store_capacity_bytes(store->capacity);
        reply->set_store_used_bytes(store->bytes_used);
        reply->set_store_num_objects(store->num_objects);
        reply->set_store_spilled_bytes(store->bytes_spilled);
        reply->set_store_num_spilled(store->num_spilled);
        reply->set_store_num_evicted(store->num_evicted);
        reply->set_store_num_restored(store->num_restored);
      }
      return absl::OkStatus();
    });
  }

 private:
  // Finishes with CANCELLED if the request is still queued when its call is cancelled.
  class LeaseReactor final : public grpc::ServerUnaryReactor {
   public:
    LeaseReactor(Raylet& raylet, uint64_t id) : raylet_(raylet), id_(id) {}
    uint64_t id() const { return id_; }
    void OnCancel() override {
      // The manager holds the reply callback until it answers, and Finish comes only from there
      // or from here: so while CancelRequest finds the request, this reactor is alive.
      LeaseReactor* self = this;
      Raylet* raylet = &raylet_;
      const uint64_t id = id_;
      raylet_.loop_->Post([self, raylet, id] {
        if (raylet->leases_->CancelRequest(id)) {
          self->Finish(grpc::Status(grpc::StatusCode::CANCELLED, "lease request cancelled"));
        }
      });
    }
    void OnDone() override { delete this; }

   private:
    Raylet& raylet_;
    const uint64_t id_;
  };

  grpc::ServerUnaryReactor* OnLoop(grpc::CallbackServerContext* ctx, std::function<absl::Status()> fn) {
    return FinishOnLoop(*raylet_.loop_, ctx, std::move(fn));
  }

  Raylet& raylet_;
  std::atomic<uint64_t> next_request_id_{1};
};

// BundleService on the callback API, as LeaseService: each handler authenticates, then runs on
// the event loop (BundleManager's thread). A change to the node's bundles is reported to the GCS
// at once, not at the next report period.
class Raylet::BundleGrpcService final : public rpc::BundleService::CallbackService {
 public:
  explicit BundleGrpcService(Raylet& raylet) : raylet_(raylet) {}

  grpc::ServerUnaryReactor* PrepareBundles(grpc::CallbackServerContext* ctx, const rpc::PrepareBundlesRequest* req,
                                           rpc::PrepareBundlesReply*) override {
    SHOAL_AUTHENTICATE_REACTOR(ctx);
    return OnLoop(ctx, [this, req] {
      absl::Status s = raylet_.bundles_->Prepare(req->bundles());
      if (s.ok() && req->commit()) s = raylet_.bundles_->Commit(req->bundles());
      return Reported(s);
    });
  }

  grpc::ServerUnaryReactor* CommitBundles(grpc::CallbackServerContext* ctx, const rpc::CommitBundlesRequest* req,
                                          rpc::CommitBundlesReply*) override {
    SHOAL_AUTHENTICATE_REACTOR(ctx);
    return OnLoop(ctx, [this, req] { return Reported(raylet_.bundles_->Commit(req->bundles())); });
  }

  grpc::ServerUnaryReactor* CancelBundles(grpc::CallbackServerContext* ctx, const rpc::CancelBundlesRequest* req,
                                          rpc::CancelBundlesReply*) override {
    SHOAL_AUTHENTICATE_REACTOR(ctx);
    return OnLoop(ctx, [this, req] {
      return Reported(raylet_.bundles_->Cancel(req->bundles(), req->group_removed()));
    });
  }

  grpc::ServerUnaryReactor* ReleaseUnusedBundles(grpc::CallbackServerContext* ctx,
                                                 const rpc::ReleaseUnusedBundlesRequest* req,
                                                 rpc::ReleaseUnusedBundlesReply* reply) override {
    SHOAL_AUTHENTICATE_REACTOR(ctx);
    return OnLoop(ctx, [this, req, reply] {
      absl::StatusOr<int> released = raylet_.bundles_->ReleaseUnused(req->in_use());
      if (!released.ok()) return released.status();
      reply->set_released(*released);
      return Reported(absl::OkStatus());
    });
  }

 private:
  grpc::ServerUnaryReactor* OnLoop(grpc::CallbackServerContext* ctx, std::function<absl::Status()> fn) {
    return FinishOnLoop(*raylet_.loop_, ctx, std::move(fn));
  }
  // Asks for a resource report now when `s` is OK (the node's resources changed).
  absl::Status Reported(absl::Status s) {
    if (s.ok()) raylet_.ReportSoon();
    return s;
  }

  Raylet& raylet_;
};

// Worker deaths the GCS has not acknowledged. Thread-safe; shared with the report calls in
// flight, so that a late callback never touches a raylet that is gone.
class Raylet::UnreportedDeaths {
 public:
  // Keeps `death` to be sent again; false (dropped) when kMaxUnreportedDeaths are kept already.
  bool Keep(rpc::ReportWorkerDeathRequest death) {
    absl::MutexLock lock(&mu_);
    if (deaths_.size() >= kMaxUnreportedDeaths) return false;
    deaths_.push_back(std::move(death));
    return true;
  }
  std::vector<rpc::ReportWorkerDeathRequest> TakeAll() {
    absl::MutexLock lock(&mu_);
    return std::exchange(deaths_, {});
  }

 private:
  static constexpr size_t kMaxUnreportedDeaths = 10000;
  absl::Mutex mu_;
  std::vector<rpc::ReportWorkerDeathRequest> deaths_ ABSL_GUARDED_BY(mu_);
};

absl::StatusOr<ResourceSet> NodeResourcesFromFlags(double num_cpus, int64_t num_gpus, int64_t memory,
                                                   int64_t object_store_memory, const ResourceSet& custom,
                                                   const std::string& node_ip, bool is_head) {
  for (const char* name : {kCPU, kGPU, kMemory, kObjectStoreMemory}) {
    if (!custom.Get(name).IsZero()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "set ", name, " with its own flag, not in --resources"));
    }
  }
  const int64_t ram = DetectMemoryBytes();
  if (num_cpus < 0) num_cpus = static_cast<double>(DetectCpuCount());
  if (num_gpus < 0) num_gpus = DetectGpuCount();
  if (object_store_memory < 0) {
    object_store_memory = ram * 3 / 10;
    if (int64_t shm = SharedMemoryBytes(); shm > 0) object_store_memory = std::min(object_store_memory, shm * 95 / 100);
  }
  if (memory < 0) memory = ram * 7 / 10;
  std::map<std::string, double> values = {
      {kCPU, num_cpus}, {kGPU, static_cast<double>(num_gpus)}, {kMemory, static_cast<double>(memory)},
      {kObjectStoreMemory, static_cast<double>(object_store_memory)}, {kNodePrefix + node_ip, 1.0}};
  if (is_head) values[kHeadNodeResource] = 1.0;
  auto set = ResourceSet::FromDoubles(values);
  if (!set.ok()) return set.status();
  set->Add(custom);
  return set;
}

Raylet::Raylet(RayletOptions options)
    : options_(std::move(options)),
      node_id_(NodeId::FromRandom()),
      start_time_ms_(absl::ToUnixMillis(absl::Now())),
      gcs_(GcsClientOptions{.address = options_.gcs_address, .timeout = absl::Seconds(2)}),
      service_(std::make_unique<Service>(node_id_)),
      loop_(std::make_unique<EventLoop>(options_.tick_period, [this] { Tick(); })),
      owners_(std::make_unique<PeerMonitor>(options_.owner_timeout, options_.gcs_address,
                                             options_.gcs_reconnect_timeout)),
      unreported_(std::make_shared<UnreportedDeaths>()),
      lease_service_(std::make_unique<LeaseGrpcService>(*this)),
      bundle_service_(std::make_unique<BundleGrpcService>(*this)) {}

Raylet::~Raylet() { Stop(); }

rpc::NodeInfo Raylet::SelfInfo() const {
  rpc::NodeInfo node;
  node.set_node_id(node_id_.Hex());
  node.set_address(options_.node_ip);
  node.set_raylet_port(port_);
  node.set_hostname(Hostname());
  node.set_is_head(options_.is_head);
  node.set_scheduling_disabled(options_.scheduling_disabled);
  options_.resources.ToProto(node.mutable_resources_total());
  options_.resources.ToProto(node.mutable_resources_available());
  for (const auto& [k, v] : options_.labels) (*node.mutable_labels())[k] = v;
  node.set_start_time_ms(start_time_ms_);
  node.set_session_dir(options_.session_dir);
  node.set_raylet_pid(getpid());
  node.set_object_manager_port(port_);
  node.set_object_store_socket(store_socket_);
  return node;
}

absl::Status Raylet::Register(const GcsClient& gcs) {
  absl::Status s = gcs.RegisterNode(SelfInfo());
  // This node's id is its own (random, never reused): a GCS that knows it alive either kept it
  // through a restart (persistent storage) or took an earlier try of this same call.
  if (absl::IsAlreadyExists(s)) {
    spdlog::info("the GCS knows this node as alive already: {}", std::string(s.message()));
    return absl::OkStatus();
  }
  return s;
}

namespace {

// Where store sockets go when the session directory is too deep for a Unix socket path.
constexpr char kShortSocketDir[] = "/tmp/shoal-sockets";

// Removes sockets in `dir` that nobody listens on any more (left by raylets that were killed).
void RemoveStaleSockets(const std::string& dir) {
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(dir, ec)) {
    if (!entry.is_socket(ec)) continue;
    const std::string path = entry.path().string();
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return;
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::strncpy(addr.sun_path, path.c_str(), sizeof(addr.sun_path) - 1);
    const bool refused = connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 && errno == ECONNREFUSED;
    close(fd);
    if (refused) std::filesystem::remove(entry.path(), ec);
  }
}

}  // namespace

absl::Status Raylet::StartObjectStore() {
  // A Unix socket path must fit in sun_path (108 bytes); deep session dirs fall back to /tmp.
  store_socket_ = options_.store_socket;
  if (store_socket_.empty()) {
    store_socket_ = options_.session_dir + "/sockets/object_store";
    if (store_socket_.size() > 100) {
      RemoveStaleSockets(kShortSocketDir);
      store_socket_ = absl::StrCat(kShortSocketDir, "/store-", node_id_.Hex().substr(0, 16));
    }
  }
  std::string spill_dir = options_.spill_dir.empty() ? options_.session_dir + "/spill" : options_.spill_dir;
  const uint64_t capacity = static_cast<uint64_t>(options_.resources.Get(kObjectStoreMemory).ToDouble());
  store_ = std::make_unique<StoreServer>(
      StoreServerOptions{.socket_path = store_socket_, .capacity = capacity, .spill_dir = spill_dir});
  if (auto s = store_->Start(); !s.ok()) {
    return absl::Status(s.code(), absl::StrCat("object store: ", s.message()));
  }
  auto client = ObjectStoreClient::Connect(store_socket_);
  if (!client.ok()) return client.status();
  store_client_ = *std::move(client);
  // Pulls go over plain sockets to holders that serve them (object_socket.h), over gRPC to the
  // others. This node serves them unless TLS is on (the sockets are not encrypted) or --port
  // fixed its port (the socket's would not keep to it). SHOAL_OBJECT_TRANSFER=grpc turns both
  // off (to compare).
  const char* transfer = std::getenv("SHOAL_OBJECT_TRANSFER");
  const std::string mode = transfer == nullptr ? "socket" : transfer;
  if (mode != "socket" && mode != "grpc") {
    return absl::InvalidArgumentError(
        absl::StrCat("SHOAL_OBJECT_TRANSFER must be 'socket' or 'grpc', got '", mode, "'"));
  }
  std::unique_ptr<ObjectTransferClient> transfer_client = MakeGrpcObjectTransferClient();
  if (mode == "socket") {
    transfer_client = MakeSocketObjectTransferClient(GrpcTransferPortLookup(), std::move(transfer_client));
  }
  object_manager_ = std::make_unique<ObjectManager>(*store_client_, std::move(transfer_client), ObjectManagerOptions{});
  if (mode == "socket" && !CurrentTlsFiles().enabled() && options_.port == 0) {
    object_sockets_ = std::make_unique<ObjectSocketServer>(*store_client_);
    absl::StatusOr<int> port = object_sockets_->Start(options_.node_ip);
    if (port.ok()) {
      object_manager_->set_socket_port(*port);
    } else {
      spdlog::warn("this node serves object pulls over gRPC only: {}", port.status().ToString());
      object_sockets_.reset();
    }
  }
  spdlog::info("object store: {} bytes at {}, spilling to {}", capacity, store_socket_, spill_dir);
  return absl::OkStatus();
}

absl::Status Raylet::Start() {
  // The workers this node starts inherit its environment and would each refuse a bad budget.
  if (auto s = SpinBudgetFromEnvironment().status(); !s.ok()) return s;
  if (auto s = StartObjectStore(); !s.ok()) return s;
  grpc::ServerBuilder builder;
  builder.RegisterService(service_.get());
  builder.RegisterService(object_manager_.get());
  builder.RegisterService(lease_service_.get());
  builder.RegisterService(bundle_service_.get());
  builder.SetMaxSendMessageSize(64 << 20);
  builder.SetMaxReceiveMessageSize(64 << 20);
  auto server = StartServer(builder, options_.node_ip, options_.port, &port_);
  if (!server.ok()) return server.status();
  server_ = *std::move(server);
  // Lease calls that arrive before the loop starts wait in its queue.
  StartLeasing();

  // The GcsClient tries again until gcs_connect_timeout while no GCS answers.
  if (absl::Status s = Register(gcs_.WithTimeout(options_.gcs_connect_timeout)); !s.ok()) {
    StopServing();
    if (absl::IsUnavailable(s)) return s;
    return absl::Status(s.code(), absl::StrCat("the GCS at ", options_.gcs_address, " refused this node: ", s.message()));
  }
  registered_ = true;
  spdlog::info("node {} registered with the GCS at {}; serving on {}:{}; resources {}", node_id_.Hex(),
               options_.gcs_address, options_.node_ip, port_, options_.resources.ToString());
  RefreshClusterView();
  reporter_ = std::thread([this] { ReportLoop(); });
  return absl::OkStatus();
}

void Raylet::StartLeasing() {
  const int64_t cpus = std::max<int64_t>(1, options_.resources.Get(kCPU).units() / FixedPoint::kScale);
  WorkerPoolOptions pool{.node_id = node_id_,
                         .node_ip = options_.node_ip,
                         .raylet_address = absl::StrCat(options_.node_ip, ":", port_),
                         .gcs_address = options_.gcs_address,
                         .store_socket = store_socket_,
                         .session_dir = options_.session_dir,
                         .min_worker_port = options_.min_worker_port,
                         .max_worker_port = options_.max_worker_port,
                         .max_starting = static_cast<int>(
                             options_.max_starting_workers > 0 ? options_.max_starting_workers : cpus),
                         .max_idle = static_cast<int>(options_.max_idle_workers >= 0 ? options_.max_idle_workers : cpus),
                         .idle_timeout = options_.worker_idle_timeout,
                         .start_timeout = options_.worker_start_timeout,
                         .extra_env = options_.worker_env};
  pool_ = std::make_unique<WorkerPool>(spawner_, clock_, std::move(pool));
  RuntimeEnvAgentOptions envs;
  envs.root_dir = (std::filesystem::path(options_.session_dir) / "runtime_resources").string();
  envs.fetch_package = [gcs = gcs_.WithTimeout(absl::Seconds(30))](const std::string& uri) {
    return GetPackage(PackageKvOf(gcs), uri);
  };
  envs.on_change = [this] { loop_->Post([this] { leases_->Reschedule(); }); };
  envs.max_unused_envs = options_.runtime_env_max_unused_envs;
  envs.max_unused_packages = options_.runtime_env_max_unused_packages;
  runtime_envs_ = std::make_unique<RuntimeEnvAgent>(clock_, std::move(envs));
  // Programs in the packages this raylet unpacked itself (a job's working_dir or py_modules,
  // from the cluster's authenticated package store) may run as workers too.
  WorkerCommandPolicyOptions commands = options_.worker_commands;
  commands.program_dirs.push_back(
      (std::filesystem::path(options_.session_dir) / "runtime_resources" / "packages").string());
  worker_commands_ = std::make_unique<WorkerCommandPolicy>(commands);
  LeaseManagerOptions leases;
  leases.runtime_envs = runtime_envs_.get();
  leases.worker_commands = worker_commands_.get();
  leases.node_id = node_id_;
  leases.resources = options_.resources;
  leases.labels = options_.labels;
  leases.is_head = options_.is_head;
  leases.scheduling_disabled = options_.scheduling_disabled;
  leases.on_leased_worker_death = [this](const WorkerId& worker, const std::string& reason, bool owner_gone) {
    ReportWorkerDeath(worker, reason, owner_gone);
  };
  leases_ = std::make_unique<LeaseManager>(*pool_, std::make_unique<HybridSchedulingPolicy>(), std::move(leases));
  bundles_ = std::make_unique<BundleManager>(*leases_, node_id_);
  MemoryMonitorOptions memory = options_.memory_monitor;
  memory.node_name = absl::StrCat("node ", node_id_.Hex(), " (", options_.node_ip, ")");
  memory_monitor_ = std::make_unique<MemoryMonitor>(memory_reader_, clock_, std::move(memory));
  if (!memory_monitor_->enabled()) {
    spdlog::info("memory monitor: disabled");
  } else if (absl::StatusOr<MemorySnapshot> now = memory_reader_.Read(); now.ok()) {
    spdlog::info("memory monitor: kills a leased worker above {} of {} (threshold {}, from {}); now {}",
                 FormatBytes(memory_monitor_->ThresholdBytes(now->total_bytes)), FormatBytes(now->total_bytes),
                 options_.memory_monitor.usage_threshold, now->source, FormatBytes(now->used_bytes));
  } else {
    spdlog::warn("memory monitor: {}", now.status().ToString());
  }
  loop_->Start();
}

void Raylet::Tick() {
  leases_->Tick();
  std::set<std::string> live_envs;
  for (const auto& [id, worker] : pool_->workers()) {
    if (!worker.key.env_key.empty()) live_envs.insert(worker.key.env_key);
  }
  runtime_envs_->Tick(live_envs);
  std::optional<MemoryMonitor::Kill> kill = memory_monitor_->Tick(
      [this] { return leases_->LeasedWorkers(); }, [this](int64_t pid) { return pool_->Exiting(pid); });
  if (kill) {
    spdlog::warn("{}", kill->message);
    if (absl::Status s = leases_->KillLeasedWorker(kill->victim.worker, MakeError(rpc::OUT_OF_MEMORY, kill->message));
        !s.ok()) {
      spdlog::warn("memory monitor: {}", s.ToString());
    }
  }
  const absl::Time now = clock_.Now();
  if (now - last_owner_check_ < absl::Milliseconds(500)) return;
  last_owner_check_ = now;
  for (const std::string& owner : owners_->Check(leases_->LeaseOwners(), now)) {
    int ended = leases_->ReleaseLeasesOfOwner(owner, "is unreachable");
    spdlog::warn("lease owner {} is unreachable: ended its {} lease(s)", owner, ended);
  }
}

void Raylet::SendWorkerDeath(const GcsClient& gcs, const std::shared_ptr<UnreportedDeaths>& unreported,
                             rpc::ReportWorkerDeathRequest death) {
  rpc::ReportWorkerDeathRequest copy = death;
  gcs.WithTimeout(absl::Seconds(5))
      .AsyncReportWorkerDeath(std::move(death), [unreported, copy = std::move(copy)](absl::Status s) mutable {
        if (s.ok()) return;
        const bool retry = absl::IsUnavailable(s) || absl::IsDeadlineExceeded(s);
        const std::string worker = copy.worker_id();
        if (retry && unreported->Keep(std::move(copy))) {
          spdlog::warn("could not report the death of worker {} to the GCS ({}); will tell it again", worker,
                       s.ToString());
        } else {
          spdlog::warn("could not report the death of worker {} to the GCS: {}", worker, s.ToString());
        }
      });
}

void Raylet::ReportWorkerDeath(const WorkerId& worker, const std::string& reason, bool owner_gone) {
  rpc::ReportWorkerDeathRequest request;
  request.set_node_id(node_id_.Hex());
  request.set_worker_id(worker.Hex());
  request.set_reason(reason);
  request.set_owner_gone(owner_gone);
  SendWorkerDeath(gcs_, unreported_, std::move(request));
}

void Raylet::ReportUnreportedDeaths() {
  for (rpc::ReportWorkerDeathRequest& death : unreported_->TakeAll()) {
    SendWorkerDeath(gcs_, unreported_, std::move(death));
  }
}

void Raylet::RefreshClusterView() {
  absl::StatusOr<std::vector<rpc::NodeInfo>> nodes = gcs_.GetAllNodeInfo(/*alive_only=*/false);
  if (!nodes.ok()) {
    spdlog::warn("cannot read the node table from the GCS: {}", nodes.status().ToString());
    return;
  }
  loop_->Post([this, nodes = *std::move(nodes)]() mutable { leases_->UpdateClusterView(std::move(nodes)); });
}

void Raylet::StopServing() {
  // Waiting requests are answered first, and new ones refused, so that the server's shutdown
  // finds no call left unfinished.
  if (leases_ != nullptr) {
    loop_->RunSync([this] { leases_->Shutdown(absl::UnavailableError("the raylet is stopping")); });
  }
  if (server_ != nullptr) server_->Shutdown(absl::ToChronoTime(absl::Now() + absl::Seconds(1)));
  loop_->Stop();
  bundles_.reset();
  leases_.reset();
  runtime_envs_.reset();  // kills pip installs in progress; its late posts to the loop are refused
  pool_.reset();  // kills the workers
}

void Raylet::ReportLoop() {
  bool registered = true;
  int64_t reports = 0;
  while (WaitToReport()) {
    if (!registered) {
      absl::Status s = Register(gcs_);
      if (s.ok()) {
        spdlog::info("registered again with the GCS at {}", options_.gcs_address);
        registered = true;
      } else if (absl::IsFailedPrecondition(s)) {
        Fail(absl::StrCat("the GCS will not take this node back: ", s.message()));
        return;
      }
      continue;
    }
    rpc::ReportResourcesRequest req;
    req.set_node_id(node_id_.Hex());
    bool snapshot = loop_->RunSync([this, &req] {
      leases_->Available().ToProto(req.mutable_resources_available());
      leases_->resources().total().ToProto(req.mutable_resources_total());
      if (const ResourceInstances* gpus = leases_->resources().Instances(kGPU)) {
        for (FixedPoint share : gpus->free()) req.add_gpu_free(share.units());
      }
      for (const DemandSummary& d : leases_->Demands()) {
        rpc::ResourceDemand* demand = req.add_demands();
        d.shape.ToProto(demand->mutable_shape());
        demand->set_count(d.count);
        demand->set_infeasible(d.infeasible);
        demand->mutable_label_selector()->insert(d.label_selector.begin(), d.label_selector.end());
      }
    });
    if (!snapshot) return;  // stopping
    absl::StatusOr<bool> known = gcs_.ReportResources(req);
    if (!known.ok()) {
      spdlog::warn("lost the GCS at {} ({}); will register again when it answers", options_.gcs_address,
                   known.status().ToString());
      registered = false;
    } else if (!*known) {
      spdlog::warn("the GCS does not know this node as alive; registering again");
      registered = false;
      absl::Status r = Register(gcs_);
      if (r.ok()) {
        registered = true;
      } else if (absl::IsFailedPrecondition(r)) {
        Fail(absl::StrCat("the GCS will not take this node back: ", r.message()));
        return;
      }
    }
    if (registered) {
      ReportUnreportedDeaths();
      RefreshClusterView();
      if (++reports % 2 == 0) KillIdleWorkersOfFinishedJobs();
    }
  }
}

void Raylet::KillIdleWorkersOfFinishedJobs() {
  // A worker serves one job only: once its job has finished, an idle one is of no more use (and
  // would keep its runtime environment in use).
  std::set<JobId> idle_jobs;
  if (!loop_->RunSync([&] {
        for (const auto& [id, worker] : pool_->workers()) {
          if (worker.state == WorkerPool::State::kIdle) idle_jobs.insert(worker.key.job);
        }
      })) {
    return;
  }
  if (idle_jobs.empty()) return;
  absl::StatusOr<std::vector<rpc::JobInfo>> jobs = gcs_.GetAllJobInfo();
  if (!jobs.ok()) return;
  std::set<JobId> finished;
  for (const rpc::JobInfo& job : *jobs) {
    absl::StatusOr<JobId> id = JobId::FromHex(job.job_id());
    if (job.is_dead() && id.ok() && idle_jobs.contains(*id)) finished.insert(*id);
  }
  if (finished.empty()) return;
  loop_->Post([this, finished = std::move(finished)] {
    std::vector<WorkerId> doomed;
    for (const auto& [id, worker] : pool_->workers()) {
      if (worker.state == WorkerPool::State::kIdle && finished.contains(worker.key.job)) doomed.push_back(id);
    }
    for (const WorkerId& id : doomed) (void)pool_->KillWorker(id, "its job has finished");
    if (!doomed.empty()) spdlog::info("killed {} idle worker(s) of finished jobs", doomed.size());
  });
}

void Raylet::ReportSoon() {
  absl::MutexLock lock(&report_mu_);
  report_soon_ = true;
}

bool Raylet::ReportDue() const {
  return report_soon_ || stop_.HasBeenNotified();
}

bool Raylet::WaitToReport() {
  absl::Duration gap;
  {
    absl::MutexLock lock(&report_mu_);
    report_mu_.AwaitWithTimeout(absl::Condition(this, &Raylet::ReportDue), options_.report_period);
    // Changes that come in bursts (every bundle of many placement groups prepared, committed and
    // returned) are reported together: a report asked for soon after the last one waits out
    // kMinReportGap, so the GCS gets one report (and this node one cluster view) per burst.
    gap = report_soon_ ? kMinReportGap - (absl::Now() - last_report_) : absl::ZeroDuration();
  }
  if (gap > absl::ZeroDuration()) stop_.WaitForNotificationWithTimeout(gap);
  absl::MutexLock lock(&report_mu_);
  report_soon_ = false;
  last_report_ = absl::Now();
  return !stop_.HasBeenNotified();
}

void Raylet::Fail(const std::string& error) {
  {
    absl::MutexLock lock(&mu_);
    fatal_error_ = error;
  }
  spdlog::error("{}", error);
  if (!fatal_.HasBeenNotified()) fatal_.Notify();
}

std::string Raylet::fatal_error() const {
  absl::MutexLock lock(&mu_);
  return fatal_error_;
}

void Raylet::Stop() {
  if (stopped_.exchange(true)) return;
  if (!stop_.HasBeenNotified()) stop_.Notify();
  { absl::MutexLock wake(&report_mu_); }  // the reporter's wait sees stop_ when the lock is released
  if (reporter_.joinable()) reporter_.join();
  if (registered_ && fatal_error().empty()) {
    absl::Status s = gcs_.UnregisterNode(node_id_, "raylet stopped by signal");
    if (!s.ok()) spdlog::warn("could not unregister from the GCS: {}", s.ToString());
  }
  StopServing();
  if (object_sockets_) object_sockets_->Stop();
  object_manager_.reset();
  store_client_.reset();
  if (store_) store_->Stop();
  spdlog::info("raylet stopped");
}

}  // namespace shoal
