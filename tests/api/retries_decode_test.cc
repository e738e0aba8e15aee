// Decoding of the resilience fields: a route's options.retries (Gloo's RetryPolicy plus Portico's
// retriableStatusCodes and retryNonIdempotent) and an Upstream's circuitBreakers and retryBudget.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "api/decode.h"
#include "api/decode_helpers.h"

namespace portico::api {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

using test::lines;

std::string vs_with_retries(const std::string& retries) {
  return R"(kind: VirtualService
metadata: {name: api}
spec:
  virtualHost:
    routes:
      - routeAction: {single: {upstream: {name: api}}}
        options:
          retries: )" +
         retries + "\n";
}

std::string upstream_with(const std::string& fields) {
  return R"(kind: Upstream
metadata: {name: api}
spec:
  static: {hosts: [{addr: 127.0.0.1, port: 80}]}
)" + fields;
}

std::vector<std::string> errors_of(const std::string& text) {
  auto f = decode_file("r.yaml", text);
  std::vector<std::string> out = lines(f.errors);
  for (const auto& r : f.resources) {
    for (const auto& l : lines(r.diagnostics))
      out.push_back(l);
  }
  return out;
}

TEST(ApiRetries, MaxReplayBytes) {
  auto r = test::decode_one("r.yaml", vs_with_retries("{retryOn: 5xx, maxReplayBytes: 1048576}"));
  EXPECT_THAT(lines(r.diagnostics), IsEmpty());
  EXPECT_EQ(r.virtual_service().routes.at(0).options.retries->max_replay_bytes, 1048576u);
  auto d = test::decode_one("r.yaml", vs_with_retries("{retryOn: 5xx}"));
  EXPECT_EQ(d.virtual_service().routes.at(0).options.retries->max_replay_bytes, 65536u);
  EXPECT_THAT(errors_of(vs_with_retries("{retryOn: 5xx, maxReplayBytes: 99999999}")),
              ElementsAre(HasSubstr("spec.virtualHost.routes[0].options.retries.maxReplayBytes")));
}

TEST(ApiRetries, FullPolicy) {
  auto r = test::decode_one(
      "r.yaml", vs_with_retries("{retryOn: '5xx, connect-failure,retriable-status-codes', "
                                "retriableStatusCodes: [429, 409], numRetries: 3, "
                                "perTryTimeout: 250ms, retryBackOff: {baseInterval: 10ms, "
                                "maxInterval: 1s}, retryNonIdempotent: true}"));
  EXPECT_THAT(lines(r.diagnostics), IsEmpty());
  const auto& o = r.virtual_service().routes.at(0).options;
  ASSERT_TRUE(o.retries);
  EXPECT_EQ(o.retries->retry_on,
            RetryOptions::kOn5xx | RetryOptions::kOnConnectFailure | RetryOptions::kOnStatusCodes);
  EXPECT_THAT(o.retries->retriable_status_codes, ElementsAre(429, 409));
  EXPECT_EQ(o.retries->num_retries, 3u);
  EXPECT_EQ(o.retries->per_try_timeout.count(), 250);
  EXPECT_EQ(o.retries->base_interval.count(), 10);
  ASSERT_TRUE(o.retries->max_interval);
  EXPECT_EQ(o.retries->max_interval->count(), 1000);
  EXPECT_TRUE(o.retries->retry_non_idempotent);
}

TEST(ApiRetries, Defaults) {
  auto r = test::decode_one("r.yaml", vs_with_retries("{retryOn: gateway-error}"));
  const auto& o = r.virtual_service().routes.at(0).options;
  ASSERT_TRUE(o.retries);
  EXPECT_EQ(o.retries->retry_on, RetryOptions::kOnGatewayError);
  EXPECT_EQ(o.retries->num_retries, 1u);
  EXPECT_EQ(o.retries->per_try_timeout.count(), 0);
  EXPECT_EQ(o.retries->base_interval.count(), 25);
  EXPECT_FALSE(o.retries->max_interval);  // 10 x base, filled in by the translator
  EXPECT_FALSE(o.retries->retry_non_idempotent);
}

TEST(ApiRetries, BadValuesAreErrorsWithTheirPath) {
  EXPECT_THAT(errors_of(vs_with_retries("{retryOn: '5xx,envoy-ratelimited'}")),
              ElementsAre(HasSubstr("options.retries.retryOn: retry condition "
                                    "\"envoy-ratelimited\" is not supported")));
  EXPECT_THAT(errors_of(vs_with_retries("{retryOn: '5xx,,reset'}")),
              ElementsAre(HasSubstr("retryOn: has an empty condition")));
  EXPECT_THAT(errors_of(vs_with_retries("{numRetries: 2}")),
              ElementsAre(HasSubstr("options.retries.retryOn: is required")));
  EXPECT_THAT(errors_of(vs_with_retries("{retryOn: 5xx, retriableStatusCodes: [503]}")),
              ElementsAre(HasSubstr("retriableStatusCodes: applies only with")));
  EXPECT_THAT(errors_of(vs_with_retries("{retryOn: retriable-status-codes}")),
              ElementsAre(HasSubstr("retriableStatusCodes lists none")));
  EXPECT_THAT(
      errors_of(vs_with_retries("{retryOn: retriable-status-codes, retriableStatusCodes: [42]}")),
      ElementsAre(HasSubstr("retriableStatusCodes[0]")));
  EXPECT_THAT(errors_of(vs_with_retries("{retryOn: 5xx, perTryTimeout: 0s}")),
              ElementsAre(HasSubstr("perTryTimeout: must be greater than 0")));
  EXPECT_THAT(errors_of(vs_with_retries(
                  "{retryOn: 5xx, retryBackOff: {baseInterval: 100ms, maxInterval: 10ms}}")),
              ElementsAre(HasSubstr("retryBackOff.maxInterval: must be at least baseInterval")));
  EXPECT_THAT(errors_of(vs_with_retries("{retryOn: 5xx, numRetries: 1000}")),
              ElementsAre(HasSubstr("options.retries.numRetries")));
}

TEST(ApiRetries, UnknownSubFieldsAreErrors) {
  EXPECT_THAT(
      errors_of(vs_with_retries("{retryOn: 5xx, previousPriorities: {updateFrequency: 2}}")),
      ElementsAre(HasSubstr("options.retries.previousPriorities: unknown field")));
  EXPECT_THAT(errors_of(vs_with_retries("{retryOn: 5xx, retryBackOff: {jitter: 0.5}}")),
              ElementsAre(HasSubstr("options.retries.retryBackOff.jitter: unknown field")));
}

TEST(ApiRetries, OnADirectResponseRouteAWarning) {
  auto f = decode_file("r.yaml", R"(kind: VirtualService
metadata: {name: api}
spec:
  virtualHost:
    routes:
      - directResponseAction: {status: 200}
        options: {retries: {retryOn: 5xx}}
)");
  ASSERT_EQ(f.resources.size(), 1u);
  EXPECT_THAT(lines(f.resources[0].diagnostics),
              ElementsAre(HasSubstr("options.retries: retries only apply to routeAction routes")));
}

TEST(ApiCircuitBreakers, FieldsAndDefaults) {
  auto r = test::decode_one(
      "r.yaml", upstream_with("  circuitBreakers: {maxConnections: 10, maxPendingRequests: 20, "
                              "maxRequests: 30, maxRetries: 0}\n"
                              "  retryBudget: {budgetPercent: 50, minRetryConcurrency: 1}\n"));
  EXPECT_THAT(lines(r.diagnostics), IsEmpty());
  const auto& u = r.upstream();
  EXPECT_EQ(u.cb_max_connections, 10u);
  EXPECT_EQ(u.cb_max_pending_requests, 20u);
  EXPECT_EQ(u.cb_max_requests, 30u);
  EXPECT_EQ(u.cb_max_retries, 0u);
  EXPECT_EQ(u.retry_budget_percent, 50u);
  EXPECT_EQ(u.retry_budget_min_concurrency, 1u);
  auto d = test::decode_one("r.yaml", upstream_with(""));
  EXPECT_EQ(d.upstream().cb_max_connections, 1024u);
  EXPECT_EQ(d.upstream().cb_max_pending_requests, 1024u);
  EXPECT_EQ(d.upstream().cb_max_requests, 1024u);
  EXPECT_EQ(d.upstream().cb_max_retries, 1024u);
  EXPECT_EQ(d.upstream().retry_budget_percent, 20u);
  EXPECT_EQ(d.upstream().retry_budget_min_concurrency, 3u);
}

TEST(ApiCircuitBreakers, BadValuesAndUnknownFieldsAreErrors) {
  EXPECT_THAT(errors_of(upstream_with("  circuitBreakers: {maxConnections: 0}\n")),
              ElementsAre(HasSubstr("spec.circuitBreakers.maxConnections")));
  EXPECT_THAT(errors_of(upstream_with("  circuitBreakers: {trackRemaining: true}\n")),
              ElementsAre(HasSubstr("spec.circuitBreakers.trackRemaining: unknown field")));
  EXPECT_THAT(errors_of(upstream_with("  retryBudget: {budgetPercent: 101}\n")),
              ElementsAre(HasSubstr("spec.retryBudget.budgetPercent")));
  EXPECT_THAT(errors_of(upstream_with("  retryBudget: {percent: 10}\n")),
              ElementsAre(HasSubstr("spec.retryBudget.percent: unknown field")));
}

}  // namespace
}  // namespace portico::api
