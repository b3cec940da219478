// The GCS's tables over a StoreClient: nodes, jobs and the namespaced key-value store,
// plus the feed that tells subscribers about node changes.
// Threading: every class here is safe to call from any thread (gRPC handler threads).
// Errors: unknown ids answer NotFound; storage failures answer the store's status.
#pragma once

#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "shoal/common.pb.h"
#include "src/common/clock.h"
#include "src/common/ids.h"
#include "src/common/resources.h"
#include "src/gcs/store_client.h"

namespace shoal {

// Hands every published NodeInfo to every live subscription, in order.
class NodeChangeFeed {
 public:
  class Subscription {
   public:
    // Waits up to `timeout` for the next change.
    std::optional<rpc::NodeInfo> Next(absl::Duration timeout);

   private:
    friend class NodeChangeFeed;
    absl::Mutex mu_;
    std::deque<rpc::NodeInfo> queue_ ABSL_GUARDED_BY(mu_);
  };

  std::shared_ptr<Subscription> Subscribe();
  void Unsubscribe(const std::shared_ptr<Subscription>& sub);
  void Publish(const rpc::NodeInfo& node);

 private:
  absl::Mutex mu_;
  std::vector<std::shared_ptr<Subscription>> subs_ ABSL_GUARDED_BY(mu_);
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
  // Adds or refreshes an alive node. FailedPrecondition if the node was declared dead: a dead
  // node id never comes back (its raylet must start again with a new id).
  absl::Status Register(rpc::NodeInfo node);
  // Marks an alive node dead with `reason`. NotFound for unknown ids; a dead node is unchanged.
  absl::Status MarkDead(const NodeId& id, const std::string& reason);
  // Answers whether the node is known and alive; records its view if so.
  bool ReportResources(const NodeId& id, const rpc::ResourceMap& available,
                       const std::vector<rpc::ResourceDemand>& demands);
  std::vector<rpc::NodeInfo> GetAll(bool alive_only) const;
  std::optional<rpc::NodeInfo> Get(const NodeId& id) const;
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

// Key-value pairs grouped by namespace. Values are bytes.
class KvStore {
 public:
  explicit KvStore(StoreClient& store) : store_(store) {}
  // InvalidArgument for an empty key. Answers whether the key was new.
  absl::StatusOr<bool> Put(const std::string& ns, const std::string& key, const std::string& value,
                           bool overwrite);
  absl::StatusOr<std::optional<std::string>> Get(const std::string& ns, const std::string& key);
  // Deletes `key`, or every key starting with it. Answers how many were deleted.
  absl::StatusOr<int64_t> Delete(const std::string& ns, const std::string& key, bool by_prefix);
  absl::StatusOr<std::vector<std::string>> Keys(const std::string& ns, const std::string& prefix);

 private:
  static std::string Table(const std::string& ns) { return "kv:" + ns; }
  StoreClient& store_;
};

}  // namespace shoal
