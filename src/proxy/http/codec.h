// The interface between a server codec (HTTP/1.1 today; HTTP/2 next) and the stream handler that
// runs filters, routing and the upstream exchange. A codec turns a Transport's bytes into streams;
// each stream is one request/response exchange. Worker thread only.
//
// Designed for multiplexing: a connection may carry many ServerStreams at once (HTTP/2), each
// handled by its own StreamHandler coroutine. Request bodies are *pulled* (read_body): a codec
// reads from the socket (HTTP/1.1) or opens the peer's flow-control window (HTTP/2, WINDOW_UPDATE
// as pieces are consumed) only when the handler asks, which is per-stream back-pressure. Response
// sends complete when the bytes were handed to the transport (HTTP/1.1) or fitted in the stream's
// send window (HTTP/2). One read_body and one send may be outstanding at a time per stream.
#pragma once

#include <asio.hpp>

#include <cstdint>
#include <string_view>

#include "proxy/http/forwarded.h"
#include "proxy/http/message.h"
#include "proxy/transport/transport.h"

namespace portico::proxy::http {

enum class BodyStatus : uint8_t {
  kData,       // `data` holds the next bytes (valid until the next read_body)
  kEnd,        // the body is complete (trailer fields, if any, in `trailers`)
  kAborted,    // the peer went away or reset the stream, or the read was cancelled
  kMalformed,  // the body's framing is invalid (HTTP/1.1 chunked coding)
};

struct BodyPiece {
  BodyStatus status = BodyStatus::kEnd;
  std::string_view data = {};
  // With kEnd: the trailer fields received, owned by the stream and valid until it ends (filters
  // may change them), or nullptr when there were none. Only fields that may be forwarded are here
  // (forwardable_trailer in h1_parser.h): never framing, routing, auth or Content-* fields.
  HeaderMap* trailers = nullptr;
};

class ServerStream {
 public:
  virtual ~ServerStream() = default;

  virtual uint32_t id() const = 0;
  // The request head, owned by the stream; filters and the router may change it.
  virtual RequestHeaders& request() = 0;
  virtual const transport::ConnectionInfo& connection() const = 0;
  // The connection's forwarding-header cache (ForwardingCache), or null when the codec keeps none.
  virtual ForwardingCache* forwarding_cache() { return nullptr; }

  // The next piece of the request body. After kEnd, kAborted or kMalformed it keeps returning
  // the same status.
  virtual asio::awaitable<BodyPiece> read_body() = 0;
  // Request body bytes the codec already holds (HTTP/1.1: read with the head); a prefix of what
  // read_body will return. Used to decide whether a request can be replayed.
  virtual std::string_view buffered_body() const = 0;
  virtual bool request_complete() const = 0;

  // Sends "100 Continue" if the client waits for it (Expect: 100-continue) and it was not sent.
  virtual asio::awaitable<bool> send_continue() = 0;
  // The response. `end_stream`: no body follows. False when the client is gone. A codec may hold
  // the head back to send it with the first body bytes; flush() sends what is held.
  virtual asio::awaitable<bool> send_headers(ResponseHeaders& headers, bool end_stream) = 0;
  virtual asio::awaitable<bool> flush() = 0;
  virtual asio::awaitable<bool> send_body(std::string_view data, bool end_stream) = 0;
  virtual asio::awaitable<bool> send_trailers(const HeaderMap& trailers) = 0;
  virtual bool response_started() const = 0;

  // Cancels a pending read_body, and makes every later one return kAborted (deadlines, an early
  // complete response). The stream can still send.
  virtual void stop_reading() = 0;
  // Aborts the stream: HTTP/1.1 closes the connection (never a final chunk, so a truncated body
  // is visibly truncated); HTTP/2 sends RST_STREAM. Pending operations complete with an error.
  virtual void reset() = 0;
  // Asks the codec not to keep the connection after this stream (HTTP/1.1 "Connection: close").
  virtual void close_after() = 0;

  // ---- Tunnel mode (WebSocket, CONNECT) -------------------------------------------------------
  // A stream whose request asked for a tunnel (HTTP/1.1: `Upgrade: websocket`, or CONNECT) becomes
  // a byte pipe once the handler accepts it: accept_tunnel sends the response head that says so,
  // then only read_tunnel / write_tunnel / end_tunnel_write are used (never read_body, send_body,
  // send_trailers). Call order: accept_tunnel once, after which one read_tunnel and one
  // write_tunnel may be outstanding at a time; end_tunnel_write at most once, after the last
  // write_tunnel. The stream ends when the handler returns; the tunnel's bytes are never framed
  // by the handler.
  //   HTTP/1.1: `headers.status` is 101 (the codec adds `Connection: Upgrade` and `Upgrade:` with
  //   the request's protocol) or 2xx for CONNECT (no framing fields); then the connection's raw
  //   bytes both ways, half-close with shutdown(SHUT_WR) (TLS: close_notify), and the connection
  //   is never used for another request.
  //   HTTP/2 (to come): the head is :status 200 (RFC 8441 extended CONNECT answers 200 where
  //   HTTP/1.1 answers 101), tunnel bytes are DATA frames under the stream's flow control,
  //   end_tunnel_write is END_STREAM, and reset() is RST_STREAM.
  //
  // The defaults are a codec without tunnel mode: it refuses (accept_tunnel is false, so the
  // handler never tunnels and the stream ends without a response: the codec resets it).
  //
  // Sends the accepting head; false when the client is gone (or tunnels are not supported). The
  // codec may rewrite `headers` to what the client was sent (HTTP/2: :status 200 for an upstream's
  // 101; 502 when that 101 does not answer the codec's Sec-WebSocket-Key, and then false).
  virtual asio::awaitable<bool> accept_tunnel(ResponseHeaders& headers) {
    (void)headers;
    co_return false;
  }
  // The client's next bytes: kData (valid until the next read_tunnel), kEnd when the client ended
  // its direction (half-close: writing may go on), kAborted on an error, a reset or stop_reading.
  virtual asio::awaitable<BodyPiece> read_tunnel() {
    BodyPiece p;
    p.status = BodyStatus::kAborted;
    co_return p;
  }
  // Writes bytes to the client; false when it is gone.
  virtual asio::awaitable<bool> write_tunnel(std::string_view data) {
    (void)data;
    co_return false;
  }
  // Ends our direction toward the client (the client may still send).
  virtual asio::awaitable<bool> end_tunnel_write() { co_return false; }
};

}  // namespace portico::proxy::http
