// Internals shared by the TLS .cc files (not for use outside src/proxy/tls): OpenSSL ownership
// helpers, ex-data slots and the per-SSL_CTX data. Any thread; the data is immutable once built.
#pragma once

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"

namespace portico::proxy::tls {

class TicketKeyRing;

struct X509Free {
  void operator()(X509* x) const { X509_free(x); }
};
struct PkeyFree {
  void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
};
using X509Ptr = std::unique_ptr<X509, X509Free>;
using PkeyPtr = std::unique_ptr<EVP_PKEY, PkeyFree>;

// What a server SSL_CTX needs at handshake time; owned by the SSL_CTX (freed with it), so that a
// connection that outlives its configuration still finds it.
struct CtxData {
  std::string alpn_wire;  // server preference, length-prefixed
  std::vector<std::string> allowed_client_sans;
  std::string client_identity_header;
  std::vector<std::pair<X509*, std::string>> staples;  // leaf (referenced) → DER OCSP response
  std::shared_ptr<TicketKeyRing> ticket_keys;
  std::vector<std::string> warnings;  // found while building; reported again on cache hits
  ~CtxData();
};

CtxData* ctx_data(const SSL_CTX* ctx);
void set_ctx_data(SSL_CTX* ctx, CtxData* data);  // takes ownership

// SSL ex-data slots (index 0, SSL_set_app_data, is left alone).
int ssl_server_context_index();  // const ServerContext* during the handshake
int ssl_client_context_index();  // const ClientContext* (the transport keeps it alive)
int ssl_session_key_index();     // const std::string* (session cache key)
int ssl_failure_hint_index();    // HandshakeFailure + 1, set by callbacks that refuse

// The OpenSSL error queue as text (and cleared).
std::string drain_errors();

// Every certificate in `pem`, in order; an error names `what` and OpenSSL's reason.
Result<std::vector<X509Ptr>> parse_certificates(std::string_view pem, const std::string& what);
Result<PkeyPtr> parse_private_key(std::string_view pem, const std::string& what);

std::string subject_of(X509* cert);  // RFC 2253
void sans_of(X509* cert, std::vector<std::string>* dns, std::vector<std::string>* uri);

}  // namespace portico::proxy::tls
