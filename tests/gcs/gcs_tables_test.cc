#include "src/gcs/gcs_tables.h"

#include <catch2/catch.hpp>

#include <algorithm>
#include <atomic>
#include <memory>
#include <optional>
#include <map>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "shoal/common.pb.h"
#include "src/common/fake_clock.h"
#include "src/gcs/fake_node_change_listener.h"
#include "tests/test_util/printers.h"
#include "tests/test_util/resource_helpers.h"
#include "tests/test_util/status_matchers.h"
#include "tests/test_util/store_backends.h"

namespace shoal {
namespace {

using test_util::RS;

using test::MemoryBackend;
using test::RedisBackend;

rpc::ResourceMap Map(const std::map<std::string, double>& values) {
  auto set = ResourceSet::FromDoubles(values);
  REQUIRE_OK(set);
  rpc::ResourceMap out;
  set->ToProto(&out);
  return out;
}

rpc::NodeInfo MakeNode(const NodeId& id, const std::map<std::string, double>& total,
                       const std::string& address = "10.0.0.1") {
  rpc::NodeInfo node;
  node.set_node_id(id.Hex());
  node.set_address(address);
  node.set_raylet_port(7000);
  node.set_hostname("host-" + id.Hex().substr(0, 6));
  *node.mutable_resources_total() = Map(total);
  return node;
}

rpc::ResourceDemand Demand(const std::map<std::string, double>& shape, int64_t count,
                           bool infeasible = false) {
  rpc::ResourceDemand d;
  *d.mutable_shape() = Map(shape);
  d.set_count(count);
  d.set_infeasible(infeasible);
  return d;
}

std::vector<std::string> Ids(const std::vector<rpc::NodeInfo>& nodes) {
  std::vector<std::string> out;
  for (const auto& n : nodes) out.push_back(n.node_id());
  std::sort(out.begin(), out.end());
  return out;
}

std::vector<std::string> Sorted(std::vector<std::string> v) {
  std::sort(v.begin(), v.end());
  return v;
}

// ---------------------------------------------------------------- NodeTable

TEMPLATE_TEST_CASE("NodeTable Register adds an alive node", "[gcs][tables][nodes]", MemoryBackend,
                   RedisBackend) {
  SHOAL_BACKEND(backend);
  FakeClock clock;
  NodeChangeFeed feed;
  NodeTable table(backend.store(), clock, feed);
  const NodeId id = NodeId::FromRandom();
  REQUIRE_OK(table.Register(MakeNode(id, {{"CPU", 4}, {"GPU", 1}})));

  auto got = table.Get(id);
  REQUIRE(got.has_value());
  CHECK(got->state() == rpc::NodeInfo::ALIVE);
  CHECK(got->address() == "10.0.0.1");
  CHECK(got->start_time_ms() == absl::ToUnixMillis(clock.Now()));
  CHECK(ResourceSet::FromProto(got->resources_available()) == RS({{"CPU", 4}, {"GPU", 1}}));
  CHECK(Ids(table.GetAll(/*alive_only=*/true)) == std::vector<std::string>{id.Hex()});
  CHECK_FALSE(table.Get(NodeId::FromRandom()).has_value());

  SECTION("a second registration of the live node is refused, naming it, and changes nothing") {
    clock.Advance(absl::Seconds(5));
    rpc::NodeInfo again = MakeNode(id, {{"CPU", 1000}}, "10.0.0.2");
    again.set_start_time_ms(123);
    absl::Status s = table.Register(again);
    CHECK_CODE(s, kAlreadyExists);
    CHECK(absl::StrContains(s.message(), id.Hex()));
    // Spelled in upper case, it is the same node.
    again.set_node_id(absl::AsciiStrToUpper(id.Hex()));
    CHECK_CODE(table.Register(again), kAlreadyExists);
    auto kept = table.Get(id);
    REQUIRE(kept.has_value());
    CHECK(kept->address() == "10.0.0.1");
    CHECK(kept->start_time_ms() != 123);
    CHECK(ResourceSet::FromProto(kept->resources_total()) == RS({{"CPU", 4}, {"GPU", 1}}));
    CHECK(table.GetAll(false).size() == 1);
    // Restored from storage after a GCS restart, it is alive: still refused.
    NodeChangeFeed other_feed;
    NodeTable restarted(backend.Reopen(), clock, other_feed);
    REQUIRE_OK(restarted.Load());
    CHECK_CODE(restarted.Register(MakeNode(id, {{"CPU", 1}})), kAlreadyExists);
  }
}

TEMPLATE_TEST_CASE("NodeTable Register validates the node", "[gcs][tables][nodes]", MemoryBackend,
                   RedisBackend) {
  SHOAL_BACKEND(backend);
  FakeClock clock;
  NodeChangeFeed feed;
  NodeTable table(backend.store(), clock, feed);
  rpc::NodeInfo node = MakeNode(NodeId::FromRandom(), {{"CPU", 1}});
  SECTION("bad id") {
    node.set_node_id("not-hex");
    CHECK_CODE(table.Register(node), kInvalidArgument);
    node.set_node_id(JobId::FromInt(1).Hex());  // hex, wrong length
    CHECK_CODE(table.Register(node), kInvalidArgument);
  }
  SECTION("no address") {
    node.set_address("");
    CHECK_CODE(table.Register(node), kInvalidArgument);
  }
  SECTION("port out of range") {
    node.set_raylet_port(0);
    CHECK_CODE(table.Register(node), kInvalidArgument);
    node.set_raylet_port(65536);
    CHECK_CODE(table.Register(node), kInvalidArgument);
    node.set_raylet_port(-1);
    CHECK_CODE(table.Register(node), kInvalidArgument);
  }
  CHECK(table.GetAll(false).empty());
}

TEMPLATE_TEST_CASE("NodeTable MarkDead", "[gcs][tables][nodes]", MemoryBackend, RedisBackend) {
  SHOAL_BACKEND(backend);
  FakeClock clock;
  NodeChangeFeed feed;
  NodeTable table(backend.store(), clock, feed);
  const NodeId a = NodeId::FromRandom(), b = NodeId::FromRandom();
  REQUIRE_OK(table.Register(MakeNode(a, {{"CPU", 4}})));
  REQUIRE_OK(table.Register(MakeNode(b, {{"CPU", 4}})));

  CHECK_CODE(table.MarkDead(NodeId::FromRandom(), "who?"), kNotFound);

  clock.Advance(absl::Seconds(10));
  REQUIRE_OK(table.MarkDead(a, "health check failed"));
  auto dead = table.Get(a);
  REQUIRE(dead.has_value());
  CHECK(dead->state() == rpc::NodeInfo::DEAD);
  CHECK(dead->death_reason() == "health check failed");
  CHECK(dead->death_time_ms() == absl::ToUnixMillis(clock.Now()));
  CHECK(Ids(table.GetAll(/*alive_only=*/true)) == std::vector<std::string>{b.Hex()});
  CHECK(Ids(table.GetAll(/*alive_only=*/false)) == Sorted({a.Hex(), b.Hex()}));

  SECTION("marking a dead node again changes nothing") {
    clock.Advance(absl::Seconds(10));
    REQUIRE_OK(table.MarkDead(a, "second reason"));
    auto still = table.Get(a);
    REQUIRE(still.has_value());
    CHECK(still->death_reason() == "health check failed");
    CHECK(still->death_time_ms() == dead->death_time_ms());
  }
  SECTION("a dead node id cannot register again") {
    CHECK_CODE(table.Register(MakeNode(a, {{"CPU", 4}})), kFailedPrecondition);
    CHECK(table.Get(a)->state() == rpc::NodeInfo::DEAD);
    CHECK(table.GetAll(true).size() == 1);
  }
}

TEMPLATE_TEST_CASE("NodeTable ReportResources only for alive known nodes", "[gcs][tables][nodes]",
                   MemoryBackend, RedisBackend) {
  SHOAL_BACKEND(backend);
  FakeClock clock;
  NodeChangeFeed feed;
  NodeTable table(backend.store(), clock, feed);
  const NodeId a = NodeId::FromRandom(), gone = NodeId::FromRandom();
  REQUIRE_OK(table.Register(MakeNode(a, {{"CPU", 4}})));
  REQUIRE_OK(table.Register(MakeNode(gone, {{"CPU", 4}})));
  REQUIRE_OK(table.MarkDead(gone, "bye"));

  CHECK_FALSE(table.ReportResources(NodeId::FromRandom(), Map({{"CPU", 1}}), {}));
  CHECK_FALSE(table.ReportResources(gone, Map({{"CPU", 1}}), {}));
  CHECK(table.Get(gone)->demands().empty());

  REQUIRE(table.ReportResources(a, Map({{"CPU", 1.5}}), {Demand({{"CPU", 1}}, 3)}));
  auto got = table.Get(a);
  REQUIRE(got.has_value());
  CHECK(ResourceSet::FromProto(got->resources_available()) == RS({{"CPU", 1.5}}));
  REQUIRE(got->demands_size() == 1);
  CHECK(got->demands(0).count() == 3);

  // A report replaces the previous one, demands included.
  REQUIRE(table.ReportResources(a, Map({{"CPU", 4}}), {}));
  CHECK(table.Get(a)->demands().empty());
  CHECK(ResourceSet::FromProto(table.Get(a)->resources_available()) == RS({{"CPU", 4}}));

  // A reported total (bundles committed) replaces the registered one; an empty one keeps it.
  const std::string bundle = "CPU_group_0_" + std::string(36, 'a');
  REQUIRE(table.ReportResources(a, Map({{"CPU", 2}, {bundle, 2}}), {}, Map({{"CPU", 4}, {bundle, 2}})));
  CHECK(ResourceSet::FromProto(table.Get(a)->resources_total()) == RS({{"CPU", 4}, {bundle, 2}}));
  REQUIRE(table.ReportResources(a, Map({{"CPU", 4}}), {}));
  CHECK(ResourceSet::FromProto(table.Get(a)->resources_total()) == RS({{"CPU", 4}, {bundle, 2}}));
  REQUIRE(table.ReportResources(a, Map({{"CPU", 4}}), {}, Map({{"CPU", 4}})));
  CHECK(ResourceSet::FromProto(table.Get(a)->resources_total()) == RS({{"CPU", 4}}));

  // The GCS sets a group's committed bundle resources ahead of the report; a report's available
  // amount is kept (at most the total); other groups' names are untouched; empty removes them.
  const PlacementGroupId pg = PlacementGroupId::FromRandom(), other = PlacementGroupId::FromRandom();
  const std::string mine = BundleResourceName("CPU", pg, 0), theirs = BundleResourceName("CPU", other, 0);
  REQUIRE(table.ReportResources(a, Map({{"CPU", 2}, {mine, 0.5}, {theirs, 1}}), {},
                                Map({{"CPU", 4}, {mine, 1}, {theirs, 1}})));
  table.SetGroupResources(a, pg, RS({{mine, 2}, {BundleResourceName("CPU", pg, -1), 2}}));
  CHECK(ResourceSet::FromProto(table.Get(a)->resources_total()) ==
        RS({{"CPU", 4}, {mine, 2}, {BundleResourceName("CPU", pg, -1), 2}, {theirs, 1}}));
  CHECK(ResourceSet::FromProto(table.Get(a)->resources_available()) ==
        RS({{"CPU", 2}, {mine, 0.5}, {BundleResourceName("CPU", pg, -1), 2}, {theirs, 1}}));
  // Without bundles: the node's own resources only, in a copy; the table keeps everything.
  for (const rpc::NodeInfo& node : table.GetAllWithoutBundles(/*alive_only=*/true)) {
    if (node.node_id() != a.Hex()) continue;
    CHECK(ResourceSet::FromProto(node.resources_total()) == RS({{"CPU", 4}}));
    CHECK(ResourceSet::FromProto(node.resources_available()) == RS({{"CPU", 2}}));
    CHECK(node.address() == table.Get(a)->address());
  }
  CHECK(table.GetAllWithoutBundles(/*alive_only=*/false).size() == table.GetAll(/*alive_only=*/false).size());
  CHECK(table.GetAllWithoutBundles(/*alive_only=*/true).size() == table.GetAll(/*alive_only=*/true).size());
  CHECK(ResourceSet::FromProto(table.Get(a)->resources_total()).Get(theirs) == FixedPoint::FromInt(1));
  table.SetGroupResources(a, pg, ResourceSet());
  CHECK(ResourceSet::FromProto(table.Get(a)->resources_total()) == RS({{"CPU", 4}, {theirs, 1}}));
  CHECK(ResourceSet::FromProto(table.Get(a)->resources_available()) == RS({{"CPU", 2}, {theirs, 1}}));
  table.SetGroupResources(gone, pg, RS({{mine, 1}}));  // dead: ignored
  CHECK(table.Get(gone)->resources_total().amounts().count(mine) == 0);
  // Per-device GPU shares are kept as reported, and a report without them clears them.
  REQUIRE(table.ReportResources(a, Map({{"CPU", 4}}), {}, {}, {5000, 10000}));
  const rpc::NodeInfo with_shares = *table.Get(a);
  CHECK(std::vector<int64_t>(with_shares.gpu_free().begin(), with_shares.gpu_free().end()) ==
        std::vector<int64_t>{5000, 10000});
  REQUIRE(table.ReportResources(a, Map({{"CPU", 4}}), {}));
  CHECK(table.Get(a)->gpu_free().empty());
}

TEMPLATE_TEST_CASE("NodeTable Summarize sums alive schedulable nodes and merges demands",
                   "[gcs][tables][nodes]", MemoryBackend, RedisBackend) {
  SHOAL_BACKEND(backend);
  FakeClock clock;
  NodeChangeFeed feed;
  NodeTable table(backend.store(), clock, feed);
  const NodeId a = NodeId::FromRandom(), b = NodeId::FromRandom(), head = NodeId::FromRandom(),
               dead = NodeId::FromRandom();
  REQUIRE_OK(table.Register(MakeNode(a, {{"CPU", 4}, {"GPU", 2}})));
  REQUIRE_OK(table.Register(MakeNode(b, {{"CPU", 8}, {"memory", 1000}})));
  rpc::NodeInfo head_node = MakeNode(head, {{"CPU", 16}});
  head_node.set_is_head(true);
  head_node.set_scheduling_disabled(true);
  REQUIRE_OK(table.Register(head_node));
  REQUIRE_OK(table.Register(MakeNode(dead, {{"CPU", 32}, {"TPU", 4}})));
  REQUIRE(table.ReportResources(dead, Map({{"CPU", 32}}), {Demand({{"TPU", 8}}, 1)}));
  REQUIRE_OK(table.MarkDead(dead, "gone"));

  REQUIRE(table.ReportResources(a, Map({{"CPU", 1}, {"GPU", 0.5}}),
                                {Demand({{"CPU", 1}}, 2), Demand({{"GPU", 1}}, 1)}));
  REQUIRE(table.ReportResources(b, Map({{"CPU", 6}, {"memory", 1000}}),
                                {Demand({{"CPU", 1}}, 3), Demand({{"CPU", 1}}, 1, /*infeasible=*/true),
                                 Demand({{"GPU", 1}}, 4)}));

  const ClusterSummary summary = table.Summarize();
  CHECK(summary.total == RS({{"CPU", 12}, {"GPU", 2}, {"memory", 1000}}));
  CHECK(summary.available == RS({{"CPU", 7}, {"GPU", 0.5}, {"memory", 1000}}));

  // One entry per (shape, infeasible): {CPU:1} x5, {CPU:1} infeasible x1, {GPU:1} x5.
  std::map<std::string, int64_t> merged;
  for (const auto& d : summary.demands) {
    merged[ResourceSet::FromProto(d.shape()).ToString() + (d.infeasible() ? " infeasible" : "")] +=
        d.count();
  }
  CHECK(summary.demands.size() == 3);
  CHECK(merged == std::map<std::string, int64_t>{
                      {"{CPU: 1}", 5}, {"{CPU: 1} infeasible", 1}, {"{GPU: 1}", 5}});
}

TEMPLATE_TEST_CASE("NodeTable Summarize of an empty cluster", "[gcs][tables][nodes]", MemoryBackend,
                   RedisBackend) {
  SHOAL_BACKEND(backend);
  FakeClock clock;
  NodeChangeFeed feed;
  NodeTable table(backend.store(), clock, feed);
  const ClusterSummary summary = table.Summarize();
  CHECK(summary.total.IsEmpty());
  CHECK(summary.available.IsEmpty());
  CHECK(summary.demands.empty());
}

TEMPLATE_TEST_CASE("NodeTable GetAll lists the head first, then by start time",
                   "[gcs][tables][nodes]", MemoryBackend, RedisBackend) {
  SHOAL_BACKEND(backend);
  FakeClock clock;
  NodeChangeFeed feed;
  NodeTable table(backend.store(), clock, feed);
  const NodeId first = NodeId::FromRandom(), second = NodeId::FromRandom(), head = NodeId::FromRandom();
  REQUIRE_OK(table.Register(MakeNode(first, {{"CPU", 1}})));
  clock.Advance(absl::Seconds(1));
  REQUIRE_OK(table.Register(MakeNode(second, {{"CPU", 1}})));
  clock.Advance(absl::Seconds(1));
  rpc::NodeInfo h = MakeNode(head, {{"CPU", 1}});
  h.set_is_head(true);
  REQUIRE_OK(table.Register(h));
  auto all = table.GetAll(false);
  REQUIRE(all.size() == 3);
  CHECK(all[0].node_id() == head.Hex());
  CHECK(all[1].node_id() == first.Hex());
  CHECK(all[2].node_id() == second.Hex());
}

TEMPLATE_TEST_CASE("NodeTable Load after a GCS restart answers the alive nodes",
                   "[gcs][tables][nodes]", MemoryBackend, RedisBackend) {
  SHOAL_BACKEND(backend);
  FakeClock clock;
  NodeChangeFeed feed;
  const NodeId alive = NodeId::FromRandom(), dead = NodeId::FromRandom();
  {
    NodeTable before(backend.store(), clock, feed);
    REQUIRE_OK(before.Register(MakeNode(alive, {{"CPU", 4}, {"GPU", 1}})));
    REQUIRE_OK(before.Register(MakeNode(dead, {{"CPU", 2}})));
    REQUIRE(before.ReportResources(alive, Map({{"CPU", 1}}), {Demand({{"CPU", 1}}, 9)}));
    REQUIRE_OK(before.MarkDead(dead, "crashed"));
  }
  // A new GCS: new table, new connection to the same storage.
  NodeChangeFeed new_feed;
  NodeTable after(backend.Reopen(), clock, new_feed);
  CHECK(after.GetAll(false).empty());  // nothing until Load
  auto loaded = after.Load();
  REQUIRE_OK(loaded);
  CHECK(Ids(*loaded) == std::vector<std::string>{alive.Hex()});

  CHECK(Ids(after.GetAll(/*alive_only=*/true)) == std::vector<std::string>{alive.Hex()});
  CHECK(Ids(after.GetAll(/*alive_only=*/false)) == Sorted({alive.Hex(), dead.Hex()}));
  auto node = after.Get(alive);
  REQUIRE(node.has_value());
  CHECK(node->address() == "10.0.0.1");
  CHECK(ResourceSet::FromProto(node->resources_total()) == RS({{"CPU", 4}, {"GPU", 1}}));
  // Live reports are not stored: until the next report, available is the total.
  CHECK(ResourceSet::FromProto(node->resources_available()) == RS({{"CPU", 4}, {"GPU", 1}}));
  CHECK(node->demands().empty());
  auto dead_node = after.Get(dead);
  REQUIRE(dead_node.has_value());
  CHECK(dead_node->state() == rpc::NodeInfo::DEAD);
  CHECK(dead_node->death_reason() == "crashed");

  // The dead stay dead across the restart; the alive keep working.
  CHECK_CODE(after.Register(MakeNode(dead, {{"CPU", 2}})), kFailedPrecondition);
  CHECK(after.ReportResources(alive, Map({{"CPU", 2}}), {}));
  CHECK_FALSE(after.ReportResources(dead, Map({{"CPU", 2}}), {}));
  CHECK(after.Summarize().total == RS({{"CPU", 4}, {"GPU", 1}}));
}

TEMPLATE_TEST_CASE("NodeTable Load skips unreadable entries", "[gcs][tables][nodes]", MemoryBackend,
                   RedisBackend) {
  SHOAL_BACKEND(backend);
  FakeClock clock;
  NodeChangeFeed feed;
  const NodeId good = NodeId::FromRandom();
  {
    NodeTable before(backend.store(), clock, feed);
    REQUIRE_OK(before.Register(MakeNode(good, {{"CPU", 1}})));
  }
  // A length-delimited field with its length missing: not a NodeInfo.
  REQUIRE_OK(backend.store().Put("nodes", NodeId::FromRandom().Hex(), std::string("\x0a", 1), true));
  NodeTable after(backend.Reopen(), clock, feed);
  auto loaded = after.Load();
  REQUIRE_OK(loaded);
  CHECK(Ids(*loaded) == std::vector<std::string>{good.Hex()});
  CHECK(after.GetAll(false).size() == 1);
}

// BUG (src/gcs/gcs_tables.cc, NodeTable::Register): the table is keyed by node_id as sent,
// but looked up by NodeId::Hex() (lower case), so an upper-case id is lost to MarkDead, Get and
// ReportResources, and the dead check is bypassed by changing the case.
TEMPLATE_TEST_CASE("NodeTable finds a node registered with an upper-case hex id",
                   "[gcs][tables][nodes]", MemoryBackend, RedisBackend) {
  SHOAL_BACKEND(backend);
  FakeClock clock;
  NodeChangeFeed feed;
  NodeTable table(backend.store(), clock, feed);
  const NodeId id = NodeId::FromRandom();
  rpc::NodeInfo node = MakeNode(id, {{"CPU", 1}});
  // FromHex accepts either case, so Register accepts this id; it is the same NodeId.
  node.set_node_id(absl::AsciiStrToUpper(id.Hex()));
  REQUIRE_OK(table.Register(node));
  CHECK(table.Get(id).has_value());
  CHECK(table.ReportResources(id, Map({{"CPU", 1}}), {}));
  CHECK_OK(table.MarkDead(id, "test"));
  // Dead means dead, whichever case the id is spelled in.
  CHECK_CODE(table.Register(MakeNode(id, {{"CPU", 1}})), kFailedPrecondition);
  CHECK(table.GetAll(true).empty());
}

// ---------------------------------------------------------------- NodeChangeFeed

TEMPLATE_TEST_CASE("NodeChangeFeed tells subscribers about joins and deaths in order",
                   "[gcs][tables][feed]", MemoryBackend, RedisBackend) {
  SHOAL_BACKEND(backend);
  FakeClock clock;
  NodeChangeFeed feed;
  NodeTable table(backend.store(), clock, feed);
  const NodeId early = NodeId::FromRandom();
  REQUIRE_OK(table.Register(MakeNode(early, {{"CPU", 1}})));  // before anyone listens

  auto sub = FakeNodeChangeListener::Subscribe(feed);
  auto other = FakeNodeChangeListener::Subscribe(feed);
  REQUIRE((sub != nullptr && other != nullptr));
  const NodeId id = NodeId::FromRandom();
  REQUIRE_OK(table.Register(MakeNode(id, {{"CPU", 1}})));
  REQUIRE_OK(table.MarkDead(id, "lost"));
  REQUIRE_OK(table.MarkDead(id, "again"));  // no change, no event

  for (auto* s : {&sub, &other}) {
    auto join = (*s)->Next();
    REQUIRE(join.has_value());
    CHECK(join->node_id() == id.Hex());
    CHECK(join->state() == rpc::NodeInfo::ALIVE);
    auto death = (*s)->Next();
    REQUIRE(death.has_value());
    CHECK(death->node_id() == id.Hex());
    CHECK(death->state() == rpc::NodeInfo::DEAD);
    CHECK(death->death_reason() == "lost");
    CHECK_FALSE((*s)->Next().has_value());
  }

  SECTION("failed registrations publish nothing") {
    CHECK_CODE(table.Register(MakeNode(id, {{"CPU", 1}})), kFailedPrecondition);
    rpc::NodeInfo bad = MakeNode(NodeId::FromRandom(), {{"CPU", 1}});
    bad.set_address("");
    CHECK_CODE(table.Register(bad), kInvalidArgument);
    CHECK_FALSE(sub->Next().has_value());
  }
  SECTION("after Unsubscribe nothing more arrives") {
    feed.Unsubscribe(sub.get());
    REQUIRE_OK(table.Register(MakeNode(NodeId::FromRandom(), {{"CPU", 1}})));
    CHECK_FALSE(sub->Next().has_value());
    CHECK(other->Next().has_value());
  }
}

// ---------------------------------------------------------------- JobTable

TEMPLATE_TEST_CASE("JobTable Add assigns ids 1, 2, ...", "[gcs][tables][jobs]", MemoryBackend,
                   RedisBackend) {
  SHOAL_BACKEND(backend);
  FakeClock clock;
  JobTable jobs(backend.store(), clock);
  rpc::JobInfo job;
  job.set_entrypoint("python train.py");
  job.set_is_dead(true);  // ignored: a new job is alive
  auto first = jobs.Add(job);
  REQUIRE_OK(first);
  CHECK(*first == JobId::FromInt(1).Hex());
  clock.Advance(absl::Seconds(3));
  auto second = jobs.Add(job);
  REQUIRE_OK(second);
  CHECK(*second == JobId::FromInt(2).Hex());

  auto all = jobs.GetAll();
  REQUIRE_OK(all);
  REQUIRE(all->size() == 2);
  std::map<std::string, rpc::JobInfo> by_id;
  for (const auto& j : *all) by_id[j.job_id()] = j;
  REQUIRE(by_id.count(*first) == 1);
  REQUIRE(by_id.count(*second) == 1);
  CHECK(by_id[*first].entrypoint() == "python train.py");
  CHECK_FALSE(by_id[*first].is_dead());
  CHECK(by_id[*second].start_time_ms() - by_id[*first].start_time_ms() == 3000);
}

TEMPLATE_TEST_CASE("JobTable Add with an explicit id", "[gcs][tables][jobs]", MemoryBackend,
                   RedisBackend) {
  SHOAL_BACKEND(backend);
  FakeClock clock;
  JobTable jobs(backend.store(), clock);
  rpc::JobInfo job;
  job.set_job_id(JobId::FromInt(100).Hex());
  job.set_start_time_ms(42);
  auto added = jobs.Add(job);
  REQUIRE_OK(added);
  CHECK(*added == JobId::FromInt(100).Hex());
  CHECK_CODE(jobs.Add(job), kAlreadyExists);

  auto all = jobs.GetAll();
  REQUIRE_OK(all);
  REQUIRE(all->size() == 1);
  CHECK(all->front().start_time_ms() == 42);  // kept when given

  rpc::JobInfo bad;
  bad.set_job_id("xyz");
  CHECK_CODE(jobs.Add(bad), kInvalidArgument);
  bad.set_job_id(NodeId::FromRandom().Hex());
  CHECK_CODE(jobs.Add(bad), kInvalidArgument);
}

// BUG (src/gcs/gcs_tables.cc, JobTable::Add): an automatic id that collides with one added
// explicitly answers AlreadyExists to a caller who asked for no particular id.
TEMPLATE_TEST_CASE("JobTable Add without an id skips ids that were taken explicitly",
                   "[gcs][tables][jobs]", MemoryBackend, RedisBackend) {
  SHOAL_BACKEND(backend);
  FakeClock clock;
  JobTable jobs(backend.store(), clock);
  rpc::JobInfo explicit_job;
  explicit_job.set_job_id(JobId::FromInt(1).Hex());
  REQUIRE_OK(jobs.Add(explicit_job));
  // Asking for a fresh id must not fail because someone chose id 1 by hand.
  auto fresh = jobs.Add(rpc::JobInfo());
  REQUIRE_OK(fresh);
  CHECK(*fresh != JobId::FromInt(1).Hex());
}

TEMPLATE_TEST_CASE("JobTable MarkFinished", "[gcs][tables][jobs]", MemoryBackend, RedisBackend) {
  SHOAL_BACKEND(backend);
  FakeClock clock;
  JobTable jobs(backend.store(), clock);
  CHECK_CODE(jobs.MarkFinished(JobId::FromInt(9).Hex()), kNotFound);
  auto id = jobs.Add(rpc::JobInfo());
  REQUIRE_OK(id);
  clock.Advance(absl::Seconds(7));
  REQUIRE_OK(jobs.MarkFinished(*id));
  auto all = jobs.GetAll();
  REQUIRE_OK(all);
  REQUIRE(all->size() == 1);
  CHECK(all->front().is_dead());
  const int64_t end = all->front().end_time_ms();
  CHECK(end - all->front().start_time_ms() == 7000);

  SECTION("finishing twice keeps the first end time") {
    clock.Advance(absl::Seconds(7));
    REQUIRE_OK(jobs.MarkFinished(*id));
    auto again = jobs.GetAll();
    REQUIRE_OK(again);
    CHECK(again->front().end_time_ms() == end);
  }
}

TEMPLATE_TEST_CASE("JobTable ids keep counting after a GCS restart", "[gcs][tables][jobs]",
                   MemoryBackend, RedisBackend) {
  SHOAL_BACKEND(backend);
  FakeClock clock;
  {
    JobTable before(backend.store(), clock);
    REQUIRE_OK(before.Add(rpc::JobInfo()));
    REQUIRE_OK(before.Add(rpc::JobInfo()));
  }
  JobTable after(backend.Reopen(), clock);
  auto all = after.GetAll();
  REQUIRE_OK(all);
  CHECK(all->size() == 2);
  auto next = after.Add(rpc::JobInfo());
  REQUIRE_OK(next);
  CHECK(*next == JobId::FromInt(3).Hex());
}

// ---------------------------------------------------------------- KvStore

TEMPLATE_TEST_CASE("KvStore Put, Get and overwrite", "[gcs][tables][kv]", MemoryBackend,
                   RedisBackend) {
  SHOAL_BACKEND(backend);
  KvStore kv(backend.store());
  auto added = kv.Put("ns", "k", "v1", false);
  REQUIRE_OK(added);
  CHECK(*added);
  auto kept = kv.Put("ns", "k", "v2", false);
  REQUIRE_OK(kept);
  CHECK_FALSE(*kept);
  CHECK(*kv.Get("ns", "k") == std::optional<std::string>("v1"));
  REQUIRE_OK(kv.Put("ns", "k", "v3", true));
  CHECK(*kv.Get("ns", "k") == std::optional<std::string>("v3"));
  CHECK(*kv.Get("ns", "missing") == std::nullopt);
  const std::string bytes("\0\xff", 2);
  REQUIRE_OK(kv.Put("ns", "bytes", bytes, false));
  CHECK(*kv.Get("ns", "bytes") == std::optional<std::string>(bytes));
}

TEMPLATE_TEST_CASE("KvStore rejects an empty key", "[gcs][tables][kv]", MemoryBackend,
                   RedisBackend) {
  SHOAL_BACKEND(backend);
  KvStore kv(backend.store());
  CHECK_CODE(kv.Put("ns", "", "v", false), kInvalidArgument);
  CHECK_CODE(kv.Put("ns", "", "v", true), kInvalidArgument);
  auto keys = kv.Keys("ns", "");
  REQUIRE_OK(keys);
  CHECK(keys->empty());
}

TEMPLATE_TEST_CASE("KvStore refuses a value over its limit, naming the limit and the size",
                   "[gcs][tables][kv]", MemoryBackend, RedisBackend) {
  SHOAL_BACKEND(backend);
  KvStore kv(backend.store(), /*max_value_bytes=*/1024);
  REQUIRE_OK(kv.Put("ns", "fits", std::string(1024, 'x'), false));
  absl::StatusOr<bool> big = kv.Put("ns", "big", std::string(1025, 'y'), true);
  CHECK_CODE(big, kResourceExhausted);
  CHECK(absl::StrContains(big.status().message(), "1025 bytes"));
  CHECK(absl::StrContains(big.status().message(), "limit of 1024 bytes"));
  CHECK(absl::StrContains(big.status().message(), "'big'"));
  CHECK(absl::StrContains(big.status().message(), "--kv-max-value-bytes"));
  CHECK(*kv.Get("ns", "big") == std::nullopt);
  // A value over the limit does not replace the one there.
  CHECK_CODE(kv.Put("ns", "fits", std::string(4096, 'z'), true), kResourceExhausted);
  CHECK(*kv.Get("ns", "fits") == std::optional<std::string>(std::string(1024, 'x')));
  CHECK(KvStore(backend.store()).Put("ns", "default", std::string(KvStore::kDefaultMaxValueBytes + 1, 'd'), true)
            .status()
            .code() == absl::StatusCode::kResourceExhausted);
}

TEMPLATE_TEST_CASE("KvStore namespaces are isolated", "[gcs][tables][kv]", MemoryBackend,
                   RedisBackend) {
  SHOAL_BACKEND(backend);
  KvStore kv(backend.store());
  REQUIRE_OK(kv.Put("a", "k", "in a", false));
  auto added = kv.Put("b", "k", "in b", false);
  REQUIRE_OK(added);
  CHECK(*added);
  // Namespaces that look like a prefix of one another are still separate.
  REQUIRE_OK(kv.Put("a", "b:k", "a / b:k", false));
  REQUIRE_OK(kv.Put("a:b", "k", "a:b / k", false));
  REQUIRE_OK(kv.Put("", "k", "default", false));

  CHECK(*kv.Get("a", "k") == std::optional<std::string>("in a"));
  CHECK(*kv.Get("b", "k") == std::optional<std::string>("in b"));
  CHECK(*kv.Get("a:b", "k") == std::optional<std::string>("a:b / k"));
  CHECK(*kv.Get("", "k") == std::optional<std::string>("default"));
  CHECK(*kv.Keys("a", "") == std::vector<std::string>{"b:k", "k"});
  CHECK(*kv.Keys("a:b", "") == std::vector<std::string>{"k"});

  auto deleted = kv.Delete("b", "", /*by_prefix=*/true);
  REQUIRE_OK(deleted);
  CHECK(*deleted == 1);
  CHECK(*kv.Get("a", "k") == std::optional<std::string>("in a"));
  CHECK(*kv.Get("b", "k") == std::nullopt);
}

TEMPLATE_TEST_CASE("KvStore Delete counts what it removed", "[gcs][tables][kv]", MemoryBackend,
                   RedisBackend) {
  SHOAL_BACKEND(backend);
  KvStore kv(backend.store());
  for (const char* k : {"job:1", "job:2", "job:3", "jobx", "other", "a*[1", "a*[2", "ab"}) {
    REQUIRE_OK(kv.Put("ns", k, "v", false));
  }
  REQUIRE_OK(kv.Put("elsewhere", "job:1", "v", false));

  SECTION("one key") {
    CHECK(*kv.Delete("ns", "job:1", false) == 1);
    CHECK(*kv.Delete("ns", "job:1", false) == 0);
    CHECK(*kv.Delete("ns", "job:", false) == 0);  // exact key only
  }
  SECTION("by prefix") {
    auto n = kv.Delete("ns", "job:", /*by_prefix=*/true);
    REQUIRE_OK(n);
    CHECK(*n == 3);
    CHECK(*kv.Keys("ns", "") == std::vector<std::string>{"a*[1", "a*[2", "ab", "jobx", "other"});
    CHECK(*kv.Delete("ns", "job:", true) == 0);
    CHECK(*kv.Get("elsewhere", "job:1") == std::optional<std::string>("v"));
  }
  SECTION("by a prefix with glob characters") {
    CHECK(*kv.Delete("ns", "a*[", true) == 2);
    CHECK(*kv.Keys("ns", "a") == std::vector<std::string>{"ab"});
  }
  SECTION("Keys by prefix") {
    CHECK(*kv.Keys("ns", "job") == std::vector<std::string>{"job:1", "job:2", "job:3", "jobx"});
    CHECK(kv.Keys("ns", "nope")->empty());
  }
}

// ---------------------------------------------------------------- storage failures

// Passes calls through to a real store until told to fail; then every call is Unavailable.
class FlakyStore : public StoreClient {
 public:
  explicit FlakyStore(StoreClient& inner) : inner_(inner) {}
  void set_failing(bool failing) { failing_ = failing; }

  absl::StatusOr<bool> Put(const std::string& t, const std::string& k, const std::string& v,
                           bool overwrite) override {
    if (failing_) return Down();
    return inner_.Put(t, k, v, overwrite);
  }
  absl::StatusOr<std::optional<std::string>> Get(const std::string& t, const std::string& k) override {
    if (failing_) return Down();
    return inner_.Get(t, k);
  }
  absl::StatusOr<std::vector<std::pair<std::string, std::string>>> GetAll(const std::string& t) override {
    if (failing_) return Down();
    return inner_.GetAll(t);
  }
  absl::StatusOr<bool> Delete(const std::string& t, const std::string& k) override {
    if (failing_) return Down();
    return inner_.Delete(t, k);
  }
  absl::StatusOr<std::vector<std::string>> Keys(const std::string& t, const std::string& p) override {
    if (failing_) return Down();
    return inner_.Keys(t, p);
  }
  absl::StatusOr<int64_t> Increment(const std::string& name) override {
    if (failing_) return Down();
    return inner_.Increment(name);
  }
  std::string Name() const override { return "flaky"; }

 private:
  static absl::Status Down() { return absl::UnavailableError("store is down"); }
  StoreClient& inner_;
  std::atomic<bool> failing_{false};
};

TEST_CASE("Tables answer the store's status when storage fails", "[gcs][tables]") {
  InMemoryStoreClient memory;
  FlakyStore store(memory);
  FakeClock clock;
  NodeChangeFeed feed;
  NodeTable nodes(store, clock, feed);
  JobTable jobs(store, clock);
  KvStore kv(store);
  const NodeId id = NodeId::FromRandom();
  REQUIRE_OK(nodes.Register(MakeNode(id, {{"CPU", 1}})));
  auto job = jobs.Add(rpc::JobInfo());
  REQUIRE_OK(job);
  auto sub = FakeNodeChangeListener::Subscribe(feed);
  REQUIRE(sub != nullptr);
  store.set_failing(true);

  SECTION("node registration is not half done") {
    const NodeId other = NodeId::FromRandom();
    CHECK_CODE(nodes.Register(MakeNode(other, {{"CPU", 1}})), kUnavailable);
    CHECK_FALSE(nodes.Get(other).has_value());
    CHECK_FALSE(sub->Next().has_value());
    CHECK_CODE(nodes.Load(), kUnavailable);
  }
  SECTION("jobs and KV") {
    CHECK_CODE(jobs.Add(rpc::JobInfo()), kUnavailable);
    CHECK_CODE(jobs.MarkFinished(*job), kUnavailable);
    CHECK_CODE(jobs.GetAll(), kUnavailable);
    CHECK_CODE(kv.Put("ns", "k", "v", true), kUnavailable);
    CHECK_CODE(kv.Get("ns", "k"), kUnavailable);
    CHECK_CODE(kv.Keys("ns", ""), kUnavailable);
    CHECK_CODE(kv.Delete("ns", "k", false), kUnavailable);
    CHECK_CODE(kv.Delete("ns", "k", true), kUnavailable);
  }
}

// BUG (src/gcs/gcs_tables.cc, NodeTable::MarkDead): when the death cannot be written, MarkDead
// logs and answers OK. The death then lives only in memory: a retry answers OK without writing
// (the node is already dead in memory), and after a GCS restart Load() brings the node back as
// alive.
TEST_CASE("NodeTable MarkDead answers the store's status when the death cannot be written",
          "[gcs][tables][nodes]") {
  InMemoryStoreClient memory;
  FlakyStore store(memory);
  FakeClock clock;
  NodeChangeFeed feed;
  NodeTable nodes(store, clock, feed);
  const NodeId id = NodeId::FromRandom();
  REQUIRE_OK(nodes.Register(MakeNode(id, {{"CPU", 1}})));
  store.set_failing(true);
  CHECK_CODE(nodes.MarkDead(id, "lost"), kUnavailable);
  store.set_failing(false);
  // Whatever MarkDead answered, once storage is back a retry must leave the death on record.
  (void)nodes.MarkDead(id, "lost");
  NodeTable restarted(memory, clock, feed);
  auto alive = restarted.Load();
  REQUIRE_OK(alive);
  CHECK(alive->empty());
}

// ---------------------------------------------------------------- concurrency

TEMPLATE_TEST_CASE("NodeTable and the feed under concurrent registrations", "[gcs][tables][nodes]",
                   MemoryBackend, RedisBackend) {
  SHOAL_BACKEND(backend);
  FakeClock clock;
  NodeChangeFeed feed;
  NodeTable table(backend.store(), clock, feed);
  auto sub = FakeNodeChangeListener::Subscribe(feed);
  REQUIRE(sub != nullptr);
  constexpr int kThreads = 4, kPerThread = 24;  // even: half of each thread's nodes die
  std::vector<std::thread> threads;
  std::atomic<int> failures{0};
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < kPerThread; ++i) {
        const NodeId id = NodeId::FromRandom();
        if (!table.Register(MakeNode(id, {{"CPU", 1}})).ok()) failures++;
        if (!table.ReportResources(id, Map({{"CPU", 0.5}}), {})) failures++;
        if (i % 2 == 0 && !table.MarkDead(id, "half").ok()) failures++;
      }
    });
  }
  for (auto& t : threads) t.join();
  CHECK(failures == 0);
  CHECK(table.GetAll(false).size() == kThreads * kPerThread);
  CHECK(table.GetAll(true).size() == kThreads * kPerThread / 2);
  CHECK(table.Summarize().total == RS({{"CPU", kThreads * kPerThread / 2}}));
  int events = 0;
  while (sub->Next().has_value()) ++events;
  CHECK(events == kThreads * kPerThread * 3 / 2);  // every join, and half as many deaths
}

TEMPLATE_TEST_CASE("JobTable hands out distinct ids to concurrent callers", "[gcs][tables][jobs]",
                   MemoryBackend, RedisBackend) {
  SHOAL_BACKEND(backend);
  FakeClock clock;
  JobTable jobs(backend.store(), clock);
  constexpr int kThreads = 4, kPerThread = 25;
  std::vector<std::vector<std::string>> ids(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        auto id = jobs.Add(rpc::JobInfo());
        ids[t].push_back(id.ok() ? *id : id.status().ToString());
      }
    });
  }
  for (auto& t : threads) t.join();
  std::set<std::string> all;
  for (const auto& v : ids) all.insert(v.begin(), v.end());
  std::set<std::string> want;
  for (uint32_t i = 1; i <= kThreads * kPerThread; ++i) want.insert(JobId::FromInt(i).Hex());
  CHECK(all == want);
}

// BUG (src/gcs/gcs_tables.cc, JobTable::Add/MarkFinished): explicit ids are stored as sent, so
// "0A000000" and "0a000000" (the same JobId) become two jobs, and MarkFinished finds a job only
// by the exact spelling it was added with.
TEMPLATE_TEST_CASE("JobTable treats an upper-case id as the same job", "[gcs][tables][jobs]",
                   MemoryBackend, RedisBackend) {
  SHOAL_BACKEND(backend);
  FakeClock clock;
  JobTable jobs(backend.store(), clock);
  rpc::JobInfo job;
  job.set_job_id("0a000000");
  REQUIRE_OK(jobs.Add(job));
  job.set_job_id("0A000000");
  CHECK_CODE(jobs.Add(job), kAlreadyExists);
  auto all = jobs.GetAll();
  REQUIRE_OK(all);
  CHECK(all->size() == 1);
  auto auto_id = jobs.Add(rpc::JobInfo());
  REQUIRE_OK(auto_id);
  CHECK_OK(jobs.MarkFinished(absl::AsciiStrToUpper(*auto_id)));
}

}  // namespace
}  // namespace shoal
