// Moves objects between nodes: serves this node's sealed objects to other raylets in chunks,
// and fetches objects held elsewhere into this node's store as secondary copies.
//
// Bytes in flight are bounded: a pull streams chunks of `chunk_size` under gRPC's flow control
// (at most a window per stream), and at most `max_concurrent_fetches` fetches run at once.
// A fetch whose holder dies mid-stream aborts the partial copy and tries the next holder.
// Chunks from other nodes arrive through an ObjectTransferClient (gRPC in the raylet, a fake in
// tests).
// Threading: gRPC handler threads; the store client serializes its own requests.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "shoal/raylet.grpc.pb.h"
#include "src/common/ids.h"
#include "src/object_store/client.h"
#include "src/raylet/object_transfer.h"

namespace shoal {

struct ObjectManagerOptions {
  uint64_t chunk_size = 4 << 20;
  int max_concurrent_fetches = 4;
  absl::Duration fetch_timeout = absl::Minutes(5);
};

class ObjectManager final : public rpc::ObjectManagerService::Service {
 public:
  // `store` is a client of this node's store and must outlive the manager; `transfer` pulls
  // chunks from other nodes.
  ObjectManager(ObjectStoreClient& store, std::unique_ptr<ObjectTransferClient> transfer,
                ObjectManagerOptions options);

  // Copies `id` from the first holder that can serve it. Answers the holder it came from
  // (empty if the object was already here). Unavailable, naming every holder's error, if none
  // could; the store is left without a partial copy.
  absl::StatusOr<std::string> Fetch(const ObjectId& id, const std::vector<std::string>& holders);

  grpc::Status Pull(grpc::ServerContext* ctx, const rpc::PullRequest* req,
                    grpc::ServerWriter<rpc::ObjectChunk>* writer) override;
  grpc::Status Fetch(grpc::ServerContext* ctx, const rpc::FetchRequest* req, rpc::FetchReply* reply) override;

 private:
  absl::Status FetchFrom(const ObjectId& id, const std::string& holder);

  ObjectStoreClient& store_;
  const std::unique_ptr<ObjectTransferClient> transfer_;
  const ObjectManagerOptions options_;
  absl::Mutex mu_;
  int active_fetches_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace shoal
