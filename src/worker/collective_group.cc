#include "src/worker/collective_group.h"

#include "absl/strings/str_cat.h"
#include "src/collective/absl_status.h"
#include "src/collective/gpu_backend.h"
#include "src/collective/host_communicator.h"

namespace shoal {
namespace {

class CoreKeyValue final : public collective::KeyValue {
 public:
  explicit CoreKeyValue(CoreWorker& core) : core_(core) {}
  collective::Status Put(const std::string& key, const std::string& value, bool overwrite, bool* added) override {
    absl::StatusOr<bool> r = core_.KvPut(kCollectiveNamespace, key, value, overwrite);
    if (!r.ok()) return collective::FromAbsl(r.status());
    *added = *r;
    return collective::Status::Ok();
  }
  collective::Status Get(const std::string& key, std::string* value) override {
    absl::StatusOr<std::string> r = core_.KvGet(kCollectiveNamespace, key);
    if (!r.ok()) return collective::FromAbsl(r.status());
    *value = std::move(*r);
    return collective::Status::Ok();
  }
  collective::Status Delete(const std::string& key) override {
    return collective::FromAbsl(core_.KvDel(kCollectiveNamespace, key));
  }

 private:
  CoreWorker& core_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<collective::Communicator>> JoinCollectiveGroup(CoreWorker& core,
                                                                              const CollectiveJoinOptions& options) {
  if (options.backend != "gloo" && options.backend != "nccl") {
    return absl::InvalidArgumentError(
        absl::StrCat("unknown collective backend '", options.backend, "' (Shoal has \"nccl\" and \"gloo\")"));
  }
  CoreKeyValue kv(core);
  collective::GroupOptions group;
  group.group_name = options.name;
  group.world_size = options.world_size;
  group.rank = options.rank;
  group.bind_host = options.bind_host.empty() ? core.address().substr(0, core.address().rfind(':')) : options.bind_host;
  group.join_timeout = std::chrono::milliseconds(absl::ToInt64Milliseconds(options.join_timeout));
  group.op_timeout = std::chrono::milliseconds(absl::ToInt64Milliseconds(options.op_timeout));
  std::unique_ptr<collective::Communicator> host;
  collective::Status s = collective::JoinHostGroup(group, kv, &host);
  if (!s.ok()) return collective::ToAbsl(s);
  if (options.backend == "gloo") return host;
  collective::GpuBackend* gpu = nullptr;
  std::unique_ptr<collective::Communicator> nccl;
  s = collective::LoadGpuBackend(&gpu);
  if (s.ok()) s = gpu->CreateNccl(std::move(host), options.device, &nccl);
  if (!s.ok()) {
    (void)kv.Delete(collective::RankKey(options.name, options.rank));
    return collective::ToAbsl(s);
  }
  return nccl;
}

void LeaveCollectiveGroup(CoreWorker& core, std::shared_ptr<collective::Communicator> group) {
  if (group == nullptr) return;
  std::string key = collective::RankKey(group->group_name(), group->rank());
  group->Abort("the group was destroyed");
  group.reset();
  (void)core.KvDel(kCollectiveNamespace, key);
}

}  // namespace shoal
