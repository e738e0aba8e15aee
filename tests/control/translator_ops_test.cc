// Translation of the operations fields: a Gateway's access logs, the route switch (also through
// delegation: the parent's setting wins) and Settings' overload limits.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "api/decode_helpers.h"
#include "control/pipeline.h"

namespace portico::control {
namespace {

using ::testing::IsEmpty;

TEST(ControlTranslateOps, AccessLogsRouteSwitchAndOverload) {
  BuildResult r = build_from_files({{"c.yaml", R"(kind: Gateway
metadata: {name: gw}
spec:
  bindPort: 8080
  options:
    accessLoggingService:
      accessLog:
      - fileSink: {path: /var/log/a.log, stringFormat: "%RESPONSE_CODE%"}
      - fileSink: {path: /dev/stdout, jsonFormat: {code: "%RESPONSE_CODE%", path: "%REQ(:PATH)%"}}
---
kind: VirtualService
metadata: {name: vs}
spec:
  virtualHost:
    routes:
      - name: quiet
        matchers: [{prefix: /quiet}]
        delegateAction: {ref: {name: t}}
        options: {accessLog: {disabled: true}}
      - name: loud
        matchers: [{prefix: /}]
        directResponseAction: {status: 200}
---
kind: RouteTable
metadata: {name: t}
spec:
  routes:
    - name: inner
      matchers: [{prefix: /quiet/x}]
      directResponseAction: {status: 200}
      options: {accessLog: {disabled: false}}
---
kind: Settings
metadata: {name: default}
spec:
  overload: {maxConnections: 100, maxHeapBytes: 2000000}
)"}},
                                   1);
  for (const auto& s : r.resources)
    EXPECT_THAT(api::test::lines(s.reasons), IsEmpty()) << s.kind << " " << s.name;
  ASSERT_EQ(r.config->listeners.size(), 1u);
  const auto& l = r.config->listeners[0];
  ASSERT_EQ(l.access_logs.size(), 2u);
  EXPECT_EQ(l.access_logs[0].path, "/var/log/a.log");
  EXPECT_EQ(l.access_logs[0].format, "%RESPONSE_CODE%\n");
  EXPECT_TRUE(l.access_logs[1].json);
  ASSERT_EQ(l.access_logs[1].json_fields.size(), 2u);
  EXPECT_EQ(l.access_logs[1].json_fields[1].first, "path");
  ASSERT_EQ(l.virtual_hosts.size(), 1u);
  const auto& routes = l.virtual_hosts[0]->routes;
  ASSERT_EQ(routes.size(), 2u);
  EXPECT_TRUE(routes[0].options.access_log_disabled);  // the delegating route's setting wins
  EXPECT_FALSE(routes[1].options.access_log_disabled);
  EXPECT_EQ(r.config->overload.max_connections, 100u);
  EXPECT_EQ(r.config->overload.max_heap_bytes, 2000000u);
  // config_dump shows them.
  const std::string dump = snapshot::to_json(*r.config);
  EXPECT_NE(dump.find("\"access_logs\""), std::string::npos);
  EXPECT_NE(dump.find("\"max_heap_bytes\": 2000000"), std::string::npos);
}

TEST(ControlTranslateOps, NoSettingsNoLimits) {
  BuildResult r = build_from_files({{"c.yaml", R"(kind: Gateway
metadata: {name: gw}
spec: {bindPort: 8080}
)"}},
                                   1);
  EXPECT_EQ(r.config->overload.max_connections, 0u);
  EXPECT_EQ(r.config->overload.max_heap_bytes, 0u);
  ASSERT_EQ(r.config->listeners.size(), 1u);
  EXPECT_TRUE(r.config->listeners[0].access_logs.empty());
}

}  // namespace
}  // namespace portico::control
