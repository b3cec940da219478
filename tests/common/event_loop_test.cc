#include "src/common/event_loop.h"

#include <catch2/catch.hpp>

#include <atomic>
#include <vector>

#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"

namespace shoal {
namespace {

TEST_CASE("event loop: an idle loop ticks ever less often, up to its idle period", "[event_loop]") {
  std::atomic<int> ticks{0};
  EventLoop loop(absl::Milliseconds(5), [&ticks] { ++ticks; }, absl::Milliseconds(50));
  loop.Start();
  absl::SleepFor(absl::Milliseconds(600));
  loop.Stop();
  // At a steady 5 ms this would be ~120; backing off (5, 10, 20, 40, then 50 ms) it is ~15. A
  // loaded machine only ticks less, so the bound holds however slow the run.
  CHECK(ticks.load() < 40);
  CHECK(ticks.load() >= 1);
}

TEST_CASE("event loop: posts run in order and are followed by a tick", "[event_loop]") {
  std::atomic<int> ticks{0};
  EventLoop loop(absl::Milliseconds(5), [&ticks] { ++ticks; }, absl::Milliseconds(50));
  loop.Start();
  absl::SleepFor(absl::Milliseconds(300));  // backed off to the idle period
  std::vector<int> order;
  absl::Notification ran;
  for (int i = 0; i < 3; ++i) {
    REQUIRE(loop.Post([&order, &ran, i] {
      order.push_back(i);
      if (i == 2) ran.Notify();
    }));
  }
  REQUIRE(ran.WaitForNotificationWithTimeout(absl::Seconds(10)));
  const int before = ticks.load();
  const absl::Time deadline = absl::Now() + absl::Seconds(10);
  while (ticks.load() == before && absl::Now() < deadline) absl::SleepFor(absl::Milliseconds(1));
  CHECK(ticks.load() > before);
  loop.Stop();
  CHECK(order == std::vector<int>{0, 1, 2});
  CHECK_FALSE(loop.Post([] {}));  // refused once stopped
}

TEST_CASE("event loop: without an idle period the tick keeps its period", "[event_loop]") {
  std::atomic<int> ticks{0};
  EventLoop loop(absl::Milliseconds(50), [&ticks] { ++ticks; });
  loop.Start();
  absl::SleepFor(absl::Milliseconds(300));
  loop.Stop();
  CHECK(ticks.load() <= 7);  // never faster than its period
}

}  // namespace
}  // namespace shoal
