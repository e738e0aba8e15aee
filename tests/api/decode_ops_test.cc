// Access logs on Gateways, the per-route switch, and Settings' overload limits.
#include "api/decode.h"
#include "api/decode_helpers.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace portico::api {
namespace {

using test::lines;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

std::string gateway(const std::string& options) {
  return "apiVersion: gateway.portico.dev/v1\nkind: Gateway\nmetadata:\n  name: gw\nspec:\n"
         "  bindPort: 8080\n  options:\n" +
         options;
}

TEST(DecodeOps, GlooAccessLoggingService) {
  auto r = test::decode_one("gw.yaml", gateway(R"(    accessLoggingService:
      accessLog:
      - fileSink:
          path: /var/log/portico/access.log
          stringFormat: "%REQ(:METHOD)% %RESPONSE_CODE%"
      - fileSink:
          path: /dev/stdout
          jsonFormat:
            method: "%REQ(:METHOD)%"
            code: "%RESPONSE_CODE%"
      - fileSink:
          path: /tmp/default.log
)"));
  const auto& logs = r.gateway().access_logs;
  ASSERT_EQ(logs.size(), 3u);
  EXPECT_EQ(logs[0].path, "/var/log/portico/access.log");
  EXPECT_FALSE(logs[0].json);
  EXPECT_EQ(logs[0].format, "%REQ(:METHOD)% %RESPONSE_CODE%\n");  // a line per request
  EXPECT_TRUE(logs[1].json);
  ASSERT_EQ(logs[1].json_fields.size(), 2u);
  EXPECT_EQ(logs[1].json_fields[0].first, "method");  // in the order written
  EXPECT_EQ(logs[1].json_fields[1].second, "%RESPONSE_CODE%");
  EXPECT_FALSE(logs[2].json);
  EXPECT_THAT(logs[2].format, HasSubstr("%START_TIME%"));  // the default format
}

TEST(DecodeOps, UnknownOperatorIsAnErrorNamingIt) {
  auto f = decode_file("gw.yaml", gateway(R"(    accessLoggingService:
      accessLog:
      - fileSink:
          path: /tmp/a.log
          jsonFormat:
            ok: "%DURATION%"
            bad: "%UPSTREAM_WHATEVER%"
      - fileSink:
          path: /tmp/b.log
          stringFormat: "%REQ(X-A)% %BOGUS%"
)"));
  ASSERT_EQ(f.resources.size(), 1u);
  auto l = lines(f.resources[0].diagnostics);
  ASSERT_EQ(l.size(), 2u);
  EXPECT_THAT(l[0],
              HasSubstr("spec.options.accessLoggingService.accessLog[0].fileSink.jsonFormat.bad"));
  EXPECT_THAT(l[0], HasSubstr("unknown command operator \"%UPSTREAM_WHATEVER%\""));
  EXPECT_THAT(l[1], HasSubstr("stringFormat"));
  EXPECT_THAT(l[1], HasSubstr("\"%BOGUS%\""));
}

TEST(DecodeOps, FailClosedOnWhatIsNotImplemented) {
  auto f = decode_file("gw.yaml", gateway(R"(    accessLoggingService:
      accessLog:
      - grpcService:
          logName: x
      - fileSink:
          path: relative.log
          stringFormat: "x"
          jsonFormat: {a: "%DURATION%"}
          format: x
        filter: {statusCodeFilter: {}}
      - fileSink:
          path: /tmp/x.log
          jsonFormat:
            nested: {a: b}
    socketOptions: []
)"));
  ASSERT_EQ(f.resources.size(), 1u);
  auto l = lines(f.resources[0].diagnostics);
  auto has = [&](const std::string& s) {
    for (const auto& x : l)
      if (x.find(s) != std::string::npos) return true;
    return false;
  };
  EXPECT_TRUE(has("grpcService is not supported")) << ::testing::PrintToString(l);
  EXPECT_TRUE(has("accessLog[0].fileSink: is required")) << ::testing::PrintToString(l);
  EXPECT_TRUE(has("must be an absolute file path"));
  EXPECT_TRUE(has("set stringFormat or jsonFormat, not both"));
  EXPECT_TRUE(has("fileSink.format"));
  EXPECT_TRUE(has("access log filters are not supported"));
  EXPECT_TRUE(has("nested objects are not supported"));
  EXPECT_TRUE(has("spec.options.socketOptions"));
  EXPECT_TRUE(f.resources[0].has_errors());
}

TEST(DecodeOps, RouteSwitch) {
  auto r = test::decode_one("vs.yaml", R"(apiVersion: gateway.portico.dev/v1
kind: VirtualService
metadata:
  name: vs
spec:
  virtualHost:
    domains: ["*"]
    routes:
    - matchers: [{prefix: /health}]
      directResponseAction: {status: 200}
      options:
        accessLog: {disabled: true}
    - matchers: [{prefix: /}]
      directResponseAction: {status: 200}
)");
  const auto& routes = r.virtual_service().routes;
  ASSERT_EQ(routes.size(), 2u);
  EXPECT_EQ(routes[0].options.access_log_disabled, std::optional<bool>(true));
  EXPECT_FALSE(routes[1].options.access_log_disabled);

  auto bad = decode_file("vs.yaml", R"(apiVersion: gateway.portico.dev/v1
kind: VirtualService
metadata:
  name: vs
spec:
  virtualHost:
    routes:
    - directResponseAction: {status: 200}
      options:
        accessLog: {disabled: true, sample: 10}
)");
  ASSERT_EQ(bad.resources.size(), 1u);
  EXPECT_THAT(lines(bad.resources[0].diagnostics),
              ElementsAre(HasSubstr("options.accessLog.sample")));
}

TEST(DecodeOps, SettingsOverload) {
  auto r = test::decode_one("settings.yaml", R"(apiVersion: gateway.portico.dev/v1
kind: Settings
metadata:
  name: default
spec:
  overload:
    maxConnections: 5000
    maxHeapBytes: 1073741824
)");
  EXPECT_EQ(r.settings().overload_max_connections, std::optional<uint32_t>(5000));
  EXPECT_EQ(r.settings().overload_max_heap_bytes, std::optional<uint64_t>(1073741824));

  auto bad = decode_file("settings.yaml", R"(apiVersion: gateway.portico.dev/v1
kind: Settings
metadata:
  name: default
spec:
  overload:
    maxConnections: 0
    maxCpu: 90
)");
  ASSERT_EQ(bad.resources.size(), 1u);
  auto l = lines(bad.resources[0].diagnostics);
  ASSERT_EQ(l.size(), 2u);
  EXPECT_THAT(l[0], HasSubstr("spec.overload.maxConnections"));
  EXPECT_THAT(l[1], HasSubstr("spec.overload.maxCpu"));
}

}  // namespace
}  // namespace portico::api
