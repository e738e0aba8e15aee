// The HTTP/2 client codec (nghttp2) for Upstreams with useHttp2. One H2ClientConnection per
// upstream connection, kept by its Endpoint (Endpoint::h2) and shared by many H2ClientStreams (one
// per request attempt) up to a cap of concurrent streams: the smaller of the peer's
// SETTINGS_MAX_CONCURRENT_STREAMS and ours (http2ProtocolOptions.maxConcurrentStreams, 100).
//
// Flow control is back-pressure both ways: a request body piece is handed to nghttp2 only as the
// stream's send window allows (send_body waits), and response DATA is acknowledged (WINDOW_UPDATE)
// only once the stream handler has taken it (read_body), so a slow client stalls its own upstream
// stream and at most one stream window is buffered per stream. The connection window is returned
// as DATA arrives (each stream is bounded by its own window already).
//
// GOAWAY from the upstream: the connection takes no new stream; streams above its last-stream-id
// end as kRefused (not processed: safe to send again). cancel() resets the stream (RST_STREAM
// CANCEL). Worker thread only; nothing locks.
#pragma once

#include <asio.hpp>

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "proxy/http/codec.h"
#include "proxy/http/h2_fields.h"
#include "proxy/http/message.h"
#include "proxy/signal.h"
#include "proxy/transport/transport.h"
#include "proxy/upstream/h1_client.h"

struct nghttp2_session;

namespace portico::proxy::upstream {

class Cluster;
class H2ClientStream;

struct H2ClientSettings {
  uint32_t max_streams = 100;             // our cap of concurrent streams per connection
  uint32_t stream_window = 65535;         // SETTINGS_INITIAL_WINDOW_SIZE we announce
  uint32_t connection_window = 1 << 20;   // the connection's receive window
  uint32_t max_header_bytes = 64 * 1024;  // a response header list larger than this is refused
};

class H2ClientConnection : public std::enable_shared_from_this<H2ClientConnection> {
 public:
  // `cluster` receives the counters and the connection gauges (detach() when it goes first).
  H2ClientConnection(asio::io_context& io, std::unique_ptr<transport::Transport> t,
                     const H2ClientSettings& settings, Cluster* cluster);
  ~H2ClientConnection();
  H2ClientConnection(const H2ClientConnection&) = delete;
  H2ClientConnection& operator=(const H2ClientConnection&) = delete;

  // Creates the session, queues the preface and SETTINGS, starts the reader and the writer.
  // False when the session cannot be made (the connection is then closed).
  bool start();
  // Whether one more stream may start now: alive, no GOAWAY (either way), under the cap.
  bool available() const;
  bool dead() const { return dead_; }
  size_t streams() const { return streams_.size(); }
  Clock::time_point idle_since() const { return idle_since_; }
  // Graceful end: GOAWAY, no new stream; the connection closes when its last stream ended.
  void shutdown();
  // The cluster is gone: no more counters or gauges through it.
  void detach() { cluster_ = nullptr; }

 private:
  friend class H2ClientStream;
  friend struct H2ClientCallbacks;

  asio::awaitable<void> reader(std::shared_ptr<H2ClientConnection> self);
  asio::awaitable<void> writer(std::shared_ptr<H2ClientConnection> self);
  void kick() { write_ev_.notify(); }
  void recv(const uint8_t* data, size_t n);
  // The connection is over (I/O error, peer closed, protocol error): every stream fails.
  void fail();
  void finish_if_idle();
  void attach(H2ClientStream* s) { streams_.push_back(s); }
  void detach_stream(H2ClientStream* s);
  H2ClientStream* stream(int32_t id) const;
  uint32_t cap() const;

  asio::io_context& io_;
  std::unique_ptr<transport::Transport> t_;
  H2ClientSettings settings_;
  Cluster* cluster_;
  nghttp2_session* session_ = nullptr;
  std::vector<H2ClientStream*> streams_;
  std::string wbuf_;
  Signal write_ev_;
  Clock::time_point idle_since_;
  int32_t goaway_last_id_ = -1;  // from the peer's GOAWAY (-1: none)
  bool goaway_ = false;          // the peer sent GOAWAY
  bool shutting_down_ = false;   // we asked for a graceful end
  bool dead_ = false;            // no more I/O
  bool closed_counted_ = false;
};

class H2ClientStream {
 public:
  // `response` receives the response head (read_head's result).
  H2ClientStream(std::shared_ptr<H2ClientConnection> c, http::ResponseHeaders& response);
  ~H2ClientStream();
  H2ClientStream(const H2ClientStream&) = delete;
  H2ClientStream& operator=(const H2ClientStream&) = delete;

  // Submits the request HEADERS (translated per RFC 9113, http::encode_request); a body follows
  // unless `end_stream`. False when the connection cannot take the stream now (refused(): try
  // another connection; nothing was sent).
  bool start(const http::RequestHeaders& req, std::string_view target, bool tls, bool end_stream);
  // After start(): the held body (`held`) with the end of the request, or nothing.
  asio::awaitable<bool> send_head(std::string_view held, bool held_body);
  // One piece of the request body (`end`: the last). Returns once nghttp2 took all of it into
  // DATA frames (the stream's send window: back-pressure), false when the stream ended.
  asio::awaitable<bool> send_body(std::string_view data, bool end);
  // Ends the request body with a trailer section.
  asio::awaitable<bool> send_trailers(const http::HeaderMap& trailers);
  // Waits for the final response head (1xx skipped).
  asio::awaitable<HeadStatus> read_head();
  // The next piece of the response body (valid until the next call, which acknowledges it to
  // the peer); kEnd carries the response trailers when there were any.
  asio::awaitable<http::BodyPiece> read_body();
  // RST_STREAM(CANCEL) unless the stream already ended; pending and later operations fail.
  void cancel();
  bool refused() const { return refused_; }
  bool body_buffered() const { return !in_.empty() || remote_end_; }
  bool response_complete() const { return remote_end_ && in_.empty(); }
  int32_t id() const { return id_; }

 private:
  friend class H2ClientConnection;
  friend struct H2ClientCallbacks;
  bool usable() const { return !closed_ && !cancelled_ && !conn_->dead_; }
  asio::awaitable<bool> wait_taken();
  void wake() {
    read_ev_.notify();
    send_ev_.notify();
  }
  void rst(uint32_t code);

  std::shared_ptr<H2ClientConnection> conn_;
  http::ResponseHeaders& response_;
  int32_t id_ = -1;
  bool head_request_ = false;
  // Response.
  http::H2ResponseBuilder builder_;
  bool in_trailers_ = false;  // the HEADERS being received is the trailer section
  bool head_done_ = false;    // the final head arrived
  bool got_frame_ = false;    // any response frame arrived
  bool invalid_ = false;      // the response broke a rule: reset
  bool remote_end_ = false;   // END_STREAM received
  bool refused_ = false;      // REFUSED_STREAM, above a GOAWAY's last id, or never sent
  bool closed_ = false;       // nghttp2 closed the stream (or the connection died)
  bool reset_by_peer_ = false;
  bool cancelled_ = false;
  bool rst_sent_ = false;
  std::string in_;   // DATA received, not yet handed out
  std::string out_;  // the piece read_body handed out last
  http::HeaderMap trailers_;
  Signal read_ev_;
  // Request.
  http::H2Fields fields_;
  std::string_view send_view_;
  bool send_end_ = false;
  bool send_trailers_ = false;
  bool body_done_ = false;  // the end of the request was taken by nghttp2
  Signal send_ev_;
};

}  // namespace portico::proxy::upstream
