#include "proxy/admin/admin.h"

#include <sys/socket.h>
#include <unistd.h>

#include <asio/experimental/as_tuple.hpp>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "proxy/buffer.h"
#include "proxy/http/h1_parser.h"

namespace portico::proxy::admin {

const char* reason_phrase(int status) {
  switch (status) {
    case 200:
      return "OK";
    case 400:
      return "Bad Request";
    case 401:
      return "Unauthorized";
    case 403:
      return "Forbidden";
    case 404:
      return "Not Found";
    case 405:
      return "Method Not Allowed";
    case 409:
      return "Conflict";
    case 411:
      return "Length Required";
    case 413:
      return "Payload Too Large";
    case 422:
      return "Unprocessable Entity";
    case 501:
      return "Not Implemented";
    case 503:
      return "Service Unavailable";
    default:
      return "Status";
  }
}

namespace {

constexpr auto use_nothrow = asio::experimental::as_tuple(asio::use_awaitable);

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
    } else if (head.body == http::BodyKind::kChunked) {
      resp = {411, "text/plain", "send the request body with a Content-Length\n"};
    } else if (head.body == http::BodyKind::kContentLength && head.content_length > kMaxBody) {
      resp = {413, "text/plain",
              "request body larger than " + std::to_string(kMaxBody >> 20) + " MiB\n"};
    } else {
      keep = head.keep_alive;
      // Copied: reading the body may move the buffer the head's views point into.
      const std::string method(head.method), path(head.path), query(head.query);
      std::string authorization;
      if (const auto* h = head.find("authorization")) authorization = std::string(h->value);
      std::string body;
      const size_t length = head.body == http::BodyKind::kContentLength
                                ? static_cast<size_t>(head.content_length)
                                : 0;
      in.consume(head.head_bytes);
      const size_t buffered = std::min(length, in.size());
      body.assign(in.view().substr(0, buffered));
      in.consume(buffered);
      while (body.size() < length) {
        const size_t at = body.size();
        body.resize(std::min(length, at + 65536));
        auto [ec, n] = co_await socket.async_read_some(
            asio::buffer(body.data() + at, body.size() - at), use_nothrow);
        if (ec || n == 0) co_return;
        body.resize(at + n);
      }
      resp = handler(Request{method, path, query, authorization, body});
    }
    std::string out = "HTTP/1.1 " + std::to_string(resp.status) + " " + reason_phrase(resp.status) +
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
