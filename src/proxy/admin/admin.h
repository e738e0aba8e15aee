// Admin listener: a small HTTP/1.1 server for operators and the CLI (/ready, /stats, /config_dump,
// /resources; POST /v1/apply and DELETE /v1/resources/... where the caller handles them). Runs on
// the control thread's io_context; handlers run there too, so they may read control-plane state
// without locks. Bound to 127.0.0.1 by default: it is not for the internet.
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

// A request as the handler sees it; the views live until the handler returns.
struct Request {
  std::string_view method;
  std::string_view path;
  std::string_view query;
  std::string_view authorization;  // the Authorization header's value, or empty
  std::string_view body;           // with Content-Length only, at most kMaxBody bytes
};

// The largest request body the admin listener reads (`portico apply`); a larger one is answered
// 413, a chunked one 411.
inline constexpr size_t kMaxBody = 4 * 1024 * 1024;

using Handler = std::function<Response(const Request& request)>;

// The reason phrase of the statuses the admin and REST APIs answer ("Status" for the others).
const char* reason_phrase(int status);

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
