// Translation of a route's tunnel options (options.upgrades, options.idleTimeout) into
// snapshot::RouteOptions, and their inheritance through delegation (the parent's list wins).
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "api/decode_helpers.h"
#include "control/pipeline.h"

namespace portico::control {
namespace {

using api::test::lines;

constexpr const char* kStack = R"(kind: Upstream
metadata: {name: chat}
spec: {static: {hosts: [{addr: 127.0.0.1, port: 9000}]}}
---
kind: Gateway
metadata: {name: gw}
spec: {bindPort: 8080}
---
kind: VirtualService
metadata: {name: vs}
spec:
  virtualHost:
    routes:
      - matchers: [{prefix: /ws}]
        routeAction: {single: {upstream: {name: chat}}}
        options: {upgrades: [{websocket: {enabled: true}}], idleTimeout: 2m}
      - matchers: [{prefix: /, methods: [CONNECT]}]
        routeAction: {single: {upstream: {name: chat}}}
        options: {upgrades: [{connect: {}}]}
      - matchers: [{prefix: /team}]
        delegateAction: {ref: {name: team}}
        options: {upgrades: [{websocket: {}}]}
      - routeAction: {single: {upstream: {name: chat}}}
---
kind: RouteTable
metadata: {name: team}
spec:
  routes:
    - matchers: [{prefix: /team/a}]
      routeAction: {single: {upstream: {name: chat}}}
      options: {upgrades: [{connect: {}}]}
)";

TEST(ControlTranslateUpgrades, RouteOptionsCarryTheTunnels) {
  BuildResult r = build_from_files({{"c.yaml", kStack}}, 1);
  ASSERT_TRUE(r.ok()) << ::testing::PrintToString(lines(r.file_errors));
  ASSERT_EQ(r.config->listeners.size(), 1u);
  const auto& routes = r.config->listeners[0].virtual_hosts.at(0)->routes;
  ASSERT_EQ(routes.size(), 4u);
  EXPECT_TRUE(routes[0].options.websocket);
  EXPECT_FALSE(routes[0].options.connect);
  ASSERT_TRUE(routes[0].options.idle_timeout);
  EXPECT_EQ(routes[0].options.idle_timeout->count(), 120000);
  EXPECT_FALSE(routes[1].options.websocket);
  EXPECT_TRUE(routes[1].options.connect);
  // Delegated: the parent's upgrades replace the child's.
  EXPECT_TRUE(routes[2].options.websocket);
  EXPECT_FALSE(routes[2].options.connect);
  EXPECT_FALSE(routes[3].options.websocket);
  EXPECT_FALSE(routes[3].options.connect);
  EXPECT_FALSE(routes[3].options.idle_timeout);
  const std::string dump = snapshot::to_json(*r.config, false);
  EXPECT_NE(dump.find(R"("upgrades":["websocket"])"), std::string::npos);
  EXPECT_NE(dump.find(R"("idle_timeout_ms":120000)"), std::string::npos);
}

}  // namespace
}  // namespace portico::control
