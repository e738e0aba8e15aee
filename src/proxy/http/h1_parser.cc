// Strict HTTP/1.1 parser (RFC 9110/9112): request and response heads, chunked bodies. See
// h1_parser.h and docs/http1.md for the rules and their reasons.
#include "proxy/http/h1_parser.h"

#include <algorithm>
#include <array>
#include <cstring>

namespace portico::proxy::http {
namespace {

// Character classes, one bit each, looked up in a 256-entry table.
constexpr uint8_t kTchar = 1;     // token characters (RFC 9110 §5.6.2)
constexpr uint8_t kValue = 2;     // field-value bytes: HTAB, SP, VCHAR, obs-text (RFC 9110 §5.5)
constexpr uint8_t kTarget = 4;    // request-target bytes: VCHAR except '#'
constexpr uint8_t kHost = 8;      // reg-name bytes: unreserved, sub-delims, '%' (RFC 3986 §3.2.2)
constexpr uint8_t kHex = 16;      // HEXDIG
constexpr uint8_t kLiteral = 32;  // inside an IP-literal: unreserved, sub-delims, ':'

constexpr std::array<uint8_t, 256> make_classes() {
  std::array<uint8_t, 256> t{};
  for (int c = 0; c < 256; ++c) {
    uint8_t v = 0;
    const bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
    const bool digit = c >= '0' && c <= '9';
    if (alpha || digit) v |= kTchar | kHost | kLiteral;
    for (char s : std::string_view("!#$%&'*+-.^_`|~")) {
      if (c == static_cast<unsigned char>(s)) v |= kTchar;
    }
    if (c == '\t' || c == ' ' || (c >= 0x21 && c <= 0x7e) || c >= 0x80) v |= kValue;
    if (c >= 0x21 && c <= 0x7e && c != '#') v |= kTarget;
    for (char s : std::string_view("-._~!$&'()*+,;=")) {
      if (c == static_cast<unsigned char>(s)) v |= kHost | kLiteral;
    }
    if (c == '%') v |= kHost;
    if (c == ':') v |= kLiteral;
    if (digit || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')) v |= kHex;
    t[c] = v;
  }
  return t;
}

constexpr std::array<uint8_t, 256> kClass = make_classes();

constexpr std::array<char, 256> make_lower() {
  std::array<char, 256> t{};
  for (int c = 0; c < 256; ++c) {
    t[c] = static_cast<char>(c >= 'A' && c <= 'Z' ? c + ('a' - 'A') : c);
  }
  return t;
}

constexpr std::array<char, 256> kLower = make_lower();

inline bool is(char c, uint8_t cls) {
  return (kClass[static_cast<unsigned char>(c)] & cls) != 0;
}
inline bool is_ows(char c) {
  return c == ' ' || c == '\t';
}
inline bool is_digit(char c) {
  return c >= '0' && c <= '9';
}

inline int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  return kLower[static_cast<unsigned char>(c)] - 'a' + 10;
}

// At most this many empty lines before a request line (RFC 9112 §2.2 robustness allowance).
constexpr int kMaxLeadingEmptyLines = 4;
// At most this many tokens across all Connection headers (a real client sends one to three); bounds
// the work of marking the headers they name.
constexpr size_t kMaxConnectionTokens = 32;

constexpr std::string_view kSlash = "/";

ParseResult error(ParseError e) {
  return {ParseStatus::kError, e};
}
constexpr ParseResult kIncomplete{ParseStatus::kIncomplete, ParseError::kNone};

// The Host grammar (RFC 9110 §7.2, RFC 3986 §3.2.2): uri-host [ ":" port ]. An empty value is
// valid.
bool valid_host(std::string_view h, bool require_port) {
  size_t i = 0;
  const size_t n = h.size();
  if (n > 0 && h[0] == '[') {
    i = 1;
    while (i < n && is(h[i], kLiteral))
      ++i;
    if (i == 1 || i == n || h[i] != ']') return false;
    ++i;
  } else {
    while (i < n && is(h[i], kHost)) {
      if (h[i] == '%') {
        if (i + 2 >= n || !is(h[i + 1], kHex) || !is(h[i + 2], kHex)) return false;
        i += 2;
      }
      ++i;
    }
  }
  if (i == n) return !require_port;
  if (h[i] != ':') return false;
  ++i;
  if (require_port && i == n) return false;
  for (; i < n; ++i) {
    if (!is_digit(h[i])) return false;
  }
  return true;
}

std::string_view trim_ows(std::string_view v) {
  size_t b = 0;
  size_t e = v.size();
  while (b < e && is_ows(v[b]))
    ++b;
  while (e > b && is_ows(v[e - 1]))
    --e;
  return v.substr(b, e - b);
}

// Calls fn(token) for each element of a comma-separated list (RFC 9110 §5.6.1), skipping empty
// elements. Returns false if an element is not a token or fn returns false.
template <typename Fn>
bool for_each_token(std::string_view list, Fn&& fn) {
  size_t i = 0;
  const size_t n = list.size();
  while (i <= n) {
    size_t comma = list.find(',', i);
    if (comma == std::string_view::npos) comma = n;
    std::string_view item = trim_ows(list.substr(i, comma - i));
    if (!item.empty()) {
      for (char c : item) {
        if (!is(c, kTchar)) return false;
      }
      if (!fn(item)) return false;
    }
    i = comma + 1;
  }
  return true;
}

enum class Coding : uint8_t { kChunkedOnly, kNotChunked, kInvalid };

// Transfer-Encoding: we accept exactly one coding, "chunked" (case-insensitive). Anything with
// "chunked" in it but not alone, or bad syntax, is invalid; a list without "chunked" is
// kNotChunked.
Coding classify_transfer_encoding(std::string_view value) {
  size_t codings = 0;
  bool chunked = false;
  bool ok = for_each_token(value, [&](std::string_view t) {
    ++codings;
    if (iequals(t, "chunked")) chunked = true;
    return true;
  });
  if (!ok || codings == 0) return Coding::kInvalid;
  if (!chunked) return Coding::kNotChunked;
  return codings == 1 ? Coding::kChunkedOnly : Coding::kInvalid;
}

// What the header loop learnt about the headers that matter for framing and routing.
struct HeadState {
  int content_length_index = -1;
  int transfer_encoding_index = -1;
  int host_index = -1;
  bool connection = false;
  bool upgrade = false;
  bool expect_continue = false;
};

enum class Known : uint8_t {
  kOther,
  kHost,
  kContentLength,
  kTransferEncoding,
  kConnection,
  kUpgrade,
  kExpect,
  kHopByHop
};

Known classify_name(std::string_view name) {
  switch (name.size()) {
    case 2:
      return iequals(name, "te") ? Known::kHopByHop : Known::kOther;
    case 4:
      return iequals(name, "host") ? Known::kHost : Known::kOther;
    case 6:
      return iequals(name, "expect") ? Known::kExpect : Known::kOther;
    case 7:
      if (iequals(name, "upgrade")) return Known::kUpgrade;
      return iequals(name, "trailer") ? Known::kHopByHop : Known::kOther;
    case 10:
      if (iequals(name, "connection")) return Known::kConnection;
      return iequals(name, "keep-alive") ? Known::kHopByHop : Known::kOther;
    case 14:
      return iequals(name, "content-length") ? Known::kContentLength : Known::kOther;
    case 16:
      return iequals(name, "proxy-connection") ? Known::kHopByHop : Known::kOther;
    case 17:
      return iequals(name, "transfer-encoding") ? Known::kTransferEncoding : Known::kOther;
    default:
      return Known::kOther;
  }
}

bool parse_content_length(std::string_view v, uint64_t& out) {
  if (v.empty()) return false;
  uint64_t n = 0;
  for (char c : v) {
    if (!is_digit(c)) return false;
    const uint64_t d = static_cast<uint64_t>(c - '0');
    if (n > (UINT64_MAX - d) / 10) return false;
    n = n * 10 + d;
  }
  out = n;
  return true;
}

// Parses header lines from `pos` up to and including the empty line. `limit` is the end of the
// bytes we may look at (min(size, max_head_bytes)); `truncated` says that more bytes exist beyond
// it, so running out of bytes means the head is too large rather than incomplete.
ParseResult parse_headers(const char* p, size_t pos, size_t limit, bool truncated, MessageHead& out,
                          HeadState& st, bool is_request, const Limits& limits) {
  const ParseResult out_of_bytes = truncated ? error(ParseError::kHeadTooLarge) : kIncomplete;
  const size_t max_headers = std::min(limits.max_headers, kMaxHeadersCapacity);
  if (out.headers.empty())
    out.headers.resize(std::min<size_t>(32, max_headers == 0 ? 1 : max_headers));
  for (;;) {
    if (pos >= limit) return out_of_bytes;
    const char first = p[pos];
    if (first == '\r') {
      if (pos + 1 >= limit) return out_of_bytes;
      if (p[pos + 1] != '\n') return error(ParseError::kBadHeaderName);
      out.head_bytes = pos + 2;
      return {ParseStatus::kComplete, ParseError::kNone};
    }
    if (first == '\n') return error(ParseError::kBareLf);
    if (is_ows(first)) return error(ParseError::kObsFold);

    const size_t name_start = pos;
    while (pos < limit && is(p[pos], kTchar))
      ++pos;
    if (pos >= limit) return out_of_bytes;
    if (p[pos] != ':') {
      if (is_ows(p[pos])) return error(ParseError::kWhitespaceBeforeColon);
      if (p[pos] == '\n') return error(ParseError::kBareLf);
      return error(ParseError::kBadHeaderName);
    }
    if (pos == name_start) return error(ParseError::kBadHeaderName);
    const std::string_view name(p + name_start, pos - name_start);
    ++pos;

    while (pos < limit && is_ows(p[pos]))
      ++pos;
    const size_t value_start = pos;
    while (pos < limit && is(p[pos], kValue))
      ++pos;
    if (pos >= limit) return out_of_bytes;
    if (p[pos] != '\r') {
      return error(p[pos] == '\n' ? ParseError::kBareLf : ParseError::kBadHeaderValue);
    }
    if (pos + 1 >= limit) return out_of_bytes;
    if (p[pos + 1] != '\n') return error(ParseError::kBadHeaderValue);
    size_t value_end = pos;
    while (value_end > value_start && is_ows(p[value_end - 1]))
      --value_end;
    pos += 2;

    if (out.header_count >= max_headers) return error(ParseError::kTooManyHeaders);
    const int index = static_cast<int>(out.header_count);
    if (out.header_count == out.headers.size()) {
      out.headers.resize(std::min(max_headers, out.headers.size() * 2));
    }
    Header& h = out.headers[out.header_count++];
    h.name = name;
    h.value = std::string_view(p + value_start, value_end - value_start);
    h.hop_by_hop = false;

    switch (classify_name(name)) {
      case Known::kOther:
        break;
      case Known::kHost:
        if (!is_request) break;
        if (st.host_index >= 0) return error(ParseError::kMultipleHost);
        if (!valid_host(h.value, false)) return error(ParseError::kBadHost);
        st.host_index = index;
        break;
      case Known::kContentLength:
        if (st.content_length_index >= 0) return error(ParseError::kBadContentLength);
        if (!parse_content_length(h.value, out.content_length)) {
          return error(ParseError::kBadContentLength);
        }
        st.content_length_index = index;
        break;
      case Known::kTransferEncoding:
        // A second Transfer-Encoding line would append codings after "chunked": never valid for us.
        if (st.transfer_encoding_index >= 0) return error(ParseError::kBadTransferEncoding);
        st.transfer_encoding_index = index;
        h.hop_by_hop = true;
        break;
      case Known::kConnection:
        st.connection = true;
        h.hop_by_hop = true;
        break;
      case Known::kUpgrade:
        st.upgrade = true;
        h.hop_by_hop = true;
        break;
      case Known::kExpect:
        if (iequals(h.value, "100-continue")) st.expect_continue = true;
        break;
      case Known::kHopByHop:
        h.hop_by_hop = true;
        break;
    }
  }
}

// Connection tokens: keep-alive semantics, upgrade, and hop-by-hop marking (RFC 9110 §7.6.1).
ParseResult apply_connection(MessageHead& out, const HeadState& st) {
  bool close = false;
  bool keep_alive = false;
  bool upgrade = false;
  if (st.connection) {
    size_t tokens = 0;
    for (size_t i = 0; i < out.header_count; ++i) {
      const Header& c = out.headers[i];
      if (c.name.size() != 10 || !iequals(c.name, "connection")) continue;
      bool ok = for_each_token(c.value, [&](std::string_view t) {
        if (++tokens > kMaxConnectionTokens) return false;
        if (iequals(t, "close")) {
          close = true;
        } else if (iequals(t, "keep-alive")) {
          keep_alive = true;
        } else if (iequals(t, "upgrade")) {
          upgrade = true;
        }
        // Host and Content-Length are never dropped on a client's say-so: routing and framing
        // come from them (the proxy rebuilds framing from the parsed fields anyway).
        if (iequals(t, "host") || iequals(t, "content-length")) return true;
        for (size_t j = 0; j < out.header_count; ++j) {
          Header& h = out.headers[j];
          if (!h.hop_by_hop && h.name.size() == t.size() && iequals(h.name, t)) {
            h.hop_by_hop = true;
          }
        }
        return true;
      });
      if (!ok) return error(ParseError::kBadHeaderValue);
    }
  }
  out.keep_alive = out.version_minor == 1 ? !close : (keep_alive && !close);
  out.connection_upgrade = upgrade && st.upgrade;
  return {ParseStatus::kComplete, ParseError::kNone};
}

void reset_common(MessageHead& out) {
  out.version_minor = 1;
  out.header_count = 0;
  out.body = BodyKind::kNone;
  out.content_length = 0;
  out.keep_alive = true;
  out.connection_upgrade = false;
  out.head_bytes = 0;
}

// "HTTP/1.0" or "HTTP/1.1" → minor version; otherwise -1 if it looks like an HTTP-version we do
// not support (kBadVersion), -2 if it is not an HTTP-version at all.
int parse_version(std::string_view v) {
  if (v.size() == 8 && v.substr(0, 7) == "HTTP/1.") {
    if (v[7] == '1') return 1;
    if (v[7] == '0') return 0;
  }
  if (v.size() >= 5 && v.substr(0, 5) == "HTTP/") return -1;
  return -2;
}

// Splits an origin-form or absolute-form path part into path and query at the first '?'.
void split_path(std::string_view pq, RequestHead& out) {
  const size_t q = pq.find('?');
  if (q == std::string_view::npos) {
    out.path = pq;
    out.query = {};
  } else {
    out.path = pq.substr(0, q);
    out.query = pq.substr(q + 1);
  }
  if (out.path.empty()) out.path = kSlash;
}

bool istarts_with(std::string_view s, std::string_view prefix) {
  return s.size() >= prefix.size() && iequals(s.substr(0, prefix.size()), prefix);
}

}  // namespace

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (kLower[static_cast<unsigned char>(a[i])] != kLower[static_cast<unsigned char>(b[i])]) {
      return false;
    }
  }
  return true;
}

const Header* MessageHead::find(std::string_view name) const {
  for (size_t i = 0; i < header_count; ++i) {
    if (iequals(headers[i].name, name)) return &headers[i];
  }
  return nullptr;
}

std::string_view error_text(ParseError e) {
  switch (e) {
    case ParseError::kNone:
      return "no error";
    case ParseError::kBadRequestLine:
      return "malformed request line";
    case ParseError::kBadVersion:
      return "unsupported http version";
    case ParseError::kBadStatusLine:
      return "malformed status line";
    case ParseError::kBadHeaderName:
      return "invalid header name";
    case ParseError::kWhitespaceBeforeColon:
      return "whitespace before header colon";
    case ParseError::kObsFold:
      return "obsolete header line folding";
    case ParseError::kBadHeaderValue:
      return "invalid header value";
    case ParseError::kBareLf:
      return "line ended by bare lf";
    case ParseError::kHeadTooLarge:
      return "header section too large";
    case ParseError::kTooManyHeaders:
      return "too many header fields";
    case ParseError::kBadContentLength:
      return "invalid content-length";
    case ParseError::kContentLengthAndTransferEncoding:
      return "content-length and transfer-encoding together";
    case ParseError::kBadTransferEncoding:
      return "unsupported transfer-encoding";
    case ParseError::kTransferEncodingInHttp10:
      return "transfer-encoding in http/1.0";
    case ParseError::kMissingHost:
      return "missing host";
    case ParseError::kMultipleHost:
      return "multiple host headers";
    case ParseError::kBadHost:
      return "invalid host";
    case ParseError::kBadChunkSize:
      return "invalid chunk size";
    case ParseError::kBadChunkExtension:
      return "invalid chunk extension";
    case ParseError::kBadChunkTerminator:
      return "invalid chunk terminator";
    case ParseError::kBadTrailer:
      return "invalid trailer section";
  }
  return "unknown error";
}

int error_status(ParseError e) {
  switch (e) {
    case ParseError::kHeadTooLarge:
    case ParseError::kTooManyHeaders:
      return 431;
    case ParseError::kBadTransferEncoding:
      return 501;
    case ParseError::kBadVersion:
      return 505;
    default:
      return 400;
  }
}

ParseResult parse_request_head(std::string_view data, RequestHead& out, const Limits& limits) {
  reset_common(out);
  out.method = out.target = out.path = out.query = out.host = {};
  out.expect_continue = false;

  const char* p = data.data();
  const bool truncated = data.size() > limits.max_head_bytes;
  const size_t limit = truncated ? limits.max_head_bytes : data.size();
  const ParseResult out_of_bytes = truncated ? error(ParseError::kHeadTooLarge) : kIncomplete;
  size_t pos = 0;

  // Leading empty lines (RFC 9112 §2.2).
  for (int empty = 0;; ++empty) {
    if (pos >= limit) return out_of_bytes;
    if (p[pos] == '\n') return error(ParseError::kBareLf);
    if (p[pos] != '\r') break;
    if (empty == kMaxLeadingEmptyLines) return error(ParseError::kBadRequestLine);
    if (pos + 1 >= limit) return out_of_bytes;
    if (p[pos + 1] != '\n') return error(ParseError::kBadRequestLine);
    pos += 2;
  }

  // request-line = method SP request-target SP HTTP-version CRLF (RFC 9112 §3), single spaces.
  const size_t method_start = pos;
  while (pos < limit && is(p[pos], kTchar))
    ++pos;
  if (pos >= limit) return out_of_bytes;
  if (p[pos] != ' ' || pos == method_start) {
    return error(p[pos] == '\n' ? ParseError::kBareLf : ParseError::kBadRequestLine);
  }
  out.method = std::string_view(p + method_start, pos - method_start);
  ++pos;

  const size_t target_start = pos;
  while (pos < limit && is(p[pos], kTarget))
    ++pos;
  if (pos >= limit) return out_of_bytes;
  if (p[pos] != ' ' || pos == target_start) {
    return error(p[pos] == '\n' ? ParseError::kBareLf : ParseError::kBadRequestLine);
  }
  out.target = std::string_view(p + target_start, pos - target_start);
  ++pos;

  const size_t version_start = pos;
  while (pos < limit && is(p[pos], kTarget | kTchar))
    ++pos;
  if (pos >= limit) return out_of_bytes;
  if (p[pos] != '\r') {
    return error(p[pos] == '\n' ? ParseError::kBareLf : ParseError::kBadRequestLine);
  }
  if (pos + 1 >= limit) return out_of_bytes;
  if (p[pos + 1] != '\n') return error(ParseError::kBadRequestLine);
  const int minor = parse_version(std::string_view(p + version_start, pos - version_start));
  if (minor == -1) return error(ParseError::kBadVersion);
  if (minor < 0) return error(ParseError::kBadRequestLine);
  out.version_minor = minor;
  pos += 2;

  HeadState st;
  ParseResult r = parse_headers(p, pos, limit, truncated, out, st, true, limits);
  if (r.status != ParseStatus::kComplete) return r;

  // Request target forms (RFC 9112 §3.2).
  std::string_view authority;
  bool has_authority = false;
  const std::string_view target = out.target;
  if (target[0] == '/') {
    split_path(target, out);
    if (out.method == "CONNECT") return error(ParseError::kBadRequestLine);
  } else if (target == "*") {
    if (out.method != "OPTIONS") return error(ParseError::kBadRequestLine);
    out.path = target;
  } else if (out.method == "CONNECT") {
    if (target[0] == ':' || !valid_host(target, true)) return error(ParseError::kBadRequestLine);
    authority = target;
    has_authority = true;
  } else {
    size_t scheme = 0;
    if (istarts_with(target, "http://")) {
      scheme = 7;
    } else if (istarts_with(target, "https://")) {
      scheme = 8;
    } else {
      return error(ParseError::kBadRequestLine);
    }
    const std::string_view rest = target.substr(scheme);
    size_t end = rest.find_first_of("/?");
    if (end == std::string_view::npos) end = rest.size();
    authority = rest.substr(0, end);
    if (authority.empty() || !valid_host(authority, false) || authority[0] == ':') {
      return error(ParseError::kBadRequestLine);
    }
    has_authority = true;
    split_path(rest.substr(end), out);
  }

  // Host (RFC 9112 §3.2, RFC 9110 §7.2).
  if (st.host_index >= 0) {
    out.host = out.headers[st.host_index].value;
    if (has_authority && !iequals(authority, out.host)) return error(ParseError::kBadHost);
  } else if (out.version_minor == 1) {
    return error(ParseError::kMissingHost);
  } else if (has_authority) {
    out.host = authority;
  }

  // Framing (RFC 9112 §6.1, §6.3).
  if (st.transfer_encoding_index >= 0) {
    if (st.content_length_index >= 0) {
      return error(ParseError::kContentLengthAndTransferEncoding);
    }
    if (out.version_minor == 0) return error(ParseError::kTransferEncodingInHttp10);
    const std::string_view te = out.headers[st.transfer_encoding_index].value;
    if (classify_transfer_encoding(te) != Coding::kChunkedOnly) {
      return error(ParseError::kBadTransferEncoding);
    }
    out.body = BodyKind::kChunked;
  } else if (st.content_length_index >= 0) {
    out.body = BodyKind::kContentLength;
  }

  r = apply_connection(out, st);
  if (r.status != ParseStatus::kComplete) return r;
  // HTTP/1.0 recipients ignore Expect and Upgrade (RFC 9110 §10.1.1, §7.8).
  if (out.version_minor == 0) out.connection_upgrade = false;
  out.expect_continue = st.expect_continue && out.version_minor == 1;
  return r;
}

ParseResult parse_response_head(std::string_view data, std::string_view request_method,
                                ResponseHead& out, const Limits& limits) {
  reset_common(out);
  out.status = 0;
  out.reason = {};

  const char* p = data.data();
  const bool truncated = data.size() > limits.max_head_bytes;
  const size_t limit = truncated ? limits.max_head_bytes : data.size();
  const ParseResult out_of_bytes = truncated ? error(ParseError::kHeadTooLarge) : kIncomplete;
  size_t pos = 0;

  // status-line = HTTP-version SP status-code SP [ reason-phrase ] CRLF (RFC 9112 §4).
  while (pos < limit && is(p[pos], kTarget | kTchar))
    ++pos;
  if (pos >= limit) return out_of_bytes;
  const int minor = parse_version(std::string_view(p, pos));
  if (p[pos] != ' ' || minor == -2) {
    return error(p[pos] == '\n' ? ParseError::kBareLf : ParseError::kBadStatusLine);
  }
  if (minor < 0) return error(ParseError::kBadVersion);
  out.version_minor = minor;
  ++pos;

  int status = 0;
  for (int i = 0; i < 3; ++i, ++pos) {
    if (pos >= limit) return out_of_bytes;
    if (!is_digit(p[pos])) return error(ParseError::kBadStatusLine);
    status = status * 10 + (p[pos] - '0');
  }
  if (status < 100 || status > 599) return error(ParseError::kBadStatusLine);
  out.status = status;

  if (pos >= limit) return out_of_bytes;
  if (p[pos] == ' ') {
    ++pos;
    const size_t reason_start = pos;
    while (pos < limit && is(p[pos], kValue))
      ++pos;
    if (pos >= limit) return out_of_bytes;
    out.reason = std::string_view(p + reason_start, pos - reason_start);
  }
  if (p[pos] != '\r') {
    return error(p[pos] == '\n' ? ParseError::kBareLf : ParseError::kBadStatusLine);
  }
  if (pos + 1 >= limit) return out_of_bytes;
  if (p[pos + 1] != '\n') return error(ParseError::kBadStatusLine);
  pos += 2;

  HeadState st;
  ParseResult r = parse_headers(p, pos, limit, truncated, out, st, false, limits);
  if (r.status != ParseStatus::kComplete) return r;

  // Framing (RFC 9112 §6.3). CL and TE together is legal-but-suspect for responses; we reject it.
  Coding coding = Coding::kNotChunked;
  if (st.transfer_encoding_index >= 0) {
    if (st.content_length_index >= 0) {
      return error(ParseError::kContentLengthAndTransferEncoding);
    }
    if (out.version_minor == 0) return error(ParseError::kTransferEncodingInHttp10);
    coding = classify_transfer_encoding(out.headers[st.transfer_encoding_index].value);
    if (coding == Coding::kInvalid) return error(ParseError::kBadTransferEncoding);
  }

  if (request_method == "HEAD" || status < 200 || status == 204 || status == 304 ||
      (request_method == "CONNECT" && status < 300)) {
    out.body = BodyKind::kNone;
  } else if (st.transfer_encoding_index >= 0) {
    out.body = coding == Coding::kChunkedOnly ? BodyKind::kChunked : BodyKind::kUntilClose;
  } else if (st.content_length_index >= 0) {
    out.body = BodyKind::kContentLength;
  } else {
    out.body = BodyKind::kUntilClose;
  }
  if (out.body != BodyKind::kContentLength) out.content_length = 0;

  r = apply_connection(out, st);
  if (r.status != ParseStatus::kComplete) return r;
  if (out.body == BodyKind::kUntilClose) out.keep_alive = false;
  return r;
}

// ---------------------------------------------------------------------------------------------
// ChunkedDecoder (RFC 9112 §7.1).

ChunkedDecoder::Step ChunkedDecoder::feed(std::string_view input) {
  Step s;
  if (error_ != ParseError::kNone) {
    s.error = error_;
    return s;
  }
  if (state_ == State::kDone) {
    s.done = true;
    return s;
  }
  const size_t n = input.size();
  size_t i = 0;
  auto fail = [&](ParseError e) {
    error_ = e;
    s.error = e;
    s.consumed = i;
    return s;
  };
  while (i < n) {
    const char c = input[i];
    switch (state_) {
      case State::kSize:
        if (is(c, kHex)) {
          if (++size_digits_ > 16) return fail(ParseError::kBadChunkSize);
          remaining_ = (remaining_ << 4) | static_cast<uint64_t>(hex_value(c));
          ++i;
          break;
        }
        if (size_digits_ == 0) return fail(ParseError::kBadChunkSize);
        if (c == ';') {
          state_ = State::kExtension;
          ext_bytes_ = 1;
        } else if (c == '\r') {
          state_ = State::kSizeLf;
        } else {
          return fail(ParseError::kBadChunkSize);
        }
        ++i;
        break;
      case State::kExtension:
        if (c == '\r') {
          state_ = State::kSizeLf;
          ++i;
          break;
        }
        if (c == '\n') return fail(ParseError::kBadChunkSize);
        if (!is(c, kValue)) return fail(ParseError::kBadChunkExtension);
        if (++ext_bytes_ > limits_.max_chunk_extension_bytes) {
          return fail(ParseError::kBadChunkExtension);
        }
        ++i;
        break;
      case State::kSizeLf:
        if (c != '\n') return fail(ParseError::kBadChunkSize);
        ++i;
        size_digits_ = 0;
        ext_bytes_ = 0;
        state_ = remaining_ == 0 ? State::kTrailerStart : State::kData;
        break;
      case State::kData: {
        const size_t take = static_cast<size_t>(std::min<uint64_t>(remaining_, n - i));
        s.data = input.substr(i, take);
        i += take;
        remaining_ -= take;
        if (remaining_ == 0) state_ = State::kDataCr;
        s.consumed = i;
        return s;
      }
      case State::kDataCr:
        if (c != '\r') return fail(ParseError::kBadChunkTerminator);
        ++i;
        state_ = State::kDataLf;
        break;
      case State::kDataLf:
        if (c != '\n') return fail(ParseError::kBadChunkTerminator);
        ++i;
        state_ = State::kSize;
        break;
      case State::kTrailerStart:
        if (c == '\r') {
          state_ = State::kFinalLf;
          ++i;
          break;
        }
        if (c == '\n') return fail(ParseError::kBadChunkTerminator);
        if (!is(c, kTchar)) return fail(ParseError::kBadTrailer);  // obs-fold, bad name
        if (++trailer_bytes_ > limits_.max_trailer_bytes) return fail(ParseError::kBadTrailer);
        trailer_in_value_ = false;
        state_ = State::kTrailerLine;
        trailers_.push_back(c);
        ++i;
        break;
      case State::kTrailerLine:
        if (++trailer_bytes_ > limits_.max_trailer_bytes) return fail(ParseError::kBadTrailer);
        if (!trailer_in_value_) {
          if (c == ':') {
            trailer_in_value_ = true;
          } else if (!is(c, kTchar)) {
            return fail(ParseError::kBadTrailer);
          }
        } else if (c == '\r') {
          state_ = State::kTrailerLf;
          ++i;
          break;
        } else if (!is(c, kValue)) {
          return fail(ParseError::kBadTrailer);
        }
        trailers_.push_back(c);
        ++i;
        break;
      case State::kTrailerLf:
        if (c != '\n') return fail(ParseError::kBadTrailer);
        if (++trailer_bytes_ > limits_.max_trailer_bytes) return fail(ParseError::kBadTrailer);
        trailers_.push_back('\n');
        ++i;
        state_ = State::kTrailerStart;
        break;
      case State::kFinalLf:
        if (c != '\n') return fail(ParseError::kBadChunkTerminator);
        ++i;
        state_ = State::kDone;
        s.done = true;
        s.consumed = i;
        return s;
      case State::kDone:
        s.done = true;
        s.consumed = i;
        return s;
    }
  }
  s.consumed = i;
  return s;
}

bool next_trailer(std::string_view& section, Header& out) {
  if (section.empty()) return false;
  size_t nl = section.find('\n');
  if (nl == std::string_view::npos) nl = section.size();
  const std::string_view line = section.substr(0, nl);
  section.remove_prefix(std::min(nl + 1, section.size()));
  const size_t colon = line.find(':');
  if (colon == std::string_view::npos) return false;  // never produced by the decoder
  out.name = line.substr(0, colon);
  out.value = trim_ows(line.substr(colon + 1));
  out.hop_by_hop = false;
  return true;
}

bool forwardable_trailer(std::string_view name) {
  // Content-* (Content-Length, -Type, -Encoding, -Range, ...): payload processing and framing.
  if (name.size() >= 8 && iequals(name.substr(0, 8), "content-")) return false;
  static constexpr std::string_view kForbidden[] = {
      // framing and hop-by-hop
      "transfer-encoding", "connection", "keep-alive", "proxy-connection", "te", "trailer",
      "upgrade",
      // routing
      "host",
      // request modifiers (controls, conditionals, range)
      "cache-control", "expect", "max-forwards", "pragma", "range", "if-match", "if-none-match",
      "if-modified-since", "if-unmodified-since", "if-range",
      // authentication and state
      "authorization", "proxy-authorization", "www-authenticate", "proxy-authenticate",
      "authentication-info", "proxy-authentication-info", "cookie", "set-cookie",
      // response control data
      "age", "expires", "date", "location", "retry-after", "vary", "warning",
      // forwarding facts the proxy sets itself
      "x-forwarded-for", "x-forwarded-proto", "x-forwarded-host", "forwarded", "via"};
  for (std::string_view f : kForbidden) {
    if (f.size() == name.size() && iequals(f, name)) return false;
  }
  return true;
}

}  // namespace portico::proxy::http
