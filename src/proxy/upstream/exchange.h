// An upstream exchange: what the stream handler (http/stream.cc) talks to, whichever codec carries
// it — an H1ClientStream on a pooled HTTP/1.1 connection or an H2ClientStream on a shared HTTP/2
// connection. A tagged pair of pointers, not an interface: each operation is one predictable
// branch and forwards the codec's own awaitable (no extra coroutine frame, allocation or virtual
// call per body piece), so the HTTP/1.1 path costs what it did. Tunnels (CONNECT, WebSocket) are
// HTTP/1.1 only: h1() gives the codec for them.
#pragma once

#include <asio.hpp>

#include <span>
#include <string_view>

#include "proxy/upstream/h1_client.h"
#include "proxy/upstream/h2_client.h"

namespace portico::proxy::upstream {

class Exchange {
 public:
  explicit Exchange(H1ClientStream& s) : h1_(&s) {}
  explicit Exchange(H2ClientStream& s) : h2_(&s) {}

  bool http2() const { return h2_ != nullptr; }
  H1ClientStream* h1() { return h1_; }

  // The request head (HTTP/1.1: `bufs`, the encoded head and a held body, in one write; HTTP/2:
  // the HEADERS went out at H2ClientStream::start, the held body `held` follows with the end).
  asio::awaitable<bool> send_head(std::span<const asio::const_buffer> bufs, std::string_view held,
                                  bool held_body) {
    return h2_ ? h2_->send_head(held, held_body) : h1_->write(bufs);
  }
  asio::awaitable<bool> send_body(std::string_view data, bool end, bool chunked) {
    return h2_ ? h2_->send_body(data, end) : h1_->send_body(data, end, chunked);
  }
  // Whether request trailers can go upstream (HTTP/2 always; HTTP/1.1 with a chunked body).
  bool carries_trailers(bool chunked) const { return h2_ != nullptr || chunked; }
  asio::awaitable<bool> send_trailers(const http::HeaderMap& trailers) {
    return h2_ ? h2_->send_trailers(trailers) : h1_->send_trailers(trailers);
  }
  // HTTP/2: the head lands in the ResponseHeaders given to the H2ClientStream (the same `out`).
  asio::awaitable<HeadStatus> read_head(http::ResponseHeaders& out, bool head_request,
                                        std::string_view upgrade = {}) {
    return h2_ ? h2_->read_head() : h1_->read_head(out, head_request, upgrade);
  }
  asio::awaitable<http::BodyPiece> read_body() { return h2_ ? h2_->read_body() : h1_->read_body(); }
  void cancel() {
    if (h2_) {
      h2_->cancel();
    } else {
      h1_->cancel();
    }
  }
  // HTTP/1.1: the connection may go back to the pool. HTTP/2 connections are never pooled per
  // request (the endpoint keeps them).
  bool reusable() const { return h1_ != nullptr && h1_->reusable(); }
  bool body_buffered() const { return h2_ ? h2_->body_buffered() : h1_->body_buffered(); }

 private:
  H1ClientStream* h1_ = nullptr;
  H2ClientStream* h2_ = nullptr;
};

}  // namespace portico::proxy::upstream
