#include "api/validate.h"

#include <algorithm>
#include <set>

#include "api/fields.h"

namespace portico::api {
namespace {

// About a second of work at worst (regex matches included); ~3000 single-matcher routes in one
// VirtualService are checked completely.
constexpr size_t kMaxShadowComparisons = 5'000'000;

void add(Resource& r, Diagnostic::Severity severity, Location loc, std::string path,
         std::string message) {
  Diagnostic d;
  d.severity = severity;
  d.file = r.file;
  d.line = loc.line;
  d.column = loc.column;
  d.path = std::move(path);
  d.message = std::move(message);
  r.diagnostics.push_back(std::move(d));
}

template <typename T>
bool includes_all(const std::vector<T>& outer, const std::vector<T>& inner) {
  for (const auto& x : inner) {
    if (std::find(outer.begin(), outer.end(), x) == outer.end()) return false;
  }
  return true;
}

std::string route_label(const std::vector<Route>& routes, size_t i) {
  std::string out = "route " + std::to_string(i);
  if (!routes[i].name.empty()) out += " (\"" + routes[i].name + "\")";
  return out;
}

bool starts_with(std::string_view s, std::string_view prefix) {
  return s.size() >= prefix.size() && s.substr(0, prefix.size()) == prefix;
}

void validate_routes(Resource& r, const std::vector<Route>& routes);

void validate_virtual_service(Resource& r) {
  const auto& spec = r.virtual_service();
  std::set<std::string> seen;
  for (const auto& d : spec.domains) {
    if (!seen.insert(d.value).second) {
      add(r, Diagnostic::Severity::kWarning, d.loc, d.field_path,
          "domain \"" + d.value + "\" is listed twice");
    }
  }
  validate_routes(r, spec.routes);
}

// Options, matchers and reachability of a list of routes (a VirtualService's or a RouteTable's).
void validate_routes(Resource& r, const std::vector<Route>& routes) {
  size_t comparisons = 0;
  bool budget_warned = false;
  for (size_t j = 0; j < routes.size(); ++j) {
    const Route& route = routes[j];
    // Options that only apply when forwarding.
    // (On a delegating route they are the parent's options, applied to every delegated route.)
    if (!std::holds_alternative<ForwardAction>(route.action) &&
        !std::holds_alternative<DelegateAction>(route.action) &&
        !std::holds_alternative<std::monostate>(route.action)) {
      const auto& o = route.options;
      if (o.timeout || o.prefix_rewrite || !o.host_rewrite.empty() ||
          !o.headers.request_add.empty() || !o.headers.request_remove.empty()) {
        add(r, Diagnostic::Severity::kWarning, route.loc, route.field_path + ".options",
            "timeout, prefixRewrite, hostRewrite and request header changes only apply to "
            "routeAction routes (ignored here)");
      }
      if (o.upgrades && (o.upgrades->websocket || o.upgrades->connect)) {
        add(r, Diagnostic::Severity::kWarning, route.loc, route.field_path + ".options.upgrades",
            "upgrades only apply to routeAction routes (a tunnel needs an upstream): ignored here");
      }
      if (o.retries) {
        add(r, Diagnostic::Severity::kWarning, route.loc, route.field_path + ".options.retries",
            "retries only apply to routeAction routes (nothing is sent upstream): ignored here");
      }
    }
    for (const auto& m : route.matchers) {
      if (m.kind == PathKind::kPrefix) continue;
      if (const auto* redirect = std::get_if<RedirectAction>(&route.action);
          redirect != nullptr && !redirect->prefix_rewrite.empty()) {
        add(r, Diagnostic::Severity::kError, m.loc, m.field_path,
            "redirectAction.prefixRewrite needs prefix matchers, and this one is not a prefix");
        break;
      }
      if (route.options.prefix_rewrite && m.kind == PathKind::kRegex) {
        add(r, Diagnostic::Severity::kError, m.loc, m.field_path,
            "options.prefixRewrite cannot be used with a regex matcher");
        break;
      }
    }
    // Reachability: a matcher is dead when an earlier route's matcher covers it. Quadratic, so
    // bounded: past the budget the remaining routes are not checked (and a warning says so).
    if (comparisons > kMaxShadowComparisons) {
      if (!budget_warned) {
        add(r, Diagnostic::Severity::kWarning, route.loc, route.field_path,
            "too many routes to check for unreachable ones from here on");
        budget_warned = true;
      }
      continue;
    }
    std::vector<std::optional<size_t>> covered_by(route.matchers.size());
    for (size_t k = 0; k < route.matchers.size(); ++k) {
      for (size_t i = 0; i < j && !covered_by[k]; ++i) {
        for (const auto& earlier : routes[i].matchers) {
          ++comparisons;
          if (shadows(earlier, route.matchers[k])) {
            covered_by[k] = i;
            break;
          }
        }
      }
    }
    bool all = std::all_of(covered_by.begin(), covered_by.end(),
                           [](const auto& c) { return c.has_value(); });
    if (all && !covered_by.empty()) {
      add(r, Diagnostic::Severity::kWarning, route.loc, route.field_path,
          route_label(routes, j) + " is unreachable: " + route_label(routes, *covered_by[0]) +
              " matches first");
    } else {
      for (size_t k = 0; k < covered_by.size(); ++k) {
        if (!covered_by[k]) continue;
        add(r, Diagnostic::Severity::kWarning, route.matchers[k].loc, route.matchers[k].field_path,
            "matcher " + std::to_string(k) + " of " + route_label(routes, j) +
                " is unreachable: " + route_label(routes, *covered_by[k]) + " matches first");
      }
    }
  }
}

void validate_gateway(Resource& r) {
  const auto& spec = r.gateway();
  std::set<std::string> seen;
  for (const auto& ref : spec.virtual_services) {
    if (ref.name.empty()) continue;
    if (!seen.insert(ref.to_string()).second) {
      add(r, Diagnostic::Severity::kWarning, ref.loc, ref.path,
          "virtual service " + ref.to_string() + " is listed twice");
    }
  }
}

void validate_upstream(Resource& r) {
  const auto& spec = r.upstream();
  std::set<std::pair<std::string, uint16_t>> seen;
  for (size_t i = 0; i < spec.hosts.size(); ++i) {
    const auto& h = spec.hosts[i];
    if (h.address.empty() || h.port == 0) continue;
    if (!seen.insert({h.address, h.port}).second) {
      add(r, Diagnostic::Severity::kWarning, r.loc, "spec.static.hosts[" + std::to_string(i) + "]",
          "host " + h.address + ":" + std::to_string(h.port) + " is listed twice");
    }
  }
}

}  // namespace

bool shadows(const Matcher& earlier, const Matcher& later) {
  if (!includes_all(later.headers, earlier.headers)) return false;
  if (!includes_all(later.query, earlier.query)) return false;
  if (!earlier.methods.empty() &&
      (later.methods.empty() || !includes_all(earlier.methods, later.methods))) {
    return false;
  }
  // A case-sensitive earlier matcher does not cover the other spellings a case-insensitive later
  // matcher accepts.
  if (earlier.case_sensitive && !later.case_sensitive) return false;
  std::string later_path = earlier.case_sensitive ? later.path : to_lower(later.path);
  std::string earlier_path = earlier.case_sensitive ? earlier.path : to_lower(earlier.path);
  switch (earlier.kind) {
    case PathKind::kPrefix:
      return later.kind != PathKind::kRegex && starts_with(later_path, earlier_path);
    case PathKind::kExact:
      return later.kind == PathKind::kExact && later_path == earlier_path;
    case PathKind::kRegex:
      if (later.kind == PathKind::kRegex) {
        return later.path == earlier.path && later.case_sensitive == earlier.case_sensitive;
      }
      if (later.kind == PathKind::kExact && earlier.regex.re) {
        return re2::RE2::FullMatch(later.path, *earlier.regex.re);
      }
      return false;
  }
  return false;
}

void validate_resource(Resource& r) {
  switch (r.kind) {
    case Kind::kGateway:
      validate_gateway(r);
      break;
    case Kind::kVirtualService:
      validate_virtual_service(r);
      break;
    case Kind::kUpstream:
      validate_upstream(r);
      break;
    case Kind::kRouteTable:
      validate_routes(r, r.route_table().routes);
      break;
    case Kind::kSecret:         // checked by the translator (files, PEM, key match)
    case Kind::kUpstreamGroup:  // its upstreams are checked by the translator
    case Kind::kSettings:
      break;
  }
}

}  // namespace portico::api
