#include "proxy/http/grpc.h"

#include <cstdint>

#include "proxy/http/h1_parser.h"

namespace portico::proxy::http {

bool is_grpc_content_type(std::string_view ct) {
  constexpr std::string_view kGrpc = "application/grpc";
  if (ct.size() < kGrpc.size() || !iequals(ct.substr(0, kGrpc.size()), kGrpc)) return false;
  if (ct.size() == kGrpc.size()) return true;
  const char next = ct[kGrpc.size()];
  return next == '+' || next == ';';
}

std::optional<std::chrono::milliseconds> parse_grpc_timeout(std::string_view v) {
  if (v.size() < 2 || v.size() > 9) return std::nullopt;
  uint64_t n = 0;
  for (char c : v.substr(0, v.size() - 1)) {
    if (c < '0' || c > '9') return std::nullopt;
    n = n * 10 + static_cast<uint64_t>(c - '0');
  }
  using std::chrono::milliseconds;
  auto up = [](uint64_t x, uint64_t per_ms) {
    return milliseconds(static_cast<int64_t>((x + per_ms - 1) / per_ms));
  };
  switch (v.back()) {
    case 'H':
      return milliseconds(static_cast<int64_t>(n * 3600 * 1000));
    case 'M':
      return milliseconds(static_cast<int64_t>(n * 60 * 1000));
    case 'S':
      return milliseconds(static_cast<int64_t>(n * 1000));
    case 'm':
      return milliseconds(static_cast<int64_t>(n));
    case 'u':
      return up(n, 1000);
    case 'n':
      return up(n, 1000000);
    default:
      return std::nullopt;
  }
}

std::string grpc_percent_encode(std::string_view m) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(m.size());
  for (char ch : m) {
    const auto c = static_cast<unsigned char>(ch);
    if (c >= 0x20 && c <= 0x7E && c != '%') {
      out.push_back(ch);
    } else {
      out.push_back('%');
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 15]);
    }
  }
  return out;
}

}  // namespace portico::proxy::http
