#include "src/gcs/health_checker.h"

#include <catch2/catch.hpp>

#include <functional>
#include <string>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "src/common/fake_clock.h"
#include "tests/test_util/printers.h"

namespace shoal {
namespace {

using absl::Milliseconds;
using absl::Seconds;

// Records every check the checker starts; the test answers them by hand.
class FakeHealthCheckTransport : public HealthCheckTransport {
 public:
  struct PendingCheck {
    NodeId node;
    std::string address;
    absl::Time deadline;
    std::function<void(bool)> done;
  };

  void Check(const NodeId& node, const std::string& address, absl::Time deadline,
             std::function<void(bool ok)> done) override {
    absl::MutexLock lock(&mu_);
    pending_.push_back({node, address, deadline, std::move(done)});
    sent_.push_back(node);
  }

  // Removes and answers the oldest pending check of `node`. REQUIRES: there is one.
  void Answer(const NodeId& node, bool ok) {
    std::function<void(bool)> done;
    {
      absl::MutexLock lock(&mu_);
      for (auto it = pending_.begin(); it != pending_.end(); ++it) {
        if (it->node == node) {
          done = std::move(it->done);
          pending_.erase(it);
          break;
        }
      }
    }
    REQUIRE(done);
    done(ok);  // outside our lock, as a real transport would
  }
  // Removes and returns the oldest pending check of `node` without answering it.
  PendingCheck Take(const NodeId& node) {
    absl::MutexLock lock(&mu_);
    for (auto it = pending_.begin(); it != pending_.end(); ++it) {
      if (it->node == node) {
        PendingCheck c = std::move(*it);
        pending_.erase(it);
        return c;
      }
    }
    FAIL("no pending check for the node");
    return {};
  }
  size_t NumPending(const NodeId& node) {
    absl::MutexLock lock(&mu_);
    size_t n = 0;
    for (const auto& c : pending_) n += c.node == node;
    return n;
  }
  size_t NumSent(const NodeId& node) {
    absl::MutexLock lock(&mu_);
    size_t n = 0;
    for (const auto& s : sent_) n += s == node;
    return n;
  }
  std::vector<PendingCheck> pending() {
    absl::MutexLock lock(&mu_);
    return pending_;
  }

 private:
  absl::Mutex mu_;
  std::vector<PendingCheck> pending_;
  std::vector<NodeId> sent_;
};

const NodeId kNodeA = *NodeId::FromHex(std::string(54, 'a') + "01");
const NodeId kNodeB = *NodeId::FromHex(std::string(54, 'b') + "02");

struct Harness {
  explicit Harness(HealthCheckOptions options) : options(options), checker(clock, net, options) {}
  HealthCheckOptions options;
  FakeClock clock;
  FakeHealthCheckTransport net;
  HealthChecker checker;
  const absl::Time start = clock.Now();
  absl::Duration Elapsed() const { return clock.Now() - start; }
};

constexpr absl::Duration kStep = Milliseconds(100);

HealthCheckOptions Options(absl::Duration period, absl::Duration timeout, int threshold) {
  HealthCheckOptions o;
  o.period = period;
  o.timeout = timeout;
  o.failure_threshold = threshold;
  return o;
}

TEST_CASE("HealthChecker: a node that never answers dies after failure_threshold timeouts",
          "[gcs][health]") {
  // Each check starts when the previous one failed or its period came round, whichever is
  // later, so death comes (threshold - 1) * max(period, timeout) + timeout after registration.
  struct Case {
    absl::Duration period, timeout;
    int threshold;
    absl::Duration expected_death;
  };
  const Case c = GENERATE(Case{Seconds(1), Seconds(1), 3, Seconds(3)},
                          Case{Seconds(1), Milliseconds(300), 3, Milliseconds(2300)},
                          Case{Seconds(1), Milliseconds(500), 1, Milliseconds(500)},
                          Case{Milliseconds(500), Seconds(2), 2, Seconds(4)},
                          Case{Seconds(1), Seconds(1), 5, Seconds(5)});
  CAPTURE(c.period, c.timeout, c.threshold);
  Harness h(Options(c.period, c.timeout, c.threshold));
  h.checker.OnNodeRegistered(kNodeA, "10.0.0.1:5000");
  REQUIRE(h.checker.NumNodes() == 1);

  std::vector<NodeId> dead;
  while (h.Elapsed() < c.expected_death) {
    CAPTURE(h.Elapsed());
    dead = h.checker.Tick();
    REQUIRE(dead.empty());  // not one step early
    h.clock.Advance(kStep);
  }
  REQUIRE(h.Elapsed() == c.expected_death);
  dead = h.checker.Tick();
  CHECK(dead == std::vector<NodeId>{kNodeA});
  CHECK(h.net.NumSent(kNodeA) == static_cast<size_t>(c.threshold));
  CHECK(h.checker.NumNodes() == 0);

  // Declared once; never checked again.
  for (int i = 0; i < 50; ++i) {
    h.clock.Advance(kStep);
    CHECK(h.checker.Tick().empty());
  }
  CHECK(h.net.NumSent(kNodeA) == static_cast<size_t>(c.threshold));
}

TEST_CASE("HealthChecker: checks carry the address and a deadline of now + timeout", "[gcs][health]") {
  Harness h(Options(Seconds(1), Milliseconds(250), 3));
  h.checker.OnNodeRegistered(kNodeA, "10.0.0.1:5000");
  REQUIRE(h.checker.Tick().empty());
  auto pending = h.net.pending();
  REQUIRE(pending.size() == 1);
  CHECK(pending[0].node == kNodeA);
  CHECK(pending[0].address == "10.0.0.1:5000");
  CHECK(pending[0].deadline == h.start + Milliseconds(250));
}

TEST_CASE("HealthChecker: a node that answers stays alive, checked once per period", "[gcs][health]") {
  Harness h(Options(Seconds(1), Milliseconds(500), 2));
  h.checker.OnNodeRegistered(kNodeA, "a:1");
  for (int step = 0; step <= 100; ++step) {  // 10 s
    CAPTURE(h.Elapsed());
    REQUIRE(h.checker.Tick().empty());
    while (h.net.NumPending(kNodeA) > 0) h.net.Answer(kNodeA, true);
    h.clock.Advance(kStep);
  }
  CHECK(h.checker.NumNodes() == 1);
  CHECK(h.net.NumSent(kNodeA) == 11);  // at 0, 1, ..., 10 s
}

TEST_CASE("HealthChecker: period is respected", "[gcs][health]") {
  Harness h(Options(Seconds(1), Seconds(1), 3));
  h.checker.OnNodeRegistered(kNodeA, "a:1");
  REQUIRE(h.checker.Tick().empty());
  REQUIRE(h.net.NumSent(kNodeA) == 1);

  SECTION("an immediate answer does not bring the next check forward") {
    h.net.Answer(kNodeA, true);
    for (int i = 0; i < 9; ++i) {
      h.clock.Advance(kStep);
      h.checker.Tick();
      CAPTURE(h.Elapsed());
      REQUIRE(h.net.NumSent(kNodeA) == 1);
    }
    h.clock.Advance(kStep);  // 1.0 s
    h.checker.Tick();
    CHECK(h.net.NumSent(kNodeA) == 2);
  }
  SECTION("a late answer does not push the next check back") {
    for (int i = 0; i < 7; ++i) {
      h.clock.Advance(kStep);
      h.checker.Tick();
    }
    h.net.Answer(kNodeA, true);  // at 0.7 s
    h.clock.Advance(Milliseconds(300));  // 1.0 s
    h.checker.Tick();
    CHECK(h.net.NumSent(kNodeA) == 2);
  }
  SECTION("repeated ticks at the same instant start one check") {
    h.net.Answer(kNodeA, true);
    h.clock.Advance(Seconds(1));
    for (int i = 0; i < 5; ++i) h.checker.Tick();
    CHECK(h.net.NumSent(kNodeA) == 2);
    CHECK(h.net.NumPending(kNodeA) == 1);
  }
  SECTION("no second check while one is in flight, even past the period") {
    Harness slow(Options(Milliseconds(200), Seconds(2), 3));
    slow.checker.OnNodeRegistered(kNodeA, "a:1");
    slow.checker.Tick();
    for (int i = 0; i < 19; ++i) {
      slow.clock.Advance(kStep);
      slow.checker.Tick();
    }
    CHECK(slow.net.NumSent(kNodeA) == 1);
  }
}

TEST_CASE("HealthChecker: answers of false count as failures", "[gcs][health]") {
  Harness h(Options(Seconds(1), Seconds(1), 3));
  h.checker.OnNodeRegistered(kNodeA, "a:1");
  for (int i = 0; i < 3; ++i) {
    CAPTURE(i);
    REQUIRE(h.checker.Tick().empty());
    REQUIRE(h.net.NumPending(kNodeA) == 1);
    h.net.Answer(kNodeA, false);
    if (i < 2) {
      // The next check waits for the period; the failed answer does not retry at once.
      h.clock.Advance(Milliseconds(500));
      REQUIRE(h.checker.Tick().empty());
      REQUIRE(h.net.NumPending(kNodeA) == 0);
      h.clock.Advance(Milliseconds(500));
    }
  }
  // Third failure answered at 2 s: dead on the next tick, without waiting for a timeout.
  CHECK(h.checker.Tick() == std::vector<NodeId>{kNodeA});
  CHECK(h.checker.NumNodes() == 0);
}

TEST_CASE("HealthChecker: a success clears the failure count", "[gcs][health]") {
  Harness h(Options(Seconds(1), Seconds(1), 3));
  h.checker.OnNodeRegistered(kNodeA, "a:1");
  // Two timeouts (at 1 s and 2 s); the check sent at 2 s is answered true.
  for (int step = 0; step < 20; ++step) {
    REQUIRE(h.checker.Tick().empty());
    h.clock.Advance(kStep);
  }
  REQUIRE(h.checker.Tick().empty());  // 2.0 s: second failure, third check sent
  REQUIRE(h.net.NumSent(kNodeA) == 3);
  // Drop the two timed-out checks; answer the live one.
  (void)h.net.Take(kNodeA);
  (void)h.net.Take(kNodeA);
  h.net.Answer(kNodeA, true);
  // From here, a full threshold of timeouts is needed again: checks at 3, 4, 5 s time out at
  // 4, 5, 6 s. Without the reset the node would die at 4 s.
  while (h.Elapsed() < Seconds(6)) {
    h.clock.Advance(kStep);
    CAPTURE(h.Elapsed());
    if (h.Elapsed() < Seconds(6)) REQUIRE(h.checker.Tick().empty());
  }
  CHECK(h.checker.Tick() == std::vector<NodeId>{kNodeA});
}

TEST_CASE("HealthChecker: re-registration starts a clean record", "[gcs][health]") {
  Harness h(Options(Seconds(1), Seconds(1), 3));
  h.checker.OnNodeRegistered(kNodeA, "a:1");
  for (int step = 0; step < 25; ++step) {  // failures at 1 s and 2 s
    REQUIRE(h.checker.Tick().empty());
    h.clock.Advance(kStep);
  }
  // 2.5 s: the raylet registers again (new address). An old check answering false now must
  // not count against the new registration.
  h.checker.OnNodeRegistered(kNodeA, "a:2");
  CHECK(h.checker.NumNodes() == 1);
  auto old_checks = h.net.pending();
  REQUIRE_FALSE(old_checks.empty());
  for (size_t i = 0; i < old_checks.size(); ++i) (void)h.net.Take(kNodeA);
  for (auto& c : old_checks) c.done(false);

  // New checks at 2.5, 3.5, 4.5 time out at 3.5, 4.5, 5.5.
  while (h.Elapsed() < Milliseconds(5500)) {
    CAPTURE(h.Elapsed());
    REQUIRE(h.checker.Tick().empty());
    h.clock.Advance(kStep);
  }
  auto pending = h.net.pending();
  REQUIRE_FALSE(pending.empty());
  CHECK(pending.back().address == "a:2");
  CHECK(h.checker.Tick() == std::vector<NodeId>{kNodeA});
}

TEST_CASE("HealthChecker: a late answer from an old registration is ignored", "[gcs][health]") {
  Harness h(Options(Seconds(1), Seconds(1), 3));
  h.checker.OnNodeRegistered(kNodeA, "a:1");
  REQUIRE(h.checker.Tick().empty());  // check #1 of the first registration
  auto first = h.net.Take(kNodeA);
  h.clock.Advance(kStep);
  h.checker.OnNodeRegistered(kNodeA, "a:1");  // 0.1 s
  REQUIRE(h.checker.Tick().empty());        // check #1 of the second registration
  REQUIRE(h.net.NumPending(kNodeA) == 1);
  h.clock.Advance(kStep);
  first.done(true);  // 0.2 s: must not be taken as the answer to the new check

  // The new check still times out at 1.1 s; three timeouts kill the node at 3.1 s.
  while (h.Elapsed() < Milliseconds(3100)) {
    CAPTURE(h.Elapsed());
    REQUIRE(h.checker.Tick().empty());
    h.clock.Advance(kStep);
  }
  CHECK(h.checker.Tick() == std::vector<NodeId>{kNodeA});
}

TEST_CASE("HealthChecker: an answer that arrives after its timeout is ignored", "[gcs][health]") {
  Harness h(Options(Seconds(1), Seconds(1), 3));
  h.checker.OnNodeRegistered(kNodeA, "a:1");
  REQUIRE(h.checker.Tick().empty());
  auto first = h.net.Take(kNodeA);
  h.clock.Advance(Seconds(1));
  REQUIRE(h.checker.Tick().empty());  // 1 s: first failure, second check sent
  h.clock.Advance(Milliseconds(200));
  first.done(true);  // late: neither clears the count nor answers the second check
  while (h.Elapsed() < Seconds(3)) {
    CAPTURE(h.Elapsed());
    REQUIRE(h.checker.Tick().empty());
    h.clock.Advance(kStep);
  }
  CHECK(h.checker.Tick() == std::vector<NodeId>{kNodeA});
}

TEST_CASE("HealthChecker: OnNodeRemoved stops checks", "[gcs][health]") {
  Harness h(Options(Seconds(1), Seconds(1), 2));
  h.checker.OnNodeRegistered(kNodeA, "a:1");
  h.checker.OnNodeRegistered(kNodeB, "b:1");
  REQUIRE(h.checker.Tick().empty());
  REQUIRE(h.net.NumSent(kNodeA) == 1);
  h.checker.OnNodeRemoved(kNodeA);
  h.checker.OnNodeRemoved(NodeId::FromRandom());  // unknown: ignored
  CHECK(h.checker.NumNodes() == 1);
  h.net.Answer(kNodeA, false);  // an answer for a removed node is harmless
  for (int step = 0; step < 100; ++step) {
    h.clock.Advance(kStep);
    for (const NodeId& dead : h.checker.Tick()) CHECK(dead != kNodeA);
    while (h.net.NumPending(kNodeB) > 0) h.net.Answer(kNodeB, true);
  }
  CHECK(h.net.NumSent(kNodeA) == 1);
  CHECK(h.net.NumSent(kNodeB) == 11);
  CHECK(h.checker.NumNodes() == 1);
}

TEST_CASE("HealthChecker: only the silent node of several dies", "[gcs][health]") {
  Harness h(Options(Seconds(1), Seconds(1), 3));
  h.checker.OnNodeRegistered(kNodeA, "a:1");
  h.checker.OnNodeRegistered(kNodeB, "b:1");
  std::vector<NodeId> all_dead;
  for (int step = 0; step <= 30; ++step) {
    for (const NodeId& n : h.checker.Tick()) all_dead.push_back(n);
    while (h.net.NumPending(kNodeA) > 0) h.net.Answer(kNodeA, true);
    h.clock.Advance(kStep);
  }
  CHECK(all_dead == std::vector<NodeId>{kNodeB});
  CHECK(h.checker.NumNodes() == 1);
}

// A transport that answers inside Check(): the checker must not hold its lock while calling.
class SynchronousTransport : public HealthCheckTransport {
 public:
  explicit SynchronousTransport(bool answer) : answer_(answer) {}
  void Check(const NodeId&, const std::string&, absl::Time, std::function<void(bool)> done) override {
    ++calls;
    done(answer_);
  }
  int calls = 0;

 private:
  bool answer_;
};

TEST_CASE("HealthChecker: a transport may answer synchronously", "[gcs][health]") {
  FakeClock clock;
  SECTION("healthy") {
    SynchronousTransport net(true);
    HealthChecker checker(clock, net, Options(Seconds(1), Seconds(1), 2));
    checker.OnNodeRegistered(kNodeA, "a:1");
    for (int i = 0; i < 5; ++i) {
      CHECK(checker.Tick().empty());
      clock.Advance(Seconds(1));
    }
    CHECK(net.calls == 5);
  }
  SECTION("failing") {
    SynchronousTransport net(false);
    HealthChecker checker(clock, net, Options(Seconds(1), Seconds(1), 2));
    checker.OnNodeRegistered(kNodeA, "a:1");
    CHECK(checker.Tick().empty());  // first failure
    clock.Advance(Seconds(1));
    CHECK(checker.Tick().empty());  // second failure, answered during this tick
    CHECK(checker.Tick() == std::vector<NodeId>{kNodeA});
  }
}

}  // namespace
}  // namespace shoal
