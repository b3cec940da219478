// A fresh directory under the system temp dir, removed with everything in it at the end.
#pragma once

#include <stdlib.h>

#include <cstddef>
#include <filesystem>
#include <string>
#include <system_error>

#include <catch2/catch.hpp>

namespace shoal::test_util {

struct TempDir {
  explicit TempDir(const std::string& prefix = "shoal-test") {
    std::string pattern = (std::filesystem::temp_directory_path() / (prefix + "-XXXXXX")).string();
    REQUIRE(mkdtemp(pattern.data()) != nullptr);
    path = pattern;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  // Entries directly inside the directory.
  size_t NumFiles() const {
    size_t n = 0;
    for ([[maybe_unused]] const auto& entry : std::filesystem::directory_iterator(path)) ++n;
    return n;
  }

  std::string path;
};

}  // namespace shoal::test_util
