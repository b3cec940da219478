// One thread that runs posted closures in order, and a tick function every `tick_period`. With
// an `idle_tick_period` longer than that, ticks in a row with nothing posted between them come
// further and further apart (doubling) up to it, and the first post brings the short period back:
// an idle process wakes a few times a second instead of hundreds.
// The raylet's lease manager and worker pool live on it, and a core worker's submitters,
// timers and RPC continuations; gRPC handlers and callbacks post their work here.
//
// Threading: Post and RunSync from any thread; the closures and the tick run on the loop thread.
// Stop() runs what was posted before it, then joins; later posts are refused.
#pragma once

#include <atomic>
#include <deque>
#include <functional>
#include <thread>

#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace shoal {

class EventLoop {
 public:
  EventLoop(absl::Duration tick_period, std::function<void()> tick,
            absl::Duration idle_tick_period = absl::ZeroDuration());
  ~EventLoop();  // Stop()
  EventLoop(const EventLoop&) = delete;
  EventLoop& operator=(const EventLoop&) = delete;

  void Start();
  void Stop();
  // Queues `fn`; false (and `fn` dropped) once Stop was called.
  bool Post(std::function<void()> fn);
  // Runs `fn` on the loop and waits for it; false if the loop is stopped. Not from the loop.
  bool RunSync(const std::function<void()>& fn);
  // Call before Start. Once the idle period is reached, a tick after which `quiet()` answers
  // true (the owner has nothing timed pending) makes the next tick come `quiet_tick_period`
  // later, until the next post. Code that adds timed work outside the loop (a deadline the tick
  // checks) without posting calls Wake(), or the deadline may be seen that late.
  void SetQuietTicks(absl::Duration quiet_tick_period, std::function<bool()> quiet);
  // While quiet, brings the short tick period back (posts nothing otherwise). Any thread.
  void Wake();
  bool InLoopThread() const { return std::this_thread::get_id() == thread_.get_id(); }

 private:
  void Run();
  bool HasWork() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return !queue_.empty() || stopping_; }

  const absl::Duration tick_period_;
  const std::function<void()> tick_;
  const absl::Duration idle_tick_period_;  // <= tick_period_: always tick_period_
  absl::Duration quiet_tick_period_;       // set before Start
  std::function<bool()> quiet_;            // set before Start; may be empty
  std::atomic<bool> is_quiet_{false};      // the next tick is quiet_tick_period_ away
  absl::Mutex mu_;
  std::deque<std::function<void()>> queue_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

}  // namespace shoal
