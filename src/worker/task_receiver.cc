#include "src/worker/task_receiver.h"

#include <pthread.h>

#include <algorithm>
#include <optional>

#include "absl/strings/str_cat.h"
#include "spdlog/spdlog.h"
#include "src/worker/task_spec.h"

namespace shoal {
namespace {

const absl::Status& ExitingStatus() {
  static const absl::Status* status = new absl::Status(absl::UnavailableError("the worker is exiting"));
  return *status;
}

// Set while this thread starts async calls: a call finishing inside its own start (the runner
// answered at once) leaves the calls it lets in to the loop further up the stack.
thread_local bool tls_starting = false;

}  // namespace

TaskReceiver::TaskReceiver(const Clock& clock, Runner runner, Options options, AsyncRunner async_runner)
    : clock_(clock),
      runner_(std::move(runner)),
      options_(options),
      async_runner_(std::move(async_runner)),
      call_order_(options.sequence_gap_timeout) {}

TaskReceiver::~TaskReceiver() { Drain(); }

void TaskReceiver::Drain() {
  RequestExit(absl::OkStatus());
  std::vector<std::thread> loops;
  {
    absl::MutexLock lock(&mu_);
    loops.swap(loops_);  // no loop starts after exit
  }
  for (auto& t : loops) {
    if (t.joinable()) t.join();
  }
  { absl::MutexLock wait_for_starts(&start_mu_); }  // none begins after exit
  // Pushes no loop took (Run never ran, or returned before they came), and async calls that
  // have not finished (a `finished` that comes later finds nothing).
  std::vector<Pushed> left;
  {
    absl::MutexLock lock(&mu_);
    left = TakeQueued();
    for (auto& [key, in_flight] : in_flight_) left.push_back(std::move(in_flight.call));
    in_flight_.clear();
    to_start_.clear();
    running_.clear();
  }
  for (auto& t : left) t.done(ExitingStatus());
}

std::vector<TaskReceiver::Pushed> TaskReceiver::TakeQueued() {
  std::vector<Pushed> left(std::make_move_iterator(queue_.begin()), std::make_move_iterator(queue_.end()));
  queue_.clear();
  for (auto& [name, group] : groups_) {
    for (auto& t : group->queue) left.push_back(std::move(t));
    group->queue.clear();
    for (auto& t : group->async_queue) left.push_back(std::move(t));
    group->async_queue.clear();
  }
  for (auto& t : call_order_.TakeAll()) left.push_back(std::move(t));
  return left;
}

void TaskReceiver::Push(const rpc::PushTaskRequest* request, rpc::PushTaskReply* reply, Done done) {
  const rpc::TaskSpec& spec = request->spec();
  std::vector<Pushed> refused;
  bool start = false;
  bool held = false;
  {
    absl::MutexLock lock(&mu_);
    if (!exiting_) {
      if (spec.actor_creation() && (spec.max_concurrency() > 1 || !spec.concurrency_groups().empty())) {
        // A concurrent actor: its calls go to their groups from now on (and run once it exists).
        auto& fallback = groups_[""];
        fallback = std::make_unique<Group>();
        fallback->limit = std::max(1, spec.max_concurrency());
        for (const auto& [name, limit] : spec.concurrency_groups()) {
          if (name.empty()) continue;
          auto& group = groups_[name];
          group = std::make_unique<Group>();
          group->limit = std::max(1, limit);
        }
        asyncio_ = spec.is_asyncio() && async_runner_ != nullptr;
      }
      refused = Enqueue({request, reply, std::move(done)});
      held = !spec.actor_id().empty() && call_order_.Holding();
    } else {
      refused.push_back({request, reply, std::move(done)});
    }
    start = !to_start_.empty();  // only an async actor's calls; other pushes skip StartAsync
  }
  if (held && options_.on_held_call) options_.on_held_call();
  Refuse(refused);
  if (start) StartAsync();
}

void TaskReceiver::Refuse(std::vector<Pushed>& refused) {
  for (auto& t : refused) {
    const std::string& group = t.request->spec().concurrency_group();
    if (group.empty() || exiting()) {
      t.done(ExitingStatus());
    } else {
      t.done(absl::InvalidArgumentError(absl::StrCat("the actor has no concurrency group '", group, "'")));
    }
  }
}

std::vector<TaskReceiver::Pushed> TaskReceiver::Enqueue(Pushed task) {
  std::vector<Pushed> refused;
  const rpc::TaskSpec& spec = task.request->spec();
  if (spec.actor_id().empty() || spec.actor_creation()) {
    queue_.push_back(std::move(task));
    queued_.store(queue_.size(), std::memory_order_release);
    return refused;
  }
  for (auto& ready : call_order_.Add(spec.caller_id(), spec.sequence_number(), std::move(task), clock_.Now())) {
    Route(std::move(ready), refused);
  }
  return refused;
}

void TaskReceiver::Route(Pushed call, std::vector<Pushed>& refused) {
  const std::string& name = call.request->spec().concurrency_group();
  if (groups_.empty()) {
    if (name.empty()) {
      queue_.push_back(std::move(call));
      queued_.store(queue_.size(), std::memory_order_release);
    } else {
      refused.push_back(std::move(call));
    }
    return;
  }
  auto it = groups_.find(name);
  if (it == groups_.end()) {
    refused.push_back(std::move(call));  // answered in order: later calls of its caller go on
    return;
  }
  Group& group = *it->second;
  if (asyncio_ && !call.request->spec().streaming()) {
    group.async_queue.push_back(std::move(call));
    if (created_) TakeAsync(group);
    return;
  }
  group.queue.push_back(std::move(call));
  if (created_) StartLoops(group);
}

void TaskReceiver::TakeAsync(Group& group) {
  while (!exiting_ && group.async_running < group.limit && !group.async_queue.empty()) {
    Pushed call = std::move(group.async_queue.front());
    group.async_queue.pop_front();
    ++group.async_running;
    running_.insert(SpecTaskId(call.request->spec()));
    const uint64_t key = next_key_++;
    to_start_.push_back({key, call.request});
    in_flight_.emplace(key, InFlight{std::move(call), &group});
  }
}

void TaskReceiver::StartAsync() {
  if (tls_starting || async_runner_ == nullptr) return;
  absl::MutexLock start(&start_mu_);
  tls_starting = true;
  while (true) {
    std::vector<ToStart> calls;
    {
      absl::MutexLock lock(&mu_);
      if (exiting_) break;  // Drain answers them
      calls.swap(to_start_);
    }
    if (calls.empty()) break;
    for (const ToStart& call : calls) {
      async_runner_(*call.request,
                    [this, key = call.key](rpc::PushTaskReply reply) { FinishAsync(key, std::move(reply)); });
    }
  }
  tls_starting = false;
}

void TaskReceiver::FinishAsync(uint64_t key, rpc::PushTaskReply reply) {
  Pushed call;
  {
    absl::MutexLock lock(&mu_);
    auto it = in_flight_.find(key);
    if (it == in_flight_.end()) return;  // answered by Drain
    call = std::move(it->second.call);
    Group* group = it->second.group;
    in_flight_.erase(it);
    running_.erase(SpecTaskId(call.request->spec()));
    --group->async_running;
    TakeAsync(*group);
  }
  *call.reply = std::move(reply);
  if (AfterRun(call.request->spec(), *call.reply)) RequestExit(absl::OkStatus());
  call.done(absl::OkStatus());
  StartAsync();
}

void TaskReceiver::StartLoops(Group& group) {
  while (!exiting_ && group.queue.size() > static_cast<size_t>(group.idle) && group.threads < group.limit) {
    ++group.threads;
    ++group.idle;  // counted idle until it takes a call, so that one call starts one loop
    loops_.emplace_back([this, g = &group] {
      // Named for profiles: a thread inherits its maker's name (here often "push-serve").
      pthread_setname_np(pthread_self(), "task-group");
      RunGroup(g);
    });
  }
}

void TaskReceiver::ReleaseSequenceGaps() {
  std::vector<Pushed> refused;
  bool start = false;
  {
    absl::MutexLock lock(&mu_);
    std::vector<Pushed> ready = call_order_.ReleaseGaps(clock_.Now());
    if (!ready.empty()) spdlog::warn("method calls waited too long for earlier ones that never came; running them");
    for (auto& t : ready) Route(std::move(t), refused);
    start = !to_start_.empty();
  }
  Refuse(refused);
  if (start) StartAsync();
}

bool TaskReceiver::Quiet() const {
  absl::MutexLock lock(&mu_);
  return !call_order_.Holding();
}

absl::Status TaskReceiver::Run() {
  while (true) {
    Pushed task;
    // The next task of a sync caller usually comes within the spin's budget (src/common/spin.h).
    spin_.Spin([this] { return queued_.load(std::memory_order_acquire) > 0; });
    {
      absl::ReleasableMutexLock lock(&mu_);
      auto ready = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return exiting_ || !queue_.empty(); };
      mu_.Await(absl::Condition(&ready));
      if (exiting_) {
        std::vector<Pushed> left = TakeQueued();
        const absl::Status status = exit_status_;
        lock.Release();
        for (auto& t : left) t.done(ExitingStatus());
        return status;
      }
      task = std::move(queue_.front());
      queue_.pop_front();
      queued_.store(queue_.size(), std::memory_order_release);
      running_.insert(SpecTaskId(task.request->spec()));
    }
    RunOne(std::move(task));
  }
}

void TaskReceiver::RunGroup(Group* group) {
  while (true) {
    Pushed task;
    {
      absl::MutexLock lock(&mu_);
      auto ready = [this, group]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return exiting_ || !group->queue.empty(); };
      mu_.Await(absl::Condition(&ready));
      --group->idle;
      if (exiting_) return;  // Run or Drain answers what is left
      task = std::move(group->queue.front());
      group->queue.pop_front();
      running_.insert(SpecTaskId(task.request->spec()));
    }
    RunOne(std::move(task));
    absl::MutexLock lock(&mu_);
    ++group->idle;
  }
}

void TaskReceiver::RunOne(Pushed task) {
  const rpc::TaskSpec& spec = task.request->spec();
  *task.reply = runner_(*task.request);
  {
    absl::MutexLock lock(&mu_);
    running_.erase(SpecTaskId(spec));
  }
  const bool creation = spec.actor_creation();
  if (AfterRun(spec, *task.reply)) RequestExit(absl::OkStatus());  // before the reply: take no more
  task.done(absl::OkStatus());  // the request may be gone from here on
  if (creation) StartAsync();  // calls that came before the actor existed
}

bool TaskReceiver::AfterRun(const rpc::TaskSpec& spec, rpc::PushTaskReply& reply) {
  if (spec.actor_creation() && !reply.application_error()) {
    auto actor = ActorId::FromBinary(spec.actor_id());
    absl::MutexLock lock(&mu_);
    if (actor.ok()) actor_ = *actor;
    created_ = true;
    for (auto& [name, group] : groups_) {
      StartLoops(*group);
      if (asyncio_) TakeAsync(*group);
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
  queued_.store(1, std::memory_order_release);
  exit_status_ = std::move(why);
}

bool TaskReceiver::CancelQueued(const TaskId& task) {
  const std::string id = task.Binary();
  std::optional<Pushed> found;
  auto take = [&](std::deque<Pushed>& queue) {
    for (auto it = queue.begin(); it != queue.end(); ++it) {
      if (it->request->spec().task_id() == id) {
        found = std::move(*it);
        queue.erase(it);
        return true;
      }
    }
    return false;
  };
  {
    absl::MutexLock lock(&mu_);
    if (take(queue_)) {
      queued_.store(queue_.size() + (exiting_ ? 1 : 0), std::memory_order_release);
    } else {
      for (auto& [name, group] : groups_) {
        if (take(group->queue) || take(group->async_queue)) break;
      }
    }
  }
  if (!found) return false;
  found->done(absl::CancelledError(absl::StrCat("task ", task.Hex(), " was cancelled before it ran")));
  return true;
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
