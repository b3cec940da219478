#include "src/object_store/file_spiller.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <limits>
#include <system_error>

#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace shoal {

namespace {

// An error for `what` failing on `path` with `err`: a full disk (or file size limit) is
// ResourceExhausted, anything else Unavailable.
absl::Status IoError(const std::string& dir, int err, const std::string& what,
                     const std::string& path) {
  const std::string detail = absl::StrCat(what, " ", path, ": ", std::strerror(err));
  if (err == ENOSPC || err == EDQUOT || err == EFBIG) {
    return absl::ResourceExhaustedError(absl::StrCat("spill dir ", dir, " is full: ", detail));
  }
  return absl::UnavailableError(absl::StrCat("spill dir ", dir, ": ", detail));
}

// Writes all `size` bytes; answers 0 or the errno of the failure.
int WriteAll(int fd, const uint8_t* bytes, uint64_t size) {
  while (size > 0) {
    ssize_t n = ::write(fd, bytes, size);
    if (n < 0) {
      if (errno == EINTR) continue;
      return errno;
    }
    if (n == 0) return EIO;  // should not happen for a regular file; never spin
    bytes += n;
    size -= static_cast<uint64_t>(n);
  }
  return 0;
}

}  // namespace

absl::StatusOr<std::unique_ptr<FileSpiller>> FileSpiller::Create(FileSpillerOptions options) {
  if (options.dir.empty()) return absl::InvalidArgumentError("spill dir must not be empty");
  std::error_code ec;
  std::filesystem::create_directories(options.dir, ec);
  if (ec || !std::filesystem::is_directory(options.dir, ec)) {
    return absl::UnavailableError(absl::StrCat("cannot create spill dir ", options.dir, ": ",
                                               ec ? ec.message() : "not a directory"));
  }
  return std::unique_ptr<FileSpiller>(new FileSpiller(std::move(options)));
}

FileSpiller::~FileSpiller() {
  for (const auto& [name, file] : files_) ::unlink(PathOf(name).c_str());
}

absl::StatusOr<std::vector<std::string>> FileSpiller::Spill(const std::vector<Item>& items) {
  if (items.empty()) return std::vector<std::string>{};
  uint64_t total = 0;
  for (const Item& item : items) {
    if (item.size > std::numeric_limits<uint64_t>::max() - total) {
      return absl::InvalidArgumentError("spill batch size overflows");
    }
    total += item.size;
  }
  if (options_.max_bytes > 0 &&
      (total > options_.max_bytes || bytes_on_disk_ > options_.max_bytes - total)) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "spill dir ", options_.dir, " is full: a batch of ", total, " bytes on top of the ",
        bytes_on_disk_, " held would pass the limit of ", options_.max_bytes, " bytes"));
  }

  // A file name nobody uses yet (another spiller may share the directory).
  std::string name, path;
  int fd = -1;
  while (fd < 0) {
    name = absl::StrCat("spill-", next_seq_++, ".bin");
    path = PathOf(name);
    fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0 && errno != EEXIST && errno != EINTR) {
      return IoError(options_.dir, errno, "creating", path);
    }
  }

  File file;
  std::vector<std::string> handles;
  handles.reserve(items.size());
  int err = 0;
  for (const Item& item : items) {
    err = WriteAll(fd, item.bytes, item.size);
    if (err != 0) break;
    file.live.insert({file.bytes, item.size});
    handles.push_back(absl::StrCat(name, ":", file.bytes, ":", item.size));
    file.bytes += item.size;
  }
  if (::close(fd) != 0 && err == 0) err = errno;
  if (err != 0) {
    ::unlink(path.c_str());
    return IoError(options_.dir, err, "writing", path);
  }
  bytes_on_disk_ += file.bytes;
  files_.emplace(name, std::move(file));
  return handles;
}

absl::Status FileSpiller::Restore(const std::string& handle, uint8_t* dest, uint64_t size) {
  absl::StatusOr<Parsed> item = Parse(handle);
  if (!item.ok()) return item.status();
  if (item->size != size) {
    return absl::InvalidArgumentError(absl::StrCat("spill handle '", handle, "' holds ",
                                                   item->size, " bytes, not ", size));
  }
  const std::string path = PathOf(item->name);
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return IoError(options_.dir, errno, "opening", path);
  uint64_t done = 0;
  absl::Status status;
  while (done < size) {
    ssize_t n = ::pread(fd, dest + done, size - done, static_cast<off_t>(item->offset + done));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      status = IoError(options_.dir, errno, "reading", path);
      break;
    }
    if (n == 0) {
      status = absl::DataLossError(absl::StrCat("spill file ", path, " is shorter than handle '",
                                                handle, "' says"));
      break;
    }
    done += static_cast<uint64_t>(n);
  }
  ::close(fd);
  return status;
}

void FileSpiller::Delete(const std::string& handle) {
  absl::StatusOr<Parsed> item = Parse(handle);
  if (!item.ok()) return;
  auto file = files_.find(item->name);
  file->second.live.erase(file->second.live.find({item->offset, item->size}));
  if (!file->second.live.empty()) return;
  ::unlink(PathOf(item->name).c_str());
  bytes_on_disk_ -= file->second.bytes;
  files_.erase(file);
}

absl::StatusOr<FileSpiller::Parsed> FileSpiller::Parse(const std::string& handle) const {
  auto bad = [&](const char* why) {
    return absl::InvalidArgumentError(absl::StrCat("bad spill handle '", handle, "': ", why));
  };
  const size_t size_colon = handle.rfind(':');
  if (size_colon == std::string::npos || size_colon == 0) return bad("expected file:offset:size");
  const size_t offset_colon = handle.rfind(':', size_colon - 1);
  if (offset_colon == std::string::npos) return bad("expected file:offset:size");
  Parsed out;
  out.name = handle.substr(0, offset_colon);
  const std::string offset = handle.substr(offset_colon + 1, size_colon - offset_colon - 1);
  const std::string size = handle.substr(size_colon + 1);
  if (!absl::SimpleAtoi(offset, &out.offset) || !absl::SimpleAtoi(size, &out.size)) {
    return bad("offset and size must be numbers");
  }
  auto file = files_.find(out.name);
  if (file == files_.end()) return bad("no such spill file");
  if (!file->second.live.contains({out.offset, out.size})) return bad("no such item");
  return out;
}

}  // namespace shoal
