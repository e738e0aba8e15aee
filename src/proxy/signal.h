// A one-waiter wake-up for coroutines on one worker thread: notify() before wait() is not lost.
// Used by the HTTP/2 codecs (proxy/http/h2_server.cc, proxy/upstream/h2_client.h).
//
// The waiter's completion handler is kept here and posted by notify(): no timer, so a wake-up
// costs no timer-queue insertion and removal (a steady_timer waiting "forever" and cancelled did).
// Waits are not cancellable through asio's cancellation slots (nothing cancels them: a waiter is
// woken by notify() or by the Signal's destruction).
#pragma once

#include <asio.hpp>

#include <optional>
#include <utility>

namespace portico::proxy {

class Signal {
 public:
  explicit Signal(asio::io_context& io) { (void)io; }
  explicit Signal(const asio::any_io_executor& ex) { (void)ex; }
  Signal(const Signal&) = delete;
  Signal& operator=(const Signal&) = delete;
  // A waiter still parked is resumed (as a cancelled timer would have resumed it).
  ~Signal() { wake(); }

  asio::awaitable<void> wait() {
    if (set_) {
      set_ = false;
      co_return;
    }
    co_await asio::async_initiate<const asio::use_awaitable_t<>&, void()>(
        [this](Handler handler) { waiter_.emplace(std::move(handler)); }, asio::use_awaitable);
  }
  void notify() {
    if (!wake()) set_ = true;
  }

 private:
  // asio's completion handler of a use_awaitable operation with signature void() (asio 1.22).
  using Handler = asio::detail::awaitable_handler<asio::any_io_executor>;

  bool wake() {
    if (!waiter_) return false;
    Handler h = std::move(*waiter_);
    waiter_.reset();
    asio::post(std::move(h));
    return true;
  }

  std::optional<Handler> waiter_;
  bool set_ = false;
};

}  // namespace portico::proxy
