// Hands out aligned byte ranges of a fixed-size arena (offsets, not pointers).
//
// Best fit over free blocks, with neighbours coalesced on Free, so a freed region is reused
// (and its pages, already faulted in, with it). Logic only.
// Threading: one thread; not synchronized.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <utility>

#include "absl/status/status.h"

namespace shoal {

class Allocator {
 public:
  // `alignment` must be a power of two; `capacity` is rounded down to a multiple of it.
  explicit Allocator(uint64_t capacity, uint64_t alignment = 64);

  // Answers the offset of `size` bytes (rounded up to the alignment; size 0 takes one unit),
  // or nullopt when no free block is large enough.
  std::optional<uint64_t> Allocate(uint64_t size);
  // Frees the block at `offset`. InvalidArgument, with no change, for an offset that is not
  // the start of an allocated block.
  absl::Status Free(uint64_t offset);

  uint64_t capacity() const { return capacity_; }
  uint64_t bytes_allocated() const { return allocated_; }
  uint64_t largest_free_block() const;
  size_t num_free_blocks() const { return free_by_offset_.size(); }
  // Size of the allocated block at `offset` (after rounding), or 0 if none starts there.
  uint64_t BlockSize(uint64_t offset) const;

 private:
  void InsertFree(uint64_t offset, uint64_t size);
  void EraseFree(std::map<uint64_t, uint64_t>::iterator it);

  const uint64_t alignment_;
  const uint64_t capacity_;
  uint64_t allocated_ = 0;
  std::map<uint64_t, uint64_t> free_by_offset_;            // offset -> size
  std::set<std::pair<uint64_t, uint64_t>> free_by_size_;   // (size, offset)
  std::map<uint64_t, uint64_t> used_;                      // offset -> size
};

}  // namespace shoal
