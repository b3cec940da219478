#include "src/worker/task_submitter.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "spdlog/spdlog.h"
#include "src/worker/core_worker.h"
#include "src/worker/object_value.h"

namespace shoal {

TaskSubmitter::TaskSubmitter(TaskTransport& transport, const Clock& clock, TaskSubmitterOptions options,
                             TaskDoneCallback done)
    : transport_(transport), clock_(clock), options_(std::move(options)), done_(std::move(done)) {}

void TaskSubmitter::Run(Actions& actions) {
  for (auto& a : actions) a();
}

void TaskSubmitter::Submit(rpc::TaskSpec spec) {
  Actions actions;
  {
    absl::MutexLock lock(&mu_);
    if (shutdown_) return;
    Enqueue(std::move(spec), /*front=*/false, actions);
  }
  Run(actions);
}

void TaskSubmitter::Enqueue(rpc::TaskSpec spec, bool front, Actions& actions) {
  SchedulingKey key = SchedulingKey::Of(spec);
  auto [it, inserted] = keys_.try_emplace(key);
  KeyState& ks = it->second;
  if (inserted) {
    *ks.request.mutable_resources() = spec.resources();
    *ks.request.mutable_strategy() = spec.strategy();
    ks.request.set_job_id(spec.job_id());
    *ks.request.mutable_worker_command() = spec.worker_command();
    ks.request.set_owner_address(options_.owner_address);
    ks.request.set_retriable(spec.max_retries() != 0);  // part of the key
    *ks.request.mutable_runtime_env() = spec.runtime_env();  // part of the key
  }
  if (front) {
    ks.queue.push_front(std::move(spec));
  } else {
    ks.queue.push_back(std::move(spec));
  }
  Pump(key, ks, actions);
}

void TaskSubmitter::Pump(const SchedulingKey& key, KeyState& ks, Actions& actions) {
  while (!ks.queue.empty() && !ks.idle.empty()) {
    uint64_t handle = ks.idle.back();
    ks.idle.pop_back();
    rpc::TaskSpec spec = std::move(ks.queue.front());
    ks.queue.pop_front();
    Assign(handle, std::move(spec), actions);
  }
  if (clock_.Now() < ks.retry_at) return;
  const int want = static_cast<int>(std::min<size_t>(ks.queue.size(), options_.max_pending_lease_requests));
  while (ks.pending_requests < want) {
    ++ks.pending_requests;
    RequestLease(key, ks, options_.local_raylet_address, /*grant_or_reject=*/false, actions);
  }
}

void TaskSubmitter::RequestLease(const SchedulingKey& key, const KeyState& ks, const std::string& raylet,
                                 bool grant_or_reject, Actions& actions) {
  rpc::RequestWorkerLeaseRequest request = ks.request;
  request.set_grant_or_reject(grant_or_reject);
  actions.push_back([this, key, raylet, request = std::move(request)]() mutable {
    transport_.RequestWorkerLease(raylet, std::move(request),
                                  [this, key, raylet](absl::Status s, rpc::RequestWorkerLeaseReply reply) {
                                    OnLeaseReply(key, raylet, s, reply);
                                  });
  });
}

void TaskSubmitter::Assign(uint64_t handle, rpc::TaskSpec spec, Actions& actions) {
  Lease& lease = leases_.at(handle);
  auto request = std::make_shared<rpc::PushTaskRequest>();
  *request->mutable_spec() = std::move(spec);  // both on the heap: a swap, not a copy
  *request->mutable_gpus() = lease.gpus;
  lease.running = request;
  actions.push_back([this, handle, worker = lease.worker_address, request = SharedPushRequest(std::move(request))]() {
    transport_.PushTask(worker, request, [this, handle](absl::Status s, rpc::PushTaskReply reply) {
      OnPushReply(handle, s, std::move(reply));
    });
  });
}

bool TaskSubmitter::OtherKeyWaiting(const SchedulingKey& key) const {
  for (const auto& [k, ks] : keys_) {
    if (!ks.queue.empty() && !(k == key)) return true;
  }
  return false;
}

void TaskSubmitter::OnLeaseFree(uint64_t handle, Actions& actions) {
  Lease& lease = leases_.at(handle);
  KeyState& ks = keys_.at(lease.key);
  const bool held_long = clock_.Now() - lease.granted_at >= options_.lease_max_hold;
  if (!ks.queue.empty() && !(held_long && OtherKeyWaiting(lease.key))) {
    rpc::TaskSpec spec = std::move(ks.queue.front());
    ks.queue.pop_front();
    Assign(handle, std::move(spec), actions);
  } else if (OtherKeyWaiting(lease.key)) {
    ReturnLease(handle, /*worker_failed=*/false, actions);
  } else {
    lease.idle_since = clock_.Now();
    ks.idle.push_back(handle);
  }
}

void TaskSubmitter::AfterTask(uint64_t handle, Actions& actions) {
  const KeyState& ks = keys_.at(leases_.at(handle).key);
  if (ks.request.strategy().kind() == rpc::SchedulingStrategy::SPREAD) {
    // Every SPREAD task is placed on its own: reusing the lease would keep the key's tasks on
    // the nodes its first leases happened to get (a raylet that did not yet know every node
    // places a first round on fewer of them).
    ReturnLease(handle, /*worker_failed=*/false, actions);
  } else {
    OnLeaseFree(handle, actions);
  }
}

TaskSubmitter::Lease TaskSubmitter::ForgetLease(uint64_t handle) {
  auto it = leases_.find(handle);
  Lease lease = std::move(it->second);
  leases_.erase(it);
  if (auto k = keys_.find(lease.key); k != keys_.end()) {
    KeyState& ks = k->second;
    ks.idle.erase(std::remove(ks.idle.begin(), ks.idle.end(), handle), ks.idle.end());
    --ks.num_leases;
  }
  return lease;
}

void TaskSubmitter::ReturnLease(uint64_t handle, bool worker_failed, Actions& actions) {
  Lease lease = ForgetLease(handle);
  actions.push_back([this, raylet = std::move(lease.raylet), id = std::move(lease.id), worker_failed] {
    transport_.ReturnWorker(raylet, id, worker_failed);
  });
}

void TaskSubmitter::Finish(rpc::TaskSpec spec, std::vector<rpc::ObjectValue> returns, Actions& actions) {
  actions.push_back([this, spec = std::move(spec), returns = std::move(returns)]() mutable {
    done_(spec, std::move(returns));
  });
}

void TaskSubmitter::Finish(SharedPushRequest pushed, std::vector<rpc::ObjectValue> returns, Actions& actions) {
  actions.push_back([this, pushed = std::move(pushed), returns = std::move(returns)]() mutable {
    done_(pushed->spec(), std::move(returns));
  });
}

void TaskSubmitter::FailQueued(KeyState& ks, rpc::ErrorType type, const std::string& why, Actions& actions) {
  while (!ks.queue.empty()) {
    rpc::TaskSpec spec = std::move(ks.queue.front());
    ks.queue.pop_front();
    auto returns = ErrorReturns(spec, type, absl::StrCat(DescribeTask(spec), " cannot run: ", why));
    Finish(std::move(spec), std::move(returns), actions);
  }
}

void TaskSubmitter::OnLeaseReply(const SchedulingKey& key, const std::string& raylet, const absl::Status& status,
                                 const rpc::RequestWorkerLeaseReply& reply) {
  Actions actions;
  {
    absl::MutexLock lock(&mu_);
    if (shutdown_) {
      if (status.ok() && reply.kind() == rpc::RequestWorkerLeaseReply::GRANTED) {
        actions.push_back([this, raylet, id = reply.lease_id()] { transport_.ReturnWorker(raylet, id, false); });
      }
    } else {
      KeyState& ks = keys_.at(key);  // kept while it has pending requests
      if (!status.ok()) {
        --ks.pending_requests;
        spdlog::warn("lease request at raylet {} failed: {}", raylet, status.ToString());
        if (raylet == options_.local_raylet_address && ++ks.lease_failures >= options_.max_lease_failures) {
          ks.lease_failures = 0;
          FailQueued(ks, rpc::RAYLET_UNAVAILABLE,
                     absl::StrCat("the local raylet at ", raylet, " did not answer lease requests ",
                                  options_.max_lease_failures, " times in a row (", status.message(), ")"),
                     actions);
        } else {
          ks.retry_at = clock_.Now() + options_.lease_retry_delay;
        }
        Pump(key, ks, actions);
      } else {
        switch (reply.kind()) {
          case rpc::RequestWorkerLeaseReply::GRANTED: {
            --ks.pending_requests;
            if (raylet == options_.local_raylet_address) ks.lease_failures = 0;
            uint64_t handle = next_handle_++;
            leases_.emplace(handle, Lease{.id = reply.lease_id(),
                                          .raylet = raylet,
                                          .worker_address = reply.worker_address(),
                                          .gpus = reply.gpus(),
                                          .key = key,
                                          .running = nullptr,
                                          .idle_since = absl::InfinitePast(),
                                          .granted_at = clock_.Now()});
            ++ks.num_leases;
            OnLeaseFree(handle, actions);
            break;
          }
          case rpc::RequestWorkerLeaseReply::SPILLBACK:
            if (reply.spillback_raylet_address().empty()) {
              --ks.pending_requests;
              ks.retry_at = clock_.Now() + options_.lease_retry_delay;
            } else {
              RequestLease(key, ks, reply.spillback_raylet_address(), /*grant_or_reject=*/true, actions);
            }
            break;
          default:  // REJECTED
            --ks.pending_requests;
            if (reply.has_failure() && reply.failure().type() != rpc::ERROR_TYPE_UNSPECIFIED) {
              FailQueued(ks, reply.failure().type(), reply.failure().message(), actions);
            } else {
              FailQueued(ks, rpc::TASK_UNSCHEDULABLE,
                         absl::StrCat("raylet ", raylet, " rejected its lease request: ", reply.message()), actions);
            }
            break;
        }
        Pump(key, ks, actions);
      }
    }
  }
  Run(actions);
}

void TaskSubmitter::OnPushReply(uint64_t handle, const absl::Status& status, rpc::PushTaskReply reply) {
  Actions actions;
  {
    absl::MutexLock lock(&mu_);
    if (shutdown_) return;
    auto it = leases_.find(handle);
    if (it == leases_.end() || !it->second.running) return;
    Lease& lease = it->second;
    SharedPushRequest pushed = std::move(lease.running);
    lease.running = nullptr;
    const rpc::TaskSpec& sent = pushed->spec();  // copied below only where the task fails or goes again
    const SchedulingKey key = lease.key;
    KeyState& ks = keys_.at(key);
    if (cancelled_.erase(SpecTaskId(sent)) > 0) {
      auto returns = ErrorReturns(sent, rpc::TASK_CANCELLED, absl::StrCat(DescribeTask(sent), " was cancelled"));
      Finish(std::move(pushed), std::move(returns), actions);
      if (status.ok() && !reply.worker_exiting()) {
        AfterTask(handle, actions);
      } else {
        ReturnLease(handle, /*worker_failed=*/true, actions);
      }
    } else if (!status.ok()) {
      rpc::TaskSpec spec = sent;
      spdlog::warn("{} failed on worker {} (attempt {}): {}", DescribeTask(spec), lease.worker_address,
                   spec.attempt() + 1, status.ToString());
      // The raylet answers the lease's return with why the worker died when it killed the worker
      // itself (for memory): the task is retried or failed once that answer is in.
      Lease failed = ForgetLease(handle);
      failing_.insert(SpecTaskId(spec));
      actions.push_back([this, failed = std::move(failed), spec = std::move(spec), status]() mutable {
        transport_.ReturnFailedWorker(
            failed.raylet, failed.id,
            [this, worker = failed.worker_address, spec = std::move(spec), status](
                absl::Status s, rpc::ReturnWorkerReply reply) mutable {
              std::optional<rpc::ErrorInfo> cause;
              if (s.ok() && reply.has_failure()) cause = reply.failure();
              OnWorkerFailed(std::move(spec), worker, status, std::move(cause));
            });
      });
    } else {
      // An application error is retried only when the caller asked (retry_exceptions) and the
      // task did not rule it out (its exception is not one of the listed types).
      const bool retryable = reply.application_error() && sent.retry_exceptions() && reply.returns_size() > 0 &&
                             !reply.returns(0).error().not_retryable();
      if (retryable && CanRetry(sent)) {
        rpc::TaskSpec spec = sent;
        spec.set_attempt(spec.attempt() + 1);
        ks.queue.push_front(std::move(spec));
      } else {
        std::vector<rpc::ObjectValue> returns;
        if (reply.returns_size() != static_cast<int>(std::max<uint32_t>(sent.num_returns(), 1))) {
          returns = ErrorReturns(sent, rpc::SYSTEM_ERROR,
                                 absl::StrCat(DescribeTask(sent), ": the worker answered ", reply.returns_size(),
                                              " return values, expected ", sent.num_returns()));
        } else {
          for (int i = 0; i < reply.returns_size(); ++i) {
            rpc::ObjectValue& v = *reply.mutable_returns(i);
            v.set_object_id(ReturnObjectId(sent, i + 1).Binary());
            returns.push_back(std::move(v));
          }
        }
        Finish(std::move(pushed), std::move(returns), actions);
      }
      if (reply.worker_exiting()) {
        ReturnLease(handle, /*worker_failed=*/true, actions);  // it reached max_calls and exits
      } else {
        AfterTask(handle, actions);
      }
    }
    Pump(key, keys_.at(key), actions);
  }
  Run(actions);
}

void TaskSubmitter::OnWorkerFailed(rpc::TaskSpec spec, const std::string& worker, const absl::Status& push_status,
                                   std::optional<rpc::ErrorInfo> cause) {
  Actions actions;
  {
    absl::MutexLock lock(&mu_);
    if (shutdown_) return;
    const TaskId id = SpecTaskId(spec);
    failing_.erase(id);
    if (cancelled_.erase(id) > 0) {
      auto returns = ErrorReturns(spec, rpc::TASK_CANCELLED, absl::StrCat(DescribeTask(spec), " was cancelled"));
      Finish(std::move(spec), std::move(returns), actions);
    } else if (cause && cause->type() == rpc::OUT_OF_MEMORY) {
      // The memory monitor killed it: retried on the OOM budget after a growing delay, when the
      // task is retriable at all (Ray's rule); never counted against max_retries.
      const bool budget_left = options_.task_oom_retries < 0 || spec.oom_retries() < options_.task_oom_retries;
      if (spec.max_retries() != 0 && budget_left) {
        const absl::Duration delay =
            std::min(options_.oom_retry_delay_base * std::pow(2.0, std::min(spec.oom_retries(), 30)),
                     options_.oom_retry_delay_max);
        spdlog::warn("retrying {} in {}: {}", DescribeTask(spec), absl::FormatDuration(delay), cause->message());
        spec.set_attempt(spec.attempt() + 1);
        spec.set_oom_retries(spec.oom_retries() + 1);
        delayed_.emplace(clock_.Now() + delay, std::move(spec));
      } else {
        rpc::ErrorInfo error = *std::move(cause);
        error.set_message(absl::StrCat(
            DescribeTask(spec), " failed after ", spec.attempt() + 1, " attempt(s): ", error.message(),
            spec.max_retries() == 0 ? " (max_retries=0: not retried)"
                                    : absl::StrCat(" (", spec.oom_retries(), " retries after memory kills, task_oom_retries=",
                                                   options_.task_oom_retries, ")")));
        auto returns = ErrorReturns(spec, error);
        Finish(std::move(spec), std::move(returns), actions);
      }
    } else if (CanRetry(spec) && !(cause && cause->type() == rpc::PLACEMENT_GROUP_REMOVED)) {
      // A task whose placement group was removed is never retried: the group is gone for good.
      if (cause) spdlog::warn("retrying {}: {}", DescribeTask(spec), cause->message());
      spec.set_attempt(spec.attempt() + 1);
      Enqueue(std::move(spec), /*front=*/true, actions);
    } else {
      const std::string head = absl::StrCat(DescribeTask(spec), " failed after ", spec.attempt() + 1, " attempt(s): ");
      rpc::ErrorInfo error;
      if (cause) {
        error = *std::move(cause);
        error.set_message(absl::StrCat(head, error.message()));
      } else {
        error = MakeError(rpc::WORKER_DIED, absl::StrCat(head, "the worker running it (", worker,
                                                         ") died or became unreachable: ", push_status.message()));
      }
      auto returns = ErrorReturns(spec, error);
      Finish(std::move(spec), std::move(returns), actions);
    }
  }
  Run(actions);
}

TaskSubmitter::CancelResult TaskSubmitter::Cancel(const TaskId& task) {
  Actions actions;
  CancelResult result;
  {
    absl::MutexLock lock(&mu_);
    if (shutdown_) return result;
    for (auto& [key, ks] : keys_) {
      for (auto it = ks.queue.begin(); it != ks.queue.end(); ++it) {
        if (SpecTaskId(*it) != task) continue;
        rpc::TaskSpec spec = std::move(*it);
        ks.queue.erase(it);
        auto returns = ErrorReturns(spec, rpc::TASK_CANCELLED,
                                    absl::StrCat(DescribeTask(spec), " was cancelled before it ran"));
        Finish(std::move(spec), std::move(returns), actions);
        result.found = true;
        break;
      }
      if (result.found) break;
    }
    for (auto it = delayed_.begin(); !result.found && it != delayed_.end(); ++it) {
      if (SpecTaskId(it->second) != task) continue;
      rpc::TaskSpec spec = std::move(it->second);
      delayed_.erase(it);
      auto returns = ErrorReturns(spec, rpc::TASK_CANCELLED,
                                  absl::StrCat(DescribeTask(spec), " was cancelled while waiting to be retried"));
      Finish(std::move(spec), std::move(returns), actions);
      result.found = true;
      break;
    }
    if (!result.found && failing_.contains(task)) {
      // Its worker failed and the raylet has not said why yet: it finishes cancelled then.
      cancelled_.insert(task);
      result.found = true;
    }
    if (!result.found) {
      for (const auto& [handle, lease] : leases_) {
        if (lease.running && SpecTaskId(lease.running->spec()) == task) {
          cancelled_.insert(task);
          result = {true, true, lease.worker_address};
          break;
        }
      }
    }
  }
  Run(actions);
  return result;
}

void TaskSubmitter::Tick() {
  Actions actions;
  {
    absl::MutexLock lock(&mu_);
    if (shutdown_) return;
    const absl::Time now = clock_.Now();
    std::vector<uint64_t> expired;
    for (const auto& [handle, lease] : leases_) {
      if (!lease.running && now - lease.idle_since >= options_.lease_idle_timeout) expired.push_back(handle);
    }
    for (uint64_t handle : expired) ReturnLease(handle, /*worker_failed=*/false, actions);
    while (!delayed_.empty() && delayed_.begin()->first <= now) {
      rpc::TaskSpec spec = std::move(delayed_.begin()->second);
      delayed_.erase(delayed_.begin());
      Enqueue(std::move(spec), /*front=*/true, actions);
    }
    for (auto it = keys_.begin(); it != keys_.end();) {
      KeyState& ks = it->second;
      if (ks.retry_at != absl::InfinitePast() && ks.retry_at <= now) {
        ks.retry_at = absl::InfinitePast();
        Pump(it->first, ks, actions);
      }
      if (ks.queue.empty() && ks.pending_requests == 0 && ks.num_leases == 0) {
        keys_.erase(it++);
      } else {
        ++it;
      }
    }
  }
  Run(actions);
}

bool TaskSubmitter::Quiet() const {
  absl::MutexLock lock(&mu_);
  return shutdown_ || (leases_.empty() && delayed_.empty() && keys_.empty());
}

void TaskSubmitter::Shutdown() {
  Actions actions;
  {
    absl::MutexLock lock(&mu_);
    if (shutdown_) return;
    shutdown_ = true;
    std::vector<uint64_t> handles;
    for (const auto& [handle, lease] : leases_) handles.push_back(handle);
    for (uint64_t handle : handles) ReturnLease(handle, /*worker_failed=*/leases_.at(handle).running != nullptr, actions);
    keys_.clear();
    delayed_.clear();
  }
  Run(actions);
}

TaskSubmitter::Stats TaskSubmitter::stats() const {
  absl::MutexLock lock(&mu_);
  Stats s;
  s.keys = keys_.size();
  for (const auto& [k, ks] : keys_) {
    s.queued += ks.queue.size();
    s.pending_lease_requests += ks.pending_requests;
  }
  s.queued += delayed_.size();
  s.leases = leases_.size();
  for (const auto& [h, lease] : leases_) s.busy_leases += lease.running != nullptr ? 1 : 0;
  return s;
}

}  // namespace shoal
