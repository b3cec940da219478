#include "src/raylet/raylet.h"

#include <unistd.h>

#include "absl/strings/str_cat.h"
#include "shoal/raylet.grpc.pb.h"
#include "spdlog/spdlog.h"
#include "src/common/rpc.h"
#include "src/common/system.h"

namespace shoal {

class Raylet::Service final : public rpc::NodeManagerService::Service {
 public:
  explicit Service(const NodeId& id) : id_hex_(id.Hex()) {}
  grpc::Status HealthCheck(grpc::ServerContext*, const rpc::HealthCheckRequest*,
                           rpc::HealthCheckReply* reply) override {
    reply->set_node_id(id_hex_);
    return grpc::Status::OK;
  }

 private:
  const std::string id_hex_;
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
      gcs_(rpc::NodeInfoService::NewStub(MakeChannel(options_.gcs_address))),
      service_(std::make_unique<Service>(node_id_)) {}

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

absl::Status Raylet::Register(absl::Duration rpc_timeout) {
  grpc::ClientContext ctx;
  ctx.set_deadline(absl::ToChronoTime(absl::Now() + rpc_timeout));
  rpc::RegisterNodeRequest req;
  *req.mutable_node() = SelfInfo();
  rpc::RegisterNodeReply reply;
  return FromGrpcStatus(gcs_->RegisterNode(&ctx, req, &reply));
}

absl::Status Raylet::StartObjectStore() {
  // A Unix socket path must fit in sun_path (108 bytes); deep session dirs fall back to /tmp.
  store_socket_ = options_.store_socket;
  if (store_socket_.empty()) {
    store_socket_ = options_.session_dir + "/sockets/object_store";
    if (store_socket_.size() > 100) store_socket_ = absl::StrCat("/tmp/shoal-store-", node_id_.Hex().substr(0, 16));
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
  object_manager_ = std::make_unique<ObjectManager>(*store_client_, ObjectManagerOptions{});
  spdlog::info("object store: {} bytes at {}, spilling to {}", capacity, store_socket_, spill_dir);
  return absl::OkStatus();
}

absl::Status Raylet::Start() {
  if (auto s = StartObjectStore(); !s.ok()) return s;
  grpc::ServerBuilder builder;
  builder.RegisterService(service_.get());
  builder.RegisterService(object_manager_.get());
  builder.SetMaxSendMessageSize(64 << 20);
  builder.SetMaxReceiveMessageSize(64 << 20);
  auto server = StartServer(builder, options_.node_ip, options_.port, &port_);
  if (!server.ok()) return server.status();
  server_ = *std::move(server);

  const absl::Time deadline = absl::Now() + options_.gcs_connect_timeout;
  absl::Status last;
  while (true) {
    last = Register(std::min(absl::Seconds(2), std::max(deadline - absl::Now(), absl::Milliseconds(100))));
    if (last.ok()) break;
    bool retry = absl::IsUnavailable(last) || absl::IsDeadlineExceeded(last);
    if (!retry || absl::Now() >= deadline) {
      server_->Shutdown();
      if (retry) {
        return absl::UnavailableError(absl::StrCat("no GCS answered at ", options_.gcs_address, " within ",
                                                   absl::FormatDuration(options_.gcs_connect_timeout),
                                                   ": ", last.message()));
      }
      return absl::Status(last.code(), absl::StrCat("the GCS at ", options_.gcs_address,
                                                    " refused this node: ", last.message()));
    }
    absl::SleepFor(absl::Milliseconds(200));
  }
  registered_ = true;
  spdlog::info("node {} registered with the GCS at {}; serving on {}:{}; resources {}", node_id_.Hex(),
               options_.gcs_address, options_.node_ip, port_, options_.resources.ToString());
  reporter_ = std::thread([this] { ReportLoop(); });
  return absl::OkStatus();
}

void Raylet::ReportLoop() {
  bool registered = true;
  while (!stop_.WaitForNotificationWithTimeout(options_.report_period)) {
    if (!registered) {
      absl::Status s = Register(absl::Seconds(2));
      if (s.ok()) {
        spdlog::info("registered again with the GCS at {}", options_.gcs_address);
        registered = true;
      } else if (absl::IsFailedPrecondition(s)) {
        Fail(absl::StrCat("the GCS will not take this node back: ", s.message()));
        return;
      }
      continue;
    }
    grpc::ClientContext ctx;
    ctx.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(2)));
    rpc::ReportResourcesRequest req;
    req.set_node_id(node_id_.Hex());
    options_.resources.ToProto(req.mutable_resources_available());
    rpc::ReportResourcesReply reply;
    grpc::Status s = gcs_->ReportResources(&ctx, req, &reply);
    if (!s.ok()) {
      spdlog::warn("lost the GCS at {} ({}); will register again when it answers", options_.gcs_address,
                   s.error_message());
      registered = false;
    } else if (!reply.known()) {
      spdlog::warn("the GCS does not know this node as alive; registering again");
      registered = false;
      absl::Status r = Register(absl::Seconds(2));
      if (r.ok()) {
        registered = true;
      } else if (absl::IsFailedPrecondition(r)) {
        Fail(absl::StrCat("the GCS will not take this node back: ", r.message()));
        return;
      }
    }
  }
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
  if (reporter_.joinable()) reporter_.join();
  if (registered_ && fatal_error().empty()) {
    grpc::ClientContext ctx;
    ctx.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(2)));
    rpc::UnregisterNodeRequest req;
    req.set_node_id(node_id_.Hex());
    req.set_reason("raylet stopped by signal");
    rpc::UnregisterNodeReply reply;
    grpc::Status s = gcs_->UnregisterNode(&ctx, req, &reply);
    if (!s.ok()) spdlog::warn("could not unregister from the GCS: {}", s.error_message());
  }
  if (server_ != nullptr) server_->Shutdown(absl::ToChronoTime(absl::Now() + absl::Seconds(1)));
  object_manager_.reset();
  store_client_.reset();
  if (store_) store_->Stop();
  spdlog::info("raylet stopped");
}

}  // namespace shoal
