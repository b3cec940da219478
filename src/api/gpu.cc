// shoal::gpu (include/shoal/gpu.h) over src/worker/collective_group.h.
#include "shoal/gpu.h"

#include <mutex>

#include "absl/strings/str_cat.h"
#include "shoal/errors.h"
#include "src/api/current_core.h"
#include "src/collective/absl_status.h"
#include "src/worker/collective_group.h"

namespace shoal::gpu {

struct Group::Impl {
  std::mutex mu;
  std::shared_ptr<collective::Communicator> comm;  // guarded by mu; operations hold a copy
  int device = -1;
  ~Impl() {
    if (comm == nullptr) return;
    if (CoreWorker* core = api::CurrentCoreOrNull()) {
      LeaveCollectiveGroup(*core, std::move(comm));
    }
  }
};

namespace {

[[noreturn]] void Throw(const absl::Status& s) { throw Error(std::string(s.message())); }

void Check(const collective::Status& s) {
  if (!s.ok()) Throw(collective::ToAbsl(s));
}

// The communicator, kept alive for the length of one operation even if another thread destroys
// the group meanwhile (which aborts it: the operation fails at once).
std::shared_ptr<collective::Communicator> Comm(const std::shared_ptr<Group::Impl>& impl) {
  if (impl == nullptr) throw Error("the collective group was destroyed");
  std::lock_guard<std::mutex> lock(impl->mu);
  if (impl->comm == nullptr) throw Error("the collective group was destroyed");
  return impl->comm;
}

collective::Buffer Buf(const void* data, size_t count, DataType type, int device, uintptr_t stream) {
  return collective::Buffer{const_cast<void*>(data), count, static_cast<collective::DataType>(type), device, stream};
}

collective::ReduceOp Op(ReduceOp op) { return static_cast<collective::ReduceOp>(op); }

}  // namespace

Group Group::Init(const std::string& name, int world_size, int rank, const GroupOptions& options) {
  if (name.empty() || name.find('/') != std::string::npos) {
    throw Error("a collective group needs a name without '/', got '" + name + "'");
  }
  if (!(options.join_timeout_s > 0) || !(options.op_timeout_s > 0)) throw Error("collective timeouts must be positive");
  CoreWorker& core = api::CurrentCore();
  CollectiveJoinOptions join;
  join.name = absl::StrCat(core.job_id().Hex(), "/", name);
  join.world_size = world_size;
  join.rank = rank;
  join.backend = options.backend;
  join.join_timeout = absl::Seconds(options.join_timeout_s);
  join.op_timeout = absl::Seconds(options.op_timeout_s);
  join.device = options.device;
  absl::StatusOr<std::unique_ptr<collective::Communicator>> comm = JoinCollectiveGroup(core, join);
  if (!comm.ok()) Throw(comm.status());
  auto impl = std::make_shared<Impl>();
  impl->comm = std::move(*comm);
  impl->device = options.backend == "nccl" ? options.device : -1;
  return Group(std::move(impl));
}

int Group::rank() const { return Comm(impl_)->rank(); }
int Group::size() const { return Comm(impl_)->size(); }

void Group::AllReduce(void* data, size_t count, DataType type, ReduceOp op, uintptr_t stream) {
  Check(Comm(impl_)->AllReduce(Buf(data, count, type, impl_->device, stream), Op(op)));
}
void Group::Broadcast(void* data, size_t count, DataType type, int root, uintptr_t stream) {
  Check(Comm(impl_)->Broadcast(Buf(data, count, type, impl_->device, stream), root));
}
void Group::AllGather(const void* in, void* out, size_t count, DataType type, uintptr_t stream) {
  auto comm = Comm(impl_);
  auto& c = *comm;
  Check(c.AllGather(Buf(in, count, type, impl_->device, stream),
                    Buf(out, count * static_cast<size_t>(c.size()), type, impl_->device, stream)));
}
void Group::ReduceScatter(const void* in, void* out, size_t count, DataType type, ReduceOp op, uintptr_t stream) {
  auto comm = Comm(impl_);
  auto& c = *comm;
  Check(c.ReduceScatter(Buf(in, count * static_cast<size_t>(c.size()), type, impl_->device, stream),
                        Buf(out, count, type, impl_->device, stream), Op(op)));
}
void Group::Reduce(void* data, size_t count, DataType type, int root, ReduceOp op, uintptr_t stream) {
  Check(Comm(impl_)->Reduce(Buf(data, count, type, impl_->device, stream), root, Op(op)));
}
void Group::Send(const void* data, size_t count, DataType type, int peer, uintptr_t stream) {
  Check(Comm(impl_)->Send(Buf(data, count, type, impl_->device, stream), peer));
}
void Group::Recv(void* data, size_t count, DataType type, int peer, uintptr_t stream) {
  Check(Comm(impl_)->Recv(Buf(data, count, type, impl_->device, stream), peer));
}
void Group::Barrier() { Check(Comm(impl_)->Barrier()); }

void Group::Destroy() {
  if (impl_ == nullptr) return;
  std::shared_ptr<collective::Communicator> comm;
  {
    std::lock_guard<std::mutex> lock(impl_->mu);
    comm = std::move(impl_->comm);
  }
  if (comm == nullptr) return;
  if (CoreWorker* core = api::CurrentCoreOrNull()) {
    LeaveCollectiveGroup(*core, std::move(comm));
  } else {
    comm->Abort("the group was destroyed");
  }
}

}  // namespace shoal::gpu
