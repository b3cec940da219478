// A SchedulingPolicy that records every request and answers what the test tells it. For tests
// of the code that is given a policy (the lease manager, the GCS's actor placement).
// Threading: as SchedulingPolicy (one caller at a time).
#pragma once

#include <functional>
#include <utility>
#include <vector>

#include "src/scheduler/scheduling_policy.h"

namespace shoal {

class FakeSchedulingPolicy : public SchedulingPolicy {
 public:
  using Decide = std::function<absl::StatusOr<SchedulingDecision>(
      const ClusterResourceView& view, const NodeId& local, const SchedulingRequest& request)>;

  struct Call {
    NodeId local;
    SchedulingRequest request;
    size_t view_size = 0;  // nodes in the view, dead ones included
  };

  // Answers `decide`'s decision; without one, every request is infeasible ("fake policy").
  explicit FakeSchedulingPolicy(Decide decide = nullptr) : decide_(std::move(decide)) {}

  absl::StatusOr<SchedulingDecision> Schedule(const ClusterResourceView& view, const NodeId& local,
                                              const SchedulingRequest& request) override {
    calls_.push_back(Call{.local = local, .request = request, .view_size = view.size()});
    if (decide_) return decide_(view, local, request);
    return SchedulingDecision::Infeasible("fake policy");
  }

  void set_decide(Decide decide) { decide_ = std::move(decide); }
  // Every call so far, in order.
  const std::vector<Call>& calls() const { return calls_; }

 private:
  Decide decide_;
  std::vector<Call> calls_;
};

}  // namespace shoal
