// Strict HTTP/1.1 message parser (RFC 9110/9112), request and response heads plus chunked bodies.
// Pure functions and small state machines over caller-owned bytes: no allocation on the fast path,
// no exceptions, no I/O. Safe on any thread; a parser object is used by one connection at a time.
//
// Strictness is the point: anything that two parsers could read differently (request smuggling) is
// an error, never "fixed up". The proxy forwards a re-serialised message built from the parsed
// fields, never the client's bytes. See ../shared/reference/hardening.md and docs/http1.md.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace portico::proxy::http {

// Why a message was rejected. Each maps to a short reason phrase (error_text) and, for requests,
// to a status code (400, 413 for over-limit bodies is not the parser's business, 431 for heads too
// large, 501 for unknown transfer codings, 505 for versions).
enum class ParseError : uint8_t {
  kNone = 0,
  kBadRequestLine,  // method/target/version syntax, extra spaces, bad characters
  kBadVersion,      // not HTTP/1.0 or HTTP/1.1 (505)
  kBadStatusLine,   // responses
  kBadHeaderName,   // invalid token characters, empty name
  kWhitespaceBeforeColon,
  kObsFold,           // a header line starting with SP/HTAB (continuation)
  kBadHeaderValue,    // NUL, bare CR, bare LF or other control characters
  kBareLf,            // a line ended by LF without CR
  kHeadTooLarge,      // over Limits::max_head_bytes (431)
  kTooManyHeaders,    // over Limits::max_headers (431)
  kBadContentLength,  // empty, non-digits, sign, overflow, several differing or repeated values
  kContentLengthAndTransferEncoding,
  kBadTransferEncoding,  // anything but exactly "chunked" as the final coding (501 for unknown
                         // codings)
  kTransferEncodingInHttp10,
  kMissingHost,  // HTTP/1.1 request without Host
  kMultipleHost,
  kBadHost,       // invalid characters in Host, or absolute-form authority disagreeing with Host
  kBadChunkSize,  // 0x, +, -, _, spaces, too many digits
  kBadChunkExtension,   // over the extension limit or bad syntax
  kBadChunkTerminator,  // data not followed by CRLF, bare LF
  kBadTrailer,
};

std::string_view error_text(ParseError e);
// HTTP status code to answer a request rejected with this error (400, 431, 501 or 505).
int error_status(ParseError e);

struct Limits {
  size_t max_head_bytes = 60 * 1024;  // request/status line + headers + final CRLF
  size_t max_headers = 100;
  size_t max_chunk_extension_bytes = 256;
  size_t max_trailer_bytes = 8 * 1024;
};

// The most header lines any head may carry, whatever Limits::max_headers says (the configuration
// decoder's maximum). The header array grows on demand up to it and keeps its capacity when a head
// object is reused, so a reused head parses without allocating.
inline constexpr size_t kMaxHeadersCapacity = 10000;

struct Header {
  std::string_view name;   // as received (case preserved); compare with iequals
  std::string_view value;  // OWS trimmed on both sides
  bool hop_by_hop =
      false;  // Connection, Keep-Alive, Proxy-Connection, TE, Trailer, Transfer-Encoding,
              // Upgrade, and any header named in a Connection header
};

enum class BodyKind : uint8_t {
  kNone,           // no body (no CL/TE in a request; 1xx/204/304 or a response to HEAD)
  kContentLength,  // exactly content_length bytes follow
  kChunked,        // chunked coding follows (decode with ChunkedDecoder)
  kUntilClose,     // responses only: the body runs until the connection closes
};

// Common to requests and responses. All string_views point into the buffer that was parsed: it must
// stay alive and unmoved while the head is used.
struct MessageHead {
  int version_minor = 1;        // HTTP/1.<minor>: 0 or 1
  std::vector<Header> headers;  // the first header_count entries are this head's; grows on demand
  size_t header_count = 0;
  BodyKind body = BodyKind::kNone;
  uint64_t content_length = 0;      // when body == kContentLength
  bool keep_alive = true;           // from version and Connection (close / keep-alive)
  bool connection_upgrade = false;  // Connection: upgrade and an Upgrade header present
  size_t head_bytes = 0;            // bytes of the head including the final CRLF

  // First header with this name (case-insensitive), or nullptr.
  const Header* find(std::string_view name) const;
};

struct RequestHead : MessageHead {
  std::string_view method;  // as received (methods are case-sensitive tokens)
  std::string_view target;  // request-target as received
  std::string_view path;    // origin-form path (absolute-form: the path part; "*" for OPTIONS *)
  std::string_view query;   // after '?', without it; empty if none
  std::string_view host;    // the Host header value (or absolute-form authority), port included
  bool expect_continue = false;  // Expect: 100-continue
};

struct ResponseHead : MessageHead {
  int status = 0;
  std::string_view reason;
};

enum class ParseStatus : uint8_t { kComplete, kIncomplete, kError };

struct ParseResult {
  ParseStatus status = ParseStatus::kIncomplete;
  ParseError error = ParseError::kNone;
};

// Parses a request head from the start of `data`. kIncomplete: more bytes are needed (and the bytes
// so far are valid and under the limit). On kComplete, out.head_bytes tells where the body starts.
// Leading empty lines (CRLF) before the request line are skipped as RFC 9112 §2.2 allows, at most a
// few.
ParseResult parse_request_head(std::string_view data, RequestHead& out, const Limits& limits = {});

// Parses a response head. `request_method` decides body framing (HEAD → no body; CONNECT 2xx →
// none). 1xx responses parse as complete heads with body kNone; the caller reads the next head
// after them.
ParseResult parse_response_head(std::string_view data, std::string_view request_method,
                                ResponseHead& out, const Limits& limits = {});

// Incremental decoder of the chunked transfer coding. Feed it bytes; it hands back decoded data
// spans. Chunk sizes are 1-16 hex digits without prefix or sign; extensions are bounded; trailers
// are parsed and kept (bounded by Limits::max_trailer_bytes) until the next reset: trailers()
// once done. Keeping them allocates only when a message has trailers.
class ChunkedDecoder {
 public:
  explicit ChunkedDecoder(const Limits& limits = {}) : limits_(limits) {}

  struct Step {
    size_t consumed = 0;    // bytes of the input used by this step
    std::string_view data;  // decoded body bytes found in this step (a view into the input)
    bool done = false;      // the last chunk and the trailers have been read
    ParseError error = ParseError::kNone;
  };

  // Decodes from `input`. Returns after at most one data span; call again with the rest of the
  // input (input.substr(consumed)) until consumed == 0 with no data, done, or an error.
  Step feed(std::string_view input);

  bool done() const { return state_ == State::kDone; }
  void reset() {
    state_ = State::kSize;
    remaining_ = 0;
    size_digits_ = 0;
    ext_bytes_ = 0;
    trailer_bytes_ = 0;
    trailer_in_value_ = false;
    error_ = ParseError::kNone;
    if (!trailers_.empty()) std::string().swap(trailers_);  // a connection keeps no trailer storage
  }

  // The trailer section received, one field per line as "name:value\n" (CR removed, the value
  // not yet trimmed): read the fields with next_trailer(). Empty when there were none.
  std::string_view trailers() const { return trailers_; }

 private:
  enum class State : uint8_t {
    kSize,
    kExtension,
    kSizeLf,
    kData,
    kDataCr,
    kDataLf,
    kTrailerStart,
    kTrailerLine,
    kTrailerLf,
    kFinalLf,
    kDone
  };
  Limits limits_;
  State state_ = State::kSize;
  uint64_t remaining_ = 0;  // data bytes left in the current chunk
  uint32_t size_digits_ = 0;
  size_t ext_bytes_ = 0;
  size_t trailer_bytes_ = 0;
  bool trailer_in_value_ = false;         // in a trailer line, past the colon
  ParseError error_ = ParseError::kNone;  // sticky: once failed, every feed returns the error
  std::string trailers_;                  // the trailer section, see trailers()
};

// Takes the next field from a ChunkedDecoder::trailers() section (advancing `section`); false when
// there is none left. The value has its surrounding whitespace removed.
bool next_trailer(std::string_view& section, Header& out);

// Whether a trailer field may be passed on (RFC 9110 §6.5.1, §6.5.2): never framing, routing,
// authentication, request modifiers, response control or Content-* fields, nor hop-by-hop ones.
// A proxy that forwards trailers drops the others; they are never merged into the head.
bool forwardable_trailer(std::string_view name);

// ASCII case-insensitive equality (header names, tokens).
bool iequals(std::string_view a, std::string_view b);

}  // namespace portico::proxy::http
