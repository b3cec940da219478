// Placement groups in the C++ task API, with Ray's names: reserve bundles of resources together
// (all or none) and run tasks and actors in them.
//
//   shoal::PlacementGroupCreationOptions options{"train", {{{"CPU", 1}, {"GPU", 0.5}}, {{"CPU", 1}}},
//                                               shoal::PlacementStrategy::kStrictSpread};
//   shoal::PlacementGroup pg = shoal::CreatePlacementGroup(options);
//   if (!pg.Wait(30)) { ... not created within 30 s ... }
//   auto ref = shoal::Task(Step).SetPlacementGroup(pg.GetID(), 0).Remote(x);
//   shoal::RemovePlacementGroup(pg.GetID());
//
// Threading: any thread once shoal::Init has returned. Errors: shoal::Error (bad bundles or
// strategy, a taken name, an unknown group, a request that does not fit its bundle).
#pragma once

#include <map>
#include <string>
#include <vector>

#include "shoal/internal.h"

namespace shoal {

enum class PlacementStrategy { kPack, kSpread, kStrictPack, kStrictSpread };

struct PlacementGroupCreationOptions {
  std::string name;                                     // "" for an unnamed group
  std::vector<std::map<std::string, double>> bundles;   // e.g. {{"CPU", 1}, {"GPU", 0.5}}
  PlacementStrategy strategy = PlacementStrategy::kPack;
  bool detached = false;                                // outlives the job
};

inline const char* PlacementStrategyName(PlacementStrategy strategy) {
  switch (strategy) {
    case PlacementStrategy::kPack: return "PACK";
    case PlacementStrategy::kSpread: return "SPREAD";
    case PlacementStrategy::kStrictPack: return "STRICT_PACK";
    case PlacementStrategy::kStrictSpread: return "STRICT_SPREAD";
  }
  return "PACK";
}

class PlacementGroup {
 public:
  PlacementGroup() = default;
  explicit PlacementGroup(internal::PlacementGroupData data) : data_(std::move(data)) {}

  const std::string& GetID() const { return data_.id; }
  const std::string& GetName() const { return data_.name; }
  const std::vector<std::map<std::string, double>>& GetBundles() const { return data_.bundles; }
  // "PACK", "SPREAD", "STRICT_PACK" or "STRICT_SPREAD".
  const std::string& GetStrategy() const { return data_.strategy; }
  // The state now, asked of the GCS: "PENDING", "CREATED", "RESCHEDULING" or "REMOVED".
  std::string GetState() const { return internal::GetPlacementGroupById(data_.id).state; }
  // Node id (hex) holding each bundle now; "" for a bundle not placed.
  std::vector<std::string> GetBundleNodes() const { return internal::GetPlacementGroupById(data_.id).bundle_nodes; }
  bool Empty() const { return data_.id.empty(); }
  // True once every bundle is reserved; false when `timeout_seconds` pass first (negative: no
  // limit). Throws Error if the group was removed first.
  bool Wait(double timeout_seconds) const { return internal::WaitPlacementGroup(data_.id, timeout_seconds); }

 private:
  internal::PlacementGroupData data_;
};

// Registers the group and answers at once (it is created when its bundles fit: Wait).
inline PlacementGroup CreatePlacementGroup(const PlacementGroupCreationOptions& options) {
  internal::PlacementGroupData data;
  data.id = internal::CreatePlacementGroup(options.bundles, PlacementStrategyName(options.strategy), options.name,
                                           options.detached);
  data.name = options.name;
  data.strategy = PlacementStrategyName(options.strategy);
  data.bundles = options.bundles;
  data.bundle_nodes.assign(options.bundles.size(), "");
  data.state = "PENDING";
  return PlacementGroup(std::move(data));
}
// Returns every bundle; the group's actors and tasks are killed.
inline void RemovePlacementGroup(const std::string& placement_group_id) {
  internal::RemovePlacementGroup(placement_group_id);
}
inline PlacementGroup GetPlacementGroupById(const std::string& placement_group_id) {
  return PlacementGroup(internal::GetPlacementGroupById(placement_group_id));
}
// The live group with that name in the job's namespace.
inline PlacementGroup GetPlacementGroup(const std::string& name) {
  return PlacementGroup(internal::GetPlacementGroupByName(name));
}
inline std::vector<PlacementGroup> GetAllPlacementGroups() {
  std::vector<PlacementGroup> out;
  for (auto& data : internal::ListPlacementGroups()) out.emplace_back(std::move(data));
  return out;
}

}  // namespace shoal
