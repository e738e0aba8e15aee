#include "api/validate.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "api/decode.h"

namespace portico::api {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;

std::vector<std::string> diagnostics_of(const std::string& yaml) {
  DecodedFile f = decode_file("vs.yaml", yaml);
  std::vector<std::string> out;
  for (const auto& d : f.errors)
    out.push_back("FILE " + d.to_string());
  for (const auto& r : f.resources) {
    for (const auto& d : r.diagnostics)
      out.push_back(d.to_string());
  }
  return out;
}

std::string vs(const std::string& routes) {
  return "kind: VirtualService\nmetadata: {name: v}\nspec:\n  virtualHost:\n    routes:\n" + routes;
}

TEST(ApiValidate, UnreachableRoutes) {
  EXPECT_THAT(diagnostics_of(vs(R"(      - matchers: [{prefix: /api}]
        directResponseAction: {status: 200}
      - name: users
        matchers: [{prefix: /api/users}]
        directResponseAction: {status: 200}
      - matchers: [{exact: /api}]
        directResponseAction: {status: 200}
      - matchers: [{prefix: /other, headers: [{name: x}]}]
        directResponseAction: {status: 200}
      - matchers: [{prefix: /other/path}]
        directResponseAction: {status: 200}
      - matchers: [{prefix: /other/path, headers: [{name: x}, {name: y}]}]
        directResponseAction: {status: 200}
)")),
              ElementsAre("vs.yaml:8:9: warning: spec.virtualHost.routes[1]: route 1 (\"users\") "
                          "is unreachable: route 0 matches first",
                          "vs.yaml:11:9: warning: spec.virtualHost.routes[2]: route 2 is "
                          "unreachable: route 0 matches first",
                          "vs.yaml:17:9: warning: spec.virtualHost.routes[5]: route 5 is "
                          "unreachable: route 3 matches first"));
}

TEST(ApiValidate, UnreachableMatcherAndCaseAndMethods) {
  EXPECT_THAT(diagnostics_of(vs(R"(      - matchers: [{regex: "/img/[a-z]+\\.png"}]
        directResponseAction: {status: 200}
      - matchers: [{exact: /img/logo.png}, {exact: /img/Logo.png}]
        directResponseAction: {status: 200}
      - matchers: [{prefix: /a, methods: [GET, POST]}]
        directResponseAction: {status: 200}
      - matchers: [{prefix: /a/b, methods: [GET]}]
        directResponseAction: {status: 200}
      - matchers: [{prefix: /a/c}]
        directResponseAction: {status: 200}
      - matchers: [{prefix: /CI, caseSensitive: false}]
        directResponseAction: {status: 200}
      - matchers: [{prefix: /ci/x}]
        directResponseAction: {status: 200}
      - matchers: [{prefix: /cs}]
        directResponseAction: {status: 200}
      - matchers: [{prefix: /cs/x, caseSensitive: false}]
        directResponseAction: {status: 200}
)")),
              ElementsAre("vs.yaml:8:20: warning: spec.virtualHost.routes[1].matchers[0]: matcher "
                          "0 of route 1 is unreachable: route 0 matches first",
                          "vs.yaml:12:9: warning: spec.virtualHost.routes[3]: route 3 is "
                          "unreachable: route 2 matches first",
                          "vs.yaml:18:9: warning: spec.virtualHost.routes[6]: route 6 is "
                          "unreachable: route 5 matches first"));
}

TEST(ApiValidate, MatcherErrors) {
  EXPECT_THAT(
      diagnostics_of(vs(R"(      - matchers:
          - regex: "/a(b"
          - prefix: api
          - exact: /x?y=1
          - {prefix: /a, regex: /b}
          - headers: [{name: "bad name", value: x}, {name: x, regex: true}, {name: y, value: "[", regex: true}]
            queryParameters: [{name: ""}, {value: x}]
            methods: [GET, "G T", 7]
        directResponseAction: {status: 200}
)")),
      ElementsAre(
          "vs.yaml:7:20: error: spec.virtualHost.routes[0].matchers[0].regex: invalid regex "
          "\"/a(b\": missing ): /a(b",
          "vs.yaml:8:21: error: spec.virtualHost.routes[0].matchers[1].prefix: must start with '/'",
          "vs.yaml:9:20: error: spec.virtualHost.routes[0].matchers[2].exact: must not contain '?' "
          "or '#': paths are matched without the query string (use queryParameters)",
          "vs.yaml:10:13: error: spec.virtualHost.routes[0].matchers[3]: has more than one of "
          "prefix, exact and regex; use one per matcher",
          "vs.yaml:11:30: error: spec.virtualHost.routes[0].matchers[4].headers[0].name: \"bad "
          "name\" is not a valid header name",
          "vs.yaml:11:53: error: spec.virtualHost.routes[0].matchers[4].headers[1].value: is "
          "required when regex is true",
          "vs.yaml:11:94: error: spec.virtualHost.routes[0].matchers[4].headers[2].value: invalid "
          "regex \"[\": missing ]: [",
          "vs.yaml:12:38: error: spec.virtualHost.routes[0].matchers[4].queryParameters[0].name: "
          "must not be empty",
          "vs.yaml:12:43: error: spec.virtualHost.routes[0].matchers[4].queryParameters[1].name: "
          "is required",
          // 7 is a scalar, hence the token "7": valid, if unusual.
          "vs.yaml:13:28: error: spec.virtualHost.routes[0].matchers[4].methods[1]: \"G T\" is not "
          "a valid HTTP method"));
}

TEST(ApiValidate, ActionsAndOptions) {
  std::string body(64 * 1024 + 1, 'x');
  EXPECT_THAT(
      diagnostics_of(vs(R"(      - redirectAction: {responseCode: FOUND}
        matchers: [{prefix: /r}]
      - redirectAction: {responseCode: 307, prefixRewrite: /new}
        matchers: [{exact: /old}]
      - directResponseAction: {status: 99}
        matchers: [{prefix: /s}]
      - directResponseAction: {status: 200, body: )" +
                        body + R"(}
        matchers: [{prefix: /big}]
      - matchers: [{prefix: /f}]
        routeAction: {single: {upstream: {name: u}}}
        options:
          timeout: 1d
          hostRewrite: "a b"
          headerManipulation:
            requestHeadersToAdd:
              - {header: {key: Host, value: x}}
              - {header: {value: x}}
            responseHeadersToAdd:
              - {header: {key: Connection, value: close}}
              - {header: {key: Host, value: ok-on-responses}}
      - matchers: [{prefix: /g}]
        delegateAction: {name: x}
)")),
      ElementsAre(
          "vs.yaml:6:25: warning: spec.virtualHost.routes[0].redirectAction: changes nothing: "
          "clients would be redirected to the same URL",
          "vs.yaml:9:20: error: spec.virtualHost.routes[1].matchers[0]: redirectAction."
          "prefixRewrite needs prefix matchers, and this one is not a prefix",
          "vs.yaml:10:40: error: spec.virtualHost.routes[2].directResponseAction.status: 99 is out "
          "of range (100-599)",
          "vs.yaml:12:51: error: spec.virtualHost.routes[3].directResponseAction.body: is larger "
          "than 64 KiB",
          "vs.yaml:17:20: error: spec.virtualHost.routes[4].options.timeout: unknown unit \"d\" in "
          "duration \"1d\"; units are ms, s, m, h",
          "vs.yaml:18:24: error: spec.virtualHost.routes[4].options.hostRewrite: \"a b\" is not a "
          "valid host",
          "vs.yaml:21:32: error: spec.virtualHost.routes[4].options.headerManipulation."
          "requestHeadersToAdd[0].header.key: \"Host\" cannot be added: hop-by-hop, framing and "
          "Host headers are managed by the proxy (use options.hostRewrite)",
          "vs.yaml:22:26: error: spec.virtualHost.routes[4].options.headerManipulation."
          "requestHeadersToAdd[1].header.key: is required",
          "vs.yaml:24:32: error: spec.virtualHost.routes[4].options.headerManipulation."
          "responseHeadersToAdd[0].header.key: \"Connection\" cannot be added: hop-by-hop, framing "
          "and Host headers are managed by the proxy"));
  // (delegateAction {name: x} is a valid action: the table is looked up by the translator.)
}

TEST(ApiValidate, UpstreamDefaultsAndErrors) {
  DecodedFile f = decode_file("u.yaml", R"(kind: Upstream
metadata: {name: u}
spec:
  static:
    hosts:
      - {addr: 10.0.0.1, port: 80}
      - {addr: 10.0.0.1, port: 80}
)");
  ASSERT_EQ(f.resources.size(), 1u);
  const auto& u = f.resources[0].upstream();
  EXPECT_EQ(u.lb, LbPolicy::kRoundRobin);
  EXPECT_EQ(u.connect_timeout, Millis(2000));
  EXPECT_EQ(u.idle_timeout, Millis(60000));
  EXPECT_EQ(u.max_requests_per_connection, 0u);
  EXPECT_EQ(u.hosts.at(0).weight, 1u);
  std::vector<std::string> lines;
  for (const auto& d : f.resources[0].diagnostics)
    lines.push_back(d.to_string());
  EXPECT_THAT(lines, ElementsAre("u.yaml:1:1: warning: spec.static.hosts[1]: host 10.0.0.1:80 is "
                                 "listed twice"));

  EXPECT_THAT(diagnostics_of(R"(kind: Upstream
metadata: {name: u}
spec:
  aws: {region: x}
  static: {hosts: []}
  loadBalancerConfig: {random: {x: 1}}
  connectionConfig: {maxRequestsPerConnection: 5000000000, idleTimeout: 0s}
)"),
              ElementsAre("vs.yaml:4:8: error: spec.aws: aws upstreams are not supported yet; "
                          "use static hosts",
                          "vs.yaml:5:19: error: spec.static.hosts: must have at least one host",
                          "vs.yaml:6:33: error: spec.loadBalancerConfig.random.x: unknown field "
                          "\"x\": not implemented (refused rather than ignored)",
                          "vs.yaml:7:48: error: spec.connectionConfig.maxRequestsPerConnection: "
                          "5000000000 is out of range (0-4294967295)",
                          "vs.yaml:7:73: error: spec.connectionConfig.idleTimeout: must be greater "
                          "than 0"));
}

TEST(ApiValidate, YamlShapes) {
  // Duplicate keys, null values treated as absent, quoted booleans, unknown fields at every level.
  EXPECT_THAT(diagnostics_of(R"(kind: Gateway
metadata:
  name: g
  namespace:
spec:
  bindPort: 80
  bindPort: 81
  bindAdress: 1.2.3.4
  httpOptions:
    generateRequestId: "true"
    serverNmae: x
status: {state: Accepted}
extra: 1
)"),
              ElementsAre("vs.yaml:7:3: error: spec.bindPort: duplicate key \"bindPort\"",
                          "vs.yaml:8:3: error: spec.bindAdress: unknown field \"bindAdress\": "
                          "not implemented (refused rather than ignored)",
                          "vs.yaml:10:24: error: spec.httpOptions.generateRequestId: expected "
                          "true or false, got the string \"true\"",
                          "vs.yaml:11:5: error: spec.httpOptions.serverNmae: unknown field "
                          "\"serverNmae\": not implemented (refused rather than ignored)",
                          "vs.yaml:13:1: error: extra: unknown field \"extra\": not implemented "
                          "(refused rather than ignored)"));
}

TEST(ApiValidate, ShadowsIsConservative) {
  Matcher prefix;
  prefix.path = "/a";
  Matcher later;
  later.path = "/ab";
  EXPECT_TRUE(shadows(prefix, later));
  later.kind = PathKind::kRegex;
  later.path = "/a.*";
  EXPECT_FALSE(shadows(prefix, later));  // cannot tell what a regex matches
  Matcher exact;
  exact.kind = PathKind::kExact;
  exact.path = "/a";
  Matcher exact_later = exact;
  EXPECT_TRUE(shadows(exact, exact_later));
  EXPECT_FALSE(shadows(exact, prefix));
  exact_later.query.push_back(QueryMatch{"q", std::nullopt, false, {}});
  EXPECT_TRUE(shadows(exact, exact_later));   // more conditions later: still covered
  EXPECT_FALSE(shadows(exact_later, exact));  // fewer conditions later: reachable
}

}  // namespace
}  // namespace portico::api

namespace portico::api {
namespace {

TEST(ApiValidate, ReachabilityCheckIsBounded) {
  std::string routes;
  for (int i = 0; i < 4000; ++i) {
    routes += "      - {matchers: [{exact: /r" + std::to_string(i) +
              "}], directResponseAction: {status: 200}}\n";
  }
  DecodedFile f = decode_file("big.yaml",
                              "kind: VirtualService\nmetadata: {name: v}\nspec:\n"
                              "  virtualHost:\n    routes:\n" +
                                  routes);
  ASSERT_EQ(f.resources.size(), 1u);
  ASSERT_EQ(f.resources[0].diagnostics.size(), 1u);
  EXPECT_EQ(f.resources[0].diagnostics[0].message,
            "too many routes to check for unreachable ones from here on");
  EXPECT_FALSE(f.resources[0].has_errors());
}

}  // namespace
}  // namespace portico::api
