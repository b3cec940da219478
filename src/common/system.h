// What this machine has: CPUs, memory, GPUs, shared memory, host name; and process-wide
// settings every Shoal process makes at start.
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

// absl::Mutex checks every Lock for deadlock cycles (a process-wide graph behind one global lock)
// when Abseil is built without NDEBUG, as Debian's package is: Shoal's processes turn that off at
// start (bench/README.md, "Where one call's microseconds go"), unless
// SHOAL_MUTEX_DEADLOCK_DETECTION=1 asks to keep it (for debugging lock order).
void ConfigureMutexChecks();

// A fatal signal (SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT) prints the signal and the stack (as
// backtrace_symbols_fd writes it: module+offset, for addr2line) to stderr, which for Shoal's
// processes is their log in the session's logs/, then dies of it as before. For Shoal's own processes and C++ API workers; a driver's signals stay its own.
void InstallCrashHandler();

}  // namespace shoal
