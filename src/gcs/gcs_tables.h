// The GCS's tables over a StoreClient: nodes, jobs and the namespaced key-value store,
// plus the feed that tells subscribers about node changes.
// Threading: every class here is safe to call from any thread (gRPC handler threads).
// Errors: unknown ids answer NotFound; storage failures answer the store's status.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "shoal/common.pb.h"
#include "src/common/bundle_resources.h"
#include "src/common/clock.h"
#include "src/common/ids.h"
#include "src/common/resources.h"
#include "src/gcs/store_client.h"

namespace shoal {

// Hands every published NodeInfo to every subscriber, in publish order.
// Threading: any thread. Deliveries (Publish, Close) run one at a time, on the caller's thread,
// without the subscriber list's lock: a listener may unsubscribe itself from inside one. The
// feed keeps a listener alive while it delivers to it, so a listener that is unsubscribed may
// still see one delivery that had already started.
class NodeChangeFeed {
 public:
  class Listener {
   public:
    virtual ~Listener() = default;
    // A node joined, changed or died. Must not block.
    virtual void OnNodeChange(const rpc::NodeInfo& node) = 0;
    // The feed is closed (the GCS is stopping): nothing more will come.
    virtual void OnFeedClosed() = 0;
  };

  // False (and nothing kept) once the feed is closed.
  bool Subscribe(std::shared_ptr<Listener> listener);
  void Unsubscribe(const Listener* listener);
  void Publish(const rpc::NodeInfo& node);
  // Tells every subscriber OnFeedClosed and drops them; later Subscribe calls fail. Idempotent.
  void Close();
  size_t NumSubscribers() const;

 private:
  std::vector<std::shared_ptr<Listener>> Snapshot() const;

  absl::Mutex deliver_mu_;  // one delivery at a time, so each listener sees publish order
  mutable absl::Mutex mu_;
  std::vector<std::shared_ptr<Listener>> listeners_ ABSL_GUARDED_BY(mu_);
  bool closed_ ABSL_GUARDED_BY(mu_) = false;
};

// Cluster-wide view for `shoal status`.
struct ClusterSummary {
  ResourceSet total;      // over alive nodes that take tasks
  ResourceSet available;
  std::vector<rpc::ResourceDemand> demands;  // merged by shape
};

// The node table. Registration, deaths and unregistration are written to the store; resource
// reports stay in memory (they are refreshed every second).
class NodeTable {
 public:
  NodeTable(StoreClient& store, const Clock& clock, NodeChangeFeed& feed);

  // Reads the table back from the store (after a GCS restart). Answers the nodes still alive.
  absl::StatusOr<std::vector<rpc::NodeInfo>> Load();
  // Adds an alive node. AlreadyExists (naming the node) if a node with that id is alive: a live
  // node is never replaced or refreshed by a second registration. FailedPrecondition if the
  // node was declared dead: a dead node id never comes back (its raylet must start again with
  // a new id).
  absl::Status Register(rpc::NodeInfo node);
  // Marks an alive node dead with `reason`. NotFound for unknown ids; a dead node is unchanged.
  absl::Status MarkDead(const NodeId& id, const std::string& reason);
  // Answers whether the node is known and alive; records its view if so. A non-empty `total`
  // replaces the node's total (it changes as placement group bundles are committed and
  // returned; kept in memory only: the store keeps the registered total). `gpu_free`: its
  // per-device free GPU shares (NodeInfo.gpu_free; empty when unknown).
  bool ReportResources(const NodeId& id, const rpc::ResourceMap& available,
                       const std::vector<rpc::ResourceDemand>& demands, const rpc::ResourceMap& total = {},
                       const std::vector<int64_t>& gpu_free = {});
  // The GCS committed (or returned) placement group bundles of `pg` on the node, ahead of the
  // raylet's next report: the node's bundle-formatted names of `pg` become exactly `amounts`
  // (totals; available keeps what a report said, at most the total, else the total). Empty
  // `amounts` removes them. Unknown or dead nodes are ignored. In memory only, like reports.
  void SetGroupResources(const NodeId& id, const PlacementGroupId& pg, const ResourceSet& amounts);
  std::vector<rpc::NodeInfo> GetAll(bool alive_only) const;
  // As GetAll, with no bundle-formatted resources (bundle_resources.h) in either map: what
  // placing new bundles needs, without copying every live group's entries on every node.
  std::vector<rpc::NodeInfo> GetAllWithoutBundles(bool alive_only);
  std::optional<rpc::NodeInfo> Get(const NodeId& id) const;
  // "address:raylet_port" of the node if it is alive, without copying its entry (which holds
  // every placement group's resources on it).
  std::optional<std::string> AliveRayletAddress(const NodeId& id) const;
  ClusterSummary Summarize() const;

 private:
  absl::Status Persist(const rpc::NodeInfo& node);

  StoreClient& store_;
  const Clock& clock_;
  NodeChangeFeed& feed_;
  mutable absl::Mutex mu_;
  absl::flat_hash_map<std::string, rpc::NodeInfo> nodes_ ABSL_GUARDED_BY(mu_);  // by hex id
};

class JobTable {
 public:
  explicit JobTable(StoreClient& store, const Clock& clock) : store_(store), clock_(clock) {}
  // Stores `job`; an empty job_id gets the next one (1, 2, ... as a 4-byte JobId). Answers the id.
  absl::StatusOr<std::string> Add(rpc::JobInfo job);
  absl::Status MarkFinished(const std::string& job_id);
  absl::StatusOr<std::vector<rpc::JobInfo>> GetAll();

 private:
  StoreClient& store_;
  const Clock& clock_;
  absl::Mutex mu_;  // orders read-modify-write of one job
};

// Key-value pairs grouped by namespace. Values are bytes, at most `max_value_bytes` each.
class KvStore {
 public:
  // 32 MiB: well above a function's pickle or a job record, below the GCS's gRPC message limit.
  static constexpr size_t kDefaultMaxValueBytes = size_t{32} << 20;

  explicit KvStore(StoreClient& store, size_t max_value_bytes = kDefaultMaxValueBytes)
      : store_(store), max_value_bytes_(max_value_bytes) {}
  // InvalidArgument for an empty key; ResourceExhausted for a value over the limit (the
  // message names the limit, the value's size and the key), nothing stored. Answers whether
  // the key was new.
  absl::StatusOr<bool> Put(const std::string& ns, const std::string& key, const std::string& value,
                           bool overwrite);
  absl::StatusOr<std::optional<std::string>> Get(const std::string& ns, const std::string& key);
  // Deletes `key`, or every key starting with it. Answers how many were deleted.
  absl::StatusOr<int64_t> Delete(const std::string& ns, const std::string& key, bool by_prefix);
  absl::StatusOr<std::vector<std::string>> Keys(const std::string& ns, const std::string& prefix);

 private:
  static std::string Table(const std::string& ns) { return "kv:" + ns; }
  StoreClient& store_;
  const size_t max_value_bytes_;
};

}  // namespace shoal
