// Spinning briefly before sleeping, at the two waits of a sync call: the caller's Get of the
// call's return, and the worker's task loop waiting for its next task (issue 17, bench/README.md
// "Sync calls spin before they sleep").
//
// A sync call is a chain of threads, each waiting for the one before: the caller writes the
// push, the worker's connection thread reads it and wakes the task loop, which runs the task and
// writes the answer, and the caller's connection thread reads it and wakes the caller. Waking a
// thread that sleeps costs 10-25 µs of latency in this VM, more when its CPU went idle. A
// waiter that keeps its CPU for the few hundred microseconds the answer usually takes is handed
// the answer in under a microsecond, and keeps the CPU out of idle for the thread that wakes next.
//
// The budget is process-wide: $SHOAL_SPIN_WAIT_US microseconds (0 to 10000; default 200; 0 turns
// spinning off). A spinning thread yields its CPU (sched_yield) every few iterations, so that a
// runnable thread on a busy machine runs first, and one thread at a time spins at a wait site
// (others sleep at once: a driver with many threads waiting must not fill the CPUs the answers
// need). Each wait site learns: after 4 spins in a row that ran out of budget, it stops spinning
// for 64 waits (doubling to 4096 while they keep missing), so a site whose waits are long (tasks
// arriving seconds apart, a Get of a long task) spins at most a few waits in a thousand.
//
// The clock is the real one (absl::Now), not a Clock seam: a spin's budget is CPU time spent now,
// which a fake clock cannot stand for.
// Threading: any thread; one AdaptiveSpin may be shared by several waiting threads.
#pragma once

#include <sched.h>

#include <atomic>
#include <cstdint>

#include "absl/status/statusor.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace shoal {

inline constexpr absl::Duration kDefaultSpinBudget = absl::Microseconds(200);
inline constexpr absl::Duration kMaxSpinBudget = absl::Milliseconds(10);

// $SHOAL_SPIN_WAIT_US as a budget; InvalidArgument, naming the variable, for anything but an
// integer in [0, 10000].
absl::StatusOr<absl::Duration> SpinBudgetFromEnvironment();
// The process's budget: the variable's, read once (the default where it is bad: the core worker
// refuses to start then, see CoreWorker::Start).
absl::Duration SpinBudget();

// Tells the CPU this thread is spinning (a hint that frees resources for its sibling thread).
inline void CpuRelax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield");
#endif
}

// Spins until `ready()` answers true or `budget` passed; answers whether it did. `ready` may
// keep state (it is asked again only after answering false).
template <typename Ready>
bool SpinUntil(Ready ready, absl::Duration budget) {
  if (ready()) return true;
  if (budget <= absl::ZeroDuration()) return false;
  const absl::Time end = absl::Now() + budget;
  for (uint32_t i = 0;; ++i) {
    if (ready()) return true;
    if ((i & 15) == 15) {
      if (absl::Now() >= end) return ready();
      sched_yield();
    } else {
      CpuRelax();
    }
  }
}

// One wait site's spinning, with what it learned (see the top of the file).
class AdaptiveSpin {
 public:
  static constexpr int kMissesBeforeRest = 4;
  static constexpr int64_t kFirstRest = 64;
  static constexpr int64_t kLongestRest = 4096;

  // `budget` of each spin (SpinBudget() unless a test says otherwise).
  explicit AdaptiveSpin(absl::Duration budget = SpinBudget()) : budget_(budget) {}

  // Spins until `ready()` or the budget passed, unless this site rests or another thread spins
  // here now; answers ready().
  template <typename Ready>
  bool Spin(Ready ready) {
    if (budget_ <= absl::ZeroDuration()) return ready();
    if (rest_.load(std::memory_order_relaxed) > 0 && rest_.fetch_sub(1, std::memory_order_relaxed) > 0) {
      return ready();
    }
    if (spinning_.exchange(true, std::memory_order_acquire)) return ready();  // another thread spins
    const bool hit = SpinUntil(ready, budget_);
    spinning_.store(false, std::memory_order_release);
    Learn(hit);
    return hit;
  }

  absl::Duration budget() const { return budget_; }
  // Whether the next Spin would not spin for having missed (the unit tests read it).
  bool resting() const { return rest_.load(std::memory_order_relaxed) > 0; }

 private:
  void Learn(bool hit);

  const absl::Duration budget_;
  std::atomic<int64_t> rest_{0};        // waits left that do not spin
  std::atomic<int> misses_{0};          // spins in a row that ran out of budget
  std::atomic<int64_t> next_rest_{kFirstRest};
  std::atomic<bool> spinning_{false};   // a thread spins here now
};

}  // namespace shoal
