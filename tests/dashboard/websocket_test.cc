#include "src/dashboard/websocket.h"

#include <catch2/catch.hpp>

namespace shoal::dashboard {
namespace {

TEST_CASE("the handshake's accept value is RFC 6455's example") {
  REQUIRE(WebSocketAccept("dGhlIHNhbXBsZSBub25jZQ==") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
}

TEST_CASE("frames carry the payload length in 7, 16 or 64 bits") {
  REQUIRE(WebSocketFrame(0x1, "hi") == std::string("\x81\x02hi"));
  std::string mid(300, 'a');
  REQUIRE(WebSocketFrame(0x1, mid).substr(0, 4) == std::string("\x81\x7e\x01\x2c"));
  std::string big(70000, 'a');
  REQUIRE(WebSocketFrame(0x1, big).substr(0, 10) == std::string("\x81\x7f\x00\x00\x00\x00\x00\x01\x11\x70", 10));
  REQUIRE(WebSocketFrame(0x8, "").size() == 2);
}

TEST_CASE("a log cut in the middle of a UTF-8 character is sent without it") {
  REQUIRE(CompleteUtf8Length("abc") == 3);
  REQUIRE(CompleteUtf8Length("") == 0);
  const std::string euro = "\xe2\x82\xac";  // 3 bytes
  REQUIRE(CompleteUtf8Length("a" + euro) == 4);
  REQUIRE(CompleteUtf8Length("a" + euro.substr(0, 2)) == 1);
  REQUIRE(CompleteUtf8Length("a" + euro.substr(0, 1)) == 1);
  REQUIRE(CompleteUtf8Length("\xc3\xa9") == 2);
  REQUIRE(CompleteUtf8Length("x\xc3") == 1);
}

TEST_CASE("a websocket request says Upgrade: websocket and sends a key") {
  REQUIRE(IsWebSocketUpgrade("websocket", "dGhlIHNhbXBsZSBub25jZQ=="));
  REQUIRE(IsWebSocketUpgrade("WebSocket", "k"));
  REQUIRE_FALSE(IsWebSocketUpgrade("websocket", ""));
  REQUIRE_FALSE(IsWebSocketUpgrade("h2c", "k"));
  REQUIRE_FALSE(IsWebSocketUpgrade("", "k"));
}

}  // namespace
}  // namespace shoal::dashboard
