// The wire form of one object chunk (rpc::ObjectChunk), written and read without copying the
// payload through a protobuf message.
//
// A holder sends each chunk as a small header (the sizes, the offset and the payload's length,
// encoded exactly as protobuf encodes rpc::ObjectChunk) followed by the payload bytes taken
// straight from its store. The puller finds the payload among the received buffer's pieces and
// copies it once, into its own store. Both ends speak the protobuf wire format, so a client that
// reads rpc::ObjectChunk messages understands the holder, and the reader accepts any valid
// encoding of the message (fields in any order, unknown fields skipped).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace shoal {

struct ChunkHeader {
  uint64_t data_size = 0;      // the whole object's data and metadata sizes,
  uint64_t metadata_size = 0;  // carried by every chunk
  uint64_t offset = 0;         // where the payload goes in data-then-metadata
};

// The bytes that precede a payload of `payload_size` bytes.
std::string EncodeChunkHeader(const ChunkHeader& header, uint64_t payload_size);

struct DecodedChunk {
  ChunkHeader header;
  // The payload, as views into the pieces given to DecodeChunk (valid as long as they are).
  std::vector<absl::string_view> payload;
  uint64_t payload_size = 0;
};

// Reads one encoded rpc::ObjectChunk laid out across `pieces` in order. DataLoss on a
// malformed message.
absl::StatusOr<DecodedChunk> DecodeChunk(const std::vector<absl::string_view>& pieces);

}  // namespace shoal
