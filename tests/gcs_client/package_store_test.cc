#include "src/gcs_client/package_store.h"

#include <catch2/catch.hpp>

#include <fstream>
#include <map>

#include "tests/test_util/status_matchers.h"
#include "tests/test_util/temp_dir.h"

namespace shoal {
namespace {

// An in-memory key-value store standing in for the GCS.
struct MemoryKv {
  std::map<std::string, std::string> entries;
  int puts = 0;
  PackageKv kv() {
    return PackageKv{
        .put = [this](const std::string& k, const std::string& v) {
          ++puts;
          entries[k] = v;
          return absl::OkStatus();
        },
        .get = [this](const std::string& k) -> absl::StatusOr<std::string> {
          auto it = entries.find(k);
          if (it == entries.end()) return absl::NotFoundError(k);
          return it->second;
        },
    };
  }
};

std::string Bytes(size_t n) {
  std::string out(n, '\0');
  for (size_t i = 0; i < n; ++i) out[i] = static_cast<char>((i * 7919) % 251);
  return out;
}

TEST_CASE("a package round-trips through chunks") {
  MemoryKv store;
  const std::string data = Bytes(2 * kPackageChunkBytes + 12345);
  const std::string uri = ContentPackageUri(data, ".zip");
  CHECK(uri.rfind("gcs://_shoal_pkg_", 0) == 0);
  CHECK(uri.size() == std::string("gcs://_shoal_pkg_").size() + 32 + 4);
  auto exists = PackageExists(store.kv(), uri);
  REQUIRE_OK(exists);
  CHECK_FALSE(*exists);
  REQUIRE_OK(PutPackage(store.kv(), uri, data));
  CHECK(store.puts == 4);  // three chunks, then the record
  exists = PackageExists(store.kv(), uri);
  REQUIRE_OK(exists);
  CHECK(*exists);
  auto back = GetPackage(store.kv(), uri);
  REQUIRE_OK(back);
  CHECK(*back == data);
}

TEST_CASE("a package stored from a file reads back the same, and the limit holds") {
  MemoryKv store;
  test_util::TempDir dir("shoal-pkg");
  const std::string path = dir.path + "/p.zip";
  const std::string data = Bytes(kPackageChunkBytes + 77);
  std::ofstream(path, std::ios::binary) << data;
  REQUIRE_OK(PutPackageFromFile(store.kv(), "gcs://fromfile.zip", path));
  auto back = GetPackage(store.kv(), "gcs://fromfile.zip");
  REQUIRE_OK(back);
  CHECK(*back == data);
  CHECK_CODE(PutPackageFromFile(store.kv(), "gcs://toobig.zip", path, /*max_bytes=*/100), kInvalidArgument);
  auto exists = PackageExists(store.kv(), "gcs://toobig.zip");
  REQUIRE_OK(exists);
  CHECK_FALSE(*exists);  // chunks may be there, the record is not
  CHECK_CODE(PutPackageFromFile(store.kv(), "gcs://missing.zip", dir.path + "/nope"), kNotFound);
}

TEST_CASE("an empty package is a valid package") {
  MemoryKv store;
  REQUIRE_OK(PutPackage(store.kv(), "gcs://empty.zip", ""));
  auto back = GetPackage(store.kv(), "gcs://empty.zip");
  REQUIRE_OK(back);
  CHECK(back->empty());
}

TEST_CASE("a package is refused over the limit, with a bad name, and found missing or corrupt") {
  MemoryKv store;
  CHECK_CODE(PutPackage(store.kv(), "gcs://big.zip", Bytes(100), /*max_bytes=*/99), kInvalidArgument);
  CHECK(store.entries.empty());
  CHECK_CODE(PutPackage(store.kv(), "s3://x/y.zip", "x"), kInvalidArgument);
  CHECK_CODE(PutPackage(store.kv(), "gcs://noext", "x"), kInvalidArgument);
  CHECK_CODE(GetPackage(store.kv(), "gcs://missing.zip"), kNotFound);
  REQUIRE_OK(PutPackage(store.kv(), "gcs://pkg1.zip", Bytes(1000)));
  store.entries["gcs://pkg1.zip#0"][10] ^= 1;
  CHECK_CODE(GetPackage(store.kv(), "gcs://pkg1.zip"), kDataLoss);
  store.entries.erase("gcs://pkg1.zip#0");
  CHECK_CODE(GetPackage(store.kv(), "gcs://pkg1.zip"), kDataLoss);
  // A half-written package (chunks, no record) does not exist.
  store.entries["gcs://half.zip#0"] = "x";
  auto exists = PackageExists(store.kv(), "gcs://half.zip");
  REQUIRE_OK(exists);
  CHECK_FALSE(*exists);
}

}  // namespace
}  // namespace shoal
