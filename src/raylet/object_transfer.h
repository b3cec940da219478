// How the object manager reads an object from another node: a stream of chunks pulled from a
// holder. The gRPC implementation is the real one; tests give the manager a fake.
// Threading: a stream is used by one thread; a client may open streams from any thread.
#pragma once

#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "shoal/raylet.pb.h"
#include "src/common/ids.h"

namespace shoal {

// One object's chunks, in order, from one holder.
class ObjectChunkStream {
 public:
  virtual ~ObjectChunkStream() = default;

  // The next chunk; false at the end of the stream or when it failed (Finish says which).
  virtual bool Read(rpc::ObjectChunk* chunk) = 0;
  // Tells the holder to stop sending; later Reads answer false.
  virtual void Cancel() = 0;
  // How the stream ended: OK when the holder sent everything. Call once, last.
  virtual absl::Status Finish() = 0;
};

class ObjectTransferClient {
 public:
  virtual ~ObjectTransferClient() = default;

  // Starts pulling `id` from the object manager at `holder` ("host:port"); the whole pull
  // must end within `timeout`.
  virtual std::unique_ptr<ObjectChunkStream> Pull(const std::string& holder, const ObjectId& id,
                                                  absl::Duration timeout) = 0;
};

// Pulls over ObjectManagerService.Pull (one channel per holder, cached).
std::unique_ptr<ObjectTransferClient> MakeGrpcObjectTransferClient();

}  // namespace shoal
