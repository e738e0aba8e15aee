// The HTTP/1.1 client codec and the upstream request's error type. One H1ClientStream is one
// exchange on one pooled upstream Connection; it frames the request body (Content-Length or
// chunked) and decodes the response (Content-Length, chunked or until close). Worker thread only.
#pragma once

#include <asio.hpp>

#include <span>
#include <string>
#include <string_view>

#include "common/result.h"
#include "proxy/http/codec.h"
#include "proxy/http/h1_parser.h"
#include "proxy/http/message.h"
#include "proxy/stats/stats.h"
#include "proxy/upstream/cluster.h"

namespace portico::proxy::upstream {

// What failed in an upstream request (Pingora's shape: kind, source, whether the request went out
// and whether trying again is allowed).
enum class FailureKind : uint8_t {
  kNoHealthyHost,   // no endpoint to pick
  kOverflow,        // Cluster::max_connections reached, or a circuit breaker is full
  kUnsupported,     // a cluster setting this build cannot serve (upstream TLS, HTTP/2)
  kConnectFailed,   // refused, unreachable
  kConnectTimeout,  // the cluster's connect timeout passed
  kTimeout,         // the route timeout passed before the response head
  kReset,           // the connection closed or failed before a complete response
  kProtocol,        // the upstream's response is not valid HTTP/1.1
  kDownstream,      // the client went away or sent a broken body
};

struct UpstreamError {
  FailureKind kind = FailureKind::kReset;
  ErrorSource source = ErrorSource::kUpstream;
  bool request_sent = false;   // some request byte was handed to the connection
  bool retry_allowed = false;  // sending the request again cannot do harm
  std::string detail;

  int status() const;                 // 502, 503 or 504 for a reply to the client
  std::string message() const;        // one line for the reply body
  stats::UpstreamError stat() const;  // the counter it is counted in
};

// How reading a response head ended (both codecs). kRefused (HTTP/2 only): the upstream refused
// the stream or sent GOAWAY below it; the request was not processed and may go again anywhere.
enum class HeadStatus { kOk, kClosedBeforeResponse, kReset, kInvalid, kCancelled, kRefused };

class H1ClientStream {
 public:
  using HeadStatus = upstream::HeadStatus;
  explicit H1ClientStream(Connection& c) : c_(c) {}

  // The request head to send: request line, Host, the headers (already filtered and mutated by
  // the stream handler), and the framing (Content-Length when known and `chunked` is false,
  // Transfer-Encoding: chunked when a body of unknown length follows). A request whose `upgrade`
  // is set (the handler leaves it only on a WebSocket upgrade it tunnels) carries
  // `Connection: Upgrade` and `Upgrade: <upgrade>`. `out` is cleared first.
  static void encode_head(const http::RequestHeaders& req, std::string_view target, bool chunked,
                          std::string& out);

  // Writes `bufs` (the head and body bytes already framed). False on error (see failed()).
  asio::awaitable<bool> write(std::span<const asio::const_buffer> bufs);
  // Frames and writes one piece of the request body (`chunked`: as one chunk; `end`: the final
  // chunk after it).
  asio::awaitable<bool> send_body(std::string_view data, bool end, bool chunked);
  // Ends a chunked request body with these trailer fields (the final chunk, the fields, CRLF).
  asio::awaitable<bool> send_trailers(const http::HeaderMap& trailers);

  // Reads the response head into `out` (1xx interim responses are skipped).
  // kClosedBeforeResponse: the connection ended before any response byte (a stale pooled
  // connection). `upgrade`: the request asked to switch to that protocol; a 101 whose Upgrade
  // names it is then kOk (status 101, no body) and the connection carries the tunnel from here
  // (read_raw / write_raw). A 101 to any other request, or naming another protocol, is kInvalid:
  // an upstream may only switch to what was asked (RFC 9110 §15.2.2). A connection that carried
  // an upgrade request is never reusable, whatever the answer.
  asio::awaitable<HeadStatus> read_head(http::ResponseHeaders& out, bool head_request,
                                        std::string_view upgrade = {});
  // The next piece of the response body (a view into the connection's buffer, valid until the
  // next call). A close-delimited body ends only at a clean end of stream; a reset is kAborted.
  // The kEnd of a chunked body carries its forwardable trailer fields (owned by this object).
  asio::awaitable<http::BodyPiece> read_body();

  // Tunnel mode: raw bytes (bytes read after a 101 head come first). kData (valid until the next
  // call), kEnd at a clean end of stream (the upstream half-closed), kAborted on an error or a
  // cancel. The connection is then never pooled.
  asio::awaitable<http::BodyPiece> read_raw();
  asio::awaitable<bool> write_raw(std::string_view data);
  // Ends our direction (TCP: shutdown(SHUT_WR); TLS: close_notify); reading goes on.
  asio::awaitable<bool> shutdown_write();

  // Aborts the exchange: pending and later operations fail. The connection must then be closed.
  void cancel();
  bool cancelled() const { return cancelled_; }
  // True when the response was read completely and the connection may be pooled again.
  bool reusable() const { return complete_ && keep_alive_ && !cancelled_ && c_.buffer.empty(); }
  bool response_complete() const { return complete_; }
  // Response body bytes already read and not yet returned by read_body.
  bool body_buffered() const { return c_.buffer.size() > pending_consume_ || complete_; }

 private:
  Connection& c_;
  http::BodyKind body_ = http::BodyKind::kNone;
  uint64_t left_ = 0;
  http::ChunkedDecoder dec_;
  size_t pending_consume_ = 0;
  bool keep_alive_ = false;
  bool complete_ = false;
  bool cancelled_ = false;
  bool failed_ = false;
  std::string frame_;  // chunk framing of request body pieces
  http::HeaderMap trailers_;
  http::HeaderMap* trailers() { return trailers_.empty() ? nullptr : &trailers_; }
};

}  // namespace portico::proxy::upstream
