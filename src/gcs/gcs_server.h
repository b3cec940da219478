// The GCS process: its tables, the actor and placement group managers, the gRPC services over
// them, and the health-check loop, which also watches the drivers of running jobs: a job whose
// driver is gone without saying so (kill -9, a lost node) is finished as if it had, so that its
// actors and placement groups do not outlive it (as Ray's raylets report a driver's exit).
// Threading: gRPC handler threads call into the (thread-safe) tables; one thread runs the
// health checker and the driver watch, another ticks the actor and placement group managers. Start() and Stop() are called from the main
// thread. Calls that wait (SubscribeNodeChanges streams, GetActorInfo long polls) are on gRPC's
// callback API and hold no thread while they wait.
#pragma once

#include <atomic>
#include <memory>
#include <string>
#include <thread>

#include "absl/status/status.h"
#include "grpcpp/grpcpp.h"
#include "src/common/clock.h"
#include "src/common/peer_monitor.h"
#include "src/gcs/actor_grpc.h"
#include "src/gcs/actor_manager.h"
#include "src/gcs/bundle_grpc.h"
#include "src/gcs/gcs_tables.h"
#include "src/gcs/health_checker.h"
#include "src/gcs/placement_group_manager.h"
#include "src/gcs/store_client.h"
#include "src/gcs/task_events.h"

namespace shoal {

struct GcsOptions {
  std::string host = "127.0.0.1";
  int port = 6379;  // 0 picks a free port
  HealthCheckOptions health;
  ActorManagerOptions actors;  // gcs_address is filled in by Start
  PlacementGroupManagerOptions placement_groups;  // on_removed is set by the server
  size_t kv_max_value_bytes = KvStore::kDefaultMaxValueBytes;
  TaskEventLimits task_events;
};

class GcsServer {
 public:
  GcsServer(std::unique_ptr<StoreClient> store, GcsOptions options);
  ~GcsServer();
  GcsServer(const GcsServer&) = delete;
  GcsServer& operator=(const GcsServer&) = delete;

  // Loads the tables from storage, starts serving and health checking.
  absl::Status Start();
  // Stops serving; open subscription streams end. Idempotent.
  void Stop();
  int port() const { return port_; }

  NodeTable& nodes() { return nodes_; }
  ActorManager& actors() { return actors_; }
  PlacementGroupManager& placement_groups() { return placement_groups_; }

 private:
  class Services;
  void HealthLoop();
  void ActorLoop();
  static ActorManagerOptions WithGroupCheck(ActorManagerOptions options, const PlacementGroupManager& groups);
  static PlacementGroupManagerOptions WithRemoval(PlacementGroupManagerOptions options, ActorManager& actors);
  // A finished job's references to runtime-env packages go; packages no job references any
  // more are deleted (not while the job's detached actors live: they may start elsewhere).
  void ReleasePackagesOf(const JobId& job);
  // Marks the job finished; its default-lifetime actors and groups go, and its packages.
  absl::Status FinishJob(const std::string& job_id);
  // Finishes the running jobs whose drivers are found dead (health thread only).
  void CheckDrivers();
  // Marks the node dead in the table and tells the actor and placement group managers.
  absl::Status MarkNodeDead(const NodeId& id, const std::string& reason);

  GcsOptions options_;
  std::unique_ptr<StoreClient> store_;
  RealClock clock_;
  NodeChangeFeed feed_;
  NodeTable nodes_;
  JobTable jobs_;
  KvStore kv_;
  TaskEventTable task_events_;
  std::unique_ptr<HealthCheckTransport> health_transport_;
  HealthChecker health_;
  PeerMonitor drivers_;  // health thread only
  absl::Time last_driver_check_ = absl::InfinitePast();
  // Stop() shuts it down (ending its callbacks into the manager) before the manager goes.
  std::unique_ptr<GrpcActorTransport> actor_transport_;
  ActorManager actors_;
  std::unique_ptr<GrpcBundleClient> bundle_client_;  // shut down in Stop, like the actor transport
  PlacementGroupManager placement_groups_;
  std::unique_ptr<Services> services_;
  std::unique_ptr<ActorGrpcService> actor_service_;
  std::unique_ptr<PlacementGroupGrpcService> placement_group_service_;
  std::unique_ptr<grpc::Server> server_;
  std::thread health_thread_;
  std::thread actor_thread_;
  std::atomic<bool> stopping_{false};
  int64_t start_time_ms_ = 0;
  int port_ = 0;
};

}  // namespace shoal
