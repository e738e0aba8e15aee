#include "proxy/transport/tcp.h"

#include <asio/experimental/as_tuple.hpp>

namespace portico::proxy::transport {

namespace {
constexpr auto use_nothrow = asio::experimental::as_tuple(asio::use_awaitable);
}

TcpTransport::TcpTransport(asio::ip::tcp::socket socket) : socket_(std::move(socket)) {
  asio::error_code ec;
  auto remote = socket_.remote_endpoint(ec);
  if (!ec) {
    info_.peer_address = remote.address().to_string();
    info_.peer_port = remote.port();
  }
  auto local = socket_.local_endpoint(ec);
  if (!ec) {
    info_.local_address = local.address().to_string();
    info_.local_port = local.port();
  }
}

TcpTransport::~TcpTransport() {
  close();
}

// read_some and write are not coroutines: they hand back asio's awaitable for the operation
// (no frame of ours per read or write). A stream read of 0 bytes is reported by asio as eof.
asio::awaitable<IoResult> TcpTransport::read_some(asio::mutable_buffer buf) {
  return socket_.async_read_some(buf, use_nothrow);
}

asio::awaitable<asio::error_code> TcpTransport::wait_readable() {
  auto [ec] = co_await socket_.async_wait(asio::ip::tcp::socket::wait_read, use_nothrow);
  co_return ec;
}

asio::awaitable<IoResult> TcpTransport::write(std::span<const asio::const_buffer> bufs) {
  return asio::async_write(socket_, bufs, use_nothrow);
}

asio::awaitable<asio::error_code> TcpTransport::shutdown_write() {
  asio::error_code ec;
  socket_.shutdown(asio::ip::tcp::socket::shutdown_send, ec);
  co_return ec;
}

void TcpTransport::cancel() {
  asio::error_code ignored;
  socket_.cancel(ignored);
}

void TcpTransport::close() {
  if (!socket_.is_open()) return;
  asio::error_code ignored;
  socket_.close(ignored);
}

}  // namespace portico::proxy::transport
