#include "src/object_store/allocator.h"

#include <iterator>
#include <string>

namespace shoal {

Allocator::Allocator(uint64_t capacity, uint64_t alignment)
    : alignment_(alignment), capacity_(capacity / alignment * alignment) {
  if (capacity_ > 0) InsertFree(0, capacity_);
}

std::optional<uint64_t> Allocator::Allocate(uint64_t size) {
  if (size > capacity_) return std::nullopt;  // also keeps the rounding below from overflowing
  const uint64_t rounded =
      size == 0 ? alignment_ : (size + alignment_ - 1) / alignment_ * alignment_;
  // Best fit: the smallest free block that is large enough, the lowest offset among equals.
  auto best = free_by_size_.lower_bound({rounded, 0});
  if (best == free_by_size_.end()) return std::nullopt;
  const auto [block_size, offset] = *best;
  EraseFree(free_by_offset_.find(offset));
  if (block_size > rounded) InsertFree(offset + rounded, block_size - rounded);
  used_.emplace(offset, rounded);
  allocated_ += rounded;
  return offset;
}

absl::Status Allocator::Free(uint64_t offset) {
  auto used = used_.find(offset);
  if (used == used_.end()) {
    return absl::InvalidArgumentError("no allocated block starts at offset " +
                                      std::to_string(offset));
  }
  uint64_t start = offset, size = used->second;
  used_.erase(used);
  allocated_ -= size;

  // Coalesce with the free neighbours on either side.
  auto next = free_by_offset_.lower_bound(offset);
  if (next != free_by_offset_.end() && next->first == offset + size) {
    size += next->second;
    next = std::next(next);
    EraseFree(std::prev(next));
  }
  if (next != free_by_offset_.begin()) {
    auto prev = std::prev(next);
    if (prev->first + prev->second == start) {
      start = prev->first;
      size += prev->second;
      EraseFree(prev);
    }
  }
  InsertFree(start, size);
  return absl::OkStatus();
}

uint64_t Allocator::largest_free_block() const {
  return free_by_size_.empty() ? 0 : free_by_size_.rbegin()->first;
}

uint64_t Allocator::BlockSize(uint64_t offset) const {
  auto it = used_.find(offset);
  return it == used_.end() ? 0 : it->second;
}

void Allocator::InsertFree(uint64_t offset, uint64_t size) {
  free_by_offset_.emplace(offset, size);
  free_by_size_.emplace(size, offset);
}

void Allocator::EraseFree(std::map<uint64_t, uint64_t>::iterator it) {
  free_by_size_.erase({it->second, it->first});
  free_by_offset_.erase(it);
}

}  // namespace shoal
