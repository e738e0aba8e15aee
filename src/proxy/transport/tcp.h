// TcpTransport: a Transport over a plain TCP socket (downstream connections on plaintext listeners
// and upstream connections to clusters without TLS). Worker thread only.
#pragma once

#include <asio.hpp>

#include "proxy/transport/transport.h"

namespace portico::proxy::transport {

class TcpTransport final : public Transport {
 public:
  // Takes a connected socket; fills info() from its endpoints.
  explicit TcpTransport(asio::ip::tcp::socket socket);
  ~TcpTransport() override;

  asio::awaitable<IoResult> read_some(asio::mutable_buffer buf) override;
  asio::awaitable<asio::error_code> wait_readable() override;
  asio::awaitable<IoResult> write(std::span<const asio::const_buffer> bufs) override;
  asio::awaitable<IoResult> write_batched(std::span<const asio::const_buffer> bufs) override;
  asio::awaitable<asio::error_code> shutdown_write() override;
  void cancel() override;
  void close() override;
  bool is_open() const override { return socket_.is_open(); }
  const ConnectionInfo& info() const override { return info_; }
  asio::ip::tcp::socket& lowest_layer() override { return socket_; }

 private:
  // asio gathers at most this many buffers in one send (its buffer sequence adapter's limit).
  static constexpr size_t kMaxWriteBuffers = 64;
  asio::ip::tcp::socket socket_;
  ConnectionInfo info_;
};

}  // namespace portico::proxy::transport
