#include "control/translate/tls_material.h"

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ocsp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <cctype>
#include <fstream>
#include <memory>
#include <system_error>

namespace portico::control {
namespace {

struct BioFree {
  void operator()(BIO* b) const { BIO_free(b); }
};
struct X509Free {
  void operator()(X509* x) const { X509_free(x); }
};
struct PkeyFree {
  void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
};
using BioPtr = std::unique_ptr<BIO, BioFree>;
using X509Ptr = std::unique_ptr<X509, X509Free>;
using PkeyPtr = std::unique_ptr<EVP_PKEY, PkeyFree>;

// Never prompts for a pass phrase (OpenSSL's default reads one from the terminal).
int no_password(char*, int, int, void*) {
  return 0;
}

BioPtr memory_bio(const std::string& text) {
  return BioPtr(BIO_new_mem_buf(text.data(), static_cast<int>(text.size())));
}

// The first OpenSSL error's reason ("no start line", "bad decrypt"...), and the queue cleared.
std::string openssl_reason() {
  unsigned long e = ERR_peek_error();
  std::string out;
  if (e != 0) {
    const char* reason = ERR_reason_error_string(e);
    if (reason != nullptr) out = reason;
  }
  ERR_clear_error();
  return out;
}

// Every certificate of a PEM text; the count, 0 when none parses. *bad is set when a PEM block
// that should be a certificate does not parse.
int count_certificates(const std::string& pem, X509Ptr* first, std::string* error) {
  BioPtr bio = memory_bio(pem);
  if (!bio) return 0;
  int n = 0;
  for (;;) {
    X509* x = PEM_read_bio_X509(bio.get(), nullptr, no_password, nullptr);
    if (x == nullptr) break;
    if (n == 0 && first != nullptr) {
      first->reset(x);
    } else {
      X509_free(x);
    }
    ++n;
  }
  // The loop ends with "no start line" at the end of the text; anything else is a broken block.
  unsigned long e = ERR_peek_last_error();
  if (e != 0 && ERR_GET_REASON(e) != PEM_R_NO_START_LINE) *error = openssl_reason();
  ERR_clear_error();
  return n;
}

bool has_private_key_block(const std::string& pem) {
  return pem.find("PRIVATE KEY-----") != std::string::npos;
}

}  // namespace

std::filesystem::path material_path(const std::filesystem::path& dir, const std::string& file) {
  std::filesystem::path p(file);
  if (p.is_absolute() || dir.empty()) return p;
  return dir / p;
}

std::optional<std::string> load_material(const api::SecretMaterial& m,
                                         const std::filesystem::path& dir, std::string* error) {
  if (m.file.empty()) return m.inline_value;
  std::filesystem::path path = material_path(dir, m.file);
  std::error_code ec;
  auto status = std::filesystem::status(path, ec);
  if (ec || !std::filesystem::exists(status)) {
    *error = "cannot read " + path.string() + ": no such file";
    return std::nullopt;
  }
  if (!std::filesystem::is_regular_file(status)) {
    *error = "cannot read " + path.string() + ": not a regular file";
    return std::nullopt;
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    *error = "cannot read " + path.string() + ": permission denied or unreadable";
    return std::nullopt;
  }
  std::string content;
  char buf[16384];
  while (in.read(buf, sizeof buf) || in.gcount() > 0) {
    content.append(buf, static_cast<size_t>(in.gcount()));
    if (content.size() > kMaxMaterialFileBytes) {
      *error = "cannot read " + path.string() + ": larger than 1 MiB";
      return std::nullopt;
    }
  }
  if (in.bad()) {
    *error = "cannot read " + path.string() + ": I/O error";
    return std::nullopt;
  }
  if (content.empty()) {
    *error = path.string() + " is empty";
    return std::nullopt;
  }
  return content;
}

std::string check_cert_chain(const std::string& pem) {
  if (has_private_key_block(pem)) {
    return "contains a private key; put it in privateKey (certChain is shown in status)";
  }
  std::string error;
  int n = count_certificates(pem, nullptr, &error);
  if (!error.empty()) return "a certificate does not parse (" + error + ")";
  if (n == 0) return "no PEM certificate found (expected -----BEGIN CERTIFICATE-----)";
  return "";
}

std::string check_private_key(const std::string& pem) {
  if (pem.find("ENCRYPTED PRIVATE KEY") != std::string::npos ||
      pem.find("Proc-Type: 4,ENCRYPTED") != std::string::npos) {
    return "encrypted private keys are not supported; store the key unencrypted in a Secret "
           "with restricted access";
  }
  BioPtr bio = memory_bio(pem);
  PkeyPtr key(bio ? PEM_read_bio_PrivateKey(bio.get(), nullptr, no_password, nullptr) : nullptr);
  if (!key) {
    std::string reason = openssl_reason();
    return "no PEM private key found" + (reason.empty() ? "" : " (" + reason + ")");
  }
  ERR_clear_error();
  return "";
}

std::string check_key_matches(const std::string& cert_pem, const std::string& key_pem) {
  X509Ptr leaf;
  std::string error;
  if (count_certificates(cert_pem, &leaf, &error) == 0 || !leaf) return "";  // reported already
  BioPtr bio = memory_bio(key_pem);
  PkeyPtr key(bio ? PEM_read_bio_PrivateKey(bio.get(), nullptr, no_password, nullptr) : nullptr);
  if (!key) {
    ERR_clear_error();
    return "";  // reported already
  }
  int ok = X509_check_private_key(leaf.get(), key.get());
  ERR_clear_error();
  if (ok != 1) return "the private key does not match the certificate (the chain's first one)";
  return "";
}

std::string check_ca_bundle(const std::string& pem) {
  if (has_private_key_block(pem)) return "contains a private key; a CA bundle holds certificates";
  std::string error;
  int n = count_certificates(pem, nullptr, &error);
  if (!error.empty()) return "a CA certificate does not parse (" + error + ")";
  if (n == 0) return "no PEM certificate found (expected -----BEGIN CERTIFICATE-----)";
  return "";
}

std::optional<std::string> decode_ocsp_response(const std::string& value, bool base64,
                                                std::string* error) {
  std::string der;
  if (base64) {
    std::string text;
    for (char c : value) {
      if (!std::isspace(static_cast<unsigned char>(c))) text += c;
    }
    if (text.empty() || text.size() % 4 != 0) {
      *error = "is not base64 (of a DER OCSP response)";
      return std::nullopt;
    }
    der.resize(text.size() / 4 * 3);
    int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(der.data()),
                            reinterpret_cast<const unsigned char*>(text.data()),
                            static_cast<int>(text.size()));
    if (n < 0) {
      ERR_clear_error();
      *error = "is not base64 (of a DER OCSP response)";
      return std::nullopt;
    }
    size_t padding = 0;
    if (text.back() == '=') ++padding;
    if (text.size() >= 2 && text[text.size() - 2] == '=') ++padding;
    der.resize(static_cast<size_t>(n) - padding);
  } else {
    der = value;
  }
  const unsigned char* p = reinterpret_cast<const unsigned char*>(der.data());
  OCSP_RESPONSE* resp = d2i_OCSP_RESPONSE(nullptr, &p, static_cast<long>(der.size()));
  if (resp == nullptr) {
    ERR_clear_error();
    *error = "is not a DER OCSP response";
    return std::nullopt;
  }
  OCSP_RESPONSE_free(resp);
  return der;
}

}  // namespace portico::control
