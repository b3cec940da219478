// Short builders for resource sets, quantities and node ids in tests.
#pragma once

#include <map>
#include <string>

#include <catch2/catch.hpp>

#include "shoal/common.pb.h"
#include "src/common/ids.h"
#include "src/common/resources.h"
#include "tests/test_util/status_matchers.h"

namespace shoal::test_util {

// {"CPU": 2, "GPU": 0.5} as a ResourceSet; fails the test on invalid input.
inline ResourceSet RS(const std::map<std::string, double>& values) {
  auto set = ResourceSet::FromDoubles(values);
  REQUIRE_OK(set);
  return *set;
}

// The same as an rpc::ResourceMap.
inline rpc::ResourceMap ResourceMapOf(const std::map<std::string, double>& values) {
  rpc::ResourceMap out;
  RS(values).ToProto(&out);
  return out;
}

inline FixedPoint FP(double v) {
  auto fp = FixedPoint::FromDouble(v);
  REQUIRE_OK(fp);
  return *fp;
}

// Node ids that sort in the order of `n`.
inline NodeId Id(int n) {
  std::string bin(NodeId::kSize, '\0');
  bin[0] = static_cast<char>(n);
  return *NodeId::FromBinary(bin);
}

}  // namespace shoal::test_util
