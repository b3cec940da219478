// What the scheduler knows about the cluster: each node's total and free resources and whether
// it may take work, plus the resource arithmetic every policy shares (NodeRoom) and the demand
// summary that `shoal status` and the GCS report.
//
// Feasible vs. available: a demand is *feasible* on a node when the node's TOTAL could hold it
// (it might run there once other work finishes) and *available* when its FREE resources hold it
// now. Only alive nodes without scheduling_disabled count for either.
//
// GPUs: a GPU amount below 1 needs one device with that share free; an amount of 1 or more must
// be whole and needs that many fully free devices (ResourceInstances' rules). Where a node's
// per-device free shares are known (NodeView::gpu_free: the local raylet fills it from its
// NodeResources, and other nodes' from their reports through the GCS, NodeInfo.gpu_free) fit is
// judged per device; where only the sum is known, fit is judged on the sum, which may be
// optimistic: the raylet that owns the node has the final word. Bundle GPU
// names (GPU_group_..., bundle_resources.h) are judged on their sums everywhere, the local node
// included: only its NodeResources places them per device.
//
// Threading: not synchronized; one thread (the raylet's or GCS's main loop) owns a view.
// Ownership: values only; holds no pointers into its callers.
// Errors: bad input answers InvalidArgument, unknown nodes NotFound; nothing aborts.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "src/common/ids.h"
#include "src/common/resources.h"
#include "src/scheduler/label_selector.h"

namespace shoal {

// One node as the scheduler sees it.
struct NodeView {
  NodeId id;
  ResourceSet total;
  ResourceSet available;
  // Free share of each GPU device, when known: one entry per device, summing to
  // available.Get(GPU). Empty when only the sum is known.
  std::vector<FixedPoint> gpu_free;
  std::map<std::string, std::string> labels;
  bool alive = true;
  // Set for a head started with --no-head-scheduling: the node takes no work and does not make
  // a demand feasible.
  bool scheduling_disabled = false;
  bool is_head = false;

  // Alive and not scheduling-disabled: may take work.
  bool Schedulable() const { return alive && !scheduling_disabled; }
  bool HasGpus() const { return !total.Get(kGPU).IsZero(); }
  // The total could hold `demand` (ignores alive/schedulable; see Schedulable).
  bool IsFeasible(const ResourceSet& demand) const;
  // The free resources hold `demand` now (ignores alive/schedulable).
  bool IsAvailable(const ResourceSet& demand) const;
  // Critical-resource utilisation in [0, 1]: the largest used/total over CPU, GPU, memory and
  // object_store_memory, skipping those the node does not have; 0 when it has none of them.
  // Custom and node:<ip> resources do not count. Measured before placing anything new.
  double Utilization() const;
};

// Free room on one node that demands are taken from one after another, with GPU shares placed
// per device exactly as NodeResources would place them (best fit for fractions, lowest free
// whole devices for whole amounts). Policies use it to "subtract as they go".
class NodeRoom {
 public:
  // The node's free resources now (per device where gpu_free is known).
  static NodeRoom Available(const NodeView& node);
  // The node's total, as if nothing ran on it: every device fully free.
  static NodeRoom Total(const NodeView& node);

  // True when `demand` fits in what is left. False, not an error, for a GPU amount above 1
  // that is not whole: no node can ever hold it.
  bool Fits(const ResourceSet& demand) const;
  // Takes `demand` if it Fits and answers true; otherwise leaves the room as it was.
  bool Take(const ResourceSet& demand);

  // What is left.
  const ResourceSet& free() const { return free_; }
  // What is left of each GPU device; empty when only the sum is known.
  std::vector<FixedPoint> gpu_free() const;

 private:
  NodeRoom(ResourceSet free, std::optional<ResourceInstances> gpus)
      : free_(std::move(free)), gpus_(std::move(gpus)) {}

  ResourceSet free_;
  std::optional<ResourceInstances> gpus_;  // unset: only the GPU sum is known
};

// InvalidArgument for a demand no node could ever hold by its form: a GPU amount above 1 that
// is not whole (1.5), for "GPU" or a bundle GPU name (GPU_group_...). Negative amounts cannot be expressed in a ResourceSet.
absl::Status ValidateDemand(const ResourceSet& demand);

class ClusterResourceView {
 public:
  ClusterResourceView() = default;

  // Adds `node`, or replaces the entry with its id. InvalidArgument, and no change, for a nil
  // id, a non-whole GPU total, `available` not within `total`, or a `gpu_free` that does not
  // match the GPU total and available sum (see NodeView::gpu_free).
  absl::Status AddOrUpdateNode(NodeView node);
  // Replaces a node's free resources (and per-device GPU shares; empty = unknown). NotFound for
  // an unknown node; FailedPrecondition for a dead one (a late report); InvalidArgument as above.
  absl::Status UpdateAvailable(const NodeId& id, const ResourceSet& available,
                               std::vector<FixedPoint> gpu_free = {});
  // Counts `demand` as running on the node until its next report (after a spillback there): takes
  // it from the free resources, per GPU device where those are known, as NodeRoom::Take does.
  // NotFound for an unknown node; ResourceExhausted, and no change, when it does not fit.
  absl::Status TakeAvailable(const NodeId& id, const ResourceSet& demand);
  // UpdateAvailable from the raylet's own exact accounting, GPU devices included.
  // InvalidArgument when `resources.total()` differs from the node's total.
  absl::Status UpdateAvailable(const NodeId& id, const NodeResources& resources);
  // Keeps the entry, so that a later request naming the node can be told it is dead; the node
  // takes no more work. NotFound for an unknown node. Idempotent.
  absl::Status MarkDead(const NodeId& id);
  // Forgets the node. NotFound for an unknown node.
  absl::Status RemoveNode(const NodeId& id);

  // nullptr when unknown. The pointer is valid until the next change to the view.
  const NodeView* Find(const NodeId& id) const;
  // Every node, dead ones included, in NodeId order (the order every tie is broken by).
  const std::map<NodeId, NodeView>& nodes() const { return nodes_; }
  size_t size() const { return nodes_.size(); }

  // True when some alive, schedulable node whose labels match `selector` has a total that could
  // hold `demand`.
  bool Feasible(const ResourceSet& demand, const LabelSelector& selector = {}) const;

 private:
  std::map<NodeId, NodeView> nodes_;
};

// Requests waiting for one resource shape and label selector.
struct QueuedDemand {
  ResourceSet shape;
  int64_t count = 0;
  Labels label_selector;  // as the requests wrote it; empty: none
};

// One queued resource shape (and label selector), for `shoal status` and the GCS (the plain form
// of rpc::ResourceDemand).
struct DemandSummary {
  ResourceSet shape;
  int64_t count = 0;
  // No alive, schedulable node (matching the selector) could ever hold the shape, or the shape
  // or selector is invalid.
  bool infeasible = false;
  Labels label_selector;

  friend bool operator==(const DemandSummary&, const DemandSummary&) = default;
};

// Merges `queued` by shape and selector, drops counts below 1, and marks each infeasible or
// pending against `view`. Sorted by shape, then selector, so the output does not depend on the
// order of `queued`.
std::vector<DemandSummary> SummarizeDemand(const std::vector<QueuedDemand>& queued,
                                           const ClusterResourceView& view);

}  // namespace shoal
