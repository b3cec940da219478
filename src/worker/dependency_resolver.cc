#include "src/worker/dependency_resolver.h"

#include <memory>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"

namespace shoal {

// One task's resolution while some of its arguments wait.
struct DependencyResolver::Resolution {
  absl::Mutex mu;
  rpc::TaskSpec spec ABSL_GUARDED_BY(mu);
  int remaining ABSL_GUARDED_BY(mu) = 0;
  bool finished ABSL_GUARDED_BY(mu) = false;                  // `done` ran (or is running)
  std::optional<rpc::ErrorInfo> failed ABSL_GUARDED_BY(mu);  // the first argument that failed
  DependencyResolver::Done done;
};

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
  auto task = TaskId::FromBinary(res->spec.task_id());
  if (task.ok()) {
    absl::MutexLock lock(&waiting_->mu);
    waiting_->by_task[*task] = res;
  }
  const TaskId key = task.ok() ? *task : TaskId();
  for (const auto& [index, id] : pending) {
    store_.GetAsync(id, absl::InfiniteFuture(), [waiting = waiting_, res, key, index = index, id = id](ValuePtr value) {
      absl::ReleasableMutexLock lock(&res->mu);
      if (res->finished) return;  // cancelled
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
      res->finished = true;
      rpc::TaskSpec resolved = std::move(res->spec);
      std::optional<rpc::ErrorInfo> failed = std::move(res->failed);
      lock.Release();
      {
        absl::MutexLock lock(&waiting->mu);
        waiting->by_task.erase(key);
      }
      res->done(std::move(resolved), std::move(failed));
    });
  }
}

bool DependencyResolver::Cancel(const TaskId& task, rpc::ErrorInfo error) {
  std::shared_ptr<Resolution> res;
  {
    absl::MutexLock lock(&waiting_->mu);
    auto it = waiting_->by_task.find(task);
    if (it == waiting_->by_task.end()) return false;
    res = it->second.lock();
    waiting_->by_task.erase(it);
  }
  if (res == nullptr) return false;
  absl::ReleasableMutexLock lock(&res->mu);
  if (res->finished) return false;
  res->finished = true;
  rpc::TaskSpec spec = std::move(res->spec);
  lock.Release();
  res->done(std::move(spec), std::move(error));
  return true;
}

}  // namespace shoal
