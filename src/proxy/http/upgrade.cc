#include "proxy/http/upgrade.h"

#include <openssl/sha.h>

#include "common/base64.h"
#include "proxy/http/h1_parser.h"

namespace portico::proxy::http {

namespace {

bool is_base64_char(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' ||
         c == '/';
}

// The single value of a field that must appear once; false when absent or repeated.
bool single_value(const HeaderMap& h, std::string_view name, std::string_view* out) {
  int n = 0;
  h.for_each([&](std::string_view k, std::string_view v) {
    if (k.size() == name.size() && iequals(k, name)) {
      ++n;
      *out = v;
    }
  });
  return n == 1;
}

}  // namespace

const char* to_string(TunnelKind k) {
  switch (k) {
    case TunnelKind::kWebSocket:
      return "websocket";
    case TunnelKind::kConnect:
      return "connect";
    case TunnelKind::kCount:
      break;
  }
  return "unknown";
}

const char* to_string(UpgradeRefusal r) {
  switch (r) {
    case UpgradeRefusal::kBadVersion:
      return "bad_version";
    case UpgradeRefusal::kBadKey:
      return "bad_key";
    case UpgradeRefusal::kBadRequest:
      return "bad_request";
    case UpgradeRefusal::kWebSocketDisabled:
      return "websocket_disabled";
    case UpgradeRefusal::kConnectRefused:
      return "connect_refused";
    case UpgradeRefusal::kUpstreamDeclined:
      return "upstream_declined";
    case UpgradeRefusal::kUnknownProtocol:
      return "unknown_protocol";
    case UpgradeRefusal::kCount:
      break;
  }
  return "unknown";
}

bool asks_for_websocket(std::string_view upgrade) {
  while (!upgrade.empty()) {
    size_t comma = upgrade.find(',');
    std::string_view token = upgrade.substr(0, comma);
    while (!token.empty() && (token.front() == ' ' || token.front() == '\t'))
      token.remove_prefix(1);
    while (!token.empty() && (token.back() == ' ' || token.back() == '\t'))
      token.remove_suffix(1);
    if (iequals(token, "websocket")) return true;
    if (comma == std::string_view::npos) break;
    upgrade.remove_prefix(comma + 1);
  }
  return false;
}

HandshakeCheck check_websocket_handshake(const RequestHeaders& req) {
  if (req.method != "GET" || req.has_body) return HandshakeCheck::kBadRequest;
  std::string_view version;
  if (!single_value(req.headers, "sec-websocket-version", &version) || version != "13") {
    return HandshakeCheck::kBadVersion;
  }
  std::string_view key;
  if (!single_value(req.headers, "sec-websocket-key", &key)) return HandshakeCheck::kBadKey;
  // 16 bytes in base64: 22 significant characters and "==" (RFC 6455 §4.1, item 7).
  if (key.size() != 24 || key[22] != '=' || key[23] != '=') return HandshakeCheck::kBadKey;
  for (size_t i = 0; i < 22; ++i) {
    if (!is_base64_char(key[i])) return HandshakeCheck::kBadKey;
  }
  return HandshakeCheck::kOk;
}

int handshake_status(HandshakeCheck c) {
  return c == HandshakeCheck::kBadVersion ? 426 : 400;
}

std::string websocket_accept(std::string_view key) {
  static constexpr std::string_view kGuid = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
  std::string in;
  in.reserve(key.size() + kGuid.size());
  in.append(key);
  in.append(kGuid);
  unsigned char digest[SHA_DIGEST_LENGTH];
  SHA1(reinterpret_cast<const unsigned char*>(in.data()), in.size(), digest);
  return common::base64_encode(
      std::string_view(reinterpret_cast<const char*>(digest), sizeof digest));
}

std::string websocket_key(uint64_t hi, uint64_t lo) {
  char bytes[16];
  for (int i = 0; i < 8; ++i) {
    bytes[i] = static_cast<char>(hi >> (8 * i));
    bytes[8 + i] = static_cast<char>(lo >> (8 * i));
  }
  return common::base64_encode(std::string_view(bytes, sizeof bytes));
}

}  // namespace portico::proxy::http
