// A small blocking HTTP/1.1 client for the control plane's clients of Consul, Vault, Nomad, etcd
// and Kubernetes. Each source runs its client on its own thread (a blocking query parks that
// thread, never the control-plane loop); cancel() may be called from any other thread to unblock
// it. One keep-alive connection per Client, reopened when the peer closed it. Plain TCP (https is
// refused by parse_url until TLS lands here). Bounded: a status line and headers of at most 64 KiB,
// a body of at most Options::max_body.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/result.h"

namespace portico::control::http {

using Millis = std::chrono::milliseconds;

struct Url {
  std::string host;  // a name or an IP address (IPv6 without brackets)
  uint16_t port = 80;
  std::string
      path;  // the URL's path without a trailing '/', possibly empty ("http://h:1/v1" -> "/v1")
};
// "http://host[:port][/path]"; the default port is `default_port`.
Result<Url> parse_url(std::string_view url, uint16_t default_port);

struct Request {
  std::string method = "GET";
  std::string target = "/";  // path and query, already escaped
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
};

struct Response {
  int status = 0;
  std::vector<std::pair<std::string, std::string>> headers;  // names lower-cased
  std::string body;
  // The first value of the header, or nullptr.
  const std::string* header(std::string_view lower_name) const;
};

struct Options {
  Millis connect_timeout{2000};
  size_t max_body = 64 * 1024 * 1024;
};

class Client {
 public:
  Client(Url url, Options options = {});
  ~Client();
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  const Url& url() const { return url_; }

  // Sends the request and reads the whole response; `timeout` bounds the whole exchange (a
  // blocking query passes its wait plus a margin). Host and Content-Length are added; a request
  // whose connection was closed by the peer while idle is sent again once on a new connection.
  Result<Response> send(const Request& request, Millis timeout);

  // A streamed response (etcd and Kubernetes watches): `on_head` gets the status and headers
  // (return false to stop); then `on_line` every complete line of the body (without its "\n"),
  // until the body ends, `on_line` returns false, a line exceeds max_body, nothing arrives for
  // `idle_timeout`, or cancel(). The connection is not reused afterwards.
  Result<int> stream_lines(const Request& request,
                           const std::function<bool(const Response& head)>& on_head,
                           const std::function<bool(std::string_view line)>& on_line,
                           Millis idle_timeout);

  // Any thread: makes the call in progress (and the next one, until reset_cancel) fail at once
  // with "cancelled".
  void cancel();
  void reset_cancel();

 private:
  Result<int> connect_socket(std::chrono::steady_clock::time_point deadline);
  Result<bool> write_all(std::string_view data, std::chrono::steady_clock::time_point deadline);
  // Reads more bytes into in_; 0 at end of stream.
  Result<size_t> read_some(std::chrono::steady_clock::time_point deadline);
  Result<Response> read_head(std::chrono::steady_clock::time_point deadline);
  Result<Response> exchange(const Request& request, std::chrono::steady_clock::time_point deadline,
                            bool* reused);
  void close_socket();
  std::string serialize(const Request& request) const;

  Url url_;
  Options options_;
  std::mutex mu_;  // guards fd_ and cancelled_ against cancel()
  int fd_ = -1;
  bool cancelled_ = false;
  std::string in_;  // bytes read and not consumed
};

// Percent-encodes everything but unreserved characters (RFC 3986); '/' kept when `keep_slash`.
std::string url_escape(std::string_view s, bool keep_slash = false);

}  // namespace portico::control::http
