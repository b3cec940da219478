// The members of a zip archive as its central directory lists them, and the check that
// unpacking it stays inside one directory: for runtime-env packages, which come from clients
// (src/raylet/runtime_env_agent.h unpacks them, the dashboard unpacks job working dirs).
// Threading: pure functions. Errors: InvalidArgument saying what is wrong with the archive.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace shoal {

// One member of a zip archive, from its central directory.
struct ZipEntry {
  std::string name;
  uint64_t uncompressed_size = 0;
  bool is_directory = false;
  bool is_symlink = false;  // Unix mode in the external attributes says S_IFLNK
};
// Reads the central directory of the zip archive `bytes` (no ZIP64, no multi-disk archives).
absl::StatusOr<std::vector<ZipEntry>> ListZipEntries(absl::string_view bytes);
// Refuses archives that would write outside the directory they are unpacked into (absolute
// names, ".." components, backslashes, symlinks) or unpack to more than `max_unpacked_bytes`.
absl::Status CheckZipEntries(const std::vector<ZipEntry>& entries, uint64_t max_unpacked_bytes);

}  // namespace shoal
