// Wire format between ObjectStoreClient and StoreServer over a SOCK_STREAM Unix socket.
//
// Every message is a frame: a 16-byte header, then a body of `body_size` bytes.
//   header = body_size u32 | type u32 | request_id u64
// Integers are little endian and fixed width; an id is its 28 raw bytes; a status is
//   code u32 | message length u32 | message bytes.
// The client picks request ids; each reply carries its request's id and type, and replies may
// come out of order (a Get waits for objects while later requests are answered).
//   request                                                 reply body (after the status)
//   Connect   (empty)                                       capacity u64, prefaulted u8
//   Create    id, data_size u64, metadata_size u64, primary u8   offset u64, data_size u64,
//                                                                metadata_size u64
//   Seal, Abort, Release, Delete   id                       (nothing)
//   Contains  id                                            found u8
//   Get       timeout_ms i64 (-1: forever), count u32, ids  count u32, then per id: code u32
//                                                           and either offset, data_size,
//                                                           metadata_size (code OK) or a
//                                                           message (length u32, bytes)
//   Stats     (empty)                                       7 × u64, as in StoreStats
// Only the status is sent when it is not OK. The Connect reply carries the arena's file
// descriptor (SCM_RIGHTS) with its first byte. A server that cannot parse a frame answers one
// kError frame (InvalidArgument) and closes the connection.
//
// Everything here is pure: decoding never reads outside the bytes it is given, and malformed,
// truncated, trailing or oversized input answers InvalidArgument.
// Threading: values and free functions, any thread; a FrameBuffer belongs to one reader.
#pragma once

#include <sys/un.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "src/common/ids.h"
#include "src/object_store/store_core.h"

namespace shoal::store_protocol {

inline constexpr size_t kHeaderSize = 16;
inline constexpr uint32_t kMaxBodySize = 1 << 20;
inline constexpr uint32_t kMaxGetIds = 4096;
// Longer status messages are cut to these sizes when encoded (keeps any reply under
// kMaxBodySize: a Get reply of kMaxGetIds entries is at most about 900 KB).
inline constexpr size_t kMaxStatusMessage = 4096;
inline constexpr size_t kMaxEntryMessage = 200;

enum class MessageType : uint32_t {
  kError = 0,  // reply only: the server could not parse a frame and closes the connection
  kConnect = 1,
  kCreate = 2,
  kSeal = 3,
  kAbort = 4,
  kGet = 5,
  kRelease = 6,
  kDelete = 7,
  kContains = 8,
  kStats = 9,
};
const char* MessageTypeName(MessageType type);

struct FrameHeader {
  uint32_t body_size = 0;
  MessageType type = MessageType::kError;
  uint64_t request_id = 0;
};

struct Request {
  MessageType type = MessageType::kConnect;
  uint64_t request_id = 0;
  ObjectId id;                 // Create, Seal, Abort, Release, Delete, Contains
  std::vector<ObjectId> ids;   // Get (at most kMaxGetIds)
  uint64_t data_size = 0;      // Create
  uint64_t metadata_size = 0;  // Create
  bool primary = true;         // Create
  int64_t timeout_ms = 0;      // Get: -1 waits forever, 0 does not wait
};

// One id's answer to a Get: where it is, or why not (NotFound: not sealed in time).
struct GetEntry {
  absl::Status status;
  ObjectLocation location;  // when status is OK
};

struct Reply {
  MessageType type = MessageType::kError;
  uint64_t request_id = 0;
  absl::Status status;
  // The fields below are sent only when status is OK, and only for their request type.
  uint64_t capacity = 0;          // Connect
  bool prefaulted = false;        // Connect
  ObjectLocation location;        // Create
  bool found = false;             // Contains
  std::vector<GetEntry> entries;  // Get, one per requested id, in order
  StoreStats stats;               // Stats
};

// Append one whole frame to `*out`. REQUIRES: a Get request has at most kMaxGetIds ids, a Get
// reply at most kMaxGetIds entries (larger inputs would produce frames peers reject).
void EncodeRequest(const Request& request, std::string* out);
void EncodeReply(const Reply& reply, std::string* out);

// Parses the first kHeaderSize bytes of `bytes` (InvalidArgument if there are fewer, the type
// is unknown or the body is larger than kMaxBodySize).
absl::StatusOr<FrameHeader> DecodeHeader(std::string_view bytes);
// Parse a frame's body, given its already decoded header.
absl::StatusOr<Request> DecodeRequest(const FrameHeader& header, std::string_view body);
absl::StatusOr<Reply> DecodeReply(const FrameHeader& header, std::string_view body);

// Accumulates bytes read from a stream and splits them into frames. Holds at most one frame
// plus one read's worth of bytes, so its size is bounded by kMaxBodySize.
class FrameBuffer {
 public:
  struct Frame {
    FrameHeader header;
    std::string_view body;  // valid until the next call to WritableSpace
  };

  // Room to read into, at least 64 KiB and enough for the frame being assembled. After
  // reading n bytes into it, call Commit(n).
  std::pair<char*, size_t> WritableSpace();
  void Commit(size_t n);
  // Takes the next complete frame off the buffer; nullopt when more bytes are needed.
  // InvalidArgument when the bytes at the front are not a valid header (the stream is then
  // unusable).
  absl::StatusOr<std::optional<Frame>> Next();
  size_t buffered() const { return end_ - begin_; }

 private:
  std::unique_ptr<char[]> data_;
  size_t capacity_ = 0;
  size_t begin_ = 0;  // first unconsumed byte
  size_t end_ = 0;    // one past the last byte read
};

// Socket plumbing shared by the client and the server.
// The address of the Unix socket at `path`; InvalidArgument when empty or too long.
absl::StatusOr<sockaddr_un> UnixSocketAddress(const std::string& path);
// A status with `code` whose message is "`what`: <strerror(err)>".
absl::Status ErrnoStatus(absl::StatusCode code, const std::string& what, int err);

}  // namespace shoal::store_protocol
