#include "src/common/event_loop.h"

#include <algorithm>

#include "absl/synchronization/notification.h"

namespace shoal {

EventLoop::EventLoop(absl::Duration tick_period, std::function<void()> tick, absl::Duration idle_tick_period)
    : tick_period_(tick_period), tick_(std::move(tick)), idle_tick_period_(std::max(idle_tick_period, tick_period)) {}

EventLoop::~EventLoop() { Stop(); }

void EventLoop::Start() { thread_ = std::thread([this] { Run(); }); }

void EventLoop::Stop() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  if (thread_.joinable()) thread_.join();
}

bool EventLoop::Post(std::function<void()> fn) {
  absl::MutexLock lock(&mu_);
  if (stopping_) return false;
  queue_.push_back(std::move(fn));
  return true;
}

void EventLoop::SetQuietTicks(absl::Duration quiet_tick_period, std::function<bool()> quiet) {
  quiet_tick_period_ = std::max(quiet_tick_period, idle_tick_period_);
  quiet_ = std::move(quiet);
}

void EventLoop::Wake() {
  if (is_quiet_.load()) Post([] {});
}

bool EventLoop::RunSync(const std::function<void()>& fn) {
  absl::Notification done;
  if (!Post([&] {
        fn();
        done.Notify();
      })) {
    return false;
  }
  done.WaitForNotification();  // posted before Stop, so it runs before the loop ends
  return true;
}

void EventLoop::Run() {
  absl::Duration period = tick_period_;
  absl::Time next_tick = absl::Now() + period;
  bool posted_since_tick = false;
  while (true) {
    std::deque<std::function<void()>> batch;
    bool stopping;
    {
      absl::MutexLock lock(&mu_);
      mu_.AwaitWithDeadline(absl::Condition(this, &EventLoop::HasWork), next_tick);
      batch.swap(queue_);
      stopping = stopping_;
    }
    for (auto& fn : batch) fn();
    if (stopping) {
      absl::MutexLock lock(&mu_);
      if (queue_.empty()) return;  // nothing can be added any more
      continue;
    }
    if (!batch.empty()) {
      posted_since_tick = true;
      if (period > tick_period_) {  // busy again: the next tick comes at the short period
        period = tick_period_;
        next_tick = std::min(next_tick, absl::Now() + period);
        is_quiet_.store(false);
      }
    }
    if (absl::Now() >= next_tick) {
      tick_();
      if (posted_since_tick) {
        period = tick_period_;
      } else if (period >= idle_tick_period_ && quiet_) {
        // Raised before asking: a Wake() that reads it lowered came before the question, so the
        // work it announces is seen by quiet_().
        is_quiet_.store(true);
        period = quiet_() ? quiet_tick_period_ : idle_tick_period_;
        if (period == idle_tick_period_) is_quiet_.store(false);
      } else {
        period = std::min(period * 2, idle_tick_period_);
      }
      posted_since_tick = false;
      next_tick = absl::Now() + period;
    }
  }
}

}  // namespace shoal
