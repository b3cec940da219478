#include "src/scheduler/cluster_view.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "src/common/bundle_resources.h"

namespace shoal {
namespace {

int64_t WholeUnits(FixedPoint amount) { return amount.units() / FixedPoint::kScale; }

// The devices of a node with `count` GPUs whose free shares are `free`.
// REQUIRES: `free` passed CheckGpuFree.
ResourceInstances InstancesWithFree(int64_t count, const std::vector<FixedPoint>& free) {
  ResourceInstances devices(count);
  (void)devices.Allocate(FixedPoint::FromInt(count));  // take every device...
  (void)devices.Free(free);                            // ...and give back what is free
  return devices;
}

absl::Status CheckGpuFree(const NodeId& id, const ResourceSet& total, const ResourceSet& available,
                          const std::vector<FixedPoint>& gpu_free) {
  if (gpu_free.empty()) return absl::OkStatus();
  const int64_t devices = WholeUnits(total.Get(kGPU));
  if (static_cast<int64_t>(gpu_free.size()) != devices) {
    return absl::InvalidArgumentError(absl::StrCat("node ", id.Hex(), ": ", gpu_free.size(),
                                                   " GPU shares for ", devices, " devices"));
  }
  FixedPoint sum;
  for (FixedPoint share : gpu_free) {
    if (share < FixedPoint() || share > FixedPoint::FromInt(1)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "node ", id.Hex(), ": a GPU's free share must be within [0, 1], got ", share.ToString()));
    }
    sum += share;
  }
  if (sum != available.Get(kGPU)) {
    return absl::InvalidArgumentError(absl::StrCat("node ", id.Hex(), ": GPU shares sum to ",
                                                   sum.ToString(), ", available GPU is ",
                                                   available.Get(kGPU).ToString()));
  }
  return absl::OkStatus();
}

absl::Status CheckAvailable(const NodeId& id, const ResourceSet& total,
                            const ResourceSet& available, const std::vector<FixedPoint>& gpu_free) {
  if (!total.Contains(available)) {
    return absl::InvalidArgumentError(absl::StrCat("node ", id.Hex(), ": available ",
                                                   available.ToString(), " exceeds total ",
                                                   total.ToString()));
  }
  return CheckGpuFree(id, total, available, gpu_free);
}

}  // namespace

absl::Status ValidateDemand(const ResourceSet& demand) {
  const FixedPoint gpu = demand.Get(kGPU);
  if (gpu > FixedPoint::FromInt(1) && !gpu.IsInteger()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "a GPU request above 1 must be a whole number of devices, got ", gpu.ToString()));
  }
  for (const auto& [name, amount] : demand.entries()) {
    if (amount > FixedPoint::FromInt(1) && !amount.IsInteger() && IsBundleGpuResource(name)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "a GPU request above 1 must be a whole number of devices, got ", name, ": ", amount.ToString()));
    }
  }
  return absl::OkStatus();
}

// --- NodeView ---

bool NodeView::IsFeasible(const ResourceSet& demand) const {
  return NodeRoom::Total(*this).Fits(demand);
}

bool NodeView::IsAvailable(const ResourceSet& demand) const {
  return NodeRoom::Available(*this).Fits(demand);
}

double NodeView::Utilization() const {
  double highest = 0;
  for (const char* name : {kCPU, kGPU, kMemory, kObjectStoreMemory}) {
    const FixedPoint have = total.Get(name);
    if (have.IsZero()) continue;
    const FixedPoint used = have - std::min(available.Get(name), have);
    highest = std::max(highest, static_cast<double>(used.units()) / have.units());
  }
  return highest;
}

// --- NodeRoom ---

NodeRoom NodeRoom::Available(const NodeView& node) {
  std::optional<ResourceInstances> gpus;
  if (!node.gpu_free.empty()) {
    gpus = InstancesWithFree(WholeUnits(node.total.Get(kGPU)), node.gpu_free);
  }
  return NodeRoom(node.available, std::move(gpus));
}

NodeRoom NodeRoom::Total(const NodeView& node) {
  std::optional<ResourceInstances> gpus;
  if (node.HasGpus()) gpus.emplace(WholeUnits(node.total.Get(kGPU)));
  return NodeRoom(node.total, std::move(gpus));
}

bool NodeRoom::Fits(const ResourceSet& demand) const {
  if (!ValidateDemand(demand).ok() || !free_.Contains(demand)) return false;
  const FixedPoint gpu = demand.Get(kGPU);
  if (gpu.IsZero() || !gpus_.has_value()) return true;
  ResourceInstances trial = *gpus_;
  return trial.Allocate(gpu).ok();
}

bool NodeRoom::Take(const ResourceSet& demand) {
  if (!ValidateDemand(demand).ok() || !free_.Contains(demand)) return false;
  const FixedPoint gpu = demand.Get(kGPU);
  // Allocate changes nothing when it fails, so the room stays as it was.
  if (!gpu.IsZero() && gpus_.has_value() && !gpus_->Allocate(gpu).ok()) return false;
  (void)free_.Subtract(demand);
  return true;
}

std::vector<FixedPoint> NodeRoom::gpu_free() const {
  return gpus_.has_value() ? gpus_->free() : std::vector<FixedPoint>();
}

// --- ClusterResourceView ---

absl::Status ClusterResourceView::AddOrUpdateNode(NodeView node) {
  if (node.id.IsNil()) return absl::InvalidArgumentError("node id must not be nil");
  if (!node.total.Get(kGPU).IsInteger()) {
    return absl::InvalidArgumentError(absl::StrCat("node ", node.id.Hex(),
                                                   ": GPU total must be whole, got ",
                                                   node.total.Get(kGPU).ToString()));
  }
  if (auto s = CheckAvailable(node.id, node.total, node.available, node.gpu_free); !s.ok()) {
    return s;
  }
  NodeId id = node.id;
  nodes_.insert_or_assign(id, std::move(node));
  return absl::OkStatus();
}

absl::Status ClusterResourceView::UpdateAvailable(const NodeId& id, const ResourceSet& available,
                                                  std::vector<FixedPoint> gpu_free) {
  auto it = nodes_.find(id);
  if (it == nodes_.end()) return absl::NotFoundError(absl::StrCat("unknown node ", id.Hex()));
  NodeView& node = it->second;
  if (!node.alive) {
    return absl::FailedPreconditionError(absl::StrCat("node ", id.Hex(), " is dead"));
  }
  if (auto s = CheckAvailable(id, node.total, available, gpu_free); !s.ok()) return s;
  node.available = available;
  node.gpu_free = std::move(gpu_free);
  return absl::OkStatus();
}

absl::Status ClusterResourceView::UpdateAvailable(const NodeId& id,
                                                  const NodeResources& resources) {
  const NodeView* node = Find(id);
  if (node != nullptr && !(node->total == resources.total())) {
    return absl::InvalidArgumentError(absl::StrCat("node ", id.Hex(), ": total ",
                                                   resources.total().ToString(), " differs from ",
                                                   node->total.ToString()));
  }
  std::vector<FixedPoint> gpu_free;
  if (const ResourceInstances* gpus = resources.Instances(kGPU)) gpu_free = gpus->free();
  return UpdateAvailable(id, resources.Available(), std::move(gpu_free));
}

absl::Status ClusterResourceView::TakeAvailable(const NodeId& id, const ResourceSet& demand) {
  auto it = nodes_.find(id);
  if (it == nodes_.end()) return absl::NotFoundError(absl::StrCat("unknown node ", id.Hex()));
  NodeView& node = it->second;
  NodeRoom room = NodeRoom::Available(node);
  if (!room.Take(demand)) {
    return absl::ResourceExhaustedError(absl::StrCat("node ", id.Hex(), " has ",
                                                     node.available.ToString(), " free, not ",
                                                     demand.ToString()));
  }
  node.available = room.free();
  if (!node.gpu_free.empty()) node.gpu_free = room.gpu_free();
  return absl::OkStatus();
}

absl::Status ClusterResourceView::MarkDead(const NodeId& id) {
  auto it = nodes_.find(id);
  if (it == nodes_.end()) return absl::NotFoundError(absl::StrCat("unknown node ", id.Hex()));
  it->second.alive = false;
  return absl::OkStatus();
}

absl::Status ClusterResourceView::RemoveNode(const NodeId& id) {
  if (nodes_.erase(id) == 0) return absl::NotFoundError(absl::StrCat("unknown node ", id.Hex()));
  return absl::OkStatus();
}

const NodeView* ClusterResourceView::Find(const NodeId& id) const {
  auto it = nodes_.find(id);
  return it == nodes_.end() ? nullptr : &it->second;
}

bool ClusterResourceView::Feasible(const ResourceSet& demand, const LabelSelector& selector) const {
  return std::any_of(nodes_.begin(), nodes_.end(), [&](const auto& entry) {
    return entry.second.Schedulable() && selector.Matches(entry.second.labels) &&
           entry.second.IsFeasible(demand);
  });
}

// --- Demand summary ---

std::vector<DemandSummary> SummarizeDemand(const std::vector<QueuedDemand>& queued,
                                           const ClusterResourceView& view) {
  std::map<std::pair<std::map<std::string, FixedPoint>, Labels>, DemandSummary> by_shape;
  for (const QueuedDemand& q : queued) {
    if (q.count < 1) continue;
    DemandSummary& summary = by_shape[{q.shape.entries(), q.label_selector}];
    summary.shape = q.shape;
    summary.label_selector = q.label_selector;
    summary.count += q.count;
  }
  std::vector<DemandSummary> out;
  out.reserve(by_shape.size());
  for (auto& [key, summary] : by_shape) {
    absl::StatusOr<LabelSelector> selector = LabelSelector::Parse(summary.label_selector);
    summary.infeasible = !selector.ok() || !view.Feasible(summary.shape, *selector);
    out.push_back(std::move(summary));
  }
  return out;
}

}  // namespace shoal
