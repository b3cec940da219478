// The GPU half of the collective library: NCCL communicators, CUDA IPC between processes that
// share a device, and copies between host and device. It lives in its own shared library,
// libshoal_gpu.so (built only where CUDA and NCCL are found), which the core loads on first use,
// so that processes that never touch a GPU never load CUDA or NCCL.
//
// Threading: every function may be called from any thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "src/collective/communicator.h"

namespace shoal::collective {

enum class CopyKind { kHostToDevice, kDeviceToHost, kDeviceToDevice };

class GpuBackend {
 public:
  virtual ~GpuBackend() = default;

  // CUDA devices this process sees (CUDA_VISIBLE_DEVICES applied); 0 without a driver or GPU.
  virtual int DeviceCount() = 0;
  // The device `ptr` belongs to, or -1 for host memory.
  virtual int DeviceOf(const void* ptr) = 0;
  // The device's UUID (hex): the same physical GPU has the same UUID in every process, whatever
  // CUDA_VISIBLE_DEVICES numbers it.
  virtual Status DeviceUuid(int device, std::string* uuid) = 0;

  // An NCCL communicator for the ranks of `host` on `device`, which keeps `host` as its side
  // channel: rank 0's unique id travels over it, every call's arguments are checked across ranks
  // over it, and a peer whose host connection closes aborts the NCCL operation in flight.
  // NCCL refuses two ranks on one device: ranks that share one get FailedPrecondition.
  virtual Status CreateNccl(std::unique_ptr<Communicator> host, int device, std::unique_ptr<Communicator>* out) = 0;

  // CUDA IPC: a handle another process on this node opens to read `bytes` at `ptr` on `device`
  // (the producer's stream is synchronized first, so the bytes are final).
  virtual Status ExportIpc(const void* ptr, size_t bytes, int device, uintptr_t stream, std::string* handle) = 0;
  // Copies the exported bytes into `dst` on `device`, on `stream` (0: a stream of its own), and
  // waits for the copy.
  virtual Status CopyFromIpc(const std::string& handle, void* dst, size_t bytes, int device, uintptr_t stream) = 0;

  // Synchronous copies; `device` is the device side's.
  virtual Status Copy(void* dst, const void* src, size_t bytes, CopyKind kind, int device) = 0;
};

// Loads libshoal_gpu.so once (SHOAL_GPU_LIBRARY names it; else it is looked for next to the
// loading binary or module, then on the library path). FailedPrecondition saying why when this
// build has no CUDA/NCCL or the library cannot be loaded.
Status LoadGpuBackend(GpuBackend** out);

}  // namespace shoal::collective
