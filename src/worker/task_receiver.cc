#include "src/worker/task_receiver.h"

#include "spdlog/spdlog.h"
#include "src/worker/task_spec.h"

namespace shoal {
namespace {

const absl::Status& ExitingStatus() {
  static const absl::Status* status = new absl::Status(absl::UnavailableError("the worker is exiting"));
  return *status;
}

}  // namespace

TaskReceiver::TaskReceiver(const Clock& clock, Runner runner, Options options)
    : clock_(clock), runner_(std::move(runner)), options_(options), call_order_(options.sequence_gap_timeout) {}

TaskReceiver::~TaskReceiver() { Drain(); }

void TaskReceiver::Drain() {
  RequestExit(absl::OkStatus());
  for (auto& t : extra_loops_) {
    if (t.joinable()) t.join();
  }
  // Pushes no loop took (Run never ran, or returned before they came).
  std::vector<Pushed> left;
  {
    absl::MutexLock lock(&mu_);
    left.assign(std::make_move_iterator(queue_.begin()), std::make_move_iterator(queue_.end()));
    queue_.clear();
    for (auto& t : call_order_.TakeAll()) left.push_back(std::move(t));
  }
  for (auto& t : left) t.done(ExitingStatus());
}

void TaskReceiver::Push(const rpc::PushTaskRequest* request, rpc::PushTaskReply* reply, Done done) {
  {
    absl::MutexLock lock(&mu_);
    if (!exiting_) {
      Enqueue({request, reply, std::move(done)});
      return;
    }
  }
  done(ExitingStatus());
}

void TaskReceiver::Enqueue(Pushed task) {
  const rpc::TaskSpec& spec = task.request->spec();
  if (spec.actor_id().empty() || spec.actor_creation()) {
    queue_.push_back(std::move(task));
    return;
  }
  for (auto& ready : call_order_.Add(spec.caller_id(), spec.sequence_number(), std::move(task), clock_.Now())) {
    queue_.push_back(std::move(ready));
  }
}

void TaskReceiver::ReleaseSequenceGaps() {
  absl::MutexLock lock(&mu_);
  std::vector<Pushed> ready = call_order_.ReleaseGaps(clock_.Now());
  if (!ready.empty()) spdlog::warn("method calls waited too long for earlier ones that never came; running them");
  for (auto& t : ready) queue_.push_back(std::move(t));
}

absl::Status TaskReceiver::Run() {
  while (true) {
    Pushed task;
    {
      absl::ReleasableMutexLock lock(&mu_);
      auto ready = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return exiting_ || !queue_.empty(); };
      mu_.Await(absl::Condition(&ready));
      if (exiting_) {
        std::vector<Pushed> left(std::make_move_iterator(queue_.begin()), std::make_move_iterator(queue_.end()));
        queue_.clear();
        for (auto& t : call_order_.TakeAll()) left.push_back(std::move(t));
        const absl::Status status = exit_status_;
        lock.Release();
        for (auto& t : left) t.done(ExitingStatus());
        return status;
      }
      task = std::move(queue_.front());
      queue_.pop_front();
      running_.insert(SpecTaskId(task.request->spec()));
    }
    const rpc::TaskSpec& spec = task.request->spec();
    *task.reply = runner_(*task.request);
    {
      absl::MutexLock lock(&mu_);
      running_.erase(SpecTaskId(spec));
    }
    if (AfterRun(spec, *task.reply)) RequestExit(absl::OkStatus());  // before the reply: take no more
    task.done(absl::OkStatus());
  }
}

bool TaskReceiver::AfterRun(const rpc::TaskSpec& spec, rpc::PushTaskReply& reply) {
  if (spec.actor_creation() && !reply.application_error()) {
    auto actor = ActorId::FromBinary(spec.actor_id());
    {
      absl::MutexLock lock(&mu_);
      if (actor.ok()) actor_ = *actor;
    }
    // A concurrent actor runs its calls on max_concurrency threads (this one included).
    for (int i = 1; i < spec.max_concurrency(); ++i) {
      extra_loops_.emplace_back([this] { (void)Run(); });
    }
    return false;
  }
  if (spec.max_calls() <= 0 || !spec.actor_id().empty()) return false;
  absl::MutexLock lock(&mu_);
  if (++calls_[spec.function_name()] < spec.max_calls()) return false;
  // The reply tells the owner not to reuse this worker; no task is taken after this one.
  reply.set_worker_exiting(true);
  return true;
}

void TaskReceiver::RequestExit(absl::Status why) {
  absl::MutexLock lock(&mu_);
  if (exiting_) return;
  exiting_ = true;
  exit_status_ = std::move(why);
}

bool TaskReceiver::IsRunning(const TaskId& task) const {
  absl::MutexLock lock(&mu_);
  return running_.contains(task);
}

ActorId TaskReceiver::actor() const {
  absl::MutexLock lock(&mu_);
  return actor_;
}

bool TaskReceiver::exiting() const {
  absl::MutexLock lock(&mu_);
  return exiting_;
}

}  // namespace shoal
