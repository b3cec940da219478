// libshoal_gpu.so: the CUDA/NCCL implementation of gpu_backend.h. Built only with CUDA and NCCL;
// everything here but ShoalGpuBackend is hidden.
#include <cuda.h>
#include <cuda_runtime_api.h>
#include <nccl.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <optional>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <thread>
#include <vector>

#include "src/collective/gpu_backend.h"

namespace shoal::collective {
namespace {

using Clock = std::chrono::steady_clock;

Status CudaError(cudaError_t e, const std::string& what) {
  return Internal(what + ": " + cudaGetErrorString(e));
}

#define SHOAL_CUDA(call, what)                      \
  do {                                              \
    cudaError_t _e = (call);                        \
    if (_e != cudaSuccess) return CudaError(_e, what); \
  } while (0)

std::optional<ncclDataType_t> NcclType(DataType t) {
  switch (t) {
    case DataType::kInt8: return ncclInt8;
    case DataType::kUint8: return ncclUint8;
    case DataType::kInt32: return ncclInt32;
    case DataType::kInt64: return ncclInt64;
    case DataType::kFloat16: return ncclFloat16;
    case DataType::kFloat32: return ncclFloat32;
    case DataType::kFloat64: return ncclFloat64;
    case DataType::kBFloat16:
#if NCCL_MAJOR > 2 || (NCCL_MAJOR == 2 && NCCL_MINOR >= 10)
      return ncclBfloat16;
#else
      return std::nullopt;
#endif
  }
  return std::nullopt;
}

ncclRedOp_t NcclOp(ReduceOp op) {
  switch (op) {
    case ReduceOp::kSum: return ncclSum;
    case ReduceOp::kProduct: return ncclProd;
    case ReduceOp::kMin: return ncclMin;
    case ReduceOp::kMax: return ncclMax;
  }
  return ncclSum;
}

enum class Kind : int64_t { kAllReduce = 1, kBroadcast, kAllGather, kReduceScatter, kReduce, kSend };

const char* KindName(Kind k) {
  switch (k) {
    case Kind::kAllReduce: return "allreduce";
    case Kind::kBroadcast: return "broadcast";
    case Kind::kAllGather: return "allgather";
    case Kind::kReduceScatter: return "reducescatter";
    case Kind::kReduce: return "reduce";
    case Kind::kSend: return "send/recv";
  }
  return "?";
}

class NcclCommunicator final : public Communicator {
 public:
  NcclCommunicator(std::unique_ptr<Communicator> host, int device, std::chrono::milliseconds op_timeout)
      : host_(std::move(host)), device_(device), op_timeout_(op_timeout) {}

  ~NcclCommunicator() override {
    if (comm_ != nullptr) {
      cudaSetDevice(device_);
      if (aborted_) {
        ncclCommAbort(comm_);
      } else {
        ncclCommDestroy(comm_);
      }
    }
    if (stream_ != nullptr) cudaStreamDestroy(stream_);
    if (ready_ != nullptr) cudaEventDestroy(ready_);
  }

  Status Init() {
    SHOAL_CUDA(cudaSetDevice(device_), "cudaSetDevice(" + std::to_string(device_) + ")");
    // NCCL puts one rank per device: compare device UUIDs across ranks first, for a clear error.
    cudaDeviceProp prop{};
    SHOAL_CUDA(cudaGetDeviceProperties(&prop, device_), "cudaGetDeviceProperties");
    std::vector<uint8_t> uuids(16 * static_cast<size_t>(size()));
    std::memcpy(uuids.data() + 16 * static_cast<size_t>(rank()), prop.uuid.bytes, 16);
    Buffer mine{uuids.data() + 16 * static_cast<size_t>(rank()), 16, DataType::kUint8};
    SHOAL_COLLECTIVE_RETURN_IF_ERROR(host_->AllGather(mine, Buffer{uuids.data(), uuids.size(), DataType::kUint8}));
    for (int r = 0; r < size(); ++r) {
      if (r != rank() && std::memcmp(uuids.data() + 16 * r, prop.uuid.bytes, 16) == 0) {
        return FailedPrecondition("ranks " + std::to_string(std::min(r, rank())) + " and " +
                                  std::to_string(std::max(r, rank())) + " of group '" + group_name() +
                                  "' share one GPU; NCCL needs a GPU per rank (give each rank num_gpus=1, or use "
                                  "backend=\"gloo\")");
      }
    }
    ncclUniqueId id{};
    if (rank() == 0) {
      ncclResult_t r = ncclGetUniqueId(&id);
      if (r != ncclSuccess) return Internal(std::string("ncclGetUniqueId: ") + ncclGetErrorString(r));
    }
    SHOAL_COLLECTIVE_RETURN_IF_ERROR(host_->Broadcast(Buffer{&id, sizeof(id), DataType::kUint8}, 0));
    SHOAL_CUDA(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking), "cudaStreamCreate");
    SHOAL_CUDA(cudaEventCreateWithFlags(&ready_, cudaEventDisableTiming), "cudaEventCreate");
    ncclResult_t r = ncclCommInitRank(&comm_, size(), id, rank());
    if (r != ncclSuccess) {
      comm_ = nullptr;
      return Internal(std::string("ncclCommInitRank: ") + ncclGetErrorString(r));
    }
    return Status::Ok();
  }

  int rank() const override { return host_->rank(); }
  int size() const override { return host_->size(); }
  const std::string& group_name() const override { return host_->group_name(); }
  const char* backend() const override { return "nccl"; }

  Status AllReduce(const Buffer& b, ReduceOp op) override {
    return Run(Kind::kAllReduce, b, b.count, -1, [&](ncclDataType_t t) {
      return ncclAllReduce(b.data, b.data, b.count, t, NcclOp(op), comm_, stream_);
    });
  }
  Status Broadcast(const Buffer& b, int root) override {
    return Run(Kind::kBroadcast, b, b.count, root, [&](ncclDataType_t t) {
      return ncclBroadcast(b.data, b.data, b.count, t, root, comm_, stream_);
    });
  }
  Status AllGather(const Buffer& in, const Buffer& out) override {
    if (out.type != in.type || out.count != in.count * static_cast<size_t>(size()) || out.device != in.device) {
      return Fail(InvalidArgument(
          "allgather: the output must hold world_size times the input's elements, same type and device"));
    }
    return Run(Kind::kAllGather, in, in.count, -1, [&](ncclDataType_t t) {
      return ncclAllGather(in.data, out.data, in.count, t, comm_, stream_);
    });
  }
  Status ReduceScatter(const Buffer& in, const Buffer& out, ReduceOp op) override {
    if (out.type != in.type || in.count != out.count * static_cast<size_t>(size()) || out.device != in.device) {
      return Fail(InvalidArgument(
          "reducescatter: the input must hold world_size times the output's elements, same type and device"));
    }
    return Run(Kind::kReduceScatter, in, out.count, -1, [&](ncclDataType_t t) {
      return ncclReduceScatter(in.data, out.data, out.count, t, NcclOp(op), comm_, stream_);
    });
  }
  Status Reduce(const Buffer& b, int root, ReduceOp op) override {
    return Run(Kind::kReduce, b, b.count, root, [&](ncclDataType_t t) {
      return ncclReduce(b.data, b.data, b.count, t, NcclOp(op), root, comm_, stream_);
    });
  }
  Status Send(const Buffer& b, int peer) override {
    return Run(Kind::kSend, b, b.count, peer, [&](ncclDataType_t t) {
      return ncclSend(b.data, b.count, t, peer, comm_, stream_);
    }, /*to=*/peer);
  }
  Status Recv(const Buffer& b, int peer) override {
    return Run(Kind::kSend, b, b.count, peer, [&](ncclDataType_t t) {
      return ncclRecv(b.data, b.count, t, peer, comm_, stream_);
    }, /*to=*/-1, /*from=*/peer);
  }
  Status Barrier() override {
    std::lock_guard<std::mutex> lock(mu_);
    return host_->Barrier();
  }
  bool Healthy(std::string* why) override { return host_->Healthy(why); }
  void Abort(const std::string& why) override {
    aborted_ = true;
    host_->Abort(why);
  }

 private:
  // Checks the call against every rank's (over the host channel), enqueues it on this group's
  // stream after the buffer's stream, and waits for it while watching the peers.
  template <typename Enqueue>
  Status Run(Kind kind, const Buffer& b, size_t count, int root, Enqueue enqueue, int to = -1, int from = -1) {
    std::lock_guard<std::mutex> lock(mu_);
    std::string why;
    if (aborted_ || !host_->Healthy(&why)) {
      return FailedPrecondition("group '" + group_name() + "' was aborted (" + why + "); destroy it and create it again");
    }
    if (b.device != device_) {
      return Fail(InvalidArgument(std::string(KindName(kind)) + ": the NCCL group of this rank works on cuda:" +
                             std::to_string(device_) + ", this tensor is on " +
                             (b.on_host() ? std::string("the host (use backend=\"gloo\")")
                                          : "cuda:" + std::to_string(b.device))));
    }
    auto type = NcclType(b.type);
    if (!type) return Fail(InvalidArgument(std::string("NCCL cannot carry ") + DataTypeName(b.type)));
    // The same call on every rank (for send/recv, on the pair).
    int64_t mine[4] = {static_cast<int64_t>(kind), static_cast<int64_t>(b.type), static_cast<int64_t>(count), root};
    if (kind == Kind::kSend) {
      mine[3] = -1;
      int64_t theirs[4];
      Buffer desc{to >= 0 ? static_cast<void*>(mine) : static_cast<void*>(theirs), 4, DataType::kInt64};
      SHOAL_COLLECTIVE_RETURN_IF_ERROR(to >= 0 ? host_->Send(desc, to) : host_->Recv(desc, from));
      if (from >= 0 && std::memcmp(mine, theirs, sizeof(mine)) != 0) {
        return Mismatch(from, mine, theirs);
      }
    } else {
      std::vector<int64_t> all(4 * static_cast<size_t>(size()));
      SHOAL_COLLECTIVE_RETURN_IF_ERROR(host_->AllGather(Buffer{mine, 4, DataType::kInt64},
                                                        Buffer{all.data(), all.size(), DataType::kInt64}));
      for (int r = 0; r < size(); ++r) {
        if (std::memcmp(mine, all.data() + 4 * r, sizeof(mine)) != 0) return Mismatch(r, mine, all.data() + 4 * r);
      }
    }
    SHOAL_CUDA(cudaSetDevice(device_), "cudaSetDevice");
    SHOAL_CUDA(cudaEventRecord(ready_, reinterpret_cast<cudaStream_t>(b.stream)), "cudaEventRecord");
    SHOAL_CUDA(cudaStreamWaitEvent(stream_, ready_, 0), "cudaStreamWaitEvent");
    ncclResult_t r = enqueue(*type);
    if (r != ncclSuccess) return Fail(Internal(std::string(KindName(kind)) + ": " + ncclGetErrorString(r)));
    return Wait(KindName(kind));
  }

  Status Wait(const char* what) {
    auto deadline = Clock::now() + op_timeout_;
    for (;;) {
      cudaError_t e = cudaStreamQuery(stream_);
      if (e == cudaSuccess) return Status::Ok();
      if (e != cudaErrorNotReady) return Fail(CudaError(e, what));
      ncclResult_t async = ncclSuccess;
      ncclCommGetAsyncError(comm_, &async);
      if (async != ncclSuccess && async != ncclInProgress) {
        return Fail(Aborted(std::string(what) + ": NCCL failed: " + ncclGetErrorString(async)));
      }
      std::string why;
      if (!host_->Healthy(&why)) {
        // A peer that finished its part and left closes the side channel too: give the stream a
        // moment to complete before calling the operation failed.
        auto grace = Clock::now() + std::chrono::seconds(2);
        while (Clock::now() < grace) {
          if (cudaStreamQuery(stream_) == cudaSuccess) return Status::Ok();
          std::this_thread::sleep_for(std::chrono::milliseconds(1));
        }
        return Fail(Aborted(std::string(what) + " in group '" + group_name() + "': " + why));
      }
      if (Clock::now() > deadline) {
        return Fail(DeadlineExceeded(std::string(what) + " in group '" + group_name() + "' did not finish within " +
                                     std::to_string(op_timeout_.count() / 1000) + " s"));
      }
      std::this_thread::sleep_for(std::chrono::microseconds(50));
    }
  }

  Status Mismatch(int other, const int64_t* mine, const int64_t* theirs) {
    auto describe = [](const int64_t* d) {
      std::string s = KindName(static_cast<Kind>(d[0]));
      s += " of " + std::to_string(d[2]) + " " + DataTypeName(static_cast<DataType>(d[1]));
      if (d[3] >= 0) s += " (root/peer " + std::to_string(d[3]) + ")";
      return s;
    };
    return Fail(InvalidArgument("group '" + group_name() + "' rank " + std::to_string(rank()) + " called " +
                                describe(mine) + " but rank " + std::to_string(other) + " called " + describe(theirs) +
                                "; every rank must make the same calls in the same order"));
  }

  // Aborts the communicator (its NCCL kernels stop; peers see the host channel close).
  Status Fail(Status s) {
    aborted_ = true;
    if (comm_ != nullptr) ncclCommAbort(comm_);
    comm_ = nullptr;
    host_->Abort(s.message());
    return s;
  }

  std::unique_ptr<Communicator> host_;
  const int device_;
  const std::chrono::milliseconds op_timeout_;
  ncclComm_t comm_ = nullptr;
  cudaStream_t stream_ = nullptr;
  cudaEvent_t ready_ = nullptr;
  std::mutex mu_;
  std::atomic<bool> aborted_{false};
};

// Exported handle: the allocation's IPC handle, the offset of the bytes in it, and the device.
struct IpcHandle {
  cudaIpcMemHandle_t mem;
  uint64_t offset;
  uint64_t bytes;
};

using GetAddressRange = CUresult (*)(CUdeviceptr*, size_t*, CUdeviceptr);

class CudaBackend final : public GpuBackend {
 public:
  int DeviceCount() override {
    int n = 0;
    return cudaGetDeviceCount(&n) == cudaSuccess ? n : 0;
  }

  int DeviceOf(const void* ptr) override {
    cudaPointerAttributes attr{};
    if (cudaPointerGetAttributes(&attr, ptr) != cudaSuccess) {
      cudaGetLastError();
      return -1;
    }
    return attr.type == cudaMemoryTypeDevice || attr.type == cudaMemoryTypeManaged ? attr.device : -1;
  }

  Status DeviceUuid(int device, std::string* uuid) override {
    cudaDeviceProp prop{};
    SHOAL_CUDA(cudaGetDeviceProperties(&prop, device), "cudaGetDeviceProperties");
    static const char kHex[] = "0123456789abcdef";
    uuid->clear();
    for (int i = 0; i < 16; ++i) {
      auto b = static_cast<unsigned char>(prop.uuid.bytes[i]);
      uuid->push_back(kHex[b >> 4]);
      uuid->push_back(kHex[b & 15]);
    }
    return Status::Ok();
  }

  Status CreateNccl(std::unique_ptr<Communicator> host, int device, std::unique_ptr<Communicator>* out) override {
    int count = DeviceCount();
    if (device < 0 || device >= count) {
      return InvalidArgument("cuda:" + std::to_string(device) + " is not a device this worker was given (it sees " +
                             std::to_string(count) + "; CUDA_VISIBLE_DEVICES=" +
                             (std::getenv("CUDA_VISIBLE_DEVICES") ? std::getenv("CUDA_VISIBLE_DEVICES") : "") + ")");
    }
    auto timeout = std::chrono::milliseconds(600000);
    if (const char* env = std::getenv("SHOAL_COLLECTIVE_TIMEOUT_S"); env != nullptr && *env != '\0') {
      char* end = nullptr;
      double seconds = std::strtod(env, &end);
      if (end == env || *end != '\0' || !(seconds > 0)) {
        return InvalidArgument(std::string("SHOAL_COLLECTIVE_TIMEOUT_S must be a positive number of seconds, got '") +
                               env + "'");
      }
      timeout = std::chrono::milliseconds(static_cast<int64_t>(seconds * 1000));
    }
    auto comm = std::make_unique<NcclCommunicator>(std::move(host), device, timeout);
    Status s = comm->Init();
    if (!s.ok()) {
      comm->Abort(s.message());
      return s;
    }
    *out = std::move(comm);
    return Status::Ok();
  }

  Status ExportIpc(const void* ptr, size_t bytes, int device, uintptr_t stream, std::string* handle) override {
    SHOAL_CUDA(cudaSetDevice(device), "cudaSetDevice");
    SHOAL_CUDA(cudaStreamSynchronize(reinterpret_cast<cudaStream_t>(stream)), "cudaStreamSynchronize");
    GetAddressRange range = AddressRange();
    if (range == nullptr) return FailedPrecondition("the CUDA driver has no cuMemGetAddressRange");
    CUdeviceptr base = 0;
    size_t size = 0;
    if (range(&base, &size, reinterpret_cast<CUdeviceptr>(ptr)) != CUDA_SUCCESS) {
      return InvalidArgument("the tensor's memory is not a CUDA device allocation");
    }
    IpcHandle h{};
    SHOAL_CUDA(cudaIpcGetMemHandle(&h.mem, reinterpret_cast<void*>(base)), "cudaIpcGetMemHandle");
    h.offset = reinterpret_cast<CUdeviceptr>(ptr) - base;
    h.bytes = bytes;
    handle->assign(reinterpret_cast<const char*>(&h), sizeof(h));
    return Status::Ok();
  }

  Status CopyFromIpc(const std::string& handle, void* dst, size_t bytes, int device, uintptr_t stream) override {
    if (handle.size() != sizeof(IpcHandle)) return InvalidArgument("malformed CUDA IPC handle");
    IpcHandle h;
    std::memcpy(&h, handle.data(), sizeof(h));
    if (h.bytes != bytes) {
      return InvalidArgument("CUDA IPC: the exported tensor has " + std::to_string(h.bytes) + " bytes, the destination " +
                             std::to_string(bytes));
    }
    SHOAL_CUDA(cudaSetDevice(device), "cudaSetDevice");
    void* base = nullptr;
    SHOAL_COLLECTIVE_RETURN_IF_ERROR(OpenIpc(h.mem, &base));
    cudaStream_t s = reinterpret_cast<cudaStream_t>(stream);
    cudaStream_t own = nullptr;
    if (s == nullptr) {
      cudaStreamCreateWithFlags(&own, cudaStreamNonBlocking);
      s = own;
    }
    cudaError_t e = cudaMemcpyAsync(dst, static_cast<char*>(base) + h.offset, bytes, cudaMemcpyDeviceToDevice, s);
    if (e == cudaSuccess) e = cudaStreamSynchronize(s);
    if (own != nullptr) cudaStreamDestroy(own);
    CloseIpc(h.mem);
    if (e != cudaSuccess) return CudaError(e, "CUDA IPC copy");
    return Status::Ok();
  }

  Status Copy(void* dst, const void* src, size_t bytes, CopyKind kind, int device) override {
    SHOAL_CUDA(cudaSetDevice(device), "cudaSetDevice");
    cudaMemcpyKind k = kind == CopyKind::kHostToDevice   ? cudaMemcpyHostToDevice
                       : kind == CopyKind::kDeviceToHost ? cudaMemcpyDeviceToHost
                                                         : cudaMemcpyDeviceToDevice;
    SHOAL_CUDA(cudaMemcpy(dst, src, bytes, k), "cudaMemcpy");
    return Status::Ok();
  }

 private:
  GetAddressRange AddressRange() {
    std::call_once(range_once_, [this] {
      void* fn = nullptr;
      cudaDriverEntryPointQueryResult found{};
#if CUDART_VERSION >= 12050
      if (cudaGetDriverEntryPointByVersion("cuMemGetAddressRange", &fn, 12000, cudaEnableDefault, &found) == cudaSuccess &&
          found == cudaDriverEntryPointSuccess) {
        range_ = reinterpret_cast<GetAddressRange>(fn);
      }
#else
      if (cudaGetDriverEntryPoint("cuMemGetAddressRange", &fn, cudaEnableDefault, &found) == cudaSuccess &&
          found == cudaDriverEntryPointSuccess) {
        range_ = reinterpret_cast<GetAddressRange>(fn);
      }
#endif
    });
    return range_;
  }

  // CUDA opens an allocation's IPC handle once per process: tensors that share an allocation
  // (torch packs several into one) and concurrent copies share one mapping, counted here.
  Status OpenIpc(const cudaIpcMemHandle_t& mem, void** base) {
    std::string key(reinterpret_cast<const char*>(&mem), sizeof(mem));
    std::lock_guard<std::mutex> lock(ipc_mu_);
    auto it = opened_.find(key);
    if (it == opened_.end()) {
      void* ptr = nullptr;
      SHOAL_CUDA(cudaIpcOpenMemHandle(&ptr, mem, cudaIpcMemLazyEnablePeerAccess), "cudaIpcOpenMemHandle");
      it = opened_.emplace(key, std::make_pair(ptr, 0)).first;
    }
    ++it->second.second;
    *base = it->second.first;
    return Status::Ok();
  }

  void CloseIpc(const cudaIpcMemHandle_t& mem) {
    std::string key(reinterpret_cast<const char*>(&mem), sizeof(mem));
    std::lock_guard<std::mutex> lock(ipc_mu_);
    auto it = opened_.find(key);
    if (it == opened_.end() || --it->second.second > 0) return;
    cudaIpcCloseMemHandle(it->second.first);
    opened_.erase(it);
  }

  std::mutex ipc_mu_;
  std::map<std::string, std::pair<void*, int>> opened_;
  std::once_flag range_once_;
  GetAddressRange range_ = nullptr;
};

}  // namespace
}  // namespace shoal::collective

extern "C" __attribute__((visibility("default"))) shoal::collective::GpuBackend* ShoalGpuBackend() {
  static shoal::collective::CudaBackend backend;
  return &backend;
}
