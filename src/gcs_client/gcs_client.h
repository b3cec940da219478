// Typed calls to the GCS (proto/shoal/gcs.proto) for every process that talks to it: raylets,
// core workers, the dashboard, the CLI and the Python module.
//
// One policy per client (GcsClientOptions): every blocking call has one total deadline,
// `timeout`. A call that fails Unavailable (no GCS there, or it went away) is sent again after
// a backoff (initial_backoff, doubling up to max_backoff) until that deadline, each time on a
// fresh channel, so a GCS restarted on the same address is found again. Calls a repeat would
// apply twice (AddJob, RegisterActor, KvPut without overwrite) are sent again only when the
// failure shows they never left (NeverConnected). When no GCS answers in time the call fails
// Unavailable, naming the address and the wait; the GCS's own errors (NotFound,
// InvalidArgument, ...) come back as they are, at once.
//
// Asynchronous calls are sent once; their callbacks run on gRPC's threads. Shutdown cancels
// the long polls and waits for every callback.
//
//   GcsClient gcs({.address = "127.0.0.1:6379"});
//   absl::StatusOr<rpc::GetClusterStatusReply> status = gcs.GetClusterStatus();
//   gcs.WithTimeout(absl::Seconds(2)).ReportResources(report);   // same connection
//
// Threading: any thread. Copies and WithTimeout views share one connection (channel, async
// calls); it lives as long as the last of them.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "shoal/gcs.grpc.pb.h"
#include "src/common/ids.h"

namespace shoal {

struct GcsClientOptions {
  std::string address;                          // host:port
  absl::Duration timeout = absl::Seconds(10);   // per blocking call, retries included
  absl::Duration initial_backoff = absl::Milliseconds(100);
  absl::Duration max_backoff = absl::Seconds(1);
};

class GcsClient {
 public:
  template <typename Reply>
  using Callback = std::function<void(absl::Status, Reply)>;

  // Connects lazily: nothing is dialled until the first call. A malformed address makes every
  // call fail InvalidArgument.
  explicit GcsClient(GcsClientOptions options);

  // A view of this client whose blocking calls have `timeout` as their deadline.
  GcsClient WithTimeout(absl::Duration timeout) const;
  const std::string& address() const { return options_.address; }
  absl::Duration timeout() const { return options_.timeout; }

  // Nodes (NodeInfoService).
  absl::Status RegisterNode(const rpc::NodeInfo& node) const;
  absl::Status UnregisterNode(const NodeId& node, const std::string& reason) const;
  absl::StatusOr<std::vector<rpc::NodeInfo>> GetAllNodeInfo(bool alive_only) const;
  // The ids (hex) of the nodes the GCS lists as dead; empty when it does not answer.
  absl::flat_hash_set<std::string> DeadNodeIds() const;
  // False when the GCS does not know the node as alive: it must register again.
  absl::StatusOr<bool> ReportResources(const rpc::ReportResourcesRequest& report) const;

  // The key-value store (KVService). KvPut answers whether the key is new; KvGet NotFound when
  // the key is absent; KvDel how many keys it deleted.
  absl::StatusOr<bool> KvPut(const std::string& ns, const std::string& key, const std::string& value,
                             bool overwrite) const;
  absl::StatusOr<std::string> KvGet(const std::string& ns, const std::string& key) const;
  absl::StatusOr<int64_t> KvDel(const std::string& ns, const std::string& key, bool by_prefix = false) const;
  absl::StatusOr<std::vector<std::string>> KvKeys(const std::string& ns, const std::string& prefix = "") const;

  // Jobs (JobInfoService). AddJob answers the job's id (assigned by the GCS when `job` has none).
  absl::StatusOr<JobId> AddJob(const rpc::JobInfo& job) const;
  absl::Status MarkJobFinished(const JobId& job) const;
  absl::StatusOr<std::vector<rpc::JobInfo>> GetAllJobInfo() const;

  // The cluster's summary and the calls the GCS served (ClusterStatusService).
  absl::StatusOr<rpc::GetClusterStatusReply> GetClusterStatus() const;
  absl::StatusOr<rpc::RpcStats> GetRpcStats() const;

  // Actors (ActorService). GetActorInfo answers the entry now; GetNamedActor NotFound when no
  // alive actor has the name.
  absl::StatusOr<rpc::RegisterActorReply> RegisterActor(const rpc::RegisterActorRequest& request) const;
  // The second step of RegisterActor with dependencies_unready; the GCS applies it once.
  absl::Status CreateActor(const rpc::CreateActorRequest& request) const;
  absl::StatusOr<rpc::ActorInfo> GetActorInfo(const ActorId& actor) const;
  absl::StatusOr<rpc::ActorInfo> GetNamedActor(const std::string& name, const std::string& ray_namespace) const;
  absl::StatusOr<rpc::ListActorsReply> ListActors(int limit) const;
  absl::Status KillActor(const ActorId& actor, bool no_restart) const;

  // Placement groups (PlacementGroupService). CreatePlacementGroup answers once the group is
  // registered (PENDING); GetPlacementGroup NotFound for an unknown id; GetNamedPlacementGroup
  // NotFound when no group that is not removed has the name. WaitPlacementGroupUntilReady
  // answers the entry once it is CREATED (true) or when `timeout` passes (false; a negative
  // timeout waits without limit), FailedPrecondition when it was removed first, NotFound for an
  // unknown id; it waits in slices, so a GCS restart in between is ridden out.
  absl::Status CreatePlacementGroup(const rpc::PlacementGroupInfo& info) const;
  absl::Status RemovePlacementGroup(const std::string& placement_group_id) const;
  absl::StatusOr<rpc::PlacementGroupInfo> GetPlacementGroup(const std::string& placement_group_id) const;
  absl::StatusOr<rpc::PlacementGroupInfo> GetNamedPlacementGroup(const std::string& name,
                                                                 const std::string& ray_namespace) const;
  absl::StatusOr<std::vector<rpc::PlacementGroupInfo>> GetAllPlacementGroups(int limit) const;
  absl::StatusOr<bool> WaitPlacementGroupUntilReady(const std::string& placement_group_id,
                                                    absl::Duration timeout) const;

  // Task events (TaskEventService): the most recent tasks, and counts by state.
  absl::StatusOr<rpc::ListTasksReply> ListTasks(int limit) const;

  // Long poll for an actor's entry: answers when its version is above `after_version`, or
  // after `wait` with the same entry. Cancelled by Shutdown.
  void AsyncGetActorInfo(const ActorId& actor, int64_t after_version, absl::Duration wait,
                         Callback<rpc::GetActorInfoReply> done) const;
  // Reports tasks' state changes; fire and forget.
  void AsyncReportTaskEvents(rpc::ReportTaskEventsRequest events) const;
  // Reports a worker that died on a node; `done` (may be empty) gets the outcome.
  void AsyncReportWorkerDeath(rpc::ReportWorkerDeathRequest death, std::function<void(absl::Status)> done) const;
  // CreatePlacementGroup and RemovePlacementGroup sent once, without waiting: `done` gets the
  // outcome (an Unavailable one may be sent again with the blocking calls: a repeated create of
  // the same id is the same group, a repeated removal is a no-op).
  void AsyncCreatePlacementGroup(const rpc::PlacementGroupInfo& info, std::function<void(absl::Status)> done) const;
  void AsyncRemovePlacementGroup(const std::string& placement_group_id,
                                 std::function<void(absl::Status)> done) const;

  // Cancels the long polls and waits up to `timeout` for every async callback; async calls
  // made later may be dropped. Blocking calls still work. Idempotent.
  void Shutdown(absl::Duration timeout) const;

 private:
  class Connection;
  // Whether a call may be sent again after it failed in a way that leaves unknown whether the
  // GCS applied it.
  enum class Repeat { kSafe, kOnlyIfUndelivered };

  GcsClient(std::shared_ptr<Connection> connection, GcsClientOptions options)
      : connection_(std::move(connection)), options_(std::move(options)) {}
  // Runs a stub's blocking `method` under the client's policy.
  template <typename Stub, typename Request, typename Reply>
  absl::StatusOr<Reply> Call(grpc::Status (Stub::*method)(grpc::ClientContext*, const Request&, Reply*),
                             const Request& request, Repeat repeat) const;

  std::shared_ptr<Connection> connection_;
  GcsClientOptions options_;
};

}  // namespace shoal
