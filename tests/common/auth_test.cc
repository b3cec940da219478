// The cluster token: constant-time comparison, what a daemon runs with, and a real gRPC server
// and channel on loopback carrying and checking it.
#include "src/common/auth.h"

#include <catch2/catch.hpp>

#include <cstdlib>
#include <fstream>
#include <string>

#include "shoal/gcs.grpc.pb.h"
#include "src/common/rpc.h"
#include "src/common/rpc_client.h"
#include "tests/test_util/status_matchers.h"
#include "tests/test_util/temp_dir.h"

namespace shoal {
namespace {

// A KV service whose Get answers found=true once authenticated, and counts handler runs.
class CountingKv final : public rpc::KVService::Service {
 public:
  grpc::Status Get(grpc::ServerContext* ctx, const rpc::KVGetRequest*, rpc::KVGetReply* reply) override {
    SHOAL_AUTHENTICATE(ctx);
    ++acted;
    reply->set_found(true);
    return grpc::Status::OK;
  }
  int acted = 0;
};

// Restores the process token (tests share one process).
struct TokenScope {
  explicit TokenScope(std::string token) { SetClusterToken(std::move(token)); }
  ~TokenScope() { SetClusterToken(""); }
};

// `service` served on a free loopback port; answers "127.0.0.1:<port>".
struct Served {
  explicit Served(CountingKv& service) {
    grpc::ServerBuilder builder;
    builder.RegisterService(&service);
    int port = 0;
    auto started = StartServer(builder, "127.0.0.1", 0, &port);
    REQUIRE_OK(started);
    server = *std::move(started);
    address = "127.0.0.1:" + std::to_string(port);
  }
  ~Served() { server->Shutdown(); }
  std::unique_ptr<grpc::Server> server;
  std::string address;
};

grpc::Status CallGet(const std::string& address, const std::string* header) {
  // A raw channel, so the test decides exactly what metadata is sent.
  auto stub = rpc::KVService::NewStub(grpc::CreateChannel(address, grpc::InsecureChannelCredentials()));
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  if (header != nullptr) ctx.AddMetadata(kAuthMetadataKey, *header);
  rpc::KVGetReply reply;
  return stub->Get(&ctx, rpc::KVGetRequest(), &reply);
}

TEST_CASE("TokensEqual compares whole tokens", "[auth]") {
  CHECK(TokensEqual("abcdefgh", "abcdefgh"));
  CHECK_FALSE(TokensEqual("abcdefgh", "abcdefgx"));
  CHECK_FALSE(TokensEqual("abcdefgh", "abcdefg"));
  CHECK_FALSE(TokensEqual("abcdefg", "abcdefgh"));
  CHECK_FALSE(TokensEqual("", "a"));
  CHECK(TokensEqual("", ""));
}

TEST_CASE("A server refuses calls without the token before its handler acts", "[auth][grpc]") {
  const std::string token = "0123456789abcdef0123456789abcdef";
  TokenScope scope(token);
  CountingKv service;
  Served served(service);
  const std::string& address = served.address;

  grpc::Status none = CallGet(address, nullptr);
  CHECK(none.error_code() == grpc::StatusCode::UNAUTHENTICATED);
  CHECK_THAT(none.error_message(), Catch::Contains("SHOAL_AUTH_TOKEN"));
  CHECK_THAT(none.error_message(), !Catch::Contains(token));
  const std::string wrong = "Bearer ffffffffffffffffffffffffffffffff";
  CHECK(CallGet(address, &wrong).error_code() == grpc::StatusCode::UNAUTHENTICATED);
  const std::string no_scheme = token;
  CHECK(CallGet(address, &no_scheme).error_code() == grpc::StatusCode::UNAUTHENTICATED);
  CHECK(service.acted == 0);

  const std::string right = "Bearer " + token;
  CHECK(CallGet(address, &right).ok());
  CHECK(service.acted == 1);

  // Shoal's own calls carry the token by themselves (ApplyCallOptions adds it).
  auto stub = rpc::KVService::NewStub(MakeChannel(address));
  rpc::KVGetReply reply;
  CHECK(UnaryCall(*stub, &rpc::KVService::Stub::Get, rpc::KVGetRequest(), &reply, {.timeout = absl::Seconds(10)}).ok());
  CHECK(reply.found());
  CHECK(service.acted == 2);
}

TEST_CASE("With auth disabled every caller passes", "[auth][grpc]") {
  TokenScope scope("");
  CountingKv service;
  Served served(service);
  CHECK(CallGet(served.address, nullptr).ok());
  CHECK(service.acted == 1);
}

TEST_CASE("DaemonToken: --disable-auth, a file, the environment, or a clear refusal", "[auth]") {
  unsetenv(kAuthTokenEnv);
  unsetenv(kAuthTokenFileEnv);
  test_util::TempDir dir;
  const std::string file = dir.path + "/token";
  std::ofstream(file) << "  0123456789abcdef0123456789abcdef\n";
  const std::string short_file = dir.path + "/short";
  std::ofstream(short_file) << "abc\n";

  auto disabled = DaemonToken("", true);
  REQUIRE_OK(disabled);
  CHECK(disabled->empty());
  auto from_file = DaemonToken(file, false);
  REQUIRE_OK(from_file);
  CHECK(*from_file == "0123456789abcdef0123456789abcdef");
  CHECK(absl::IsInvalidArgument(DaemonToken(short_file, false).status()));
  CHECK(absl::IsNotFound(DaemonToken(dir.path + "/missing", false).status()));

  auto none = DaemonToken("", false);
  REQUIRE(absl::IsFailedPrecondition(none.status()));
  CHECK_THAT(std::string(none.status().message()), Catch::Contains("--disable-auth"));

  setenv(kAuthTokenEnv, "fedcba9876543210fedcba9876543210", 1);
  auto from_env = DaemonToken("", false);
  REQUIRE_OK(from_env);
  CHECK(*from_env == "fedcba9876543210fedcba9876543210");
  CHECK(*DaemonToken(file, false) == "0123456789abcdef0123456789abcdef");  // the flag wins
  unsetenv(kAuthTokenEnv);
  setenv(kAuthTokenFileEnv, file.c_str(), 1);
  CHECK(*DaemonToken("", false) == "0123456789abcdef0123456789abcdef");
  unsetenv(kAuthTokenFileEnv);
}

}  // namespace
}  // namespace shoal
