#include "tests/test_util/store_backends.h"

#include <catch2/catch.hpp>

namespace shoal::test {

RedisBackend::RedisBackend() {
  if (RedisServer::FindBinary().empty()) {
    if (RedisRequired()) FAIL("redis-server is not installed, and $CI or $SHOAL_REQUIRE_REDIS says it must be");
    WARN("skipped: redis-server is not installed");
    return;
  }
  auto server = RedisServer::Start();
  INFO((server.ok() ? std::string("") : server.status().ToString()));
  REQUIRE(server.ok());
  server_ = *std::move(server);
  auto client = RedisStoreClient::Connect(server_->ClientOptions());
  INFO((client.ok() ? std::string("") : client.status().ToString()));
  REQUIRE(client.ok());
  client_ = *std::move(client);
}

StoreClient& RedisBackend::Reopen() {
  auto client = RedisStoreClient::Connect(server_->ClientOptions());
  INFO((client.ok() ? std::string("") : client.status().ToString()));
  REQUIRE(client.ok());
  reopened_ = *std::move(client);
  return *reopened_;
}

}  // namespace shoal::test
