#include "proxy/http/h2_fields.h"

#include <array>
#include <charconv>

#include "proxy/http/h1_parser.h"

namespace portico::proxy::http {

namespace {

constexpr uint8_t kTchar = 1;     // token (RFC 9110 §5.6.2)
constexpr uint8_t kValue = 2;     // field-value bytes: HTAB, SP, VCHAR, obs-text
constexpr uint8_t kTarget = 4;    // request-target bytes: VCHAR except '#'
constexpr uint8_t kHost = 8;      // reg-name: unreserved, sub-delims, '%'
constexpr uint8_t kLiteral = 16;  // inside [ ] (IPv6 / IPvFuture)

constexpr std::array<uint8_t, 256> make_classes() {
  std::array<uint8_t, 256> t{};
  for (int c = 0; c < 256; ++c) {
    uint8_t v = 0;
    const bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
    const bool digit = c >= '0' && c <= '9';
    if (alpha || digit) v |= kTchar | kHost | kLiteral;
    for (char s : std::string_view("!#$%&'*+-.^_`|~"))
      if (c == static_cast<unsigned char>(s)) v |= kTchar;
    for (char s : std::string_view("-._~!$&'()*+,;=%"))
      if (c == static_cast<unsigned char>(s)) v |= kHost;
    for (char s : std::string_view(":.-_~!$&'()*+,;=%"))
      if (c == static_cast<unsigned char>(s)) v |= kLiteral;
    if (c == '\t' || c == ' ' || (c >= 0x21 && c != 0x7f)) v |= kValue;
    if (c >= 0x21 && c <= 0x7e && c != '#') v |= kTarget;
    t[static_cast<size_t>(c)] = v;
  }
  return t;
}
constexpr std::array<uint8_t, 256> kClass = make_classes();

bool is(char c, uint8_t cls) {
  return (kClass[static_cast<unsigned char>(c)] & cls) != 0;
}

bool all(std::string_view s, uint8_t cls) {
  for (char c : s)
    if (!is(c, cls)) return false;
  return true;
}

bool valid_value(std::string_view v) {
  if (!all(v, kValue)) return false;
  if (!v.empty() && (v.front() == ' ' || v.front() == '\t' || v.back() == ' ' || v.back() == '\t'))
    return false;
  return true;
}

// uri-host [ ":" port ] (RFC 3986 §3.2.2); no userinfo.
bool valid_authority(std::string_view h) {
  if (h.empty()) return false;
  size_t i = 0;
  const size_t n = h.size();
  if (h[0] == '[') {
    i = 1;
    while (i < n && is(h[i], kLiteral) && h[i] != ']')
      ++i;
    if (i == 1 || i == n || h[i] != ']') return false;
    ++i;
  } else {
    while (i < n && is(h[i], kHost)) {
      if (h[i] == '%') {
        auto hex = [](char c) {
          return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
        };
        if (i + 2 >= n || !hex(h[i + 1]) || !hex(h[i + 2])) return false;
        i += 2;
      }
      ++i;
    }
    if (i == 0) return false;
  }
  if (i == n) return true;
  if (h[i] != ':') return false;
  for (++i; i < n; ++i)
    if (h[i] < '0' || h[i] > '9') return false;
  return true;
}

bool connection_specific(std::string_view name) {
  return name == "connection" || name == "keep-alive" || name == "proxy-connection" ||
         name == "transfer-encoding" || name == "upgrade";
}

bool has_upper(std::string_view s) {
  for (char c : s)
    if (c >= 'A' && c <= 'Z') return true;
  return false;
}

void append_lower(std::string& out, std::string_view s) {
  const size_t at = out.size();
  out.resize(at + s.size());
  char* d = out.data() + at;
  for (size_t i = 0; i < s.size(); ++i) {
    const char c = s[i];
    d[i] = c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c;
  }
}

}  // namespace

const char* to_string(H2FieldError e) {
  switch (e) {
    case H2FieldError::kNone:
      return "none";
    case H2FieldError::kBadName:
      return "invalid field name";
    case H2FieldError::kUpperCaseName:
      return "upper-case field name";
    case H2FieldError::kBadValue:
      return "invalid field value";
    case H2FieldError::kConnectionSpecific:
      return "connection-specific field";
    case H2FieldError::kBadTe:
      return "te other than trailers";
    case H2FieldError::kBadPseudo:
      return "unknown pseudo-header";
    case H2FieldError::kBadProtocol:
      return "invalid :protocol (a token, with CONNECT only)";
    case H2FieldError::kPseudoAfterRegular:
      return "pseudo-header after a regular field";
    case H2FieldError::kDuplicatePseudo:
      return "repeated pseudo-header";
    case H2FieldError::kPseudoInTrailers:
      return "pseudo-header in trailers";
    case H2FieldError::kMissingPseudo:
      return "missing :method, :scheme or :path";
    case H2FieldError::kBadMethod:
      return "invalid :method";
    case H2FieldError::kBadScheme:
      return "invalid :scheme";
    case H2FieldError::kBadPath:
      return "invalid :path";
    case H2FieldError::kBadAuthority:
      return "invalid or missing :authority";
    case H2FieldError::kHostMismatch:
      return "host differs from :authority";
    case H2FieldError::kBadContentLength:
      return "invalid content-length";
    case H2FieldError::kConnect:
      return "malformed CONNECT";
    case H2FieldError::kTooLarge:
      return "header list too large";
  }
  return "unknown";
}

void H2RequestBuilder::start(RequestHeaders& out, bool secure, size_t max_bytes, size_t max_fields,
                             bool extended_connect) {
  out.clear();
  out_ = &out;
  secure_ = secure;
  max_bytes_ = max_bytes;
  max_fields_ = max_fields;
  bytes_ = fields_ = 0;
  error_ = H2FieldError::kNone;
  regular_seen_ = have_method_ = have_scheme_ = have_path_ = have_authority_ = false;
  extended_connect_ = extended_connect;
  connect_ = false;
  protocol_.reset();
  host_.reset();
  cookie_.clear();
}

H2FieldError H2RequestBuilder::add(std::string_view name, std::string_view value) {
  bytes_ += name.size() + value.size() + 32;
  ++fields_;
  if (bytes_ > max_bytes_ || fields_ > max_fields_) return fail(H2FieldError::kTooLarge);
  if (error_ != H2FieldError::kNone) return error_;
  RequestHeaders& r = *out_;
  if (name.empty()) return fail(H2FieldError::kBadName);
  if (name[0] == ':') {
    if (regular_seen_) return fail(H2FieldError::kPseudoAfterRegular);
    if (name == ":method") {
      if (have_method_) return fail(H2FieldError::kDuplicatePseudo);
      have_method_ = true;
      if (value.empty() || !all(value, kTchar)) return fail(H2FieldError::kBadMethod);
      connect_ = value == "CONNECT";
      r.method.assign(value);
    } else if (name == ":scheme") {
      if (have_scheme_) return fail(H2FieldError::kDuplicatePseudo);
      have_scheme_ = true;
      // What is forwarded is the connection's own scheme (as for HTTP/1.1); the client's
      // value only has to be one this proxy serves.
      if (value != "http" && value != "https") return fail(H2FieldError::kBadScheme);
    } else if (name == ":path") {
      if (have_path_) return fail(H2FieldError::kDuplicatePseudo);
      have_path_ = true;
      if (value.empty() || !all(value, kTarget)) return fail(H2FieldError::kBadPath);
      if (value != "*" && value[0] != '/') return fail(H2FieldError::kBadPath);
      const size_t q = value.find('?');
      r.path.assign(value.substr(0, q));
      if (q != std::string_view::npos) r.query.assign(value.substr(q + 1));
    } else if (name == ":authority") {
      if (have_authority_) return fail(H2FieldError::kDuplicatePseudo);
      have_authority_ = true;
      if (!valid_authority(value)) return fail(H2FieldError::kBadAuthority);
      r.authority.assign(value);
    } else if (name == ":protocol" && extended_connect_) {
      if (protocol_) return fail(H2FieldError::kDuplicatePseudo);
      if (value.empty() || !all(value, kTchar)) return fail(H2FieldError::kBadProtocol);
      protocol_.emplace();
      append_lower(*protocol_, value);
    } else {
      return fail(H2FieldError::kBadPseudo);
    }
    return H2FieldError::kNone;
  }
  regular_seen_ = true;
  if (!all(name, kTchar)) return fail(H2FieldError::kBadName);
  if (has_upper(name)) return fail(H2FieldError::kUpperCaseName);
  if (!valid_value(value)) return fail(H2FieldError::kBadValue);
  if (connection_specific(name)) return fail(H2FieldError::kConnectionSpecific);
  switch (name.size()) {
    case 2:
      if (name == "te") {
        if (!iequals(value, "trailers")) return fail(H2FieldError::kBadTe);
        return H2FieldError::kNone;  // hop-by-hop in HTTP/1.1: not forwarded
      }
      break;
    case 4:
      if (name == "host") {
        if (host_ || !valid_authority(value)) return fail(H2FieldError::kBadAuthority);
        host_.emplace(value);
        return H2FieldError::kNone;
      }
      break;
    case 6:
      if (name == "cookie") {
        // RFC 9113 §8.2.3: split cookies are joined for HTTP/1.1.
        if (!cookie_.empty()) cookie_.append("; ");
        cookie_.append(value);
        return H2FieldError::kNone;
      }
      if (name == "expect") {
        if (iequals(value, "100-continue")) r.expect_continue = true;
        return H2FieldError::kNone;  // the proxy answers Expect itself
      }
      break;
    case 14:
      if (name == "content-length") {
        uint64_t n = 0;
        auto res = std::from_chars(value.data(), value.data() + value.size(), n);
        if (value.empty() || res.ec != std::errc() || res.ptr != value.data() + value.size() ||
            (r.content_length && *r.content_length != n)) {
          return fail(H2FieldError::kBadContentLength);
        }
        r.content_length = n;
        return H2FieldError::kNone;
      }
      break;
    default:
      break;
  }
  r.headers.add(name, value);
  return H2FieldError::kNone;
}

H2FieldError H2RequestBuilder::finish(bool end_stream) {
  if (error_ != H2FieldError::kNone) return error_;
  RequestHeaders& r = *out_;
  if (protocol_ && !connect_) return fail(H2FieldError::kBadProtocol);
  if (connect_) return finish_connect(end_stream);
  if (!have_method_ || !have_scheme_ || !have_path_) return fail(H2FieldError::kMissingPseudo);
  if (r.path == "*" && r.method != "OPTIONS") return fail(H2FieldError::kBadPath);
  if (have_authority_) {
    if (host_ && !iequals(*host_, r.authority)) return fail(H2FieldError::kHostMismatch);
  } else if (host_) {
    r.authority = std::move(*host_);
  } else {
    return fail(H2FieldError::kBadAuthority);
  }
  if (!cookie_.empty()) r.headers.add("cookie", cookie_);
  r.scheme = secure_ ? "https" : "http";
  r.http_minor = 1;
  if (end_stream && r.content_length && *r.content_length != 0) {
    return fail(H2FieldError::kBadContentLength);
  }
  r.has_body = !end_stream && !(r.content_length && *r.content_length == 0);
  if (!r.has_body) r.expect_continue = false;
  return H2FieldError::kNone;
}

H2FieldError H2RequestBuilder::finish_connect(bool end_stream) {
  RequestHeaders& r = *out_;
  // RFC 9113 §8.5: a plain CONNECT has :authority and no :scheme nor :path; RFC 8441 §4: an
  // extended one has all of them. The host field cannot stand in for :authority here.
  if (!have_authority_) return fail(H2FieldError::kConnect);
  if (host_ && !iequals(*host_, r.authority)) return fail(H2FieldError::kHostMismatch);
  if (protocol_) {
    if (!have_scheme_ || !have_path_) return fail(H2FieldError::kMissingPseudo);
    if (r.path == "*") return fail(H2FieldError::kBadPath);
    r.method.assign("GET");
    r.upgrade = std::move(*protocol_);
    protocol_.reset();
    // HTTP/2 WebSocket does not use these (RFC 8441 §5): never forwarded from a client.
    r.headers.remove("sec-websocket-key");
    r.headers.remove("sec-websocket-accept");
  } else if (have_scheme_ || have_path_) {
    return fail(H2FieldError::kConnect);
  }
  if (r.content_length) return fail(H2FieldError::kBadContentLength);
  (void)end_stream;  // the client may end its direction at once: the tunnel is then half-closed
  if (!cookie_.empty()) r.headers.add("cookie", cookie_);
  r.scheme = secure_ ? "https" : "http";
  r.http_minor = 1;
  r.has_body = false;
  r.expect_continue = false;
  return H2FieldError::kNone;
}

H2FieldError H2RequestBuilder::add_trailer(HeaderMap& out, std::string_view name,
                                           std::string_view value) {
  if (name.empty()) return H2FieldError::kBadName;
  if (name[0] == ':') return H2FieldError::kPseudoInTrailers;
  if (!all(name, kTchar)) return H2FieldError::kBadName;
  if (has_upper(name)) return H2FieldError::kUpperCaseName;
  if (!valid_value(value)) return H2FieldError::kBadValue;
  if (connection_specific(name)) return H2FieldError::kConnectionSpecific;
  if (forwardable_trailer(name)) out.add(name, value);
  return H2FieldError::kNone;
}

namespace {

// The connection-specific fields, content-length and te, in any case.
bool dropped_response_field(std::string_view name) {
  switch (name.size()) {
    case 2:
      return iequals(name, "te");
    case 7:
      return iequals(name, "upgrade");
    case 10:
      return iequals(name, "connection") || iequals(name, "keep-alive");
    case 14:
      return iequals(name, "content-length");
    case 16:
      return iequals(name, "proxy-connection");
    case 17:
      return iequals(name, "transfer-encoding");
    default:
      return false;
  }
}

// The arena is reserved for everything first (reserve_for), so that views stay valid.
void add_field(H2Fields& out, std::string_view name, std::string_view value, bool lower) {
  const size_t name_off = out.arena.size();
  if (lower) {
    append_lower(out.arena, name);
  } else {
    out.arena.append(name);
  }
  const size_t value_off = out.arena.size();
  out.arena.append(value);
  out.fields.push_back({std::string_view(out.arena.data() + name_off, name.size()),
                        std::string_view(out.arena.data() + value_off, value.size())});
}

void reserve_for(H2Fields& out, const HeaderMap& fields, size_t extra) {
  size_t n = extra;
  fields.for_each([&](std::string_view name, std::string_view v) { n += name.size() + v.size(); });
  out.arena.reserve(n);
  out.fields.reserve(fields.size() + 2);
}

}  // namespace

void encode_response(const ResponseHeaders& r, H2Fields& out) {
  out.clear();
  reserve_for(out, r.headers, 64);
  char status[8];
  auto res = std::to_chars(status, status + sizeof status, r.status);
  add_field(out, ":status", std::string_view(status, static_cast<size_t>(res.ptr - status)), false);
  r.headers.for_each([&](std::string_view n, std::string_view v) {
    if (n.empty() || n[0] == ':' || dropped_response_field(n)) return;
    add_field(out, n, v, true);
  });
  const bool no_body = r.status == 204 || (r.status >= 100 && r.status < 200);
  if (r.content_length && !no_body) {
    char len[24];
    auto lr = std::to_chars(len, len + sizeof len, *r.content_length);
    add_field(out, "content-length", std::string_view(len, static_cast<size_t>(lr.ptr - len)),
              false);
  }
}

void encode_trailers(const HeaderMap& trailers, H2Fields& out) {
  out.clear();
  reserve_for(out, trailers, 0);
  trailers.for_each([&](std::string_view n, std::string_view v) {
    if (n.empty() || n[0] == ':' || dropped_response_field(n)) return;
    add_field(out, n, v, true);
  });
}

// ---- Client side ------------------------------------------------------------------------------

void encode_request(const RequestHeaders& req, std::string_view target, bool tls, H2Fields& out) {
  out.clear();
  reserve_for(out, req.headers, 64 + req.method.size() + req.authority.size() + target.size());
  add_field(out, ":method", req.method, false);
  add_field(out, ":scheme", tls ? "https" : "http", false);
  add_field(out, ":authority", req.authority, false);
  add_field(out, ":path", target, false);
  req.headers.for_each([&](std::string_view n, std::string_view v) {
    if (n.empty() || n[0] == ':' || dropped_response_field(n)) return;
    if (n.size() == 4 && iequals(n, "host")) return;  // :authority carries it
    add_field(out, n, v, true);
  });
  add_field(out, "te", "trailers", false);
  if (req.has_body && req.content_length) {
    char len[24];
    auto lr = std::to_chars(len, len + sizeof len, *req.content_length);
    add_field(out, "content-length", std::string_view(len, static_cast<size_t>(lr.ptr - len)),
              false);
  }
}

void H2ResponseBuilder::start(ResponseHeaders& out, size_t max_bytes) {
  out.clear();
  out_ = &out;
  max_bytes_ = max_bytes;
  bytes_ = 0;
  status_ = 0;
  regular_seen_ = false;
  content_length_.reset();
  error_ = H2FieldError::kNone;
}

H2FieldError H2ResponseBuilder::add(std::string_view name, std::string_view value) {
  if (error_ != H2FieldError::kNone) return error_;
  bytes_ += name.size() + value.size() + 32;
  if (max_bytes_ != 0 && bytes_ > max_bytes_) return fail(H2FieldError::kTooLarge);
  if (!name.empty() && name[0] == ':') {
    if (regular_seen_) return fail(H2FieldError::kPseudoAfterRegular);
    if (name != ":status") return fail(H2FieldError::kBadPseudo);
    if (status_ != 0) return fail(H2FieldError::kDuplicatePseudo);
    if (value.size() != 3 || value[0] < '1' || value[0] > '5' || value[1] < '0' || value[1] > '9' ||
        value[2] < '0' || value[2] > '9') {
      return fail(H2FieldError::kBadPseudo);
    }
    status_ = (value[0] - '0') * 100 + (value[1] - '0') * 10 + (value[2] - '0');
    return H2FieldError::kNone;
  }
  regular_seen_ = true;
  if (name.empty() || !all(name, kTchar)) return fail(H2FieldError::kBadName);
  if (has_upper(name)) return fail(H2FieldError::kUpperCaseName);
  if (!valid_value(value)) return fail(H2FieldError::kBadValue);
  if (connection_specific(name)) return fail(H2FieldError::kConnectionSpecific);
  if (name == "te") return fail(H2FieldError::kConnectionSpecific);
  if (name == "content-length") {
    uint64_t v = 0;
    auto r = std::from_chars(value.data(), value.data() + value.size(), v);
    if (value.empty() || r.ec != std::errc() || r.ptr != value.data() + value.size() ||
        (content_length_ && *content_length_ != v)) {
      return fail(H2FieldError::kBadContentLength);
    }
    content_length_ = v;
    return H2FieldError::kNone;
  }
  out_->headers.add(name, value);
  return H2FieldError::kNone;
}

H2FieldError H2ResponseBuilder::finish(bool end_stream, bool head_request) {
  if (error_ != H2FieldError::kNone) return error_;
  if (status_ == 0) return fail(H2FieldError::kMissingPseudo);
  ResponseHeaders& r = *out_;
  r.status = status_;
  r.reason.clear();
  if (status_ < 200) {
    r.has_body = false;
    return H2FieldError::kNone;
  }
  const bool no_body = head_request || status_ == 204 || status_ == 304;
  if (no_body) {
    // The length of what a GET would have returned: a field, never framing.
    if (content_length_ && status_ != 204) {
      char len[24];
      auto lr = std::to_chars(len, len + sizeof len, *content_length_);
      r.headers.add("content-length", std::string_view(len, static_cast<size_t>(lr.ptr - len)));
    }
    r.has_body = false;
    return H2FieldError::kNone;
  }
  if (end_stream) {
    if (content_length_ && *content_length_ != 0) return fail(H2FieldError::kBadContentLength);
    // No body (a gRPC trailers-only response stays one HEADERS frame downstream); an HTTP/1.1
    // client sees Content-Length: 0.
    r.has_body = false;
    r.content_length = 0;
    return H2FieldError::kNone;
  }
  r.has_body = true;
  r.content_length = content_length_;
  return H2FieldError::kNone;
}

}  // namespace portico::proxy::http
