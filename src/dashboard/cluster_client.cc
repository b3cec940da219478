// gRPC calls to the GCS and raylets; see cluster_client.h.
#include "src/common/auth.h"
#include "src/dashboard/cluster_client.h"

#include "src/dashboard/entrypoint_runner.h"

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
  *request.mutable_runtime_env() = options.runtime_env;
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
      waiting_at_ = address;
    }
    rpc::RequestWorkerLeaseReply reply;
    grpc::Status s = stub->RequestWorkerLease(&context, request, &reply);
    {
      absl::MutexLock lock(&mu_);
      waiting_ = nullptr;
      waiting_at_.clear();
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
        holder_address_ = reply.worker_address();
        gpus_ = reply.gpus();
        return absl::OkStatus();
      case rpc::RequestWorkerLeaseReply::SPILLBACK:
        address = reply.spillback_raylet_address();
        node_id_ = reply.spillback_node_id();
        request.set_grant_or_reject(true);
        continue;
      default:
        if (reply.failure().type() == rpc::RUNTIME_ENV_SETUP_FAILED) {
          return absl::FailedPreconditionError(reply.failure().message());
        }
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

std::string ResourceReservation::WaitingAt() {
  absl::MutexLock lock(&mu_);
  return waiting_at_;
}

std::string ResourceReservation::DescribeHolder() const {
  return absl::StrCat("lease ", lease_id_, " at raylet ", raylet_address_);
}

int RunLeaseHolder(int argc, char** argv) {
  // --owner-pid PID: the entrypoint runs elsewhere (on the head, next to the dashboard PID);
  // this holder only holds the resources, until killed or until that process is gone.
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
  // Its calls carry the token the raylet passed on, as a worker's do; its service checks it.
  if (const char* token = std::getenv(kAuthTokenEnv); token != nullptr) SetClusterToken(token);
  KeepGrpcInitialized();
  EntrypointRunner runner;
  grpc::ServerBuilder builder;
  builder.RegisterService(&runner);
  int port = 0;
  const std::string host = node_ip != nullptr && *node_ip != '\0' ? node_ip : "127.0.0.1";
  absl::StatusOr<std::unique_ptr<grpc::Server>> server = StartServer(builder, host, 0, &port);
  if (!server.ok()) {
    ReportFatal(absl::StrCat("the lease holder cannot serve: ", server.status().message()));
    return 1;
  }
  auto stub = rpc::LeaseService::NewStub(MakeChannel(raylet));
  rpc::RegisterWorkerRequest request;
  request.set_worker_id(worker_id);
  request.set_port(port);
  request.set_pid(getpid());
  rpc::RegisterWorkerReply reply;
  if (absl::Status s = UnaryCall(*stub, &rpc::LeaseService::Stub::RegisterWorker, request, &reply,
                                 {.timeout = absl::Seconds(30)});
      !s.ok()) {
    ReportFatal(absl::StrCat("cannot register with the raylet at ", raylet, ": ", s.message()));
    return 1;
  }
  // Until the raylet kills this process (the lease was returned), the entrypoint has run, or
  // none came (the dashboard that asked for this lease is gone).
  const absl::Time give_up = absl::Now() + absl::Minutes(10);
  while (!runner.finished()) {
    if (owner_pid > 0 ? kill(static_cast<pid_t>(owner_pid), 0) != 0 : !runner.started() && absl::Now() > give_up) {
      break;
    }
    absl::SleepFor(absl::Milliseconds(200));
  }
  (*server)->Shutdown(absl::ToChronoTime(absl::Now() + absl::Seconds(2)));
  return 0;
}

}  // namespace shoal::dashboard
