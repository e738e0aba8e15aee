#include "api/decode.h"
#include "api/decode_helpers.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace portico::api {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;

using test::lines;

DecodedFile decode(const std::string& text) {
  return decode_file("routes.yaml", text);
}

TEST(ApiDecode, DecodesAGatewayWithDefaults) {
  auto f = decode(R"(apiVersion: gateway.portico.dev/v1
kind: Gateway
metadata:
  name: public
spec:
  bindPort: 8080
)");
  ASSERT_TRUE(f.parsed);
  ASSERT_THAT(f.errors, IsEmpty());
  ASSERT_EQ(f.resources.size(), 1u);
  const auto& r = f.resources[0];
  EXPECT_THAT(lines(r.diagnostics), IsEmpty());
  EXPECT_EQ(r.kind, Kind::kGateway);
  EXPECT_EQ(r.meta.ns, "default");
  EXPECT_EQ(r.key(), "Gateway/default/public");
  EXPECT_EQ(r.loc.line, 1);
  EXPECT_EQ(r.gateway().bind_address, "0.0.0.0");
  EXPECT_EQ(r.gateway().bind_port, 8080);
  EXPECT_FALSE(r.gateway().selector);
  EXPECT_EQ(r.spec_json, R"({"bindPort":8080})");
}

TEST(ApiDecode, GatewayHttpOptionsAndSelector) {
  auto f = decode(R"(kind: Gateway
metadata: {name: gw, namespace: edge}
spec:
  bindAddress: "::"
  bindPort: 443
  virtualServiceSelector:
    labels: {team: a}
  httpOptions:
    maxRequestHeadersBytes: 8192
    maxHeaders: 50
    maxConnections: 1000
    requestHeaderTimeout: 5s
    idleTimeout: 1m
    drainTimeout: 0s
    generateRequestId: false
    serverName: portico
)");
  ASSERT_EQ(f.resources.size(), 1u);
  const auto& r = f.resources[0];
  EXPECT_THAT(lines(r.diagnostics), IsEmpty());
  const auto& g = r.gateway();
  EXPECT_EQ(g.bind_address, "::");
  EXPECT_EQ(g.bind_port, 443);
  ASSERT_TRUE(g.selector);
  EXPECT_EQ(g.selector->at("team"), "a");
  EXPECT_EQ(g.http.max_request_headers_bytes, 8192u);
  EXPECT_EQ(g.http.max_headers, 50u);
  EXPECT_EQ(g.http.max_connections, 1000u);
  EXPECT_EQ(g.http.request_header_timeout, Millis(5000));
  EXPECT_EQ(g.http.idle_timeout, Millis(60000));
  EXPECT_EQ(g.http.drain_timeout, Millis(0));
  EXPECT_EQ(g.http.generate_request_id, false);
  EXPECT_EQ(g.http.server_name, "portico");
}

TEST(ApiDecode, ReportsEveryGatewayProblemWithLineAndPath) {
  auto f = decode(R"(kind: Gateway
apiVersion: gateway.solo.io/v1
metadata:
  name: Public_GW
  lables: {a: b}
spec:
  bindAddress: localhost
  bindPort: "8080"
  httpOptions:
    idleTimeout: 5
    generateRequestId: yes
    maxHeaders: 0
  virtualServices:
    - namespace: x
)");
  ASSERT_TRUE(f.parsed);
  ASSERT_EQ(f.resources.size(), 1u);
  EXPECT_THAT(
      lines(f.resources[0].diagnostics),
      ElementsAre(
          "routes.yaml:2:13: warning: apiVersion: \"gateway.solo.io/v1\" is not "
          "gateway.portico.dev/v1; read as gateway.portico.dev/v1",
          "routes.yaml:4:9: error: metadata.name: \"Public_GW\" is not a valid name: use "
          "lower-case letters, digits, '-' and '.', starting and ending with a letter or digit",
          "routes.yaml:5:3: error: metadata.lables: unknown field \"lables\": not implemented "
          "(refused rather than ignored)",
          "routes.yaml:7:16: error: spec.bindAddress: \"localhost\" is not a numeric IPv4 or IPv6 "
          "address",
          "routes.yaml:8:13: error: spec.bindPort: expected an integer (1-65535), got the string "
          "\"8080\"",
          "routes.yaml:10:18: error: spec.httpOptions.idleTimeout: duration \"5\" has no unit; "
          "use e.g. \"5s\"",
          "routes.yaml:11:24: error: spec.httpOptions.generateRequestId: expected true or false, "
          "got \"yes\"",
          "routes.yaml:12:17: error: spec.httpOptions.maxHeaders: 0 is out of range (1-10000)",
          "routes.yaml:14:7: error: spec.virtualServices[0].name: is required"));
}

TEST(ApiDecode, MissingBindPortAndSpec) {
  auto f = decode(R"(kind: Gateway
metadata: {name: a}
spec: {}
---
kind: Upstream
metadata: {name: b}
)");
  ASSERT_EQ(f.resources.size(), 2u);
  EXPECT_THAT(lines(f.resources[0].diagnostics),
              ElementsAre("routes.yaml:3:7: error: spec.bindPort: is required"));
  EXPECT_THAT(lines(f.resources[1].diagnostics),
              ElementsAre("routes.yaml:5:1: error: spec: is required"));
}

const char* kVirtualService = R"(kind: VirtualService
metadata:
  name: shop
  namespace: web
  labels: {team: a}
spec:
  virtualHost:
    domains: [Shop.Example.com, "*.shop.io"]
    routes:
      - name: api
        matchers:
          - prefix: /api
            headers:
              - {name: X-Version, value: "v[0-9]+", regex: true}
              - {name: X-Debug}
            queryParameters:
              - {name: q, value: "1"}
            methods: [GET, post]
          - exact: /api2
            caseSensitive: false
        routeAction:
          multi:
            destinations:
              - weight: 3
                destination: {upstream: {name: a}}
              - destination: {upstream: {name: b, namespace: other}}
        options:
          timeout: 1.5s
          prefixRewrite: /v2
          hostRewrite: backend.internal
          headerManipulation:
            requestHeadersToAdd:
              - header: {key: X-Added, value: "1"}
                append: false
            requestHeadersToRemove: [X-Secret]
            responseHeadersToAdd:
              - header: {key: Cache-Control, value: no-store}
            responseHeadersToRemove: [Server]
      - matchers: [{regex: "/img/.*\\.png"}]
        redirectAction: {hostRedirect: cdn.example.com, responseCode: PERMANENT_REDIRECT,
                         httpsRedirect: true}
      - directResponseAction: {status: 404, body: nope}
)";

TEST(ApiDecode, DecodesAVirtualService) {
  auto f = decode(kVirtualService);
  ASSERT_TRUE(f.parsed);
  ASSERT_THAT(f.errors, IsEmpty());
  ASSERT_EQ(f.resources.size(), 1u);
  const auto& r = f.resources[0];
  EXPECT_THAT(lines(r.diagnostics),
              ElementsAre("routes.yaml:18:28: warning: spec.virtualHost.routes[0].matchers[0]."
                          "methods[1]: methods are case-sensitive; \"post\" is matched as "
                          "\"POST\""));
  EXPECT_EQ(r.meta.ns, "web");
  EXPECT_EQ(r.meta.labels.at("team"), "a");
  const auto& vs = r.virtual_service();
  ASSERT_EQ(vs.domains.size(), 2u);
  EXPECT_EQ(vs.domains[0].value, "shop.example.com");
  EXPECT_EQ(vs.domains[1].value, "*.shop.io");
  ASSERT_EQ(vs.routes.size(), 3u);

  const auto& api = vs.routes[0];
  EXPECT_EQ(api.name, "api");
  ASSERT_EQ(api.matchers.size(), 2u);
  const auto& m0 = api.matchers[0];
  EXPECT_EQ(m0.kind, PathKind::kPrefix);
  EXPECT_EQ(m0.path, "/api");
  ASSERT_EQ(m0.headers.size(), 2u);
  EXPECT_EQ(m0.headers[0].name, "x-version");
  EXPECT_TRUE(m0.headers[0].regex);
  ASSERT_TRUE(m0.headers[0].pattern.re);
  EXPECT_TRUE(re2::RE2::FullMatch("v12", *m0.headers[0].pattern.re));
  EXPECT_FALSE(m0.headers[1].value);
  ASSERT_EQ(m0.query.size(), 1u);
  EXPECT_EQ(m0.query[0].value, "1");
  EXPECT_EQ(m0.methods, (std::vector<std::string>{"GET", "POST"}));
  EXPECT_EQ(api.matchers[1].kind, PathKind::kExact);
  EXPECT_FALSE(api.matchers[1].case_sensitive);
  const auto& fwd = std::get<ForwardAction>(api.action);
  EXPECT_TRUE(fwd.multi);
  ASSERT_EQ(fwd.destinations.size(), 2u);
  EXPECT_EQ(fwd.destinations[0].weight, 3u);
  EXPECT_EQ(fwd.destinations[0].upstream.to_string(), "web/a");
  EXPECT_EQ(fwd.destinations[0].upstream.path,
            "spec.virtualHost.routes[0].routeAction.multi.destinations[0].destination.upstream");
  EXPECT_EQ(fwd.destinations[0].upstream.loc.line, 25);
  EXPECT_EQ(fwd.destinations[1].weight, 1u);
  EXPECT_EQ(fwd.destinations[1].upstream.to_string(), "other/b");
  EXPECT_EQ(api.options.timeout, Millis(1500));
  EXPECT_EQ(api.options.prefix_rewrite, "/v2");
  EXPECT_EQ(api.options.host_rewrite, "backend.internal");
  ASSERT_EQ(api.options.headers.request_add.size(), 1u);
  EXPECT_EQ(api.options.headers.request_add[0].name, "X-Added");
  EXPECT_FALSE(api.options.headers.request_add[0].append);
  EXPECT_EQ(api.options.headers.request_remove, std::vector<std::string>{"x-secret"});
  ASSERT_EQ(api.options.headers.response_add.size(), 1u);
  EXPECT_TRUE(api.options.headers.response_add[0].append);
  EXPECT_EQ(api.options.headers.response_remove, std::vector<std::string>{"server"});

  const auto& redirect = std::get<RedirectAction>(vs.routes[1].action);
  EXPECT_EQ(vs.routes[1].matchers[0].kind, PathKind::kRegex);
  EXPECT_EQ(redirect.code, 308);
  EXPECT_TRUE(redirect.https);
  EXPECT_EQ(redirect.host, "cdn.example.com");

  const auto& direct = std::get<DirectResponseAction>(vs.routes[2].action);
  EXPECT_EQ(direct.status, 404);
  EXPECT_EQ(direct.body, "nope");
  ASSERT_EQ(vs.routes[2].matchers.size(), 1u);
  EXPECT_EQ(vs.routes[2].matchers[0].path, "/");
}

}  // namespace
}  // namespace portico::api

namespace portico::api {
namespace {

TEST(ApiDecode, StrayCommaDoesNotExhaustMemory) {
  // yaml-cpp 0.7 emits empty documents forever for a top-level ','; the decoder must stop it.
  for (const char* text : {",", "\"x\",\n", "{a: b}\n,\n"}) {
    DecodedFile f = decode_file("c.yaml", text);
    EXPECT_FALSE(f.parsed) << text;
    ASSERT_EQ(f.errors.size(), 1u) << text;
    EXPECT_THAT(f.errors[0].message, ::testing::HasSubstr("stray ','")) << text;
  }
}

TEST(ApiDecode, SyntaxErrorsHaveAPosition) {
  DecodedFile f = decode_file("c.yaml", "kind: Gateway\nmetadata: {name: a\n");
  EXPECT_FALSE(f.parsed);
  ASSERT_EQ(f.errors.size(), 1u);
  EXPECT_EQ(f.errors[0].to_string(), "c.yaml:3:1: error: invalid YAML: end of map flow not found");
}

TEST(ApiDecode, AliasesAreBounded) {
  std::string bomb = "a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n";
  for (int i = 1; i < 9; ++i) {
    bomb += "a" + std::to_string(i) + ": &a" + std::to_string(i) + " [";
    for (int j = 0; j < 10; ++j)
      bomb += (j ? ", *a" : "*a") + std::to_string(i - 1);
    bomb += "]\n";
  }
  DecodedFile f = decode_file("c.yaml", bomb);
  EXPECT_FALSE(f.parsed);
  ASSERT_EQ(f.errors.size(), 1u);
  EXPECT_EQ(f.errors[0].message,
            "document has more than 1000000 nodes once its aliases are expanded");
  f = decode_file("c.yaml", "a: &x [1, *x]\n");  // cyclic
  EXPECT_FALSE(f.parsed);
  EXPECT_EQ(f.errors.at(0).message, "document is nested deeper than 64 levels");
}

}  // namespace
}  // namespace portico::api
