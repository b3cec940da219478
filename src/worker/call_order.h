// The order in which an actor's worker runs method calls: each caller numbers its calls from 0
// (per actor incarnation) and the worker runs one caller's calls in that order, whatever order
// the pushes arrive in. A number below the next expected one is a call sent again: it runs at
// once. A call whose predecessor never comes (its push broke and the caller did not send it
// again) runs after `gap_timeout` instead of waiting forever.
// Threading: none; the owner locks (core_worker.cc holds it under its task mutex).
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/time/time.h"

namespace shoal {

template <typename Call>
class CallOrder {
 public:
  explicit CallOrder(absl::Duration gap_timeout) : gap_timeout_(gap_timeout) {}

  // Takes a call; answers the calls that may run now, in order.
  std::vector<Call> Add(const std::string& caller, int64_t seq, Call call, absl::Time now) {
    std::vector<Call> ready;
    Queue& q = callers_[caller];
    if (seq < q.next) {
      ready.push_back(std::move(call));
      return ready;
    }
    if (q.held.emplace(seq, std::move(call)).second) ++held_;
    Drain(q, ready);
    q.gap_since = q.held.empty() ? absl::InfiniteFuture() : std::min(q.gap_since, now);
    return ready;
  }

  // Gives up waiting for missing numbers held longer than the gap timeout; answers the calls
  // that may run now, in order.
  std::vector<Call> ReleaseGaps(absl::Time now) {
    std::vector<Call> ready;
    for (auto& [caller, q] : callers_) {
      if (q.held.empty() || now - q.gap_since < gap_timeout_) continue;
      q.next = q.held.begin()->first;
      Drain(q, ready);
      q.gap_since = q.held.empty() ? absl::InfiniteFuture() : now;
    }
    return ready;
  }

  // True while a call waits for a missing number (ReleaseGaps has work).
  bool Holding() const { return held_ > 0; }

  // Every call still held (at exit), and forgets them.
  std::vector<Call> TakeAll() {
    std::vector<Call> all;
    for (auto& [caller, q] : callers_) {
      for (auto& [seq, call] : q.held) all.push_back(std::move(call));
      q.held.clear();
    }
    held_ = 0;
    return all;
  }

 private:
  struct Queue {
    int64_t next = 0;
    std::map<int64_t, Call> held;
    absl::Time gap_since = absl::InfiniteFuture();
  };
  void Drain(Queue& q, std::vector<Call>& ready) {
    while (!q.held.empty() && q.held.begin()->first == q.next) {
      ready.push_back(std::move(q.held.begin()->second));
      q.held.erase(q.held.begin());
      --held_;
      ++q.next;
    }
  }

  const absl::Duration gap_timeout_;
  absl::flat_hash_map<std::string, Queue> callers_;
  size_t held_ = 0;  // calls in every caller's `held`
};

}  // namespace shoal
