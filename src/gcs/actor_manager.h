// The GCS's actor table and the creation, restart and death of actors (DESIGN.md section 2).
//
// Life of an actor:
//   RegisterActor -> PENDING --lease granted, constructor ran--> ALIVE
//   PENDING/ALIVE/RESTARTING --worker or node died, restarts left--> RESTARTING -> ALIVE ...
//   any --constructor raised, restarts used up, killed, owner gone--> DEAD (for good)
//
// Creation: the manager places the actor with the scheduler library's policy over the node table
// (ActorPlacement, actor_placement.h: the raylets' own policy code, so node affinity, SPREAD and
// the hybrid default mean the same for actors as for tasks), asks the chosen raylet for a worker
// lease with the actor's resources and strategy, follows spillbacks (grant_or_reject), and
// pushes the creation task to the granted worker. The lease is held for the actor's whole life.
// An actor no node could hold yet waits at the head's raylet as an infeasible demand; one whose
// strategy can never be met (a hard affinity to a dead node) is DEAD with death_type
// ACTOR_UNSCHEDULABLE, and calls to it fail with that type. Its owner_address is the actor's owner for default-lifetime actors
// (so a raylet ends the lease, killing the actor's worker, when the owner dies) and the GCS
// itself for detached ones.
//
// Deaths: ReportWorkerDeath (a raylet saw the worker exit, or killed it because the lease's
// owner died), OnNodeDead, KillActor and OnJobFinished. Whenever an actor leaves a worker, the
// manager gives the lease back with worker_failed=true, so the raylet kills the worker and frees
// its resources. A lease request still outstanding for an actor that died is cancelled; a grant
// that arrives for it anyway is given back at once. The death_cause strings:
//   "the actor's worker died: <reason>"          (worker exit, broken creation push)
//   "the actor's node <node id hex> died"         (node declared dead)
//   "its owner <address> died or exited"          (default lifetime; owner gone or job finished)
//   "killed by shoal.kill()"                      (KillActor)
//   "the actor's constructor raised <type>: <message>"
//   the raylet's message                          (lease request REJECTED)
//   "the actor cannot be scheduled: <why>"        (unschedulable; death_type ACTOR_UNSCHEDULABLE)
//   "its placement group <hex> was removed"      (death_type PLACEMENT_GROUP_REMOVED)
// RESTARTING keeps the cause of the last death in death_cause.
//
// Every change of an entry bumps its version (starting at 1), is written to the store (table
// "actors", ActorInfo keyed by hex actor id; the creation spec in "actor_specs" and the held
// lease in "actor_leases"), and wakes GetActorInfo long polls. Store writes are queued under the
// lock, in the order of the changes, and made after it is released (OrderedStoreWriter), before
// the long polls are answered and the transport is called: a slow store never blocks the table.
// RegisterActor answers only once its rows are written (a failed write undoes the
// registration). Load() reads the tables back after a GCS restart, creation tasks included:
// ALIVE actors stay ALIVE on their workers (their worker and node deaths are handled as before,
// restarting them from the stored creation task, and kills return their leases); PENDING and
// RESTARTING ones are scheduled again. A live actor whose creation task is missing from the
// store (written by an older GCS, or lost) stays ALIVE but dies for good, naming why, instead
// of restarting. Calls in flight when the GCS went down are lost: a lease granted to the old
// GCS ends only with the lease's owner.
//
// Threading: every method is safe to call from any thread; transport callbacks may run on any
// thread. Neither the transport nor the store is ever called with the manager's lock held.
// Ownership: borrows the store, clock, node table and transport, which must outlive it; owns the
// scheduling policy.
// Errors: unknown actors answer NotFound; malformed requests InvalidArgument; a taken name
// AlreadyExists; storage failures the store's status.
#pragma once

#include <cstdint>
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
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "shoal/gcs.pb.h"
#include "shoal/raylet.pb.h"
#include "shoal/worker.pb.h"
#include "src/common/clock.h"
#include "src/common/ids.h"
#include "src/gcs/actor_placement.h"
#include "src/gcs/gcs_tables.h"
#include "src/gcs/store_client.h"
#include "src/gcs/store_writer.h"
#include "src/scheduler/scheduling_policy.h"

namespace shoal {

// The RPCs the actor manager makes: worker leases from raylets and the creation push to the
// leased worker. A seam: GrpcActorTransport (actor_grpc.h) in production, FakeActorTransport
// (fake_actor_transport.h) in tests.
// Threading: calls from any thread; each callback runs once, on a transport thread, never
// inside the call that started it.
class ActorCreationTransport {
 public:
  using LeaseCallback = std::function<void(absl::Status, rpc::RequestWorkerLeaseReply)>;
  using PushCallback = std::function<void(absl::Status, rpc::PushTaskReply)>;

  virtual ~ActorCreationTransport() = default;
  // Asks the raylet at `raylet_address` for a lease; `request_id` (unique) names the call for
  // CancelLeaseRequest. A request the raylet queues answers only when granted.
  virtual void RequestWorkerLease(uint64_t request_id, const std::string& raylet_address,
                                  rpc::RequestWorkerLeaseRequest request, LeaseCallback done) = 0;
  // Gives up a request: a queued one is dropped by the raylet. Its callback still runs (with an
  // error, or with a grant that raced the cancellation). Unknown ids are ignored.
  virtual void CancelLeaseRequest(uint64_t request_id) = 0;
  // Gives a lease back; fire and forget (NotFound, for a lease the raylet already ended, is
  // expected and ignored).
  virtual void ReturnWorker(const std::string& raylet_address, const std::string& lease_id,
                            bool worker_failed) = 0;
  // Runs the creation task on the worker at `worker_address`. An error status means the worker
  // (or the way to it) broke; the constructor's own failure comes back in the reply.
  virtual void PushTask(const std::string& worker_address, rpc::PushTaskRequest request,
                        PushCallback done) = 0;
};

struct ActorManagerOptions {
  // host:port of this GCS: the owner_address of detached actors' leases.
  std::string gcs_address;
  // How long to wait before scheduling again after a lease request failed at the transport
  // level (the raylet is unreachable) or when no node is alive.
  absl::Duration lease_retry_delay = absl::Seconds(1);
  // GetActorInfo long polls wait at most this long, whatever wait_ms says.
  absl::Duration max_wait = absl::Seconds(60);
  // Whether the placement group (binary id) was removed: an actor registered in such a group
  // dies at once (PLACEMENT_GROUP_REMOVED). Called without the manager's lock. Empty: never.
  std::function<bool(const std::string& placement_group_id)> placement_group_removed;
};

class ActorManager {
 public:
  using InfoCallback = std::function<void(absl::StatusOr<rpc::ActorInfo>)>;

  // `policy` places the actors (HybridSchedulingPolicy in the GCS; REQUIRES: not null).
  ActorManager(StoreClient& store, const Clock& clock, const NodeTable& nodes, ActorCreationTransport& transport,
               std::unique_ptr<SchedulingPolicy> policy, ActorManagerOptions options);
  ActorManager(const ActorManager&) = delete;
  ActorManager& operator=(const ActorManager&) = delete;

  // Reads the actor table back from the store (see the file comment). Call once, before serving.
  absl::Status Load();
  // Replaces options.gcs_address (the GCS knows its port only once it listens).
  void SetGcsAddress(const std::string& address);

  // Validates, stores the actor PENDING and starts creating it. A name taken by an actor that
  // is not DEAD answers that actor (existed=true) with get_if_exists, else AlreadyExists.
  // Registering an id that exists again answers it (existed=false): a retried call.
  absl::StatusOr<rpc::RegisterActorReply> RegisterActor(const rpc::RegisterActorRequest& request);
  // The second step of a registration with dependencies_unready: stores the resolved
  // constructor and schedules it, or marks the actor DEAD with the argument's error. Idempotent.
  absl::Status CreateActor(const rpc::CreateActorRequest& request);
  // Owners of live actors still waiting for their constructor's arguments (the GCS watches
  // them: an owner that dies first leaves such an actor with nobody to create it).
  std::set<std::string> OwnersOfWaitingActors() const;
  // Ends (for good) the live non-detached actors `owner_address` owns.
  void OnOwnerDead(const std::string& owner_address);
  // Long poll: `done` runs once, now if the entry's version is above after_version (or the
  // actor is unknown: NotFound), else when the entry changes, when min(wait_ms, max_wait)
  // passes (Tick), or at Shutdown, with the entry as it is then.
  void GetActorInfo(const rpc::GetActorInfoRequest& request, InfoCallback done);
  // The actor named `name` in `ray_namespace` that is not DEAD; NotFound otherwise.
  absl::StatusOr<rpc::ActorInfo> GetNamedActor(const std::string& name, const std::string& ray_namespace) const;
  // Newest first (by start time, then registration order), at most `limit` (0: 1000), of one
  // job or all; total counts the matches before the limit.
  absl::StatusOr<rpc::ListActorsReply> ListActors(const rpc::ListActorsRequest& request) const;
  // Kills the actor: DEAD with no_restart, else handled as a crash (restarted if it has
  // restarts left). Killing a DEAD actor does nothing. NotFound for unknown actors.
  absl::Status KillActor(const rpc::KillActorRequest& request);
  // A raylet saw a worker die. Workers that hold no actor are ignored.
  absl::Status ReportWorkerDeath(const rpc::ReportWorkerDeathRequest& request);
  // The GCS declared `node` dead: its actors die (or restart elsewhere); lease requests that
  // wait there are sent elsewhere.
  void OnNodeDead(const NodeId& node);
  // The job finished: its actors that are not detached die with their owner.
  void OnJobFinished(const JobId& job);
  // The placement group (binary id) was removed: every actor that is not DEAD and whose creation
  // task names it dies for good, pending ones included, with death_type PLACEMENT_GROUP_REMOVED.
  // (One registered later in the group dies at registration: options.placement_group_removed.)
  void OnPlacementGroupRemoved(const std::string& placement_group_id);
  // `node` reported its free resources to the node table (see ActorPlacement::NodeReported).
  void OnResourcesReported(const NodeId& node);

  // Answers long polls whose wait is over and schedules actors whose retry delay passed.
  void Tick();
  // Answers every long poll with the entry as it is; later polls are answered at once, and
  // transport callbacks only give back grants. Idempotent.
  void Shutdown();

  // For tests and metrics.
  size_t NumLeasesHeld() const;
  size_t NumLeaseRequests() const;  // outstanding (not cancelled)
  size_t NumWaiters() const;

  // Creation pushes to one worker before an UNAVAILABLE counts as the worker's death.
  static constexpr int kCreationPushAttempts = 3;

 private:
  // A lease the actor holds.
  struct Lease {
    std::string id;        // hex; empty: none
    std::string raylet;    // host:port that granted it
    NodeId node;
    std::string worker_id;  // hex
    std::string worker_address;
    rpc::GpuAssignment gpus;
  };
  struct Actor {
    rpc::ActorInfo info;
    rpc::TaskSpec spec;
    uint64_t seq = 0;          // registration order, for ListActors
    uint64_t request_id = 0;   // outstanding lease request; 0: none
    NodeId request_node;       // where it went
    Lease lease;
    uint64_t push_id = 0;      // outstanding creation push; 0: none
    int push_attempts = 0;     // creation pushes to the current lease's worker
    bool waiting_retry = false;  // in retry_ (no request out yet)
    bool registering = false;  // RegisterActor is writing its rows; not scheduled yet
    bool spec_lost = false;    // restored without its creation task: it cannot restart
  };
  struct Waiter {
    int64_t after_version = 0;
    absl::Time deadline;
    InfoCallback done;
  };
  using Actions = std::vector<std::function<void()>>;

  // Makes the queued store writes, then runs `actions`. Call without the lock.
  void Finish(Actions& actions) ABSL_LOCKS_EXCLUDED(mu_);
  static std::string NameKey(const std::string& ns, const std::string& name) { return ns + '\0' + name; }
  Actor* Find(const ActorId& id) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Bumps the version, queues the entry's write and answers its waiters (in `actions`).
  void Changed(const ActorId& id, Actor& a, Actions& actions) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void PersistLease(const ActorId& id, const Actor& a) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Picks a raylet for the actor and asks it for a lease (or waits for the retry delay).
  void Schedule(const ActorId& id, Actor& a, Actions& actions) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void SendLeaseRequest(const ActorId& id, Actor& a, const Placement& where, Actions& actions)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void RetryLater(const ActorId& id, Actor& a) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Forgets the actor's outstanding lease request (cancelling it at the transport).
  void CancelRequest(Actor& a, Actions& actions) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void OnLeaseReply(const ActorId& id, uint64_t request_id, const std::string& raylet, const NodeId& node,
                    const absl::Status& status, const rpc::RequestWorkerLeaseReply& reply);
  void OnPushReply(const ActorId& id, uint64_t push_id, const absl::Status& status, const rpc::PushTaskReply& reply);
  // Pushes the creation task to the lease's worker (again, after an UNAVAILABLE: see OnPushReply).
  void PushCreation(const ActorId& id, Actor& a, Actions& actions) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Gives back the held lease (unless its node is dead) and cancels an outstanding request.
  void LeaveWorker(Actor& a, bool node_dead, Actions& actions) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The actor lost its worker for `cause`: RESTARTING if `restartable` and it has restarts
  // left, else DEAD.
  void Fail(const ActorId& id, Actor& a, const std::string& cause, bool restartable, bool node_dead,
            Actions& actions) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void MarkDead(const ActorId& id, Actor& a, const std::string& cause, Actions& actions,
                rpc::ErrorType type = rpc::ACTOR_DIED) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  StoreClient& store_;
  const Clock& clock_;
  const NodeTable& nodes_;
  ActorCreationTransport& transport_;
  const ActorManagerOptions options_;
  OrderedStoreWriter writer_;

  mutable absl::Mutex mu_;
  bool shutdown_ ABSL_GUARDED_BY(mu_) = false;
  std::string gcs_address_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<ActorId, Actor> actors_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<std::string, ActorId> names_ ABSL_GUARDED_BY(mu_);      // NameKey -> not DEAD
  absl::flat_hash_map<std::string, ActorId> by_worker_ ABSL_GUARDED_BY(mu_);  // leased worker hex
  std::map<absl::Time, std::vector<ActorId>> retry_ ABSL_GUARDED_BY(mu_);     // by retry time
  absl::flat_hash_map<ActorId, std::vector<Waiter>> waiters_ ABSL_GUARDED_BY(mu_);
  uint64_t next_seq_ ABSL_GUARDED_BY(mu_) = 1;
  uint64_t next_request_id_ ABSL_GUARDED_BY(mu_) = 1;
  uint64_t next_push_id_ ABSL_GUARDED_BY(mu_) = 1;
  ActorPlacement placement_ ABSL_GUARDED_BY(mu_);
};

}  // namespace shoal
