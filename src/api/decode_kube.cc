// Settings spec.kubernetesConfigSource: where the Kubernetes configuration source reads resources
// from (the API server's address, a bearer token file, the namespaces watched).
#include <algorithm>

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

// A DNS-1123 label, as Kubernetes namespaces are.
bool namespace_name(const std::string& s) {
  if (s.empty() || s.size() > 63) return false;
  for (char c : s) {
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-')) return false;
  }
  return s.front() != '-' && s.back() != '-';
}

}  // namespace

void decode_kubernetes_config_source(DocReader& doc, const Field& f,
                                     KubernetesConfigSourceSpec* out) {
  MapReader m(doc, f.value, f.path, f.loc);
  if (!m.ok()) return;
  std::string address;
  Location where;
  if (!m.string("address", &address, false, &where)) {
    doc.error(m.loc(), m.child_path("address"),
              "is required: the http:// URL of the API server (in a cluster, a `kubectl proxy` "
              "beside portico: http://127.0.0.1:8001)");
  } else {
    const std::string path = m.child_path("address");
    if (address.rfind("https://", 0) == 0) {
      doc.error(where, path,
                "https is not supported yet (TLS to the API server); use http:// (kubectl proxy)");
    } else if (address.rfind("http://", 0) != 0) {
      doc.error(where, path, "\"" + address + "\" is not an http:// URL (http://host[:port])");
    } else if (address.size() == 7 || address[7] == '/' || address[7] == ':') {
      doc.error(where, path, "\"" + address + "\" names no host");
    } else if (has_control_or_space(address) ||
               address.find_first_of("@?#", 7) != std::string::npos) {
      doc.error(where, path,
                "\"" + address +
                    "\": spaces, credentials, queries and fragments are not accepted in a "
                    "server address");
    } else {
      out->address = address;
    }
  }
  std::string token_file;
  if (m.string("tokenFile", &token_file, false, &where)) {
    if (token_file.empty()) {
      doc.error(where, m.child_path("tokenFile"), "must name a file");
    } else {
      out->token_file = token_file;
    }
  }
  if (auto list = m.list("namespaces")) {
    yaml::for_each_item(*list, [&](const YAML::Node& item, const std::string& path, Location loc) {
      std::string ns;
      if (!yaml::read_string(doc, item, path, loc, &ns)) return;
      if (!namespace_name(ns)) {
        doc.error(loc, path, "\"" + ns + "\" is not a namespace name (lower-case DNS label)");
      } else if (std::find(out->namespaces.begin(), out->namespaces.end(), ns) !=
                 out->namespaces.end()) {
        doc.error(loc, path, "\"" + ns + "\" is listed twice");
      } else {
        out->namespaces.push_back(ns);
      }
    });
  }
  m.finish();
}

}  // namespace portico::api::detail
