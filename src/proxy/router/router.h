// Request routing of the data plane: virtual-host selection, route matching, weighted cluster
// choice, path rewrites and redirect targets. CompiledListener is built on the main thread (once
// per ProxyConfig) and is immutable afterwards: any worker thread may call it concurrently. The
// free functions are pure and safe on any thread. See docs/routing.md for the rules, with examples.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include <re2/re2.h>

#include "proxy/http/h1_parser.h"
#include "proxy/http/message.h"
#include "snapshot/proxy_config.h"

namespace portico::proxy::router {

// The virtual hosts of one Listener, indexed for fast selection by Host header.
//
// Lifetime: keeps a pointer to `listener` (and to its VirtualHosts); the Listener, normally owned
// by the ProxyConfig this object was built for, must outlive it. Built on the control/main thread;
// after construction every member function is const and thread-safe.
class CompiledListener {
 public:
  explicit CompiledListener(const snapshot::Listener& listener);
  // The same, sharing `previous`'s domain index when `listener` has as many virtual hosts with,
  // position by position, the same domains (the same host, or a host replaced by one with the
  // same domains: a route changed). `previous` (and its Listener) need to live only during the
  // call. At 20,000 domains, rebuilding the index was most of a one-route publication.
  CompiledListener(const snapshot::Listener& listener, const CompiledListener* previous);

  CompiledListener(const CompiledListener&) = delete;
  CompiledListener& operator=(const CompiledListener&) = delete;
  CompiledListener(CompiledListener&&) = default;
  CompiledListener& operator=(CompiledListener&&) = default;

  // The virtual host for a Host header value ("Example.COM", "a.com:8080", "[::1]:80"), or nullptr.
  //
  // Precedence: an exact domain naming a port ("a.com:8080", matches only that host:port), an exact
  // domain without port (any port); the longest "*suffix" wildcard (the '*' stands for at least one
  // character; a wildcard naming a port only matches that port and beats a port-less one); the
  // longest "prefix*" wildcard (at least one character; ports ignored); finally "*". When two
  // virtual hosts list the same domain, the first one in the Listener wins.
  //
  // Cost: one or two hash lookups for exact domains, one per distinct wildcard length otherwise. No
  // allocation for hosts up to kMaxInlineHost bytes (longer ones are lower-cased into a temporary).
  const snapshot::VirtualHost* select_virtual_host(std::string_view host) const;
  // The same as a position in listener().virtual_hosts, or kNoHost.
  static constexpr size_t kNoHost = SIZE_MAX;
  size_t select_index(std::string_view host) const;

  const snapshot::Listener& listener() const { return *listener_; }

  // The position in listener().virtual_hosts of a virtual host this object returned (a linear
  // search, for tools and tests: the request path uses select_index).
  size_t index_of(const snapshot::VirtualHost* vhost) const;

  static constexpr size_t kMaxInlineHost = 255;

  // True when the domain index was shared with the previous CompiledListener (tests, counters).
  bool reused_index() const { return reused_index_; }

 private:
  // Heterogeneous lookup so that a string_view finds a std::string key without a temporary.
  struct Hash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const noexcept {
      return std::hash<std::string_view>{}(s);
    }
  };
  // Values are positions in the Listener's virtual_hosts (the index does not depend on which
  // objects hold those domains, so it survives a host replaced by an equal-domained one).
  using DomainMap = std::unordered_map<std::string, uint32_t, Hash, std::equal_to<>>;
  static constexpr uint32_t kNone = UINT32_MAX;
  // Wildcard domains grouped by the length of their literal part, longest first.
  struct WildcardTier {
    size_t length = 0;
    DomainMap domains;
  };
  struct DomainIndex {
    DomainMap exact;                        // "a.com" and "a.com:8080"
    std::vector<WildcardTier> suffix;       // "*.a.com" stored as ".a.com"
    std::vector<WildcardTier> suffix_port;  // "*.a.com:8080" stored as ".a.com:8080"
    std::vector<WildcardTier> prefix;       // "api.*" stored as "api."
    uint32_t any = kNone;                   // "*"
  };

  static std::shared_ptr<const DomainIndex> build_index(const snapshot::Listener& listener);
  uint32_t select_lowered(std::string_view host) const;
  static void add_wildcard(std::vector<WildcardTier>& tiers, std::string key, uint32_t vhost);
  static uint32_t find_suffix(const std::vector<WildcardTier>& tiers, std::string_view host);
  static uint32_t find_prefix(const std::vector<WildcardTier>& tiers, std::string_view host);

  const snapshot::Listener* listener_;
  std::shared_ptr<const DomainIndex> domains_;  // never null
  bool reused_index_ = false;
};

// What routing looks at in a request, from either the parser's views (h1 headers) or a stream's
// owned message (header map). Exactly one of the two header sources is set.
struct RequestView {
  std::string_view method, path, query, host;
  const http::Header* h1_headers = nullptr;
  size_t h1_count = 0;
  const http::HeaderMap* headers = nullptr;

  static RequestView of(const http::RequestHead& h) {
    return {h.method, h.path, h.query, h.host, h.headers.data(), h.header_count, nullptr};
  }
  static RequestView of(const http::RequestHeaders& h) {
    return {h.method, h.path, h.query, h.authority, nullptr, 0, &h.headers};
  }
};

// The regexes of a virtual host's routes, compiled by the data plane (the snapshot carries
// patterns only). Built once per VirtualHost when a configuration is applied (VirtualHostRuntime)
// and read by any worker. One slot per path, header and query matcher of each route, null where
// the matcher is not a regex; a pattern that does not compile (the control plane checked it, so
// only a foreign snapshot has one) leaves its slot null and never matches.
class RouteRegexes {
 public:
  RouteRegexes() = default;
  explicit RouteRegexes(const snapshot::VirtualHost& vhost);
  // The first slot of routes[i]: its path regex, then one per header matcher, then one per query
  // matcher. nullptr when the virtual host has no regex at all.
  const std::shared_ptr<const re2::RE2>* route(size_t i) const {
    return slots_.empty() ? nullptr : slots_.data() + offsets_[i];
  }
  // Patterns that did not compile ("<pattern>: <error>").
  const std::vector<std::string>& errors() const { return errors_; }

  // A route's regexes alone (tools: `route explain` tests edited copies of a route).
  explicit RouteRegexes(const snapshot::Route& route);

 private:
  void add(const snapshot::Route& route);
  std::vector<std::shared_ptr<const re2::RE2>> slots_;
  std::vector<uint32_t> offsets_;
  std::vector<std::string> errors_;
};

// Compiles one pattern as the data plane does (whole-value match); null when it does not compile.
std::shared_ptr<const re2::RE2> compile_regex(const snapshot::Regex& regex, std::string* error);

// The first route of `vhost` whose match accepts the request, or nullptr. Checks, cheapest first:
// path (request.path, never the query), methods, headers, query parameters. See docs/routing.md.
// `regexes` must have been built from `vhost`. Allocates nothing (RE2 may, inside its own caches).
const snapshot::Route* match_route(const snapshot::VirtualHost& vhost, const RouteRegexes& regexes,
                                   const RequestView& request);
// The same for tools and tests: compiles the virtual host's regexes first (slow).
const snapshot::Route* match_route(const snapshot::VirtualHost& vhost, const RequestView& request);
inline const snapshot::Route* match_route(const snapshot::VirtualHost& vhost,
                                          const http::RequestHead& request) {
  return match_route(vhost, RequestView::of(request));
}

// True when `route` accepts `request` (the per-route test behind match_route). `regexes`: the
// route's slots (RouteRegexes::route), may be null when the route has no regex.
bool route_matches(const snapshot::Route& route, const std::shared_ptr<const re2::RE2>* regexes,
                   const RequestView& request);
// The same for tools and tests: compiles the route's regexes first (slow).
bool route_matches(const snapshot::Route& route, const RequestView& request);
inline bool route_matches(const snapshot::Route& route, const http::RequestHead& request) {
  return route_matches(route, RequestView::of(request));
}

// Weighted choice among action.clusters: `r` must be uniform in [0, action.total_weight). Values
// out of range pick the last cluster; an action without clusters yields an empty name.
const std::string& pick_cluster(const snapshot::ForwardAction& action, uint32_t r);

// The index of the destination a request of a multi-destination action goes to, `random` uniform
// over uint64. The weighted pick (random % total_weight) stands when `usable(i)` says that
// destination can serve. When it cannot (its cluster has no endpoint: canaries promoted or gone),
// its share goes to the others: the pick is made again over the usable destinations only (with
// random / total_weight as the draw) and *skipped is the index of the weighted pick replaced
// (else -1). When none is usable the weighted pick stands (and fails as it would have). On the
// plain path `usable` is asked once.
template <class Usable>
size_t pick_destination(const snapshot::ForwardAction& action, uint64_t random, Usable&& usable,
                        int* skipped) {
  *skipped = -1;
  const size_t n = action.clusters.size();
  if (n <= 1 || action.total_weight == 0) return 0;
  auto pick = [&](uint64_t r, bool only_usable) -> size_t {
    for (size_t i = 0; i < n; ++i) {
      if (only_usable && !usable(i)) continue;
      if (r < action.clusters[i].weight) return i;
      r -= action.clusters[i].weight;
    }
    return n;
  };
  size_t choice = pick(random % action.total_weight, false);
  if (choice == n) choice = n - 1;
  if (usable(choice)) return choice;
  uint64_t total = 0;
  for (size_t i = 0; i < n; ++i) {
    if (usable(i)) total += action.clusters[i].weight;
  }
  if (total == 0) return choice;
  const size_t other = pick((random / action.total_weight) % total, true);
  if (other == n) return choice;
  *skipped = static_cast<int>(choice);
  return other;
}

// The request-target to send upstream: route.options.prefix_rewrite replaces the matched prefix of
// a kPrefix route, or the whole path for kExact/kRegex routes; without a rewrite the path is
// unchanged. An empty resulting path becomes "/". "?" + query is appended when the query is
// non-empty. `out` is cleared first (its capacity is reused).
void rewrite_target(const snapshot::Route& route, const RequestView& request, std::string& out);
inline void rewrite_target(const snapshot::Route& route, const http::RequestHead& request,
                           std::string& out) {
  rewrite_target(route, RequestView::of(request), out);
}

// The Location header value for a redirect route. Scheme: "https" when action.https, else
// `request_scheme`. Host: action.host, else the request's Host; with action.port the host's own
// port is replaced by it; when only the scheme changes, a port that is the old scheme's default
// (80, 443) is dropped; a port equal to the new scheme's default is never written. Path:
// action.path (if it carries its own "?query", that query replaces the request's), else
// action.prefix_rewrite applied as in rewrite_target, else the request path. Query: the request's,
// unless action.strip_query. Without any host (HTTP/1.0 request without Host and no action.host), a
// relative reference (path and query) is returned.
std::string redirect_location(const snapshot::RedirectAction& action, const snapshot::Route& route,
                              const RequestView& request, std::string_view request_scheme);
inline std::string redirect_location(const snapshot::RedirectAction& action,
                                     const snapshot::Route& route, const http::RequestHead& request,
                                     std::string_view request_scheme) {
  return redirect_location(action, route, RequestView::of(request), request_scheme);
}

// Splits a Host value into host and port ("a.com:80" → {"a.com", "80"}, "[::1]:80" → {"[::1]",
// "80"},
// "[::1]" → {"[::1]", ""}, "a.com" → {"a.com", ""}). A value with several ':' and no brackets is
// taken as a host without port.
std::pair<std::string_view, std::string_view> split_host_port(std::string_view host);

}  // namespace portico::proxy::router
