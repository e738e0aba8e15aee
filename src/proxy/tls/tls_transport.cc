// TlsTransport: TLS on a TCP socket with our own BIO (no asio::ssl). Ciphertext comes from the
// socket into one fixed input buffer that OpenSSL reads from; OpenSSL's output goes into a pending
// buffer that one coroutine at a time writes to the socket. The read side is the only one that
// reads the socket (after the handshake), so a read and a write can be outstanding together.
#include "proxy/tls/tls_transport.h"

#include <arpa/inet.h>

#include <asio/experimental/as_tuple.hpp>
#include <cstring>

#include "proxy/tls/openssl_util.h"

namespace portico::proxy::tls {
namespace {

using asio::use_awaitable;
using asio::experimental::as_tuple;

constexpr size_t kInputSize = 17 * 1024;     // one whole record (16 KiB + header and tag)
constexpr size_t kRecord = 16 * 1024;        // plaintext per record
constexpr size_t kFlushAt = 64 * 1024;       // ciphertext buffered before a large write flushes
constexpr size_t kKeepCapacity = 20 * 1024;  // output buffer capacity kept between writes
constexpr size_t kPooledInputs = 256;        // idle input buffers kept per thread

// OpenSSL's packed error codes as asio::error_codes.
class TlsCategory : public asio::error_category {
 public:
  const char* name() const noexcept override { return "portico.tls"; }
  std::string message(int ev) const override {
    char buf[256];
    ERR_error_string_n(static_cast<unsigned long>(ev), buf, sizeof(buf));
    return buf;
  }
};
const asio::error_category& tls_category() {
  static const TlsCategory category;
  return category;
}

asio::error_code ssl_error_code() {
  unsigned long e = ERR_peek_last_error();
  // A refusal without a queued reason (a callback said no) still is an error.
  return asio::error_code(e != 0 ? static_cast<int>(e) : 1, tls_category());
}

bool is_ip_literal(const std::string& name) {
  unsigned char buf[16];
  return inet_pton(AF_INET, name.c_str(), buf) == 1 || inet_pton(AF_INET6, name.c_str(), buf) == 1;
}

bool is_uri(const std::string& name) {
  return name.find(':') != std::string::npos && !is_ip_literal(name);
}

class TlsTransport final : public transport::Transport {
 public:
  TlsTransport(asio::ip::tcp::socket socket, SSL* ssl)
      : socket_(std::move(socket)),
        ssl_(ssl),
        flush_done_(socket_.get_executor(), asio::steady_timer::time_point::max()),
        in_(nullptr) {
    BIO* bio = BIO_new(bio_method());
    BIO_set_data(bio, this);
    SSL_set_bio(ssl_, bio, bio);  // one reference for both directions
    asio::error_code ignored;
    socket_.non_blocking(true, ignored);  // flush() tries a plain send first
  }
  ~TlsTransport() override {
    // A connection that ended without a TLS error keeps its session resumable (OpenSSL would
    // otherwise treat a close without close_notify as a reason to drop it).
    if (clean_) SSL_set_shutdown(ssl_, SSL_SENT_SHUTDOWN | SSL_RECEIVED_SHUTDOWN);
    SSL_free(ssl_);
    if (in_ != nullptr) release_input(in_);
  }
  TlsTransport(const TlsTransport&) = delete;
  TlsTransport& operator=(const TlsTransport&) = delete;

  SSL* ssl() { return ssl_; }
  transport::ConnectionInfo& mutable_info() { return info_; }
  std::string& session_key() { return session_key_; }
  void keep(std::shared_ptr<const void> p) { keep_ = std::move(p); }

  // The handshake, with a deadline (0: none) that cancels it.
  asio::awaitable<asio::error_code> handshake(std::chrono::milliseconds timeout, bool* timed_out) {
    struct Deadline {
      bool active = true;
      bool fired = false;
    };
    auto deadline = std::make_shared<Deadline>();
    asio::steady_timer timer(socket_.get_executor());
    if (timeout.count() > 0) {
      timer.expires_after(timeout);
      timer.async_wait([this, deadline](const asio::error_code& ec) {
        if (ec || !deadline->active) return;  // `this` is only touched while active
        deadline->fired = true;
        cancel();
      });
    }
    asio::error_code ec = co_await do_handshake();
    deadline->active = false;
    timer.cancel();
    *timed_out = deadline->fired;
    co_return ec;
  }

  asio::awaitable<transport::IoResult> read_some(asio::mutable_buffer buf) override {
    if (buf.size() == 0) co_return transport::IoResult{asio::error_code{}, 0};
    const uint64_t gen = cancel_gen_;
    for (;;) {
      size_t n = 0;
      ERR_clear_error();
      int r = SSL_read_ex(ssl_, buf.data(), buf.size(), &n);
      maybe_release_input();
      if (r == 1) {
        // Rare output from a read (a KeyUpdate answer): sent now unless a writer is sending
        // anyway (its flush loop takes it along).
        if (!out_pending_.empty() && !flushing_) {
          auto ec = co_await flush(gen);
          if (ec) co_return transport::IoResult{ec, 0};
        }
        co_return transport::IoResult{asio::error_code{}, n};
      }
      int err = SSL_get_error(ssl_, r);
      if (err == SSL_ERROR_ZERO_RETURN) co_return transport::IoResult{asio::error::eof, 0};
      if (err != SSL_ERROR_WANT_READ) {
        asio::error_code ec = ssl_error_code();
        ERR_clear_error();
        clean_ = false;
        if (!out_pending_.empty() && !flushing_) (void)co_await flush(gen);  // the alert
        co_return transport::IoResult{ec, 0};
      }
      if (!out_pending_.empty() && !flushing_) {
        auto ec = co_await flush(gen);
        if (ec) co_return transport::IoResult{ec, 0};
      }
      auto ec = co_await fill();
      if (gen != cancel_gen_) co_return transport::IoResult{asio::error::operation_aborted, 0};
      // TCP end without close_notify: an end of stream too (HTTP framing detects truncation).
      if (ec) co_return transport::IoResult{ec, 0};
    }
  }

  asio::awaitable<asio::error_code> wait_readable() override {
    // Plaintext or ciphertext already here: readable now. Else the socket (a record that yields
    // no plaintext only makes the next read_some wait with the caller's buffer).
    if (SSL_has_pending(ssl_) == 1 || (in_ != nullptr && in_begin_ != in_end_)) {
      co_return asio::error_code{};
    }
    const uint64_t gen = cancel_gen_;
    auto [ec] =
        co_await socket_.async_wait(asio::ip::tcp::socket::wait_read, as_tuple(use_awaitable));
    if (!ec && gen != cancel_gen_) ec = asio::error::operation_aborted;
    co_return ec;
  }

  asio::awaitable<transport::IoResult> write(std::span<const asio::const_buffer> bufs) override {
    const uint64_t gen = cancel_gen_;
    if (write_error_) co_return transport::IoResult{write_error_, 0};
    if (write_closed_) co_return transport::IoResult{asio::error::shut_down, 0};
    size_t total = 0;
    // Small pieces (a head and a short body) are gathered into one record.
    gather_.clear();
    for (const auto& b : bufs) {
      const char* p = static_cast<const char*>(b.data());
      size_t len = b.size();
      if (len == 0) continue;
      total += len;
      if (bufs.size() > 1 && gather_.size() + len <= kRecord) {
        gather_.insert(gather_.end(), p, p + len);
        continue;
      }
      if (!gather_.empty()) {  // top the gathered record up to a full one
        size_t take = std::min(len, kRecord - gather_.size());
        gather_.insert(gather_.end(), p, p + take);
        p += take;
        len -= take;
        auto ec = encrypt(gather_.data(), gather_.size());
        gather_.clear();
        if (ec) co_return transport::IoResult{ec, 0};
      }
      while (len > 0) {
        size_t chunk = std::min(len, kFlushAt);
        auto ec = encrypt(p, chunk);
        if (ec) co_return transport::IoResult{ec, 0};
        p += chunk;
        len -= chunk;
        if (out_pending_.size() >= kFlushAt) {
          ec = co_await flush(gen);
          if (ec) co_return transport::IoResult{ec, 0};
        }
      }
    }
    if (!gather_.empty()) {
      auto ec = encrypt(gather_.data(), gather_.size());
      gather_.clear();
      if (ec) co_return transport::IoResult{ec, 0};
    }
    auto ec = co_await flush(gen);
    co_return transport::IoResult{ec, ec ? 0 : total};
  }

  asio::awaitable<asio::error_code> shutdown_write() override {
    const uint64_t gen = cancel_gen_;
    if (!write_closed_) {
      write_closed_ = true;
      ERR_clear_error();
      SSL_shutdown(ssl_);  // queues close_notify; reading stays possible
      ERR_clear_error();
    }
    co_return co_await flush(gen);
  }

  void cancel() override {
    ++cancel_gen_;
    asio::error_code ignored;
    socket_.cancel(ignored);
    flush_done_.cancel();
  }

  void close() override {
    ++cancel_gen_;
    asio::error_code ignored;
    socket_.shutdown(asio::ip::tcp::socket::shutdown_both, ignored);
    socket_.close(ignored);
    flush_done_.cancel();
  }

  bool is_open() const override { return socket_.is_open(); }
  const transport::ConnectionInfo& info() const override { return info_; }
  asio::ip::tcp::socket& lowest_layer() override { return socket_; }

 private:
  asio::awaitable<asio::error_code> do_handshake() {
    const uint64_t gen = cancel_gen_;
    for (;;) {
      ERR_clear_error();
      int r = SSL_do_handshake(ssl_);
      maybe_release_input();
      if (r == 1) {
        clean_ = true;
        co_return co_await flush(gen);
      }
      int err = SSL_get_error(ssl_, r);
      if (err != SSL_ERROR_WANT_READ) {
        asio::error_code ec = ssl_error_code();
        if (!out_pending_.empty()) (void)co_await flush(gen);  // our alert, best effort
        co_return ec;
      }
      if (!out_pending_.empty()) {
        auto ec = co_await flush(gen);
        if (ec) co_return ec;
      }
      auto ec = co_await fill();
      if (gen != cancel_gen_) co_return asio::error::operation_aborted;
      if (ec) co_return ec;
    }
  }

  // Plaintext into records in out_pending_ (our BIO never refuses a write).
  asio::error_code encrypt(const char* p, size_t len) {
    size_t written = 0;
    ERR_clear_error();
    if (SSL_write_ex(ssl_, p, len, &written) != 1) {
      asio::error_code ec = ssl_error_code();
      ERR_clear_error();
      write_error_ = ec;
      clean_ = false;
      return ec;
    }
    return {};
  }

  // One socket read into the input buffer. An idle connection holds no input buffer: it waits
  // for readability first and takes one from the worker's pool only when bytes are there.
  asio::awaitable<asio::error_code> fill() {
    if (in_ == nullptr) {
      auto [ec] =
          co_await socket_.async_wait(asio::ip::tcp::socket::wait_read, as_tuple(use_awaitable));
      if (ec) co_return ec;
      in_ = acquire_input();
      in_begin_ = in_end_ = 0;
    } else if (in_begin_ == in_end_) {
      in_begin_ = in_end_ = 0;
    } else if (in_end_ == kInputSize) {
      std::memmove(in_, in_ + in_begin_, in_end_ - in_begin_);
      in_end_ -= in_begin_;
      in_begin_ = 0;
    }
    auto [ec, n] = co_await socket_.async_read_some(
        asio::buffer(in_ + in_end_, kInputSize - in_end_), as_tuple(use_awaitable));
    in_end_ += n;
    co_return ec;
  }

  // Gives the input buffer back to the pool once OpenSSL has taken every byte of it (OpenSSL
  // keeps a partial record in its own buffer).
  void maybe_release_input() {
    if (in_ != nullptr && in_begin_ == in_end_) {
      release_input(in_);
      in_ = nullptr;
      in_begin_ = in_end_ = 0;
    }
  }

  // Per-thread pool of input buffers: a Transport lives on one thread, so no lock.
  struct InputPool {
    std::vector<char*> free;
    ~InputPool() {
      for (char* p : free)
        delete[] p;
    }
  };
  static InputPool& input_pool() {
    thread_local InputPool pool;
    return pool;
  }
  static char* acquire_input() {
    auto& pool = input_pool();
    if (pool.free.empty()) return new char[kInputSize];
    char* p = pool.free.back();
    pool.free.pop_back();
    return p;
  }
  static void release_input(char* p) {
    auto& pool = input_pool();
    if (pool.free.size() < kPooledInputs) {
      pool.free.push_back(p);
    } else {
      delete[] p;
    }
  }

  // Sends everything pending. One coroutine writes to the socket at a time; another one that
  // needs its bytes sent waits for it and goes on.
  asio::awaitable<asio::error_code> flush(uint64_t gen) {
    while (!out_pending_.empty() || flight_sent_ < out_flight_.size()) {
      if (write_error_) co_return write_error_;
      if (flushing_) {
        (void)co_await flush_done_.async_wait(as_tuple(use_awaitable));  // woken by cancel()
        if (gen != cancel_gen_) co_return asio::error::operation_aborted;
        continue;
      }
      if (flight_sent_ == out_flight_.size()) {
        out_flight_.clear();
        flight_sent_ = 0;
        std::swap(out_flight_, out_pending_);
      }
      // Most flights fit in the socket's send buffer: sent here, without a reactor operation and
      // a resumption (as TcpTransport::write).
      {
        asio::error_code wec;
        flight_sent_ += socket_.write_some(
            asio::buffer(out_flight_.data() + flight_sent_, out_flight_.size() - flight_sent_),
            wec);
        if (wec && wec != asio::error::would_block && wec != asio::error::try_again) {
          write_error_ = wec;
          co_return wec;
        }
        if (flight_sent_ == out_flight_.size()) continue;
      }
      flushing_ = true;
      auto [ec, n] = co_await asio::async_write(
          socket_,
          asio::buffer(out_flight_.data() + flight_sent_, out_flight_.size() - flight_sent_),
          as_tuple(use_awaitable));
      flight_sent_ += n;
      flushing_ = false;
      flush_done_.cancel();  // wake a waiting reader or writer
      if (ec) {
        if (ec != asio::error::operation_aborted) write_error_ = ec;
        co_return ec;
      }
      if (gen != cancel_gen_) co_return asio::error::operation_aborted;
    }
    // A large write grew the buffers; an idle connection keeps only small ones.
    out_flight_.clear();
    flight_sent_ = 0;
    if (out_flight_.capacity() > kKeepCapacity) std::vector<char>().swap(out_flight_);
    if (out_pending_.capacity() > kKeepCapacity) std::vector<char>().swap(out_pending_);
    co_return asio::error_code{};
  }

  static int bio_write(BIO* bio, const char* data, size_t len, size_t* written) {
    auto* self = static_cast<TlsTransport*>(BIO_get_data(bio));
    BIO_clear_retry_flags(bio);
    self->out_pending_.insert(self->out_pending_.end(), data, data + len);
    *written = len;
    return 1;
  }

  static int bio_read(BIO* bio, char* data, size_t len, size_t* read) {
    auto* self = static_cast<TlsTransport*>(BIO_get_data(bio));
    BIO_clear_retry_flags(bio);
    size_t avail = self->in_end_ - self->in_begin_;
    if (avail == 0) {
      BIO_set_retry_read(bio);
      *read = 0;
      return 0;
    }
    size_t n = std::min(avail, len);
    std::memcpy(data, self->in_ + self->in_begin_, n);
    self->in_begin_ += n;
    *read = n;
    return 1;
  }

  static long bio_ctrl(BIO* bio, int cmd, long /*num*/, void* /*ptr*/) {
    auto* self = static_cast<TlsTransport*>(BIO_get_data(bio));
    switch (cmd) {
      case BIO_CTRL_FLUSH:
        return 1;
      case BIO_CTRL_PENDING:
        return static_cast<long>(self->in_end_ - self->in_begin_);
      case BIO_CTRL_WPENDING:
        return static_cast<long>(self->out_pending_.size());
      default:
        return 0;
    }
  }

  static int bio_create(BIO* bio) {
    BIO_set_init(bio, 1);
    return 1;
  }

  static BIO_METHOD* bio_method() {
    static BIO_METHOD* method = [] {
      BIO_METHOD* m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "portico-tls");
      BIO_meth_set_write_ex(m, bio_write);
      BIO_meth_set_read_ex(m, bio_read);
      BIO_meth_set_ctrl(m, bio_ctrl);
      BIO_meth_set_create(m, bio_create);
      return m;
    }();
    return method;
  }

  asio::ip::tcp::socket socket_;
  SSL* ssl_;
  asio::steady_timer flush_done_;  // never expires: cancel() on it wakes flush waiters
  char* in_;  // kInputSize bytes from the pool, or null when nothing is buffered
  size_t in_begin_ = 0;
  size_t in_end_ = 0;
  std::vector<char> out_pending_;  // ciphertext not yet handed to the socket
  std::vector<char> out_flight_;   // ciphertext being written
  size_t flight_sent_ = 0;
  std::vector<char> gather_;
  bool flushing_ = false;
  bool write_closed_ = false;
  bool clean_ = false;  // handshake done and no TLS error since
  asio::error_code write_error_;
  uint64_t cancel_gen_ = 0;
  transport::ConnectionInfo info_;
  std::string session_key_;
  std::shared_ptr<const void> keep_;
};

HandshakeFailure classify(SSL* ssl, const asio::error_code& ec, bool timed_out) {
  if (timed_out) return HandshakeFailure::kTimeout;
  if (auto hint = reinterpret_cast<uintptr_t>(SSL_get_ex_data(ssl, ssl_failure_hint_index()))) {
    return static_cast<HandshakeFailure>(hint - 1);
  }
  if (ec.category() != tls_category()) {
    return ec == asio::error::operation_aborted ? HandshakeFailure::kOther
                                                : HandshakeFailure::kPeerClosed;
  }
  unsigned long e = static_cast<unsigned long>(ec.value());
  if (ERR_GET_LIB(e) != ERR_LIB_SSL) return HandshakeFailure::kOther;
  switch (ERR_GET_REASON(e)) {
    case SSL_R_NO_SHARED_CIPHER:
    case SSL_R_NO_SHARED_GROUPS:
    case SSL_R_NO_SUITABLE_SIGNATURE_ALGORITHM:
    case SSL_R_NO_CIPHERS_AVAILABLE:
    case SSL_R_SSLV3_ALERT_HANDSHAKE_FAILURE:
      return HandshakeFailure::kNoSharedCipher;
    case SSL_R_UNSUPPORTED_PROTOCOL:
    case SSL_R_VERSION_TOO_LOW:
    case SSL_R_VERSION_TOO_HIGH:
    case SSL_R_NO_PROTOCOLS_AVAILABLE:
    case SSL_R_TLSV1_ALERT_PROTOCOL_VERSION:
      return HandshakeFailure::kVersionTooOld;
    case SSL_R_PEER_DID_NOT_RETURN_A_CERTIFICATE:
    case SSL_R_TLSV13_ALERT_CERTIFICATE_REQUIRED:
      return HandshakeFailure::kNoClientCert;
    case SSL_R_TLSV1_ALERT_UNKNOWN_CA:
      return HandshakeFailure::kUnknownCa;
    case SSL_R_CERTIFICATE_VERIFY_FAILED:
      switch (SSL_get_verify_result(ssl)) {
        case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT:
        case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
        case X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE:
        case X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN:
        case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT:
          return HandshakeFailure::kUnknownCa;
        default:
          return HandshakeFailure::kBadCertificate;
      }
    case SSL_R_SSLV3_ALERT_BAD_CERTIFICATE:
    case SSL_R_SSLV3_ALERT_CERTIFICATE_EXPIRED:
    case SSL_R_SSLV3_ALERT_CERTIFICATE_REVOKED:
    case SSL_R_SSLV3_ALERT_CERTIFICATE_UNKNOWN:
    case SSL_R_SSLV3_ALERT_UNSUPPORTED_CERTIFICATE:
    case SSL_R_TLSV1_ALERT_DECRYPT_ERROR:
      return HandshakeFailure::kBadCertificate;
    case SSL_R_TLSV1_UNRECOGNIZED_NAME:
      return HandshakeFailure::kUnknownServerName;
    case SSL_R_UNEXPECTED_EOF_WHILE_READING:
      return HandshakeFailure::kPeerClosed;
    default:
      return HandshakeFailure::kProtocol;
  }
}

std::string describe(SSL* ssl, const asio::error_code& ec, HandshakeFailure failure) {
  std::string out = std::string("TLS handshake failed (") + failure_name(failure) + ")";
  if (failure == HandshakeFailure::kTimeout) return out;
  out += ": " + ec.message();
  long verify = SSL_get_verify_result(ssl);
  if (verify != X509_V_OK)
    out += std::string(" (verify: ") + X509_verify_cert_error_string(verify) + ")";
  return out;
}

void fill_info(TlsTransport& t, bool server) {
  SSL* ssl = t.ssl();
  auto& info = t.mutable_info();
  asio::error_code ec;
  auto remote = t.lowest_layer().remote_endpoint(ec);
  if (!ec) {
    info.peer_address = remote.address().to_string();
    info.peer_port = remote.port();
  }
  auto local = t.lowest_layer().local_endpoint(ec);
  if (!ec) {
    info.local_address = local.address().to_string();
    info.local_port = local.port();
  }
  info.secure = true;
  const unsigned char* alpn = nullptr;
  unsigned int alpn_len = 0;
  SSL_get0_alpn_selected(ssl, &alpn, &alpn_len);
  info.alpn.assign(reinterpret_cast<const char*>(alpn), alpn_len);
  if (server) {
    const char* sni = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
    info.sni = sni != nullptr ? sni : "";
  }
  info.tls_version = SSL_get_version(ssl);
  info.cipher = SSL_get_cipher_name(ssl);
  X509* peer = SSL_get0_peer_certificate(ssl);
  bool verifying = (SSL_get_verify_mode(ssl) & SSL_VERIFY_PEER) != 0;
  if (peer != nullptr && verifying && SSL_get_verify_result(ssl) == X509_V_OK) {
    info.peer_verified = true;
    info.peer_subject = subject_of(peer);
    sans_of(peer, &info.peer_dns_sans, &info.peer_uri_sans);
  }
}

bool san_allowed(const transport::ConnectionInfo& info, const std::vector<std::string>& allowed) {
  for (const auto& a : allowed) {
    for (const auto& s : info.peer_uri_sans)
      if (s == a) return true;
    for (const auto& s : info.peer_dns_sans)
      if (s == a) return true;
  }
  return false;
}

Error handshake_error(std::string message, bool upstream) {
  return Error{ErrorKind::kUnavailable,
               upstream ? ErrorSource::kUpstream : ErrorSource::kDownstream, std::move(message)};
}

void count_failure(HandshakeStats& stats, HandshakeFailure f, HandshakeFailure* out) {
  stats.failed[static_cast<size_t>(f)].fetch_add(1, std::memory_order_relaxed);
  if (out != nullptr) *out = f;
}

void count_success(HandshakeStats& stats, SSL* ssl) {
  stats.succeeded.fetch_add(1, std::memory_order_relaxed);
  if (SSL_session_reused(ssl) == 1) stats.resumed.fetch_add(1, std::memory_order_relaxed);
}

// After a handshake that failed (ec or timed_out): classifies and describes the failure, closes
// the transport, counts it and returns the error for the caller.
Error handshake_failed(TlsTransport& t, const asio::error_code& ec, bool timed_out,
                       HandshakeStats& stats, HandshakeFailure* failure, bool upstream) {
  HandshakeFailure f = classify(t.ssl(), ec, timed_out);
  std::string message = describe(t.ssl(), ec, f);
  ERR_clear_error();
  t.close();
  count_failure(stats, f, failure);
  return handshake_error(std::move(message), upstream);
}

// After a handshake that succeeded but whose peer certificate is refused (f): closes the transport,
// counts the failure and returns the error "TLS handshake failed (<f>): <why>".
Error peer_rejected(TlsTransport& t, HandshakeFailure f, const std::string& why,
                    HandshakeStats& stats, HandshakeFailure* failure, bool upstream) {
  std::string message = std::string("TLS handshake failed (") + failure_name(f) + "): " + why;
  t.close();
  count_failure(stats, f, failure);
  return handshake_error(std::move(message), upstream);
}

}  // namespace

asio::awaitable<Result<std::unique_ptr<transport::Transport>>> accept(
    std::shared_ptr<const ServerContext> context, asio::ip::tcp::socket socket,
    std::chrono::milliseconds timeout, HandshakeFailure* failure) {
  HandshakeStats& stats = downstream_stats();
  if (!context) {
    count_failure(stats, HandshakeFailure::kOther, failure);
    co_return Error{ErrorKind::kInternal, ErrorSource::kInternal, "accept: no TLS context"};
  }
  SSL* ssl = SSL_new(context->initial());
  if (ssl == nullptr) {
    count_failure(stats, HandshakeFailure::kOther, failure);
    co_return Error{ErrorKind::kInternal, ErrorSource::kInternal, "SSL_new: " + drain_errors()};
  }
  SSL_set_accept_state(ssl);
  SSL_set_ex_data(ssl, ssl_server_context_index(), const_cast<ServerContext*>(context.get()));
  auto t = std::make_unique<TlsTransport>(std::move(socket), ssl);
  bool timed_out = false;
  asio::error_code ec = co_await t->handshake(timeout, &timed_out);
  SSL_set_ex_data(ssl, ssl_server_context_index(), nullptr);  // the context may go now
  if (ec || timed_out) {
    co_return handshake_failed(*t, ec, timed_out, stats, failure, false);
  }
  fill_info(*t, true);
  CtxData* data = ctx_data(SSL_get_SSL_CTX(ssl));
  if (data != nullptr && !data->allowed_client_sans.empty() &&
      !san_allowed(t->info(), data->allowed_client_sans)) {
    co_return peer_rejected(*t, HandshakeFailure::kSanNotAllowed,
                            "client certificate " + t->info().peer_subject + " has no allowed SAN",
                            stats, failure, false);
  }
  count_success(stats, ssl);
  co_return std::unique_ptr<transport::Transport>(std::move(t));
}

asio::awaitable<Result<std::unique_ptr<transport::Transport>>> connect(
    std::shared_ptr<const ClientContext> context, asio::ip::tcp::socket socket, std::string sni,
    std::chrono::milliseconds timeout, HandshakeFailure* failure) {
  HandshakeStats& stats = upstream_stats();
  if (!context) {
    count_failure(stats, HandshakeFailure::kOther, failure);
    co_return Error{ErrorKind::kInternal, ErrorSource::kInternal, "connect: no TLS context"};
  }
  const snapshot::TlsClientConfig& cfg = context->config();
  SSL* ssl = SSL_new(context->native_handle());
  if (ssl == nullptr) {
    count_failure(stats, HandshakeFailure::kOther, failure);
    co_return Error{ErrorKind::kInternal, ErrorSource::kInternal, "SSL_new: " + drain_errors()};
  }
  SSL_set_connect_state(ssl);
  auto t = std::make_unique<TlsTransport>(std::move(socket), ssl);
  std::string name = sni.empty() ? cfg.sni : sni;
  if (!name.empty() && !is_ip_literal(name)) SSL_set_tlsext_host_name(ssl, name.c_str());
  std::vector<std::string> names = cfg.verify_names;
  if (names.empty() && !name.empty()) names.push_back(name);
  bool check_uris = false;
  if (!cfg.insecure_skip_verify) {
    for (const auto& n : names)
      check_uris = check_uris || is_uri(n);
    X509_VERIFY_PARAM* param = SSL_get0_param(ssl);
    X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
    if (!check_uris) {  // OpenSSL checks DNS names and IPs during verification
      for (const auto& n : names) {
        if (is_ip_literal(n)) {
          X509_VERIFY_PARAM_set1_ip_asc(param, n.c_str());
        } else {
          SSL_add1_host(ssl, n.c_str());
        }
      }
    }
  }
  t->keep(context);
  t->session_key() = name;
  SSL_set_ex_data(ssl, ssl_client_context_index(), const_cast<ClientContext*>(context.get()));
  SSL_set_ex_data(ssl, ssl_session_key_index(), &t->session_key());
  if (SSL_SESSION* session = context->take_session(name)) {
    SSL_set_session(ssl, session);
    SSL_SESSION_free(session);
  }
  bool timed_out = false;
  asio::error_code ec = co_await t->handshake(timeout, &timed_out);
  if (ec || timed_out) {
    co_return handshake_failed(*t, ec, timed_out, stats, failure, true);
  }
  fill_info(*t, false);
  t->mutable_info().sni = name;
  if (check_uris) {  // verify_names with URIs: any URI SAN equal, or any DNS name matching
    X509* peer = SSL_get0_peer_certificate(ssl);
    bool ok = false;
    for (const auto& n : names) {
      if (is_uri(n)) {
        for (const auto& s : t->info().peer_uri_sans)
          ok = ok || s == n;
      } else if (peer != nullptr) {
        ok = ok || X509_check_host(peer, n.data(), n.size(), X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS,
                                   nullptr) == 1;
      }
    }
    if (!ok) {
      co_return peer_rejected(*t, HandshakeFailure::kBadCertificate,
                              "no SAN of the upstream's certificate matches verify_names", stats,
                              failure, true);
    }
  }
  count_success(stats, ssl);
  co_return std::unique_ptr<transport::Transport>(std::move(t));
}

ssl_st* native_ssl(transport::Transport& transport) {
  auto* t = dynamic_cast<TlsTransport*>(&transport);
  return t != nullptr ? t->ssl() : nullptr;
}

std::string_view client_identity_header(transport::Transport& transport) {
  SSL* ssl = native_ssl(transport);
  if (ssl == nullptr || SSL_is_server(ssl) != 1) return {};
  CtxData* data = ctx_data(SSL_get_SSL_CTX(ssl));
  return data != nullptr ? std::string_view(data->client_identity_header) : std::string_view();
}

std::string client_identity(const transport::ConnectionInfo& info) {
  if (!info.peer_verified) return {};
  if (!info.peer_uri_sans.empty()) return info.peer_uri_sans.front();
  if (!info.peer_dns_sans.empty()) return info.peer_dns_sans.front();
  return info.peer_subject;
}

}  // namespace portico::proxy::tls
