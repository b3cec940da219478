// A Spiller that writes each batch of spilled objects into one file under a directory.
//
// A batch becomes `<dir>/spill-<seq>.bin` with the items back to back; an item's handle is
// "spill-<seq>.bin:<offset>:<size>". A file is removed once every item in it was deleted, and
// every file still held is removed when the FileSpiller goes. Files are created exclusively,
// so two spillers sharing a directory never overwrite each other.
// Threading: one thread (the store's); not synchronized.
// Ownership: owns the files it wrote, never the directory.
// Errors: a batch that cannot be written completely leaves no file behind and answers
// ResourceExhausted (disk full, file size limit, `max_bytes` reached) or Unavailable (any other
// I/O error). Handles this spiller did not hand out, or already deleted: InvalidArgument.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "src/object_store/store_core.h"

namespace shoal {

struct FileSpillerOptions {
  std::string dir;         // created if missing
  uint64_t max_bytes = 0;  // 0: no limit; else a Spill that would hold more fails as a full disk
};

class FileSpiller : public Spiller {
 public:
  // Creates the directory if needed. InvalidArgument for an empty path, Unavailable when it
  // cannot be created.
  static absl::StatusOr<std::unique_ptr<FileSpiller>> Create(FileSpillerOptions options);
  ~FileSpiller() override;
  FileSpiller(const FileSpiller&) = delete;
  FileSpiller& operator=(const FileSpiller&) = delete;

  absl::StatusOr<std::vector<std::string>> Spill(const std::vector<Item>& items) override;
  absl::Status Restore(const std::string& handle, uint8_t* dest, uint64_t size) override;
  // Unknown handles are ignored.
  void Delete(const std::string& handle) override;

  uint64_t bytes_on_disk() const { return bytes_on_disk_; }  // of files not yet removed
  size_t num_files() const { return files_.size(); }
  const std::string& dir() const { return options_.dir; }

 private:
  struct File {
    uint64_t bytes = 0;                                   // its length
    std::multiset<std::pair<uint64_t, uint64_t>> live;    // (offset, size) of items not deleted
  };
  struct Parsed {
    std::string name;
    uint64_t offset = 0, size = 0;
  };
  explicit FileSpiller(FileSpillerOptions options) : options_(std::move(options)) {}
  // Parses a handle and checks that it names a live item of a file this spiller holds.
  absl::StatusOr<Parsed> Parse(const std::string& handle) const;
  std::string PathOf(const std::string& name) const { return options_.dir + "/" + name; }

  const FileSpillerOptions options_;
  uint64_t next_seq_ = 0;
  uint64_t bytes_on_disk_ = 0;
  std::map<std::string, File> files_;  // by file name
};

}  // namespace shoal
