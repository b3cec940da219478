#include "src/raylet/bundle_manager.h"

#include <set>
#include <string>

#include "absl/strings/str_cat.h"
#include "spdlog/spdlog.h"
#include "src/common/error_info.h"

namespace shoal {
namespace {

std::string Describe(const PlacementGroupId& pg, int index) {
  return absl::StrCat("bundle ", index, " of placement group ", pg.Hex());
}

// True when `amounts` names a resource of `pg` that `pick` accepts (by the name's bundle index,
// -1 for a wildcard name).
template <typename Pick>
bool NamesGroup(const ResourceSet& amounts, const PlacementGroupId& pg, Pick pick) {
  for (const auto& [name, amount] : amounts.entries()) {
    std::optional<ParsedBundleResource> parsed = ParseBundleResource(name);
    if (parsed.has_value() && parsed->pg == pg && pick(parsed->index)) return true;
  }
  return false;
}

}  // namespace

absl::StatusOr<std::vector<BundleManager::Parsed>> BundleManager::Parse(const Bundles& bundles,
                                                                         bool need_resources) const {
  std::vector<Parsed> out;
  out.reserve(bundles.size());
  for (const rpc::Bundle& bundle : bundles) {
    auto pg = PlacementGroupId::FromBinary(bundle.placement_group_id());
    if (!pg.ok()) {
      return absl::InvalidArgumentError(absl::StrCat("placement_group_id: ", pg.status().message()));
    }
    if (bundle.bundle_index() < 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("bundle_index must not be negative, got ", bundle.bundle_index()));
    }
    if (!bundle.node_id().empty() && bundle.node_id() != node_id_.Hex()) {
      return absl::InvalidArgumentError(absl::StrCat(Describe(*pg, bundle.bundle_index()), " is placed on node ",
                                                     bundle.node_id(), ", not on this node ", node_id_.Hex()));
    }
    Parsed p{.key = {*pg, bundle.bundle_index()}, .resources = ResourceSet::FromProto(bundle.resources())};
    if (need_resources) {
      if (absl::Status s = ValidateBundles({p.resources}); !s.ok()) {
        return absl::InvalidArgumentError(absl::StrCat(Describe(*pg, bundle.bundle_index()), ": ", s.message()));
      }
    }
    out.push_back(std::move(p));
  }
  return out;
}

absl::Status BundleManager::Prepare(const Bundles& bundles) {
  auto parsed = Parse(bundles, /*need_resources=*/true);
  if (!parsed.ok()) return parsed.status();
  std::vector<Key> taken;
  for (const Parsed& p : *parsed) {
    if (bundles_.contains(p.key)) continue;  // prepared or committed already (or listed twice)
    auto reservation = leases_.ReserveResources(p.resources);
    if (!reservation.ok()) {
      for (const Key& key : taken) {
        leases_.UnreserveResources(bundles_.at(key).reservation);
        bundles_.erase(key);
      }
      return absl::ResourceExhaustedError(absl::StrCat(Describe(p.key.first, p.key.second), " (",
                                                       p.resources.ToString(), ") does not fit: ",
                                                       reservation.status().message()));
    }
    bundles_.emplace(p.key, Entry{.resources = p.resources, .reservation = *std::move(reservation)});
    taken.push_back(p.key);
  }
  return absl::OkStatus();
}

ResourceAllocation BundleManager::Formatted(const Key& key, const Entry& entry) const {
  const auto& [pg, index] = key;
  ResourceAllocation out;
  out.amounts = CommittedBundleResources(entry.resources, pg, index);
  if (auto gpu = entry.reservation.instances.find(kGPU); gpu != entry.reservation.instances.end() &&
                                                         !entry.resources.Get(kGPU).IsZero()) {
    out.instances[BundleResourceName(kGPU, pg, index)] = gpu->second;
    out.instances[BundleResourceName(kGPU, pg, -1)] = gpu->second;
  }
  return out;
}

absl::Status BundleManager::Commit(const Bundles& bundles) {
  auto parsed = Parse(bundles, /*need_resources=*/false);
  if (!parsed.ok()) return parsed.status();
  for (const Parsed& p : *parsed) {
    if (!bundles_.contains(p.key)) {
      return absl::FailedPreconditionError(
          absl::StrCat(Describe(p.key.first, p.key.second), " is not prepared on node ", node_id_.Hex()));
    }
  }
  for (const Parsed& p : *parsed) {
    Entry& entry = bundles_.at(p.key);
    if (entry.formatted.has_value()) continue;
    ResourceAllocation formatted = Formatted(p.key, entry);
    if (absl::Status s = leases_.AddResources(formatted); !s.ok()) {
      return absl::InternalError(absl::StrCat("committing ", Describe(p.key.first, p.key.second), ": ", s.message()));
    }
    entry.formatted = std::move(formatted);
    spdlog::info("committed {}: {}", Describe(p.key.first, p.key.second), entry.resources.ToString());
  }
  return absl::OkStatus();
}

absl::Status BundleManager::Cancel(const Bundles& bundles, bool group_removed) {
  auto parsed = Parse(bundles, /*need_resources=*/false);
  if (!parsed.ok()) return parsed.status();
  if (group_removed) {
    std::set<PlacementGroupId> groups;
    for (const Parsed& p : *parsed) groups.insert(p.key.first);
    for (const PlacementGroupId& pg : groups) leases_.RemoveGroup(pg);
  }
  for (const Parsed& p : *parsed) CancelOne(p.key, group_removed);
  return absl::OkStatus();
}

absl::StatusOr<int> BundleManager::ReleaseUnused(const Bundles& in_use) {
  auto parsed = Parse(in_use, /*need_resources=*/false);
  if (!parsed.ok()) return parsed.status();
  std::set<Key> keep;
  for (const Parsed& p : *parsed) keep.insert(p.key);
  std::vector<Key> unused;
  for (const auto& [key, entry] : bundles_) {
    if (!keep.contains(key)) unused.push_back(key);
  }
  for (const Key& key : unused) CancelOne(key, /*group_removed=*/false);
  return static_cast<int>(unused.size());
}

void BundleManager::CancelOne(const Key& key, bool group_removed) {
  auto it = bundles_.find(key);
  if (it == bundles_.end()) return;
  const auto& [pg, index] = key;
  if (it->second.formatted.has_value()) {
    const ResourceAllocation& formatted = *it->second.formatted;
    const rpc::ErrorInfo cause =
        group_removed ? MakeError(rpc::PLACEMENT_GROUP_REMOVED, absl::StrCat("placement group ", pg.Hex(), " was removed"))
                      : MakeError(rpc::WORKER_DIED, absl::StrCat(Describe(pg, index), " was given back by node ",
                                                                 node_id_.Hex()));
    auto any = [](int) { return true; };
    auto this_bundle = [i = index](int named) { return named == i; };
    auto indexed = [](int named) { return named >= 0; };
    // Leases using the bundle's own names, or (removed) every lease of the group.
    leases_.KillLeasesUsing(
        [&](const ResourceSet& used) {
          return group_removed ? NamesGroup(used, pg, any) : NamesGroup(used, pg, this_bundle);
        },
        cause);
    absl::Status removed = leases_.RemoveResources(formatted);
    if (absl::IsFailedPrecondition(removed)) {
      // The group's wildcard names no longer cover what tasks in "any bundle" hold.
      leases_.KillLeasesUsing(
          [&](const ResourceSet& used) { return NamesGroup(used, pg, any) && !NamesGroup(used, pg, indexed); },
          cause);
      removed = leases_.RemoveResources(formatted);
    }
    if (absl::IsFailedPrecondition(removed)) {
      leases_.KillLeasesUsing([&](const ResourceSet& used) { return NamesGroup(used, pg, any); }, cause);
      removed = leases_.RemoveResources(formatted);
    }
    if (!removed.ok()) {
      spdlog::error("cannot remove the resources of {}: {}", Describe(pg, index), removed.ToString());
    }
  }
  leases_.UnreserveResources(it->second.reservation);
  spdlog::info("{} {}: {} back to the node", group_removed ? "removed" : "cancelled", Describe(pg, index),
               it->second.resources.ToString());
  bundles_.erase(it);
}

BundleManager::State BundleManager::StateOf(const PlacementGroupId& pg, int index) const {
  auto it = bundles_.find({pg, index});
  if (it == bundles_.end()) return State::kNone;
  return it->second.formatted.has_value() ? State::kCommitted : State::kPrepared;
}

}  // namespace shoal
