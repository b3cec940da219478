// The server side of RFC 6455 that the log tail needs: the handshake's accept value and
// unmasked frames. Plus a guard for text frames, which must hold whole UTF-8 characters.
// Pure; threading: any.
#pragma once

#include <cstdint>
#include <string>

namespace shoal::dashboard {

// Whether a request's Upgrade and Sec-WebSocket-Key headers ask for a websocket: Upgrade is
// "websocket" (any case) and the key is not empty.
bool IsWebSocketUpgrade(const std::string& upgrade_header, const std::string& key_header);
// Sec-WebSocket-Accept for a client's Sec-WebSocket-Key.
std::string WebSocketAccept(const std::string& key);
// One final (FIN) frame: opcode 0x1 text, 0x8 close.
std::string WebSocketFrame(uint8_t opcode, const std::string& payload);
// The length of `text` without a UTF-8 sequence cut short at its end (a log read while the job
// is writing may end in the middle of a character; the rest comes with the next read).
size_t CompleteUtf8Length(const std::string& text);

}  // namespace shoal::dashboard
