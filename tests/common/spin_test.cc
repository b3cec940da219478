#include "src/common/spin.h"

#include <catch2/catch.hpp>
#include <stdlib.h>

#include <atomic>
#include <thread>

#include "absl/time/clock.h"

namespace shoal {
namespace {

TEST_CASE("spin: a value set by another thread within the budget ends the spin", "[spin]") {
  std::atomic<bool> set{false};
  std::thread setter([&set] {
    absl::SleepFor(absl::Microseconds(200));
    set.store(true);
  });
  // A budget of an hour: a spin that did not end when the value came would run past the test's
  // time limit (60 s) and fail it.
  CHECK(SpinUntil([&set] { return set.load(); }, absl::Hours(1)));
  setter.join();
}

TEST_CASE("spin: a value that never comes ends the spin at its budget, answering false", "[spin]") {
  int asked = 0;
  CHECK_FALSE(SpinUntil(
      [&asked] {
        ++asked;
        return false;
      },
      absl::Milliseconds(2)));
  CHECK(asked > 1);  // it spun
}

TEST_CASE("spin: a condition that answers true once (it keeps state) is a hit", "[spin]") {
  // MemoryStore::SpinFor's answers true only when something was put since it last looked.
  int asked = 0;
  auto once = [&asked] { return ++asked == 1; };
  CHECK(SpinUntil(once, absl::Hours(1)));
  CHECK(asked == 1);
  AdaptiveSpin spin(absl::Hours(1));
  for (int i = 0; i < AdaptiveSpin::kMissesBeforeRest; ++i) {
    asked = 0;
    CHECK(spin.Spin(once));
  }
  CHECK_FALSE(spin.resting());  // each counted as a hit
}

TEST_CASE("spin: a zero budget asks once and never spins", "[spin]") {
  int asked = 0;
  AdaptiveSpin spin(absl::ZeroDuration());
  CHECK_FALSE(spin.Spin([&asked] {
    ++asked;
    return false;
  }));
  CHECK(asked == 1);
  CHECK(SpinUntil([] { return true; }, absl::ZeroDuration()));
}

TEST_CASE("spin: a site rests after misses in a row, longer each time, and a hit forgets the misses", "[spin]") {
  AdaptiveSpin spin(absl::Microseconds(100));
  int asked = 0;
  auto never = [&asked] {
    ++asked;
    return false;
  };
  for (int i = 0; i < AdaptiveSpin::kMissesBeforeRest - 1; ++i) CHECK_FALSE(spin.Spin(never));
  CHECK_FALSE(spin.resting());
  CHECK_FALSE(spin.Spin(never));  // the fourth miss in a row
  REQUIRE(spin.resting());
  // Resting: each wait asks once, without spinning, for kFirstRest waits.
  for (int64_t i = 0; i < AdaptiveSpin::kFirstRest; ++i) {
    asked = 0;
    CHECK_FALSE(spin.Spin(never));
    CHECK(asked == 1);
  }
  CHECK_FALSE(spin.resting());
  // Four more misses: the next rest is twice as long.
  for (int i = 0; i < AdaptiveSpin::kMissesBeforeRest; ++i) CHECK_FALSE(spin.Spin(never));
  int64_t rested = 0;
  while (spin.resting()) {
    spin.Spin(never);
    ++rested;
  }
  CHECK(rested == 2 * AdaptiveSpin::kFirstRest);
  // A hit forgets the misses: three misses after it do not rest.
  CHECK(spin.Spin([] { return true; }));
  for (int i = 0; i < AdaptiveSpin::kMissesBeforeRest - 1; ++i) CHECK_FALSE(spin.Spin(never));
  CHECK_FALSE(spin.resting());
}

TEST_CASE("spin: one thread at a time spins at a site, the others look once and go on", "[spin]") {
  AdaptiveSpin spin(absl::Hours(1));
  std::atomic<bool> inside{false};
  std::atomic<bool> release{false};
  std::thread spinner([&] {
    CHECK(spin.Spin([&] {
      inside.store(true);
      return release.load();
    }));
  });
  while (!inside.load()) sched_yield();
  int asked = 0;
  CHECK_FALSE(spin.Spin([&asked] {
    ++asked;
    return false;
  }));
  CHECK(asked == 1);  // it did not spin: the first thread does
  release.store(true);
  spinner.join();
  CHECK_FALSE(spin.resting());
}

TEST_CASE("spin: SHOAL_SPIN_WAIT_US sets the budget, and anything but 0 to 10000 is refused by name", "[spin]") {
  unsetenv("SHOAL_SPIN_WAIT_US");
  CHECK(SpinBudgetFromEnvironment().value() == kDefaultSpinBudget);
  setenv("SHOAL_SPIN_WAIT_US", "0", 1);
  CHECK(SpinBudgetFromEnvironment().value() == absl::ZeroDuration());
  setenv("SHOAL_SPIN_WAIT_US", "350", 1);
  CHECK(SpinBudgetFromEnvironment().value() == absl::Microseconds(350));
  for (const char* bad : {"-1", "10001", "fast", "20us", "1.5"}) {
    setenv("SHOAL_SPIN_WAIT_US", bad, 1);
    absl::StatusOr<absl::Duration> budget = SpinBudgetFromEnvironment();
    REQUIRE_FALSE(budget.ok());
    CHECK(absl::IsInvalidArgument(budget.status()));
    CHECK(budget.status().message().find("SHOAL_SPIN_WAIT_US") != absl::string_view::npos);
    CHECK(budget.status().message().find(bad) != absl::string_view::npos);
  }
  unsetenv("SHOAL_SPIN_WAIT_US");
}

}  // namespace
}  // namespace shoal
