// ServerContext, ClientContext, the ticket key ring, the context cache and the handshake counters.
#include "proxy/tls/context.h"

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include <algorithm>
#include <cstring>

#include "proxy/tls/openssl_util.h"

namespace portico::proxy::tls {
namespace {

// TLS 1.2: forward secrecy and AEAD only. TLS 1.3 suites are all modern.
constexpr const char* kTls12Ciphers =
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305:"
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384";
constexpr const char* kTls13Suites =
    "TLS_AES_128_GCM_SHA256:TLS_CHACHA20_POLY1305_SHA256:TLS_AES_256_GCM_SHA384";
constexpr const char* kGroups = "X25519:P-256:P-384";

int proto_version(snapshot::TlsVersion v) {
  return v == snapshot::TlsVersion::kTls13 ? TLS1_3_VERSION : TLS1_2_VERSION;
}

void ctx_data_free(void* /*parent*/, void* ptr, CRYPTO_EX_DATA* /*ad*/, int /*idx*/, long /*argl*/,
                   void* /*argp*/) {
  delete static_cast<CtxData*>(ptr);
}

int ctx_data_index() {
  static const int index = SSL_CTX_get_ex_new_index(0, nullptr, nullptr, nullptr, ctx_data_free);
  return index;
}

// A digest over every field that shapes an SSL_CTX, so that equal configurations share one.
class Hasher {
 public:
  Hasher() : md_(EVP_MD_CTX_new()) { EVP_DigestInit_ex(md_, EVP_sha256(), nullptr); }
  ~Hasher() { EVP_MD_CTX_free(md_); }
  Hasher(const Hasher&) = delete;
  Hasher& operator=(const Hasher&) = delete;
  void add(std::string_view s) {
    uint64_t n = s.size();
    EVP_DigestUpdate(md_, &n, sizeof(n));
    EVP_DigestUpdate(md_, s.data(), s.size());
  }
  void add(uint64_t v) { EVP_DigestUpdate(md_, &v, sizeof(v)); }
  std::string finish() {
    unsigned char out[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    EVP_DigestFinal_ex(md_, out, &len);
    return std::string(reinterpret_cast<char*>(out), len);
  }

 private:
  EVP_MD_CTX* md_;
};

Result<std::string> alpn_wire(const std::vector<std::string>& protocols, const std::string& what) {
  std::string wire;
  for (const auto& p : protocols) {
    if (p.empty() || p.size() > 255) {
      return Error::invalid(what + ": ALPN protocol \"" + p + "\" must have 1 to 255 bytes");
    }
    wire.push_back(static_cast<char>(p.size()));
    wire += p;
  }
  return wire;
}

// Expiry is a fact to report, not a reason to refuse the configuration (the operator may be
// rotating right now; refusing would also refuse every other change).
void check_validity(X509* leaf, const std::string& what, std::vector<std::string>* warnings) {
  if (X509_cmp_current_time(X509_get0_notAfter(leaf)) < 0) {
    warnings->push_back(what + ": certificate expired (" + subject_of(leaf) + ")");
  } else if (X509_cmp_current_time(X509_get0_notBefore(leaf)) > 0) {
    warnings->push_back(what + ": certificate not yet valid (" + subject_of(leaf) + ")");
  }
}

// Loads one certificate chain and its key into `ctx` (several per context: one per key type).
Result<X509*> use_certificate(SSL_CTX* ctx, const snapshot::TlsCertificate& c,
                              const std::string& what, std::vector<std::string>* warnings) {
  auto chain = parse_certificates(c.cert_chain_pem, what + ": certificate chain");
  if (!chain) return chain.error();
  auto key = parse_private_key(c.private_key_pem, what + ": private key");
  if (!key) return key.error();
  X509* leaf = chain.value()[0].get();
  if (X509_check_private_key(leaf, key.value().get()) != 1) {
    ERR_clear_error();
    return Error::invalid(what + ": the private key does not match the certificate (" +
                          subject_of(leaf) + ")");
  }
  check_validity(leaf, what, warnings);
  STACK_OF(X509)* extra = sk_X509_new_null();
  for (size_t i = 1; i < chain.value().size(); ++i) {
    sk_X509_push(extra, chain.value()[i].get());
  }
  int ok = SSL_CTX_use_cert_and_key(ctx, leaf, key.value().get(), extra, 1);
  sk_X509_free(extra);  // the context took its own references
  if (ok != 1) {
    return Error::invalid(what + ": OpenSSL refused the certificate: " + drain_errors());
  }
  X509_up_ref(leaf);
  return leaf;
}

Status load_ca_bundle(X509_STORE* store, std::string_view pem, const std::string& what,
                      SSL_CTX* ctx_for_client_ca_list) {
  auto cas = parse_certificates(pem, what);
  if (!cas) return cas.error();
  for (auto& ca : cas.value()) {
    if (X509_STORE_add_cert(store, ca.get()) != 1) {
      unsigned long err = ERR_peek_last_error();
      if (ERR_GET_REASON(err) != X509_R_CERT_ALREADY_IN_HASH_TABLE) {
        return Error::invalid(what + ": cannot add a CA certificate: " + drain_errors());
      }
      ERR_clear_error();
    }
    if (ctx_for_client_ca_list != nullptr) SSL_CTX_add_client_CA(ctx_for_client_ca_list, ca.get());
  }
  return {};
}

int alpn_select_cb(SSL* ssl, const unsigned char** out, unsigned char* outlen,
                   const unsigned char* in, unsigned int inlen, void* /*arg*/) {
  CtxData* data = ctx_data(SSL_get_SSL_CTX(ssl));
  if (data == nullptr || data->alpn_wire.empty()) return SSL_TLSEXT_ERR_NOACK;
  unsigned char* selected = nullptr;
  // SSL_select_next_proto walks the first list (ours): server preference.
  int r = SSL_select_next_proto(&selected, outlen,
                                reinterpret_cast<const unsigned char*>(data->alpn_wire.data()),
                                static_cast<unsigned int>(data->alpn_wire.size()), in, inlen);
  if (r != OPENSSL_NPN_NEGOTIATED) return SSL_TLSEXT_ERR_NOACK;
  *out = selected;
  return SSL_TLSEXT_ERR_OK;
}

int status_cb(SSL* ssl, void* /*arg*/) {
  CtxData* data = ctx_data(SSL_get_SSL_CTX(ssl));
  X509* cert = SSL_get_certificate(ssl);
  if (data == nullptr || cert == nullptr) return SSL_TLSEXT_ERR_NOACK;
  for (const auto& [leaf, der] : data->staples) {
    if (X509_cmp(leaf, cert) != 0) continue;
    auto* copy = static_cast<unsigned char*>(OPENSSL_malloc(der.size()));
    if (copy == nullptr) return SSL_TLSEXT_ERR_NOACK;
    std::memcpy(copy, der.data(), der.size());
    SSL_set_tlsext_status_ocsp_resp(ssl, copy, static_cast<long>(der.size()));  // takes it
    return SSL_TLSEXT_ERR_OK;
  }
  return SSL_TLSEXT_ERR_NOACK;
}

int ticket_key_cb(SSL* ssl, unsigned char key_name[16], unsigned char iv[EVP_MAX_IV_LENGTH],
                  EVP_CIPHER_CTX* cipher, EVP_MAC_CTX* mac, int enc) {
  CtxData* data = ctx_data(SSL_get_SSL_CTX(ssl));
  if (data == nullptr || !data->ticket_keys) return enc ? -1 : 0;
  TicketKeyRing::Key key;
  int result = 1;
  if (enc) {
    key = data->ticket_keys->current();
    if (RAND_bytes(iv, 16) != 1) return -1;
    std::memcpy(key_name, key.name.data(), key.name.size());
  } else {
    bool is_current = false;
    if (!data->ticket_keys->find(key_name, &key, &is_current)) return 0;  // full handshake
    // 2: accept and issue a new ticket under the current key. TLS 1.3 always gets one: OpenSSL
    // clients use a TLS 1.3 ticket once (RFC 8446, C.4), and OpenSSL servers send a new one after
    // a resumption only when asked to renew.
    result = is_current && SSL_version(ssl) != TLS1_3_VERSION ? 1 : 2;
  }
  OSSL_PARAM params[3];
  params[0] = OSSL_PARAM_construct_octet_string(OSSL_MAC_PARAM_KEY, key.hmac_key.data(),
                                                key.hmac_key.size());
  params[1] =
      OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, const_cast<char*>("SHA256"), 0);
  params[2] = OSSL_PARAM_construct_end();
  if (EVP_MAC_CTX_set_params(mac, params) != 1) return -1;
  int ok = enc ? EVP_EncryptInit_ex(cipher, EVP_aes_256_cbc(), nullptr, key.aes_key.data(), iv)
               : EVP_DecryptInit_ex(cipher, EVP_aes_256_cbc(), nullptr, key.aes_key.data(), iv);
  return ok == 1 ? result : -1;
}

// The SNI from a ClientHello's server_name extension, lower-cased; false when malformed.
bool client_hello_sni(SSL* ssl, std::string* sni) {
  const unsigned char* p = nullptr;
  size_t len = 0;
  if (SSL_client_hello_get0_ext(ssl, TLSEXT_TYPE_server_name, &p, &len) != 1) return true;
  if (len < 5) return false;
  size_t list_len = (size_t{p[0]} << 8) | p[1];
  if (list_len + 2 != len || p[2] != TLSEXT_NAMETYPE_host_name) return false;
  size_t name_len = (size_t{p[3]} << 8) | p[4];
  if (name_len == 0 || name_len + 3 > list_len) return false;
  sni->assign(reinterpret_cast<const char*>(p + 5), name_len);
  for (char& c : *sni) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  if (!sni->empty() && sni->back() == '.') sni->pop_back();
  return true;
}

// Runs before version negotiation, so that the chosen virtual host's versions, certificates,
// client-certificate policy and ALPN all apply.
int client_hello_cb(SSL* ssl, int* alert, void* /*arg*/) {
  const auto* server =
      static_cast<const ServerContext*>(SSL_get_ex_data(ssl, ssl_server_context_index()));
  if (server == nullptr) return SSL_CLIENT_HELLO_SUCCESS;
  std::string sni;
  if (!client_hello_sni(ssl, &sni)) {
    *alert = SSL_AD_DECODE_ERROR;
    SSL_set_ex_data(
        ssl, ssl_failure_hint_index(),
        reinterpret_cast<void*>(static_cast<uintptr_t>(HandshakeFailure::kProtocol) + 1));
    return SSL_CLIENT_HELLO_ERROR;
  }
  SSL_CTX* chosen = server->select(sni);
  if (chosen == nullptr) {
    *alert = SSL_AD_UNRECOGNIZED_NAME;
    SSL_set_ex_data(
        ssl, ssl_failure_hint_index(),
        reinterpret_cast<void*>(static_cast<uintptr_t>(HandshakeFailure::kUnknownServerName) + 1));
    return SSL_CLIENT_HELLO_ERROR;
  }
  if (chosen != SSL_get_SSL_CTX(ssl)) {
    SSL_set_SSL_CTX(ssl, chosen);  // certificates and session id context
    SSL_set_verify(ssl, SSL_CTX_get_verify_mode(chosen), nullptr);
    SSL_set_min_proto_version(ssl, SSL_CTX_get_min_proto_version(chosen));
    SSL_set_max_proto_version(ssl, SSL_CTX_get_max_proto_version(chosen));
  }
  return SSL_CLIENT_HELLO_SUCCESS;
}

Result<std::shared_ptr<const SslCtxHandle>> build_server_ctx(const snapshot::TlsServerConfig& cfg,
                                                             const std::string& what,
                                                             const std::string& hash,
                                                             std::shared_ptr<TicketKeyRing> ring) {
  if (cfg.certificates.empty()) return Error::invalid(what + ": no certificate");
  if (cfg.min_version > cfg.max_version) {
    return Error::invalid(what + ": min_version is above max_version");
  }
  auto alpn = alpn_wire(cfg.alpn, what);
  if (!alpn) return alpn.error();
  SSL_CTX* ctx = SSL_CTX_new(TLS_server_method());
  if (ctx == nullptr) return Error{ErrorKind::kInternal, ErrorSource::kInternal, drain_errors()};
  auto handle = std::make_shared<const SslCtxHandle>(ctx);
  auto* data = new CtxData();
  set_ctx_data(ctx, data);
  data->alpn_wire = std::move(alpn.value());
  data->allowed_client_sans = cfg.allowed_client_sans;
  data->client_identity_header = cfg.client_identity_header;
  data->ticket_keys = std::move(ring);

  SSL_CTX_set_min_proto_version(ctx, proto_version(cfg.min_version));
  SSL_CTX_set_max_proto_version(ctx, proto_version(cfg.max_version));
  SSL_CTX_set_options(
      ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION | SSL_OP_CIPHER_SERVER_PREFERENCE);
  SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
  if (SSL_CTX_set_cipher_list(ctx, kTls12Ciphers) != 1 ||
      SSL_CTX_set_ciphersuites(ctx, kTls13Suites) != 1 ||
      SSL_CTX_set1_groups_list(ctx, kGroups) != 1) {
    return Error{ErrorKind::kInternal, ErrorSource::kInternal, what + ": " + drain_errors()};
  }
  // Stateless resumption only: tickets under the ring's keys, no server-side session cache.
  SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
  SSL_CTX_set_session_id_context(ctx, reinterpret_cast<const unsigned char*>(hash.data()),
                                 std::min<size_t>(hash.size(), SSL_MAX_SID_CTX_LENGTH));
  SSL_CTX_set_num_tickets(ctx, 1);
  SSL_CTX_set_timeout(ctx, static_cast<long>(data->ticket_keys->ticket_lifetime().count()));
  SSL_CTX_set_tlsext_ticket_key_evp_cb(ctx, ticket_key_cb);
  SSL_CTX_set_client_hello_cb(ctx, client_hello_cb, nullptr);
  SSL_CTX_set_alpn_select_cb(ctx, alpn_select_cb, nullptr);

  std::vector<int> key_types;
  bool any_staple = false;
  for (size_t i = 0; i < cfg.certificates.size(); ++i) {
    const auto& c = cfg.certificates[i];
    std::string cwhat = what + ": certificate " + std::to_string(i + 1) +
                        (c.secret.empty() ? "" : " (secret " + c.secret + ")");
    auto leaf = use_certificate(ctx, c, cwhat, &data->warnings);
    if (!leaf) return leaf.error();
    int type = EVP_PKEY_get_base_id(X509_get0_pubkey(leaf.value()));
    if (std::find(key_types.begin(), key_types.end(), type) != key_types.end()) {
      X509_free(leaf.value());
      return Error::invalid(cwhat +
                            ": two certificates with the same key type; give one per "
                            "key type (e.g. one ECDSA, one RSA)");
    }
    key_types.push_back(type);
    if (!c.ocsp_staple.empty()) {
      data->staples.emplace_back(leaf.value(), c.ocsp_staple);
      any_staple = true;
    } else {
      X509_free(leaf.value());
    }
  }
  if (any_staple) SSL_CTX_set_tlsext_status_cb(ctx, status_cb);

  if (!cfg.client_ca_pem.empty()) {
    std::string cawhat =
        what + ": client CA bundle" +
        (cfg.client_ca_secret.empty() ? "" : " (secret " + cfg.client_ca_secret + ")");
    auto st = load_ca_bundle(SSL_CTX_get_cert_store(ctx), cfg.client_ca_pem, cawhat, ctx);
    if (!st) return st.error();
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, nullptr);
    SSL_CTX_set_verify_depth(ctx, 10);
  } else if (!cfg.allowed_client_sans.empty()) {
    return Error::invalid(what + ": allowed_client_sans needs a client CA bundle");
  }
  return handle;
}

std::string server_hash(const snapshot::TlsServerConfig& cfg, const TicketKeyRing* ring) {
  Hasher h;
  h.add("server");
  h.add(reinterpret_cast<uintptr_t>(ring));
  for (const auto& c : cfg.certificates) {
    h.add(c.cert_chain_pem);
    h.add(c.private_key_pem);
    h.add(c.ocsp_staple);
  }
  h.add(static_cast<uint64_t>(cfg.min_version));
  h.add(static_cast<uint64_t>(cfg.max_version));
  h.add(cfg.alpn.size());
  for (const auto& a : cfg.alpn)
    h.add(a);
  h.add(cfg.client_ca_pem);
  h.add(cfg.allowed_client_sans.size());
  for (const auto& s : cfg.allowed_client_sans)
    h.add(s);
  h.add(cfg.client_identity_header);
  return h.finish();
}

int client_new_session_cb(SSL* ssl, SSL_SESSION* session) {
  const auto* client =
      static_cast<const ClientContext*>(SSL_get_ex_data(ssl, ssl_client_context_index()));
  const auto* key = static_cast<const std::string*>(SSL_get_ex_data(ssl, ssl_session_key_index()));
  if (client == nullptr || key == nullptr) return 0;
  client->store_session(*key, session);
  return 1;  // we keep the reference
}

std::mutex& client_cache_mu() {
  static std::mutex mu;
  return mu;
}
std::unordered_map<std::string, std::weak_ptr<const ClientContext>>& client_cache() {
  static auto* cache = new std::unordered_map<std::string, std::weak_ptr<const ClientContext>>();
  return *cache;
}

std::string client_hash(const snapshot::TlsClientConfig& cfg) {
  Hasher h;
  h.add("client");
  h.add(cfg.sni);
  h.add(cfg.ca_pem);
  h.add(cfg.verify_names.size());
  for (const auto& n : cfg.verify_names)
    h.add(n);
  h.add(cfg.insecure_skip_verify ? 1 : 0);
  h.add(cfg.client_certificate ? 1 : 0);
  if (cfg.client_certificate) {
    h.add(cfg.client_certificate->cert_chain_pem);
    h.add(cfg.client_certificate->private_key_pem);
  }
  h.add(cfg.alpn.size());
  for (const auto& a : cfg.alpn)
    h.add(a);
  h.add(static_cast<uint64_t>(cfg.min_version));
  return h.finish();
}

}  // namespace

// ---- openssl_util.h ----

CtxData::~CtxData() {
  for (auto& [leaf, der] : staples)
    X509_free(leaf);
}

CtxData* ctx_data(const SSL_CTX* ctx) {
  return static_cast<CtxData*>(SSL_CTX_get_ex_data(ctx, ctx_data_index()));
}

void set_ctx_data(SSL_CTX* ctx, CtxData* data) {
  SSL_CTX_set_ex_data(ctx, ctx_data_index(), data);
}

int ssl_server_context_index() {
  static const int index = SSL_get_ex_new_index(0, nullptr, nullptr, nullptr, nullptr);
  return index;
}
int ssl_client_context_index() {
  static const int index = SSL_get_ex_new_index(0, nullptr, nullptr, nullptr, nullptr);
  return index;
}
int ssl_session_key_index() {
  static const int index = SSL_get_ex_new_index(0, nullptr, nullptr, nullptr, nullptr);
  return index;
}
int ssl_failure_hint_index() {
  static const int index = SSL_get_ex_new_index(0, nullptr, nullptr, nullptr, nullptr);
  return index;
}

std::string drain_errors() {
  std::string out;
  while (unsigned long e = ERR_get_error()) {
    char buf[256];
    ERR_error_string_n(e, buf, sizeof(buf));
    if (!out.empty()) out += "; ";
    out += buf;
  }
  return out.empty() ? "unknown OpenSSL error" : out;
}

Result<std::vector<X509Ptr>> parse_certificates(std::string_view pem, const std::string& what) {
  BIO* bio = BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size()));
  std::vector<X509Ptr> out;
  while (X509* x = PEM_read_bio_X509(bio, nullptr, nullptr, nullptr)) {
    out.emplace_back(x);
  }
  BIO_free(bio);
  unsigned long err = ERR_peek_last_error();
  if (ERR_GET_LIB(err) == ERR_LIB_PEM && ERR_GET_REASON(err) == PEM_R_NO_START_LINE &&
      !out.empty()) {
    ERR_clear_error();  // the normal end of the bundle
  } else if (err != 0) {
    return Error::invalid(what + ": cannot parse PEM certificate " +
                          std::to_string(out.size() + 1) + ": " + drain_errors());
  }
  if (out.empty()) return Error::invalid(what + ": no PEM certificate found");
  return out;
}

Result<PkeyPtr> parse_private_key(std::string_view pem, const std::string& what) {
  BIO* bio = BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size()));
  EVP_PKEY* key = PEM_read_bio_PrivateKey(bio, nullptr, nullptr, nullptr);
  BIO_free(bio);
  if (key == nullptr) {
    ERR_clear_error();  // the reason may quote key material: never echo it
    return Error::invalid(what +
                          ": cannot parse PEM private key (unencrypted PKCS#8, PKCS#1 or "
                          "SEC1 expected)");
  }
  return PkeyPtr(key);
}

std::string subject_of(X509* cert) {
  BIO* bio = BIO_new(BIO_s_mem());
  X509_NAME_print_ex(bio, X509_get_subject_name(cert), 0, XN_FLAG_RFC2253 & ~ASN1_STRFLGS_ESC_MSB);
  char* data = nullptr;
  long len = BIO_get_mem_data(bio, &data);
  std::string out(data, static_cast<size_t>(len));
  BIO_free(bio);
  return out;
}

void sans_of(X509* cert, std::vector<std::string>* dns, std::vector<std::string>* uri) {
  auto* names =
      static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(cert, NID_subject_alt_name, nullptr, nullptr));
  if (names == nullptr) return;
  for (int i = 0; i < sk_GENERAL_NAME_num(names); ++i) {
    const GENERAL_NAME* n = sk_GENERAL_NAME_value(names, i);
    if (n->type == GEN_DNS && dns != nullptr) {
      dns->emplace_back(reinterpret_cast<const char*>(ASN1_STRING_get0_data(n->d.dNSName)),
                        ASN1_STRING_length(n->d.dNSName));
    } else if (n->type == GEN_URI && uri != nullptr) {
      uri->emplace_back(
          reinterpret_cast<const char*>(ASN1_STRING_get0_data(n->d.uniformResourceIdentifier)),
          ASN1_STRING_length(n->d.uniformResourceIdentifier));
    }
  }
  GENERAL_NAMES_free(names);
}

// ---- context.h ----

const char* failure_name(HandshakeFailure failure) {
  switch (failure) {
    case HandshakeFailure::kNoSharedCipher:
      return "no_shared_cipher";
    case HandshakeFailure::kVersionTooOld:
      return "unsupported_version";
    case HandshakeFailure::kNoClientCert:
      return "no_client_certificate";
    case HandshakeFailure::kUnknownCa:
      return "unknown_ca";
    case HandshakeFailure::kBadCertificate:
      return "bad_certificate";
    case HandshakeFailure::kSanNotAllowed:
      return "san_not_allowed";
    case HandshakeFailure::kUnknownServerName:
      return "unknown_server_name";
    case HandshakeFailure::kTimeout:
      return "timeout";
    case HandshakeFailure::kPeerClosed:
      return "peer_closed";
    case HandshakeFailure::kProtocol:
      return "protocol_error";
    case HandshakeFailure::kOther:
      return "other";
  }
  return "other";
}

HandshakeStats& downstream_stats() {
  static HandshakeStats stats;
  return stats;
}
HandshakeStats& upstream_stats() {
  static HandshakeStats stats;
  return stats;
}

TicketKeyRing::TicketKeyRing(std::chrono::seconds period, size_t decrypt_only, Clock clock)
    : period_(period), decrypt_only_(decrypt_only), clock_(std::move(clock)) {
  if (!clock_) clock_ = [] { return std::chrono::steady_clock::now(); };
  std::lock_guard lock(mu_);
  rotate_locked();
}

std::shared_ptr<TicketKeyRing> TicketKeyRing::process() {
  static auto ring = std::make_shared<TicketKeyRing>();
  return ring;
}

void TicketKeyRing::rotate() {
  std::lock_guard lock(mu_);
  rotate_locked();
}

void TicketKeyRing::rotate_locked() {
  Key key;
  if (RAND_bytes(key.name.data(), key.name.size()) != 1 ||
      RAND_bytes(key.aes_key.data(), key.aes_key.size()) != 1 ||
      RAND_bytes(key.hmac_key.data(), key.hmac_key.size()) != 1) {
    // No randomness: keep the current key rather than issue tickets under a predictable one.
    if (!keys_.empty()) return;
  }
  keys_.insert(keys_.begin(), key);
  if (keys_.size() > decrypt_only_ + 1) keys_.resize(decrypt_only_ + 1);
  current_since_ = clock_();
}

TicketKeyRing::Key TicketKeyRing::current() {
  std::lock_guard lock(mu_);
  if (clock_() - current_since_ >= period_) rotate_locked();
  return keys_.front();
}

bool TicketKeyRing::find(const unsigned char* name, Key* out, bool* is_current) {
  std::lock_guard lock(mu_);
  for (size_t i = 0; i < keys_.size(); ++i) {
    if (std::memcmp(keys_[i].name.data(), name, keys_[i].name.size()) == 0) {
      *out = keys_[i];
      *is_current = i == 0 && clock_() - current_since_ < period_;
      return true;
    }
  }
  return false;
}

SslCtxHandle::~SslCtxHandle() {
  SSL_CTX_free(ctx_);
}

ContextCache& ContextCache::process() {
  static auto* cache = new ContextCache();
  return *cache;
}

std::shared_ptr<const SslCtxHandle> ContextCache::find(const std::string& hash) {
  std::lock_guard lock(mu_);
  auto it = entries_.find(hash);
  if (it == entries_.end()) return nullptr;
  auto ctx = it->second.lock();
  if (!ctx) entries_.erase(it);
  return ctx;
}

void ContextCache::put(const std::string& hash, const std::shared_ptr<const SslCtxHandle>& ctx) {
  std::lock_guard lock(mu_);
  for (auto it = entries_.begin(); it != entries_.end();) {  // drop the dead ones
    it = it->second.expired() ? entries_.erase(it) : std::next(it);
  }
  entries_[hash] = ctx;
}

size_t ContextCache::size() {
  std::lock_guard lock(mu_);
  size_t n = 0;
  for (const auto& [hash, weak] : entries_)
    n += weak.expired() ? 0 : 1;
  return n;
}

Result<std::shared_ptr<const ServerContext>> ServerContext::create(
    const snapshot::Listener& listener, const ServerOptions& options) {
  std::shared_ptr<TicketKeyRing> ring =
      options.ticket_keys ? options.ticket_keys : TicketKeyRing::process();
  ContextCache& cache = options.cache != nullptr ? *options.cache : ContextCache::process();
  auto out = std::shared_ptr<ServerContext>(new ServerContext());

  auto get = [&](const snapshot::TlsServerConfig& cfg,
                 const std::string& what) -> Result<SSL_CTX*> {
    std::string hash = server_hash(cfg, ring.get());
    std::shared_ptr<const SslCtxHandle> ctx = cache.find(hash);
    if (!ctx) {
      auto built = build_server_ctx(cfg, what, hash, ring);
      if (!built) return built.error();
      ctx = std::move(built.value());
      cache.put(hash, ctx);
    }
    for (const auto& w : ctx_data(ctx->get())->warnings) {
      if (std::find(out->warnings_.begin(), out->warnings_.end(), w) == out->warnings_.end()) {
        out->warnings_.push_back(w);
      }
    }
    out->owned_.push_back(ctx);
    return ctx->get();
  };

  if (listener.tls) {
    auto ctx = get(*listener.tls, "listener " + listener.name + ": tls");
    if (!ctx) return ctx.error();
    out->default_ = ctx.value();
  }
  for (const auto& vh_ptr : listener.virtual_hosts) {
    const snapshot::VirtualHost& vh = *vh_ptr;
    SSL_CTX* ctx = out->default_;
    if (vh.tls) {
      auto built = get(*vh.tls, "virtual host " + vh.name + ": tls");
      if (!built) return built.error();
      ctx = built.value();
      if (out->initial_ == nullptr) out->initial_ = ctx;
    }
    for (const auto& raw : vh.domains) {
      std::string domain;
      for (char c : raw)
        domain.push_back(c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c);
      if (domain.empty()) continue;
      if (domain == "*") {
        if (out->any_ == nullptr && ctx != nullptr) out->any_ = ctx;
        continue;
      }
      // A server name has no port: domains that name one never match an SNI.
      if (domain.find(':') != std::string::npos) continue;
      if (domain.front() == '*') {
        add_tier(out->suffix_, domain.substr(1), ctx);
      } else if (domain.back() == '*') {
        domain.pop_back();
        add_tier(out->prefix_, std::move(domain), ctx);
      } else {
        out->exact_.emplace(std::move(domain), ctx);  // the first virtual host naming it wins
      }
    }
  }
  if (out->default_ != nullptr) out->initial_ = out->default_;
  if (out->initial_ == nullptr) {
    return Error::invalid("listener " + listener.name + ": no TLS configuration");
  }
  return std::shared_ptr<const ServerContext>(std::move(out));
}

void ServerContext::add_tier(std::vector<Tier>& tiers, std::string key, SSL_CTX* ctx) {
  size_t length = key.size();
  auto it =
      std::find_if(tiers.begin(), tiers.end(), [&](const Tier& t) { return t.length <= length; });
  if (it == tiers.end() || it->length != length) it = tiers.insert(it, Tier{length, {}});
  it->names.emplace(std::move(key), ctx);
}

SSL_CTX* ServerContext::select(std::string_view sni) const {
  if (sni.empty()) return default_;
  if (!exact_.empty()) {
    auto it = exact_.find(std::string(sni));
    if (it != exact_.end()) return it->second;
  }
  for (const auto& tier : suffix_) {  // longest first; the '*' stands for at least one character
    if (tier.length >= sni.size()) continue;
    auto it = tier.names.find(std::string(sni.substr(sni.size() - tier.length)));
    if (it != tier.names.end()) return it->second;
  }
  for (const auto& tier : prefix_) {
    if (tier.length >= sni.size()) continue;
    auto it = tier.names.find(std::string(sni.substr(0, tier.length)));
    if (it != tier.names.end()) return it->second;
  }
  if (any_ != nullptr) return any_;
  return default_;
}

Result<std::shared_ptr<const ClientContext>> ClientContext::create(
    const snapshot::TlsClientConfig& cfg) {
  std::string hash = client_hash(cfg);
  {
    std::lock_guard lock(client_cache_mu());
    auto it = client_cache().find(hash);
    if (it != client_cache().end()) {
      if (auto existing = it->second.lock()) return existing;
    }
  }
  const std::string what = "upstream tls";
  if (cfg.insecure_skip_verify && (!cfg.ca_pem.empty() || !cfg.verify_names.empty())) {
    return Error::invalid(what + ": insecure_skip_verify excludes ca and verify_names");
  }
  auto alpn = alpn_wire(cfg.alpn, what);
  if (!alpn) return alpn.error();
  SSL_CTX* ctx = SSL_CTX_new(TLS_client_method());
  if (ctx == nullptr) return Error{ErrorKind::kInternal, ErrorSource::kInternal, drain_errors()};
  auto out = std::shared_ptr<ClientContext>(new ClientContext());
  out->ctx_ = std::make_shared<const SslCtxHandle>(ctx);
  out->config_ = cfg;
  if (out->config_.client_certificate) out->config_.client_certificate->private_key_pem.clear();

  SSL_CTX_set_min_proto_version(ctx, proto_version(cfg.min_version));
  SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION);
  SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION);
  SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
  if (SSL_CTX_set_cipher_list(ctx, kTls12Ciphers) != 1 ||
      SSL_CTX_set_ciphersuites(ctx, kTls13Suites) != 1 ||
      SSL_CTX_set1_groups_list(ctx, kGroups) != 1) {
    return Error{ErrorKind::kInternal, ErrorSource::kInternal, what + ": " + drain_errors()};
  }
  if (!alpn.value().empty() &&
      SSL_CTX_set_alpn_protos(ctx, reinterpret_cast<const unsigned char*>(alpn.value().data()),
                              static_cast<unsigned int>(alpn.value().size())) != 0) {
    return Error::invalid(what + ": cannot set ALPN: " + drain_errors());
  }
  if (cfg.insecure_skip_verify) {
    SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, nullptr);
  } else {
    if (!cfg.ca_pem.empty()) {
      std::string cawhat =
          what + ": CA bundle" + (cfg.ca_secret.empty() ? "" : " (secret " + cfg.ca_secret + ")");
      auto st = load_ca_bundle(SSL_CTX_get_cert_store(ctx), cfg.ca_pem, cawhat, nullptr);
      if (!st) return st.error();
    } else if (SSL_CTX_set_default_verify_paths(ctx) != 1) {
      return Error::invalid(what + ": cannot load the system CA store: " + drain_errors());
    }
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nullptr);
    SSL_CTX_set_verify_depth(ctx, 10);
  }
  if (cfg.client_certificate) {
    const auto& c = *cfg.client_certificate;
    std::string cwhat =
        what + ": client certificate" + (c.secret.empty() ? "" : " (secret " + c.secret + ")");
    auto leaf = use_certificate(ctx, c, cwhat, &out->warnings_);
    if (!leaf) return leaf.error();
    X509_free(leaf.value());
  }
  SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
  SSL_CTX_sess_set_new_cb(ctx, client_new_session_cb);

  std::lock_guard lock(client_cache_mu());
  auto& cache = client_cache();
  for (auto it = cache.begin(); it != cache.end();) {
    it = it->second.expired() ? cache.erase(it) : std::next(it);
  }
  cache[hash] = out;
  return std::shared_ptr<const ClientContext>(std::move(out));
}

ClientContext::~ClientContext() {
  for (auto& [key, session] : sessions_)
    SSL_SESSION_free(session);
}

SSL_SESSION* ClientContext::take_session(const std::string& key) const {
  std::lock_guard lock(mu_);
  auto it = sessions_.find(key);
  if (it == sessions_.end()) return nullptr;
  SSL_SESSION* s = it->second;
  if (SSL_SESSION_is_resumable(s) != 1) {
    SSL_SESSION_free(s);
    sessions_.erase(it);
    return nullptr;
  }
  SSL_SESSION_up_ref(s);
  return s;
}

void ClientContext::store_session(const std::string& key, SSL_SESSION* session) const {
  std::lock_guard lock(mu_);
  auto [it, inserted] = sessions_.emplace(key, session);
  if (!inserted) {
    SSL_SESSION_free(it->second);
    it->second = session;
  }
}

}  // namespace portico::proxy::tls
