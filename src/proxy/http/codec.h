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
  std::string_view data;
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
};

}  // namespace portico::proxy::http
