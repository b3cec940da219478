// The worker side of a task: runs one pushed task and builds its reply.
//
// Execute exports the lease's GPUs as CUDA_VISIBLE_DEVICES (comma separated device ids; empty
// when none were granted), resolves the arguments (inline bytes, or store-located values read
// through ObjectStoreAccess), runs the registered TaskFunction (or the TaskHandler for names not registered), and answers its results: inline
// up to kMaxInlineObjectSize, else written to this node's store and answered as a location.
// Failures of the function (a bad status, an escaping C++ exception, an unknown function name)
// are application errors: the reply's returns hold error values and application_error is set.
// Failures to read an argument are system errors (ObjectLostError) with application_error unset.
// An actor's method calls come without GPUs of their own: they run with the devices of the
// actor's creation task, whose export stays in the environment (methods do not touch it, so
// that the threads of a concurrent actor never race on setenv).
// Threading: one task at a time (the worker's task loop), or an actor's concurrent methods.
#pragma once

#include "absl/synchronization/mutex.h"
#include "shoal/worker.pb.h"
#include "src/worker/core_worker.h"
#include "src/worker/store_access.h"

namespace shoal {

class TaskExecutor {
 public:
  // `store` must outlive the executor.
  explicit TaskExecutor(ObjectStoreAccess& store) : store_(store) {}
  TaskExecutor(const TaskExecutor&) = delete;
  TaskExecutor& operator=(const TaskExecutor&) = delete;

  // Never throws.
  rpc::PushTaskReply Execute(const rpc::PushTaskRequest& request);
  // Runs tasks whose function is not registered by name (language layers).
  void SetHandler(TaskHandler handler);

 private:
  ObjectStoreAccess& store_;
  absl::Mutex mu_;
  TaskHandler handler_ ABSL_GUARDED_BY(mu_);
  std::string actor_devices_ ABSL_GUARDED_BY(mu_);  // CUDA_VISIBLE_DEVICES of the actor's creation
};

// "0,2" for devices 0 and 2; "" for none.
std::string CudaVisibleDevices(const rpc::GpuAssignment& gpus);
// Exports the GPU memory cap variables of a task holding `gpus` (src/common/gpu_memory_caps.h),
// by the node's SHOAL_GPU_MEMORY_CAPS mode; nothing when it is off or unset.
void ExportGpuMemoryCaps(const rpc::GpuAssignment& gpus);

}  // namespace shoal
