// A one-waiter wake-up for coroutines on one worker thread: notify() before wait() is not lost.
// Used by the HTTP/2 codecs (proxy/http/h2_server.cc, proxy/upstream/h2_client.h).
#pragma once

#include <asio.hpp>
#include <asio/experimental/as_tuple.hpp>

#include <chrono>

namespace portico::proxy {

class Signal {
 public:
  explicit Signal(asio::io_context& io) : t_(io, std::chrono::steady_clock::time_point::max()) {}
  explicit Signal(const asio::any_io_executor& ex)
      : t_(ex, std::chrono::steady_clock::time_point::max()) {}
  asio::awaitable<void> wait() {
    if (!set_) {
      t_.expires_at(std::chrono::steady_clock::time_point::max());
      co_await t_.async_wait(asio::experimental::as_tuple(asio::use_awaitable));
    }
    set_ = false;
  }
  void notify() {
    set_ = true;
    t_.cancel();
  }

 private:
  asio::steady_timer t_;
  bool set_ = false;
};

}  // namespace portico::proxy
