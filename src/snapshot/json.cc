// snapshot::to_json: the ProxyConfig as JSON for /config_dump and `portico route`.
#include <nlohmann/json.hpp>

#include "snapshot/proxy_config.h"

namespace portico::snapshot {
namespace {

using Json = nlohmann::ordered_json;

const char* kind_name(PathMatchKind kind) {
  switch (kind) {
    case PathMatchKind::kPrefix:
      return "prefix";
    case PathMatchKind::kExact:
      return "exact";
    case PathMatchKind::kRegex:
      return "regex";
  }
  return "prefix";
}

Json match_json(const RouteMatch& m) {
  Json j;
  j[kind_name(m.kind)] = m.kind == PathMatchKind::kRegex && m.regex ? m.regex->pattern : m.path;
  j["case_sensitive"] = m.case_sensitive;
  if (!m.headers.empty()) {
    Json hs = Json::array();
    for (const auto& h : m.headers) {
      Json hj;
      hj["name"] = h.name;
      if (h.present_only) {
        hj["present"] = true;
      } else if (h.regex) {
        hj["regex"] = h.regex->pattern;
      } else {
        hj["value"] = h.value;
      }
      if (h.invert) hj["invert"] = true;
      hs.push_back(std::move(hj));
    }
    j["headers"] = std::move(hs);
  }
  if (!m.query.empty()) {
    Json qs = Json::array();
    for (const auto& q : m.query) {
      Json qj;
      qj["name"] = q.name;
      if (q.present_only) {
        qj["present"] = true;
      } else if (q.regex) {
        qj["regex"] = q.regex->pattern;
      } else {
        qj["value"] = q.value;
      }
      qs.push_back(std::move(qj));
    }
    j["query"] = std::move(qs);
  }
  if (!m.methods.empty()) j["methods"] = m.methods;
  return j;
}

Json mutations_json(const HeaderMutations& h) {
  Json j = Json::object();
  if (!h.add.empty()) {
    Json add = Json::array();
    for (const auto& v : h.add) {
      add.push_back(Json{{"name", v.name}, {"value", v.value}, {"append", v.append}});
    }
    j["add"] = std::move(add);
  }
  if (!h.remove.empty()) j["remove"] = h.remove;
  return j;
}

Json action_json(const Route& r) {
  Json j;
  if (const auto* f = std::get_if<ForwardAction>(&r.action)) {
    Json clusters = Json::array();
    for (const auto& c : f->clusters) {
      clusters.push_back(Json{{"cluster", c.cluster}, {"weight", c.weight}});
    }
    j["forward"] = Json{{"clusters", std::move(clusters)}, {"total_weight", f->total_weight}};
  } else if (const auto* rd = std::get_if<RedirectAction>(&r.action)) {
    Json a;
    if (!rd->host.empty()) a["host"] = rd->host;
    if (!rd->path.empty()) a["path"] = rd->path;
    if (!rd->prefix_rewrite.empty()) a["prefix_rewrite"] = rd->prefix_rewrite;
    a["https"] = rd->https;
    if (rd->port != 0) a["port"] = rd->port;
    a["code"] = rd->code;
    a["strip_query"] = rd->strip_query;
    j["redirect"] = std::move(a);
  } else if (const auto* d = std::get_if<DirectResponseAction>(&r.action)) {
    j["direct_response"] =
        Json{{"status", d->status}, {"body", d->body}, {"content_type", d->content_type}};
  }
  return j;
}

Json route_json(const Route& r) {
  Json j;
  j["name"] = r.name;
  j["match"] = match_json(r.match);
  Json action = action_json(r);  // iterating a temporary's items() would dangle
  for (auto& [k, v] : action.items())
    j[k] = v;
  Json o = Json::object();
  if (r.options.timeout) o["timeout_ms"] = r.options.timeout->count();
  if (r.options.prefix_rewrite) o["prefix_rewrite"] = *r.options.prefix_rewrite;
  if (!r.options.host_rewrite.empty()) o["host_rewrite"] = r.options.host_rewrite;
  Json req = mutations_json(r.options.request_headers);
  if (!req.empty()) o["request_headers"] = std::move(req);
  Json resp = mutations_json(r.options.response_headers);
  if (!resp.empty()) o["response_headers"] = std::move(resp);
  if (!o.empty()) j["options"] = std::move(o);
  return j;
}

Json listener_json(const Listener& l) {
  Json j;
  j["name"] = l.name;
  j["address"] = l.address;
  j["port"] = l.port;
  j["http"] = Json{{"max_request_headers_bytes", l.http.max_request_headers_bytes},
                   {"max_headers", l.http.max_headers},
                   {"max_connections", l.http.max_connections},
                   {"request_header_timeout_ms", l.http.request_header_timeout.count()},
                   {"idle_timeout_ms", l.http.idle_timeout.count()},
                   {"drain_timeout_ms", l.http.drain_timeout.count()},
                   {"generate_request_id", l.http.generate_request_id},
                   {"use_remote_address", l.http.use_remote_address},
                   {"server_name", l.http.server_name}};
  Json vhosts = Json::array();
  for (const auto& vh : l.virtual_hosts) {
    Json v;
    v["name"] = vh.name;
    v["domains"] = vh.domains;
    Json routes = Json::array();
    for (const auto& r : vh.routes)
      routes.push_back(route_json(r));
    v["routes"] = std::move(routes);
    vhosts.push_back(std::move(v));
  }
  j["virtual_hosts"] = std::move(vhosts);
  return j;
}

Json cluster_json(const Cluster& c) {
  Json j;
  j["name"] = c.name;
  j["lb"] = c.lb == LbPolicy::kLeastRequest ? "least_request" : "round_robin";
  Json eps = Json::array();
  for (const auto& e : c.endpoints) {
    eps.push_back(Json{{"address", e.address}, {"port", e.port}, {"weight", e.weight}});
  }
  j["endpoints"] = std::move(eps);
  j["connect_timeout_ms"] = c.connect_timeout.count();
  j["max_requests_per_connection"] = c.max_requests_per_connection;
  j["idle_connection_timeout_ms"] = c.idle_connection_timeout.count();
  return j;
}

}  // namespace

std::string to_json(const ProxyConfig& config, bool pretty) {
  Json j;
  j["version"] = config.version;
  j["created_unix_ms"] = config.created_unix_ms;
  Json listeners = Json::array();
  for (const auto& l : config.listeners)
    listeners.push_back(listener_json(l));
  j["listeners"] = std::move(listeners);
  Json clusters = Json::array();
  for (const auto& c : config.clusters)
    clusters.push_back(cluster_json(c));
  j["clusters"] = std::move(clusters);
  // Strings come from configuration files that may hold invalid UTF-8: replace, never throw.
  return j.dump(pretty ? 2 : -1, ' ', false, Json::error_handler_t::replace);
}

}  // namespace portico::snapshot
