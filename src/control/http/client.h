// A small blocking HTTP/1.1 client for the control plane's clients of Consul, Vault, Nomad, etcd
// and Kubernetes. Each source runs its client on its own thread (a blocking query parks that
// thread, never the control-plane loop); cancel() may be called from any other thread to unblock
// it. One keep-alive connection per Client, reopened when the peer closed it. http:// is plain TCP;
// https:// is TLS (OpenSSL) verified against the system's trust store or a given CA, with the
// server's name checked, and optionally a client certificate (mTLS). Bounded: a status line and
// headers of at most 64 KiB, a body of at most Options::max_body.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/result.h"

struct ssl_ctx_st;
struct ssl_st;

namespace portico::control::http {

using Millis = std::chrono::milliseconds;

// How an https:// server is trusted and what this client presents (files are read once, by make).
struct TlsOptions {
  std::string ca_file;      // PEM CA bundle; empty (with ca_path empty): the system's trust store
  std::string ca_path;      // a directory of hashed CA certificates (c_rehash)
  std::string cert_file;    // client certificate chain (PEM), with key_file: mTLS
  std::string key_file;     // its private key (PEM)
  std::string server_name;  // SNI and the name the certificate must carry; empty: the URL's host
  bool insecure_skip_verify = false;  // no verification at all (tests, bootstrapping): logged
  bool operator==(const TlsOptions&) const = default;
  bool empty() const {
    return ca_file.empty() && ca_path.empty() && cert_file.empty() && key_file.empty() &&
           server_name.empty() && !insecure_skip_verify;
  }
};

// A loaded client TLS configuration (an SSL_CTX), shared by every Client made from one Url.
class TlsConfig {
 public:
  // Reads the files; an error names the file and OpenSSL's reason.
  static Result<std::shared_ptr<const TlsConfig>> make(const TlsOptions& options);
  ~TlsConfig();
  TlsConfig(const TlsConfig&) = delete;
  TlsConfig& operator=(const TlsConfig&) = delete;
  ssl_ctx_st* ctx() const { return ctx_; }
  const TlsOptions& options() const { return options_; }

 private:
  TlsConfig() = default;
  ssl_ctx_st* ctx_ = nullptr;
  TlsOptions options_;
};

struct Url {
  Url() = default;
  Url(std::string h, uint16_t p, std::string pa)
      : host(std::move(h)), port(p), path(std::move(pa)) {}
  std::string host;  // a name or an IP address (IPv6 without brackets)
  uint16_t port = 80;
  std::string
      path;  // the URL's path without a trailing '/', possibly empty ("http://h:1/v1" -> "/v1")
  bool https = false;
  // With https: how the server is verified; null: the system's trust store, the URL's host.
  std::shared_ptr<const TlsConfig> tls;
};
// Whether two URLs reach the same server the same way (TLS compared by its options: a Url made
// again from unchanged settings is the same, though its TlsConfig is a new object).
bool same_server(const Url& a, const Url& b);
// "http://host[:port][/path]" or "https://..."; the default port is `default_port` for both.
Result<Url> parse_url(std::string_view url, uint16_t default_port);
// parse_url, then (https only) the TLS configuration made from `tls`. TLS options given for an
// http:// URL are an error (they would silently not apply).
Result<Url> parse_url(std::string_view url, uint16_t default_port, const TlsOptions& tls);

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
  // After connect_socket, for https: the TLS handshake (SNI, chain and name verified).
  Result<bool> handshake(std::chrono::steady_clock::time_point deadline);
  // Waits until fd_ is readable (`write` false) or writable; false when `deadline` passed.
  bool wait_fd(bool write, std::chrono::steady_clock::time_point deadline);
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
  ssl_st* ssl_ = nullptr;  // with https, on fd_
  bool cancelled_ = false;
  std::string in_;  // bytes read and not consumed
};

// Percent-encodes everything but unreserved characters (RFC 3986); '/' kept when `keep_slash`.
std::string url_escape(std::string_view s, bool keep_slash = false);

}  // namespace portico::control::http
