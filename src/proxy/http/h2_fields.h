// HTTP/2 field translation (RFC 9113 §8): validates the fields of a request HEADERS block one at a
// time and builds the protocol-neutral RequestHeaders the router expects (Host from :authority,
// framing facts out of the field list, cookies joined), and encodes response heads and trailers as
// HTTP/2 fields (lower-case names, no connection-specific fields). Nothing here knows nghttp2, so
// that the rules are unit-tested on their own. One stream at a time, on its worker thread.
//
// The rule kept everywhere: nothing that HTTP/1.1 cannot carry safely (CR, LF, NUL or any other
// control byte in a value, a name that is not a lower-case token, a path byte outside the
// request-target grammar) ever reaches an upstream: such a request is malformed (a stream error).
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "proxy/http/message.h"

namespace portico::proxy::http {

enum class H2FieldError : uint8_t {
  kNone,
  kBadName,             // not a token, or empty
  kUpperCaseName,       // HTTP/2 names are lower case
  kBadValue,            // CR, LF, NUL, another control byte, or surrounding whitespace
  kConnectionSpecific,  // connection, keep-alive, proxy-connection, transfer-encoding, upgrade
  kBadTe,               // te other than "trailers"
  kBadPseudo,           // unknown pseudo-header (or :protocol: extended CONNECT is not served)
  kPseudoAfterRegular,  // a pseudo-header after a regular field
  kDuplicatePseudo,
  kPseudoInTrailers,
  kMissingPseudo,  // :method, :scheme or :path missing
  kBadMethod,
  kBadScheme,
  kBadPath,
  kBadAuthority,  // invalid, or neither :authority nor host
  kHostMismatch,  // host names another authority than :authority
  kBadContentLength,
  kConnect,   // CONNECT is not served (tunnels are not implemented)
  kTooLarge,  // the field list is larger than the limit (bytes or count)
};

const char* to_string(H2FieldError e);

// Builds one request head. start(), then add() per field in order, then finish(). The first error
// is sticky (later add() calls return it and change nothing) except kTooLarge, after which the
// remaining fields are only counted.
class H2RequestBuilder {
 public:
  // `max_bytes`: the HTTP/2 header list size (name + value + 32 per field, RFC 9113 §6.5.2);
  // `max_fields`: the field count.
  void start(RequestHeaders& out, bool secure, size_t max_bytes, size_t max_fields);
  H2FieldError add(std::string_view name, std::string_view value);
  // `end_stream`: the HEADERS frame ended the stream (no body follows).
  H2FieldError finish(bool end_stream);
  H2FieldError error() const { return error_; }

  // A field of a trailer section: validated like a request field; only fields that may be
  // forwarded (forwardable_trailer) are added to `out`.
  static H2FieldError add_trailer(HeaderMap& out, std::string_view name, std::string_view value);

 private:
  H2FieldError fail(H2FieldError e) {
    if (error_ == H2FieldError::kNone) error_ = e;
    return error_;
  }
  RequestHeaders* out_ = nullptr;
  size_t max_bytes_ = 0;
  size_t max_fields_ = 0;
  size_t bytes_ = 0;
  size_t fields_ = 0;
  H2FieldError error_ = H2FieldError::kNone;
  bool secure_ = false;
  bool regular_seen_ = false;
  bool have_method_ = false;
  bool have_scheme_ = false;
  bool have_path_ = false;
  bool have_authority_ = false;
  std::optional<std::string> host_;
  std::string cookie_;
};

// Encoded fields: views into `arena` (names lower-cased), ready to become nghttp2_nv.
struct H2Fields {
  struct Field {
    std::string_view name;
    std::string_view value;
  };
  std::vector<Field> fields;
  std::string arena;
  void clear() {
    fields.clear();
    arena.clear();
  }
};

// A response head: ":status", the fields (connection-specific ones and any content-length field
// dropped), then content-length from `r.content_length` where a body may exist.
void encode_response(const ResponseHeaders& r, H2Fields& out);
// A trailer section (connection-specific and pseudo fields dropped).
void encode_trailers(const HeaderMap& trailers, H2Fields& out);

// ---- The client side (HTTP/2 upstreams, proxy/upstream/h2_client.h) ----------------------------

// A request as HTTP/2 fields (RFC 9113 §8.3.1): :method, :scheme ("https" when `tls`), :authority
// (the Host), :path (`target`), then the end-to-end fields lower-cased without the
// connection-specific ones, host, te and content-length; then `te: trailers` (the proxy relays
// trailers: gRPC servers require it) and content-length when `req.content_length` is known and a
// body follows. CONNECT and upgrades are not encoded (tunnels need an HTTP/1.1 upstream).
void encode_request(const RequestHeaders& req, std::string_view target, bool tls, H2Fields& out);

// Builds the ResponseHeaders of an upstream's HTTP/2 response head, one field at a time:
// start(), add() per field, finish(). Nothing HTTP/1.1 cannot carry passes: a value with CR, LF,
// NUL or another control byte, a name that is not a lower-case token, a connection-specific
// field, an unknown or repeated pseudo-header, or a :status that is not three digits is an error
// (the response is malformed: the stream is reset). The first error is sticky.
class H2ResponseBuilder {
 public:
  void start(ResponseHeaders& out, size_t max_bytes);
  H2FieldError add(std::string_view name, std::string_view value);
  // `end_stream`: the HEADERS ended the stream. `head_request`: the request was HEAD (a
  // content-length is then relayed as a field, never as framing). A 1xx head is complete too:
  // status() tells the caller to wait for the final one.
  H2FieldError finish(bool end_stream, bool head_request);
  int status() const { return status_; }
  H2FieldError error() const { return error_; }

 private:
  H2FieldError fail(H2FieldError e) {
    if (error_ == H2FieldError::kNone) error_ = e;
    return error_;
  }
  ResponseHeaders* out_ = nullptr;
  size_t max_bytes_ = 0;
  size_t bytes_ = 0;
  int status_ = 0;
  bool regular_seen_ = false;
  std::optional<uint64_t> content_length_;
  H2FieldError error_ = H2FieldError::kNone;
};

}  // namespace portico::proxy::http
