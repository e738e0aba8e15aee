#include "cli/explain.h"

#include <algorithm>
#include <cctype>

#include "cli/format.h"
#include "proxy/http/h1_parser.h"
#include "proxy/http/path.h"
#include "proxy/router/router.h"

namespace portico::cli {

using Json = nlohmann::ordered_json;

namespace {

std::string get_string(const Json& j, const char* key, std::string fallback = "") {
  if (!j.is_object()) return fallback;
  auto it = j.find(key);
  return it != j.end() && it->is_string() ? it->get<std::string>() : fallback;
}

template <typename T>
T get_number(const Json& j, const char* key, T fallback) {
  if (!j.is_object()) return fallback;
  auto it = j.find(key);
  return it != j.end() && it->is_number() ? it->get<T>() : fallback;
}

bool get_bool(const Json& j, const char* key, bool fallback) {
  if (!j.is_object()) return fallback;
  auto it = j.find(key);
  return it != j.end() && it->is_boolean() ? it->get<bool>() : fallback;
}

const Json& child(const Json& j, const char* key) {
  static const Json kNull;
  if (!j.is_object()) return kNull;
  auto it = j.find(key);
  return it == j.end() ? kNull : *it;
}

std::string compile(const std::string& pattern, std::optional<snapshot::Regex>* out) {
  re2::RE2 re(pattern, re2::RE2::Quiet);
  if (!re.ok()) return "invalid regex \"" + pattern + "\": " + re.error();
  *out = snapshot::Regex{pattern, true};
  return "";
}

// Fails closed: a field this decoder does not know could change how the proxy matches, and the
// explanation must never disagree with the proxy.
std::string unknown_field(const Json& j, std::initializer_list<const char*> known,
                          const char* what) {
  if (!j.is_object()) return "";
  for (auto it = j.begin(); it != j.end(); ++it) {
    if (std::none_of(known.begin(), known.end(), [&](const char* k) { return it.key() == k; })) {
      return std::string(what) + " field \"" + it.key() +
             "\" is not known to this portico CLI (is it older than the server?)";
    }
  }
  return "";
}

std::string decode_match(const Json& j, snapshot::RouteMatch* m) {
  if (auto e = unknown_field(
          j, {"prefix", "exact", "regex", "case_sensitive", "headers", "query", "methods"},
          "match");
      !e.empty()) {
    return e;
  }
  if (j.contains("exact")) {
    m->kind = snapshot::PathMatchKind::kExact;
    m->path = get_string(j, "exact");
  } else if (j.contains("regex")) {
    m->kind = snapshot::PathMatchKind::kRegex;
    m->path = get_string(j, "regex");
    if (auto e = compile(m->path, &m->regex); !e.empty()) return e;
  } else {
    m->kind = snapshot::PathMatchKind::kPrefix;
    m->path = get_string(j, "prefix", "/");
  }
  m->case_sensitive = get_bool(j, "case_sensitive", true);
  if (m->regex) m->regex->case_sensitive = m->case_sensitive;
  for (const auto& h : child(j, "headers")) {
    if (auto e =
            unknown_field(h, {"name", "value", "regex", "present", "invert"}, "header matcher");
        !e.empty()) {
      return e;
    }
    snapshot::HeaderMatcher hm;
    hm.name = get_string(h, "name");
    hm.present_only = get_bool(h, "present", false);
    hm.invert = get_bool(h, "invert", false);
    hm.value = get_string(h, "value");
    if (h.contains("regex")) {
      if (auto e = compile(get_string(h, "regex"), &hm.regex); !e.empty()) return e;
    }
    m->headers.push_back(std::move(hm));
  }
  for (const auto& q : child(j, "query")) {
    if (auto e = unknown_field(q, {"name", "value", "regex", "present"}, "query matcher");
        !e.empty()) {
      return e;
    }
    snapshot::QueryMatcher qm;
    qm.name = get_string(q, "name");
    qm.present_only = get_bool(q, "present", false);
    qm.value = get_string(q, "value");
    if (q.contains("regex")) {
      if (auto e = compile(get_string(q, "regex"), &qm.regex); !e.empty()) return e;
    }
    m->query.push_back(std::move(qm));
  }
  for (const auto& method : child(j, "methods")) {
    if (method.is_string()) m->methods.push_back(method.get<std::string>());
  }
  return "";
}

std::string decode_route(const Json& j, snapshot::Route* r) {
  r->name = get_string(j, "name");
  if (auto e = decode_match(child(j, "match"), &r->match); !e.empty()) {
    return "route " + r->name + ": " + e;
  }
  if (const Json& f = child(j, "forward"); f.is_object()) {
    snapshot::ForwardAction a;
    for (const auto& c : child(f, "clusters")) {
      a.clusters.push_back({get_string(c, "cluster"), get_number<uint32_t>(c, "weight", 1)});
      a.total_weight += a.clusters.back().weight;
    }
    r->action = std::move(a);
  } else if (const Json& rd = child(j, "redirect"); rd.is_object()) {
    snapshot::RedirectAction a;
    a.host = get_string(rd, "host");
    a.path = get_string(rd, "path");
    a.prefix_rewrite = get_string(rd, "prefix_rewrite");
    a.https = get_bool(rd, "https", false);
    a.port = get_number<uint16_t>(rd, "port", 0);
    a.code = get_number<uint16_t>(rd, "code", 301);
    a.strip_query = get_bool(rd, "strip_query", false);
    r->action = std::move(a);
  } else if (const Json& d = child(j, "direct_response"); d.is_object()) {
    snapshot::DirectResponseAction a;
    a.status = get_number<uint16_t>(d, "status", 200);
    a.body = get_string(d, "body");
    a.content_type = get_string(d, "content_type", "text/plain");
    r->action = std::move(a);
  } else {
    return "route " + r->name +
           ": no action this portico CLI knows (forward, redirect, "
           "direct_response)";
  }
  const Json& o = child(j, "options");
  if (o.contains("timeout_ms"))
    r->options.timeout = snapshot::Millis(get_number(o, "timeout_ms", 0));
  if (o.contains("prefix_rewrite")) r->options.prefix_rewrite = get_string(o, "prefix_rewrite");
  r->options.host_rewrite = get_string(o, "host_rewrite");
  return "";
}

// The lower-case scheme, authority and origin-form target of a URL.
bool split_url(const std::string& url, std::string* scheme, std::string* authority,
               std::string* target, std::string* error) {
  std::string rest = url;
  *scheme = "http";
  auto colon_slashes = rest.find("://");
  if (colon_slashes != std::string::npos) {
    *scheme = rest.substr(0, colon_slashes);
    std::transform(scheme->begin(), scheme->end(), scheme->begin(),
                   [](unsigned char c) { return std::tolower(c); });
    if (*scheme != "http" && *scheme != "https") {
      *error = "URL scheme '" + *scheme + "' is not http or https";
      return false;
    }
    rest = rest.substr(colon_slashes + 3);
  }
  size_t end = rest.find_first_of("/?#");
  *authority = rest.substr(0, end);
  std::string path = end == std::string::npos ? "" : rest.substr(end);
  if (auto hash = path.find('#'); hash != std::string::npos) path.resize(hash);  // never sent
  if (path.empty() || path[0] == '?') path = "/" + path;
  *target = path;
  if (authority->empty()) {
    *error = "the URL '" + url + "' has no host: write http://HOST[:PORT]/path";
    return false;
  }
  if (authority->find('@') != std::string::npos) {
    *error = "the URL '" + url + "' has user information, which HTTP requests do not carry";
    return false;
  }
  return true;
}

Json match_json_of(const Json& route) {
  return child(route, "match");
}

}  // namespace

std::string proxy_config_from_json(const Json& dump, snapshot::ProxyConfig* out) {
  if (!dump.is_object() || !dump.contains("listeners")) {
    return "not a configuration dump (no \"listeners\")";
  }
  out->version = get_number<uint64_t>(dump, "version", 0);
  for (const auto& lj : child(dump, "listeners")) {
    snapshot::Listener l;
    l.name = get_string(lj, "name");
    l.address = get_string(lj, "address", "0.0.0.0");
    l.port = get_number<uint16_t>(lj, "port", 0);
    for (const auto& vj : child(lj, "virtual_hosts")) {
      snapshot::VirtualHost vh;
      vh.name = get_string(vj, "name");
      for (const auto& d : child(vj, "domains")) {
        if (d.is_string()) vh.domains.push_back(d.get<std::string>());
      }
      for (const auto& rj : child(vj, "routes")) {
        snapshot::Route r;
        if (auto e = decode_route(rj, &r); !e.empty()) return e;
        vh.routes.push_back(std::move(r));
      }
      l.virtual_hosts.push_back(std::make_shared<const snapshot::VirtualHost>(std::move(vh)));
    }
    out->listeners.push_back(std::move(l));
  }
  for (const auto& cj : child(dump, "clusters")) {
    snapshot::Cluster c;
    c.name = get_string(cj, "name");
    for (const auto& ej : child(cj, "endpoints")) {
      c.endpoints.push_back({get_string(ej, "address"), get_number<uint16_t>(ej, "port", 0),
                             get_number<uint32_t>(ej, "weight", 1)});
    }
    out->clusters.push_back(std::move(c));
  }
  return "";
}

namespace {

std::string json_quoted(std::string_view s) {
  return Json(std::string(s)).dump(-1, ' ', false, Json::error_handler_t::replace);
}

// A route that accepts every request: an empty prefix, any method, no header or query matcher.
snapshot::Route accept_all(const snapshot::Route& route) {
  snapshot::Route r;
  r.name = route.name;
  r.match.kind = snapshot::PathMatchKind::kPrefix;
  r.match.path = "";
  return r;
}

// The value of the first query parameter called `name` (no percent-decoding, like the router).
std::optional<std::string_view> query_param(std::string_view query, std::string_view name) {
  while (!query.empty()) {
    size_t amp = query.find('&');
    std::string_view param = query.substr(0, amp);
    query = amp == std::string_view::npos ? std::string_view() : query.substr(amp + 1);
    size_t eq = param.find('=');
    if (param.substr(0, eq) == name) {
      return eq == std::string_view::npos ? std::string_view() : param.substr(eq + 1);
    }
  }
  return std::nullopt;
}

}  // namespace

std::vector<std::string> route_mismatches(const snapshot::Route& route,
                                          const proxy::http::RequestHead& request) {
  using proxy::router::route_matches;
  std::vector<std::string> out;
  const snapshot::RouteMatch& match = route.match;

  snapshot::Route path_only = accept_all(route);
  path_only.match.kind = match.kind;
  path_only.match.path = match.path;
  path_only.match.regex = match.regex;
  path_only.match.case_sensitive = match.case_sensitive;
  if (!route_matches(path_only, request)) {
    std::string nocase = match.case_sensitive ? "" : " (in any case)";
    std::string path = json_quoted(request.path);
    switch (match.kind) {
      case snapshot::PathMatchKind::kPrefix:
        out.push_back("path " + path + " does not start with " + json_quoted(match.path) + nocase);
        break;
      case snapshot::PathMatchKind::kExact:
        out.push_back("path " + path + " is not " + json_quoted(match.path) + nocase);
        break;
      case snapshot::PathMatchKind::kRegex:
        out.push_back("path " + path + " does not match the regex " +
                      json_quoted(match.regex ? match.regex->pattern : match.path));
        break;
    }
  }

  snapshot::Route method_only = accept_all(route);
  method_only.match.methods = match.methods;
  if (!route_matches(method_only, request)) {
    std::string list;
    for (const auto& m : match.methods)
      list += (list.empty() ? "" : ", ") + m;
    out.push_back("method " + std::string(request.method) + " is not one of " + list);
  }

  for (const auto& h : match.headers) {
    snapshot::Route header_only = accept_all(route);
    header_only.match.headers = {h};
    if (route_matches(header_only, request)) continue;
    const proxy::http::Header* found = request.find(h.name);
    std::string want = h.present_only ? "present"
                       : h.regex      ? "matching the regex " + json_quoted(h.regex->pattern)
                                      : "equal to " + json_quoted(h.value);
    if (h.invert) {
      out.push_back("header " + h.name + " is " + want + " (" +
                    (found ? json_quoted(found->value) : std::string("absent")) +
                    ") and the matcher is inverted");
    } else if (!found) {
      out.push_back("header " + h.name + " is absent (wanted: " + want + ")");
    } else {
      out.push_back("header " + h.name + ": " + json_quoted(found->value) + " is not " + want);
    }
  }

  for (const auto& q : match.query) {
    snapshot::Route query_only = accept_all(route);
    query_only.match.query = {q};
    if (route_matches(query_only, request)) continue;
    std::string want = q.present_only ? "present"
                       : q.regex      ? "matching the regex " + json_quoted(q.regex->pattern)
                                      : "equal to " + json_quoted(q.value);
    auto value = query_param(request.query, q.name);
    if (!value) {
      out.push_back("query parameter " + q.name + " is absent (wanted: " + want + ")");
    } else {
      out.push_back("query parameter " + q.name + ": " + json_quoted(*value) + " is not " + want);
    }
  }
  return out;
}

std::string describe_match(const Json& m) {
  std::string out;
  for (const char* kind : {"prefix", "exact", "regex"}) {
    if (m.contains(kind)) out = std::string(kind) + " " + child(m, kind).dump();
  }
  if (!get_bool(m, "case_sensitive", true)) out += " (any case)";
  if (m.contains("methods")) {
    std::string list;
    for (const auto& x : child(m, "methods"))
      list += (list.empty() ? "" : ",") + x.get<std::string>();
    out += " methods " + list;
  }
  auto matcher = [](const Json& h) {
    std::string s = get_string(h, "name");
    if (get_bool(h, "present", false)) {
      s += " present";
    } else if (h.contains("regex")) {
      s += "~" + child(h, "regex").dump();
    } else {
      s += "=" + child(h, "value").dump();
    }
    if (get_bool(h, "invert", false)) s = "not " + s;
    return s;
  };
  for (const auto& h : child(m, "headers"))
    out += " header " + matcher(h);
  for (const auto& q : child(m, "query"))
    out += " query " + matcher(q);
  return out;
}

bool explain_route(const Json& dump, const ExplainRequest& request, Json* out, std::string* error) {
  snapshot::ProxyConfig config;
  if (auto e = proxy_config_from_json(dump, &config); !e.empty()) {
    *error = "cannot read the configuration: " + e;
    return false;
  }
  std::string scheme;
  std::string authority;
  std::string target;
  if (!split_url(request.url, &scheme, &authority, &target, error)) return false;
  auto [url_host, url_port] = proxy::router::split_host_port(authority);
  uint16_t port = scheme == "https" ? 443 : 80;
  if (!url_port.empty()) {
    unsigned long v = 0;
    bool ok = url_port.size() <= 5;
    for (char c : url_port) {
      ok = ok && c >= '0' && c <= '9';
      v = v * 10 + static_cast<unsigned long>(c - '0');
    }
    if (!ok || v == 0 || v > 65535) {
      *error = "the URL's port '" + std::string(url_port) + "' is not a port number";
      return false;
    }
    port = static_cast<uint16_t>(v);
  }

  // The request as the proxy would read it: parsed by the data plane's own parser.
  std::string text = request.method + " " + target + " HTTP/1.1\r\n";
  bool has_host = false;
  Json headers = Json::array();
  for (const auto& h : request.headers) {
    size_t colon = h.find(':');
    if (colon == std::string::npos || colon == 0) {
      *error = "-H wants 'Name: value', got '" + h + "'";
      return false;
    }
    std::string name = h.substr(0, colon);
    std::string value = h.substr(colon + 1);
    while (!value.empty() && (value.front() == ' ' || value.front() == '\t'))
      value.erase(0, 1);
    while (!value.empty() && (value.back() == ' ' || value.back() == '\t'))
      value.pop_back();
    if (proxy::http::iequals(name, "host")) has_host = true;
    text += name + ": " + value + "\r\n";
    headers.push_back(name + ": " + value);
  }
  if (!has_host)
    text = text.substr(0, text.find("\r\n") + 2) + "Host: " + authority + "\r\n" +
           text.substr(text.find("\r\n") + 2);
  text += "\r\n";

  Json& x = *out;
  x = Json::object();
  x["request"] =
      Json{{"method", request.method}, {"url", request.url}, {"scheme", scheme}, {"port", port},
           {"target", target},         {"headers", headers}};
  proxy::http::RequestHead head;
  auto parsed = proxy::http::parse_request_head(text, head);
  if (parsed.status != proxy::http::ParseStatus::kComplete) {
    x["outcome"] = "bad_request";
    x["status"] = proxy::http::error_status(parsed.error);
    x["message"] = "the proxy rejects this request before routing: " +
                   std::string(proxy::http::error_text(parsed.error));
    return true;
  }
  x["request"]["host"] = std::string(head.host);
  x["request"]["path"] = std::string(head.path);
  x["request"]["query"] = std::string(head.query);

  // Gateway: the listener on the URL's port (an address equal to the URL's host first, then a
  // wildcard address, then any).
  const snapshot::Listener* listener = nullptr;
  size_t listener_index = 0;
  int best = -1;
  std::vector<std::string> ports;
  for (size_t i = 0; i < config.listeners.size(); ++i) {
    const auto& l = config.listeners[i];
    ports.push_back(std::to_string(l.port));
    if (l.port != port) continue;
    int score = l.address == url_host ? 2 : (l.address == "0.0.0.0" || l.address == "::") ? 1 : 0;
    if (score > best) {
      best = score;
      listener = &l;
      listener_index = i;
    }
  }
  if (!listener) {
    std::sort(ports.begin(), ports.end());
    ports.erase(std::unique(ports.begin(), ports.end()), ports.end());
    std::string list;
    for (const auto& p : ports)
      list += (list.empty() ? "" : ", ") + p;
    x["outcome"] = "no_gateway";
    x["message"] = "no Gateway listens on port " + std::to_string(port) +
                   (list.empty() ? " (no Gateway is in force)" : " (ports in use: " + list + ")");
    return true;
  }
  const Json& listener_json = child(dump, "listeners")[listener_index];
  x["gateway"] =
      Json{{"name", listener->name},
           {"address", listener->address},
           {"port", listener->port},
           {"tls", listener_json.contains("tls") && !child(listener_json, "tls").is_null()}};

  Json notes = Json::array();
  const bool tls = x["gateway"]["tls"].get<bool>();
  if (scheme == "https" && !tls) {
    notes.push_back("the listener on port " + std::to_string(port) +
                    " is plain HTTP: an https:// client fails its TLS handshake");
  } else if (scheme == "http" && tls) {
    notes.push_back("the listener on port " + std::to_string(port) +
                    " expects TLS: a plain http:// client is not served");
  }
  // Path normalisation before routing (HttpOptions::normalize_path, merge_slashes): what is
  // routed is what is forwarded. The options are read from the dump when it carries them, else
  // the snapshot's defaults (normalize, keep slashes, keep escaped slashes).
  const Json& http_options = child(listener_json, "http");
  proxy::http::PathOptions path_options;
  path_options.normalize = get_bool(http_options, "normalize_path", true);
  path_options.merge_slashes = get_bool(http_options, "merge_slashes", false);
  if (get_string(http_options, "escaped_slashes") == "reject") {
    path_options.escaped_slashes = proxy::http::EscapedSlashes::kReject;
  }
  std::string routed_path;
  auto path_status = proxy::http::normalize_path(head.path, path_options, routed_path);
  if (path_status != proxy::http::PathStatus::kOk) {
    x["outcome"] = "bad_request";
    x["status"] = 400;
    x["message"] = "the proxy rejects this path before routing: " +
                   std::string(proxy::http::path_status_text(path_status));
    return true;
  }
  if (routed_path != head.path) {
    notes.push_back("the path is normalized before routing: " + json_quoted(head.path) + " -> " +
                    json_quoted(routed_path));
    head.path = routed_path;
  }
  x["request"]["routed_path"] = routed_path;
  if (!notes.empty()) x["notes"] = notes;

  proxy::router::CompiledListener compiled(*listener);
  const snapshot::VirtualHost* vh = compiled.select_virtual_host(head.host);
  if (!vh) {
    x["outcome"] = "no_virtual_service";
    x["status"] = 404;
    std::string all;
    for (const auto& v : listener->virtual_hosts) {
      for (const auto& d : v->domains)
        all += (all.empty() ? "" : ", ") + d;
    }
    x["message"] = "no virtual service of " + listener->name + " serves the host '" +
                   std::string(head.host) + "' (domains: " + (all.empty() ? "none" : all) + ")";
    return true;
  }
  const size_t vh_index = compiled.index_of(vh);
  const Json& vh_json = child(listener_json, "virtual_hosts")[vh_index];
  x["virtual_service"] = Json{{"name", vh->name}, {"domains", vh->domains}};

  const snapshot::Route* route = proxy::router::match_route(*vh, head);
  Json routes = Json::array();
  for (size_t i = 0; i < vh->routes.size(); ++i) {
    const snapshot::Route& r = vh->routes[i];
    Json entry{{"name", r.name}, {"match", match_json_of(child(vh_json, "routes")[i])}};
    std::vector<std::string> reasons = route_mismatches(r, head);
    entry["matched"] = &r == route;
    entry["reasons"] = reasons;
    routes.push_back(std::move(entry));
    if (&r == route) break;
  }
  x["routes"] = std::move(routes);
  if (!route) {
    x["outcome"] = "no_route";
    x["status"] = 404;
    x["message"] = "no route of " + vh->name + " matches (the proxy answers 404)";
    return true;
  }
  const size_t route_index = static_cast<size_t>(route - vh->routes.data());
  const Json& route_json = child(vh_json, "routes")[route_index];
  x["route"] = Json{{"name", route->name}, {"index", route_index}};
  x["policies"] = route_json.contains("options") ? child(route_json, "options") : Json::object();

  if (const auto* fwd = std::get_if<snapshot::ForwardAction>(&route->action)) {
    x["outcome"] = "forward";
    Json ups = Json::array();
    for (const auto& wc : fwd->clusters) {
      Json u{{"name", wc.cluster}, {"weight", wc.weight}, {"total_weight", fwd->total_weight}};
      Json eps = Json::array();
      if (const auto* c = config.find_cluster(wc.cluster)) {
        for (const auto& e : c->endpoints) {
          bool v6 = e.address.find(':') != std::string::npos;
          eps.push_back((v6 ? "[" + e.address + "]" : e.address) + ":" + std::to_string(e.port));
        }
      }
      u["endpoints"] = std::move(eps);
      ups.push_back(std::move(u));
    }
    x["upstreams"] = std::move(ups);
    std::string upstream_target;
    proxy::router::rewrite_target(*route, head, upstream_target);
    x["upstream_request"] =
        Json{{"target", upstream_target},
             {"host", route->options.host_rewrite.empty() ? std::string(head.host)
                                                          : route->options.host_rewrite}};
    x["message"] = "forwarded by " + route->name;
  } else if (const auto* rd = std::get_if<snapshot::RedirectAction>(&route->action)) {
    x["outcome"] = "redirect";
    x["status"] = rd->code;
    x["redirect"] = Json{{"code", rd->code},
                         {"location", proxy::router::redirect_location(*rd, *route, head, scheme)}};
    x["message"] = "redirected by " + route->name;
  } else if (const auto* d = std::get_if<snapshot::DirectResponseAction>(&route->action)) {
    x["outcome"] = "direct_response";
    x["status"] = d->status;
    x["direct_response"] =
        Json{{"status", d->status}, {"content_type", d->content_type}, {"body", d->body}};
    x["message"] = "answered by " + route->name;
  }
  return true;
}

std::string render_explanation(const Json& x) {
  std::string out;
  auto line = [&](const std::string& label, const std::string& value) {
    out += label;
    if (label.size() < 18) out.append(18 - label.size(), ' ');
    out += value + "\n";
  };
  const Json& req = child(x, "request");
  std::string request_line = get_string(req, "method") + " " + get_string(req, "url");
  for (const auto& h : child(req, "headers"))
    request_line += "  -H '" + h.get<std::string>() + "'";
  line("Request:", request_line);
  if (const Json& g = child(x, "gateway"); g.is_object()) {
    line("Gateway:", get_string(g, "name") + " (listener " + get_string(g, "address") + ":" +
                         child(g, "port").dump() + ")");
  }
  if (const Json& v = child(x, "virtual_service"); v.is_object()) {
    std::string domains;
    for (const auto& d : child(v, "domains"))
      domains += (domains.empty() ? "" : ", ") + d.get<std::string>();
    line("VirtualService:", get_string(v, "name") + " (host " + get_string(req, "host") +
                                "; domains: " + domains + ")");
  }
  if (const Json& routes = child(x, "routes"); routes.is_array() && !routes.empty()) {
    out += "Routes, in order (the first match wins):\n";
    std::vector<std::vector<std::string>> rows;
    size_t n = 0;
    for (const auto& r : routes) {
      ++n;
      std::string verdict = get_bool(r, "matched", false) ? "MATCH" : "no";
      std::string why;
      for (const auto& reason : child(r, "reasons"))
        why += (why.empty() ? "" : "; ") + reason.get<std::string>();
      rows.push_back({"  " + std::to_string(n) + ".", verdict, get_string(r, "name"),
                      describe_match(child(r, "match")), why});
    }
    // Hand-aligned (render_table would print "-" for the empty reason of the match).
    std::vector<size_t> w(5, 0);
    for (const auto& row : rows) {
      for (size_t i = 0; i < 4; ++i)
        w[i] = std::max(w[i], row[i].size());
    }
    for (const auto& row : rows) {
      std::string l;
      for (size_t i = 0; i < 5; ++i) {
        l += row[i];
        if (i < 4) l.append(w[i] - row[i].size() + 2, ' ');
      }
      while (!l.empty() && l.back() == ' ')
        l.pop_back();
      out += l + "\n";
    }
  }
  const std::string outcome = get_string(x, "outcome");
  if (const Json& r = child(x, "route"); r.is_object()) line("Route:", get_string(r, "name"));
  if (outcome == "forward") {
    for (const auto& u : child(x, "upstreams")) {
      std::string eps;
      for (const auto& e : child(u, "endpoints"))
        eps += (eps.empty() ? "" : ", ") + e.get<std::string>();
      std::string share;
      if (child(x, "upstreams").size() > 1) {
        share =
            " (weight " + child(u, "weight").dump() + "/" + child(u, "total_weight").dump() + ")";
      }
      line("Upstream:",
           get_string(u, "name") + share + ": " + (eps.empty() ? "no endpoints" : eps));
    }
    const Json& ur = child(x, "upstream_request");
    line("Sent upstream:", get_string(req, "method") + " " + get_string(ur, "target") +
                               " (Host: " + get_string(ur, "host") + ")");
  } else if (outcome == "redirect") {
    const Json& rd = child(x, "redirect");
    line("Redirect:", child(rd, "code").dump() + " Location: " + get_string(rd, "location"));
  } else if (outcome == "direct_response") {
    const Json& d = child(x, "direct_response");
    std::string body = get_string(d, "body");
    if (body.size() > 60) body = body.substr(0, 57) + "...";
    line("Direct response:", child(d, "status").dump() + " " + Json(body).dump());
  }
  if (const Json& p = child(x, "policies"); p.is_object()) {
    if (p.empty()) {
      line("Policies:", "none (defaults: 15 s timeout, path and Host unchanged)");
    } else {
      out += "Policies:\n";
      std::string yaml = to_yaml(p);
      size_t start = 0;
      while (start < yaml.size()) {
        size_t nl = yaml.find('\n', start);
        out += "  " + yaml.substr(start, nl - start) + "\n";
        start = nl == std::string::npos ? yaml.size() : nl + 1;
      }
    }
  }
  for (const auto& n : child(x, "notes"))
    line("Note:", n.get<std::string>());
  if (outcome != "forward" && outcome != "redirect" && outcome != "direct_response") {
    line("Result:", get_string(x, "message") +
                        (x.contains("status") ? " -> " + child(x, "status").dump() : ""));
  }
  return out;
}

}  // namespace portico::cli
