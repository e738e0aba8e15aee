#include "proxy/http/hash_key.h"

#include "common/strings.h"
#include "proxy/http/h1_parser.h"
#include "proxy/upstream/lb.h"

namespace portico::proxy::http {

using common::trim_ows;

std::optional<std::string_view> find_cookie(const HeaderMap& headers, std::string_view name) {
  std::optional<std::string_view> found;
  headers.for_each([&](std::string_view n, std::string_view v) {
    if (found || !iequals(n, "cookie")) return;
    while (!v.empty()) {
      const size_t semi = v.find(';');
      std::string_view pair = trim_ows(v.substr(0, semi));
      v = semi == std::string_view::npos ? std::string_view{} : v.substr(semi + 1);
      const size_t eq = pair.find('=');
      if (eq == std::string_view::npos) continue;
      if (trim_ows(pair.substr(0, eq)) != name) continue;
      std::string_view value = trim_ows(pair.substr(eq + 1));
      if (value.size() >= 2 && value.front() == '"' && value.back() == '"')
        value = value.substr(1, value.size() - 2);
      found = value;
      return;
    }
  });
  return found;
}

std::optional<uint64_t> request_hash(const std::vector<snapshot::HashPolicy>& policies,
                                     const HeaderMap& headers, std::string_view peer_address) {
  std::optional<uint64_t> key;
  for (const auto& p : policies) {
    std::optional<std::string_view> input;
    switch (p.kind) {
      case snapshot::HashPolicy::Kind::kHeader:
        input = headers.get(p.name);
        break;
      case snapshot::HashPolicy::Kind::kCookie:
        input = find_cookie(headers, p.name);
        break;
      case snapshot::HashPolicy::Kind::kSourceIp:
        if (!peer_address.empty()) input = peer_address;
        break;
    }
    if (!input) continue;
    const uint64_t h = upstream::lb::hash64(*input);
    key = key ? upstream::lb::combine(*key, h) : h;
    if (p.terminal) break;
  }
  return key;
}

}  // namespace portico::proxy::http
