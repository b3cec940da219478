// Collective groups joined through a core worker: the GCS key-value store (namespace
// "collective") is the rendezvous of src/collective's host mesh, and "nccl" groups are built on
// that mesh by libshoal_gpu.so. Shared by the Python module and the C++ API (shoal/gpu.h).
// Threading: any thread; JoinCollectiveGroup blocks until every rank joined or the deadline.
#pragma once

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "src/collective/communicator.h"
#include "src/worker/core_worker.h"

namespace shoal {

inline constexpr char kCollectiveNamespace[] = "collective";

struct CollectiveJoinOptions {
  std::string name;  // unique in the cluster (language layers prefix the job id)
  int world_size = 0;
  int rank = -1;
  std::string backend = "gloo";  // or "nccl"
  std::string bind_host;         // default: the worker's node IP
  absl::Duration join_timeout = absl::Seconds(60);
  absl::Duration op_timeout = absl::Seconds(600);
  int device = 0;  // nccl: the CUDA device (as this process numbers it)
};

// `core` is used only while joining.
absl::StatusOr<std::unique_ptr<collective::Communicator>> JoinCollectiveGroup(CoreWorker& core,
                                                                              const CollectiveJoinOptions& options);
// Aborts the group (an operation in flight on another thread fails at once; the communicator
// is freed when the last holder of it lets go) and removes its rank's rendezvous key.
void LeaveCollectiveGroup(CoreWorker& core, std::shared_ptr<collective::Communicator> group);

}  // namespace shoal
