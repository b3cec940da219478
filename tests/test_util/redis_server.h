// A throwaway redis-server for tests: its own process, loopback port and temporary directory.
//
// Start() picks a free port on 127.0.0.1, runs `redis-server` there with persistence off and
// waits (bounded polling) until it answers PING. The destructor kills it by pid (SIGKILL +
// waitpid) and removes the directory. Restart() kills it the same way and starts a fresh one
// on the same port, so that clients can be tested against a server that went away.
// Threading: one test thread.
#pragma once

#include <sys/types.h>

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "src/gcs/store_client.h"

namespace shoal::test {

struct RedisServerOptions {
  std::string password;  // --requirepass when non-empty
};

class RedisServer {
 public:
  // The redis-server binary ($SHOAL_TEST_REDIS_SERVER, /usr/bin/redis-server, or on $PATH),
  // or empty when there is none.
  static std::string FindBinary();

  static absl::StatusOr<std::unique_ptr<RedisServer>> Start(RedisServerOptions options = {});
  ~RedisServer();
  RedisServer(const RedisServer&) = delete;
  RedisServer& operator=(const RedisServer&) = delete;

  // SIGKILLs the server and starts a new, empty one on the same port.
  absl::Status Restart();
  // SIGKILLs the server and reaps it. Idempotent.
  void Kill();

  int port() const { return port_; }
  // Client options for this server (with its password).
  RedisOptions ClientOptions() const;

 private:
  RedisServer(std::string binary, std::string dir, RedisServerOptions options)
      : binary_(std::move(binary)), dir_(std::move(dir)), options_(std::move(options)) {}
  // Starts the process on port_ and waits for PING.
  absl::Status Launch();

  const std::string binary_;
  const std::string dir_;
  const RedisServerOptions options_;
  int port_ = 0;
  pid_t pid_ = -1;
};

}  // namespace shoal::test

// Catch2 v2 has no SKIP: warn and leave the test case (it then counts as passed).
#define SHOAL_SKIP_IF(cond, why) \
  do {                           \
    if (cond) {                  \
      WARN("skipped: " << why);  \
      return;                    \
    }                            \
  } while (0)

namespace shoal::test {
// In CI ($CI) or with $SHOAL_REQUIRE_REDIS set (not "0"/"false"), a missing redis-server fails
// the Redis tests instead of skipping them.
bool RedisRequired();
}  // namespace shoal::test

// Skips the test case when redis-server is missing, or fails it when RedisRequired().
#define SHOAL_REQUIRE_REDIS_BINARY()                                                          \
  do {                                                                                        \
    if (::shoal::test::RedisServer::FindBinary().empty()) {                                   \
      if (::shoal::test::RedisRequired()) {                                                   \
        FAIL("redis-server is not installed, and $CI or $SHOAL_REQUIRE_REDIS says it must be"); \
      }                                                                                       \
      WARN("skipped: redis-server is not installed");                                         \
      return;                                                                                 \
    }                                                                                         \
  } while (0)
