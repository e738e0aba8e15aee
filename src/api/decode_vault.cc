// Decoding of Settings spec.vaultSecretSource (Gloo's VaultSecrets field names, and Portico's
// tokenFile, appRole and pollInterval): every field implemented or rejected by name.
#include "api/decode_internal.h"

namespace portico::api::detail {

using yaml::DocReader;
using yaml::Field;
using yaml::MapReader;

namespace {

// A KV path piece (pathPrefix, rootKey): segments separated by '/', none empty, "." or "..".
bool check_kv_path(DocReader& doc, const std::string& value, const std::string& path, Location loc,
                   bool allow_empty) {
  if (value.empty()) {
    if (!allow_empty) doc.error(loc, path, "must not be empty");
    return allow_empty;
  }
  size_t start = 0;
  while (true) {
    size_t slash = value.find('/', start);
    std::string segment = value.substr(start, slash == std::string::npos ? slash : slash - start);
    if (segment.empty() || segment == "." || segment == "..") {
      doc.error(loc, path,
                "\"" + value +
                    "\" is not a Vault path (segments separated by '/', none empty, "
                    "'.' or '..')");
      return false;
    }
    for (unsigned char c : segment) {
      if (c < 0x21 || c == 0x7f || c == '?' || c == '#' || c == '%') {
        doc.error(loc, path, "\"" + value + "\" has a character Vault paths cannot hold here");
        return false;
      }
    }
    if (slash == std::string::npos) break;
    start = slash + 1;
  }
  return true;
}

}  // namespace

void decode_vault_secret_source(DocReader& doc, const Field& f, SettingsSpec* out) {
  MapReader m(doc, f.value, f.path, f.loc);
  if (!m.ok()) return;
  VaultSecretSourceSpec v;
  Location where;
  Location address_at = m.loc();
  if (m.string("address", &v.address, true, &where)) {
    address_at = where;
    const bool https = v.address.rfind("https://", 0) == 0;
    if ((!https && v.address.rfind("http://", 0) != 0) || v.address.size() == (https ? 8u : 7u)) {
      doc.error(where, m.child_path("address"),
                "\"" + v.address +
                    "\" is not an http:// or https:// URL (e.g. https://vault.example.com:8200)");
    }
  }
  // Authentication: one of accessToken (token is Gloo's deprecated name), tokenFile, appRole.
  int methods = 0;
  std::string deprecated;
  Location token_loc;
  const bool has_access = m.string("accessToken", &v.token, false, &token_loc);
  if (m.string("token", &deprecated, false, &where)) {
    if (has_access) {
      doc.error(where, m.child_path("token"),
                "is Gloo's deprecated name of accessToken: set one of them");
    } else {
      v.token = deprecated;
    }
  }
  if (!v.token.empty()) ++methods;
  if (m.string("tokenFile", &v.token_file, false, &where)) {
    if (v.token_file.empty()) doc.error(where, m.child_path("tokenFile"), "must not be empty");
    ++methods;
  }
  if (auto a = m.map("appRole")) {
    ++methods;
    MapReader r(doc, a->value, a->path, a->loc);
    r.string("roleId", &v.role_id, true);
    r.string("secretIdFile", &v.secret_id_file, true);
    if (r.string("mountPath", &v.approle_mount, false, &where)) {
      check_kv_path(doc, v.approle_mount, r.child_path("mountPath"), where, false);
    }
    r.finish();
  }
  if (auto a = m.take("aws")) {
    ++methods;
    doc.error(a->loc, a->path,
              "AWS IAM authentication to Vault is not supported yet; use accessToken, tokenFile or "
              "appRole");
  }
  if (methods == 0) {
    doc.error(m.loc(), f.path, "needs one of accessToken, tokenFile or appRole");
  } else if (methods > 1) {
    doc.error(m.loc(), f.path, "has more than one of accessToken, tokenFile, appRole: set one");
  }
  if (m.string("pathPrefix", &v.path_prefix, false, &where)) {
    check_kv_path(doc, v.path_prefix, m.child_path("pathPrefix"), where, false);
  }
  if (m.string("rootKey", &v.root_key, false, &where)) {
    check_kv_path(doc, v.root_key, m.child_path("rootKey"), where, true);
  }
  if (m.duration("pollInterval", &v.poll_interval, false, &where) &&
      (v.poll_interval < Millis(100) || v.poll_interval > Millis(3600 * 1000))) {
    doc.error(where, m.child_path("pollInterval"), "must be between 100ms and 1h");
  }
  if (m.duration("requestTimeout", &v.request_timeout, false, &where) &&
      (v.request_timeout < Millis(100) || v.request_timeout > Millis(600 * 1000))) {
    doc.error(where, m.child_path("requestTimeout"), "must be between 100ms and 10m");
  }
  // Gloo's names, on the source itself or (its newer form) under tlsConfig: one or the other.
  const StoreTlsNames names{"caCert",    "caPath",        "clientCert",
                            "clientKey", "tlsServerName", "insecure"};
  decode_store_tls(doc, m, names, &v.tls);
  if (auto t = m.map("tlsConfig")) {
    if (!v.tls.empty()) {
      doc.error(
          t->loc, t->path,
          "TLS settings are given both here and beside it (caCert, clientCert, ...): use one");
    } else {
      MapReader tm(doc, t->value, t->path, t->loc);
      if (tm.ok()) {
        decode_store_tls(doc, tm, names, &v.tls);
        tm.finish();
      }
    }
  }
  check_store_tls_address(doc, v.tls, v.address, address_at, m.child_path("address"));
  m.finish();
  out->vault_secret_source = std::move(v);
}

void redact_settings_json(nlohmann::json& spec) {
  if (!spec.is_object()) return;
  for (const char* block : {"vaultSecretSource", "nomad"}) {
    auto it = spec.find(block);
    if (it == spec.end() || !it->is_object()) continue;
    for (const char* key : {"accessToken", "token"}) {
      auto t = it->find(key);
      if (t != it->end() && !t->is_null()) *t = "<redacted>";
    }
  }
}

}  // namespace portico::api::detail
