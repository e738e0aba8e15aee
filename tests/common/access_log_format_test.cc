#include "common/access_log_format.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace portico::access_log {
namespace {

using ::testing::HasSubstr;

TEST(AccessLogFormat, LiteralsAndOperators) {
  auto t = parse_format("[%START_TIME%] %RESPONSE_CODE% done\n");
  ASSERT_TRUE(t.ok()) << t.error().message;
  ASSERT_EQ(t->size(), 5u);
  EXPECT_EQ((*t)[0].op, Op::kLiteral);
  EXPECT_EQ((*t)[0].text, "[");
  EXPECT_EQ((*t)[1].op, Op::kStartTime);
  EXPECT_EQ((*t)[1].text, "");
  EXPECT_EQ((*t)[2].text, "] ");
  EXPECT_EQ((*t)[3].op, Op::kResponseCode);
  EXPECT_EQ((*t)[4].text, " done\n");
}

TEST(AccessLogFormat, HeadersWithFallbackAndLength) {
  auto t = parse_format("%REQ(X-Forwarded-For?:AUTHORITY):12%|%RESP(Content-Type)%");
  ASSERT_TRUE(t.ok()) << t.error().message;
  ASSERT_EQ(t->size(), 3u);
  EXPECT_EQ((*t)[0].op, Op::kRequestHeader);
  EXPECT_EQ((*t)[0].text, "x-forwarded-for");
  EXPECT_EQ((*t)[0].fallback, ":authority");
  EXPECT_EQ((*t)[0].max_length, 12u);
  EXPECT_EQ((*t)[2].op, Op::kResponseHeader);
  EXPECT_EQ((*t)[2].text, "content-type");
  EXPECT_EQ((*t)[2].fallback, "");
}

TEST(AccessLogFormat, StartTimeFormatMayHoldPercents) {
  auto t = parse_format("%START_TIME(%Y/%m/%dT%H:%M:%E3S)%");
  ASSERT_TRUE(t.ok()) << t.error().message;
  ASSERT_EQ(t->size(), 1u);
  EXPECT_EQ((*t)[0].text, "%Y/%m/%dT%H:%M:%E3S");
}

TEST(AccessLogFormat, DoublePercentIsALiteral) {
  auto t = parse_format("100%% %DURATION%");
  ASSERT_TRUE(t.ok());
  EXPECT_EQ((*t)[0].text, "100% ");
  EXPECT_EQ((*t)[1].op, Op::kDuration);
}

TEST(AccessLogFormat, EveryOperatorOfTheBrief) {
  for (const char* op :
       {"%START_TIME%", "%REQ(X)%", "%RESP(X)%", "%RESPONSE_CODE%", "%PROTOCOL%",
        "%BYTES_RECEIVED%", "%BYTES_SENT%", "%DURATION%", "%UPSTREAM_HOST%", "%UPSTREAM_CLUSTER%",
        "%DOWNSTREAM_REMOTE_ADDRESS%", "%DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT%", "%ROUTE_NAME%",
        "%REQUEST_ID%", "%RESPONSE_FLAGS%"}) {
    auto t = parse_format(op);
    EXPECT_TRUE(t.ok()) << op << ": " << t.error().message;
  }
  EXPECT_TRUE(parse_format(kDefaultTextFormat).ok());
}

TEST(AccessLogFormat, ErrorsNameTheOperator) {
  auto unknown = parse_format("ok %UPSTREAM_TRANSPORT_FAILURE_REASON% x");
  ASSERT_FALSE(unknown.ok());
  EXPECT_THAT(unknown.error().message,
              HasSubstr("unknown command operator \"%UPSTREAM_TRANSPORT_FAILURE_REASON%\""));
  EXPECT_THAT(unknown.error().message, HasSubstr("position 4"));

  auto lower = parse_format("%duration%");
  ASSERT_FALSE(lower.ok());
  EXPECT_THAT(lower.error().message, HasSubstr("starts no command operator"));

  auto open = parse_format("%DURATION");
  ASSERT_FALSE(open.ok());
  EXPECT_THAT(open.error().message, HasSubstr("not closed"));

  auto no_arg = parse_format("%REQ%");
  ASSERT_FALSE(no_arg.ok());
  EXPECT_THAT(no_arg.error().message, HasSubstr("needs a header name"));

  auto arg = parse_format("%DURATION(ms)%");
  ASSERT_FALSE(arg.ok());
  EXPECT_THAT(arg.error().message, HasSubstr("takes no argument"));

  auto pseudo = parse_format("%REQ(:STATUS)%");
  ASSERT_FALSE(pseudo.ok());
  EXPECT_THAT(pseudo.error().message, HasSubstr(":STATUS"));

  auto resp_pseudo = parse_format("%RESP(:PATH)%");
  ASSERT_FALSE(resp_pseudo.ok());

  auto bad_name = parse_format("%REQ(a b)%");
  ASSERT_FALSE(bad_name.ok());
  EXPECT_THAT(bad_name.error().message, HasSubstr("not a header name"));

  auto bad_len = parse_format("%REQ(a):0%");
  ASSERT_FALSE(bad_len.ok());
  EXPECT_FALSE(parse_format("%DURATION:5%").ok());
  EXPECT_FALSE(parse_format("%REQ(a").ok());
  EXPECT_FALSE(parse_format("50%").ok());
}

}  // namespace
}  // namespace portico::access_log
