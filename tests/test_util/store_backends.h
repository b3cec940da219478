// The two StoreClient backends as types, so that one TEMPLATE_TEST_CASE runs the same checks
// against both. Construct one at the top of a test case; if ready() is false the backend cannot
// run here (the reason was WARNed) and the test case should return.
// Threading: one test thread.
#pragma once

#include <memory>
#include <string>

#include "src/gcs/store_client.h"
#include "tests/test_util/redis_server.h"

namespace shoal::test {

class MemoryBackend {
 public:
  static constexpr const char* kName = "memory";
  bool ready() const { return true; }
  StoreClient& store() { return store_; }
  // The store as a restarted GCS would see it: for memory, the same object.
  StoreClient& Reopen() { return store_; }

 private:
  InMemoryStoreClient store_;
};

class RedisBackend {
 public:
  static constexpr const char* kName = "redis";
  // Starts a private redis-server and connects to it. Fails the test if redis-server is
  // installed but cannot be started; warns and is not ready() if it is not installed.
  RedisBackend();
  bool ready() const { return client_ != nullptr; }
  StoreClient& store() { return *client_; }
  // A new connection to the same server, as a restarted GCS would open.
  StoreClient& Reopen();
  RedisServer& server() { return *server_; }

 private:
  std::unique_ptr<RedisServer> server_;
  std::unique_ptr<RedisStoreClient> client_;
  std::unique_ptr<RedisStoreClient> reopened_;
};

}  // namespace shoal::test

// Starts `TestType` as `backend`, or leaves the test case when it cannot run here.
#define SHOAL_BACKEND(backend)                                \
  TestType backend;                                           \
  if (!backend.ready()) return;                               \
  INFO("store backend: " << TestType::kName)
