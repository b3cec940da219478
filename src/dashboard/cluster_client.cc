// gRPC calls to the GCS and raylets; see cluster_client.h.
#include "src/common/auth.h"
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
#include "src/gcs_client/node_stats.h"

namespace shoal::dashboard {
namespace {

constexpr absl::Duration kGcsTimeout = absl::Seconds(10);
constexpr absl::Duration kReturnTimeout = absl::Seconds(5);
constexpr int kReturnAttempts = 3;

}  // namespace

ClusterClient::ClusterClient(const std::string& gcs_address)
    : gcs_(GcsClientOptions{.address = gcs_address, .timeout = kGcsTimeout}) {}

std::map<std::string, rpc::GetNodeStatsReply> ClusterClient::NodeStats(const rpc::GetClusterStatusReply& status,
                                                                       absl::Duration timeout) {
  return FetchNodeStats({status.nodes().begin(), status.nodes().end()}, timeout, raylets_);
}

absl::StatusOr<rpc::GetAllPlacementGroupReply> ClusterClient::PlacementGroups(int32_t limit, absl::Duration timeout) {
  rpc::GetAllPlacementGroupRequest request;
  request.set_limit(limit);
  rpc::GetAllPlacementGroupReply reply;
  absl::Status s = UnaryCall(*placement_groups_.Get(gcs_address()), &rpc::PlacementGroupService::Stub::GetAllPlacementGroup,
                             request, &reply, {.timeout = timeout});
  if (!s.ok()) return s;
  return reply;
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
    AddClusterToken(context);
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
  absl::Status s;
  for (int attempt = 0; attempt < kReturnAttempts; ++attempt) {
    rpc::ReturnWorkerReply reply;
    s = UnaryCall(*stub, &rpc::LeaseService::Stub::ReturnWorker, request, &reply,
                  {.timeout = kReturnTimeout, .wait_for_ready = true});
    if (s.ok() || absl::IsNotFound(s)) break;
  }
  if (s.ok()) {
    spdlog::info("returned lease {} to {}", lease_id_, raylet_address_);
  } else {
    spdlog::warn("cannot return lease {} to {}: {}", lease_id_, raylet_address_, s.ToString());
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
  // Its RegisterWorker call carries the token the raylet passed on, as a worker's does.
  if (const char* token = std::getenv(kAuthTokenEnv); token != nullptr) SetClusterToken(token);
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
  rpc::RegisterWorkerRequest request;
  request.set_worker_id(worker_id);
  request.set_port(ntohs(addr.sin_port));
  request.set_pid(getpid());
  rpc::RegisterWorkerReply reply;
  if (absl::Status s = UnaryCall(*stub, &rpc::LeaseService::Stub::RegisterWorker, request, &reply,
                                 {.timeout = absl::Seconds(30)});
      !s.ok()) {
    ReportFatal(absl::StrCat("cannot register with the raylet at ", raylet, ": ", s.message()));
    return 1;
  }
  // Held until the raylet kills this process (the lease was returned) or the owner is gone.
  while (owner_pid <= 0 || kill(static_cast<pid_t>(owner_pid), 0) == 0) {
    std::this_thread::sleep_for(std::chrono::seconds(1));
  }
  return 0;
}

}  // namespace shoal::dashboard
