// TLS contexts built from the snapshot's TLS settings: ServerContext (per listener, SNI over its
// virtual hosts), ClientContext (per cluster), the session-ticket key ring and the handshake
// counters. Built on the thread that applies a configuration; immutable afterwards and shared
// across workers as std::shared_ptr<const ...>. OpenSSL headers stay out of this file.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "common/result.h"
#include "snapshot/proxy_config.h"

struct ssl_ctx_st;      // SSL_CTX
struct ssl_session_st;  // SSL_SESSION

namespace portico::proxy::tls {

// Why a handshake failed. Counted per reason (HandshakeStats) so that operators alert on a metric.
enum class HandshakeFailure : uint8_t {
  kNoSharedCipher,     // no cipher suite / group / signature algorithm in common
  kVersionTooOld,      // the peer offered only versions below our minimum (or above our maximum)
  kNoClientCert,       // mTLS: the client sent no certificate
  kUnknownCa,          // the peer's chain does not lead to a trusted CA
  kBadCertificate,     // other verification failure: expired, wrong name, bad signature...
  kSanNotAllowed,      // mTLS: verified, but no SAN in allowed_client_sans
  kUnknownServerName,  // SNI matched no TLS virtual host and the listener has no default
  kTimeout,            // the handshake did not finish in time
  kPeerClosed,         // the peer closed or reset the connection during the handshake
  kProtocol,           // not TLS, or a malformed message
  kOther,
};
inline constexpr size_t kHandshakeFailureCount = static_cast<size_t>(HandshakeFailure::kOther) + 1;
// Stable snake_case name ("no_shared_cipher"), for metrics labels and messages.
const char* failure_name(HandshakeFailure failure);

// Handshake counters. Relaxed atomics bumped once per handshake (never per read); the stats
// module reads them when scraped. One instance for downstream, one for upstream, per process.
struct HandshakeStats {
  std::atomic<uint64_t> succeeded{0};
  std::atomic<uint64_t> resumed{0};  // of the succeeded ones
  std::array<std::atomic<uint64_t>, kHandshakeFailureCount> failed{};

  uint64_t failures(HandshakeFailure f) const {
    return failed[static_cast<size_t>(f)].load(std::memory_order_relaxed);
  }
};
HandshakeStats& downstream_stats();
HandshakeStats& upstream_stats();

// Session-ticket keys: the current key encrypts new tickets, the previous `decrypt_only` keys
// still decrypt (a client resumes across rotations), older tickets fall back to a full handshake.
// Rotation happens lazily when a ticket is issued after `period` (clock injectable for tests) or
// explicitly with rotate(). Thread-safe: handshakes on every worker use it (a short mutex, taken
// once per ticket, never per request).
class TicketKeyRing {
 public:
  using Clock = std::function<std::chrono::steady_clock::time_point()>;
  struct Key {
    std::array<unsigned char, 16> name{};
    std::array<unsigned char, 32> aes_key{};
    std::array<unsigned char, 32> hmac_key{};
  };

  explicit TicketKeyRing(std::chrono::seconds period = std::chrono::hours(1),
                         size_t decrypt_only = 2, Clock clock = {});
  TicketKeyRing(const TicketKeyRing&) = delete;
  TicketKeyRing& operator=(const TicketKeyRing&) = delete;

  // The ring every ServerContext uses unless told otherwise.
  static std::shared_ptr<TicketKeyRing> process();

  void rotate();
  // The key to encrypt with (rotating first when the period has passed).
  Key current();
  // The key named `name`; `is_current` tells whether tickets it opens should be renewed.
  bool find(const unsigned char* name, Key* out, bool* is_current);
  std::chrono::seconds ticket_lifetime() const { return period_ * (decrypt_only_ + 1); }

 private:
  void rotate_locked();

  std::mutex mu_;
  std::vector<Key> keys_;  // keys_[0] is current
  std::chrono::steady_clock::time_point current_since_;
  std::chrono::seconds period_;
  size_t decrypt_only_;
  Clock clock_;
};

// One SSL_CTX, reference-counted; freed when the last context and connection let go of it.
class SslCtxHandle {
 public:
  explicit SslCtxHandle(ssl_ctx_st* ctx) : ctx_(ctx) {}
  ~SslCtxHandle();
  SslCtxHandle(const SslCtxHandle&) = delete;
  SslCtxHandle& operator=(const SslCtxHandle&) = delete;
  ssl_ctx_st* get() const { return ctx_; }

 private:
  ssl_ctx_st* ctx_;
};

// Built SSL_CTXs by content hash, so that an unchanged TLS configuration is not rebuilt on every
// configuration change (rebuilding costs key parsing and, with a new ticket key, resumption).
// Holds weak references: a context nobody uses any more is gone. Thread-safe.
class ContextCache {
 public:
  static ContextCache& process();
  std::shared_ptr<const SslCtxHandle> find(const std::string& hash);
  void put(const std::string& hash, const std::shared_ptr<const SslCtxHandle>& ctx);
  size_t size();

 private:
  std::mutex mu_;
  std::unordered_map<std::string, std::weak_ptr<const SslCtxHandle>> entries_;
};

struct ServerOptions {
  std::shared_ptr<TicketKeyRing> ticket_keys;  // null: TicketKeyRing::process()
  ContextCache* cache = nullptr;               // null: ContextCache::process()
};

// Downstream TLS of one listener: an SSL_CTX per distinct TlsServerConfig, and the SNI map over
// the listener's virtual hosts (exact, longest "*.suffix", longest "prefix.*", "*", as the router
// chooses a virtual host; a chosen virtual host without TLS of its own, or no match, or no SNI:
// the listener's default).
class ServerContext {
 public:
  // Fails with a precise message on an unparsable certificate or key, a key that does not match
  // its certificate, an unreadable client CA bundle, an unknown ALPN length, or a listener without
  // any TLS. Expired or not-yet-valid certificates are warnings (see warnings()).
  static Result<std::shared_ptr<const ServerContext>> create(const snapshot::Listener& listener,
                                                             const ServerOptions& options = {});

  // The context chosen for `sni` (lower-case; empty: no SNI); null when nothing matches.
  ssl_ctx_st* select(std::string_view sni) const;
  // The context a new connection starts with (the default, else the first virtual host's).
  ssl_ctx_st* initial() const { return initial_; }
  const std::vector<std::string>& warnings() const { return warnings_; }

 private:
  struct Tier {
    size_t length;
    std::unordered_map<std::string, ssl_ctx_st*> names;
  };
  static void add_tier(std::vector<Tier>& tiers, std::string key, ssl_ctx_st* ctx);

  std::vector<std::shared_ptr<const SslCtxHandle>> owned_;
  ssl_ctx_st* default_ = nullptr;
  ssl_ctx_st* initial_ = nullptr;
  ssl_ctx_st* any_ = nullptr;  // "*"
  std::unordered_map<std::string, ssl_ctx_st*> exact_;
  std::vector<Tier> suffix_;  // longest first; key ".example.com"
  std::vector<Tier> prefix_;  // longest first; key "example."
  std::vector<std::string> warnings_;
};

// Upstream TLS of one cluster. The session cache (one resumable session per server name) is the
// only mutable part, behind a mutex taken once per connection.
class ClientContext {
 public:
  static Result<std::shared_ptr<const ClientContext>> create(const snapshot::TlsClientConfig& cfg);
  ~ClientContext();

  ssl_ctx_st* native_handle() const { return ctx_->get(); }
  const snapshot::TlsClientConfig& config() const { return config_; }
  const std::vector<std::string>& warnings() const { return warnings_; }

  // Session cache (used by connect()). take() returns a new reference or null.
  ssl_session_st* take_session(const std::string& key) const;
  void store_session(const std::string& key, ssl_session_st* session) const;  // takes a reference

 private:
  ClientContext() = default;

  std::shared_ptr<const SslCtxHandle> ctx_;
  snapshot::TlsClientConfig config_;  // private key cleared
  std::vector<std::string> warnings_;
  mutable std::mutex mu_;
  mutable std::unordered_map<std::string, ssl_session_st*> sessions_;
};

// Facts about a PEM certificate chain, for reports and config_dump (never the key).
struct CertificateSummary {
  std::string subject;  // RFC 2253
  std::vector<std::string> dns_sans;
  std::vector<std::string> uri_sans;
  int64_t not_after_unix = 0;
  std::string key_type;  // "EC P-256", "RSA 2048"
};
Result<CertificateSummary> summarize_certificate(std::string_view cert_chain_pem);

}  // namespace portico::proxy::tls
