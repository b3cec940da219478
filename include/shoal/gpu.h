// Collectives and point-to-point transfers between Shoal workers and drivers, over raw buffers:
// CUDA device memory with the "nccl" backend (one GPU per rank), host memory with "gloo" (TCP
// between the ranks, implemented by Shoal). The ranks find each other through the cluster's GCS,
// so any processes of one job (tasks, actors, the driver) can form a group:
//
//   auto group = shoal::gpu::Group::Init("grads", /*world_size=*/4, rank);  // blocks until all joined
//   group.AllReduce(device_ptr, count, shoal::gpu::DataType::kFloat32);    // in place, SUM
//
// Every rank must make the same calls in the same order. Failures throw shoal::Error: a rank
// that died or left fails the others' operations at once, one that stops calling fails them after
// the timeout, mismatched calls (operation, type, count, root) fail where they are seen; after a
// failure the group is unusable (Destroy it and Init again).
// Threading: a Group may be used from several threads (one operation runs at a time).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

namespace shoal::gpu {

enum class DataType { kInt8, kUint8, kInt32, kInt64, kFloat16, kBFloat16, kFloat32, kFloat64 };
enum class ReduceOp { kSum, kProduct, kMin, kMax };

struct GroupOptions {
  std::string backend = "nccl";  // or "gloo" for host memory
  int device = 0;                // nccl: this rank's CUDA device (as this process numbers it)
  double join_timeout_s = 300;
  double op_timeout_s = 600;     // how long an operation waits for a peer
};

class Group {
 public:
  // Joins group `name` (per job) as `rank` of `world_size`. Throws shoal::Error for bad
  // arguments, a rank held by another live process, peers that did not arrive in time, or no
  // usable CUDA/NCCL for "nccl".
  static Group Init(const std::string& name, int world_size, int rank, const GroupOptions& options = {});

  int rank() const;
  int size() const;

  // `stream` (a cudaStream_t, as an integer) orders the operation after the work on it; 0 is
  // the default stream. Every call returns once the operation completed.
  void AllReduce(void* data, size_t count, DataType type, ReduceOp op = ReduceOp::kSum, uintptr_t stream = 0);
  void Broadcast(void* data, size_t count, DataType type, int root, uintptr_t stream = 0);
  // `out` holds size() * count elements: rank r's `in` lands at r * count.
  void AllGather(const void* in, void* out, size_t count, DataType type, uintptr_t stream = 0);
  // `in` holds size() * count elements; `out` (count) is op over every rank's slice rank().
  void ReduceScatter(const void* in, void* out, size_t count, DataType type, ReduceOp op = ReduceOp::kSum,
                     uintptr_t stream = 0);
  void Reduce(void* data, size_t count, DataType type, int root, ReduceOp op = ReduceOp::kSum, uintptr_t stream = 0);
  void Send(const void* data, size_t count, DataType type, int peer, uintptr_t stream = 0);
  void Recv(void* data, size_t count, DataType type, int peer, uintptr_t stream = 0);
  void Barrier();
  // Leaves the group (peers' operations then fail). Also done when the last copy is destroyed.
  void Destroy();

  struct Impl;

 private:
  explicit Group(std::shared_ptr<Impl> impl) : impl_(std::move(impl)) {}
  std::shared_ptr<Impl> impl_;
};

}  // namespace shoal::gpu
