// Where the GCS keeps its tables: string keys to byte values, grouped by table name.
//
// Two backends serve this one interface: InMemoryStoreClient (the default; gone when the GCS
// exits) and RedisStoreClient (survives a GCS restart). Tables hold nodes, jobs, KV entries.
// Threading: implementations are safe to call from any thread; each call is atomic.
// Errors: Unavailable when the backend cannot be reached; bad input never aborts.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"

struct redisContext;  // hiredis

namespace shoal {

class StoreClient {
 public:
  virtual ~StoreClient() = default;

  // Writes `value` at `key`. With overwrite=false an existing value is kept. Answers whether
  // the key was new.
  virtual absl::StatusOr<bool> Put(const std::string& table, const std::string& key,
                                   const std::string& value, bool overwrite) = 0;
  virtual absl::StatusOr<std::optional<std::string>> Get(const std::string& table,
                                                         const std::string& key) = 0;
  virtual absl::StatusOr<std::vector<std::pair<std::string, std::string>>> GetAll(
      const std::string& table) = 0;
  // Answers whether the key existed.
  virtual absl::StatusOr<bool> Delete(const std::string& table, const std::string& key) = 0;
  // Keys of `table` that start with `prefix`, sorted.
  virtual absl::StatusOr<std::vector<std::string>> Keys(const std::string& table,
                                                        const std::string& prefix) = 0;
  // Adds one to the counter `name` (absent counts as 0) and answers the new value.
  virtual absl::StatusOr<int64_t> Increment(const std::string& name) = 0;
  // "memory" or "redis".
  virtual std::string Name() const = 0;
};

class InMemoryStoreClient : public StoreClient {
 public:
  absl::StatusOr<bool> Put(const std::string& table, const std::string& key,
                           const std::string& value, bool overwrite) override;
  absl::StatusOr<std::optional<std::string>> Get(const std::string& table,
                                                 const std::string& key) override;
  absl::StatusOr<std::vector<std::pair<std::string, std::string>>> GetAll(
      const std::string& table) override;
  absl::StatusOr<bool> Delete(const std::string& table, const std::string& key) override;
  absl::StatusOr<std::vector<std::string>> Keys(const std::string& table,
                                                const std::string& prefix) override;
  absl::StatusOr<int64_t> Increment(const std::string& name) override;
  std::string Name() const override { return "memory"; }

 private:
  absl::Mutex mu_;
  absl::flat_hash_map<std::string, absl::flat_hash_map<std::string, std::string>> tables_
      ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<std::string, int64_t> counters_ ABSL_GUARDED_BY(mu_);
};

struct RedisOptions {
  std::string host = "127.0.0.1";
  int port = 6379;
  std::string password;          // AUTH when non-empty
  std::string key_prefix = "shoal";  // tables live in hashes named <prefix>:<table>
  int connect_timeout_ms = 3000;
};

// Keeps each table in a Redis hash. One connection, serialized by a mutex; a broken
// connection is reopened once per call before the call answers Unavailable.
class RedisStoreClient : public StoreClient {
 public:
  // Connects and checks the server answers (and AUTH succeeds).
  static absl::StatusOr<std::unique_ptr<RedisStoreClient>> Connect(const RedisOptions& options);
  ~RedisStoreClient() override;

  absl::StatusOr<bool> Put(const std::string& table, const std::string& key,
                           const std::string& value, bool overwrite) override;
  absl::StatusOr<std::optional<std::string>> Get(const std::string& table,
                                                 const std::string& key) override;
  absl::StatusOr<std::vector<std::pair<std::string, std::string>>> GetAll(
      const std::string& table) override;
  absl::StatusOr<bool> Delete(const std::string& table, const std::string& key) override;
  absl::StatusOr<std::vector<std::string>> Keys(const std::string& table,
                                                const std::string& prefix) override;
  absl::StatusOr<int64_t> Increment(const std::string& name) override;
  std::string Name() const override { return "redis"; }

 private:
  struct Reply;
  explicit RedisStoreClient(RedisOptions options) : options_(std::move(options)) {}
  absl::Status ConnectLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Runs one command (argv form, binary safe), reconnecting once on a broken connection.
  absl::StatusOr<Reply> Command(const std::vector<std::string>& argv);
  std::string HashName(const std::string& table) const { return options_.key_prefix + ":" + table; }

  const RedisOptions options_;
  absl::Mutex mu_;
  ::redisContext* ctx_ ABSL_GUARDED_BY(mu_) = nullptr;
};

}  // namespace shoal
