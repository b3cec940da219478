// The cluster token: one secret that every gRPC call inside a cluster carries, and that every
// Shoal server checks before a handler does anything with the request.
//
// A process learns the token once at start-up (daemons from --auth-token-file or
// $SHOAL_AUTH_TOKEN, drivers and workers through FindClusterToken in src/cluster) and calls
// SetClusterToken. From then on:
//  - every channel made by MakeChannel (src/common/rpc.h) sends `authorization: Bearer <token>`
//    on every call;
//  - every handler of every Shoal service starts with SHOAL_AUTHENTICATE(ctx) (or the reactor
//    form), which answers UNAUTHENTICATED unless the caller sent the same token (compared in
//    constant time). The request has been decoded by gRPC, but nothing acts on it.
// An empty token means auth is disabled (`--disable-auth`): nothing is sent and all callers pass.
//
// gRPC's C++ API offers no way for a server interceptor to refuse a call before its handler
// runs (and AuthMetadataProcessor needs TLS credentials), hence the one line per handler; a
// test calls every method of every service without a token to prove none was missed.
// Threading: thread-safe; reads take no lock. SetClusterToken is meant for start-up.
#pragma once

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "grpcpp/grpcpp.h"

namespace shoal {

inline constexpr char kAuthMetadataKey[] = "authorization";
inline constexpr char kAuthTokenEnv[] = "SHOAL_AUTH_TOKEN";            // the token itself
inline constexpr char kAuthTokenFileEnv[] = "SHOAL_AUTH_TOKEN_FILE";   // a file holding it
// Tokens shorter than this are refused: they could be guessed.
inline constexpr size_t kMinTokenLength = 16;

// Sets this process's cluster token ("" disables auth).
void SetClusterToken(std::string token);
std::string ClusterToken();
bool ClusterAuthEnabled();

// Equal contents, in time that depends only on the lengths.
bool TokensEqual(absl::string_view a, absl::string_view b);

// OK when auth is disabled or the caller sent this process's token; UNAUTHENTICATED otherwise,
// saying what was wrong (missing or wrong token) but never the token.
grpc::Status Authenticate(const grpc::ServerContextBase& ctx);

// Adds the authorization header to `context` while a token is set. Every client call goes
// through it (ApplyCallOptions in rpc_client.h calls it; the few hand-made contexts call it
// themselves). A context per call, not a channel interceptor: gRPC's interceptor machinery
// costs an extra poller wake-up on every reply (bench/README.md, 2026-12-04).
void AddClusterToken(grpc::ClientContext& context);

// The token in `path` (surrounding whitespace removed). NotFound if unreadable,
// InvalidArgument if shorter than kMinTokenLength.
absl::StatusOr<std::string> ReadTokenFile(const std::string& path);
// A token given directly (flag or environment): InvalidArgument if too short.
absl::StatusOr<std::string> CheckToken(std::string token, absl::string_view source);

// What a daemon runs with, from its flags and environment, in this order: --disable-auth
// (answers ""), --auth-token-file, $SHOAL_AUTH_TOKEN, $SHOAL_AUTH_TOKEN_FILE. With none of
// them, FailedPrecondition telling how to pass one: a daemon never runs open by accident.
absl::StatusOr<std::string> DaemonToken(const std::string& token_file_flag, bool disable_auth);

}  // namespace shoal

// First line of every synchronous handler: `SHOAL_AUTHENTICATE(ctx);`
#define SHOAL_AUTHENTICATE(ctx)                                                   \
  do {                                                                            \
    if (::grpc::Status shoal_denied = ::shoal::Authenticate(*(ctx)); !shoal_denied.ok()) { \
      return shoal_denied;                                                        \
    }                                                                             \
  } while (0)

// First line of every callback-API unary handler: finishes the call and returns its reactor.
#define SHOAL_AUTHENTICATE_REACTOR(ctx)                                           \
  do {                                                                            \
    if (::grpc::Status shoal_denied = ::shoal::Authenticate(*(ctx)); !shoal_denied.ok()) { \
      ::grpc::ServerUnaryReactor* shoal_reactor = (ctx)->DefaultReactor();        \
      shoal_reactor->Finish(shoal_denied);                                        \
      return shoal_reactor;                                                       \
    }                                                                             \
  } while (0)
