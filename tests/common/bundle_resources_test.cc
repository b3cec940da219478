#include "src/common/bundle_resources.h"

#include <catch2/catch.hpp>

#include "tests/test_util/resource_helpers.h"
#include "tests/test_util/status_matchers.h"

namespace shoal {
namespace {

using test_util::FP;
using test_util::RS;

TEST_CASE("Bundle resource names round-trip through the parser", "[bundle_resources]") {
  PlacementGroupId pg = PlacementGroupId::FromRandom();
  std::string indexed = BundleResourceName("CPU", pg, 3);
  CHECK(indexed == "CPU_group_3_" + pg.Hex());
  auto parsed = ParseBundleResource(indexed);
  REQUIRE(parsed.has_value());
  CHECK(parsed->resource == "CPU");
  CHECK(parsed->pg == pg);
  CHECK(parsed->index == 3);

  std::string wildcard = BundleResourceName("my_group_res", pg, -1);
  CHECK(wildcard == "my_group_res_group_" + pg.Hex());
  parsed = ParseBundleResource(wildcard);
  REQUIRE(parsed.has_value());
  CHECK(parsed->resource == "my_group_res");
  CHECK(parsed->index == -1);

  // A custom name that itself looks like "<x>_group_<n>" keeps its own digits.
  parsed = ParseBundleResource(BundleResourceName("acc_group_7", pg, 12));
  REQUIRE(parsed.has_value());
  CHECK(parsed->resource == "acc_group_7");
  CHECK(parsed->index == 12);

  CHECK(IsBundleGpuResource(BundleResourceName("GPU", pg, 0)));
  CHECK_FALSE(IsBundleGpuResource(BundleResourceName("CPU", pg, 0)));
}

TEST_CASE("Plain names are not bundle resources", "[bundle_resources]") {
  CHECK_FALSE(IsBundleResource("CPU"));
  CHECK_FALSE(IsBundleResource("node:127.0.0.1"));
  CHECK_FALSE(IsBundleResource("CPU_group_0_xyz"));
  CHECK_FALSE(IsBundleResource("_group_" + std::string(36, 'a')));  // no resource name
  CHECK_FALSE(IsBundleResource("CPU_group_x_" + std::string(36, 'a')));
}

TEST_CASE("IsBundleResource answers as ParseBundleResource does", "[bundle_resources]") {
  const PlacementGroupId pg = PlacementGroupId::FromRandom();
  const std::string hex = pg.Hex();
  std::string upper = hex;
  for (char& c : upper) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  for (const std::string& name : std::vector<std::string>{
           BundleResourceName("CPU", pg, 0), BundleResourceName("CPU", pg, -1), BundleResourceName("bundle", pg, 7),
           BundleResourceName("acc_group_7", pg, 12), "CPU_group_" + upper, "CPU_group_1234567890_" + hex,
           "CPU_group_123456789_" + hex, "CPU_group_" + hex.substr(1) + "g", "CPU_group__" + hex, "CPU_grp_" + hex,
           "x_group_0_" + hex.substr(0, 35), "CPU", "memory", "object_store_memory", "node:127.0.0.1",
           "_group_" + hex, "CPU_group_-1_" + hex}) {
    INFO(name);
    CHECK(IsBundleResource(name) == ParseBundleResource(name).has_value());
  }
}

TEST_CASE("A task's demand in a bundle uses the formatted names and the marker", "[bundle_resources]") {
  PlacementGroupId pg = PlacementGroupId::FromRandom();
  ResourceSet demand = FormatBundleDemand(RS({{"CPU", 1}, {"GPU", 0.5}}), pg, 1);
  CHECK(demand.Get(BundleResourceName("CPU", pg, 1)) == FP(1));
  CHECK(demand.Get(BundleResourceName("GPU", pg, 1)) == FP(0.5));
  CHECK(demand.Get(BundleResourceName(kBundleMarker, pg, 1)) == FP(0.001));
  // ...and the same of the group-wide names, so any-bundle tasks cannot overcommit it.
  CHECK(demand.Get(BundleResourceName("CPU", pg, -1)) == FP(1));
  CHECK(demand.Get(BundleResourceName("GPU", pg, -1)) == FP(0.5));
  CHECK(demand.Get(BundleResourceName(kBundleMarker, pg, -1)) == FP(0.001));
  CHECK(demand.entries().size() == 6);
  CHECK(demand.Get("CPU").IsZero());

  // Asking for nothing still lands in the group (any bundle).
  ResourceSet empty = FormatBundleDemand(ResourceSet(), pg, -1);
  CHECK(empty.entries().size() == 1);
  CHECK(empty.Get(BundleResourceName(kBundleMarker, pg, -1)) == FP(0.001));
}

TEST_CASE("A committed bundle adds indexed and wildcard names", "[bundle_resources]") {
  PlacementGroupId pg = PlacementGroupId::FromRandom();
  ResourceSet added = CommittedBundleResources(RS({{"CPU", 2}, {"GPU", 0.5}}), pg, 0);
  CHECK(added.Get(BundleResourceName("CPU", pg, 0)) == FP(2));
  CHECK(added.Get(BundleResourceName("CPU", pg, -1)) == FP(2));
  CHECK(added.Get(BundleResourceName("GPU", pg, 0)) == FP(0.5));
  CHECK(added.Get(BundleResourceName(kBundleMarker, pg, 0)) == FP(1000));
  CHECK(added.Get(BundleResourceName(kBundleMarker, pg, -1)) == FP(1000));
  CHECK(added.entries().size() == 6);

  ResourceSet node = added;
  node.Add(RS({{"CPU", 4}}));
  CHECK(WithoutBundleResources(node) == RS({{"CPU", 4}}));
}

TEST_CASE("Bad bundles are refused, naming the problem", "[bundle_resources]") {
  CHECK_CODE(ValidateBundles({}), kInvalidArgument);
  CHECK_CODE(ValidateBundles({RS({{"CPU", 1}}), ResourceSet()}), kInvalidArgument);
  CHECK_CODE(ValidateBundles({RS({{"GPU", 1.5}})}), kInvalidArgument);
  CHECK_CODE(ValidateBundles({RS({{"node:1.2.3.4", 1}})}), kInvalidArgument);
  CHECK_OK(ValidateBundles({RS({{"CPU", 1}}), RS({{"GPU", 0.5}}), RS({{"GPU", 2}})}));
  absl::Status empty = ValidateBundles({RS({{"CPU", 1}}), ResourceSet()});
  CHECK(std::string(empty.message()).find("bundle 1") != std::string::npos);
}

TEST_CASE("A request must fit its bundle", "[bundle_resources]") {
  std::vector<ResourceSet> bundles = {RS({{"CPU", 1}}), RS({{"CPU", 2}, {"GPU", 1}})};
  CHECK_OK(CheckFitsBundle(RS({{"CPU", 1}}), bundles, 0));
  CHECK_OK(CheckFitsBundle(RS({{"CPU", 2}}), bundles, -1));
  CHECK_OK(CheckFitsBundle(ResourceSet(), bundles, 1));
  CHECK_CODE(CheckFitsBundle(RS({{"CPU", 2}}), bundles, 0), kInvalidArgument);
  CHECK_CODE(CheckFitsBundle(RS({{"CPU", 3}}), bundles, -1), kInvalidArgument);
  CHECK_CODE(CheckFitsBundle(RS({{"CPU", 1}}), bundles, 2), kInvalidArgument);
  CHECK_CODE(CheckFitsBundle(RS({{"CPU", 1}}), bundles, -2), kInvalidArgument);
}

}  // namespace
}  // namespace shoal
