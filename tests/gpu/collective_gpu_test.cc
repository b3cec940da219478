// The GPU suite of the collective library: plain main, no test framework, so that it builds on a
// GPU machine with only CUDA and NCCL (bench/gpu/run_gpu_suite.sh). Exit 0: passed; 77: skipped
// (no CUDA device); 1: failed. Prints the figures it measures.
//
//   1. a one-rank NCCL allreduce;
//   2. two ranks on one device: NCCL refused with a clear error;
//   3. CUDA IPC between two processes on one device: 256 MiB, checksums equal, GB/s next to the
//      device's own device-to-device copy;
//   4. with two or more devices: a two-rank NCCL allreduce and send/recv.
#include <cuda_runtime_api.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "src/collective/gpu_backend.h"
#include "src/collective/host_communicator.h"
#include "src/collective/memory_key_value.h"

using namespace shoal::collective;
using Clock = std::chrono::steady_clock;

namespace {

int failures = 0;

void Check(bool ok, const std::string& what) {
  std::printf("%s %s\n", ok ? "PASS" : "FAIL", what.c_str());
  if (!ok) ++failures;
}

void CheckOk(const Status& s, const std::string& what) { Check(s.ok(), what + (s.ok() ? "" : ": " + s.message())); }

GroupOptions Options(const std::string& name, int world, int rank) {
  GroupOptions o;
  o.group_name = name;
  o.world_size = world;
  o.rank = rank;
  return o;
}

// Sums bytes as 64-bit words (order-independent enough to compare two copies).
uint64_t Checksum(const std::vector<uint64_t>& words) {
  uint64_t sum = 0;
  for (size_t i = 0; i < words.size(); ++i) sum += words[i] * (i + 1);
  return sum;
}

void OneRankAllReduce(GpuBackend& gpu) {
  MemoryKeyValue kv;
  std::unique_ptr<Communicator> host, nccl;
  CheckOk(JoinHostGroup(Options("one", 1, 0), kv, &host), "one-rank host group");
  Status s = gpu.CreateNccl(std::move(host), 0, &nccl);
  CheckOk(s, "one-rank NCCL communicator on cuda:0");
  if (!s.ok()) return;
  std::vector<float> values(1024, 2.5f);
  float* device = nullptr;
  cudaMalloc(reinterpret_cast<void**>(&device), values.size() * sizeof(float));
  cudaMemcpy(device, values.data(), values.size() * sizeof(float), cudaMemcpyHostToDevice);
  CheckOk(nccl->AllReduce(Buffer{device, values.size(), DataType::kFloat32, 0}, ReduceOp::kSum),
          "one-rank NCCL allreduce");
  cudaMemcpy(values.data(), device, values.size() * sizeof(float), cudaMemcpyDeviceToHost);
  Check(values[0] == 2.5f && values[1023] == 2.5f, "one-rank allreduce leaves the values");
  Status host_buffer = nccl->AllReduce(Buffer{values.data(), values.size(), DataType::kFloat32, -1}, ReduceOp::kSum);
  Check(host_buffer.code() == Code::kInvalidArgument, "a host buffer on an NCCL group is refused: " +
                                                          host_buffer.message());
  cudaFree(device);
}

void TwoRanksOneDevice(GpuBackend& gpu) {
  MemoryKeyValue kv;
  Status results[2];
  std::thread threads[2];
  for (int r = 0; r < 2; ++r) {
    threads[r] = std::thread([&, r] {
      std::unique_ptr<Communicator> host, nccl;
      results[r] = JoinHostGroup(Options("shared", 2, r), kv, &host);
      if (results[r].ok()) results[r] = gpu.CreateNccl(std::move(host), 0, &nccl);
    });
  }
  for (auto& t : threads) t.join();
  Check(results[0].code() == Code::kFailedPrecondition && results[0].message().find("share one GPU") != std::string::npos,
        "two NCCL ranks on one device are refused: " + results[0].message());
}

void IpcBetweenProcesses(GpuBackend& gpu) {
  constexpr size_t kBytes = 256u << 20;
  int to_parent[2], to_child[2];
  if (pipe(to_parent) != 0 || pipe(to_child) != 0) return Check(false, "pipe");
  pid_t child = fork();
  if (child == 0) {
    // Producer: fills 256 MiB on cuda:0, exports it, waits until the consumer copied it.
    std::vector<uint64_t> words(kBytes / 8);
    for (size_t i = 0; i < words.size(); ++i) words[i] = i * 2654435761u;
    void* device = nullptr;
    cudaMalloc(&device, kBytes + 4096);
    char* tensor = static_cast<char*>(device) + 4096;  // not the allocation's start: offsets matter
    cudaMemcpy(tensor, words.data(), kBytes, cudaMemcpyHostToDevice);
    std::string handle;
    Status s = gpu.ExportIpc(tensor, kBytes, 0, 0, &handle);
    uint64_t sum = Checksum(words);
    uint32_t len = s.ok() ? static_cast<uint32_t>(handle.size()) : 0;
    (void)!write(to_parent[1], &len, 4);
    (void)!write(to_parent[1], handle.data(), len);
    (void)!write(to_parent[1], &sum, 8);
    char done;
    (void)!read(to_child[0], &done, 1);
    _exit(0);
  }
  uint32_t len = 0;
  uint64_t expected = 0;
  (void)!read(to_parent[0], &len, 4);
  std::string handle(len, '\0');
  size_t got = 0;
  while (got < len) got += static_cast<size_t>(read(to_parent[0], handle.data() + got, len - got));
  (void)!read(to_parent[0], &expected, 8);
  Check(len > 0, "the producer exported a CUDA IPC handle");
  if (len > 0) {
    void* dst = nullptr;
    cudaSetDevice(0);
    cudaMalloc(&dst, kBytes);
    auto start = Clock::now();
    Status s = gpu.CopyFromIpc(handle, dst, kBytes, 0, 0);
    double ipc_s = std::chrono::duration<double>(Clock::now() - start).count();
    CheckOk(s, "256 MiB over CUDA IPC between two processes on one device");
    std::vector<uint64_t> words(kBytes / 8);
    cudaMemcpy(words.data(), dst, kBytes, cudaMemcpyDeviceToHost);
    Check(Checksum(words) == expected, "checksums equal after the IPC copy");
    // Second copy (handle already warm on the driver side) and the device's own D2D copy.
    start = Clock::now();
    s = gpu.CopyFromIpc(handle, dst, kBytes, 0, 0);
    double ipc_warm_s = std::chrono::duration<double>(Clock::now() - start).count();
    void* src = nullptr;
    cudaMalloc(&src, kBytes);
    cudaMemcpy(dst, src, kBytes, cudaMemcpyDeviceToDevice);
    cudaDeviceSynchronize();
    start = Clock::now();
    cudaMemcpy(dst, src, kBytes, cudaMemcpyDeviceToDevice);
    cudaDeviceSynchronize();
    double d2d_s = std::chrono::duration<double>(Clock::now() - start).count();
    std::printf("FIGURE ipc_256MiB_first_GBps=%.1f ipc_256MiB_GBps=%.1f d2d_256MiB_GBps=%.1f\n",
                kBytes / ipc_s / 1e9, kBytes / ipc_warm_s / 1e9, kBytes / d2d_s / 1e9);
    cudaFree(src);
    cudaFree(dst);
  }
  (void)!write(to_child[1], "x", 1);
  int status = 0;
  waitpid(child, &status, 0);
}

void TwoDevices(GpuBackend& gpu) {
  MemoryKeyValue kv;
  Status results[2];
  float values[2][4];
  std::thread threads[2];
  for (int r = 0; r < 2; ++r) {
    threads[r] = std::thread([&, r] {
      std::unique_ptr<Communicator> host, nccl;
      results[r] = JoinHostGroup(Options("pair", 2, r), kv, &host);
      if (results[r].ok()) results[r] = gpu.CreateNccl(std::move(host), r, &nccl);
      if (!results[r].ok()) return;
      cudaSetDevice(r);
      float* d = nullptr;
      cudaMalloc(reinterpret_cast<void**>(&d), 4 * sizeof(float));
      float init[4] = {1.0f + r, 2.0f + r, 3.0f + r, 4.0f + r};
      cudaMemcpy(d, init, sizeof(init), cudaMemcpyHostToDevice);
      results[r] = nccl->AllReduce(Buffer{d, 4, DataType::kFloat32, r}, ReduceOp::kSum);
      if (results[r].ok()) {
        results[r] = r == 0 ? nccl->Send(Buffer{d, 4, DataType::kFloat32, r}, 1)
                            : nccl->Recv(Buffer{d, 4, DataType::kFloat32, r}, 0);
      }
      cudaMemcpy(values[r], d, sizeof(init), cudaMemcpyDeviceToHost);
      cudaFree(d);
    });
  }
  for (auto& t : threads) t.join();
  CheckOk(results[0], "two-device NCCL allreduce and send (rank 0)");
  CheckOk(results[1], "two-device NCCL allreduce and recv (rank 1)");
  Check(values[1][0] == 3.0f && values[1][3] == 9.0f, "two-device allreduce sums");
}

}  // namespace

int main() {
  GpuBackend* gpu = nullptr;
  Status loaded = LoadGpuBackend(&gpu);
  if (!loaded.ok()) {
    std::printf("SKIP: %s\n", loaded.message().c_str());
    return 77;
  }
  // Fork the IPC producer before this process touches CUDA.
  int devices = 0;
  pid_t probe = fork();
  if (probe == 0) _exit(gpu->DeviceCount() > 0 ? 0 : 1);
  int status = 0;
  waitpid(probe, &status, 0);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    std::printf("SKIP: no CUDA device here\n");
    return 77;
  }
  IpcBetweenProcesses(*gpu);
  devices = gpu->DeviceCount();
  std::printf("devices: %d\n", devices);
  OneRankAllReduce(*gpu);
  TwoRanksOneDevice(*gpu);
  if (devices >= 2) TwoDevices(*gpu);
  else std::printf("SKIP two-device NCCL: one device\n");
  std::printf("%s: %d failure(s)\n", failures == 0 ? "PASSED" : "FAILED", failures);
  return failures == 0 ? 0 : 1;
}
