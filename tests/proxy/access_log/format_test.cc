#include "proxy/access_log/format.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

namespace portico::proxy::access_log {
namespace {

using ::testing::HasSubstr;

struct Sample {
  http::RequestHeaders req;
  http::ResponseHeaders resp;
  transport::ConnectionInfo conn;
  Entry e;

  Sample() {
    req.method = "GET";
    req.authority = "shop.example.com";
    req.path = "/cart";
    req.query = "id=7";
    req.headers.add("User-Agent", "curl/7.88");
    req.headers.add("X-Request-Id", "abc-123");
    resp.status = 200;
    resp.headers.add("Content-Type", "text/html");
    conn.peer_address = "10.1.2.3";
    conn.peer_port = 5555;
    e.request = &req;
    e.response = &resp;
    e.connection = &conn;
    // 2026-12-02T17:45:41.123Z
    e.start = std::chrono::system_clock::time_point(std::chrono::milliseconds(1796233541123));
    e.duration = std::chrono::microseconds(12345);
    e.status = 200;
    e.bytes_received = 10;
    e.bytes_sent = 2048;
    e.protocol = "HTTP/1.1";
    e.route_name = "default/shop/cart";
    e.upstream_cluster = "default/shop";
    e.upstream_host = "127.0.0.1:8081";
  }
};

std::string text(const std::string& format, const Entry& e) {
  auto f = Formatter::text(format);
  EXPECT_TRUE(f.ok()) << f.error().message;
  std::string out;
  f->render(e, out);
  return out;
}

TEST(AccessLogRender, DefaultTextFormat) {
  Sample s;
  EXPECT_EQ(text(portico::access_log::kDefaultTextFormat, s.e),
            "[2026-12-02T17:45:41.123Z] \"GET /cart?id=7 HTTP/1.1\" 200 - 10 2048 12 \"-\" "
            "\"curl/7.88\" \"abc-123\" \"shop.example.com\" \"127.0.0.1:8081\"\n");
}

TEST(AccessLogRender, EveryOperator) {
  Sample s;
  s.e.flags = kUpstreamRequestTimeout | kNoHealthyUpstream;
  EXPECT_EQ(text("%REQ(:METHOD)% %REQ(:SCHEME)% %REQ(HOST)% %RESP(content-type)% %PROTOCOL% "
                 "%DOWNSTREAM_REMOTE_ADDRESS% %DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT% "
                 "%ROUTE_NAME% %UPSTREAM_CLUSTER% %REQUEST_ID% %RESPONSE_FLAGS% %BYTES_SENT%",
                 s.e),
            "GET http shop.example.com text/html HTTP/1.1 10.1.2.3:5555 10.1.2.3 "
            "default/shop/cart default/shop abc-123 UH,UT 2048\n");
}

TEST(AccessLogRender, MissingValuesFallbacksAndLimits) {
  Sample s;
  s.e.response = nullptr;
  s.e.status = 0;
  s.e.upstream_host = {};
  s.e.route_name = {};
  EXPECT_EQ(text("%RESP(content-type)% %UPSTREAM_HOST% %ROUTE_NAME% %RESPONSE_CODE% "
                 "%REQ(x-missing?user-agent)% %REQ(user-agent):4% %REQ(:PATH):3%",
                 s.e),
            "- - - 0 curl/7.88 curl /ca\n");
}

TEST(AccessLogRender, Ipv6PeerIsBracketed) {
  Sample s;
  s.conn.peer_address = "::1";
  EXPECT_EQ(text("%DOWNSTREAM_REMOTE_ADDRESS%", s.e), "[::1]:5555\n");
}

TEST(AccessLogRender, CustomStartTime) {
  Sample s;
  EXPECT_EQ(text("%START_TIME(%Y/%m/%d %H:%M:%E3S)% %START_TIME(%s.%3f)%", s.e),
            "2026/12/02 17:45:41.123 1796233541.123\n");
}

TEST(AccessLogRender, ControlBytesCannotBreakATextLine) {
  Sample s;
  s.req.headers.add("X-Evil", std::string_view("a\tb", 3));
  EXPECT_EQ(text("%REQ(x-evil)%", s.e), "a?b\n");
}

TEST(AccessLogRender, JsonLinesAreTyped) {
  Sample s;
  s.e.upstream_host = {};
  auto f = Formatter::json({{"code", "%RESPONSE_CODE%"},
                            {"method", "%REQ(:METHOD)%"},
                            {"line", "%REQ(:METHOD)% %REQ(:PATH)%"},
                            {"upstream", "%UPSTREAM_HOST%"},
                            {"duration", "%DURATION%"},
                            {"agent \"q\"", "%REQ(USER-AGENT)%"},
                            {"constant", "v1"}});
  ASSERT_TRUE(f.ok()) << f.error().message;
  std::string out;
  f->render(s.e, out);
  ASSERT_FALSE(out.empty());
  EXPECT_EQ(out.back(), '\n');
  auto j = nlohmann::json::parse(out);
  EXPECT_EQ(j["code"], 200);
  EXPECT_EQ(j["method"], "GET");
  EXPECT_EQ(j["line"], "GET /cart?id=7");
  EXPECT_TRUE(j["upstream"].is_null());
  EXPECT_EQ(j["duration"], 12);
  EXPECT_EQ(j["agent \"q\""], "curl/7.88");
  EXPECT_EQ(j["constant"], "v1");
  // Keys in the order written.
  EXPECT_EQ(out.rfind("{\"code\":200,\"method\":\"GET\"", 0), 0u);
}

TEST(AccessLogRender, JsonEscapesAndReplacesInvalidUtf8) {
  Sample s;
  s.req.headers.add("X-Odd", std::string_view("q\"\\\x01\xff\xc3\xa9", 7));
  auto f = Formatter::json({{"odd", "%REQ(x-odd)%"}});
  ASSERT_TRUE(f.ok());
  std::string out;
  f->render(s.e, out);
  auto j = nlohmann::json::parse(out);  // valid JSON, valid UTF-8
  EXPECT_EQ(j["odd"], "q\"\\\x01\xEF\xBF\xBD\xC3\xA9");
}

TEST(AccessLogRender, CompileErrorsNameTheField) {
  auto f = Formatter::json({{"ok", "%DURATION%"}, {"bad", "%NOPE%"}});
  ASSERT_FALSE(f.ok());
  EXPECT_THAT(f.error().message, HasSubstr("jsonFormat.bad"));
  EXPECT_THAT(f.error().message, HasSubstr("%NOPE%"));
}

TEST(AccessLogRender, FlagsInOrder) {
  std::string out;
  append_flags(0, out);
  EXPECT_EQ(out, "-");
  out.clear();
  append_flags(kOverloaded | kUpstreamConnectionFailure | kDownstreamConnectionTermination, out);
  EXPECT_EQ(out, "UF,DC,OM");
}

}  // namespace
}  // namespace portico::proxy::access_log
