// gRPC calls to the GCS and raylets; see cluster_client.h.
#include "src/dashboard/cluster_client.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdlib>
#include <thread>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "spdlog/spdlog.h"
#include "src/common/daemon.h"
#include "src/common/resources.h"
#include "src/common/rpc.h"

namespace shoal::dashboard {
namespace {

constexpr absl::Duration kKvTimeout = absl::Seconds(10);
constexpr absl::Duration kReturnTimeout = absl::Seconds(5);
constexpr int kReturnAttempts = 3;

void SetDeadline(grpc::ClientContext& context, absl::Duration timeout) {
  context.set_deadline(absl::ToChronoTime(absl::Now() + timeout));
}

}  // namespace

ClusterClient::ClusterClient(std::string gcs_address) : gcs_address_(std::move(gcs_address)) {
  std::shared_ptr<grpc::Channel> channel = MakeChannel(gcs_address_);
  kv_ = rpc::KVService::NewStub(channel);
  status_ = rpc::ClusterStatusService::NewStub(channel);
  actors_ = rpc::ActorService::NewStub(channel);
  tasks_ = rpc::TaskEventService::NewStub(channel);
}

absl::StatusOr<rpc::ListActorsReply> ClusterClient::ListActors(int limit, absl::Duration timeout) {
  grpc::ClientContext context;
  SetDeadline(context, timeout);
  rpc::ListActorsRequest request;
  request.set_limit(limit);
  rpc::ListActorsReply reply;
  absl::Status s = FromGrpcStatus(actors_->ListActors(&context, request, &reply));
  if (!s.ok()) return s;
  return reply;
}

absl::StatusOr<rpc::RpcStats> ClusterClient::GcsRpcStats(absl::Duration timeout) {
  grpc::ClientContext context;
  SetDeadline(context, timeout);
  rpc::GetRpcStatsReply reply;
  absl::Status s = FromGrpcStatus(status_->GetRpcStats(&context, rpc::GetRpcStatsRequest(), &reply));
  if (!s.ok()) return s;
  return reply.stats();
}

absl::StatusOr<rpc::ListTasksReply> ClusterClient::ListTasks(int limit, absl::Duration timeout) {
  grpc::ClientContext context;
  SetDeadline(context, timeout);
  rpc::ListTasksRequest request;
  request.set_limit(limit);
  rpc::ListTasksReply reply;
  absl::Status s = FromGrpcStatus(tasks_->ListTasks(&context, request, &reply));
  if (!s.ok()) return s;
  return reply;
}

absl::StatusOr<rpc::GetClusterStatusReply> ClusterClient::ClusterStatus(absl::Duration timeout) {
  grpc::ClientContext context;
  SetDeadline(context, timeout);
  rpc::GetClusterStatusReply reply;
  grpc::Status s = status_->GetClusterStatus(&context, rpc::GetClusterStatusRequest(), &reply);
  if (!s.ok()) return absl::UnavailableError(absl::StrCat("the GCS at ", gcs_address_, " did not answer: ", s.error_message()));
  return reply;
}

absl::Status ClusterClient::KvPut(const std::string& ns, const std::string& key, const std::string& value) {
  grpc::ClientContext context;
  SetDeadline(context, kKvTimeout);
  context.set_wait_for_ready(true);  // a restarting GCS gets the timeout to come back
  rpc::KVPutRequest request;
  request.set_ns(ns);
  request.set_key(key);
  request.set_value(value);
  request.set_overwrite(true);
  rpc::KVPutReply reply;
  return FromGrpcStatus(kv_->Put(&context, request, &reply));
}

absl::StatusOr<std::string> ClusterClient::KvGet(const std::string& ns, const std::string& key) {
  grpc::ClientContext context;
  SetDeadline(context, kKvTimeout);
  context.set_wait_for_ready(true);
  rpc::KVGetRequest request;
  request.set_ns(ns);
  request.set_key(key);
  rpc::KVGetReply reply;
  if (absl::Status s = FromGrpcStatus(kv_->Get(&context, request, &reply)); !s.ok()) return s;
  if (!reply.found()) return absl::NotFoundError(absl::StrCat("no key ", key));
  return reply.value();
}

absl::StatusOr<std::vector<std::string>> ClusterClient::KvKeys(const std::string& ns) {
  grpc::ClientContext context;
  SetDeadline(context, kKvTimeout);
  context.set_wait_for_ready(true);
  rpc::KVKeysRequest request;
  request.set_ns(ns);
  rpc::KVKeysReply reply;
  if (absl::Status s = FromGrpcStatus(kv_->Keys(&context, request, &reply)); !s.ok()) return s;
  return std::vector<std::string>(reply.keys().begin(), reply.keys().end());
}

absl::Status ClusterClient::KvDel(const std::string& ns, const std::string& key) {
  grpc::ClientContext context;
  SetDeadline(context, kKvTimeout);
  context.set_wait_for_ready(true);
  rpc::KVDelRequest request;
  request.set_ns(ns);
  request.set_key(key);
  rpc::KVDelReply reply;
  return FromGrpcStatus(kv_->Del(&context, request, &reply));
}

std::map<std::string, rpc::GetNodeStatsReply> ClusterClient::NodeStats(const rpc::GetClusterStatusReply& status,
                                                                       absl::Duration timeout) {
  std::map<std::string, rpc::GetNodeStatsReply> out;
  for (const rpc::NodeInfo& node : status.nodes()) {
    if (node.state() != rpc::NodeInfo::ALIVE) continue;
    auto stub = rpc::LeaseService::NewStub(MakeChannel(absl::StrCat(node.address(), ":", node.raylet_port())));
    grpc::ClientContext context;
    SetDeadline(context, timeout);
    rpc::GetNodeStatsReply reply;
    if (stub->GetNodeStats(&context, rpc::GetNodeStatsRequest(), &reply).ok()) out[node.node_id()] = reply;
  }
  return out;
}

ResourceReservation::~ResourceReservation() { Release(); }

absl::Status ResourceReservation::Acquire(const Options& options) {
  absl::StatusOr<ResourceSet> shape = ResourceSet::FromDoubles(options.shape);
  if (!shape.ok()) return absl::InvalidArgumentError(absl::StrCat("entrypoint resources: ", shape.status().message()));
  rpc::RequestWorkerLeaseRequest request;
  shape->ToProto(request.mutable_resources());
  request.set_job_id(options.job_id_hex);
  for (const std::string& arg : options.worker_command) request.add_worker_command(arg);
  std::string address = options.head_raylet_address;
  for (int hops = 0; hops < 8; ++hops) {
    auto stub = rpc::LeaseService::NewStub(MakeChannel(address));
    grpc::ClientContext context;
    context.set_wait_for_ready(true);
    {
      absl::MutexLock lock(&mu_);
      if (cancelled_) return absl::CancelledError("the job was stopped while it waited for resources");
      waiting_ = &context;
    }
    rpc::RequestWorkerLeaseReply reply;
    grpc::Status s = stub->RequestWorkerLease(&context, request, &reply);
    {
      absl::MutexLock lock(&mu_);
      waiting_ = nullptr;
      if (cancelled_) {
        // Granted just as it was cancelled: give it back.
        if (s.ok() && reply.kind() == rpc::RequestWorkerLeaseReply::GRANTED) {
          lease_id_ = reply.lease_id();
          raylet_address_ = address;
        }
        Release();
        return absl::CancelledError("the job was stopped while it waited for resources");
      }
    }
    if (!s.ok()) return absl::UnavailableError(absl::StrCat("the raylet at ", address, " failed: ", s.error_message()));
    switch (reply.kind()) {
      case rpc::RequestWorkerLeaseReply::GRANTED:
        lease_id_ = reply.lease_id();
        raylet_address_ = address;
        return absl::OkStatus();
      case rpc::RequestWorkerLeaseReply::SPILLBACK:
        address = reply.spillback_raylet_address();
        node_id_ = reply.spillback_node_id();
        request.set_grant_or_reject(true);
        continue;
      default:
        return absl::InvalidArgumentError(absl::StrCat("the raylet rejected the entrypoint's resources: ", reply.message()));
    }
  }
  return absl::UnavailableError("the entrypoint's lease request was spilled back too many times");
}

void ResourceReservation::Cancel() {
  absl::MutexLock lock(&mu_);
  cancelled_ = true;
  if (waiting_ != nullptr) waiting_->TryCancel();
}

void ResourceReservation::Release() {
  if (lease_id_.empty()) return;
  auto stub = rpc::LeaseService::NewStub(MakeChannel(raylet_address_));
  rpc::ReturnWorkerRequest request;
  request.set_lease_id(lease_id_);
  request.set_worker_failed(true);  // ends the placeholder; it never serves anything else
  // A loaded raylet may be slow to answer: try a few times, since a lease not returned keeps
  // the job's resources taken until the dashboard exits (its placeholder then exits too).
  grpc::Status s;
  for (int attempt = 0; attempt < kReturnAttempts; ++attempt) {
    grpc::ClientContext context;
    SetDeadline(context, kReturnTimeout);
    context.set_wait_for_ready(true);
    rpc::ReturnWorkerReply reply;
    s = stub->ReturnWorker(&context, request, &reply);
    if (s.ok() || s.error_code() == grpc::StatusCode::NOT_FOUND) break;
  }
  if (s.ok()) {
    spdlog::info("returned lease {} to {}", lease_id_, raylet_address_);
  } else {
    spdlog::warn("cannot return lease {} to {}: {}", lease_id_, raylet_address_, s.error_message());
  }
  lease_id_.clear();
}

std::string ResourceReservation::DescribeHolder() const {
  return absl::StrCat("lease ", lease_id_, " at raylet ", raylet_address_);
}

int RunLeaseHolder(int argc, char** argv) {
  int64_t owner_pid = 0;
  for (int i = 1; i + 1 < argc; ++i) {
    if (std::string(argv[i]) == "--owner-pid") (void)absl::SimpleAtoi(argv[i + 1], &owner_pid);
  }
  const char* worker_id = std::getenv("SHOAL_WORKER_ID");
  const char* raylet = std::getenv("SHOAL_RAYLET_ADDRESS");
  const char* node_ip = std::getenv("SHOAL_NODE_IP");
  if (worker_id == nullptr || raylet == nullptr) {
    ReportFatal("--lease-holder runs only as a worker started by a raylet (SHOAL_WORKER_ID, SHOAL_RAYLET_ADDRESS)");
    return 2;
  }
  // The raylet wants a port; nothing connects to it, but it is a real, bound one.
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = 0;
  if (inet_pton(AF_INET, node_ip != nullptr ? node_ip : "127.0.0.1", &addr.sin_addr) != 1) {
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  }
  socklen_t len = sizeof(addr);
  if (fd < 0 || bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 || listen(fd, 1) != 0 ||
      getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    ReportFatal("the lease holder cannot bind a port");
    return 1;
  }
  auto stub = rpc::LeaseService::NewStub(MakeChannel(raylet));
  grpc::ClientContext context;
  SetDeadline(context, absl::Seconds(30));
  rpc::RegisterWorkerRequest request;
  request.set_worker_id(worker_id);
  request.set_port(ntohs(addr.sin_port));
  request.set_pid(getpid());
  rpc::RegisterWorkerReply reply;
  if (grpc::Status s = stub->RegisterWorker(&context, request, &reply); !s.ok()) {
    ReportFatal(absl::StrCat("cannot register with the raylet at ", raylet, ": ", s.error_message()));
    return 1;
  }
  // Held until the raylet kills this process (the lease was returned) or the owner is gone.
  while (owner_pid <= 0 || kill(static_cast<pid_t>(owner_pid), 0) == 0) {
    std::this_thread::sleep_for(std::chrono::seconds(1));
  }
  return 0;
}

}  // namespace shoal::dashboard
