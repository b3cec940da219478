// Fuzzes the dashboard's websocket pieces (src/dashboard/websocket.h): the handshake headers a
// client sends (IsWebSocketUpgrade, WebSocketAccept on Sec-WebSocket-Key), the frames the log
// tail sends (WebSocketFrame), and the cut of a job's log at a whole UTF-8 character
// (CompleteUtf8Length), which reads whatever bytes the job wrote.
// The dashboard never reads a client's frames, so there is no frame decoder in Shoal; this
// target decodes each frame with an RFC 6455 reference reader written here.
//
// Invariants: a frame decodes back to its opcode and payload with FIN set, no mask and the
// shortest length encoding; the accept value is 28 characters of base64 of a SHA-1; the UTF-8
// cut drops at most 3 bytes, only an unfinished sequence, never one from valid UTF-8, and cuts a
// valid text ended in the middle of a character exactly before that character.
#include <fuzzer/FuzzedDataProvider.h>

#include <cstdint>
#include <string>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "fuzz/fuzz_check.h"
#include "src/dashboard/websocket.h"

namespace ws = shoal::dashboard;

namespace {

struct DecodedFrame {
  bool fin = false;
  uint8_t opcode = 0;
  std::string payload;
};

// RFC 6455 section 5.2, for unmasked server frames. False when `bytes` is not exactly one
// frame with a minimal length encoding.
bool DecodeServerFrame(const std::string& bytes, DecodedFrame* out) {
  if (bytes.size() < 2) return false;
  const auto b0 = static_cast<uint8_t>(bytes[0]), b1 = static_cast<uint8_t>(bytes[1]);
  if ((b0 & 0x70) != 0 || (b1 & 0x80) != 0) return false;  // RSV bits, MASK
  out->fin = (b0 & 0x80) != 0;
  out->opcode = b0 & 0x0f;
  uint64_t length = b1 & 0x7f;
  size_t pos = 2;
  if (length >= 126) {
    const size_t width = length == 126 ? 2 : 8;
    if (bytes.size() < pos + width) return false;
    length = 0;
    for (size_t i = 0; i < width; ++i) length = length << 8 | static_cast<uint8_t>(bytes[pos + i]);
    pos += width;
    if (width == 2 && length < 126) return false;
    if (width == 8 && (length < 65536 || (length >> 63) != 0)) return false;
  }
  if (bytes.size() - pos != length) return false;
  out->payload = bytes.substr(pos);
  return true;
}

// The length of the UTF-8 sequence a lead byte starts (RFC 3629), 0 for a non-lead byte.
size_t SequenceLength(uint8_t lead) {
  if (lead < 0x80) return 1;
  if (lead >= 0xc2 && lead <= 0xdf) return 2;
  if (lead >= 0xe0 && lead <= 0xef) return 3;
  if (lead >= 0xf0 && lead <= 0xf4) return 4;
  return 0;
}

std::string EncodeUtf8(uint32_t cp) {
  std::string out;
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xc0 | cp >> 6);
    out += static_cast<char>(0x80 | (cp & 0x3f));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xe0 | cp >> 12);
    out += static_cast<char>(0x80 | (cp >> 6 & 0x3f));
    out += static_cast<char>(0x80 | (cp & 0x3f));
  } else {
    out += static_cast<char>(0xf0 | cp >> 18);
    out += static_cast<char>(0x80 | (cp >> 12 & 0x3f));
    out += static_cast<char>(0x80 | (cp >> 6 & 0x3f));
    out += static_cast<char>(0x80 | (cp & 0x3f));
  }
  return out;
}

void CheckFrame(uint8_t opcode, const std::string& payload) {
  std::string frame = ws::WebSocketFrame(opcode, payload);
  DecodedFrame decoded;
  FUZZ_CHECK(DecodeServerFrame(frame, &decoded));
  FUZZ_CHECK(decoded.fin && decoded.opcode == opcode && decoded.payload == payload);
}

// Any bytes: the cut is short, and what it drops is a lead byte and fewer continuation bytes
// than that lead announces.
void CheckCutOfAnyBytes(const std::string& text) {
  const size_t keep = ws::CompleteUtf8Length(text);
  FUZZ_CHECK(keep <= text.size() && text.size() - keep <= 3);
  if (keep == text.size()) return;
  const auto lead = static_cast<uint8_t>(text[keep]);
  const size_t need = lead >= 0xf0 ? 4 : lead >= 0xe0 ? 3 : lead >= 0xc0 ? 2 : 1;
  FUZZ_CHECK(need > text.size() - keep);
  for (size_t i = keep + 1; i < text.size(); ++i) FUZZ_CHECK((static_cast<uint8_t>(text[i]) & 0xc0) == 0x80);
}

// Valid UTF-8 built from code points: kept whole; cut inside its last character, it drops
// exactly the started part of that character.
void CheckCutOfValidText(FuzzedDataProvider& in) {
  std::string text, last;
  const int count = in.ConsumeIntegralInRange(0, 8);
  for (int i = 0; i < count; ++i) {
    uint32_t cp = in.ConsumeIntegralInRange<uint32_t>(0, 0x10ffff);
    if (cp >= 0xd800 && cp <= 0xdfff) cp -= 0x800;  // no surrogates
    text += last;
    last = EncodeUtf8(cp);
  }
  FUZZ_CHECK(last.empty() || SequenceLength(static_cast<uint8_t>(last[0])) == last.size());
  FUZZ_CHECK(ws::CompleteUtf8Length(text + last) == text.size() + last.size());
  for (size_t part = 1; part < last.size(); ++part) {
    FUZZ_CHECK(ws::CompleteUtf8Length(text + last.substr(0, part)) == text.size());
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  FuzzedDataProvider in(data, size);
  const std::string upgrade = in.ConsumeRandomLengthString(32);
  const std::string key = in.ConsumeRandomLengthString(64);
  FUZZ_CHECK(ws::IsWebSocketUpgrade(upgrade, key) == (absl::AsciiStrToLower(upgrade) == "websocket" && !key.empty()));
  const std::string accept = ws::WebSocketAccept(key);
  std::string digest;
  FUZZ_CHECK(accept.size() == 28 && absl::Base64Unescape(accept, &digest) && digest.size() == 20);
  FUZZ_CHECK(ws::WebSocketAccept(key) == accept);

  const uint8_t opcode = in.ConsumeIntegral<uint8_t>() & 0x0f;
  const uint32_t repeat = in.ConsumeIntegralInRange<uint32_t>(1, 2000);  // reaches the 16- and 64-bit lengths
  CheckCutOfValidText(in);
  const std::string text = in.ConsumeRemainingBytesAsString();
  CheckCutOfAnyBytes(text);
  std::string payload;
  for (uint32_t i = 0; i < repeat && payload.size() < 200000; ++i) payload += text;
  CheckFrame(opcode, payload);
  CheckFrame(opcode, text);
  return 0;
}
