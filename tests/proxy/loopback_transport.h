// LoopbackTransport: an in-memory Transport for codec tests (h2o's loopback idea): the test feeds
// the bytes a client would send and reads what the server wrote, with no socket. Single thread
// (the test's io_context).
#pragma once

#include <asio.hpp>

#include <asio/experimental/as_tuple.hpp>

#include <memory>
#include <string>

#include "proxy/transport/transport.h"

namespace portico::proxy::testing {

class LoopbackTransport final : public transport::Transport {
 public:
  // The shared state the test keeps after the codec took ownership of the transport.
  struct Pipe {
    explicit Pipe(asio::io_context& io) : wake(io, asio::steady_timer::time_point::max()) {}
    std::string to_server;       // what the client sent, not yet read
    std::string to_client;       // what the server wrote
    bool client_closed = false;  // the client half-closed (EOF after to_server)
    bool client_reset = false;   // reads fail with connection_reset
    bool server_shut_write = false;
    bool server_closed = false;
    size_t reads = 0;  // read_some calls that returned data
    asio::steady_timer wake;

    void send(std::string_view bytes) {
      to_server.append(bytes);
      wake.cancel();
    }
    void close() {
      client_closed = true;
      wake.cancel();
    }
    void reset() {
      client_reset = true;
      wake.cancel();
    }
  };

  LoopbackTransport(asio::io_context& io, std::shared_ptr<Pipe> pipe)
      : pipe_(std::move(pipe)), socket_(io) {
    info_.peer_address = "192.0.2.1";
    info_.peer_port = 40000;
    info_.local_address = "127.0.0.1";
    info_.local_port = 8080;
  }

  asio::awaitable<transport::IoResult> read_some(asio::mutable_buffer buf) override {
    const uint64_t gen = cancel_gen_;
    for (;;) {
      if (pipe_->server_closed) co_return transport::IoResult{asio::error::bad_descriptor, 0};
      if (gen != cancel_gen_) co_return transport::IoResult{asio::error::operation_aborted, 0};
      if (pipe_->client_reset) co_return transport::IoResult{asio::error::connection_reset, 0};
      if (!pipe_->to_server.empty()) {
        size_t n = std::min(buf.size(), pipe_->to_server.size());
        std::memcpy(buf.data(), pipe_->to_server.data(), n);
        pipe_->to_server.erase(0, n);
        ++pipe_->reads;
        co_return transport::IoResult{asio::error_code(), n};
      }
      if (pipe_->client_closed) co_return transport::IoResult{asio::error::eof, 0};
      pipe_->wake.expires_at(asio::steady_timer::time_point::max());
      co_await pipe_->wake.async_wait(asio::experimental::as_tuple(asio::use_awaitable));
    }
  }

  asio::awaitable<transport::IoResult> write(std::span<const asio::const_buffer> bufs) override {
    if (pipe_->server_closed || pipe_->client_reset) {
      co_return transport::IoResult{asio::error::broken_pipe, 0};
    }
    size_t n = 0;
    for (const auto& b : bufs) {
      pipe_->to_client.append(static_cast<const char*>(b.data()), b.size());
      n += b.size();
    }
    co_return transport::IoResult{asio::error_code(), n};
  }

  asio::awaitable<asio::error_code> shutdown_write() override {
    pipe_->server_shut_write = true;
    co_return asio::error_code();
  }
  void cancel() override {
    ++cancel_gen_;
    pipe_->wake.cancel();
  }
  void close() override {
    pipe_->server_closed = true;
    pipe_->wake.cancel();
  }
  bool is_open() const override { return !pipe_->server_closed; }
  const transport::ConnectionInfo& info() const override { return info_; }
  asio::ip::tcp::socket& lowest_layer() override { return socket_; }

 private:
  std::shared_ptr<Pipe> pipe_;
  asio::ip::tcp::socket socket_;
  transport::ConnectionInfo info_;
  uint64_t cancel_gen_ = 0;
};

}  // namespace portico::proxy::testing
