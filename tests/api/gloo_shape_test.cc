// Fail closed (unknown and unimplemented fields are errors; a short allow-list stays warnings) and
// Gloo's Gateway shape (httpGateway.virtualServices / Selector / Namespaces / Expressions).
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "api/decode.h"
#include "api/decode_helpers.h"

namespace portico::api {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;

using test::lines;

Resource decode_one(const std::string& text) {
  return test::decode_one("gloo.yaml", text);
}

TEST(ApiFailClosed, GlooVirtualServiceWithExtauthIsRejected) {
  auto r = decode_one(R"(apiVersion: gateway.solo.io/v1
kind: VirtualService
metadata:
  name: petstore
  namespace: gloo-system
  resourceVersion: "48213"
  uid: 4f7c2a2e-9d0b-4c61-8a51-0f4e2b6f1c7d
  creationTimestamp: "2024-03-01T10:00:00Z"
  generation: 3
spec:
  displayName: Pet store
  virtualHost:
    domains: [petstore.example.com]
    options:
      extauth:
        configRef: {name: basic-auth, namespace: gloo-system}
    routes:
      - matchers: [{prefix: /}]
        routeAction:
          single:
            upstream: {name: default-petstore-8080, namespace: gloo-system}
status:
  statuses:
    gloo-system: {state: Accepted}
)");
  EXPECT_TRUE(r.has_errors());
  EXPECT_EQ(r.meta.generation, 3);
  EXPECT_THAT(
      lines(r.diagnostics),
      ElementsAre("gloo.yaml:1:13: warning: apiVersion: \"gateway.solo.io/v1\" is not "
                  "gateway.portico.dev/v1; read as gateway.portico.dev/v1",
                  "gloo.yaml:6:3: warning: metadata.resourceVersion: is ignored (bookkeeping "
                  "written by Kubernetes or Gloo)",
                  "gloo.yaml:7:3: warning: metadata.uid: is ignored (bookkeeping written by "
                  "Kubernetes or Gloo)",
                  "gloo.yaml:8:3: warning: metadata.creationTimestamp: is ignored (bookkeeping "
                  "written by Kubernetes or Gloo)",
                  "gloo.yaml:11:3: warning: spec.displayName: is ignored (a label for user "
                  "interfaces)",
                  "gloo.yaml:15:7: error: spec.virtualHost.options.extauth: extauth "
                  "(authentication) is not implemented: rejected rather than served without it"));
}

TEST(ApiFailClosed, GlooRouteWithJwtIsRejected) {
  auto r = decode_one(R"(apiVersion: gateway.solo.io/v1
kind: VirtualService
metadata: {name: api, namespace: gloo-system}
spec:
  virtualHost:
    domains: ['*']
    routes:
      - matchers: [{prefix: /admin}]
        routeAction: {single: {upstream: {name: admin}}}
        options:
          jwt:
            providers:
              kc:
                issuer: https://keycloak.example.com/realms/main
                jwks: {remote: {url: https://keycloak.example.com/certs}}
          faults: {abort: {percentage: 1, httpStatus: 503}}
          timeout: 10s
)");
  EXPECT_THAT(
      lines(r.diagnostics),
      ElementsAre("gloo.yaml:1:13: warning: apiVersion: \"gateway.solo.io/v1\" is not "
                  "gateway.portico.dev/v1; read as gateway.portico.dev/v1",
                  "gloo.yaml:11:11: error: spec.virtualHost.routes[0].options.jwt: jwt (JWT "
                  "authentication) is not implemented: rejected rather than served without it",
                  "gloo.yaml:16:11: error: spec.virtualHost.routes[0].options.faults: faults "
                  "(fault injection) is not implemented: rejected rather than served without it"));
}

TEST(ApiFailClosed, TyposAndUnknownUpstreamFeaturesAreErrors) {
  auto r = decode_one(R"(kind: Upstream
metadata: {name: u}
spec:
  static: {hosts: [{addr: 10.0.0.1, port: 80}]}
  discoveryMetadata: {labels: {app: u}}
  outlierDetection: {successRateMinimumHosts: 3}
  loadBalancerConfig: {roundRobin: {slowStartConfig: {slowStartWindow: 10s}}}
)");
  EXPECT_THAT(
      lines(r.diagnostics),
      ElementsAre("gloo.yaml:5:3: warning: spec.discoveryMetadata: is ignored (labels written by "
                  "Gloo's discovery)",
                  "gloo.yaml:6:22: error: spec.outlierDetection.successRateMinimumHosts: "
                  "unknown field \"successRateMinimumHosts\": not implemented (refused rather "
                  "than ignored)",
                  "gloo.yaml:7:37: error: spec.loadBalancerConfig.roundRobin.slowStartConfig: "
                  "unknown field \"slowStartConfig\": not implemented (refused rather than "
                  "ignored)"));
}

TEST(ApiGlooGateway, HttpGatewaySelection) {
  auto r = decode_one(R"(apiVersion: gateway.solo.io/v1
kind: Gateway
metadata: {name: gateway-proxy, namespace: gloo-system}
spec:
  bindAddress: "::"
  bindPort: 8080
  proxyNames: [gateway-proxy]
  useProxyProto: false
  httpGateway:
    virtualServiceExpressions:
      expressions:
        - {key: team, operator: In, values: [a, b]}
        - {key: tier, operator: NotEquals, values: [internal]}
        - {key: canary, operator: DoesNotExist}
        - {key: version, operator: GreaterThan, values: ["2"]}
    virtualServiceNamespaces: [web, shop]
)");
  EXPECT_THAT(lines(r.diagnostics),
              ElementsAre("gloo.yaml:1:13: warning: apiVersion: \"gateway.solo.io/v1\" is not "
                          "gateway.portico.dev/v1; read as gateway.portico.dev/v1"));
  const auto& g = r.gateway();
  EXPECT_FALSE(g.selector);
  ASSERT_TRUE(g.expressions);
  ASSERT_EQ(g.expressions->size(), 4u);
  EXPECT_EQ((*g.expressions)[0].op, LabelOp::kIn);
  EXPECT_THAT((*g.expressions)[0].values, ElementsAre("a", "b"));
  EXPECT_EQ((*g.expressions)[1].op, LabelOp::kNotIn);
  EXPECT_EQ((*g.expressions)[2].op, LabelOp::kDoesNotExist);
  EXPECT_EQ((*g.expressions)[3].op, LabelOp::kGreaterThan);
  ASSERT_TRUE(g.namespaces);
  EXPECT_THAT(*g.namespaces, ElementsAre("web", "shop"));
}

TEST(ApiGlooGateway, SelectorIsAPlainLabelMapAndRefsWin) {
  auto r = decode_one(R"(kind: Gateway
metadata: {name: gw}
spec:
  bindPort: 8080
  httpGateway:
    virtualServices: [{name: a, namespace: web}]
    virtualServiceSelector: {team: a}
)");
  EXPECT_THAT(lines(r.diagnostics),
              ElementsAre("gloo.yaml:7:29: warning: spec.httpGateway.virtualServiceSelector: is "
                          "ignored because virtualServices is set"));
  ASSERT_EQ(r.gateway().virtual_services.size(), 1u);
  EXPECT_EQ(r.gateway().virtual_services[0].to_string(), "web/a");
  EXPECT_EQ(r.gateway().selector->at("team"), "a");
}

TEST(ApiGlooGateway, SelectionErrors) {
  auto f = decode_file("gloo.yaml", R"(kind: Gateway
metadata: {name: gw}
spec:
  bindPort: 8080
  virtualServiceSelector: {labels: {a: b}}
  proxyNames: [internal-proxy]
  useProxyProto: true
  tcpGateway: {tcpHosts: []}
  httpGateway:
    virtualServiceSelector: {team: a}
---
kind: Gateway
metadata: {name: gw2}
spec:
  bindPort: 8081
  httpGateway:
    virtualServiceSelector: {team: a}
    virtualServiceExpressions:
      expressions:
        - {key: team, operator: Matches, values: [a]}
        - {key: team, operator: Exists, values: [a]}
        - {key: team, operator: Equals, values: [a, b]}
        - {key: n, operator: LessThan, values: [x]}
    virtualServiceNamespaces: ["Bad_NS"]
)");
  ASSERT_EQ(f.resources.size(), 2u);
  EXPECT_THAT(
      lines(f.resources[0].diagnostics),
      ElementsAre("gloo.yaml:6:15: error: spec.proxyNames: only [gateway-proxy] (Gloo's default) "
                  "is supported: every Portico proxy serves every Gateway",
                  "gloo.yaml:7:18: error: spec.useProxyProto: the PROXY protocol is not supported "
                  "yet",
                  "gloo.yaml:8:15: error: spec.tcpGateway: tcpGateway is not supported yet; "
                  "Portico serves HTTP gateways",
                  "gloo.yaml:10:5: error: spec.httpGateway: selects virtual services, and so does "
                  "spec.virtualServices or spec.virtualServiceSelector; use one place"));
  const std::string e = "spec.httpGateway.virtualServiceExpressions";
  EXPECT_THAT(
      lines(f.resources[1].diagnostics),
      ElementsAre(
          "gloo.yaml:19:7: error: " + e +
              ": use virtualServiceSelector or virtualServiceExpressions, not both",
          "gloo.yaml:20:33: error: " + e +
              ".expressions[0].operator: \"Matches\" is not an operator (Equals, "
              "DoubleEquals, NotEquals, In, NotIn, Exists, DoesNotExist, GreaterThan, "
              "LessThan)",
          "gloo.yaml:21:33: error: " + e + ".expressions[1].values: Exists takes no values",
          "gloo.yaml:22:33: error: " + e + ".expressions[2].values: Equals takes exactly one value",
          "gloo.yaml:23:30: error: " + e +
              ".expressions[3].values: LessThan needs an integer value",
          "gloo.yaml:24:32: error: spec.httpGateway.virtualServiceNamespaces[0]: "
          "\"Bad_NS\" is not a valid name: use lower-case letters, digits, '-' and '.', "
          "starting and ending with a letter or digit"));
}

}  // namespace
}  // namespace portico::api
