// Translation of gRPC-Web (Gloo's httpGateway.options.grpcWeb): the grpc_web filter is on every
// listener unless the Gateway disables it.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "api/decode_helpers.h"
#include "control/pipeline.h"

namespace portico::control {
namespace {

using ::testing::IsEmpty;

constexpr const char* kVs = R"(
---
kind: VirtualService
metadata: {name: vs}
spec:
  virtualHost:
    routes:
      - matchers: [{prefix: /}]
        directResponseAction: {status: 200}
)";

TEST(ControlTranslateGrpcWeb, OnByDefaultOffWhenDisabled) {
  BuildResult r = build_from_files({{"c.yaml", std::string(R"(kind: Gateway
metadata: {name: on}
spec: {bindPort: 8080}
---
kind: Gateway
metadata: {name: off}
spec:
  bindPort: 8081
  httpGateway: {options: {grpcWeb: {disable: true}}}
)") + kVs}},
                                   1);
  for (const auto& s : r.resources)
    EXPECT_THAT(api::test::lines(s.reasons), IsEmpty()) << s.kind << " " << s.name;
  ASSERT_EQ(r.config->listeners.size(), 2u);
  for (const auto& l : r.config->listeners) {
    if (l.port == 8080) {
      ASSERT_EQ(l.http.filters.size(), 1u);
      EXPECT_EQ(l.http.filters[0].name, "grpc_web");
      EXPECT_EQ(l.http.filters[0].config, "{}");
    } else {
      EXPECT_TRUE(l.http.filters.empty());
    }
  }
  const std::string dump = snapshot::to_json(*r.config);
  EXPECT_NE(dump.find("\"filters\""), std::string::npos);
  EXPECT_NE(dump.find("\"grpc_web\""), std::string::npos);
}

}  // namespace
}  // namespace portico::control
