// What this machine has: CPUs, memory, GPUs, shared memory, host name.
#pragma once

#include <cstdint>
#include <string>

namespace shoal {

// CPUs this process may run on (its affinity mask).
int64_t DetectCpuCount();
// Total physical memory in bytes.
int64_t DetectMemoryBytes();
// NVIDIA GPUs the kernel driver lists, limited to CUDA_VISIBLE_DEVICES when that is set.
int64_t DetectGpuCount();
// Size of /dev/shm in bytes (0 when absent).
int64_t SharedMemoryBytes();
std::string Hostname();

}  // namespace shoal
