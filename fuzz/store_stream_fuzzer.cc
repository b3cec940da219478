// Fuzzes the object store's stream framing (store_protocol::FrameBuffer), which splits the
// bytes the server and the client read from their socket into frames, and the request decoder
// the server runs on each frame.
//
// Input: a script that builds a byte stream — raw bytes taken from the input, and frames with a
// header given by the input and a body filled up to 1.5 MiB (so frames larger than one 64 KiB
// read, and headers that announce more than kMaxBodySize, are reached by short inputs) — and
// the sizes of the reads that deliver it.
// Invariants: FrameBuffer yields exactly the frames a direct reference split of the stream
// yields, in order, and refuses the stream where that split meets an invalid header; between
// frames it holds less than one whole frame.
#include <fuzzer/FuzzedDataProvider.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include "fuzz/fuzz_check.h"
#include "src/object_store/protocol.h"

namespace sp = shoal::store_protocol;

namespace {

constexpr size_t kMaxStream = 4 << 20;

struct RefFrame {
  sp::FrameHeader header;
  std::string_view body;
};

// The reference split: frames while whole ones are there; `bad` when a header is invalid.
std::vector<RefFrame> SplitStream(std::string_view stream, bool* bad, size_t* leftover) {
  std::vector<RefFrame> frames;
  *bad = false;
  while (stream.size() >= sp::kHeaderSize) {
    absl::StatusOr<sp::FrameHeader> header = sp::DecodeHeader(stream);
    if (!header.ok()) {
      *bad = true;
      break;
    }
    if (stream.size() - sp::kHeaderSize < header->body_size) break;
    frames.push_back({*header, stream.substr(sp::kHeaderSize, header->body_size)});
    stream.remove_prefix(sp::kHeaderSize + header->body_size);
  }
  *leftover = stream.size();
  return frames;
}

std::string BuildStream(FuzzedDataProvider& in) {
  std::string stream;
  const int pieces = in.ConsumeIntegralInRange(1, 16);
  for (int i = 0; i < pieces && stream.size() < kMaxStream && in.remaining_bytes() > 0; ++i) {
    if (in.ConsumeBool()) {
      stream += in.ConsumeRandomLengthString(256);
      continue;
    }
    uint32_t body_size = in.ConsumeIntegralInRange<uint32_t>(0, sp::kMaxBodySize + (sp::kMaxBodySize >> 1));
    const uint32_t type = in.ConsumeIntegralInRange<uint32_t>(0, 12);
    const uint64_t request_id = in.ConsumeIntegral<uint64_t>();
    const size_t present = in.ConsumeBool() ? body_size : in.ConsumeIntegralInRange<size_t>(0, body_size);
    const char fill = in.ConsumeIntegral<char>();
    char header[sp::kHeaderSize];
    std::memcpy(header, &body_size, 4);
    std::memcpy(header + 4, &type, 4);
    std::memcpy(header + 8, &request_id, 8);
    stream.append(header, sp::kHeaderSize);
    std::string prefix = in.ConsumeRandomLengthString(64);
    prefix.resize(std::min(prefix.size(), present));
    stream += prefix;
    stream.append(present - prefix.size(), fill);
  }
  stream += in.ConsumeRandomLengthString(64);
  return stream;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  FuzzedDataProvider in(data, size);
  const std::string stream = BuildStream(in);
  bool bad = false;
  size_t leftover = 0;
  const std::vector<RefFrame> expected = SplitStream(stream, &bad, &leftover);

  sp::FrameBuffer buffer;
  size_t fed = 0, taken = 0;
  bool refused = false;
  while (fed < stream.size() && !refused) {
    auto [space, room] = buffer.WritableSpace();
    FUZZ_CHECK(room >= (64u << 10));
    size_t n = in.remaining_bytes() > 0 ? in.ConsumeIntegralInRange<size_t>(1, 200000) : room;
    n = std::min({n, room, stream.size() - fed});
    std::memcpy(space, stream.data() + fed, n);
    buffer.Commit(n);
    fed += n;
    while (true) {
      absl::StatusOr<std::optional<sp::FrameBuffer::Frame>> frame = buffer.Next();
      if (!frame.ok()) {
        FUZZ_CHECK(absl::IsInvalidArgument(frame.status()));
        refused = true;
        break;
      }
      if (!frame->has_value()) break;
      FUZZ_CHECK(taken < expected.size());
      const RefFrame& want = expected[taken++];
      const sp::FrameBuffer::Frame& got = **frame;
      FUZZ_CHECK(got.header.body_size == want.header.body_size && got.header.type == want.header.type &&
                 got.header.request_id == want.header.request_id && got.body == want.body);
      (void)sp::DecodeRequest(got.header, got.body);  // what the server does with each frame
    }
    if (!refused) {
      // Less than one whole frame is left: at most a header and an unfinished body.
      FUZZ_CHECK(buffer.buffered() < sp::kHeaderSize + sp::kMaxBodySize);
    }
  }
  FUZZ_CHECK(taken == expected.size());
  FUZZ_CHECK(refused == bad);
  if (!refused) FUZZ_CHECK(buffer.buffered() == leftover);
  return 0;
}
