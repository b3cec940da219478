#include "src/dashboard/auth.h"

#include <catch2/catch.hpp>

namespace shoal::dashboard {
namespace {

AuthPolicy Loopback() { return {.token = "0123456789abcdef0123456789abcdef", .bound_host = "127.0.0.1", .bound_port = 8265, .host_names = {}}; }

RequestHeaders Get(const std::string& auth = "") {
  return {.method = "GET", .path = "/api/jobs/", .host = "127.0.0.1:8265", .authorization = auth};
}

TEST_CASE("a request with the bearer token passes, without it or with a wrong one is 401") {
  AuthPolicy policy = Loopback();
  REQUIRE(CheckRequest(policy, Get("Bearer 0123456789abcdef0123456789abcdef"), false).ok());
  REQUIRE(CheckRequest(policy, Get("bearer 0123456789abcdef0123456789abcdef"), false).ok());
  REQUIRE(absl::IsUnauthenticated(CheckRequest(policy, Get(), false)));
  REQUIRE(absl::IsUnauthenticated(CheckRequest(policy, Get("Bearer wrong"), false)));
  REQUIRE(absl::IsUnauthenticated(CheckRequest(policy, Get("Basic 0123456789abcdef0123456789abcdef"), false)));
  // Public paths (the UI page, the login) need no token; disabled auth needs none anywhere.
  REQUIRE(CheckRequest(policy, Get(), true).ok());
  policy.disabled = true;
  REQUIRE(CheckRequest(policy, Get(), false).ok());
}

TEST_CASE("the token cookie the UI's login sets is accepted") {
  RequestHeaders r = Get();
  r.cookie = "other=1; shoal_token=0123456789abcdef0123456789abcdef";
  REQUIRE(CheckRequest(Loopback(), r, false).ok());
  r.cookie = "shoal_token=nope";
  REQUIRE(absl::IsUnauthenticated(CheckRequest(Loopback(), r, false)));
  REQUIRE(CookieValue("a=1; b=2", "b") == "2");
  REQUIRE_FALSE(CookieValue("a=1", "b").has_value());
}

TEST_CASE("a Host that does not name the dashboard is refused (DNS rebinding)") {
  AuthPolicy policy = Loopback();
  policy.disabled = true;
  RequestHeaders r = Get();
  for (const char* ok : {"127.0.0.1:8265", "localhost:8265", "LOCALHOST:8265", "[::1]:8265"}) {
    r.host = ok;
    INFO(ok);
    REQUIRE(CheckRequest(policy, r, false).ok());
  }
  for (const char* bad : {"evil.example:8265", "127.0.0.1:9999", "127.0.0.1", "", "attacker.com"}) {
    r.host = bad;
    INFO(bad);
    REQUIRE(absl::IsPermissionDenied(CheckRequest(policy, r, false)));
  }
}

TEST_CASE("bound to every address, the Host may be an IP address, a loopback name or a known name") {
  AuthPolicy policy = Loopback();
  policy.disabled = true;
  policy.bound_host = "0.0.0.0";
  policy.host_names = {"head-1", "Head.Cluster.Example"};
  RequestHeaders r = Get();
  for (const char* ok : {"10.1.2.3:8265", "203.0.113.9:8265", "[fe80::1]:8265", "[::1]:8265", "localhost:8265",
                         "127.0.0.1:8265", "head-1:8265", "HEAD-1:8265", "head.cluster.example:8265"}) {
    r.host = ok;
    INFO(ok);
    REQUIRE(CheckRequest(policy, r, false).ok());
  }
  // Names an attacker's DNS may point here (DNS rebinding), and the right names on the wrong port.
  for (const char* bad : {"head.cluster:8265", "attacker.example:8265", "127.attacker.example:8265",
                          "10.1.2.3.nip.io:8265", "1.2.3:8265", "0x7f.0.0.1:8265", "[head-1]:8265", "fe80::1:8265",
                          "10.1.2.3:9999", "head-1:9999", "head-1", ":8265", ""}) {
    r.host = bad;
    INFO(bad);
    REQUIRE(absl::IsPermissionDenied(CheckRequest(policy, r, false)));
  }
  policy.bound_host = "::";
  r.host = "[2001:db8::7]:8265";
  REQUIRE(CheckRequest(policy, r, false).ok());
}

TEST_CASE("bound to one address, the Host may also be one of the known names, never another address") {
  AuthPolicy policy = Loopback();
  policy.disabled = true;
  policy.bound_host = "10.1.2.3";
  policy.host_names = {"head-1"};
  RequestHeaders r = Get();
  for (const char* ok : {"10.1.2.3:8265", "head-1:8265"}) {
    r.host = ok;
    INFO(ok);
    REQUIRE(CheckRequest(policy, r, false).ok());
  }
  for (const char* bad : {"10.1.2.4:8265", "127.0.0.1:8265", "localhost:8265", "evil.example:8265"}) {
    r.host = bad;
    INFO(bad);
    REQUIRE(absl::IsPermissionDenied(CheckRequest(policy, r, false)));
  }
}

TEST_CASE("a body's framing is checked against the route's limit before it is read") {
  using V = std::vector<std::string>;
  absl::StatusOr<BodyAllowance> body = CheckBodyFraming(V{}, V{}, 100);
  REQUIRE(body.ok());
  REQUIRE_FALSE(body->has_body);  // neither header: no body (RFC 9112 6.3), whatever the method
  body = CheckBodyFraming(V{"100"}, V{}, 100);
  REQUIRE(body.ok());
  REQUIRE(body->has_body);
  REQUIRE_FALSE(body->chunked);
  REQUIRE(body->max_wire_bytes == 100);
  body = CheckBodyFraming(V{"0"}, V{}, 0);
  REQUIRE(body.ok());
  REQUIRE(body->max_wire_bytes == 0);
  REQUIRE(absl::IsResourceExhausted(CheckBodyFraming(V{"101"}, V{}, 100).status()));
  REQUIRE(absl::IsResourceExhausted(CheckBodyFraming(V{"314572800"}, V{}, 1 << 20).status()));
  for (const char* bad : {"", "-1", "1e3", " 5", "0x10", "99999999999999999999999"}) {
    INFO(bad);
    REQUIRE(absl::IsInvalidArgument(CheckBodyFraming(V{bad}, V{}, 100).status()));
  }
  REQUIRE(absl::IsInvalidArgument(CheckBodyFraming(V{"5", "5"}, V{}, 100).status()));
  REQUIRE(absl::IsInvalidArgument(CheckBodyFraming(V{"5"}, V{"chunked"}, 100).status()));
  body = CheckBodyFraming(V{}, V{"Chunked"}, 1000);
  REQUIRE(body.ok());
  REQUIRE(body->chunked);
  REQUIRE(body->max_wire_bytes >= 1000);
  REQUIRE(body->max_wire_bytes <= 1000 + 1000 / 4 + (64 << 10));
  REQUIRE(absl::IsUnimplemented(CheckBodyFraming(V{}, V{"gzip, chunked"}, 100).status()));
  REQUIRE(absl::IsUnimplemented(CheckBodyFraming(V{}, V{"identity"}, 100).status()));
}

TEST_CASE("state-changing cross-site requests are refused, reads and same-origin writes are not") {
  AuthPolicy policy = Loopback();
  policy.disabled = true;
  RequestHeaders r = Get();
  r.method = "POST";
  REQUIRE(CheckRequest(policy, r, false).ok());  // no Origin: a command-line client
  r.origin = "http://127.0.0.1:8265";
  REQUIRE(CheckRequest(policy, r, false).ok());
  r.origin = "http://evil.example";
  REQUIRE(absl::IsPermissionDenied(CheckRequest(policy, r, false)));
  r.origin = "";
  r.sec_fetch_site = "cross-site";
  REQUIRE(absl::IsPermissionDenied(CheckRequest(policy, r, false)));
  r.method = "GET";  // a read is not state-changing
  REQUIRE(CheckRequest(policy, r, false).ok());
  REQUIRE(IsStateChanging("DELETE"));
  REQUIRE(IsStateChanging("PUT"));
  REQUIRE_FALSE(IsStateChanging("HEAD"));
}

TEST_CASE("ConstantTimeEquals compares whole strings") {
  const std::string a = "0123456789abcdef0123456789abcdef", b = "0123456789abcdef0123456789abcdee";
  REQUIRE(ConstantTimeEquals(a, a));
  REQUIRE_FALSE(ConstantTimeEquals(a, b));
  REQUIRE_FALSE(ConstantTimeEquals(a, a.substr(1)));
}

// Found by fuzz/http_auth_fuzzer: every name starting with "127." counted as loopback, so
// 127.attacker.example (which resolves wherever its owner says) passed the Host check.
TEST_CASE("only loopback addresses and localhost count as loopback names") {
  AuthPolicy policy = Loopback();
  policy.disabled = true;
  RequestHeaders r = Get();
  for (const char* ok : {"127.0.0.2:8265", "127.255.255.255:8265", "localhost:8265"}) {
    r.host = ok;
    INFO(ok);
    REQUIRE(CheckRequest(policy, r, false).ok());
  }
  for (const char* bad : {"127.attacker.example:8265", "127.0.0.1.evil.example:8265", "127.0.0.256:8265",
                          "127.0.0:8265", "127..0.1:8265", "127.0.0.1a:8265", "127.0.0.-1:8265"}) {
    r.host = bad;
    INFO(bad);
    REQUIRE(absl::IsPermissionDenied(CheckRequest(policy, r, false)));
  }
}

TEST_CASE("Host headers split into a lowercase name and a port") {
  HostHeader h = ParseHostHeader(" Head.Example:8265 ");
  REQUIRE(h.name == "head.example");
  REQUIRE(h.port == 8265);
  h = ParseHostHeader("[::1]:80");
  REQUIRE(h.name == "[::1]");
  REQUIRE(h.port == 80);
  h = ParseHostHeader("[::1]");
  REQUIRE(h.name == "[::1]");
  REQUIRE(h.port == 80);
  REQUIRE(ParseHostHeader("x:8a").port == -1);
}

}  // namespace
}  // namespace shoal::dashboard
