// The HTTP/2 client codec's translation (proxy/http/h2_fields.h, client side): an HTTP/1.1-shaped
// request into HTTP/2 fields (RFC 9113 §8.3.1, connection-specific fields dropped), and an
// upstream's HTTP/2 response head into ResponseHeaders without anything HTTP/1.1 cannot carry.
#include <gtest/gtest.h>

#include <string>
#include <utility>
#include <vector>

#include "proxy/http/grpc.h"
#include "proxy/http/h2_fields.h"

namespace portico::proxy::http {
namespace {

using Fields = std::vector<std::pair<std::string, std::string>>;

Fields fields_of(const H2Fields& f) {
  Fields out;
  for (const auto& x : f.fields)
    out.emplace_back(std::string(x.name), std::string(x.value));
  return out;
}

RequestHeaders request() {
  RequestHeaders r;
  r.method = "POST";
  r.authority = "api.test:8080";
  r.path = "/pkg.Svc/Call";
  r.headers.add("Content-Type", "application/grpc");
  r.headers.add("Host", "other.test");
  r.headers.add("Connection", "keep-alive");
  r.headers.add("Keep-Alive", "timeout=5");
  r.headers.add("Proxy-Connection", "keep-alive");
  r.headers.add("Transfer-Encoding", "chunked");
  r.headers.add("Upgrade", "h2c");
  r.headers.add("TE", "gzip");
  r.headers.add("X-Trace", "a b");
  return r;
}

TEST(H2ClientEncode, PseudoHeadersFirstAndConnectionFieldsDropped) {
  RequestHeaders r = request();
  H2Fields f;
  encode_request(r, "/pkg.Svc/Call?x=1", false, f);
  EXPECT_EQ(fields_of(f), (Fields{{":method", "POST"},
                                  {":scheme", "http"},
                                  {":authority", "api.test:8080"},
                                  {":path", "/pkg.Svc/Call?x=1"},
                                  {"content-type", "application/grpc"},
                                  {"x-trace", "a b"},
                                  {"te", "trailers"}}));
}

TEST(H2ClientEncode, TlsSchemeAndContentLength) {
  RequestHeaders r;
  r.method = "PUT";
  r.authority = "a.test";
  r.has_body = true;
  r.content_length = 12;
  r.headers.add("Content-Length", "99");  // the framing fact wins, never a stale field
  H2Fields f;
  encode_request(r, "/x", true, f);
  EXPECT_EQ(fields_of(f), (Fields{{":method", "PUT"},
                                  {":scheme", "https"},
                                  {":authority", "a.test"},
                                  {":path", "/x"},
                                  {"te", "trailers"},
                                  {"content-length", "12"}}));
}

TEST(H2ClientEncode, StreamedBodyHasNoContentLength) {
  RequestHeaders r;
  r.method = "POST";
  r.authority = "a.test";
  r.has_body = true;  // length unknown: DATA frames until END_STREAM
  H2Fields f;
  encode_request(r, "/", false, f);
  for (const auto& x : f.fields)
    EXPECT_NE(x.name, "content-length");
}

H2FieldError decode(const Fields& fields, ResponseHeaders& out, bool end_stream = false,
                    bool head = false) {
  H2ResponseBuilder b;
  b.start(out, 65536);
  for (const auto& [n, v] : fields) {
    if (H2FieldError e = b.add(n, v); e != H2FieldError::kNone) return e;
  }
  return b.finish(end_stream, head);
}

TEST(H2ClientDecode, ResponseHead) {
  ResponseHeaders r;
  ASSERT_EQ(decode({{":status", "200"},
                    {"content-type", "application/grpc"},
                    {"content-length", "5"},
                    {"x-a", "1"}},
                   r),
            H2FieldError::kNone);
  EXPECT_EQ(r.status, 200);
  EXPECT_TRUE(r.has_body);
  ASSERT_TRUE(r.content_length);
  EXPECT_EQ(*r.content_length, 5u);
  EXPECT_EQ(r.headers.get("content-type"), "application/grpc");
  EXPECT_FALSE(r.headers.has("content-length"));  // framing, not a field
}

TEST(H2ClientDecode, TrailersOnlyHasNoBody) {
  ResponseHeaders r;
  ASSERT_EQ(
      decode({{":status", "200"}, {"grpc-status", "5"}, {"grpc-message", "not found"}}, r, true),
      H2FieldError::kNone);
  EXPECT_FALSE(r.has_body);
  EXPECT_EQ(r.content_length, 0u);
  EXPECT_EQ(r.headers.get("grpc-status"), "5");
}

TEST(H2ClientDecode, HeadKeepsContentLengthAsField) {
  ResponseHeaders r;
  ASSERT_EQ(decode({{":status", "200"}, {"content-length", "42"}}, r, true, true),
            H2FieldError::kNone);
  EXPECT_FALSE(r.has_body);
  EXPECT_EQ(r.headers.get("content-length"), "42");
}

TEST(H2ClientDecode, UnknownLengthBody) {
  ResponseHeaders r;
  ASSERT_EQ(decode({{":status", "404"}}, r), H2FieldError::kNone);
  EXPECT_EQ(r.status, 404);
  EXPECT_TRUE(r.has_body);
  EXPECT_FALSE(r.content_length);
}

TEST(H2ClientDecode, RefusesWhatHttp1CannotCarry) {
  ResponseHeaders r;
  EXPECT_EQ(decode({{":status", "200"}, {"x", "a\r\nInjected: 1"}}, r), H2FieldError::kBadValue);
  EXPECT_EQ(decode({{":status", "200"}, {"x", std::string("a\0b", 3)}}, r),
            H2FieldError::kBadValue);
  EXPECT_EQ(decode({{":status", "200"}, {"x", "a\nb"}}, r), H2FieldError::kBadValue);
  EXPECT_EQ(decode({{":status", "200"}, {"X-Upper", "1"}}, r), H2FieldError::kUpperCaseName);
  EXPECT_EQ(decode({{":status", "200"}, {"bad name", "1"}}, r), H2FieldError::kBadName);
  EXPECT_EQ(decode({{":status", "200"}, {"connection", "close"}}, r),
            H2FieldError::kConnectionSpecific);
  EXPECT_EQ(decode({{":status", "200"}, {"transfer-encoding", "chunked"}}, r),
            H2FieldError::kConnectionSpecific);
  EXPECT_EQ(decode({{":status", "200"}, {"te", "trailers"}}, r), H2FieldError::kConnectionSpecific);
}

TEST(H2ClientDecode, PseudoHeaderRules) {
  ResponseHeaders r;
  EXPECT_EQ(decode({{"x", "1"}}, r), H2FieldError::kMissingPseudo);
  EXPECT_EQ(decode({{"x", "1"}, {":status", "200"}}, r), H2FieldError::kPseudoAfterRegular);
  EXPECT_EQ(decode({{":status", "200"}, {":status", "200"}}, r), H2FieldError::kDuplicatePseudo);
  EXPECT_EQ(decode({{":status", "200"}, {":path", "/"}}, r), H2FieldError::kBadPseudo);
  EXPECT_EQ(decode({{":status", "20"}}, r), H2FieldError::kBadPseudo);
  EXPECT_EQ(decode({{":status", "2x0"}}, r), H2FieldError::kBadPseudo);
  EXPECT_EQ(decode({{":status", "200"}, {"content-length", "1"}, {"content-length", "2"}}, r),
            H2FieldError::kBadContentLength);
  EXPECT_EQ(decode({{":status", "200"}, {"content-length", "x"}}, r),
            H2FieldError::kBadContentLength);
  // END_STREAM with a declared non-zero length: the body is missing.
  EXPECT_EQ(decode({{":status", "200"}, {"content-length", "3"}}, r, true),
            H2FieldError::kBadContentLength);
}

TEST(H2ClientDecode, InterimHead) {
  ResponseHeaders r;
  H2ResponseBuilder b;
  b.start(r, 65536);
  ASSERT_EQ(b.add(":status", "103"), H2FieldError::kNone);
  ASSERT_EQ(b.finish(false, false), H2FieldError::kNone);
  EXPECT_EQ(b.status(), 103);
  b.start(r, 65536);  // the final head follows
  ASSERT_EQ(b.add(":status", "200"), H2FieldError::kNone);
  ASSERT_EQ(b.finish(true, false), H2FieldError::kNone);
  EXPECT_EQ(r.status, 200);
}

TEST(H2ClientDecode, HeaderListLimit) {
  ResponseHeaders r;
  H2ResponseBuilder b;
  b.start(r, 100);
  EXPECT_EQ(b.add(":status", "200"), H2FieldError::kNone);
  EXPECT_EQ(b.add("x", std::string(100, 'a')), H2FieldError::kTooLarge);
}

TEST(Grpc, ContentType) {
  EXPECT_TRUE(is_grpc_content_type("application/grpc"));
  EXPECT_TRUE(is_grpc_content_type("application/grpc+proto"));
  EXPECT_TRUE(is_grpc_content_type("Application/GRPC;charset=x"));
  EXPECT_FALSE(is_grpc_content_type("application/grpc-web"));
  EXPECT_FALSE(is_grpc_content_type("application/json"));
}

TEST(Grpc, Timeout) {
  using std::chrono::milliseconds;
  EXPECT_EQ(parse_grpc_timeout("100m"), milliseconds(100));
  EXPECT_EQ(parse_grpc_timeout("2S"), milliseconds(2000));
  EXPECT_EQ(parse_grpc_timeout("1M"), milliseconds(60000));
  EXPECT_EQ(parse_grpc_timeout("1H"), milliseconds(3600000));
  EXPECT_EQ(parse_grpc_timeout("1500u"), milliseconds(2));
  EXPECT_EQ(parse_grpc_timeout("1n"), milliseconds(1));
  EXPECT_EQ(parse_grpc_timeout("0m"), milliseconds(0));
  EXPECT_EQ(parse_grpc_timeout("99999999S"), milliseconds(99999999000LL));
  EXPECT_FALSE(parse_grpc_timeout("123456789S"));  // over 8 digits
  EXPECT_FALSE(parse_grpc_timeout("10"));
  EXPECT_FALSE(parse_grpc_timeout("m"));
  EXPECT_FALSE(parse_grpc_timeout("1x"));
  EXPECT_FALSE(parse_grpc_timeout("-1S"));
}

TEST(Grpc, PercentEncode) {
  EXPECT_EQ(grpc_percent_encode("upstream timeout"), "upstream timeout");
  EXPECT_EQ(grpc_percent_encode("100%\n"), "100%25%0A");
  EXPECT_EQ(grpc_percent_encode("caf\xc3\xa9"), "caf%C3%A9");
}

}  // namespace
}  // namespace portico::proxy::http
