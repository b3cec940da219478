// Fuzzes the dashboard's HTTP header parsing and request checks (src/dashboard/auth.h):
// ParseHostHeader and HostAllowed (Host, DNS rebinding), CookieValue (Cookie), the bearer token
// in Authorization, Origin and Sec-Fetch-Site, all through CheckRequest, which every route runs
// on a request's headers before anything else (server.cc).
//
// Input: a policy (bound host, port, token, auth on or off) and a request's headers.
// Invariants: CheckRequest answers OK, PermissionDenied or Unauthenticated only; a Host the
// check lets through names the bound address and port (or, bound to loopback, a loopback
// literal: localhost, [::1] or 127.x.y.z); a request it lets through with auth on and a private
// path carries the exact token; a cross-site write is refused; the Host, Cookie and token
// parsers return what a header built from known parts holds.
#include <fuzzer/FuzzedDataProvider.h>

#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "fuzz/fuzz_check.h"
#include "src/dashboard/auth.h"

namespace db = shoal::dashboard;

namespace {

constexpr char kToken[] = "0123456789abcdef0123456789abcdef";

bool IsIpv4Loopback(const std::string& name) {
  std::vector<std::string> parts = absl::StrSplit(name, '.');
  if (parts.size() != 4 || parts[0] != "127") return false;
  for (const std::string& p : parts) {
    int v;
    if (p.empty() || p.size() > 3 || p.find_first_not_of("0123456789") != std::string::npos ||
        !absl::SimpleAtoi(p, &v) || v > 255) {
      return false;
    }
  }
  return true;
}

bool IsLoopbackName(const std::string& name) {
  return name == "localhost" || name == "[::1]" || name == "::1" || IsIpv4Loopback(name);
}

bool IsWildcard(const std::string& host) { return host.empty() || host == "0.0.0.0" || host == "::" || host == "[::]"; }

std::string PickHost(FuzzedDataProvider& in) {
  static const char* kHosts[] = {"127.0.0.1", "localhost", "::1", "10.1.2.3", "head.example", "0.0.0.0", "::"};
  const size_t pick = in.ConsumeIntegralInRange<size_t>(0, std::size(kHosts));
  return pick < std::size(kHosts) ? kHosts[pick] : in.ConsumeRandomLengthString(24);
}

// Host header, Cookie header and token parsing on headers built from known parts.
void CheckParsers(FuzzedDataProvider& in) {
  std::string name = absl::AsciiStrToLower(in.ConsumeRandomLengthString(24));
  name.erase(std::remove_if(name.begin(), name.end(), [](char c) { return c == ':' || absl::ascii_isspace(c); }),
             name.end());
  const int port = in.ConsumeIntegralInRange(0, 65535);
  db::HostHeader parsed = db::ParseHostHeader(absl::StrCat(" ", name, ":", port, " "));
  FUZZ_CHECK(parsed.name == name && parsed.port == port);
  parsed = db::ParseHostHeader(absl::StrCat("[", name, "]:", port));
  FUZZ_CHECK(parsed.name == absl::StrCat("[", name, "]") && parsed.port == port);
  parsed = db::ParseHostHeader(name);
  FUZZ_CHECK(parsed.name == name && parsed.port == 80);

  std::string key = in.ConsumeRandomLengthString(12), value = in.ConsumeRandomLengthString(40);
  const bool plain = !key.empty() && key.find_first_of("=; \t\r\n\v\f") == std::string::npos &&
                     value.find_first_of("; \t\r\n\v\f") == std::string::npos;
  if (plain) {
    std::optional<std::string> got = db::CookieValue(absl::StrCat("x=1; ", key, "=", value, "; ", key, "=later"), key);
    FUZZ_CHECK(got == (key == "x" ? "1" : value));
  }
  FUZZ_CHECK(db::ConstantTimeEquals(key, value) == (key == value));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  FuzzedDataProvider in(data, size);
  CheckParsers(in);

  db::AuthPolicy policy;
  policy.token = in.ConsumeBool() ? kToken : in.ConsumeRandomLengthString(40);
  policy.disabled = in.ConsumeBool();
  policy.bound_host = PickHost(in);
  policy.bound_port = in.ConsumeBool() ? 8265 : in.ConsumeIntegralInRange(0, 70000);
  const bool public_path = in.ConsumeBool();

  db::RequestHeaders request;
  static const char* kMethods[] = {"GET", "HEAD", "OPTIONS", "POST", "PUT", "DELETE", "get"};
  request.method = kMethods[in.ConsumeIntegralInRange<size_t>(0, std::size(kMethods) - 1)];
  request.path = "/api/jobs/";
  request.host = in.ConsumeBool() ? absl::StrCat(policy.bound_host, ":", policy.bound_port) : in.ConsumeRandomLengthString(48);
  request.origin = in.ConsumeBool() ? "" : in.ConsumeRandomLengthString(48);
  request.sec_fetch_site = in.ConsumeBool() ? "" : in.ConsumeRandomLengthString(16);
  request.authorization = in.ConsumeBool() ? absl::StrCat("Bearer ", policy.token) : in.ConsumeRandomLengthString(64);
  request.cookie = in.ConsumeRemainingBytesAsString();

  const absl::Status status = db::CheckRequest(policy, request, public_path);
  FUZZ_CHECK(status.ok() || absl::IsPermissionDenied(status) || absl::IsUnauthenticated(status));

  const bool host_allowed = db::HostAllowed(policy, request.host);
  if (!host_allowed) FUZZ_CHECK(absl::IsPermissionDenied(status));
  if (host_allowed && !IsWildcard(policy.bound_host)) {
    db::HostHeader host = db::ParseHostHeader(request.host);
    const std::string bound = absl::AsciiStrToLower(policy.bound_host);
    FUZZ_CHECK(host.port == policy.bound_port);
    FUZZ_CHECK(host.name == bound || host.name == absl::StrCat("[", bound, "]") ||
               (IsLoopbackName(bound) && IsLoopbackName(host.name)));
  }
  if (status.ok() && db::IsStateChanging(request.method)) {
    FUZZ_CHECK(request.sec_fetch_site != "cross-site" && request.sec_fetch_site != "same-site");
    const std::string origin = absl::AsciiStrToLower(request.origin);
    const std::string host = absl::AsciiStrToLower(request.host);
    FUZZ_CHECK(origin.empty() || origin == "http://" + host || origin == "https://" + host);
  }
  if (status.ok() && !policy.disabled && !public_path) {
    FUZZ_CHECK(!policy.token.empty());
    std::string auth(absl::StripAsciiWhitespace(request.authorization));
    const bool bearer = auth.size() > 7 && absl::AsciiStrToLower(auth.substr(0, 7)) == "bearer ";
    const std::string given = bearer ? std::string(absl::StripAsciiWhitespace(auth.substr(7)))
                                     : db::CookieValue(request.cookie, db::kTokenCookie).value_or("");
    FUZZ_CHECK(given == policy.token);
  }
  return 0;
}
