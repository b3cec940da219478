// RFC 6455 pieces; see websocket.h.
#include "src/dashboard/websocket.h"

#include <openssl/sha.h>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"

namespace shoal::dashboard {

bool IsWebSocketUpgrade(const std::string& upgrade_header, const std::string& key_header) {
  return absl::AsciiStrToLower(upgrade_header) == "websocket" && !key_header.empty();
}

std::string WebSocketAccept(const std::string& key) {
  std::string text = key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
  unsigned char digest[SHA_DIGEST_LENGTH];
  SHA1(reinterpret_cast<const unsigned char*>(text.data()), text.size(), digest);
  return absl::Base64Escape(std::string(reinterpret_cast<char*>(digest), sizeof(digest)));
}

std::string WebSocketFrame(uint8_t opcode, const std::string& payload) {
  std::string frame(1, static_cast<char>(0x80 | opcode));
  const uint64_t n = payload.size();
  if (n < 126) {
    frame += static_cast<char>(n);
  } else if (n < 65536) {
    frame += static_cast<char>(126);
    frame += static_cast<char>(n >> 8);
    frame += static_cast<char>(n & 0xff);
  } else {
    frame += static_cast<char>(127);
    for (int shift = 56; shift >= 0; shift -= 8) frame += static_cast<char>((n >> shift) & 0xff);
  }
  return frame + payload;
}

size_t CompleteUtf8Length(const std::string& text) {
  size_t n = text.size();
  for (size_t back = 1; back <= 4 && back <= n; ++back) {
    unsigned char c = static_cast<unsigned char>(text[n - back]);
    if ((c & 0xC0) == 0x80) continue;  // a continuation byte: look further back
    size_t need = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xE ? 3 : (c >> 3) == 0x1E ? 4 : 1;
    return back < need ? n - back : n;
  }
  return n;
}

}  // namespace shoal::dashboard
