// Settings spec.kubernetes, spec.kubernetesConfigSource and spec.kubernetesSecretSource (how the
// API server is reached: address, bearer token file, TLS; the namespaces watched) and an Upstream's
// spec.kube (a Kubernetes Service, discovered through its EndpointSlices).
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

// A DNS-1035 label, as Kubernetes Service names are (a DNS-1123 label starting with a letter).
bool service_name(const std::string& s) {
  return namespace_name(s) && s.front() >= 'a' && s.front() <= 'z';
}

// address, tokenFile and the TLS fields of a block (spec.kubernetes and the two sources).
void decode_kube_api(DocReader& doc, MapReader& m, KubernetesApiSpec* out) {
  std::string address;
  Location address_at;
  if (m.string("address", &address, false, &address_at)) {
    const std::string path = m.child_path("address");
    const bool https = address.rfind("https://", 0) == 0;
    const size_t host_at = https ? 8 : 7;
    if (!https && address.rfind("http://", 0) != 0) {
      doc.error(address_at, path,
                "\"" + address + "\" is not an http:// or https:// URL (https://host[:port])");
    } else if (address.size() == host_at || address[host_at] == '/' || address[host_at] == ':') {
      doc.error(address_at, path, "\"" + address + "\" names no host");
    } else if (has_control_or_space(address) ||
               address.find_first_of("@?#", host_at) != std::string::npos) {
      doc.error(address_at, path,
                "\"" + address +
                    "\": spaces, credentials, queries and fragments are not accepted in a "
                    "server address");
    } else {
      out->address = address;
    }
  }
  Location where;
  std::string token_file;
  if (m.string("tokenFile", &token_file, false, &where)) {
    if (token_file.empty()) {
      doc.error(where, m.child_path("tokenFile"), "must name a file");
    } else {
      out->token_file = token_file;
    }
  }
  const StoreTlsNames names{"caFile",  nullptr,      "certFile",
                            "keyFile", "serverName", "insecureSkipVerify"};
  decode_store_tls(doc, m, names, &out->tls);
  // Without an address the in-cluster https address is used, and the TLS fields apply to it.
  if (!out->address.empty()) {
    check_store_tls_address(doc, out->tls, out->address, address_at, m.child_path("address"));
  }
}

void decode_namespaces(DocReader& doc, MapReader& m, std::vector<std::string>* out) {
  auto list = m.list("namespaces");
  if (!list) return;
  yaml::for_each_item(*list, [&](const YAML::Node& item, const std::string& path, Location loc) {
    std::string ns;
    if (!yaml::read_string(doc, item, path, loc, &ns)) return;
    if (!namespace_name(ns)) {
      doc.error(loc, path, "\"" + ns + "\" is not a namespace name (lower-case DNS label)");
    } else if (std::find(out->begin(), out->end(), ns) != out->end()) {
      doc.error(loc, path, "\"" + ns + "\" is listed twice");
    } else {
      out->push_back(ns);
    }
  });
}

}  // namespace

void decode_kubernetes_config_source(DocReader& doc, const Field& f,
                                     KubernetesConfigSourceSpec* out) {
  MapReader m(doc, f.value, f.path, f.loc);
  if (!m.ok()) return;
  decode_kube_api(doc, m, out);
  decode_namespaces(doc, m, &out->namespaces);
  m.finish();
}

void decode_kubernetes_secret_source(DocReader& doc, const Field& f,
                                     KubernetesSecretSourceSpec* out) {
  MapReader m(doc, f.value, f.path, f.loc);
  if (!m.ok()) return;
  decode_kube_api(doc, m, out);
  decode_namespaces(doc, m, &out->namespaces);
  m.finish();
}

void decode_kubernetes_settings(DocReader& doc, const Field& f, KubernetesApiSpec* out) {
  MapReader m(doc, f.value, f.path, f.loc);
  if (!m.ok()) return;
  decode_kube_api(doc, m, out);
  if (auto r = m.take("rateLimits")) {
    doc.error(r->loc, r->path,
              "is not supported (Portico lists and watches: it makes no request per object)");
  }
  m.finish();
}

void decode_kube_upstream(DocReader& doc, const Field& f, const std::string& upstream_ns,
                          KubeUpstream* out) {
  MapReader m(doc, f.value, f.path, f.loc);
  if (!m.ok()) return;
  Location where;
  if (m.string("serviceName", &out->service_name, true, &where) &&
      !service_name(out->service_name)) {
    doc.error(where, m.child_path("serviceName"),
              "\"" + out->service_name + "\" is not a Service name (lower-case DNS label)");
  }
  out->service_namespace = upstream_ns.empty() ? "default" : upstream_ns;
  std::string ns;
  if (m.string("serviceNamespace", &ns, false, &where)) {
    if (!namespace_name(ns)) {
      doc.error(where, m.child_path("serviceNamespace"),
                "\"" + ns + "\" is not a namespace name (lower-case DNS label)");
    } else {
      out->service_namespace = ns;
    }
  }
  uint64_t port = 0;
  if (m.uint("servicePort", 1, 65535, &port, true)) out->service_port = static_cast<uint16_t>(port);
  for (const char* key : {"selector", "serviceSpec", "subsetSpec"}) {
    if (auto x = m.take(key)) {
      doc.error(x->loc, x->path,
                std::string("kube.") + key +
                    " is not supported (Kubernetes discovery reads serviceName, "
                    "serviceNamespace and servicePort: every ready endpoint of the Service)");
    }
  }
  m.finish();
}

}  // namespace portico::api::detail
