// Client of a node's object store, linked into every worker, driver and the raylet's object
// manager.
//
// Connects to the store's Unix domain socket, receives the shared-memory arena's file
// descriptor once (SCM_RIGHTS) and maps it: a Get answers pointers into shared memory, not
// copies. The store counts this client's references; closing the connection (or the process
// dying) releases them all.
// Threading: safe to call from any thread. Calls share the one connection and each waits for
// its own reply, so a Get that waits does not hold up other threads' calls.
// Errors: as StoreCore's (NotFound, AlreadyExists, ResourceExhausted "ObjectStoreFull...", ...)
// plus Unavailable when the store's socket is gone.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "src/common/ids.h"

namespace shoal {

// A new object's writable memory. Write data (and metadata), then Seal (or Abort).
struct MutableObject {
  ObjectId id;
  uint8_t* data = nullptr;
  uint64_t data_size = 0;
  uint8_t* metadata = nullptr;  // right after data
  uint64_t metadata_size = 0;
};

// A sealed object's read-only memory, valid until this client Releases it.
struct ObjectView {
  ObjectId id;
  const uint8_t* data = nullptr;
  uint64_t data_size = 0;
  const uint8_t* metadata = nullptr;
  uint64_t metadata_size = 0;
};

struct ObjectStoreStats {
  uint64_t capacity = 0, bytes_used = 0, num_objects = 0, bytes_spilled = 0, num_spilled = 0,
           num_evicted = 0, num_restored = 0;
};

class ObjectStoreClient {
 public:
  // Connects to the store listening at `socket_path` and maps its arena.
  static absl::StatusOr<std::unique_ptr<ObjectStoreClient>> Connect(const std::string& socket_path);
  ~ObjectStoreClient();
  ObjectStoreClient(const ObjectStoreClient&) = delete;
  ObjectStoreClient& operator=(const ObjectStoreClient&) = delete;

  // `primary` = false marks a secondary copy (pulled from another node), which the store may
  // evict under memory pressure once unreferenced.
  absl::StatusOr<MutableObject> Create(const ObjectId& id, uint64_t data_size, uint64_t metadata_size,
                                       bool primary = true);
  absl::Status Seal(const ObjectId& id);
  absl::Status Abort(const ObjectId& id);
  // Create + copy + Seal, for convenience (keeps the reference: Release when done). Copies of
  // many MiB use several threads.
  absl::Status Put(const ObjectId& id, const void* data, uint64_t size, const void* metadata = nullptr,
                   uint64_t metadata_size = 0);
  // As Put, for data made of several pieces laid end to end (a gather write, no metadata).
  absl::Status PutParts(const ObjectId& id, const std::vector<std::string_view>& parts);
  // Waits up to `timeout` for each id to be sealed (a negative timeout waits forever, zero
  // does not wait). Answers one entry per id, in order: the view, or NotFound for ids that
  // were not sealed in time. Each returned view holds a reference until Release.
  absl::StatusOr<std::vector<absl::StatusOr<ObjectView>>> Get(const std::vector<ObjectId>& ids,
                                                              absl::Duration timeout);
  absl::Status Release(const ObjectId& id);
  absl::Status Delete(const ObjectId& id);
  absl::StatusOr<bool> Contains(const ObjectId& id);
  absl::StatusOr<ObjectStoreStats> Stats();

  // The mapped arena, for checks that a view points into shared memory.
  const uint8_t* arena_base() const { return base_; }
  uint64_t arena_size() const { return size_; }

 private:
  class Connection;  // the socket and the calls waiting for replies (client.cc)
  ObjectStoreClient(std::unique_ptr<Connection> connection, uint8_t* base, uint64_t size);
  // Where a location the store answered lies in the mapping; Internal if outside it.
  absl::Status CheckInArena(const ObjectId& id, uint64_t offset, uint64_t data_size,
                            uint64_t metadata_size) const;

  std::unique_ptr<Connection> connection_;
  uint8_t* const base_;  // the mapped arena
  const uint64_t size_;
};

}  // namespace shoal
