// Helpers for the actor manager's tests: a GCS's actor manager over a fake transport and clock,
// actor registrations, and answers to its lease requests and creation pushes.
#pragma once

#include <catch2/catch.hpp>

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>

#include "src/common/fake_clock.h"
#include "src/gcs/actor_manager.h"
#include "src/gcs/fake_actor_transport.h"
#include "src/scheduler/hybrid_policy.h"
#include "tests/test_util/resource_helpers.h"
#include "tests/test_util/status_matchers.h"

namespace shoal::actor_test {

using test_util::RS;
using Call = FakeActorTransport::LeaseCall;

constexpr char kGcsAddress[] = "127.0.0.1:6379";
constexpr char kOwner[] = "127.0.0.1:5000";

inline rpc::ResourceMap Map(const std::map<std::string, double>& values) {
  rpc::ResourceMap out;
  RS(values).ToProto(&out);
  return out;
}

inline std::string RayletOf(int n) { return "10.0.0." + std::to_string(n) + ":7000"; }

// A GCS's actor manager over a memory (or given) store, a fake clock and a fake transport.
// The scheduling policy is the hybrid one unless the test passes another.
struct Gcs {
  explicit Gcs(StoreClient* shared_store = nullptr, std::unique_ptr<SchedulingPolicy> policy = nullptr)
      : store(shared_store != nullptr ? *shared_store : own_store),
        nodes(store, clock, feed),
        actors(std::make_unique<ActorManager>(
            store, clock, nodes, net,
            policy != nullptr ? std::move(policy) : std::make_unique<HybridSchedulingPolicy>(), Options())) {}

  static ActorManagerOptions Options() {
    return ActorManagerOptions{.gcs_address = kGcsAddress, .lease_retry_delay = absl::Seconds(1)};
  }

  // Registers node `n` at 10.0.0.<n>:7000. `available` defaults to the total.
  NodeId AddNode(int n, const std::map<std::string, double>& total, bool is_head = false,
                 std::optional<std::map<std::string, double>> available = std::nullopt) {
    const NodeId id = test_util::Id(n);
    rpc::NodeInfo node;
    node.set_node_id(id.Hex());
    node.set_address("10.0.0." + std::to_string(n));
    node.set_raylet_port(7000);
    node.set_is_head(is_head);
    *node.mutable_resources_total() = Map(total);
    REQUIRE_OK(nodes.Register(node));
    if (available) REQUIRE(nodes.ReportResources(id, Map(*available), {}));
    return id;
  }

  InMemoryStoreClient own_store;
  StoreClient& store;
  FakeClock clock;
  NodeChangeFeed feed;
  NodeTable nodes;
  FakeActorTransport net;
  std::unique_ptr<ActorManager> actors;
};

struct ActorOptions {
  JobId job = JobId::FromInt(1);
  std::string name;
  std::string ns;
  int max_restarts = 0;
  bool detached = false;
  std::map<std::string, double> resources = {{"CPU", 1}};
  bool get_if_exists = false;
  rpc::SchedulingStrategy strategy;
};

inline rpc::RegisterActorRequest MakeActor(const ActorOptions& o = {}) {
  rpc::RegisterActorRequest req;
  rpc::TaskSpec& spec = *req.mutable_creation_spec();
  const ActorId id = ActorId::Of(o.job);
  spec.set_task_id(TaskId::ForActorTask(id).Binary());
  spec.set_job_id(o.job.Hex());
  spec.set_function_name("Counter.__init__");
  spec.set_actor_id(id.Binary());
  spec.set_actor_creation(true);
  spec.set_owner_address(kOwner);
  spec.add_worker_command("/bin/worker");
  spec.set_num_returns(1);
  *spec.mutable_resources() = Map(o.resources);
  *spec.mutable_strategy() = o.strategy;
  rpc::ActorInfo& info = *req.mutable_info();
  info.set_class_name("Counter");
  info.set_name(o.name);
  info.set_ray_namespace(o.ns);
  info.set_detached(o.detached);
  info.set_max_restarts(o.max_restarts);
  info.set_owner_address(kOwner);
  info.set_handle_data("handle");
  req.set_get_if_exists(o.get_if_exists);
  return req;
}

inline ActorId IdOf(const rpc::RegisterActorRequest& req) { return *ActorId::FromBinary(req.creation_spec().actor_id()); }

// Answers the current entry (no wait).
inline rpc::ActorInfo Info(Gcs& gcs, const ActorId& id) {
  std::optional<absl::StatusOr<rpc::ActorInfo>> got;
  rpc::GetActorInfoRequest req;
  req.set_actor_id(id.Binary());
  gcs.actors->GetActorInfo(req, [&](absl::StatusOr<rpc::ActorInfo> info) { got = std::move(info); });
  REQUIRE(got.has_value());
  REQUIRE_OK(*got);
  return **got;
}

inline rpc::RequestWorkerLeaseReply Granted(const std::string& lease_id, const std::string& worker_id,
                                     const std::string& worker_address) {
  rpc::RequestWorkerLeaseReply r;
  r.set_kind(rpc::RequestWorkerLeaseReply::GRANTED);
  r.set_lease_id(lease_id);
  r.set_worker_id(worker_id);
  r.set_worker_address(worker_address);
  r.mutable_gpus()->add_device_ids(0);
  r.mutable_gpus()->add_shares(10000);
  return r;
}

// Grants the oldest lease request with a fresh worker; answers (lease id, worker id).
inline std::pair<std::string, std::string> GrantNext(Gcs& gcs, const std::string& worker_address = "10.0.0.1:9000") {
  auto call = gcs.net.TakeLease();
  REQUIRE(call.has_value());
  const std::string lease = WorkerId::FromRandom().Hex().substr(0, 32);
  const std::string worker = WorkerId::FromRandom().Hex();
  call->done(absl::OkStatus(), Granted(lease, worker, worker_address));
  return {lease, worker};
}

inline void PushOk(Gcs& gcs) {
  auto push = gcs.net.TakePush();
  REQUIRE(push.has_value());
  push->done(absl::OkStatus(), rpc::PushTaskReply());
}

// Registers and creates an actor: ALIVE. Answers (lease id, worker id).
inline std::pair<std::string, std::string> CreateAlive(Gcs& gcs, const rpc::RegisterActorRequest& req) {
  REQUIRE_OK(gcs.actors->RegisterActor(req));
  auto held = GrantNext(gcs);
  PushOk(gcs);
  REQUIRE(Info(gcs, IdOf(req)).state() == rpc::ActorInfo::ALIVE);
  return held;
}

inline rpc::ReportWorkerDeathRequest Death(const std::string& worker, const std::string& reason, bool owner_gone = false) {
  rpc::ReportWorkerDeathRequest r;
  r.set_node_id(test_util::Id(1).Hex());
  r.set_worker_id(worker);
  r.set_reason(reason);
  r.set_owner_gone(owner_gone);
  return r;
}

inline rpc::KillActorRequest Kill(const ActorId& id, bool no_restart) {
  rpc::KillActorRequest r;
  r.set_actor_id(id.Binary());
  r.set_no_restart(no_restart);
  return r;
}

inline bool Returned(Gcs& gcs, const std::string& lease, bool worker_failed) {
  for (const auto& r : gcs.net.returns()) {
    if (r.lease_id == lease && r.worker_failed == worker_failed) return true;
  }
  return false;
}

}  // namespace shoal::actor_test
