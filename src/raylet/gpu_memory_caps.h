// How a node caps the GPU memory of a worker given a fraction of a device (what Ray does not:
// two 0.5-GPU tasks on one card each get half of its memory, not whatever they grab first).
//
//   mps        the raylet runs an NVIDIA MPS control daemon for its workers (pipe and log
//              directories in its session); a worker given a fraction f of devices gets
//              CUDA_MPS_PINNED_DEVICE_MEM_LIMIT = f of each device's memory and
//              CUDA_MPS_ACTIVE_THREAD_PERCENTAGE = f, which the driver enforces;
//   framework  the frameworks' own caps: a Python worker calls
//              torch.cuda.set_per_process_memory_fraction(f) when torch is importable, and
//              XLA_PYTHON_CLIENT_MEM_FRACTION=f is exported for JAX;
//   off        no cap (the node was told --gpu-memory-caps=off, or has no GPU).
// "auto" (the default) picks mps where nvidia-cuda-mps-control is installed and its daemon
// starts, else framework. The mode is the node label shoal.io/gpu-memory-caps, shown by
// `shoal status -v` and the dashboard. The per-task variables are exported by the worker
// (src/worker/task_executor.cc) from the pool's SHOAL_GPU_MEMORY_CAPS and SHOAL_GPU_MEMORY_MIB.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "src/common/gpu_memory_caps.h"

namespace shoal {

struct GpuMemoryCaps {
  std::string mode;  // "mps", "framework" or "off"
  std::string why;   // one line for the log: what was chosen and why
  std::vector<std::pair<std::string, std::string>> worker_env;  // for every worker of the node
  std::string mps_pipe_dir;  // set when this raylet started an MPS daemon (StopGpuMemoryCaps ends it)
  std::string mps_log_dir;
};

// `requested`: "auto", "mps", "framework" or "off". InvalidArgument for another value;
// FailedPrecondition when "mps" was asked for and cannot be had.
absl::StatusOr<GpuMemoryCaps> StartGpuMemoryCaps(const std::string& requested, int64_t num_gpus,
                                                 const std::string& session_dir);
// Quits the MPS daemon StartGpuMemoryCaps started (if any).
void StopGpuMemoryCaps(const GpuMemoryCaps& caps);

}  // namespace shoal
