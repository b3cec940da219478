// Reserves placement group bundles on this node for the GCS, in two phases (BundleService in
// proto/shoal/raylet.proto; the resource names are bundle_resources.h's).
//
//   Prepare: takes every listed bundle's resources from the node's free pool, all of the request
//     or none (ResourceExhausted naming the bundle and what did not fit). A bundle already
//     prepared or committed here is left as it is.
//   Commit: turns prepared bundles into their formatted resources (CommittedBundleResources);
//     GPU_group_* names get exactly the device shares the bundle took from the node's GPUs.
//     FailedPrecondition, with no change, when a listed bundle was never prepared here (the GCS
//     prepares again); a committed one is left as it is.
//   Cancel: gives bundles back, prepared or committed; unknown ones are ignored. For a committed
//     bundle it first ends the leases that use it, killing their workers (LeaseManager::
//     KillLeasesUsing) with cause PLACEMENT_GROUP_REMOVED when the group was removed, else
//     WORKER_DIED ("bundle ... was given back"), then removes the formatted resources and frees
//     the reservation. Which leases end: with group_removed every lease of the group on this
//     node; otherwise those using the bundle's indexed names, then, only if the group's wildcard
//     names would no longer cover what is in use, every lease of the group that uses only
//     wildcard names. With group_removed the lease manager also rejects the group's waiting and
//     future requests (LeaseManager::RemoveGroup).
//   ReleaseUnused: cancels (not removed) every bundle here that is not listed; answers how many.
// Every call validates all of its bundles first: InvalidArgument, with no change, for a bad
// placement_group_id (18 bytes), a negative index, resources a bundle cannot hold (Prepare), or a
// node_id naming another node.
//
// Threading: not synchronized; the raylet's event loop calls every method (the lease manager's).
// Ownership: borrows the lease manager, which owns the node's resources; keeps each bundle's
// reservation and formatted resources.
#pragma once

#include <map>
#include <optional>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "google/protobuf/repeated_field.h"
#include "shoal/common.pb.h"
#include "src/common/bundle_resources.h"
#include "src/common/ids.h"
#include "src/common/resources.h"
#include "src/raylet/lease_manager.h"

namespace shoal {

class BundleManager {
 public:
  using Bundles = google::protobuf::RepeatedPtrField<rpc::Bundle>;

  BundleManager(LeaseManager& leases, const NodeId& node_id) : leases_(leases), node_id_(node_id) {}
  BundleManager(const BundleManager&) = delete;
  BundleManager& operator=(const BundleManager&) = delete;

  absl::Status Prepare(const Bundles& bundles);
  absl::Status Commit(const Bundles& bundles);
  absl::Status Cancel(const Bundles& bundles, bool group_removed);
  absl::StatusOr<int> ReleaseUnused(const Bundles& in_use);

  enum class State { kNone, kPrepared, kCommitted };
  State StateOf(const PlacementGroupId& pg, int index) const;
  size_t size() const { return bundles_.size(); }

 private:
  using Key = std::pair<PlacementGroupId, int>;
  struct Parsed {
    Key key;
    ResourceSet resources;
  };
  struct Entry {
    ResourceSet resources;                  // the user's names
    ResourceAllocation reservation;         // what Prepare took from the node
    std::optional<ResourceAllocation> formatted;  // set once committed
  };

  // `need_resources`: the bundle must name what it reserves (Prepare).
  absl::StatusOr<std::vector<Parsed>> Parse(const Bundles& bundles, bool need_resources) const;
  ResourceAllocation Formatted(const Key& key, const Entry& entry) const;
  void CancelOne(const Key& key, bool group_removed);

  LeaseManager& leases_;
  const NodeId node_id_;
  std::map<Key, Entry> bundles_;
};

}  // namespace shoal
