#include "src/gcs/actor_manager.h"

#include "src/common/error_info.h"

#include <algorithm>
#include <utility>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "spdlog/spdlog.h"
#include "src/common/resources.h"

namespace shoal {
namespace {

constexpr char kActorTable[] = "actors";
constexpr char kSpecTable[] = "actor_specs";
constexpr char kLeaseTable[] = "actor_leases";  // "<raylet host:port> <lease id hex>"
constexpr int32_t kDefaultListLimit = 1000;
constexpr char kSpecLost[] = "the GCS restarted and lost the actor's creation task";

bool IsLive(const rpc::ActorInfo& info) { return info.state() != rpc::ActorInfo::DEAD; }

void ClearPlacement(rpc::ActorInfo& info) {
  info.clear_node_id();
  info.clear_worker_address();
  info.clear_worker_id();
  info.clear_gpus();
  info.clear_pid();
}

}  // namespace

ActorManager::ActorManager(StoreClient& store, const Clock& clock, const NodeTable& nodes,
                           ActorCreationTransport& transport, std::unique_ptr<SchedulingPolicy> policy,
                           ActorManagerOptions options)
    : store_(store),
      clock_(clock),
      nodes_(nodes),
      transport_(transport),
      options_(std::move(options)),
      writer_(store),
      placement_(nodes, std::move(policy)) {
  absl::MutexLock lock(&mu_);
  gcs_address_ = options_.gcs_address;
}

void ActorManager::SetGcsAddress(const std::string& address) {
  absl::MutexLock lock(&mu_);
  gcs_address_ = address;
}

void ActorManager::Finish(Actions& actions) {
  writer_.Flush();
  for (auto& action : actions) action();
  actions.clear();
}

ActorManager::Actor* ActorManager::Find(const ActorId& id) {
  auto it = actors_.find(id);
  return it == actors_.end() ? nullptr : &it->second;
}

// --- storage ---

absl::Status ActorManager::Load() {
  auto rows = store_.GetAll(kActorTable);
  if (!rows.ok()) return rows.status();
  auto specs = store_.GetAll(kSpecTable);
  if (!specs.ok()) return specs.status();
  auto leases = store_.GetAll(kLeaseTable);
  if (!leases.ok()) return leases.status();
  absl::flat_hash_map<std::string, std::string> spec_of(specs->begin(), specs->end());
  absl::flat_hash_map<std::string, std::string> lease_of(leases->begin(), leases->end());

  std::vector<rpc::ActorInfo> infos;
  for (const auto& [key, value] : *rows) {
    rpc::ActorInfo info;
    if (!info.ParseFromString(value) || !ActorId::FromBinary(info.actor_id()).ok()) {
      spdlog::warn("actor table: skipping unreadable entry {}", key);
      continue;
    }
    infos.push_back(std::move(info));
  }
  std::sort(infos.begin(), infos.end(), [](const rpc::ActorInfo& a, const rpc::ActorInfo& b) {
    return a.start_time_ms() < b.start_time_ms();
  });

  Actions actions;
  int live = 0;
  {
    absl::MutexLock lock(&mu_);
    for (rpc::ActorInfo& info : infos) {
      const ActorId id = *ActorId::FromBinary(info.actor_id());
      Actor& a = actors_[id];
      a.info = std::move(info);
      a.seq = next_seq_++;
      if (!IsLive(a.info)) continue;
      ++live;
      if (!a.info.name().empty()) names_[NameKey(a.info.ray_namespace(), a.info.name())] = id;
      if (auto it = lease_of.find(id.Hex()); it != lease_of.end()) {
        const std::string& v = it->second;
        const size_t space = v.find(' ');
        auto node = NodeId::FromHex(a.info.node_id());
        if (space != std::string::npos && node.ok() && !a.info.worker_id().empty()) {
          a.lease = Lease{.id = v.substr(space + 1),
                          .raylet = v.substr(0, space),
                          .node = *node,
                          .worker_id = a.info.worker_id(),
                          .worker_address = a.info.worker_address(),
                          .gpus = a.info.gpus()};
          by_worker_[a.lease.worker_id] = id;
        }
      }
      // Every live actor needs its creation task: ALIVE ones to be restarted later.
      auto spec = spec_of.find(id.Hex());
      a.spec_lost = spec == spec_of.end() || !a.spec.ParseFromString(spec->second);
      if (a.spec_lost) spdlog::error("actor {}: its creation task is missing from {}", id.Hex(), store_.Name());
      if (a.info.state() == rpc::ActorInfo::ALIVE) continue;
      // Being created when the GCS went down: whatever was in flight is lost; start over.
      LeaveWorker(a, /*node_dead=*/false, actions);
      if (a.spec_lost) {
        MarkDead(id, a, kSpecLost, actions);
      } else {
        Schedule(id, a, actions);
      }
    }
  }
  Finish(actions);
  if (!infos.empty()) spdlog::info("restored {} actors ({} not dead) from {}", infos.size(), live, store_.Name());
  return absl::OkStatus();
}

void ActorManager::Changed(const ActorId& id, Actor& a, Actions& actions) {
  a.info.set_version(a.info.version() + 1);
  writer_.Put(kActorTable, id.Hex(), a.info.SerializeAsString());
  auto it = waiters_.find(id);
  if (it == waiters_.end()) return;
  for (Waiter& w : it->second) {
    actions.push_back([done = std::move(w.done), info = a.info] { done(info); });
  }
  waiters_.erase(it);
}

void ActorManager::PersistLease(const ActorId& id, const Actor& a) {
  if (a.lease.id.empty()) {
    writer_.Delete(kLeaseTable, id.Hex());
  } else {
    writer_.Put(kLeaseTable, id.Hex(), absl::StrCat(a.lease.raylet, " ", a.lease.id));
  }
}

// --- registration and queries ---

absl::StatusOr<rpc::RegisterActorReply> ActorManager::RegisterActor(const rpc::RegisterActorRequest& request) {
  const rpc::TaskSpec& spec = request.creation_spec();
  auto id = ActorId::FromBinary(spec.actor_id());
  if (!id.ok()) return absl::InvalidArgumentError(absl::StrCat("creation_spec.actor_id: ", id.status().message()));
  if (id->IsNil()) return absl::InvalidArgumentError("creation_spec.actor_id must not be nil");
  if (!spec.actor_creation()) {
    return absl::InvalidArgumentError(
        absl::StrCat("actor ", id->Hex(), ": creation_spec.actor_creation must be true"));
  }
  if (auto s = ValidateDemand(ResourceSet::FromProto(spec.resources())); !s.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("actor ", id->Hex(), ": ", s.message()));
  }
  if (auto s = ValidateStrategy(spec.strategy()); !s.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("actor ", id->Hex(), ": ", s.message()));
  }
  if (!request.info().actor_id().empty() && request.info().actor_id() != spec.actor_id()) {
    return absl::InvalidArgumentError(
        absl::StrCat("actor ", id->Hex(), ": info.actor_id differs from creation_spec.actor_id"));
  }
  if (request.info().max_restarts() < -1) {
    return absl::InvalidArgumentError(absl::StrCat("actor ", id->Hex(), ": max_restarts must be -1 (no limit) or >= 0, got ",
                                                   request.info().max_restarts()));
  }
  rpc::ActorInfo info = request.info();
  info.set_actor_id(spec.actor_id());
  const std::string job_text = !info.job_id().empty() ? info.job_id() : spec.job_id();
  if (job_text.empty()) {
    info.set_job_id(id->Job().Hex());
  } else {
    auto job = JobId::FromHex(job_text);
    if (!job.ok()) return absl::InvalidArgumentError(absl::StrCat("actor ", id->Hex(), ": job_id: ", job.status().message()));
    info.set_job_id(job->Hex());
  }
  if (info.detached()) {
    info.clear_owner_address();
  } else {
    if (info.owner_address().empty()) info.set_owner_address(spec.owner_address());
    if (info.owner_address().empty()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "actor ", id->Hex(), " is not detached and needs an owner_address (in info or creation_spec)"));
    }
  }
  if (info.class_name().empty()) info.set_class_name(spec.function_name());
  info.set_state(rpc::ActorInfo::PENDING);
  info.set_dependencies_unready(request.dependencies_unready());
  ClearPlacement(info);
  info.set_num_restarts(0);
  info.clear_death_cause();
  info.clear_end_time_ms();
  info.clear_creation_error_type();
  info.clear_creation_error_data();
  info.clear_death_type();
  info.set_version(1);
  *info.mutable_resources() = spec.resources();
  info.set_start_time_ms(absl::ToUnixMillis(clock_.Now()));

  rpc::RegisterActorReply reply;
  Actions actions;
  // Set by the writes below, on whichever thread makes them, before writer_.Flush() returns.
  auto written = std::make_shared<absl::Status>();
  auto collect = [written](const absl::Status& s) {
    if (written->ok()) *written = s;
  };
  {
    absl::MutexLock lock(&mu_);
    if (shutdown_) return absl::UnavailableError("the GCS is shutting down");
    if (auto it = actors_.find(*id); it != actors_.end()) {
      if (it->second.registering) {
        return absl::UnavailableError(absl::StrCat("actor ", id->Hex(), " is being registered; try again"));
      }
      reply.set_actor_id(id->Binary());
      return reply;  // a retried registration
    }
    if (!info.name().empty()) {
      auto taken = names_.find(NameKey(info.ray_namespace(), info.name()));
      if (taken != names_.end()) {
        if (!request.get_if_exists()) {
          return absl::AlreadyExistsError(absl::StrCat("actor name '", info.name(), "' is already taken in namespace '",
                                                       info.ray_namespace(), "'"));
        }
        reply.set_actor_id(taken->second.Binary());
        reply.set_existed(true);
        return reply;
      }
    }
    // The entry (and its name) is taken now; it is scheduled once its rows are in the store.
    writer_.Put(kSpecTable, id->Hex(), spec.SerializeAsString(), collect);
    writer_.Put(kActorTable, id->Hex(), info.SerializeAsString(), collect);
    Actor& a = actors_[*id];
    a.info = std::move(info);
    a.spec = spec;
    a.seq = next_seq_++;
    a.registering = true;
    if (!a.info.name().empty()) names_[NameKey(a.info.ray_namespace(), a.info.name())] = *id;
  }
  // Checked once the entry exists: a removal from now on reaches it through
  // OnPlacementGroupRemoved, one before it is seen here.
  const bool group_removed = !spec.placement_group_id().empty() && options_.placement_group_removed &&
                             options_.placement_group_removed(spec.placement_group_id());
  writer_.Flush();
  {
    absl::MutexLock lock(&mu_);
    Actor* a = Find(*id);
    if (!written->ok()) {
      // Not stored: as if it had never been registered.
      if (a != nullptr) {
        auto name = names_.find(NameKey(a->info.ray_namespace(), a->info.name()));
        if (name != names_.end() && name->second == *id) names_.erase(name);
        LeaveWorker(*a, /*node_dead=*/false, actions);
        actors_.erase(*id);
      }
      if (auto w = waiters_.find(*id); w != waiters_.end()) {
        for (Waiter& waiter : w->second) {
          actions.push_back([done = std::move(waiter.done), status = *written] { done(status); });
        }
        waiters_.erase(w);
      }
      writer_.Delete(kSpecTable, id->Hex());
      writer_.Delete(kActorTable, id->Hex());
    } else if (a != nullptr) {
      a->registering = false;
      spdlog::info("actor {} ({}) registered{}", id->Hex(), a->info.class_name(),
                   a->info.name().empty() ? "" : absl::StrCat(" as '", a->info.name(), "'"));
      if (group_removed && IsLive(a->info)) {
        MarkDead(*id, *a,
                 absl::StrCat("its placement group ", absl::BytesToHexString(spec.placement_group_id()),
                              " was removed"),
                 actions, rpc::PLACEMENT_GROUP_REMOVED);
      }
      // Killed for good (or its job finished) while its rows were written: nothing to create.
      if (!shutdown_ && IsLive(a->info)) Schedule(*id, *a, actions);
    }
  }
  Finish(actions);
  if (!written->ok()) return *written;
  reply.set_actor_id(id->Binary());
  return reply;
}

absl::Status ActorManager::CreateActor(const rpc::CreateActorRequest& request) {
  const rpc::TaskSpec& spec = request.creation_spec();
  auto id = ActorId::FromBinary(spec.actor_id());
  if (!id.ok()) return absl::InvalidArgumentError(absl::StrCat("creation_spec.actor_id: ", id.status().message()));
  Actions actions;
  {
    absl::MutexLock lock(&mu_);
    Actor* a = Find(*id);
    if (a == nullptr) return absl::NotFoundError(absl::StrCat("unknown actor ", id->Hex()));
    // Answered before (a retried call), or the actor died meanwhile: nothing to do.
    if (!a->info.dependencies_unready() || !IsLive(a->info)) return absl::OkStatus();
    if (!spec.actor_creation() || spec.actor_id() != a->spec.actor_id()) {
      return absl::InvalidArgumentError(absl::StrCat("actor ", id->Hex(), ": creation_spec is not its constructor"));
    }
    a->info.set_dependencies_unready(false);
    if (request.has_failed()) {
      const rpc::ErrorInfo& error = request.failed();
      const std::string type = ErrorTypeName(error).empty() ? "Error" : ErrorTypeName(error);
      a->info.set_creation_error_type(type);
      a->info.set_creation_error_data(error.data());
      MarkDead(*id, *a, absl::StrCat("an argument of the actor's constructor failed: ", type, ": ", error.message()),
               actions);
    } else {
      a->spec = spec;
      writer_.Put(kSpecTable, id->Hex(), spec.SerializeAsString(), nullptr);
      Changed(*id, *a, actions);
      Schedule(*id, *a, actions);
    }
  }
  Finish(actions);
  return absl::OkStatus();
}

std::set<std::string> ActorManager::OwnersOfWaitingActors() const {
  std::set<std::string> owners;
  absl::MutexLock lock(&mu_);
  for (const auto& [id, a] : actors_) {
    if (IsLive(a.info) && a.info.dependencies_unready() && !a.info.owner_address().empty()) {
      owners.insert(a.info.owner_address());
    }
  }
  return owners;
}

void ActorManager::OnOwnerDead(const std::string& owner_address) {
  Actions actions;
  {
    absl::MutexLock lock(&mu_);
    if (shutdown_) return;
    for (auto& [id, a] : actors_) {
      if (!IsLive(a.info) || a.info.detached() || a.info.owner_address() != owner_address) continue;
      Fail(id, a, absl::StrCat("its owner ", owner_address, " died or exited"), /*restartable=*/false,
           /*node_dead=*/false, actions);
    }
  }
  Finish(actions);
}

void ActorManager::GetActorInfo(const rpc::GetActorInfoRequest& request, InfoCallback done) {
  auto id = ActorId::FromBinary(request.actor_id());
  if (!id.ok()) {
    done(absl::InvalidArgumentError(absl::StrCat("actor_id: ", id.status().message())));
    return;
  }
  std::optional<rpc::ActorInfo> now;
  {
    absl::MutexLock lock(&mu_);
    Actor* a = Find(*id);
    if (a == nullptr) {
      now = std::nullopt;
    } else if (shutdown_ || a->info.version() > request.after_version() || request.wait_ms() <= 0) {
      now = a->info;
    } else {
      const absl::Duration wait = std::min(absl::Milliseconds(request.wait_ms()), options_.max_wait);
      waiters_[*id].push_back(Waiter{.after_version = request.after_version(),
                                     .deadline = clock_.Now() + wait,
                                     .done = std::move(done)});
      return;
    }
  }
  if (!now) {
    done(absl::NotFoundError(absl::StrCat("unknown actor ", id->Hex())));
  } else {
    done(*std::move(now));
  }
}

absl::StatusOr<rpc::ActorInfo> ActorManager::GetNamedActor(const std::string& name,
                                                           const std::string& ray_namespace) const {
  absl::MutexLock lock(&mu_);
  auto it = names_.find(NameKey(ray_namespace, name));
  if (it == names_.end()) {
    return absl::NotFoundError(absl::StrCat("no live actor is named '", name, "' in namespace '", ray_namespace, "'"));
  }
  return actors_.at(it->second).info;
}

absl::StatusOr<rpc::ListActorsReply> ActorManager::ListActors(const rpc::ListActorsRequest& request) const {
  std::string job;
  if (!request.job_id().empty()) {
    auto id = JobId::FromHex(request.job_id());
    if (!id.ok()) return absl::InvalidArgumentError(absl::StrCat("job_id: ", id.status().message()));
    job = id->Hex();
  }
  if (request.limit() < 0) return absl::InvalidArgumentError("limit must not be negative");
  const size_t limit = request.limit() == 0 ? kDefaultListLimit : request.limit();
  std::vector<const Actor*> matches;
  rpc::ListActorsReply reply;
  absl::MutexLock lock(&mu_);
  for (const auto& [id, a] : actors_) {
    if (job.empty() || a.info.job_id() == job) matches.push_back(&a);
  }
  std::sort(matches.begin(), matches.end(), [](const Actor* a, const Actor* b) {
    if (a->info.start_time_ms() != b->info.start_time_ms()) return a->info.start_time_ms() > b->info.start_time_ms();
    return a->seq > b->seq;
  });
  reply.set_total(static_cast<int64_t>(matches.size()));
  for (size_t i = 0; i < matches.size() && i < limit; ++i) *reply.add_actors() = matches[i]->info;
  return reply;
}

// --- scheduling ---

void ActorManager::Schedule(const ActorId& id, Actor& a, Actions& actions) {
  if (a.registering) return;  // RegisterActor schedules it once its rows are stored
  if (a.info.dependencies_unready()) return;  // CreateActor schedules it
  auto where = placement_.Place(ResourceSet::FromProto(a.spec.resources()), a.spec.strategy());
  if (!where.ok()) {  // RegisterActor validated the spec; a stored one may not have been
    MarkDead(id, a, absl::StrCat("the actor cannot be scheduled: ", where.status().message()), actions,
             rpc::ACTOR_UNSCHEDULABLE);
    return;
  }
  switch (where->kind) {
    case Placement::Kind::kAsk:
      SendLeaseRequest(id, a, *where, actions);
      return;
    case Placement::Kind::kUnschedulable:
      MarkDead(id, a, absl::StrCat("the actor cannot be scheduled: ", where->reason), actions,
               rpc::ACTOR_UNSCHEDULABLE);
      return;
    case Placement::Kind::kRetry:
      spdlog::warn("actor {}: cannot place it now ({}); trying again in {}", id.Hex(), where->reason,
                   absl::FormatDuration(options_.lease_retry_delay));
      RetryLater(id, a);
      return;
  }
}

void ActorManager::SendLeaseRequest(const ActorId& id, Actor& a, const Placement& where, Actions& actions) {
  rpc::RequestWorkerLeaseRequest request;
  *request.mutable_resources() = a.spec.resources();
  *request.mutable_strategy() = a.spec.strategy();
  request.set_job_id(a.info.job_id());
  *request.mutable_worker_command() = a.spec.worker_command();
  *request.mutable_runtime_env() = a.spec.runtime_env();
  request.set_grant_or_reject(where.grant_or_reject);
  request.set_owner_address(a.info.detached() ? gcs_address_ : a.info.owner_address());
  const uint64_t request_id = next_request_id_++;
  a.request_id = request_id;
  a.request_node = where.node;
  placement_.RequestSent(request_id, where, ResourceSet::FromProto(a.spec.resources()));
  actions.push_back([this, id, request_id, raylet = where.raylet, node = where.node,
                     request = std::move(request)]() mutable {
    transport_.RequestWorkerLease(request_id, raylet, std::move(request),
                                  [this, id, request_id, raylet, node](absl::Status s, rpc::RequestWorkerLeaseReply r) {
                                    OnLeaseReply(id, request_id, raylet, node, s, r);
                                  });
  });
}

void ActorManager::CancelRequest(Actor& a, Actions& actions) {
  if (a.request_id == 0) return;
  placement_.RequestEnded(a.request_id, /*granted=*/false);
  actions.push_back([this, request_id = a.request_id] { transport_.CancelLeaseRequest(request_id); });
  a.request_id = 0;
}

void ActorManager::RetryLater(const ActorId& id, Actor& a) {
  a.waiting_retry = true;
  retry_[clock_.Now() + options_.lease_retry_delay].push_back(id);
}

void ActorManager::OnLeaseReply(const ActorId& id, uint64_t request_id, const std::string& raylet, const NodeId& node,
                                const absl::Status& status, const rpc::RequestWorkerLeaseReply& reply) {
  Actions actions;
  {
    absl::MutexLock lock(&mu_);
    placement_.RequestEnded(request_id, status.ok() && reply.kind() == rpc::RequestWorkerLeaseReply::GRANTED);
    Actor* a = Find(id);
    if (shutdown_ || a == nullptr || a->request_id != request_id) {
      // Cancelled (the actor died or moved on): a grant that raced the cancellation goes back.
      if (status.ok() && reply.kind() == rpc::RequestWorkerLeaseReply::GRANTED) {
        actions.push_back([this, raylet, lease = reply.lease_id()] {
          transport_.ReturnWorker(raylet, lease, /*worker_failed=*/false);
        });
      }
    } else if (!status.ok()) {
      a->request_id = 0;
      spdlog::warn("actor {}: lease request at raylet {} failed ({}); trying again in {}", id.Hex(), raylet,
                   status.ToString(), absl::FormatDuration(options_.lease_retry_delay));
      RetryLater(id, *a);
    } else {
      a->request_id = 0;
      switch (reply.kind()) {
        case rpc::RequestWorkerLeaseReply::GRANTED: {
          a->lease = Lease{.id = reply.lease_id(),
                           .raylet = raylet,
                           .node = node,
                           .worker_id = reply.worker_id(),
                           .worker_address = reply.worker_address(),
                           .gpus = reply.gpus()};
          by_worker_[reply.worker_id()] = id;
          PersistLease(id, *a);
          a->push_attempts = 0;
          PushCreation(id, *a, actions);
          break;
        }
        case rpc::RequestWorkerLeaseReply::SPILLBACK: {
          auto spill_node = NodeId::FromHex(reply.spillback_node_id());
          if (reply.spillback_raylet_address().empty() || !spill_node.ok()) {
            RetryLater(id, *a);
          } else {
            Placement there{.kind = Placement::Kind::kAsk,
                            .node = *spill_node,
                            .raylet = reply.spillback_raylet_address(),
                            .grant_or_reject = true,
                            .reason = ""};
            SendLeaseRequest(id, *a, there, actions);
          }
          break;
        }
        default:  // REJECTED
          MarkDead(id, *a,
                   reply.message().empty() ? absl::StrCat("raylet ", raylet, " rejected the actor's lease request")
                                           : reply.message(),
                   actions,
                   reply.failure().type() == rpc::RUNTIME_ENV_SETUP_FAILED ? rpc::RUNTIME_ENV_SETUP_FAILED
                                                                          : rpc::ACTOR_DIED);
          break;
      }
    }
  }
  Finish(actions);
}

void ActorManager::PushCreation(const ActorId& id, Actor& a, Actions& actions) {
  const uint64_t push_id = next_push_id_++;
  a.push_id = push_id;
  ++a.push_attempts;
  rpc::PushTaskRequest push;
  *push.mutable_spec() = a.spec;
  *push.mutable_gpus() = a.lease.gpus;
  actions.push_back([this, id, push_id, worker = a.lease.worker_address, push = std::move(push)]() mutable {
    transport_.PushTask(worker, std::move(push), [this, id, push_id](absl::Status s, rpc::PushTaskReply r) {
      OnPushReply(id, push_id, s, r);
    });
  });
}

void ActorManager::OnPushReply(const ActorId& id, uint64_t push_id, const absl::Status& status,
                               const rpc::PushTaskReply& reply) {
  Actions actions;
  {
    absl::MutexLock lock(&mu_);
    Actor* a = Find(id);
    if (shutdown_ || a == nullptr || a->push_id != push_id) return;  // it left that worker already
    a->push_id = 0;
    if (absl::IsUnavailable(status) && a->push_attempts < kCreationPushAttempts) {
      // The push may have gone out on a connection that had just broken: a channel to an
      // address whose previous worker was killed a moment ago (a new worker can get its port)
      // fails its next call with "Socket closed" before it reconnects. As Ray's GCS does, the
      // creation is pushed to the same worker again; a worker that really died fails it again
      // (or the raylet reports its death first, which ends this lease).
      spdlog::warn("actor {}: its creation task did not reach worker {} ({}); pushing it again", id.Hex(),
                   a->lease.worker_address, status.ToString());
      PushCreation(id, *a, actions);
    } else if (!status.ok()) {
      Fail(id, *a, absl::StrCat("the actor's worker died: the creation task could not reach it (", status.ToString(), ")"),
           /*restartable=*/true, /*node_dead=*/false, actions);
    } else if (reply.application_error()) {
      std::string type = "Error";
      std::string message = "(no message)";
      if (reply.returns_size() > 0) {
        const rpc::ErrorInfo& error = reply.returns(0).error();
        if (!ErrorTypeName(error).empty()) type = ErrorTypeName(error);
        if (!error.message().empty()) message = error.message();
        a->info.set_creation_error_data(error.data());
      }
      a->info.set_creation_error_type(type);
      MarkDead(id, *a, absl::StrCat("the actor's constructor raised ", type, ": ", message), actions);
    } else {
      a->info.set_state(rpc::ActorInfo::ALIVE);
      a->info.set_node_id(a->lease.node.Hex());
      a->info.set_worker_address(a->lease.worker_address);
      a->info.set_worker_id(a->lease.worker_id);
      *a->info.mutable_gpus() = a->lease.gpus;
      a->info.clear_death_cause();
      spdlog::info("actor {} is alive on worker {} ({}) of node {}", id.Hex(), a->lease.worker_id,
                   a->lease.worker_address, a->lease.node.Hex());
      Changed(id, *a, actions);
    }
  }
  Finish(actions);
}

// --- deaths ---

void ActorManager::LeaveWorker(Actor& a, bool node_dead, Actions& actions) {
  CancelRequest(a, actions);
  if (!a.lease.id.empty()) {
    by_worker_.erase(a.lease.worker_id);
    if (!node_dead) {
      actions.push_back([this, raylet = a.lease.raylet, lease = a.lease.id] {
        transport_.ReturnWorker(raylet, lease, /*worker_failed=*/true);
      });
    }
    a.lease = Lease{};
    if (auto id = ActorId::FromBinary(a.info.actor_id()); id.ok()) PersistLease(*id, a);
  }
  a.push_id = 0;
  a.waiting_retry = false;
}

void ActorManager::Fail(const ActorId& id, Actor& a, const std::string& cause, bool restartable, bool node_dead,
                        Actions& actions) {
  LeaveWorker(a, node_dead, actions);
  const int32_t max = a.info.max_restarts();
  if (!restartable || (max != -1 && a.info.num_restarts() >= max)) {
    MarkDead(id, a, cause, actions);
    return;
  }
  if (a.spec_lost) {
    MarkDead(id, a, absl::StrCat(cause, "; it cannot restart: ", kSpecLost), actions);
    return;
  }
  a.info.set_state(rpc::ActorInfo::RESTARTING);
  a.info.set_num_restarts(a.info.num_restarts() + 1);
  a.info.set_death_cause(cause);
  ClearPlacement(a.info);
  spdlog::warn("actor {} is restarting (restart {}{}): {}", id.Hex(), a.info.num_restarts(),
               max == -1 ? "" : absl::StrCat(" of ", max), cause);
  Changed(id, a, actions);
  Schedule(id, a, actions);
}

void ActorManager::MarkDead(const ActorId& id, Actor& a, const std::string& cause, Actions& actions,
                            rpc::ErrorType type) {
  LeaveWorker(a, /*node_dead=*/false, actions);
  if (!a.info.name().empty()) {
    auto it = names_.find(NameKey(a.info.ray_namespace(), a.info.name()));
    if (it != names_.end() && it->second == id) names_.erase(it);
  }
  a.info.set_state(rpc::ActorInfo::DEAD);
  a.info.set_death_cause(cause);
  a.info.set_death_type(type);
  a.info.set_end_time_ms(absl::ToUnixMillis(clock_.Now()));
  writer_.Delete(kSpecTable, id.Hex());
  spdlog::info("actor {} is dead: {}", id.Hex(), cause);
  Changed(id, a, actions);
}

absl::Status ActorManager::KillActor(const rpc::KillActorRequest& request) {
  auto id = ActorId::FromBinary(request.actor_id());
  if (!id.ok()) return absl::InvalidArgumentError(absl::StrCat("actor_id: ", id.status().message()));
  Actions actions;
  {
    absl::MutexLock lock(&mu_);
    Actor* a = Find(*id);
    if (a == nullptr) return absl::NotFoundError(absl::StrCat("unknown actor ", id->Hex()));
    if (!IsLive(a->info)) return absl::OkStatus();
    Fail(*id, *a, "killed by shoal.kill()", /*restartable=*/!request.no_restart(), /*node_dead=*/false, actions);
  }
  Finish(actions);
  return absl::OkStatus();
}

absl::Status ActorManager::ReportWorkerDeath(const rpc::ReportWorkerDeathRequest& request) {
  auto worker = WorkerId::FromHex(request.worker_id());
  if (!worker.ok()) return absl::InvalidArgumentError(absl::StrCat("worker_id: ", worker.status().message()));
  Actions actions;
  {
    absl::MutexLock lock(&mu_);
    auto it = by_worker_.find(worker->Hex());
    if (shutdown_ || it == by_worker_.end()) return absl::OkStatus();
    const ActorId id = it->second;
    Actor& a = actors_.at(id);
    const std::string reason = request.reason().empty() ? "no reason given" : request.reason();
    if (request.owner_gone() && !a.info.detached()) {
      Fail(id, a, absl::StrCat("its owner ", a.info.owner_address(), " died or exited"), /*restartable=*/false,
           /*node_dead=*/false, actions);
    } else {
      Fail(id, a, absl::StrCat("the actor's worker died: ", reason), /*restartable=*/true, /*node_dead=*/false, actions);
    }
  }
  Finish(actions);
  return absl::OkStatus();
}

void ActorManager::OnNodeDead(const NodeId& node) {
  Actions actions;
  {
    absl::MutexLock lock(&mu_);
    if (shutdown_) return;
    for (auto& [id, a] : actors_) {
      if (!IsLive(a.info)) continue;
      if (!a.lease.id.empty() && a.lease.node == node) {
        Fail(id, a, absl::StrCat("the actor's node ", node.Hex(), " died"), /*restartable=*/true, /*node_dead=*/true,
             actions);
      } else if (a.request_id != 0 && a.request_node == node) {
        // Waiting at a raylet that is gone: ask another one (no restart is used).
        CancelRequest(a, actions);
        Schedule(id, a, actions);
      }
    }
  }
  Finish(actions);
}

void ActorManager::OnJobFinished(const JobId& job) {
  Actions actions;
  {
    absl::MutexLock lock(&mu_);
    if (shutdown_) return;
    const std::string hex = job.Hex();
    for (auto& [id, a] : actors_) {
      if (!IsLive(a.info) || a.info.detached() || a.info.job_id() != hex) continue;
      Fail(id, a, absl::StrCat("its owner ", a.info.owner_address(), " died or exited"), /*restartable=*/false,
           /*node_dead=*/false, actions);
    }
  }
  Finish(actions);
}

void ActorManager::OnPlacementGroupRemoved(const std::string& placement_group_id) {
  if (placement_group_id.empty()) return;
  Actions actions;
  {
    absl::MutexLock lock(&mu_);
    if (shutdown_) return;
    for (auto& [id, a] : actors_) {
      if (!IsLive(a.info) || a.spec.placement_group_id() != placement_group_id) continue;
      MarkDead(id, a, absl::StrCat("its placement group ", absl::BytesToHexString(placement_group_id), " was removed"),
               actions, rpc::PLACEMENT_GROUP_REMOVED);
    }
  }
  Finish(actions);
}

void ActorManager::OnResourcesReported(const NodeId& node) {
  absl::MutexLock lock(&mu_);
  placement_.NodeReported(node);
}

// --- time and shutdown ---

void ActorManager::Tick() {
  Actions actions;
  {
    absl::MutexLock lock(&mu_);
    if (shutdown_) return;
    const absl::Time now = clock_.Now();
    while (!retry_.empty() && retry_.begin()->first <= now) {
      std::vector<ActorId> due = std::move(retry_.begin()->second);
      retry_.erase(retry_.begin());
      for (const ActorId& id : due) {
        Actor* a = Find(id);
        if (a == nullptr || !a->waiting_retry || !IsLive(a->info) || a->request_id != 0 || !a->lease.id.empty()) {
          continue;
        }
        a->waiting_retry = false;
        Schedule(id, *a, actions);
      }
    }
    for (auto it = waiters_.begin(); it != waiters_.end();) {
      auto& list = it->second;
      const Actor* a = Find(it->first);
      for (auto w = list.begin(); w != list.end();) {
        if (w->deadline > now) {
          ++w;
          continue;
        }
        actions.push_back([done = std::move(w->done), info = a->info] { done(info); });
        w = list.erase(w);
      }
      if (list.empty()) {
        waiters_.erase(it++);
      } else {
        ++it;
      }
    }
  }
  Finish(actions);
}

void ActorManager::Shutdown() {
  Actions actions;
  {
    absl::MutexLock lock(&mu_);
    if (shutdown_) return;
    shutdown_ = true;
    for (auto& [id, list] : waiters_) {
      const rpc::ActorInfo& info = actors_.at(id).info;
      for (Waiter& w : list) actions.push_back([done = std::move(w.done), info] { done(info); });
    }
    waiters_.clear();
  }
  Finish(actions);
}

size_t ActorManager::NumLeasesHeld() const {
  absl::MutexLock lock(&mu_);
  size_t n = 0;
  for (const auto& [id, a] : actors_) n += !a.lease.id.empty();
  return n;
}

size_t ActorManager::NumLeaseRequests() const {
  absl::MutexLock lock(&mu_);
  size_t n = 0;
  for (const auto& [id, a] : actors_) n += a.request_id != 0;
  return n;
}

size_t ActorManager::NumWaiters() const {
  absl::MutexLock lock(&mu_);
  size_t n = 0;
  for (const auto& [id, list] : waiters_) n += list.size();
  return n;
}

}  // namespace shoal
