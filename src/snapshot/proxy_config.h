// ProxyConfig: the contract between the control plane and the data plane. Immutable once built;
// shared across threads as std::shared_ptr<const ProxyConfig>. Built on the control-plane thread by
// the translator (src/control/translate); read by proxy workers. Nothing here refers to user
// resources: names are already resolved (a cluster is referred to by its name, e.g.
// "default/echo").
#pragma once

#include <re2/re2.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <variant>
#include <vector>

namespace portico::snapshot {

using Millis = std::chrono::milliseconds;

// A compiled RE2 pattern with its source text (the source is what config_dump shows).
struct Regex {
  std::string pattern;
  std::shared_ptr<const re2::RE2> re;  // compiled, never null in a built ProxyConfig
};

enum class PathMatchKind { kPrefix, kExact, kRegex };

struct HeaderMatcher {
  std::string name;   // lower-case
  std::string value;  // exact value, when !regex and !present_only
  std::optional<Regex> regex;
  bool present_only = false;  // matches when the header is present (any value)
  bool invert = false;        // the result of the match is inverted
};

struct QueryMatcher {
  std::string name;
  std::string value;  // exact value, when !regex and !present_only
  std::optional<Regex> regex;
  bool present_only = false;
};

struct RouteMatch {
  PathMatchKind kind = PathMatchKind::kPrefix;
  std::string path = "/";      // prefix or exact path; for kRegex, regex.pattern
  std::optional<Regex> regex;  // set when kind == kRegex (full match against the path, no query)
  bool case_sensitive = true;
  std::vector<HeaderMatcher> headers;  // all must match
  std::vector<QueryMatcher> query;     // all must match
  std::vector<std::string> methods;    // upper-case; empty = any method
};

struct WeightedCluster {
  std::string cluster;  // name of a Cluster in ProxyConfig::clusters
  uint32_t weight = 1;
};

struct ForwardAction {
  std::vector<WeightedCluster> clusters;  // one or more; weights > 0
  uint32_t total_weight = 0;              // sum of weights
};

struct RedirectAction {
  std::string host;            // replace the host (empty: keep)
  std::string path;            // replace the whole path (empty: keep)
  std::string prefix_rewrite;  // replace the matched prefix (prefix routes only; empty: keep)
  bool https = false;          // scheme https
  uint16_t port = 0;           // 0: keep/none
  uint16_t code = 301;         // 301, 302, 303, 307, 308
  bool strip_query = false;
};

struct DirectResponseAction {
  uint16_t status = 200;
  std::string body;
  std::string content_type = "text/plain";
};

struct HeaderValue {
  std::string name;  // as written by the user (case preserved for serialisation)
  std::string value;
  bool append = true;  // false: replace any existing value
};

struct HeaderMutations {
  std::vector<HeaderValue> add;
  std::vector<std::string> remove;  // lower-case names
};

struct RouteOptions {
  std::optional<Millis>
      timeout;  // whole upstream exchange, until the response head arrives; 0 = none
  std::optional<std::string> prefix_rewrite;  // replaces the matched prefix (prefix routes)
  std::string host_rewrite;                   // non-empty: Host sent upstream
  HeaderMutations request_headers;
  HeaderMutations response_headers;
};

struct Route {
  std::string name;  // "<vs-namespace>/<vs-name>/<route-name or index>", used in stats
  RouteMatch match;
  std::variant<ForwardAction, RedirectAction, DirectResponseAction> action;
  RouteOptions options;
};

// Domains: "example.com" (exact), "*.example.com" (suffix), "example.*" (prefix), "*" (any).
// Selection order for a Host: exact, then the longest suffix wildcard, then the longest prefix
// wildcard, then "*". Ports in Host are ignored unless a domain names one.
struct VirtualHost {
  std::string name;                  // "<namespace>/<virtualservice>"
  std::vector<std::string> domains;  // lower-case
  std::vector<Route> routes;         // in order; the first match wins
};

struct HttpOptions {
  uint32_t max_request_headers_bytes = 60 * 1024;
  uint32_t max_headers = 100;
  uint32_t max_connections = 0;  // open client connections per listener and process; 0: no limit
  Millis request_header_timeout{10000};  // time to receive a whole request head
  Millis idle_timeout{60000};            // keep-alive idle time between requests
  Millis drain_timeout{10000};           // SIGTERM: how long in-flight requests may finish
  bool generate_request_id = true;
  bool use_remote_address = true;  // append the peer to X-Forwarded-For
  std::string server_name;         // Server header on local replies; empty: none
};

struct Listener {
  std::string name;  // "<namespace>/<gateway>"
  std::string address = "0.0.0.0";
  uint16_t port = 0;
  HttpOptions http;
  std::vector<VirtualHost> virtual_hosts;
};

struct Endpoint {
  std::string address;  // numeric IPv4 or IPv6 address
  uint16_t port = 0;
  uint32_t weight = 1;
};

enum class LbPolicy { kRoundRobin, kLeastRequest };

struct Cluster {
  std::string name;  // "<namespace>/<upstream>"
  LbPolicy lb = LbPolicy::kRoundRobin;
  std::vector<Endpoint> endpoints;
  Millis connect_timeout{2000};
  uint32_t max_requests_per_connection = 0;  // 0: unlimited
  Millis idle_connection_timeout{60000};     // pooled idle connection lifetime
};

struct ProxyConfig {
  uint64_t version = 0;  // increases with every published config
  int64_t created_unix_ms = 0;
  std::vector<Listener> listeners;
  std::vector<Cluster> clusters;

  const Cluster* find_cluster(std::string_view name) const {
    for (const auto& c : clusters) {
      if (c.name == name) return &c;
    }
    return nullptr;
  }
};

// The ProxyConfig as JSON (for /config_dump). Compiled regexes are shown by their pattern.
std::string to_json(const ProxyConfig& config, bool pretty = true);

}  // namespace portico::snapshot
