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

TEST_CASE("event loop: a quiet loop ticks at its quiet period until woken", "[event_loop]") {
  std::atomic<int> ticks{0};
  std::atomic<bool> quiet{true};
  std::atomic<int> asked{0};
  EventLoop loop(absl::Milliseconds(5), [&ticks] { ++ticks; }, absl::Milliseconds(20));
  loop.SetQuietTicks(absl::Seconds(60), [&] {
    ++asked;
    return quiet.load();
  });
  loop.Start();
  absl::SleepFor(absl::Milliseconds(600));
  // Backing off (5, 10, 20 ms), then quiet: a 60 s period. Without it, ~30 ticks at 20 ms.
  const int settled = ticks.load();
  CHECK(settled <= 8);
  CHECK(asked.load() >= 1);
  absl::SleepFor(absl::Milliseconds(300));
  CHECK(ticks.load() == settled);  // nothing until the quiet period ends or something wakes it

  // Timed work comes in from another thread: announced by Wake, it is ticked for at once (the
  // quiet period has 59 s to go), and the loop stays at its idle period while quiet() says no.
  quiet = false;
  loop.Wake();
  const absl::Time deadline = absl::Now() + absl::Seconds(30);
  while (ticks.load() < settled + 3 && absl::Now() < deadline) absl::SleepFor(absl::Milliseconds(1));
  CHECK(ticks.load() >= settled + 3);

  // Quiet again: the ticks stop once more.
  quiet = true;
  absl::SleepFor(absl::Milliseconds(300));
  const int again = ticks.load();
  absl::SleepFor(absl::Milliseconds(300));
  CHECK(ticks.load() == again);
  loop.Stop();
}

TEST_CASE("event loop: a post brings a quiet loop back to its short period", "[event_loop]") {
  std::atomic<int> ticks{0};
  EventLoop loop(absl::Milliseconds(5), [&ticks] { ++ticks; }, absl::Milliseconds(20));
  loop.SetQuietTicks(absl::Seconds(60), [] { return true; });
  loop.Start();
  absl::SleepFor(absl::Milliseconds(400));
  const int settled = ticks.load();
  absl::Notification ran;
  REQUIRE(loop.Post([&ran] { ran.Notify(); }));
  REQUIRE(ran.WaitForNotificationWithTimeout(absl::Seconds(10)));
  const absl::Time deadline = absl::Now() + absl::Seconds(30);
  while (ticks.load() == settled && absl::Now() < deadline) absl::SleepFor(absl::Milliseconds(1));
  CHECK(ticks.load() > settled);  // a tick follows the post, not 60 s later
  loop.Stop();
}

}  // namespace
}  // namespace shoal
