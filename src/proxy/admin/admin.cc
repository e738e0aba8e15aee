#include "proxy/admin/admin.h"

#include <sys/socket.h>
#include <unistd.h>

#include <asio/experimental/as_tuple.hpp>

#include <cerrno>
#include <cstring>

#include "proxy/buffer.h"
#include "proxy/http/h1_parser.h"

namespace portico::proxy::admin {

namespace {

constexpr auto use_nothrow = asio::experimental::as_tuple(asio::use_awaitable);

const char* reason(int status) {
  switch (status) {
    case 200:
      return "OK";
    case 400:
      return "Bad Request";
    case 404:
      return "Not Found";
    case 405:
      return "Method Not Allowed";
    case 503:
      return "Service Unavailable";
    default:
      return "Status";
  }
}

asio::awaitable<void> serve(asio::ip::tcp::socket socket, const Handler& handler) {
  Buffer in(4096, 64 * 1024);
  for (;;) {
    http::RequestHead head;
    http::ParseResult r;
    for (;;) {
      if (!in.empty()) {
        r = http::parse_request_head(in.view(), head);
        if (r.status != http::ParseStatus::kIncomplete) break;
      }
      auto [buf, cap] = in.prepare(1024);
      if (cap == 0) co_return;
      auto [ec, n] = co_await socket.async_read_some(asio::buffer(buf, cap), use_nothrow);
      if (ec || n == 0) co_return;
      in.commit(n);
    }
    Response resp;
    bool keep = false;
    if (r.status == http::ParseStatus::kError) {
      resp = {400, "text/plain", std::string(http::error_text(r.error)) + "\n"};
    } else if (head.body != http::BodyKind::kNone) {
      resp = {405, "text/plain", "the admin API takes no request bodies\n"};
    } else {
      keep = head.keep_alive;
      resp = handler(head.method, head.path, head.query);
      in.consume(head.head_bytes);
    }
    std::string out = "HTTP/1.1 " + std::to_string(resp.status) + " " + reason(resp.status) +
                      "\r\nContent-Type: " + resp.content_type +
                      "\r\nContent-Length: " + std::to_string(resp.body.size()) + "\r\n" +
                      (keep ? "" : "Connection: close\r\n") + "\r\n";
    std::array<asio::const_buffer, 2> bufs{asio::buffer(out), asio::buffer(resp.body)};
    auto [ec, n] = co_await asio::async_write(socket, bufs, use_nothrow);
    if (ec || !keep) co_return;
  }
}

asio::awaitable<void> accept_loop(asio::ip::tcp::acceptor& acceptor, const Handler& handler) {
  for (;;) {
    auto [ec, socket] = co_await acceptor.async_accept(use_nothrow);
    if (ec == asio::error::operation_aborted || !acceptor.is_open()) co_return;
    if (ec) continue;
    asio::co_spawn(acceptor.get_executor(), serve(std::move(socket), handler), asio::detached);
  }
}

}  // namespace

AdminServer::AdminServer(asio::io_context& io, Handler handler)
    : io_(io), handler_(std::move(handler)) {}

std::string AdminServer::listen(const std::string& address, uint16_t port) {
  asio::error_code ec;
  auto addr = asio::ip::make_address(address, ec);
  if (ec) return "invalid admin address " + address + ": " + ec.message();
  auto acc = std::make_unique<asio::ip::tcp::acceptor>(io_);
  asio::ip::tcp::endpoint ep(addr, port);
  acc->open(ep.protocol(), ec);
  if (!ec) acc->set_option(asio::ip::tcp::acceptor::reuse_address(true), ec);
  if (!ec) acc->bind(ep, ec);
  if (!ec) acc->listen(128, ec);
  if (ec) {
    return "cannot listen on " + address + ":" + std::to_string(port) + ": " + ec.message();
  }
  acceptor_ = std::move(acc);
  asio::co_spawn(io_, accept_loop(*acceptor_, handler_), asio::detached);
  return "";
}

std::string AdminServer::adopt(int fd) {
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0) {
    ::close(fd);
    return "admin socket: " + std::string(std::strerror(errno));
  }
  auto acc = std::make_unique<asio::ip::tcp::acceptor>(io_);
  asio::error_code ec;
  acc->assign(ss.ss_family == AF_INET6 ? asio::ip::tcp::v6() : asio::ip::tcp::v4(), fd, ec);
  if (ec) {
    ::close(fd);
    return "admin socket: " + ec.message();
  }
  acceptor_ = std::move(acc);
  asio::co_spawn(io_, accept_loop(*acceptor_, handler_), asio::detached);
  return "";
}

int AdminServer::native_handle() {
  return acceptor_ && acceptor_->is_open() ? acceptor_->native_handle() : -1;
}

uint16_t AdminServer::port() const {
  asio::error_code ec;
  return acceptor_ ? acceptor_->local_endpoint(ec).port() : 0;
}

void AdminServer::close() {
  if (!acceptor_) return;
  asio::error_code ignored;
  acceptor_->close(ignored);
}

}  // namespace portico::proxy::admin
