// Translation of a route's retries into snapshot::RetryPolicy (maxInterval defaults to 10 x
// baseInterval), its inheritance through delegation (the parent's policy wins, whole), and of an
// Upstream's circuitBreakers and retryBudget into snapshot::Cluster.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "api/decode_helpers.h"
#include "control/pipeline.h"

namespace portico::control {
namespace {

using api::test::lines;

constexpr const char* kStack = R"(kind: Upstream
metadata: {name: api}
spec:
  static: {hosts: [{addr: 127.0.0.1, port: 9000}]}
  circuitBreakers: {maxRequests: 7, maxRetries: 2}
  retryBudget: {budgetPercent: 50}
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
      - matchers: [{prefix: /own}]
        routeAction: {single: {upstream: {name: api}}}
        options:
          retries: {retryOn: '5xx,reset', numRetries: 3, perTryTimeout: 1s,
                    retryBackOff: {baseInterval: 40ms}}
      - matchers: [{prefix: /team}]
        delegateAction: {ref: {name: team}}
        options: {retries: {retryOn: connect-failure, retryNonIdempotent: true}}
      - routeAction: {single: {upstream: {name: api}}}
---
kind: RouteTable
metadata: {name: team}
spec:
  routes:
    - matchers: [{prefix: /team/a}]
      routeAction: {single: {upstream: {name: api}}}
      options: {retries: {retryOn: 5xx, numRetries: 5}}
)";

TEST(ControlTranslateRetries, RoutePolicyAndDelegation) {
  BuildResult r = build_from_files({{"c.yaml", kStack}}, 1);
  ASSERT_TRUE(r.ok()) << ::testing::PrintToString(lines(r.file_errors));
  const auto& routes = r.config->listeners.at(0).virtual_hosts.at(0)->routes;
  ASSERT_EQ(routes.size(), 3u);
  using P = snapshot::RetryPolicy;
  ASSERT_TRUE(routes[0].options.retry);
  const P& own = *routes[0].options.retry;
  EXPECT_EQ(own.retry_on, P::kOn5xx | P::kOnReset);
  EXPECT_EQ(own.num_retries, 3u);
  EXPECT_EQ(own.per_try_timeout.count(), 1000);
  EXPECT_EQ(own.base_interval.count(), 40);
  EXPECT_EQ(own.max_interval.count(), 400);  // 10 x base
  EXPECT_FALSE(own.retry_non_idempotent);
  // Delegated: the parent's policy replaces the child's.
  ASSERT_TRUE(routes[1].options.retry);
  EXPECT_EQ(routes[1].options.retry->retry_on, P::kOnConnectFailure);
  EXPECT_EQ(routes[1].options.retry->num_retries, 1u);
  EXPECT_TRUE(routes[1].options.retry->retry_non_idempotent);
  EXPECT_FALSE(routes[2].options.retry);
  const std::string dump = snapshot::to_json(*r.config, false);
  EXPECT_NE(dump.find(R"("retry_on":["5xx","reset"])"), std::string::npos) << dump;
}

TEST(ControlTranslateRetries, UpstreamBreakersAndBudget) {
  BuildResult r = build_from_files({{"c.yaml", kStack}}, 1);
  ASSERT_TRUE(r.ok());
  ASSERT_EQ(r.config->clusters.size(), 1u);
  const auto& c = r.config->clusters[0];
  EXPECT_EQ(c.circuit_breakers.max_connections, 1024u);
  EXPECT_EQ(c.circuit_breakers.max_pending_requests, 1024u);
  EXPECT_EQ(c.circuit_breakers.max_requests, 7u);
  EXPECT_EQ(c.circuit_breakers.max_retries, 2u);
  EXPECT_EQ(c.retry_budget.budget_percent, 50u);
  EXPECT_EQ(c.retry_budget.min_retry_concurrency, 3u);
}

}  // namespace
}  // namespace portico::control
