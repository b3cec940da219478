// How the object manager reads an object from another node: streams of chunks, each covering
// a byte range of the object, pulled from holders. The gRPC implementation is the real one;
// tests give the manager a fake.
// Threading: a stream is used by one thread; a client may open streams from any thread.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "src/common/ids.h"

namespace shoal {

// One chunk as it arrived: where its bytes go and the bytes themselves, in pieces that stay
// valid until the stream's next Read (no copy is made on the way in). A stream that reads
// payloads straight into their destination (ReadPayload) leaves `pieces` empty.
struct ReceivedChunk {
  uint64_t data_size = 0;  // the whole object's sizes; every chunk carries them
  uint64_t metadata_size = 0;
  uint64_t offset = 0;  // into data-then-metadata
  std::vector<absl::string_view> pieces;
  uint64_t size = 0;  // the pieces' total length
};

// The chunks of one byte range of one object, in order, from one holder.
class ObjectChunkStream {
 public:
  virtual ~ObjectChunkStream() = default;

  // The next chunk; false at the end of the stream or when it failed (Finish says which).
  virtual bool Read(ReceivedChunk* chunk) = 0;
  // Puts the payload of the chunk the last Read answered (`chunk.size` bytes) at `dest`: copies
  // its pieces, or, in a stream that reads its payloads from a socket, reads them there. Call
  // it once after every Read that answered true, before the next Read. False when it failed
  // (Finish says why).
  virtual bool ReadPayload(const ReceivedChunk& chunk, uint8_t* dest);
  // Tells the holder to stop sending; later Reads answer false.
  virtual void Cancel() = 0;
  // How the stream ended: OK when the holder sent everything. Call once, last.
  virtual absl::Status Finish() = 0;
};

class ObjectTransferClient {
 public:
  virtual ~ObjectTransferClient() = default;

  // Starts pulling bytes [offset, offset + length) of `id`'s data-then-metadata (`length` 0:
  // to the end) from the object manager at `holder` ("host:port"); the stream must end within
  // `timeout`. `lane` picks one of several connections to the holder, so that streams in
  // parallel do not share one socket.
  virtual std::unique_ptr<ObjectChunkStream> Pull(const std::string& holder, const ObjectId& id,
                                                  uint64_t offset, uint64_t length, int lane,
                                                  absl::Duration timeout) = 0;
};

// Maps [p, p + n) of the shared arena into this process in one call (`write`: backs it with
// memory first) instead of a page fault per 4 KiB page as the bytes are copied: for a fresh
// object or one this process never touched, the faults cost more than the copy itself.
// Best effort (MADV_POPULATE_READ/WRITE need Linux 5.14).
void PopulateRange(const uint8_t* p, uint64_t n, bool write);

// Pulls over ObjectManagerService.Pull, reading each chunk's payload in place from gRPC's
// buffers (object_chunk_codec.h). Channels are cached per (holder, lane).
std::unique_ptr<ObjectTransferClient> MakeGrpcObjectTransferClient();

}  // namespace shoal
