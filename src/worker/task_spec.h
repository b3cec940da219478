// Building task specs from the public TaskOptions, and the scheduling key that decides which
// tasks may share a leased worker.
// Threading: free functions over values; any thread.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "shoal/worker.pb.h"
#include "src/common/ids.h"
#include "src/common/resources.h"
#include "src/worker/core_worker.h"

namespace shoal {

// The resources a task asks for: {CPU: 1} when none are given. InvalidArgument for a GPU request
// above 1 that is not whole (1.5 GPUs cannot be placed on devices).
absl::StatusOr<ResourceSet> TaskResources(const TaskOptions& options);

// A spec without arguments (the caller adds them once they are resolved): a fresh task id in
// `job`, options.num_returns returns, attempt 0. InvalidArgument for bad options (resources as above,
// max_retries below -1, a strategy ValidateStrategy refuses). A PLACEMENT_GROUP strategy fills
// the spec's placement_group_* fields and asks for the bundle-formatted resources
// (src/common/bundle_resources.h), keeping the request itself in bundle_request; whether the
// request fits the group's bundles is the caller's check (PlacementGroupClient).
absl::StatusOr<rpc::TaskSpec> BuildTaskSpec(const JobId& job, const std::string& function_name,
                                            const TaskOptions& options, const std::string& owner_address,
                                            const std::vector<std::string>& worker_command);
// An actor method call's spec (no arguments yet): a fresh task id of `actor`'s, the call fields
// of BuildTaskSpec checked the same way, and the concurrency group; no resources, strategy or
// runtime env (a call runs in its actor's), so nothing of them is built.
absl::StatusOr<rpc::TaskSpec> BuildActorCallSpec(const JobId& job, const ActorId& actor, const std::string& method,
                                                 const TaskOptions& options, const std::string& owner_address);

TaskId SpecTaskId(const rpc::TaskSpec& spec);
// Return object `index` (1-based) of the task.
ObjectId ReturnObjectId(const rpc::TaskSpec& spec, uint32_t index);
// True while another attempt is allowed: attempt < max_retries, or max_retries < 0 (no limit).
bool CanRetry(const rpc::TaskSpec& spec);
// "task 'fn' (<id hex>)", for error messages.
std::string DescribeTask(const rpc::TaskSpec& spec);

// Tasks with equal keys ask for the same lease: same resources, scheduling strategy and
// worker command, and all retriable (max_retries != 0) or none (the lease request says which).
// A leased worker is reused only for tasks of its key.
class SchedulingKey {
 public:
  static SchedulingKey Of(const rpc::TaskSpec& spec);
  const std::string& repr() const { return repr_; }
  friend bool operator==(const SchedulingKey& a, const SchedulingKey& b) { return a.repr_ == b.repr_; }
  template <typename H>
  friend H AbslHashValue(H h, const SchedulingKey& k) {
    return H::combine(std::move(h), k.repr_);
  }

 private:
  std::string repr_;  // canonical text of the three parts
};

}  // namespace shoal
