// Decoding of Gloo's gRPC-Web option (httpGateway.options.grpcWeb): on by default, `disable: true`
// turns it off, every other sub-field is refused.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "api/decode.h"
#include "api/decode_helpers.h"

namespace portico::api {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;

TEST(ApiGrpcWeb, UnsetMeansOnAndDisableTurnsItOff) {
  auto on =
      test::decode_one("gw.yaml", "kind: Gateway\nmetadata: {name: gw}\nspec: {bindPort: 8080}\n");
  EXPECT_FALSE(on.gateway().http.grpc_web_disable.has_value());
  auto off = test::decode_one("gw.yaml", R"(kind: Gateway
metadata: {name: gw}
spec:
  bindPort: 8080
  httpGateway:
    options:
      grpcWeb: {disable: true}
)");
  EXPECT_EQ(off.gateway().http.grpc_web_disable, true);
  auto explicit_on = test::decode_one("gw.yaml", R"(kind: Gateway
metadata: {name: gw}
spec:
  bindPort: 8080
  httpGateway: {options: {grpcWeb: {disable: false}}}
)");
  EXPECT_EQ(explicit_on.gateway().http.grpc_web_disable, false);
}

TEST(ApiGrpcWeb, UnknownSubFieldsAndBadValuesAreErrors) {
  auto f = decode_file("gw.yaml", R"(kind: Gateway
metadata: {name: gw}
spec:
  bindPort: 8080
  httpGateway:
    options:
      grpcWeb: {disable: maybe, allowedOrigins: ["*"]}
)");
  ASSERT_EQ(f.resources.size(), 1u);
  EXPECT_THAT(test::lines(f.errors), IsEmpty());
  EXPECT_THAT(
      test::lines(f.resources[0].diagnostics),
      ElementsAre("gw.yaml:7:26: error: spec.httpGateway.options.grpcWeb.disable: expected true or "
                  "false, got \"maybe\"",
                  "gw.yaml:7:33: error: spec.httpGateway.options.grpcWeb.allowedOrigins: unknown "
                  "field \"allowedOrigins\": not implemented (refused rather than ignored)"));
  auto g = decode_file("gw.yaml", R"(kind: Gateway
metadata: {name: gw}
spec:
  bindPort: 8080
  httpGateway: {options: {grpcWeb: true}}
)");
  ASSERT_EQ(g.resources.size(), 1u);
  EXPECT_THAT(test::lines(g.resources[0].diagnostics),
              ElementsAre(::testing::HasSubstr("spec.httpGateway.options.grpcWeb")));
}

}  // namespace
}  // namespace portico::api
