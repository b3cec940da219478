// The raylet: one per node. It registers the node with the GCS, keeps the node's resource view
// there fresh, answers health checks, finds a restarted GCS by itself, and unregisters on a
// clean stop. It hosts the node's object store (a StoreServer on a Unix socket) and the object
// manager that moves objects to and from other nodes over the same gRPC server, and grants
// worker leases (LeaseService: LeaseManager + WorkerPool) and reserves placement group bundles
// for the GCS (BundleService: BundleManager).
// Threading: Start() and Stop() on the main thread. The lease manager and worker pool live on
// one event loop thread, which also ticks them (reaping workers, timeouts) and starts every
// worker process; LeaseService is a gRPC callback service whose handlers only post to that loop,
// so a queued lease request holds neither a thread nor a lock; BundleService does the same. One
// reporter thread talks to the GCS: it reports total and available resources and queued demand,
// and feeds the GCS's node table back to the lease manager's cluster view, every report period
// and at once after a BundleService call changed the node's bundles. The loop also runs the memory monitor,
// which kills a leased worker when the node runs low on memory. The deaths of leased workers
// (exits, and kills because a lease's owner died or memory ran low) go to the GCS's
// ActorService as asynchronous calls started from the loop. gRPC threads answer health checks
// and object transfers.
//
// While the GCS is unreachable (killed, restarting): the workers of leases it owns live on for
// gcs_reconnect_timeout (other owners are watched with owner_timeout); worker deaths it could
// not be told of are kept (up to kMaxUnreportedDeaths) and told again once it answers; and the
// raylet registers again, a GCS that restored this node from its storage answering that it is
// registered already.
#pragma once

#include <atomic>
#include <map>
#include <memory>
#include <string>
#include <thread>

#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "grpcpp/grpcpp.h"
#include "shoal/gcs.grpc.pb.h"
#include "src/common/ids.h"
#include "src/common/peer_monitor.h"
#include "src/common/resources.h"
#include "src/gcs_client/gcs_client.h"
#include "src/object_store/client.h"
#include "src/object_store/store_server.h"
#include "src/common/event_loop.h"
#include "src/raylet/bundle_manager.h"
#include "src/raylet/lease_manager.h"
#include "src/raylet/memory_monitor.h"
#include "src/raylet/object_manager.h"
#include "src/raylet/object_socket.h"
#include "src/raylet/process_spawner.h"
#include "src/raylet/runtime_env_agent.h"
#include "src/raylet/worker_pool.h"

namespace shoal {

struct RayletOptions {
  std::string gcs_address;          // host:port
  std::string node_ip = "127.0.0.1";
  int port = 0;                     // 0 picks a free port
  bool is_head = false;
  bool scheduling_disabled = false;
  ResourceSet resources;            // complete: CPU, GPU, memory, custom, node:<ip>
  std::map<std::string, std::string> labels;
  std::string session_dir;
  std::string store_socket;         // empty: <session_dir>/sockets/object_store
  std::string spill_dir;            // empty: <session_dir>/spill
  absl::Duration report_period = absl::Seconds(1);
  absl::Duration gcs_connect_timeout = absl::Seconds(5);
  // Worker pool: idle workers beyond max_idle_workers are killed after worker_idle_timeout;
  // a worker that has not registered within worker_start_timeout is killed. Negative counts
  // mean the node's CPU count (at least 1); max_starting_workers caps concurrent starts.
  absl::Duration worker_idle_timeout = absl::Seconds(10);
  int max_idle_workers = -1;
  absl::Duration worker_start_timeout = absl::Seconds(60);
  int max_starting_workers = -1;
  // How often the event loop reaps workers and checks timeouts.
  absl::Duration tick_period = absl::Milliseconds(100);
  // A lease's owner (a core worker at owner_address) whose address stays unreachable this long
  // is taken for dead: its leases end and their workers are killed.
  absl::Duration owner_timeout = absl::Seconds(10);
  // Kills leased workers when the node's memory use passes a threshold (memory_monitor.h);
  // node_name is filled in by the raylet. The loop's tick_period bounds its refresh period.
  MemoryMonitorOptions memory_monitor;
  int min_worker_port = 0;  // workers listen in this range; 0: any free port
  int max_worker_port = 0;
  // Runtime environments (runtime_env_agent.h) set up under <session_dir>/runtime_resources:
  // this many unused virtualenvs and unused packages are kept for reuse.
  int runtime_env_max_unused_envs = 4;
  int runtime_env_max_unused_packages = 32;
  // The same for leases the GCS owns (detached actors' workers), as Ray's
  // gcs_rpc_server_reconnect_timeout_s: a GCS restarted within it finds those workers alive.
  absl::Duration gcs_reconnect_timeout = absl::Seconds(60);
  // Added to every worker's environment (GPU memory caps: src/raylet/gpu_memory_caps.h).
  std::vector<std::pair<std::string, std::string>> worker_env;
  // The programs lease requests may name (worker_command_policy.h).
  WorkerCommandPolicyOptions worker_commands;
};

class Raylet {
 public:
  explicit Raylet(RayletOptions options);
  ~Raylet();
  Raylet(const Raylet&) = delete;
  Raylet& operator=(const Raylet&) = delete;

  // Starts serving and registers with the GCS, waiting up to gcs_connect_timeout for it.
  // Unavailable if no GCS answers in time; the GCS's own error if it refuses the node.
  absl::Status Start();
  // Unregisters (best effort) and stops serving. Idempotent.
  void Stop();
  // Notified when the raylet cannot go on (the GCS declared this node dead); see fatal_error().
  absl::Notification& fatal() { return fatal_; }
  std::string fatal_error() const;

  const NodeId& node_id() const { return node_id_; }
  int port() const { return port_; }
  const std::string& store_socket() const { return store_socket_; }

 private:
  class Service;
  class LeaseGrpcService;
  class BundleGrpcService;
  rpc::NodeInfo SelfInfo() const;
  // Registers this node with the GCS through `gcs`.
  absl::Status Register(const GcsClient& gcs);
  absl::Status StartObjectStore();
  void StartLeasing();
  // Answers waiting lease requests, stops the server and the event loop, kills the workers.
  void StopServing();
  // Reads the GCS's node table into the lease manager's view. Reporter or main thread.
  void RefreshClusterView();
  void Tick();  // event loop
  // Tells the GCS that a leased worker died (an actor may have lived there); asynchronous,
  // fire and forget. Any thread.
  void ReportWorkerDeath(const WorkerId& worker, const std::string& reason, bool owner_gone);
  // Sends the deaths the GCS did not acknowledge again. Reporter thread.
  void ReportUnreportedDeaths();
  class UnreportedDeaths;
  // Tells the GCS of a worker's death; one it could not be told of (it is unreachable) is kept
  // in `unreported` for the reporter to send again. The GCS's own errors are final.
  static void SendWorkerDeath(const GcsClient& gcs, const std::shared_ptr<UnreportedDeaths>& unreported,
                              rpc::ReportWorkerDeathRequest death);
  void ReportLoop();
  // Reporter thread: kills the idle workers whose job the GCS says has finished.
  void KillIdleWorkersOfFinishedJobs();
  // Wakes the reporter to report now (a bundle changed the node's resources). Any thread.
  void ReportSoon();
  // Waits for the next report (a period, or ReportSoon); false once stopping. Reporter thread.
  bool WaitToReport();
  bool ReportDue() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(report_mu_);
  void Fail(const std::string& error);

  const RayletOptions options_;
  const NodeId node_id_;
  const int64_t start_time_ms_;
  GcsClient gcs_;  // calls of the reporter and at stop: 2 s each
  std::unique_ptr<Service> service_;
  std::string store_socket_;
  std::unique_ptr<StoreServer> store_;
  std::unique_ptr<ObjectStoreClient> store_client_;
  std::unique_ptr<ObjectManager> object_manager_;
  std::unique_ptr<ObjectSocketServer> object_sockets_;  // pulls over plain sockets; null when off
  // Leasing: created in Start once the port is known; loop_ owns the threads that touch them.
  RealClock clock_;
  PosixProcessSpawner spawner_;
  std::unique_ptr<EventLoop> loop_;
  std::unique_ptr<WorkerPool> pool_;
  std::unique_ptr<WorkerCommandPolicy> worker_commands_;
  std::unique_ptr<RuntimeEnvAgent> runtime_envs_;  // Prepare and Tick on the event loop
  std::unique_ptr<LeaseManager> leases_;
  std::unique_ptr<BundleManager> bundles_;  // event loop only
  std::unique_ptr<PeerMonitor> owners_;  // event loop only: the owners of its leases
  SystemMemoryReader memory_reader_;
  std::unique_ptr<MemoryMonitor> memory_monitor_;  // event loop only
  std::shared_ptr<UnreportedDeaths> unreported_;  // shared with the calls in flight
  absl::Time last_owner_check_;           // event loop only
  std::unique_ptr<LeaseGrpcService> lease_service_;
  std::unique_ptr<BundleGrpcService> bundle_service_;
  std::unique_ptr<grpc::Server> server_;
  int port_ = 0;
  std::thread reporter_;
  absl::Notification stop_;
  absl::Notification fatal_;
  absl::Mutex report_mu_;
  bool report_soon_ ABSL_GUARDED_BY(report_mu_) = false;
  absl::Time last_report_ ABSL_GUARDED_BY(report_mu_) = absl::InfinitePast();
  // Reports asked for with ReportSoon come at most this often (see WaitToReport).
  static constexpr absl::Duration kMinReportGap = absl::Milliseconds(10);
  mutable absl::Mutex mu_;
  std::string fatal_error_ ABSL_GUARDED_BY(mu_);
  std::atomic<bool> stopped_{false};
  bool registered_ = false;  // main thread only
};

// Builds the node's resources from flags, detecting what was not given (negative = detect):
// CPU, GPU (whole devices), memory (70% of RAM), object_store_memory (30% of RAM, capped by
// /dev/shm), the `custom` ones, node:<ip> and, on the head, node:__internal_head__.
absl::StatusOr<ResourceSet> NodeResourcesFromFlags(double num_cpus, int64_t num_gpus, int64_t memory,
                                                   int64_t object_store_memory, const ResourceSet& custom,
                                                   const std::string& node_ip, bool is_head);

}  // namespace shoal
