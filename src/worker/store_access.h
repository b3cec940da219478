// Reading and writing objects' bytes in the object store: for Get and Put, for a worker's
// store-located arguments and for its large results. A seam: tests fake it.
// Threading: any thread.
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "shoal/raylet.grpc.pb.h"
#include "shoal/worker.pb.h"
#include "src/common/ids.h"
#include "src/object_store/client.h"
#include "src/worker/core_worker.h"

namespace shoal {

class ObjectStoreAccess {
 public:
  virtual ~ObjectStoreAccess() = default;
  // The bytes of the store-located `value`, copied out. NotFound or Unavailable (with the
  // reason) when no copy can be read; DeadlineExceeded when copying it here did not end by
  // `deadline` (the copy may still be there).
  virtual absl::StatusOr<std::string> Read(const rpc::ObjectValue& value, absl::Time deadline) = 0;
  // Stores `bytes` as a primary copy in this node's store; answers the value that locates it.
  // OBJECT_STORE_FULL (ErrorStatus: ResourceExhausted) when it does not fit.
  virtual absl::StatusOr<rpc::ObjectValue> Write(const ObjectId& id, std::string_view bytes) = 0;
  // As Read, without copying where the store allows (see ObjectBuffer in core_worker.h). The
  // default copies through Read.
  virtual absl::StatusOr<ObjectBuffer> ReadBuffer(const rpc::ObjectValue& value, absl::Time deadline);
  // As Write, for bytes in pieces. The default concatenates them and calls Write.
  virtual absl::StatusOr<rpc::ObjectValue> WriteParts(const ObjectId& id, const std::vector<std::string_view>& parts);
  // Makes sure a copy of the store-located `value` is in this node's store, without reading it.
  // DeadlineExceeded when the copy was not done by `deadline` (it goes on: a later call may find
  // it there); other failures as Read. The default has nothing to copy.
  virtual absl::Status Fetch(const rpc::ObjectValue& value, absl::Time deadline);
};

// The real thing: this node's store, and its raylet's object manager for copies held elsewhere.
class NodeStoreAccess : public ObjectStoreAccess {
 public:
  // `raylet_address` and `node` name this node. Buffers answered by ReadBuffer share `store`,
  // so its mapping lives as long as they do.
  NodeStoreAccess(std::shared_ptr<ObjectStoreClient> store, std::string raylet_address, const NodeId& node);

  // A value held on another node is first copied here (ObjectManagerService.Fetch on this
  // node's raylet), then read.
  absl::StatusOr<std::string> Read(const rpc::ObjectValue& value, absl::Time deadline) override;
  // An id that exists already (a retried task wrote it before) counts as written.
  absl::StatusOr<rpc::ObjectValue> Write(const ObjectId& id, std::string_view bytes) override;
  // Store objects come back as views of the shared memory, released when the last copy of the
  // buffer goes.
  absl::StatusOr<ObjectBuffer> ReadBuffer(const rpc::ObjectValue& value, absl::Time deadline) override;
  absl::StatusOr<rpc::ObjectValue> WriteParts(const ObjectId& id, const std::vector<std::string_view>& parts) override;
  // A deadline already passed still starts the copy (the raylet finishes it).
  absl::Status Fetch(const rpc::ObjectValue& value, absl::Time deadline) override;

 private:
  // Waits up to `wait` for the object to be sealed here.
  absl::StatusOr<ObjectBuffer> ReadLocal(const ObjectId& id, absl::Duration wait = absl::ZeroDuration());
  // Makes sure a copy of `value` is in this node's store, then reads it.
  absl::StatusOr<ObjectBuffer> FetchAndRead(const rpc::ObjectValue& value, absl::Time deadline);

  const std::shared_ptr<ObjectStoreClient> store_;
  const std::string raylet_address_;
  const NodeId node_;
  std::unique_ptr<rpc::ObjectManagerService::Stub> object_manager_;
};

}  // namespace shoal
