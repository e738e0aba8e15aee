#include "api/fields.h"

#include <gtest/gtest.h>

namespace portico::api {
namespace {

using std::chrono::milliseconds;

TEST(ApiFields, ParsesDurations) {
  std::string err;
  EXPECT_EQ(parse_duration("500ms", &err), milliseconds(500));
  EXPECT_EQ(parse_duration("5s", &err), milliseconds(5000));
  EXPECT_EQ(parse_duration("1m", &err), milliseconds(60000));
  EXPECT_EQ(parse_duration("1h", &err), milliseconds(3600000));
  EXPECT_EQ(parse_duration("1m30s", &err), milliseconds(90000));
  EXPECT_EQ(parse_duration("1.5s", &err), milliseconds(1500));
  EXPECT_EQ(parse_duration("0s", &err), milliseconds(0));
  EXPECT_EQ(parse_duration("0", &err), milliseconds(0));
}

TEST(ApiFields, RejectsBadDurations) {
  std::string err;
  EXPECT_FALSE(parse_duration("5", &err));
  EXPECT_EQ(err, "duration \"5\" has no unit; use e.g. \"5s\"");
  EXPECT_FALSE(parse_duration("5d", &err));
  EXPECT_EQ(err, "unknown unit \"d\" in duration \"5d\"; units are ms, s, m, h");
  EXPECT_FALSE(parse_duration("-1s", &err));
  EXPECT_FALSE(parse_duration("", &err));
  EXPECT_FALSE(parse_duration("s", &err));
  EXPECT_FALSE(parse_duration("0.5ms", &err));
  EXPECT_FALSE(parse_duration("721h", &err));
  EXPECT_FALSE(parse_duration("99999999999999999999h", &err));
}

TEST(ApiFields, ChecksNames) {
  EXPECT_EQ(check_name("echo"), "");
  EXPECT_EQ(check_name("a.b-c9"), "");
  EXPECT_NE(check_name("Echo"), "");
  EXPECT_NE(check_name("-echo"), "");
  EXPECT_NE(check_name("echo-"), "");
  EXPECT_NE(check_name("a_b"), "");
  EXPECT_NE(check_name(""), "");
  EXPECT_EQ(check_name(std::string(253, 'a')), "");
  EXPECT_NE(check_name(std::string(254, 'a')), "");
}

TEST(ApiFields, IpAddresses) {
  EXPECT_EQ(ip_family("127.0.0.1"), 4);
  EXPECT_EQ(ip_family("::1"), 6);
  EXPECT_EQ(ip_family("[::1]"), 0);
  EXPECT_EQ(ip_family("localhost"), 0);
  EXPECT_EQ(ip_family("1.2.3"), 0);
  EXPECT_EQ(canonical_ip("0:0::1"), "::1");
}

TEST(ApiFields, HeaderNamesAndValues) {
  EXPECT_TRUE(is_http_token("X-Request-Id"));
  EXPECT_FALSE(is_http_token("X Request"));
  EXPECT_FALSE(is_http_token(""));
  EXPECT_FALSE(is_http_token(std::string("a\0b", 3)));
  EXPECT_TRUE(is_safe_header_value("a b\tc"));
  EXPECT_FALSE(is_safe_header_value("a\r\nb"));
  EXPECT_TRUE(is_reserved_header("transfer-encoding"));
  EXPECT_TRUE(is_reserved_header("host"));
  EXPECT_FALSE(is_reserved_header("x-foo"));
}

TEST(ApiFields, Domains) {
  std::string err;
  EXPECT_EQ(normalize_domain("API.Example.com", &err), "api.example.com");
  EXPECT_EQ(normalize_domain("*.example.com", &err), "*.example.com");
  EXPECT_EQ(normalize_domain("example.*", &err), "example.*");
  EXPECT_EQ(normalize_domain("*", &err), "*");
  EXPECT_EQ(normalize_domain("example.com:8080", &err), "example.com:8080");
  EXPECT_EQ(normalize_domain("[::1]:8080", &err), "[::1]:8080");
  EXPECT_FALSE(normalize_domain("a.*.com", &err));
  EXPECT_EQ(err,
            "domain \"a.*.com\" uses '*' in an unsupported way; the forms are \"*\", "
            "\"*.example.com\", \"example.*\" and exact names");
  EXPECT_FALSE(normalize_domain("*example.com", &err));
  EXPECT_FALSE(normalize_domain("example.*:8080", &err));
  EXPECT_EQ(normalize_domain("*:8080", &err), "*:8080");
  EXPECT_FALSE(normalize_domain("*.*", &err));
  EXPECT_FALSE(normalize_domain("example.com:0", &err));
  EXPECT_FALSE(normalize_domain("example.com:http", &err));
  EXPECT_FALSE(normalize_domain("a..b", &err));
  EXPECT_FALSE(normalize_domain("a b", &err));
  EXPECT_FALSE(normalize_domain("", &err));
}

}  // namespace
}  // namespace portico::api
