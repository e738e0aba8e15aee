#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "control/pipeline.h"

namespace portico::control {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;

std::vector<std::string> lines(const std::vector<Diagnostic>& diags) {
  std::vector<std::string> out;
  for (const auto& d : diags)
    out.push_back(d.to_string());
  return out;
}

const ResourceStatus& status(const BuildResult& r, const std::string& kind,
                             const std::string& ns_name) {
  for (const auto& s : r.resources) {
    if (s.kind == kind && s.ns + "/" + s.name == ns_name) return s;
  }
  static ResourceStatus none;
  ADD_FAILURE() << "no status for " << kind << " " << ns_name;
  return none;
}

BuildResult build(const std::string& yaml) {
  return build_from_files({{"c.yaml", yaml}}, 1);
}

TEST(ControlTranslate, TranslatesRoutesInOrder) {
  BuildResult r = build(R"(kind: Gateway
metadata: {name: gw, namespace: edge}
spec:
  bindAddress: 127.0.0.1
  bindPort: 8080
  httpOptions: {idleTimeout: 30s, serverName: portico}
---
kind: Upstream
metadata: {name: echo}
spec:
  static: {hosts: [{addr: 10.0.0.1, port: 80, weight: 2}, {addr: "::1", port: 81}]}
  loadBalancerConfig: {leastRequest: {}}
  connectionConfig: {connectTimeout: 250ms, maxRequestsPerConnection: 100, idleTimeout: 30s}
---
kind: Upstream
metadata: {name: canary}
spec:
  static: {hosts: [{addr: 10.0.0.2, port: 80}]}
---
kind: VirtualService
metadata: {name: shop}
spec:
  virtualHost:
    domains: [shop.example.com]
    routes:
      - name: api
        matchers: [{prefix: /api, methods: [GET]}, {exact: /v1, caseSensitive: false}]
        routeAction:
          multi:
            destinations:
              - {weight: 9, destination: {upstream: {name: echo}}}
              - {weight: 1, destination: {upstream: {name: canary}}}
        options:
          timeout: 0s
          prefixRewrite: /
          headerManipulation:
            responseHeadersToRemove: [Server]
      - matchers: [{prefix: /old}]
        redirectAction: {pathRedirect: /new, responseCode: 307, stripQuery: true}
      - directResponseAction: {status: 418, body: teapot}
)");
  EXPECT_THAT(lines(r.file_errors), IsEmpty());
  for (const auto& s : r.resources)
    EXPECT_THAT(lines(s.reasons), IsEmpty()) << s.name;
  ASSERT_TRUE(r.ok());
  const auto& cfg = *r.config;
  ASSERT_EQ(cfg.listeners.size(), 1u);
  const auto& l = cfg.listeners[0];
  EXPECT_EQ(l.name, "edge/gw");
  EXPECT_EQ(l.address, "127.0.0.1");
  EXPECT_EQ(l.port, 8080);
  EXPECT_EQ(l.http.idle_timeout, snapshot::Millis(30000));
  EXPECT_EQ(l.http.request_header_timeout, snapshot::Millis(10000));  // default kept
  EXPECT_EQ(l.http.server_name, "portico");
  ASSERT_EQ(l.virtual_hosts.size(), 1u);
  const auto& vh = l.virtual_hosts[0];
  EXPECT_EQ(vh.name, "default/shop");
  EXPECT_EQ(vh.domains, std::vector<std::string>{"shop.example.com"});
  ASSERT_EQ(vh.routes.size(), 4u);  // route 0 has two matchers

  EXPECT_EQ(vh.routes[0].name, "default/shop/api");
  EXPECT_EQ(vh.routes[0].match.kind, snapshot::PathMatchKind::kPrefix);
  EXPECT_EQ(vh.routes[0].match.path, "/api");
  EXPECT_EQ(vh.routes[0].match.methods, std::vector<std::string>{"GET"});
  EXPECT_EQ(vh.routes[1].name, "default/shop/api");
  EXPECT_EQ(vh.routes[1].match.kind, snapshot::PathMatchKind::kExact);
  EXPECT_FALSE(vh.routes[1].match.case_sensitive);
  for (int i : {0, 1}) {
    const auto& fwd = std::get<snapshot::ForwardAction>(vh.routes[i].action);
    ASSERT_EQ(fwd.clusters.size(), 2u);
    EXPECT_EQ(fwd.clusters[0].cluster, "default/echo");
    EXPECT_EQ(fwd.clusters[0].weight, 9u);
    EXPECT_EQ(fwd.clusters[1].cluster, "default/canary");
    EXPECT_EQ(fwd.total_weight, 10u);
    EXPECT_EQ(vh.routes[i].options.timeout, snapshot::Millis(0));
    EXPECT_EQ(vh.routes[i].options.prefix_rewrite, "/");
    EXPECT_EQ(vh.routes[i].options.response_headers.remove, std::vector<std::string>{"server"});
  }
  EXPECT_EQ(vh.routes[2].name, "default/shop/1");
  const auto& redirect = std::get<snapshot::RedirectAction>(vh.routes[2].action);
  EXPECT_EQ(redirect.path, "/new");
  EXPECT_EQ(redirect.code, 307);
  EXPECT_TRUE(redirect.strip_query);
  EXPECT_EQ(vh.routes[3].name, "default/shop/2");
  EXPECT_EQ(vh.routes[3].match.path, "/");
  const auto& direct = std::get<snapshot::DirectResponseAction>(vh.routes[3].action);
  EXPECT_EQ(direct.status, 418);
  EXPECT_EQ(direct.body, "teapot");

  ASSERT_EQ(cfg.clusters.size(), 2u);  // sorted by namespace/name
  EXPECT_EQ(cfg.clusters[0].name, "default/canary");
  const auto& echo = cfg.clusters[1];
  EXPECT_EQ(echo.name, "default/echo");
  EXPECT_EQ(echo.lb, snapshot::LbPolicy::kLeastRequest);
  ASSERT_EQ(echo.endpoints.size(), 2u);
  EXPECT_EQ(echo.endpoints[0].address, "10.0.0.1");
  EXPECT_EQ(echo.endpoints[0].weight, 2u);
  EXPECT_EQ(echo.endpoints[1].address, "::1");
  EXPECT_EQ(echo.endpoints[1].weight, 1u);
  EXPECT_EQ(echo.connect_timeout, snapshot::Millis(250));
  EXPECT_EQ(echo.max_requests_per_connection, 100u);
  EXPECT_EQ(echo.idle_connection_timeout, snapshot::Millis(30000));
}

TEST(ControlTranslate, MissingUpstreamIsAWarningAndItsRouteAnswers503) {
  BuildResult r = build(R"(kind: Gateway
metadata: {name: gw}
spec: {bindPort: 8080}
---
kind: Upstream
metadata: {name: broken}
spec: {static: {hosts: [{addr: backend.local, port: 80}]}}
---
kind: VirtualService
metadata: {name: a}
spec:
  virtualHost:
    domains: [a.com]
    routes:
      - routeAction: {single: {upstream: {name: missing}}}
      - routeAction: {single: {upstream: {name: broken}}}
---
kind: VirtualService
metadata: {name: b}
spec:
  virtualHost:
    domains: [b.com]
    routes: [{directResponseAction: {status: 200}}]
)");
  EXPECT_FALSE(r.ok());
  EXPECT_THAT(lines(status(r, "Upstream", "default/broken").reasons),
              ElementsAre("c.yaml:7:32: error: spec.static.hosts[0].addr: \"backend.local\" is not "
                          "a numeric IP address; hostnames are not supported yet (DNS discovery "
                          "comes later)"));
  const auto& a = status(r, "VirtualService", "default/a");
  EXPECT_EQ(a.state, State::kWarning);
  EXPECT_THAT(lines(a.reasons),
              ElementsAre("c.yaml:15:42: warning: spec.virtualHost.routes[0].routeAction.single."
                          "upstream: upstream default/missing not found; the route answers 503",
                          "c.yaml:16:9: warning: spec.virtualHost.routes[1]: route 1 is "
                          "unreachable: route 0 matches first",
                          "c.yaml:16:42: warning: spec.virtualHost.routes[1].routeAction.single."
                          "upstream: upstream default/broken is rejected; the route answers 503"));
  EXPECT_EQ(status(r, "VirtualService", "default/b").state, State::kAccepted);
  EXPECT_EQ(status(r, "Gateway", "default/gw").state, State::kAccepted);
  ASSERT_EQ(r.config->listeners.size(), 1u);
  // Both VirtualServices are served; a's routes point at clusters that do not exist (503).
  ASSERT_EQ(r.config->listeners[0].virtual_hosts.size(), 2u);
  EXPECT_EQ(r.config->listeners[0].virtual_hosts[0].name, "default/a");
  const auto& fwd = std::get<snapshot::ForwardAction>(
      r.config->listeners[0].virtual_hosts[0].routes.at(0).action);
  EXPECT_EQ(fwd.clusters.at(0).cluster, "default/missing");
  EXPECT_EQ(r.config->listeners[0].virtual_hosts[1].name, "default/b");
  EXPECT_TRUE(r.config->clusters.empty());
}

TEST(ControlTranslate, BindConflictRejectsBothGateways) {
  BuildResult r = build(R"(kind: Gateway
metadata: {name: a}
spec: {bindPort: 8080}
---
kind: Gateway
metadata: {name: b}
spec: {bindAddress: 127.0.0.1, bindPort: 8080}
---
kind: Gateway
metadata: {name: c}
spec: {bindAddress: "::1", bindPort: 8080}
---
kind: Gateway
metadata: {name: d}
spec: {bindPort: 8081}
)");
  EXPECT_THAT(lines(status(r, "Gateway", "default/a").reasons),
              ElementsAre("c.yaml:3:18: error: spec.bindPort: bind address 0.0.0.0:8080 conflicts "
                          "with gateway default/b (127.0.0.1:8080)"));
  EXPECT_THAT(lines(status(r, "Gateway", "default/b").reasons),
              ElementsAre("c.yaml:7:42: error: spec.bindPort: bind address 127.0.0.1:8080 "
                          "conflicts with gateway default/a (0.0.0.0:8080)"));
  EXPECT_EQ(status(r, "Gateway", "default/c").state, State::kAccepted);
  EXPECT_EQ(status(r, "Gateway", "default/d").state, State::kAccepted);
  ASSERT_EQ(r.config->listeners.size(), 2u);
  EXPECT_EQ(r.config->listeners[0].name, "default/c");
  EXPECT_EQ(r.config->listeners[0].address, "::1");
  EXPECT_EQ(r.config->listeners[1].name, "default/d");
}

TEST(ControlTranslate, DomainConflictRejectsBothVirtualServices) {
  BuildResult r = build(R"(kind: Gateway
metadata: {name: gw}
spec: {bindPort: 8080}
---
kind: VirtualService
metadata: {name: a}
spec:
  virtualHost:
    domains: [Shop.com, a.com]
    routes: [{directResponseAction: {status: 200}}]
---
kind: VirtualService
metadata: {name: b, namespace: other}
spec:
  virtualHost:
    domains: [shop.com]
    routes: [{directResponseAction: {status: 200}}]
---
kind: VirtualService
metadata: {name: c}
spec:
  virtualHost:
    routes: [{directResponseAction: {status: 200}}]
)");
  EXPECT_THAT(lines(status(r, "VirtualService", "default/a").reasons),
              ElementsAre("c.yaml:9:15: error: spec.virtualHost.domains[0]: domain conflict: "
                          "\"shop.com\" is also served by virtual service other/b on gateway "
                          "default/gw"));
  EXPECT_THAT(lines(status(r, "VirtualService", "other/b").reasons),
              ElementsAre("c.yaml:16:15: error: spec.virtualHost.domains[0]: domain conflict: "
                          "\"shop.com\" is also served by virtual service default/a on gateway "
                          "default/gw"));
  EXPECT_EQ(status(r, "VirtualService", "default/c").state, State::kAccepted);
  ASSERT_EQ(r.config->listeners.at(0).virtual_hosts.size(), 1u);
  EXPECT_EQ(r.config->listeners[0].virtual_hosts[0].name, "default/c");
  EXPECT_EQ(r.config->listeners[0].virtual_hosts[0].domains, std::vector<std::string>{"*"});
}

TEST(ControlTranslate, GatewaySelection) {
  BuildResult r = build(R"(kind: Gateway
metadata: {name: by-ref, namespace: edge}
spec:
  bindPort: 8080
  virtualServices:
    - {name: a, namespace: default}
    - {name: nope}
---
kind: Gateway
metadata: {name: by-label}
spec:
  bindPort: 8081
  virtualServiceSelector: {labels: {team: b}}
---
kind: VirtualService
metadata: {name: a}
spec: {virtualHost: {domains: [a.com], routes: [{directResponseAction: {status: 200}}]}}
---
kind: VirtualService
metadata: {name: b, namespace: x, labels: {team: b}}
spec: {virtualHost: {domains: [b.com], routes: [{directResponseAction: {status: 200}}]}}
---
kind: VirtualService
metadata: {name: lonely}
spec: {virtualHost: {domains: [c.com], routes: [{directResponseAction: {status: 200}}]}}
)");
  EXPECT_THAT(lines(status(r, "Gateway", "edge/by-ref").reasons),
              ElementsAre("c.yaml:7:7: warning: spec.virtualServices[1]: virtual service "
                          "edge/nope not found"));
  EXPECT_EQ(status(r, "Gateway", "edge/by-ref").state, State::kWarning);
  EXPECT_THAT(lines(status(r, "VirtualService", "default/lonely").reasons),
              ElementsAre("c.yaml:23:1: warning: not served: no accepted gateway selects this "
                          "virtual service"));
  const auto& cfg = *r.config;
  ASSERT_EQ(cfg.listeners.size(), 2u);
  EXPECT_EQ(cfg.listeners[0].name, "default/by-label");
  ASSERT_EQ(cfg.listeners[0].virtual_hosts.size(), 1u);
  EXPECT_EQ(cfg.listeners[0].virtual_hosts[0].name, "x/b");
  EXPECT_EQ(cfg.listeners[1].name, "edge/by-ref");
  ASSERT_EQ(cfg.listeners[1].virtual_hosts.size(), 1u);
  EXPECT_EQ(cfg.listeners[1].virtual_hosts[0].name, "default/a");
}

TEST(ControlTranslate, IdenticalInputGivesIdenticalJson) {
  std::string a =
      "kind: Upstream\nmetadata: {name: u1}\nspec: {static: {hosts: [{addr: 1.1.1.1, "
      "port: 1}]}}\n";
  std::string b =
      "kind: Upstream\nmetadata: {name: u0, namespace: a-b}\nspec: {static: {hosts: "
      "[{addr: 1.1.1.1, port: 1}]}}\n";
  std::string g = "kind: Gateway\nmetadata: {name: g}\nspec: {bindPort: 1}\n";
  BuildResult r1 = build_from_files({{"1.yaml", a}, {"2.yaml", b}, {"3.yaml", g}}, 5);
  BuildResult r2 = build_from_files({{"3.yaml", g}, {"2.yaml", b}, {"1.yaml", a}}, 5);
  auto c1 = *r1.config, c2 = *r2.config;
  c1.created_unix_ms = c2.created_unix_ms = 0;
  EXPECT_EQ(snapshot::to_json(c1), snapshot::to_json(c2));
  ASSERT_EQ(c1.clusters.size(), 2u);
  EXPECT_EQ(c1.clusters[0].name, "a-b/u0");  // by namespace: "a-b" < "default"
  EXPECT_EQ(resources_to_json(r1.resources, r1.file_errors),
            resources_to_json(r2.resources, r2.file_errors));
}

TEST(ControlTranslate, QuickstartExampleIsClean) {
  BuildResult r = validate_directory(std::string(PORTICO_SOURCE_DIR) + "/examples/quickstart");
  EXPECT_THAT(lines(r.file_errors), IsEmpty());
  ASSERT_EQ(r.resources.size(), 3u);
  for (const auto& s : r.resources) {
    EXPECT_EQ(s.state, State::kAccepted) << s.kind << " " << s.name;
    EXPECT_THAT(lines(s.reasons), IsEmpty());
  }
  ASSERT_EQ(r.config->listeners.size(), 1u);
  EXPECT_EQ(r.config->listeners[0].port, 8080);
  ASSERT_EQ(r.config->listeners[0].virtual_hosts.size(), 1u);
  EXPECT_EQ(r.config->listeners[0].virtual_hosts[0].routes.size(), 5u);
}

}  // namespace
}  // namespace portico::control

namespace portico::control {
namespace {

TEST(ControlTranslate, ReferencesWinOverSelectorAndRejectedServicesAreReported) {
  BuildResult r = build_from_files({{"c.yaml", R"(kind: Gateway
metadata: {name: gw}
spec:
  bindPort: 8080
  virtualServices: [{name: a}, {name: bad}, {name: bad}]
  virtualServiceSelector: {labels: {x: y}}
---
kind: VirtualService
metadata: {name: a}
spec: {virtualHost: {routes: [{directResponseAction: {status: 200}}]}}
---
kind: VirtualService
metadata: {name: bad}
spec: {virtualHost: {routes: [{directResponseAction: {status: 1}}]}}
)"}},
                                   1);
  std::vector<std::string> reasons;
  for (const auto& d : r.resources.at(0).reasons)
    reasons.push_back(d.to_string());
  EXPECT_THAT(reasons,
              ::testing::ElementsAre(
                  "c.yaml:5:32: warning: spec.virtualServices[1]: virtual service default/bad is "
                  "rejected and not served",
                  "c.yaml:5:45: warning: spec.virtualServices[2]: virtual service default/bad is "
                  "listed twice",
                  "c.yaml:6:27: warning: spec.virtualServiceSelector: is ignored because "
                  "virtualServices is set"));
  ASSERT_EQ(r.config->listeners.size(), 1u);
  ASSERT_EQ(r.config->listeners[0].virtual_hosts.size(), 1u);
  EXPECT_EQ(r.config->listeners[0].virtual_hosts[0].name, "default/a");
}

}  // namespace
}  // namespace portico::control
