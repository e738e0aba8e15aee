#include "control/translate/translator.h"

#include <algorithm>
#include <charconv>
#include <map>
#include <set>
#include <string>
#include <unordered_map>

#include "api/fields.h"
#include "api/validate.h"
#include "control/translate/tls_material.h"

namespace portico::control {
namespace {

using api::Diagnostic;
using api::Resource;

struct VsMemo;

struct Entry {
  const Resource* resource = nullptr;
  std::vector<Diagnostic> reasons;
  ResourcePtr ptr;  // owns `resource`
  bool served = false;
  std::shared_ptr<const snapshot::VirtualHost> host;  // VirtualServices, when translated
  std::shared_ptr<VsMemo> memo;                       // VirtualServices: their cached translation
  bool rejected() const { return api::has_errors(reasons); }
  std::string id() const { return resource->meta.ns + "/" + resource->meta.name; }
  Diagnostic make(Diagnostic::Severity severity, api::Location loc, std::string path,
                  std::string msg) const {
    Diagnostic d;
    d.severity = severity;
    d.file = resource->file;
    d.line = loc.line;
    d.column = loc.column;
    d.path = std::move(path);
    d.message = std::move(msg);
    return d;
  }
  // The same cross-resource problem can be found twice (e.g. through two gateways): report once.
  void push(Diagnostic d) {
    for (const auto& r : reasons) {
      if (r.severity == d.severity && r.path == d.path && r.message == d.message) return;
    }
    reasons.push_back(std::move(d));
  }
  void add(Diagnostic::Severity severity, api::Location loc, std::string path, std::string msg) {
    for (const auto& d : reasons) {
      if (d.severity == severity && d.path == path && d.message == msg) return;
    }
    reasons.push_back(make(severity, loc, std::move(path), std::move(msg)));
  }
};

// What the translation of one VirtualService read besides the VirtualService itself.
struct Deps {
  std::set<std::string> upstreams;  // existence and state
  std::set<std::string> groups;     // identity and state
  std::set<std::string> tables;     // identity, state and first error (found or looked for)
  bool selector = false;            // delegation by selector: every RouteTable
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

bool expression_matches(const api::LabelExpression& e,
                        const std::map<std::string, std::string>& labels) {
  auto it = labels.find(e.key);
  bool present = it != labels.end();
  auto in_values = [&] {
    return present && std::find(e.values.begin(), e.values.end(), it->second) != e.values.end();
  };
  auto as_int = [](const std::string& s, long long* out) {
    auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), *out);
    return ec == std::errc() && end == s.data() + s.size();
  };
  switch (e.op) {
    case api::LabelOp::kIn:
      return in_values();
    case api::LabelOp::kNotIn:
      return !in_values();  // Kubernetes: a missing label matches NotIn
    case api::LabelOp::kExists:
      return present;
    case api::LabelOp::kDoesNotExist:
      return !present;
    case api::LabelOp::kGreaterThan:
    case api::LabelOp::kLessThan: {
      long long have = 0, want = 0;
      if (!present || !as_int(it->second, &have) || !as_int(e.values.at(0), &want)) return false;
      return e.op == api::LabelOp::kGreaterThan ? have > want : have < want;
    }
  }
  return false;
}

bool namespace_allowed(const std::optional<std::vector<std::string>>& namespaces,
                       const std::string& ns) {
  if (!namespaces) return true;
  for (const auto& n : *namespaces) {
    if (n == "*" || n == ns) return true;
  }
  return false;
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
      out.regex = snapshot::Regex{m.regex.source, m.case_sensitive};
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
      hm.regex = snapshot::Regex{h.pattern.source, true};
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
      qm.regex = snapshot::Regex{q.pattern.source, true};
    } else {
      qm.value = *q.value;
    }
    out.query.push_back(std::move(qm));
  }
  out.methods = m.methods;
  return out;
}

snapshot::RetryPolicy translate_retries(const api::RetryOptions& r) {
  using P = snapshot::RetryPolicy;
  using A = api::RetryOptions;
  static_assert(P::kOn5xx == A::kOn5xx && P::kOnGatewayError == A::kOnGatewayError &&
                P::kOnReset == A::kOnReset && P::kOnConnectFailure == A::kOnConnectFailure &&
                P::kOnRetriable4xx == A::kOnRetriable4xx &&
                P::kOnRefusedStream == A::kOnRefusedStream &&
                P::kOnStatusCodes == A::kOnStatusCodes);
  P p;
  p.retry_on = r.retry_on;
  p.retriable_status_codes = r.retriable_status_codes;
  p.num_retries = r.num_retries;
  p.per_try_timeout = r.per_try_timeout;
  p.base_interval = r.base_interval;
  p.max_interval = r.max_interval.value_or(r.base_interval * 10);
  p.retry_non_idempotent = r.retry_non_idempotent;
  p.max_replay_bytes = r.max_replay_bytes;
  return p;
}

snapshot::HeaderMutations translate_headers(const std::vector<api::HeaderToAdd>& add,
                                            const std::vector<std::string>& remove) {
  snapshot::HeaderMutations out;
  for (const auto& h : add)
    out.add.push_back({h.name, h.value, h.append});
  out.remove = remove;
  return out;
}

// A route after delegation is flattened: the effective route and its name in stats.
// The state of a resource a route names.
enum class RefState { kMissing, kAccepted, kRejected };

// A reference to a missing or rejected resource, reported on `e` (nothing when it is accepted).
void report_ref(Entry& e, const api::ResourceRef& ref, RefState state,
                Diagnostic::Severity severity, const std::string& what, const char* consequence) {
  if (state == RefState::kAccepted) return;
  e.add(severity, ref.loc, ref.path,
        what + (state == RefState::kMissing ? " not found" : " is rejected") + consequence);
}

bool hashes(const api::UpstreamSpec& u) {
  return u.lb == api::LbPolicy::kRingHash || u.lb == api::LbPolicy::kMaglev;
}

// A route (or an UpstreamGroup) should point at an accepted Upstream: a missing or rejected one
// is a warning, not an error (the traffic meant for it answers 503, everything else works).
template <typename UpstreamState>
void check_upstream(Entry& e, const api::ResourceRef& ref, const UpstreamState& upstream_state) {
  if (ref.name.empty()) return;  // already an error
  const std::string id = ref.to_string();
  report_ref(e, ref, upstream_state(id), Diagnostic::Severity::kWarning, "upstream " + id,
             "; the route answers 503");
}

// Routes must point at accepted UpstreamGroups (an error otherwise) and should point at accepted
// Upstreams.
// Hash policies on a route whose Upstream balances without a key (not ringHash or maglev) have no
// effect (Envoy ignores them): a warning. `upstream_hashes(id)` is false only for an accepted
// Upstream that does not hash.
template <typename UpstreamState, typename GroupState, typename UpstreamHashes>
void check_route_refs(Entry& e, const std::vector<api::Route>& routes,
                      const UpstreamState& upstream_state, const GroupState& group_state,
                      const UpstreamHashes& upstream_hashes) {
  for (const auto& route : routes) {
    const auto* fwd = std::get_if<api::ForwardAction>(&route.action);
    if (fwd == nullptr) continue;
    for (const auto& d : fwd->destinations)
      check_upstream(e, d.upstream, upstream_state);
    if (!route.options.hash_policies.empty()) {
      for (const auto& d : fwd->destinations) {
        if (d.upstream.name.empty() || upstream_hashes(d.upstream.to_string())) continue;
        e.add(Diagnostic::Severity::kWarning, route.options.lb_hash_loc, route.options.lb_hash_path,
              "hash policies have no effect: upstream " + d.upstream.to_string() +
                  " does not use ringHash or maglev");
      }
    }
    if (fwd->upstream_group && !fwd->upstream_group->name.empty()) {
      const auto& ref = *fwd->upstream_group;
      const std::string id = ref.to_string();
      report_ref(e, ref, group_state(id), Diagnostic::Severity::kError, "upstream group " + id, "");
    }
  }
}

struct FlatRoute {
  api::Route route;
  std::string name;  // "<vs-ns>/<vs>/<label>[/<table-ns>/<table>/<label>...]"
  bool delegated = false;
};

void translate_virtual_service(const Resource& r, const std::vector<FlatRoute>& routes,
                               const EntryMap& groups, snapshot::VirtualHost* out, Deps* deps) {
  const auto& spec = r.virtual_service();
  out->name = r.meta.ns + "/" + r.meta.name;
  for (const auto& d : spec.domains) {
    if (std::find(out->domains.begin(), out->domains.end(), d.value) == out->domains.end()) {
      out->domains.push_back(d.value);
    }
  }
  for (const auto& flat : routes) {
    const auto& route = flat.route;
    snapshot::Route base;
    base.name = flat.name;
    if (const auto* fwd = std::get_if<api::ForwardAction>(&route.action)) {
      snapshot::ForwardAction a;
      const auto* dests = &fwd->destinations;
      if (fwd->upstream_group) {
        auto it = groups.find(fwd->upstream_group->to_string());
        deps->groups.insert(fwd->upstream_group->to_string());
        if (it == groups.end()) continue;  // reported as an error
        dests = &it->second.resource->upstream_group().destinations;
      }
      for (const auto& d : *dests) {
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
      continue;  // no action, or a delegation left unresolved: reported already
    }
    const auto& o = route.options;
    base.options.timeout = o.timeout;
    base.options.prefix_rewrite = o.prefix_rewrite;
    base.options.host_rewrite = o.host_rewrite;
    base.options.request_headers =
        translate_headers(o.headers.request_add, o.headers.request_remove);
    base.options.response_headers =
        translate_headers(o.headers.response_add, o.headers.response_remove);
    base.options.access_log_disabled = o.access_log_disabled.value_or(false);
    base.options.max_request_body_bytes = o.max_request_body_bytes;
    if (o.upgrades) {
      base.options.websocket = o.upgrades->websocket;
      base.options.connect = o.upgrades->connect;
    }
    base.options.idle_timeout = o.idle_timeout;
    for (const auto& p : o.hash_policies) {
      snapshot::HashPolicy hp;
      hp.kind = p.kind == api::HashPolicy::Kind::kHeader   ? snapshot::HashPolicy::Kind::kHeader
                : p.kind == api::HashPolicy::Kind::kCookie ? snapshot::HashPolicy::Kind::kCookie
                                                           : snapshot::HashPolicy::Kind::kSourceIp;
      hp.name = p.name;
      hp.terminal = p.terminal;
      base.options.hash_policies.push_back(std::move(hp));
    }
    if (o.retries) base.options.retry = translate_retries(*o.retries);
    for (const auto& m : route.matchers) {
      snapshot::Route r2 = base;
      r2.match = translate_match(m);
      out->routes.push_back(std::move(r2));
    }
  }
}

// ---- Delegation (RouteTables) ----

bool starts_with(std::string_view s, std::string_view prefix) {
  return s.size() >= prefix.size() && s.substr(0, prefix.size()) == prefix;
}

// Parent options override the child's, field by field.
api::RouteOptions merge_options(const api::RouteOptions& parent, const api::RouteOptions& child) {
  api::RouteOptions out = child;
  if (parent.timeout) out.timeout = parent.timeout;
  if (parent.prefix_rewrite) out.prefix_rewrite = parent.prefix_rewrite;
  if (!parent.host_rewrite.empty()) out.host_rewrite = parent.host_rewrite;
  const auto& h = parent.headers;
  if (!h.request_add.empty() || !h.request_remove.empty() || !h.response_add.empty() ||
      !h.response_remove.empty()) {
    out.headers = h;
  }
  if (parent.access_log_disabled) out.access_log_disabled = parent.access_log_disabled;
  if (parent.max_request_body_bytes) out.max_request_body_bytes = parent.max_request_body_bytes;
  if (parent.upgrades) out.upgrades = parent.upgrades;
  if (parent.idle_timeout) out.idle_timeout = parent.idle_timeout;
  if (!parent.hash_policies.empty()) {
    out.hash_policies = parent.hash_policies;
    out.lb_hash_path = parent.lb_hash_path;
    out.lb_hash_loc = parent.lb_hash_loc;
  }
  if (parent.retries) out.retries = parent.retries;  // the whole policy, as Gloo merges options
  return out;
}

template <typename T>
bool includes_all(const std::vector<T>& outer, const std::vector<T>& inner) {
  for (const auto& x : inner) {
    if (std::find(outer.begin(), outer.end(), x) == outer.end()) return false;
  }
  return true;
}

// Why `child` may not sit under the delegating matcher `parent` (Gloo's rules); empty when it may.
std::string delegation_problem(const api::Matcher& parent, const api::Matcher& child) {
  if (child.kind == api::PathKind::kRegex) {
    if (!starts_with(child.path, parent.path)) {
      return "a delegated regex must start with the parent's prefix \"" + parent.path + "\"";
    }
  } else if (!starts_with(child.path, parent.path)) {
    return "path \"" + child.path + "\" does not start with the parent's prefix \"" + parent.path +
           "\"";
  }
  if (child.case_sensitive != parent.case_sensitive) {
    return "caseSensitive differs from the parent route's";
  }
  if (!includes_all(child.headers, parent.headers)) {
    return "headers must include every header matcher of the parent route";
  }
  if (!includes_all(child.query, parent.query)) {
    return "queryParameters must include every query matcher of the parent route";
  }
  if (!parent.methods.empty() &&
      (child.methods.empty() || !includes_all(parent.methods, child.methods))) {
    return "methods must be among the parent route's methods";
  }
  return "";
}

struct InvalidRoutePolicy {
  bool replace = false;
  uint16_t status = 500;
  std::optional<std::string> body;
};

class Flattener {
 public:
  // Diagnostics added to tables are also appended to `table_log`; what was read goes to `deps`.
  Flattener(EntryMap& tables, const std::set<std::string>& broken_tables,
            const InvalidRoutePolicy& policy, Deps* deps,
            std::vector<std::pair<std::string, Diagnostic>>* table_log)
      : tables_(tables), broken_(broken_tables), policy_(policy), deps_(deps), log_(table_log) {}

  // Tables this VirtualService delegates to.
  const std::set<std::string>& reached() const { return reached_; }

  std::vector<FlatRoute> flatten(Entry& vs) {
    vs_ = &vs;
    std::vector<FlatRoute> out;
    std::vector<std::string> chain = {"vs:" + vs.id()};
    walk(vs, vs.resource->virtual_service().routes, nullptr, {}, vs.id(), chain, &out);
    return out;
  }

 private:
  // The tables a delegating route names, in order: weight, then namespace/name.
  std::vector<Entry*> resolve(Entry& owner, const api::DelegateAction& d) {
    std::vector<Entry*> out;
    if (d.ref) {
      deps_->tables.insert(d.ref->to_string());
      auto it = tables_.find(d.ref->to_string());
      if (it != tables_.end()) out.push_back(&it->second);
      return out;
    }
    deps_->selector = true;
    for (auto& [id, t] : tables_) {
      const auto& meta = t.resource->meta;
      bool ns_ok = d.namespaces.empty() ? meta.ns == owner.resource->meta.ns : false;
      for (const auto& n : d.namespaces) {
        if (n == "*" || n == meta.ns) ns_ok = true;
      }
      if (!ns_ok || !labels_match(d.labels, meta.labels)) continue;
      bool ok = true;
      for (const auto& e : d.expressions) {
        if (!expression_matches(e, meta.labels)) ok = false;
      }
      if (ok) out.push_back(&t);
    }
    std::stable_sort(out.begin(), out.end(), [](const Entry* a, const Entry* b) {
      return a->resource->route_table().weight < b->resource->route_table().weight;
    });
    return out;
  }

  void invalid(const std::vector<api::Matcher>& matchers, const std::string& name,
               const std::string& problem, std::vector<FlatRoute>* out) {
    if (!policy_.replace) return;
    FlatRoute f;
    f.name = name;
    f.delegated = true;
    f.route.matchers = matchers;
    api::DirectResponseAction a;
    a.status = policy_.status;
    a.body = policy_.body ? *policy_.body : "invalid route " + name + ": " + problem + "\n";
    f.route.action = std::move(a);
    out->push_back(std::move(f));
  }

  // Routes of `owner` (the VirtualService or a RouteTable), under the delegating matcher `parent`
  // (null at the top) whose options `parent_options` override the routes'.
  void walk(Entry& owner, const std::vector<api::Route>& routes, const api::Matcher* parent,
            const api::RouteOptions& parent_options, const std::string& name_prefix,
            std::vector<std::string>& chain, std::vector<FlatRoute>* out) {
    bool top = parent == nullptr;
    for (size_t i = 0; i < routes.size(); ++i) {
      const auto& route = routes[i];
      std::string name = name_prefix + "/" + route.label(i);
      if (!top) {
        // Gloo's rules for a delegated route, checked against the delegating matcher.
        std::string problem;
        const api::Matcher* bad = nullptr;
        for (const auto& m : route.matchers) {
          problem = delegation_problem(*parent, m);
          if (!problem.empty()) {
            bad = &m;
            break;
          }
        }
        if (bad != nullptr) {
          table_add(owner, Diagnostic::Severity::kWarning, bad->loc, bad->field_path,
                    problem + " (delegated from virtual service " + vs_->id() + "; route " +
                        (policy_.replace ? "replaced" : "dropped") + ")");
          vs_->add(Diagnostic::Severity::kWarning, vs_->resource->loc, "",
                   "route table " + owner.id() + ": " + bad->field_path + ": " + problem +
                       " (route " + (policy_.replace ? "replaced" : "dropped") + ")");
          invalid(route.matchers, name, problem, out);
          continue;
        }
      }
      api::RouteOptions options =
          top ? route.options : merge_options(parent_options, route.options);
      const auto* delegate = std::get_if<api::DelegateAction>(&route.action);
      if (delegate == nullptr) {
        FlatRoute f{route, name, !top};
        f.route.options = std::move(options);
        out->push_back(std::move(f));
        continue;
      }
      if (route.matchers.size() != 1) continue;  // an error of its owner
      const api::Matcher& here = route.matchers[0];
      std::vector<Entry*> targets = resolve(owner, *delegate);
      if (targets.empty()) {
        std::string what = delegate->ref
                               ? "route table " + delegate->ref->to_string() + " not found"
                               : "no route table matches the selector";
        vs_->add(Diagnostic::Severity::kWarning, delegate->loc, &owner == vs_ ? delegate->path : "",
                 (&owner == vs_ ? "" : "route table " + owner.id() + ": ") + what);
        invalid({here}, name, what, out);
        continue;
      }
      for (Entry* t : targets) {
        std::string tid = t->id();
        deps_->tables.insert(tid);
        std::string key = "rt:" + tid;
        if (std::find(chain.begin(), chain.end(), key) != chain.end()) {
          std::string path;
          bool started = false;
          for (const auto& c : chain) {
            if (c == key) started = true;
            if (started && starts_with(c, "rt:")) {
              std::string id = c.substr(3);
              std::replace(id.begin(), id.end(), '/', '.');
              path += "[" + id + "] -> ";
            }
          }
          std::string id = tid;
          std::replace(id.begin(), id.end(), '/', '.');
          std::string msg = "delegation cycle detected: " + path + "[" + id + "]";
          table_add(*t, Diagnostic::Severity::kWarning, t->resource->loc, "", msg);
          vs_->add(Diagnostic::Severity::kWarning, vs_->resource->loc, "", msg);
          invalid({here}, name, msg, out);
          continue;
        }
        if (broken_.count(tid) != 0) {
          std::string first;
          for (const auto& d : t->reasons) {
            if (d.is_error()) {
              first = d.to_string();
              break;
            }
          }
          vs_->add(Diagnostic::Severity::kWarning, vs_->resource->loc, "",
                   "route table " + tid + " is rejected, its routes are " +
                       (policy_.replace ? "replaced" : "dropped") + ": " + first);
          invalid({here}, name, "route table " + tid + " is rejected", out);
          continue;
        }
        reached_.insert(tid);
        chain.push_back(key);
        walk(*t, t->resource->route_table().routes, &here, options, name + "/" + tid, chain, out);
        chain.pop_back();
      }
    }
  }

  void table_add(Entry& t, Diagnostic::Severity severity, api::Location loc, std::string path,
                 std::string msg) {
    Diagnostic d = t.make(severity, loc, std::move(path), std::move(msg));
    log_->emplace_back(t.id(), d);
    t.push(std::move(d));
  }

  EntryMap& tables_;
  const std::set<std::string>& broken_;
  InvalidRoutePolicy policy_;
  Deps* deps_;
  std::vector<std::pair<std::string, Diagnostic>>* log_;
  Entry* vs_ = nullptr;
  std::set<std::string> reached_;
};

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
  if (h.use_remote_address) out.use_remote_address = *h.use_remote_address;
  if (h.xff_num_trusted_hops) out.xff_num_trusted_hops = *h.xff_num_trusted_hops;
  if (h.normalize_path) out.normalize_path = *h.normalize_path;
  if (h.merge_slashes) out.merge_slashes = *h.merge_slashes;
  if (h.max_request_body_bytes) out.max_request_body_bytes = *h.max_request_body_bytes;
  if (h.request_timeout) out.request_timeout = *h.request_timeout;
  if (h.stream_idle_timeout) out.stream_idle_timeout = *h.stream_idle_timeout;
  if (h.http2_cleartext_prior_knowledge)
    out.http2.cleartext_prior_knowledge = *h.http2_cleartext_prior_knowledge;
  if (h.http2_max_concurrent_streams)
    out.http2.max_concurrent_streams = *h.http2_max_concurrent_streams;
  if (h.http2_initial_stream_window)
    out.http2.initial_stream_window = *h.http2_initial_stream_window;
  if (h.http2_initial_connection_window)
    out.http2.initial_connection_window = *h.http2_initial_connection_window;
  // gRPC-Web translation, on by default as in Gloo (the filter takes part only in gRPC-Web
  // requests: the others do not pay for it beyond a content-type check).
  if (!h.grpc_web_disable.value_or(false)) out.filters.push_back({"grpc_web", "{}"});
  return out;
}

// ---- TLS ----

// Key material read and checked, from a Secret or from sslFiles.
struct TlsData {
  std::string source;  // "<namespace>/<name>" of the Secret, or "file:<tlsCert or rootCa path>"
  std::string cert_chain;
  std::string private_key;
  std::string root_ca;
  std::string ocsp_der;
  bool has_cert() const { return !cert_chain.empty(); }
};

std::filesystem::path resource_dir(const TranslateOptions& options, const Resource& r) {
  std::filesystem::path file(r.file);
  std::filesystem::path parent = file.parent_path();
  if (parent.is_absolute()) return parent;
  if (options.base_dir.empty()) return parent;
  return options.base_dir / parent;
}

// Reads and checks the four pieces; every problem is an error on `e` (at the piece's path).
bool load_tls(Entry& e, const std::filesystem::path& dir, const api::SecretMaterial& cert,
              const api::SecretMaterial& key, const api::SecretMaterial& ca,
              const api::SecretMaterial& ocsp, TlsData* out) {
  bool ok = true;
  auto load = [&](const api::SecretMaterial& m, std::string* slot,
                  std::string (*check)(const std::string&)) {
    if (!m.given()) return;
    std::string error;
    auto bytes = load_material(m, dir, &error);
    if (!bytes) {
      e.add(Diagnostic::Severity::kError, m.loc, m.path, error);
      ok = false;
      return;
    }
    if (check != nullptr) {
      std::string problem = check(*bytes);
      if (!problem.empty()) {
        e.add(Diagnostic::Severity::kError, m.loc, m.path,
              (m.file.empty() ? "" : m.file + ": ") + problem);
        ok = false;
        return;
      }
    }
    *slot = std::move(*bytes);
  };
  load(cert, &out->cert_chain, check_cert_chain);
  load(key, &out->private_key, check_private_key);
  load(ca, &out->root_ca, check_ca_bundle);
  std::string ocsp_raw;
  load(ocsp, &ocsp_raw, nullptr);
  if (!ocsp_raw.empty()) {
    std::string error;
    auto der = decode_ocsp_response(ocsp_raw, ocsp.file.empty(), &error);
    if (!der) {
      e.add(Diagnostic::Severity::kError, ocsp.loc, ocsp.path,
            (ocsp.file.empty() ? "" : ocsp.file + ": ") + error);
      ok = false;
    } else {
      out->ocsp_der = std::move(*der);
    }
  }
  if (ok && !out->cert_chain.empty() && !out->private_key.empty()) {
    std::string problem = check_key_matches(out->cert_chain, out->private_key);
    if (!problem.empty()) {
      e.add(Diagnostic::Severity::kError, key.loc, key.path, problem);
      ok = false;
    }
  }
  return ok;
}

// The TLS data a reference or sslFiles names; nullopt (and an error on `e`) when unusable.
std::optional<TlsData> tls_source(Entry& e, const TranslateOptions& options,
                                  const std::optional<api::ResourceRef>& secret_ref,
                                  const std::optional<api::SslFiles>& ssl_files,
                                  const EntryMap& secrets,
                                  const std::map<std::string, TlsData, IdLess>& resolved) {
  if (secret_ref) {
    const auto& ref = *secret_ref;
    if (ref.name.empty()) return std::nullopt;  // already an error
    auto it = secrets.find(ref.to_string());
    if (it == secrets.end()) {
      e.add(Diagnostic::Severity::kError, ref.loc, ref.path,
            "secret " + ref.to_string() + " not found");
      return std::nullopt;
    }
    if (it->second.rejected()) {
      e.add(Diagnostic::Severity::kError, ref.loc, ref.path,
            "secret " + ref.to_string() + " is rejected");
      return std::nullopt;
    }
    auto data = resolved.find(ref.to_string());
    if (data == resolved.end()) {
      e.add(Diagnostic::Severity::kError, ref.loc, ref.path,
            "secret " + ref.to_string() + " has no tls data");
      return std::nullopt;
    }
    return data->second;
  }
  if (ssl_files) {
    const auto& f = *ssl_files;
    TlsData data;
    if (!load_tls(e, resource_dir(options, *e.resource), f.tls_cert, f.tls_key, f.root_ca,
                  f.ocsp_staple, &data)) {
      return std::nullopt;
    }
    data.source = "file:" + (f.tls_cert.given() ? f.tls_cert.file : f.root_ca.file);
    return data;
  }
  return TlsData{};
}

snapshot::TlsVersion translate_version(api::TlsVersion v) {
  return v == api::TlsVersion::kTls13 ? snapshot::TlsVersion::kTls13 : snapshot::TlsVersion::kTls12;
}

// A VirtualService's or a Gateway's sslConfig as a TlsServerConfig; nullopt with errors on `e`.
std::optional<snapshot::TlsServerConfig> server_tls(
    Entry& e, const TranslateOptions& options, const api::DownstreamTls& t, const EntryMap& secrets,
    const std::map<std::string, TlsData, IdLess>& resolved) {
  auto data = tls_source(e, options, t.secret_ref, t.ssl_files, secrets, resolved);
  if (!data) return std::nullopt;
  bool ok = true;
  if (!data->has_cert()) {
    if (t.secret_ref) {
      e.add(Diagnostic::Severity::kError, t.secret_ref->loc, t.secret_ref->path,
            "secret " + t.secret_ref->to_string() +
                " has no certChain and privateKey: a server needs a certificate");
    }
    ok = false;  // sslFiles without tlsCert was reported by the decoder
  }
  snapshot::TlsServerConfig out;
  out.certificates.push_back({data->source, data->cert_chain, data->private_key, data->ocsp_der});
  if (t.min_version) out.min_version = translate_version(*t.min_version);
  if (t.max_version) out.max_version = translate_version(*t.max_version);
  if (out.min_version == snapshot::TlsVersion::kTls13 &&
      out.max_version == snapshot::TlsVersion::kTls12) {
    e.add(Diagnostic::Severity::kError, t.loc, t.path + ".parameters",
          "minimumProtocolVersion is above maximumProtocolVersion");
    ok = false;
  }
  if (!t.alpn.empty()) out.alpn = t.alpn;
  bool mtls = !data->root_ca.empty() && !t.one_way_tls;
  if (mtls) {
    out.client_ca_pem = data->root_ca;
    out.client_ca_secret = data->source;
  }
  if (!t.verify_subject_alt_names.empty()) {
    if (!mtls) {
      e.add(Diagnostic::Severity::kError, t.verify_loc, t.path + ".verifySubjectAltName",
            "needs client certificates: a rootCa (in the secret or sslFiles) and oneWayTls unset");
      ok = false;
    }
    out.allowed_client_sans = t.verify_subject_alt_names;
  }
  if (!t.client_identity_header.empty()) {
    if (!mtls) {
      e.add(Diagnostic::Severity::kError, t.client_identity_loc, t.path + ".clientIdentityHeader",
            "needs client certificates: a rootCa (in the secret or sslFiles) and oneWayTls unset");
      ok = false;
    }
    out.client_identity_header = t.client_identity_header;
  }
  if (!ok) return std::nullopt;
  return out;
}

// An Upstream's sslConfig as a TlsClientConfig; nullopt with errors on `e`.
std::optional<snapshot::TlsClientConfig> client_tls(
    Entry& e, const TranslateOptions& options, const api::UpstreamTls& t, const EntryMap& secrets,
    const std::map<std::string, TlsData, IdLess>& resolved, bool http2) {
  auto data = tls_source(e, options, t.secret_ref, t.ssl_files, secrets, resolved);
  if (!data) return std::nullopt;
  snapshot::TlsClientConfig out;
  out.sni = t.sni;
  out.verify_names = t.verify_subject_alt_names;
  out.insecure_skip_verify = t.insecure_skip_verify;
  out.alpn = t.alpn;
  if (http2) {
    // HTTP/2 over TLS is negotiated with ALPN h2 (RFC 9113 §3.2): offered by default; a list
    // that leaves it out contradicts useHttp2.
    if (out.alpn.empty()) {
      out.alpn = {"h2"};
    } else if (std::find(out.alpn.begin(), out.alpn.end(), "h2") == out.alpn.end()) {
      e.add(Diagnostic::Severity::kError, t.loc, t.path + ".alpnProtocols",
            "must offer h2 when spec.useHttp2 is true");
      return std::nullopt;
    }
  } else if (std::find(out.alpn.begin(), out.alpn.end(), "h2") != out.alpn.end()) {
    // The HTTP/1.1 codec cannot speak on a connection that negotiated h2.
    e.add(Diagnostic::Severity::kError, t.loc, t.path + ".alpnProtocols",
          "h2 needs spec.useHttp2: true (this Upstream speaks HTTP/1.1)");
    return std::nullopt;
  }
  if (t.min_version) out.min_version = translate_version(*t.min_version);
  if (!data->root_ca.empty()) {
    if (t.insecure_skip_verify) {
      e.add(Diagnostic::Severity::kError, t.loc, t.path + ".insecureSkipVerify",
            "contradicts the rootCa of " + data->source + ": nothing would be verified");
      return std::nullopt;
    }
    out.ca_pem = data->root_ca;
    out.ca_secret = data->source;
  }
  if (data->has_cert()) {
    out.client_certificate =
        snapshot::TlsCertificate{data->source, data->cert_chain, data->private_key, ""};
  }
  return out;
}

snapshot::Cluster translate_upstream(const Resource& r) {
  const auto& spec = r.upstream();
  snapshot::Cluster c;
  c.name = r.meta.ns + "/" + r.meta.name;
  switch (spec.lb) {
    case api::LbPolicy::kRoundRobin:
      c.lb = snapshot::LbPolicy::kRoundRobin;
      break;
    case api::LbPolicy::kLeastRequest:
      c.lb = snapshot::LbPolicy::kLeastRequest;
      break;
    case api::LbPolicy::kRandom:
      c.lb = snapshot::LbPolicy::kRandom;
      break;
    case api::LbPolicy::kRingHash:
      c.lb = snapshot::LbPolicy::kRingHash;
      break;
    case api::LbPolicy::kMaglev:
      c.lb = snapshot::LbPolicy::kMaglev;
      break;
  }
  c.choice_count = spec.choice_count;
  c.ring_min_size = spec.ring_min_size;
  c.ring_max_size = spec.ring_max_size;
  c.healthy_panic_threshold = spec.healthy_panic_threshold;
  // Failover tier k (prioritizedLocalities[k]) is priority k + 1. Names are resolved by the
  // control plane's DNS discovery (control/discovery), which adds their endpoints.
  auto add_host = [&c](const api::StaticHost& h, uint32_t priority) {
    if (h.is_name) {
      snapshot::DiscoveryTarget t;
      t.source = "dns";
      t.name = h.address;
      t.port = h.port;
      t.weight = h.weight;
      t.priority = priority;
      c.discovery.push_back(std::move(t));
    } else {
      c.endpoints.push_back({h.address, h.port, h.weight, priority});
    }
  };
  for (const auto& h : spec.hosts)
    add_host(h, 0);
  // Consul: one target per data center (none listed: the agent's), each instance's own port.
  if (const auto& consul = spec.consul) {
    std::vector<std::string> dcs = consul->datacenters;
    if (dcs.empty()) dcs.emplace_back();
    for (const auto& dc : dcs) {
      snapshot::DiscoveryTarget t;
      t.source = "consul";
      t.name = consul->service_name;
      t.tags = consul->tags;
      t.datacenter = dc;
      c.discovery.push_back(std::move(t));
    }
  }
  // Nomad: one target (the namespace asked for), each instance's own port; the canary selection
  // (Upstream nomad.canary) filters the instances.
  if (const auto& nomad = spec.nomad) {
    snapshot::DiscoveryTarget t;
    t.source = "nomad";
    t.name = nomad->service_name;
    t.tags = nomad->tags;
    t.ns = nomad->ns;
    t.canary_tags = nomad->canary_tags;
    t.canary = nomad->canary == api::NomadCanary::kOnly ? snapshot::DiscoveryTarget::Canary::kOnly
               : nomad->canary == api::NomadCanary::kExclude
                   ? snapshot::DiscoveryTarget::Canary::kExclude
                   : snapshot::DiscoveryTarget::Canary::kInclude;
    c.discovery.push_back(std::move(t));
  }
  // Kubernetes: the ready endpoints of a Service's port (its targetPort, from EndpointSlices).
  // The name carries the port ("web:80"): two ports of one Service are two targets (key()).
  if (const auto& kube = spec.kube) {
    snapshot::DiscoveryTarget t;
    t.source = "kube";
    t.name = kube->service_name + ":" + std::to_string(kube->service_port);
    t.ns = kube->service_namespace;
    t.port = kube->service_port;
    c.discovery.push_back(std::move(t));
  }
  for (size_t k = 0; k < spec.failover.size(); ++k) {
    for (const auto& h : spec.failover[k].hosts)
      add_host(h, static_cast<uint32_t>(k + 1));
  }
  c.connect_timeout = spec.connect_timeout;
  c.max_requests_per_connection = spec.max_requests_per_connection;
  c.idle_connection_timeout = spec.idle_timeout;
  if (spec.use_http2) c.protocol = snapshot::UpstreamProtocol::kHttp2;
  if (spec.http2_max_concurrent_streams)
    c.http2_max_concurrent_streams = *spec.http2_max_concurrent_streams;
  if (spec.http2_initial_stream_window)
    c.http2_initial_stream_window = *spec.http2_initial_stream_window;
  if (spec.http2_initial_connection_window)
    c.http2_initial_connection_window = *spec.http2_initial_connection_window;
  if (spec.max_connections) c.max_connections = *spec.max_connections;
  if (spec.max_idle_connections) c.max_idle_connections = *spec.max_idle_connections;
  if (const auto& h = spec.health_check) {
    snapshot::HealthCheck hc;
    hc.kind = h->tcp    ? snapshot::HealthCheck::Kind::kTcp
              : h->grpc ? snapshot::HealthCheck::Kind::kGrpc
                        : snapshot::HealthCheck::Kind::kHttp;
    hc.timeout = h->timeout;
    hc.interval = h->interval;
    hc.interval_jitter = h->interval_jitter;
    hc.interval_jitter_percent = h->interval_jitter_percent;
    hc.unhealthy_threshold = h->unhealthy_threshold;
    hc.healthy_threshold = h->healthy_threshold;
    hc.path = h->path;
    hc.host = h->host;
    hc.expected_statuses = h->expected_statuses;
    hc.service_name = h->service_name;
    hc.initial_metadata = h->initial_metadata;
    c.health_check = std::move(hc);
  }
  if (const auto& o = spec.outlier_detection) {
    snapshot::OutlierDetection od;
    od.consecutive_5xx = o->consecutive_5xx;
    od.consecutive_gateway_failure = o->consecutive_gateway_failure;
    od.consecutive_local_origin_failure = o->consecutive_local_origin_failure;
    od.split_external_local_origin_errors = o->split_external_local_origin_errors;
    od.enforcing_consecutive_5xx = o->enforcing_consecutive_5xx;
    od.enforcing_consecutive_gateway_failure = o->enforcing_consecutive_gateway_failure;
    od.enforcing_consecutive_local_origin_failure = o->enforcing_consecutive_local_origin_failure;
    od.interval = o->interval;
    od.base_ejection_time = o->base_ejection_time;
    od.max_ejection_time = o->max_ejection_time;
    od.max_ejection_percent = o->max_ejection_percent;
    c.outlier_detection = od;
  }
  c.circuit_breakers.max_connections = spec.cb_max_connections;
  c.circuit_breakers.max_pending_requests = spec.cb_max_pending_requests;
  c.circuit_breakers.max_requests = spec.cb_max_requests;
  c.circuit_breakers.max_retries = spec.cb_max_retries;
  c.retry_budget.budget_percent = spec.retry_budget_percent;
  c.retry_budget.min_retry_concurrency = spec.retry_budget_min_concurrency;
  return c;
}

// The cached translation of one VirtualService (see Translator).
constexpr const char* kNotServed = "not served: no accepted gateway selects this virtual service";
constexpr const char* kUnusedUpstream =
    "unused: no route of an accepted virtual service sends traffic here";

struct VsMemo {
  ResourcePtr resource;          // the version it was made from
  Deps deps;                     // what it read
  std::vector<Diagnostic> pre;   // upstream and group checks of its own routes
  bool has_post = false;         // flattened and translated (only when accepted)
  std::vector<Diagnostic> post;  // delegation and reachability findings
  std::vector<std::pair<std::string, Diagnostic>> table_diags;  // findings on RouteTables
  std::vector<std::string> reached;                             // RouteTables it delegates to
  std::vector<std::string> used_upstreams;                      // sorted, unique
  std::shared_ptr<const snapshot::VirtualHost> host;            // without TLS
  // `host` with the TLS settings it was last served with (the material comes from files and
  // Secrets: a changed certificate makes a new copy, never a new translation of the routes).
  std::shared_ptr<const snapshot::VirtualHost> tls_host;
  std::shared_ptr<const snapshot::VirtualHost> tls_base;  // the `host` tls_host was made from
  size_t routes = 0;
};

// The part of a VirtualService's translation that needs delegation resolved (its memo's `post`):
// flattens its routes through the RouteTables, warns about delegated routes that can never match,
// lists the Upstreams its routes use and translates its VirtualHost. What it read besides the
// VirtualService goes to `deps`. Only for an accepted VirtualService.
void translate_memo(VsMemo& m, const Entry& vs, EntryMap& tables,
                    const std::set<std::string>& broken_tables, const InvalidRoutePolicy& policy,
                    const EntryMap& groups, Deps* deps) {
  Entry scratch{vs.resource, {}, vs.ptr};
  Flattener flattener(tables, broken_tables, policy, deps, &m.table_diags);
  auto flat = flattener.flatten(scratch);
  // A delegated route that an earlier route (of another table, or of the VirtualService)
  // always matches first never sees traffic: a warning on the VirtualService. Bounded, as in
  // validate.
  size_t comparisons = 0;
  for (size_t j = 0; j < flat.size() && comparisons < 2'000'000; ++j) {
    for (size_t i = 0; i < j; ++i) {
      if (!flat[i].delegated && !flat[j].delegated)
        continue;  // within one resource: validate reported it
      bool all = !flat[j].route.matchers.empty();
      for (const auto& later : flat[j].route.matchers) {
        bool covered = false;
        for (const auto& earlier : flat[i].route.matchers) {
          ++comparisons;
          if (api::shadows(earlier, later)) covered = true;
        }
        if (!covered) all = false;
      }
      if (all) {
        scratch.add(
            Diagnostic::Severity::kWarning, vs.resource->loc, "",
            "route " + flat[j].name + " is unreachable: route " + flat[i].name + " matches first");
        break;
      }
    }
  }
  // Upstreams the routes use (after delegation).
  std::set<std::string> used;
  for (const auto& f : flat) {
    const auto* fwd = std::get_if<api::ForwardAction>(&f.route.action);
    if (fwd == nullptr) continue;
    for (const auto& d : fwd->destinations)
      used.insert(d.upstream.to_string());
    if (fwd->upstream_group) {
      deps->groups.insert(fwd->upstream_group->to_string());
      auto it = groups.find(fwd->upstream_group->to_string());
      if (it == groups.end()) continue;
      for (const auto& d : it->second.resource->upstream_group().destinations)
        used.insert(d.upstream.to_string());
    }
  }
  auto host = std::make_shared<snapshot::VirtualHost>();
  translate_virtual_service(*vs.resource, flat, groups, host.get(), deps);
  host->sources.push_back("VirtualService/" + vs.id());
  for (const auto& t : flattener.reached())
    host->sources.push_back("RouteTable/" + t);
  for (const auto& g : deps->groups)
    host->sources.push_back("UpstreamGroup/" + g);
  m.host = std::move(host);
  m.post = std::move(scratch.reasons);
  m.reached.assign(flattener.reached().begin(), flattener.reached().end());
  m.used_upstreams.assign(used.begin(), used.end());
  m.routes = flat.size();
  m.has_post = true;
}

// Adds what translate_memo read to the memo's dependencies; true when anything was new.
bool join_deps(VsMemo& m, const Deps& found) {
  bool added = false;
  for (const auto& t : found.tables)
    added = m.deps.tables.insert(t).second || added;
  for (const auto& g : found.groups)
    added = m.deps.groups.insert(g).second || added;
  if (found.selector && !m.deps.selector) {
    m.deps.selector = true;
    added = true;
  }
  return added;
}

bool same_policy(const InvalidRoutePolicy& a, const InvalidRoutePolicy& b) {
  return a.replace == b.replace && a.status == b.status && a.body == b.body;
}

struct TableToken {
  ResourcePtr ptr;
  bool rejected = false;
  std::string first_error;
  bool operator==(const TableToken& o) const {
    return ptr == o.ptr && rejected == o.rejected && first_error == o.first_error;
  }
};
struct GroupToken {
  ResourcePtr ptr;
  bool rejected = false;
  bool operator==(const GroupToken& o) const { return ptr == o.ptr && rejected == o.rejected; }
};

}  // namespace

struct Translator::State {
  bool first = true;
  InvalidRoutePolicy policy;
  std::unordered_map<std::string, std::shared_ptr<VsMemo>> memos;  // by VirtualService id
  // Dependency index: "u:<upstream>", "g:<group>", "t:<table>" → VirtualServices whose memo read
  // it.
  std::unordered_map<std::string, std::set<std::string>> users;
  std::set<std::string> selector_users;  // VirtualServices delegating by selector
  // What the dependencies looked like at the previous translation.
  std::unordered_map<std::string, bool> upstream_rejected;
  std::unordered_map<std::string, bool> upstream_hashing;  // accepted, ringHash or maglev
  std::unordered_map<std::string, GroupToken> groups;
  std::unordered_map<std::string, TableToken> tables;
  // Upstreams used by the routes of accepted VirtualServices: the contributing memos and counts.
  std::map<std::string, std::shared_ptr<const VsMemo>> contributions;
  std::unordered_map<std::string, int> upstream_uses;

  // The last translation, for translate_changes(): its input in order, its configuration, the
  // RouteTables (with their reasons) and UpstreamGroups it saw, and what became of each
  // VirtualService. Kept only by a full translation of an incremental Translator.
  bool has_last = false;
  std::vector<ResourcePtr> last_input;
  std::shared_ptr<const snapshot::ProxyConfig> last_config;
  EntryMap last_tables;
  EntryMap last_groups;
  std::set<std::string> last_broken_tables;
  struct VsOutcome {
    bool rejected = false;
    bool served = false;
  };
  std::unordered_map<std::string, VsOutcome> last_vs;

  void index(const std::string& vid, const VsMemo& m) {
    for (const auto& u : m.deps.upstreams)
      users["u:" + u].insert(vid);
    for (const auto& g : m.deps.groups)
      users["g:" + g].insert(vid);
    for (const auto& t : m.deps.tables)
      users["t:" + t].insert(vid);
    if (m.deps.selector) selector_users.insert(vid);
  }
  void forget(const std::string& vid) {
    auto it = memos.find(vid);
    if (it == memos.end()) return;
    const Deps& d = it->second->deps;
    auto drop = [&](const std::string& key) {
      auto u = users.find(key);
      if (u == users.end()) return;
      u->second.erase(vid);
      if (u->second.empty()) users.erase(u);
    };
    for (const auto& u : d.upstreams)
      drop("u:" + u);
    for (const auto& g : d.groups)
      drop("g:" + g);
    for (const auto& t : d.tables)
      drop("t:" + t);
    selector_users.erase(vid);
    memos.erase(it);
  }
  void invalidate(const std::string& key) {
    auto u = users.find(key);
    if (u == users.end()) return;
    std::set<std::string> list = u->second;
    for (const auto& vid : list)
      forget(vid);
  }
};

namespace {

// The status of an entry whose reasons are complete and sorted.
ResourceStatus status_of(Entry& e, bool keep_reasons) {
  ResourceStatus s;
  s.kind = api::to_string(e.resource->kind);
  s.ns = e.resource->meta.ns;
  s.name = e.resource->meta.name;
  s.file = e.resource->file;
  s.line = e.resource->loc.line;
  s.state = state_from(e.reasons);
  if (keep_reasons) {
    s.reasons = e.reasons;
  } else {
    s.reasons = std::move(e.reasons);
  }
  s.spec_json = std::shared_ptr<const std::string>(e.ptr, &e.resource->spec_json);
  return s;
}

}  // namespace

Translator::Translator(TranslateOptions options, bool incremental)
    : options_(std::move(options)), incremental_(incremental), state_(std::make_unique<State>()) {}
Translator::~Translator() = default;

Translation translate(const std::vector<ResourcePtr>& resources, uint64_t version,
                      int64_t created_unix_ms, const TranslateOptions& options) {
  Translator t(options, /*incremental=*/false);
  return t.translate(resources, version, created_unix_ms);
}

Translation translate(const std::vector<api::Resource>& resources, uint64_t version,
                      int64_t created_unix_ms, const TranslateOptions& options) {
  // Not owned: the resources outlive the call.
  std::vector<ResourcePtr> ptrs;
  ptrs.reserve(resources.size());
  for (const auto& r : resources)
    ptrs.emplace_back(std::shared_ptr<const api::Resource>(), &r);
  return translate(ptrs, version, created_unix_ms, options);
}

Translation Translator::translate(const std::vector<ResourcePtr>& resources, uint64_t version,
                                  int64_t created_unix_ms, bool allow_partial) {
  State& state = *state_;
  if (incremental_ && allow_partial && state.has_last) {
    if (auto out = translate_changes(resources, version, created_unix_ms)) return std::move(*out);
  }
  state.has_last = false;  // until this translation completes
  const TranslateOptions& options = options_;
  TranslateCounts counts;
  // Entries sorted by namespace/name within each kind, so every loop below is deterministic.
  EntryMap gateways, services, upstreams, secrets, tables, groups, settings;
  for (const auto& ptr : resources) {
    const api::Resource& r = *ptr;
    Entry e{&r, r.diagnostics, ptr};
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
      case api::Kind::kSecret:
        secrets.emplace(id, std::move(e));
        break;
      case api::Kind::kRouteTable:
        tables.emplace(id, std::move(e));
        break;
      case api::Kind::kUpstreamGroup:
        groups.emplace(id, std::move(e));
        break;
      case api::Kind::kSettings:
        settings.emplace(id, std::move(e));
        break;
    }
  }

  // Settings: at most one.
  InvalidRoutePolicy policy;
  snapshot::OverloadConfig overload;
  if (settings.size() > 1) {
    for (auto& [id, e] : settings) {
      e.add(Diagnostic::Severity::kError, e.resource->loc, "metadata.name",
            "only one Settings resource may exist (found " + std::to_string(settings.size()) + ")");
    }
  } else if (settings.size() == 1 && !settings.begin()->second.rejected()) {
    const auto& st = settings.begin()->second.resource->settings();
    policy.replace = st.replace_invalid_routes;
    policy.status = st.invalid_route_status;
    policy.body = st.invalid_route_body;
    overload.max_connections = st.overload_max_connections.value_or(0);
    overload.max_heap_bytes = st.overload_max_heap_bytes.value_or(0);
  }

  // 0. TLS: Secrets read and checked; then every sslConfig resolved against them (a resource
  // whose TLS cannot be built is Rejected, before anything refers to it).
  std::map<std::string, TlsData, IdLess> secret_data;
  for (auto& [id, e] : secrets) {
    if (e.rejected()) continue;
    const auto& spec = e.resource->secret();
    if (!spec.tls) continue;
    TlsData data;
    const auto& t = *spec.tls;
    if (load_tls(e, resource_dir(options, *e.resource), t.cert_chain, t.private_key, t.root_ca,
                 t.ocsp_staple, &data)) {
      data.source = id;
      secret_data.emplace(id, std::move(data));
    }
  }
  std::map<std::string, snapshot::TlsClientConfig, IdLess> cluster_tls;
  for (auto& [id, e] : upstreams) {
    if (e.rejected() || !e.resource->upstream().tls) continue;
    auto tls = client_tls(e, options, *e.resource->upstream().tls, secrets, secret_data,
                          e.resource->upstream().use_http2);
    if (tls) cluster_tls.emplace(id, std::move(*tls));
  }
  std::map<std::string, snapshot::TlsServerConfig, IdLess> vhost_tls;
  for (auto& [id, e] : services) {
    const auto& spec = e.resource->virtual_service();
    if (e.rejected() || !spec.tls) continue;
    if (spec.tls->sni_domains) {
      std::set<std::string> sni(spec.tls->sni_domains->begin(), spec.tls->sni_domains->end());
      std::set<std::string> domains;
      for (const auto& d : spec.domains)
        domains.insert(d.value);
      if (sni != domains) {
        e.add(Diagnostic::Severity::kError, spec.tls->sni_loc, spec.tls->path + ".sniDomains",
              "sniDomains different from the virtual service's domains is not supported yet: the "
              "certificate is chosen by SNI among the domains; remove sniDomains or make it equal");
        continue;
      }
    }
    auto tls = server_tls(e, options, *spec.tls, secrets, secret_data);
    if (tls) vhost_tls.emplace(id, std::move(*tls));
  }
  std::map<std::string, snapshot::TlsServerConfig, IdLess> listener_tls;
  for (auto& [id, e] : gateways) {
    const auto& spec = e.resource->gateway();
    if (e.rejected() || !spec.tls) continue;
    auto tls = server_tls(e, options, *spec.tls, secrets, secret_data);
    if (tls) listener_tls.emplace(id, std::move(*tls));
  }

  // 1. Routes (of VirtualServices and RouteTables) and UpstreamGroups should point at accepted
  // upstreams, and must point at accepted groups. A missing or rejected upstream is a warning, not
  // an error: the traffic meant for it answers 503 and everything else keeps working.
  auto upstream_state = [&](const std::string& id) {
    auto it = upstreams.find(id);
    return it == upstreams.end()   ? RefState::kMissing
           : it->second.rejected() ? RefState::kRejected
                                   : RefState::kAccepted;
  };
  auto group_state = [&](const std::string& id) {
    auto it = groups.find(id);
    return it == groups.end()      ? RefState::kMissing
           : it->second.rejected() ? RefState::kRejected
                                   : RefState::kAccepted;
  };
  for (auto& [id, g] : groups) {
    for (const auto& d : g.resource->upstream_group().destinations)
      check_upstream(g, d.upstream, upstream_state);
  }
  auto upstream_hashes = [&](const std::string& id) {
    auto it = upstreams.find(id);
    return it == upstreams.end() || it->second.rejected() ||
           hashes(it->second.resource->upstream());
  };
  auto check_routes = [&](Entry& e, const std::vector<api::Route>& routes) {
    check_route_refs(e, routes, upstream_state, group_state, upstream_hashes);
  };
  for (auto& [id, t] : tables)
    check_routes(t, t.resource->route_table().routes);
  // Tables rejected on their own (decoding, upstreams): their routes are never served. Problems
  // found while flattening (relative to one parent) are warnings and only drop the routes involved.
  std::set<std::string> broken_tables;
  for (const auto& [id, t] : tables) {
    if (t.rejected()) broken_tables.insert(id);
  }

  // Invalidation: memos of VirtualServices that changed or went away, and of those that read a
  // dependency that changed since the previous translation.
  if (incremental_) {
    if (!state.first && !same_policy(policy, state.policy)) {
      state.memos.clear();
      state.users.clear();
      state.selector_users.clear();
    }
    state.first = false;
    state.policy = policy;
    {
      std::vector<std::string> gone;
      size_t kept = 0;
      for (const auto& [vid, vs] : services) {
        auto it = state.memos.find(vid);
        if (it == state.memos.end()) continue;
        if (it->second->resource == vs.ptr) {
          ++kept;
        } else {
          gone.push_back(vid);
        }
      }
      if (kept + gone.size() != state.memos.size()) {  // some VirtualServices went away
        for (const auto& [vid, m] : state.memos) {
          auto it = services.find(vid);
          if (it == services.end()) gone.push_back(vid);
        }
      }
      for (const auto& vid : gone)
        state.forget(vid);
    }
    {
      // Updated in place: a map rebuilt at every sync allocated every Upstream's id again.
      auto& known = state.upstream_rejected;
      for (const auto& [uid, up] : upstreams) {
        const bool rejected = up.rejected();
        const bool hashing = !rejected && hashes(up.resource->upstream());
        auto [it, inserted] = known.try_emplace(uid, rejected);
        auto [h, h_inserted] = state.upstream_hashing.try_emplace(uid, hashing);
        if (inserted || it->second != rejected || h->second != hashing) {
          it->second = rejected;
          h->second = hashing;
          state.invalidate("u:" + uid);
        }
      }
      if (known.size() != upstreams.size()) {  // some went away
        for (auto it = known.begin(); it != known.end();) {
          if (upstreams.count(it->first) != 0) {
            ++it;
            continue;
          }
          state.invalidate("u:" + it->first);
          state.upstream_hashing.erase(it->first);
          it = known.erase(it);
        }
      }
    }
    {
      std::unordered_map<std::string, GroupToken> now;
      for (const auto& [gid, g] : groups) {
        GroupToken token{g.ptr, g.rejected()};
        auto it = state.groups.find(gid);
        if (it == state.groups.end() || !(it->second == token)) state.invalidate("g:" + gid);
        now.emplace(gid, std::move(token));
      }
      for (const auto& [gid, token] : state.groups) {
        if (now.count(gid) == 0) state.invalidate("g:" + gid);
      }
      state.groups = std::move(now);
    }
    {
      std::unordered_map<std::string, TableToken> now;
      bool any = false;
      for (const auto& [tid, t] : tables) {
        TableToken token{t.ptr, t.rejected(), {}};
        for (const auto& d : t.reasons) {
          if (d.is_error()) {
            token.first_error = d.to_string();
            break;
          }
        }
        auto it = state.tables.find(tid);
        if (it == state.tables.end() || !(it->second == token)) {
          state.invalidate("t:" + tid);
          any = true;
        }
        now.emplace(tid, std::move(token));
      }
      for (const auto& [tid, token] : state.tables) {
        if (now.count(tid) == 0) {
          state.invalidate("t:" + tid);
          any = true;
        }
      }
      if (any) {
        std::set<std::string> list = state.selector_users;
        for (const auto& vid : list)
          state.forget(vid);
      }
      state.tables = std::move(now);
    }
  }

  // Each VirtualService's own checks: from its memo, or computed (and remembered, unless its TLS
  // makes it depend on files).
  for (auto& [vid, vs] : services) {
    std::shared_ptr<VsMemo> m;
    auto it = state.memos.find(vid);
    if (it != state.memos.end()) {
      m = it->second;
    } else {
      m = std::make_shared<VsMemo>();
      m->resource = vs.ptr;
      Entry scratch{vs.resource, {}, vs.ptr};
      const auto& routes = vs.resource->virtual_service().routes;
      check_routes(scratch, routes);
      for (const auto& route : routes) {
        const auto* fwd = std::get_if<api::ForwardAction>(&route.action);
        if (fwd == nullptr) continue;
        for (const auto& d : fwd->destinations)
          if (!d.upstream.name.empty()) m->deps.upstreams.insert(d.upstream.to_string());
        if (fwd->upstream_group && !fwd->upstream_group->name.empty())
          m->deps.groups.insert(fwd->upstream_group->to_string());
      }
      m->pre = std::move(scratch.reasons);
      // VirtualServices with TLS too: the memo holds their routes without TLS, which is applied
      // (from the Secrets and files as read now) when the host is served.
      if (incremental_) {
        state.memos.emplace(vid, m);
        state.index(vid, *m);
      }
    }
    for (const auto& d : m->pre)
      vs.push(d);
    vs.memo = std::move(m);
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
  // Gateway id -> (vs id, entry), sorted by vs id.
  using Selection = std::vector<std::pair<const std::string*, Entry*>>;
  std::map<std::string, Selection, IdLess> selected;
  for (auto& [gid, gw] : gateways) {
    const auto& spec = gw.resource->gateway();
    Selection& sel = selected[gid];
    std::set<std::string, IdLess> ids;
    std::set<std::string> missing;
    // Gloo's rule: an ssl gateway serves only VirtualServices with sslConfig, a plain one only
    // VirtualServices without.
    auto fits = [&](const Entry& vs) {
      return vs.resource->virtual_service().tls.has_value() == spec.ssl;
    };
    if (!spec.virtual_services.empty()) {
      std::set<std::string> mismatched;
      for (const auto& ref : spec.virtual_services) {
        if (ref.name.empty()) continue;
        auto it = services.find(ref.to_string());
        if (it == services.end()) {
          if (!missing.insert(ref.to_string()).second) continue;  // listed twice: warned already
          gw.add(Diagnostic::Severity::kWarning, ref.loc, ref.path,
                 "virtual service " + ref.to_string() + " not found");
        } else if (!fits(it->second)) {
          if (!mismatched.insert(ref.to_string()).second) continue;
          gw.add(Diagnostic::Severity::kWarning, ref.loc, ref.path,
                 "virtual service " + ref.to_string() +
                     (spec.ssl ? " has no sslConfig and is not served on this ssl gateway"
                               : " has sslConfig and is not served on this plain gateway (set "
                                 "ssl: true on a gateway to serve it)"));
        } else {
          ids.insert(ref.to_string());
        }
      }
    } else {
      // Gloo's precedence: labels, else expressions, else all; within the namespaces asked.
      // (`services` is in id order: no sorting needed.)
      for (auto& [vid, vs] : services) {
        const auto& labels = vs.resource->meta.labels;
        bool match = namespace_allowed(spec.namespaces, vs.resource->meta.ns) && fits(vs);
        if (match && spec.selector) match = labels_match(*spec.selector, labels);
        if (match && spec.expressions) {
          for (const auto& e : *spec.expressions) {
            if (!expression_matches(e, labels)) match = false;
          }
        }
        if (match) sel.emplace_back(&vid, &vs);
      }
    }
    for (const auto& id : ids) {
      auto it = services.find(id);
      sel.emplace_back(&it->first, &it->second);
    }
  }

  // 4. Domain conflicts among the VirtualServices of each accepted gateway.
  std::vector<std::tuple<std::string, api::Location, std::string, std::string>> conflicts;
  for (const auto& [gid, gw] : gateways) {
    if (gw.rejected()) continue;
    // Domain -> its first owner (views into the resources); every owner of a domain served twice,
    // in order, by domain.
    using Owner = std::pair<const std::string*, const api::Domain*>;
    using Owners = std::vector<Owner>;
    std::unordered_map<std::string_view, Owner> first;
    first.reserve(selected[gid].size() * 2);
    std::map<std::string_view, Owners> clashes;
    for (const auto& [vid, vs] : selected[gid]) {
      if (vs->rejected()) continue;
      const auto& domains = vs->resource->virtual_service().domains;
      for (size_t i = 0; i < domains.size(); ++i) {
        const auto& d = domains[i];
        bool seen = false;
        for (size_t j = 0; j < i && !seen; ++j)
          seen = domains[j].value == d.value;
        if (seen) continue;
        auto [it, inserted] = first.try_emplace(d.value, Owner{vid, &d});
        if (inserted) continue;
        Owners& list = clashes[d.value];
        if (list.empty()) list.push_back(it->second);
        list.push_back({vid, &d});
      }
    }
    for (const auto& [domain_view, list] : clashes) {
      std::string domain(domain_view);
      for (const auto& [vid_ptr, d] : list) {
        const std::string& vid = *vid_ptr;
        std::string others;
        for (const auto& [other, unused] : list) {
          if (*other != vid) others += (others.empty() ? "" : ", ") + *other;
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

  // 4b. An ssl gateway needs a certificate: its own sslConfig, or a served VirtualService's.
  for (auto& [gid, gw] : gateways) {
    const auto& spec = gw.resource->gateway();
    if (gw.rejected() || !spec.ssl || listener_tls.count(gid) != 0) continue;
    if (spec.tls) continue;  // its sslConfig failed: reported already
    bool any = false;
    for (const auto& [vid, vs] : selected[gid]) {
      if (!vs->rejected() && vhost_tls.count(*vid) != 0) any = true;
    }
    if (!any) {
      gw.add(Diagnostic::Severity::kError, gw.resource->gateway().ssl_loc, "spec.ssl",
             "ssl is true but there is no certificate: set spec.sslConfig, or serve a virtual "
             "service that has sslConfig");
    }
  }

  // 5. Gateways naming a rejected VirtualService; VirtualServices no gateway serves.
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
      for (const auto& [vid, vs] : selected[gid])
        vs->served = true;
    }
  }
  for (auto& [vid, vs] : services) {
    if (!vs.rejected() && !vs.served) {
      vs.add(Diagnostic::Severity::kWarning, vs.resource->loc, "", kNotServed);
    }
  }

  // 5b. Delegation flattened for every accepted VirtualService (or its memo reused);
  // cross-table reachability; the VirtualHost translated.
  std::set<std::string> reached;
  std::map<std::string, std::shared_ptr<const VsMemo>> contributions;
  for (auto& [vid, vs] : services) {
    if (vs.rejected()) continue;
    VsMemo& m = *vs.memo;
    if (!m.has_post) {
      Deps deps;
      translate_memo(m, vs, tables, broken_tables, policy, groups, &deps);
      // The dependencies found while flattening join the index.
      if (join_deps(m, deps) && state.memos.count(vid) != 0) state.index(vid, m);
      ++counts.virtual_services;
      counts.routes += m.routes;
    } else {
      for (const auto& [tid, d] : m.table_diags)
        tables.at(tid).push(d);
    }
    for (const auto& d : m.post)
      vs.push(d);
    reached.insert(m.reached.begin(), m.reached.end());
    if (auto tls = vhost_tls.find(vid); tls == vhost_tls.end()) {
      vs.host = m.host;
    } else {
      // The routes as translated, with this translation's TLS settings and material.
      if (!m.tls_host || m.tls_base != m.host || !(*m.tls_host->tls == tls->second)) {
        auto host = std::make_shared<snapshot::VirtualHost>(*m.host);
        host->tls = tls->second;
        m.tls_host = std::move(host);
        m.tls_base = m.host;
      }
      vs.host = m.tls_host;
    }
    contributions.emplace_hint(contributions.end(), vid, vs.memo);
  }

  for (auto& [tid, t] : tables) {
    if (!t.rejected() && reached.count(tid) == 0) {
      t.add(Diagnostic::Severity::kWarning, t.resource->loc, "",
            "unused: no accepted virtual service delegates to this route table");
    }
  }

  // 5c. Upstreams that no route uses (of an accepted VirtualService, after delegation): use
  // counts kept across translations, adjusted for the VirtualServices whose contribution changed.
  {
    auto& uses = state.upstream_uses;
    auto add = [&](const VsMemo& m, int delta) {
      for (const auto& u : m.used_upstreams) {
        auto it = uses.emplace(u, 0).first;
        it->second += delta;
        if (it->second == 0) uses.erase(it);
      }
    };
    auto a = state.contributions.begin();
    auto b = contributions.begin();
    while (a != state.contributions.end() || b != contributions.end()) {
      if (b == contributions.end() || (a != state.contributions.end() && a->first < b->first)) {
        add(*a->second, -1);
        ++a;
      } else if (a == state.contributions.end() || b->first < a->first) {
        add(*b->second, +1);
        ++b;
      } else {
        if (a->second != b->second) {
          add(*a->second, -1);
          add(*b->second, +1);
        }
        ++a;
        ++b;
      }
    }
    state.contributions = std::move(contributions);
  }
  for (auto& [uid, up] : upstreams) {
    if (!up.rejected() && state.upstream_uses.count(uid) == 0) {
      up.add(Diagnostic::Severity::kWarning, up.resource->loc, "", kUnusedUpstream);
    }
  }

  // 6. The ProxyConfig, from accepted (or warned) resources only.
  auto config = std::make_shared<snapshot::ProxyConfig>();
  config->version = version;
  config->created_unix_ms = created_unix_ms;
  config->overload = overload;
  for (const auto& [gid, gw] : gateways) {
    if (gw.rejected()) continue;
    const auto& spec = gw.resource->gateway();
    snapshot::Listener l;
    l.name = gid;
    l.address = spec.bind_address;
    l.port = spec.bind_port;
    l.http = translate_http(spec.http);
    for (const auto& a : spec.access_logs)
      l.access_logs.push_back({a.path, a.json, a.format, a.json_fields});
    for (const auto& [vid, vs] : selected[gid]) {
      if (vs->host && !vs->rejected()) l.virtual_hosts.push_back(vs->host);
    }
    if (spec.ssl) {
      // The default certificate: the gateway's own, else the first virtual service's (by
      // namespace/name).
      if (auto it = listener_tls.find(gid); it != listener_tls.end()) {
        l.tls = it->second;
      } else {
        for (const auto& vh : l.virtual_hosts) {
          if (vh->tls) {
            l.tls = vh->tls;
            break;
          }
        }
      }
    }
    config->listeners.push_back(std::move(l));
  }
  for (const auto& [uid, up] : upstreams) {
    if (up.rejected()) continue;
    config->clusters.push_back(translate_upstream(*up.resource));
    if (auto it = cluster_tls.find(uid); it != cluster_tls.end()) {
      config->clusters.back().tls = it->second;
    }
  }

  Translation out;
  out.config = std::move(config);
  out.translated = counts;
  total_.virtual_services += counts.virtual_services;
  total_.routes += counts.routes;
  if (incremental_) {  // before emit() moves the reasons out
    state.last_vs.clear();
    for (const auto& [vid, vs] : services)
      state.last_vs.emplace(vid, State::VsOutcome{vs.rejected(), vs.served});
  }
  auto emit = [&](EntryMap& entries, bool keep_reasons) {
    for (auto& [id, e] : entries) {
      api::sort_by_position(e.reasons);
      out.statuses.push_back(status_of(e, keep_reasons));
    }
  };
  // Sorted by kind name. RouteTables keep their reasons for translate_changes().
  emit(gateways, false);
  emit(tables, incremental_);
  emit(secrets, false);
  emit(settings, false);
  emit(upstreams, false);
  emit(groups, false);
  emit(services, false);

  if (incremental_) {
    state.last_input = resources;
    state.last_config = out.config;
    state.last_tables = std::move(tables);
    state.last_groups = std::move(groups);
    state.last_broken_tables = std::move(broken_tables);
    state.has_last = true;
  }
  return out;
}

namespace {

// The same Diagnostic (what Entry::push compares, and where it points).
bool same_diagnostic(const Diagnostic& a, const Diagnostic& b) {
  return a.severity == b.severity && a.path == b.path && a.message == b.message &&
         a.file == b.file && a.line == b.line && a.column == b.column;
}

bool same_table_diags(const std::vector<std::pair<std::string, Diagnostic>>& a,
                      const std::vector<std::pair<std::string, Diagnostic>>& b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (a[i].first != b[i].first || !same_diagnostic(a[i].second, b[i].second)) return false;
  }
  return true;
}

// A resource edited in a way that cannot change how other resources see it. A VirtualService:
// the same labels (selection) and domains (conflicts), no TLS (certificates are files, and TLS
// changes which gateways serve it). An Upstream: no TLS (its certificates are files). Both: the
// same namespace and name, and no decoding error in the new version (its state stays accepted,
// which is checked against the previous translation).
bool local_edit(const Resource& before, const Resource& after) {
  if (before.kind != after.kind || before.meta.ns != after.meta.ns ||
      before.meta.name != after.meta.name || api::has_errors(after.diagnostics)) {
    return false;
  }
  if (before.kind == api::Kind::kUpstream) {
    return !before.upstream().tls && !after.upstream().tls;
  }
  if (before.kind != api::Kind::kVirtualService) return false;
  if (before.meta.labels != after.meta.labels) return false;
  const auto& a = before.virtual_service();
  const auto& b = after.virtual_service();
  if (a.tls || b.tls || a.domains.size() != b.domains.size()) return false;
  for (size_t i = 0; i < a.domains.size(); ++i) {
    if (a.domains[i].value != b.domains[i].value) return false;
  }
  return true;
}

}  // namespace

std::optional<Translation> Translator::translate_changes(const std::vector<ResourcePtr>& resources,
                                                         uint64_t version,
                                                         int64_t created_unix_ms) {
  // Past this many changed resources a full translation (which reuses its memos) is as good.
  constexpr size_t kMaxChanges = 64;
  State& state = *state_;
  if (resources.size() != state.last_input.size()) return std::nullopt;
  std::vector<size_t> changed;
  for (size_t i = 0; i < resources.size(); ++i) {
    if (resources[i] == state.last_input[i]) continue;
    if (!resources[i] || !state.last_input[i] || changed.size() == kMaxChanges ||
        !local_edit(*state.last_input[i], *resources[i])) {
      return std::nullopt;
    }
    changed.push_back(i);
  }

  // Each changed VirtualService translated alone, as the full translation would.
  auto upstream_state = [&](const std::string& id) {
    auto it = state.upstream_rejected.find(id);
    return it == state.upstream_rejected.end() ? RefState::kMissing
           : it->second                        ? RefState::kRejected
                                               : RefState::kAccepted;
  };
  auto group_state = [&](const std::string& id) {
    auto it = state.groups.find(id);
    return it == state.groups.end() ? RefState::kMissing
           : it->second.rejected    ? RefState::kRejected
                                    : RefState::kAccepted;
  };
  struct Change {
    size_t index;
    std::string vid;
    std::shared_ptr<VsMemo> before, after;
    bool served = false;
  };
  std::vector<Change> list;
  list.reserve(changed.size());
  // Upstreams: their cluster replaced in place (found here, before anything is committed).
  struct UpstreamChange {
    size_t index;
    std::string id;
    size_t cluster;
  };
  std::vector<UpstreamChange> upstream_changes;
  const auto& clusters = state.last_config->clusters;
  for (size_t i : changed) {
    const ResourcePtr& ptr = resources[i];
    if (ptr->kind == api::Kind::kUpstream) {
      UpstreamChange u{i, ptr->meta.ns + "/" + ptr->meta.name, clusters.size()};
      auto known = state.upstream_rejected.find(u.id);
      if (known == state.upstream_rejected.end() || known->second) return std::nullopt;
      // Hashing turned on or off: the warnings of the routes using it change.
      auto hashing = state.upstream_hashing.find(u.id);
      if (hashing == state.upstream_hashing.end() || hashing->second != hashes(ptr->upstream())) {
        return std::nullopt;
      }
      for (size_t k = 0; k < clusters.size() && u.cluster == clusters.size(); ++k) {
        if (clusters[k].name == u.id) u.cluster = k;
      }
      if (u.cluster == clusters.size()) return std::nullopt;
      upstream_changes.push_back(std::move(u));
      continue;
    }
    const Resource& r = *ptr;
    Change c{i, r.meta.ns + "/" + r.meta.name, nullptr, nullptr};
    auto outcome = state.last_vs.find(c.vid);
    auto memo = state.memos.find(c.vid);
    if (outcome == state.last_vs.end() || outcome->second.rejected || memo == state.memos.end() ||
        memo->second->resource != state.last_input[i] || !memo->second->has_post) {
      return std::nullopt;  // it was rejected, or its translation is not at hand
    }
    c.served = outcome->second.served;
    c.before = memo->second;
    auto m = std::make_shared<VsMemo>();
    m->resource = ptr;
    Entry scratch{&r, {}, ptr};
    const auto& routes = r.virtual_service().routes;
    auto upstream_hashes = [&](const std::string& id) {
      auto it = state.upstream_hashing.find(id);
      if (it == state.upstream_hashing.end() || it->second) return true;
      auto rejected = state.upstream_rejected.find(id);
      return rejected != state.upstream_rejected.end() && rejected->second;
    };
    check_route_refs(scratch, routes, upstream_state, group_state, upstream_hashes);
    if (scratch.rejected()) return std::nullopt;  // e.g. a missing UpstreamGroup
    for (const auto& route : routes) {
      const auto* fwd = std::get_if<api::ForwardAction>(&route.action);
      if (fwd == nullptr) continue;
      for (const auto& d : fwd->destinations)
        if (!d.upstream.name.empty()) m->deps.upstreams.insert(d.upstream.to_string());
      if (fwd->upstream_group && !fwd->upstream_group->name.empty())
        m->deps.groups.insert(fwd->upstream_group->to_string());
    }
    m->pre = std::move(scratch.reasons);
    Deps found;
    Entry vs{&r, {}, ptr};
    translate_memo(*m, vs, state.last_tables, state.last_broken_tables, state.policy,
                   state.last_groups, &found);
    join_deps(*m, found);
    // What it did to RouteTables (findings, which are reached) must not have changed: their
    // statuses would.
    if (!same_table_diags(m->table_diags, c.before->table_diags) ||
        m->reached != c.before->reached) {
      return std::nullopt;
    }
    c.after = std::move(m);
    list.push_back(std::move(c));
  }

  // Upstreams used: counts may move, but none may become used or unused (its status would
  // change).
  std::map<std::string, int> delta;
  for (const auto& c : list) {
    for (const auto& u : c.before->used_upstreams)
      --delta[u];
    for (const auto& u : c.after->used_upstreams)
      ++delta[u];
  }
  for (const auto& [u, d] : delta) {
    if (d == 0) continue;
    auto it = state.upstream_uses.find(u);
    const int before = it == state.upstream_uses.end() ? 0 : it->second;
    if ((before > 0) != (before + d > 0)) return std::nullopt;
  }

  // Nothing can fail from here on: commit.
  for (const auto& [u, d] : delta) {
    if (d != 0) state.upstream_uses[u] += d;
  }
  Translation out;
  out.partial = true;
  auto config = std::make_shared<snapshot::ProxyConfig>(*state.last_config);
  config->version = version;
  config->created_unix_ms = created_unix_ms;
  std::unordered_map<const snapshot::VirtualHost*, std::shared_ptr<const snapshot::VirtualHost>>
      replaced;
  for (auto& c : list) {
    state.forget(c.vid);
    state.memos.emplace(c.vid, c.after);
    state.index(c.vid, *c.after);
    state.contributions[c.vid] = c.after;
    state.last_input[c.index] = resources[c.index];
    replaced.emplace(c.before->host.get(), c.after->host);
    ++out.translated.virtual_services;
    out.translated.routes += c.after->routes;

    // Its status, as the full translation builds it: decoding, own checks, serving, delegation.
    const Resource& r = *resources[c.index];
    Entry e{&r, r.diagnostics, resources[c.index]};
    for (const auto& d : c.after->pre)
      e.push(d);
    if (!c.served) e.add(Diagnostic::Severity::kWarning, r.loc, "", kNotServed);
    for (const auto& d : c.after->post)
      e.push(d);
    api::sort_by_position(e.reasons);
    out.statuses.push_back(status_of(e, false));
  }
  for (const auto& u : upstream_changes) {
    const Resource& r = *resources[u.index];
    state.last_input[u.index] = resources[u.index];
    config->clusters[u.cluster] = translate_upstream(r);
    Entry e{&r, r.diagnostics, resources[u.index]};
    if (state.upstream_uses.count(u.id) == 0) {
      e.add(Diagnostic::Severity::kWarning, r.loc, "", kUnusedUpstream);
    }
    api::sort_by_position(e.reasons);
    out.statuses.push_back(status_of(e, false));
  }
  if (!replaced.empty()) {
    for (auto& l : config->listeners) {
      for (auto& vh : l.virtual_hosts) {
        auto it = replaced.find(vh.get());
        if (it != replaced.end()) vh = it->second;
      }
    }
  }
  state.last_config = config;
  out.config = std::move(config);
  total_.virtual_services += out.translated.virtual_services;
  total_.routes += out.translated.routes;
  return out;
}

}  // namespace portico::control
