#include "src/worker/object_recovery.h"

#include <memory>
#include <utility>

#include "absl/strings/str_cat.h"
#include "src/common/error_info.h"
#include "src/worker/task_spec.h"

namespace shoal {

void ObjectRecovery::AddLineage(const rpc::TaskSpec& spec, bool any_in_store, const std::vector<ObjectId>& in_scope) {
  if (!spec.actor_id().empty() || spec.max_retries() == 0) return;
  if (spec.streaming() && !options_.rerun_stream) return;
  const TaskId task = SpecTaskId(spec);
  absl::MutexLock lock(&mu_);
  if (auto it = lineage_.find(task); it != lineage_.end()) {  // a re-run finished
    it->second.recovering = false;
    it->second.spec.set_attempt(std::max(it->second.spec.attempt(), spec.attempt()));
    return;
  }
  if (!any_in_store || in_scope.empty()) return;
  Lineage& l = lineage_[task];
  l.spec = spec;
  l.bytes = static_cast<int64_t>(spec.ByteSizeLong());
  l.live_returns = static_cast<int>(in_scope.size());
  l.outputs = in_scope;
  for (const auto& id : in_scope) made_by_[id] = task;
  bytes_ += l.bytes;
  order_.push_back(task);
  while (bytes_ > options_.max_lineage_bytes && !order_.empty()) EvictOldest();
}

void ObjectRecovery::EvictOldest() {
  const TaskId task = order_.front();
  order_.pop_front();
  auto it = lineage_.find(task);
  if (it == lineage_.end()) return;  // forgotten already
  for (const ObjectId& id : it->second.outputs) {
    if (made_by_.erase(id) > 0) evicted_.insert(id);
  }
  bytes_ -= it->second.bytes;
  lineage_.erase(it);
}

void ObjectRecovery::Forget(const std::vector<ObjectId>& ids) {
  absl::MutexLock lock(&mu_);
  if (lineage_.empty() && evicted_.empty()) return;  // most programs: nothing to look up
  for (const ObjectId& id : ids) ForgetLocked(id);
}

void ObjectRecovery::ForgetLocked(const ObjectId& id) {
  evicted_.erase(id);
  auto m = made_by_.find(id);
  if (m == made_by_.end()) return;
  const TaskId task = m->second;
  made_by_.erase(m);
  auto it = lineage_.find(task);
  if (it == lineage_.end() || --it->second.live_returns > 0) return;
  bytes_ -= it->second.bytes;
  lineage_.erase(it);  // its entry in order_ goes stale; EvictOldest skips it
  if (lineage_.empty()) order_.clear();
}

absl::Status ObjectRecovery::Recover(const ObjectId& id, absl::string_view why) {
  Gone gone;
  if (ValuePtr lost = memory_.GetIfReady(id); lost != nullptr) gone.holder = lost->raylet_address();
  if (options_.dead_nodes) gone.dead_nodes = options_.dead_nodes();
  std::vector<std::function<void()>> after;
  absl::Status status;
  {
    absl::MutexLock lock(&mu_);
    status = RecoverLocked(id, why, gone, after);
  }
  for (auto& fn : after) fn();  // erase the lost values, then submit, arguments first
  return status;
}

absl::Status ObjectRecovery::RerunWithLostArgument(const rpc::TaskSpec& spec, int arg_index, absl::string_view why) {
  if (arg_index < 0 || arg_index >= spec.args_size() || spec.args(arg_index).kind_case() != rpc::TaskArg::kObject) {
    return ErrorStatus(rpc::OBJECT_LOST, absl::StrCat(DescribeTask(spec), " has no stored argument ", arg_index));
  }
  auto arg_id = ObjectId::FromBinary(spec.args(arg_index).object().object_id());
  if (!arg_id.ok()) return ErrorStatus(rpc::OBJECT_LOST, std::string(arg_id.status().message()));
  if (absl::Status s = Recover(*arg_id, why); !s.ok()) return s;
  rpc::TaskSpec again = spec;
  again.set_attempt(spec.attempt() + 1);
  SubmitWhenArgumentsReady(std::move(again), {{arg_index, *arg_id}});
  return absl::OkStatus();
}

absl::Status ObjectRecovery::RecoverLocked(const ObjectId& id, absl::string_view why, const Gone& gone,
                                           std::vector<std::function<void()>>& after) {
  auto m = made_by_.find(id);
  if (m == made_by_.end()) {
    if (evicted_.contains(id)) {
      return ErrorStatus(rpc::OBJECT_LOST,
                         absl::StrCat("object ", id.Hex(), " is lost (", why, ") and cannot be reconstructed: its ",
                                      "lineage was dropped to keep the owner's lineage under ",
                                      options_.max_lineage_bytes, " bytes"));
    }
    return ErrorStatus(rpc::OBJECT_LOST,
                       absl::StrCat("object ", id.Hex(), " is lost (", why, ") and cannot be reconstructed: only ",
                                    "the results and generator items of normal tasks with max_retries != 0 are, by their owner; this one ",
                                    "was made by put, by an actor method or by a task that may not be retried, or ",
                                    "is owned by another worker"));
  }
  Lineage& l = lineage_.at(m->second);
  if (l.recovering) return absl::OkStatus();  // another caller started it
  const int max_retries = l.spec.max_retries();
  if (max_retries >= 0 && l.spec.attempt() >= max_retries) {
    return ErrorStatus(rpc::OBJECT_LOST,
                       absl::StrCat("object ", id.Hex(), " is lost (", why, ") and cannot be reconstructed: ",
                                    DescribeTask(l.spec), " already ran ", l.spec.attempt() + 1,
                                    " time(s), and max_retries is ", max_retries));
  }
  rpc::TaskSpec spec = l.spec;
  spec.set_attempt(spec.attempt() + 1);
  l.spec.set_attempt(spec.attempt());
  l.recovering = true;

  // Arguments stored on a dead node that this owner can re-make are re-made first.
  std::vector<std::pair<int, ObjectId>> waiting;
  for (int i = 0; i < spec.args_size(); ++i) {
    const rpc::TaskArg& arg = spec.args(i);
    if (arg.kind_case() != rpc::TaskArg::kObject || !arg.object().in_store()) continue;
    auto arg_id = ObjectId::FromBinary(arg.object().object_id());
    if (!arg_id.ok() || !made_by_.contains(*arg_id)) continue;
    const bool lost = (!gone.holder.empty() && arg.object().raylet_address() == gone.holder) ||
                      gone.dead_nodes.contains(arg.object().node_id());
    if (!lost) continue;
    absl::Status s = RecoverLocked(*arg_id, "its node died", gone, after);
    if (!s.ok()) {
      l.recovering = false;
      return ErrorStatus(rpc::OBJECT_LOST, absl::StrCat("object ", id.Hex(), " is lost (", why, "), and re-running ",
                                                        DescribeTask(spec), " needs its argument ", i,
                                                        ", lost too: ", s.message()));
    }
    waiting.emplace_back(i, *arg_id);
  }
  if (spec.streaming()) {
    // Every stored item still in scope gets the new run's value (a generator runs whole, and
    // its items on the same lost node are gone with this one); the completion return stays.
    std::vector<ObjectId> items;
    for (const ObjectId& item : l.outputs) {
      if (made_by_.contains(item)) items.push_back(item);
    }
    after.push_back([this, spec, items = std::move(items), waiting = std::move(waiting)]() mutable {
      for (const ObjectId& item : items) memory_.Erase(item);
      options_.rerun_stream(SpecTaskId(spec), spec.attempt(), items);
      SubmitWhenArgumentsReady(std::move(spec), std::move(waiting));
    });
    return absl::OkStatus();
  }
  const uint32_t n = std::max<uint32_t>(spec.num_returns(), 1);
  after.push_back([this, spec, n, waiting = std::move(waiting)]() mutable {
    for (uint32_t i = 1; i <= n; ++i) memory_.Erase(ReturnObjectId(spec, i));
    SubmitWhenArgumentsReady(std::move(spec), std::move(waiting));
  });
  return absl::OkStatus();
}

namespace {

struct Resolution {
  absl::Mutex mu;
  rpc::TaskSpec spec ABSL_GUARDED_BY(mu);
  size_t remaining ABSL_GUARDED_BY(mu) = 0;
};

}  // namespace

void ObjectRecovery::SubmitWhenArgumentsReady(rpc::TaskSpec spec, std::vector<std::pair<int, ObjectId>> waiting) {
  if (waiting.empty()) {
    options_.resubmit(std::move(spec));
    return;
  }
  auto res = std::make_shared<Resolution>();
  {
    absl::MutexLock lock(&res->mu);
    res->spec = std::move(spec);
    res->remaining = waiting.size();
  }
  for (const auto& [index, arg_id] : waiting) {
    memory_.GetAsync(arg_id, absl::InfiniteFuture(), [this, res, index = index, arg_id = arg_id](ValuePtr value) {
      absl::ReleasableMutexLock lock(&res->mu);
      rpc::ObjectValue* arg = res->spec.mutable_args(index)->mutable_object();
      if (value != nullptr) {
        *arg = *value;  // a new location, or the error its re-run ended with (the worker raises it)
      } else {
        arg->Clear();
        arg->set_object_id(arg_id.Binary());
        *arg->mutable_error() = MakeError(rpc::OBJECT_LOST, absl::StrCat("argument ", index, " (object ", arg_id.Hex(),
                                                                        ") went out of scope while it was re-made"));
      }
      if (--res->remaining > 0) return;
      rpc::TaskSpec ready = std::move(res->spec);
      lock.Release();
      options_.resubmit(std::move(ready));
    });
  }
}

size_t ObjectRecovery::num_lineage_tasks() const {
  absl::MutexLock lock(&mu_);
  return lineage_.size();
}

int64_t ObjectRecovery::lineage_bytes() const {
  absl::MutexLock lock(&mu_);
  return bytes_;
}

}  // namespace shoal
