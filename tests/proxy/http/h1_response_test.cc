// Unit tests of the strict HTTP/1.1 response head parser (proxy/http/h1_parser.h).
#include <gtest/gtest.h>

#include <string>

#include "proxy/http/h1_parser.h"

namespace portico::proxy::http {
namespace {

// Parses a complete response head; every strict prefix must be incomplete. The head (and the copy
// of the input its views point into) stays valid until the next call.
ResponseHead* accept(const std::string& input, std::string_view method = "GET",
                     const Limits& l = {}) {
  static ResponseHead h;
  static std::string s;
  s = input;
  ParseResult r = parse_response_head(s, method, h, l);
  EXPECT_EQ(r.status, ParseStatus::kComplete) << s << " → " << error_text(r.error);
  const size_t head = h.head_bytes;
  for (size_t n = 0; n < head; ++n) {
    ResponseHead p;
    EXPECT_EQ(parse_response_head(std::string_view(s).substr(0, n), method, p, l).status,
              ParseStatus::kIncomplete)
        << "prefix " << n << " of " << s;
  }
  return &h;
}

ParseError reject(const std::string& s, std::string_view method = "GET", const Limits& l = {}) {
  ResponseHead h;
  ParseResult r = parse_response_head(s, method, h, l);
  EXPECT_EQ(r.status, ParseStatus::kError) << s;
  for (size_t n = 0; n < s.size(); ++n) {
    ResponseHead p;
    ParseResult pr = parse_response_head(std::string_view(s).substr(0, n), method, p, l);
    if (pr.status == ParseStatus::kError) {
      EXPECT_EQ(pr.error, r.error) << "prefix " << n << " of " << s;
    } else {
      EXPECT_EQ(pr.status, ParseStatus::kIncomplete) << "prefix " << n << " of " << s;
    }
  }
  return r.error;
}

TEST(H1Response, Simple) {
  const std::string s = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nServer: u\r\n\r\nhello";
  ResponseHead* h = accept(s);
  EXPECT_EQ(h->status, 200);
  EXPECT_EQ(h->reason, "OK");
  EXPECT_EQ(h->version_minor, 1);
  EXPECT_EQ(h->body, BodyKind::kContentLength);
  EXPECT_EQ(h->content_length, 5u);
  EXPECT_TRUE(h->keep_alive);
  EXPECT_EQ(h->header_count, 2u);
  EXPECT_EQ(h->head_bytes, s.size() - 5);
}

TEST(H1Response, ReasonPhrase) {
  EXPECT_EQ(accept("HTTP/1.1 404 Not  Found \r\nContent-Length: 0\r\n\r\n")->reason, "Not  Found ");
  EXPECT_EQ(accept("HTTP/1.1 200 \r\nContent-Length: 0\r\n\r\n")->reason, "");
  // Lenient: no space and no reason after the status code.
  ResponseHead* h = accept("HTTP/1.1 200\r\nContent-Length: 0\r\n\r\n");
  EXPECT_EQ(h->status, 200);
  EXPECT_EQ(h->reason, "");
  EXPECT_EQ(accept("HTTP/1.1 200 caf\xc3\xa9\t!\r\nContent-Length: 0\r\n\r\n")->reason,
            "caf\xc3\xa9\t!");
}

TEST(H1Response, BadStatusLines) {
  for (const char* l : {"HTTP/1.1  200 OK", "HTTP/1.1 20 OK", "HTTP/1.1 2000 OK", "HTTP/1.1 2x0 OK",
                        "HTTP/1.1 099 X", "HTTP/1.1 600 X", "HTTP/1.1", "HTTP/1.1 ",
                        "http/1.1 200 OK", "ICY 200 OK", " HTTP/1.1 200 OK", "HTTP/1.1 200 O\x01K",
                        "HTTP/1.1 200 O\rK", "HTTP/1.1\t200 OK", "HTTP/1.1 +20 OK"}) {
    EXPECT_EQ(reject(std::string(l) + "\r\nContent-Length: 0\r\n\r\n"), ParseError::kBadStatusLine)
        << l;
  }
  EXPECT_EQ(reject("HTTP/1.1 200 OK\nContent-Length: 0\r\n\r\n"), ParseError::kBareLf);
  EXPECT_EQ(reject("HTTP/1.1 200\nContent-Length: 0\r\n\r\n"), ParseError::kBareLf);
  EXPECT_EQ(reject("\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"), ParseError::kBadStatusLine);
}

TEST(H1Response, Versions) {
  ResponseHead* h = accept("HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n");
  EXPECT_EQ(h->version_minor, 0);
  EXPECT_FALSE(h->keep_alive);
  h = accept("HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n");
  EXPECT_TRUE(h->keep_alive);
  for (const char* v : {"HTTP/2.0", "HTTP/1.2", "HTTP/2", "HTTP/0.9"}) {
    EXPECT_EQ(reject(std::string(v) + " 200 OK\r\n\r\n"), ParseError::kBadVersion) << v;
  }
}

TEST(H1Response, BodyFraming) {
  EXPECT_EQ(accept("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", "HEAD")->body, BodyKind::kNone);
  EXPECT_EQ(accept("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", "HEAD")->body,
            BodyKind::kNone);
  EXPECT_EQ(accept("HTTP/1.1 100 Continue\r\n\r\n")->body, BodyKind::kNone);
  EXPECT_EQ(accept("HTTP/1.1 101 Switching Protocols\r\n\r\n")->body, BodyKind::kNone);
  EXPECT_EQ(accept("HTTP/1.1 204 No Content\r\n\r\n")->body, BodyKind::kNone);
  EXPECT_EQ(accept("HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\n")->body,
            BodyKind::kNone);
  EXPECT_EQ(accept("HTTP/1.1 200 OK\r\n\r\n", "CONNECT")->body, BodyKind::kNone);
  EXPECT_EQ(accept("HTTP/1.1 299 OK\r\n\r\n", "CONNECT")->body, BodyKind::kNone);
  EXPECT_EQ(accept("HTTP/1.1 407 Auth\r\nContent-Length: 3\r\n\r\n", "CONNECT")->body,
            BodyKind::kContentLength);
  ResponseHead* h = accept("HTTP/1.1 200 OK\r\nTransfer-Encoding: Chunked\r\n\r\n");
  EXPECT_EQ(h->body, BodyKind::kChunked);
  EXPECT_TRUE(h->keep_alive);
  // A transfer coding other than chunked: the body runs until close (RFC 9112 §6.3 item 4).
  h = accept("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n");
  EXPECT_EQ(h->body, BodyKind::kUntilClose);
  EXPECT_FALSE(h->keep_alive);
  h = accept("HTTP/1.1 200 OK\r\n\r\n");
  EXPECT_EQ(h->body, BodyKind::kUntilClose);
  EXPECT_FALSE(h->keep_alive);
  EXPECT_EQ(h->content_length, 0u);
  EXPECT_EQ(accept("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")->body, BodyKind::kContentLength);
}

TEST(H1Response, FramingErrors) {
  EXPECT_EQ(reject("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"),
            ParseError::kContentLengthAndTransferEncoding);
  EXPECT_EQ(
      reject("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n", "HEAD"),
      ParseError::kContentLengthAndTransferEncoding);
  EXPECT_EQ(reject("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n"),
            ParseError::kBadContentLength);
  EXPECT_EQ(reject("HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n"), ParseError::kBadContentLength);
  EXPECT_EQ(reject("HTTP/1.1 200 OK\r\nContent-Length:\r\n\r\n"), ParseError::kBadContentLength);
  EXPECT_EQ(reject("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"),
            ParseError::kBadTransferEncoding);
  EXPECT_EQ(reject("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\n"),
            ParseError::kBadTransferEncoding);
  EXPECT_EQ(reject("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n"
                   "Transfer-Encoding: chunked\r\n\r\n"),
            ParseError::kBadTransferEncoding);
  EXPECT_EQ(reject("HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"),
            ParseError::kTransferEncodingInHttp10);
}

TEST(H1Response, HeaderErrorsAsInRequests) {
  EXPECT_EQ(reject("HTTP/1.1 200 OK\r\nX: a\r\n b\r\n\r\n"), ParseError::kObsFold);
  EXPECT_EQ(reject("HTTP/1.1 200 OK\r\nX : a\r\n\r\n"), ParseError::kWhitespaceBeforeColon);
  EXPECT_EQ(reject(std::string("HTTP/1.1 200 OK\r\nX: a\0\r\n\r\n", 26)),
            ParseError::kBadHeaderValue);
  EXPECT_EQ(reject("HTTP/1.1 200 OK\r\nX: a\n\r\n"), ParseError::kBareLf);
  EXPECT_EQ(reject("HTTP/1.1 200 OK\r\nX(: a\r\n\r\n"), ParseError::kBadHeaderName);
}

TEST(H1Response, HostIsNotChecked) {
  ResponseHead* h = accept("HTTP/1.1 200 OK\r\nHost: a b\r\nHost: c\r\nContent-Length: 0\r\n\r\n");
  EXPECT_EQ(h->header_count, 3u);
}

TEST(H1Response, ConnectionAndUpgrade) {
  ResponseHead* h = accept(
      "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n");
  EXPECT_TRUE(h->connection_upgrade);
  EXPECT_TRUE(h->headers[0].hop_by_hop);
  EXPECT_TRUE(h->headers[1].hop_by_hop);
  h = accept("HTTP/1.1 200 OK\r\nConnection: close, X-Y\r\nX-Y: 1\r\nContent-Length: 0\r\n\r\n");
  EXPECT_FALSE(h->keep_alive);
  EXPECT_TRUE(h->find("x-y")->hop_by_hop);
  EXPECT_FALSE(h->find("content-length")->hop_by_hop);
}

TEST(H1Response, Limits) {
  Limits l;
  l.max_head_bytes = 40;
  EXPECT_EQ(reject("HTTP/1.1 200 OK\r\nX-Pad: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n\r\n", "GET", l),
            ParseError::kHeadTooLarge);
  l = Limits{};
  l.max_headers = 1;
  EXPECT_EQ(reject("HTTP/1.1 200 OK\r\nA: 1\r\nB: 2\r\n\r\n", "GET", l),
            ParseError::kTooManyHeaders);
}

}  // namespace
}  // namespace portico::proxy::http
