#include "src/common/auth.h"

#include <atomic>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"

namespace shoal {
namespace {

constexpr absl::string_view kBearer = "Bearer ";

// The token and the header value made from it, set together and read without a lock on every
// call. Replaced values are never freed: a gRPC thread may still read them, and a process sets
// the token once (tests a few times).
struct TokenState {
  std::string token;
  std::string header;  // "Bearer <token>", or "" when auth is disabled
};
std::atomic<const TokenState*> state{nullptr};

const TokenState& State() {
  static const TokenState kDisabled;
  const TokenState* s = state.load(std::memory_order_acquire);
  return s == nullptr ? kDisabled : *s;
}

}  // namespace

void SetClusterToken(std::string t) {
  auto* next = new TokenState{t, t.empty() ? std::string() : absl::StrCat(kBearer, t)};
  state.store(next, std::memory_order_release);  // the previous one is left for late readers
}

std::string ClusterToken() { return State().token; }

bool ClusterAuthEnabled() { return !State().token.empty(); }

bool TokensEqual(absl::string_view a, absl::string_view b) {
  // Every byte of `a` is visited whatever matched, so the time tells nothing but the length.
  unsigned char diff = a.size() == b.size() ? 0 : 1;
  for (size_t i = 0; i < a.size(); ++i) {
    diff |= static_cast<unsigned char>(a[i] ^ (i < b.size() ? b[i] : 0));
  }
  return diff == 0;
}

grpc::Status Authenticate(const grpc::ServerContextBase& ctx) {
  const std::string& expected = State().token;
  if (expected.empty()) return grpc::Status::OK;
  const auto& metadata = ctx.client_metadata();
  auto it = metadata.find(kAuthMetadataKey);
  if (it == metadata.end()) {
    return grpc::Status(grpc::StatusCode::UNAUTHENTICATED,
                        "this Shoal cluster requires its token: set SHOAL_AUTH_TOKEN (or SHOAL_AUTH_TOKEN_FILE, or "
                        "--auth-token for `shoal start --address`); it is in the head's session directory, file "
                        "auth_token");
  }
  absl::string_view sent(it->second.data(), it->second.size());
  if (!absl::ConsumePrefix(&sent, kBearer) || !TokensEqual(sent, expected)) {
    return grpc::Status(grpc::StatusCode::UNAUTHENTICATED, "wrong cluster token");
  }
  return grpc::Status::OK;
}

void AddClusterToken(grpc::ClientContext& context) {
  const TokenState& s = State();
  if (!s.header.empty()) context.AddMetadata(kAuthMetadataKey, s.header);
}

absl::StatusOr<std::string> CheckToken(std::string t, absl::string_view source) {
  t = std::string(absl::StripAsciiWhitespace(t));
  if (t.size() < kMinTokenLength) {
    return absl::InvalidArgumentError(
        absl::StrCat("the cluster token from ", source, " is too short (at least ", kMinTokenLength, " characters)"));
  }
  return t;
}

absl::StatusOr<std::string> ReadTokenFile(const std::string& path) {
  std::ifstream in(path);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot read the token file ", path));
  std::stringstream text;
  text << in.rdbuf();
  return CheckToken(text.str(), path);
}

absl::StatusOr<std::string> DaemonToken(const std::string& token_file_flag, bool disable_auth) {
  if (disable_auth) return std::string();
  if (!token_file_flag.empty()) return ReadTokenFile(token_file_flag);
  if (const char* env = std::getenv(kAuthTokenEnv); env != nullptr && *env != '\0') {
    return CheckToken(env, absl::StrCat("$", kAuthTokenEnv));
  }
  if (const char* env = std::getenv(kAuthTokenFileEnv); env != nullptr && *env != '\0') return ReadTokenFile(env);
  return absl::FailedPreconditionError(
      absl::StrCat("no cluster token: pass --auth-token-file FILE or set ", kAuthTokenEnv,
                   " (or pass --disable-auth, for trusted networks only)"));
}

}  // namespace shoal
