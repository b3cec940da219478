// The hand-written wire form of rpc::ObjectChunk against protobuf's own encoder and parser.
#include "src/raylet/object_chunk_codec.h"

#include <catch2/catch.hpp>

#include <random>
#include <string>
#include <vector>

#include "shoal/raylet.pb.h"
#include "tests/test_util/status_matchers.h"

namespace shoal {
namespace {

// `bytes` cut into pieces at random points (empty pieces included).
std::vector<absl::string_view> Cut(const std::string& bytes, std::mt19937& rng) {
  std::vector<absl::string_view> pieces;
  size_t at = 0;
  while (at < bytes.size()) {
    const size_t n = std::uniform_int_distribution<size_t>(0, 7)(rng);
    pieces.push_back(absl::string_view(bytes).substr(at, n));
    at += std::min(n, bytes.size() - at);
  }
  return pieces;
}

std::string Join(const std::vector<absl::string_view>& pieces) {
  std::string out;
  for (auto p : pieces) out.append(p.data(), p.size());
  return out;
}

TEST_CASE("A hand-encoded chunk is the protobuf message rpc::ObjectChunk", "[raylet][object_chunk_codec]") {
  const std::string payload = "some payload bytes";
  for (uint64_t big : {0ull, 1ull, 300ull, 1ull << 40, ~0ull}) {
    const std::string wire = EncodeChunkHeader({.data_size = big, .metadata_size = 7, .offset = big / 3}, payload.size()) + payload;
    rpc::ObjectChunk parsed;
    REQUIRE(parsed.ParseFromString(wire));
    CHECK(parsed.data_size() == big);
    CHECK(parsed.metadata_size() == 7);
    CHECK(parsed.offset() == big / 3);
    CHECK(parsed.bytes() == payload);
  }
}

TEST_CASE("DecodeChunk reads protobuf's encoding across any cut into pieces", "[raylet][object_chunk_codec]") {
  std::mt19937 rng(7);
  rpc::ObjectChunk chunk;
  chunk.set_data_size(123456789);
  chunk.set_metadata_size(3);
  chunk.set_offset(4096);
  chunk.set_bytes(std::string(1000, 'x') + "end");
  const std::string wire = chunk.SerializeAsString();
  for (int i = 0; i < 50; ++i) {
    auto decoded = DecodeChunk(Cut(wire, rng));
    REQUIRE_OK(decoded);
    CHECK(decoded->header.data_size == 123456789);
    CHECK(decoded->header.metadata_size == 3);
    CHECK(decoded->header.offset == 4096);
    CHECK(decoded->payload_size == 1003);
    CHECK(Join(decoded->payload) == chunk.bytes());
  }
}

TEST_CASE("DecodeChunk skips unknown fields and takes defaults for absent ones", "[raylet][object_chunk_codec]") {
  // Field 9 as a varint, field 10 as fixed64, field 11 as bytes, field 12 as fixed32, then
  // only the payload (sizes and offset absent: zero, as protobuf reads them).
  std::string wire;
  wire += "\x48\x05";                            // 9: varint 5
  wire += std::string("\x51", 1) + std::string(8, '\x01');  // 10: fixed64
  wire += "\x5a\x02hi";                          // 11: "hi"
  wire += std::string("\x65", 1) + std::string(4, '\x02');  // 12: fixed32
  wire += "\x22\x03" "abc";                       // 4: "abc"
  auto decoded = DecodeChunk({wire});
  REQUIRE_OK(decoded);
  CHECK(decoded->header.data_size == 0);
  CHECK(decoded->header.offset == 0);
  CHECK(Join(decoded->payload) == "abc");
}

TEST_CASE("DecodeChunk refuses malformed chunks", "[raylet][object_chunk_codec]") {
  const std::string good = EncodeChunkHeader({.data_size = 10, .metadata_size = 0, .offset = 0}, 10) + "0123456789";
  // Every truncation of a valid chunk is refused or decodes to a shorter, consistent payload:
  // never a payload longer than the bytes present.
  for (size_t n = 0; n < good.size(); ++n) {
    auto decoded = DecodeChunk({absl::string_view(good).substr(0, n)});
    if (decoded.ok()) CHECK(Join(decoded->payload).size() == decoded->payload_size);
  }
  CHECK(absl::IsDataLoss(DecodeChunk({absl::string_view(good).substr(0, good.size() - 1)}).status()));
  CHECK(absl::IsDataLoss(DecodeChunk({std::string("\x00\x01", 2)}).status()));     // field 0
  CHECK(absl::IsDataLoss(DecodeChunk({std::string("\x0b", 1)}).status()));         // wire type 3
  CHECK(absl::IsDataLoss(DecodeChunk({std::string(11, '\xff')}).status()));        // endless varint
  CHECK(absl::IsDataLoss(DecodeChunk({std::string("\x22\xff\xff\xff\xff\x0f", 6)}).status()));  // huge length
}

}  // namespace
}  // namespace shoal
