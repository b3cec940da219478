#include "src/object_store/store_core.h"

#include <catch2/catch.hpp>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "src/object_store/file_spiller.h"
#include "tests/test_util/status_matchers.h"
#include "tests/test_util/temp_dir.h"

namespace shoal {
namespace {

constexpr uint64_t kUnit = 64;
constexpr StoreClientId kAlice = 1, kBob = 2;

// Keeps spilled copies in memory; records each batch; can be told to fail.
class FakeSpiller : public Spiller {
 public:
  absl::StatusOr<std::vector<std::string>> Spill(const std::vector<Item>& items) override {
    if (!failure.ok()) return failure;
    std::vector<ObjectId> batch;
    std::vector<std::string> handles;
    for (const Item& item : items) {
      std::string handle = "h" + std::to_string(next_handle_++);
      stored[handle].assign(item.bytes, item.bytes + item.size);
      batch.push_back(item.id);
      handles.push_back(handle);
    }
    batches.push_back(batch);
    return handles;
  }
  absl::Status Restore(const std::string& handle, uint8_t* dest, uint64_t size) override {
    auto it = stored.find(handle);
    if (it == stored.end()) return absl::InvalidArgumentError("unknown handle " + handle);
    if (it->second.size() != size) return absl::InvalidArgumentError("wrong size");
    if (size > 0) std::memcpy(dest, it->second.data(), size);
    restores++;
    return absl::OkStatus();
  }
  void Delete(const std::string& handle) override {
    stored.erase(handle);
    deleted.push_back(handle);
  }

  absl::Status failure;                                   // Spill answers this when not OK
  std::map<std::string, std::vector<uint8_t>> stored;     // live spilled copies
  std::vector<std::vector<ObjectId>> batches;             // one per Spill call
  std::vector<std::string> deleted;
  int restores = 0;

 private:
  int next_handle_ = 0;
};

// Bytes an object with `seed` holds: distinct per object and per position.
std::vector<uint8_t> Pattern(uint64_t seed, uint64_t size) {
  std::vector<uint8_t> out(size);
  for (uint64_t i = 0; i < size; ++i) out[i] = static_cast<uint8_t>(seed * 131 + i * 7 + i / 251);
  return out;
}

// A StoreCore over a plain buffer, with helpers that put and read whole objects.
struct TestStore {
  explicit TestStore(uint64_t capacity, uint64_t min_spill_batch = 0, Spiller* spiller = nullptr)
      : memory(capacity), core(memory.data(), {capacity, min_spill_batch}, spiller) {}

  // Creates, fills, seals and releases an object of `size` data bytes holding Pattern(seed).
  absl::StatusOr<ObjectId> TryPut(uint64_t seed, uint64_t size, bool primary = true,
                                  uint64_t metadata_size = 0) {
    ObjectId id = ObjectId::FromRandom();
    absl::StatusOr<ObjectLocation> loc = core.Create(kAlice, id, size, metadata_size, primary);
    if (!loc.ok()) return loc.status();
    const std::vector<uint8_t> bytes = Pattern(seed, size + metadata_size);
    if (!bytes.empty()) std::memcpy(memory.data() + loc->offset, bytes.data(), bytes.size());
    absl::Status s = core.Seal(kAlice, id);
    if (s.ok()) s = core.Release(kAlice, id);
    if (!s.ok()) return s;
    return id;
  }
  ObjectId Put(uint64_t seed, uint64_t size, bool primary = true) {
    absl::StatusOr<ObjectId> id = TryPut(seed, size, primary);
    REQUIRE_OK(id);
    return *id;
  }
  // Gets, copies out and releases an object (data and metadata).
  absl::StatusOr<std::vector<uint8_t>> Read(const ObjectId& id) {
    absl::StatusOr<ObjectLocation> loc = core.Get(kBob, id);
    if (!loc.ok()) return loc.status();
    const uint8_t* p = memory.data() + loc->offset;
    std::vector<uint8_t> out(p, p + loc->data_size + loc->metadata_size);
    absl::Status s = core.Release(kBob, id);
    if (!s.ok()) return s;
    return out;
  }
  std::optional<ObjectInfo> Info(const ObjectId& id) {
    for (const ObjectInfo& info : core.List()) {
      if (info.id == id) return info;
    }
    return std::nullopt;
  }

  std::vector<uint8_t> memory;
  StoreCore core;
};

using test_util::TempDir;

TEST_CASE("StoreCore create, seal, get, release, delete", "[store_core]") {
  TestStore store(16 * kUnit);
  StoreCore& core = store.core;
  const ObjectId id = ObjectId::FromRandom();

  absl::StatusOr<ObjectLocation> created = core.Create(kAlice, id, 100, 28, /*primary=*/true);
  REQUIRE_OK(created);
  CHECK(created->offset % kUnit == 0);
  CHECK(created->data_size == 100);
  CHECK(created->metadata_size == 28);
  CHECK(core.Stats().bytes_used == 2 * kUnit);
  CHECK_FALSE(core.Contains(id));
  CHECK_CODE(core.Get(kBob, id), kUnavailable);  // not sealed yet

  CHECK_CODE(core.Seal(kBob, id), kFailedPrecondition);  // only the creator seals
  REQUIRE_OK(core.Seal(kAlice, id));
  CHECK(core.Contains(id));
  CHECK_CODE(core.Seal(kAlice, id), kFailedPrecondition);  // twice

  absl::StatusOr<ObjectLocation> got = core.Get(kBob, id);
  REQUIRE_OK(got);
  CHECK(got->offset == created->offset);
  CHECK(got->data_size == 100);
  CHECK(got->metadata_size == 28);
  REQUIRE_OK(core.Get(kBob, id));  // a client may hold several references
  CHECK(store.Info(id)->ref_count == 3);
  CHECK(store.Info(id)->state == ObjectState::kSealed);
  CHECK(store.Info(id)->primary);

  REQUIRE_OK(core.Release(kAlice, id));
  CHECK_CODE(core.Release(kAlice, id), kFailedPrecondition);
  REQUIRE_OK(core.Release(kBob, id));
  REQUIRE_OK(core.Release(kBob, id));
  CHECK_CODE(core.Release(kBob, id), kFailedPrecondition);
  CHECK(store.Info(id)->ref_count == 0);

  REQUIRE_OK(core.Delete(id));
  CHECK_FALSE(core.Contains(id));
  CHECK(core.List().empty());
  StoreStats stats = core.Stats();
  CHECK(stats.num_objects == 0);
  CHECK(stats.bytes_used == 0);
  CHECK(stats.capacity == 16 * kUnit);
  CHECK_CODE(core.Delete(id), kNotFound);
}

TEST_CASE("StoreCore answers unknown ids and bad sizes", "[store_core]") {
  TestStore store(16 * kUnit);
  StoreCore& core = store.core;
  const ObjectId unknown = ObjectId::FromRandom();
  CHECK_CODE(core.Seal(kAlice, unknown), kNotFound);
  CHECK_CODE(core.Abort(kAlice, unknown), kNotFound);
  CHECK_CODE(core.Release(kAlice, unknown), kNotFound);
  CHECK_CODE(core.Delete(unknown), kNotFound);
  CHECK_CODE(core.Get(kAlice, unknown), kUnavailable);  // may still be created or pulled
  CHECK_FALSE(core.Contains(unknown));

  CHECK_CODE(core.Create(kAlice, unknown, ~uint64_t{0}, 1, true), kInvalidArgument);
  CHECK_CODE(core.Create(kAlice, unknown, ~uint64_t{0} - 10, 10, true), kResourceExhausted);
  CHECK(core.Stats().num_objects == 0);
  core.DisconnectClient(77);  // never connected: nothing to do

  // A zero-byte object still gets a location of its own.
  REQUIRE_OK(store.TryPut(1, 0));
  CHECK(core.Stats().bytes_used == kUnit);
}

TEST_CASE("StoreCore rejects a create of an id that exists, in any state", "[store_core]") {
  FakeSpiller spiller;
  TestStore store(2 * kUnit, 0, &spiller);
  StoreCore& core = store.core;
  const ObjectId id = ObjectId::FromRandom();
  REQUIRE_OK(core.Create(kAlice, id, 10, 0, true));
  CHECK_CODE(core.Create(kBob, id, 10, 0, true), kAlreadyExists);
  REQUIRE_OK(core.Seal(kAlice, id));
  CHECK_CODE(core.Create(kBob, id, 10, 0, true), kAlreadyExists);
  REQUIRE_OK(core.Release(kAlice, id));
  store.Put(2, 2 * kUnit);  // spills `id`
  REQUIRE(store.Info(id)->state == ObjectState::kSpilled);
  CHECK_CODE(core.Create(kBob, id, 10, 0, true), kAlreadyExists);
  CHECK(core.Stats().num_objects == 2);
}

TEST_CASE("StoreCore abort is for the creator of an unsealed object", "[store_core]") {
  TestStore store(4 * kUnit);
  StoreCore& core = store.core;
  const ObjectId id = ObjectId::FromRandom();
  REQUIRE_OK(core.Create(kAlice, id, 4 * kUnit, 0, true));
  CHECK_CODE(core.Abort(kBob, id), kFailedPrecondition);
  REQUIRE_OK(core.Abort(kAlice, id));
  CHECK(core.Stats().bytes_used == 0);
  CHECK_CODE(core.Seal(kAlice, id), kNotFound);

  REQUIRE_OK(core.Create(kAlice, id, 10, 0, true));  // the id is free again
  REQUIRE_OK(core.Seal(kAlice, id));
  CHECK_CODE(core.Abort(kAlice, id), kFailedPrecondition);
  CHECK(core.Contains(id));
}

TEST_CASE("StoreCore deletes a referenced object when the last reference goes",
          "[store_core]") {
  TestStore store(4 * kUnit);
  StoreCore& core = store.core;
  const ObjectId id = store.Put(1, 10);
  REQUIRE_OK(core.Get(kAlice, id));
  REQUIRE_OK(core.Get(kBob, id));
  REQUIRE_OK(core.Get(kBob, id));

  REQUIRE_OK(core.Delete(id));
  CHECK(core.Contains(id));  // still referenced
  REQUIRE_OK(core.Release(kBob, id));
  REQUIRE_OK(core.Release(kAlice, id));
  CHECK(core.Contains(id));
  REQUIRE_OK(core.Release(kBob, id));
  CHECK_FALSE(core.Contains(id));
  CHECK(core.Stats().bytes_used == 0);
}

TEST_CASE("StoreCore never evicts a referenced object and says why it is full",
          "[store_core]") {
  TestStore store(4 * kUnit);
  StoreCore& core = store.core;
  std::vector<ObjectId> ids;
  for (int i = 0; i < 4; ++i) {
    ids.push_back(store.Put(i, kUnit, /*primary=*/false));
    REQUIRE_OK(core.Get(kBob, ids.back()));
  }

  absl::StatusOr<ObjectLocation> full = core.Create(kAlice, ObjectId::FromRandom(), 100, 0, false);
  REQUIRE_CODE(full, kResourceExhausted);
  const std::string message(full.status().message());
  INFO(message);
  CHECK(message.rfind("ObjectStoreFull:", 0) == 0);
  CHECK(message.find("100 bytes") != std::string::npos);       // requested
  CHECK(message.find("capacity 256") != std::string::npos);
  CHECK(message.find("256 in use") != std::string::npos);
  CHECK(message.find("256 pinned by references") != std::string::npos);
  CHECK(core.Stats().num_evicted == 0);
  for (const ObjectId& id : ids) CHECK(core.Contains(id));

  // Larger than the whole store: fails at once, whatever is evictable.
  REQUIRE_OK(core.Release(kBob, ids[0]));
  absl::StatusOr<ObjectLocation> huge = core.Create(kAlice, ObjectId::FromRandom(), 1000, 0, true);
  REQUIRE_CODE(huge, kResourceExhausted);
  CHECK(huge.status().message().find("ObjectStoreFull: cannot allocate 1000 bytes") == 0);
  CHECK(core.Contains(ids[0]));
  // Two units cannot be found even by evicting it: fails without evicting anything.
  CHECK_CODE(core.Create(kAlice, ObjectId::FromRandom(), 2 * kUnit, 0, true), kResourceExhausted);
  CHECK(core.Contains(ids[0]));
  CHECK(core.Stats().num_evicted == 0);

  // One released copy is enough room for a one-unit object.
  REQUIRE_OK(core.Create(kAlice, ObjectId::FromRandom(), kUnit, 0, true));
  CHECK_FALSE(core.Contains(ids[0]));
  CHECK(core.Stats().num_evicted == 1);
}

TEST_CASE("StoreCore evicts unreferenced secondaries in LRU order", "[store_core]") {
  TestStore store(4 * kUnit);
  StoreCore& core = store.core;
  std::vector<ObjectId> s;
  for (int i = 0; i < 4; ++i) s.push_back(store.Put(i, kUnit, /*primary=*/false));
  REQUIRE_OK(store.Read(s[0]));  // s[0] becomes the most recently used

  store.Put(10, kUnit, false);
  CHECK(core.Contains(s[0]));
  CHECK_FALSE(core.Contains(s[1]));
  CHECK(core.Contains(s[2]));

  store.Put(11, 2 * kUnit, false);  // two more: s[2], then s[3]
  CHECK(core.Contains(s[0]));
  CHECK_FALSE(core.Contains(s[2]));
  CHECK_FALSE(core.Contains(s[3]));
  CHECK(core.Stats().num_evicted == 3);
  CHECK(store.Read(s[0]).value() == Pattern(0, kUnit));
}

TEST_CASE("StoreCore evicts secondaries before spilling primaries", "[store_core]") {
  FakeSpiller spiller;
  TestStore store(4 * kUnit, 0, &spiller);
  const ObjectId primary = store.Put(1, 2 * kUnit, true);   // older
  const ObjectId secondary = store.Put(2, 2 * kUnit, false);
  store.Put(3, kUnit);
  CHECK_FALSE(store.core.Contains(secondary));
  CHECK(store.Info(primary)->state == ObjectState::kSealed);
  CHECK(spiller.batches.empty());
}

TEST_CASE("StoreCore spills primaries in LRU order, in batches", "[store_core]") {
  FakeSpiller spiller;

  SECTION("one object per batch when min_spill_batch is 0") {
    TestStore store(4 * kUnit, 0, &spiller);
    std::vector<ObjectId> p;
    for (int i = 0; i < 4; ++i) p.push_back(store.Put(i, kUnit));
    REQUIRE_OK(store.Read(p[0]));  // most recently used now

    store.Put(10, kUnit);
    store.Put(11, kUnit);
    REQUIRE(spiller.batches.size() == 2);
    CHECK(spiller.batches[0] == std::vector<ObjectId>{p[1]});
    CHECK(spiller.batches[1] == std::vector<ObjectId>{p[2]});
    CHECK(store.Info(p[0])->state == ObjectState::kSealed);
    CHECK(store.Info(p[1])->state == ObjectState::kSpilled);
    CHECK(store.Info(p[2])->state == ObjectState::kSpilled);
    StoreStats stats = store.core.Stats();
    CHECK(stats.num_spilled == 2);
    CHECK(stats.bytes_spilled == 2 * kUnit);
    CHECK(stats.num_objects == 6);
  }
  SECTION("a batch covers min_spill_batch") {
    TestStore store(8 * kUnit, 3 * kUnit, &spiller);
    std::vector<ObjectId> p;
    for (int i = 0; i < 8; ++i) p.push_back(store.Put(i, kUnit));
    store.Put(10, kUnit);
    store.Put(11, kUnit);
    store.Put(12, kUnit);
    REQUIRE(spiller.batches.size() == 1);
    CHECK(spiller.batches[0] == std::vector<ObjectId>{p[0], p[1], p[2]});
    store.Put(13, kUnit);
    REQUIRE(spiller.batches.size() == 2);
    CHECK(spiller.batches[1] == std::vector<ObjectId>{p[3], p[4], p[5]});
  }
  SECTION("a batch covers the bytes the create needs") {
    TestStore store(8 * kUnit, kUnit, &spiller);
    std::vector<ObjectId> p;
    for (int i = 0; i < 8; ++i) p.push_back(store.Put(i, kUnit));
    store.Put(10, 3 * kUnit + 1);  // 4 units
    REQUIRE(spiller.batches.size() == 1);
    CHECK(spiller.batches[0] == std::vector<ObjectId>{p[0], p[1], p[2], p[3]});
  }
  SECTION("references keep a primary in memory") {
    TestStore store(2 * kUnit, 0, &spiller);
    const ObjectId held = store.Put(1, kUnit);
    const ObjectId free = store.Put(2, kUnit);
    REQUIRE_OK(store.core.Get(kBob, held));
    store.Put(3, kUnit);
    CHECK(store.Info(held)->state == ObjectState::kSealed);
    CHECK(store.Info(free)->state == ObjectState::kSpilled);
  }
}

TEST_CASE("StoreCore restores a spilled object on get, byte for byte", "[store_core]") {
  FakeSpiller spiller;
  TestStore store(2 * kUnit, 0, &spiller);
  StoreCore& core = store.core;
  const ObjectId id = *store.TryPut(7, 100, true, /*metadata_size=*/20);
  const ObjectId other = store.Put(8, kUnit);
  store.Put(9, kUnit);  // spills `id`
  REQUIRE(store.Info(id)->state == ObjectState::kSpilled);
  CHECK(core.Contains(id));
  CHECK(core.Stats().bytes_spilled == 120);
  REQUIRE(spiller.stored.size() == 1);

  // Restoring needs two units: `other` (LRU) and the newest both get spilled.
  absl::StatusOr<std::vector<uint8_t>> bytes = store.Read(id);
  REQUIRE_OK(bytes);
  CHECK(*bytes == Pattern(7, 120));
  CHECK(spiller.restores == 1);
  CHECK(store.Info(id)->state == ObjectState::kSealed);
  CHECK(store.Info(other)->state == ObjectState::kSpilled);
  StoreStats stats = core.Stats();
  CHECK(stats.num_restored == 1);
  CHECK(stats.num_spilled == 2);
  CHECK(stats.bytes_spilled == 2 * kUnit);
  CHECK(spiller.stored.size() == 2);  // the restored copy's handle was dropped
  CHECK(store.Read(other).value() == Pattern(8, kUnit));
}

TEST_CASE("StoreCore restore fails cleanly when everything is referenced", "[store_core]") {
  FakeSpiller spiller;
  TestStore store(kUnit, 0, &spiller);
  StoreCore& core = store.core;
  const ObjectId spilled = store.Put(1, kUnit);
  const ObjectId held = ObjectId::FromRandom();
  REQUIRE_OK(core.Create(kAlice, held, kUnit, 0, true));  // spills `spilled`, stays referenced
  REQUIRE(store.Info(spilled)->state == ObjectState::kSpilled);

  CHECK_CODE(core.Get(kBob, spilled), kResourceExhausted);
  CHECK(store.Info(spilled)->state == ObjectState::kSpilled);
  CHECK(store.Info(spilled)->ref_count == 0);

  REQUIRE_OK(core.Seal(kAlice, held));
  REQUIRE_OK(core.Release(kAlice, held));
  CHECK(store.Read(spilled).value() == Pattern(1, kUnit));
  CHECK(store.Info(held)->state == ObjectState::kSpilled);
}

TEST_CASE("StoreCore delete of a spilled object drops its spilled copy", "[store_core]") {
  FakeSpiller spiller;
  TestStore store(kUnit, 0, &spiller);
  const ObjectId id = store.Put(1, kUnit);
  store.Put(2, kUnit);
  REQUIRE(spiller.stored.size() == 1);
  const std::string handle = spiller.stored.begin()->first;

  REQUIRE_OK(store.core.Delete(id));
  CHECK(spiller.stored.empty());
  CHECK(spiller.deleted == std::vector<std::string>{handle});
  CHECK_FALSE(store.core.Contains(id));
  StoreStats stats = store.core.Stats();
  CHECK(stats.num_spilled == 0);
  CHECK(stats.bytes_spilled == 0);
  CHECK(stats.num_objects == 1);
}

TEST_CASE("StoreCore keeps every object when spilling fails", "[store_core]") {
  FakeSpiller spiller;
  TestStore store(4 * kUnit, 0, &spiller);
  std::vector<ObjectId> p;
  for (int i = 0; i < 4; ++i) p.push_back(store.Put(i, kUnit));
  spiller.failure = absl::ResourceExhaustedError("disk full in /spill");

  absl::StatusOr<ObjectId> put = store.TryPut(10, kUnit);
  REQUIRE_CODE(put, kResourceExhausted);
  const std::string message(put.status().message());
  INFO(message);
  CHECK(message.rfind("ObjectStoreFull:", 0) == 0);
  CHECK(message.find("disk full in /spill") != std::string::npos);
  StoreStats stats = store.core.Stats();
  CHECK(stats.num_spilled == 0);
  CHECK(stats.num_objects == 4);
  for (int i = 0; i < 4; ++i) CHECK(store.Read(p[i]).value() == Pattern(i, kUnit));

  spiller.failure = absl::OkStatus();
  REQUIRE_OK(store.TryPut(10, kUnit));
  for (int i = 0; i < 4; ++i) CHECK(store.Read(p[i]).value() == Pattern(i, kUnit));
}

TEST_CASE("StoreCore without a spiller keeps primaries and says so", "[store_core]") {
  TestStore store(2 * kUnit);
  const ObjectId p = store.Put(1, 2 * kUnit, true);
  absl::StatusOr<ObjectId> put = store.TryPut(2, kUnit);
  REQUIRE_CODE(put, kResourceExhausted);
  CHECK(put.status().message().find("cannot be spilled") != std::string::npos);
  CHECK(store.Read(p).value() == Pattern(1, 2 * kUnit));
}

TEST_CASE("StoreCore DisconnectClient releases references and aborts creates",
          "[store_core]") {
  TestStore store(8 * kUnit);
  StoreCore& core = store.core;
  const ObjectId unsealed = ObjectId::FromRandom();
  REQUIRE_OK(core.Create(kAlice, unsealed, kUnit, 0, true));
  const ObjectId shared = store.Put(1, kUnit);
  REQUIRE_OK(core.Get(kAlice, shared));
  REQUIRE_OK(core.Get(kAlice, shared));
  REQUIRE_OK(core.Get(kBob, shared));
  const ObjectId doomed = store.Put(2, kUnit);
  REQUIRE_OK(core.Get(kAlice, doomed));
  REQUIRE_OK(core.Delete(doomed));
  const ObjectId bobs = ObjectId::FromRandom();
  REQUIRE_OK(core.Create(kBob, bobs, kUnit, 0, true));
  // Alice released her reference before sealing: the create is still hers to abort.
  const ObjectId released_early = ObjectId::FromRandom();
  REQUIRE_OK(core.Create(kAlice, released_early, kUnit, 0, true));
  REQUIRE_OK(core.Release(kAlice, released_early));

  core.DisconnectClient(kAlice);
  CHECK_CODE(core.Seal(kAlice, unsealed), kNotFound);
  CHECK_CODE(core.Seal(kAlice, released_early), kNotFound);
  CHECK_FALSE(core.Contains(doomed));
  CHECK(store.Info(shared)->ref_count == 1);  // Bob's
  CHECK(store.Info(bobs)->ref_count == 1);
  CHECK(core.Stats().bytes_used == 2 * kUnit);
  CHECK_CODE(core.Release(kAlice, shared), kFailedPrecondition);

  core.DisconnectClient(kBob);
  CHECK(store.Info(shared)->ref_count == 0);
  CHECK_FALSE(store.Info(bobs).has_value());
  core.DisconnectClient(kBob);  // twice is harmless
  // Nothing is referenced any more, so a delete takes effect at once.
  REQUIRE_OK(core.Delete(shared));
  CHECK(core.Stats().bytes_used == 0);
  CHECK(core.List().empty());
}

TEST_CASE("StoreCore seal without references makes the object evictable", "[store_core]") {
  TestStore store(2 * kUnit);
  StoreCore& core = store.core;
  const ObjectId id = ObjectId::FromRandom();
  REQUIRE_OK(core.Create(kAlice, id, kUnit, 0, /*primary=*/false));
  REQUIRE_OK(core.Release(kAlice, id));
  CHECK_CODE(store.TryPut(1, 2 * kUnit), kResourceExhausted);  // unsealed: not evictable
  REQUIRE_OK(core.Seal(kAlice, id));
  CHECK(core.Contains(id));
  REQUIRE_OK(store.TryPut(1, 2 * kUnit));
  CHECK_FALSE(core.Contains(id));
}

// Puts far more than fits, all primary, then reads every object back.
void FillPastCapacityAndReadBack(Spiller* spiller) {
  constexpr uint64_t kCapacity = 64 << 10;
  TestStore store(kCapacity, 8 << 10, spiller);
  std::mt19937_64 rng(7);
  std::vector<std::pair<ObjectId, uint64_t>> objects;  // id, size
  uint64_t total = 0;
  for (uint64_t seed = 0; total < 20 * kCapacity; ++seed) {
    const uint64_t size = rng() % 6000;
    objects.emplace_back(store.Put(seed, size), size);
    total += size;
  }
  CHECK(store.core.Stats().num_spilled > 0);

  for (int pass = 0; pass < 2; ++pass) {
    for (uint64_t seed = 0; seed < objects.size(); ++seed) {
      absl::StatusOr<std::vector<uint8_t>> bytes = store.Read(objects[seed].first);
      REQUIRE_OK(bytes);
      REQUIRE(*bytes == Pattern(seed, objects[seed].second));
    }
  }
  StoreStats stats = store.core.Stats();
  CHECK(stats.num_objects == objects.size());
  CHECK(stats.num_restored > objects.size());
  CHECK(stats.bytes_used <= kCapacity);

  for (const auto& [id, size] : objects) REQUIRE_OK(store.core.Delete(id));
  stats = store.core.Stats();
  CHECK(stats.num_objects == 0);
  CHECK(stats.bytes_used == 0);
  CHECK(stats.bytes_spilled == 0);
  CHECK(stats.num_spilled == 0);
}

TEST_CASE("StoreCore loses nothing when filled far past capacity", "[store_core]") {
  SECTION("fake spiller") {
    FakeSpiller spiller;
    FillPastCapacityAndReadBack(&spiller);
    CHECK(spiller.stored.empty());
    CHECK(spiller.batches.size() < spiller.deleted.size());  // batched, not one by one
  }
  SECTION("file spiller") {
    TempDir dir;
    absl::StatusOr<std::unique_ptr<FileSpiller>> spiller = FileSpiller::Create({dir.path});
    REQUIRE_OK(spiller);
    FillPastCapacityAndReadBack(spiller->get());
    CHECK((*spiller)->num_files() == 0);
    CHECK(std::filesystem::is_empty(dir.path));
  }
}

TEST_CASE("StoreCore with a full spill disk fails the create and keeps every object",
          "[store_core]") {
  TempDir dir;
  absl::StatusOr<std::unique_ptr<FileSpiller>> spiller =
      FileSpiller::Create({.dir = dir.path, .max_bytes = 8 * kUnit});
  REQUIRE_OK(spiller);
  TestStore store(8 * kUnit, 0, spiller->get());
  std::vector<ObjectId> ids;
  uint64_t seed = 0;
  absl::StatusOr<ObjectId> put;
  // Fill memory and the disk until a put no longer fits anywhere.
  while ((put = store.TryPut(seed, kUnit)).ok()) {
    ids.push_back(*put);
    ++seed;
    REQUIRE(seed < 100);
  }
  REQUIRE_CODE(put, kResourceExhausted);
  const std::string message(put.status().message());
  INFO(message);
  CHECK(message.rfind("ObjectStoreFull:", 0) == 0);
  CHECK(message.find(dir.path) != std::string::npos);
  REQUIRE(ids.size() == 16);  // 8 in memory, 8 on disk
  CHECK(store.core.Stats().num_spilled == 8);

  for (uint64_t i = 8; i < 16; ++i) CHECK(store.Read(ids[i]).value() == Pattern(i, kUnit));
  // A restore needs room in memory, and making room needs the disk: a clean error, no loss.
  CHECK_CODE(store.core.Get(kBob, ids[0]), kResourceExhausted);
  CHECK(store.Info(ids[0])->state == ObjectState::kSpilled);

  // Once there is room again, every object comes back.
  REQUIRE_OK(store.core.Delete(ids[15]));
  for (uint64_t i = 0; i < 15; ++i) CHECK(store.Read(ids[i]).value() == Pattern(i, kUnit));
  CHECK(store.core.Stats().num_objects == 15);
}

}  // namespace
}  // namespace shoal
