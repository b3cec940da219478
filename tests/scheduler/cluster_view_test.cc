#include "src/scheduler/cluster_view.h"

#include <catch2/catch.hpp>

#include <map>
#include <string>
#include <utility>
#include <vector>

#include "tests/test_util/printers.h"
#include "tests/test_util/resource_helpers.h"
#include "tests/test_util/status_matchers.h"

namespace shoal {
namespace {

using test_util::RS;
using test_util::Id;
using test_util::FP;

NodeView Node(int n, const ResourceSet& total, std::optional<ResourceSet> available = {}) {
  NodeView node;
  node.id = Id(n);
  node.total = total;
  node.available = available.value_or(total);
  return node;
}

// ------------------------------------------------------------------ membership

TEST_CASE("ClusterResourceView adds, replaces, finds and orders nodes", "[scheduler][view]") {
  ClusterResourceView view;
  REQUIRE_OK(view.AddOrUpdateNode(Node(3, RS({{"CPU", 4}}))));
  REQUIRE_OK(view.AddOrUpdateNode(Node(1, RS({{"CPU", 2}}))));
  REQUIRE_OK(view.AddOrUpdateNode(Node(2, RS({{"CPU", 8}}))));
  REQUIRE(view.size() == 3);

  std::vector<NodeId> order;
  for (const auto& [id, node] : view.nodes()) order.push_back(id);
  CHECK(order == std::vector<NodeId>{Id(1), Id(2), Id(3)});

  REQUIRE(view.Find(Id(2)) != nullptr);
  CHECK(view.Find(Id(2))->total == RS({{"CPU", 8}}));
  CHECK(view.Find(Id(9)) == nullptr);

  // Replacing keeps one entry with the new contents.
  NodeView bigger = Node(2, RS({{"CPU", 16}}), RS({{"CPU", 3}}));
  bigger.labels["zone"] = "b";
  REQUIRE_OK(view.AddOrUpdateNode(bigger));
  CHECK(view.size() == 3);
  CHECK(view.Find(Id(2))->available == RS({{"CPU", 3}}));
  CHECK(view.Find(Id(2))->labels.at("zone") == "b");

  REQUIRE_OK(view.RemoveNode(Id(1)));
  CHECK(view.Find(Id(1)) == nullptr);
  CHECK(view.size() == 2);
  CHECK_CODE(view.RemoveNode(Id(1)), kNotFound);
}

TEST_CASE("MarkDead keeps the entry but the node takes no work", "[scheduler][view]") {
  ClusterResourceView view;
  REQUIRE_OK(view.AddOrUpdateNode(Node(1, RS({{"CPU", 4}}))));
  CHECK(view.Feasible(RS({{"CPU", 4}})));
  REQUIRE_OK(view.MarkDead(Id(1)));
  REQUIRE_OK(view.MarkDead(Id(1)));  // idempotent
  REQUIRE(view.Find(Id(1)) != nullptr);
  CHECK_FALSE(view.Find(Id(1))->alive);
  CHECK_FALSE(view.Find(Id(1))->Schedulable());
  CHECK_FALSE(view.Feasible(RS({{"CPU", 1}})));
  CHECK_CODE(view.MarkDead(Id(2)), kNotFound);
  // A late report from the dead node is refused and changes nothing.
  CHECK_CODE(view.UpdateAvailable(Id(1), RS({{"CPU", 1}})), kFailedPrecondition);
  CHECK(view.Find(Id(1))->available == RS({{"CPU", 4}}));
}

TEST_CASE("ClusterResourceView rejects inconsistent nodes without changing", "[scheduler][view]") {
  ClusterResourceView view;
  NodeView nil = Node(1, RS({{"CPU", 1}}));
  nil.id = NodeId::Nil();
  CHECK_CODE(view.AddOrUpdateNode(nil), kInvalidArgument);
  CHECK_CODE(view.AddOrUpdateNode(Node(1, RS({{"GPU", 1.5}}))), kInvalidArgument);
  CHECK_CODE(view.AddOrUpdateNode(Node(1, RS({{"CPU", 2}}), RS({{"CPU", 3}}))), kInvalidArgument);
  CHECK_CODE(view.AddOrUpdateNode(Node(1, RS({{"CPU", 2}}), RS({{"TPU", 1}}))), kInvalidArgument);

  NodeView gpus = Node(1, RS({{"GPU", 2}}), RS({{"GPU", 1.5}}));
  gpus.gpu_free = {FP(1), FP(0.5)};
  REQUIRE_OK(view.AddOrUpdateNode(gpus));
  gpus.gpu_free = {FP(1)};  // wrong number of devices
  CHECK_CODE(view.AddOrUpdateNode(gpus), kInvalidArgument);
  gpus.gpu_free = {FP(1), FP(0.25)};  // does not sum to the available 1.5
  CHECK_CODE(view.AddOrUpdateNode(gpus), kInvalidArgument);
  gpus.available = RS({{"GPU", 2}});
  gpus.gpu_free = {FP(1.5), FP(0.5)};  // a device above 1
  CHECK_CODE(view.AddOrUpdateNode(gpus), kInvalidArgument);
  CHECK(view.size() == 1);
  CHECK(view.Find(Id(1))->available == RS({{"GPU", 1.5}}));
}

TEST_CASE("UpdateAvailable replaces free resources and validates them", "[scheduler][view]") {
  ClusterResourceView view;
  REQUIRE_OK(view.AddOrUpdateNode(Node(1, RS({{"CPU", 4}, {"GPU", 2}}))));
  REQUIRE_OK(view.UpdateAvailable(Id(1), RS({{"CPU", 1}, {"GPU", 0.5}})));
  CHECK(view.Find(Id(1))->available == RS({{"CPU", 1}, {"GPU", 0.5}}));
  CHECK(view.Find(Id(1))->gpu_free.empty());

  CHECK_CODE(view.UpdateAvailable(Id(2), RS({})), kNotFound);
  CHECK_CODE(view.UpdateAvailable(Id(1), RS({{"CPU", 5}})), kInvalidArgument);
  CHECK_CODE(view.UpdateAvailable(Id(1), RS({{"GPU", 1}}), {FP(0.5), FP(0.25)}), kInvalidArgument);
  CHECK(view.Find(Id(1))->available == RS({{"CPU", 1}, {"GPU", 0.5}}));

  SECTION("from the raylet's own NodeResources, per device") {
    NodeResources local(RS({{"CPU", 4}, {"GPU", 2}}));
    REQUIRE_OK(local.Allocate(RS({{"CPU", 1}, {"GPU", 0.5}})));
    REQUIRE_OK(view.UpdateAvailable(Id(1), local));
    CHECK(view.Find(Id(1))->available == RS({{"CPU", 3}, {"GPU", 1.5}}));
    CHECK(view.Find(Id(1))->gpu_free == std::vector<FixedPoint>{FP(0.5), FP(1)});

    NodeResources other(RS({{"CPU", 8}}));
    CHECK_CODE(view.UpdateAvailable(Id(1), other), kInvalidArgument);
    CHECK_CODE(view.UpdateAvailable(Id(7), other), kNotFound);
  }
}

// ------------------------------------------------------------------ feasibility and fit

TEST_CASE("Feasible asks whether some alive schedulable node's total holds the demand",
          "[scheduler][view]") {
  ClusterResourceView view;
  NodeView head = Node(1, RS({{"CPU", 64}, {"GPU", 8}}));
  head.is_head = true;
  head.scheduling_disabled = true;
  REQUIRE_OK(view.AddOrUpdateNode(head));
  // Busy nodes: feasibility looks at totals, not at what is free.
  REQUIRE_OK(view.AddOrUpdateNode(Node(2, RS({{"CPU", 4}, {"GPU", 1}}), RS({}))));
  REQUIRE_OK(view.AddOrUpdateNode(Node(3, RS({{"CPU", 8}, {"TPU", 2}}), RS({{"CPU", 1}}))));
  NodeView dead = Node(4, RS({{"CPU", 32}, {"GPU", 4}}));
  dead.alive = false;
  REQUIRE_OK(view.AddOrUpdateNode(dead));

  struct Case {
    std::map<std::string, double> demand;
    bool feasible;
  };
  const std::vector<Case> cases = {
      {{}, true},
      {{{"CPU", 8}}, true},
      {{{"CPU", 8.0001}}, false},
      {{{"GPU", 1}}, true},
      {{{"GPU", 0.5}}, true},
      {{{"GPU", 2}}, false},          // only the disabled head and a dead node have 2
      {{{"CPU", 5}, {"GPU", 1}}, false},  // no single node has both
      {{{"TPU", 2}, {"CPU", 1}}, true},
      {{{"accel", 1}}, false},
  };
  for (const Case& c : cases) {
    INFO("demand " << RS(c.demand).ToString());
    CHECK(view.Feasible(RS(c.demand)) == c.feasible);
  }
  CHECK_FALSE(view.Feasible(RS({{"GPU", 1.5}})));  // no node can hold a non-whole amount above 1
}

TEST_CASE("IsAvailable places GPU shares per device when the devices are known",
          "[scheduler][view]") {
  NodeView node = Node(1, RS({{"CPU", 4}, {"GPU", 2}}), RS({{"CPU", 4}, {"GPU", 0.6}}));
  // Only the sum is known: judged on the sum.
  CHECK(node.IsAvailable(RS({{"GPU", 0.5}})));
  // Known per device, 0.3 + 0.3: no device has 0.5.
  node.gpu_free = {FP(0.3), FP(0.3)};
  CHECK_FALSE(node.IsAvailable(RS({{"GPU", 0.5}})));
  CHECK(node.IsAvailable(RS({{"GPU", 0.3}})));

  node.available = RS({{"CPU", 4}, {"GPU", 1.5}});
  node.gpu_free = {FP(0.5), FP(1)};
  CHECK(node.IsAvailable(RS({{"GPU", 1}})));
  CHECK(node.IsAvailable(RS({{"GPU", 0.5}})));
  CHECK_FALSE(node.IsAvailable(RS({{"GPU", 2}})));  // one whole device free, not two
  CHECK_FALSE(node.IsAvailable(RS({{"GPU", 1.5}})));
  CHECK_FALSE(node.IsAvailable(RS({{"CPU", 5}})));
  CHECK(node.IsFeasible(RS({{"GPU", 2}, {"CPU", 4}})));
}

TEST_CASE("NodeRoom takes demands one after another, best fit on GPU devices",
          "[scheduler][view]") {
  NodeView node = Node(1, RS({{"CPU", 3}, {"GPU", 2}}));
  NodeRoom room = NodeRoom::Total(node);
  CHECK(room.Take(RS({{"GPU", 0.5}, {"CPU", 1}})));  // device 0
  CHECK(room.Take(RS({{"GPU", 0.5}, {"CPU", 1}})));  // device 0 again (best fit)
  CHECK(room.Fits(RS({{"GPU", 1}})));                // device 1 still whole
  CHECK(room.Take(RS({{"GPU", 0.75}})));             // device 1
  CHECK_FALSE(room.Fits(RS({{"GPU", 0.5}})));        // 0.25 left
  CHECK_FALSE(room.Take(RS({{"GPU", 0.25}, {"CPU", 2}})));  // CPU short: nothing taken
  CHECK(room.Take(RS({{"GPU", 0.25}, {"CPU", 1}})));
  CHECK_FALSE(room.Fits(RS({{"CPU", 0.0001}})));
  CHECK(room.Fits(RS({})));
}

TEST_CASE("Utilization is the highest used share of CPU, GPU, memory, object store",
          "[scheduler][view]") {
  struct Case {
    std::map<std::string, double> total, available;
    double want;
  };
  const std::vector<Case> cases = {
      {{{"CPU", 4}}, {{"CPU", 4}}, 0.0},
      {{{"CPU", 4}}, {{"CPU", 1}}, 0.75},
      {{{"CPU", 4}}, {}, 1.0},
      {{{"CPU", 4}, {"GPU", 2}}, {{"CPU", 3}, {"GPU", 1}}, 0.5},
      {{{"CPU", 4}, {"memory", 1000}}, {{"CPU", 4}, {"memory", 100}}, 0.9},
      {{{"CPU", 4}, {"object_store_memory", 100}}, {{"CPU", 2}, {"object_store_memory", 80}}, 0.5},
      // Custom and node:<ip> resources do not count.
      {{{"CPU", 4}, {"TPU", 4}, {"node:10.0.0.1", 1}}, {{"CPU", 4}}, 0.0},
      {{{"TPU", 4}}, {}, 0.0},
      {{}, {}, 0.0},
  };
  for (const Case& c : cases) {
    NodeView node = Node(1, RS(c.total), RS(c.available));
    INFO(node.total.ToString() << " free " << node.available.ToString());
    CHECK(node.Utilization() == Approx(c.want));
  }
}

// ------------------------------------------------------------------ demand summary

TEST_CASE("SummarizeDemand merges shapes and marks the infeasible ones", "[scheduler][demand]") {
  ClusterResourceView view;
  REQUIRE_OK(view.AddOrUpdateNode(Node(1, RS({{"CPU", 4}, {"GPU", 1}}), RS({}))));
  REQUIRE_OK(view.AddOrUpdateNode(Node(2, RS({{"CPU", 4}, {"GPU", 1}}))));

  const std::vector<QueuedDemand> queued = {
      {RS({{"GPU", 2}}), 1},
      {RS({{"CPU", 1}}), 3},
      {RS({{"GPU", 2}}), 1},
      {RS({{"TPU", 1}}), 0},  // nothing queued: dropped
      {RS({{"CPU", 1}, {"GPU", 0.5}}), 2},
      {RS({{"GPU", 1.5}}), 1},  // invalid shape: can never run
  };
  std::vector<DemandSummary> summary = SummarizeDemand(queued, view);
  const std::vector<DemandSummary> want = {
      {RS({{"CPU", 1}}), 3, false},
      {RS({{"CPU", 1}, {"GPU", 0.5}}), 2, false},
      {RS({{"GPU", 1.5}}), 1, true},
      {RS({{"GPU", 2}}), 2, true},
  };
  REQUIRE(summary.size() == want.size());
  for (size_t i = 0; i < want.size(); ++i) {
    INFO("entry " << i << ": " << summary[i].shape.ToString());
    CHECK(summary[i] == want[i]);
  }

  // The order of the input does not matter.
  std::vector<QueuedDemand> reversed(queued.rbegin(), queued.rend());
  CHECK(SummarizeDemand(reversed, view) == summary);

  // A node with two GPUs joins: {GPU: 2} becomes pending rather than infeasible.
  REQUIRE_OK(view.AddOrUpdateNode(Node(3, RS({{"CPU", 2}, {"GPU", 2}}), RS({}))));
  summary = SummarizeDemand(queued, view);
  CHECK(summary.back() == DemandSummary{RS({{"GPU", 2}}), 2, false});

  CHECK(SummarizeDemand({}, view).empty());
}

// ------------------------------------------------------------------ GPU shares of other nodes

TEST_CASE("A remote node's per-device GPU shares decide fit, and spillbacks take them per device",
          "[scheduler][view][gpu]") {
  ClusterResourceView view;
  // A remote node reports 0.5 free on each of two devices: 1 GPU in sum, but no whole device.
  NodeView remote = Node(2, RS({{"CPU", 8}, {"GPU", 2}}), RS({{"CPU", 8}, {"GPU", 1}}));
  remote.gpu_free = {FP(0.5), FP(0.5)};
  REQUIRE_OK(view.AddOrUpdateNode(remote));
  const NodeView* node = view.Find(Id(2));
  CHECK_FALSE(node->IsAvailable(RS({{"GPU", 1}})));
  CHECK(node->IsAvailable(RS({{"GPU", 0.5}})));
  CHECK(view.Feasible(RS({{"GPU", 1}})));  // once the other work finishes

  // Spillbacks of 0.5 GPU take one device's share each, until none is left.
  REQUIRE_OK(view.TakeAvailable(Id(2), RS({{"CPU", 1}, {"GPU", 0.5}})));
  CHECK(view.Find(Id(2))->gpu_free == std::vector<FixedPoint>{FP(0), FP(0.5)});
  CHECK(view.Find(Id(2))->available == RS({{"CPU", 7}, {"GPU", 0.5}}));
  REQUIRE_OK(view.TakeAvailable(Id(2), RS({{"CPU", 1}, {"GPU", 0.5}})));
  CHECK(view.Find(Id(2))->gpu_free == std::vector<FixedPoint>{FP(0), FP(0)});
  CHECK_CODE(view.TakeAvailable(Id(2), RS({{"GPU", 0.5}})), kResourceExhausted);
  CHECK(view.Find(Id(2))->available == RS({{"CPU", 6}}));
  CHECK_CODE(view.TakeAvailable(Id(9), RS({{"CPU", 1}})), kNotFound);

  // Best fit: a 0.25 goes onto the device with the least share that holds it.
  remote.available = RS({{"CPU", 8}, {"GPU", 1.25}});
  remote.gpu_free = {FP(1), FP(0.25)};
  REQUIRE_OK(view.AddOrUpdateNode(remote));
  REQUIRE_OK(view.TakeAvailable(Id(2), RS({{"GPU", 0.25}})));
  CHECK(view.Find(Id(2))->gpu_free == std::vector<FixedPoint>{FP(1), FP(0)});
  CHECK(view.Find(Id(2))->IsAvailable(RS({{"GPU", 1}})));

  // Known only by the sum: taken from the sum.
  NodeView sum_only = Node(3, RS({{"GPU", 2}}), RS({{"GPU", 1}}));
  REQUIRE_OK(view.AddOrUpdateNode(sum_only));
  REQUIRE_OK(view.TakeAvailable(Id(3), RS({{"GPU", 0.5}})));
  CHECK(view.Find(Id(3))->gpu_free.empty());
  CHECK(view.Find(Id(3))->available == RS({{"GPU", 0.5}}));
}

TEST_CASE("SummarizeDemand keeps selectors apart and judges them by the matching nodes",
          "[scheduler][demand][labels]") {
  ClusterResourceView view;
  NodeView a = Node(1, RS({{"CPU", 4}}));
  a.labels = {{"zone", "a"}};
  REQUIRE_OK(view.AddOrUpdateNode(a));
  const std::vector<QueuedDemand> queued = {
      {RS({{"CPU", 1}}), 2, {}},
      {RS({{"CPU", 1}}), 1, {{"zone", "b"}}},
      {RS({{"CPU", 1}}), 1, {{"zone", "a"}}},
      {RS({{"CPU", 1}}), 1, {{"zone", "b"}}},
      {RS({{"CPU", 1}}), 1, {{"zone", "in("}}},  // malformed: never runs
  };
  std::vector<DemandSummary> summary = SummarizeDemand(queued, view);
  const std::vector<DemandSummary> want = {
      {RS({{"CPU", 1}}), 2, false, {}},
      {RS({{"CPU", 1}}), 1, false, {{"zone", "a"}}},
      {RS({{"CPU", 1}}), 2, true, {{"zone", "b"}}},
      {RS({{"CPU", 1}}), 1, true, {{"zone", "in("}}},
  };
  CHECK(summary == want);
}

}  // namespace
}  // namespace shoal
