#include "src/worker/call_order.h"

#include <catch2/catch.hpp>

namespace shoal {
namespace {

const absl::Time kT0 = absl::FromUnixSeconds(1000);

TEST_CASE("calls of one caller come out in sequence order", "[call_order]") {
  CallOrder<int> order(absl::Seconds(2));
  CHECK(order.Add("a", 2, 102, kT0).empty());
  CHECK(order.Add("a", 1, 101, kT0).empty());
  CHECK(order.Add("b", 0, 200, kT0) == std::vector<int>{200});  // callers are independent
  CHECK(order.Add("a", 0, 100, kT0) == std::vector<int>{100, 101, 102});
  CHECK(order.Add("a", 1, 111, kT0) == std::vector<int>{111});  // sent again: runs at once
  CHECK(order.Add("a", 3, 103, kT0) == std::vector<int>{103});
}

TEST_CASE("a missing number is given up after the gap timeout", "[call_order]") {
  CallOrder<int> order(absl::Seconds(2));
  CHECK(order.Add("a", 0, 100, kT0) == std::vector<int>{100});
  CHECK_FALSE(order.Holding());
  CHECK(order.Add("a", 2, 102, kT0).empty());  // #1 never comes
  CHECK(order.Holding());
  CHECK(order.Add("a", 3, 103, kT0 + absl::Seconds(1)).empty());
  CHECK(order.ReleaseGaps(kT0 + absl::Seconds(1)).empty());
  CHECK(order.ReleaseGaps(kT0 + absl::Seconds(2)) == std::vector<int>{102, 103});
  CHECK(order.Add("a", 4, 104, kT0 + absl::Seconds(3)) == std::vector<int>{104});
  CHECK(order.Add("a", 6, 106, kT0 + absl::Seconds(3)).empty());
  CHECK(order.TakeAll() == std::vector<int>{106});
  CHECK_FALSE(order.Holding());
  CHECK(order.ReleaseGaps(kT0 + absl::Seconds(10)).empty());
}

}  // namespace
}  // namespace shoal
