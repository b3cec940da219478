// Fuzzes the reader of object chunks that other raylets send (src/raylet/object_chunk_codec.h):
// DecodeChunk on bytes cut into pieces anywhere, as gRPC hands a received message over.
//
// Input: a cut pattern and the chunk's bytes.
// Invariants: a refusal is DataLoss; an accepted chunk's payload pieces add up to its stated
// length and lie inside the input; the answer does not depend on where the bytes were cut (the
// same bytes in one piece decode to the same header and payload); a header this codec encodes,
// followed by that payload, decodes to the same header and payload.
#include <fuzzer/FuzzedDataProvider.h>

#include <cstdint>
#include <string>
#include <vector>

#include "fuzz/fuzz_check.h"
#include "src/raylet/object_chunk_codec.h"

namespace {

std::string Join(const std::vector<absl::string_view>& pieces) {
  std::string out;
  for (auto p : pieces) out.append(p.data(), p.size());
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  FuzzedDataProvider in(data, size);
  std::vector<size_t> cuts;
  const int n_cuts = in.ConsumeIntegralInRange<int>(0, 8);
  for (int i = 0; i < n_cuts; ++i) cuts.push_back(in.ConsumeIntegralInRange<size_t>(0, 64));
  const std::string bytes = in.ConsumeRemainingBytesAsString();

  std::vector<absl::string_view> pieces;
  size_t at = 0;
  for (size_t c : cuts) {
    const size_t n = std::min(c, bytes.size() - at);
    pieces.push_back(absl::string_view(bytes).substr(at, n));
    at += n;
  }
  pieces.push_back(absl::string_view(bytes).substr(at));

  auto cut = shoal::DecodeChunk(pieces);
  auto whole = shoal::DecodeChunk({absl::string_view(bytes)});
  FUZZ_CHECK(cut.ok() == whole.ok());
  if (!cut.ok()) {
    FUZZ_CHECK(absl::IsDataLoss(cut.status()) && absl::IsDataLoss(whole.status()));
    return 0;
  }
  uint64_t total = 0;
  for (auto p : cut->payload) {
    FUZZ_CHECK(p.data() >= bytes.data() && p.data() + p.size() <= bytes.data() + bytes.size());
    total += p.size();
  }
  FUZZ_CHECK(total == cut->payload_size);
  FUZZ_CHECK(cut->header.data_size == whole->header.data_size);
  FUZZ_CHECK(cut->header.metadata_size == whole->header.metadata_size);
  FUZZ_CHECK(cut->header.offset == whole->header.offset);
  const std::string payload = Join(cut->payload);
  FUZZ_CHECK(payload == Join(whole->payload));

  const std::string again = shoal::EncodeChunkHeader(cut->header, payload.size()) + payload;
  auto round = shoal::DecodeChunk({absl::string_view(again)});
  FUZZ_CHECK(round.ok());
  FUZZ_CHECK(round->header.data_size == cut->header.data_size);
  FUZZ_CHECK(round->header.metadata_size == cut->header.metadata_size);
  FUZZ_CHECK(round->header.offset == cut->header.offset);
  FUZZ_CHECK(Join(round->payload) == payload);
  return 0;
}
