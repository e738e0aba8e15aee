// Decoding of a route's tunnel options: options.upgrades (Gloo's list of {websocket: {enabled}} and
// {connect: {enabled}}; anything else is an error) and options.idleTimeout.
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

std::string vs_with_options(const std::string& options) {
  return R"(kind: VirtualService
metadata: {name: chat}
spec:
  virtualHost:
    routes:
      - routeAction: {single: {upstream: {name: chat}}}
        options:
)" + options;
}

std::vector<std::string> errors_of(const std::string& options) {
  auto f = decode_file("vs.yaml", vs_with_options(options));
  std::vector<std::string> out = lines(f.errors);
  for (const auto& r : f.resources) {
    for (const auto& l : lines(r.diagnostics))
      out.push_back(l);
  }
  return out;
}

TEST(ApiUpgrades, WebSocketAndConnect) {
  auto r = test::decode_one("vs.yaml", vs_with_options(R"(          upgrades:
            - websocket: {enabled: true}
            - connect: {}
          idleTimeout: 90s
)"));
  EXPECT_THAT(lines(r.diagnostics), IsEmpty());
  const auto& o = r.virtual_service().routes.at(0).options;
  ASSERT_TRUE(o.upgrades);
  EXPECT_TRUE(o.upgrades->websocket);
  EXPECT_TRUE(o.upgrades->connect);  // `enabled` defaults to true
  ASSERT_TRUE(o.idle_timeout);
  EXPECT_EQ(o.idle_timeout->count(), 90000);
}

TEST(ApiUpgrades, DisabledAndAbsent) {
  auto r = test::decode_one("vs.yaml", vs_with_options(R"(          upgrades:
            - websocket: {enabled: false}
)"));
  const auto& o = r.virtual_service().routes.at(0).options;
  ASSERT_TRUE(o.upgrades);
  EXPECT_FALSE(o.upgrades->websocket);
  EXPECT_FALSE(o.upgrades->connect);
  auto plain = test::decode_one("vs.yaml", vs_with_options("          timeout: 1s\n"));
  EXPECT_FALSE(plain.virtual_service().routes.at(0).options.upgrades);
  EXPECT_FALSE(plain.virtual_service().routes.at(0).options.idle_timeout);
}

TEST(ApiUpgrades, UnknownKindsAndFieldsAreErrors) {
  EXPECT_THAT(errors_of("          upgrades: [{h2c: {enabled: true}}]\n"),
              ElementsAre(HasSubstr("spec.virtualHost.routes[0].options.upgrades[0].h2c: unknown "
                                    "field \"h2c\"")));
  EXPECT_THAT(errors_of("          upgrades: [{websocket: {enabled: true, maxFrameSize: 10}}]\n"),
              ElementsAre(HasSubstr("upgrades[0].websocket.maxFrameSize: unknown field")));
  EXPECT_THAT(errors_of("          upgrades: [{websocket: {}, connect: {}}]\n"),
              ElementsAre(HasSubstr("one upgrade per item")));
  EXPECT_THAT(errors_of("          upgrades: [{}]\n"),
              ElementsAre(HasSubstr("needs one of websocket and connect")));
  EXPECT_THAT(errors_of("          upgrades: [{websocket: {}}, {websocket: {}}]\n"),
              ElementsAre(HasSubstr("upgrades[1].websocket: is listed twice")));
  EXPECT_THAT(errors_of("          upgrades: [{websocket: true}]\n"),
              ElementsAre(HasSubstr("expected a map such as {enabled: true}")));
  EXPECT_THAT(errors_of("          upgrades: [{websocket: }]\n"),
              ElementsAre(HasSubstr("expected a map such as {enabled: true}")));
  EXPECT_THAT(errors_of("          upgrades: [{websocket: {enabled: yes please}}]\n"),
              ElementsAre(HasSubstr("enabled")));
  EXPECT_THAT(errors_of("          upgrades: {websocket: {}}\n"),
              ElementsAre(HasSubstr("upgrades")));
  EXPECT_THAT(errors_of("          idleTimeout: 0s\n"),
              ElementsAre(HasSubstr("options.idleTimeout: must be greater than 0")));
}

TEST(ApiUpgrades, UpgradesOnARouteThatDoesNotForwardAreAWarning) {
  auto f = decode_file("vs.yaml", R"(kind: VirtualService
metadata: {name: chat}
spec:
  virtualHost:
    routes:
      - directResponseAction: {status: 200}
        options: {upgrades: [websocket: {}]}
)");
  ASSERT_EQ(f.resources.size(), 1u);
  EXPECT_THAT(lines(f.resources[0].diagnostics),
              ElementsAre(HasSubstr("warning: spec.virtualHost.routes[0].options.upgrades: "
                                    "upgrades only apply to routeAction routes")));
}

}  // namespace
}  // namespace portico::api
