#include "src/scheduler/hybrid_policy.h"

#include <catch2/catch.hpp>

#include <map>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "tests/test_util/printers.h"
#include "tests/test_util/resource_helpers.h"
#include "tests/test_util/status_matchers.h"

namespace Catch {
template <>
struct StringMaker<shoal::SchedulingDecision> {
  static std::string convert(const shoal::SchedulingDecision& d) { return d.ToString(); }
};
}  // namespace Catch

namespace shoal {
namespace {

using test_util::RS;
using test_util::Id;
using test_util::FP;

using Kind = SchedulingDecision::Kind;

// A view built node by node: Add(n, total[, available]) and then tweak the returned entry.
class Cluster {
 public:
  NodeView& Add(int n, const std::map<std::string, double>& total,
                std::optional<std::map<std::string, double>> available = {}) {
    NodeView node;
    node.id = Id(n);
    node.total = RS(total);
    node.available = RS(available.value_or(total));
    return pending_[n] = node;
  }
  const ClusterResourceView& view() {
    for (auto& [n, node] : pending_) REQUIRE_OK(view_.AddOrUpdateNode(node));
    pending_.clear();
    return view_;
  }

 private:
  std::map<int, NodeView> pending_;
  ClusterResourceView view_;
};

SchedulingDecision Decide(SchedulingPolicy& policy, const ClusterResourceView& view, int local,
                          const std::map<std::string, double>& demand,
                          rpc::SchedulingStrategy strategy = DefaultStrategy()) {
  auto decision = policy.Schedule(view, Id(local), {RS(demand), strategy});
  REQUIRE_OK(decision);
  return *decision;
}

SchedulingDecision RunLocal(int n) { return SchedulingDecision::RunLocal(Id(n)); }
SchedulingDecision SpillNow(int n) { return SchedulingDecision::Spillback(Id(n), true); }

// ------------------------------------------------------------------ hybrid

TEST_CASE("Hybrid keeps work local while the local node is under the threshold",
          "[scheduler][hybrid]") {
  struct Case {
    double local_free_cpu;  // of 4
    SchedulingDecision want;
  };
  const std::vector<Case> cases = {
      {4, RunLocal(2)},     // idle
      {3, RunLocal(2)},     // 25% used
      {2.5, RunLocal(2)},   // 37.5%
      {2, SpillNow(1)},     // 50%: at the threshold, the idle peer wins
      {0.5, SpillNow(1)},   // cannot even fit
  };
  for (const Case& c : cases) {
    Cluster cluster;
    cluster.Add(1, {{"CPU", 4}});  // an idle peer that sorts before the local node
    cluster.Add(2, {{"CPU", 4}}, {{{"CPU", c.local_free_cpu}}});
    HybridSchedulingPolicy policy;
    INFO("local free CPU " << c.local_free_cpu);
    CHECK(Decide(policy, cluster.view(), 2, {{"CPU", 1}}) == c.want);
  }
}

TEST_CASE("Hybrid spills to the least-utilised node above the threshold", "[scheduler][hybrid]") {
  Cluster cluster;
  cluster.Add(1, {{"CPU", 10}}, {{{"CPU", 2.5}}});  // local, 75%
  cluster.Add(2, {{"CPU", 10}}, {{{"CPU", 4}}});    // 60%
  cluster.Add(3, {{"CPU", 10}}, {{{"CPU", 1}}});    // 90%
  cluster.Add(4, {{"CPU", 10}}, {{{"CPU", 4}}});    // 60%: ties with 2, higher id
  HybridSchedulingPolicy policy;
  CHECK(Decide(policy, cluster.view(), 1, {{"CPU", 1}}) == SpillNow(2));

  SECTION("a tie with the local node goes to the local node") {
    cluster.Add(3, {{"CPU", 10}}, {{{"CPU", 4}}});
    CHECK(Decide(policy, cluster.view(), 3, {{"CPU", 1}}) == RunLocal(3));
  }
  SECTION("below the threshold every node scores 0: the lowest id wins after local") {
    cluster.Add(2, {{"CPU", 10}}, {{{"CPU", 6}}});  // 40%
    cluster.Add(4, {{"CPU", 10}});                  // 0%
    CHECK(Decide(policy, cluster.view(), 1, {{"CPU", 1}}) == SpillNow(2));
  }
  SECTION("a threshold of 0 always picks the least utilised") {
    HybridSchedulingPolicy strict({.spread_threshold = 0});
    cluster.Add(2, {{"CPU", 10}}, {{{"CPU", 6}}});
    cluster.Add(4, {{"CPU", 10}});
    CHECK(Decide(strict, cluster.view(), 1, {{"CPU", 1}}) == SpillNow(4));
  }
}

TEST_CASE("Hybrid keeps CPU-only work off GPU nodes while a CPU node fits",
          "[scheduler][hybrid][gpu]") {
  Cluster cluster;
  cluster.Add(1, {{"CPU", 8}, {"GPU", 2}});  // local GPU node, idle
  cluster.Add(2, {{"CPU", 4}});
  HybridSchedulingPolicy policy;
  CHECK(Decide(policy, cluster.view(), 1, {{"CPU", 1}}) == SpillNow(2));

  SECTION("GPU nodes take CPU work once no CPU node fits now") {
    cluster.Add(2, {{"CPU", 4}}, {{{"CPU", 0.5}}});
    CHECK(Decide(policy, cluster.view(), 1, {{"CPU", 1}}) == RunLocal(1));
  }
  SECTION("not with avoid_gpu_nodes off") {
    HybridSchedulingPolicy keep_local({.avoid_gpu_nodes = false});
    CHECK(Decide(keep_local, cluster.view(), 1, {{"CPU", 1}}) == RunLocal(1));
  }
  SECTION("an empty demand stays local") {
    CHECK(Decide(policy, cluster.view(), 1, {}) == RunLocal(1));
  }
  SECTION("GPU work goes to a GPU node") {
    CHECK(Decide(policy, cluster.view(), 2, {{"GPU", 1}}) == SpillNow(1));
    CHECK(Decide(policy, cluster.view(), 1, {{"GPU", 1}, {"CPU", 2}}) == RunLocal(1));
  }
}

TEST_CASE("Hybrid queues feasible work and reports impossible work as infeasible",
          "[scheduler][hybrid][infeasible]") {
  Cluster cluster;
  cluster.Add(1, {{"CPU", 4}, {"GPU", 1}});
  cluster.Add(2, {{"CPU", 4}, {"GPU", 1}});
  HybridSchedulingPolicy policy;

  SchedulingDecision two_gpus = Decide(policy, cluster.view(), 1, {{"GPU", 2}});
  CHECK(two_gpus.kind == Kind::kInfeasible);
  CHECK_THAT(two_gpus.reason, Catch::Contains("{GPU: 2}"));

  // A two-GPU node joins: the demand becomes schedulable there.
  cluster.Add(3, {{"CPU", 4}, {"GPU", 2}});
  CHECK(Decide(policy, cluster.view(), 1, {{"GPU", 2}}) == SpillNow(3));

  SECTION("everything busy and the local node feasible: queue here") {
    cluster.Add(1, {{"CPU", 4}, {"GPU", 1}}, {{{"CPU", 4}}});
    cluster.Add(2, {{"CPU", 4}, {"GPU", 1}}, {{{"CPU", 4}}});
    cluster.Add(3, {{"CPU", 4}, {"GPU", 2}}, {{{"CPU", 4}}});
    SchedulingDecision d = Decide(policy, cluster.view(), 1, {{"GPU", 1}});
    CHECK(d.kind == Kind::kQueue);
    CHECK(d.node == Id(1));
    CHECK_FALSE(d.available_now);
    // Two GPUs only fit node 3, which is busy: wait there.
    d = Decide(policy, cluster.view(), 1, {{"GPU", 2}});
    CHECK(d.kind == Kind::kSpillback);
    CHECK(d.node == Id(3));
    CHECK_FALSE(d.available_now);
  }
}

TEST_CASE("Hybrid places fractional GPU demands on a device with that share free",
          "[scheduler][hybrid][gpu]") {
  Cluster cluster;
  NodeView& local = cluster.Add(1, {{"CPU", 4}, {"GPU", 1}}, {{{"CPU", 4}, {"GPU", 0.5}}});
  local.gpu_free = {FP(0.5)};
  HybridSchedulingPolicy policy;
  CHECK(Decide(policy, cluster.view(), 1, {{"GPU", 0.5}}) == RunLocal(1));
  CHECK(Decide(policy, cluster.view(), 1, {{"GPU", 0.25}}) == RunLocal(1));
  CHECK(Decide(policy, cluster.view(), 1, {{"GPU", 0.75}}).kind == Kind::kQueue);
  CHECK(Decide(policy, cluster.view(), 1, {{"GPU", 1}}).kind == Kind::kQueue);

  SECTION("shares split over devices do not add up") {
    NodeView& split = cluster.Add(1, {{"GPU", 2}}, {{{"GPU", 0.6}}});
    split.gpu_free = {FP(0.3), FP(0.3)};
    CHECK(Decide(policy, cluster.view(), 1, {{"GPU", 0.5}}).kind == Kind::kQueue);
    CHECK(Decide(policy, cluster.view(), 1, {{"GPU", 0.3}}) == RunLocal(1));
    cluster.Add(2, {{"GPU", 1}});
    CHECK(Decide(policy, cluster.view(), 1, {{"GPU", 0.5}}) == SpillNow(2));
  }
}

TEST_CASE("A scheduling-disabled head takes no work and makes nothing feasible",
          "[scheduler][hybrid][head]") {
  Cluster cluster;
  NodeView& head = cluster.Add(1, {{"CPU", 64}, {"GPU", 4}});
  head.is_head = true;
  head.scheduling_disabled = true;
  cluster.Add(2, {{"CPU", 2}});
  HybridSchedulingPolicy policy;
  CHECK(Decide(policy, cluster.view(), 1, {{"CPU", 1}}) == SpillNow(2));
  CHECK(Decide(policy, cluster.view(), 1, {}) == SpillNow(2));
  CHECK(Decide(policy, cluster.view(), 1, {{"CPU", 8}}).kind == Kind::kInfeasible);
  CHECK(Decide(policy, cluster.view(), 2, {{"GPU", 1}}).kind == Kind::kInfeasible);
  CHECK(Decide(policy, cluster.view(), 1, {{"GPU", 1}}, SpreadStrategy()).kind ==
        Kind::kInfeasible);

  SECTION("work that fits the worker but not now waits there") {
    cluster.Add(2, {{"CPU", 2}}, {{{"CPU", 0.5}}});
    SchedulingDecision d = Decide(policy, cluster.view(), 1, {{"CPU", 1}});
    CHECK(d.kind == Kind::kSpillback);
    CHECK(d.node == Id(2));
    CHECK_FALSE(d.available_now);
  }
}

TEST_CASE("Dead nodes and unknown local nodes are ignored", "[scheduler][hybrid]") {
  Cluster cluster;
  cluster.Add(1, {{"CPU", 4}}, {{{"CPU", 0}}});
  cluster.Add(2, {{"CPU", 16}}).alive = false;
  HybridSchedulingPolicy policy;
  CHECK(Decide(policy, cluster.view(), 1, {{"CPU", 1}}).kind == Kind::kQueue);
  CHECK(Decide(policy, cluster.view(), 1, {{"CPU", 8}}).kind == Kind::kInfeasible);
  // A local node the view does not know yet is simply not a candidate.
  CHECK(Decide(policy, cluster.view(), 9, {{"CPU", 1}}) ==
        SchedulingDecision::Spillback(Id(1), false, "no node has {CPU: 1} free now"));
}

// ------------------------------------------------------------------ spread

TEST_CASE("SPREAD sends N requests to N nodes without waiting for new reports",
          "[scheduler][spread]") {
  Cluster cluster;
  cluster.Add(1, {{"CPU", 4}});
  cluster.Add(2, {{"CPU", 4}, {"GPU", 1}});  // GPU nodes are not avoided when spreading
  cluster.Add(3, {{"CPU", 4}});
  cluster.Add(4, {{"CPU", 4}});
  const ClusterResourceView& view = cluster.view();
  HybridSchedulingPolicy policy;
  std::set<NodeId> used;
  for (int i = 0; i < 4; ++i) {
    SchedulingDecision d = Decide(policy, view, 1, {{"CPU", 1}}, SpreadStrategy());
    CHECK(d.available_now);
    used.insert(d.node);
  }
  CHECK(used.size() == 4);
  // The fifth starts the round again.
  CHECK(Decide(policy, view, 1, {{"CPU", 1}}, SpreadStrategy()) == RunLocal(1));

  SECTION("only nodes that fit now take part") {
    cluster.Add(2, {{"CPU", 4}}, {{{"CPU", 0}}});
    const ClusterResourceView& busy = cluster.view();
    std::vector<NodeId> order;
    for (int i = 0; i < 3; ++i) {
      order.push_back(Decide(policy, busy, 1, {{"CPU", 1}}, SpreadStrategy()).node);
    }
    CHECK(order == std::vector<NodeId>{Id(3), Id(4), Id(1)});
  }
  SECTION("with nothing free, queue here like hybrid") {
    for (int n = 1; n <= 4; ++n) cluster.Add(n, {{"CPU", 4}}, {{{"CPU", 0}}});
    CHECK(Decide(policy, cluster.view(), 1, {{"CPU", 1}}, SpreadStrategy()).kind == Kind::kQueue);
    CHECK(Decide(policy, cluster.view(), 1, {{"CPU", 5}}, SpreadStrategy()).kind ==
          Kind::kInfeasible);
  }
}

// ------------------------------------------------------------------ node affinity

TEST_CASE("Node affinity: the named node, or infeasible (hard) / hybrid (soft)",
          "[scheduler][affinity]") {
  Cluster cluster;
  cluster.Add(1, {{"CPU", 4}});
  cluster.Add(2, {{"CPU", 4}});
  cluster.Add(3, {{"CPU", 4}}, {{{"CPU", 0}}});  // busy
  cluster.Add(4, {{"CPU", 4}}).alive = false;
  cluster.Add(5, {{"CPU", 4}}).scheduling_disabled = true;
  const ClusterResourceView& view = cluster.view();
  HybridSchedulingPolicy policy;
  auto hard = [](int n) { return NodeAffinityStrategy(Id(n), false); };
  auto soft = [](int n) { return NodeAffinityStrategy(Id(n), true); };
  const std::map<std::string, double> one_cpu = {{"CPU", 1}};

  CHECK(Decide(policy, view, 1, one_cpu, hard(2)) == SpillNow(2));
  CHECK(Decide(policy, view, 1, one_cpu, hard(1)) == RunLocal(1));
  // Feasible but busy: wait on that node, hard or soft.
  for (bool is_soft : {false, true}) {
    SchedulingDecision d = Decide(policy, view, 1, one_cpu, NodeAffinityStrategy(Id(3), is_soft));
    CHECK(d.kind == Kind::kSpillback);
    CHECK(d.node == Id(3));
    CHECK_FALSE(d.available_now);
    CHECK(Decide(policy, view, 3, one_cpu, NodeAffinityStrategy(Id(3), is_soft)).kind ==
          Kind::kQueue);
  }

  // Hard: unschedulable when that cannot change (dead, disabled, too small), infeasible (wait)
  // for a node that may still join.
  struct Case {
    int target;
    std::map<std::string, double> demand;
    std::string reason;
    Kind hard_kind;
  };
  const std::vector<Case> unusable = {
      {4, one_cpu, "is dead", Kind::kUnschedulable},
      {9, one_cpu, "is unknown", Kind::kInfeasible},
      {5, one_cpu, "scheduling disabled", Kind::kUnschedulable},
      {2, {{"CPU", 8}}, "cannot hold {CPU: 8}", Kind::kUnschedulable},
  };
  for (const Case& c : unusable) {
    INFO("target " << c.target);
    SchedulingDecision d = Decide(policy, view, 1, c.demand, hard(c.target));
    CHECK(d.kind == c.hard_kind);
    CHECK(d.node.IsNil());
    CHECK_THAT(d.reason, Catch::Contains(c.reason));
    // Soft affinity falls back to hybrid.
    HybridSchedulingPolicy fresh;
    CHECK(Decide(policy, view, 1, c.demand, soft(c.target)) == Decide(fresh, view, 1, c.demand));
  }
  CHECK(Decide(policy, view, 1, one_cpu, soft(4)) == RunLocal(1));

  CHECK_CODE(policy.Schedule(view, Id(1), {RS(one_cpu), NodeAffinityStrategy(NodeId::Nil(), false)}),
             kInvalidArgument);
  rpc::SchedulingStrategy no_node;
  no_node.set_kind(rpc::SchedulingStrategy::NODE_AFFINITY);
  CHECK_CODE(policy.Schedule(view, Id(1), {RS(one_cpu), no_node}), kInvalidArgument);
  no_node.set_node_id("not hex");
  CHECK_CODE(policy.Schedule(view, Id(1), {RS(one_cpu), no_node}), kInvalidArgument);
}

// ------------------------------------------------------------------ validation and output

TEST_CASE("Schedule rejects a non-whole GPU amount above 1", "[scheduler][validation]") {
  Cluster cluster;
  cluster.Add(1, {{"CPU", 4}, {"GPU", 2}});
  const ClusterResourceView& view = cluster.view();
  HybridSchedulingPolicy policy;
  for (const rpc::SchedulingStrategy& strategy :
       {DefaultStrategy(), SpreadStrategy(), NodeAffinityStrategy(Id(1), true)}) {
    CHECK_CODE(policy.Schedule(view, Id(1), {RS({{"GPU", 1.5}}), strategy}), kInvalidArgument);
    CHECK_OK(policy.Schedule(view, Id(1), {RS({{"GPU", 2}}), strategy}));
    CHECK_OK(policy.Schedule(view, Id(1), {RS({{"GPU", 0.5}}), strategy}));
  }
}

TEST_CASE("SchedulingDecision prints what to do", "[scheduler]") {
  CHECK(RunLocal(1).ToString() == "run_local(01000000)");
  CHECK(SpillNow(2).ToString() == "spillback(02000000, now)");
  CHECK(SchedulingDecision::Spillback(Id(2), false, "busy").ToString() ==
        "spillback(02000000, wait): busy");
  CHECK(SchedulingDecision::Queue(Id(1), "busy").ToString() == "queue(01000000): busy");
  CHECK(SchedulingDecision::Infeasible("too big").ToString() == "infeasible: too big");
  CHECK(SchedulingDecision::Unschedulable("node dead").ToString() == "unschedulable: node dead");
}

TEST_CASE("ValidateStrategy accepts the known kinds and refuses malformed ones", "[scheduler][validation]") {
  CHECK_OK(ValidateStrategy(DefaultStrategy()));
  CHECK_OK(ValidateStrategy(SpreadStrategy()));
  CHECK_OK(ValidateStrategy(NodeAffinityStrategy(Id(3), true)));
  rpc::SchedulingStrategy s = NodeAffinityStrategy(Id(3), false);
  s.clear_node_id();
  CHECK_CODE(ValidateStrategy(s), kInvalidArgument);
  s.set_node_id("zz");
  CHECK_CODE(ValidateStrategy(s), kInvalidArgument);
  CHECK_CODE(ValidateStrategy(NodeAffinityStrategy(NodeId::Nil(), true)), kInvalidArgument);
  s.set_kind(static_cast<rpc::SchedulingStrategy::Kind>(42));
  CHECK_CODE(ValidateStrategy(s), kInvalidArgument);
}

// ------------------------------------------------------------------ randomized properties

// Draws one of `choices`.
template <typename T>
T Pick(std::mt19937& rng, const std::vector<T>& choices) {
  return choices[std::uniform_int_distribution<size_t>(0, choices.size() - 1)(rng)];
}

ResourceSet RandomShape(std::mt19937& rng) {
  return RS({{"CPU", Pick<double>(rng, {0, 0.5, 1, 1, 2, 4, 9})},
             {"GPU", Pick<double>(rng, {0, 0, 0, 0, 0, 0, 0.25, 0.5, 0.75, 1, 2, 3})},
             {"memory", Pick<double>(rng, {0, 0, 0, 0, 0, 4, 12})},
             {"X", Pick<double>(rng, {0, 0, 0, 0, 0, 0, 0, 1})}});
}

// ------------------------------------------------------------------ label selectors

rpc::SchedulingStrategy WithSelector(rpc::SchedulingStrategy strategy,
                                     const std::map<std::string, std::string>& selector) {
  strategy.mutable_label_selector()->insert(selector.begin(), selector.end());
  return strategy;
}

TEST_CASE("Hybrid considers only nodes matching the label selector", "[scheduler][labels]") {
  Cluster cluster;
  cluster.Add(1, {{"CPU", 4}}).labels = {{"zone", "a"}};
  cluster.Add(2, {{"CPU", 4}}).labels = {{"zone", "b"}};
  cluster.Add(3, {{"CPU", 8}}, {{{"CPU", 0}}}).labels = {{"zone", "c"}};  // busy
  cluster.Add(4, {{"CPU", 4}});                                           // no labels
  const ClusterResourceView& view = cluster.view();
  HybridSchedulingPolicy policy;
  const std::map<std::string, double> one_cpu = {{"CPU", 1}};

  CHECK(Decide(policy, view, 1, one_cpu, WithSelector(DefaultStrategy(), {{"zone", "b"}})) ==
        SpillNow(2));
  CHECK(Decide(policy, view, 1, one_cpu, WithSelector(DefaultStrategy(), {{"zone", "a"}})) ==
        RunLocal(1));
  // Not a: the local node is out; b and the unlabelled node match, and the lowest id wins.
  CHECK(Decide(policy, view, 1, one_cpu, WithSelector(DefaultStrategy(), {{"zone", "!a"}})) ==
        SpillNow(2));
  CHECK(Decide(policy, view, 2, one_cpu,
               WithSelector(DefaultStrategy(), {{"zone", "!in(a,b,c)"}})) == SpillNow(4));
  CHECK(Decide(policy, view, 4, one_cpu, WithSelector(DefaultStrategy(), {{"zone", "in(a,b)"}})) ==
        SpillNow(1));
  // An empty demand runs locally only when the local node matches.
  CHECK(Decide(policy, view, 1, {}, WithSelector(DefaultStrategy(), {{"zone", "b"}})) ==
        SpillNow(2));

  // Feasible only on a busy matching node: wait there, even though others are idle.
  SchedulingDecision busy =
      Decide(policy, view, 1, one_cpu, WithSelector(DefaultStrategy(), {{"zone", "c"}}));
  CHECK(busy.kind == Kind::kSpillback);
  CHECK(busy.node == Id(3));
  CHECK_FALSE(busy.available_now);
  CHECK(Decide(policy, view, 3, one_cpu, WithSelector(DefaultStrategy(), {{"zone", "c"}})).kind ==
        Kind::kQueue);
  // A matching node too small in total does not make it feasible; no matching node at all.
  SchedulingDecision too_big =
      Decide(policy, view, 1, {{"CPU", 6}}, WithSelector(DefaultStrategy(), {{"zone", "a"}}));
  CHECK(too_big.kind == Kind::kInfeasible);
  SchedulingDecision nobody =
      Decide(policy, view, 1, one_cpu, WithSelector(DefaultStrategy(), {{"zone", "d"}}));
  CHECK(nobody.kind == Kind::kInfeasible);
  CHECK_THAT(nobody.reason, Catch::Contains("{zone: d}"));
  CHECK_FALSE(view.Feasible(RS(one_cpu), *LabelSelector::Parse(Labels{{"zone", "d"}})));
  CHECK(view.Feasible(RS(one_cpu), *LabelSelector::Parse(Labels{{"zone", "c"}})));

  // A dead or scheduling-disabled matching node does not count.
  cluster.Add(5, {{"CPU", 4}}).labels = {{"zone", "d"}};
  cluster.view();
  NodeView& disabled = cluster.Add(6, {{"CPU", 4}});
  disabled.labels = {{"zone", "e"}};
  disabled.scheduling_disabled = true;
  NodeView& dead = cluster.Add(7, {{"CPU", 4}});
  dead.labels = {{"zone", "f"}};
  dead.alive = false;
  const ClusterResourceView& more = cluster.view();
  CHECK(Decide(policy, more, 1, one_cpu, WithSelector(DefaultStrategy(), {{"zone", "d"}})) ==
        SpillNow(5));
  CHECK(Decide(policy, more, 1, one_cpu, WithSelector(DefaultStrategy(), {{"zone", "e"}})).kind ==
        Kind::kInfeasible);
  CHECK(Decide(policy, more, 1, one_cpu, WithSelector(DefaultStrategy(), {{"zone", "f"}})).kind ==
        Kind::kInfeasible);
}

TEST_CASE("SPREAD round-robins over the matching nodes only", "[scheduler][labels][spread]") {
  Cluster cluster;
  for (int n = 1; n <= 4; ++n) {
    cluster.Add(n, {{"CPU", 4}}).labels = {{"zone", n % 2 == 0 ? "even" : "odd"}};
  }
  const ClusterResourceView& view = cluster.view();
  HybridSchedulingPolicy policy;
  std::vector<NodeId> order;
  for (int i = 0; i < 4; ++i) {
    SchedulingDecision d =
        Decide(policy, view, 1, {{"CPU", 1}}, WithSelector(SpreadStrategy(), {{"zone", "even"}}));
    CHECK(d.available_now);
    order.push_back(d.node);
  }
  CHECK(order == std::vector<NodeId>{Id(2), Id(4), Id(2), Id(4)});
  CHECK(Decide(policy, view, 1, {{"CPU", 1}}, WithSelector(SpreadStrategy(), {{"zone", "none"}}))
            .kind == Kind::kInfeasible);
  // Nothing free on the matching nodes: the local node does not match, so wait on one that does.
  cluster.Add(2, {{"CPU", 4}}, {{{"CPU", 0}}}).labels = {{"zone", "even"}};
  cluster.Add(4, {{"CPU", 4}}, {{{"CPU", 0}}}).labels = {{"zone", "even"}};
  SchedulingDecision wait = Decide(policy, cluster.view(), 1, {{"CPU", 1}},
                                   WithSelector(SpreadStrategy(), {{"zone", "even"}}));
  CHECK(wait.kind == Kind::kSpillback);
  CHECK_FALSE(wait.available_now);
  CHECK((wait.node == Id(2) || wait.node == Id(4)));
}

TEST_CASE("Node affinity with a label selector", "[scheduler][labels][affinity]") {
  Cluster cluster;
  cluster.Add(1, {{"CPU", 4}}).labels = {{"zone", "a"}};
  cluster.Add(2, {{"CPU", 4}}).labels = {{"zone", "b"}};
  const ClusterResourceView& view = cluster.view();
  HybridSchedulingPolicy policy;
  const std::map<std::string, double> one_cpu = {{"CPU", 1}};

  CHECK(Decide(policy, view, 1, one_cpu,
               WithSelector(NodeAffinityStrategy(Id(2), false), {{"zone", "b"}})) == SpillNow(2));
  // Hard affinity to a node that fails the selector can never be met.
  SchedulingDecision hard =
      Decide(policy, view, 1, one_cpu, WithSelector(NodeAffinityStrategy(Id(2), false), {{"zone", "a"}}));
  CHECK(hard.kind == Kind::kUnschedulable);
  CHECK_THAT(hard.reason, Catch::Contains("does not match label selector {zone: a}"));
  // Soft falls back to the matching nodes.
  CHECK(Decide(policy, view, 2, one_cpu,
               WithSelector(NodeAffinityStrategy(Id(2), true), {{"zone", "a"}})) == SpillNow(1));
  CHECK(Decide(policy, view, 1, one_cpu,
               WithSelector(NodeAffinityStrategy(Id(2), true), {{"zone", "c"}}))
            .kind == Kind::kInfeasible);
}

TEST_CASE("Malformed label selectors are InvalidArgument naming the key",
          "[scheduler][labels][validation]") {
  for (const auto& [key, value] : std::vector<std::pair<std::string, std::string>>{
           {"zone", "in()"}, {"zone", "!!a"}, {"-zone", "a"}, {"zone", "a b"}}) {
    for (rpc::SchedulingStrategy strategy :
         {DefaultStrategy(), SpreadStrategy(), NodeAffinityStrategy(Id(1), true)}) {
      absl::Status s = ValidateStrategy(WithSelector(strategy, {{key, value}}));
      CHECK(absl::IsInvalidArgument(s));
      CHECK_THAT(std::string(s.message()), Catch::Contains("`" + key + "`"));
    }
  }
  Cluster cluster;
  cluster.Add(1, {{"CPU", 4}});
  HybridSchedulingPolicy policy;
  CHECK_CODE(policy.Schedule(cluster.view(), Id(1),
                             {RS({{"CPU", 1}}), WithSelector(DefaultStrategy(), {{"zone", "in("}})}),
             kInvalidArgument);
}

TEST_CASE("StrategyKey is equal exactly for equal strategies", "[scheduler][labels]") {
  rpc::SchedulingStrategy a = WithSelector(DefaultStrategy(), {{"zone", "a"}, {"gpu", "!x"}});
  rpc::SchedulingStrategy b;
  (*b.mutable_label_selector())["gpu"] = "!x";
  (*b.mutable_label_selector())["zone"] = "a";
  CHECK(StrategyKey(a) == StrategyKey(b));
  CHECK(StrategyKey(DefaultStrategy()) == StrategyKey(rpc::SchedulingStrategy()));
  CHECK(StrategyKey(a) != StrategyKey(DefaultStrategy()));
  CHECK(StrategyKey(a) != StrategyKey(WithSelector(DefaultStrategy(), {{"zone", "a"}})));
  CHECK(StrategyKey(a) != StrategyKey(WithSelector(SpreadStrategy(), {{"zone", "a"}, {"gpu", "!x"}})));
  CHECK(StrategyKey(WithSelector(DefaultStrategy(), {{"ab", "c"}})) !=
        StrategyKey(WithSelector(DefaultStrategy(), {{"a", "bc"}})));
}

TEST_CASE("Property: decisions respect availability, feasibility and flags",
          "[scheduler][property]") {
  std::mt19937 rng(20240611);
  HybridSchedulingPolicy policy;
  int run_now = 0, queued = 0, waiting = 0, infeasible = 0;
  for (int iteration = 0; iteration < 5000; ++iteration) {
    // A random cluster whose free resources come from real allocations.
    ClusterResourceView view;
    std::map<NodeId, NodeResources> exact;  // for nodes whose devices the view knows
    const int nodes = std::uniform_int_distribution<int>(1, 7)(rng);
    for (int n = 1; n <= nodes; ++n) {
      NodeView node;
      node.id = Id(n);
      node.total = RS({{"CPU", Pick<double>(rng, {0, 1, 2, 4, 8})},
                       {"GPU", Pick<double>(rng, {0, 0, 1, 2, 4})},
                       {"memory", Pick<double>(rng, {0, 8, 16})},
                       {"X", Pick<double>(rng, {0, 0, 2})}});
      NodeResources resources(node.total);
      for (int k = std::uniform_int_distribution<int>(0, 8)(rng); k > 0; --k) {
        (void)resources.Allocate(RandomShape(rng));
      }
      node.available = resources.Available();
      if (rng() % 2 == 0) {
        if (const ResourceInstances* gpus = resources.Instances(kGPU)) node.gpu_free = gpus->free();
        exact.emplace(node.id, resources);
      }
      node.alive = rng() % 8 != 0;
      node.scheduling_disabled = rng() % 8 == 0;
      REQUIRE_OK(view.AddOrUpdateNode(node));
    }
    const NodeId local = Id(std::uniform_int_distribution<int>(1, nodes + 1)(rng));
    const ResourceSet demand = RandomShape(rng);
    rpc::SchedulingStrategy strategy = DefaultStrategy();
    switch (rng() % 4) {
      case 1: strategy = SpreadStrategy(); break;
      case 2: {
        const NodeId target = Id(std::uniform_int_distribution<int>(1, nodes + 1)(rng));
        strategy = NodeAffinityStrategy(target, /*soft=*/rng() % 2 == 0);
        break;
      }
      default: break;
    }

    // The oracle: plain containment for totals; for free resources the raylet's own allocator
    // where the view knows the devices, else the sums.
    auto feasible_on = [&](const NodeView& node) {
      return node.Schedulable() && node.total.Contains(demand);
    };
    auto available_on = [&](const NodeView& node) {
      if (!node.Schedulable()) return false;
      auto it = exact.find(node.id);
      if (it == exact.end()) return node.available.Contains(demand);
      NodeResources trial = it->second;
      return trial.Allocate(demand).ok();
    };
    bool any_feasible = false, any_available = false, cpu_node_available = false;
    for (const auto& [id, node] : view.nodes()) {
      any_feasible |= feasible_on(node);
      any_available |= available_on(node);
      cpu_node_available |= available_on(node) && !node.HasGpus();
    }

    auto result = policy.Schedule(view, local, {demand, strategy});
    REQUIRE_OK(result);
    const SchedulingDecision& d = *result;
    INFO("iteration " << iteration << " demand " << demand.ToString() << " -> " << d.ToString());
    const NodeView* chosen = view.Find(d.node);

    switch (d.kind) {
      case Kind::kRunLocal:
        CHECK(d.node == local);
        [[fallthrough]];
      case Kind::kSpillback:
        REQUIRE(chosen != nullptr);
        CHECK(feasible_on(*chosen));
        CHECK(d.available_now == available_on(*chosen));
        if (d.kind == Kind::kSpillback) CHECK(d.node != local);
        (d.available_now ? run_now : waiting)++;
        break;
      case Kind::kQueue:
        REQUIRE(chosen != nullptr);
        CHECK(d.node == local);
        CHECK(feasible_on(*chosen));
        CHECK_FALSE(available_on(*chosen));
        ++queued;
        break;
      case Kind::kInfeasible:
      case Kind::kUnschedulable:
        CHECK(d.node.IsNil());
        ++infeasible;
        break;
    }

    const bool affinity = strategy.kind() == rpc::SchedulingStrategy::NODE_AFFINITY;
    if (affinity && !strategy.soft()) {
      const NodeView* target = view.Find(*NodeId::FromHex(strategy.node_id()));
      const bool usable = target != nullptr && feasible_on(*target);
      // Unusable: waits for an unknown node, fails for one that cannot change.
      CHECK((d.kind == Kind::kInfeasible) == (target == nullptr));
      CHECK((d.kind == Kind::kUnschedulable) == (target != nullptr && !usable));
      if (usable) CHECK(d.node == target->id);
      continue;
    }
    CHECK(d.kind != Kind::kUnschedulable);
    CHECK((d.kind == Kind::kInfeasible) == !any_feasible);
    if (affinity) continue;
    // Default and spread run now whenever some node can.
    CHECK(d.available_now == any_available);
    if (d.available_now && strategy.kind() == rpc::SchedulingStrategy::DEFAULT &&
        !demand.IsEmpty() && demand.Get(kGPU).IsZero() && cpu_node_available) {
      CHECK_FALSE(chosen->HasGpus());
    }
  }
  INFO("run now " << run_now << ", queued " << queued << ", waiting " << waiting
                  << ", infeasible " << infeasible);
  // The generator reaches every outcome.
  CHECK(run_now > 1000);
  CHECK(queued > 80);
  CHECK(waiting > 200);
  CHECK(infeasible > 1000);
}

}  // namespace
}  // namespace shoal
