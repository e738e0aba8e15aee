// Upstream healthChecks into snapshot::HealthCheck: the gRPC check's fields.
#include <gtest/gtest.h>

#include "control/pipeline.h"
#include "control/translate/translator.h"

namespace portico::control {
namespace {

constexpr const char* kConfig = R"(kind: Gateway
metadata: {name: gw}
spec: {bindPort: 8080}
---
kind: Upstream
metadata: {name: cart}
spec:
  static: {hosts: [{addr: 10.0.0.1, port: 50051}]}
  healthChecks:
  - interval: 2s
    unhealthyThreshold: 4
    grpcHealthCheck:
      serviceName: shop.Cart
      authority: cart.internal
      initialMetadata: [{header: {key: X-Token, value: abc}}]
---
kind: Upstream
metadata: {name: plain}
spec:
  static: {hosts: [{addr: 10.0.0.2, port: 50051}]}
  healthChecks: [{grpcHealthCheck: {}}]
---
kind: VirtualService
metadata: {name: v}
spec:
  virtualHost:
    routes:
      - matchers: [{prefix: /a}]
        routeAction: {single: {upstream: {name: cart}}}
      - matchers: [{prefix: /b}]
        routeAction: {single: {upstream: {name: plain}}}
)";

const snapshot::Cluster* cluster(const BuildResult& r, const std::string& name) {
  for (const auto& c : r.config->clusters)
    if (c.name == name) return &c;
  return nullptr;
}

TEST(ControlTranslateHealth, GrpcHealthCheck) {
  BuildResult r = build_from_files({{"c.yaml", kConfig}}, 1);
  ASSERT_TRUE(r.config);
  const auto* cart = cluster(r, "default/cart");
  ASSERT_NE(cart, nullptr);
  ASSERT_TRUE(cart->health_check.has_value());
  const auto& hc = *cart->health_check;
  EXPECT_EQ(hc.kind, snapshot::HealthCheck::Kind::kGrpc);
  EXPECT_EQ(hc.service_name, "shop.Cart");
  EXPECT_EQ(hc.host, "cart.internal");
  ASSERT_EQ(hc.initial_metadata.size(), 1u);
  EXPECT_EQ(hc.initial_metadata[0], (std::pair<std::string, std::string>{"x-token", "abc"}));
  EXPECT_EQ(hc.interval.count(), 2000);
  EXPECT_EQ(hc.unhealthy_threshold, 4u);

  const auto* plain = cluster(r, "default/plain");
  ASSERT_NE(plain, nullptr);
  ASSERT_TRUE(plain->health_check.has_value());
  EXPECT_EQ(plain->health_check->kind, snapshot::HealthCheck::Kind::kGrpc);
  EXPECT_EQ(plain->health_check->service_name, "");
  EXPECT_EQ(plain->health_check->host, "");
  EXPECT_TRUE(plain->health_check->initial_metadata.empty());
  EXPECT_NE(plain->health_check, cart->health_check);  // a change of check drops kept connections
}

}  // namespace
}  // namespace portico::control
