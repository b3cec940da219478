// The scheduling policy: an interface that chooses the node for one task or actor request, and
// the vocabulary it answers in. The raylet's lease manager and the GCS's actor placement are
// each given one (HybridSchedulingPolicy, hybrid_policy.h, by default; FakeSchedulingPolicy,
// fake_scheduling_policy.h, in tests), so a different policy can be swapped in without touching
// either.
//
// A request names its strategy with the proto message rpc::SchedulingStrategy, the one type every
// layer passes along (Python options and the C++ API convert to it once, at their edge). Adding a
// strategy touches the proto, the language options and a policy here, nothing in between.
//
// Threading: a policy is not synchronized; its owner calls it from one thread at a time.
// Errors: InvalidArgument for an invalid request; scheduling outcomes are decisions, not errors.
#pragma once

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "shoal/common.pb.h"
#include "src/common/ids.h"
#include "src/common/resources.h"
#include "src/scheduler/cluster_view.h"
#include "src/scheduler/label_selector.h"

namespace shoal {

// The strategies, built (for C++ callers and tests).
rpc::SchedulingStrategy DefaultStrategy();
rpc::SchedulingStrategy SpreadStrategy();
rpc::SchedulingStrategy NodeAffinityStrategy(const NodeId& node, bool soft);

// InvalidArgument, naming the problem, for a kind this scheduler does not know, a field the
// kind needs that is missing or malformed (NODE_AFFINITY without a valid, non-nil node id), or a
// malformed label_selector (naming its key; LabelSelector::Parse).
absl::Status ValidateStrategy(const rpc::SchedulingStrategy& strategy);

// Bytes that are equal exactly when two strategies are equal: the strategy's fields with the
// label selector appended in key order (a proto map's serialization is not canonical). For
// grouping requests by strategy (scheduling keys, the lease manager's queues).
std::string StrategyKey(const rpc::SchedulingStrategy& strategy);

struct SchedulingRequest {
  ResourceSet demand;
  rpc::SchedulingStrategy strategy;  // DEFAULT when left empty
};

struct SchedulingDecision {
  enum class Kind {
    kRunLocal,       // grant on the local node now
    kSpillback,      // send the request to `node`
    kQueue,          // feasible, but nothing can run it now: wait on the local node
    kInfeasible,     // no node the strategy allows could run it yet: wait (a node may join)
    kUnschedulable,  // the strategy can never be met (a hard affinity to a dead node): fail it
  };

  static SchedulingDecision RunLocal(const NodeId& local);
  static SchedulingDecision Spillback(const NodeId& target, bool available_now,
                                      std::string reason = "");
  static SchedulingDecision Queue(const NodeId& local, std::string reason);
  static SchedulingDecision Infeasible(std::string reason);
  static SchedulingDecision Unschedulable(std::string reason);

  Kind kind = Kind::kInfeasible;
  // kRunLocal, kQueue: the local node; kSpillback: the target; kInfeasible, kUnschedulable: nil.
  NodeId node;
  // True when, by the view, `node` can run the demand now (always for kRunLocal, never for
  // kQueue, kInfeasible or kUnschedulable). A kSpillback with false sends the request to wait
  // on `node`.
  bool available_now = false;
  // Why it does not run now (kQueue, kInfeasible, kUnschedulable, waiting kSpillback); empty
  // otherwise.
  std::string reason;

  // "run_local(ab12…)", "spillback(cd34…, now)", "queue(ab12…): why", "infeasible: why",
  // "unschedulable: why".
  std::string ToString() const;
  friend bool operator==(const SchedulingDecision&, const SchedulingDecision&) = default;
};

class SchedulingPolicy {
 public:
  virtual ~SchedulingPolicy() = default;

  // Decides where `request` goes, as seen from `local`. `local` need not be in the view: a
  // caller that is no node (the GCS) passes NodeId::Nil(), and then never gets kRunLocal or
  // kQueue. InvalidArgument for an invalid request (ValidateDemand, ValidateStrategy).
  //
  // Contract the callers rely on: an equal request against an unchanged view gets an equal
  // decision unless the earlier one ran or spilled it (so a caller may skip requests equal to
  // one that just had to wait); kRunLocal and kSpillback with available_now name a node whose
  // free resources hold the demand by the view.
  virtual absl::StatusOr<SchedulingDecision> Schedule(const ClusterResourceView& view,
                                                      const NodeId& local,
                                                      const SchedulingRequest& request) = 0;
};

}  // namespace shoal
