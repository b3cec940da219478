#include "src/worker/dependency_resolver.h"

#include <memory>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"

namespace shoal {
namespace {

// One task's resolution while some of its arguments wait.
struct Resolution {
  absl::Mutex mu;
  rpc::TaskSpec spec ABSL_GUARDED_BY(mu);
  int remaining ABSL_GUARDED_BY(mu) = 0;
  std::optional<rpc::ErrorInfo> failed ABSL_GUARDED_BY(mu);  // the first argument that failed
  DependencyResolver::Done done;
};

}  // namespace

void DependencyResolver::Resolve(rpc::TaskSpec spec, std::vector<TaskArg> args, Done done) {
  std::vector<std::pair<int, ObjectId>> pending;
  const int first = spec.args_size();
  for (size_t i = 0; i < args.size(); ++i) {
    rpc::TaskArg* arg = spec.add_args();
    if (args[i].is_ref) {
      pending.emplace_back(first + static_cast<int>(i), args[i].ref);
    } else {
      arg->set_inline_value(std::move(args[i].value));
    }
  }
  if (pending.empty()) {
    done(std::move(spec), std::nullopt);
    return;
  }
  auto res = std::make_shared<Resolution>();
  {
    absl::MutexLock lock(&res->mu);
    res->spec = std::move(spec);
    res->remaining = static_cast<int>(pending.size());
  }
  res->done = std::move(done);
  for (const auto& [index, id] : pending) {
    store_.GetAsync(id, absl::InfiniteFuture(), [res, index = index, id = id](ValuePtr value) {
      absl::ReleasableMutexLock lock(&res->mu);
      rpc::TaskArg* arg = res->spec.mutable_args(index);
      if (value == nullptr) {
        if (!res->failed) {
          res->failed = MakeError(rpc::OBJECT_LOST, absl::StrCat("argument ", index, " (object ", id.Hex(),
                                                                 ") was freed or its owner shut down before it was "
                                                                 "ready"));
        }
      } else if (value->has_error()) {
        if (!res->failed) res->failed = value->error();
      } else if (value->in_store()) {
        *arg->mutable_object() = *value;
      } else {
        arg->set_inline_value(value->inline_data());
      }
      if (--res->remaining > 0) return;
      rpc::TaskSpec resolved = std::move(res->spec);
      std::optional<rpc::ErrorInfo> failed = std::move(res->failed);
      lock.Release();
      res->done(std::move(resolved), std::move(failed));
    });
  }
}

}  // namespace shoal
