#include "src/raylet/lease_manager.h"

#include <set>
#include <tuple>
#include <utility>

#include "absl/strings/str_cat.h"
#include "shoal/common.pb.h"
#include "spdlog/spdlog.h"
#include "src/common/runtime_env.h"

namespace shoal {
namespace {

using Reply = rpc::RequestWorkerLeaseReply;

// The same checks ResourceSet::FromDoubles makes, on fixed-point units from the wire.
absl::StatusOr<ResourceSet> DemandFromProto(const rpc::ResourceMap& map) {
  constexpr double kMaxUnits = FixedPoint::kMaxValue * FixedPoint::kScale;
  ResourceSet out;  // empty asks for nothing (an actor that holds no resources); callers pick defaults
  for (const auto& [name, units] : map.amounts()) {
    if (name.empty() || name.size() > 256) {
      return absl::InvalidArgumentError("a resource name must have 1 to 256 characters");
    }
    for (unsigned char c : name) {
      if (c <= ' ' || c == 0x7f) {
        return absl::InvalidArgumentError(absl::StrCat("resource name '", name, "' has a space or control character"));
      }
    }
    if (units < 0) {
      return absl::InvalidArgumentError(absl::StrCat("resource '", name, "' must not be negative, got ",
                                                     static_cast<double>(units) / FixedPoint::kScale));
    }
    if (static_cast<double>(units) > kMaxUnits) {
      return absl::InvalidArgumentError(absl::StrCat("resource '", name, "' asks for ",
                                                     static_cast<double>(units) / FixedPoint::kScale,
                                                     ", more than any node can have"));
    }
    out.Set(name, FixedPoint::FromUnits(units));
  }
  return out;
}

// The strategy's label selector (already validated) accepts a node with `labels`.
bool SelectorMatches(const rpc::SchedulingStrategy& strategy, const Labels& labels) {
  if (strategy.label_selector().empty()) return true;
  absl::StatusOr<LabelSelector> selector = LabelSelector::Parse(strategy.label_selector());
  return selector.ok() && selector->Matches(labels);
}

// The node's reported per-device GPU shares when they agree with its GPU total and available
// sum (ClusterResourceView's rules); empty, so that only the sum is judged, otherwise (a report
// from before a spillback correction, or from an older raylet).
std::vector<FixedPoint> GpuFreeOf(const rpc::NodeInfo& info, const NodeView& v) {
  const FixedPoint total = v.total.Get(kGPU);
  if (info.gpu_free().empty() || !total.IsInteger() ||
      info.gpu_free_size() != total.units() / FixedPoint::kScale) {
    return {};
  }
  std::vector<FixedPoint> out;
  FixedPoint sum;
  for (int64_t units : info.gpu_free()) {
    const FixedPoint share = FixedPoint::FromUnits(units);
    if (share < FixedPoint() || share > FixedPoint::FromInt(1)) return {};
    sum += share;
    out.push_back(share);
  }
  if (sum != v.available.Get(kGPU)) return {};
  return out;
}

}  // namespace

LeaseManager::LeaseManager(WorkerPool& pool, std::unique_ptr<SchedulingPolicy> policy, LeaseManagerOptions options)
    : pool_(pool),
      options_(std::move(options)),
      resources_(options_.resources),
      policy_(std::move(policy)) {
  if (auto s = view_.AddOrUpdateNode(LocalView()); !s.ok()) {
    spdlog::error("cannot add this node to the cluster view: {}", s.ToString());
  }
}

NodeView LeaseManager::LocalView() const {
  NodeView v;
  v.id = options_.node_id;
  v.total = resources_.total();
  v.available = resources_.Available();
  if (const ResourceInstances* gpus = resources_.Instances(kGPU)) v.gpu_free = gpus->free();
  v.labels = options_.labels;
  v.alive = true;
  v.scheduling_disabled = options_.scheduling_disabled;
  v.is_head = options_.is_head;
  return v;
}

void LeaseManager::SyncLocalView() const {
  if (!local_view_stale_) return;
  local_view_stale_ = false;
  // The total changes when bundles come and go: then the whole entry is replaced.
  const NodeView* self = view_.Find(options_.node_id);
  if (self == nullptr || !(self->total == resources_.total())) {
    if (auto s = view_.AddOrUpdateNode(LocalView()); !s.ok()) {
      spdlog::error("cannot update this node in the cluster view: {}", s.ToString());
    }
    return;
  }
  if (auto s = view_.UpdateAvailable(options_.node_id, resources_); !s.ok()) {
    spdlog::error("cannot update this node in the cluster view: {}", s.ToString());
  }
}

absl::StatusOr<LeaseManager::Pending> LeaseManager::Parse(const rpc::RequestWorkerLeaseRequest& request) const {
  Pending p;
  auto demand = DemandFromProto(request.resources());
  if (!demand.ok()) return demand.status();
  if (auto s = ValidateDemand(*demand); !s.ok()) return s;
  p.demand = *std::move(demand);
  if (auto s = ValidateStrategy(request.strategy()); !s.ok()) return s;
  p.strategy = request.strategy();
  p.strategy_key = StrategyKey(p.strategy);
  if (request.job_id().empty()) return absl::InvalidArgumentError("job_id is required");
  auto job = JobId::FromHex(request.job_id());
  if (!job.ok()) return absl::InvalidArgumentError(absl::StrCat("job_id: ", job.status().message()));
  if (request.worker_command().empty() || request.worker_command(0).empty()) {
    return absl::InvalidArgumentError("worker_command must name the worker executable");
  }
  if (options_.worker_commands != nullptr) {
    const std::vector<std::string> argv(request.worker_command().begin(), request.worker_command().end());
    if (auto s = options_.worker_commands->CheckCommand(argv); !s.ok()) return s;
    if (!request.runtime_env().interpreter().empty()) {
      if (auto s = options_.worker_commands->CheckInterpreter(request.runtime_env().interpreter()); !s.ok()) return s;
    }
  }
  if (auto s = ValidateRuntimeEnv(request.runtime_env()); !s.ok()) return s;
  if (!IsEmptyRuntimeEnv(request.runtime_env()) && options_.runtime_envs == nullptr) {
    return absl::FailedPreconditionError("this raylet cannot set up runtime environments");
  }
  p.runtime_env = request.runtime_env();
  bool gpu = false;
  for (const auto& [name, amount] : p.demand.entries()) {
    gpu |= !amount.IsZero() && (name == kGPU || IsBundleGpuResource(name));
  }
  p.key = WorkerKey{.job = *job,
                    .command = {request.worker_command().begin(), request.worker_command().end()},
                    .env_key = RuntimeEnvKey(request.runtime_env()),
                    .gpu = gpu};
  p.grant_or_reject = request.grant_or_reject();
  p.owner_address = request.owner_address();
  p.retriable = request.retriable();
  if (std::string removed = RemovedGroupOf(p.demand); !removed.empty()) {
    return absl::FailedPreconditionError(removed);
  }
  return p;
}

void LeaseManager::RequestLease(uint64_t request_id, const rpc::RequestWorkerLeaseRequest& request,
                                ReplyCallback reply) {
  if (!shutdown_.ok()) {
    reply(shutdown_);
    return;
  }
  if (seq_of_request_.contains(request_id)) {
    reply(absl::AlreadyExistsError(absl::StrCat("lease request ", request_id, " is already waiting")));
    return;
  }
  auto parsed = Parse(request);
  if (!parsed.ok()) {
    spdlog::info("rejected a lease request: {}", std::string(parsed.status().message()));
    Reply r;
    r.set_kind(Reply::REJECTED);
    r.set_message(std::string(parsed.status().message()));
    reply(std::move(r));
    return;
  }
  const uint64_t seq = next_seq_++;
  Pending& p = pending_.emplace(seq, *std::move(parsed)).first->second;
  p.request_id = request_id;
  p.reply = std::move(reply);
  seq_of_request_[request_id] = seq;
  // Older waiting requests saw the same state already: only the new one needs placing.
  TrySchedule(p, seq);
  if (MatchWorkers()) Dispatch();
}

bool LeaseManager::TrySchedule(Pending& p, uint64_t seq) {
  SyncLocalView();
  const NodeView* local = view_.Find(options_.node_id);
  std::optional<SchedulingDecision> decision;
  if (p.grant_or_reject && !options_.scheduling_disabled && local != nullptr &&
      NodeRoom::Total(*local).Fits(p.demand) && SelectorMatches(p.strategy, local->labels)) {
    // Spilled here by another raylet: grant or wait, never spill again.
    decision = NodeRoom::Available(*local).Fits(p.demand)
                   ? SchedulingDecision::RunLocal(options_.node_id)
                   : SchedulingDecision::Queue(options_.node_id, "spilled here; waiting for room");
  } else {
    auto d = policy_->Schedule(view_, options_.node_id, SchedulingRequest{p.demand, p.strategy});
    if (!d.ok()) {
      Reject(seq, std::string(d.status().message()));
      return true;
    }
    decision = *d;
  }
  switch (decision->kind) {
    case SchedulingDecision::Kind::kRunLocal: {
      auto allocation = resources_.Allocate(p.demand);
      if (!allocation.ok()) {
        spdlog::debug("view said {} fits here, but: {}", p.demand.ToString(), allocation.status().ToString());
        return false;
      }
      p.allocation = *std::move(allocation);
      RefreshLocalView();
      return true;
    }
    case SchedulingDecision::Kind::kSpillback: {
      auto it = raylet_addresses_.find(decision->node);
      if (it == raylet_addresses_.end()) {
        spdlog::error("spillback target {} has no known address", decision->node.Hex());
        return false;
      }
      // Until the target's next report, count the request as running there, so that a burst
      // of requests spreads over the nodes that have room instead of piling onto one.
      // GPU shares are taken per device where the target's are known, so a burst of fractional
      // GPU requests spreads too.
      (void)view_.TakeAvailable(decision->node, p.demand);
      Reply r;
      r.set_kind(Reply::SPILLBACK);
      r.set_spillback_raylet_address(it->second);
      r.set_spillback_node_id(decision->node.Hex());
      Answer(seq, std::move(r));
      return true;
    }
    case SchedulingDecision::Kind::kUnschedulable:
      // It can never be met (a hard affinity to a dead node): say so rather than wait forever.
      Reject(seq, decision->reason);
      return true;
    case SchedulingDecision::Kind::kInfeasible:
    case SchedulingDecision::Kind::kQueue:
      return false;
  }
  return false;
}

void LeaseManager::Dispatch() {
  if (dispatching_) return;
  dispatching_ = true;
  bool again = true;
  while (again) {
    // Equal requests (shape, strategy, spilled here or not) get the same answer until the state
    // changes (the SchedulingPolicy contract): once one waits, the rest of this pass skips them.
    std::set<std::tuple<bool, std::map<std::string, FixedPoint>, std::string>> waiting;
    for (auto it = pending_.begin(); it != pending_.end();) {
      const uint64_t seq = it->first;
      Pending& p = it->second;
      ++it;  // TrySchedule may answer (and erase) p
      if (p.allocation) continue;
      auto key = std::make_tuple(p.grant_or_reject, p.demand.entries(), p.strategy_key);
      if (waiting.contains(key)) continue;
      if (!TrySchedule(p, seq)) waiting.insert(std::move(key));
    }
    again = MatchWorkers();
  }
  dispatching_ = false;
}

bool LeaseManager::MatchWorkers() {
  std::map<WorkerKey, std::pair<int, rpc::RuntimeEnv>> unmatched;
  for (auto it = pending_.begin(); it != pending_.end();) {
    const uint64_t seq = it->first;
    Pending& p = it->second;
    ++it;
    if (!p.allocation) continue;
    if (auto worker = pool_.PopIdleWorker(p.key)) {
      Grant(seq, *worker);
    } else {
      auto& [count, env] = unmatched[p.key];
      if (count++ == 0) env = p.runtime_env;
    }
  }
  bool freed = false;
  for (const auto& [key, wanted] : unmatched) {
    const auto& [count, runtime_env] = wanted;
    std::optional<RuntimeEnvContext> context;
    if (!key.env_key.empty() && count > pool_.NumStarting(key) && pool_.CanStartWorker()) {
      auto prepared = options_.runtime_envs->Prepare(runtime_env);
      if (!prepared.ok()) {
        rpc::ErrorInfo failure;
        failure.set_type(rpc::RUNTIME_ENV_SETUP_FAILED);
        failure.set_message(absl::StrCat("the runtime environment could not be set up on node ",
                                         options_.node_id.Hex(), ": ", prepared.status().message()));
        freed |= RejectKey(key, failure.message(), &failure);
        continue;
      }
      if (!prepared->has_value()) continue;  // being set up: Reschedule once it is
      context = **prepared;
    }
    for (int need = count - pool_.NumStarting(key); need > 0 && pool_.CanStartWorker(); --need) {
      auto started = pool_.StartWorker(key, context ? &*context : nullptr);
      if (started.ok()) continue;
      const absl::StatusCode code = started.status().code();
      if (code == absl::StatusCode::kNotFound || code == absl::StatusCode::kPermissionDenied ||
          code == absl::StatusCode::kInvalidArgument) {
        // The command cannot run at all: trying again would fail the same way.
        freed |= RejectKey(key, absl::StrCat("cannot start a worker: ", started.status().message()));
      }  // otherwise (fork failed, too many processes...) try again on the next Tick
      break;
    }
  }
  return freed;
}

void LeaseManager::Grant(uint64_t seq, const WorkerPool::Worker& worker) {
  Pending& p = pending_.at(seq);
  Lease lease{.id = LeaseId::FromRandom(), .worker = worker.id, .allocation = *std::move(p.allocation),
              .owner_address = p.owner_address, .retriable = p.retriable};
  Reply r;
  r.set_kind(Reply::GRANTED);
  r.set_lease_id(lease.id.Hex());
  r.set_worker_id(worker.id.Hex());
  r.set_worker_address(worker.address);
  // A task in a bundle gets the bundle's devices: its GPU_group_* names hold them.
  const std::string gpu_name = lease.allocation.GpuName();
  if (auto it = lease.allocation.instances.find(gpu_name); it != lease.allocation.instances.end()) {
    for (int index : lease.allocation.DeviceIndices(gpu_name)) {
      r.mutable_gpus()->add_device_ids(index);
      r.mutable_gpus()->add_shares(it->second[index].units());
    }
  }
  lease.allocation.amounts.ToProto(r.mutable_granted());
  spdlog::debug("lease {} granted: worker {} for {}", lease.id.Hex(), worker.id.Hex(),
                lease.allocation.amounts.ToString());
  lease_of_worker_[worker.id] = lease.id;
  leases_.emplace(lease.id, std::move(lease));
  Answer(seq, std::move(r));
}

void LeaseManager::Answer(uint64_t seq, absl::StatusOr<Reply> reply) {
  auto it = pending_.find(seq);
  ReplyCallback callback = std::move(it->second.reply);
  seq_of_request_.erase(it->second.request_id);
  pending_.erase(it);
  callback(std::move(reply));
}

void LeaseManager::Reject(uint64_t seq, const std::string& message, const rpc::ErrorInfo* failure) {
  Pending& p = pending_.at(seq);
  if (p.allocation) {
    FreeAllocation(*p.allocation);
    p.allocation.reset();
  }
  spdlog::info("rejected a lease request for {}: {}", p.key.ToString(), message);
  Reply r;
  r.set_kind(Reply::REJECTED);
  r.set_message(message);
  if (failure != nullptr) *r.mutable_failure() = *failure;
  Answer(seq, std::move(r));
}

bool LeaseManager::RejectKey(const WorkerKey& key, const std::string& message, const rpc::ErrorInfo* failure) {
  bool freed = false;
  for (auto it = pending_.begin(); it != pending_.end();) {
    const uint64_t seq = it->first;
    const bool match = it->second.key == key;
    freed |= match && it->second.allocation.has_value();
    ++it;
    if (match) Reject(seq, message, failure);
  }
  return freed;
}

bool LeaseManager::CancelRequest(uint64_t request_id) {
  auto found = seq_of_request_.find(request_id);
  if (found == seq_of_request_.end()) return false;
  auto it = pending_.find(found->second);
  const bool held = it->second.allocation.has_value();
  if (held) FreeAllocation(*it->second.allocation);
  seq_of_request_.erase(found);
  pending_.erase(it);
  if (held) Dispatch();
  return true;
}

void LeaseManager::FreeAllocation(const ResourceAllocation& allocation) {
  if (auto s = resources_.Free(allocation); !s.ok()) {
    spdlog::error("freeing {} failed: {}", allocation.amounts.ToString(), s.ToString());
  }
  RefreshLocalView();
}

namespace {
// The CPU part of an allocation.
ResourceAllocation CpuPart(const ResourceAllocation& allocation) {
  ResourceAllocation cpu;
  cpu.amounts.Set(kCPU, allocation.amounts.Get(kCPU));
  return cpu;
}
}  // namespace

absl::Status LeaseManager::SetWorkerBlocked(const std::string& worker_id_hex, bool blocked) {
  auto id = WorkerId::FromHex(worker_id_hex);
  if (!id.ok()) return absl::InvalidArgumentError(absl::StrCat("worker_id: ", id.status().message()));
  auto found = lease_of_worker_.find(*id);
  if (found == lease_of_worker_.end()) return absl::NotFoundError(absl::StrCat("worker ", worker_id_hex, " holds no lease"));
  Lease& lease = leases_.at(found->second);
  const ResourceAllocation cpu = CpuPart(lease.allocation);
  if (cpu.amounts.IsEmpty() || blocked == lease.cpu_lent) return absl::OkStatus();
  if (blocked) {
    FreeAllocation(cpu);
    lease.cpu_lent = true;
    Dispatch();
  } else if (resources_.Allocate(cpu.amounts).ok()) {
    lease.cpu_lent = false;
    RefreshLocalView();
  }
  return absl::OkStatus();
}

std::vector<LeasedWorker> LeaseManager::LeasedWorkers() const {
  std::vector<LeasedWorker> out;
  out.reserve(leases_.size());
  for (const auto& [id, lease] : leases_) {
    const WorkerPool::Worker* w = pool_.Find(lease.worker);
    if (w == nullptr) continue;
    out.push_back(LeasedWorker{.worker = lease.worker, .pid = w->pid, .owner = lease.owner_address,
                               .retriable = lease.retriable, .leased_at = w->leased_at});
  }
  return out;
}

absl::Status LeaseManager::KillLeasedWorker(const WorkerId& worker, const rpc::ErrorInfo& cause) {
  auto found = lease_of_worker_.find(worker);
  if (found == lease_of_worker_.end()) {
    return absl::NotFoundError(absl::StrCat("worker ", worker.Hex(), " holds no lease"));
  }
  KillLease(leases_.find(found->second), cause);
  Dispatch();
  return absl::OkStatus();
}

void LeaseManager::KillLease(absl::flat_hash_map<LeaseId, Lease>::iterator it, const rpc::ErrorInfo& cause) {
  const LeaseId lease = it->first;
  const WorkerId worker = it->second.worker;
  EndLease(it);
  if (death_causes_.insert_or_assign(lease, cause).second) death_order_.push_back(lease);
  while (death_order_.size() > kMaxDeathCauses) {
    death_causes_.erase(death_order_.front());
    death_order_.pop_front();
  }
  (void)pool_.KillWorker(worker, cause.message());
  if (options_.on_leased_worker_death) {
    options_.on_leased_worker_death(worker, absl::StrCat("killed: ", cause.message()), false);
  }
}

std::optional<rpc::ErrorInfo> LeaseManager::TakeDeathCause(const std::string& lease_id_hex) {
  auto id = LeaseId::FromHex(lease_id_hex);
  if (!id.ok()) return std::nullopt;
  auto it = death_causes_.find(*id);
  if (it == death_causes_.end()) return std::nullopt;
  rpc::ErrorInfo cause = std::move(it->second);
  death_causes_.erase(it);
  std::erase(death_order_, *id);
  return cause;
}

void LeaseManager::EndLease(absl::flat_hash_map<LeaseId, Lease>::iterator it) {
  if (it->second.cpu_lent) {
    ResourceAllocation held = it->second.allocation;
    held.amounts.Set(kCPU, FixedPoint());
    FreeAllocation(held);
  } else {
    FreeAllocation(it->second.allocation);
  }
  lease_of_worker_.erase(it->second.worker);
  leases_.erase(it);
}

absl::Status LeaseManager::ReturnWorker(const std::string& lease_id_hex, bool worker_failed) {
  auto id = LeaseId::FromHex(lease_id_hex);
  if (!id.ok()) return absl::InvalidArgumentError(absl::StrCat("lease_id: ", id.status().message()));
  auto it = leases_.find(*id);
  if (it == leases_.end()) {
    return absl::NotFoundError(absl::StrCat("no lease ", lease_id_hex, " (returned already, or its worker died)"));
  }
  const WorkerId worker = it->second.worker;
  EndLease(it);
  if (worker_failed) {
    (void)pool_.KillWorker(worker, "its owner reported it failed");
  } else if (auto s = pool_.ReturnWorker(worker); !s.ok()) {
    spdlog::warn("returning worker {}: {}", worker.Hex(), s.ToString());
  }
  Dispatch();
  return absl::OkStatus();
}

absl::Status LeaseManager::RegisterWorker(const std::string& worker_id_hex, int port, int64_t pid) {
  auto id = WorkerId::FromHex(worker_id_hex);
  if (!id.ok()) return absl::InvalidArgumentError(absl::StrCat("worker_id: ", id.status().message()));
  if (auto s = pool_.RegisterWorker(*id, port, pid); !s.ok()) return s;
  Dispatch();
  return absl::OkStatus();
}

int LeaseManager::ReleaseLeasesOfOwner(const std::string& owner_address, const std::string& reason) {
  if (owner_address.empty()) return 0;
  // Its waiting requests first, so that the resources freed below cannot go to them.
  std::vector<uint64_t> dropped;
  for (const auto& [seq, p] : pending_) {
    if (p.owner_address == owner_address) dropped.push_back(seq);
  }
  for (uint64_t seq : dropped) {
    auto it = pending_.find(seq);
    if (it->second.allocation) FreeAllocation(*it->second.allocation);
    seq_of_request_.erase(it->second.request_id);
    ReplyCallback reply = std::move(it->second.reply);
    pending_.erase(it);
    reply(absl::UnavailableError(absl::StrCat("the owner ", owner_address, " ", reason)));
  }
  std::vector<LeaseId> ended;
  for (const auto& [id, lease] : leases_) {
    if (lease.owner_address == owner_address) ended.push_back(id);
  }
  for (const LeaseId& id : ended) {
    auto it = leases_.find(id);
    const WorkerId worker = it->second.worker;
    EndLease(it);
    const std::string why = absl::StrCat("the owner of its lease, ", owner_address, ", ", reason);
    (void)pool_.KillWorker(worker, why);
    if (options_.on_leased_worker_death) options_.on_leased_worker_death(worker, absl::StrCat("killed: ", why), true);
  }
  if (!ended.empty() || !dropped.empty()) Dispatch();
  return static_cast<int>(ended.size());
}

void LeaseManager::Tick() {
  for (const WorkerPool::Exit& exit : pool_.Tick()) {
    if (auto it = lease_of_worker_.find(exit.id); it != lease_of_worker_.end()) {
      spdlog::warn("lease {} ended: its worker {} {}", it->second.Hex(), exit.id.Hex(), exit.reason);
      EndLease(leases_.find(it->second));
      if (options_.on_leased_worker_death) options_.on_leased_worker_death(exit.id, exit.reason, false);
    }
    if (exit.state == WorkerPool::State::kStarting && options_.max_start_failures > 0 &&
        pool_.ConsecutiveStartFailures(exit.key) >= options_.max_start_failures) {
      RejectKey(exit.key, absl::StrCat("the worker failed to start ", pool_.ConsecutiveStartFailures(exit.key),
                                       " times in a row; last: ", exit.reason));
      pool_.ResetStartFailures(exit.key);
    }
    if (!exit.address.empty()) ReleaseLeasesOfOwner(exit.address, absl::StrCat("died: ", exit.reason));
  }
  Dispatch();
}

void LeaseManager::UpdateClusterView(const std::vector<rpc::NodeInfo>& nodes) {
  std::set<NodeId> seen;
  for (const rpc::NodeInfo& info : nodes) {
    auto id = NodeId::FromHex(info.node_id());
    if (!id.ok() || *id == options_.node_id) continue;
    seen.insert(*id);
    if (info.state() != rpc::NodeInfo::ALIVE) {
      if (view_.Find(*id) != nullptr) (void)view_.MarkDead(*id);
      continue;
    }
    NodeView v;
    v.id = *id;
    v.total = ResourceSet::FromProto(info.resources_total());
    v.available = ResourceSet::FromProto(info.resources_available());
    // Totals change with bundles; a node table whose totals lag behind the node's latest report
    // of what is free counts the bundle resources it says are free as part of its total.
    for (const auto& [name, amount] : v.available.entries()) {
      if (v.total.Get(name) < amount && IsBundleResource(name)) v.total.Set(name, amount);
    }
    if (!v.total.Contains(v.available)) v.available = v.total;
    v.gpu_free = GpuFreeOf(info, v);
    v.labels = {info.labels().begin(), info.labels().end()};
    v.alive = true;
    v.scheduling_disabled = info.scheduling_disabled();
    v.is_head = info.is_head();
    if (auto s = view_.AddOrUpdateNode(std::move(v)); !s.ok()) {
      spdlog::warn("ignoring node {} from the GCS: {}", id->Hex(), s.ToString());
      continue;
    }
    raylet_addresses_[*id] = absl::StrCat(info.address(), ":", info.raylet_port());
  }
  std::vector<NodeId> gone;
  for (const auto& [id, node] : view_.nodes()) {
    if (id != options_.node_id && !seen.contains(id)) gone.push_back(id);
  }
  for (const NodeId& id : gone) {
    (void)view_.RemoveNode(id);
    raylet_addresses_.erase(id);
  }
  Dispatch();
}

void LeaseManager::Shutdown(const absl::Status& why) {
  shutdown_ = why.ok() ? absl::UnavailableError("the raylet is shutting down") : why;
  while (!pending_.empty()) {
    auto it = pending_.begin();
    if (it->second.allocation) FreeAllocation(*it->second.allocation);
    it->second.allocation.reset();
    Answer(it->first, shutdown_);
  }
}

absl::StatusOr<ResourceAllocation> LeaseManager::ReserveResources(const ResourceSet& request) {
  auto reservation = resources_.Allocate(request);
  if (!reservation.ok()) {
    return absl::ResourceExhaustedError(absl::StrCat("cannot reserve ", request.ToString(), " on node ",
                                                     options_.node_id.Hex(), ": ", reservation.status().message()));
  }
  RefreshLocalView();
  return reservation;
}

void LeaseManager::UnreserveResources(const ResourceAllocation& reservation) {
  FreeAllocation(reservation);
  Dispatch();
}

absl::Status LeaseManager::AddResources(const ResourceAllocation& capacity) {
  if (auto s = resources_.AddCapacity(capacity); !s.ok()) return s;
  RefreshLocalView();
  Dispatch();
  return absl::OkStatus();
}

absl::Status LeaseManager::RemoveResources(const ResourceAllocation& capacity) {
  if (auto s = resources_.RemoveCapacity(capacity); !s.ok()) return s;
  RefreshLocalView();
  return absl::OkStatus();
}

int LeaseManager::KillLeasesUsing(const std::function<bool(const ResourceSet&)>& uses, const rpc::ErrorInfo& cause) {
  // Requests still waiting for their worker give their resources back and wait again.
  for (auto& [seq, p] : pending_) {
    if (p.allocation && uses(p.allocation->amounts)) {
      FreeAllocation(*p.allocation);
      p.allocation.reset();
    }
  }
  std::vector<LeaseId> ended;
  for (const auto& [id, lease] : leases_) {
    if (uses(lease.allocation.amounts)) ended.push_back(id);
  }
  for (const LeaseId& id : ended) {
    spdlog::warn("lease {} ended: {}", id.Hex(), cause.message());
    KillLease(leases_.find(id), cause);
  }
  return static_cast<int>(ended.size());
}

std::string LeaseManager::RemovedGroupOf(const ResourceSet& demand) const {
  if (removed_groups_.empty()) return "";
  for (const auto& [name, amount] : demand.entries()) {
    std::optional<ParsedBundleResource> parsed = ParseBundleResource(name);
    if (parsed.has_value() && removed_groups_.contains(parsed->pg)) {
      return absl::StrCat("placement group ", parsed->pg.Hex(), " was removed");
    }
  }
  return "";
}

void LeaseManager::RemoveGroup(const PlacementGroupId& pg) {
  if (removed_groups_.insert(pg).second) {
    removed_order_.push_back(pg);
    while (removed_order_.size() > kMaxRemovedGroups) {
      removed_groups_.erase(removed_order_.front());
      removed_order_.pop_front();
    }
  }
  std::vector<uint64_t> rejected;
  for (const auto& [seq, p] : pending_) {
    if (!RemovedGroupOf(p.demand).empty()) rejected.push_back(seq);
  }
  for (uint64_t seq : rejected) Reject(seq, RemovedGroupOf(pending_.at(seq).demand));
}

std::vector<DemandSummary> LeaseManager::Demands() const {
  std::vector<QueuedDemand> queued;
  for (const auto& [seq, p] : pending_) {
    if (p.allocation) continue;
    queued.push_back({.shape = p.demand,
                      .count = 1,
                      .label_selector = {p.strategy.label_selector().begin(),
                                         p.strategy.label_selector().end()}});
  }
  SyncLocalView();
  return SummarizeDemand(queued, view_);
}

std::set<std::string> LeaseManager::LeaseOwners() const {
  std::set<std::string> out;
  for (const auto& [id, lease] : leases_) {
    if (!lease.owner_address.empty()) out.insert(lease.owner_address);
  }
  return out;
}

LeaseManager::Stats LeaseManager::stats() const {
  Stats s;
  for (const auto& [seq, p] : pending_) ++(p.allocation ? s.waiting_worker : s.queued);
  s.leases = static_cast<int64_t>(leases_.size());
  return s;
}

}  // namespace shoal
