#include "src/object_store/file_spiller.h"

#include <catch2/catch.hpp>
#include <sys/resource.h>

#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "tests/test_util/status_matchers.h"
#include "tests/test_util/temp_dir.h"

namespace shoal {
namespace {

namespace fs = std::filesystem;

using test_util::TempDir;

std::vector<uint8_t> Bytes(uint8_t seed, size_t size) {
  std::vector<uint8_t> out(size);
  for (size_t i = 0; i < size; ++i) out[i] = static_cast<uint8_t>(seed + i * 13);
  return out;
}

std::unique_ptr<FileSpiller> MakeSpiller(const std::string& dir, uint64_t max_bytes = 0) {
  absl::StatusOr<std::unique_ptr<FileSpiller>> spiller =
      FileSpiller::Create({.dir = dir, .max_bytes = max_bytes});
  REQUIRE_OK(spiller);
  return std::move(*spiller);
}

Spiller::Item ItemOf(const std::vector<uint8_t>& bytes) {
  return {ObjectId::FromRandom(), bytes.data(), bytes.size()};
}

std::vector<uint8_t> MustRestore(FileSpiller& spiller, const std::string& handle, size_t size) {
  std::vector<uint8_t> out(size);
  REQUIRE_OK(spiller.Restore(handle, out.data(), size));
  return out;
}

TEST_CASE("FileSpiller writes a batch into one file and reads each item back",
          "[file_spiller]") {
  TempDir dir;
  std::unique_ptr<FileSpiller> spiller = MakeSpiller(dir.path);
  const auto a = Bytes(1, 10), empty = Bytes(2, 0), big = Bytes(3, 300000);

  absl::StatusOr<std::vector<std::string>> handles =
      spiller->Spill({ItemOf(a), ItemOf(empty), ItemOf(big)});
  REQUIRE_OK(handles);
  REQUIRE(handles->size() == 3);
  CHECK((*handles)[0] == "spill-0.bin:0:10");
  CHECK((*handles)[1] == "spill-0.bin:10:0");
  CHECK((*handles)[2] == "spill-0.bin:10:300000");
  CHECK(dir.NumFiles() == 1);
  CHECK(fs::file_size(dir.path + "/spill-0.bin") == 300010);
  CHECK(spiller->bytes_on_disk() == 300010);

  CHECK(MustRestore(*spiller, (*handles)[2], big.size()) == big);
  CHECK(MustRestore(*spiller, (*handles)[0], a.size()) == a);
  CHECK(MustRestore(*spiller, (*handles)[1], 0).empty());

  // A second batch gets a file of its own.
  absl::StatusOr<std::vector<std::string>> more = spiller->Spill({ItemOf(a)});
  REQUIRE_OK(more);
  CHECK(more->at(0) == "spill-1.bin:0:10");
  CHECK(dir.NumFiles() == 2);
  CHECK(spiller->num_files() == 2);

  // Nothing to spill: no file.
  absl::StatusOr<std::vector<std::string>> none = spiller->Spill({});
  REQUIRE_OK(none);
  CHECK(none->empty());
  CHECK(dir.NumFiles() == 2);
}

TEST_CASE("FileSpiller removes a file once all its items are deleted", "[file_spiller]") {
  TempDir dir;
  std::unique_ptr<FileSpiller> spiller = MakeSpiller(dir.path);
  const auto a = Bytes(1, 100), b = Bytes(2, 200);
  std::vector<std::string> handles = spiller->Spill({ItemOf(a), ItemOf(b)}).value();
  std::vector<std::string> other = spiller->Spill({ItemOf(b)}).value();

  spiller->Delete(handles[0]);
  CHECK(dir.NumFiles() == 2);
  CHECK(MustRestore(*spiller, handles[1], b.size()) == b);
  spiller->Delete(handles[0]);  // twice: ignored, the other item survives
  CHECK(MustRestore(*spiller, handles[1], b.size()) == b);

  spiller->Delete(handles[1]);
  CHECK(dir.NumFiles() == 1);
  CHECK_FALSE(fs::exists(dir.path + "/spill-0.bin"));
  CHECK(spiller->bytes_on_disk() == 200);
  CHECK_CODE(spiller->Restore(handles[1], std::vector<uint8_t>(200).data(), 200),
             kInvalidArgument);

  // Files still held go with the spiller.
  spiller.reset();
  CHECK(dir.NumFiles() == 0);
  (void)other;
}

TEST_CASE("FileSpiller rejects bad handles", "[file_spiller]") {
  TempDir dir;
  std::unique_ptr<FileSpiller> spiller = MakeSpiller(dir.path);
  const auto a = Bytes(1, 64);
  const std::string good = spiller->Spill({ItemOf(a)}).value().at(0);
  REQUIRE(good == "spill-0.bin:0:64");
  std::vector<uint8_t> out(64);

  for (const std::string bad : {"", "garbage", ":", "spill-0.bin:0", "spill-0.bin::64",
                                "spill-0.bin:x:64", "spill-0.bin:0:-1", "spill-9.bin:0:64",
                                "spill-0.bin:1:63", "spill-0.bin:0:32", "../spill-0.bin:0:64",
                                "spill-0.bin:0:64:0"}) {
    INFO("handle: " << bad);
    CHECK_CODE(spiller->Restore(bad, out.data(), 64), kInvalidArgument);
    spiller->Delete(bad);  // ignored
  }
  CHECK_CODE(spiller->Restore(good, out.data(), 32), kInvalidArgument);  // wrong size
  CHECK(dir.NumFiles() == 1);
  CHECK(MustRestore(*spiller, good, 64) == a);
}

TEST_CASE("FileSpiller fails a batch that does not fit and writes nothing", "[file_spiller]") {
  TempDir dir;
  std::unique_ptr<FileSpiller> spiller = MakeSpiller(dir.path, /*max_bytes=*/100);
  const auto sixty = Bytes(1, 60), fifty = Bytes(2, 50);
  const std::string first = spiller->Spill({ItemOf(sixty)}).value().at(0);

  absl::StatusOr<std::vector<std::string>> full = spiller->Spill({ItemOf(fifty)});
  REQUIRE_CODE(full, kResourceExhausted);
  CHECK(full.status().message().find(dir.path) != std::string::npos);
  CHECK(dir.NumFiles() == 1);
  CHECK(spiller->bytes_on_disk() == 60);

  spiller->Delete(first);
  REQUIRE_OK(spiller->Spill({ItemOf(fifty), ItemOf(fifty)}));
  CHECK(dir.NumFiles() == 1);
}

TEST_CASE("FileSpiller reports write errors and leaves no partial file", "[file_spiller]") {
  TempDir dir;
  const auto item = Bytes(1, 3000);

  SECTION("the directory was removed") {
    const std::string sub = dir.path + "/gone";
    std::unique_ptr<FileSpiller> spiller = MakeSpiller(sub);
    fs::remove_all(sub);
    absl::StatusOr<std::vector<std::string>> result = spiller->Spill({ItemOf(item)});
    CHECK_FALSE(result.ok());
    CHECK_CODE(result, kUnavailable);
    CHECK(result.status().message().find(sub) != std::string::npos);
    CHECK(spiller->num_files() == 0);
  }
  SECTION("a write stops half way (file size limit)") {
    std::unique_ptr<FileSpiller> spiller = MakeSpiller(dir.path);
    // Past RLIMIT_FSIZE a write answers EFBIG (SIGXFSZ ignored), after a short write.
    struct rlimit old_limit;
    REQUIRE(getrlimit(RLIMIT_FSIZE, &old_limit) == 0);
    auto old_handler = std::signal(SIGXFSZ, SIG_IGN);
    struct rlimit small = old_limit;
    small.rlim_cur = 4096;
    REQUIRE(setrlimit(RLIMIT_FSIZE, &small) == 0);
    absl::StatusOr<std::vector<std::string>> result =
        spiller->Spill({ItemOf(item), ItemOf(item), ItemOf(item)});
    setrlimit(RLIMIT_FSIZE, &old_limit);
    std::signal(SIGXFSZ, old_handler);

    REQUIRE_CODE(result, kResourceExhausted);
    CHECK(result.status().message().find(dir.path) != std::string::npos);
    CHECK(dir.NumFiles() == 0);
    CHECK(spiller->num_files() == 0);
    CHECK(spiller->bytes_on_disk() == 0);
    REQUIRE_OK(spiller->Spill({ItemOf(item)}));  // works again afterwards
  }
}

TEST_CASE("FileSpiller::Create makes the directory or explains why not", "[file_spiller]") {
  TempDir dir;
  const std::string nested = dir.path + "/a/b/c";
  std::unique_ptr<FileSpiller> spiller = MakeSpiller(nested);
  CHECK(fs::is_directory(nested));
  CHECK(spiller->dir() == nested);

  CHECK_CODE(FileSpiller::Create({.dir = ""}), kInvalidArgument);
  const std::string file = dir.path + "/plain-file";
  { std::ofstream(file) << "x"; }
  CHECK_CODE(FileSpiller::Create({.dir = file}), kUnavailable);
  CHECK_CODE(FileSpiller::Create({.dir = file + "/sub"}), kUnavailable);
}

TEST_CASE("FileSpillers sharing a directory never overwrite each other", "[file_spiller]") {
  TempDir dir;
  std::unique_ptr<FileSpiller> one = MakeSpiller(dir.path), two = MakeSpiller(dir.path);
  const auto a = Bytes(1, 10), b = Bytes(2, 20);
  const std::string ha = one->Spill({ItemOf(a)}).value().at(0);
  const std::string hb = two->Spill({ItemOf(b)}).value().at(0);
  CHECK(ha != hb);
  CHECK(MustRestore(*one, ha, 10) == a);
  CHECK(MustRestore(*two, hb, 20) == b);
}

}  // namespace
}  // namespace shoal
