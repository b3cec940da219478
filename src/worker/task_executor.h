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
// ExecuteAsync does the same for an async actor's call through the AsyncTaskHandler: the handler
// starts the call and returns, and the reply is built when its completion comes.
// Threading: one task at a time (the worker's task loop), or an actor's concurrent methods;
// ExecuteAsync and completions from any thread.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <vector>

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

  // What ExecuteAsync calls with the reply, once.
  using Finished = std::function<void(rpc::PushTaskReply)>;

  // Never throws.
  rpc::PushTaskReply Execute(const rpc::PushTaskRequest& request);
  // Starts the task through the AsyncTaskHandler and returns; `finished` gets the reply when
  // the handler's completion comes (on the thread that calls it). Without an async handler, or
  // when the task fails before it starts, runs as Execute and calls `finished` before
  // returning. REQUIRES: `request` stays valid until `finished` is called.
  void ExecuteAsync(const rpc::PushTaskRequest& request, Finished finished);
  // Runs tasks whose function is not registered by name (language layers).
  void SetHandler(TaskHandler handler);
  void SetAsyncHandler(AsyncTaskHandler handler);

 private:
  // The arguments as buffers (zero-copy for store values); nullopt after failing `reply`.
  std::optional<std::vector<ObjectBuffer>> ReadArguments(const rpc::TaskSpec& spec, rpc::PushTaskReply& reply);
  // The handler's view of the task.
  static TaskCall MakeCall(const rpc::TaskSpec& spec, const std::string& devices, std::vector<ObjectBuffer> args);
  // Fills `reply` from what the function answered: inline values, store locations or errors.
  void FillReply(const rpc::TaskSpec& spec, absl::StatusOr<std::vector<std::string>> results,
                 rpc::PushTaskReply& reply);
  // Exports the task's GPUs (a normal or creation task) and answers the devices it runs with.
  std::string SetUpDevices(const rpc::PushTaskRequest& request);

  ObjectStoreAccess& store_;
  absl::Mutex mu_;
  TaskHandler handler_ ABSL_GUARDED_BY(mu_);
  AsyncTaskHandler async_handler_ ABSL_GUARDED_BY(mu_);
  std::string actor_devices_ ABSL_GUARDED_BY(mu_);  // CUDA_VISIBLE_DEVICES of the actor's creation
};

// "0,2" for devices 0 and 2; "" for none.
std::string CudaVisibleDevices(const rpc::GpuAssignment& gpus);
// Exports the GPU memory cap variables of a task holding `gpus` (src/common/gpu_memory_caps.h),
// by the node's SHOAL_GPU_MEMORY_CAPS mode; nothing when it is off or unset.
void ExportGpuMemoryCaps(const rpc::GpuAssignment& gpus);

}  // namespace shoal
