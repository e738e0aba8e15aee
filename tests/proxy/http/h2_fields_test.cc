#include "proxy/http/h2_fields.h"

#include <gtest/gtest.h>

#include <string>
#include <utility>
#include <vector>

namespace portico::proxy::http {
namespace {

using Fields = std::vector<std::pair<std::string, std::string>>;

H2FieldError build(const Fields& fields, RequestHeaders& out, bool end_stream = true,
                   size_t max_bytes = 65536, size_t max_fields = 100,
                   bool extended_connect = false) {
  H2RequestBuilder b;
  b.start(out, false, max_bytes, max_fields, extended_connect);
  for (const auto& [n, v] : fields) {
    if (H2FieldError e = b.add(n, v); e != H2FieldError::kNone && e != H2FieldError::kTooLarge)
      return e;
  }
  return b.finish(end_stream);
}

Fields base(std::string path = "/a/b?x=1") {
  return {
      {":method", "GET"}, {":scheme", "https"}, {":path", path}, {":authority", "ex.test:8443"}};
}

TEST(H2RequestBuilder, TranslatesPseudoHeaders) {
  RequestHeaders r;
  Fields f = base();
  f.push_back({"accept", "*/*"});
  ASSERT_EQ(build(f, r), H2FieldError::kNone);
  EXPECT_EQ(r.method, "GET");
  EXPECT_EQ(r.path, "/a/b");
  EXPECT_EQ(r.query, "x=1");
  EXPECT_EQ(r.authority, "ex.test:8443");
  EXPECT_EQ(r.scheme, "http");  // the connection's scheme, not the client's claim
  EXPECT_EQ(r.headers.get("accept"), "*/*");
  EXPECT_EQ(r.http_minor, 1);
  EXPECT_FALSE(r.has_body);
}

TEST(H2RequestBuilder, HostWhenNoAuthority) {
  RequestHeaders r;
  Fields f = {{":method", "GET"}, {":scheme", "http"}, {":path", "/"}, {"host", "h.test"}};
  ASSERT_EQ(build(f, r), H2FieldError::kNone);
  EXPECT_EQ(r.authority, "h.test");
  EXPECT_FALSE(r.headers.has("host"));
}

TEST(H2RequestBuilder, HostMustMatchAuthority) {
  RequestHeaders r;
  Fields f = base();
  f.push_back({"host", "other.test"});
  EXPECT_EQ(build(f, r), H2FieldError::kHostMismatch);
  Fields same = base();
  same.push_back({"host", "EX.test:8443"});
  EXPECT_EQ(build(same, r), H2FieldError::kNone);
}

TEST(H2RequestBuilder, MissingPseudoOrAuthority) {
  RequestHeaders r;
  EXPECT_EQ(build({{":method", "GET"}, {":path", "/"}, {":authority", "a"}}, r),
            H2FieldError::kMissingPseudo);
  EXPECT_EQ(build({{":method", "GET"}, {":scheme", "http"}, {":path", "/"}}, r),
            H2FieldError::kBadAuthority);
  EXPECT_EQ(build({{":method", "CONNECT"}}, r), H2FieldError::kConnect);
}

// RFC 9113 §8.5: :method and :authority only; the DATA frames are the tunnel, never a body.
TEST(H2RequestBuilder, PlainConnect) {
  RequestHeaders r;
  ASSERT_EQ(build({{":method", "CONNECT"}, {":authority", "a.test:443"}}, r, false),
            H2FieldError::kNone);
  EXPECT_EQ(r.method, "CONNECT");
  EXPECT_EQ(r.authority, "a.test:443");
  EXPECT_TRUE(r.upgrade.empty());
  EXPECT_FALSE(r.has_body);
  EXPECT_EQ(build({{":method", "CONNECT"}, {":authority", "a:443"}, {":path", "/"}}, r, false),
            H2FieldError::kConnect);
  EXPECT_EQ(build({{":method", "CONNECT"}, {":authority", "a:443"}, {":scheme", "http"}}, r, false),
            H2FieldError::kConnect);
  EXPECT_EQ(build({{":method", "CONNECT"}, {"host", "a:443"}}, r, false), H2FieldError::kConnect);
  EXPECT_EQ(
      build({{":method", "CONNECT"}, {":authority", "a:443"}, {"content-length", "3"}}, r, false),
      H2FieldError::kBadContentLength);
}

Fields extended(std::string protocol = "websocket") {
  return {{":method", "CONNECT"},    {":protocol", protocol},   {":scheme", "https"},
          {":path", "/chat?room=1"}, {":authority", "ws.test"}, {"sec-websocket-version", "13"}};
}

// RFC 8441: an extended CONNECT becomes the HTTP/1.1 handshake the handler knows (GET + upgrade),
// without a body and without any Sec-WebSocket-Key of the client's.
TEST(H2RequestBuilder, ExtendedConnectIsTranslated) {
  RequestHeaders r;
  Fields f = extended("WebSocket");
  f.push_back({"sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="});
  f.push_back({"sec-websocket-protocol", "chat"});
  ASSERT_EQ(build(f, r, false, 65536, 100, true), H2FieldError::kNone);
  EXPECT_EQ(r.method, "GET");
  EXPECT_EQ(r.upgrade, "websocket");
  EXPECT_EQ(r.path, "/chat");
  EXPECT_EQ(r.query, "room=1");
  EXPECT_EQ(r.authority, "ws.test");
  EXPECT_FALSE(r.has_body);
  EXPECT_FALSE(r.headers.has("sec-websocket-key"));
  EXPECT_EQ(r.headers.get("sec-websocket-version"), "13");
  EXPECT_EQ(r.headers.get("sec-websocket-protocol"), "chat");
  // Another protocol is translated too: the handler refuses it (501).
  ASSERT_EQ(build(extended("connect-udp"), r, false, 65536, 100, true), H2FieldError::kNone);
  EXPECT_EQ(r.upgrade, "connect-udp");
}

TEST(H2RequestBuilder, ExtendedConnectRules) {
  RequestHeaders r;
  auto without = [](const char* name) {
    Fields f = extended();
    std::erase_if(f, [&](const auto& kv) { return kv.first == name; });
    return f;
  };
  // Without SETTINGS_ENABLE_CONNECT_PROTOCOL, :protocol is an unknown pseudo-header.
  EXPECT_EQ(build(extended(), r, false), H2FieldError::kBadPseudo);
  EXPECT_EQ(build(without(":path"), r, false, 65536, 100, true), H2FieldError::kMissingPseudo);
  EXPECT_EQ(build(without(":scheme"), r, false, 65536, 100, true), H2FieldError::kMissingPseudo);
  EXPECT_EQ(build(without(":authority"), r, false, 65536, 100, true), H2FieldError::kConnect);
  Fields get = extended();
  get[0].second = "GET";
  EXPECT_EQ(build(get, r, false, 65536, 100, true), H2FieldError::kBadProtocol);
  Fields twice = extended();
  twice.insert(twice.begin() + 1, {":protocol", "websocket"});
  EXPECT_EQ(build(twice, r, false, 65536, 100, true), H2FieldError::kDuplicatePseudo);
  EXPECT_EQ(build(extended("web socket"), r, false, 65536, 100, true), H2FieldError::kBadProtocol);
  EXPECT_EQ(build(extended(""), r, false, 65536, 100, true), H2FieldError::kBadProtocol);
  Fields len = extended();
  len.push_back({"content-length", "0"});
  EXPECT_EQ(build(len, r, false, 65536, 100, true), H2FieldError::kBadContentLength);
}

TEST(H2RequestBuilder, RefusesConnectionSpecificFields) {
  for (const char* name :
       {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade"}) {
    RequestHeaders r;
    Fields f = base();
    f.push_back({name, "x"});
    EXPECT_EQ(build(f, r), H2FieldError::kConnectionSpecific) << name;
  }
  RequestHeaders r;
  Fields te = base();
  te.push_back({"te", "gzip"});
  EXPECT_EQ(build(te, r), H2FieldError::kBadTe);
  Fields trailers = base();
  trailers.push_back({"te", "trailers"});
  EXPECT_EQ(build(trailers, r), H2FieldError::kNone);
  EXPECT_FALSE(r.headers.has("te"));  // hop-by-hop for HTTP/1.1
}

TEST(H2RequestBuilder, NothingHttp11CannotCarry) {
  struct Case {
    std::string name, value;
    H2FieldError want;
  };
  for (const Case& c : std::vector<Case>{
           {"X-Upper", "v", H2FieldError::kUpperCaseName},
           {"x-cr", "a\rb", H2FieldError::kBadValue},
           {"x-lf", "a\nb", H2FieldError::kBadValue},
           {"x-nul", std::string("a\0b", 3), H2FieldError::kBadValue},
           {"x-ctl", "a\x01b", H2FieldError::kBadValue},
           {"x-space", " v", H2FieldError::kBadValue},
           {"bad name", "v", H2FieldError::kBadName},
           {"bad:name", "v", H2FieldError::kBadName},
       }) {
    RequestHeaders r;
    Fields f = base();
    f.push_back({c.name, c.value});
    EXPECT_EQ(build(f, r), c.want) << c.name;
  }
  for (const char* path : {"/a b", "/a\tb", "/a#f", "a", "/\x7f"}) {
    RequestHeaders r;
    EXPECT_EQ(build(base(path), r), H2FieldError::kBadPath) << path;
  }
  RequestHeaders r;
  EXPECT_EQ(
      build({{":method", "G T"}, {":scheme", "http"}, {":path", "/"}, {":authority", "a"}}, r),
      H2FieldError::kBadMethod);
  EXPECT_EQ(
      build({{":method", "GET"}, {":scheme", "http"}, {":path", "/"}, {":authority", "a@b"}}, r),
      H2FieldError::kBadAuthority);
  EXPECT_EQ(
      build({{":method", "GET"}, {":scheme", "http"}, {":path", "*"}, {":authority", "a"}}, r),
      H2FieldError::kBadPath);
  EXPECT_EQ(
      build({{":method", "OPTIONS"}, {":scheme", "http"}, {":path", "*"}, {":authority", "a"}}, r),
      H2FieldError::kNone);
}

TEST(H2RequestBuilder, PseudoHeaderRules) {
  RequestHeaders r;
  Fields after = {{":method", "GET"}, {"accept", "x"}, {":scheme", "http"}, {":path", "/"}};
  EXPECT_EQ(build(after, r), H2FieldError::kPseudoAfterRegular);
  Fields dup = base();
  dup.insert(dup.begin(), {":path", "/x"});
  EXPECT_EQ(build(dup, r), H2FieldError::kDuplicatePseudo);
  Fields unknown = base();
  unknown.insert(unknown.begin(), {":protocol", "websocket"});
  EXPECT_EQ(build(unknown, r), H2FieldError::kBadPseudo);
}

TEST(H2RequestBuilder, ContentLengthAndBody) {
  RequestHeaders r;
  Fields f = base();
  f[0].second = "POST";
  f.push_back({"content-length", "12"});
  ASSERT_EQ(build(f, r, false), H2FieldError::kNone);
  EXPECT_TRUE(r.has_body);
  EXPECT_EQ(r.content_length, 12u);
  EXPECT_FALSE(r.headers.has("content-length"));
  // END_STREAM on the HEADERS with a non-zero length is malformed.
  EXPECT_EQ(build(f, r, true), H2FieldError::kBadContentLength);
  Fields two = f;
  two.push_back({"content-length", "13"});
  EXPECT_EQ(build(two, r, false), H2FieldError::kBadContentLength);
  Fields bad = base();
  bad.push_back({"content-length", "1x"});
  EXPECT_EQ(build(bad, r, false), H2FieldError::kBadContentLength);
  Fields zero = base();
  zero.push_back({"content-length", "0"});
  ASSERT_EQ(build(zero, r, false), H2FieldError::kNone);
  EXPECT_FALSE(r.has_body);
}

TEST(H2RequestBuilder, CookiesJoinedAndExpect) {
  RequestHeaders r;
  Fields f = base();
  f[0].second = "PUT";
  f.push_back({"cookie", "a=1"});
  f.push_back({"expect", "100-continue"});
  f.push_back({"cookie", "b=2"});
  ASSERT_EQ(build(f, r, false), H2FieldError::kNone);
  EXPECT_EQ(r.headers.get("cookie"), "a=1; b=2");
  EXPECT_TRUE(r.expect_continue);
  EXPECT_FALSE(r.headers.has("expect"));
}

TEST(H2RequestBuilder, HeaderListSizeLimit) {
  RequestHeaders r;
  Fields f = base();
  for (int i = 0; i < 20; ++i)
    f.push_back({"x-h", std::string(100, 'v')});
  EXPECT_EQ(build(f, r, true, 1024), H2FieldError::kTooLarge);
  EXPECT_EQ(build(f, r, true, 65536, 10), H2FieldError::kTooLarge);
  EXPECT_EQ(build(f, r, true, 65536, 100), H2FieldError::kNone);
}

TEST(H2RequestBuilder, Trailers) {
  HeaderMap t;
  EXPECT_EQ(H2RequestBuilder::add_trailer(t, "x-sum", "1"), H2FieldError::kNone);
  EXPECT_EQ(H2RequestBuilder::add_trailer(t, "content-type", "x"), H2FieldError::kNone);
  EXPECT_EQ(H2RequestBuilder::add_trailer(t, ":path", "/"), H2FieldError::kPseudoInTrailers);
  EXPECT_EQ(H2RequestBuilder::add_trailer(t, "X-Up", "1"), H2FieldError::kUpperCaseName);
  EXPECT_EQ(H2RequestBuilder::add_trailer(t, "x-v", "a\nb"), H2FieldError::kBadValue);
  EXPECT_EQ(t.size(), 1u);  // content-type is not forwardable
  EXPECT_EQ(t.get("x-sum"), "1");
}

TEST(H2Encode, ResponseHead) {
  ResponseHeaders r;
  r.status = 201;
  r.headers.add("Content-Type", "text/plain");
  r.headers.add("Connection", "close");
  r.headers.add("Transfer-Encoding", "chunked");
  r.headers.add("Keep-Alive", "5");
  r.headers.add("Content-Length", "99");
  r.headers.add("X-Long-Header-Name-To-Force-Growth", std::string(300, 'x'));
  r.content_length = 5;
  H2Fields out;
  encode_response(r, out);
  ASSERT_EQ(out.fields.size(), 4u);
  EXPECT_EQ(out.fields[0].name, ":status");
  EXPECT_EQ(out.fields[0].value, "201");
  EXPECT_EQ(out.fields[1].name, "content-type");
  EXPECT_EQ(out.fields[1].value, "text/plain");
  EXPECT_EQ(out.fields[2].name, "x-long-header-name-to-force-growth");
  EXPECT_EQ(out.fields[2].value.size(), 300u);
  EXPECT_EQ(out.fields[3].name, "content-length");
  EXPECT_EQ(out.fields[3].value, "5");
  r.status = 204;
  encode_response(r, out);
  EXPECT_EQ(out.fields.back().name, "x-long-header-name-to-force-growth");
}

TEST(H2Encode, Trailers) {
  HeaderMap t;
  t.add("Grpc-Status", "0");
  t.add("Connection", "x");
  H2Fields out;
  encode_trailers(t, out);
  ASSERT_EQ(out.fields.size(), 1u);
  EXPECT_EQ(out.fields[0].name, "grpc-status");
  EXPECT_EQ(out.fields[0].value, "0");
}

}  // namespace
}  // namespace portico::proxy::http
