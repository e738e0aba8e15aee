// Admin listener: a small HTTP/1.1 server for operators and the CLI (/ready, /stats, /config_dump,
// /resources). Runs on the control thread's io_context; handlers run there too, so they may read
// control-plane state without locks. Bound to 127.0.0.1 by default: it is not for the internet.
#pragma once

#include <asio.hpp>

#include <functional>
#include <memory>
#include <string>

namespace portico::proxy::admin {

struct Response {
  int status = 200;
  std::string content_type = "text/plain; charset=utf-8";
  std::string body;
};

using Handler =
    std::function<Response(std::string_view method, std::string_view path, std::string_view query)>;

class AdminServer {
 public:
  AdminServer(asio::io_context& io, Handler handler);
  // Binds and starts accepting. Returns an error message, or "" on success.
  std::string listen(const std::string& address, uint16_t port);
  // Serves an already listening socket (binary upgrade: the old process's admin socket). Takes
  // `fd` (closed on error). Returns an error message, or "" on success.
  std::string adopt(int fd);
  // The listening fd, or -1 (still ours: a binary upgrade sends a copy).
  int native_handle();
  uint16_t port() const;
  void close();

 private:
  asio::io_context& io_;
  Handler handler_;
  std::unique_ptr<asio::ip::tcp::acceptor> acceptor_;
};

}  // namespace portico::proxy::admin
