// The hash key of a request for ring hash and maglev upstreams, from the route's hash policies
// (options.lbHash). Pure function; any thread.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>
#include <vector>

#include "proxy/http/message.h"
#include "snapshot/proxy_config.h"

namespace portico::proxy::http {

// Envoy's semantics: policies in order, each that finds its input (the header, the cookie, the
// client address) adds its hash to the key; a terminal policy that produced a hash ends the
// evaluation. No policy produced one: nullopt (the load balancer then picks at random).
std::optional<uint64_t> request_hash(const std::vector<snapshot::HashPolicy>& policies,
                                     const HeaderMap& headers, std::string_view peer_address);

// The value of cookie `name` in the request's Cookie fields, if any.
std::optional<std::string_view> find_cookie(const HeaderMap& headers, std::string_view name);

}  // namespace portico::proxy::http
