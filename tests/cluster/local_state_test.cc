#include "src/cluster/local_state.h"

#include <catch2/catch.hpp>

#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "tests/test_util/status_matchers.h"
#include "tests/test_util/temp_dir.h"

namespace shoal::cluster {
namespace {

TEST_CASE("the current-cluster file: written, read back, removed", "[local_state]") {
  test_util::TempDir root;
  REQUIRE_CODE(ReadCurrentCluster(root.path), kNotFound);
  REQUIRE_OK(WriteCurrentCluster(root.path, "127.0.0.1:6390"));
  auto address = ReadCurrentCluster(root.path);
  REQUIRE_OK(address);
  CHECK(*address == "127.0.0.1:6390");
  RemoveCurrentCluster(root.path);
  REQUIRE_CODE(ReadCurrentCluster(root.path), kNotFound);
}

TEST_CASE("process records: written under a session, listed, bad ones reported, removed", "[local_state]") {
  test_util::TempDir root;
  const std::string session = (std::filesystem::path(root.path) / "session_1").string();
  std::filesystem::create_directories(session);
  auto start_time = ReadStartTime(getpid());
  REQUIRE_OK(start_time);
  ProcessRecord record{.name = kRaylet, .id = {getpid(), *start_time}, .binary = "/bin/shoal-raylet", .path = ""};
  REQUIRE_OK(WriteProcessRecord(session, &record));
  CHECK_FALSE(record.path.empty());
  {
    std::ofstream bad(std::filesystem::path(session) / "processes" / "gcs.json");
    bad << "{\"name\": \"gcs\"}";  // no pid
  }
  RecordScan scan = ListProcessRecords(root.path);
  REQUIRE(scan.records.size() == 1);
  CHECK(scan.records[0].name == kRaylet);
  CHECK(scan.records[0].id == record.id);
  CHECK(scan.records[0].binary == "/bin/shoal-raylet");
  CHECK(scan.unreadable.size() == 1);
  CHECK(IsRunning(scan.records[0].id));  // this process

  REQUIRE_OK(RemoveProcessRecord(record));
  CHECK(ListProcessRecords(root.path).records.empty());
}

TEST_CASE("JSON helpers: objects only, typed fields", "[local_state]") {
  test_util::TempDir dir;
  const std::string path = (std::filesystem::path(dir.path) / "ready.json").string();
  REQUIRE_CODE(ReadJsonObject(path), kNotFound);
  REQUIRE_OK(WriteFileAtomically(path, "[1, 2]"));
  REQUIRE_CODE(ReadJsonObject(path), kInvalidArgument);
  REQUIRE_OK(WriteFileAtomically(path, R"({"port": 8265, "url": "http://127.0.0.1:8265"})"));
  auto doc = ReadJsonObject(path);
  REQUIRE_OK(doc);
  CHECK(JsonInt(*doc, "port") == 8265);
  CHECK(JsonString(*doc, "url") == "http://127.0.0.1:8265");
  CHECK_FALSE(JsonInt(*doc, "url").has_value());
  CHECK_FALSE(JsonString(*doc, "missing").has_value());
}

}  // namespace
}  // namespace shoal::cluster
