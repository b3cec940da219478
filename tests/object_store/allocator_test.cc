#include "src/object_store/allocator.h"

#include <catch2/catch.hpp>

#include <cstdint>
#include <limits>
#include <map>
#include <random>
#include <vector>

#include "tests/test_util/status_matchers.h"

namespace shoal {
namespace {

constexpr uint64_t kUnit = 64;

uint64_t MustAllocate(Allocator& a, uint64_t size) {
  std::optional<uint64_t> offset = a.Allocate(size);
  REQUIRE(offset.has_value());
  return *offset;
}

TEST_CASE("Allocator rounds sizes up to the alignment", "[allocator]") {
  Allocator a(1000);  // rounded down to 960
  CHECK(a.capacity() == 960);

  uint64_t one = MustAllocate(a, 1);
  uint64_t zero = MustAllocate(a, 0);
  uint64_t just_over = MustAllocate(a, 65);
  uint64_t exact = MustAllocate(a, 128);
  CHECK(a.BlockSize(one) == 64);
  CHECK(a.BlockSize(zero) == 64);
  CHECK(a.BlockSize(just_over) == 128);
  CHECK(a.BlockSize(exact) == 128);
  for (uint64_t offset : {one, zero, just_over, exact}) CHECK(offset % kUnit == 0);
  CHECK(a.bytes_allocated() == 64 + 64 + 128 + 128);
  CHECK(a.BlockSize(one + 1) == 0);

  Allocator wide(4096, 1024);
  CHECK(wide.BlockSize(MustAllocate(wide, 1)) == 1024);
}

TEST_CASE("Allocator picks the smallest free block that fits", "[allocator]") {
  Allocator a(64 * kUnit);
  // Blocks of 4, 2 and 3 units separated by 1-unit fences, then a large tail.
  uint64_t four = MustAllocate(a, 4 * kUnit);
  MustAllocate(a, kUnit);
  uint64_t two = MustAllocate(a, 2 * kUnit);
  MustAllocate(a, kUnit);
  uint64_t three = MustAllocate(a, 3 * kUnit);
  MustAllocate(a, kUnit);
  REQUIRE_OK(a.Free(four));
  REQUIRE_OK(a.Free(two));
  REQUIRE_OK(a.Free(three));
  CHECK(a.num_free_blocks() == 4);

  CHECK(MustAllocate(a, 2 * kUnit) == two);
  CHECK(MustAllocate(a, 3 * kUnit) == three);
  // One unit from the 4-unit hole, leaving 3 units there.
  CHECK(MustAllocate(a, kUnit) == four);
  CHECK(MustAllocate(a, 3 * kUnit) == four + kUnit);
  CHECK(a.num_free_blocks() == 1);  // only the tail is left
}

TEST_CASE("Allocator coalesces freed neighbours", "[allocator]") {
  Allocator a(4 * kUnit);
  uint64_t b0 = MustAllocate(a, kUnit), b1 = MustAllocate(a, kUnit);
  uint64_t b2 = MustAllocate(a, kUnit), b3 = MustAllocate(a, kUnit);
  CHECK(a.num_free_blocks() == 0);

  SECTION("with the left neighbour") {
    REQUIRE_OK(a.Free(b0));
    REQUIRE_OK(a.Free(b1));
    CHECK(a.num_free_blocks() == 1);
    CHECK(a.largest_free_block() == 2 * kUnit);
    CHECK(MustAllocate(a, 2 * kUnit) == b0);
  }
  SECTION("with the right neighbour") {
    REQUIRE_OK(a.Free(b2));
    REQUIRE_OK(a.Free(b1));
    CHECK(a.num_free_blocks() == 1);
    CHECK(a.largest_free_block() == 2 * kUnit);
    CHECK(MustAllocate(a, 2 * kUnit) == b1);
  }
  SECTION("with both neighbours") {
    REQUIRE_OK(a.Free(b0));
    REQUIRE_OK(a.Free(b2));
    CHECK(a.num_free_blocks() == 2);
    REQUIRE_OK(a.Free(b1));
    CHECK(a.num_free_blocks() == 1);
    CHECK(a.largest_free_block() == 3 * kUnit);
    REQUIRE_OK(a.Free(b3));
    CHECK(a.num_free_blocks() == 1);
    CHECK(a.largest_free_block() == 4 * kUnit);
    CHECK(a.bytes_allocated() == 0);
  }
}

TEST_CASE("Allocator answers nullopt when exhausted", "[allocator]") {
  Allocator a(4 * kUnit);
  for (int i = 0; i < 4; ++i) MustAllocate(a, kUnit);
  CHECK(a.bytes_allocated() == a.capacity());
  CHECK(a.largest_free_block() == 0);
  CHECK_FALSE(a.Allocate(1).has_value());
  CHECK_FALSE(a.Allocate(0).has_value());

  Allocator empty(4 * kUnit);
  CHECK_FALSE(empty.Allocate(4 * kUnit + 1).has_value());
  CHECK_FALSE(empty.Allocate(std::numeric_limits<uint64_t>::max()).has_value());
  CHECK(empty.bytes_allocated() == 0);

  Allocator nothing(10);  // less than one unit
  CHECK(nothing.capacity() == 0);
  CHECK_FALSE(nothing.Allocate(0).has_value());
}

TEST_CASE("Allocator fragmentation: enough free bytes but no block, until coalesced",
          "[allocator]") {
  Allocator a(16 * kUnit);
  std::vector<uint64_t> blocks;
  for (int i = 0; i < 16; ++i) blocks.push_back(MustAllocate(a, kUnit));
  for (int i = 0; i < 16; i += 2) REQUIRE_OK(a.Free(blocks[i]));
  CHECK(a.capacity() - a.bytes_allocated() == 8 * kUnit);
  CHECK(a.largest_free_block() == kUnit);
  CHECK(a.num_free_blocks() == 8);
  CHECK_FALSE(a.Allocate(2 * kUnit).has_value());

  for (int i = 1; i < 16; i += 2) REQUIRE_OK(a.Free(blocks[i]));
  CHECK(a.num_free_blocks() == 1);
  CHECK(MustAllocate(a, 16 * kUnit) == 0);
}

TEST_CASE("Allocator rejects bad frees without changing anything", "[allocator]") {
  Allocator a(8 * kUnit);
  uint64_t wide = MustAllocate(a, 2 * kUnit);
  uint64_t other = MustAllocate(a, kUnit);
  REQUIRE_OK(a.Free(other));
  const uint64_t allocated = a.bytes_allocated();
  const size_t free_blocks = a.num_free_blocks();

  CHECK_CODE(a.Free(other), kInvalidArgument);            // double free
  CHECK_CODE(a.Free(wide + kUnit), kInvalidArgument);     // inside a block
  CHECK_CODE(a.Free(wide + 1), kInvalidArgument);         // unaligned
  CHECK_CODE(a.Free(100 * kUnit), kInvalidArgument);      // past the end
  CHECK(a.bytes_allocated() == allocated);
  CHECK(a.num_free_blocks() == free_blocks);
  CHECK(a.BlockSize(wide) == 2 * kUnit);

  REQUIRE_OK(a.Free(wide));
  CHECK_CODE(a.Free(wide), kInvalidArgument);
  CHECK(a.bytes_allocated() == 0);
  CHECK(a.num_free_blocks() == 1);
}

// Compares the allocator with a model (offset -> size of live blocks) after every step: no
// overlaps, the same bytes allocated, and free space that matches the gaps between blocks
// exactly (so neighbours were coalesced and a failed Allocate really had no room).
TEST_CASE("Allocator matches a reference model under random allocs and frees", "[allocator]") {
  constexpr uint64_t kCapacity = 256 * kUnit;
  Allocator a(kCapacity);
  std::map<uint64_t, uint64_t> model;
  std::mt19937_64 rng(42);

  auto gaps = [&] {
    std::vector<uint64_t> out;
    uint64_t end = 0;
    for (const auto& [offset, size] : model) {
      if (offset > end) out.push_back(offset - end);
      end = offset + size;
    }
    if (kCapacity > end) out.push_back(kCapacity - end);
    return out;
  };

  for (int step = 0; step < 20000; ++step) {
    const bool allocate = model.empty() || rng() % 100 < 55;
    if (allocate) {
      const uint64_t size = rng() % (20 * kUnit);
      const uint64_t rounded = size == 0 ? kUnit : (size + kUnit - 1) / kUnit * kUnit;
      std::optional<uint64_t> offset = a.Allocate(size);
      if (!offset) {
        for (uint64_t gap : gaps()) REQUIRE(gap < rounded);
        continue;
      }
      REQUIRE(*offset % kUnit == 0);
      REQUIRE(*offset + rounded <= kCapacity);
      REQUIRE(a.BlockSize(*offset) == rounded);
      auto next = model.lower_bound(*offset);
      if (next != model.end()) REQUIRE(*offset + rounded <= next->first);
      if (next != model.begin()) {
        auto prev = std::prev(next);
        REQUIRE(prev->first + prev->second <= *offset);
      }
      model.emplace(*offset, rounded);
    } else {
      auto victim = std::next(model.begin(), static_cast<long>(rng() % model.size()));
      REQUIRE_OK(a.Free(victim->first));
      model.erase(victim);
    }

    uint64_t allocated = 0;
    for (const auto& [offset, size] : model) allocated += size;
    REQUIRE(a.bytes_allocated() == allocated);
    const std::vector<uint64_t> free_gaps = gaps();
    REQUIRE(a.num_free_blocks() == free_gaps.size());
    uint64_t largest = 0;
    for (uint64_t gap : free_gaps) largest = std::max(largest, gap);
    REQUIRE(a.largest_free_block() == largest);
  }
}

}  // namespace
}  // namespace shoal
