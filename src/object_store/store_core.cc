#include "src/object_store/store_core.h"

#include <algorithm>
#include <limits>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace shoal {

namespace {
constexpr uint64_t kAlignment = 64;

// What the allocator takes for `size` bytes.
uint64_t BlockBytes(uint64_t size) {
  return size == 0 ? kAlignment : (size + kAlignment - 1) / kAlignment * kAlignment;
}
}  // namespace

struct StoreCore::Entry {
  ObjectId id;
  ObjectLocation loc;  // loc.offset is meaningless while spilled
  ObjectState state = ObjectState::kCreated;
  bool primary = true;
  StoreClientId creator = 0;
  absl::flat_hash_map<StoreClientId, int64_t> refs;  // client -> references it holds
  int64_t ref_count = 0;                              // sum over refs
  bool delete_pending = false;                        // Delete came while referenced
  bool in_lru = false;
  LruList::iterator lru_it;
  std::string spill_handle;  // while kSpilled

  uint64_t size() const { return loc.data_size + loc.metadata_size; }
  // Whether `client` must be told apart in client_objects_: it references or creates this.
  bool Involves(StoreClientId client) const {
    return refs.contains(client) || (state == ObjectState::kCreated && creator == client);
  }
};

StoreCore::StoreCore(uint8_t* base, StoreCoreOptions options, Spiller* spiller)
    : base_(base), options_(options), spiller_(spiller), allocator_(options.capacity, kAlignment) {}

StoreCore::~StoreCore() = default;

absl::StatusOr<ObjectLocation> StoreCore::Create(StoreClientId client, const ObjectId& id,
                                                 uint64_t data_size, uint64_t metadata_size,
                                                 bool primary) {
  if (data_size > std::numeric_limits<uint64_t>::max() - metadata_size) {
    return absl::InvalidArgumentError(absl::StrCat("object ", id.Hex(), ": data size ", data_size,
                                                   " plus metadata size ", metadata_size,
                                                   " overflows"));
  }
  if (objects_.contains(id)) {
    return absl::AlreadyExistsError(absl::StrCat("object ", id.Hex(), " already exists"));
  }
  absl::StatusOr<uint64_t> offset = AllocateWithPressure(data_size + metadata_size, nullptr);
  if (!offset.ok()) return offset.status();

  auto entry = std::make_unique<Entry>();
  Entry& e = *entry;
  e.id = id;
  e.loc = {*offset, data_size, metadata_size};
  e.primary = primary;
  e.creator = client;
  objects_.emplace(id, std::move(entry));
  AddReference(e, client);
  return e.loc;
}

absl::Status StoreCore::Seal(StoreClientId client, const ObjectId& id) {
  auto it = objects_.find(id);
  if (it == objects_.end()) {
    return absl::NotFoundError(absl::StrCat("seal of unknown object ", id.Hex()));
  }
  Entry& e = *it->second;
  if (e.state != ObjectState::kCreated) {
    return absl::FailedPreconditionError(absl::StrCat("object ", id.Hex(), " is already sealed"));
  }
  if (e.creator != client) {
    return absl::FailedPreconditionError(
        absl::StrCat("object ", id.Hex(), " can only be sealed by the client that created it"));
  }
  e.state = ObjectState::kSealed;
  if (!e.Involves(client)) Untrack(client, id);
  if (e.ref_count == 0) OnMaybeUnreferenced(e);
  return absl::OkStatus();
}

absl::Status StoreCore::Abort(StoreClientId client, const ObjectId& id) {
  auto it = objects_.find(id);
  if (it == objects_.end()) {
    return absl::NotFoundError(absl::StrCat("abort of unknown object ", id.Hex()));
  }
  const Entry& e = *it->second;
  if (e.state != ObjectState::kCreated) {
    return absl::FailedPreconditionError(
        absl::StrCat("object ", id.Hex(), " is sealed and cannot be aborted"));
  }
  if (e.creator != client) {
    return absl::FailedPreconditionError(
        absl::StrCat("object ", id.Hex(), " can only be aborted by the client that created it"));
  }
  Erase(id);
  return absl::OkStatus();
}

absl::StatusOr<ObjectLocation> StoreCore::Get(StoreClientId client, const ObjectId& id) {
  auto it = objects_.find(id);
  if (it == objects_.end() || it->second->state == ObjectState::kCreated) {
    return absl::UnavailableError(absl::StrCat("object ", id.Hex(), " is not sealed here yet"));
  }
  Entry& e = *it->second;
  if (e.state == ObjectState::kSpilled) {
    // Making room may evict or spill other objects, never this one (it is not in memory).
    absl::StatusOr<uint64_t> offset = AllocateWithPressure(e.size(), &id);
    if (!offset.ok()) return offset.status();
    absl::Status restored = spiller_->Restore(e.spill_handle, base_ + *offset, e.size());
    if (!restored.ok()) {
      allocator_.Free(*offset).IgnoreError();  // just allocated, cannot fail
      return absl::Status(restored.code(), absl::StrCat("restoring spilled object ", id.Hex(),
                                                        ": ", restored.message()));
    }
    spiller_->Delete(e.spill_handle);
    e.spill_handle.clear();
    e.loc.offset = *offset;
    e.state = ObjectState::kSealed;
    counters_.bytes_spilled -= e.size();
    counters_.num_spilled--;
    counters_.num_restored++;
  }
  AddReference(e, client);
  return e.loc;
}

absl::Status StoreCore::Release(StoreClientId client, const ObjectId& id) {
  auto it = objects_.find(id);
  if (it == objects_.end()) {
    return absl::NotFoundError(absl::StrCat("release of unknown object ", id.Hex()));
  }
  Entry& e = *it->second;
  auto ref = e.refs.find(client);
  if (ref == e.refs.end()) {
    return absl::FailedPreconditionError(
        absl::StrCat("client holds no reference to object ", id.Hex()));
  }
  if (--ref->second == 0) e.refs.erase(ref);
  e.ref_count--;
  if (!e.Involves(client)) Untrack(client, id);
  if (e.ref_count == 0) OnMaybeUnreferenced(e);
  return absl::OkStatus();
}

absl::Status StoreCore::Delete(const ObjectId& id) {
  auto it = objects_.find(id);
  if (it == objects_.end()) {
    return absl::NotFoundError(absl::StrCat("delete of unknown object ", id.Hex()));
  }
  if (it->second->ref_count > 0) {
    it->second->delete_pending = true;
  } else {
    Erase(id);
  }
  return absl::OkStatus();
}

bool StoreCore::Contains(const ObjectId& id) const {
  auto it = objects_.find(id);
  return it != objects_.end() && it->second->state != ObjectState::kCreated;
}

void StoreCore::DisconnectClient(StoreClientId client) {
  auto node = client_objects_.extract(client);
  if (node.empty()) return;
  for (const ObjectId& id : node.mapped()) {
    Entry& e = *objects_.at(id);
    auto ref = e.refs.find(client);
    if (ref != e.refs.end()) {
      e.ref_count -= ref->second;
      e.refs.erase(ref);
    }
    if (e.state == ObjectState::kCreated && e.creator == client) {
      Erase(id);
    } else if (e.ref_count == 0) {
      OnMaybeUnreferenced(e);
    }
  }
}

StoreStats StoreCore::Stats() const {
  StoreStats stats = counters_;
  stats.capacity = options_.capacity;
  stats.bytes_used = allocator_.bytes_allocated();
  stats.num_objects = objects_.size();
  return stats;
}

std::vector<ObjectInfo> StoreCore::List() const {
  std::vector<ObjectInfo> out;
  out.reserve(objects_.size());
  for (const auto& [id, e] : objects_) {
    out.push_back({id, e->state, e->loc.data_size, e->loc.metadata_size, e->primary,
                   e->ref_count});
  }
  return out;
}

absl::StatusOr<uint64_t> StoreCore::AllocateWithPressure(uint64_t size, const ObjectId* keep) {
  if (auto offset = allocator_.Allocate(size)) return *offset;
  if (size > allocator_.capacity()) {
    return StoreFull(size, "the object is larger than the whole store");
  }
  // Give up before evicting anything when even reclaiming every candidate could not make room.
  const uint64_t free_bytes = allocator_.capacity() - allocator_.bytes_allocated();
  const uint64_t reclaimable = lru_secondary_bytes_ + (spiller_ ? lru_primary_bytes_ : 0);
  if (BlockBytes(size) > free_bytes + reclaimable) return StoreFull(size, "");

  if (EvictSecondaries(BlockBytes(size))) {
    if (auto offset = allocator_.Allocate(size)) return *offset;
  }
  while (spiller_ != nullptr && !lru_primary_.empty()) {
    absl::Status spilled = SpillPrimaries(BlockBytes(size), keep);
    if (absl::IsNotFound(spilled)) break;
    if (!spilled.ok()) return StoreFull(size, absl::StrCat("spilling failed: ", spilled.message()));
    if (auto offset = allocator_.Allocate(size)) return *offset;
  }
  return StoreFull(size, "free memory is too fragmented");
}

bool StoreCore::EvictSecondaries(uint64_t size) {
  while (allocator_.largest_free_block() < size && !lru_secondary_.empty()) {
    counters_.num_evicted++;
    Erase(lru_secondary_.front());
  }
  return allocator_.largest_free_block() >= size;
}

absl::Status StoreCore::SpillPrimaries(uint64_t size, const ObjectId* keep) {
  // One batch: LRU first, until it covers what is missing and min_spill_batch.
  const uint64_t free_bytes = allocator_.capacity() - allocator_.bytes_allocated();
  const uint64_t target = std::max(size > free_bytes ? size - free_bytes : 0,
                                   options_.min_spill_batch);
  std::vector<Spiller::Item> items;
  std::vector<Entry*> batch;
  uint64_t covered = 0;
  for (const ObjectId& id : lru_primary_) {
    if (keep != nullptr && id == *keep) continue;
    Entry& e = *objects_.at(id);
    items.push_back({id, base_ + e.loc.offset, e.size()});
    batch.push_back(&e);
    covered += allocator_.BlockSize(e.loc.offset);
    if (covered >= target) break;
  }
  if (batch.empty()) return absl::NotFoundError("no primary copy can be spilled");

  absl::StatusOr<std::vector<std::string>> handles = spiller_->Spill(items);
  if (!handles.ok()) return handles.status();
  if (handles->size() != items.size()) {
    for (const std::string& handle : *handles) spiller_->Delete(handle);
    return absl::InternalError(absl::StrCat("spiller answered ", handles->size(),
                                            " handles for ", items.size(), " objects"));
  }
  for (size_t i = 0; i < batch.size(); ++i) {
    Entry& e = *batch[i];
    LruRemove(e);
    allocator_.Free(e.loc.offset).IgnoreError();  // in memory, so allocated
    e.state = ObjectState::kSpilled;
    e.spill_handle = std::move((*handles)[i]);
    counters_.bytes_spilled += e.size();
    counters_.num_spilled++;
  }
  return absl::OkStatus();
}

absl::Status StoreCore::StoreFull(uint64_t size, const std::string& why) const {
  const uint64_t in_use = allocator_.bytes_allocated();
  // In memory and in neither LRU list: referenced (or, rarely, unsealed and released).
  const uint64_t pinned = in_use - lru_secondary_bytes_ - lru_primary_bytes_;
  std::string message = absl::StrCat(
      "ObjectStoreFull: cannot allocate ", size, " bytes: capacity ", options_.capacity,
      " bytes, ", in_use, " in use, ", pinned, " pinned by references");
  if (spiller_ == nullptr && lru_primary_bytes_ > 0) {
    absl::StrAppend(&message, ", ", lru_primary_bytes_,
                    " in unreferenced primary copies that cannot be spilled (no spill directory)");
  }
  if (!why.empty()) absl::StrAppend(&message, "; ", why);
  return absl::ResourceExhaustedError(message);
}

void StoreCore::AddReference(Entry& e, StoreClientId client) {
  if (e.in_lru) LruRemove(e);
  e.refs[client]++;
  e.ref_count++;
  client_objects_[client].insert(e.id);
}

void StoreCore::OnMaybeUnreferenced(Entry& e) {
  if (e.ref_count > 0) return;
  if (e.delete_pending) {
    Erase(e.id);
  } else if (e.state == ObjectState::kSealed && !e.in_lru) {
    LruPush(e);
  }
}

void StoreCore::Untrack(StoreClientId client, const ObjectId& id) {
  // An emptied set stays until DisconnectClient, so a get/release loop does not reallocate it.
  auto it = client_objects_.find(client);
  if (it != client_objects_.end()) it->second.erase(id);
}

void StoreCore::LruPush(Entry& e) {
  LruList& lru = e.primary ? lru_primary_ : lru_secondary_;
  (e.primary ? lru_primary_bytes_ : lru_secondary_bytes_) += allocator_.BlockSize(e.loc.offset);
  e.lru_it = lru.insert(lru.end(), e.id);
  e.in_lru = true;
}

void StoreCore::LruRemove(Entry& e) {
  if (!e.in_lru) return;
  (e.primary ? lru_primary_ : lru_secondary_).erase(e.lru_it);
  (e.primary ? lru_primary_bytes_ : lru_secondary_bytes_) -= allocator_.BlockSize(e.loc.offset);
  e.in_lru = false;
}

void StoreCore::Erase(const ObjectId& id) {
  auto it = objects_.find(id);
  if (it == objects_.end()) return;
  Entry& e = *it->second;
  if (e.state == ObjectState::kSpilled) {
    spiller_->Delete(e.spill_handle);
    counters_.bytes_spilled -= e.size();
    counters_.num_spilled--;
  } else {
    LruRemove(e);  // before Free: it reads the block size
    allocator_.Free(e.loc.offset).IgnoreError();  // in memory, so allocated
  }
  for (const auto& [client, count] : e.refs) Untrack(client, id);
  Untrack(e.creator, id);  // no-op unless it was still being created
  objects_.erase(it);
}

}  // namespace shoal
