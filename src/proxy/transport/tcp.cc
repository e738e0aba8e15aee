#include "proxy/transport/tcp.h"

#include <asio/experimental/as_tuple.hpp>

#include <vector>

namespace portico::proxy::transport {

namespace {
constexpr auto use_nothrow = asio::experimental::as_tuple(asio::use_awaitable);
}

TcpTransport::TcpTransport(asio::ip::tcp::socket socket) : socket_(std::move(socket)) {
  asio::error_code ec;
  // write() tries a plain send first: it must answer would_block, never wait.
  socket_.non_blocking(true, ec);
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

// Most writes fit in the socket's send buffer: one send here completes them without a reactor
// operation, a trip through the worker's queue and a resumption (about 600 instructions a write,
// bench/load/instructions.sh). What the kernel did not take goes through asio's composed write.
asio::awaitable<IoResult> TcpTransport::write(std::span<const asio::const_buffer> bufs) {
  const size_t total = asio::buffer_size(bufs);
  asio::error_code ec;
  size_t done = bufs.size() <= kMaxWriteBuffers ? socket_.write_some(bufs, ec) : 0;
  if (!ec && done == total) co_return IoResult{ec, done};
  if (ec && ec != asio::error::would_block && ec != asio::error::try_again) {
    co_return IoResult{ec, 0};
  }
  // The rest of the buffers, from the first byte not sent.
  std::vector<asio::const_buffer> rest;
  rest.reserve(bufs.size());
  size_t skip = done;
  for (const auto& b : bufs) {
    if (skip >= b.size()) {
      skip -= b.size();
      continue;
    }
    rest.push_back(b + skip);
    skip = 0;
  }
  auto [wec, n] = co_await asio::async_write(socket_, rest, use_nothrow);
  co_return IoResult{wec, done + n};
}

// asio's composed write: its first send is made at once too, but its completion is queued.
asio::awaitable<IoResult> TcpTransport::write_batched(std::span<const asio::const_buffer> bufs) {
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
