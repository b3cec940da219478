// How placement group bundles become node resources, the names every layer agrees on.
//
// A committed bundle adds resources to its node under formatted names, as Ray does, so that the
// ordinary scheduler (cluster views, spillback, demand reports) places work in bundles without a
// path of its own. For bundle `i` of group `pg` reserving {CPU: 2, GPU: 0.5} the node gains
//   CPU_group_<i>_<pg hex>: 2    GPU_group_<i>_<pg hex>: 0.5    bundle_group_<i>_<pg hex>: 1000
// and adds the same amounts to the group-wide ("wildcard") names
//   CPU_group_<pg hex>           GPU_group_<pg hex>             bundle_group_<pg hex>
// A task in "any bundle" (index -1) asks for the wildcard names of what it requests, plus 0.001
// of the wildcard marker (so that a task asking for nothing still lands in the group); a task in
// bundle `i` asks for the same AND for the indexed names, so that tasks in one bundle and tasks
// in any bundle never together take more than the group holds on a node. GPU_group_* names are
// per-device on the raylet: they hold exactly the device shares the bundle took from the node's
// GPUs, and a demand's indexed and wildcard GPU names must be taken from the same devices.
//
// Threading: pure functions and values.
// Errors: InvalidArgument, naming the problem, for malformed bundles and names.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "src/common/ids.h"
#include "src/common/resources.h"

namespace shoal {

class PlacementGroupId : public BaseId<PlacementGroupId, 18> {};

// Name of the marker resource every bundle carries.
inline constexpr char kBundleMarker[] = "bundle";
// Amount of the marker per bundle, and what one task takes of it.
inline constexpr int64_t kBundleMarkerAmount = 1000;
inline constexpr FixedPoint kBundleMarkerPerTask = FixedPoint::FromUnits(10);  // 0.001

// "CPU_group_2_<hex>" (index >= 0) or "CPU_group_<hex>" (index -1: the wildcard).
std::string BundleResourceName(std::string_view resource, const PlacementGroupId& pg, int index);

struct ParsedBundleResource {
  std::string resource;  // the user's name: "CPU", "GPU", "accel", or "bundle" for the marker
  PlacementGroupId pg;
  int index = -1;        // -1 for a wildcard name
};
// nullopt for a name that is not bundle-formatted.
std::optional<ParsedBundleResource> ParseBundleResource(std::string_view name);
// As ParseBundleResource(name).has_value(), without allocating.
bool IsBundleResource(std::string_view name);
// True for "GPU_group_..." names: unit-instance (per device) on the raylet.
bool IsBundleGpuResource(std::string_view name);

// What a task or actor in bundle `index` (-1: any bundle) of `pg` asks the scheduler for,
// from what it requests.
ResourceSet FormatBundleDemand(const ResourceSet& request, const PlacementGroupId& pg, int index);
// What committing bundle `index` of `pg` adds to its node: indexed and wildcard names of every
// amount, and the marker under both.
ResourceSet CommittedBundleResources(const ResourceSet& bundle, const PlacementGroupId& pg, int index);
// `resources` less every bundle-formatted name (what `shoal status` shows as the node's own).
ResourceSet WithoutBundleResources(const ResourceSet& resources);

// InvalidArgument for an empty list, an empty (or all-zero) bundle, a bundle-formatted or
// node-marker ("node:...") name inside a bundle, or a GPU amount above 1 that is not whole.
absl::Status ValidateBundles(const std::vector<ResourceSet>& bundles);
// InvalidArgument unless `request` fits bundle `index` (-1: some bundle) of `bundles`, saying
// which amount does not fit; also for an index out of range.
absl::Status CheckFitsBundle(const ResourceSet& request, const std::vector<ResourceSet>& bundles,
                             int index);

}  // namespace shoal
