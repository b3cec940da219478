// What the dashboard asks of the cluster over gRPC: the GCS (job records in its KV store, the
// status summary, actors, tasks: through GcsClient), raylet node stats, and resource
// reservations for job entrypoints (worker leases held by a placeholder process; see
// ResourceReservation).
// Threading: every method may be called from any thread.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "shoal/gcs.grpc.pb.h"
#include "shoal/raylet.grpc.pb.h"
#include "src/common/rpc_client.h"
#include "src/gcs_client/gcs_client.h"

namespace shoal::dashboard {

class ClusterClient {
 public:
  // Calls to the GCS wait up to 10 s for it (a restarting GCS gets that long to come back).
  explicit ClusterClient(const std::string& gcs_address);

  const std::string& gcs_address() const { return gcs_.address(); }
  const GcsClient& gcs() const { return gcs_; }
  // GetNodeStats of every alive raylet that answers within `timeout`, by node id.
  std::map<std::string, rpc::GetNodeStatsReply> NodeStats(const rpc::GetClusterStatusReply& status,
                                                           absl::Duration timeout);
  // GetAllPlacementGroup of the GCS (at most `limit`, 0: all), within `timeout`.
  absl::StatusOr<rpc::GetAllPlacementGroupReply> PlacementGroups(int32_t limit, absl::Duration timeout);

 private:
  GcsClient gcs_;
  ChannelCache channels_;
  StubCache<rpc::LeaseService> raylets_{channels_};
  StubCache<rpc::PlacementGroupService> placement_groups_{channels_};
};

// A job entrypoint's resources, held in the cluster for as long as this object lives.
//
// How: the dashboard asks the head raylet for a worker lease of the entrypoint's shape
// (following a spillback to the raylet that has room), with a worker command that starts a
// placeholder: `shoal-dashboard --lease-holder`, which registers with the raylet like any
// worker and then only waits. The raylet's own scheduler therefore decides, queues the request
// while the cluster is busy, and reports it as (infeasible) demand to the GCS, so a job that
// waits shows in `shoal status`. Returning the lease (destructor) kills the placeholder. The
// placeholder serves EntrypointService (entrypoint_runner.h): the job's entrypoint runs there,
// on the node that granted the resources, in the lease's runtime environment.
class ResourceReservation {
 public:
  struct Options {
    std::string head_raylet_address;        // host:port
    std::map<std::string, double> shape;    // e.g. {"GPU": 2}
    std::vector<std::string> worker_command;
    std::string job_id_hex;                 // the lease's job (4-byte JobId, hex)
    rpc::RuntimeEnv runtime_env;            // the placeholder's (and so the entrypoint's)
  };
  ResourceReservation() = default;
  ResourceReservation(const ResourceReservation&) = delete;
  ResourceReservation& operator=(const ResourceReservation&) = delete;
  ~ResourceReservation();

  // Blocks until the lease is granted, the request is rejected (InvalidArgument), or Cancel()
  // is called (Cancelled). REQUIRES: called once.
  absl::Status Acquire(const Options& options);
  // Gives up a waiting Acquire. Thread-safe; a no-op once granted.
  void Cancel();
  // Returns the lease now (also done by the destructor). Idempotent.
  void Release();
  std::string DescribeHolder() const;  // "node <id> lease <id>" once granted
  // While Acquire waits: the raylet the request waits at (host:port); "" otherwise.
  std::string WaitingAt();
  // Once granted: the placeholder's EntrypointService (host:port) and the lease's GPUs.
  const std::string& holder_address() const { return holder_address_; }
  const rpc::GpuAssignment& gpus() const { return gpus_; }

 private:
  absl::Mutex mu_;
  grpc::ClientContext* waiting_ ABSL_GUARDED_BY(mu_) = nullptr;
  std::string waiting_at_ ABSL_GUARDED_BY(mu_);
  bool cancelled_ ABSL_GUARDED_BY(mu_) = false;
  std::string lease_id_;
  std::string raylet_address_;
  std::string node_id_;
  std::string holder_address_;
  rpc::GpuAssignment gpus_;
};

// Runs as the placeholder worker (`shoal-dashboard --lease-holder [--owner-pid PID]`): serves
// EntrypointService on SHOAL_NODE_IP, registers with SHOAL_RAYLET_ADDRESS, and exits once its
// entrypoint has run, when killed (the lease returned), or when no entrypoint came within 10
// minutes (its dashboard is gone). With --owner-pid (the entrypoint runs on the head, next to
// that dashboard) it only holds, until killed or until that process is gone.
int RunLeaseHolder(int argc, char** argv);

}  // namespace shoal::dashboard
