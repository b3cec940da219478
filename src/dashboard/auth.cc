// Token and cross-site checks; see auth.h.
#include "src/dashboard/auth.h"

#include <arpa/inet.h>

#include <algorithm>
#include <cstdint>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace shoal::dashboard {
namespace {

// An IPv4 address in 127.0.0.0/8 written as four decimal numbers 0..255 ("127.0.0.1").
// Not a name that merely starts with "127.": 127.attacker.example resolves wherever its owner
// points it (DNS rebinding).
bool IsIpv4Loopback(const std::string& host) {
  std::vector<absl::string_view> parts = absl::StrSplit(host, '.');
  if (parts.size() != 4 || parts[0] != "127") return false;
  for (absl::string_view part : parts) {
    if (part.empty() || part.size() > 3 || !std::all_of(part.begin(), part.end(), absl::ascii_isdigit)) return false;
    int value = 0;
    for (char c : part) value = value * 10 + (c - '0');
    if (value > 255) return false;
  }
  return true;
}

bool IsLoopback(const std::string& host) {
  return host == "localhost" || host == "::1" || host == "[::1]" || IsIpv4Loopback(host);
}

bool IsWildcard(const std::string& host) { return host == "0.0.0.0" || host == "::" || host == "[::]" || host.empty(); }

// "10.1.2.3" or "[fe80::1]", as a Host header writes an address (inet_pton takes only the
// dotted-quad and IPv6 textual forms, so no name passes).
bool IsIpLiteral(const std::string& name) {
  unsigned char addr[16];
  if (name.size() > 2 && name.front() == '[' && name.back() == ']') {
    return inet_pton(AF_INET6, name.substr(1, name.size() - 2).c_str(), addr) == 1;
  }
  return inet_pton(AF_INET, name.c_str(), addr) == 1;
}

}  // namespace

HostHeader ParseHostHeader(const std::string& host_header) {
  std::string host = absl::AsciiStrToLower(std::string(absl::StripAsciiWhitespace(host_header)));
  size_t colon = host.rfind(':');
  size_t bracket = host.rfind(']');
  if (colon == std::string::npos || (bracket != std::string::npos && colon < bracket)) return {host, 80};
  int port = 0;
  for (char c : host.substr(colon + 1)) {
    if (c < '0' || c > '9' || port > 65535) return {host, -1};
    port = port * 10 + (c - '0');
  }
  return {host.substr(0, colon), port};
}

bool HostAllowed(const AuthPolicy& policy, const std::string& host_header) {
  auto [name, port] = ParseHostHeader(host_header);
  if (port != policy.bound_port || name.empty()) return false;
  for (const std::string& allowed : policy.host_names) {
    if (name == absl::AsciiStrToLower(allowed)) return true;
  }
  std::string bound = absl::AsciiStrToLower(policy.bound_host);
  if (IsWildcard(bound)) return IsLoopback(name) || IsIpLiteral(name);
  if (name == bound || name == absl::StrCat("[", bound, "]")) return true;
  return IsLoopback(bound) && IsLoopback(name);
}

absl::StatusOr<BodyAllowance> CheckBodyFraming(const std::vector<std::string>& content_length,
                                               const std::vector<std::string>& transfer_encoding, int64_t max_body) {
  if (!content_length.empty() && !transfer_encoding.empty()) {
    return absl::InvalidArgumentError("send either Content-Length or Transfer-Encoding, not both");
  }
  if (content_length.size() > 1 || transfer_encoding.size() > 1) {
    return absl::InvalidArgumentError("Content-Length and Transfer-Encoding may be sent once each");
  }
  if (!transfer_encoding.empty()) {
    if (absl::AsciiStrToLower(absl::StripAsciiWhitespace(transfer_encoding[0])) != "chunked") {
      return absl::UnimplementedError(
          absl::StrCat("Transfer-Encoding '", transfer_encoding[0], "' is not supported; send chunked or Content-Length"));
    }
    // Chunk sizes and line ends come on top of the data: allow a quarter more, and 64 KiB.
    return BodyAllowance{.has_body = true, .chunked = true, .max_wire_bytes = max_body + max_body / 4 + (64 << 10)};
  }
  if (content_length.empty()) return BodyAllowance{};
  const std::string& text = content_length[0];
  uint64_t length = 0;
  if (text.empty() || !std::all_of(text.begin(), text.end(), absl::ascii_isdigit) || !absl::SimpleAtoi(text, &length)) {
    return absl::InvalidArgumentError(absl::StrCat("Content-Length '", text, "' is not a number of bytes"));
  }
  if (length > static_cast<uint64_t>(max_body)) {
    return absl::ResourceExhaustedError(
        absl::StrCat("the request body (", length, " bytes) is larger than the ", max_body, " bytes this route takes"));
  }
  return BodyAllowance{.has_body = true, .max_wire_bytes = static_cast<int64_t>(length)};
}

bool IsStateChanging(const std::string& method) {
  return !(method == "GET" || method == "HEAD" || method == "OPTIONS");
}

std::optional<std::string> CookieValue(const std::string& cookie_header, const std::string& name) {
  for (absl::string_view part : absl::StrSplit(cookie_header, ';')) {
    part = absl::StripAsciiWhitespace(part);
    size_t eq = part.find('=');
    if (eq == absl::string_view::npos) continue;
    if (std::string(part.substr(0, eq)) == name) return std::string(part.substr(eq + 1));
  }
  return std::nullopt;
}

bool ConstantTimeEquals(const std::string& a, const std::string& b) {
  uint8_t diff = a.size() == b.size() ? 0 : 1;
  const std::string& other = a.size() == b.size() ? b : a;
  for (size_t i = 0; i < a.size(); ++i) diff |= static_cast<uint8_t>(a[i] ^ other[i]);
  return diff == 0;
}

absl::Status CheckRequest(const AuthPolicy& policy, const RequestHeaders& request, bool public_path) {
  if (!HostAllowed(policy, request.host)) {
    return absl::PermissionDeniedError(absl::StrCat(
        "Host '", request.host, "' does not name this dashboard (", policy.bound_host, ":", policy.bound_port,
        "); requests through other names are refused (DNS rebinding protection)"));
  }
  if (IsStateChanging(request.method)) {
    if (!request.origin.empty()) {
      std::string origin = absl::AsciiStrToLower(request.origin);
      std::string host = absl::AsciiStrToLower(request.host);
      if (origin != absl::StrCat("http://", host) && origin != absl::StrCat("https://", host)) {
        return absl::PermissionDeniedError(
            absl::StrCat("cross-site request refused: Origin '", request.origin, "' is not this dashboard"));
      }
    }
    if (request.sec_fetch_site == "cross-site" || request.sec_fetch_site == "same-site") {
      return absl::PermissionDeniedError("cross-site request refused (Sec-Fetch-Site)");
    }
  }
  if (policy.disabled || public_path) return absl::OkStatus();
  std::string given;
  constexpr std::string_view kBearer = "bearer ";
  std::string auth(absl::StripAsciiWhitespace(request.authorization));
  if (auth.size() > kBearer.size() && absl::AsciiStrToLower(auth.substr(0, kBearer.size())) == kBearer) {
    given = std::string(absl::StripAsciiWhitespace(auth.substr(kBearer.size())));
  } else if (std::optional<std::string> cookie = CookieValue(request.cookie, kTokenCookie)) {
    given = *cookie;
  }
  if (given.empty()) {
    return absl::UnauthenticatedError(
        "this dashboard needs a token: send 'Authorization: Bearer <token>' (the token is in the head's session "
        "directory, file auth_token; `shoal job` on that machine finds it by itself)");
  }
  if (policy.token.empty() || !ConstantTimeEquals(given, policy.token)) {
    return absl::UnauthenticatedError("the token is not this dashboard's token");
  }
  return absl::OkStatus();
}

}  // namespace shoal::dashboard
