// Type versions and sources of a ProxyConfig's items (see proxy_config.h).
#include <map>
#include <string>

#include "snapshot/proxy_config.h"

namespace portico::snapshot {
namespace {

// Certificate and key material: compared (and versioned) as secrets, not as the settings of the
// listener, virtual host or cluster that carries it.
void strip_material(TlsCertificate& c) {
  c.cert_chain_pem.clear();
  c.private_key_pem.clear();
  c.ocsp_staple.clear();
}
void strip_material(TlsServerConfig& t) {
  for (auto& c : t.certificates)
    strip_material(c);
  t.client_ca_pem.clear();
}
void strip_material(TlsClientConfig& t) {
  t.ca_pem.clear();
  if (t.client_certificate) strip_material(*t.client_certificate);
}

bool same_settings(const Listener& a, const Listener& b) {
  if (a == b) return true;
  Listener x = a;
  x.virtual_hosts = b.virtual_hosts;
  if (x.tls && b.tls) {
    TlsServerConfig y = *b.tls;
    strip_material(*x.tls);
    strip_material(y);
    if (!(*x.tls == y)) return false;
    x.tls = b.tls;
  }
  return x == b;
}

bool same_routes(const VirtualHost& a, const VirtualHost& b) {
  if (&a == &b || a == b) return true;
  if (!a.tls || !b.tls) return false;  // only the TLS material may differ
  VirtualHost x = a;
  TlsServerConfig y = *b.tls;
  strip_material(*x.tls);
  strip_material(y);
  x.tls = y;
  VirtualHost z = b;
  z.tls = y;
  return x == z;
}

bool same_routes(const Listener& a, const Listener& b) {
  if (a.virtual_hosts.size() != b.virtual_hosts.size()) return false;
  for (size_t i = 0; i < a.virtual_hosts.size(); ++i) {
    if (!same_routes(*a.virtual_hosts[i], *b.virtual_hosts[i])) return false;
  }
  return true;
}

// Settings without endpoints and TLS material.
bool same_settings(const Cluster& a, const Cluster& b) {
  if (a == b) return true;
  Cluster x = a;
  x.endpoints = b.endpoints;
  if (x.tls && b.tls) {
    TlsClientConfig y = *b.tls;
    strip_material(*x.tls);
    strip_material(y);
    if (!(*x.tls == y)) return false;
    x.tls = b.tls;
  }
  return x == b;
}

using Material = std::map<std::string, std::string>;  // Secret name -> its material

void add(Material& m, const std::string& secret, const std::string& material) {
  if (secret.empty() || material.empty()) return;
  std::string& v = m[secret];
  if (v.find(material) == std::string::npos) v += material;
}
void add(Material& m, const TlsCertificate& c) {
  add(m, c.secret, c.cert_chain_pem + c.private_key_pem + c.ocsp_staple);
}
void add(Material& m, const TlsServerConfig& t) {
  for (const auto& c : t.certificates)
    add(m, c);
  add(m, t.client_ca_secret, t.client_ca_pem);
}

Material material_of(const ProxyConfig& config) {
  Material m;
  for (const auto& l : config.listeners) {
    if (l.tls) add(m, *l.tls);
    for (const auto& vh : l.virtual_hosts) {
      if (vh->tls) add(m, *vh->tls);
    }
  }
  for (const auto& c : config.clusters) {
    if (!c.tls) continue;
    add(m, c.tls->ca_secret, c.tls->ca_pem);
    if (c.tls->client_certificate) add(m, *c.tls->client_certificate);
  }
  return m;
}

// A Secret named by TLS settings, as a source; nothing for sslFiles ("file:...": part of the
// resource that names them).
void add_secret(std::vector<std::string>& out, const std::string& secret) {
  if (secret.empty() || secret.rfind("file:", 0) == 0) return;
  std::string key = "Secret/" + secret;
  for (const auto& k : out) {
    if (k == key) return;
  }
  out.push_back(std::move(key));
}

void add_secrets(std::vector<std::string>& out, const TlsServerConfig& tls) {
  for (const auto& c : tls.certificates)
    add_secret(out, c.secret);
  add_secret(out, tls.client_ca_secret);
}

}  // namespace

void assign_type_versions(ProxyConfig& next, const ProxyConfig* previous) {
  const uint64_t v = next.version;
  if (previous == nullptr) {
    next.versions = TypeVersions{v, v, v, v, v};
    return;
  }
  TypeVersions out = previous->versions;
  const auto& nl = next.listeners;
  const auto& pl = previous->listeners;
  bool listeners_same = nl.size() == pl.size();
  bool routes_same = listeners_same;
  for (size_t i = 0; listeners_same && i < nl.size(); ++i) {
    if (nl[i].name != pl[i].name || !same_settings(nl[i], pl[i])) listeners_same = false;
  }
  for (size_t i = 0; routes_same && i < nl.size(); ++i) {
    if (nl[i].name != pl[i].name || !same_routes(nl[i], pl[i])) routes_same = false;
  }
  if (!listeners_same) out.listeners = v;
  if (!routes_same) out.routes = v;

  if (!next.clusters.shares_with(previous->clusters)) {
    const auto& nc = next.clusters.get();
    const auto& pc = previous->clusters.get();
    bool clusters_same = nc.size() == pc.size();
    bool endpoints_same = clusters_same;
    for (size_t i = 0; clusters_same && i < nc.size(); ++i) {
      if (nc[i].name != pc[i].name || !same_settings(nc[i], pc[i])) clusters_same = false;
    }
    for (size_t i = 0; endpoints_same && i < nc.size(); ++i) {
      if (nc[i].name != pc[i].name || nc[i].endpoints != pc[i].endpoints) endpoints_same = false;
    }
    if (!clusters_same) out.clusters = v;
    if (!endpoints_same) out.endpoints = v;
  }
  if (material_of(next) != material_of(*previous)) out.secrets = v;
  next.versions = out;
}

std::vector<std::string> sources_of(const Listener& listener) {
  std::vector<std::string> out{"Gateway/" + listener.name};
  if (listener.tls) add_secrets(out, *listener.tls);
  return out;
}

std::vector<std::string> sources_of(const VirtualHost& host) {
  std::vector<std::string> out = host.sources;
  if (out.empty()) out.push_back("VirtualService/" + host.name);
  if (host.tls) add_secrets(out, *host.tls);
  return out;
}

std::vector<std::string> sources_of(const Cluster& cluster) {
  std::vector<std::string> out{"Upstream/" + cluster.name};
  if (cluster.tls) {
    add_secret(out, cluster.tls->ca_secret);
    if (cluster.tls->client_certificate) add_secret(out, cluster.tls->client_certificate->secret);
  }
  return out;
}

}  // namespace portico::snapshot
