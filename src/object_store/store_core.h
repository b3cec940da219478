// The object table and memory policy of one node's object store.
//
// Objects are immutable: Create reserves room, the creator writes, Seal publishes. Clients hold
// references (Create and each Get add one, Release drops one); an object with references is
// never moved, evicted or spilled. When a Create does not fit, StoreCore makes room, in order:
//   1. evicts unreferenced sealed *secondary* copies (pulled from another node), LRU first;
//   2. spills unreferenced sealed *primary* copies through the Spiller, LRU first, in batches,
//      and frees their memory (a later Get restores them transparently);
//   3. otherwise fails at once with ResourceExhausted ("ObjectStoreFull: ...", naming sizes).
// Logic only: memory is a caller-given base pointer (shared memory in the raylet, a plain
// buffer in tests), and spilling goes through the Spiller seam.
// Threading: one thread (the store server's loop); not synchronized.
// Errors: NotFound (unknown id), AlreadyExists (create of an existing id), FailedPrecondition
// (seal twice, abort of a sealed object, release without a reference), ResourceExhausted
// (does not fit), InvalidArgument (bad sizes). Bad input never aborts the process.
#pragma once

#include <cstdint>
#include <list>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/statusor.h"
#include "src/common/ids.h"
#include "src/object_store/allocator.h"

namespace shoal {

using StoreClientId = uint64_t;

// Where an object's bytes are: data at base+offset, then metadata right after it.
struct ObjectLocation {
  uint64_t offset = 0;
  uint64_t data_size = 0;
  uint64_t metadata_size = 0;
};

// Durable storage for spilled objects.
class Spiller {
 public:
  struct Item {
    ObjectId id;
    const uint8_t* bytes;  // data followed by metadata
    uint64_t size;
  };
  virtual ~Spiller() = default;
  // Writes `items` together (one batch); answers one handle per item, in order.
  // ResourceExhausted when the disk is full; nothing is half-written on error.
  virtual absl::StatusOr<std::vector<std::string>> Spill(const std::vector<Item>& items) = 0;
  // Reads a spilled object (exactly `size` bytes) back into `dest`.
  virtual absl::Status Restore(const std::string& handle, uint8_t* dest, uint64_t size) = 0;
  // Drops a spilled copy that is no longer needed.
  virtual void Delete(const std::string& handle) = 0;
};

struct StoreCoreOptions {
  uint64_t capacity = 0;                  // bytes at base
  uint64_t min_spill_batch = 8 << 20;     // spill at least this much per batch when possible
};

struct StoreStats {
  uint64_t capacity = 0;
  uint64_t bytes_used = 0;         // allocated in memory, objects of every state
  uint64_t num_objects = 0;        // in memory or spilled
  uint64_t bytes_spilled = 0;      // held on disk now
  uint64_t num_spilled = 0;        // objects held on disk now
  uint64_t num_evicted = 0;        // secondary copies dropped, since start
  uint64_t num_restored = 0;       // since start
};

enum class ObjectState { kCreated, kSealed, kSpilled };

struct ObjectInfo {
  ObjectId id;
  ObjectState state;
  uint64_t data_size, metadata_size;
  bool primary;
  int64_t ref_count;
};

class StoreCore {
 public:
  // `spiller` may be null: then nothing is spilled and only secondary copies are evicted.
  StoreCore(uint8_t* base, StoreCoreOptions options, Spiller* spiller);
  ~StoreCore();
  StoreCore(const StoreCore&) = delete;
  StoreCore& operator=(const StoreCore&) = delete;

  // Reserves room for a new object, 64-byte aligned; `client` holds a reference to it.
  absl::StatusOr<ObjectLocation> Create(StoreClientId client, const ObjectId& id, uint64_t data_size,
                                        uint64_t metadata_size, bool primary);
  // Publishes an object its creator has written. Only the creating client may seal.
  absl::Status Seal(StoreClientId client, const ObjectId& id);
  // Drops an unsealed object (the creator gave up). Only the creating client may abort.
  absl::Status Abort(StoreClientId client, const ObjectId& id);
  // For a sealed object, restoring it first if it was spilled: adds a reference for `client`
  // and answers where it is. Unavailable while it is absent or unsealed (the caller may wait
  // for Seal), ResourceExhausted if a restore finds no room.
  absl::StatusOr<ObjectLocation> Get(StoreClientId client, const ObjectId& id);
  // Drops one reference `client` holds.
  absl::Status Release(StoreClientId client, const ObjectId& id);
  // Deletes the object now if nobody references it, else as soon as the last reference goes.
  absl::Status Delete(const ObjectId& id);
  // True for sealed objects, in memory or spilled.
  bool Contains(const ObjectId& id) const;
  // Releases everything `client` held and aborts its unsealed objects.
  void DisconnectClient(StoreClientId client);

  StoreStats Stats() const;
  std::vector<ObjectInfo> List() const;
  uint64_t capacity() const { return options_.capacity; }

 private:
  struct Entry;
  using LruList = std::list<ObjectId>;
  // Allocates `size` bytes, evicting and spilling (never `keep`) until it fits.
  absl::StatusOr<uint64_t> AllocateWithPressure(uint64_t size, const ObjectId* keep);
  // Evicts LRU secondaries until a block of `size` bytes is free; true once it is.
  bool EvictSecondaries(uint64_t size);
  // Spills one batch of LRU primaries (never `keep`); NotFound when there is nothing to spill.
  absl::Status SpillPrimaries(uint64_t size, const ObjectId* keep);
  absl::Status StoreFull(uint64_t size, const std::string& why) const;
  void AddReference(Entry& e, StoreClientId client);
  // Called when `e` may have lost its last reference or been sealed: deletes it if a Delete
  // is pending, else queues a sealed in-memory object for eviction.
  void OnMaybeUnreferenced(Entry& e);
  // Forgets that `client` references or creates `id` (see client_objects_).
  void Untrack(StoreClientId client, const ObjectId& id);
  void LruPush(Entry& e);
  void LruRemove(Entry& e);
  void Erase(const ObjectId& id);

  uint8_t* const base_;
  const StoreCoreOptions options_;
  Spiller* const spiller_;
  Allocator allocator_;
  absl::flat_hash_map<ObjectId, std::unique_ptr<Entry>> objects_;
  // Unreferenced sealed in-memory objects, least recently used first, with their block bytes.
  LruList lru_secondary_, lru_primary_;
  uint64_t lru_secondary_bytes_ = 0, lru_primary_bytes_ = 0;
  // The objects each client references or is creating (for DisconnectClient).
  absl::flat_hash_map<StoreClientId, absl::flat_hash_set<ObjectId>> client_objects_;
  StoreStats counters_;
};

}  // namespace shoal
