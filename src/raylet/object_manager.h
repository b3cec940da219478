// Moves objects between nodes: serves this node's sealed objects to other raylets in chunks,
// and fetches objects held elsewhere into this node's store as secondary copies.
//
// A fetch splits the object into ranges of `range_size` bytes and pulls up to
// `streams_per_fetch` ranges at once, each over its own connection, spreading them over every
// holder given; each chunk's payload is copied once, from the received buffers straight into
// the new object's memory. A holder that fails mid-range is dropped and its range pulled again
// from another; the fetch fails, leaving no partial copy, only when no holder is left.
// On the serving side a chunk's payload goes out straight from the store (no copy into a
// message), the object pinned until gRPC has sent it. Bytes in flight are bounded by gRPC's
// flow control per stream; at most `max_concurrent_fetches` fetches run at once.
// Chunks from other nodes arrive through an ObjectTransferClient (plain sockets where the holder
// serves them, object_socket.h, else gRPC, in the raylet; a fake in tests).
// Threading: Pull runs on gRPC's callback threads, Fetch on the calling thread plus up to
// streams_per_fetch - 1 helper threads of its own; the store client serializes its requests.
#pragma once

#include <atomic>
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
  uint64_t chunk_size = 4 << 20;    // bytes per message
  uint64_t range_size = 64 << 20;   // bytes per stream
  int streams_per_fetch = 2;
  int max_concurrent_fetches = 4;
  absl::Duration fetch_timeout = absl::Minutes(5);
};

class ObjectManager final
    : public rpc::ObjectManagerService::WithRawCallbackMethod_Pull<rpc::ObjectManagerService::Service> {
 public:
  // `store` is a client of this node's store and must outlive the manager and every Pull it
  // serves; `transfer` pulls chunks from other nodes.
  ObjectManager(ObjectStoreClient& store, std::unique_ptr<ObjectTransferClient> transfer,
                ObjectManagerOptions options);

  // Copies `id` from the holders that can serve it. Answers the holder the first bytes came
  // from (empty if the object was already here). Unavailable, naming every holder's error, if
  // the copy could not be completed; the store is left without a partial copy.
  absl::StatusOr<std::string> Fetch(const ObjectId& id, const std::vector<std::string>& holders);

  grpc::ServerWriteReactor<grpc::ByteBuffer>* Pull(grpc::CallbackServerContext* ctx,
                                                   const grpc::ByteBuffer* request) override;
  grpc::Status Fetch(grpc::ServerContext* ctx, const rpc::FetchRequest* req, rpc::FetchReply* reply) override;
  grpc::Status TransferPort(grpc::ServerContext* ctx, const rpc::TransferPortRequest* req,
                            rpc::TransferPortReply* reply) override;
  // Where this node serves pulls over a plain socket (object_socket.h); 0 (the default): none.
  void set_socket_port(int port) { socket_port_.store(port); }

 private:
  struct FetchState;
  absl::Status FetchAll(const ObjectId& id, const std::vector<std::string>& holders, std::string* from);
  // Pulls ranges from the state's queue until it is empty or the fetch has failed.
  void PullRanges(FetchState& state, int lane);
  // Pulls one range from one holder into the object; the first stream of a fetch also creates
  // the object from the sizes its first chunk carries.
  absl::Status PullRange(FetchState& state, size_t holder, uint64_t begin, uint64_t end, int lane);

  ObjectStoreClient& store_;
  const std::unique_ptr<ObjectTransferClient> transfer_;
  const ObjectManagerOptions options_;
  absl::Mutex mu_;
  int active_fetches_ ABSL_GUARDED_BY(mu_) = 0;
  std::atomic<int> socket_port_{0};
};

}  // namespace shoal
