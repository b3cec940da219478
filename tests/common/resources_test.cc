#include "src/common/resources.h"

#include <catch2/catch.hpp>

#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "shoal/common.pb.h"
#include "src/common/bundle_resources.h"
#include "tests/test_util/printers.h"
#include "tests/test_util/resource_helpers.h"
#include "tests/test_util/status_matchers.h"

namespace shoal {
namespace {

using test_util::RS;
using test_util::FP;

// Per-device amounts as doubles, for readable comparisons.
std::vector<double> D(const std::vector<FixedPoint>& v) {
  std::vector<double> out;
  for (FixedPoint f : v) out.push_back(f.ToDouble());
  return out;
}

// ---------------------------------------------------------------- FixedPoint

TEST_CASE("FixedPoint FromDouble stores units of 1/10000", "[resources][fixed_point]") {
  CHECK(FP(0).units() == 0);
  CHECK(FP(0.0001).units() == 1);
  CHECK(FP(0.5).units() == 5000);
  CHECK(FP(1).units() == 10000);
  CHECK(FP(2.25).units() == 22500);
  CHECK(FP(1.0 / 3).units() == 3333);   // rounds to nearest
  CHECK(FP(2.0 / 3).units() == 6667);
  CHECK(FP(FixedPoint::kMaxValue).units() == static_cast<int64_t>(1e17));
  CHECK(FP(0.5).IsZero() == false);
  CHECK(FP(0).IsZero());
  CHECK(FP(3).IsInteger());
  CHECK_FALSE(FP(3.5).IsInteger());
  CHECK(FP(0.5).ToDouble() == 0.5);
}

TEST_CASE("FixedPoint FromDouble rejects bad quantities", "[resources][fixed_point]") {
  CHECK_CODE(FixedPoint::FromDouble(std::nan("")), kInvalidArgument);
  CHECK_CODE(FixedPoint::FromDouble(std::numeric_limits<double>::infinity()), kInvalidArgument);
  CHECK_CODE(FixedPoint::FromDouble(-std::numeric_limits<double>::infinity()), kInvalidArgument);
  CHECK_CODE(FixedPoint::FromDouble(-1), kInvalidArgument);
  CHECK_CODE(FixedPoint::FromDouble(-0.0001), kInvalidArgument);
  CHECK_CODE(FixedPoint::FromDouble(FixedPoint::kMaxValue * 2), kInvalidArgument);
  CHECK_CODE(FixedPoint::FromDouble(1e300), kInvalidArgument);
  // Positive but below the smallest unit: not silently zero.
  CHECK_CODE(FixedPoint::FromDouble(0.00004), kInvalidArgument);
  CHECK_CODE(FixedPoint::FromDouble(1e-9), kInvalidArgument);
  CHECK_CODE(FixedPoint::FromDouble(std::numeric_limits<double>::denorm_min()), kInvalidArgument);
}

TEST_CASE("FixedPoint ToString is the shortest decimal form", "[resources][fixed_point]") {
  CHECK(FP(0).ToString() == "0");
  CHECK(FP(0.5).ToString() == "0.5");
  CHECK(FP(2).ToString() == "2");
  CHECK(FP(1.0 / 3).ToString() == "0.3333");
  CHECK(FP(0.0001).ToString() == "0.0001");
  CHECK(FP(0.05).ToString() == "0.05");
  CHECK(FP(1.2345).ToString() == "1.2345");
  CHECK(FP(10.1).ToString() == "10.1");
  CHECK(FP(1e6).ToString() == "1000000");
  CHECK(FixedPoint::FromUnits(-5000).ToString() == "-0.5");
  CHECK(FixedPoint::FromUnits(-15000).ToString() == "-1.5");
  CHECK(FixedPoint::FromUnits(-20000).ToString() == "-2");
}

TEST_CASE("FixedPoint sums do not drift", "[resources][fixed_point]") {
  FixedPoint sum;
  for (int i = 0; i < 10; ++i) sum += FP(0.1);
  CHECK(sum == FixedPoint::FromInt(1));
  CHECK(FP(0.5) + FP(0.25) + FP(0.25) == FixedPoint::FromInt(1));
  FixedPoint left = FixedPoint::FromInt(1);
  for (int i = 0; i < 10; ++i) left -= FP(0.1);
  CHECK(left.IsZero());
  CHECK(FP(0.3) - FP(0.1) == FP(0.2));
  CHECK(FP(0.1) < FP(0.2));
  CHECK(FixedPoint::FromInt(3) == FP(3));
}

// ---------------------------------------------------------------- ResourceSet

TEST_CASE("ResourceSet FromDoubles keeps non-zero amounts", "[resources][resource_set]") {
  ResourceSet set = RS({{"CPU", 4}, {"GPU", 0.5}, {"memory", 0}});
  CHECK(set.Get("CPU") == FixedPoint::FromInt(4));
  CHECK(set.Get("GPU") == FP(0.5));
  CHECK(set.Get("memory").IsZero());
  CHECK(set.Get("TPU").IsZero());
  CHECK(set.entries().size() == 2);  // zero entries are dropped
  CHECK(set == RS({{"CPU", 4}, {"GPU", 0.5}}));
  CHECK(RS({{"CPU", 0}}).IsEmpty());
  CHECK(RS({{"CPU", 0}}) == ResourceSet());
}

TEST_CASE("ResourceSet FromDoubles validates names and values", "[resources][resource_set]") {
  CHECK_CODE(ResourceSet::FromDoubles({{"", 1}}), kInvalidArgument);
  CHECK_CODE(ResourceSet::FromDoubles({{"my gpu", 1}}), kInvalidArgument);
  CHECK_CODE(ResourceSet::FromDoubles({{" CPU", 1}}), kInvalidArgument);
  CHECK_CODE(ResourceSet::FromDoubles({{"CPU\t", 1}}), kInvalidArgument);
  CHECK_CODE(ResourceSet::FromDoubles({{"CPU\n", 1}}), kInvalidArgument);
  CHECK_CODE(ResourceSet::FromDoubles({{std::string(1000, 'x'), 1}}), kInvalidArgument);
  CHECK_CODE(ResourceSet::FromDoubles({{"CPU", -1}}), kInvalidArgument);
  CHECK_CODE(ResourceSet::FromDoubles({{"CPU", std::nan("")}}), kInvalidArgument);
  CHECK_CODE(ResourceSet::FromDoubles({{"CPU", 1e-6}}), kInvalidArgument);
  // The message names the resource.
  auto bad = ResourceSet::FromDoubles({{"accel", -2}});
  REQUIRE_FALSE(bad.ok());
  CHECK_THAT(std::string(bad.status().message()), Catch::Matchers::Contains("accel"));
  // Names that are fine.
  CHECK_OK(ResourceSet::FromDoubles({{"node:10.0.0.1", 1}, {"accel_a100", 0.5}, {"x-y.z/w", 2}}));
}

TEST_CASE("ResourceSet FromJson parses an object of numbers", "[resources][resource_set]") {
  auto set = ResourceSet::FromJson(R"({"TPU": 4, "accel_a100": 0.5})");
  REQUIRE_OK(set);
  CHECK(*set == RS({{"TPU", 4}, {"accel_a100", 0.5}}));
  auto empty = ResourceSet::FromJson("{}");
  REQUIRE_OK(empty);
  CHECK(empty->IsEmpty());
  auto zero = ResourceSet::FromJson(R"({"TPU": 0})");
  REQUIRE_OK(zero);
  CHECK(zero->IsEmpty());
  auto spaced = ResourceSet::FromJson(" { \"CPU\" : 1e1 } ");
  REQUIRE_OK(spaced);
  CHECK(spaced->Get("CPU") == FixedPoint::FromInt(10));
}

TEST_CASE("ResourceSet FromJson rejects bad input", "[resources][resource_set]") {
  SECTION("invalid JSON") {
    CHECK_CODE(ResourceSet::FromJson(""), kInvalidArgument);
    CHECK_CODE(ResourceSet::FromJson("{"), kInvalidArgument);
    CHECK_CODE(ResourceSet::FromJson("{TPU: 4}"), kInvalidArgument);
    CHECK_CODE(ResourceSet::FromJson(R"({"TPU": 4,})"), kInvalidArgument);
    CHECK_CODE(ResourceSet::FromJson("not json"), kInvalidArgument);
  }
  SECTION("not an object") {
    CHECK_CODE(ResourceSet::FromJson("4"), kInvalidArgument);
    CHECK_CODE(ResourceSet::FromJson("[1, 2]"), kInvalidArgument);
    CHECK_CODE(ResourceSet::FromJson(R"("TPU")"), kInvalidArgument);
    CHECK_CODE(ResourceSet::FromJson("null"), kInvalidArgument);
  }
  SECTION("a value that is not a number") {
    CHECK_CODE(ResourceSet::FromJson(R"({"TPU": "4"})"), kInvalidArgument);
    CHECK_CODE(ResourceSet::FromJson(R"({"TPU": true})"), kInvalidArgument);
    CHECK_CODE(ResourceSet::FromJson(R"({"TPU": null})"), kInvalidArgument);
    CHECK_CODE(ResourceSet::FromJson(R"({"TPU": [4]})"), kInvalidArgument);
    CHECK_CODE(ResourceSet::FromJson(R"({"TPU": {"n": 4}})"), kInvalidArgument);
  }
  SECTION("negative or tiny values") {
    CHECK_CODE(ResourceSet::FromJson(R"({"TPU": -1})"), kInvalidArgument);
    CHECK_CODE(ResourceSet::FromJson(R"({"TPU": 0.00001})"), kInvalidArgument);
    CHECK_CODE(ResourceSet::FromJson(R"({"TPU": 1e20})"), kInvalidArgument);
  }
  SECTION("bad names") {
    CHECK_CODE(ResourceSet::FromJson(R"({"my tpu": 1})"), kInvalidArgument);
    CHECK_CODE(ResourceSet::FromJson(R"({"": 1})"), kInvalidArgument);
    CHECK_CODE(ResourceSet::FromJson(R"({"tpu\n": 1})"), kInvalidArgument);
  }
}

TEST_CASE("ResourceSet Contains, Add and Subtract", "[resources][resource_set]") {
  ResourceSet have = RS({{"CPU", 4}, {"GPU", 1}});
  CHECK(have.Contains(ResourceSet()));
  CHECK(have.Contains(have));
  CHECK(have.Contains(RS({{"CPU", 2}})));
  CHECK(have.Contains(RS({{"CPU", 4}, {"GPU", 0.5}})));
  CHECK_FALSE(have.Contains(RS({{"CPU", 4.0001}})));
  CHECK_FALSE(have.Contains(RS({{"TPU", 1}})));
  CHECK_FALSE(ResourceSet().Contains(RS({{"CPU", 1}})));

  SECTION("Add sums by name") {
    have.Add(RS({{"CPU", 0.5}, {"TPU", 2}}));
    CHECK(have == RS({{"CPU", 4.5}, {"GPU", 1}, {"TPU", 2}}));
  }
  SECTION("Subtract takes exact amounts and drops entries that reach zero") {
    REQUIRE_OK(have.Subtract(RS({{"CPU", 1.5}, {"GPU", 1}})));
    CHECK(have == RS({{"CPU", 2.5}}));
    CHECK(have.entries().count("GPU") == 0);
    REQUIRE_OK(have.Subtract(RS({{"CPU", 2.5}})));
    CHECK(have.IsEmpty());
  }
  SECTION("Subtract of more than there is fails and changes nothing") {
    const ResourceSet before = have;
    CHECK_CODE(have.Subtract(RS({{"CPU", 1}, {"GPU", 2}})), kFailedPrecondition);
    CHECK(have == before);
    CHECK_CODE(have.Subtract(RS({{"TPU", 1}})), kFailedPrecondition);
    CHECK(have == before);
  }
  SECTION("Set to zero removes the entry") {
    have.Set("CPU", FixedPoint());
    CHECK(have == RS({{"GPU", 1}}));
  }
}

TEST_CASE("ResourceSet ToString and ToDoubles", "[resources][resource_set]") {
  CHECK(ResourceSet().ToString() == "{}");
  CHECK(RS({{"GPU", 0.5}, {"CPU", 4}}).ToString() == "{CPU: 4, GPU: 0.5}");
  CHECK(RS({{"b", 1.0 / 3}, {"a", 2}}).ToString() == "{a: 2, b: 0.3333}");
  auto doubles = RS({{"CPU", 4}, {"GPU", 0.25}}).ToDoubles();
  CHECK(doubles == std::map<std::string, double>{{"CPU", 4.0}, {"GPU", 0.25}});
}

TEST_CASE("ResourceSet proto round trip", "[resources][resource_set]") {
  const ResourceSet set = RS({{"CPU", 4}, {"GPU", 0.5}, {"node:10.0.0.1", 0.0001}});
  rpc::ResourceMap proto;
  (*proto.mutable_amounts())["stale"] = 7;  // ToProto replaces what was there
  set.ToProto(&proto);
  CHECK(proto.amounts().size() == 3);
  CHECK(proto.amounts().at("CPU") == 40000);
  CHECK(proto.amounts().at("GPU") == 5000);
  CHECK(proto.amounts().at("node:10.0.0.1") == 1);
  CHECK(ResourceSet::FromProto(proto) == set);

  rpc::ResourceMap parsed;
  REQUIRE(parsed.ParseFromString(proto.SerializeAsString()));
  CHECK(ResourceSet::FromProto(parsed) == set);

  SECTION("zero and negative amounts in a proto are dropped") {
    rpc::ResourceMap odd;
    (*odd.mutable_amounts())["CPU"] = 10000;
    (*odd.mutable_amounts())["zero"] = 0;
    (*odd.mutable_amounts())["neg"] = -5;
    CHECK(ResourceSet::FromProto(odd) == RS({{"CPU", 1}}));
  }
  SECTION("the empty set") {
    rpc::ResourceMap empty;
    ResourceSet().ToProto(&empty);
    CHECK(empty.amounts().empty());
    CHECK(ResourceSet::FromProto(empty).IsEmpty());
  }
}

// ---------------------------------------------------------------- ResourceInstances

TEST_CASE("ResourceInstances start fully free", "[resources][instances]") {
  ResourceInstances gpus(3);
  CHECK(gpus.size() == 3);
  CHECK(D(gpus.free()) == std::vector<double>{1, 1, 1});
  CHECK(gpus.TotalFree() == FixedPoint::FromInt(3));
  CHECK(ResourceInstances(0).TotalFree().IsZero());
}

TEST_CASE("ResourceInstances fractions fill a device before opening the next", "[resources][instances]") {
  ResourceInstances gpus(2);
  auto a = gpus.Allocate(FP(0.5));
  REQUIRE_OK(a);
  CHECK(D(*a) == std::vector<double>{0.5, 0});
  auto b = gpus.Allocate(FP(0.5));
  REQUIRE_OK(b);
  CHECK(D(*b) == std::vector<double>{0.5, 0});  // fills device 0
  auto c = gpus.Allocate(FP(0.5));
  REQUIRE_OK(c);
  CHECK(D(*c) == std::vector<double>{0, 0.5});
  CHECK(D(gpus.free()) == std::vector<double>{0, 0.5});
}

TEST_CASE("ResourceInstances fractions pack exactly", "[resources][instances]") {
  ResourceInstances gpus(2);
  for (double share : {0.25, 0.25, 0.5}) {
    CAPTURE(share);
    auto got = gpus.Allocate(FP(share));
    REQUIRE_OK(got);
    CHECK(D(*got) == std::vector<double>{share, 0});
  }
  CHECK(gpus.free()[0].IsZero());
  CHECK(gpus.free()[1] == FixedPoint::FromInt(1));
}

TEST_CASE("ResourceInstances best fit picks the fullest device that fits", "[resources][instances]") {
  ResourceInstances gpus(3);
  REQUIRE(D(*gpus.Allocate(FP(0.3))) == std::vector<double>{0.3, 0, 0});  // tie: lowest index
  REQUIRE(D(*gpus.Allocate(FixedPoint::FromInt(1))) == std::vector<double>{0, 1, 0});
  // Free: {0.7, 0, 1}. 0.6 fits on 0 (0.7 free) and 2 (1 free): best fit is 0.
  CHECK(D(*gpus.Allocate(FP(0.6))) == std::vector<double>{0.6, 0, 0});
  // Free: {0.1, 0, 1}. 0.2 fits only on 2.
  CHECK(D(*gpus.Allocate(FP(0.2))) == std::vector<double>{0, 0, 0.2});
  // Free: {0.1, 0, 0.8}. 0.1 fits on 0 exactly, which is the best fit.
  CHECK(D(*gpus.Allocate(FP(0.1))) == std::vector<double>{0.1, 0, 0});
  CHECK(D(gpus.free()) == std::vector<double>{0, 0, 0.8});
  // A later device with less free share wins over an earlier one with more.
  ResourceInstances two(2);
  REQUIRE(D(*two.Allocate(FixedPoint::FromInt(1))) == std::vector<double>{1, 0});
  REQUIRE(D(*two.Allocate(FP(0.5))) == std::vector<double>{0, 0.5});
  REQUIRE_OK(two.Free({FixedPoint::FromInt(1), FixedPoint()}));
  REQUIRE(D(two.free()) == std::vector<double>{1, 0.5});
  CHECK(D(*two.Allocate(FP(0.25))) == std::vector<double>{0, 0.25});
  CHECK(D(two.free()) == std::vector<double>{1, 0.25});
}

TEST_CASE("ResourceInstances ten 0.1 shares fill one device exactly", "[resources][instances]") {
  ResourceInstances gpus(2);
  const FixedPoint tenth = FP(0.1);
  REQUIRE(tenth.units() == 1000);
  std::vector<std::vector<FixedPoint>> taken;
  for (int i = 0; i < 10; ++i) {
    CAPTURE(i);
    auto got = gpus.Allocate(tenth);
    REQUIRE_OK(got);
    CHECK(D(*got) == std::vector<double>{0.1, 0});
    taken.push_back(*got);
  }
  CHECK(gpus.free()[0].IsZero());
  CHECK(gpus.free()[0].units() == 0);
  auto eleventh = gpus.Allocate(tenth);
  REQUIRE_OK(eleventh);
  CHECK(D(*eleventh) == std::vector<double>{0, 0.1});
  // Freeing all ten gives device 0 back whole, so a whole request can take it.
  for (const auto& t : taken) REQUIRE_OK(gpus.Free(t));
  CHECK(gpus.free()[0] == FixedPoint::FromInt(1));
  auto whole = gpus.Allocate(FixedPoint::FromInt(1));
  REQUIRE_OK(whole);
  CHECK(D(*whole) == std::vector<double>{1, 0});
}

TEST_CASE("ResourceInstances whole requests take fully free devices, lowest first", "[resources][instances]") {
  ResourceInstances gpus(4);
  REQUIRE_OK(gpus.Allocate(FP(0.5)));  // device 0 is now partly used
  auto two = gpus.Allocate(FixedPoint::FromInt(2));
  REQUIRE_OK(two);
  CHECK(D(*two) == std::vector<double>{0, 1, 1, 0});
  SECTION("not enough fully free devices: ResourceExhausted and nothing taken") {
    const auto before = gpus.free();
    CHECK_CODE(gpus.Allocate(FixedPoint::FromInt(2)), kResourceExhausted);
    CHECK(gpus.free() == before);
  }
  SECTION("the last free device") {
    auto one = gpus.Allocate(FixedPoint::FromInt(1));
    REQUIRE_OK(one);
    CHECK(D(*one) == std::vector<double>{0, 0, 0, 1});
    CHECK_CODE(gpus.Allocate(FixedPoint::FromInt(1)), kResourceExhausted);
  }
}

TEST_CASE("ResourceInstances rejects bad or oversized requests", "[resources][instances]") {
  ResourceInstances gpus(2);
  const auto before = gpus.free();
  CHECK_CODE(gpus.Allocate(FP(1.5)), kInvalidArgument);
  CHECK_CODE(gpus.Allocate(FP(2.0001)), kInvalidArgument);
  CHECK(gpus.free() == before);
  CHECK_CODE(gpus.Allocate(FixedPoint::FromInt(3)), kResourceExhausted);
  CHECK(gpus.free() == before);
  SECTION("a fraction larger than any device's free share") {
    REQUIRE_OK(gpus.Allocate(FP(0.6)));
    REQUIRE_OK(gpus.Allocate(FP(0.6)));
    const auto partly = gpus.free();
    CHECK_CODE(gpus.Allocate(FP(0.5)), kResourceExhausted);
    CHECK(gpus.free() == partly);
    CHECK(D(*gpus.Allocate(FP(0.4))) == std::vector<double>{0.4, 0});
  }
  SECTION("no devices at all") {
    ResourceInstances none(0);
    CHECK_CODE(none.Allocate(FP(0.5)), kResourceExhausted);
    CHECK_CODE(none.Allocate(FixedPoint::FromInt(1)), kResourceExhausted);
  }
  SECTION("zero takes nothing") {
    auto zero = gpus.Allocate(FixedPoint());
    REQUIRE_OK(zero);
    CHECK(D(*zero) == std::vector<double>{0, 0});
    CHECK(gpus.free() == before);
  }
}

TEST_CASE("ResourceInstances Free returns exact amounts and rejects bad frees", "[resources][instances]") {
  ResourceInstances gpus(2);
  auto a = gpus.Allocate(FP(0.3));
  auto b = gpus.Allocate(FixedPoint::FromInt(1));
  REQUIRE_OK(a);
  REQUIRE_OK(b);
  CHECK(D(gpus.free()) == std::vector<double>{0.7, 0});

  SECTION("exact give back") {
    REQUIRE_OK(gpus.Free(*a));
    CHECK(D(gpus.free()) == std::vector<double>{1, 0});
    REQUIRE_OK(gpus.Free(*b));
    CHECK(gpus.free() == std::vector<FixedPoint>{FixedPoint::FromInt(1), FixedPoint::FromInt(1)});
    CHECK(gpus.TotalFree() == FixedPoint::FromInt(2));
  }
  SECTION("double free is rejected without change") {
    REQUIRE_OK(gpus.Free(*a));
    const auto before = gpus.free();
    CHECK_CODE(gpus.Free(*a), kInvalidArgument);
    CHECK(gpus.free() == before);
  }
  SECTION("a free that overflows one device changes no device") {
    const auto before = gpus.free();
    // Device 1 could take 1 back, but device 0 would go to 1.3.
    CHECK_CODE(gpus.Free({FP(0.6), FixedPoint::FromInt(1)}), kInvalidArgument);
    CHECK(gpus.free() == before);
  }
  SECTION("wrong length is rejected without change") {
    const auto before = gpus.free();
    CHECK_CODE(gpus.Free({FP(0.3)}), kInvalidArgument);
    CHECK_CODE(gpus.Free({FP(0.3), FixedPoint(), FixedPoint()}), kInvalidArgument);
    CHECK_CODE(gpus.Free({}), kInvalidArgument);
    CHECK(gpus.free() == before);
  }
  SECTION("negative amounts are rejected without change") {
    const auto before = gpus.free();
    CHECK_CODE(gpus.Free({FixedPoint::FromUnits(-1000), FixedPoint::FromInt(1)}), kInvalidArgument);
    CHECK(gpus.free() == before);
  }
}

// ---------------------------------------------------------------- ResourceAllocation / NodeResources

TEST_CASE("ResourceAllocation DeviceIndices lists devices with a share", "[resources][node_resources]") {
  ResourceAllocation alloc;
  alloc.instances[kGPU] = {FixedPoint(), FP(0.5), FixedPoint::FromInt(1), FixedPoint()};
  CHECK(alloc.DeviceIndices(kGPU) == std::vector<int>{1, 2});
  CHECK(alloc.DeviceIndices("TPU").empty());
  CHECK(ResourceAllocation().DeviceIndices(kGPU).empty());
}

TEST_CASE("NodeResources allocates and frees exactly", "[resources][node_resources]") {
  const ResourceSet total = RS({{"CPU", 4}, {"GPU", 2}, {"memory", 1000}});
  NodeResources node(total);
  CHECK(node.total() == total);
  CHECK(node.Available() == total);
  REQUIRE(node.Instances(kGPU) != nullptr);
  CHECK(node.Instances(kGPU)->size() == 2);
  CHECK(node.Instances(kCPU) == nullptr);

  auto a = node.Allocate(RS({{"CPU", 1}, {"GPU", 0.5}, {"memory", 100}}));
  REQUIRE_OK(a);
  CHECK(a->amounts == RS({{"CPU", 1}, {"GPU", 0.5}, {"memory", 100}}));
  CHECK(a->DeviceIndices(kGPU) == std::vector<int>{0});
  CHECK(node.Available() == RS({{"CPU", 3}, {"GPU", 1.5}, {"memory", 900}}));

  auto b = node.Allocate(RS({{"CPU", 2}, {"GPU", 1}}));
  REQUIRE_OK(b);
  CHECK(b->DeviceIndices(kGPU) == std::vector<int>{1});
  CHECK(node.Available() == RS({{"CPU", 1}, {"GPU", 0.5}, {"memory", 900}}));

  auto c = node.Allocate(RS({{"CPU", 1}}));
  REQUIRE_OK(c);
  CHECK(c->DeviceIndices(kGPU).empty());

  REQUIRE_OK(node.Free(*b));
  REQUIRE_OK(node.Free(*a));
  REQUIRE_OK(node.Free(*c));
  CHECK(node.Available() == total);
  CHECK(D(node.Instances(kGPU)->free()) == std::vector<double>{1, 1});
}

TEST_CASE("NodeResources allocation is all or nothing", "[resources][node_resources]") {
  NodeResources node(RS({{"CPU", 4}, {"GPU", 1}}));
  REQUIRE_OK(node.Allocate(RS({{"GPU", 0.75}})));
  const ResourceSet before = node.Available();
  REQUIRE(before == RS({{"CPU", 4}, {"GPU", 0.25}}));

  SECTION("CPU fits, GPU does not: CPU is untouched") {
    CHECK_CODE(node.Allocate(RS({{"CPU", 2}, {"GPU", 0.5}})), kResourceExhausted);
    CHECK(node.Available() == before);
  }
  SECTION("GPU request that is not whole: CPU is untouched") {
    CHECK_CODE(node.Allocate(RS({{"CPU", 2}, {"GPU", 1.5}})), kInvalidArgument);
    CHECK(node.Available() == before);
  }
  SECTION("GPU fits, CPU does not: GPU is untouched") {
    CHECK_CODE(node.Allocate(RS({{"CPU", 5}, {"GPU", 0.25}})), kResourceExhausted);
    CHECK(node.Available() == before);
    CHECK(D(node.Instances(kGPU)->free()) == std::vector<double>{0.25});
  }
  SECTION("a resource the node does not have") {
    CHECK_CODE(node.Allocate(RS({{"CPU", 1}, {"TPU", 1}})), kResourceExhausted);
    CHECK(node.Available() == before);
  }
}

TEST_CASE("NodeResources without GPUs refuses GPU requests", "[resources][node_resources]") {
  NodeResources node(RS({{"CPU", 2}}));
  CHECK(node.Instances(kGPU) == nullptr);
  CHECK_CODE(node.Allocate(RS({{"GPU", 0.5}})), kResourceExhausted);
  CHECK(node.Available() == RS({{"CPU", 2}}));
}

TEST_CASE("NodeResources Free of too much is rejected without change", "[resources][node_resources]") {
  NodeResources node(RS({{"CPU", 4}, {"GPU", 2}}));
  auto a = node.Allocate(RS({{"CPU", 1}, {"GPU", 1}}));
  REQUIRE_OK(a);
  auto gpu_only = node.Allocate(RS({{"GPU", 0.5}}));
  REQUIRE_OK(gpu_only);
  REQUIRE_OK(node.Free(*a));
  const ResourceSet after_free = node.Available();
  REQUIRE(after_free == RS({{"CPU", 4}, {"GPU", 1.5}}));

  SECTION("the same CPU+GPU allocation twice") {
    CHECK_CODE(node.Free(*a), kInvalidArgument);
    CHECK(node.Available() == after_free);
  }
  SECTION("a GPU-only allocation twice") {
    REQUIRE_OK(node.Free(*gpu_only));
    const ResourceSet all = node.Available();
    CHECK_CODE(node.Free(*gpu_only), kInvalidArgument);
    CHECK(node.Available() == all);
  }
  SECTION("an allocation of a resource the node does not have") {
    ResourceAllocation foreign;
    foreign.amounts = RS({{"TPU", 1}});
    CHECK_CODE(node.Free(foreign), kInvalidArgument);
    CHECK(node.Available() == after_free);
  }
  SECTION("GPU shares for the wrong number of devices") {
    ResourceAllocation wrong;
    wrong.amounts = RS({{"GPU", 0.5}});
    wrong.instances[kGPU] = {FP(0.5)};
    CHECK_CODE(node.Free(wrong), kInvalidArgument);
    CHECK(node.Available() == after_free);
  }
}

// ---------------------------------------------------------------- runtime capacity (bundles)

PlacementGroupId Pg(int n) {
  std::string bin(PlacementGroupId::kSize, '\0');
  bin[0] = static_cast<char>(n);
  return *PlacementGroupId::FromBinary(bin);
}

// What a committed bundle adds: its formatted names, GPU names on `gpu_shares`' devices.
ResourceAllocation BundleCapacity(const ResourceSet& bundle, const PlacementGroupId& pg, int index,
                                  std::vector<FixedPoint> gpu_shares = {}) {
  ResourceAllocation out;
  out.amounts = CommittedBundleResources(bundle, pg, index);
  if (!bundle.Get(kGPU).IsZero()) {
    out.instances[BundleResourceName(kGPU, pg, index)] = gpu_shares;
    out.instances[BundleResourceName(kGPU, pg, -1)] = gpu_shares;
  }
  return out;
}

TEST_CASE("ResourceInstances with capacities below 1: whole requests need a full device", "[resources][instances]") {
  ResourceInstances inst({FixedPoint(), FP(0.5), FixedPoint::FromInt(1)});
  CHECK(D(inst.capacity()) == std::vector<double>{0, 0.5, 1});
  CHECK(inst.TotalFree() == FP(1.5));
  auto whole = inst.Allocate(FixedPoint::FromInt(1));
  REQUIRE_OK(whole);
  CHECK(D(*whole) == std::vector<double>{0, 0, 1});
  CHECK_CODE(inst.Allocate(FixedPoint::FromInt(1)), kResourceExhausted);  // device 1 holds only 0.5
  auto half = inst.Allocate(FP(0.5));
  REQUIRE_OK(half);
  CHECK(D(*half) == std::vector<double>{0, 0.5, 0});
  CHECK_CODE(inst.Free({FixedPoint(), FixedPoint::FromInt(1), FixedPoint()}), kInvalidArgument);  // above capacity
  REQUIRE_OK(inst.Free(*half));
  REQUIRE_OK(inst.Free(*whole));
  CHECK(D(inst.free()) == std::vector<double>{0, 0.5, 1});
}

TEST_CASE("ResourceInstances Grow and Shrink change capacities, Shrink needs the share free",
          "[resources][instances]") {
  ResourceInstances inst(std::vector<FixedPoint>(2));
  REQUIRE_OK(inst.Grow({FP(0.5), FixedPoint()}));
  REQUIRE_OK(inst.Grow({FP(0.25), FixedPoint::FromInt(1)}));
  CHECK(D(inst.capacity()) == std::vector<double>{0.75, 1});
  CHECK_CODE(inst.Grow({FP(0.5), FixedPoint()}), kInvalidArgument);  // device 0 would hold 1.25
  CHECK_CODE(inst.Grow({FP(0.1)}), kInvalidArgument);                 // wrong length
  auto used = inst.Allocate(FP(0.5));
  REQUIRE_OK(used);
  CHECK(D(*used) == std::vector<double>{0.5, 0});  // best fit: the fuller device
  CHECK_CODE(inst.Shrink({FP(0.5), FixedPoint()}), kFailedPrecondition);
  CHECK(D(inst.capacity()) == std::vector<double>{0.75, 1});
  REQUIRE_OK(inst.Shrink({FP(0.25), FixedPoint()}));
  CHECK(D(inst.capacity()) == std::vector<double>{0.5, 1});
  CHECK(D(inst.free()) == std::vector<double>{0, 1});
}

TEST_CASE("ResourceInstances Allocate with `also` picks devices where both have the share",
          "[resources][instances]") {
  ResourceInstances indexed({FP(0.5), FP(0.5)});
  ResourceInstances wildcard({FP(0.5), FP(0.5)});
  REQUIRE_OK(wildcard.Take({FP(0.5), FixedPoint()}));  // device 0's wildcard share is in use
  auto taken = indexed.Allocate(FP(0.5), &wildcard);
  REQUIRE_OK(taken);
  CHECK(D(*taken) == std::vector<double>{0, 0.5});
  REQUIRE_OK(wildcard.Take(*taken));
  CHECK_CODE(indexed.Allocate(FP(0.5), &wildcard), kResourceExhausted);
  CHECK_CODE(wildcard.Take({FixedPoint(), FP(0.1)}), kResourceExhausted);
}

TEST_CASE("NodeResources adds and removes plain bundle resources at runtime", "[resources][node_resources][bundles]") {
  const ResourceSet base = RS({{"CPU", 4}, {"memory", 100}});
  NodeResources node(base);
  const PlacementGroupId pg = Pg(1);
  const ResourceAllocation b0 = BundleCapacity(RS({{"CPU", 2}}), pg, 0);
  const ResourceAllocation b1 = BundleCapacity(RS({{"CPU", 1}}), pg, 1);
  REQUIRE_OK(node.AddCapacity(b0));
  REQUIRE_OK(node.AddCapacity(b1));
  const std::string cpu0 = BundleResourceName(kCPU, pg, 0);
  const std::string cpu_any = BundleResourceName(kCPU, pg, -1);
  CHECK(node.total().Get(cpu0) == FixedPoint::FromInt(2));
  CHECK(node.total().Get(cpu_any) == FixedPoint::FromInt(3));
  CHECK(node.total().Get(BundleResourceName(kBundleMarker, pg, -1)) == FixedPoint::FromInt(2000));
  CHECK(node.Available() == node.total());

  // A task in bundle 0 takes from both names; a task in any bundle from the wildcard only.
  auto in0 = node.Allocate(FormatBundleDemand(RS({{"CPU", 2}}), pg, 0));
  REQUIRE_OK(in0);
  CHECK(node.Available().Get(cpu0).IsZero());
  CHECK(node.Available().Get(cpu_any) == FixedPoint::FromInt(1));
  CHECK_CODE(node.Allocate(FormatBundleDemand(RS({{"CPU", 2}}), pg, -1)), kResourceExhausted);

  // Bundle 0 is in use: removing it fails without change; bundle 1 is free: it goes.
  const ResourceSet before = node.total();
  CHECK_CODE(node.RemoveCapacity(b0), kFailedPrecondition);
  CHECK(node.total() == before);
  REQUIRE_OK(node.RemoveCapacity(b1));
  CHECK(node.total().Get(cpu_any) == FixedPoint::FromInt(2));
  CHECK(node.total().Get(BundleResourceName(kCPU, pg, 1)).IsZero());
  REQUIRE_OK(node.Free(*in0));
  REQUIRE_OK(node.RemoveCapacity(b0));
  CHECK(node.total() == base);
  CHECK(node.Available() == base);
}

TEST_CASE("NodeResources rejects malformed capacity", "[resources][node_resources][bundles]") {
  NodeResources node(RS({{"CPU", 4}, {"GPU", 2}}));
  const PlacementGroupId pg = Pg(2);
  const ResourceSet before = node.total();
  ResourceAllocation gpu;
  gpu.amounts = RS({{"GPU", 1}});
  gpu.instances[kGPU] = {FixedPoint::FromInt(1), FixedPoint()};
  CHECK_CODE(node.AddCapacity(gpu), kInvalidArgument);  // the node's own GPUs are fixed
  CHECK_CODE(node.AddCapacity(BundleCapacity(RS({{"GPU", 0.5}}), pg, 0)), kInvalidArgument);  // no shares
  CHECK_CODE(node.AddCapacity(BundleCapacity(RS({{"GPU", 0.5}}), pg, 0, {FP(0.5)})), kInvalidArgument);  // 1 of 2
  CHECK_CODE(node.AddCapacity(BundleCapacity(RS({{"GPU", 0.5}}), pg, 0, {FP(0.25), FixedPoint()})),
             kInvalidArgument);  // shares do not sum to the amount
  CHECK_CODE(node.RemoveCapacity(BundleCapacity(RS({{"CPU", 1}}), pg, 0)), kFailedPrecondition);  // not there
  CHECK(node.total() == before);
}

TEST_CASE("NodeResources bundle GPUs: per-device capacity is the bundle's share of its device",
          "[resources][node_resources][bundles]") {
  NodeResources node(RS({{"CPU", 4}, {"GPU", 2}}));
  const PlacementGroupId pg = Pg(3);
  // Bundle 1 {GPU: 1} takes device 0, then bundle 0 {GPU: 0.5} takes device 1.
  auto r1 = node.Allocate(RS({{"GPU", 1}}));
  auto r0 = node.Allocate(RS({{"GPU", 0.5}}));
  REQUIRE_OK(r1);
  REQUIRE_OK(r0);
  REQUIRE(r1->DeviceIndices(kGPU) == std::vector<int>{0});
  REQUIRE(r0->DeviceIndices(kGPU) == std::vector<int>{1});
  REQUIRE_OK(node.AddCapacity(BundleCapacity(RS({{"GPU", 0.5}}), pg, 0, r0->instances.at(kGPU))));
  REQUIRE_OK(node.AddCapacity(BundleCapacity(RS({{"GPU", 1}}), pg, 1, r1->instances.at(kGPU))));
  const std::string gpu0 = BundleResourceName(kGPU, pg, 0);
  const std::string gpu1 = BundleResourceName(kGPU, pg, 1);
  const std::string gpu_any = BundleResourceName(kGPU, pg, -1);
  REQUIRE(node.Instances(gpu0) != nullptr);
  CHECK(D(node.Instances(gpu0)->capacity()) == std::vector<double>{0, 0.5});
  CHECK(D(node.Instances(gpu_any)->capacity()) == std::vector<double>{1, 0.5});
  CHECK(node.total().Get(gpu_any) == FP(1.5));
  CHECK(node.Available().Get(kGPU) == FP(0.5));

  SECTION("a whole GPU in bundle 0 ({GPU: 0.5}) never fits; in bundle 1 it takes device 0") {
    CHECK_CODE(node.Allocate(FormatBundleDemand(RS({{"GPU", 1}}), pg, 0)), kResourceExhausted);
    auto b = node.Allocate(FormatBundleDemand(RS({{"GPU", 1}}), pg, 1));
    REQUIRE_OK(b);
    CHECK(b->GpuName() == gpu1);
    CHECK(b->DeviceIndices(gpu1) == std::vector<int>{0});
    CHECK(b->DeviceIndices(gpu_any) == std::vector<int>{0});
  }
  SECTION("indexed and wildcard shares come from the same device, not each its own best fit") {
    // A task in any bundle takes 0.75 of device 0: the wildcard then has [0.25, 0.5] free.
    auto any = node.Allocate(FormatBundleDemand(RS({{"GPU", 0.75}}), pg, -1));
    REQUIRE_OK(any);
    CHECK(any->GpuName() == gpu_any);
    CHECK(any->DeviceIndices(gpu_any) == std::vector<int>{0});
    // Best fit on the wildcard alone would pick device 0 (0.25 free); bundle 0 lives on device 1.
    auto a = node.Allocate(FormatBundleDemand(RS({{"GPU", 0.25}}), pg, 0));
    REQUIRE_OK(a);
    CHECK(a->GpuName() == gpu0);
    CHECK(a->DeviceIndices(gpu0) == std::vector<int>{1});
    CHECK(a->DeviceIndices(gpu_any) == std::vector<int>{1});
    CHECK(D(node.Instances(gpu_any)->free()) == std::vector<double>{0.25, 0.25});
    REQUIRE_OK(node.Free(*a));
    REQUIRE_OK(node.Free(*any));
    CHECK(D(node.Instances(gpu_any)->free()) == std::vector<double>{1, 0.5});
  }
  SECTION("a wildcard task's share keeps an indexed task off its device") {
    auto any = node.Allocate(FormatBundleDemand(RS({{"GPU", 0.5}}), pg, -1));
    REQUIRE_OK(any);
    CHECK(any->DeviceIndices(gpu_any) == std::vector<int>{1});  // best fit: the fuller device
    // Bundle 0's indexed share on device 1 is free, but the group's wildcard share there is not.
    const ResourceSet before = node.Available();
    CHECK_CODE(node.Allocate(FormatBundleDemand(RS({{"GPU", 0.5}}), pg, 0)), kResourceExhausted);
    CHECK(node.Available() == before);
  }
  SECTION("removing a bundle takes its shares off the wildcard's devices") {
    REQUIRE_OK(node.RemoveCapacity(BundleCapacity(RS({{"GPU", 0.5}}), pg, 0, r0->instances.at(kGPU))));
    CHECK(node.Instances(gpu0) == nullptr);
    CHECK(D(node.Instances(gpu_any)->capacity()) == std::vector<double>{1, 0});
    CHECK(node.total().Get(gpu_any) == FixedPoint::FromInt(1));
    REQUIRE_OK(node.Free(*r0));
    CHECK(node.Available().Get(kGPU) == FixedPoint::FromInt(1));
  }
  SECTION("a plain GPU request keeps today's behaviour") {
    auto plain = node.Allocate(RS({{"GPU", 0.5}}));
    REQUIRE_OK(plain);
    CHECK(plain->GpuName() == kGPU);
    CHECK(plain->DeviceIndices(kGPU) == std::vector<int>{1});
    CHECK(node.Instances(gpu_any)->free() == node.Instances(gpu_any)->capacity());
  }
}

}  // namespace
}  // namespace shoal
