#include "src/common/zip_listing.h"

#include <sys/stat.h>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace shoal {
namespace {

uint32_t Read16(absl::string_view b, size_t at) {
  return static_cast<uint8_t>(b[at]) | static_cast<uint8_t>(b[at + 1]) << 8;
}
uint32_t Read32(absl::string_view b, size_t at) {
  return Read16(b, at) | Read16(b, at + 2) << 16;
}

}  // namespace

absl::StatusOr<std::vector<ZipEntry>> ListZipEntries(absl::string_view bytes) {
  constexpr size_t kEocdSize = 22;
  if (bytes.size() < kEocdSize) return absl::InvalidArgumentError("not a zip archive (too short)");
  // The end-of-central-directory record sits in the last 22 + 65535 (comment) bytes.
  size_t eocd = absl::string_view::npos;
  const size_t lowest = bytes.size() > kEocdSize + 65535 ? bytes.size() - kEocdSize - 65535 : 0;
  for (size_t at = bytes.size() - kEocdSize + 1; at-- > lowest;) {
    if (Read32(bytes, at) == 0x06054b50) {
      eocd = at;
      break;
    }
  }
  if (eocd == absl::string_view::npos) return absl::InvalidArgumentError("not a zip archive (no central directory)");
  const uint32_t count = Read16(bytes, eocd + 10);
  const uint32_t dir_size = Read32(bytes, eocd + 12);
  const uint32_t dir_offset = Read32(bytes, eocd + 16);
  if (count == 0xFFFF || dir_size == 0xFFFFFFFF || dir_offset == 0xFFFFFFFF) {
    return absl::InvalidArgumentError("ZIP64 archives are not supported");
  }
  if (uint64_t{dir_offset} + dir_size > eocd) return absl::InvalidArgumentError("corrupt zip archive (directory)");
  std::vector<ZipEntry> entries;
  size_t at = dir_offset;
  for (uint32_t i = 0; i < count; ++i) {
    constexpr size_t kHeader = 46;
    if (at + kHeader > eocd || Read32(bytes, at) != 0x02014b50) {
      return absl::InvalidArgumentError("corrupt zip archive (entry header)");
    }
    const uint32_t made_by_os = Read16(bytes, at + 4) >> 8;
    const uint32_t uncompressed = Read32(bytes, at + 24);
    const uint32_t name_len = Read16(bytes, at + 28);
    const uint32_t extra_len = Read16(bytes, at + 30);
    const uint32_t comment_len = Read16(bytes, at + 32);
    const uint32_t external = Read32(bytes, at + 38);
    if (at + kHeader + name_len > eocd) return absl::InvalidArgumentError("corrupt zip archive (entry name)");
    if (uncompressed == 0xFFFFFFFF) return absl::InvalidArgumentError("ZIP64 archives are not supported");
    ZipEntry e;
    e.name = std::string(bytes.substr(at + kHeader, name_len));
    e.uncompressed_size = uncompressed;
    e.is_directory = absl::EndsWith(e.name, "/");
    // The hosts whose entries unzip makes symlinks of (Info-ZIP's SYMLINK_HOST: VMS, Unix,
    // Atari, BeOS, AtheOS), all with a Unix mode in the high half of the attributes.
    const bool unix_mode_host =
        made_by_os == 2 || made_by_os == 3 || made_by_os == 5 || made_by_os == 16 || made_by_os == 30;
    e.is_symlink = unix_mode_host && ((external >> 16) & S_IFMT) == S_IFLNK;
    entries.push_back(std::move(e));
    at += kHeader + name_len + extra_len + comment_len;
  }
  // unzip goes on while headers follow, whatever the count says: what is listed must be all.
  if (at != uint64_t{dir_offset} + dir_size) {
    return absl::InvalidArgumentError("corrupt zip archive: the central directory does not match its entry count");
  }
  return entries;
}

absl::Status CheckZipEntries(const std::vector<ZipEntry>& entries, uint64_t max_unpacked_bytes) {
  uint64_t total = 0;
  for (const ZipEntry& e : entries) {
    if (e.name.empty() || e.name[0] == '/' || e.name.find('\\') != std::string::npos ||
        e.name.find('\0') != std::string::npos) {
      return absl::InvalidArgumentError(absl::StrCat("zip entry '", e.name, "' is not a relative path"));
    }
    for (absl::string_view part : absl::StrSplit(e.name, '/')) {
      if (part == "..") {
        return absl::InvalidArgumentError(absl::StrCat("zip entry '", e.name, "' points outside the archive (..)"));
      }
    }
    if (e.is_symlink) return absl::InvalidArgumentError(absl::StrCat("zip entry '", e.name, "' is a symbolic link"));
    total += e.uncompressed_size;
    if (total > max_unpacked_bytes) {
      return absl::InvalidArgumentError(absl::StrCat("the archive unpacks to more than ", max_unpacked_bytes, " bytes"));
    }
  }
  return absl::OkStatus();
}

}  // namespace shoal
