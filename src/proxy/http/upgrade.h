// Tunnel requests: the checks of an HTTP/1.1 WebSocket opening handshake (RFC 6455 §4.2.1) made
// before anything is sent upstream, and the names of the tunnel kinds and refusal reasons used in
// /stats. Pure functions over a RequestHeaders; any thread.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "proxy/http/message.h"

namespace portico::proxy::http {

enum class TunnelKind : uint8_t { kWebSocket, kConnect, kCount };
const char* to_string(TunnelKind k);

// Why an upgrade or a CONNECT was not tunnelled (portico_upgrades_refused_total{reason}).
enum class UpgradeRefusal : uint8_t {
  kBadVersion,         // Sec-WebSocket-Version missing or not 13: 426 (+ Sec-WebSocket-Version: 13)
  kBadKey,             // Sec-WebSocket-Key missing, repeated or not a base64 16-byte nonce: 400
  kBadRequest,         // not GET, or a request body: 400
  kWebSocketDisabled,  // the route does not enable websocket: served as a plain request
  kConnectRefused,     // CONNECT to a destination no route enables it for: 403
  kUpstreamDeclined,   // the upstream answered something other than 101: relayed as is (HTTP/2:
                       // 502 when the 101 did not answer Portico's key)
  kUnknownProtocol,    // HTTP/2 extended CONNECT for a protocol other than websocket: 501
  kCount
};
const char* to_string(UpgradeRefusal r);

// Whether an Upgrade header value asks for WebSocket (a comma-separated list of protocols, one of
// them "websocket", case-insensitive, no version suffix).
bool asks_for_websocket(std::string_view upgrade);

// The outcome of checking a WebSocket upgrade request: kOk, or why it is refused.
enum class HandshakeCheck : uint8_t { kOk, kBadRequest, kBadVersion, kBadKey };

// Checks an upgrade request that asked for websocket (Connection: upgrade, Upgrade: websocket):
// GET, no body, exactly one Sec-WebSocket-Version equal to "13", exactly one Sec-WebSocket-Key
// that is the base64 encoding of 16 bytes (24 characters ending in "=="). The method and body come
// first, then the version (so that a client of another version learns which one to speak), then
// the key.
HandshakeCheck check_websocket_handshake(const RequestHeaders& req);

// The status a refused handshake is answered with: 400, or 426 for a bad version.
int handshake_status(HandshakeCheck c);

// The Sec-WebSocket-Accept value that answers `key` (RFC 6455 §4.2.2: base64 of the SHA-1 of the
// key and the protocol's GUID).
std::string websocket_accept(std::string_view key);

// A fresh Sec-WebSocket-Key (base64 of 16 bytes) from 128 bits of `random` output.
std::string websocket_key(uint64_t hi, uint64_t lo);

}  // namespace portico::proxy::http
