// The TLS fields shared by the stores' settings (Consul, Vault, etcd).
#include "api/decode_internal.h"

namespace portico::api::detail {

using yaml::DocReader;
using yaml::MapReader;

void decode_store_tls(DocReader& doc, MapReader& m, const StoreTlsNames& names, StoreTls* out) {
  Location where;
  auto file = [&](const char* name, std::string* value) {
    if (name == nullptr) return;
    if (m.string(name, value, false, &where) && value->empty()) {
      doc.error(where, m.child_path(name), "is empty (leave it out)");
    }
  };
  file(names.ca_file, &out->ca_file);
  file(names.ca_path, &out->ca_path);
  file(names.cert_file, &out->cert_file);
  file(names.key_file, &out->key_file);
  file(names.server_name, &out->server_name);
  if (names.insecure != nullptr) m.boolean(names.insecure, &out->insecure_skip_verify, &where);
  if (!out->cert_file.empty() && out->key_file.empty()) {
    doc.error(
        m.loc(), m.child_path(names.key_file),
        std::string("is required with ") + names.cert_file + " (the client certificate's key)");
  } else if (out->cert_file.empty() && !out->key_file.empty()) {
    doc.error(m.loc(), m.child_path(names.cert_file),
              std::string("is required with ") + names.key_file);
  }
  if (out->insecure_skip_verify && (!out->ca_file.empty() || !out->ca_path.empty())) {
    doc.error(where, m.child_path(names.insecure),
              std::string("turns verification off: the CA given would not be used (drop ") +
                  names.insecure + " or the CA)");
  }
}

void check_store_tls_address(DocReader& doc, const StoreTls& tls, const std::string& address,
                             const Location& address_at, const std::string& address_path) {
  if (!tls.empty() && address.rfind("https://", 0) != 0) {
    doc.error(address_at, address_path,
              "\"" + address + "\": TLS settings are given but the address is not https://");
  }
}

}  // namespace portico::api::detail
