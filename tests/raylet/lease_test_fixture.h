// A LeaseManager on node 1 built on a fake process spawner and clock, with its replies captured
// by request id: the fixture of the lease manager's and bundle manager's tests.
#pragma once

#include <catch2/catch.hpp>

#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "shoal/common.pb.h"
#include "src/common/fake_clock.h"
#include "src/raylet/fake_process_spawner.h"
#include "src/common/runtime_env.h"
#include "src/raylet/lease_manager.h"
#include "src/scheduler/hybrid_policy.h"
#include "tests/test_util/resource_helpers.h"
#include "tests/test_util/status_matchers.h"

namespace shoal::raylet_test {

using test_util::RS;
using test_util::Id;

using Reply = rpc::RequestWorkerLeaseReply;

const JobId kJob = JobId::FromInt(7);
const std::vector<std::string> kCommand = {"/bin/worker"};

// A remote node as the GCS's node table lists it.
inline rpc::NodeInfo Node(int n, const std::map<std::string, double>& total,
                   std::optional<std::map<std::string, double>> available = {}, bool alive = true) {
  rpc::NodeInfo info;
  info.set_node_id(Id(n).Hex());
  info.set_address("10.0.0." + std::to_string(n));
  info.set_raylet_port(7000 + n);
  RS(total).ToProto(info.mutable_resources_total());
  RS(available.value_or(total)).ToProto(info.mutable_resources_available());
  info.set_state(alive ? rpc::NodeInfo::ALIVE : rpc::NodeInfo::DEAD);
  return info;
}

// Answers Prepare from a table filled by the test: by RuntimeEnvKey, a context, an error, or
// (absent) "being set up".
struct FakeRuntimeEnvs : RuntimeEnvProvider {
  std::map<std::string, absl::StatusOr<RuntimeEnvContext>> answers;
  int prepares = 0;
  absl::StatusOr<std::optional<RuntimeEnvContext>> Prepare(const rpc::RuntimeEnv& env) override {
    ++prepares;
    auto it = answers.find(RuntimeEnvKey(env));
    if (it == answers.end()) return std::nullopt;
    if (!it->second.ok()) return it->second.status();
    return std::optional<RuntimeEnvContext>(*it->second);
  }
};

struct Options {
  bool runtime_envs = true;  // give the manager the fixture's FakeRuntimeEnvs
  std::map<std::string, double> resources = {{"CPU", 4}, {"GPU", 2}};
  bool scheduling_disabled = false;
  int max_start_failures = 3;
  std::map<std::string, std::string> labels;
  const WorkerCommandPolicy* worker_commands = nullptr;  // borrowed; null: any command
};

// A lease manager on node 1 with a fake spawner and clock and the hybrid policy (or `policy`);
// replies are captured by request id.
class LeaseTest {
 public:
  explicit LeaseTest(Options o = {}, std::unique_ptr<SchedulingPolicy> policy = nullptr)
      : pool_(spawner, clock, PoolOptions()),
        leases(pool_, policy != nullptr ? std::move(policy) : std::make_unique<HybridSchedulingPolicy>(),
               ManagerOptions(o)) {}

  static WorkerPoolOptions PoolOptions() {
    WorkerPoolOptions p;
    p.node_id = Id(1);
    p.node_ip = "10.0.0.1";
    p.raylet_address = "10.0.0.1:7001";
    p.max_starting = 100;
    p.max_idle = 100;
    p.start_timeout = absl::Seconds(30);
    return p;
  }
  LeaseManagerOptions ManagerOptions(const Options& o) {
    LeaseManagerOptions m;
    m.on_leased_worker_death = [this](const WorkerId& worker, const std::string& reason, bool owner_gone) {
      deaths.push_back({worker.Hex(), reason, owner_gone});
    };
    m.node_id = Id(1);
    m.resources = RS(o.resources);
    m.scheduling_disabled = o.scheduling_disabled;
    m.max_start_failures = o.max_start_failures;
    m.labels = o.labels;
    if (o.runtime_envs) m.runtime_envs = &envs;
    m.worker_commands = o.worker_commands;
    return m;
  }

  uint64_t Request(const std::map<std::string, double>& resources, const std::string& job = kJob.Hex(),
                   std::vector<std::string> command = kCommand, bool grant_or_reject = false,
                   const std::string& owner = "") {
    rpc::RequestWorkerLeaseRequest req;
    for (const auto& [name, value] : resources) {
      (*req.mutable_resources()->mutable_amounts())[name] = static_cast<int64_t>(value * FixedPoint::kScale);
    }
    req.set_job_id(job);
    for (auto& c : command) req.add_worker_command(c);
    req.set_grant_or_reject(grant_or_reject);
    req.set_owner_address(owner);
    return Send(req);
  }
  // A request for exactly `demand` (e.g. a bundle demand, FormatBundleDemand).
  uint64_t RequestDemand(const ResourceSet& demand) {
    rpc::RequestWorkerLeaseRequest req;
    demand.ToProto(req.mutable_resources());
    req.set_job_id(kJob.Hex());
    for (const auto& c : kCommand) req.add_worker_command(c);
    return Send(req);
  }
  uint64_t Send(const rpc::RequestWorkerLeaseRequest& req) {
    uint64_t id = next_id_++;
    leases.RequestLease(id, req, [this, id](absl::StatusOr<Reply> r) {
      REQUIRE_FALSE(replies.contains(id));  // answered once
      replies.emplace(id, std::move(r));
    });
    return id;
  }
  bool Answered(uint64_t id) const { return replies.contains(id); }
  const Reply& ReplyOf(uint64_t id) {
    REQUIRE(replies.contains(id));
    REQUIRE_OK(replies.at(id));
    return *replies.at(id);
  }

  // Registers every started worker that has not registered yet (port = 5000 + spawn index).
  void RegisterAll() {
    auto spawned = spawner.spawned();
    for (size_t i = 0; i < spawned.size(); ++i) {
      const auto* p = spawned[i];
      if (p->exit || registered_.contains(p->pid)) continue;
      registered_.insert(p->pid);
      CHECK_OK(leases.RegisterWorker(p->Env("SHOAL_WORKER_ID"), 5000 + static_cast<int>(i), p->pid));
    }
  }
  // Requests and registers the worker: answers the GRANTED reply.
  Reply Grant(const std::map<std::string, double>& resources) {
    uint64_t id = Request(resources);
    RegisterAll();
    const Reply& r = ReplyOf(id);
    REQUIRE(r.kind() == Reply::GRANTED);
    return r;
  }
  int64_t PidOfWorker(const std::string& worker_hex) {
    for (const auto* p : spawner.spawned()) {
      if (p->Env("SHOAL_WORKER_ID") == worker_hex) return p->pid;
    }
    FAIL("no such worker");
    return 0;
  }
  ResourceSet Total() const { return leases.resources().total(); }

  FakeClock clock;
  FakeProcessSpawner spawner;
  FakeRuntimeEnvs envs;

 private:
  WorkerPool pool_;

 public:
  LeaseManager leases;
  std::map<uint64_t, absl::StatusOr<Reply>> replies;
  struct Death {
    std::string worker;
    std::string reason;
    bool owner_gone;
  };
  std::vector<Death> deaths;  // from on_leased_worker_death

 private:
  uint64_t next_id_ = 1;
  std::set<int64_t> registered_;
};

inline std::vector<int> Devices(const Reply& r) { return {r.gpus().device_ids().begin(), r.gpus().device_ids().end()}; }
inline std::vector<int64_t> Shares(const Reply& r) { return {r.gpus().shares().begin(), r.gpus().shares().end()}; }

}  // namespace shoal::raylet_test
