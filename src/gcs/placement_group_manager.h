// The GCS's placement group table and the reservation of each group's bundles on the raylets
// (Ray's semantics; the protos in common.proto and gcs.proto are the contract).
//
// Life of a group:
//   Create -> PENDING --every bundle prepared, then committed--> CREATED
//   CREATED --a node holding bundles died--> RESCHEDULING --lost bundles placed again--> CREATED
//   any --Remove, or its job finished (not detached)--> REMOVED (final)
//
// Scheduling. One group is reserved at a time, so that two groups never hold half-reservations
// against each other. Pending groups (PENDING and RESCHEDULING) are tried in creation order: the
// first one PlaceBundles (bundle_policy.h) places now, over the alive nodes' reported free
// resources less what this manager reserved since each node's last report, is reserved; one that
// does not fit now keeps its place in the order with pending_reason set (infeasible=true when no
// set of alive nodes could hold it) and does not block later ones. Reserving is two-phase:
// PrepareBundles on every chosen node (bundles grouped per node, in parallel), then, once every
// node prepared, CommitBundles on every node; then the group is CREATED with each Bundle.node_id
// and created_time_ms set (that is the entry GetPlacementGroup and the waiters see).
//   - A prepare that fails (or whose node dies meanwhile): once every prepare answered, every
//     node that may hold a prepared bundle is sent CancelBundles(group_removed=false), and the
//     group is tried again after a backoff (options.retry_initial doubling to retry_max).
//   - A commit that fails (or whose node dies): the bundles on that node are lost (cancelled
//     there if it lives) and placed again; those committed elsewhere stay. The group is
//     RESCHEDULING while some bundles are placed, else PENDING.
// Pending groups are tried again when a node joins or dies, a node reports resources, a group is
// removed, and when a retry backoff ends (Tick).
// Node death: the bundles on the node lose their node_id and their group becomes RESCHEDULING;
// only those are placed again, STRICT_SPREAD away from the nodes holding the group's other
// bundles, STRICT_PACK on their node (for STRICT_PACK all bundles share one node, so all are lost
// together and placed anew).
// Remove: CancelBundles(group_removed=true) on every alive node holding (prepared or committed)
// bundles of the group, REMOVED with remove_time_ms, waiters answered, then `on_removed` (the
// GCS kills the group's actors). The last options.max_removed REMOVED groups are kept for display.
//
// Once bundles are committed (and when they are returned) the node table is told the
// bundle-formatted resources they add (NodeTable::SetGroupResources), so that actors placed in
// the group find them before the raylet's next report.
// Storage: table "placement_groups" (PlacementGroupInfo keyed by hex id), written through an
// OrderedStoreWriter in the order of the changes, outside the lock. Create answers once its row
// is written. Load() (after the node table's Load) reads the table back: CREATED groups stay
// CREATED (a bundle on a node the table no longer lists alive is lost, as at a node death);
// PENDING and RESCHEDULING ones are scheduled again, but only after ReleaseUnusedBundles went to
// every alive raylet with the bundles the table says it holds (so that bundles prepared or
// committed by the GCS before it went down, and not recorded, are returned first).
//
// Threading: every method is safe to call from any thread; client callbacks may run on any
// thread. Neither the client, the store nor `on_removed` is called with the lock held.
// Ownership: borrows the store, clock, node table and bundle client, which must outlive it.
// Errors: unknown groups NotFound; malformed requests InvalidArgument naming the problem; a name
// taken in the namespace AlreadyExists; storage failures the store's status.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "shoal/common.pb.h"
#include "shoal/gcs.pb.h"
#include "src/common/bundle_resources.h"
#include "src/common/clock.h"
#include "src/common/ids.h"
#include "src/common/resources.h"
#include "src/gcs/gcs_tables.h"
#include "src/gcs/store_client.h"
#include "src/gcs/store_writer.h"

namespace shoal {

// The calls the manager makes to the raylets' BundleService (raylet.proto), by raylet address
// (host:port). A seam: GrpcBundleClient (bundle_grpc.h) in production, FakeBundleClient
// (fake_bundle_client.h) in tests.
// Threading: calls from any thread; each callback runs once, never inside the call that started it.
class BundleClient {
 public:
  using Done = std::function<void(absl::Status)>;
  using ReleaseDone = std::function<void(absl::Status, int32_t released)>;

  virtual ~BundleClient() = default;
  // With `commit`, the raylet commits them as well in the same call (PrepareBundlesRequest).
  virtual void PrepareBundles(const std::string& raylet, std::vector<rpc::Bundle> bundles, bool commit,
                              Done done) = 0;
  virtual void CommitBundles(const std::string& raylet, std::vector<rpc::Bundle> bundles, Done done) = 0;
  virtual void CancelBundles(const std::string& raylet, std::vector<rpc::Bundle> bundles, bool group_removed,
                             Done done) = 0;
  virtual void ReleaseUnusedBundles(const std::string& raylet, std::vector<rpc::Bundle> in_use,
                                    ReleaseDone done) = 0;
};

struct PlacementGroupManagerOptions {
  // Backoff before a group whose reservation failed is tried again (doubling each time).
  absl::Duration retry_initial = absl::Milliseconds(100);
  absl::Duration retry_max = absl::Seconds(10);
  // REMOVED groups kept for display; the oldest removed go first.
  size_t max_removed = 1000;
  // A reservation whose bundles all go to one node is prepared and committed in one call to
  // its raylet (one round trip instead of two; still all or nothing, as one node's prepare is).
  bool one_call_for_one_node = false;
  // Called (outside the lock) once a group is REMOVED: its actors die.
  std::function<void(const PlacementGroupId&)> on_removed;
};

// GetClusterStatus's view of the groups.
struct PlacementGroupSummary {
  std::vector<rpc::PlacementGroupInfo> pending;  // PENDING and RESCHEDULING, creation order
  std::map<std::string, int64_t> by_state;       // every state's name, zeros included
};

class PlacementGroupManager {
 public:
  using InfoCallback = std::function<void(absl::StatusOr<rpc::PlacementGroupInfo>)>;

  PlacementGroupManager(StoreClient& store, const Clock& clock, NodeTable& nodes, BundleClient& client,
                        PlacementGroupManagerOptions options = {});
  PlacementGroupManager(const PlacementGroupManager&) = delete;
  PlacementGroupManager& operator=(const PlacementGroupManager&) = delete;

  // Reads the table back (see the file comment). Call once, after NodeTable::Load, before serving.
  absl::Status Load();

  // Validates, stores the group PENDING and starts scheduling it; answers once it is stored,
  // not once it is created. The same request again (same id, name, strategy and bundles) is a
  // retried call and answers OK; another group under a used id is InvalidArgument.
  absl::Status Create(const rpc::PlacementGroupInfo& request);
  // Cancels its bundles and marks it REMOVED. OK for a group already REMOVED; NotFound for
  // an unknown id.
  absl::Status Remove(const std::string& placement_group_id);
  // By id, or (id empty) by name and namespace among the groups that are not REMOVED.
  absl::StatusOr<rpc::PlacementGroupInfo> Get(const rpc::GetPlacementGroupRequest& request) const;
  // In creation order, at most `limit` (0: all); total counts them all.
  rpc::GetAllPlacementGroupReply GetAll(int32_t limit) const;
  // Long poll: `done` runs once: OK with the entry when it is CREATED; FailedPrecondition when
  // REMOVED; DeadlineExceeded when timeout_ms (< 0: none) passes first (Tick); NotFound for an
  // unknown group; Unavailable at Shutdown.
  void WaitUntilReady(const rpc::WaitPlacementGroupUntilReadyRequest& request, InfoCallback done);
  PlacementGroupSummary Summarize() const;
  // Whether the group (binary id) is known and REMOVED (or was dropped after its removal: ids
  // the manager forgot are answered false).
  bool IsRemoved(const std::string& placement_group_id) const;

  // Cluster events (see the file comment).
  void OnNodeAdded(const NodeId& node);
  void OnNodeDead(const NodeId& node);
  // `node` reported its resources: they include every bundle it prepared before.
  void OnResourcesReported(const NodeId& node);
  // The job's groups that are not detached are removed.
  void OnJobFinished(const JobId& job);

  // Answers waits whose time is up and tries groups whose backoff ended.
  void Tick();
  // Answers every wait (Unavailable); later client callbacks change nothing. Idempotent.
  void Shutdown();

  // For tests: whether a reservation is in flight.
  bool Reserving() const;

 private:
  struct Group {
    rpc::PlacementGroupInfo info;
    uint64_t seq = 0;
    bool storing = false;            // Create is writing its row; not scheduled yet
    absl::Duration backoff;          // last retry delay; zero: none yet
    absl::Time next_try = absl::InfinitePast();
  };
  // One node's share of the reservation in flight.
  struct Part {
    std::string raylet;
    std::vector<int> indices;
    bool answered = false;
    bool ok = false;
    bool refused = false;  // prepare answered ResourceExhausted: nothing was prepared
    bool dead = false;     // the node died meanwhile
    std::string error;
  };
  struct Attempt {
    uint64_t id = 0;
    PlacementGroupId pg;
    bool committing = false;
    bool one_call = false;  // prepared and committed in one call (one node)
    std::map<NodeId, Part> parts;
    int outstanding = 0;
  };
  struct Waiter {
    absl::Time deadline;
    InfoCallback done;
  };
  using Actions = std::vector<std::function<void()>>;

  static std::string NameKey(const std::string& ns, const std::string& name) { return ns + '\0' + name; }
  void Finish(Actions& actions) ABSL_LOCKS_EXCLUDED(mu_);
  Group* Find(const PlacementGroupId& id) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Bumps the version, queues the write, answers waiters that the new state settles.
  void Changed(const PlacementGroupId& id, Group& g, Actions& actions) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Starts the reservation of the first pending group that fits now, if none is in flight.
  void TrySchedule(Actions& actions) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void StartAttempt(const PlacementGroupId& id, Group& g, const std::vector<int>& indices,
                    const std::vector<NodeId>& nodes, Actions& actions) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void OnReply(uint64_t attempt_id, const NodeId& node, bool commit, const absl::Status& status);
  // Every part answered (or died).
  void AfterPrepare(Actions& actions) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void AfterCommit(Actions& actions) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void SetPending(const PlacementGroupId& id, Group& g, const std::string& reason, bool infeasible,
                  Actions& actions) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Backoff(Group& g) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void RetryAllNow() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Queues CancelBundles of `indices` of the group at `raylet`.
  void SendCancel(const rpc::PlacementGroupInfo& info, const std::string& raylet, const std::vector<int>& indices,
                  bool group_removed, Actions& actions) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  std::vector<rpc::Bundle> BundlesOf(const rpc::PlacementGroupInfo& info, const std::vector<int>& indices,
                                     const NodeId& node) const;
  void Reserve(const NodeId& node, const ResourceSet& amount) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Unreserve(const NodeId& node, const ResourceSet& amount) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void RemoveLocked(const PlacementGroupId& id, Group& g, Actions& actions) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Drops the oldest REMOVED groups past options.max_removed.
  void TrimRemoved() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The bundles on the node (hex id) lose it; CREATED groups become RESCHEDULING.
  void LoseNode(const std::string& node_hex, Actions& actions) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  std::optional<std::string> RayletOf(const NodeId& node) const;
  // Tells the node table what the group's committed bundles on `node` add to it.
  void PublishResources(const PlacementGroupId& id, const rpc::PlacementGroupInfo& info, const NodeId& node) const;

  StoreClient& store_;
  const Clock& clock_;
  NodeTable& nodes_;
  BundleClient& client_;
  const PlacementGroupManagerOptions options_;
  OrderedStoreWriter writer_;

  mutable absl::Mutex mu_;
  bool shutdown_ ABSL_GUARDED_BY(mu_) = false;
  absl::flat_hash_map<PlacementGroupId, Group> groups_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<std::string, PlacementGroupId> names_ ABSL_GUARDED_BY(mu_);  // not REMOVED
  std::map<uint64_t, PlacementGroupId> pending_ ABSL_GUARDED_BY(mu_);              // by seq
  std::deque<PlacementGroupId> removed_ ABSL_GUARDED_BY(mu_);                      // oldest first
  absl::flat_hash_map<PlacementGroupId, std::vector<Waiter>> waiters_ ABSL_GUARDED_BY(mu_);
  std::optional<Attempt> attempt_ ABSL_GUARDED_BY(mu_);
  // What the nodes prepared for this manager since their last report.
  absl::flat_hash_map<NodeId, ResourceSet> reserved_since_report_ ABSL_GUARDED_BY(mu_);
  int releasing_ ABSL_GUARDED_BY(mu_) = 0;  // ReleaseUnusedBundles calls outstanding after Load
  std::optional<absl::Time> wake_ ABSL_GUARDED_BY(mu_);  // earliest backoff end
  uint64_t next_seq_ ABSL_GUARDED_BY(mu_) = 1;
  uint64_t next_attempt_ ABSL_GUARDED_BY(mu_) = 1;
};

}  // namespace shoal
