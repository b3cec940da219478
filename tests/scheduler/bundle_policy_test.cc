#include "src/scheduler/bundle_policy.h"

#include <catch2/catch.hpp>

#include <algorithm>
#include <functional>
#include <map>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "tests/test_util/printers.h"
#include "tests/test_util/resource_helpers.h"
#include "tests/test_util/status_matchers.h"

namespace shoal {
namespace {

using test_util::RS;
using test_util::Id;

using Kind = BundlePlacement::Kind;

std::vector<NodeId> Ids(const std::vector<int>& ns) {
  std::vector<NodeId> out;
  for (int n : ns) out.push_back(Id(n));
  return out;
}

void AddNode(ClusterResourceView& view, int n, const std::map<std::string, double>& total,
             std::optional<std::map<std::string, double>> available = {}) {
  NodeView node;
  node.id = Id(n);
  node.total = RS(total);
  node.available = RS(available.value_or(total));
  REQUIRE_OK(view.AddOrUpdateNode(node));
}

BundlePlacement Place(const ClusterResourceView& view,
                      const std::vector<std::map<std::string, double>>& bundles,
                      PlacementStrategy strategy) {
  std::vector<ResourceSet> sets;
  for (const auto& b : bundles) sets.push_back(RS(b));
  auto placement = PlaceBundles(view, sets, strategy);
  REQUIRE_OK(placement);
  return *placement;
}

const std::map<std::string, double> kOneCpu = {{"CPU", 1}};
const std::map<std::string, double> kTwoCpus = {{"CPU", 2}};

// ------------------------------------------------------------------ STRICT_PACK

TEST_CASE("STRICT_PACK puts every bundle on one node or none", "[scheduler][bundles]") {
  ClusterResourceView view;
  AddNode(view, 1, {{"CPU", 4}}, {{{"CPU", 3}}});
  AddNode(view, 2, {{"CPU", 8}});
  AddNode(view, 3, {{"CPU", 2}});

  BundlePlacement p = Place(view, {kTwoCpus, kTwoCpus}, PlacementStrategy::kStrictPack);
  CHECK(p.kind == Kind::kPlaced);
  CHECK(p.nodes == Ids({2, 2}));
  CHECK(p.reason.empty());

  // 3 + 3 free CPUs exist across nodes 1 and 3... but no single node has 6 free: only node 2's
  // total does, and it is busy.
  AddNode(view, 2, {{"CPU", 8}}, {{{"CPU", 1}}});
  p = Place(view, {{{"CPU", 3}}, {{"CPU", 3}}}, PlacementStrategy::kStrictPack);
  CHECK(p.kind == Kind::kQueue);
  CHECK(p.nodes.empty());
  CHECK_THAT(p.reason, Catch::Contains("STRICT_PACK"));

  // No node is big enough even when idle, though the cluster as a whole is.
  p = Place(view, {{{"CPU", 5}}, {{"CPU", 5}}}, PlacementStrategy::kStrictPack);
  CHECK(p.kind == Kind::kInfeasible);
}

TEST_CASE("Bundles of a group take from what the earlier ones left, per GPU device",
          "[scheduler][bundles][gpu]") {
  ClusterResourceView view;
  for (int devices : {1, 2}) {  // node 1 has one GPU, node 2 two, all free and known per device
    NodeView node;
    node.id = Id(devices);
    node.total = node.available = RS({{"GPU", static_cast<double>(devices)}});
    node.gpu_free.assign(devices, FixedPoint::FromInt(1));
    REQUIRE_OK(view.AddOrUpdateNode(node));
  }
  const std::map<std::string, double> half = {{"GPU", 0.5}};
  CHECK(Place(view, {half, half}, PlacementStrategy::kStrictPack).nodes == Ids({1, 1}));
  CHECK(Place(view, {half, half, half}, PlacementStrategy::kStrictPack).nodes == Ids({2, 2, 2}));
  CHECK(Place(view, {half, half, half, half, half}, PlacementStrategy::kStrictPack).kind ==
        Kind::kInfeasible);
  // 0.75 + 0.75 + 0.5 sums to 2, but no device keeps 0.5 after the two 0.75s.
  CHECK(Place(view, {{{"GPU", 0.75}}, {{"GPU", 0.75}}, half}, PlacementStrategy::kStrictPack)
            .kind == Kind::kInfeasible);
  CHECK(Place(view, {{{"GPU", 0.75}}, {{"GPU", 0.75}}, {{"GPU", 0.25}}},
              PlacementStrategy::kStrictPack)
            .nodes == Ids({2, 2, 2}));
}

// ------------------------------------------------------------------ STRICT_SPREAD

TEST_CASE("STRICT_SPREAD puts every bundle on its own node or none", "[scheduler][bundles]") {
  ClusterResourceView view;
  AddNode(view, 1, {{"CPU", 4}});
  AddNode(view, 2, {{"CPU", 4}});
  AddNode(view, 3, {{"CPU", 4}});

  BundlePlacement p = Place(view, {kOneCpu, kOneCpu, kOneCpu}, PlacementStrategy::kStrictSpread);
  REQUIRE(p.kind == Kind::kPlaced);
  CHECK(std::set<NodeId>(p.nodes.begin(), p.nodes.end()).size() == 3);

  CHECK(Place(view, {kOneCpu, kOneCpu, kOneCpu, kOneCpu}, PlacementStrategy::kStrictSpread).kind ==
        Kind::kInfeasible);

  AddNode(view, 3, {{"CPU", 4}}, {{{"CPU", 0.5}}});
  CHECK(Place(view, {kOneCpu, kOneCpu, kOneCpu}, PlacementStrategy::kStrictSpread).kind ==
        Kind::kQueue);
}

TEST_CASE("STRICT_SPREAD finds an assignment that a greedy pass would miss",
          "[scheduler][bundles]") {
  ClusterResourceView view;
  AddNode(view, 1, {{"CPU", 4}, {"GPU", 1}});  // tried first: the lower id
  AddNode(view, 2, {{"CPU", 4}});
  // Greedy would put the CPU bundle on node 1 and then find no node for the GPU bundle.
  BundlePlacement p =
      Place(view, {kOneCpu, {{"GPU", 1}, {"CPU", 1}}}, PlacementStrategy::kStrictSpread);
  CHECK(p.kind == Kind::kPlaced);
  CHECK(p.nodes == Ids({2, 1}));
}

// ------------------------------------------------------------------ PACK

TEST_CASE("PACK uses one node when one fits, else as few as greedily possible",
          "[scheduler][bundles]") {
  ClusterResourceView view;
  AddNode(view, 1, {{"CPU", 4}});
  AddNode(view, 2, {{"CPU", 4}});
  AddNode(view, 3, {{"CPU", 4}});

  CHECK(Place(view, {kOneCpu, kTwoCpus, kOneCpu}, PlacementStrategy::kPack).nodes ==
        Ids({1, 1, 1}));
  // 3 + 3 + 1: the third goes back to the node the group already uses.
  CHECK(Place(view, {{{"CPU", 3}}, {{"CPU", 3}}, kOneCpu}, PlacementStrategy::kPack).nodes ==
        Ids({1, 2, 1}));
  CHECK(Place(view, {{{"CPU", 4}}, {{"CPU", 4}}, {{"CPU", 4}}, kOneCpu}, PlacementStrategy::kPack)
            .kind == Kind::kInfeasible);

  // Nodes are tried least utilised first.
  AddNode(view, 1, {{"CPU", 4}}, {{{"CPU", 3}}});
  CHECK(Place(view, {kOneCpu}, PlacementStrategy::kPack).nodes == Ids({2}));

  AddNode(view, 2, {{"CPU", 4}}, {{{"CPU", 0}}});
  AddNode(view, 3, {{"CPU", 4}}, {{{"CPU", 0}}});
  CHECK(Place(view, {{{"CPU", 3}}, {{"CPU", 3}}}, PlacementStrategy::kPack).kind == Kind::kQueue);
}

// ------------------------------------------------------------------ SPREAD

TEST_CASE("SPREAD uses distinct nodes where it can and reuses them where it must",
          "[scheduler][bundles]") {
  ClusterResourceView view;
  AddNode(view, 1, {{"CPU", 4}});
  AddNode(view, 2, {{"CPU", 4}});

  CHECK(Place(view, {kOneCpu, kOneCpu}, PlacementStrategy::kSpread).nodes == Ids({1, 2}));
  // Four bundles on two nodes: two each.
  BundlePlacement p = Place(view, {kOneCpu, kOneCpu, kOneCpu, kOneCpu}, PlacementStrategy::kSpread);
  REQUIRE(p.kind == Kind::kPlaced);
  CHECK(std::count(p.nodes.begin(), p.nodes.end(), Id(1)) == 2);
  CHECK(std::count(p.nodes.begin(), p.nodes.end(), Id(2)) == 2);

  // Only node 1 has room: both bundles share it rather than wait.
  AddNode(view, 2, {{"CPU", 4}}, {{{"CPU", 0}}});
  CHECK(Place(view, {kOneCpu, kOneCpu}, PlacementStrategy::kSpread).nodes == Ids({1, 1}));
  CHECK(Place(view, {kTwoCpus, kTwoCpus, kTwoCpus}, PlacementStrategy::kSpread).kind ==
        Kind::kQueue);
  CHECK(Place(view, {kTwoCpus, kTwoCpus, kTwoCpus, kTwoCpus, kTwoCpus},
              PlacementStrategy::kSpread)
            .kind == Kind::kInfeasible);
}

// ------------------------------------------------------------------ common

TEST_CASE("Dead and scheduling-disabled nodes take no bundles", "[scheduler][bundles]") {
  ClusterResourceView view;
  NodeView head;
  head.id = Id(1);
  head.total = head.available = RS({{"CPU", 16}});
  head.scheduling_disabled = true;
  REQUIRE_OK(view.AddOrUpdateNode(head));
  AddNode(view, 2, {{"CPU", 16}});
  REQUIRE_OK(view.MarkDead(Id(2)));
  AddNode(view, 3, {{"CPU", 2}});

  for (PlacementStrategy s : {PlacementStrategy::kPack, PlacementStrategy::kSpread,
                              PlacementStrategy::kStrictPack, PlacementStrategy::kStrictSpread}) {
    INFO(PlacementStrategyName(s));
    CHECK(Place(view, {kOneCpu}, s).nodes == Ids({3}));
    CHECK(Place(view, {{{"CPU", 4}}}, s).kind == Kind::kInfeasible);
  }
  CHECK(Place(view, {kOneCpu, kOneCpu}, PlacementStrategy::kStrictSpread).kind ==
        Kind::kInfeasible);
}

TEST_CASE("PlaceBundles rejects malformed groups", "[scheduler][bundles][validation]") {
  ClusterResourceView view;
  AddNode(view, 1, {{"CPU", 4}, {"GPU", 2}});
  CHECK_CODE(PlaceBundles(view, {}, PlacementStrategy::kPack), kInvalidArgument);
  CHECK_CODE(PlaceBundles(view, {RS({{"CPU", 1}}), RS({})}, PlacementStrategy::kPack),
             kInvalidArgument);
  CHECK_CODE(PlaceBundles(view, {RS({{"GPU", 1.5}})}, PlacementStrategy::kStrictPack),
             kInvalidArgument);
  CHECK_OK(PlaceBundles(view, {RS({{"GPU", 2}})}, PlacementStrategy::kStrictPack));
}

TEST_CASE("PlacementStrategyName", "[scheduler][bundles]") {
  CHECK(std::string(PlacementStrategyName(PlacementStrategy::kPack)) == "PACK");
  CHECK(std::string(PlacementStrategyName(PlacementStrategy::kSpread)) == "SPREAD");
  CHECK(std::string(PlacementStrategyName(PlacementStrategy::kStrictPack)) == "STRICT_PACK");
  CHECK(std::string(PlacementStrategyName(PlacementStrategy::kStrictSpread)) == "STRICT_SPREAD");
}

// ------------------------------------------------------------------ randomized properties

template <typename T>
T Pick(std::mt19937& rng, const std::vector<T>& choices) {
  return choices[std::uniform_int_distribution<size_t>(0, choices.size() - 1)(rng)];
}

ResourceSet RandomBundle(std::mt19937& rng) {
  ResourceSet bundle;
  while (bundle.IsEmpty()) {
    bundle = RS({{"CPU", Pick<double>(rng, {0, 1, 1, 2, 3})},
                 {"GPU", Pick<double>(rng, {0, 0, 0, 0.25, 0.5, 0.75, 1, 2})}});
  }
  return bundle;
}

TEST_CASE("Property: placements fit, and strict strategies match exhaustive search",
          "[scheduler][bundles][property]") {
  std::mt19937 rng(7);
  int placed = 0, queued = 0, infeasible = 0;
  for (int iteration = 0; iteration < 3000; ++iteration) {
    ClusterResourceView view;
    std::vector<NodeId> schedulable;
    std::map<NodeId, NodeResources> now;  // exact free resources of each schedulable node
    const int nodes = std::uniform_int_distribution<int>(1, 4)(rng);
    for (int n = 1; n <= nodes; ++n) {
      NodeView node;
      node.id = Id(n);
      node.total = RS({{"CPU", Pick<double>(rng, {1, 2, 4})},
                       {"GPU", Pick<double>(rng, {0, 1, 2})}});
      NodeResources resources(node.total);
      for (int k = std::uniform_int_distribution<int>(0, 2)(rng); k > 0; --k) {
        (void)resources.Allocate(RandomBundle(rng));
      }
      node.available = resources.Available();
      if (const ResourceInstances* gpus = resources.Instances(kGPU)) node.gpu_free = gpus->free();
      node.alive = rng() % 8 != 0;
      node.scheduling_disabled = rng() % 8 == 0;
      REQUIRE_OK(view.AddOrUpdateNode(node));
      if (node.Schedulable()) {
        schedulable.push_back(node.id);
        now.emplace(node.id, resources);
      }
    }
    std::vector<ResourceSet> bundles(std::uniform_int_distribution<int>(1, 3)(rng));
    for (ResourceSet& b : bundles) b = RandomBundle(rng);
    const auto strategy = static_cast<PlacementStrategy>(rng() % 4);

    // Whether `assignment` fits, allocating each node's bundles in order with the raylet's own
    // resource accounting, starting from the nodes' free resources or from idle nodes.
    auto fits = [&](const std::vector<NodeId>& assignment, bool idle) {
      std::map<NodeId, NodeResources> rooms;
      for (const NodeId& id : schedulable) {
        rooms.emplace(id, idle ? NodeResources(view.Find(id)->total) : now.at(id));
      }
      for (size_t i = 0; i < bundles.size(); ++i) {
        auto it = rooms.find(assignment[i]);
        if (it == rooms.end() || !it->second.Allocate(bundles[i]).ok()) return false;
      }
      return true;
    };
    // Whether some assignment allowed by `shape` fits.
    auto exists = [&](bool idle, const std::function<bool(const std::vector<NodeId>&)>& shape) {
      std::vector<NodeId> assignment(bundles.size());
      std::function<bool(size_t)> walk = [&](size_t i) {
        if (i == bundles.size()) return shape(assignment) && fits(assignment, idle);
        for (const NodeId& id : schedulable) {
          assignment[i] = id;
          if (walk(i + 1)) return true;
        }
        return false;
      };
      return walk(0);
    };
    auto one_node = [](const std::vector<NodeId>& a) {
      return std::set<NodeId>(a.begin(), a.end()).size() == 1;
    };
    auto distinct = [](const std::vector<NodeId>& a) {
      return std::set<NodeId>(a.begin(), a.end()).size() == a.size();
    };
    auto any = [](const std::vector<NodeId>&) { return true; };

    auto result = PlaceBundles(view, bundles, strategy);
    REQUIRE_OK(result);
    const BundlePlacement& p = *result;
    INFO("iteration " << iteration << " " << PlacementStrategyName(strategy) << " kind "
                      << static_cast<int>(p.kind) << " " << p.reason);

    if (p.kind == Kind::kPlaced) {
      ++placed;
      REQUIRE(p.nodes.size() == bundles.size());
      CHECK(fits(p.nodes, /*idle=*/false));
    } else {
      CHECK(p.nodes.empty());
      (p.kind == Kind::kQueue ? queued : infeasible)++;
    }

    switch (strategy) {
      case PlacementStrategy::kStrictPack:
      case PlacementStrategy::kStrictSpread: {
        const auto& shape = strategy == PlacementStrategy::kStrictPack
                                ? std::function<bool(const std::vector<NodeId>&)>(one_node)
                                : std::function<bool(const std::vector<NodeId>&)>(distinct);
        if (p.kind == Kind::kPlaced) CHECK(shape(p.nodes));
        const bool can_now = exists(false, shape);
        const bool can_idle = exists(true, shape);
        CHECK((p.kind == Kind::kPlaced) == can_now);
        CHECK((p.kind == Kind::kQueue) == (!can_now && can_idle));
        CHECK((p.kind == Kind::kInfeasible) == !can_idle);
        break;
      }
      case PlacementStrategy::kPack:
        if (exists(false, one_node)) CHECK((p.kind == Kind::kPlaced && one_node(p.nodes)));
        if (!exists(false, any)) CHECK(p.kind != Kind::kPlaced);
        if (!exists(true, any)) CHECK(p.kind == Kind::kInfeasible);
        break;
      case PlacementStrategy::kSpread:
        if (exists(false, distinct)) CHECK((p.kind == Kind::kPlaced && distinct(p.nodes)));
        if (!exists(false, any)) CHECK(p.kind != Kind::kPlaced);
        if (!exists(true, any)) CHECK(p.kind == Kind::kInfeasible);
        break;
    }
  }
  INFO("placed " << placed << ", queued " << queued << ", infeasible " << infeasible);
  CHECK(placed > 500);
  CHECK(queued > 200);
  CHECK(infeasible > 200);
}

// ------------------------------------------------------------------ bundle label selectors

TEST_CASE("PlaceBundles puts each bundle on a node matching its label selector",
          "[scheduler][bundles][labels]") {
  ClusterResourceView view;
  for (int n = 1; n <= 4; ++n) {
    NodeView node;
    node.id = Id(n);
    node.total = RS({{"CPU", 4}});
    node.available = node.total;
    node.labels = {{"zone", n <= 2 ? "a" : "b"}};
    REQUIRE_OK(view.AddOrUpdateNode(node));
  }
  auto place = [&](const std::vector<std::map<std::string, double>>& bundles,
                   PlacementStrategy strategy, const std::vector<Labels>& selectors) {
    std::vector<ResourceSet> sets;
    for (const auto& b : bundles) sets.push_back(RS(b));
    auto placement = PlaceBundles(view, sets, strategy, selectors);
    REQUIRE_OK(placement);
    return *placement;
  };
  auto zone_of = [&](const NodeId& id) { return view.Find(id)->labels.at("zone"); };

  for (PlacementStrategy strategy : {PlacementStrategy::kPack, PlacementStrategy::kSpread,
                                     PlacementStrategy::kStrictSpread}) {
    INFO(PlacementStrategyName(strategy));
    BundlePlacement p = place({kOneCpu, kOneCpu, kOneCpu},
                              strategy, {{{"zone", "b"}}, {{"zone", "a"}}, {}});
    REQUIRE(p.kind == Kind::kPlaced);
    CHECK(zone_of(p.nodes[0]) == "b");
    CHECK(zone_of(p.nodes[1]) == "a");
  }
  // STRICT_PACK: one node matching every bundle's selector.
  BundlePlacement pack = place({kOneCpu, kOneCpu}, PlacementStrategy::kStrictPack,
                               {{{"zone", "!a"}}, {{"zone", "in(b,c)"}}});
  REQUIRE(pack.kind == Kind::kPlaced);
  CHECK(zone_of(pack.nodes[0]) == "b");
  CHECK(pack.nodes[0] == pack.nodes[1]);
  CHECK(place({kOneCpu, kOneCpu}, PlacementStrategy::kStrictPack, {{{"zone", "a"}}, {{"zone", "b"}}})
            .kind == Kind::kInfeasible);
  // STRICT_SPREAD: three bundles for zone a, which has two nodes.
  CHECK(place({kOneCpu, kOneCpu, kOneCpu}, PlacementStrategy::kStrictSpread,
              {{{"zone", "a"}}, {{"zone", "a"}}, {{"zone", "a"}}})
            .kind == Kind::kInfeasible);
  // No node matches: infeasible, with the selector in the reason.
  BundlePlacement none = place({kOneCpu}, PlacementStrategy::kPack, {{{"zone", "c"}}});
  CHECK(none.kind == Kind::kInfeasible);
  CHECK_THAT(none.reason, Catch::Contains("{zone: c}"));
  // Matching nodes are busy: queue.
  NodeView busy = *view.Find(Id(1));
  busy.available = RS({{"CPU", 1}});
  REQUIRE_OK(view.AddOrUpdateNode(busy));
  const std::vector<Labels> all_a = {{{"zone", "a"}}, {{"zone", "a"}}, {{"zone", "a"}}};
  CHECK(place({kTwoCpus, kTwoCpus, kTwoCpus}, PlacementStrategy::kPack, all_a).kind ==
        Kind::kQueue);
  BundlePlacement fits_now = place({kTwoCpus, kTwoCpus, kOneCpu}, PlacementStrategy::kPack, all_a);
  REQUIRE(fits_now.kind == Kind::kPlaced);
  CHECK(fits_now.nodes == Ids({2, 2, 1}));

  // Errors: malformed selector (naming the bundle and key); not one per bundle.
  auto bad = PlaceBundles(view, {RS(kOneCpu), RS(kOneCpu)}, PlacementStrategy::kPack,
                          {{}, {{"zone", "in()"}}});
  REQUIRE(absl::IsInvalidArgument(bad.status()));
  CHECK_THAT(std::string(bad.status().message()), Catch::Contains("bundle 1"));
  CHECK_THAT(std::string(bad.status().message()), Catch::Contains("`zone`"));
  CHECK_CODE(PlaceBundles(view, {RS(kOneCpu), RS(kOneCpu)}, PlacementStrategy::kPack, {{}}),
             kInvalidArgument);
}

}  // namespace
}  // namespace shoal
