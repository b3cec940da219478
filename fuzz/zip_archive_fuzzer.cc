// Fuzzes the zip listing that guards every runtime-env package before it is unpacked
// (src/common/zip_listing.h: ListZipEntries, CheckZipEntries). The archives come from clients:
// a driver's upload, PUT /api/packages/gcs/<name>.
//
// Input: the archive's bytes (the seeds are real archives, a "../" one and a symlink one among them).
// Invariants: a malformed archive is refused with InvalidArgument, never read out of bounds;
// an archive CheckZipEntries accepts names only relative paths with no ".." component, no
// backslash and no symlink, so each name joined to the target directory stays inside it, and
// its entries' sizes add up to at most the limit.
#include <cstdint>
#include <filesystem>
#include <string>

#include "absl/strings/match.h"
#include "fuzz/fuzz_check.h"
#include "src/common/zip_listing.h"

namespace fs = std::filesystem;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string bytes(reinterpret_cast<const char*>(data), size);
  absl::StatusOr<std::vector<shoal::ZipEntry>> entries = shoal::ListZipEntries(bytes);
  if (!entries.ok()) {
    FUZZ_CHECK(absl::IsInvalidArgument(entries.status()));
    return 0;
  }
  constexpr uint64_t kLimit = 1 << 20;
  absl::Status safe = shoal::CheckZipEntries(*entries, kLimit);
  if (!safe.ok()) {
    FUZZ_CHECK(absl::IsInvalidArgument(safe));
    return 0;
  }
  const fs::path target = "/session/packages/pkg";
  uint64_t total = 0;
  for (const shoal::ZipEntry& e : *entries) {
    FUZZ_CHECK(!e.is_symlink);
    FUZZ_CHECK(!e.name.empty() && e.name[0] != '/' && e.name.find('\\') == std::string::npos);
    const fs::path joined = (target / e.name).lexically_normal();
    FUZZ_CHECK(absl::StartsWith(joined.string(), target.string()));
    total += e.uncompressed_size;
  }
  FUZZ_CHECK(total <= kLimit);
  return 0;
}
