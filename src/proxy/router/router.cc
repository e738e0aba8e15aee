#include "proxy/router/router.h"

#include "common/regex_cache.h"

#include <algorithm>
#include <cstring>
#include <string>
#include <tuple>

namespace portico::proxy::router {
namespace {

using snapshot::PathMatchKind;

constexpr char lower(char c) {
  return (c >= 'A' && c <= 'Z') ? static_cast<char>(c + 32) : c;
}

// ASCII case-insensitive equality (kept local: the router does not depend on the HTTP parser's
// .cc).
bool ascii_iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (lower(a[i]) != lower(b[i])) return false;
  }
  return true;
}

bool ascii_istarts_with(std::string_view s, std::string_view prefix) {
  return s.size() >= prefix.size() && ascii_iequals(s.substr(0, prefix.size()), prefix);
}

std::string to_lower(std::string_view s) {
  std::string out(s);
  for (char& c : out)
    c = lower(c);
  return out;
}

// Prefix test for the hot path: routes of one virtual host usually share their leading bytes
// ("/api/v1/users", "/api/v1/orders"), so the last byte of the prefix rejects most non-matches
// without a memcmp call.
inline bool starts_with(std::string_view s, std::string_view prefix) {
  const size_t n = prefix.size();
  if (n > s.size()) return false;
  if (n == 0) return true;
  if (s[n - 1] != prefix[n - 1]) return false;
  return std::memcmp(s.data(), prefix.data(), n - 1) == 0;
}

bool full_match(std::string_view text, const re2::RE2* re) {
  return re != nullptr && re2::RE2::FullMatch(re2::StringPiece(text.data(), text.size()), *re);
}

using Slot = std::shared_ptr<const re2::RE2>;

bool path_matches(const snapshot::RouteMatch& match, const Slot* regexes, std::string_view path) {
  switch (match.kind) {
    case PathMatchKind::kPrefix:
      return match.case_sensitive ? starts_with(path, match.path)
                                  : ascii_istarts_with(path, match.path);
    case PathMatchKind::kExact:
      return match.case_sensitive ? path == match.path : ascii_iequals(path, match.path);
    case PathMatchKind::kRegex:
      return regexes != nullptr && full_match(path, regexes[0].get());
  }
  return false;
}

bool method_matches(const std::vector<std::string>& methods, std::string_view method) {
  if (methods.empty()) return true;
  for (const auto& m : methods) {
    if (m == method) return true;
  }
  return false;
}

bool header_matches(const snapshot::HeaderMatcher& matcher, const re2::RE2* re,
                    const RequestView& request) {
  bool found = false;
  auto test = [&](std::string_view name, std::string_view value) {
    if (found || !ascii_iequals(name, matcher.name)) return;
    if (matcher.present_only) {
      found = true;
    } else if (matcher.regex.has_value()) {
      found = full_match(value, re);
    } else {
      found = value == matcher.value;
    }
  };
  if (request.headers) {
    request.headers->for_each(test);
  } else {
    for (size_t i = 0; i < request.h1_count && !found; ++i)
      test(request.h1_headers[i].name, request.h1_headers[i].value);
  }
  return found != matcher.invert;
}

// Calls fn(name, value) for each parameter of a query string until fn returns true. Parameters are
// separated by '&'; the first '=' splits name from value; a parameter without '=' has an empty
// value; empty parameters ("a=1&&b=2") are skipped. No percent-decoding.
template <typename Fn>
bool any_query_param(std::string_view query, Fn&& fn) {
  while (!query.empty()) {
    size_t amp = query.find('&');
    std::string_view param = query.substr(0, amp);
    query = amp == std::string_view::npos ? std::string_view() : query.substr(amp + 1);
    if (param.empty()) continue;
    size_t eq = param.find('=');
    std::string_view name = param.substr(0, eq);
    std::string_view value =
        eq == std::string_view::npos ? std::string_view() : param.substr(eq + 1);
    if (fn(name, value)) return true;
  }
  return false;
}

bool query_matches(const snapshot::QueryMatcher& matcher, const re2::RE2* re,
                   std::string_view query) {
  return any_query_param(query, [&](std::string_view name, std::string_view value) {
    if (name != matcher.name) return false;
    if (matcher.present_only) return true;
    if (matcher.regex.has_value()) return full_match(value, re);
    return value == matcher.value;
  });
}

// Appends the path after a prefix rewrite (or the request path when `rewrite` is null).
void append_rewritten_path(const snapshot::Route& route, std::string_view path,
                           const std::string* rewrite, std::string& out) {
  size_t start = out.size();
  if (rewrite == nullptr) {
    out.append(path);
  } else if (route.match.kind == PathMatchKind::kPrefix && route.match.path.size() <= path.size()) {
    out.append(*rewrite);
    out.append(path.substr(route.match.path.size()));
  } else {
    out.append(*rewrite);
  }
  if (out.size() == start) out.push_back('/');
}

std::string_view default_port(std::string_view scheme) {
  if (ascii_iequals(scheme, "http")) return "80";
  if (ascii_iequals(scheme, "https")) return "443";
  return {};
}

}  // namespace

std::pair<std::string_view, std::string_view> split_host_port(std::string_view host) {
  if (!host.empty() && host.front() == '[') {
    size_t close = host.find(']');
    if (close == std::string_view::npos) return {host, {}};
    std::string_view rest = host.substr(close + 1);
    if (rest.size() > 1 && rest.front() == ':') return {host.substr(0, close + 1), rest.substr(1)};
    return {host.substr(0, close + 1), {}};
  }
  size_t colon = host.rfind(':');
  if (colon == std::string_view::npos || host.find(':') != colon) return {host, {}};
  return {host.substr(0, colon), host.substr(colon + 1)};
}

// ---------------------------------------------------------------------------------------------
// CompiledListener

CompiledListener::CompiledListener(const snapshot::Listener& listener)
    : CompiledListener(listener, nullptr) {}

CompiledListener::CompiledListener(const snapshot::Listener& listener,
                                   const CompiledListener* previous)
    : listener_(&listener) {
  const auto& hosts = listener.virtual_hosts;
  if (previous != nullptr && previous->listener_->virtual_hosts.size() == hosts.size()) {
    const auto& before = previous->listener_->virtual_hosts;
    bool same = true;
    for (size_t i = 0; i < hosts.size() && same; ++i)
      same = before[i] == hosts[i] || before[i]->domains == hosts[i]->domains;
    if (same) {
      domains_ = previous->domains_;
      reused_index_ = true;
      return;
    }
  }
  domains_ = build_index(listener);
}

std::shared_ptr<const CompiledListener::DomainIndex> CompiledListener::build_index(
    const snapshot::Listener& listener) {
  auto index = std::make_shared<DomainIndex>();
  for (size_t i = 0; i < listener.virtual_hosts.size(); ++i) {
    const snapshot::VirtualHost& vhost = *listener.virtual_hosts[i];
    const auto at = static_cast<uint32_t>(i);
    for (const auto& raw : vhost.domains) {
      std::string domain = to_lower(raw);
      if (domain.empty()) continue;
      if (domain == "*") {
        if (index->any == kNone) index->any = at;
      } else if (domain.front() == '*') {
        std::string key = domain.substr(1);
        bool has_port = !split_host_port(key).second.empty();
        add_wildcard(has_port ? index->suffix_port : index->suffix, std::move(key), at);
      } else if (domain.back() == '*') {
        domain.pop_back();
        add_wildcard(index->prefix, std::move(domain), at);
      } else {
        index->exact.emplace(std::move(domain), at);  // emplace keeps the first vhost naming it
      }
    }
  }
  return index;
}

void CompiledListener::add_wildcard(std::vector<WildcardTier>& tiers, std::string key,
                                    uint32_t vhost) {
  size_t length = key.size();
  auto it = std::find_if(tiers.begin(), tiers.end(),
                         [&](const WildcardTier& t) { return t.length <= length; });
  if (it == tiers.end() || it->length != length) {
    it = tiers.insert(it, WildcardTier{length, {}});
  }
  it->domains.emplace(std::move(key), vhost);
}

uint32_t CompiledListener::find_suffix(const std::vector<WildcardTier>& tiers,
                                       std::string_view host) {
  for (const auto& tier : tiers) {  // longest first; the '*' needs at least one character
    if (tier.length >= host.size()) continue;
    auto it = tier.domains.find(host.substr(host.size() - tier.length));
    if (it != tier.domains.end()) return it->second;
  }
  return kNone;
}

uint32_t CompiledListener::find_prefix(const std::vector<WildcardTier>& tiers,
                                       std::string_view host) {
  for (const auto& tier : tiers) {
    if (tier.length >= host.size()) continue;
    auto it = tier.domains.find(host.substr(0, tier.length));
    if (it != tier.domains.end()) return it->second;
  }
  return kNone;
}

size_t CompiledListener::index_of(const snapshot::VirtualHost* vhost) const {
  const auto& hosts = listener_->virtual_hosts;
  for (size_t i = 0; i < hosts.size(); ++i)
    if (hosts[i].get() == vhost) return i;
  return kNoHost;
}

const snapshot::VirtualHost* CompiledListener::select_virtual_host(std::string_view host) const {
  const size_t at = select_index(host);
  return at == kNoHost ? nullptr : listener_->virtual_hosts[at].get();
}

size_t CompiledListener::select_index(std::string_view host) const {
  uint32_t at;
  if (host.size() <= kMaxInlineHost) {
    char buf[kMaxInlineHost];
    for (size_t i = 0; i < host.size(); ++i)
      buf[i] = lower(host[i]);
    at = select_lowered(std::string_view(buf, host.size()));
  } else {
    std::string lowered = to_lower(host);
    at = select_lowered(lowered);
  }
  return at == kNone ? kNoHost : at;
}

uint32_t CompiledListener::select_lowered(std::string_view host) const {
  const DomainIndex& d = *domains_;
  auto [name, port] = split_host_port(host);
  if (!d.exact.empty()) {
    if (!port.empty()) {
      auto it = d.exact.find(host);
      if (it != d.exact.end()) return it->second;
    }
    auto it = d.exact.find(name);
    if (it != d.exact.end()) return it->second;
  }
  if (!port.empty()) {
    if (uint32_t v = find_suffix(d.suffix_port, host); v != kNone) return v;
  }
  if (uint32_t v = find_suffix(d.suffix, name); v != kNone) return v;
  if (uint32_t v = find_prefix(d.prefix, name); v != kNone) return v;
  return d.any;
}

// ---------------------------------------------------------------------------------------------
// Routes

std::shared_ptr<const re2::RE2> compile_regex(const snapshot::Regex& regex, std::string* error) {
  auto re = common::shared_regex(regex.pattern, regex.case_sensitive);
  if (!re->ok()) {
    if (error != nullptr) *error = regex.pattern + ": " + re->error();
    return nullptr;
  }
  return re;
}

RouteRegexes::RouteRegexes(const snapshot::VirtualHost& vhost) {
  bool any = false;
  for (const auto& r : vhost.routes) {
    any = any || r.match.regex.has_value();
    for (const auto& h : r.match.headers)
      any = any || h.regex.has_value();
    for (const auto& q : r.match.query)
      any = any || q.regex.has_value();
  }
  if (!any) return;  // route() answers nullptr: no slot to look at
  offsets_.reserve(vhost.routes.size());
  for (const auto& r : vhost.routes)
    add(r);
}

RouteRegexes::RouteRegexes(const snapshot::Route& route) {
  add(route);
}

void RouteRegexes::add(const snapshot::Route& route) {
  offsets_.push_back(static_cast<uint32_t>(slots_.size()));
  auto slot = [&](const std::optional<snapshot::Regex>& regex) {
    std::string error;
    slots_.push_back(regex ? compile_regex(*regex, &error) : nullptr);
    if (!error.empty()) errors_.push_back(std::move(error));
  };
  slot(route.match.kind == PathMatchKind::kRegex ? route.match.regex : std::nullopt);
  for (const auto& h : route.match.headers)
    slot(h.regex);
  for (const auto& q : route.match.query)
    slot(q.regex);
}

bool route_matches(const snapshot::Route& route, const Slot* regexes, const RequestView& request) {
  const snapshot::RouteMatch& match = route.match;
  if (!path_matches(match, regexes, request.path)) return false;
  if (!method_matches(match.methods, request.method)) return false;
  size_t slot = 1;
  for (const auto& h : match.headers) {
    const re2::RE2* re = regexes != nullptr ? regexes[slot].get() : nullptr;
    ++slot;
    if (!header_matches(h, re, request)) return false;
  }
  for (const auto& q : match.query) {
    const re2::RE2* re = regexes != nullptr ? regexes[slot].get() : nullptr;
    ++slot;
    if (!query_matches(q, re, request.query)) return false;
  }
  return true;
}

bool route_matches(const snapshot::Route& route, const RequestView& request) {
  RouteRegexes regexes(route);
  return route_matches(route, regexes.route(0), request);
}

const snapshot::Route* match_route(const snapshot::VirtualHost& vhost, const RouteRegexes& regexes,
                                   const RequestView& request) {
  for (size_t i = 0; i < vhost.routes.size(); ++i) {
    if (route_matches(vhost.routes[i], regexes.route(i), request)) return &vhost.routes[i];
  }
  return nullptr;
}

const snapshot::Route* match_route(const snapshot::VirtualHost& vhost, const RequestView& request) {
  RouteRegexes regexes(vhost);
  return match_route(vhost, regexes, request);
}

const std::string& pick_cluster(const snapshot::ForwardAction& action, uint32_t r) {
  static const std::string kNone;
  if (action.clusters.empty()) return kNone;
  uint64_t upto = 0;
  for (const auto& wc : action.clusters) {
    upto += wc.weight;
    if (r < upto) return wc.cluster;
  }
  return action.clusters.back().cluster;
}

void rewrite_target(const snapshot::Route& route, const RequestView& request, std::string& out) {
  out.clear();
  const auto& rewrite = route.options.prefix_rewrite;
  append_rewritten_path(route, request.path, rewrite.has_value() ? &*rewrite : nullptr, out);
  if (!request.query.empty()) {
    out.push_back('?');
    out.append(request.query);
  }
}

std::string redirect_location(const snapshot::RedirectAction& action, const snapshot::Route& route,
                              const RequestView& request, std::string_view request_scheme) {
  std::string_view scheme = action.https ? std::string_view("https") : request_scheme;
  if (scheme.empty()) scheme = "http";

  std::string_view host_name;
  std::string_view host_port;
  std::string port_text;
  if (!action.host.empty()) {
    std::tie(host_name, host_port) = split_host_port(action.host);
  } else {
    std::tie(host_name, host_port) = split_host_port(request.host);
    // Only the scheme changes: the old scheme's default port would now be wrong, drop it.
    if (action.port == 0 && !host_port.empty() && !ascii_iequals(scheme, request_scheme) &&
        host_port == default_port(request_scheme)) {
      host_port = {};
    }
  }
  if (action.port != 0) {
    port_text = std::to_string(action.port);
    host_port = port_text;
  }
  if (host_port == default_port(scheme)) host_port = {};

  std::string out;
  out.reserve(scheme.size() + host_name.size() + host_port.size() + request.path.size() +
              request.query.size() + action.path.size() + 16);
  if (!host_name.empty()) {
    out.append(scheme);
    out.append("://");
    out.append(host_name);
    if (!host_port.empty()) {
      out.push_back(':');
      out.append(host_port);
    }
  }
  bool path_has_query = false;
  if (!action.path.empty()) {
    out.append(action.path);
    path_has_query = action.path.find('?') != std::string::npos;
  } else {
    append_rewritten_path(route, request.path,
                          action.prefix_rewrite.empty() ? nullptr : &action.prefix_rewrite, out);
  }
  if (!action.strip_query && !path_has_query && !request.query.empty()) {
    out.push_back('?');
    out.append(request.query);
  }
  return out;
}

}  // namespace portico::proxy::router
