// The WebSocket opening handshake checks made before an upgrade is sent upstream (RFC 6455 §4.2.1)
// and the Upgrade token test.
#include "proxy/http/upgrade.h"

#include <gtest/gtest.h>

namespace portico::proxy::http {
namespace {

constexpr const char* kKey = "dGhlIHNhbXBsZSBub25jZQ==";  // RFC 6455's sample nonce

RequestHeaders handshake(std::string_view version = "13", std::string_view key = kKey) {
  RequestHeaders r;
  r.method = "GET";
  r.authority = "example.com";
  r.path = "/chat";
  r.upgrade = "websocket";
  if (!version.empty()) r.headers.add("Sec-WebSocket-Version", version);
  if (!key.empty()) r.headers.add("Sec-WebSocket-Key", key);
  return r;
}

TEST(WebSocketHandshake, AValidOneIsAccepted) {
  EXPECT_EQ(check_websocket_handshake(handshake()), HandshakeCheck::kOk);
  RequestHeaders lower = handshake({}, {});
  lower.headers.add("sec-websocket-version", "13");
  lower.headers.add("sec-websocket-key", "AAAAAAAAAAAAAAAAAAAAAA==");
  EXPECT_EQ(check_websocket_handshake(lower), HandshakeCheck::kOk);
  RequestHeaders extras = handshake();
  extras.headers.add("Sec-WebSocket-Protocol", "chat, superchat");
  extras.headers.add("Sec-WebSocket-Extensions", "permessage-deflate");
  EXPECT_EQ(check_websocket_handshake(extras), HandshakeCheck::kOk);
}

TEST(WebSocketHandshake, VersionOtherThan13Is426) {
  for (std::string_view v : {"12", "8", "14", "13 ", "013", "13, 8", "abc"}) {
    EXPECT_EQ(check_websocket_handshake(handshake(v)), HandshakeCheck::kBadVersion) << v;
  }
  EXPECT_EQ(check_websocket_handshake(handshake({})), HandshakeCheck::kBadVersion);
  RequestHeaders twice = handshake();
  twice.headers.add("Sec-WebSocket-Version", "13");
  EXPECT_EQ(check_websocket_handshake(twice), HandshakeCheck::kBadVersion);
  EXPECT_EQ(handshake_status(HandshakeCheck::kBadVersion), 426);
}

TEST(WebSocketHandshake, MissingOrMalformedKeyIs400) {
  EXPECT_EQ(check_websocket_handshake(handshake("13", {})), HandshakeCheck::kBadKey);
  for (std::string_view k : {
           "dGhlIHNhbXBsZSBub25jZQ",      // no padding
           "dGhlIHNhbXBsZSBub25jZQ=",     // 23 characters
           "dGhlIHNhbXBsZSBub25jZQ===",   // 25
           "dGhlIHNhbXBsZSBub25jZ===",    // 15 bytes
           "dGhlIHNhbXBsZSBub25jZQ!=",    // bad padding
           "dGhlIHNhbXBsZSBub2-jZQ==",    // URL-safe alphabet
           "dGhlIHNhbXBsZSBub2 jZQ==",    // space
           "dGhlIHNhbXBsZSBub25jZQAA",    // 18 bytes, unpadded
           "dGhlIHNhbXBsZSBub25jZQ==dG",  // trailing bytes
           "x",
       }) {
    EXPECT_EQ(check_websocket_handshake(handshake("13", k)), HandshakeCheck::kBadKey) << k;
  }
  RequestHeaders twice = handshake();
  twice.headers.add("Sec-WebSocket-Key", kKey);
  EXPECT_EQ(check_websocket_handshake(twice), HandshakeCheck::kBadKey);
  EXPECT_EQ(handshake_status(HandshakeCheck::kBadKey), 400);
}

TEST(WebSocketHandshake, OnlyAGetWithoutBody) {
  RequestHeaders post = handshake();
  post.method = "POST";
  EXPECT_EQ(check_websocket_handshake(post), HandshakeCheck::kBadRequest);
  RequestHeaders get_lower = handshake();
  get_lower.method = "get";  // methods are case-sensitive
  EXPECT_EQ(check_websocket_handshake(get_lower), HandshakeCheck::kBadRequest);
  RequestHeaders body = handshake();
  body.has_body = true;
  body.content_length = 5;
  EXPECT_EQ(check_websocket_handshake(body), HandshakeCheck::kBadRequest);
  // The method and body come first: a POST with a bad version is a bad request, not a 426.
  RequestHeaders both = handshake("7");
  both.method = "POST";
  EXPECT_EQ(check_websocket_handshake(both), HandshakeCheck::kBadRequest);
  EXPECT_EQ(handshake_status(HandshakeCheck::kBadRequest), 400);
}

TEST(WebSocketHandshake, UpgradeTokens) {
  EXPECT_TRUE(asks_for_websocket("websocket"));
  EXPECT_TRUE(asks_for_websocket("WebSocket"));
  EXPECT_TRUE(asks_for_websocket("h2c, websocket"));
  EXPECT_TRUE(asks_for_websocket(" websocket ,foo"));
  EXPECT_FALSE(asks_for_websocket(""));
  EXPECT_FALSE(asks_for_websocket("h2c"));
  EXPECT_FALSE(asks_for_websocket("websocket/13"));
  EXPECT_FALSE(asks_for_websocket("websockets"));
  EXPECT_FALSE(asks_for_websocket("web socket"));
}

TEST(WebSocketHandshake, AcceptAndKey) {
  // RFC 6455 §1.3's example.
  EXPECT_EQ(websocket_accept("dGhlIHNhbXBsZSBub25jZQ=="), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
  const std::string key = websocket_key(0x0123456789abcdefULL, 0xfedcba9876543210ULL);
  RequestHeaders r;
  r.method = "GET";
  r.headers.add("Sec-WebSocket-Version", "13");
  r.headers.add("Sec-WebSocket-Key", key);
  EXPECT_EQ(check_websocket_handshake(r), HandshakeCheck::kOk) << key;
  EXPECT_NE(websocket_key(1, 2), websocket_key(1, 3));
}

TEST(WebSocketHandshake, StatNames) {
  EXPECT_STREQ(to_string(TunnelKind::kWebSocket), "websocket");
  EXPECT_STREQ(to_string(TunnelKind::kConnect), "connect");
  EXPECT_STREQ(to_string(UpgradeRefusal::kBadVersion), "bad_version");
  EXPECT_STREQ(to_string(UpgradeRefusal::kConnectRefused), "connect_refused");
  EXPECT_STREQ(to_string(UpgradeRefusal::kUpstreamDeclined), "upstream_declined");
  EXPECT_STREQ(to_string(UpgradeRefusal::kUnknownProtocol), "unknown_protocol");
}

}  // namespace
}  // namespace portico::proxy::http
