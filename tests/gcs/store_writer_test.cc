#include "src/gcs/store_writer.h"

#include <catch2/catch.hpp>

#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "tests/test_util/status_matchers.h"

namespace shoal {
namespace {

// A memory store that logs every write it is asked for, and fails the writes to one key.
class LoggingStore : public InMemoryStoreClient {
 public:
  absl::StatusOr<bool> Put(const std::string& table, const std::string& key, const std::string& value,
                           bool overwrite) override {
    Log("put " + table + "/" + key + "=" + value);
    if (key == fail_key) return absl::UnavailableError("down");
    return InMemoryStoreClient::Put(table, key, value, overwrite);
  }
  absl::StatusOr<bool> Delete(const std::string& table, const std::string& key) override {
    Log("delete " + table + "/" + key);
    return InMemoryStoreClient::Delete(table, key);
  }
  std::vector<std::string> log() {
    absl::MutexLock lock(&mu_);
    return log_;
  }
  std::string fail_key;

 private:
  void Log(std::string line) {
    absl::MutexLock lock(&mu_);
    log_.push_back(std::move(line));
  }
  absl::Mutex mu_;
  std::vector<std::string> log_ ABSL_GUARDED_BY(mu_);
};

TEST_CASE("queued writes reach the store only at Flush, in queue order", "[store_writer]") {
  LoggingStore store;
  OrderedStoreWriter writer(store);
  writer.Put("t", "a", "1");
  writer.Put("t", "b", "2");
  writer.Delete("t", "a");
  writer.Put("t", "a", "3");
  CHECK(store.log().empty());
  CHECK(writer.pending() == 4);
  writer.Flush();
  CHECK(writer.pending() == 0);
  CHECK(store.log() == std::vector<std::string>{"put t/a=1", "put t/b=2", "delete t/a", "put t/a=3"});
  CHECK(**store.Get("t", "a") == "3");
  writer.Flush();  // nothing queued: nothing written
  CHECK(store.log().size() == 4);
}

TEST_CASE("done callbacks see each write's status", "[store_writer]") {
  LoggingStore store;
  store.fail_key = "bad";
  OrderedStoreWriter writer(store);
  std::vector<std::pair<std::string, absl::StatusCode>> seen;
  auto record = [&](std::string name) {
    return [&seen, name](const absl::Status& s) { seen.emplace_back(name, s.code()); };
  };
  writer.Put("t", "good", "1", record("good"));
  writer.Put("t", "bad", "2", record("bad"));
  writer.Delete("t", "absent", record("absent"));
  writer.Flush();
  CHECK(seen == std::vector<std::pair<std::string, absl::StatusCode>>{
                    {"good", absl::StatusCode::kOk},
                    {"bad", absl::StatusCode::kUnavailable},
                    {"absent", absl::StatusCode::kOk}});
}

TEST_CASE("writes queued by many threads land in the order they were queued", "[store_writer]") {
  // Each thread queues under one shared lock, as the actor manager does, so the queue order is
  // the order of the "changes"; every thread flushes after, concurrently with the others.
  LoggingStore store;
  OrderedStoreWriter writer(store);
  absl::Mutex state_mu;
  int version = 0;
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 200; ++i) {
        {
          absl::MutexLock lock(&state_mu);
          writer.Put("t", "key", std::to_string(++version));
        }
        writer.Flush();
      }
    });
  }
  for (auto& t : threads) t.join();
  CHECK(writer.pending() == 0);
  const std::vector<std::string> log = store.log();
  REQUIRE(log.size() == 1600);
  for (size_t i = 0; i < log.size(); ++i) {
    INFO("write " << i);
    REQUIRE(log[i] == "put t/key=" + std::to_string(i + 1));
  }
  CHECK(**store.Get("t", "key") == "1600");
}

}  // namespace
}  // namespace shoal
