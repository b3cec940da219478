// Grants worker leases on this node (DESIGN.md sections 2 and 3).
//
// A lease request is validated, placed by the SchedulingPolicy the manager is given (the hybrid
// policy in the raylet; any src/scheduler policy fits) against the cluster view, and then
// answered exactly once through its callback:
//   - GRANTED: this node's resources were taken (GPUs per device, best fit for fractions) and a
//     worker of the request's (job, command, runtime env) was found idle or started and
//     registered; a worker in a runtime environment starts once the RuntimeEnvProvider has
//     set the environment up (the request holds its resources meanwhile);
//   - SPILLBACK: another raylet should take it (its address and node id); the view then counts
//     the demand as taken there until that node's next report;
//   - REJECTED: the request is invalid (negative or absurd amounts, 1.5 GPUs, no job id or
//     worker command, a malformed strategy), the policy finds it unschedulable (a hard node
//     affinity to a dead node), or its worker command keeps failing to start
//     (max_start_failures in a row, or the executable cannot be run), or its runtime
//     environment could not be set up (the reply's failure says RUNTIME_ENV_SETUP_FAILED).
// A request that fits nowhere now waits here: queued when some node could hold it, infeasible
// when none could (it waits until such a node joins). Waiting requests are tried again, in
// arrival order, whenever resources are freed, a worker registers or exits, or the cluster view
// changes; they are reported as demand (Demands()). A request granted resources holds them while
// its worker starts.
//
// Placement group bundles (BundleManager, bundle_manager.h, drives the methods for them): a
// bundle's resources are reserved from the node's pool, and a committed bundle adds formatted
// resources (bundle_resources.h) that requests in the bundle ask for; the node's total changes
// with them. A granted request whose demand holds bundle GPU names gets the bundle's devices
// (with its share) in its GpuAssignment. Requests naming a removed group are rejected.
//
// Threading: not synchronized; one thread (the raylet's event loop) calls every method, and the
// callbacks run on it, from inside these methods: a callback must not call back into the manager.
// Ownership: owns the node's NodeResources, the cluster view and the policy; borrows the pool
// (and through it the clock that times worker starts and idling).
// Errors: absl::Status for the caller's mistakes (unknown lease: NotFound); nothing aborts.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/statusor.h"
#include "shoal/raylet.pb.h"
#include "src/common/bundle_resources.h"
#include "src/common/ids.h"
#include "src/common/resources.h"
#include "src/raylet/memory_monitor.h"
#include "src/raylet/worker_command_policy.h"
#include "src/raylet/worker_pool.h"
#include "src/scheduler/cluster_view.h"
#include "src/scheduler/scheduling_policy.h"

namespace shoal {

// Names one granted lease (hex on the wire).
class LeaseId : public BaseId<LeaseId, 16> {};

struct LeaseManagerOptions {
  NodeId node_id;
  ResourceSet resources;  // the node's total
  std::map<std::string, std::string> labels;
  bool is_head = false;
  // The node grants nothing itself: every request is spilled back or waits (see the policy).
  bool scheduling_disabled = false;
  // Waiting requests of a (job, command) are rejected after this many failed worker starts in
  // a row (the process exited or never registered). 0: keep trying.
  int max_start_failures = 3;
  // Told about every worker that dies while it holds a lease: it exited (`reason` from the
  // pool, e.g. "exited with code 9; see <log>") or was killed because the lease's owner died or
  // shut down (owner_gone). Not for kills the owner asked for (ReturnWorker with
  // worker_failed). Runs on the manager's thread, from inside its methods: it must not call
  // back into the manager. The raylet forwards these to the GCS (actors live on such workers).
  std::function<void(const WorkerId& worker, const std::string& reason, bool owner_gone)> on_leased_worker_death;
  // Sets up the runtime environments of requests that name one (RuntimeEnvAgent); borrowed,
  // must outlive the manager. Null: such requests are rejected.
  RuntimeEnvProvider* runtime_envs = nullptr;
  // The programs requests may name (worker_command_policy.h); borrowed, must outlive the
  // manager. Null: any (unit tests with made-up commands).
  const WorkerCommandPolicy* worker_commands = nullptr;
};

class LeaseManager {
 public:
  // The answer to one request: a reply, or an error status (Unavailable once the manager shuts
  // down; AlreadyExists for a request_id that is already waiting).
  using ReplyCallback = std::function<void(absl::StatusOr<rpc::RequestWorkerLeaseReply>)>;

  struct Stats {
    int64_t queued = 0;          // waiting for room (queued or infeasible)
    int64_t waiting_worker = 0;  // resources taken, waiting for a worker to start
    int64_t leases = 0;          // granted and not returned
  };

  // `policy` decides where each request goes (REQUIRES: not null).
  LeaseManager(WorkerPool& pool, std::unique_ptr<SchedulingPolicy> policy, LeaseManagerOptions options);
  LeaseManager(const LeaseManager&) = delete;
  LeaseManager& operator=(const LeaseManager&) = delete;

  // Takes a request; `reply` runs once, now or later. `request_id` is the caller's unique name
  // for it (see CancelRequest).
  void RequestLease(uint64_t request_id, const rpc::RequestWorkerLeaseRequest& request, ReplyCallback reply);
  // The requester gave up. Answers true, and forgets the request (freeing resources it held
  // while its worker started) if it had not been answered; its callback then never runs.
  bool CancelRequest(uint64_t request_id);
  // The owner is done with a lease: frees its resources and makes the worker idle again, or
  // kills it when `worker_failed`. NotFound for an unknown (or already ended) lease.
  absl::Status ReturnWorker(const std::string& lease_id_hex, bool worker_failed);
  // A started worker is ready (see WorkerPool::RegisterWorker for the errors).
  absl::Status RegisterWorker(const std::string& worker_id_hex, int port, int64_t pid);
  // Replaces what is known of the other nodes with the GCS's node table (this node's own entry
  // is ignored: its resources are known exactly here).
  void UpdateClusterView(const std::vector<rpc::NodeInfo>& nodes);
  // The owner at `owner_address` (host:port) died or shut down: answers its waiting requests
  // with Unavailable, ends its leases and kills their workers, whose tasks nobody waits for.
  // Answers how many leases ended. Called by Tick for owners
  // that were workers of this node.
  int ReleaseLeasesOfOwner(const std::string& owner_address, const std::string& reason);
  // The leased worker `worker_id_hex` waits for objects (blocked) or is done waiting. Blocked,
  // its lease's CPUs go back to the node for other requests; unblocked, it takes them again if
  // they are free (otherwise the node runs over its CPUs until the lease ends, as a waiting
  // parent and its running child would). NotFound for a worker holding no lease.
  absl::Status SetWorkerBlocked(const std::string& worker_id_hex, bool blocked);
  // The workers holding leases now, for the memory monitor to choose from.
  std::vector<LeasedWorker> LeasedWorkers() const;
  // Ends the lease of `worker` and kills it for `cause` (e.g. OUT_OF_MEMORY from the memory
  // monitor), which TakeDeathCause then answers for the lease. Reported like other deaths of
  // leased workers (on_leased_worker_death). NotFound for a worker holding no lease.
  absl::Status KillLeasedWorker(const WorkerId& worker, const rpc::ErrorInfo& cause);
  // Why KillLeasedWorker ended the lease `lease_id_hex`, once (the owner asks when it gives the
  // lease back); nullopt for other leases. The last kMaxDeathCauses causes are kept.
  std::optional<rpc::ErrorInfo> TakeDeathCause(const std::string& lease_id_hex);
  static constexpr size_t kMaxDeathCauses = 1000;
  // Drives the pool (reaping, timeouts), frees the leases of workers that died, and tries the
  // waiting requests again.
  void Tick();
  // Answers every waiting request with `why` and refuses new ones with it. Leases stay.
  void Shutdown(const absl::Status& why);

  // --- Placement group bundles ---
  // Takes `request` from the node's free pool for a bundle, all or nothing: ResourceExhausted
  // naming what does not fit.
  absl::StatusOr<ResourceAllocation> ReserveResources(const ResourceSet& request);
  // Gives back what ReserveResources took, and tries the waiting requests again.
  void UnreserveResources(const ResourceAllocation& reservation);
  // Adds a committed bundle's formatted resources to the node (NodeResources::AddCapacity), and
  // tries the waiting requests again.
  absl::Status AddResources(const ResourceAllocation& capacity);
  // Removes them (NodeResources::RemoveCapacity): FailedPrecondition, with no change, while some
  // of them are in use. Does not try the waiting requests again.
  absl::Status RemoveResources(const ResourceAllocation& capacity);
  // Ends every lease whose allocation `uses` picks, killing its worker for `cause` as
  // KillLeasedWorker does, and sends requests holding such resources while their worker starts
  // back to waiting. Answers how many leases ended. Does not try the waiting requests again
  // (the freed resources are about to be removed): call Reschedule or UnreserveResources.
  int KillLeasesUsing(const std::function<bool(const ResourceSet&)>& uses, const rpc::ErrorInfo& cause);
  // The group `pg` is gone for good: rejects every waiting request whose demand names one of its
  // resources, and from now on every new one (the last kMaxRemovedGroups groups are remembered).
  void RemoveGroup(const PlacementGroupId& pg);
  static constexpr size_t kMaxRemovedGroups = 10000;
  // Tries the waiting requests again.
  void Reschedule() { Dispatch(); }

  ResourceSet Available() const { return resources_.Available(); }
  const NodeResources& resources() const { return resources_; }
  const ClusterResourceView& view() const {
    SyncLocalView();
    return view_;
  }
  // Waiting requests merged by shape, infeasible ones marked (for ReportResources).
  std::vector<DemandSummary> Demands() const;
  Stats stats() const;
  // The owner addresses of the leases granted and not yet ended (non-empty ones).
  std::set<std::string> LeaseOwners() const;

 private:
  struct Pending {
    uint64_t request_id = 0;
    ResourceSet demand;
    rpc::SchedulingStrategy strategy;
    std::string strategy_key;  // the strategy's bytes: equal requests wait alike (Dispatch)
    bool grant_or_reject = false;
    WorkerKey key;
    std::string owner_address;
    bool retriable = false;
    rpc::RuntimeEnv runtime_env;  // key.env_key names it
    ReplyCallback reply;
    std::optional<ResourceAllocation> allocation;  // set: waiting for a worker
  };
  struct Lease {
    LeaseId id;
    WorkerId worker;
    ResourceAllocation allocation;
    std::string owner_address;
    bool retriable = false;
    bool cpu_lent = false;  // its worker is blocked and its CPUs are back with the node
  };

  // Validates and converts; the error's message is what REJECTED says.
  absl::StatusOr<Pending> Parse(const rpc::RequestWorkerLeaseRequest& request) const;
  // Places one queued request: true when it left the queue (allocated, spilled or rejected).
  bool TrySchedule(Pending& p, uint64_t seq);
  // Tries every waiting request until nothing changes.
  void Dispatch();
  // Pairs requests holding resources with idle workers and starts the workers still missing.
  bool MatchWorkers();
  void Grant(uint64_t seq, const WorkerPool::Worker& worker);
  void Answer(uint64_t seq, absl::StatusOr<rpc::RequestWorkerLeaseReply> reply);
  // `failure`: the reply's ErrorInfo (its type tells the owner what to report); none:
  // TASK_UNSCHEDULABLE.
  void Reject(uint64_t seq, const std::string& message, const rpc::ErrorInfo* failure = nullptr);
  // Rejects every waiting request of `key`: its worker command keeps failing. Answers whether
  // any of them held resources.
  bool RejectKey(const WorkerKey& key, const std::string& message, const rpc::ErrorInfo* failure = nullptr);
  void EndLease(absl::flat_hash_map<LeaseId, Lease>::iterator it);
  // KillLeasedWorker without trying the waiting requests again.
  void KillLease(absl::flat_hash_map<LeaseId, Lease>::iterator it, const rpc::ErrorInfo& cause);
  // Why a request naming a removed group is refused; "" when it names none.
  std::string RemovedGroupOf(const ResourceSet& demand) const;
  void FreeAllocation(const ResourceAllocation& allocation);
  // This node's entry in view_ follows resources_ lazily: a change marks it stale, and whatever
  // reads the view brings it up to date first (SyncLocalView), once for all the changes one
  // bundle call or lease makes (each copy of the entry is as long as the node's resource names,
  // which grow with the placement groups it holds).
  void RefreshLocalView() { local_view_stale_ = true; }
  void SyncLocalView() const;
  NodeView LocalView() const;

  WorkerPool& pool_;
  const LeaseManagerOptions options_;
  NodeResources resources_;
  mutable ClusterResourceView view_;       // this node's entry: see SyncLocalView
  mutable bool local_view_stale_ = false;
  std::unique_ptr<SchedulingPolicy> policy_;
  std::map<NodeId, std::string> raylet_addresses_;  // host:raylet_port of the other nodes
  // Unanswered requests by arrival order, and their callers' ids.
  std::map<uint64_t, Pending> pending_;
  absl::flat_hash_map<uint64_t, uint64_t> seq_of_request_;
  uint64_t next_seq_ = 0;
  absl::flat_hash_map<LeaseId, Lease> leases_;
  absl::flat_hash_map<WorkerId, LeaseId> lease_of_worker_;
  // Causes of KillLeasedWorker's kills by lease, and their order (oldest first) for eviction.
  absl::flat_hash_map<LeaseId, rpc::ErrorInfo> death_causes_;
  std::deque<LeaseId> death_order_;
  // Removed placement groups (RemoveGroup), and their order for eviction.
  absl::flat_hash_set<PlacementGroupId> removed_groups_;
  std::deque<PlacementGroupId> removed_order_;
  absl::Status shutdown_;  // not OK once Shutdown was called
  bool dispatching_ = false;
};

}  // namespace shoal
