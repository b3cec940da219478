// GcsClient over the generic client pieces (src/common/rpc_client.h); see gcs_client.h.
#include "src/gcs_client/gcs_client.h"

#include <algorithm>
#include <tuple>
#include <type_traits>

#include "absl/strings/str_cat.h"
#include "src/common/rpc.h"
#include "src/common/rpc_client.h"

namespace shoal {

// What copies of a client share: the channel to the GCS, a stub per service, the async calls.
class GcsClient::Connection {
 public:
  explicit Connection(std::string address)
      : address_(std::move(address)), address_status_(ParseHostPort(address_).status()) {}

  const std::string& address() const { return address_; }
  const absl::Status& address_status() const { return address_status_; }
  // The stub of type `S` (e.g. rpc::KVService::Stub).
  template <typename S>
  std::shared_ptr<S> Stub() {
    std::shared_ptr<S> stub;
    std::apply(
        [&](auto&... cache) {
          auto pick = [&](auto& one) {
            if constexpr (std::is_same_v<typename std::remove_reference_t<decltype(one)>::Stub, S>) {
              stub = one.Get(address_);
            }
          };
          (pick(cache), ...);
        },
        stubs_);
    return stub;
  }
  std::shared_ptr<grpc::Channel> Channel() { return channels_.Get(address_); }
  // The call over `channel` failed to reach the GCS: the next call dials anew.
  void Reset(const std::shared_ptr<grpc::Channel>& channel) { channels_.Reset(address_, channel); }
  AsyncCalls& calls() { return calls_; }

 private:
  const std::string address_;
  const absl::Status address_status_;
  ChannelCache channels_;
  std::tuple<StubCache<rpc::NodeInfoService>, StubCache<rpc::KVService>, StubCache<rpc::JobInfoService>,
             StubCache<rpc::ClusterStatusService>, StubCache<rpc::ActorService>, StubCache<rpc::TaskEventService>,
             StubCache<rpc::PlacementGroupService>>
      stubs_{channels_, channels_, channels_, channels_, channels_, channels_, channels_};
  AsyncCalls calls_;  // last: destroyed first, waiting for callbacks while the rest is alive
};

GcsClient::GcsClient(GcsClientOptions options)
    : connection_(std::make_shared<Connection>(options.address)), options_(std::move(options)) {}

GcsClient GcsClient::WithTimeout(absl::Duration timeout) const {
  GcsClientOptions options = options_;
  options.timeout = timeout;
  return GcsClient(connection_, std::move(options));
}

template <typename Stub, typename Request, typename Reply>
absl::StatusOr<Reply> GcsClient::Call(grpc::Status (Stub::*method)(grpc::ClientContext*, const Request&, Reply*),
                                      const Request& request, Repeat repeat) const {
  if (!connection_->address_status().ok()) return connection_->address_status();
  const absl::Time start = absl::Now();
  const absl::Time deadline = start + options_.timeout;
  absl::Duration backoff = options_.initial_backoff;
  while (true) {
    std::shared_ptr<grpc::Channel> channel = connection_->Channel();
    Reply reply;
    absl::Status status = UnaryCall(*connection_->Stub<Stub>(), method, request, &reply,
                                    {.timeout = std::max(deadline - absl::Now(), absl::ZeroDuration())});
    if (status.ok()) return reply;
    if (absl::IsUnavailable(status)) connection_->Reset(channel);
    const absl::Duration left = deadline - absl::Now();
    const bool again = absl::IsUnavailable(status) && left > absl::ZeroDuration() &&
                       (repeat == Repeat::kSafe || NeverConnected(status));
    if (again) {
      absl::SleepFor(std::min(backoff, left));
      backoff = std::min(backoff * 2, options_.max_backoff);
      continue;
    }
    if (absl::IsUnavailable(status) || absl::IsDeadlineExceeded(status)) {
      return absl::UnavailableError(absl::StrCat("no GCS answered at ", connection_->address(), " (tried for ",
                                                 absl::FormatDuration(absl::Trunc(absl::Now() - start,
                                                                                  absl::Milliseconds(100))),
                                                 "): ", status.message()));
    }
    return status;  // the GCS's own answer
  }
}

// --- Nodes ---

absl::Status GcsClient::RegisterNode(const rpc::NodeInfo& node) const {
  rpc::RegisterNodeRequest request;
  *request.mutable_node() = node;
  return Call(&rpc::NodeInfoService::Stub::RegisterNode, request, Repeat::kSafe).status();
}

absl::Status GcsClient::UnregisterNode(const NodeId& node, const std::string& reason) const {
  rpc::UnregisterNodeRequest request;
  request.set_node_id(node.Hex());
  request.set_reason(reason);
  return Call(&rpc::NodeInfoService::Stub::UnregisterNode, request, Repeat::kSafe).status();
}

absl::StatusOr<std::vector<rpc::NodeInfo>> GcsClient::GetAllNodeInfo(bool alive_only) const {
  rpc::GetAllNodeInfoRequest request;
  request.set_alive_only(alive_only);
  auto reply = Call(&rpc::NodeInfoService::Stub::GetAllNodeInfo, request, Repeat::kSafe);
  if (!reply.ok()) return reply.status();
  return std::vector<rpc::NodeInfo>(reply->nodes().begin(), reply->nodes().end());
}

absl::flat_hash_set<std::string> GcsClient::DeadNodeIds() const {
  absl::flat_hash_set<std::string> dead;
  auto nodes = GetAllNodeInfo(/*alive_only=*/false);
  if (!nodes.ok()) return dead;
  for (const auto& n : *nodes) {
    if (n.state() == rpc::NodeInfo::DEAD) dead.insert(n.node_id());
  }
  return dead;
}

absl::StatusOr<bool> GcsClient::ReportResources(const rpc::ReportResourcesRequest& report) const {
  auto reply = Call(&rpc::NodeInfoService::Stub::ReportResources, report, Repeat::kSafe);
  if (!reply.ok()) return reply.status();
  return reply->known();
}

// --- Key-value store ---

absl::StatusOr<bool> GcsClient::KvPut(const std::string& ns, const std::string& key, const std::string& value,
                                      bool overwrite) const {
  rpc::KVPutRequest request;
  request.set_ns(ns);
  request.set_key(key);
  request.set_value(value);
  request.set_overwrite(overwrite);
  // Without overwrite, a repeat of a put that landed would answer "not added".
  auto reply = Call(&rpc::KVService::Stub::Put, request, overwrite ? Repeat::kSafe : Repeat::kOnlyIfUndelivered);
  if (!reply.ok()) return reply.status();
  return reply->added();
}

absl::StatusOr<std::string> GcsClient::KvGet(const std::string& ns, const std::string& key) const {
  rpc::KVGetRequest request;
  request.set_ns(ns);
  request.set_key(key);
  auto reply = Call(&rpc::KVService::Stub::Get, request, Repeat::kSafe);
  if (!reply.ok()) return reply.status();
  if (!reply->found()) return absl::NotFoundError(absl::StrCat("no key '", key, "' in namespace '", ns, "'"));
  return std::move(*reply->mutable_value());
}

absl::StatusOr<int64_t> GcsClient::KvDel(const std::string& ns, const std::string& key, bool by_prefix) const {
  rpc::KVDelRequest request;
  request.set_ns(ns);
  request.set_key(key);
  request.set_by_prefix(by_prefix);
  auto reply = Call(&rpc::KVService::Stub::Del, request, Repeat::kSafe);
  if (!reply.ok()) return reply.status();
  return reply->deleted();
}

absl::StatusOr<std::vector<std::string>> GcsClient::KvKeys(const std::string& ns, const std::string& prefix) const {
  rpc::KVKeysRequest request;
  request.set_ns(ns);
  request.set_prefix(prefix);
  auto reply = Call(&rpc::KVService::Stub::Keys, request, Repeat::kSafe);
  if (!reply.ok()) return reply.status();
  return std::vector<std::string>(reply->keys().begin(), reply->keys().end());
}

// --- Jobs ---

absl::StatusOr<JobId> GcsClient::AddJob(const rpc::JobInfo& job) const {
  rpc::AddJobRequest request;
  *request.mutable_job() = job;
  auto reply = Call(&rpc::JobInfoService::Stub::AddJob, request, Repeat::kOnlyIfUndelivered);
  if (!reply.ok()) return reply.status();
  absl::StatusOr<JobId> id = JobId::FromHex(reply->job_id());
  if (!id.ok()) return absl::InternalError(absl::StrCat("the GCS answered a bad job id: ", id.status().message()));
  return id;
}

absl::Status GcsClient::MarkJobFinished(const JobId& job) const {
  rpc::MarkJobFinishedRequest request;
  request.set_job_id(job.Hex());
  return Call(&rpc::JobInfoService::Stub::MarkJobFinished, request, Repeat::kSafe).status();
}

absl::StatusOr<std::vector<rpc::JobInfo>> GcsClient::GetAllJobInfo() const {
  auto reply = Call(&rpc::JobInfoService::Stub::GetAllJobInfo, rpc::GetAllJobInfoRequest(), Repeat::kSafe);
  if (!reply.ok()) return reply.status();
  return std::vector<rpc::JobInfo>(reply->jobs().begin(), reply->jobs().end());
}

// --- Cluster status ---

absl::StatusOr<rpc::GetClusterStatusReply> GcsClient::GetClusterStatus() const {
  return Call(&rpc::ClusterStatusService::Stub::GetClusterStatus, rpc::GetClusterStatusRequest(), Repeat::kSafe);
}

absl::StatusOr<rpc::RpcStats> GcsClient::GetRpcStats() const {
  auto reply = Call(&rpc::ClusterStatusService::Stub::GetRpcStats, rpc::GetRpcStatsRequest(), Repeat::kSafe);
  if (!reply.ok()) return reply.status();
  return reply->stats();
}

// --- Actors ---

absl::StatusOr<rpc::RegisterActorReply> GcsClient::RegisterActor(const rpc::RegisterActorRequest& request) const {
  return Call(&rpc::ActorService::Stub::RegisterActor, request, Repeat::kOnlyIfUndelivered);
}

absl::Status GcsClient::CreateActor(const rpc::CreateActorRequest& request) const {
  return Call(&rpc::ActorService::Stub::CreateActor, request, Repeat::kSafe).status();
}

absl::StatusOr<rpc::ActorInfo> GcsClient::GetActorInfo(const ActorId& actor) const {
  rpc::GetActorInfoRequest request;
  request.set_actor_id(actor.Binary());
  request.set_after_version(-1);  // answer now
  request.set_wait_ms(0);
  auto reply = Call(&rpc::ActorService::Stub::GetActorInfo, request, Repeat::kSafe);
  if (!reply.ok()) return reply.status();
  return reply->info();
}

absl::StatusOr<rpc::ActorInfo> GcsClient::GetNamedActor(const std::string& name,
                                                        const std::string& ray_namespace) const {
  rpc::GetNamedActorRequest request;
  request.set_name(name);
  request.set_ray_namespace(ray_namespace);
  auto reply = Call(&rpc::ActorService::Stub::GetNamedActor, request, Repeat::kSafe);
  if (!reply.ok()) return reply.status();
  return reply->info();
}

absl::StatusOr<rpc::ListActorsReply> GcsClient::ListActors(int limit) const {
  rpc::ListActorsRequest request;
  request.set_limit(limit);
  return Call(&rpc::ActorService::Stub::ListActors, request, Repeat::kSafe);
}

absl::Status GcsClient::KillActor(const ActorId& actor, bool no_restart) const {
  rpc::KillActorRequest request;
  request.set_actor_id(actor.Binary());
  request.set_no_restart(no_restart);
  return Call(&rpc::ActorService::Stub::KillActor, request, Repeat::kSafe).status();
}

// --- Placement groups ---

absl::Status GcsClient::CreatePlacementGroup(const rpc::PlacementGroupInfo& info) const {
  rpc::CreatePlacementGroupRequest request;
  *request.mutable_info() = info;
  // The id is the caller's: a repeat that finds it registered is the same group.
  auto reply = Call(&rpc::PlacementGroupService::Stub::CreatePlacementGroup, request, Repeat::kOnlyIfUndelivered);
  return reply.status();
}

absl::Status GcsClient::RemovePlacementGroup(const std::string& placement_group_id) const {
  rpc::RemovePlacementGroupRequest request;
  request.set_placement_group_id(placement_group_id);
  return Call(&rpc::PlacementGroupService::Stub::RemovePlacementGroup, request, Repeat::kSafe).status();
}

absl::StatusOr<rpc::PlacementGroupInfo> GcsClient::GetPlacementGroup(const std::string& placement_group_id) const {
  rpc::GetPlacementGroupRequest request;
  request.set_placement_group_id(placement_group_id);
  auto reply = Call(&rpc::PlacementGroupService::Stub::GetPlacementGroup, request, Repeat::kSafe);
  if (!reply.ok()) return reply.status();
  return reply->info();
}

absl::StatusOr<rpc::PlacementGroupInfo> GcsClient::GetNamedPlacementGroup(const std::string& name,
                                                                          const std::string& ray_namespace) const {
  rpc::GetPlacementGroupRequest request;
  request.set_name(name);
  request.set_ray_namespace(ray_namespace);
  auto reply = Call(&rpc::PlacementGroupService::Stub::GetPlacementGroup, request, Repeat::kSafe);
  if (!reply.ok()) return reply.status();
  return reply->info();
}

absl::StatusOr<std::vector<rpc::PlacementGroupInfo>> GcsClient::GetAllPlacementGroups(int limit) const {
  rpc::GetAllPlacementGroupRequest request;
  request.set_limit(limit);
  auto reply = Call(&rpc::PlacementGroupService::Stub::GetAllPlacementGroup, request, Repeat::kSafe);
  if (!reply.ok()) return reply.status();
  return std::vector<rpc::PlacementGroupInfo>(reply->groups().begin(), reply->groups().end());
}

absl::StatusOr<bool> GcsClient::WaitPlacementGroupUntilReady(const std::string& placement_group_id,
                                                             absl::Duration timeout) const {
  constexpr absl::Duration kSlice = absl::Seconds(5);
  const bool forever = timeout < absl::ZeroDuration();
  const absl::Time deadline = forever ? absl::InfiniteFuture() : absl::Now() + timeout;
  while (true) {
    const absl::Duration left = deadline - absl::Now();
    const absl::Duration slice = std::max(absl::ZeroDuration(), std::min(left, kSlice));
    rpc::WaitPlacementGroupUntilReadyRequest request;
    request.set_placement_group_id(placement_group_id);
    request.set_timeout_ms(absl::ToInt64Milliseconds(slice));
    // The GCS answers by the end of the slice; the client's own deadline leaves it room.
    auto reply = WithTimeout(slice + std::max(options_.timeout, absl::Seconds(5)))
                     .Call(&rpc::PlacementGroupService::Stub::WaitPlacementGroupUntilReady, request, Repeat::kSafe);
    if (reply.ok() && reply->info().state() == rpc::PlacementGroupInfo::CREATED) return true;
    if (!reply.ok() && (absl::IsNotFound(reply.status()) || absl::IsFailedPrecondition(reply.status()) ||
                        absl::IsInvalidArgument(reply.status()) || absl::IsUnauthenticated(reply.status()))) {
      return reply.status();
    }
    // Not ready within the slice (an OK answer with the entry as it is, or DEADLINE_EXCEEDED,
    // which this client reports as Unavailable), or the GCS is restarting: look again.
    if (absl::Now() >= deadline) {
      auto info = GetPlacementGroup(placement_group_id);
      if (!info.ok()) return info.status();
      if (info->state() == rpc::PlacementGroupInfo::REMOVED) {
        return absl::FailedPreconditionError("the placement group was removed before it was created");
      }
      return info->state() == rpc::PlacementGroupInfo::CREATED;
    }
    if (!reply.ok()) absl::SleepFor(std::min(absl::Milliseconds(200), deadline - absl::Now()));
  }
}

// --- Tasks ---

absl::StatusOr<rpc::ListTasksReply> GcsClient::ListTasks(int limit) const {
  rpc::ListTasksRequest request;
  request.set_limit(limit);
  return Call(&rpc::TaskEventService::Stub::ListTasks, request, Repeat::kSafe);
}

// --- Asynchronous calls ---

namespace {

// Wraps `done` so that a call that could not reach the GCS makes the next call dial anew.
template <typename Reply, typename Connection>
GcsClient::Callback<Reply> ResetOnUnavailable(Connection* connection, std::shared_ptr<grpc::Channel> channel,
                                              GcsClient::Callback<Reply> done) {
  return [connection, channel = std::move(channel), done = std::move(done)](absl::Status status, Reply reply) {
    if (absl::IsUnavailable(status)) connection->Reset(channel);
    if (done) done(std::move(status), std::move(reply));
  };
}

// Sends `request` once without waiting; `done` (may be empty) gets the call's status alone.
// S and Reply are named by the caller (the async method is overloaded).
template <typename S, typename Reply, typename Request, typename Connection>
void StartStatusCall(Connection* connection, absl::Duration timeout, AsyncMethod<S, Request, Reply> method,
                     Request request, std::function<void(absl::Status)> done) {
  if (!connection->address_status().ok()) {
    if (done) done(connection->address_status());
    return;
  }
  GcsClient::Callback<Reply> on_reply;
  if (done) on_reply = [done = std::move(done)](absl::Status status, Reply) { done(std::move(status)); };
  connection->calls().Start(connection->template Stub<S>(), method, std::move(request), {.timeout = timeout},
                            ResetOnUnavailable(connection, connection->Channel(), std::move(on_reply)));
}

}  // namespace

void GcsClient::AsyncGetActorInfo(const ActorId& actor, int64_t after_version, absl::Duration wait,
                                  Callback<rpc::GetActorInfoReply> done) const {
  if (!connection_->address_status().ok()) {
    done(connection_->address_status(), rpc::GetActorInfoReply());
    return;
  }
  rpc::GetActorInfoRequest request;
  request.set_actor_id(actor.Binary());
  request.set_after_version(after_version);
  request.set_wait_ms(absl::ToInt64Milliseconds(wait));
  connection_->calls().Start(connection_->Stub<rpc::ActorService::Stub>(), &rpc::ActorService::Stub::async::GetActorInfo,
                             std::move(request), {.timeout = wait + options_.timeout, .cancel_on_shutdown = true},
                             ResetOnUnavailable(connection_.get(), connection_->Channel(), std::move(done)));
}

void GcsClient::AsyncReportTaskEvents(rpc::ReportTaskEventsRequest events) const {
  if (!connection_->address_status().ok()) return;
  connection_->calls().Start(connection_->Stub<rpc::TaskEventService::Stub>(),
                             &rpc::TaskEventService::Stub::async::ReportTaskEvents, std::move(events),
                             {.timeout = options_.timeout},
                             ResetOnUnavailable<rpc::ReportTaskEventsReply>(connection_.get(), connection_->Channel(),
                                                                            nullptr));
}

void GcsClient::AsyncReportWorkerDeath(rpc::ReportWorkerDeathRequest death,
                                       std::function<void(absl::Status)> done) const {
  StartStatusCall<rpc::ActorService::Stub, rpc::ReportWorkerDeathReply>(
      connection_.get(), options_.timeout, &rpc::ActorService::Stub::async::ReportWorkerDeath, std::move(death),
      std::move(done));
}

void GcsClient::AsyncCreatePlacementGroup(const rpc::PlacementGroupInfo& info,
                                          std::function<void(absl::Status)> done) const {
  rpc::CreatePlacementGroupRequest request;
  *request.mutable_info() = info;
  StartStatusCall<rpc::PlacementGroupService::Stub, rpc::CreatePlacementGroupReply>(
      connection_.get(), options_.timeout, &rpc::PlacementGroupService::Stub::async::CreatePlacementGroup,
      std::move(request), std::move(done));
}

void GcsClient::AsyncRemovePlacementGroup(const std::string& placement_group_id,
                                          std::function<void(absl::Status)> done) const {
  rpc::RemovePlacementGroupRequest request;
  request.set_placement_group_id(placement_group_id);
  StartStatusCall<rpc::PlacementGroupService::Stub, rpc::RemovePlacementGroupReply>(
      connection_.get(), options_.timeout, &rpc::PlacementGroupService::Stub::async::RemovePlacementGroup,
      std::move(request), std::move(done));
}

void GcsClient::Shutdown(absl::Duration timeout) const { connection_->calls().Shutdown(timeout); }

}  // namespace shoal
