#include "src/raylet/bundle_manager.h"

#include <catch2/catch.hpp>

#include <map>
#include <string>
#include <vector>

#include "shoal/common.pb.h"
#include "src/common/bundle_resources.h"
#include "tests/raylet/lease_test_fixture.h"
#include "tests/test_util/printers.h"
#include "tests/test_util/resource_helpers.h"
#include "tests/test_util/status_matchers.h"

namespace shoal {
namespace {

using namespace raylet_test;  // NOLINT: the fixture's names

PlacementGroupId Pg(int n) {
  std::string bin(PlacementGroupId::kSize, '\0');
  bin[0] = static_cast<char>(n);
  return *PlacementGroupId::FromBinary(bin);
}

rpc::Bundle MakeBundle(const PlacementGroupId& pg, int index, const std::map<std::string, double>& resources = {}) {
  rpc::Bundle b;
  b.set_placement_group_id(pg.Binary());
  b.set_bundle_index(index);
  RS(resources).ToProto(b.mutable_resources());
  return b;
}

BundleManager::Bundles List(std::initializer_list<rpc::Bundle> bundles) {
  BundleManager::Bundles out;
  for (const rpc::Bundle& b : bundles) *out.Add() = b;
  return out;
}

// A lease manager on node 1 (CPU 4, GPU 2 unless told) and a bundle manager on it.
struct BundleTest : LeaseTest {
  explicit BundleTest(Options o = {}) : LeaseTest(o), bundles(leases, Id(1)) {}

  // Requests `request` in bundle `index` (-1: any) of `pg`, and registers started workers.
  uint64_t RequestIn(const PlacementGroupId& pg, int index, const std::map<std::string, double>& request) {
    uint64_t id = RequestDemand(FormatBundleDemand(RS(request), pg, index));
    RegisterAll();
    return id;
  }
  Reply GrantIn(const PlacementGroupId& pg, int index, const std::map<std::string, double>& request) {
    const uint64_t id = RequestIn(pg, index, request);
    const Reply& r = ReplyOf(id);
    REQUIRE(r.kind() == Reply::GRANTED);
    return r;
  }
  bool Infeasible(const ResourceSet& demand) const {
    for (const DemandSummary& d : leases.Demands()) {
      if (d.shape == demand) return d.infeasible;
    }
    FAIL("no such demand: " << demand.ToString());
    return false;
  }

  BundleManager bundles;
};

const PlacementGroupId kPg = Pg(1);

TEST_CASE("Prepare takes a bundle from the pool, commit adds its names, cancel gives all back",
          "[bundle_manager]") {
  BundleTest t;
  const ResourceSet before_total = t.Total();
  const ResourceSet before = t.leases.Available();
  REQUIRE_OK(t.bundles.Prepare(List({MakeBundle(kPg, 0, {{"CPU", 2}, {"GPU", 0.5}})})));
  CHECK(t.bundles.StateOf(kPg, 0) == BundleManager::State::kPrepared);
  CHECK(t.leases.Available() == RS({{"CPU", 2}, {"GPU", 1.5}}));
  CHECK(t.Total() == before_total);

  REQUIRE_OK(t.bundles.Commit(List({MakeBundle(kPg, 0)})));
  CHECK(t.bundles.StateOf(kPg, 0) == BundleManager::State::kCommitted);
  ResourceSet want_total = before_total;
  want_total.Add(CommittedBundleResources(RS({{"CPU", 2}, {"GPU", 0.5}}), kPg, 0));
  CHECK(t.Total() == want_total);
  CHECK(t.leases.view().Find(Id(1))->total == want_total);  // the local view follows

  REQUIRE_OK(t.bundles.Cancel(List({MakeBundle(kPg, 0)}), /*group_removed=*/false));
  CHECK(t.bundles.StateOf(kPg, 0) == BundleManager::State::kNone);
  CHECK(t.Total() == before_total);
  CHECK(t.leases.Available() == before);
  CHECK(t.leases.view().Find(Id(1))->total == before_total);
}

TEST_CASE("Prepare is all or nothing and says what did not fit", "[bundle_manager]") {
  BundleTest t;
  const ResourceSet before = t.leases.Available();
  absl::Status s = t.bundles.Prepare(
      List({MakeBundle(kPg, 0, {{"CPU", 3}}), MakeBundle(kPg, 1, {{"CPU", 2}})}));
  CHECK_CODE(s, kResourceExhausted);
  CHECK(std::string(s.message()).find("bundle 1 of placement group " + kPg.Hex()) != std::string::npos);
  CHECK(t.leases.Available() == before);
  CHECK(t.bundles.size() == 0);
  CHECK_CODE(t.bundles.Prepare(List({MakeBundle(kPg, 0, {{"GPU", 3}})})), kResourceExhausted);
  CHECK_CODE(t.bundles.Prepare(List({MakeBundle(kPg, 0, {{"TPU", 1}})})), kResourceExhausted);
  CHECK(t.leases.Available() == before);
}

TEST_CASE("Every bundle call is idempotent", "[bundle_manager]") {
  BundleTest t;
  const ResourceSet before = t.leases.Available();
  const auto b = List({MakeBundle(kPg, 0, {{"CPU", 1}})});
  REQUIRE_OK(t.bundles.Prepare(b));
  REQUIRE_OK(t.bundles.Prepare(b));
  CHECK(t.leases.Available().Get(kCPU) == FixedPoint::FromInt(3));
  REQUIRE_OK(t.bundles.Commit(b));
  const ResourceSet committed = t.Total();
  REQUIRE_OK(t.bundles.Commit(b));
  REQUIRE_OK(t.bundles.Prepare(b));  // committed already: left alone
  CHECK(t.Total() == committed);
  CHECK(t.leases.Available().Get(kCPU) == FixedPoint::FromInt(3));
  REQUIRE_OK(t.bundles.Cancel(b, false));
  REQUIRE_OK(t.bundles.Cancel(b, false));
  REQUIRE_OK(t.bundles.Cancel(List({MakeBundle(Pg(9), 4)}), false));  // never here
  CHECK(t.leases.Available() == before);
}

TEST_CASE("Bad bundles are refused without change", "[bundle_manager]") {
  BundleTest t;
  const ResourceSet before = t.leases.Available();
  rpc::Bundle short_id = MakeBundle(kPg, 0, {{"CPU", 1}});
  short_id.set_placement_group_id("abc");
  CHECK_CODE(t.bundles.Prepare(List({short_id})), kInvalidArgument);
  CHECK_CODE(t.bundles.Prepare(List({MakeBundle(kPg, -1, {{"CPU", 1}})})), kInvalidArgument);
  CHECK_CODE(t.bundles.Prepare(List({MakeBundle(kPg, 0)})), kInvalidArgument);  // reserves nothing
  CHECK_CODE(t.bundles.Prepare(List({MakeBundle(kPg, 0, {{BundleResourceName(kCPU, Pg(2), 0), 1}})})),
             kInvalidArgument);
  rpc::Bundle elsewhere = MakeBundle(kPg, 0, {{"CPU", 1}});
  elsewhere.set_node_id(Id(2).Hex());
  CHECK_CODE(t.bundles.Prepare(List({MakeBundle(kPg, 1, {{"CPU", 1}}), elsewhere})), kInvalidArgument);
  CHECK_CODE(t.bundles.Commit(List({MakeBundle(kPg, 0)})), kFailedPrecondition);  // not prepared
  CHECK(t.leases.Available() == before);
  CHECK(t.bundles.size() == 0);
}

TEST_CASE("ReleaseUnusedBundles returns every bundle not listed", "[bundle_manager]") {
  BundleTest t;
  const ResourceSet before_total = t.Total();
  REQUIRE_OK(t.bundles.Prepare(List({MakeBundle(kPg, 0, {{"CPU", 1}}), MakeBundle(kPg, 1, {{"CPU", 1}}),
                                     MakeBundle(Pg(2), 0, {{"GPU", 1}})})));
  REQUIRE_OK(t.bundles.Commit(List({MakeBundle(kPg, 0), MakeBundle(kPg, 1)})));
  auto released = t.bundles.ReleaseUnused(List({MakeBundle(kPg, 1)}));
  REQUIRE_OK(released);
  CHECK(*released == 2);
  CHECK(t.bundles.StateOf(kPg, 1) == BundleManager::State::kCommitted);
  CHECK(t.bundles.StateOf(kPg, 0) == BundleManager::State::kNone);
  CHECK(t.bundles.StateOf(Pg(2), 0) == BundleManager::State::kNone);
  ResourceSet want = before_total;
  want.Add(CommittedBundleResources(RS({{"CPU", 1}}), kPg, 1));
  CHECK(t.Total() == want);
  CHECK(t.leases.Available().Get(kGPU) == FixedPoint::FromInt(2));
}

TEST_CASE("A bundle request is infeasible before commit and granted after, on the bundle's device",
          "[bundle_manager][lease_manager]") {
  BundleTest t;
  // Device 0 is busy, so the bundle {GPU: 1} gets device 1.
  Reply plain = t.Grant({{"GPU", 1}});
  REQUIRE(Devices(plain) == std::vector<int>{0});
  REQUIRE_OK(t.bundles.Prepare(List({MakeBundle(kPg, 0, {{"CPU", 1}, {"GPU", 1}})})));
  REQUIRE_OK(t.leases.ReturnWorker(plain.lease_id(), false));

  const uint64_t waiting = t.RequestIn(kPg, 0, {{"GPU", 0.5}});
  CHECK_FALSE(t.Answered(waiting));
  CHECK(t.Infeasible(FormatBundleDemand(RS({{"GPU", 0.5}}), kPg, 0)));

  REQUIRE_OK(t.bundles.Commit(List({MakeBundle(kPg, 0)})));
  t.RegisterAll();
  const Reply& a = t.ReplyOf(waiting);
  REQUIRE(a.kind() == Reply::GRANTED);
  CHECK(Devices(a) == std::vector<int>{1});
  CHECK(Shares(a) == std::vector<int64_t>{5000});

  SECTION("two 0.5-GPU tasks share the bundle's one device; a third waits") {
    Reply b = t.GrantIn(kPg, -1, {{"GPU", 0.5}});
    CHECK(Devices(b) == std::vector<int>{1});
    const uint64_t third = t.RequestIn(kPg, 0, {{"GPU", 0.5}});
    CHECK_FALSE(t.Answered(third));
    CHECK_FALSE(t.Infeasible(FormatBundleDemand(RS({{"GPU", 0.5}}), kPg, 0)));  // queued, not infeasible
    REQUIRE_OK(t.leases.ReturnWorker(b.lease_id(), false));
    CHECK(Devices(t.ReplyOf(third)) == std::vector<int>{1});
  }
  SECTION("a request larger than the bundle stays infeasible") {
    const uint64_t big = t.RequestIn(kPg, 0, {{"GPU", 2}});
    const uint64_t cpus = t.RequestIn(kPg, -1, {{"CPU", 2}});
    CHECK_FALSE(t.Answered(big));
    CHECK_FALSE(t.Answered(cpus));
    CHECK(t.Infeasible(FormatBundleDemand(RS({{"GPU", 2}}), kPg, 0)));
    CHECK(t.Infeasible(FormatBundleDemand(RS({{"CPU", 2}}), kPg, -1)));
  }
}

TEST_CASE("A bundle GPU request above 1 that is not whole is rejected, as a plain one is",
          "[bundle_manager][lease_manager]") {
  BundleTest t;
  const uint64_t id = t.RequestIn(kPg, 0, {{"GPU", 1.5}});
  CHECK(t.ReplyOf(id).kind() == Reply::REJECTED);
  CHECK(t.ReplyOf(id).message().find("whole number") != std::string::npos);
}

TEST_CASE("Removing a group kills its leases with PLACEMENT_GROUP_REMOVED and rejects its requests",
          "[bundle_manager][lease_manager]") {
  BundleTest t;
  const ResourceSet before = t.leases.Available();
  const ResourceSet before_total = t.Total();
  Reply other = t.Grant({{"CPU", 1}});  // not in the group: untouched
  const auto both = List({MakeBundle(kPg, 0, {{"CPU", 1}, {"GPU", 1}}), MakeBundle(kPg, 1, {{"CPU", 1}})});
  REQUIRE_OK(t.bundles.Prepare(both));
  REQUIRE_OK(t.bundles.Commit(both));
  Reply in0 = t.GrantIn(kPg, 0, {{"CPU", 1}, {"GPU", 1}});
  Reply any = t.GrantIn(kPg, -1, {{"CPU", 1}});
  const uint64_t waiting = t.RequestIn(kPg, 1, {{"CPU", 1}});
  CHECK_FALSE(t.Answered(waiting));  // bundle 1's CPU went to `any`

  REQUIRE_OK(t.bundles.Cancel(List({MakeBundle(kPg, 0), MakeBundle(kPg, 1)}), /*group_removed=*/true));
  for (const Reply* r : {&in0, &any}) {
    std::optional<rpc::ErrorInfo> cause = t.leases.TakeDeathCause(r->lease_id());
    REQUIRE(cause.has_value());
    CHECK(cause->type() == rpc::PLACEMENT_GROUP_REMOVED);
    CHECK(t.spawner.process(t.PidOfWorker(r->worker_id())).killed);
  }
  CHECK_FALSE(t.leases.TakeDeathCause(other.lease_id()).has_value());
  CHECK(t.deaths.size() == 2);
  const Reply& rejected = t.ReplyOf(waiting);
  CHECK(rejected.kind() == Reply::REJECTED);
  CHECK(rejected.message() == "placement group " + kPg.Hex() + " was removed");
  const uint64_t late = t.RequestIn(kPg, -1, {{"CPU", 1}});
  CHECK(t.ReplyOf(late).kind() == Reply::REJECTED);

  REQUIRE_OK(t.leases.ReturnWorker(other.lease_id(), false));
  CHECK(t.leases.Available() == before);
  CHECK(t.Total() == before_total);
  CHECK(t.leases.stats().leases == 0);
}

TEST_CASE("Cancelling one bundle (not removed) ends only the leases it cannot keep",
          "[bundle_manager][lease_manager]") {
  BundleTest t;
  const ResourceSet before = t.leases.Available();
  const auto both = List({MakeBundle(kPg, 0, {{"CPU", 1}}), MakeBundle(kPg, 1, {{"CPU", 2}})});
  REQUIRE_OK(t.bundles.Prepare(both));
  REQUIRE_OK(t.bundles.Commit(both));
  Reply in0 = t.GrantIn(kPg, 0, {{"CPU", 1}});
  Reply in1 = t.GrantIn(kPg, 1, {{"CPU", 1}});

  SECTION("the wildcard still covers what is in use: only bundle 0's lease ends") {
    Reply any = t.GrantIn(kPg, -1, {{"CPU", 1}});
    REQUIRE_OK(t.bundles.Cancel(List({MakeBundle(kPg, 0)}), /*group_removed=*/false));
    std::optional<rpc::ErrorInfo> cause = t.leases.TakeDeathCause(in0.lease_id());
    REQUIRE(cause.has_value());
    CHECK(cause->type() == rpc::WORKER_DIED);
    CHECK(cause->message().find("was given back") != std::string::npos);
    CHECK_FALSE(t.leases.TakeDeathCause(in1.lease_id()).has_value());
    CHECK_FALSE(t.leases.TakeDeathCause(any.lease_id()).has_value());
    // A new request for bundle 0 waits (infeasible) for the group to be placed again.
    const uint64_t again = t.RequestIn(kPg, 0, {{"CPU", 1}});
    CHECK_FALSE(t.Answered(again));
    CHECK(t.Infeasible(FormatBundleDemand(RS({{"CPU", 1}}), kPg, 0)));
    REQUIRE_OK(t.leases.ReturnWorker(any.lease_id(), false));
  }
  SECTION("the wildcard no longer covers a task in any bundle: it ends too") {
    Reply any = t.GrantIn(kPg, -1, {{"CPU", 1}});
    REQUIRE_OK(t.leases.ReturnWorker(in0.lease_id(), false));
    Reply any2 = t.GrantIn(kPg, -1, {{"CPU", 1}});
    // In use of CPU_group: in1 1 + any 1 + any2 1 = 3; after bundle 0 goes only 2 remain.
    REQUIRE_OK(t.bundles.Cancel(List({MakeBundle(kPg, 0)}), /*group_removed=*/false));
    CHECK(t.leases.TakeDeathCause(any.lease_id()).has_value());
    CHECK(t.leases.TakeDeathCause(any2.lease_id()).has_value());
    CHECK_FALSE(t.leases.TakeDeathCause(in1.lease_id()).has_value());
  }
  REQUIRE_OK(t.bundles.Cancel(List({MakeBundle(kPg, 1)}), /*group_removed=*/false));
  CHECK(t.leases.stats().leases == 0);
  CHECK(t.leases.Available().Get(kCPU) == before.Get(kCPU));
  CHECK(t.leases.Available() == before);
}

TEST_CASE("A bundle request spills back to the node the view shows it committed on",
          "[bundle_manager][lease_manager]") {
  BundleTest t;
  const ResourceSet demand = FormatBundleDemand(RS({{"CPU", 1}}), kPg, 0);
  const uint64_t id = t.RequestDemand(demand);
  CHECK_FALSE(t.Answered(id));
  CHECK(t.Infeasible(demand));
  // Node 2's report: its total (in the node table) now holds bundle 0.
  std::map<std::string, double> node2 = {{"CPU", 4}};
  const ResourceSet committed = CommittedBundleResources(RS({{"CPU", 1}}), kPg, 0);
  for (const auto& [name, amount] : committed.entries()) {
    node2[name] = amount.ToDouble();
  }
  t.leases.UpdateClusterView({Node(2, node2)});
  const Reply& r = t.ReplyOf(id);
  CHECK(r.kind() == Reply::SPILLBACK);
  CHECK(r.spillback_node_id() == Id(2).Hex());

  SECTION("a node table whose total lags behind its available counts the bundle too") {
    std::map<std::string, double> total = {{"CPU", 4}};
    t.leases.UpdateClusterView({Node(3, total, node2)});  // node 2 is gone
    const uint64_t id2 = t.RequestDemand(demand);
    const Reply& r2 = t.ReplyOf(id2);
    CHECK(r2.kind() == Reply::SPILLBACK);
    CHECK(r2.spillback_node_id() == Id(3).Hex());
  }
}

}  // namespace
}  // namespace shoal
