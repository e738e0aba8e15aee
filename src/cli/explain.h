// `portico route explain`: which Gateway (listener), virtual service, route, upstream and policies
// of a configuration would serve one request, and why each earlier route did not match. The
// configuration is the data plane's own (a /config_dump document, decoded back into a
// snapshot::ProxyConfig), and so is the matching (src/proxy/router: select_virtual_host,
// match_route, route_matches, rewrite_target, redirect_location) and the request parsing
// (parse_request_head): the explanation cannot disagree with the proxy. Pure functions; any thread.
#pragma once

#include <nlohmann/json.hpp>

#include <string>
#include <vector>

#include "proxy/http/h1_parser.h"
#include "snapshot/proxy_config.h"

namespace portico::cli {

struct ExplainRequest {
  std::string method = "GET";
  std::string url;                   // http://HOST[:PORT]/path?query, https://..., HOST[:PORT]/path
  std::vector<std::string> headers;  // "Name: value"; a Host header replaces the URL's authority
};

// Decodes a /config_dump document (snapshot::to_json) back into the parts of a ProxyConfig that
// routing reads: listeners (name, address, port), virtual hosts, routes (match, action, options)
// and clusters (name, endpoints). Unknown fields are ignored. Returns "" or what is wrong.
std::string proxy_config_from_json(const nlohmann::ordered_json& dump, snapshot::ProxyConfig* out);

// Explains `request` against `dump`. Returns false with one line in *error when the request cannot
// be formed (URL or header syntax) or the dump cannot be read. Otherwise *out is the explanation
// (JSON; see docs/operations.md); its "outcome" is "forward", "redirect", "direct_response",
// "bad_request", "no_gateway", "no_virtual_service" or "no_route".
bool explain_route(const nlohmann::ordered_json& dump, const ExplainRequest& request,
                   nlohmann::ordered_json* out, std::string* error);

// Why `route` does not accept `request`: one line per failing condition (path, method, each header
// matcher, each query matcher), empty exactly when proxy::router::route_matches accepts it. Each
// condition is decided by route_matches itself, on a copy of the route that keeps only that
// condition: the reasons come from the data plane's predicates, never from a re-implementation.
std::vector<std::string> route_mismatches(const snapshot::Route& route,
                                          const proxy::http::RequestHead& request);

// The explanation for humans.
std::string render_explanation(const nlohmann::ordered_json& explanation);

// One line describing a route's match as config_dump shows it: prefix "/api" methods GET,POST
// header x-env=prod query debug present.
std::string describe_match(const nlohmann::ordered_json& match);

}  // namespace portico::cli
