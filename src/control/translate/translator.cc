#include "control/translate/translator.h"

#include <algorithm>
#include <map>
#include <set>
#include <string>

#include "api/fields.h"

namespace portico::control {
namespace {

using api::Diagnostic;
using api::Resource;

struct Entry {
  const Resource* resource = nullptr;
  std::vector<Diagnostic> reasons;
  bool rejected() const { return api::has_errors(reasons); }
  std::string id() const { return resource->meta.ns + "/" + resource->meta.name; }
  void add(Diagnostic::Severity severity, api::Location loc, std::string path, std::string msg) {
    // The same cross-resource problem can be found twice (e.g. through two gateways): report once.
    for (const auto& d : reasons) {
      if (d.severity == severity && d.path == path && d.message == msg) return;
    }
    Diagnostic d;
    d.severity = severity;
    d.file = resource->file;
    d.line = loc.line;
    d.column = loc.column;
    d.path = std::move(path);
    d.message = std::move(msg);
    reasons.push_back(std::move(d));
  }
};

// Orders "<namespace>/<name>" ids by namespace, then name (plain string order would put "a-b/x"
// before "a/x").
struct IdLess {
  bool operator()(const std::string& a, const std::string& b) const {
    size_t sa = a.find('/'), sb = b.find('/');
    std::string_view na(a.data(), std::min(sa, a.size())), nb(b.data(), std::min(sb, b.size()));
    if (na != nb) return na < nb;
    return a.compare(na.size(), std::string::npos, b, nb.size(), std::string::npos) < 0;
  }
};
using EntryMap = std::map<std::string, Entry, IdLess>;

bool labels_match(const std::map<std::string, std::string>& selector,
                  const std::map<std::string, std::string>& labels) {
  for (const auto& [k, v] : selector) {
    auto it = labels.find(k);
    if (it == labels.end() || it->second != v) return false;
  }
  return true;
}

bool is_wildcard(const std::string& address) {
  return address == "0.0.0.0" || address == "::";
}

// Two listeners cannot both bind when they share a port and their addresses overlap (equal, or one
// is the wildcard of the other's family).
bool binds_overlap(const api::GatewaySpec& a, const api::GatewaySpec& b) {
  if (a.bind_port != b.bind_port) return false;
  if (a.bind_address == b.bind_address) return true;
  int fa = api::ip_family(a.bind_address), fb = api::ip_family(b.bind_address);
  if (fa != fb) return false;
  return is_wildcard(a.bind_address) || is_wildcard(b.bind_address);
}

std::string endpoint_text(const api::GatewaySpec& g) {
  bool v6 = g.bind_address.find(':') != std::string::npos;
  return (v6 ? "[" + g.bind_address + "]" : g.bind_address) + ":" + std::to_string(g.bind_port);
}

snapshot::RouteMatch translate_match(const api::Matcher& m) {
  snapshot::RouteMatch out;
  switch (m.kind) {
    case api::PathKind::kPrefix:
      out.kind = snapshot::PathMatchKind::kPrefix;
      break;
    case api::PathKind::kExact:
      out.kind = snapshot::PathMatchKind::kExact;
      break;
    case api::PathKind::kRegex:
      out.kind = snapshot::PathMatchKind::kRegex;
      out.regex = snapshot::Regex{m.regex.source, m.regex.re};
      break;
  }
  out.path = m.path;
  out.case_sensitive = m.case_sensitive;
  for (const auto& h : m.headers) {
    snapshot::HeaderMatcher hm;
    hm.name = h.name;
    hm.invert = h.invert;
    if (!h.value) {
      hm.present_only = true;
    } else if (h.regex) {
      hm.regex = snapshot::Regex{h.pattern.source, h.pattern.re};
    } else {
      hm.value = *h.value;
    }
    out.headers.push_back(std::move(hm));
  }
  for (const auto& q : m.query) {
    snapshot::QueryMatcher qm;
    qm.name = q.name;
    if (!q.value) {
      qm.present_only = true;
    } else if (q.regex) {
      qm.regex = snapshot::Regex{q.pattern.source, q.pattern.re};
    } else {
      qm.value = *q.value;
    }
    out.query.push_back(std::move(qm));
  }
  out.methods = m.methods;
  return out;
}

snapshot::HeaderMutations translate_headers(const std::vector<api::HeaderToAdd>& add,
                                            const std::vector<std::string>& remove) {
  snapshot::HeaderMutations out;
  for (const auto& h : add)
    out.add.push_back({h.name, h.value, h.append});
  out.remove = remove;
  return out;
}

void translate_virtual_service(const Resource& r, snapshot::VirtualHost* out) {
  const auto& spec = r.virtual_service();
  out->name = r.meta.ns + "/" + r.meta.name;
  for (const auto& d : spec.domains) {
    if (std::find(out->domains.begin(), out->domains.end(), d.value) == out->domains.end()) {
      out->domains.push_back(d.value);
    }
  }
  for (size_t i = 0; i < spec.routes.size(); ++i) {
    const auto& route = spec.routes[i];
    snapshot::Route base;
    base.name = out->name + "/" + route.label(i);
    if (const auto* fwd = std::get_if<api::ForwardAction>(&route.action)) {
      snapshot::ForwardAction a;
      for (const auto& d : fwd->destinations) {
        a.clusters.push_back({d.upstream.to_string(), d.weight});
        a.total_weight += d.weight;
      }
      base.action = std::move(a);
    } else if (const auto* redirect = std::get_if<api::RedirectAction>(&route.action)) {
      snapshot::RedirectAction a;
      a.host = redirect->host;
      a.path = redirect->path;
      a.prefix_rewrite = redirect->prefix_rewrite;
      a.https = redirect->https;
      a.port = redirect->port;
      a.code = redirect->code;
      a.strip_query = redirect->strip_query;
      base.action = std::move(a);
    } else if (const auto* direct = std::get_if<api::DirectResponseAction>(&route.action)) {
      snapshot::DirectResponseAction a;
      a.status = direct->status;
      a.body = direct->body;
      base.action = std::move(a);
    } else {
      continue;  // no action: the resource has an error and is not translated
    }
    const auto& o = route.options;
    base.options.timeout = o.timeout;
    base.options.prefix_rewrite = o.prefix_rewrite;
    base.options.host_rewrite = o.host_rewrite;
    base.options.request_headers =
        translate_headers(o.headers.request_add, o.headers.request_remove);
    base.options.response_headers =
        translate_headers(o.headers.response_add, o.headers.response_remove);
    for (const auto& m : route.matchers) {
      snapshot::Route r2 = base;
      r2.match = translate_match(m);
      out->routes.push_back(std::move(r2));
    }
  }
}

snapshot::HttpOptions translate_http(const api::GatewayHttpOptions& h) {
  snapshot::HttpOptions out;
  if (h.max_request_headers_bytes) out.max_request_headers_bytes = *h.max_request_headers_bytes;
  if (h.max_headers) out.max_headers = *h.max_headers;
  if (h.max_connections) out.max_connections = *h.max_connections;
  if (h.request_header_timeout) out.request_header_timeout = *h.request_header_timeout;
  if (h.idle_timeout) out.idle_timeout = *h.idle_timeout;
  if (h.drain_timeout) out.drain_timeout = *h.drain_timeout;
  if (h.generate_request_id) out.generate_request_id = *h.generate_request_id;
  if (h.server_name) out.server_name = *h.server_name;
  return out;
}

snapshot::Cluster translate_upstream(const Resource& r) {
  const auto& spec = r.upstream();
  snapshot::Cluster c;
  c.name = r.meta.ns + "/" + r.meta.name;
  c.lb = spec.lb == api::LbPolicy::kLeastRequest ? snapshot::LbPolicy::kLeastRequest
                                                 : snapshot::LbPolicy::kRoundRobin;
  for (const auto& h : spec.hosts)
    c.endpoints.push_back({h.address, h.port, h.weight});
  c.connect_timeout = spec.connect_timeout;
  c.max_requests_per_connection = spec.max_requests_per_connection;
  c.idle_connection_timeout = spec.idle_timeout;
  return c;
}

}  // namespace

Translation translate(const std::vector<api::Resource>& resources, uint64_t version,
                      int64_t created_unix_ms) {
  // Entries sorted by namespace/name within each kind, so every loop below is deterministic.
  EntryMap gateways, services, upstreams;
  for (const auto& r : resources) {
    Entry e{&r, r.diagnostics};
    std::string id = r.meta.ns + "/" + r.meta.name;
    switch (r.kind) {
      case api::Kind::kGateway:
        gateways.emplace(id, std::move(e));
        break;
      case api::Kind::kVirtualService:
        services.emplace(id, std::move(e));
        break;
      case api::Kind::kUpstream:
        upstreams.emplace(id, std::move(e));
        break;
    }
  }

  // 1. Routes should point at accepted upstreams.
  for (auto& [id, vs] : services) {
    for (const auto& route : vs.resource->virtual_service().routes) {
      const auto* fwd = std::get_if<api::ForwardAction>(&route.action);
      if (fwd == nullptr) continue;
      for (const auto& d : fwd->destinations) {
        if (d.upstream.name.empty()) continue;  // already an error
        auto it = upstreams.find(d.upstream.to_string());
        // A warning, not an error: the route answers 503 and everything else keeps working.
        if (it == upstreams.end()) {
          vs.add(Diagnostic::Severity::kWarning, d.upstream.loc, d.upstream.path,
                 "upstream " + d.upstream.to_string() + " not found; the route answers 503");
        } else if (it->second.rejected()) {
          vs.add(Diagnostic::Severity::kWarning, d.upstream.loc, d.upstream.path,
                 "upstream " + d.upstream.to_string() + " is rejected; the route answers 503");
        }
      }
    }
  }

  // 2. Gateways that cannot all bind.
  for (auto a = gateways.begin(); a != gateways.end(); ++a) {
    if (a->second.rejected()) continue;
    for (auto b = std::next(a); b != gateways.end(); ++b) {
      if (b->second.rejected()) continue;
      const auto& ga = a->second.resource->gateway();
      const auto& gb = b->second.resource->gateway();
      if (!binds_overlap(ga, gb)) continue;
      a->second.add(Diagnostic::Severity::kError, ga.bind_loc, "spec.bindPort",
                    "bind address " + endpoint_text(ga) + " conflicts with gateway " + b->first +
                        " (" + endpoint_text(gb) + ")");
      b->second.add(Diagnostic::Severity::kError, gb.bind_loc, "spec.bindPort",
                    "bind address " + endpoint_text(gb) + " conflicts with gateway " + a->first +
                        " (" + endpoint_text(ga) + ")");
    }
  }
  // Conflicts are mutual: decide rejections only after every pair was looked at.

  // 3. Which VirtualServices each gateway selects (by reference, by labels, or all).
  std::map<std::string, std::vector<std::string>, IdLess> selected;  // gateway id -> vs ids, sorted
  for (auto& [gid, gw] : gateways) {
    const auto& spec = gw.resource->gateway();
    std::set<std::string, IdLess> ids;
    std::set<std::string> missing;
    if (!spec.virtual_services.empty()) {
      for (const auto& ref : spec.virtual_services) {
        if (ref.name.empty()) continue;
        if (services.count(ref.to_string()) == 0) {
          if (!missing.insert(ref.to_string()).second) continue;  // listed twice: warned already
          gw.add(Diagnostic::Severity::kWarning, ref.loc, ref.path,
                 "virtual service " + ref.to_string() + " not found");
        } else {
          ids.insert(ref.to_string());
        }
      }
    } else {
      for (const auto& [vid, vs] : services) {
        if (!spec.selector || labels_match(*spec.selector, vs.resource->meta.labels)) {
          ids.insert(vid);
        }
      }
    }
    selected[gid].assign(ids.begin(), ids.end());
  }

  // 4. Domain conflicts among the VirtualServices of each accepted gateway.
  std::vector<std::tuple<std::string, api::Location, std::string, std::string>> conflicts;
  for (const auto& [gid, gw] : gateways) {
    if (gw.rejected()) continue;
    std::map<std::string, std::vector<std::pair<std::string, const api::Domain*>>> owners;
    for (const auto& vid : selected[gid]) {
      const Entry& vs = services.at(vid);
      if (vs.rejected()) continue;
      std::set<std::string> own;
      for (const auto& d : vs.resource->virtual_service().domains) {
        if (own.insert(d.value).second) owners[d.value].push_back({vid, &d});
      }
    }
    for (const auto& [domain, list] : owners) {
      if (list.size() < 2) continue;
      for (const auto& [vid, d] : list) {
        std::string others;
        for (const auto& [other, unused] : list) {
          if (other != vid) others += (others.empty() ? "" : ", ") + other;
        }
        conflicts.emplace_back(vid, d->loc, d->field_path,
                               "domain conflict: \"" + domain +
                                   "\" is also served by virtual "
                                   "service " +
                                   others + " on gateway " + gid);
      }
    }
  }
  for (auto& [vid, loc, path, msg] : conflicts) {
    services.at(vid).add(Diagnostic::Severity::kError, loc, path, msg);
  }

  // 5. Gateways naming a rejected VirtualService; VirtualServices no gateway serves.
  std::set<std::string> served;
  for (auto& [gid, gw] : gateways) {
    const auto& spec = gw.resource->gateway();
    std::set<std::string> warned;
    for (const auto& ref : spec.virtual_services) {
      auto it = services.find(ref.to_string());
      if (it != services.end() && it->second.rejected() && warned.insert(it->first).second) {
        gw.add(Diagnostic::Severity::kWarning, ref.loc, ref.path,
               "virtual service " + ref.to_string() + " is rejected and not served");
      }
    }
    if (!gw.rejected()) {
      for (const auto& vid : selected[gid])
        served.insert(vid);
    }
  }
  for (auto& [vid, vs] : services) {
    if (!vs.rejected() && served.count(vid) == 0) {
      vs.add(Diagnostic::Severity::kWarning, vs.resource->loc, "",
             "not served: no accepted gateway selects this virtual service");
    }
  }

  // 6. The ProxyConfig, from accepted (or warned) resources only.
  auto config = std::make_shared<snapshot::ProxyConfig>();
  config->version = version;
  config->created_unix_ms = created_unix_ms;
  std::map<std::string, snapshot::VirtualHost, IdLess> hosts;
  for (const auto& [vid, vs] : services) {
    if (vs.rejected()) continue;
    translate_virtual_service(*vs.resource, &hosts[vid]);
  }
  for (const auto& [gid, gw] : gateways) {
    if (gw.rejected()) continue;
    const auto& spec = gw.resource->gateway();
    snapshot::Listener l;
    l.name = gid;
    l.address = spec.bind_address;
    l.port = spec.bind_port;
    l.http = translate_http(spec.http);
    for (const auto& vid : selected[gid]) {
      auto it = hosts.find(vid);
      if (it != hosts.end()) l.virtual_hosts.push_back(it->second);
    }
    config->listeners.push_back(std::move(l));
  }
  for (const auto& [uid, up] : upstreams) {
    if (up.rejected()) continue;
    config->clusters.push_back(translate_upstream(*up.resource));
  }

  Translation out;
  out.config = std::move(config);
  auto emit = [&](EntryMap& entries) {
    for (auto& [id, e] : entries) {
      ResourceStatus s;
      s.kind = api::to_string(e.resource->kind);
      s.ns = e.resource->meta.ns;
      s.name = e.resource->meta.name;
      s.file = e.resource->file;
      s.line = e.resource->loc.line;
      api::sort_by_position(e.reasons);
      s.state = state_from(e.reasons);
      s.reasons = std::move(e.reasons);
      s.spec_json = e.resource->spec_json;
      out.statuses.push_back(std::move(s));
    }
  };
  // Sorted by kind name: Gateway < Upstream < VirtualService.
  emit(gateways);
  emit(upstreams);
  emit(services);
  return out;
}

}  // namespace portico::control
