#include "src/raylet/object_chunk_codec.h"

#include <algorithm>

#include "absl/strings/str_cat.h"

namespace shoal {
namespace {

// rpc::ObjectChunk's field numbers (proto/shoal/raylet.proto).
constexpr int kDataSize = 1;
constexpr int kMetadataSize = 2;
constexpr int kOffset = 3;
constexpr int kBytes = 4;

constexpr int kVarint = 0;
constexpr int kFixed64 = 1;
constexpr int kLengthDelimited = 2;
constexpr int kFixed32 = 5;

void PutVarint(std::string* out, uint64_t v) {
  while (v >= 0x80) {
    out->push_back(static_cast<char>((v & 0x7f) | 0x80));
    v >>= 7;
  }
  out->push_back(static_cast<char>(v));
}

void PutTag(std::string* out, int field, int wire_type) {
  PutVarint(out, (static_cast<uint64_t>(field) << 3) | wire_type);
}

// Reads bytes in order across the pieces.
class PieceReader {
 public:
  explicit PieceReader(const std::vector<absl::string_view>& pieces) : pieces_(pieces) { SkipEmpty(); }

  bool AtEnd() const { return index_ == pieces_.size(); }

  bool Byte(uint8_t* b) {
    if (AtEnd()) return false;
    *b = static_cast<uint8_t>(pieces_[index_][pos_]);
    Advance(1);
    return true;
  }

  bool Varint(uint64_t* v) {
    *v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      uint8_t b;
      if (!Byte(&b)) return false;
      *v |= static_cast<uint64_t>(b & 0x7f) << shift;
      if ((b & 0x80) == 0) return true;
    }
    return false;  // more than ten bytes
  }

  // Takes the next `n` bytes as views (appended to `out`); false if fewer remain.
  bool Take(uint64_t n, std::vector<absl::string_view>* out) {
    while (n > 0) {
      if (AtEnd()) return false;
      const uint64_t here = std::min<uint64_t>(n, pieces_[index_].size() - pos_);
      if (out != nullptr) out->push_back(pieces_[index_].substr(pos_, here));
      Advance(here);
      n -= here;
    }
    return true;
  }

 private:
  void Advance(uint64_t n) {
    pos_ += n;
    if (pos_ == pieces_[index_].size()) {
      ++index_;
      pos_ = 0;
      SkipEmpty();
    }
  }
  void SkipEmpty() {
    while (index_ < pieces_.size() && pieces_[index_].empty()) ++index_;
  }

  const std::vector<absl::string_view>& pieces_;
  size_t index_ = 0;
  size_t pos_ = 0;
};

}  // namespace

std::string EncodeChunkHeader(const ChunkHeader& header, uint64_t payload_size) {
  std::string out;
  out.reserve(48);
  PutTag(&out, kDataSize, kVarint);
  PutVarint(&out, header.data_size);
  PutTag(&out, kMetadataSize, kVarint);
  PutVarint(&out, header.metadata_size);
  PutTag(&out, kOffset, kVarint);
  PutVarint(&out, header.offset);
  PutTag(&out, kBytes, kLengthDelimited);
  PutVarint(&out, payload_size);
  return out;
}

absl::StatusOr<DecodedChunk> DecodeChunk(const std::vector<absl::string_view>& pieces) {
  DecodedChunk chunk;
  PieceReader in(pieces);
  auto malformed = [](absl::string_view what) {
    return absl::DataLossError(absl::StrCat("malformed object chunk: ", what));
  };
  while (!in.AtEnd()) {
    uint64_t tag;
    if (!in.Varint(&tag)) return malformed("truncated field tag");
    const uint64_t field = tag >> 3;
    const int wire_type = static_cast<int>(tag & 7);
    if (field == 0) return malformed("field number 0");
    uint64_t value = 0;
    switch (wire_type) {
      case kVarint:
        if (!in.Varint(&value)) return malformed("truncated varint");
        if (field == kDataSize) chunk.header.data_size = value;
        if (field == kMetadataSize) chunk.header.metadata_size = value;
        if (field == kOffset) chunk.header.offset = value;
        break;
      case kFixed64:
        if (!in.Take(8, nullptr)) return malformed("truncated fixed64");
        break;
      case kFixed32:
        if (!in.Take(4, nullptr)) return malformed("truncated fixed32");
        break;
      case kLengthDelimited:
        if (!in.Varint(&value)) return malformed("truncated length");
        if (field == kBytes) {
          // A repeated occurrence replaces the earlier one, as protobuf's parser does.
          chunk.payload.clear();
          chunk.payload_size = value;
          if (!in.Take(value, &chunk.payload)) return malformed("payload shorter than its length");
        } else if (!in.Take(value, nullptr)) {
          return malformed("truncated length-delimited field");
        }
        break;
      default:
        return malformed(absl::StrCat("wire type ", wire_type));
    }
  }
  return chunk;
}

}  // namespace shoal
