#include "src/gcs/health_checker.h"

namespace shoal {

HealthChecker::HealthChecker(const Clock& clock, HealthCheckTransport& transport,
                             HealthCheckOptions options)
    : clock_(clock), transport_(transport), options_(options) {}

void HealthChecker::OnNodeRegistered(const NodeId& node, const std::string& address) {
  absl::MutexLock lock(&mu_);
  NodeState& state = nodes_[node];
  state = NodeState{};
  state.address = address;
  state.generation = next_generation_++;
  state.next_check = clock_.Now();
}

void HealthChecker::OnNodeRemoved(const NodeId& node) {
  absl::MutexLock lock(&mu_);
  nodes_.erase(node);
}

size_t HealthChecker::NumNodes() const {
  absl::MutexLock lock(&mu_);
  return nodes_.size();
}

std::vector<NodeId> HealthChecker::Tick() {
  struct Send {
    NodeId node;
    std::string address;
    uint64_t generation, seq;
  };
  std::vector<Send> sends;
  std::vector<NodeId> dead;
  const absl::Time now = clock_.Now();
  {
    absl::MutexLock lock(&mu_);
    for (auto& [node, state] : nodes_) {
      if (state.in_flight && now - state.sent_at >= options_.timeout) {
        state.in_flight = false;
        state.failures++;
        state.next_check = state.sent_at + options_.period;
      }
      if (state.failures >= options_.failure_threshold) {
        dead.push_back(node);
        continue;
      }
      if (!state.in_flight && now >= state.next_check) {
        state.in_flight = true;
        state.sent_at = now;
        sends.push_back({node, state.address, state.generation, ++state.check_seq});
      }
    }
    for (const NodeId& node : dead) nodes_.erase(node);
  }
  // Outside the lock: a transport may answer synchronously.
  for (const Send& s : sends) {
    transport_.Check(s.node, s.address, now + options_.timeout,
                     [this, node = s.node, gen = s.generation, seq = s.seq](bool ok) {
                       OnResult(node, gen, seq, ok);
                     });
  }
  return dead;
}

void HealthChecker::OnResult(const NodeId& node, uint64_t generation, uint64_t seq, bool ok) {
  absl::MutexLock lock(&mu_);
  auto it = nodes_.find(node);
  if (it == nodes_.end()) return;
  NodeState& state = it->second;
  if (state.generation != generation || state.check_seq != seq || !state.in_flight) return;
  state.in_flight = false;
  state.next_check = state.sent_at + options_.period;
  state.failures = ok ? 0 : state.failures + 1;
}

}  // namespace shoal
