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
      }
    }
    if (absl::Now() >= next_tick) {
      tick_();
      period = posted_since_tick ? tick_period_ : std::min(period * 2, idle_tick_period_);
      posted_since_tick = false;
      next_tick = absl::Now() + period;
    }
  }
}

}  // namespace shoal
