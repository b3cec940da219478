// Who may call the dashboard: the bearer-token check and the cross-site request checks.
// Pure: a request is described by its headers, so every rule is tested without a server.
//
// Rules, in order:
//  1. Host (DNS rebinding): the Host header must carry the bound port and name one of the
//     names and addresses the server answers on: the bound address; a loopback name
//     (127.x.y.z, localhost, [::1]) when bound to loopback or to every address (0.0.0.0, ::);
//     any IP address literal when bound to every address (no DNS is involved, so a page cannot
//     rebind it); and the names in `host_names` (the machine's host name, --allowed-hosts).
//     Any other name may be one an attacker's DNS points here.
//  2. Cross-site (CSRF), for state-changing methods (anything but GET, HEAD, OPTIONS): an
//     Origin header, when present, must be http(s)://<the request's Host>; a
//     Sec-Fetch-Site of "cross-site" or "same-site" is refused.
//  3. Token, unless auth is disabled or the path is public (the UI's page and its login):
//     `Authorization: Bearer <token>`, or the `shoal_token` cookie the login sets.
// Threading: values; thread-safe to share once built.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace shoal::dashboard {

inline constexpr char kTokenCookie[] = "shoal_token";

struct AuthPolicy {
  std::string token;          // required when !disabled
  bool disabled = false;      // --disable-auth
  std::string bound_host;     // what the server listens on ("127.0.0.1", "0.0.0.0", ...)
  int bound_port = 0;
  std::vector<std::string> host_names;  // more names that reach the server (rule 1), any case
};

struct RequestHeaders {
  std::string method;         // "GET", "POST", ...
  std::string path;
  std::string host;           // Host header
  std::string origin;         // Origin header, "" when absent
  std::string sec_fetch_site; // Sec-Fetch-Site header, "" when absent
  std::string authorization;  // Authorization header
  std::string cookie;         // Cookie header
};

// OK, or PermissionDenied (bad Host, cross-site: HTTP 403) or Unauthenticated (no or a wrong
// token: HTTP 401), with a message that says what to do.
absl::Status CheckRequest(const AuthPolicy& policy, const RequestHeaders& request, bool public_path);

// A Host header's name, lowercased, and port: "[::1]:8265" -> {"[::1]", 8265}. The port is 80
// when absent and -1 when it is not a number.
struct HostHeader {
  std::string name;
  int port = 80;
};
HostHeader ParseHostHeader(const std::string& host_header);

// Rule 1 above: whether a request with this Host header may reach a server bound as `policy`.
bool HostAllowed(const AuthPolicy& policy, const std::string& host_header);

// True for the methods that change state.
bool IsStateChanging(const std::string& method);

// The value of cookie `name` in a Cookie header.
std::optional<std::string> CookieValue(const std::string& cookie_header, const std::string& name);

// What a request's framing headers allow, decided before any of its body is read. Values are
// every occurrence of the header, in order (a header sent twice is a smuggling attempt).
struct BodyAllowance {
  bool has_body = false;       // false: neither Content-Length nor Transfer-Encoding (RFC 9112 6.3)
  bool chunked = false;
  int64_t max_wire_bytes = 0;  // what the body may take on the wire, chunk framing included
};
// InvalidArgument (400): a malformed or repeated Content-Length, or both headers; ResourceExhausted
// (413): a Content-Length over `max_body`; Unimplemented (501): a transfer coding other than chunked.
absl::StatusOr<BodyAllowance> CheckBodyFraming(const std::vector<std::string>& content_length,
                                               const std::vector<std::string>& transfer_encoding, int64_t max_body);

// Compares without an early exit, so the time taken does not leak how much of a guess matched.
bool ConstantTimeEquals(const std::string& a, const std::string& b);

}  // namespace shoal::dashboard
