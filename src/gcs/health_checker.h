// Decides which raylets are dead by checking each one periodically.
//
// Every registered node is checked once per `period`; a check that fails or gets no answer
// within `timeout` is a failure, a success clears the count, and a node with
// `failure_threshold` failures in a row is declared dead and no longer checked.
// Logic only: time comes from the Clock and checks go out through the transport, so a test
// drives it with a FakeClock and a fake transport and calls Tick() by hand.
// Threading: any thread; transport callbacks may run on any thread.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "src/common/clock.h"
#include "src/common/ids.h"

namespace shoal {

class HealthCheckTransport {
 public:
  virtual ~HealthCheckTransport() = default;
  // Starts one check of the node at `address`; calls done(true) if it answered in time,
  // done(false) otherwise. `done` must be called at most once, from any thread.
  virtual void Check(const NodeId& node, const std::string& address, absl::Time deadline,
                     std::function<void(bool ok)> done) = 0;
};

struct HealthCheckOptions {
  absl::Duration period = absl::Seconds(1);
  absl::Duration timeout = absl::Seconds(1);
  int failure_threshold = 5;
};

class HealthChecker {
 public:
  HealthChecker(const Clock& clock, HealthCheckTransport& transport, HealthCheckOptions options);
  HealthChecker(const HealthChecker&) = delete;
  HealthChecker& operator=(const HealthChecker&) = delete;

  // Starts checking `node` with a clean record (again, if it was already known).
  void OnNodeRegistered(const NodeId& node, const std::string& address);
  // Stops checking `node`. Unknown nodes are ignored.
  void OnNodeRemoved(const NodeId& node);

  // Counts overdue checks as failures, starts the checks that are due, and answers the nodes
  // that have just reached the failure threshold.
  std::vector<NodeId> Tick();

  size_t NumNodes() const;

 private:
  struct NodeState {
    std::string address;
    uint64_t generation = 0;  // changes on re-registration, so late answers are dropped
    uint64_t check_seq = 0;   // which check is in flight
    bool in_flight = false;
    absl::Time sent_at;
    absl::Time next_check;
    int failures = 0;
  };
  void OnResult(const NodeId& node, uint64_t generation, uint64_t seq, bool ok);

  const Clock& clock_;
  HealthCheckTransport& transport_;
  const HealthCheckOptions options_;
  mutable absl::Mutex mu_;
  absl::flat_hash_map<NodeId, NodeState> nodes_ ABSL_GUARDED_BY(mu_);
  uint64_t next_generation_ ABSL_GUARDED_BY(mu_) = 1;
};

}  // namespace shoal
