#include "control/http/client.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstring>

namespace portico::control::http {

namespace {

using Clock = std::chrono::steady_clock;
constexpr size_t kMaxHead = 64 * 1024;

Error unavailable(std::string msg) {
  return {ErrorKind::kUnavailable, ErrorSource::kUpstream, std::move(msg)};
}
Error timeout_error(std::string msg) {
  return {ErrorKind::kTimeout, ErrorSource::kUpstream, std::move(msg)};
}
Error protocol_error(std::string msg) {
  return {ErrorKind::kIo, ErrorSource::kUpstream, std::move(msg)};
}

int remaining_ms(Clock::time_point deadline) {
  auto left = std::chrono::duration_cast<Millis>(deadline - Clock::now()).count();
  if (left <= 0) return 0;
  return static_cast<int>(std::min<int64_t>(left, 1 << 30));
}

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out)
    c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t'))
    s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r'))
    s.remove_suffix(1);
  return s;
}

bool parse_size(std::string_view s, int base, uint64_t* out) {
  if (s.empty() || s.size() > 16) return false;
  uint64_t v = 0;
  for (char c : s) {
    int d;
    if (c >= '0' && c <= '9') {
      d = c - '0';
    } else if (base == 16 && c >= 'a' && c <= 'f') {
      d = c - 'a' + 10;
    } else if (base == 16 && c >= 'A' && c <= 'F') {
      d = c - 'A' + 10;
    } else {
      return false;
    }
    v = v * static_cast<uint64_t>(base) + static_cast<uint64_t>(d);
  }
  *out = v;
  return true;
}

}  // namespace

Result<Url> parse_url(std::string_view url, uint16_t default_port) {
  Url out;
  out.port = default_port;
  std::string_view rest = url;
  if (rest.substr(0, 8) == "https://") {
    out.https = true;
    rest.remove_prefix(8);
  } else if (rest.substr(0, 7) == "http://") {
    rest.remove_prefix(7);
  } else {
    return Error::invalid("\"" + std::string(url) + "\" is not an http:// or https:// URL");
  }
  size_t slash = rest.find('/');
  std::string_view authority = rest.substr(0, slash);
  if (slash != std::string_view::npos) {
    std::string_view path = rest.substr(slash);
    while (!path.empty() && path.back() == '/')
      path.remove_suffix(1);
    out.path = std::string(path);
  }
  if (authority.find('@') != std::string_view::npos ||
      authority.find('?') != std::string_view::npos ||
      authority.find('#') != std::string_view::npos) {
    return Error::invalid("\"" + std::string(url) +
                          "\": credentials, queries and fragments are not "
                          "accepted in a server address");
  }
  std::string_view host = authority;
  std::string_view port;
  if (!authority.empty() && authority.front() == '[') {
    size_t close = authority.find(']');
    if (close == std::string_view::npos)
      return Error::invalid("\"" + std::string(url) + "\": bad IPv6 address");
    host = authority.substr(1, close - 1);
    std::string_view after = authority.substr(close + 1);
    if (!after.empty()) {
      if (after.front() != ':') return Error::invalid("\"" + std::string(url) + "\": bad address");
      port = after.substr(1);
    }
  } else if (size_t colon = authority.rfind(':'); colon != std::string_view::npos) {
    host = authority.substr(0, colon);
    port = authority.substr(colon + 1);
  }
  if (host.empty()) return Error::invalid("\"" + std::string(url) + "\" names no host");
  out.host = std::string(host);
  if (!port.empty()) {
    uint64_t p = 0;
    if (!parse_size(port, 10, &p) || p == 0 || p > 65535) {
      return Error::invalid("\"" + std::string(url) + "\": bad port");
    }
    out.port = static_cast<uint16_t>(p);
  }
  return out;
}

bool same_server(const Url& a, const Url& b) {
  auto options = [](const Url& u) { return u.tls ? u.tls->options() : TlsOptions{}; };
  return a.host == b.host && a.port == b.port && a.path == b.path && a.https == b.https &&
         options(a) == options(b);
}

Result<Url> parse_url(std::string_view url, uint16_t default_port, const TlsOptions& tls) {
  auto out = parse_url(url, default_port);
  if (!out) return out;
  if (!out.value().https) {
    if (!tls.empty()) {
      return Error::invalid("TLS options are given but \"" + std::string(url) +
                            "\" is http://: write https://");
    }
    return out;
  }
  auto config = TlsConfig::make(tls);
  if (!config) return config.error();
  out.value().tls = std::move(config.value());
  return out;
}

namespace {

// OpenSSL's queued errors as one line (the queue is emptied).
std::string ssl_errors() {
  std::string out;
  while (unsigned long e = ERR_get_error()) {
    char buf[256];
    ERR_error_string_n(e, buf, sizeof buf);
    if (!out.empty()) out += "; ";
    out += buf;
  }
  return out.empty() ? "unknown TLS error" : out;
}

}  // namespace

Result<std::shared_ptr<const TlsConfig>> TlsConfig::make(const TlsOptions& options) {
  std::shared_ptr<TlsConfig> c(new TlsConfig());
  c->options_ = options;
  ERR_clear_error();
  c->ctx_ = SSL_CTX_new(TLS_client_method());
  if (!c->ctx_) return Error::invalid("cannot create a TLS context: " + ssl_errors());
  SSL_CTX_set_min_proto_version(c->ctx_, TLS1_2_VERSION);
  SSL_CTX_set_mode(c->ctx_, SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER | SSL_MODE_ENABLE_PARTIAL_WRITE);
  if (options.ca_file.empty() && options.ca_path.empty()) {
    if (SSL_CTX_set_default_verify_paths(c->ctx_) != 1) {
      return Error::invalid("cannot load the system's trust store: " + ssl_errors());
    }
  } else if (SSL_CTX_load_verify_locations(
                 c->ctx_, options.ca_file.empty() ? nullptr : options.ca_file.c_str(),
                 options.ca_path.empty() ? nullptr : options.ca_path.c_str()) != 1) {
    return Error::invalid(
        "cannot load the CA " +
        (options.ca_file.empty() ? "directory " + options.ca_path : "file " + options.ca_file) +
        ": " + ssl_errors());
  }
  if (options.cert_file.empty() != options.key_file.empty()) {
    return Error::invalid("a client certificate needs both a certificate file and a key file");
  }
  if (!options.cert_file.empty()) {
    if (SSL_CTX_use_certificate_chain_file(c->ctx_, options.cert_file.c_str()) != 1) {
      return Error::invalid("cannot load the client certificate " + options.cert_file + ": " +
                            ssl_errors());
    }
    if (SSL_CTX_use_PrivateKey_file(c->ctx_, options.key_file.c_str(), SSL_FILETYPE_PEM) != 1) {
      return Error::invalid("cannot load the client key " + options.key_file + ": " + ssl_errors());
    }
    if (SSL_CTX_check_private_key(c->ctx_) != 1) {
      return Error::invalid("the client key " + options.key_file + " does not match " +
                            options.cert_file);
    }
  }
  SSL_CTX_set_verify(c->ctx_, options.insecure_skip_verify ? SSL_VERIFY_NONE : SSL_VERIFY_PEER,
                     nullptr);
  return std::shared_ptr<const TlsConfig>(std::move(c));
}

TlsConfig::~TlsConfig() {
  if (ctx_) SSL_CTX_free(ctx_);
}

const std::string* Response::header(std::string_view lower_name) const {
  for (const auto& [name, value] : headers) {
    if (name == lower_name) return &value;
  }
  return nullptr;
}

Client::Client(Url url, Options options) : url_(std::move(url)), options_(options) {}

Client::~Client() {
  close_socket();
}

void Client::cancel() {
  std::lock_guard lock(mu_);
  cancelled_ = true;
  if (fd_ >= 0) ::shutdown(fd_, SHUT_RDWR);  // wakes a poll() in progress
}

void Client::reset_cancel() {
  std::lock_guard lock(mu_);
  cancelled_ = false;
}

void Client::close_socket() {
  std::lock_guard lock(mu_);
  if (ssl_) SSL_free(ssl_);
  ssl_ = nullptr;
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
  in_.clear();
}

Result<int> Client::connect_socket(Clock::time_point deadline) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  std::string port = std::to_string(url_.port);
  int rc = ::getaddrinfo(url_.host.c_str(), port.c_str(), &hints, &found);
  if (rc != 0) return unavailable("cannot resolve " + url_.host + ": " + gai_strerror(rc));
  std::string last = "no address";
  for (addrinfo* a = found; a; a = a->ai_next) {
    int fd = ::socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, a->ai_protocol);
    if (fd < 0) continue;
    int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (::connect(fd, a->ai_addr, a->ai_addrlen) != 0 && errno != EINPROGRESS) {
      last = std::strerror(errno);
      ::close(fd);
      continue;
    }
    {
      std::lock_guard lock(mu_);
      if (cancelled_) {
        ::close(fd);
        ::freeaddrinfo(found);
        return unavailable("cancelled");
      }
      fd_ = fd;
    }
    Clock::time_point connect_deadline =
        std::min(deadline, Clock::now() + options_.connect_timeout);
    pollfd p{fd, POLLOUT, 0};
    int n = ::poll(&p, 1, remaining_ms(connect_deadline));
    int err = 0;
    socklen_t len = sizeof err;
    if (n == 1) ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
    if (n == 1 && err == 0 && !(p.revents & (POLLHUP | POLLERR))) {
      ::freeaddrinfo(found);
      if (url_.https) {
        auto h = handshake(deadline);
        if (!h) {
          close_socket();
          return h.error();
        }
      }
      return fd;
    }
    last = n == 0 ? "connect timed out" : (err ? std::strerror(err) : "connection failed");
    close_socket();
  }
  ::freeaddrinfo(found);
  return unavailable("cannot connect to " + url_.host + ":" + port + ": " + last);
}

bool Client::wait_fd(bool write, Clock::time_point deadline) {
  pollfd p{fd_, static_cast<short>(write ? POLLOUT : POLLIN), 0};
  int r;
  do {
    r = ::poll(&p, 1, remaining_ms(deadline));
  } while (r < 0 && errno == EINTR);
  return r != 0;
}

Result<bool> Client::handshake(Clock::time_point deadline) {
  std::shared_ptr<const TlsConfig> tls = url_.tls;
  if (!tls) {
    // https:// without options: the system's trust store and the URL's host (made once).
    auto made = TlsConfig::make({});
    if (!made) return made.error();
    url_.tls = tls = made.value();
  }
  ERR_clear_error();
  SSL* ssl = SSL_new(tls->ctx());
  if (!ssl) return unavailable("TLS to " + url_.host + ": " + ssl_errors());
  {
    std::lock_guard lock(mu_);
    ssl_ = ssl;
  }
  SSL_set_fd(ssl, fd_);
  const std::string& name =
      tls->options().server_name.empty() ? url_.host : tls->options().server_name;
  in6_addr a6;
  in_addr a4;
  const bool is_ip =
      inet_pton(AF_INET, name.c_str(), &a4) == 1 || inet_pton(AF_INET6, name.c_str(), &a6) == 1;
  if (!is_ip) SSL_set_tlsext_host_name(ssl, name.c_str());
  if (!tls->options().insecure_skip_verify) {
    X509_VERIFY_PARAM* param = SSL_get0_param(ssl);
    X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
    const int ok = is_ip ? X509_VERIFY_PARAM_set1_ip_asc(param, name.c_str())
                         : X509_VERIFY_PARAM_set1_host(param, name.c_str(), name.size());
    if (ok != 1) return unavailable("TLS to " + url_.host + ": bad server name " + name);
  }
  for (;;) {
    {
      std::lock_guard lock(mu_);
      if (cancelled_) return unavailable("cancelled");
    }
    ERR_clear_error();
    const int rc = SSL_connect(ssl);
    if (rc == 1) return true;
    const int e = SSL_get_error(ssl, rc);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
      if (!wait_fd(e == SSL_ERROR_WANT_WRITE, deadline)) {
        return timeout_error("TLS handshake with " + url_.host + " timed out");
      }
      continue;
    }
    const long verify = SSL_get_verify_result(ssl);
    if (verify != X509_V_OK) {
      return unavailable("TLS to " + url_.host + ":" + std::to_string(url_.port) +
                         ": certificate verification failed: " +
                         X509_verify_cert_error_string(verify) + " (name " + name + ")");
    }
    return unavailable("TLS handshake with " + url_.host + ":" + std::to_string(url_.port) +
                       " failed: " + ssl_errors());
  }
}

Result<bool> Client::write_all(std::string_view data, Clock::time_point deadline) {
  while (ssl_ && !data.empty()) {
    ERR_clear_error();
    const int n =
        SSL_write(ssl_, data.data(), static_cast<int>(std::min<size_t>(data.size(), 1 << 30)));
    if (n > 0) {
      data.remove_prefix(static_cast<size_t>(n));
      continue;
    }
    const int e = SSL_get_error(ssl_, n);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
      if (!wait_fd(e == SSL_ERROR_WANT_WRITE, deadline)) {
        return timeout_error("timed out writing to " + url_.host);
      }
      continue;
    }
    return unavailable("write to " + url_.host + " failed: " + ssl_errors());
  }
  while (!data.empty()) {
    ssize_t n = ::send(fd_, data.data(), data.size(), MSG_NOSIGNAL);
    if (n > 0) {
      data.remove_prefix(static_cast<size_t>(n));
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      pollfd p{fd_, POLLOUT, 0};
      int r = ::poll(&p, 1, remaining_ms(deadline));
      if (r == 0) return timeout_error("timed out writing to " + url_.host);
      continue;
    }
    return unavailable(std::string("write to ") + url_.host + " failed: " + std::strerror(errno));
  }
  return true;
}

Result<size_t> Client::read_some(Clock::time_point deadline) {
  char buf[16384];
  while (ssl_) {
    {
      std::lock_guard lock(mu_);
      if (cancelled_) return unavailable("cancelled");
    }
    ERR_clear_error();
    const int n = SSL_read(ssl_, buf, sizeof buf);
    if (n > 0) {
      in_.append(buf, static_cast<size_t>(n));
      return static_cast<size_t>(n);
    }
    const int e = SSL_get_error(ssl_, n);
    if (e == SSL_ERROR_ZERO_RETURN) return size_t{0};  // close_notify: a clean end
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
      if (!wait_fd(e == SSL_ERROR_WANT_WRITE, deadline)) {
        return timeout_error("timed out waiting for " + url_.host);
      }
      continue;
    }
    if (e == SSL_ERROR_SYSCALL && ERR_peek_error() == 0) {
      // The peer closed without close_notify: never taken for a clean end (a close-delimited
      // body would look complete when it was cut).
      return unavailable(url_.host + " closed the TLS connection without close_notify");
    }
    return unavailable("read from " + url_.host + " failed: " + ssl_errors());
  }
  for (;;) {
    {
      std::lock_guard lock(mu_);
      if (cancelled_) return unavailable("cancelled");
    }
    ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
    if (n > 0) {
      in_.append(buf, static_cast<size_t>(n));
      return static_cast<size_t>(n);
    }
    if (n == 0) return size_t{0};
    if (errno == EINTR) continue;
    if (errno != EAGAIN && errno != EWOULDBLOCK) {
      return unavailable(std::string("read from ") + url_.host +
                         " failed: " + std::strerror(errno));
    }
    pollfd p{fd_, POLLIN, 0};
    int r = ::poll(&p, 1, remaining_ms(deadline));
    if (r == 0) return timeout_error("timed out waiting for " + url_.host);
  }
}

std::string Client::serialize(const Request& request) const {
  std::string out;
  out.reserve(256 + request.body.size());
  out.append(request.method).append(" ").append(request.target).append(" HTTP/1.1\r\nHost: ");
  if (url_.host.find(':') != std::string::npos) {
    out.append("[").append(url_.host).append("]");
  } else {
    out.append(url_.host);
  }
  out.append(":").append(std::to_string(url_.port)).append("\r\n");
  for (const auto& [name, value] : request.headers)
    out.append(name).append(": ").append(value).append("\r\n");
  if (!request.body.empty() || request.method == "POST" || request.method == "PUT") {
    out.append("Content-Length: ").append(std::to_string(request.body.size())).append("\r\n");
  }
  out.append("\r\n").append(request.body);
  return out;
}

Result<Response> Client::read_head(Clock::time_point deadline) {
  size_t end;
  while ((end = in_.find("\r\n\r\n")) == std::string::npos) {
    if (in_.size() > kMaxHead) return protocol_error(url_.host + ": response head over 64 KiB");
    auto n = read_some(deadline);
    if (!n) return n.error();
    if (n.value() == 0) return unavailable(url_.host + " closed the connection before answering");
  }
  std::string_view head(in_.data(), end);
  Response r;
  size_t eol = head.find("\r\n");
  std::string_view status_line = head.substr(0, eol);
  if (status_line.substr(0, 7) != "HTTP/1." || status_line.size() < 12 || status_line[8] != ' ') {
    return protocol_error(url_.host + ": not an HTTP/1.x response");
  }
  uint64_t status = 0;
  if (!parse_size(status_line.substr(9, 3), 10, &status) || status < 100 || status > 599) {
    return protocol_error(url_.host + ": bad status line");
  }
  r.status = static_cast<int>(status);
  while (eol != std::string_view::npos && eol < head.size()) {
    size_t start = eol + 2;
    eol = head.find("\r\n", start);
    std::string_view line = head.substr(start, eol == std::string_view::npos ? eol : eol - start);
    size_t colon = line.find(':');
    if (colon == std::string_view::npos || colon == 0) {
      return protocol_error(url_.host + ": malformed response header");
    }
    r.headers.emplace_back(lower(line.substr(0, colon)), std::string(trim(line.substr(colon + 1))));
  }
  in_.erase(0, end + 4);
  return r;
}

namespace {

// Incremental body framing: Content-Length, chunked or close-delimited.
class BodyReader {
 public:
  enum class Mode { kLength, kChunked, kClose };
  explicit BodyReader(const Response& head, bool no_body) {
    if (no_body) {
      mode_ = Mode::kLength;
      left_ = 0;
      return;
    }
    const std::string* te = head.header("transfer-encoding");
    const std::string* cl = head.header("content-length");
    if (te && lower(*te).find("chunked") != std::string::npos) {
      mode_ = Mode::kChunked;
    } else if (cl) {
      mode_ = Mode::kLength;
      if (!parse_size(trim(*cl), 10, &left_)) bad_ = true;
    } else {
      mode_ = Mode::kClose;
    }
  }
  bool bad() const { return bad_; }
  bool done() const { return done_; }
  bool close_delimited() const { return mode_ == Mode::kClose; }

  // Moves what `in` holds of the body into `out`; false on a framing error.
  bool consume(std::string& in, std::string& out) {
    if (mode_ == Mode::kLength) {
      size_t take = static_cast<size_t>(std::min<uint64_t>(left_, in.size()));
      out.append(in, 0, take);
      in.erase(0, take);
      left_ -= take;
      done_ = left_ == 0;
      return true;
    }
    if (mode_ == Mode::kClose) {
      out.append(in);
      in.clear();
      return true;
    }
    while (!done_) {
      if (in_chunk_ > 0) {
        size_t take = static_cast<size_t>(std::min<uint64_t>(in_chunk_, in.size()));
        out.append(in, 0, take);
        in.erase(0, take);
        in_chunk_ -= take;
        if (in_chunk_ > 0) return true;
        need_crlf_ = true;
      }
      if (need_crlf_) {
        if (in.size() < 2) return true;
        if (in.compare(0, 2, "\r\n") != 0) return false;
        in.erase(0, 2);
        need_crlf_ = false;
      }
      size_t eol = in.find("\r\n");
      if (eol == std::string::npos) return in.size() < 1024;
      if (trailers_) {
        in.erase(0, eol + 2);
        if (eol == 0) done_ = true;
        continue;
      }
      std::string_view line(in.data(), eol);
      line = line.substr(0, line.find(';'));
      uint64_t size = 0;
      if (!parse_size(trim(line), 16, &size)) return false;
      in.erase(0, eol + 2);
      if (size == 0) {
        trailers_ = true;
      } else {
        in_chunk_ = size;
      }
    }
    return true;
  }

 private:
  Mode mode_ = Mode::kClose;
  uint64_t left_ = 0;
  uint64_t in_chunk_ = 0;
  bool need_crlf_ = false;
  bool trailers_ = false;
  bool done_ = false;
  bool bad_ = false;
};

}  // namespace

Result<Response> Client::exchange(const Request& request, Clock::time_point deadline,
                                  bool* reused) {
  *reused = fd_ >= 0;
  if (fd_ < 0) {
    auto fd = connect_socket(deadline);
    if (!fd) return fd.error();
  }
  auto w = write_all(serialize(request), deadline);
  if (!w) return w.error();
  Response r;
  for (;;) {
    auto head = read_head(deadline);
    if (!head) return head.error();
    r = std::move(head.value());
    if (r.status >= 200) break;  // 1xx: interim, read the next head
  }
  BodyReader body(r, request.method == "HEAD" || r.status == 204 || r.status == 304);
  if (body.bad()) return protocol_error(url_.host + ": bad Content-Length");
  for (;;) {
    if (!body.consume(in_, r.body)) return protocol_error(url_.host + ": bad chunked framing");
    if (r.body.size() > options_.max_body) {
      return protocol_error(url_.host + ": response body over " +
                            std::to_string(options_.max_body) + " bytes");
    }
    if (body.done()) break;
    auto n = read_some(deadline);
    if (!n) return n.error();
    if (n.value() == 0) {
      if (body.close_delimited()) break;
      return unavailable(url_.host + " closed the connection in the middle of a response");
    }
  }
  const std::string* conn = r.header("connection");
  if (body.close_delimited() || (conn && lower(*conn) == "close")) close_socket();
  *reused = false;
  return r;
}

Result<Response> Client::send(const Request& request, Millis timeout) {
  Clock::time_point deadline = Clock::now() + timeout;
  bool reused = false;
  auto r = exchange(request, deadline, &reused);
  if (!r) {
    close_socket();
    // A pooled connection the peer closed while idle: once more on a new one.
    if (reused && r.error().kind == ErrorKind::kUnavailable &&
        r.error().message.find("cancelled") == std::string::npos) {
      r = exchange(request, deadline, &reused);
      if (!r) close_socket();
    }
  }
  return r;
}

Result<int> Client::stream_lines(const Request& request,
                                 const std::function<bool(const Response& head)>& on_head,
                                 const std::function<bool(std::string_view line)>& on_line,
                                 Millis idle_timeout) {
  close_socket();  // a stream gets its own connection
  auto fail = [this](Error e) -> Result<int> {
    close_socket();
    return e;
  };
  auto fd = connect_socket(Clock::now() + options_.connect_timeout);
  if (!fd) return fail(fd.error());
  auto w = write_all(serialize(request), Clock::now() + idle_timeout);
  if (!w) return fail(w.error());
  auto head = read_head(Clock::now() + idle_timeout);
  if (!head) return fail(head.error());
  Response r = std::move(head.value());
  const int status = r.status;
  if (!on_head(r)) {
    close_socket();
    return status;
  }
  BodyReader body(r, false);
  if (body.bad()) return fail(protocol_error(url_.host + ": bad Content-Length"));
  std::string pending;
  for (;;) {
    if (!body.consume(in_, pending))
      return fail(protocol_error(url_.host + ": bad chunked framing"));
    size_t start = 0;
    for (size_t nl; (nl = pending.find('\n', start)) != std::string::npos; start = nl + 1) {
      std::string_view line(pending.data() + start, nl - start);
      if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
      if (!on_line(line)) {
        close_socket();
        return status;
      }
    }
    pending.erase(0, start);
    if (pending.size() > options_.max_body) {
      return fail(protocol_error(url_.host + ": a streamed line over " +
                                 std::to_string(options_.max_body) + " bytes"));
    }
    if (body.done()) break;
    auto n = read_some(Clock::now() + idle_timeout);
    if (!n) return fail(n.error());
    if (n.value() == 0) {
      if (body.close_delimited()) break;
      return fail(unavailable(url_.host + " closed the stream"));
    }
  }
  if (!pending.empty() && !on_line(pending)) {
    close_socket();
    return status;
  }
  close_socket();
  return status;
}

std::string url_escape(std::string_view s, bool keep_slash) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(s.size());
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~' ||
        (keep_slash && c == '/')) {
      out.push_back(static_cast<char>(c));
    } else {
      out.push_back('%');
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 15]);
    }
  }
  return out;
}

}  // namespace portico::control::http
