#include "src/gcs/placement_group_manager.h"

#include <algorithm>
#include <optional>
#include <set>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "spdlog/spdlog.h"
#include "src/scheduler/label_selector.h"

namespace shoal {
namespace {

constexpr char kTable[] = "placement_groups";
using Info = rpc::PlacementGroupInfo;

std::string RayletAddress(const rpc::NodeInfo& node) { return absl::StrCat(node.address(), ":", node.raylet_port()); }

bool IsPending(const Info& info) { return info.state() == Info::PENDING || info.state() == Info::RESCHEDULING; }

std::string Hex(const std::string& binary_id) {
  auto id = PlacementGroupId::FromBinary(binary_id);
  return id.ok() ? id->Hex() : std::string("(bad id)");
}

// Same group as far as a retried Create can tell.
bool SameRequest(const Info& a, const Info& b) {
  if (a.name() != b.name() || a.ray_namespace() != b.ray_namespace() || a.strategy() != b.strategy() ||
      a.bundles_size() != b.bundles_size()) {
    return false;
  }
  for (int i = 0; i < a.bundles_size(); ++i) {
    if (ResourceSet::FromProto(a.bundles(i).resources()) != ResourceSet::FromProto(b.bundles(i).resources())) {
      return false;
    }
  }
  return true;
}

}  // namespace

PlacementGroupManager::PlacementGroupManager(StoreClient& store, const Clock& clock, NodeTable& nodes,
                                             BundleClient& client, PlacementGroupManagerOptions options)
    : store_(store), clock_(clock), nodes_(nodes), client_(client), options_(std::move(options)), writer_(store) {}

void PlacementGroupManager::Finish(Actions& actions) {
  writer_.Flush();
  for (auto& action : actions) action();
  actions.clear();
}

PlacementGroupManager::Group* PlacementGroupManager::Find(const PlacementGroupId& id) {
  auto it = groups_.find(id);
  return it == groups_.end() ? nullptr : &it->second;
}

std::optional<std::string> PlacementGroupManager::RayletOf(const NodeId& node) const {
  return nodes_.AliveRayletAddress(node);
}

void PlacementGroupManager::PublishResources(const PlacementGroupId& id, const Info& info, const NodeId& node) const {
  ResourceSet amounts;
  if (info.state() != Info::REMOVED) {
    const std::string hex = node.Hex();
    for (const rpc::Bundle& b : info.bundles()) {
      if (b.node_id() != hex) continue;
      amounts.Add(CommittedBundleResources(ResourceSet::FromProto(b.resources()), id, b.bundle_index()));
    }
  }
  nodes_.SetGroupResources(node, id, amounts);
}

void PlacementGroupManager::Changed(const PlacementGroupId& id, Group& g, Actions& actions) {
  g.info.set_version(g.info.version() + 1);
  writer_.Put(kTable, id.Hex(), g.info.SerializeAsString());
  const Info::State state = g.info.state();
  if (state != Info::CREATED && state != Info::REMOVED) return;
  auto it = waiters_.find(id);
  if (it == waiters_.end()) return;
  for (Waiter& w : it->second) {
    if (state == Info::CREATED) {
      actions.push_back([done = std::move(w.done), info = g.info] { done(info); });
    } else {
      actions.push_back([done = std::move(w.done), hex = id.Hex()] {
        done(absl::FailedPreconditionError(absl::StrCat("placement group ", hex, " was removed")));
      });
    }
  }
  waiters_.erase(it);
}

// --- storage ---

absl::Status PlacementGroupManager::Load() {
  auto rows = store_.GetAll(kTable);
  if (!rows.ok()) return rows.status();
  std::vector<Info> infos;
  for (const auto& [key, value] : *rows) {
    Info info;
    if (!info.ParseFromString(value) || !PlacementGroupId::FromBinary(info.placement_group_id()).ok()) {
      spdlog::warn("placement group table: skipping unreadable entry {}", key);
      continue;
    }
    infos.push_back(std::move(info));
  }
  std::sort(infos.begin(), infos.end(), [](const Info& a, const Info& b) {
    if (a.create_time_ms() != b.create_time_ms()) return a.create_time_ms() < b.create_time_ms();
    return a.placement_group_id() < b.placement_group_id();
  });
  Actions actions;
  {
    absl::MutexLock lock(&mu_);
    std::vector<std::pair<int64_t, PlacementGroupId>> removed;
    for (Info& info : infos) {
      const PlacementGroupId id = *PlacementGroupId::FromBinary(info.placement_group_id());
      Group& g = groups_[id];
      g.info = std::move(info);
      g.seq = next_seq_++;
      if (g.info.state() == Info::REMOVED) {
        removed.emplace_back(g.info.remove_time_ms(), id);
        continue;
      }
      if (!g.info.name().empty()) names_[NameKey(g.info.ray_namespace(), g.info.name())] = id;
      if (IsPending(g.info)) pending_[g.seq] = id;
    }
    std::sort(removed.begin(), removed.end());
    for (const auto& [time, id] : removed) removed_.push_back(id);
    TrimRemoved();
    // Bundles on nodes that are gone are lost, as at a node death.
    std::set<std::string> gone;
    for (const auto& [id, g] : groups_) {
      if (g.info.state() == Info::REMOVED) continue;
      for (const rpc::Bundle& b : g.info.bundles()) {
        auto node = NodeId::FromHex(b.node_id());
        if (!b.node_id().empty() && (!node.ok() || !RayletOf(*node))) gone.insert(b.node_id());
      }
    }
    for (const std::string& node : gone) LoseNode(node, actions);
    // Every alive raylet keeps only the bundles the table gives it; scheduling waits for that.
    for (const rpc::NodeInfo& node : nodes_.GetAll(/*alive_only=*/true)) {
      std::vector<rpc::Bundle> in_use;
      for (const auto& [id, g] : groups_) {
        if (g.info.state() == Info::REMOVED) continue;
        for (const rpc::Bundle& b : g.info.bundles()) {
          if (b.node_id() == node.node_id()) in_use.push_back(b);
        }
      }
      ++releasing_;
      actions.push_back([this, raylet = RayletAddress(node), in_use = std::move(in_use)]() mutable {
        client_.ReleaseUnusedBundles(raylet, std::move(in_use), [this, raylet](absl::Status s, int32_t released) {
          if (!s.ok()) {
            spdlog::warn("ReleaseUnusedBundles at raylet {} failed: {}", raylet, s.ToString());
          } else if (released > 0) {
            spdlog::info("raylet {} released {} bundles the GCS does not know of", raylet, released);
          }
          Actions after;
          {
            absl::MutexLock lock(&mu_);
            if (--releasing_ == 0 && !shutdown_) TrySchedule(after);
          }
          Finish(after);
        });
      });
    }
    TrySchedule(actions);
  }
  Finish(actions);
  if (!infos.empty()) spdlog::info("restored {} placement groups from {}", infos.size(), store_.Name());
  return absl::OkStatus();
}

// --- requests ---

absl::Status PlacementGroupManager::Create(const rpc::PlacementGroupInfo& request) {
  auto id = PlacementGroupId::FromBinary(request.placement_group_id());
  if (!id.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("placement_group_id must be ", PlacementGroupId::kSize,
                                                   " bytes, got ", request.placement_group_id().size()));
  }
  if (id->IsNil()) return absl::InvalidArgumentError("placement_group_id must not be nil");
  const std::string where = absl::StrCat("placement group ", id->Hex(), ": ");
  if (!Info::Strategy_IsValid(request.strategy())) {
    return absl::InvalidArgumentError(absl::StrCat(where, "unknown strategy ", static_cast<int>(request.strategy())));
  }
  std::vector<ResourceSet> bundles;
  for (int i = 0; i < request.bundles_size(); ++i) {
    const rpc::Bundle& b = request.bundles(i);
    if (b.bundle_index() != i) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, "bundle ", i, " has bundle_index ", b.bundle_index(), "; indexes must be 0..n-1 in order"));
    }
    if (!b.placement_group_id().empty() && b.placement_group_id() != request.placement_group_id()) {
      return absl::InvalidArgumentError(absl::StrCat(where, "bundle ", i, " names another placement group"));
    }
    bundles.push_back(ResourceSet::FromProto(b.resources()));
    if (auto selector = LabelSelector::Parse(b.label_selector()); !selector.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, "bundle ", i, " label_selector: ", selector.status().message()));
    }
  }
  if (auto s = ValidateBundles(bundles); !s.ok()) return absl::InvalidArgumentError(absl::StrCat(where, s.message()));
  Info info = request;
  if (!info.job_id().empty()) {
    auto job = JobId::FromHex(info.job_id());
    if (!job.ok()) return absl::InvalidArgumentError(absl::StrCat(where, "job_id: ", job.status().message()));
    info.set_job_id(job->Hex());
  }
  for (rpc::Bundle& b : *info.mutable_bundles()) {
    b.set_placement_group_id(id->Binary());
    b.clear_node_id();
  }
  info.set_state(Info::PENDING);
  info.set_create_time_ms(absl::ToUnixMillis(clock_.Now()));
  info.clear_created_time_ms();
  info.clear_remove_time_ms();
  info.clear_pending_reason();
  info.clear_infeasible();
  info.set_version(1);

  auto written = std::make_shared<absl::Status>();
  Actions actions;
  {
    absl::MutexLock lock(&mu_);
    if (shutdown_) return absl::UnavailableError("the GCS is shutting down");
    if (Group* old = Find(*id); old != nullptr) {
      if (!SameRequest(old->info, info)) {
        return absl::InvalidArgumentError(absl::StrCat("placement group id ", id->Hex(), " is already used by another group"));
      }
      if (old->storing) return absl::UnavailableError(absl::StrCat(where, "is being created; try again"));
      return absl::OkStatus();  // a retried call
    }
    if (!info.name().empty() && names_.contains(NameKey(info.ray_namespace(), info.name()))) {
      return absl::AlreadyExistsError(absl::StrCat("placement group name '", info.name(),
                                                   "' is already taken in namespace '", info.ray_namespace(), "'"));
    }
    writer_.Put(kTable, id->Hex(), info.SerializeAsString(), [written](const absl::Status& s) { *written = s; });
    Group& g = groups_[*id];
    g.info = std::move(info);
    g.seq = next_seq_++;
    g.storing = true;
    if (!g.info.name().empty()) names_[NameKey(g.info.ray_namespace(), g.info.name())] = *id;
  }
  writer_.Flush();
  {
    absl::MutexLock lock(&mu_);
    Group* g = Find(*id);
    if (!written->ok()) {
      if (g != nullptr) {
        auto name = names_.find(NameKey(g->info.ray_namespace(), g->info.name()));
        if (name != names_.end() && name->second == *id) names_.erase(name);
        groups_.erase(*id);
      }
      writer_.Delete(kTable, id->Hex());
    } else if (g != nullptr) {
      g->storing = false;
      if (g->info.state() == Info::PENDING) {
        pending_[g->seq] = *id;
        spdlog::info("placement group {}{} created PENDING with {} bundles ({})", id->Hex(),
                     g->info.name().empty() ? "" : absl::StrCat(" '", g->info.name(), "'"), g->info.bundles_size(),
                     Info::Strategy_Name(g->info.strategy()));
        TrySchedule(actions);
      }
    }
  }
  Finish(actions);
  return *written;
}

absl::Status PlacementGroupManager::Remove(const std::string& placement_group_id) {
  auto id = PlacementGroupId::FromBinary(placement_group_id);
  if (!id.ok()) return absl::InvalidArgumentError(absl::StrCat("placement_group_id: ", id.status().message()));
  Actions actions;
  {
    absl::MutexLock lock(&mu_);
    Group* g = Find(*id);
    if (g == nullptr) return absl::NotFoundError(absl::StrCat("unknown placement group ", id->Hex()));
    if (g->info.state() == Info::REMOVED) return absl::OkStatus();
    RemoveLocked(*id, *g, actions);
  }
  Finish(actions);
  return absl::OkStatus();
}

void PlacementGroupManager::RemoveLocked(const PlacementGroupId& id, Group& g, Actions& actions) {
  // Every node that holds, or may hold, bundles of it: committed ones and the reservation in flight.
  std::map<NodeId, std::vector<int>> held;
  std::set<NodeId> committed;
  for (const rpc::Bundle& b : g.info.bundles()) {
    auto node = NodeId::FromHex(b.node_id());
    if (b.node_id().empty() || !node.ok()) continue;
    held[*node].push_back(b.bundle_index());
    committed.insert(*node);
    Unreserve(*node, ResourceSet::FromProto(b.resources()));
  }
  if (attempt_ && attempt_->pg == id) {
    for (const auto& [node, part] : attempt_->parts) {
      if (part.dead || part.refused) continue;
      auto& list = held[node];
      list.insert(list.end(), part.indices.begin(), part.indices.end());
    }
  }
  for (auto& [node, indices] : held) {
    std::sort(indices.begin(), indices.end());
    indices.erase(std::unique(indices.begin(), indices.end()), indices.end());
    if (auto raylet = RayletOf(node)) SendCancel(g.info, *raylet, indices, /*group_removed=*/true, actions);
  }
  if (!g.info.name().empty()) {
    auto it = names_.find(NameKey(g.info.ray_namespace(), g.info.name()));
    if (it != names_.end() && it->second == id) names_.erase(it);
  }
  pending_.erase(g.seq);
  g.info.set_state(Info::REMOVED);
  g.info.set_remove_time_ms(absl::ToUnixMillis(clock_.Now()));
  g.info.clear_pending_reason();
  g.info.clear_infeasible();
  for (const NodeId& node : committed) PublishResources(id, g.info, node);  // none left
  spdlog::info("placement group {} removed", id.Hex());
  Changed(id, g, actions);
  if (options_.on_removed) actions.push_back([this, id] { options_.on_removed(id); });
  removed_.push_back(id);
  TrimRemoved();
  RetryAllNow();
  TrySchedule(actions);
}

void PlacementGroupManager::TrimRemoved() {
  while (removed_.size() > options_.max_removed) {
    const PlacementGroupId old = removed_.front();
    if (attempt_ && attempt_->pg == old) break;  // dropped once its reservation ends
    removed_.pop_front();
    groups_.erase(old);
    waiters_.erase(old);
    writer_.Delete(kTable, old.Hex());
  }
}

absl::StatusOr<rpc::PlacementGroupInfo> PlacementGroupManager::Get(const rpc::GetPlacementGroupRequest& request) const {
  absl::MutexLock lock(&mu_);
  if (!request.placement_group_id().empty()) {
    auto id = PlacementGroupId::FromBinary(request.placement_group_id());
    if (!id.ok()) return absl::InvalidArgumentError(absl::StrCat("placement_group_id: ", id.status().message()));
    auto it = groups_.find(*id);
    if (it == groups_.end()) return absl::NotFoundError(absl::StrCat("unknown placement group ", id->Hex()));
    return it->second.info;
  }
  if (request.name().empty()) return absl::InvalidArgumentError("give a placement_group_id or a name");
  auto it = names_.find(NameKey(request.ray_namespace(), request.name()));
  if (it == names_.end()) {
    return absl::NotFoundError(absl::StrCat("no placement group is named '", request.name(), "' in namespace '",
                                            request.ray_namespace(), "'"));
  }
  return groups_.at(it->second).info;
}

rpc::GetAllPlacementGroupReply PlacementGroupManager::GetAll(int32_t limit) const {
  absl::MutexLock lock(&mu_);
  std::vector<const Group*> all;
  for (const auto& [id, g] : groups_) {
    if (!g.storing) all.push_back(&g);
  }
  std::sort(all.begin(), all.end(), [](const Group* a, const Group* b) { return a->seq < b->seq; });
  rpc::GetAllPlacementGroupReply reply;
  reply.set_total(static_cast<int64_t>(all.size()));
  for (const Group* g : all) {
    if (limit > 0 && reply.groups_size() >= limit) break;
    *reply.add_groups() = g->info;
  }
  return reply;
}

void PlacementGroupManager::WaitUntilReady(const rpc::WaitPlacementGroupUntilReadyRequest& request,
                                           InfoCallback done) {
  auto id = PlacementGroupId::FromBinary(request.placement_group_id());
  if (!id.ok()) {
    done(absl::InvalidArgumentError(absl::StrCat("placement_group_id: ", id.status().message())));
    return;
  }
  absl::Status status;
  Info info;
  {
    absl::MutexLock lock(&mu_);
    Group* g = Find(*id);
    if (g == nullptr) {
      status = absl::NotFoundError(absl::StrCat("unknown placement group ", id->Hex()));
    } else if (shutdown_) {
      status = absl::UnavailableError("the GCS is shutting down");
    } else if (g->info.state() == Info::CREATED) {
      info = g->info;
    } else if (g->info.state() == Info::REMOVED) {
      status = absl::FailedPreconditionError(absl::StrCat("placement group ", id->Hex(), " was removed"));
    } else if (request.timeout_ms() == 0) {
      status = absl::DeadlineExceededError(absl::StrCat("placement group ", id->Hex(), " is not created yet"));
    } else {
      const absl::Time deadline = request.timeout_ms() < 0 ? absl::InfiniteFuture()
                                                           : clock_.Now() + absl::Milliseconds(request.timeout_ms());
      waiters_[*id].push_back(Waiter{.deadline = deadline, .done = std::move(done)});
      return;
    }
  }
  if (status.ok()) {
    done(std::move(info));
  } else {
    done(status);
  }
}

PlacementGroupSummary PlacementGroupManager::Summarize() const {
  PlacementGroupSummary out;
  for (int s = Info::State_MIN; s <= Info::State_MAX; ++s) {
    if (Info::State_IsValid(s)) out.by_state[Info::State_Name(static_cast<Info::State>(s))] = 0;
  }
  absl::MutexLock lock(&mu_);
  for (const auto& [id, g] : groups_) {
    if (!g.storing) ++out.by_state[Info::State_Name(g.info.state())];
  }
  for (const auto& [seq, id] : pending_) out.pending.push_back(groups_.at(id).info);
  return out;
}

bool PlacementGroupManager::IsRemoved(const std::string& placement_group_id) const {
  auto id = PlacementGroupId::FromBinary(placement_group_id);
  if (!id.ok()) return false;
  absl::MutexLock lock(&mu_);
  auto it = groups_.find(*id);
  return it != groups_.end() && it->second.info.state() == Info::REMOVED;
}

void PlacementGroupManager::SendCancel(const Info& info, const std::string& raylet, const std::vector<int>& indices,
                                       bool group_removed, Actions& actions) {
  std::vector<rpc::Bundle> bundles;
  for (int i : indices) bundles.push_back(info.bundles(i));
  actions.push_back([this, raylet, bundles = std::move(bundles), group_removed, hex = Hex(info.placement_group_id())]() mutable {
    client_.CancelBundles(raylet, std::move(bundles), group_removed, [raylet, hex](absl::Status s) {
      if (!s.ok()) spdlog::warn("placement group {}: CancelBundles at raylet {} failed: {}", hex, raylet, s.ToString());
    });
  });
}

void PlacementGroupManager::LoseNode(const std::string& hex, Actions& actions) {
  for (auto& [id, g] : groups_) {
    if (g.info.state() == Info::REMOVED) continue;
    bool lost = false;
    for (rpc::Bundle& b : *g.info.mutable_bundles()) {
      if (b.node_id() != hex) continue;
      b.clear_node_id();
      lost = true;
    }
    if (!lost) continue;
    if (g.info.state() == Info::CREATED) {
      g.info.set_state(Info::RESCHEDULING);
      pending_[g.seq] = id;
    }
    g.info.set_pending_reason(absl::StrCat("node ", hex, " holding bundles died; placing them again"));
    g.info.set_infeasible(false);
    spdlog::warn("placement group {}: {}", id.Hex(), g.info.pending_reason());
    Changed(id, g, actions);
  }
}

void PlacementGroupManager::OnNodeAdded(const NodeId&) {
  Actions actions;
  {
    absl::MutexLock lock(&mu_);
    if (shutdown_) return;
    RetryAllNow();
    TrySchedule(actions);
  }
  Finish(actions);
}

void PlacementGroupManager::OnNodeDead(const NodeId& node) {
  Actions actions;
  {
    absl::MutexLock lock(&mu_);
    if (shutdown_) return;
    reserved_since_report_.erase(node);
    LoseNode(node.Hex(), actions);
    if (attempt_) {
      auto it = attempt_->parts.find(node);
      if (it != attempt_->parts.end() && !it->second.answered) {
        it->second.answered = true;
        it->second.ok = false;
        it->second.dead = true;
        if (--attempt_->outstanding == 0) {
          if (attempt_->committing) {
            AfterCommit(actions);
          } else {
            AfterPrepare(actions);
          }
        }
      } else if (it != attempt_->parts.end()) {
        it->second.dead = true;
        it->second.ok = false;  // prepared there, but gone: the commit phase must not count it
      }
    }
    RetryAllNow();
    TrySchedule(actions);
  }
  Finish(actions);
}

void PlacementGroupManager::OnResourcesReported(const NodeId& node) {
  Actions actions;
  {
    absl::MutexLock lock(&mu_);
    if (shutdown_) return;
    reserved_since_report_.erase(node);
    if (!pending_.empty()) TrySchedule(actions);
  }
  Finish(actions);
}

void PlacementGroupManager::OnJobFinished(const JobId& job) {
  Actions actions;
  {
    absl::MutexLock lock(&mu_);
    if (shutdown_) return;
    const std::string hex = job.Hex();
    std::vector<PlacementGroupId> ids;
    for (const auto& [id, g] : groups_) {
      if (g.info.state() != Info::REMOVED && !g.info.detached() && g.info.job_id() == hex && !g.storing) {
        ids.push_back(id);
      }
    }
    for (const PlacementGroupId& id : ids) {
      if (Group* g = Find(id)) RemoveLocked(id, *g, actions);
    }
  }
  Finish(actions);
}

// --- time and shutdown ---

void PlacementGroupManager::Tick() {
  Actions actions;
  {
    absl::MutexLock lock(&mu_);
    if (shutdown_) return;
    const absl::Time now = clock_.Now();
    if (wake_ && *wake_ <= now) {
      wake_.reset();
      for (const auto& [seq, id] : pending_) {
        const Group& g = groups_.at(id);
        if (g.next_try > now && (!wake_ || g.next_try < *wake_)) wake_ = g.next_try;
      }
      TrySchedule(actions);
    }
    for (auto it = waiters_.begin(); it != waiters_.end();) {
      auto& list = it->second;
      for (auto w = list.begin(); w != list.end();) {
        if (w->deadline > now) {
          ++w;
          continue;
        }
        actions.push_back([done = std::move(w->done), hex = it->first.Hex()] {
          done(absl::DeadlineExceededError(absl::StrCat("placement group ", hex, " is not created yet")));
        });
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

void PlacementGroupManager::Shutdown() {
  Actions actions;
  {
    absl::MutexLock lock(&mu_);
    if (shutdown_) return;
    shutdown_ = true;
    for (auto& [id, list] : waiters_) {
      for (Waiter& w : list) {
        actions.push_back([done = std::move(w.done)] { done(absl::UnavailableError("the GCS is shutting down")); });
      }
    }
    waiters_.clear();
  }
  Finish(actions);
}

bool PlacementGroupManager::Reserving() const {
  absl::MutexLock lock(&mu_);
  return attempt_.has_value();
}

}  // namespace shoal
