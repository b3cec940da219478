#include "src/cluster/token.h"

#include <catch2/catch.hpp>

#include <set>
#include <string>

#include "tests/test_util/status_matchers.h"

namespace shoal::cluster {
namespace {

TEST_CASE("tokens are 32 lowercase hex digits and differ", "[token]") {
  std::set<std::string> seen;
  for (int i = 0; i < 100; ++i) {
    absl::StatusOr<std::string> token = NewToken();
    REQUIRE_OK(token);
    REQUIRE(token->size() == 32);
    REQUIRE(token->find_first_not_of("0123456789abcdef") == std::string::npos);
    seen.insert(*token);
  }
  REQUIRE(seen.size() == 100);
}

}  // namespace
}  // namespace shoal::cluster
