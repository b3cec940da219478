#include "src/common/rpc.h"

#include <catch2/catch.hpp>

#include <string>
#include <utility>

#include "tests/test_util/status_matchers.h"

namespace shoal {
namespace {

TEST_CASE("ParseHostPort splits host and port", "[rpc]") {
  using HostPort = std::pair<std::string, int>;
  auto a = ParseHostPort("127.0.0.1:6379");
  REQUIRE_OK(a);
  CHECK(*a == HostPort{"127.0.0.1", 6379});
  auto b = ParseHostPort("localhost:1");
  REQUIRE_OK(b);
  CHECK(*b == HostPort{"localhost", 1});
  auto c = ParseHostPort("head-node.example.com:65535");
  REQUIRE_OK(c);
  CHECK(*c == HostPort{"head-node.example.com", 65535});
  // The last colon splits, so bracketed IPv6 works.
  auto d = ParseHostPort("[::1]:8000");
  REQUIRE_OK(d);
  CHECK(*d == HostPort{"[::1]", 8000});
}

TEST_CASE("ParseHostPort rejects malformed addresses", "[rpc]") {
  const char* bad[] = {
      "",          "localhost",       ":6379",        "localhost:",  "localhost:0",
      "host:-1",   "host:65536",      "host:99999999999", "host:abc", "host:80x",
      "host:8.5",  ":",
  };
  for (const char* address : bad) {
    CAPTURE(address);
    CHECK_CODE(ParseHostPort(address), kInvalidArgument);
  }
}

}  // namespace
}  // namespace shoal
