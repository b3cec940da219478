// The placement group manager over a fake bundle client and a fake clock: the two-phase
// reservation, retries, node deaths, removal, long polls and a GCS restart.
#include "src/gcs/placement_group_manager.h"

#include <catch2/catch.hpp>

#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "src/gcs/fake_bundle_client.h"
#include "tests/gcs/actor_test_util.h"
#include "tests/test_util/store_backends.h"

namespace shoal {
namespace {

using namespace actor_test;  // NOLINT: the GCS fixture and actor helpers
using PG = rpc::PlacementGroupInfo;
using Kind = FakeBundleClient::Kind;
using Shape = std::map<std::string, double>;

// An actor manager's GCS (actor_test::Gcs) with a placement group manager on top.
struct PgGcs {
  explicit PgGcs(StoreClient* shared_store = nullptr, size_t max_removed = 1000, bool one_call = false)
      : gcs(shared_store),
        pgs(std::make_unique<PlacementGroupManager>(
            gcs.store, gcs.clock, gcs.nodes, client,
            PlacementGroupManagerOptions{.retry_initial = absl::Seconds(1),
                                         .retry_max = absl::Seconds(8),
                                         .max_removed = max_removed,
                                         .one_call_for_one_node = one_call,
                                         .on_removed = [this](const PlacementGroupId& id) {
                                           gcs.actors->OnPlacementGroupRemoved(id.Binary());
                                         }})) {
    // The actors check their group at registration, as in the GCS.
    ActorManagerOptions options = Gcs::Options();
    options.placement_group_removed = [this](const std::string& id) { return pgs->IsRemoved(id); };
    gcs.actors = std::make_unique<ActorManager>(gcs.store, gcs.clock, gcs.nodes, gcs.net,
                                                std::make_unique<HybridSchedulingPolicy>(), options);
  }

  NodeId AddNode(int n, const Shape& total, bool is_head = false) {
    const NodeId id = gcs.AddNode(n, total, is_head);
    pgs->OnNodeAdded(id);
    return id;
  }
  void KillNode(int n) {
    REQUIRE_OK(gcs.nodes.MarkDead(test_util::Id(n), "test"));
    gcs.actors->OnNodeDead(test_util::Id(n));
    pgs->OnNodeDead(test_util::Id(n));
  }
  PG Get(const PG& group) {
    rpc::GetPlacementGroupRequest req;
    req.set_placement_group_id(group.placement_group_id());
    auto info = pgs->Get(req);
    REQUIRE_OK(info);
    return *info;
  }
  // Answers every open call of `kind` with `status`; answers how many and where.
  std::vector<std::string> Answer(Kind kind, const absl::Status& status = absl::OkStatus(),
                                  const std::string& raylet = "") {
    std::vector<std::string> raylets;
    while (auto call = client.Take(kind, raylet)) {
      raylets.push_back(call->raylet);
      call->done(status);
    }
    return raylets;
  }
  // Answers every prepare, then every commit, with OK.
  void Reserve() {
    REQUIRE_FALSE(Answer(Kind::kPrepare).empty());
    REQUIRE_FALSE(Answer(Kind::kCommit).empty());
  }
  std::vector<FakeBundleClient::Call> Cancels() {
    std::vector<FakeBundleClient::Call> out;
    for (auto& c : client.history()) {
      if (c.kind == Kind::kCancel) out.push_back(std::move(c));
    }
    return out;
  }

  Gcs gcs;
  FakeBundleClient client;
  std::unique_ptr<PlacementGroupManager> pgs;
};

PG MakeGroup(PG::Strategy strategy, const std::vector<Shape>& bundles, const std::string& name = "",
               const std::string& ns = "", bool detached = false) {
  PG info;
  info.set_placement_group_id(PlacementGroupId::FromRandom().Binary());
  info.set_name(name);
  info.set_ray_namespace(ns);
  info.set_strategy(strategy);
  info.set_job_id(JobId::FromInt(1).Hex());
  info.set_creator_address(kOwner);
  info.set_detached(detached);
  for (size_t i = 0; i < bundles.size(); ++i) {
    rpc::Bundle& b = *info.add_bundles();
    b.set_bundle_index(static_cast<int>(i));
    *b.mutable_resources() = Map(bundles[i]);
  }
  return info;
}

std::set<std::string> NodesOf(const PG& info) {
  std::set<std::string> out;
  for (const auto& b : info.bundles()) out.insert(b.node_id());
  return out;
}

std::string Hex(int n) { return test_util::Id(n).Hex(); }

TEST_CASE("a group is prepared on every node, then committed, then CREATED", "[placement_groups]") {
  PgGcs t;
  t.AddNode(1, {{"CPU", 2}}, true);
  t.AddNode(2, {{"CPU", 2}});
  const PG group = MakeGroup(PG::STRICT_SPREAD, {{{"CPU", 1}}, {{"CPU", 1}}});
  REQUIRE_OK(t.pgs->Create(group));
  CHECK(t.Get(group).state() == PG::PENDING);
  // Both prepares go out at once; no commit until both answered.
  REQUIRE(t.client.Open(Kind::kPrepare) == 2);
  auto first = t.client.Take(Kind::kPrepare);
  REQUIRE(first.has_value());
  REQUIRE(first->bundles.size() == 1);
  first->done(absl::OkStatus());
  CHECK(t.client.Open(Kind::kCommit) == 0);
  CHECK(t.Answer(Kind::kPrepare).size() == 1);
  CHECK(t.client.Open(Kind::kCommit) == 2);
  CHECK(t.Get(group).state() == PG::PENDING);  // CREATED only once committed
  const auto committed = t.Answer(Kind::kCommit);
  CHECK(std::set<std::string>(committed.begin(), committed.end()) == std::set<std::string>{RayletOf(1), RayletOf(2)});
  const PG created = t.Get(group);
  CHECK(created.state() == PG::CREATED);
  CHECK(created.created_time_ms() == absl::ToUnixMillis(t.gcs.clock.Now()));
  CHECK(NodesOf(created) == std::set<std::string>{Hex(1), Hex(2)});  // STRICT_SPREAD: one on each
  CHECK(created.pending_reason().empty());
  CHECK_FALSE(t.pgs->Reserving());
  // The node table shows the committed bundles' resources before the raylets report them.
  const PlacementGroupId pg = *PlacementGroupId::FromBinary(group.placement_group_id());
  for (const auto& b : created.bundles()) {
    const auto node = t.gcs.nodes.Get(*NodeId::FromHex(b.node_id()));
    REQUIRE(node.has_value());
    const ResourceSet total = ResourceSet::FromProto(node->resources_total());
    const ResourceSet available = ResourceSet::FromProto(node->resources_available());
    CHECK(total.Get(BundleResourceName("CPU", pg, b.bundle_index())) == test_util::FP(1));
    CHECK(total.Get(BundleResourceName("CPU", pg, -1)) == test_util::FP(1));
    CHECK(available.Get(BundleResourceName("bundle", pg, b.bundle_index())) == FixedPoint::FromInt(kBundleMarkerAmount));
    CHECK(total.Get("CPU") == test_util::FP(2));
  }
  // The bundles the raylets were sent name the group, their index and their node.
  for (const auto& call : t.client.history()) {
    for (const auto& b : call.bundles) {
      CHECK(b.placement_group_id() == group.placement_group_id());
      CHECK(call.raylet == RayletOf(b.node_id() == Hex(1) ? 1 : 2));
    }
  }
}

TEST_CASE("a failed prepare cancels every prepared node and is retried after a backoff", "[placement_groups]") {
  PgGcs t;
  t.AddNode(1, {{"CPU", 1}}, true);
  t.AddNode(2, {{"CPU", 1}});
  const PG group = MakeGroup(PG::STRICT_SPREAD, {{{"CPU", 1}}, {{"CPU", 1}}});
  REQUIRE_OK(t.pgs->Create(group));
  REQUIRE(t.client.Open(Kind::kPrepare) == 2);

  SECTION("the raylet refuses") {
    t.Answer(Kind::kPrepare, absl::OkStatus(), RayletOf(1));
    t.Answer(Kind::kPrepare, absl::ResourceExhaustedError("no room"), RayletOf(2));
    const auto cancels = t.Cancels();
    REQUIRE(cancels.size() == 1);  // node 2 prepared nothing
    CHECK(cancels[0].raylet == RayletOf(1));
    CHECK_FALSE(cancels[0].group_removed);
    const PG pending = t.Get(group);
    CHECK(pending.state() == PG::PENDING);
    CHECK(absl::StrContains(pending.pending_reason(), "preparing bundles failed"));
    CHECK(t.client.Open(Kind::kCommit) == 0);
    CHECK(t.client.Open(Kind::kPrepare) == 0);
    // Tried again once the backoff ends.
    t.gcs.clock.Advance(absl::Milliseconds(999));
    t.pgs->Tick();
    CHECK(t.client.Open(Kind::kPrepare) == 0);
    t.gcs.clock.Advance(absl::Milliseconds(1));
    t.pgs->Tick();
    REQUIRE(t.client.Open(Kind::kPrepare) == 2);
    t.Reserve();
    CHECK(t.Get(group).state() == PG::CREATED);
  }
  SECTION("the node dies while preparing") {
    t.Answer(Kind::kPrepare, absl::OkStatus(), RayletOf(1));
    t.KillNode(2);
    const auto cancels = t.Cancels();
    REQUIRE(cancels.size() == 1);
    CHECK(cancels[0].raylet == RayletOf(1));
    CHECK_FALSE(cancels[0].group_removed);
    t.Answer(Kind::kPrepare, absl::UnavailableError("gone"), RayletOf(2));  // late: ignored
    CHECK(t.client.Open(Kind::kCommit) == 0);
    const PG pending = t.Get(group);
    CHECK(pending.state() == PG::PENDING);
    CHECK(pending.infeasible());  // one node left for two STRICT_SPREAD bundles
    t.AddNode(3, {{"CPU", 1}});
    t.Reserve();
    const PG created = t.Get(group);
    CHECK(created.state() == PG::CREATED);
    CHECK(NodesOf(created) == std::set<std::string>{Hex(1), Hex(3)});
  }
}

TEST_CASE("a node that dies between prepare and commit: its bundle is placed again", "[placement_groups]") {
  PgGcs t;
  t.AddNode(1, {{"CPU", 1}}, true);
  t.AddNode(2, {{"CPU", 1}});
  t.AddNode(3, {{"CPU", 1}});
  const PG group = MakeGroup(PG::STRICT_SPREAD, {{{"CPU", 1}}, {{"CPU", 1}}});
  REQUIRE_OK(t.pgs->Create(group));
  const auto prepared = t.Answer(Kind::kPrepare);
  REQUIRE(prepared == std::vector<std::string>{RayletOf(1), RayletOf(2)});
  REQUIRE(t.client.Open(Kind::kCommit) == 2);
  t.KillNode(2);
  t.Answer(Kind::kCommit, absl::OkStatus(), RayletOf(1));
  t.Answer(Kind::kCommit, absl::UnavailableError("gone"), RayletOf(2));  // late: ignored
  // The bundle on node 1 stays; the lost one goes to node 3 (not node 1: STRICT_SPREAD).
  PG rescheduling = t.Get(group);
  CHECK(rescheduling.state() == PG::RESCHEDULING);
  CHECK(rescheduling.bundles(0).node_id() == Hex(1));
  CHECK(rescheduling.bundles(1).node_id().empty());
  auto again = t.client.Take(Kind::kPrepare);
  REQUIRE(again.has_value());
  CHECK(again->raylet == RayletOf(3));
  REQUIRE(again->bundles.size() == 1);
  CHECK(again->bundles[0].bundle_index() == 1);
  again->done(absl::OkStatus());
  t.Answer(Kind::kCommit);
  const PG created = t.Get(group);
  CHECK(created.state() == PG::CREATED);
  CHECK(created.bundles(0).node_id() == Hex(1));
  CHECK(created.bundles(1).node_id() == Hex(3));
  CHECK(t.Cancels().empty());  // nothing to give back on a dead node
}

TEST_CASE("two groups for the same room never both hold half a reservation", "[placement_groups]") {
  PgGcs t;
  t.AddNode(1, {{"CPU", 2}}, true);
  t.AddNode(2, {{"CPU", 2}});
  const PG first = MakeGroup(PG::STRICT_SPREAD, {{{"CPU", 2}}, {{"CPU", 2}}});
  const PG second = MakeGroup(PG::STRICT_SPREAD, {{{"CPU", 2}}, {{"CPU", 2}}});
  REQUIRE_OK(t.pgs->Create(first));
  REQUIRE_OK(t.pgs->Create(second));
  // Only the first is being reserved.
  REQUIRE(t.client.Open(Kind::kPrepare) == 2);
  for (const auto& c : t.client.history()) {
    for (const auto& b : c.bundles) CHECK(b.placement_group_id() == first.placement_group_id());
  }
  t.Reserve();
  CHECK(t.Get(first).state() == PG::CREATED);
  const PG waiting = t.Get(second);
  CHECK(waiting.state() == PG::PENDING);
  CHECK_FALSE(waiting.infeasible());
  CHECK_FALSE(waiting.pending_reason().empty());
  CHECK(t.client.Open(Kind::kPrepare) == 0);
  // Removing the first frees its room: the second is reserved.
  REQUIRE_OK(t.pgs->Remove(first.placement_group_id()));
  REQUIRE(t.client.Open(Kind::kPrepare) == 2);
  t.Reserve();
  CHECK(t.Get(second).state() == PG::CREATED);
}

TEST_CASE("STRICT_PACK puts two half-GPU bundles on one node", "[placement_groups]") {
  PgGcs t;
  t.AddNode(1, {{"CPU", 4}}, true);
  t.AddNode(2, {{"CPU", 4}, {"GPU", 1}});
  const PG group = MakeGroup(PG::STRICT_PACK, {{{"GPU", 0.5}}, {{"GPU", 0.5}}});
  REQUIRE_OK(t.pgs->Create(group));
  auto prepare = t.client.Take(Kind::kPrepare);
  REQUIRE(prepare.has_value());
  CHECK(prepare->raylet == RayletOf(2));
  CHECK(prepare->bundles.size() == 2);
  CHECK(t.client.Open(Kind::kPrepare) == 0);
  prepare->done(absl::OkStatus());
  t.Answer(Kind::kCommit);
  const PG created = t.Get(group);
  CHECK(created.state() == PG::CREATED);
  CHECK(NodesOf(created) == std::set<std::string>{Hex(2)});
  // An actor in bundle 1 is sent straight to that node, with no report from it yet.
  rpc::RegisterActorRequest actor = MakeActor();
  const PlacementGroupId pg = *PlacementGroupId::FromBinary(group.placement_group_id());
  FormatBundleDemand(test_util::RS({{"GPU", 0.5}}), pg, 1).ToProto(actor.mutable_creation_spec()->mutable_resources());
  actor.mutable_creation_spec()->set_placement_group_id(group.placement_group_id());
  REQUIRE_OK(t.gcs.actors->RegisterActor(actor));
  auto lease = t.gcs.net.TakeLease();
  REQUIRE(lease.has_value());
  CHECK(lease->raylet == RayletOf(2));
  CHECK(lease->request.grant_or_reject());
}

TEST_CASE("one_call_for_one_node: a one-node reservation is prepared and committed in one call",
          "[placement_groups]") {
  PgGcs t(nullptr, 1000, /*one_call=*/true);
  t.AddNode(1, {{"CPU", 8}}, true);
  t.AddNode(2, {{"CPU", 2}});
  const PG packed = MakeGroup(PG::STRICT_PACK, {{{"CPU", 1}}, {{"CPU", 2}}});
  REQUIRE_OK(t.pgs->Create(packed));
  auto call = t.client.Take(Kind::kPrepare);
  REQUIRE(call.has_value());
  CHECK(call->commit);
  CHECK(call->raylet == RayletOf(1));
  call->done(absl::OkStatus());
  CHECK(t.client.Open(Kind::kCommit) == 0);  // no second phase
  CHECK(t.Get(packed).state() == PG::CREATED);
  CHECK(NodesOf(t.Get(packed)) == std::set<std::string>{Hex(1)});

  // A refusal is a failed prepare: nothing to commit, the group waits, backs off, and retries.
  const PG second = MakeGroup(PG::PACK, {{{"CPU", 1}}});
  REQUIRE_OK(t.pgs->Create(second));
  call = t.client.Take(Kind::kPrepare);
  REQUIRE(call.has_value());
  CHECK(call->commit);
  call->done(absl::ResourceExhaustedError("does not fit"));
  CHECK(t.Get(second).state() == PG::PENDING);
  CHECK(t.client.Open(Kind::kPrepare) == 0);
  t.gcs.clock.Advance(absl::Seconds(2));
  t.pgs->Tick();
  call = t.client.Take(Kind::kPrepare);
  REQUIRE(call.has_value());
  call->done(absl::OkStatus());
  CHECK(t.Get(second).state() == PG::CREATED);

  // Bundles on two nodes still take both phases.
  const PG spread = MakeGroup(PG::STRICT_SPREAD, {{{"CPU", 0.5}}, {{"CPU", 0.5}}});
  REQUIRE_OK(t.pgs->Create(spread));
  REQUIRE(t.client.Open(Kind::kPrepare) == 2);
  while (auto prepare = t.client.Take(Kind::kPrepare)) {
    CHECK_FALSE(prepare->commit);
    prepare->done(absl::OkStatus());
  }
  CHECK(t.Answer(Kind::kCommit).size() == 2);
  CHECK(t.Get(spread).state() == PG::CREATED);
}

TEST_CASE("an infeasible group stays PENDING until a node that fits joins", "[placement_groups]") {
  PgGcs t;
  t.AddNode(1, {{"CPU", 4}}, true);
  const PG group = MakeGroup(PG::PACK, {{{"GPU", 1}}});
  REQUIRE_OK(t.pgs->Create(group));
  PG pending = t.Get(group);
  CHECK(pending.state() == PG::PENDING);
  CHECK(pending.infeasible());
  CHECK_FALSE(pending.pending_reason().empty());
  CHECK(t.client.Open(Kind::kPrepare) == 0);
  // Reports do not rewrite an unchanged entry.
  t.pgs->OnResourcesReported(test_util::Id(1));
  CHECK(t.Get(group).version() == pending.version());
  auto summary = t.pgs->Summarize();
  REQUIRE(summary.pending.size() == 1);
  CHECK(summary.pending[0].infeasible());
  CHECK(summary.by_state["PENDING"] == 1);
  CHECK(summary.by_state["CREATED"] == 0);

  t.AddNode(2, {{"CPU", 4}, {"GPU", 1}});
  auto prepare = t.client.Take(Kind::kPrepare);
  REQUIRE(prepare.has_value());
  CHECK(prepare->raylet == RayletOf(2));
  prepare->done(absl::OkStatus());
  t.Answer(Kind::kCommit);
  const PG created = t.Get(group);
  CHECK(created.state() == PG::CREATED);
  CHECK_FALSE(created.infeasible());
  CHECK(t.pgs->Summarize().pending.empty());
}

TEST_CASE("a node death reschedules the group's bundles there onto another node", "[placement_groups]") {
  PgGcs t;
  t.AddNode(1, {{"CPU", 2}}, true);
  t.AddNode(2, {{"CPU", 2}});
  const PG group = MakeGroup(PG::PACK, {{{"CPU", 1}}, {{"CPU", 1}}});
  REQUIRE_OK(t.pgs->Create(group));
  t.Reserve();
  const PG created = t.Get(group);
  REQUIRE(created.state() == PG::CREATED);
  REQUIRE(NodesOf(created).size() == 1);
  const int holder = *NodesOf(created).begin() == Hex(1) ? 1 : 2;
  const int other = 3 - holder;

  rpc::WaitPlacementGroupUntilReadyRequest wait;
  wait.set_placement_group_id(group.placement_group_id());
  wait.set_timeout_ms(-1);

  t.KillNode(holder);
  const PG rescheduling = t.Get(group);
  CHECK(rescheduling.state() == PG::RESCHEDULING);
  CHECK(NodesOf(rescheduling) == std::set<std::string>{""});
  CHECK(t.pgs->Summarize().by_state["RESCHEDULING"] == 1);
  std::optional<absl::StatusOr<PG>> ready;
  t.pgs->WaitUntilReady(wait, [&](absl::StatusOr<PG> r) { ready = std::move(r); });
  CHECK_FALSE(ready.has_value());  // RESCHEDULING is not ready
  auto prepare = t.client.Take(Kind::kPrepare);
  REQUIRE(prepare.has_value());
  CHECK(prepare->raylet == RayletOf(other));
  CHECK(prepare->bundles.size() == 2);
  prepare->done(absl::OkStatus());
  t.Answer(Kind::kCommit);
  CHECK(t.Get(group).state() == PG::CREATED);
  CHECK(NodesOf(t.Get(group)) == std::set<std::string>{Hex(other)});
  REQUIRE(ready.has_value());
  CHECK_OK(*ready);
}

// Re-placing one lost bundle of `group` after node `dead` dies: answers the raylet it goes to.
std::string ReplaceAfterDeath(PgGcs& t, const PG& group, int dead) {
  t.KillNode(dead);
  REQUIRE(t.Get(group).state() == PG::RESCHEDULING);
  auto prepare = t.client.Take(Kind::kPrepare);
  REQUIRE(prepare.has_value());
  REQUIRE(prepare->bundles.size() == 1);
  const std::string raylet = prepare->raylet;
  prepare->done(absl::OkStatus());
  t.Answer(Kind::kCommit);
  REQUIRE(t.Get(group).state() == PG::CREATED);
  return raylet;
}

TEST_CASE("a lost PACK bundle goes back beside the group's other bundles when they have room",
          "[placement_groups]") {
  PgGcs t;
  // Node 1 is busy when the group is made, so PACK splits it over nodes 1 and 2.
  t.pgs->OnNodeAdded(t.gcs.AddNode(1, {{"CPU", 3}}, false, Shape{{"CPU", 1}}));
  t.AddNode(2, {{"CPU", 1}});
  const PG group = MakeGroup(PG::PACK, {{{"CPU", 1}}, {{"CPU", 1}}});
  REQUIRE_OK(t.pgs->Create(group));
  t.Reserve();
  REQUIRE(NodesOf(t.Get(group)) == std::set<std::string>{Hex(1), Hex(2)});
  // Node 1's other work ends (its bundle still holds one CPU); a larger, idle node joins.
  REQUIRE(t.gcs.nodes.ReportResources(test_util::Id(1), Map({{"CPU", 2}}), {}));
  t.AddNode(3, {{"CPU", 8}});
  CHECK(ReplaceAfterDeath(t, group, 2) == RayletOf(1));
  CHECK(NodesOf(t.Get(group)) == std::set<std::string>{Hex(1)});
}

TEST_CASE("a lost PACK bundle goes elsewhere when the group's nodes are full", "[placement_groups]") {
  PgGcs t;
  t.pgs->OnNodeAdded(t.gcs.AddNode(1, {{"CPU", 2}}, false, Shape{{"CPU", 1}}));
  t.AddNode(2, {{"CPU", 1}});
  const PG group = MakeGroup(PG::PACK, {{{"CPU", 1}}, {{"CPU", 1}}});
  REQUIRE_OK(t.pgs->Create(group));
  t.Reserve();
  REQUIRE(t.gcs.nodes.ReportResources(test_util::Id(1), Map({{"CPU", 0}}), {}));
  t.AddNode(3, {{"CPU", 1}});
  CHECK(ReplaceAfterDeath(t, group, 2) == RayletOf(3));
}

TEST_CASE("a lost SPREAD bundle prefers a node that holds none of the group", "[placement_groups]") {
  PgGcs t;
  t.AddNode(1, {{"CPU", 1}});
  t.AddNode(2, {{"CPU", 8}});
  const PG group = MakeGroup(PG::SPREAD, {{{"CPU", 1}}, {{"CPU", 1}}});
  REQUIRE_OK(t.pgs->Create(group));
  t.Reserve();
  REQUIRE(NodesOf(t.Get(group)) == std::set<std::string>{Hex(1), Hex(2)});
  REQUIRE(t.gcs.nodes.ReportResources(test_util::Id(2), Map({{"CPU", 7}}), {}));
  t.pgs->OnNodeAdded(t.gcs.AddNode(3, {{"CPU", 4}}, false, Shape{{"CPU", 1}}));
  // Node 2 is far less used, but it already holds a bundle of the group.
  CHECK(ReplaceAfterDeath(t, group, 1) == RayletOf(3));
  CHECK(NodesOf(t.Get(group)) == std::set<std::string>{Hex(2), Hex(3)});
}

TEST_CASE("removing a group cancels its bundles everywhere and kills its actors", "[placement_groups]") {
  PgGcs t;
  t.AddNode(1, {{"CPU", 4}}, true);
  t.AddNode(2, {{"CPU", 4}});
  const PG group = MakeGroup(PG::STRICT_SPREAD, {{{"CPU", 1}}, {{"CPU", 1}}}, "trainers", "ns");
  REQUIRE_OK(t.pgs->Create(group));
  t.Reserve();
  REQUIRE(t.Get(group).state() == PG::CREATED);

  rpc::RegisterActorRequest alive = MakeActor();
  alive.mutable_creation_spec()->set_placement_group_id(group.placement_group_id());
  CreateAlive(t.gcs, alive);
  rpc::RegisterActorRequest outside = MakeActor();
  CreateAlive(t.gcs, outside);
  rpc::RegisterActorRequest pending = MakeActor();
  pending.mutable_creation_spec()->set_placement_group_id(group.placement_group_id());
  REQUIRE_OK(t.gcs.actors->RegisterActor(pending));

  REQUIRE_OK(t.pgs->Remove(group.placement_group_id()));
  const auto cancels = t.Cancels();
  REQUIRE(cancels.size() == 2);
  std::set<std::string> raylets;
  for (const auto& c : cancels) {
    CHECK(c.group_removed);
    CHECK(c.bundles.size() == 1);
    raylets.insert(c.raylet);
  }
  CHECK(raylets == std::set<std::string>{RayletOf(1), RayletOf(2)});
  for (int n : {1, 2}) {
    for (const auto& [name, units] : t.gcs.nodes.Get(test_util::Id(n))->resources_total().amounts()) {
      CHECK_FALSE(IsBundleResource(name));  // returned with the group
    }
  }
  const PG removed = t.Get(group);
  CHECK(removed.state() == PG::REMOVED);
  CHECK(removed.remove_time_ms() == absl::ToUnixMillis(t.gcs.clock.Now()));
  for (const auto* req : {&alive, &pending}) {
    const rpc::ActorInfo info = Info(t.gcs, IdOf(*req));
    CHECK(info.state() == rpc::ActorInfo::DEAD);
    CHECK(info.death_type() == rpc::PLACEMENT_GROUP_REMOVED);
    CHECK(absl::StrContains(info.death_cause(), "placement group"));
  }
  CHECK(Info(t.gcs, IdOf(outside)).state() == rpc::ActorInfo::ALIVE);

  // An actor registered in the removed group dies at once.
  const size_t leases_before = t.gcs.net.NumLeaseCalls();
  rpc::RegisterActorRequest late = MakeActor();
  late.mutable_creation_spec()->set_placement_group_id(group.placement_group_id());
  REQUIRE_OK(t.gcs.actors->RegisterActor(late));
  CHECK(Info(t.gcs, IdOf(late)).state() == rpc::ActorInfo::DEAD);
  CHECK(Info(t.gcs, IdOf(late)).death_type() == rpc::PLACEMENT_GROUP_REMOVED);
  CHECK(t.gcs.net.NumLeaseCalls() == leases_before);  // never asked for a lease

  // Idempotent; unknown ids are NotFound; the name is free again.
  REQUIRE_OK(t.pgs->Remove(group.placement_group_id()));
  CHECK(t.Cancels().size() == 2);
  CHECK_CODE(t.pgs->Remove(PlacementGroupId::FromRandom().Binary()), kNotFound);
  rpc::GetPlacementGroupRequest by_name;
  by_name.set_name("trainers");
  by_name.set_ray_namespace("ns");
  CHECK_CODE(t.pgs->Get(by_name), kNotFound);
  REQUIRE_OK(t.pgs->Create(MakeGroup(PG::PACK, {{{"CPU", 1}}}, "trainers", "ns")));
  CHECK(t.pgs->Get(by_name)->state() == PG::PENDING);
}

TEST_CASE("removing a group while it is being reserved cancels what was prepared", "[placement_groups]") {
  PgGcs t;
  t.AddNode(1, {{"CPU", 4}}, true);
  const PG group = MakeGroup(PG::PACK, {{{"CPU", 1}}});
  REQUIRE_OK(t.pgs->Create(group));
  REQUIRE(t.client.Open(Kind::kPrepare) == 1);
  REQUIRE_OK(t.pgs->Remove(group.placement_group_id()));
  REQUIRE(t.Cancels().size() == 1);
  CHECK(t.Cancels()[0].group_removed);
  t.Answer(Kind::kPrepare);  // the prepare lands after the cancel: cancelled again
  CHECK(t.client.Open(Kind::kCommit) == 0);
  REQUIRE(t.Cancels().size() == 2);
  CHECK(t.Cancels()[1].group_removed);
  CHECK(t.Get(group).state() == PG::REMOVED);
  CHECK_FALSE(t.pgs->Reserving());
}

TEST_CASE("a finished job's groups are removed, detached ones stay", "[placement_groups]") {
  PgGcs t;
  t.AddNode(1, {{"CPU", 4}}, true);
  const PG mine = MakeGroup(PG::PACK, {{{"CPU", 1}}});
  const PG detached = MakeGroup(PG::PACK, {{{"CPU", 1}}}, "", "", /*detached=*/true);
  REQUIRE_OK(t.pgs->Create(mine));
  t.Reserve();
  REQUIRE_OK(t.pgs->Create(detached));
  t.Reserve();
  t.pgs->OnJobFinished(JobId::FromInt(1));
  CHECK(t.Get(mine).state() == PG::REMOVED);
  CHECK(t.Get(detached).state() == PG::CREATED);
}

TEST_CASE("Create validates its request", "[placement_groups]") {
  PgGcs t;
  t.AddNode(1, {{"CPU", 4}}, true);
  const PG named = MakeGroup(PG::PACK, {{{"CPU", 1}}}, "g", "ns");
  REQUIRE_OK(t.pgs->Create(named));
  REQUIRE_OK(t.pgs->Create(named));  // a retried call
  CHECK_CODE(t.pgs->Create(MakeGroup(PG::PACK, {{{"CPU", 1}}}, "g", "ns")), kAlreadyExists);
  REQUIRE_OK(t.pgs->Create(MakeGroup(PG::PACK, {{{"CPU", 1}}}, "g", "other")));

  PG other_under_same_id = MakeGroup(PG::SPREAD, {{{"CPU", 2}}});
  other_under_same_id.set_placement_group_id(named.placement_group_id());
  CHECK_CODE(t.pgs->Create(other_under_same_id), kInvalidArgument);

  PG no_bundles = MakeGroup(PG::PACK, {});
  CHECK_CODE(t.pgs->Create(no_bundles), kInvalidArgument);
  PG empty_bundle = MakeGroup(PG::PACK, std::vector<Shape>{Shape{}});
  CHECK_CODE(t.pgs->Create(empty_bundle), kInvalidArgument);
  PG bad_gpu = MakeGroup(PG::PACK, {{{"GPU", 1.5}}});
  CHECK_CODE(t.pgs->Create(bad_gpu), kInvalidArgument);
  PG bad_index = MakeGroup(PG::PACK, {{{"CPU", 1}}, {{"CPU", 1}}});
  bad_index.mutable_bundles(1)->set_bundle_index(5);
  CHECK_CODE(t.pgs->Create(bad_index), kInvalidArgument);
  PG bad_id = MakeGroup(PG::PACK, {{{"CPU", 1}}});
  bad_id.set_placement_group_id("short");
  CHECK_CODE(t.pgs->Create(bad_id), kInvalidArgument);
  PG bad_strategy = MakeGroup(PG::PACK, {{{"CPU", 1}}});
  bad_strategy.set_strategy(static_cast<PG::Strategy>(9));
  CHECK_CODE(t.pgs->Create(bad_strategy), kInvalidArgument);
  PG bundle_name = MakeGroup(PG::PACK, {{{"CPU_group_" + PlacementGroupId::FromRandom().Hex(), 1}}});
  CHECK_CODE(t.pgs->Create(bundle_name), kInvalidArgument);
  CHECK(t.pgs->GetAll(0).total() == 2);
  CHECK(t.pgs->GetAll(1).groups_size() == 1);
  CHECK(t.pgs->GetAll(1).groups(0).placement_group_id() == named.placement_group_id());
}

TEST_CASE("WaitUntilReady answers on CREATED, REMOVED, timeout and shutdown", "[placement_groups]") {
  PgGcs t;
  t.AddNode(1, {{"CPU", 1}}, true);
  const PG group = MakeGroup(PG::PACK, {{{"CPU", 1}}});
  const PG later = MakeGroup(PG::PACK, {{{"CPU", 1}}});
  REQUIRE_OK(t.pgs->Create(group));
  REQUIRE_OK(t.pgs->Create(later));
  auto wait = [&](const PG& g, int64_t timeout_ms) {
    auto out = std::make_shared<std::optional<absl::StatusOr<PG>>>();
    rpc::WaitPlacementGroupUntilReadyRequest req;
    req.set_placement_group_id(g.placement_group_id());
    req.set_timeout_ms(timeout_ms);
    t.pgs->WaitUntilReady(req, [out](absl::StatusOr<PG> r) { *out = std::move(r); });
    return out;
  };
  auto unknown = wait(MakeGroup(PG::PACK, {{{"CPU", 1}}}), 1000);
  REQUIRE(unknown->has_value());
  CHECK_CODE(**unknown, kNotFound);
  auto now = wait(group, 0);
  REQUIRE(now->has_value());
  CHECK_CODE(**now, kDeadlineExceeded);

  auto ready = wait(group, 5000);
  auto times_out = wait(later, 2000);
  auto removed = wait(later, -1);
  auto at_shutdown = wait(later, -1);
  CHECK_FALSE(ready->has_value());
  t.Reserve();
  REQUIRE(ready->has_value());
  REQUIRE_OK(**ready);
  CHECK((**ready)->state() == PG::CREATED);
  CHECK(wait(group, 0)->value().ok());

  t.gcs.clock.Advance(absl::Milliseconds(2000));
  t.pgs->Tick();
  REQUIRE(times_out->has_value());
  CHECK_CODE(**times_out, kDeadlineExceeded);
  CHECK_FALSE(removed->has_value());
  REQUIRE_OK(t.pgs->Remove(later.placement_group_id()));
  REQUIRE(removed->has_value());
  CHECK_CODE(**removed, kFailedPrecondition);
  CHECK_CODE(**wait(later, 1000), kFailedPrecondition);
  REQUIRE(at_shutdown->has_value());  // answered by the removal too

  const PG stuck = MakeGroup(PG::PACK, {{{"CPU", 100}}});
  REQUIRE_OK(t.pgs->Create(stuck));
  auto pending = wait(stuck, -1);
  t.pgs->Shutdown();
  REQUIRE(pending->has_value());
  CHECK_CODE(**pending, kUnavailable);
}

TEST_CASE("removed groups are kept for display up to a bound", "[placement_groups]") {
  PgGcs t(nullptr, /*max_removed=*/2);
  t.AddNode(1, {{"CPU", 4}}, true);
  std::vector<PG> groups;
  for (int i = 0; i < 3; ++i) {
    groups.push_back(MakeGroup(PG::PACK, {{{"CPU", 1}}}));
    REQUIRE_OK(t.pgs->Create(groups.back()));
    t.Reserve();
    t.gcs.clock.Advance(absl::Seconds(1));
    REQUIRE_OK(t.pgs->Remove(groups.back().placement_group_id()));
  }
  CHECK(t.pgs->GetAll(0).total() == 2);
  rpc::GetPlacementGroupRequest oldest;
  oldest.set_placement_group_id(groups[0].placement_group_id());
  CHECK_CODE(t.pgs->Get(oldest), kNotFound);
  CHECK(t.Get(groups[2]).state() == PG::REMOVED);
}

TEMPLATE_TEST_CASE("placement groups survive a GCS restart in the store", "[placement_groups]", test::MemoryBackend,
                   test::RedisBackend) {
  SHOAL_BACKEND(backend);
  const PG created = MakeGroup(PG::STRICT_SPREAD, {{{"CPU", 1}}, {{"CPU", 1}}}, "kept");
  const PG preparing = MakeGroup(PG::PACK, {{{"CPU", 1}}});
  const PG removed = MakeGroup(PG::PACK, {{{"CPU", 1}}});
  {
    PgGcs t(&backend.store());
    t.AddNode(1, {{"CPU", 2}}, true);
    t.AddNode(2, {{"CPU", 2}});
    REQUIRE_OK(t.pgs->Create(removed));
    t.Reserve();
    REQUIRE_OK(t.pgs->Remove(removed.placement_group_id()));
    REQUIRE_OK(t.pgs->Create(created));
    t.Reserve();
    REQUIRE_OK(t.pgs->Create(preparing));
    REQUIRE(t.client.Open(Kind::kPrepare) == 1);  // the GCS goes down with this prepare in flight
    t.pgs->Shutdown();
    t.gcs.actors->Shutdown();
  }
  PgGcs t(&backend.Reopen());
  REQUIRE_OK(t.gcs.nodes.Load());
  REQUIRE_OK(t.pgs->Load());
  CHECK(t.Get(created).state() == PG::CREATED);
  CHECK(NodesOf(t.Get(created)) == std::set<std::string>{Hex(1), Hex(2)});
  CHECK(t.Get(removed).state() == PG::REMOVED);
  CHECK(t.Get(preparing).state() == PG::PENDING);
  rpc::GetPlacementGroupRequest by_name;
  by_name.set_name("kept");
  CHECK(t.pgs->Get(by_name)->placement_group_id() == created.placement_group_id());

  // Every alive raylet is told what it holds; nothing is prepared before they answered.
  REQUIRE(t.client.Open(Kind::kRelease) == 2);
  for (const auto& call : t.client.history()) {
    REQUIRE(call.kind == Kind::kRelease);
    REQUIRE(call.bundles.size() == 1);
    CHECK(call.bundles[0].placement_group_id() == created.placement_group_id());
    CHECK(call.raylet == RayletOf(call.bundles[0].node_id() == Hex(1) ? 1 : 2));
  }
  CHECK(t.client.Open(Kind::kPrepare) == 0);
  auto release = t.client.Take(Kind::kRelease);
  release->release_done(absl::OkStatus(), 1);
  CHECK(t.client.Open(Kind::kPrepare) == 0);
  release = t.client.Take(Kind::kRelease);
  release->release_done(absl::UnavailableError("down"), 0);
  // The group in flight at the crash is scheduled again.
  t.Reserve();
  CHECK(t.Get(preparing).state() == PG::CREATED);
  // Groups stay watched: a node death reschedules.
  t.KillNode(1);
  CHECK(t.Get(created).state() == PG::RESCHEDULING);
}

}  // namespace
}  // namespace shoal
