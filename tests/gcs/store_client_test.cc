#include "src/gcs/store_client.h"

#include <catch2/catch.hpp>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/time/clock.h"
#include "tests/test_util/redis_server.h"
#include "tests/test_util/status_matchers.h"
#include "tests/test_util/store_backends.h"

namespace shoal {
namespace {

using test::MemoryBackend;
using test::RedisBackend;
using KVs = std::vector<std::pair<std::string, std::string>>;
using Keys = std::vector<std::string>;

std::optional<std::string> MustGet(StoreClient& store, const std::string& table, const std::string& key) {
  auto v = store.Get(table, key);
  REQUIRE_OK(v);
  return *v;
}

// ---------------------------------------------------------------- both backends

TEMPLATE_TEST_CASE("StoreClient Put reports added and honours overwrite", "[gcs][store]",
                   MemoryBackend, RedisBackend) {
  SHOAL_BACKEND(backend);
  StoreClient& store = backend.store();
  CHECK(store.Name() == TestType::kName);

  auto added = store.Put("t", "k", "v1", /*overwrite=*/false);
  REQUIRE_OK(added);
  CHECK(*added);
  CHECK(MustGet(store, "t", "k") == "v1");

  SECTION("overwrite=false keeps the old value") {
    auto again = store.Put("t", "k", "v2", /*overwrite=*/false);
    REQUIRE_OK(again);
    CHECK_FALSE(*again);
    CHECK(MustGet(store, "t", "k") == "v1");
  }
  SECTION("overwrite=true replaces it and reports the key was not new") {
    auto again = store.Put("t", "k", "v2", /*overwrite=*/true);
    REQUIRE_OK(again);
    CHECK_FALSE(*again);
    CHECK(MustGet(store, "t", "k") == "v2");
  }
  SECTION("overwrite=true on a new key adds it") {
    auto fresh = store.Put("t", "k2", "w", /*overwrite=*/true);
    REQUIRE_OK(fresh);
    CHECK(*fresh);
    CHECK(MustGet(store, "t", "k2") == "w");
  }
  SECTION("writing the same value again is not an add") {
    auto same = store.Put("t", "k", "v1", /*overwrite=*/true);
    REQUIRE_OK(same);
    CHECK_FALSE(*same);
  }
}

TEMPLATE_TEST_CASE("StoreClient Get of a missing key or table is empty", "[gcs][store]",
                   MemoryBackend, RedisBackend) {
  SHOAL_BACKEND(backend);
  StoreClient& store = backend.store();
  CHECK(MustGet(store, "no-table", "k") == std::nullopt);
  REQUIRE_OK(store.Put("t", "k", "v", false));
  CHECK(MustGet(store, "t", "other") == std::nullopt);
  CHECK(MustGet(store, "t", "") == std::nullopt);
}

TEMPLATE_TEST_CASE("StoreClient tables are separate", "[gcs][store]", MemoryBackend, RedisBackend) {
  SHOAL_BACKEND(backend);
  StoreClient& store = backend.store();
  REQUIRE_OK(store.Put("a", "k", "in a", false));
  auto added_b = store.Put("b", "k", "in b", false);
  REQUIRE_OK(added_b);
  CHECK(*added_b);
  CHECK(MustGet(store, "a", "k") == "in a");
  CHECK(MustGet(store, "b", "k") == "in b");
  auto del = store.Delete("a", "k");
  REQUIRE_OK(del);
  CHECK(*del);
  CHECK(MustGet(store, "b", "k") == "in b");
}

TEMPLATE_TEST_CASE("StoreClient GetAll answers every pair sorted by key", "[gcs][store]",
                   MemoryBackend, RedisBackend) {
  SHOAL_BACKEND(backend);
  StoreClient& store = backend.store();
  auto empty = store.GetAll("t");
  REQUIRE_OK(empty);
  CHECK(empty->empty());

  for (const char* key : {"m", "b", "z", "a", "bb"}) {
    REQUIRE_OK(store.Put("t", key, std::string("v-") + key, false));
  }
  REQUIRE_OK(store.Put("other", "c", "x", false));
  auto all = store.GetAll("t");
  REQUIRE_OK(all);
  CHECK(*all == KVs{{"a", "v-a"}, {"b", "v-b"}, {"bb", "v-bb"}, {"m", "v-m"}, {"z", "v-z"}});
}

TEMPLATE_TEST_CASE("StoreClient Delete answers whether the key existed", "[gcs][store]",
                   MemoryBackend, RedisBackend) {
  SHOAL_BACKEND(backend);
  StoreClient& store = backend.store();
  auto missing_table = store.Delete("t", "k");
  REQUIRE_OK(missing_table);
  CHECK_FALSE(*missing_table);
  REQUIRE_OK(store.Put("t", "k", "v", false));
  REQUIRE_OK(store.Put("t", "k2", "v", false));
  auto first = store.Delete("t", "k");
  REQUIRE_OK(first);
  CHECK(*first);
  auto second = store.Delete("t", "k");
  REQUIRE_OK(second);
  CHECK_FALSE(*second);
  CHECK(MustGet(store, "t", "k") == std::nullopt);
  CHECK(MustGet(store, "t", "k2") == "v");
  // A deleted key can be added again.
  auto readd = store.Put("t", "k", "new", false);
  REQUIRE_OK(readd);
  CHECK(*readd);
}

TEMPLATE_TEST_CASE("StoreClient Keys filters by a literal prefix and sorts", "[gcs][store]",
                   MemoryBackend, RedisBackend) {
  SHOAL_BACKEND(backend);
  StoreClient& store = backend.store();
  const std::string nul_key("a\0b", 3);
  const Keys keys = {"b", "abc", "a", "ab", "a*[", "a*[x", "a?", "a[b]", "ax", "\\a", nul_key, "A"};
  for (const auto& k : keys) REQUIRE_OK(store.Put("t", k, "v", false));
  REQUIRE_OK(store.Put("other", "a-other", "v", false));

  auto keys_with = [&](const std::string& prefix) {
    auto got = store.Keys("t", prefix);
    REQUIRE_OK(got);
    return *got;
  };
  // Sorted bytewise: '\0' < '*' < '?' < '[' < 'b' < 'x'.
  CHECK(keys_with("a") == Keys{"a", nul_key, "a*[", "a*[x", "a?", "a[b]", "ab", "abc", "ax"});
  CHECK(keys_with("ab") == Keys{"ab", "abc"});
  // Glob characters are literal, not patterns.
  CHECK(keys_with("a*[") == Keys{"a*[", "a*[x"});
  CHECK(keys_with("a*") == Keys{"a*[", "a*[x"});
  CHECK(keys_with("a?") == Keys{"a?"});
  CHECK(keys_with("a[b]") == Keys{"a[b]"});
  CHECK(keys_with("\\") == Keys{"\\a"});
  CHECK(keys_with(std::string("a\0", 2)) == Keys{nul_key});
  CHECK(keys_with("zzz").empty());
  CHECK(keys_with("abcd").empty());
  // The empty prefix lists the whole table (case matters: "A" sorts first).
  auto all = keys_with("");
  CHECK(all.size() == keys.size());
  CHECK(all.front() == "A");
  CHECK(std::is_sorted(all.begin(), all.end()));
  auto none = store.Keys("no-table", "");
  REQUIRE_OK(none);
  CHECK(none->empty());
}

TEMPLATE_TEST_CASE("StoreClient keys and values are binary safe", "[gcs][store]", MemoryBackend,
                   RedisBackend) {
  SHOAL_BACKEND(backend);
  StoreClient& store = backend.store();
  const std::string key("k\0\xff\r\n", 5);
  const std::string value("\0\x01\x02\xff\0 end\r\n", 11);
  auto added = store.Put("bin", key, value, false);
  REQUIRE_OK(added);
  CHECK(*added);
  // A key that differs only after the NUL is a different key.
  REQUIRE_OK(store.Put("bin", std::string("k\0x", 3), "other", false));
  CHECK(MustGet(store, "bin", key) == value);
  CHECK(MustGet(store, "bin", std::string("k", 1)) == std::nullopt);
  auto all = store.GetAll("bin");
  REQUIRE_OK(all);
  REQUIRE(all->size() == 2);
  // Bytes compare unsigned: 'x' (0x78) sorts before 0xff.
  CHECK((*all)[0] == std::make_pair(std::string("k\0x", 3), std::string("other")));
  CHECK((*all)[1] == std::make_pair(key, value));
}

TEMPLATE_TEST_CASE("StoreClient stores empty and large values", "[gcs][store]", MemoryBackend,
                   RedisBackend) {
  SHOAL_BACKEND(backend);
  StoreClient& store = backend.store();
  REQUIRE_OK(store.Put("t", "empty", "", false));
  CHECK(MustGet(store, "t", "empty") == std::string());  // present, not missing
  std::string big(4 << 20, 'x');
  big[12345] = '\0';
  REQUIRE_OK(store.Put("t", "big", big, false));
  CHECK(MustGet(store, "t", "big") == big);
}

TEMPLATE_TEST_CASE("StoreClient Increment counts from 1 per name", "[gcs][store]", MemoryBackend,
                   RedisBackend) {
  SHOAL_BACKEND(backend);
  StoreClient& store = backend.store();
  for (int64_t want = 1; want <= 5; ++want) {
    auto got = store.Increment("job_id");
    REQUIRE_OK(got);
    CHECK(*got == want);
  }
  auto other = store.Increment("other");
  REQUIRE_OK(other);
  CHECK(*other == 1);
  // Counters do not show up in tables.
  auto all = store.GetAll("job_id");
  REQUIRE_OK(all);
  CHECK(all->empty());
}

// ---------------------------------------------------------------- Redis only

// A loopback port that refuses connections: bound, never listening, held for the scope.
class RefusingPort {
 public:
  RefusingPort() {
    fd_ = socket(AF_INET, SOCK_STREAM, 0);
    REQUIRE(fd_ >= 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(addr);
    REQUIRE(bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0);
    REQUIRE(getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len) == 0);
    port_ = ntohs(addr.sin_port);
  }
  ~RefusingPort() { close(fd_); }
  int port() const { return port_; }

 private:
  int fd_ = -1;
  int port_ = 0;
};

TEST_CASE("RedisStoreClient Connect to a closed port is Unavailable", "[gcs][store][redis]") {
  RefusingPort closed;
  RedisOptions options;
  options.port = closed.port();
  options.connect_timeout_ms = 5000;
  auto client = RedisStoreClient::Connect(options);
  CHECK_CODE(client, kUnavailable);
  CHECK_THAT(std::string(client.status().message()),
             Catch::Matchers::Contains(std::to_string(closed.port())));
}

TEST_CASE("RedisStoreClient with a password", "[gcs][store][redis]") {
  SHOAL_REQUIRE_REDIS_BINARY();
  auto server = test::RedisServer::Start({.password = "s3cret pass"});
  REQUIRE_OK(server);
  RedisOptions options = (*server)->ClientOptions();

  SECTION("the right password works") {
    auto client = RedisStoreClient::Connect(options);
    REQUIRE_OK(client);
    REQUIRE_OK((*client)->Put("t", "k", "v", false));
    CHECK(MustGet(**client, "t", "k") == "v");
  }
  SECTION("a wrong password is PermissionDenied") {
    options.password = "wrong";
    CHECK_CODE(RedisStoreClient::Connect(options), kPermissionDenied);
  }
  SECTION("the client logs in again after the server restarts") {
    auto client = RedisStoreClient::Connect(options);
    REQUIRE_OK(client);
    REQUIRE_OK((*server)->Restart());
    REQUIRE_OK((*client)->Put("t", "k", "after", false));
    CHECK(MustGet(**client, "t", "k") == "after");
  }
}

// BUG (src/gcs/store_client.cc, Command): NOAUTH from a server that needs a password comes
// back as Internal; the header promises PermissionDenied for failed authentication.
TEST_CASE("RedisStoreClient without a password to a server that needs one is PermissionDenied",
          "[gcs][store][redis]") {
  SHOAL_REQUIRE_REDIS_BINARY();
  auto server = test::RedisServer::Start({.password = "s3cret"});
  REQUIRE_OK(server);
  RedisOptions options = (*server)->ClientOptions();
  options.password = "";
  CHECK_CODE(RedisStoreClient::Connect(options), kPermissionDenied);
}

TEST_CASE("RedisStoreClient survives a redis-server restart", "[gcs][store][redis]") {
  SHOAL_REQUIRE_REDIS_BINARY();
  auto server = test::RedisServer::Start();
  REQUIRE_OK(server);
  auto client = RedisStoreClient::Connect((*server)->ClientOptions());
  REQUIRE_OK(client);
  StoreClient& store = **client;
  REQUIRE_OK(store.Put("t", "k", "before", false));

  SECTION("the next call after a restart reconnects and succeeds") {
    REQUIRE_OK((*server)->Restart());
    // The new server is empty (no persistence); what matters is that the call goes through.
    auto got = store.Get("t", "k");
    REQUIRE_OK(got);
    CHECK(*got == std::nullopt);
    REQUIRE_OK(store.Put("t", "k", "after", false));
    CHECK(MustGet(store, "t", "k") == "after");
    auto n = store.Increment("c");
    REQUIRE_OK(n);
    CHECK(*n == 1);
  }
  SECTION("calls while the server is down are Unavailable, then work once it is back") {
    const int port = (*server)->port();
    (*server)->Kill();
    CHECK_CODE(store.Put("t", "k", "down", true), kUnavailable);
    CHECK_CODE(store.Get("t", "k"), kUnavailable);
    CHECK_CODE(store.Keys("t", ""), kUnavailable);
    REQUIRE_OK((*server)->Restart());
    REQUIRE((*server)->port() == port);
    auto added = store.Put("t", "k", "back", false);
    REQUIRE_OK(added);
    CHECK(*added);
    CHECK(MustGet(store, "t", "k") == "back");
  }
}

TEST_CASE("RedisStoreClient key prefixes keep clients apart", "[gcs][store][redis]") {
  SHOAL_REQUIRE_REDIS_BINARY();
  auto server = test::RedisServer::Start();
  REQUIRE_OK(server);
  RedisOptions a_options = (*server)->ClientOptions(), b_options = a_options;
  a_options.key_prefix = "cluster-a";
  b_options.key_prefix = "cluster-b";
  auto a = RedisStoreClient::Connect(a_options);
  auto b = RedisStoreClient::Connect(b_options);
  REQUIRE_OK(a);
  REQUIRE_OK(b);
  REQUIRE_OK((*a)->Put("t", "k", "a", false));
  CHECK(MustGet(**b, "t", "k") == std::nullopt);
  auto b_added = (*b)->Put("t", "k", "b", false);
  REQUIRE_OK(b_added);
  CHECK(*b_added);
  CHECK(*(*a)->Increment("n") == 1);
  CHECK(*(*b)->Increment("n") == 1);
  CHECK(MustGet(**a, "t", "k") == "a");
  // Two clients with the same prefix share the data.
  auto a2 = RedisStoreClient::Connect(a_options);
  REQUIRE_OK(a2);
  CHECK(MustGet(**a2, "t", "k") == "a");
  CHECK(*(*a2)->Increment("n") == 2);
}

}  // namespace
}  // namespace shoal
