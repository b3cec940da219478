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

namespace shoal {

class ObjectStoreAccess {
 public:
  virtual ~ObjectStoreAccess() = default;
  // The bytes of the store-located `value`, copied out. NotFound or Unavailable (with the
  // reason) when no copy can be read.
  virtual absl::StatusOr<std::string> Read(const rpc::ObjectValue& value) = 0;
  // Stores `bytes` as a primary copy in this node's store; answers the value that locates it.
  // ResourceExhausted ("ObjectStoreFull...") when it does not fit.
  virtual absl::StatusOr<rpc::ObjectValue> Write(const ObjectId& id, std::string_view bytes) = 0;
};

// The real thing: this node's store, and its raylet's object manager for copies held elsewhere.
class NodeStoreAccess : public ObjectStoreAccess {
 public:
  // `store` must outlive this. `raylet_address` and `node` name this node.
  NodeStoreAccess(ObjectStoreClient& store, std::string raylet_address, const NodeId& node);

  // A value held on another node is first copied here (ObjectManagerService.Fetch on this
  // node's raylet), then read.
  absl::StatusOr<std::string> Read(const rpc::ObjectValue& value) override;
  // An id that exists already (a retried task wrote it before) counts as written.
  absl::StatusOr<rpc::ObjectValue> Write(const ObjectId& id, std::string_view bytes) override;

 private:
  absl::StatusOr<std::string> ReadLocal(const ObjectId& id);

  ObjectStoreClient& store_;
  const std::string raylet_address_;
  const NodeId node_;
  std::unique_ptr<rpc::ObjectManagerService::Stub> object_manager_;
};

}  // namespace shoal
