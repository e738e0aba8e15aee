#include "cli/fleet_auth.h"

#include <openssl/crypto.h>
#include <openssl/sha.h>

#include <cctype>
#include <fstream>
#include <sstream>

namespace portico::cli {

bool read_token_file(const std::string& path, std::string* token, std::string* error) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    *error = "cannot read token file " + path;
    return false;
  }
  std::stringstream ss;
  ss << in.rdbuf();
  std::string t = ss.str();
  while (!t.empty() && std::isspace(static_cast<unsigned char>(t.back())))
    t.pop_back();
  size_t start = 0;
  while (start < t.size() && std::isspace(static_cast<unsigned char>(t[start])))
    ++start;
  t = t.substr(start);
  if (t.empty()) {
    *error = "token file " + path + " is empty";
    return false;
  }
  *token = std::move(t);
  return true;
}

bool bearer_matches(std::string_view authorization, const std::string& token) {
  constexpr std::string_view kPrefix = "Bearer ";
  std::string_view given;
  if (authorization.size() > kPrefix.size() &&
      std::equal(kPrefix.begin(), kPrefix.end(), authorization.begin(),
                 [](char a, char b) { return std::tolower(a) == std::tolower(b); })) {
    given = authorization.substr(kPrefix.size());
  }
  // Digests of equal length, compared in constant time: neither content nor length leaks.
  unsigned char a[SHA256_DIGEST_LENGTH], b[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(given.data()), given.size(), a);
  SHA256(reinterpret_cast<const unsigned char*>(token.data()), token.size(), b);
  return !given.empty() && CRYPTO_memcmp(a, b, sizeof a) == 0;
}

bool is_loopback(const std::string& address) {
  return address.rfind("127.", 0) == 0 || address == "::1" || address == "localhost";
}

namespace {
std::string& token_storage() {
  static std::string token;
  return token;
}
}  // namespace

void set_admin_token(std::string token) {
  token_storage() = std::move(token);
}
const std::string& admin_token() {
  return token_storage();
}

namespace {
control::http::TlsOptions& admin_tls_storage() {
  static control::http::TlsOptions options;
  return options;
}
}  // namespace

void set_admin_tls(control::http::TlsOptions options) {
  admin_tls_storage() = std::move(options);
}

const control::http::TlsOptions& admin_tls() {
  return admin_tls_storage();
}

}  // namespace portico::cli
