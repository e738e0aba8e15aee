// Upstream healthChecks and outlierDetection: decoded fully, every other sub-field rejected.
#include "api/decode.h"
#include "api/decode_helpers.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace portico::api {
namespace {

using test::lines;
using ::testing::HasSubstr;
using ::testing::SizeIs;

std::string upstream(const std::string& extra) {
  return "kind: Upstream\nmetadata: {name: u}\nspec:\n"
         "  static: {hosts: [{addr: 10.0.0.1, port: 80}]}\n" +
         extra;
}

TEST(HealthDecode, HttpHealthCheckWithEveryField) {
  auto r = test::decode_one("u.yaml", upstream(R"(  healthChecks:
  - timeout: 2s
    interval: 500ms
    intervalJitter: 100ms
    intervalJitterPercent: 10
    unhealthyThreshold: 4
    healthyThreshold: 3
    httpHealthCheck:
      path: /healthz
      host: svc.local
      expectedStatuses: [{start: 200, end: 300}, {start: 404, end: 405}]
)"));
  const auto& hc = r.upstream().health_check;
  ASSERT_TRUE(hc.has_value());
  EXPECT_FALSE(hc->tcp);
  EXPECT_EQ(hc->timeout.count(), 2000);
  EXPECT_EQ(hc->interval.count(), 500);
  EXPECT_EQ(hc->interval_jitter.count(), 100);
  EXPECT_EQ(hc->interval_jitter_percent, 10u);
  EXPECT_EQ(hc->unhealthy_threshold, 4u);
  EXPECT_EQ(hc->healthy_threshold, 3u);
  EXPECT_EQ(hc->path, "/healthz");
  EXPECT_EQ(hc->host, "svc.local");
  ASSERT_THAT(hc->expected_statuses, SizeIs(2));
  EXPECT_EQ(hc->expected_statuses[1], (std::pair<uint16_t, uint16_t>{404, 405}));
}

TEST(HealthDecode, TcpHealthCheckDefaults) {
  auto r = test::decode_one("u.yaml", upstream("  healthChecks: [{tcpHealthCheck: {}}]\n"));
  const auto& hc = r.upstream().health_check;
  ASSERT_TRUE(hc.has_value());
  EXPECT_TRUE(hc->tcp);
  EXPECT_EQ(hc->interval.count(), 5000);
  EXPECT_EQ(hc->timeout.count(), 1000);
  EXPECT_EQ(hc->unhealthy_threshold, 3u);
  EXPECT_EQ(hc->healthy_threshold, 2u);
}

TEST(HealthDecode, UnsupportedPartsAreErrorsNamingThem) {
  auto f = decode_file("u.yaml", upstream(R"(  healthChecks:
  - interval: 1s
    altPort: 9000
    customHealthCheck: {name: x}
  - tcpHealthCheck: {send: {text: "0a"}}
)"));
  ASSERT_EQ(f.resources.size(), 1u);
  auto l = lines(f.resources[0].diagnostics);
  ASSERT_THAT(l, SizeIs(3));
  // In document order.
  EXPECT_THAT(l[0], HasSubstr("spec.healthChecks[0].altPort: unknown field"));
  EXPECT_THAT(l[1], HasSubstr("spec.healthChecks[0].customHealthCheck: custom health checks are "
                              "not supported"));
  EXPECT_THAT(l[2], HasSubstr("spec.healthChecks[1]: only one health check per upstream"));
}

TEST(HealthDecode, BadValuesHaveTheirPath) {
  auto f = decode_file("u.yaml", upstream(R"(  healthChecks:
  - interval: 0s
    unhealthyThreshold: 0
    httpHealthCheck:
      path: healthz
      expectedStatuses: [{start: 300, end: 200}]
)"));
  ASSERT_EQ(f.resources.size(), 1u);
  auto l = lines(f.resources[0].diagnostics);
  ASSERT_THAT(l, SizeIs(4));
  EXPECT_THAT(l[0], HasSubstr("spec.healthChecks[0].interval: must be greater than 0"));
  EXPECT_THAT(l[1], HasSubstr("spec.healthChecks[0].unhealthyThreshold"));
  EXPECT_THAT(l[2], HasSubstr("spec.healthChecks[0].httpHealthCheck.path: must be an absolute"));
  EXPECT_THAT(l[3], HasSubstr("expectedStatuses[0]: start must be less than end"));
}

TEST(HealthDecode, NoCheckKindIsAnError) {
  auto f = decode_file("u.yaml", upstream("  healthChecks: [{interval: 1s}]\n"));
  ASSERT_EQ(f.resources.size(), 1u);
  EXPECT_THAT(lines(f.resources[0].diagnostics)[0],
              HasSubstr("needs one of httpHealthCheck, tcpHealthCheck, grpcHealthCheck"));
}

TEST(HealthDecode, GrpcHealthCheckWithEveryField) {
  auto r = test::decode_one("u.yaml", upstream(R"(  healthChecks:
  - timeout: 2s
    interval: 1s
    unhealthyThreshold: 2
    healthyThreshold: 1
    grpcHealthCheck:
      serviceName: shop.Cart
      authority: cart.internal:50051
      initialMetadata:
      - header: {key: X-Token, value: abc}
        append: false
      - header: {key: x-tenant-bin, value: AAE=}
)"));
  const auto& hc = r.upstream().health_check;
  ASSERT_TRUE(hc.has_value());
  EXPECT_TRUE(hc->grpc);
  EXPECT_FALSE(hc->tcp);
  EXPECT_EQ(hc->service_name, "shop.Cart");
  EXPECT_EQ(hc->host, "cart.internal:50051");
  using Md = std::vector<std::pair<std::string, std::string>>;
  EXPECT_EQ(hc->initial_metadata, (Md{{"x-token", "abc"}, {"x-tenant-bin", "AAE="}}));
  EXPECT_EQ(hc->timeout.count(), 2000);
  EXPECT_EQ(hc->unhealthy_threshold, 2u);
  EXPECT_EQ(hc->healthy_threshold, 1u);
}

TEST(HealthDecode, GrpcHealthCheckDefaults) {
  for (const char* form : {"{}", "null"}) {
    auto r = test::decode_one(
        "u.yaml", upstream(std::string("  healthChecks: [{grpcHealthCheck: ") + form + "}]\n"));
    const auto& hc = r.upstream().health_check;
    ASSERT_TRUE(hc.has_value()) << form;
    EXPECT_TRUE(hc->grpc);
    EXPECT_EQ(hc->service_name, "");  // the server's overall health
    EXPECT_EQ(hc->host, "");          // :authority is the endpoint's address:port
    EXPECT_TRUE(hc->initial_metadata.empty());
  }
}

TEST(HealthDecode, GrpcHealthCheckBadValuesAndUnknownFieldsHaveTheirPath) {
  auto f = decode_file("u.yaml", upstream(R"(  healthChecks:
  - grpcHealthCheck:
      serviceName: [x]
      authority: "a b"
      useHttp2: true
      initialMetadata:
      - header: {key: content-type, value: text/plain}
      - header: {key: grpc-timeout, value: 1S}
      - header: {key: "bad key", value: x}
      - header: {key: x-a, value: "1\n2"}
      - header: {key: X-Dup, value: a}
      - header: {key: x-dup, value: b}
        appendAction: APPEND_IF_EXISTS_OR_ADD
)"));
  ASSERT_EQ(f.resources.size(), 1u);
  auto l = lines(f.resources[0].diagnostics);
  ASSERT_THAT(l, SizeIs(9));
  const std::string g = "spec.healthChecks[0].grpcHealthCheck.";
  // In document order.
  EXPECT_THAT(l[0], HasSubstr(g + "serviceName: expected a string"));
  EXPECT_THAT(l[1], HasSubstr(g + "authority: must be a non-empty host[:port]"));
  EXPECT_THAT(l[2], HasSubstr(g + "useHttp2: unknown field"));
  EXPECT_THAT(l[3], HasSubstr(g + "initialMetadata[0].header.key: \"content-type\" cannot be set"));
  EXPECT_THAT(l[4], HasSubstr(g + "initialMetadata[1].header.key: \"grpc-timeout\" cannot be set"));
  EXPECT_THAT(l[5], HasSubstr(g + "initialMetadata[2].header.key: \"bad key\" is not a valid"));
  EXPECT_THAT(l[6], HasSubstr(g + "initialMetadata[3].header.value: must not contain CR, LF"));
  EXPECT_THAT(l[7], HasSubstr(g + "initialMetadata[5].header.key: \"x-dup\" is listed twice"));
  EXPECT_THAT(l[8], HasSubstr(g + "initialMetadata[5].appendAction: unknown field"));
}

TEST(HealthDecode, GrpcWithAnotherKindIsAnError) {
  auto f = decode_file("u.yaml", upstream(R"(  healthChecks:
  - grpcHealthCheck: {}
    tcpHealthCheck: {}
)"));
  ASSERT_EQ(f.resources.size(), 1u);
  EXPECT_THAT(lines(f.resources[0].diagnostics)[0],
              HasSubstr("spec.healthChecks[0]: has more than one of httpHealthCheck, "
                        "tcpHealthCheck, grpcHealthCheck"));
}

TEST(OutlierDecode, EnvoyFieldsAndDefaults) {
  auto r = test::decode_one("u.yaml", upstream(R"(  outlierDetection:
    consecutive5xx: 3
    consecutiveGatewayFailure: 2
    enforcingConsecutiveGatewayFailure: 100
    consecutiveLocalOriginFailure: 4
    splitExternalLocalOriginErrors: true
    interval: 1s
    baseEjectionTime: 5s
    maxEjectionPercent: 50
)"));
  const auto& o = r.upstream().outlier_detection;
  ASSERT_TRUE(o.has_value());
  EXPECT_EQ(o->consecutive_5xx, 3u);
  EXPECT_EQ(o->consecutive_gateway_failure, 2u);
  EXPECT_EQ(o->enforcing_consecutive_gateway_failure, 100u);
  EXPECT_EQ(o->consecutive_local_origin_failure, 4u);
  EXPECT_TRUE(o->split_external_local_origin_errors);
  EXPECT_EQ(o->interval.count(), 1000);
  EXPECT_EQ(o->base_ejection_time.count(), 5000);
  EXPECT_EQ(o->max_ejection_time.count(), 300000);
  EXPECT_EQ(o->max_ejection_percent, 50u);
  auto d = test::decode_one("u.yaml", upstream("  outlierDetection: {}\n"));
  const auto& od = d.upstream().outlier_detection;
  ASSERT_TRUE(od.has_value());
  EXPECT_EQ(od->consecutive_5xx, 5u);
  EXPECT_EQ(od->base_ejection_time.count(), 30000);
  EXPECT_EQ(od->max_ejection_percent, 10u);
}

TEST(OutlierDecode, SuccessRateIsNotImplemented) {
  auto f = decode_file("u.yaml", upstream(R"(  outlierDetection:
    successRateMinimumHosts: 3
    maxEjectionPercent: 101
)"));
  ASSERT_EQ(f.resources.size(), 1u);
  auto l = lines(f.resources[0].diagnostics);
  ASSERT_THAT(l, SizeIs(2));
  EXPECT_THAT(l[0], HasSubstr("spec.outlierDetection.successRateMinimumHosts: unknown field"));
  EXPECT_THAT(l[1], HasSubstr("spec.outlierDetection.maxEjectionPercent: 101 is out of range"));
}

}  // namespace
}  // namespace portico::api
