// PrefixedTransport: a Transport that first returns bytes already read from the one it wraps, then
// reads from it. Protocol detection (a cleartext listener that also serves HTTP/2 with prior
// knowledge reads the first bytes to compare them with the client preface) hands what it read to
// the HTTP/1.1 codec this way. Worker thread only.
#pragma once

#include <algorithm>
#include <cstring>
#include <memory>
#include <string>

#include "proxy/transport/transport.h"

namespace portico::proxy::transport {

class PrefixedTransport final : public Transport {
 public:
  PrefixedTransport(std::unique_ptr<Transport> inner, std::string prefix)
      : inner_(std::move(inner)), prefix_(std::move(prefix)) {}

  asio::awaitable<IoResult> read_some(asio::mutable_buffer buf) override {
    if (off_ < prefix_.size()) {
      const size_t n = std::min(buf.size(), prefix_.size() - off_);
      std::memcpy(buf.data(), prefix_.data() + off_, n);
      off_ += n;
      if (off_ == prefix_.size()) std::string().swap(prefix_), off_ = 0;
      co_return IoResult{asio::error_code{}, n};
    }
    co_return co_await inner_->read_some(buf);
  }
  asio::awaitable<asio::error_code> wait_readable() override {
    if (off_ < prefix_.size()) co_return asio::error_code{};
    co_return co_await inner_->wait_readable();
  }
  asio::awaitable<IoResult> write(std::span<const asio::const_buffer> bufs) override {
    co_return co_await inner_->write(bufs);
  }
  asio::awaitable<IoResult> write_batched(std::span<const asio::const_buffer> bufs) override {
    co_return co_await inner_->write_batched(bufs);
  }
  asio::awaitable<asio::error_code> shutdown_write() override {
    co_return co_await inner_->shutdown_write();
  }
  void cancel() override { inner_->cancel(); }
  void close() override { inner_->close(); }
  bool is_open() const override { return inner_->is_open(); }
  const ConnectionInfo& info() const override { return inner_->info(); }
  asio::ip::tcp::socket& lowest_layer() override { return inner_->lowest_layer(); }

 private:
  std::unique_ptr<Transport> inner_;
  std::string prefix_;
  size_t off_ = 0;
};

}  // namespace portico::proxy::transport
