// Unit tests of the chunked transfer coding decoder (proxy/http/h1_parser.h).
#include <gtest/gtest.h>

#include <string>

#include "proxy/http/h1_parser.h"

namespace portico::proxy::http {
namespace {

struct Decoded {
  std::string data;
  size_t consumed = 0;
  bool done = false;
  ParseError error = ParseError::kNone;
};

// Feeds `input` in pieces of `piece` bytes (0: all at once), looping as a connection would.
Decoded decode(std::string_view input, size_t piece = 0, const Limits& l = {}) {
  ChunkedDecoder d(l);
  Decoded out;
  if (piece == 0) piece = input.size() + 1;
  for (size_t off = 0; off < input.size() && !out.done && out.error == ParseError::kNone;) {
    std::string_view chunk = input.substr(off, piece);
    for (;;) {
      ChunkedDecoder::Step s = d.feed(chunk);
      out.data.append(s.data);
      out.consumed += s.consumed;
      chunk.remove_prefix(s.consumed);
      if (s.error != ParseError::kNone) {
        out.error = s.error;
        break;
      }
      if (s.done) {
        out.done = true;
        break;
      }
      if (s.consumed == 0 && s.data.empty()) break;
    }
    // A decoder that neither finished nor failed consumes every byte it is given.
    if (!out.done && out.error == ParseError::kNone) {
      EXPECT_TRUE(chunk.empty());
    }
    off += std::min(piece, input.size() - off);
  }
  EXPECT_EQ(d.done(), out.done);
  return out;
}

// Decodes whole and byte by byte; both must agree. Returns the whole-input result.
Decoded decode_both(std::string_view input, const Limits& l = {}) {
  Decoded whole = decode(input, 0, l);
  for (size_t piece : {1, 2, 3, 7}) {
    Decoded inc = decode(input, piece, l);
    EXPECT_EQ(inc.data, whole.data) << "piece " << piece;
    EXPECT_EQ(inc.done, whole.done) << "piece " << piece;
    EXPECT_EQ(inc.error, whole.error) << "piece " << piece;
    EXPECT_EQ(inc.consumed, whole.consumed) << "piece " << piece;
  }
  return whole;
}

ParseError reject(const std::string& s, const Limits& l = {}) {
  Decoded d = decode_both(s, l);
  EXPECT_FALSE(d.done) << s;
  return d.error;
}

TEST(Chunked, Simple) {
  const std::string s = "5\r\nhello\r\n7\r\n, world\r\n0\r\n\r\nNEXT";
  Decoded d = decode_both(s);
  EXPECT_TRUE(d.done);
  EXPECT_EQ(d.error, ParseError::kNone);
  EXPECT_EQ(d.data, "hello, world");
  EXPECT_EQ(d.consumed, s.size() - 4);  // stops at the end of the chunked body
}

TEST(Chunked, HexSizesAndLeadingZeros) {
  Decoded d = decode_both("A\r\n0123456789\r\n0000000000000010\r\n" + std::string(16, 'x') +
                          "\r\n000\r\n\r\n");
  EXPECT_TRUE(d.done);
  EXPECT_EQ(d.data.size(), 26u);
  d = decode_both("a\r\n0123456789\r\n0\r\n\r\n");
  EXPECT_TRUE(d.done);
}

TEST(Chunked, EmptyBody) {
  Decoded d = decode_both("0\r\n\r\n");
  EXPECT_TRUE(d.done);
  EXPECT_EQ(d.data, "");
}

TEST(Chunked, Incomplete) {
  const std::string s = "5\r\nhello\r\n0\r\nX-T: 1\r\n\r\n";
  for (size_t n = 0; n < s.size(); ++n) {
    Decoded d = decode_both(s.substr(0, n));
    EXPECT_FALSE(d.done) << n;
    EXPECT_EQ(d.error, ParseError::kNone) << n;
  }
}

TEST(Chunked, ExtensionsAreDiscardedAndBounded) {
  Decoded d = decode_both("5;name=value;q=\"x y\"\r\nhello\r\n0;last\r\n\r\n");
  EXPECT_TRUE(d.done);
  EXPECT_EQ(d.data, "hello");
  Limits l;
  l.max_chunk_extension_bytes = 8;
  EXPECT_TRUE(decode_both("1;abcdefg\r\nx\r\n0\r\n\r\n", l).done);
  EXPECT_EQ(reject("1;abcdefgh\r\nx\r\n0\r\n\r\n", l), ParseError::kBadChunkExtension);
  EXPECT_EQ(reject("1;" + std::string(300, 'a') + "\r\nx\r\n0\r\n\r\n"),
            ParseError::kBadChunkExtension);
  static constexpr char kNulExt[] = "1;a\0b\r\nx\r\n0\r\n\r\n";
  EXPECT_EQ(reject(std::string(kNulExt, sizeof(kNulExt) - 1)), ParseError::kBadChunkExtension);
  EXPECT_EQ(reject("1;a\rb\r\nx\r\n0\r\n\r\n"), ParseError::kBadChunkSize);
}

TEST(Chunked, BadSizes) {
  for (const char* size : {"0x5", "+5", "-5", "5_0", " 5", "5 ", "5\t", "", "g", "x",
                           "00000000000000001", "10000000000000000", "5,", "\xd9\xa5"}) {
    EXPECT_EQ(reject(std::string(size) + "\r\nhello\r\n0\r\n\r\n"), ParseError::kBadChunkSize)
        << size;
  }
  // Sixteen digits is the maximum and does not overflow.
  Decoded d = decode("ffffffffffffffff\r\nabc");
  EXPECT_EQ(d.error, ParseError::kNone);
  EXPECT_EQ(d.data, "abc");
}

TEST(Chunked, BareLf) {
  EXPECT_EQ(reject("5\nhello\r\n0\r\n\r\n"), ParseError::kBadChunkSize);
  EXPECT_EQ(reject("5;x\nhello\r\n0\r\n\r\n"), ParseError::kBadChunkSize);
  EXPECT_EQ(reject("5\r\nhello\n0\r\n\r\n"), ParseError::kBadChunkTerminator);
  EXPECT_EQ(reject("5\r\nhello\r\n0\n\r\n"), ParseError::kBadChunkSize);
  EXPECT_EQ(reject("5\r\nhello\r\n0\r\n\n"), ParseError::kBadChunkTerminator);
  EXPECT_EQ(reject("5\r\nhello\r\n0\r\nX: 1\n\r\n"), ParseError::kBadTrailer);
  EXPECT_EQ(reject("5\r\r\nhello\r\n0\r\n\r\n"), ParseError::kBadChunkSize);
}

TEST(Chunked, DataTerminator) {
  EXPECT_EQ(reject("5\r\nhelloX\r\n0\r\n\r\n"), ParseError::kBadChunkTerminator);
  EXPECT_EQ(reject("5\r\nhello0\r\n\r\n"), ParseError::kBadChunkTerminator);
  EXPECT_EQ(reject("5\r\nhello\rX0\r\n\r\n"), ParseError::kBadChunkTerminator);
  EXPECT_EQ(reject("3\r\nhello\r\n0\r\n\r\n"), ParseError::kBadChunkTerminator);
  // Missing final CRLF after the last chunk: never done.
  Decoded d = decode_both("5\r\nhello\r\n0\r\n");
  EXPECT_FALSE(d.done);
  EXPECT_EQ(d.error, ParseError::kNone);
  EXPECT_EQ(reject("5\r\nhello\r\n0\r\n\rX"), ParseError::kBadChunkTerminator);
}

TEST(Chunked, Trailers) {
  Decoded d = decode_both("1\r\nx\r\n0\r\nX-Sum: abc\r\nX-B:\r\n\r\nrest");
  EXPECT_TRUE(d.done);
  EXPECT_EQ(d.data, "x");
  EXPECT_EQ(d.consumed, 29u);
  EXPECT_EQ(reject("0\r\n X: 1\r\n\r\n"), ParseError::kBadTrailer);  // obs-fold
  EXPECT_EQ(reject("0\r\nX : 1\r\n\r\n"), ParseError::kBadTrailer);  // space before colon
  EXPECT_EQ(reject("0\r\n: 1\r\n\r\n"), ParseError::kBadTrailer);    // empty name
  EXPECT_EQ(reject("0\r\nX\r\n\r\n"), ParseError::kBadTrailer);      // no colon
  static constexpr char kNulTrailer[] = "0\r\nX: \0\r\n\r\n";
  EXPECT_EQ(reject(std::string(kNulTrailer, sizeof(kNulTrailer) - 1)), ParseError::kBadTrailer);
  EXPECT_EQ(reject("0\r\nX: a\rb\r\n\r\n"), ParseError::kBadTrailer);
  Limits l;
  l.max_trailer_bytes = 16;
  EXPECT_TRUE(
      decode_both("0\r\nX: 0123456789\r\n\r\n", l).done);  // 15 bytes of trailer (CRLF included)
  EXPECT_TRUE(decode_both("0\r\nX: 01234567890\r\n\r\n", l).done);  // 16: at the limit
  EXPECT_EQ(reject("0\r\nX: 012345678901\r\n\r\n", l), ParseError::kBadTrailer);
  EXPECT_EQ(reject("0\r\nX: 1\r\nY: 2\r\nZ: 3\r\n\r\n", l), ParseError::kBadTrailer);
}

// Decodes `input` fed in pieces of `piece` bytes and returns the trailer fields as "name=value;".
std::string trailer_fields(std::string_view input, size_t piece) {
  ChunkedDecoder d;
  for (size_t off = 0; off < input.size() && !d.done();) {
    std::string_view chunk = input.substr(off, piece);
    while (!chunk.empty()) {
      ChunkedDecoder::Step s = d.feed(chunk);
      if (s.error != ParseError::kNone) return "error";
      chunk.remove_prefix(s.consumed);
      if (s.done || (s.consumed == 0 && s.data.empty())) break;
    }
    off += piece;
  }
  if (!d.done()) return "incomplete";
  std::string out;
  std::string_view section = d.trailers();
  Header h;
  while (next_trailer(section, h)) {
    out.append(h.name).append("=").append(h.value).append(";");
  }
  return out;
}

TEST(Chunked, TrailersAreKept) {
  const std::string in = "3\r\nabc\r\n0\r\nX-Sum: abc \r\nX-Empty:\r\nX-B:\t two words\r\n\r\n";
  for (size_t piece : {1, 2, 5, 1000}) {
    EXPECT_EQ(trailer_fields(in, piece), "X-Sum=abc;X-Empty=;X-B=two words;") << piece;
  }
  EXPECT_EQ(trailer_fields("0\r\n\r\n", 1000), "");
  // reset() forgets them (a connection's next message starts clean).
  ChunkedDecoder d;
  ASSERT_TRUE(d.feed("0\r\nA: 1\r\n\r\n").done);
  EXPECT_EQ(d.trailers(), "A: 1\n");
  d.reset();
  EXPECT_TRUE(d.trailers().empty());
  ASSERT_TRUE(d.feed("0\r\n\r\n").done);
  EXPECT_TRUE(d.trailers().empty());
}

TEST(Chunked, ForbiddenTrailersAreNotForwardable) {
  for (const char* name : {"Content-Length",
                           "content-type",
                           "Content-Encoding",
                           "Transfer-Encoding",
                           "Host",
                           "Authorization",
                           "Proxy-Authorization",
                           "Set-Cookie",
                           "Cookie",
                           "TE",
                           "Trailer",
                           "Connection",
                           "Keep-Alive",
                           "Upgrade",
                           "Cache-Control",
                           "Expect",
                           "Range",
                           "Max-Forwards",
                           "Location",
                           "Date",
                           "Age",
                           "Vary",
                           "Retry-After",
                           "WWW-Authenticate",
                           "X-Forwarded-For"}) {
    EXPECT_FALSE(forwardable_trailer(name)) << name;
  }
  for (const char* name : {"X-Checksum", "Server-Timing", "grpc-status", "Digest", "ETag"}) {
    EXPECT_TRUE(forwardable_trailer(name)) << name;
  }
}

TEST(Chunked, ErrorsAndDoneAreSticky) {
  ChunkedDecoder d;
  ChunkedDecoder::Step s = d.feed("zz");
  EXPECT_EQ(s.error, ParseError::kBadChunkSize);
  EXPECT_EQ(s.consumed, 0u);
  s = d.feed("5\r\nhello\r\n");
  EXPECT_EQ(s.error, ParseError::kBadChunkSize);
  EXPECT_EQ(s.consumed, 0u);
  d.reset();
  s = d.feed("0\r\n\r\n");
  EXPECT_TRUE(s.done);
  EXPECT_TRUE(d.done());
  s = d.feed("1\r\nx\r\n");
  EXPECT_TRUE(s.done);
  EXPECT_EQ(s.consumed, 0u);
}

TEST(Chunked, OneDataSpanPerStep) {
  ChunkedDecoder d;
  const std::string_view in = "3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n";
  ChunkedDecoder::Step s = d.feed(in);
  EXPECT_EQ(s.data, "abc");
  EXPECT_EQ(s.consumed, 6u);
  s = d.feed(in.substr(6));
  EXPECT_EQ(s.data, "de");
  s = d.feed(in.substr(6 + s.consumed));
  EXPECT_TRUE(s.done);
  EXPECT_TRUE(s.data.empty());
}

}  // namespace
}  // namespace portico::proxy::http
