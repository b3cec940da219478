#include "src/worker/running_tasks.h"

#include <utility>

#include "src/worker/task_spec.h"

namespace shoal {
namespace {

// The task the calling thread runs (nothing outside tasks).
thread_local CurrentTaskInfo tls_info;
thread_local const rpc::TaskSpec* tls_spec = nullptr;
thread_local bool tls_submitted = false;

}  // namespace

void RunningTasks::Enter(const rpc::TaskSpec& spec, CurrentTaskInfo info) {
  if (one_at_a_time_.load(std::memory_order_relaxed)) {
    absl::MutexLock lock(&mu_);
    sole_spec_ = &spec;
    sole_info_ = info;
  }
  tls_info = std::move(info);
  tls_spec = &spec;
  tls_submitted = false;
}

void RunningTasks::Leave() {
  if (one_at_a_time_.load(std::memory_order_relaxed)) {
    absl::MutexLock lock(&mu_);
    if (sole_spec_ == tls_spec) {
      sole_spec_ = nullptr;
      sole_info_ = CurrentTaskInfo{};
    }
  }
  if (std::exchange(tls_submitted, false)) {
    absl::MutexLock lock(&children_mu_);
    children_.erase(SpecTaskId(*tls_spec));
  }
  tls_info = CurrentTaskInfo{};
  tls_spec = nullptr;
}

CurrentTaskInfo RunningTasks::Current(const Describe& describe) {
  if (tls_spec != nullptr) return describe(tls_info, *tls_spec);
  if (one_at_a_time_.load(std::memory_order_relaxed)) {
    absl::MutexLock lock(&mu_);  // the spec lives until its Leave, which takes this lock
    if (sole_spec_ != nullptr) return describe(sole_info_, *sole_spec_);
  }
  return CurrentTaskInfo{};
}

const CurrentTaskInfo& RunningTasks::ThisThread() { return tls_info; }

void RunningTasks::AddChild(const ObjectId& first_return) {
  if (tls_spec == nullptr) return;
  tls_submitted = true;
  absl::MutexLock lock(&children_mu_);
  children_[SpecTaskId(*tls_spec)].push_back(first_return);
}

std::vector<ObjectId> RunningTasks::TakeChildren(const TaskId& parent) {
  absl::MutexLock lock(&children_mu_);
  auto it = children_.find(parent);
  if (it == children_.end()) return {};
  std::vector<ObjectId> out = std::move(it->second);
  children_.erase(it);
  return out;
}

}  // namespace shoal
