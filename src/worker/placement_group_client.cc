#include "src/worker/placement_group_client.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "spdlog/spdlog.h"
#include "src/scheduler/label_selector.h"
#include "src/worker/task_spec.h"

namespace shoal {
namespace {

constexpr absl::Duration kStateRecheck = absl::Seconds(1);
constexpr size_t kMaxCached = 10000;

}  // namespace

std::vector<ResourceSet> BundlesOf(const rpc::PlacementGroupInfo& info) {
  std::vector<ResourceSet> out(info.bundles_size());
  for (const rpc::Bundle& bundle : info.bundles()) {
    if (bundle.bundle_index() >= 0 && bundle.bundle_index() < info.bundles_size()) {
      out[bundle.bundle_index()] = ResourceSet::FromProto(bundle.resources());
    }
  }
  return out;
}

absl::StatusOr<PlacementGroupId> PlacementGroupClient::Create(const PlacementGroupOptions& options) {
  if (auto s = ValidateBundles(options.bundles); !s.ok()) return s;
  rpc::PlacementGroupInfo::Strategy strategy;
  if (!rpc::PlacementGroupInfo::Strategy_Parse(options.strategy, &strategy)) {
    return absl::InvalidArgumentError(absl::StrCat("invalid placement group strategy '", options.strategy,
                                                   "': use PACK, SPREAD, STRICT_PACK or STRICT_SPREAD"));
  }
  if (!options.bundle_label_selectors.empty() && options.bundle_label_selectors.size() != options.bundles.size()) {
    return absl::InvalidArgumentError(absl::StrCat("bundle_label_selector must have one entry per bundle (",
                                                   options.bundles.size(), "), got ",
                                                   options.bundle_label_selectors.size()));
  }
  for (size_t i = 0; i < options.bundle_label_selectors.size(); ++i) {
    if (auto s = LabelSelector::Parse(options.bundle_label_selectors[i]); !s.ok()) {
      return absl::InvalidArgumentError(absl::StrCat("bundle_label_selector[", i, "]: ", s.status().message()));
    }
  }
  const PlacementGroupId id = PlacementGroupId::FromRandom();
  rpc::PlacementGroupInfo info;
  info.set_placement_group_id(id.Binary());
  info.set_name(options.name);
  info.set_ray_namespace(options.ray_namespace);
  info.set_strategy(strategy);
  for (size_t i = 0; i < options.bundles.size(); ++i) {
    rpc::Bundle* bundle = info.add_bundles();
    bundle->set_placement_group_id(id.Binary());
    bundle->set_bundle_index(static_cast<int>(i));
    options.bundles[i].ToProto(bundle->mutable_resources());
    if (i < options.bundle_label_selectors.size()) {
      for (const auto& [key, value] : options.bundle_label_selectors[i]) (*bundle->mutable_label_selector())[key] = value;
    }
  }
  info.set_job_id(owner_.job.Hex());
  info.set_creator_address(owner_.address);
  info.set_detached(options.detached);
  if (!options.name.empty()) {  // the name may be taken: the caller hears it now
    AwaitPending(absl::InfiniteDuration());  // ...or freed by a removal still on its way
    if (auto s = gcs_.CreatePlacementGroup(info); !s.ok()) return s;
  }
  {
    absl::MutexLock lock(&mu_);
    if (cache_.size() >= kMaxCached) cache_.clear();
    cache_[id] = Cached{.bundles = options.bundles, .removed = false, .checked = absl::Now(), .ours = true};
  }
  if (options.name.empty()) {
    Send(
        id, /*creation=*/true, [this, info](std::function<void(absl::Status)> done) {
          gcs_.AsyncCreatePlacementGroup(info, std::move(done));
        },
        [this, info] { return gcs_.CreatePlacementGroup(info); });
  }
  return id;
}

absl::Status PlacementGroupClient::Remove(const PlacementGroupId& group) {
  // A creation that failed may still have reached the GCS (an answer lost on the way): remove it
  // with a blocking call, whose error the caller hears.
  const absl::Status created = AwaitSent(group);
  bool ours = false;
  {
    absl::MutexLock lock(&mu_);
    if (auto it = cache_.find(group); created.ok() && it != cache_.end() && it->second.ours && !it->second.removed) {
      ours = true;
      it->second.removed = true;
    }
  }
  if (ours) {  // known to the GCS (its creation was answered): the removal cannot be refused
    Send(
        group, /*creation=*/false, [this, group](std::function<void(absl::Status)> done) {
          gcs_.AsyncRemovePlacementGroup(group.Binary(), std::move(done));
        },
        [this, group] { return gcs_.RemovePlacementGroup(group.Binary()); });
    return absl::OkStatus();
  }
  absl::Status s = gcs_.RemovePlacementGroup(group.Binary());
  if (s.ok()) {
    absl::MutexLock lock(&mu_);
    if (auto it = cache_.find(group); it != cache_.end()) it->second.removed = true;
  }
  return absl::IsNotFound(s) && !created.ok() ? created : s;
}

PlacementGroupClient::~PlacementGroupClient() { Flush(); }

void PlacementGroupClient::Send(const PlacementGroupId& group, bool creation,
                                std::function<void(std::function<void(absl::Status)>)> send,
                                std::function<absl::Status()> blocking) {
  {
    absl::MutexLock lock(&mu_);
    ++unanswered_[group];
    ++pending_;
  }
  // The answer comes on one of gRPC's threads, which must not block: a call that did not reach
  // the GCS goes again, with the blocking call's retries, on this client's resender thread.
  send([this, group, creation, blocking = std::move(blocking)](absl::Status status) {
    if (!absl::IsUnavailable(status)) {
      Sent(group, creation, status);
      return;
    }
    absl::MutexLock lock(&mu_);
    resend_.push_back([this, group, creation, blocking] { Sent(group, creation, blocking()); });
    if (resending_) return;
    resending_ = true;
    // The last one ended its loop (it cleared resending_ and touches nothing after): joining it
    // returns at once.
    if (resender_.joinable()) resender_.join();
    resender_ = std::thread([this] { Resend(); });
  });
}

void PlacementGroupClient::Resend() {
  while (true) {
    std::function<void()> next;
    {
      absl::MutexLock lock(&mu_);
      if (resend_.empty()) {
        resending_ = false;
        return;
      }
      next = std::move(resend_.front());
      resend_.pop_front();
    }
    next();
  }
}

void PlacementGroupClient::Sent(const PlacementGroupId& group, bool creation, const absl::Status& status) {
  if (!status.ok()) {
    spdlog::warn("placement group {}: {} failed: {}", group.Hex(), creation ? "creation" : "removal",
                 status.ToString());
  }
  absl::MutexLock lock(&mu_);
  if (!status.ok() && creation) failed_[group] = status;
  if (!status.ok() && !creation) {  // the group is still there: later lookups ask the GCS again
    if (auto it = cache_.find(group); it != cache_.end()) it->second.removed = false;
  }
  if (--unanswered_[group] == 0) unanswered_.erase(group);
  --pending_;
}

void PlacementGroupClient::AwaitPending(absl::Duration timeout) {
  if (pending_.load() == 0) return;
  absl::MutexLock lock(&mu_);
  auto answered = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return pending_.load() == 0; };
  if (!mu_.AwaitWithTimeout(absl::Condition(&answered), timeout)) {
    spdlog::warn("placement groups: {} creation(s) or removal(s) still unanswered by the GCS after {}; going on",
                 pending_.load(), absl::FormatDuration(timeout));
  }
}

absl::Status PlacementGroupClient::AwaitSent(const PlacementGroupId& group) {
  absl::MutexLock lock(&mu_);
  auto answered = [this, &group]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return !unanswered_.contains(group); };
  mu_.Await(absl::Condition(&answered));
  auto it = failed_.find(group);
  return it == failed_.end() ? absl::OkStatus() : it->second;
}

void PlacementGroupClient::Flush() {
  std::thread resender;
  {
    absl::MutexLock lock(&mu_);
    auto answered = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return unanswered_.empty() && !resending_; };
    mu_.Await(absl::Condition(&answered));
    resender.swap(resender_);
  }
  if (resender.joinable()) resender.join();
}

absl::StatusOr<rpc::PlacementGroupInfo> PlacementGroupClient::Get(const PlacementGroupId& group) {
  if (auto s = AwaitSent(group); !s.ok()) return s;
  return gcs_.GetPlacementGroup(group.Binary());
}

absl::StatusOr<rpc::PlacementGroupInfo> PlacementGroupClient::GetNamed(const std::string& name,
                                                                       const std::string& ray_namespace) {
  AwaitPending(absl::InfiniteDuration());  // a removal of a named group frees its name
  return gcs_.GetNamedPlacementGroup(name, ray_namespace);
}

absl::StatusOr<std::vector<rpc::PlacementGroupInfo>> PlacementGroupClient::List(int limit) {
  Flush();
  return gcs_.GetAllPlacementGroups(limit);
}

absl::StatusOr<bool> PlacementGroupClient::Wait(const PlacementGroupId& group, absl::Duration timeout) {
  if (auto s = AwaitSent(group); !s.ok()) return s;
  return gcs_.WaitPlacementGroupUntilReady(group.Binary(), timeout);
}

absl::StatusOr<PlacementGroupClient::Cached> PlacementGroupClient::Lookup(const PlacementGroupId& group) {
  if (auto s = AwaitSent(group); !s.ok()) return s;
  {
    absl::MutexLock lock(&mu_);
    auto it = cache_.find(group);
    if (it != cache_.end() && (it->second.removed || absl::Now() - it->second.checked < kStateRecheck)) {
      return it->second;
    }
  }
  absl::StatusOr<rpc::PlacementGroupInfo> info = gcs_.GetPlacementGroup(group.Binary());
  if (absl::IsNotFound(info.status())) {
    return absl::InvalidArgumentError(absl::StrCat("placement group ", group.Hex(), " does not exist"));
  }
  if (!info.ok()) return info.status();
  Cached entry{.bundles = BundlesOf(*info),
               .removed = info->state() == rpc::PlacementGroupInfo::REMOVED,
               .checked = absl::Now()};
  absl::MutexLock lock(&mu_);
  if (auto it = cache_.find(group); it != cache_.end()) {
    entry.ours = it->second.ours;
  } else if (cache_.size() >= kMaxCached) {
    cache_.clear();
  }
  cache_[group] = entry;
  return entry;
}

absl::Status PlacementGroupClient::CheckRequest(const rpc::SchedulingStrategy& strategy, const ResourceSet& request) {
  auto group = PlacementGroupId::FromHex(strategy.placement_group_id());
  if (!group.ok() || group->IsNil()) {
    return absl::InvalidArgumentError(
        absl::StrCat("'", strategy.placement_group_id(), "' is not a placement group id"));
  }
  absl::StatusOr<Cached> entry = Lookup(*group);
  if (!entry.ok()) return entry.status();
  if (entry->removed) {
    return absl::FailedPreconditionError(
        absl::StrCat("placement group ", group->Hex(), " was removed: nothing can be scheduled in it"));
  }
  return CheckFitsBundle(request, entry->bundles, strategy.placement_group_bundle_index());
}

absl::StatusOr<TaskOptions> PlacementGroupClient::Resolve(const TaskOptions& options, const CurrentTaskInfo& running) {
  TaskOptions out = options;
  if (!options.explicit_strategy && options.strategy.kind() == rpc::SchedulingStrategy::DEFAULT &&
      running.capture_child_tasks && !running.placement_group_id.empty()) {
    auto selector = std::move(*out.strategy.mutable_label_selector());
    out.strategy.Clear();
    *out.strategy.mutable_label_selector() = std::move(selector);
    out.strategy.set_kind(rpc::SchedulingStrategy::PLACEMENT_GROUP);
    out.strategy.set_placement_group_id(running.placement_group_id);
    out.strategy.set_placement_group_bundle_index(-1);
    out.strategy.set_placement_group_capture_child_tasks(true);
  }
  if (out.strategy.kind() != rpc::SchedulingStrategy::PLACEMENT_GROUP) return out;
  absl::StatusOr<ResourceSet> request = TaskResources(out);
  if (!request.ok()) return request.status();
  if (auto s = CheckRequest(out.strategy, *request); !s.ok()) return s;
  return out;
}

}  // namespace shoal
