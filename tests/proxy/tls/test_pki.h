// Test-only PKI: CAs, server and client certificates made with the OpenSSL API at test time
// (nothing on disk), and snapshot TLS configurations built from them. Test threads only.
#pragma once

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "snapshot/proxy_config.h"

namespace portico::tls_test {

struct Issued {
  std::shared_ptr<X509> cert;
  std::shared_ptr<EVP_PKEY> key;
  std::string cert_pem;
  std::string key_pem;

  snapshot::TlsCertificate certificate(std::string chain_extra = {}) const {
    snapshot::TlsCertificate c;
    c.secret = "default/test";
    c.cert_chain_pem = cert_pem + chain_extra;
    c.private_key_pem = key_pem;
    return c;
  }
};

enum class KeyKind { kEcdsa, kRsa };

inline std::shared_ptr<EVP_PKEY> make_key(KeyKind kind) {
  EVP_PKEY* k = kind == KeyKind::kRsa ? EVP_RSA_gen(2048) : EVP_EC_gen("P-256");
  if (k == nullptr) throw std::runtime_error("key generation failed");
  return std::shared_ptr<EVP_PKEY>(k, EVP_PKEY_free);
}

inline std::string to_pem(X509* x) {
  BIO* bio = BIO_new(BIO_s_mem());
  PEM_write_bio_X509(bio, x);
  char* data = nullptr;
  long len = BIO_get_mem_data(bio, &data);
  std::string out(data, static_cast<size_t>(len));
  BIO_free(bio);
  return out;
}

inline std::string to_pem(EVP_PKEY* k) {
  BIO* bio = BIO_new(BIO_s_mem());
  PEM_write_bio_PrivateKey(bio, k, nullptr, nullptr, 0, nullptr, nullptr);
  char* data = nullptr;
  long len = BIO_get_mem_data(bio, &data);
  std::string out(data, static_cast<size_t>(len));
  BIO_free(bio);
  return out;
}

inline void add_ext(X509* x, X509* issuer, int nid, const std::string& value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer, x, nullptr, nullptr, 0);
  X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value.c_str());
  if (ext == nullptr) throw std::runtime_error("bad extension " + value);
  X509_add_ext(x, ext, -1);
  X509_EXTENSION_free(ext);
}

// sans: "DNS:a.example.com,URI:spiffe://x" (empty: none). issuer null: self-signed CA.
inline Issued issue(const std::string& cn, KeyKind kind, const Issued* issuer,
                    const std::string& sans = {}, bool ca = false, long not_before = -3600,
                    long not_after = 86400) {
  static long serial = 1000;
  Issued out;
  out.key = make_key(kind);
  X509* x = X509_new();
  X509_set_version(x, 2);
  ASN1_INTEGER_set(X509_get_serialNumber(x), ++serial);
  X509_gmtime_adj(X509_getm_notBefore(x), not_before);
  X509_gmtime_adj(X509_getm_notAfter(x), not_after);
  X509_set_pubkey(x, out.key.get());
  X509_NAME* name = X509_get_subject_name(x);
  X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>("Portico Test"), -1, -1, 0);
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>(cn.c_str()), -1, -1, 0);
  X509* issuer_cert = issuer != nullptr ? issuer->cert.get() : x;
  X509_set_issuer_name(x, X509_get_subject_name(issuer_cert));
  if (ca) {
    add_ext(x, issuer_cert, NID_basic_constraints, "critical,CA:TRUE");
    add_ext(x, issuer_cert, NID_key_usage, "critical,keyCertSign,cRLSign");
  } else {
    add_ext(x, issuer_cert, NID_basic_constraints, "CA:FALSE");
  }
  add_ext(x, issuer_cert, NID_subject_key_identifier, "hash");
  if (!sans.empty()) add_ext(x, issuer_cert, NID_subject_alt_name, sans);
  EVP_PKEY* signer = issuer != nullptr ? issuer->key.get() : out.key.get();
  if (X509_sign(x, signer, EVP_sha256()) == 0) throw std::runtime_error("sign failed");
  out.cert = std::shared_ptr<X509>(x, X509_free);
  out.cert_pem = to_pem(x);
  out.key_pem = to_pem(out.key.get());
  return out;
}

// The PKI most tests share (RSA keys are slow to make: made once per process).
struct Pki {
  Issued ca = issue("Test CA", KeyKind::kEcdsa, nullptr, {}, true);
  Issued foreign_ca = issue("Foreign CA", KeyKind::kEcdsa, nullptr, {}, true);
  Issued server_ec = issue("server-ec", KeyKind::kEcdsa, &ca,
                           "DNS:server.test,DNS:*.wild.test,URI:spiffe://test/server");
  Issued server_rsa = issue("server-rsa", KeyKind::kRsa, &ca, "DNS:server.test");
  Issued vhost_a = issue("vhost-a", KeyKind::kEcdsa, &ca, "DNS:a.example.com");
  Issued vhost_wild = issue("vhost-wild", KeyKind::kEcdsa, &ca, "DNS:*.wild.example.com");
  Issued client = issue("client-1", KeyKind::kEcdsa, &ca, "URI:spiffe://test/client,DNS:c.test");
  Issued client_dns = issue("client-2", KeyKind::kEcdsa, &ca, "DNS:only-dns.test");
  Issued client_foreign =
      issue("intruder", KeyKind::kEcdsa, &foreign_ca, "URI:spiffe://test/client");
  Issued expired =
      issue("expired", KeyKind::kEcdsa, &ca, "DNS:server.test", false, -86400 * 10, -86400);

  static const Pki& get() {
    static const Pki pki;
    return pki;
  }
};

inline snapshot::TlsServerConfig server_config(const Issued& cert) {
  snapshot::TlsServerConfig c;
  c.certificates.push_back(cert.certificate());
  return c;
}

inline snapshot::Listener listener_with(const snapshot::TlsServerConfig& tls) {
  snapshot::Listener l;
  l.name = "default/gw";
  l.tls = tls;
  return l;
}

}  // namespace portico::tls_test
