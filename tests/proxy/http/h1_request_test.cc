// Unit tests of the strict HTTP/1.1 request head parser (proxy/http/h1_parser.h).
#include <gtest/gtest.h>

#include <deque>
#include <string>

#include "proxy/http/h1_parser.h"

namespace portico::proxy::http {
namespace {

ParseResult parse(std::string_view s, RequestHead& h, const Limits& l = {}) {
  return parse_request_head(s, h, l);
}

// Parses a complete request that must be rejected, and checks that every strict prefix is either
// incomplete or the same error (never a different verdict).
ParseError reject(const std::string& s, const Limits& l = {}) {
  RequestHead h;
  ParseResult r = parse(s, h, l);
  EXPECT_EQ(r.status, ParseStatus::kError) << s;
  for (size_t n = 0; n < s.size(); ++n) {
    RequestHead p;
    ParseResult pr = parse(std::string_view(s).substr(0, n), p, l);
    if (pr.status == ParseStatus::kError) {
      EXPECT_EQ(pr.error, r.error) << "prefix " << n << " of " << s;
    } else {
      EXPECT_EQ(pr.status, ParseStatus::kIncomplete) << "prefix " << n << " of " << s;
    }
  }
  return r.error;
}

// Parses a valid request; every strict prefix of its head must be incomplete. The head's views
// point into a copy of the input that lives until the end of the test program.
void accept(const std::string& input, RequestHead& h, const Limits& l = {}) {
  static std::deque<std::string> keep;
  const std::string& s = keep.emplace_back(input);
  ParseResult r = parse(s, h, l);
  ASSERT_EQ(r.status, ParseStatus::kComplete) << s << " → " << error_text(r.error);
  for (size_t n = 0; n < h.head_bytes; ++n) {
    RequestHead p;
    EXPECT_EQ(parse(std::string_view(s).substr(0, n), p, l).status, ParseStatus::kIncomplete)
        << "prefix " << n << " of " << s;
  }
  ParseResult again = parse(s, h, l);  // the prefixes above used other heads; re-parse into h
  ASSERT_EQ(again.status, ParseStatus::kComplete);
}

TEST(H1Request, SimpleGet) {
  RequestHead h;
  const std::string s =
      "GET /index.html?q=1&r=2 HTTP/1.1\r\nHost: example.com\r\nUser-Agent: t\r\n\r\nBODY";
  accept(s, h);
  EXPECT_EQ(h.method, "GET");
  EXPECT_EQ(h.target, "/index.html?q=1&r=2");
  EXPECT_EQ(h.path, "/index.html");
  EXPECT_EQ(h.query, "q=1&r=2");
  EXPECT_EQ(h.host, "example.com");
  EXPECT_EQ(h.version_minor, 1);
  EXPECT_EQ(h.header_count, 2u);
  EXPECT_EQ(h.headers[1].name, "User-Agent");
  EXPECT_EQ(h.headers[1].value, "t");
  EXPECT_EQ(h.body, BodyKind::kNone);
  EXPECT_TRUE(h.keep_alive);
  EXPECT_FALSE(h.expect_continue);
  EXPECT_EQ(h.head_bytes, s.size() - 4);
  ASSERT_NE(h.find("host"), nullptr);
  EXPECT_EQ(h.find("HOST")->value, "example.com");
  EXPECT_EQ(h.find("x-missing"), nullptr);
}

TEST(H1Request, QueryOnlyFirstQuestionMarkSplits) {
  RequestHead h;
  accept("GET /a?b?c HTTP/1.1\r\nHost: x\r\n\r\n", h);
  EXPECT_EQ(h.path, "/a");
  EXPECT_EQ(h.query, "b?c");
}

TEST(H1Request, ValueOwsTrimmedAndObsTextAllowed) {
  RequestHead h;
  accept("GET / HTTP/1.1\r\nHost:x\r\nX-A: \t a b \t \r\nX-B:\r\nX-C: caf\xc3\xa9\r\n\r\n", h);
  EXPECT_EQ(h.headers[0].value, "x");
  EXPECT_EQ(h.headers[1].value, "a b");
  EXPECT_EQ(h.headers[2].value, "");
  EXPECT_EQ(h.headers[3].value, "caf\xc3\xa9");
}

TEST(H1Request, LeadingEmptyLinesSkippedButBounded) {
  RequestHead h;
  accept("\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n", h);
  EXPECT_EQ(h.method, "GET");
  EXPECT_EQ(h.head_bytes, 4 + 27u);
  EXPECT_EQ(reject("\r\n\r\n\r\n\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n"),
            ParseError::kBadRequestLine);
  EXPECT_EQ(reject("\nGET / HTTP/1.1\r\nHost: x\r\n\r\n"), ParseError::kBareLf);
}

TEST(H1Request, ContentLengthBody) {
  RequestHead h;
  accept("POST /p HTTP/1.1\r\nHost: x\r\nContent-Length: 12\r\n\r\n", h);
  EXPECT_EQ(h.body, BodyKind::kContentLength);
  EXPECT_EQ(h.content_length, 12u);
  accept("POST /p HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n", h);
  EXPECT_EQ(h.body, BodyKind::kContentLength);
  EXPECT_EQ(h.content_length, 0u);
  accept("POST /p HTTP/1.1\r\nHost: x\r\nContent-Length: 18446744073709551615\r\n\r\n", h);
  EXPECT_EQ(h.content_length, UINT64_MAX);
  accept("POST /p HTTP/1.1\r\nHost: x\r\nContent-Length: 007\r\n\r\n", h);
  EXPECT_EQ(h.content_length, 7u);
}

TEST(H1Request, ChunkedBody) {
  RequestHead h;
  accept("POST /p HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: ChUnKeD\r\n\r\n", h);
  EXPECT_EQ(h.body, BodyKind::kChunked);
  EXPECT_TRUE(h.find("transfer-encoding")->hop_by_hop);
}

TEST(H1Request, ContentLengthAndTransferEncoding) {
  EXPECT_EQ(reject("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
                   "Transfer-Encoding: chunked\r\n\r\n"),
            ParseError::kContentLengthAndTransferEncoding);
  EXPECT_EQ(reject("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
                   "Content-Length: 5\r\n\r\n"),
            ParseError::kContentLengthAndTransferEncoding);
}

TEST(H1Request, BadContentLength) {
  for (const char* v : {"", " ", "+5", "-5", "5 5", "5,5", "0x10", "1e3", "5a", "\xd9\xa5",
                        "18446744073709551616", "99999999999999999999999"}) {
    EXPECT_EQ(
        reject(std::string("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: ") + v + "\r\n\r\n"),
        ParseError::kBadContentLength)
        << v;
  }
  // Several Content-Length headers are rejected even when they agree.
  EXPECT_EQ(reject("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n"),
            ParseError::kBadContentLength);
  EXPECT_EQ(reject("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\ncontent-length: 6\r\n\r\n"),
            ParseError::kBadContentLength);
}

TEST(H1Request, BadTransferEncoding) {
  for (const char* v : {"gzip", "chunked, chunked", "gzip, chunked", "chunked, gzip", "identity",
                        "chunked;q=1", "\"chunked\"", "", ",", "chunk", "xchunked"}) {
    EXPECT_EQ(
        reject(std::string("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: ") + v + "\r\n\r\n"),
        ParseError::kBadTransferEncoding)
        << v;
  }
  EXPECT_EQ(reject("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
                   "Transfer-Encoding: chunked\r\n\r\n"),
            ParseError::kBadTransferEncoding);
  EXPECT_EQ(error_status(ParseError::kBadTransferEncoding), 501);
}

TEST(H1Request, TransferEncodingInHttp10) {
  EXPECT_EQ(reject("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n"),
            ParseError::kTransferEncodingInHttp10);
}

TEST(H1Request, BareLfAnywhere) {
  EXPECT_EQ(reject("GET / HTTP/1.1\nHost: x\r\n\r\n"), ParseError::kBareLf);
  EXPECT_EQ(reject("GET / HTTP/1.1\r\nHost: x\n\r\n"), ParseError::kBareLf);
  EXPECT_EQ(reject("GET / HTTP/1.1\r\nHost: x\r\n\n"), ParseError::kBareLf);
  EXPECT_EQ(reject("GET / HTTP/1.1\r\nHost: x\r\nX-A: a\nb\r\n\r\n"), ParseError::kBareLf);
  EXPECT_EQ(reject("GET / HTTP/1.1\r\nHost: x\r\nX-A\n\r\n"), ParseError::kBareLf);
}

TEST(H1Request, BadHeaderValues) {
  for (const std::string& v :
       {std::string("a\0b", 3), std::string("a\rb"), std::string("a\x01"), std::string("\x7f"),
        std::string("a\x1b[0m"), std::string("a\r\r")}) {
    EXPECT_EQ(reject("GET / HTTP/1.1\r\nHost: x\r\nX-A: " + v + "\r\n\r\n"),
              ParseError::kBadHeaderValue)
        << v;
  }
}

TEST(H1Request, WhitespaceBeforeColon) {
  EXPECT_EQ(reject("GET / HTTP/1.1\r\nHost: x\r\nContent-Length : 5\r\n\r\n"),
            ParseError::kWhitespaceBeforeColon);
  EXPECT_EQ(reject("GET / HTTP/1.1\r\nHost\t: x\r\n\r\n"), ParseError::kWhitespaceBeforeColon);
}

TEST(H1Request, ObsFold) {
  EXPECT_EQ(reject("GET / HTTP/1.1\r\nHost: x\r\nX-A: a\r\n b\r\n\r\n"), ParseError::kObsFold);
  EXPECT_EQ(reject("GET / HTTP/1.1\r\nHost: x\r\nX-A: a\r\n\tb\r\n\r\n"), ParseError::kObsFold);
  EXPECT_EQ(reject("GET / HTTP/1.1\r\n Host: x\r\n\r\n"), ParseError::kObsFold);
}

TEST(H1Request, BadHeaderNames) {
  for (const char* n : {"", "X(A)", "X/A", "X@A", "X\"A", "X[A]", "X{A}", "X=A", "\xc3\xa9"}) {
    EXPECT_EQ(reject(std::string("GET / HTTP/1.1\r\nHost: x\r\n") + n + ": v\r\n\r\n"),
              ParseError::kBadHeaderName)
        << n;
  }
  EXPECT_EQ(reject("GET / HTTP/1.1\r\nHost: x\r\nNoColon\r\n\r\n"), ParseError::kBadHeaderName);
  static constexpr char kNulName[] = "GET / HTTP/1.1\r\nHost: x\r\nX\0A: v\r\n\r\n";
  EXPECT_EQ(reject(std::string(kNulName, sizeof(kNulName) - 1)), ParseError::kBadHeaderName);
  // Underscores and the other token characters are valid.
  RequestHead h;
  accept("GET / HTTP/1.1\r\nHost: x\r\nX_A!#$%&'*+-.^`|~9: v\r\n\r\n", h);
}

TEST(H1Request, BadRequestLines) {
  for (const char* l : {"GET  / HTTP/1.1",
                        "GET /  HTTP/1.1",
                        "GET / HTTP/1.1 ",
                        " GET / HTTP/1.1",
                        "GET\t/ HTTP/1.1",
                        "GET / ",
                        "GET /",
                        "GET",
                        "G(T / HTTP/1.1",
                        "GET /a#frag HTTP/1.1",
                        "GET /a\x7f HTTP/1.1",
                        "GET /\xc3\xa9 HTTP/1.1",
                        "GET /a\rb HTTP/1.1",
                        "GET / http/1.1",
                        "GET / HTTP/1.1\r",
                        "GET a HTTP/1.1",
                        "GET ftp://x/ HTTP/1.1",
                        "GET * HTTP/1.1",
                        "OPTIONS *x HTTP/1.1",
                        "CONNECT / HTTP/1.1",
                        "CONNECT x HTTP/1.1",
                        "CONNECT x: HTTP/1.1",
                        "CONNECT :443 HTTP/1.1",
                        "GET http:// HTTP/1.1",
                        "GET http://u@x/ HTTP/1.1",
                        "GET http://:80/ HTTP/1.1"}) {
    EXPECT_EQ(reject(std::string(l) + "\r\nHost: x\r\n\r\n"), ParseError::kBadRequestLine) << l;
  }
}

TEST(H1Request, Versions) {
  RequestHead h;
  accept("GET / HTTP/1.0\r\n\r\n", h);
  EXPECT_EQ(h.version_minor, 0);
  EXPECT_FALSE(h.keep_alive);
  EXPECT_EQ(h.host, "");
  for (const char* v : {"HTTP/2.0", "HTTP/1.2", "HTTP/0.9", "HTTP/3", "HTTP/1.10", "HTTP/"}) {
    EXPECT_EQ(reject(std::string("GET / ") + v + "\r\nHost: x\r\n\r\n"), ParseError::kBadVersion)
        << v;
  }
  EXPECT_EQ(error_status(ParseError::kBadVersion), 505);
}

TEST(H1Request, Host) {
  EXPECT_EQ(reject("GET / HTTP/1.1\r\nX: y\r\n\r\n"), ParseError::kMissingHost);
  EXPECT_EQ(reject("GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n"), ParseError::kMultipleHost);
  EXPECT_EQ(reject("GET / HTTP/1.1\r\nHost: a\r\nhost: b\r\n\r\n"), ParseError::kMultipleHost);
  for (const char* v : {"a b", "a/b", "a@b", "a:b:c", "a:8x", "[::1", "[]", "a%zz", "a%4", "a\"b",
                        "a\\b", "[::1]x"}) {
    EXPECT_EQ(reject(std::string("GET / HTTP/1.1\r\nHost: ") + v + "\r\n\r\n"),
              ParseError::kBadHost)
        << v;
  }
  RequestHead h;
  for (const char* v : {"example.com", "example.com:8080", "[::1]:443", "[::1]", "10.0.0.1:80",
                        "a-b_c~d.e", "xn--caf-dma.example", "a%20b", ""}) {
    accept(std::string("GET / HTTP/1.1\r\nHost: ") + v + "\r\n\r\n", h);
    EXPECT_EQ(h.host, v);
  }
}

TEST(H1Request, AbsoluteForm) {
  RequestHead h;
  accept("GET http://Example.COM:8080/a/b?c=d HTTP/1.1\r\nHost: example.com:8080\r\n\r\n", h);
  EXPECT_EQ(h.path, "/a/b");
  EXPECT_EQ(h.query, "c=d");
  EXPECT_EQ(h.host, "example.com:8080");
  accept("GET HTTPS://x HTTP/1.1\r\nHost: x\r\n\r\n", h);
  EXPECT_EQ(h.path, "/");
  EXPECT_EQ(h.query, "");
  accept("GET http://x?q HTTP/1.1\r\nHost: x\r\n\r\n", h);
  EXPECT_EQ(h.path, "/");
  EXPECT_EQ(h.query, "q");
  // HTTP/1.0 without Host takes the authority.
  accept("GET http://y.example/z HTTP/1.0\r\n\r\n", h);
  EXPECT_EQ(h.host, "y.example");
  EXPECT_EQ(h.path, "/z");
  // Disagreement with Host, including a port that only one of them spells out.
  EXPECT_EQ(reject("GET http://evil.example/ HTTP/1.1\r\nHost: good.example\r\n\r\n"),
            ParseError::kBadHost);
  EXPECT_EQ(reject("GET http://x:80/ HTTP/1.1\r\nHost: x\r\n\r\n"), ParseError::kBadHost);
  EXPECT_EQ(reject("GET http://x/ HTTP/1.0\r\nHost: y\r\n\r\n"), ParseError::kBadHost);
  // HTTP/1.1 still needs Host.
  EXPECT_EQ(reject("GET http://x/ HTTP/1.1\r\n\r\n"), ParseError::kMissingHost);
}

TEST(H1Request, AsteriskAndAuthorityForms) {
  RequestHead h;
  accept("OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n", h);
  EXPECT_EQ(h.path, "*");
  accept("CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n", h);
  EXPECT_EQ(h.method, "CONNECT");
  EXPECT_EQ(h.target, "example.com:443");
  EXPECT_EQ(h.host, "example.com:443");
  EXPECT_EQ(h.path, "");
  EXPECT_EQ(reject("CONNECT a.example:443 HTTP/1.1\r\nHost: b.example:443\r\n\r\n"),
            ParseError::kBadHost);
}

TEST(H1Request, KeepAlive) {
  RequestHead h;
  accept("GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", h);
  EXPECT_FALSE(h.keep_alive);
  accept("GET / HTTP/1.1\r\nHost: x\r\nConnection: foo , CLOSE\r\n\r\n", h);
  EXPECT_FALSE(h.keep_alive);
  accept("GET / HTTP/1.1\r\nHost: x\r\nConnection: keep-alive\r\n\r\n", h);
  EXPECT_TRUE(h.keep_alive);
  accept("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n", h);
  EXPECT_TRUE(h.keep_alive);
  accept("GET / HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n", h);
  EXPECT_FALSE(h.keep_alive);
  accept("GET / HTTP/1.0\r\nKeep-Alive: timeout=5\r\n\r\n", h);
  EXPECT_FALSE(h.keep_alive);
  // Several Connection headers combine.
  accept("GET / HTTP/1.1\r\nHost: x\r\nConnection: ,,\r\nConnection: close\r\n\r\n", h);
  EXPECT_FALSE(h.keep_alive);
  EXPECT_EQ(reject("GET / HTTP/1.1\r\nHost: x\r\nConnection: clo se\r\n\r\n"),
            ParseError::kBadHeaderValue);
}

TEST(H1Request, ConnectionTokensAreBounded) {
  std::string tokens;
  for (int i = 0; i < 33; ++i)
    tokens += "a,";
  EXPECT_EQ(reject("GET / HTTP/1.1\r\nHost: x\r\nConnection: " + tokens + "\r\n\r\n"),
            ParseError::kBadHeaderValue);
}

TEST(H1Request, HopByHop) {
  RequestHead h;
  accept(
      "GET / HTTP/1.1\r\nHost: x\r\nConnection: X-Secret, keep-alive, host, content-length\r\n"
      "Keep-Alive: 1\r\nProxy-Connection: x\r\nTE: trailers\r\nTrailer: a\r\nUpgrade: ws\r\n"
      "x-secret: 1\r\nX-Public: 2\r\nContent-Length: 0\r\n\r\n",
      h);
  for (size_t i = 0; i < h.header_count; ++i) {
    const Header& x = h.headers[i];
    const bool end_to_end =
        iequals(x.name, "host") || iequals(x.name, "x-public") || iequals(x.name, "content-length");
    EXPECT_EQ(x.hop_by_hop, !end_to_end) << x.name;
  }
  EXPECT_FALSE(h.connection_upgrade);  // Upgrade present but not named in Connection
}

TEST(H1Request, Upgrade) {
  RequestHead h;
  accept("GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n", h);
  EXPECT_TRUE(h.connection_upgrade);
  accept("GET /ws HTTP/1.1\r\nHost: x\r\nConnection: upgrade\r\n\r\n", h);
  EXPECT_FALSE(h.connection_upgrade);
  accept("GET /ws HTTP/1.0\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n", h);
  EXPECT_FALSE(h.connection_upgrade);  // HTTP/1.0 recipients ignore Upgrade
}

TEST(H1Request, ExpectContinue) {
  RequestHead h;
  accept("PUT / HTTP/1.1\r\nHost: x\r\nExpect: 100-Continue\r\nContent-Length: 1\r\n\r\n", h);
  EXPECT_TRUE(h.expect_continue);
  accept("PUT / HTTP/1.1\r\nHost: x\r\nExpect: something-else\r\n\r\n", h);
  EXPECT_FALSE(h.expect_continue);
  accept("PUT / HTTP/1.0\r\nExpect: 100-continue\r\n\r\n", h);
  EXPECT_FALSE(h.expect_continue);
}

TEST(H1Request, HeadTooLargeAsSoonAsOverLimit) {
  Limits l;
  l.max_head_bytes = 64;
  const std::string ok =
      "GET / HTTP/1.1\r\nHost: x\r\nX-Pad: " + std::string(64 - 34 - 2, 'a') + "\r\n\r\n";
  ASSERT_EQ(ok.size(), 64u);
  RequestHead h;
  accept(ok, h, l);
  // One more byte of header: over the limit.
  const std::string big =
      "GET / HTTP/1.1\r\nHost: x\r\nX-Pad: " + std::string(64 - 34 - 1, 'a') + "\r\n\r\n";
  EXPECT_EQ(reject(big, l), ParseError::kHeadTooLarge);
  // No end of head in sight: the error comes as soon as the limit is passed, not later.
  std::string endless = "GET / HTTP/1.1\r\nHost: x\r\nX-Pad: " + std::string(40, 'a');
  EXPECT_EQ(parse(endless.substr(0, 64), h, l).status, ParseStatus::kIncomplete);
  EXPECT_EQ(parse(endless.substr(0, 65), h, l).error, ParseError::kHeadTooLarge);
  EXPECT_EQ(error_status(ParseError::kHeadTooLarge), 431);
}

TEST(H1Request, TooManyHeaders) {
  Limits l;
  l.max_headers = 3;
  RequestHead h;
  accept("GET / HTTP/1.1\r\nHost: x\r\nA: 1\r\nB: 2\r\n\r\n", h, l);
  EXPECT_EQ(reject("GET / HTTP/1.1\r\nHost: x\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n", l),
            ParseError::kTooManyHeaders);
  // The configured limit holds above the old fixed array size of 128...
  l.max_headers = 300;
  std::string s = "GET / HTTP/1.1\r\nHost: x\r\n";
  for (size_t i = 0; i < 250; ++i)
    s += "A: 1\r\n";
  RequestHead big;
  ASSERT_EQ(parse(s + "\r\n", big, l).status, ParseStatus::kComplete);
  EXPECT_EQ(big.header_count, 251u);
  // ...and the capacity (the decoder's maximum) is never exceeded, whatever the limit says.
  l.max_headers = 100000;
  l.max_head_bytes = 1 << 20;
  for (size_t i = 250; i < kMaxHeadersCapacity; ++i)
    s += "A: 1\r\n";
  RequestHead h2;
  ParseResult r = parse(s + "\r\n", h2, l);
  EXPECT_EQ(r.status, ParseStatus::kError);
  EXPECT_EQ(r.error, ParseError::kTooManyHeaders);
  EXPECT_EQ(error_status(ParseError::kTooManyHeaders), 431);
}

TEST(H1Request, RestartableAndIncomplete) {
  RequestHead h;
  EXPECT_EQ(parse("", h).status, ParseStatus::kIncomplete);
  EXPECT_EQ(parse("\r", h).status, ParseStatus::kIncomplete);
  EXPECT_EQ(parse("GET / HTTP/1.1\r\nHost: x\r\n\r", h).status, ParseStatus::kIncomplete);
  // A head parsed after a failure or another head carries nothing over.
  EXPECT_EQ(parse("GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\nA: b\r\n\r\n", h).status,
            ParseStatus::kComplete);
  EXPECT_EQ(parse("GET / HTTP/1.1\r\nHost: y\r\n\r\n", h).status, ParseStatus::kComplete);
  EXPECT_EQ(h.header_count, 1u);
  EXPECT_TRUE(h.keep_alive);
  EXPECT_EQ(h.host, "y");
}

TEST(H1Errors, TextAndStatus) {
  for (int e = 0; e <= static_cast<int>(ParseError::kBadTrailer); ++e) {
    const auto err = static_cast<ParseError>(e);
    const std::string_view t = error_text(err);
    EXPECT_FALSE(t.empty());
    for (char c : t)
      EXPECT_FALSE(c >= 'A' && c <= 'Z') << t;
    const int s = error_status(err);
    EXPECT_TRUE(s == 400 || s == 431 || s == 501 || s == 505);
  }
  EXPECT_EQ(error_text(ParseError::kContentLengthAndTransferEncoding),
            "content-length and transfer-encoding together");
  EXPECT_EQ(error_status(ParseError::kBareLf), 400);
  EXPECT_EQ(error_status(ParseError::kMissingHost), 400);
}

TEST(H1Iequals, Basics) {
  EXPECT_TRUE(iequals("Content-Length", "content-length"));
  EXPECT_FALSE(iequals("a", "ab"));
  EXPECT_FALSE(iequals("[", "{"));  // 0x5b vs 0x7b: only letters fold
  EXPECT_TRUE(iequals("", ""));
}

}  // namespace
}  // namespace portico::proxy::http
