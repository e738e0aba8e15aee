// Settings spec.etcdConfigSource: where the etcd configuration source reads resources from.
#include "api/decode_internal.h"

namespace portico::api::detail {

using yaml::DocReader;
using yaml::Field;
using yaml::MapReader;

namespace {

bool has_control_or_space(const std::string& s) {
  for (unsigned char c : s) {
    if (c <= ' ' || c == 0x7f) return true;
  }
  return false;
}

}  // namespace

void decode_etcd_config_source(DocReader& doc, const Field& f, EtcdConfigSourceSpec* out) {
  MapReader m(doc, f.value, f.path, f.loc);
  if (!m.ok()) return;
  std::string address;
  Location where;
  Location address_at = m.loc();
  if (m.string("address", &address, false, &where)) {
    address_at = where;
    const std::string path = m.child_path("address");
    const size_t host = address.rfind("https://", 0) == 0 ? 8 : 7;
    if (host == 7 && address.rfind("http://", 0) != 0) {
      doc.error(where, path,
                "\"" + address + "\" is not an http:// or https:// URL (http[s]://host[:port])");
    } else if (address.size() == host || address[host] == '/' || address[host] == ':') {
      doc.error(where, path, "\"" + address + "\" names no host");
    } else if (has_control_or_space(address) ||
               address.find_first_of("@?#", host) != std::string::npos) {
      doc.error(where, path,
                "\"" + address +
                    "\": spaces, credentials, queries and fragments are not accepted in a "
                    "server address");
    } else {
      out->address = address;
    }
  }
  std::string prefix;
  if (m.string("prefix", &prefix, false, &where)) {
    while (!prefix.empty() && prefix.back() == '/')
      prefix.pop_back();
    const std::string path = m.child_path("prefix");
    if (prefix.empty()) {
      doc.error(where, path, "must name a key prefix such as \"portico\" (not the whole keyspace)");
    } else if (has_control_or_space(prefix)) {
      doc.error(where, path, "must not contain spaces or control characters");
    } else {
      out->prefix = prefix;
    }
  }
  Millis timeout{0};
  if (m.duration("timeout", &timeout, false, &where)) {
    if (timeout.count() <= 0) {
      doc.error(where, m.child_path("timeout"), "must be greater than 0");
    } else if (timeout > std::chrono::minutes(5)) {
      doc.error(where, m.child_path("timeout"), "must be at most 5m");
    } else {
      out->timeout = timeout;
    }
  }
  decode_store_tls(
      doc, m, {"caFile", "caPath", "certFile", "keyFile", "tlsServerName", "insecureSkipVerify"},
      &out->tls);
  check_store_tls_address(doc, out->tls, out->address, address_at, m.child_path("address"));
  m.finish();
}

}  // namespace portico::api::detail
