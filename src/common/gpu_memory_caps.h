// The per-task side of GPU memory caps (the node side is src/raylet/gpu_memory_caps.h): the
// variables a worker exports for a task that holds a fraction of GPUs.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace shoal {

inline constexpr char kGpuMemoryCapsLabel[] = "shoal.io/gpu-memory-caps";

// The variables a worker exports for a task holding `device_ids` with `shares` (fixed point,
// FixedPoint::kScale = one device), given the node's mode ("mps", "framework", "off") and the
// devices' memory in MiB by device id ("0:81559,1:81559", SHOAL_GPU_MEMORY_MIB). Names with an
// empty value are to be unset. A task with whole devices (or none) gets every name unset.
std::vector<std::pair<std::string, std::string>> GpuMemoryCapEnv(const std::string& mode,
                                                                 const std::string& memory_mib,
                                                                 const std::vector<int>& device_ids,
                                                                 const std::vector<int64_t>& shares);

}  // namespace shoal
