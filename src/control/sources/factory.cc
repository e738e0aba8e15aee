#include "control/sources/factory.h"

#include <cctype>
#include <functional>

#include "control/http/client.h"
#include "control/sources/config_dir.h"
#include "control/sources/consul_kv_source.h"
#include "control/sources/etcd_source.h"
#include "control/sources/kube_api.h"
#include "control/sources/kube_secret_source.h"
#include "control/sources/kube_source.h"
#include "control/sources/vault_source.h"

namespace portico::control {

Result<http::Url> store_url(const std::string& address, uint16_t default_port,
                            const api::StoreTls& tls) {
  http::TlsOptions o;
  o.ca_file = tls.ca_file;
  o.ca_path = tls.ca_path;
  o.cert_file = tls.cert_file;
  o.key_file = tls.key_file;
  o.server_name = tls.server_name;
  o.insecure_skip_verify = tls.insecure_skip_verify;
  return http::parse_url(address, default_port, o);
}

Result<consul::Endpoint> consul_endpoint(const api::ConsulSettings& c) {
  consul::Endpoint e;
  auto url = store_url(c.address, 8500, c.tls);
  if (!url) return Error::invalid("consul.address " + c.address + ": " + url.error().message);
  e.url = std::move(url.value());
  e.datacenter = c.datacenter;
  e.ns = c.ns;
  e.token = c.token;
  e.username = c.username;
  e.password = c.password;
  if (!c.token_file.empty()) {
    std::string error;
    auto text = read_config_file(c.token_file, 64 * 1024, &error);
    if (!text) return Error::invalid("consul.tokenFile " + c.token_file + ": " + error);
    std::string token = *text;
    while (!token.empty() && std::isspace(static_cast<unsigned char>(token.back())))
      token.pop_back();
    if (token.empty()) return Error::invalid("consul.tokenFile " + c.token_file + " is empty");
    e.token = std::move(token);
  }
  return e;
}

Result<NomadDiscoveryOptions> nomad_options(const api::NomadSettings& n) {
  NomadDiscoveryOptions o;
  auto url = store_url(n.address, 4646, n.tls);
  if (!url) return Error::invalid("nomad.address " + n.address + ": " + url.error().message);
  o.url = std::move(url.value());
  o.token = n.token;
  o.region = n.region;
  o.wait = n.wait_time;
  if (!n.token_file.empty()) {
    std::string why;
    auto text = read_config_file(n.token_file, 64 * 1024, &why);
    if (!text) return Error::invalid("nomad.tokenFile " + n.token_file + ": " + why);
    std::string token = *text;
    while (!token.empty() && std::isspace(static_cast<unsigned char>(token.back())))
      token.pop_back();
    if (token.empty()) return Error::invalid("nomad.tokenFile " + n.token_file + " is empty");
    o.token = std::move(token);
  }
  return o;
}

namespace {

// Settings consul + consulKvSource: a ConsulKvSource, or an error line.
void make_consul_kv(const api::SettingsSpec& settings, MadeSources* out) {
  if (!settings.consul_kv_source) return;
  auto endpoint = consul_endpoint(settings.consul);
  if (!endpoint) {
    out->errors.push_back("consulKvSource: " + endpoint.error().message);
    return;
  }
  ConsulKvSource::Options o;
  o.endpoint = std::move(endpoint.value());
  o.root_key = settings.consul_kv_source->root_key;
  switch (settings.consul_kv_source->consistency) {
    case api::ConsulConsistency::kDefault:
      o.consistency = consul::Consistency::kDefault;
      break;
    case api::ConsulConsistency::kStale:
      o.consistency = consul::Consistency::kStale;
      break;
    case api::ConsulConsistency::kConsistent:
      o.consistency = consul::Consistency::kConsistent;
      break;
  }
  o.wait = settings.consul.wait_time;
  out->sources.push_back(std::make_unique<ConsulKvSource>(std::move(o)));
}

}  // namespace

MadeSources make_sources(const api::SettingsSpec& settings) {
  MadeSources out;
  if (const auto& v = settings.vault_secret_source) {
    auto url = store_url(v->address, 8200, v->tls);
    if (!url) {
      out.errors.push_back("vaultSecretSource.address: " + url.error().message);
    } else {
      out.sources.push_back(std::make_unique<VaultSource>(*v, std::move(url.value())));
    }
  }
  make_consul_kv(settings, &out);
  if (const auto& etcd = settings.etcd_config_source) {
    EtcdSourceOptions options;
    options.address = etcd->address;
    options.prefix = etcd->prefix;
    options.timeout = etcd->timeout;
    options.tls = etcd->tls;
    auto source = EtcdSource::make(std::move(options));
    if (source) {
      out.sources.push_back(std::move(source.value()));
    } else {
      out.errors.push_back("etcdConfigSource: " + source.error().message);
    }
  }
  if (const auto& kube = settings.kubernetes_config_source) {
    auto api = kube::resolve(kube::choose(*kube, settings.kubernetes));
    KubeSourceOptions options;
    if (api) {
      options.address = api->address;
      options.token_file = api->token_file;
      options.tls = api->tls;
    }
    options.namespaces = kube->namespaces;
    std::string error;
    if (!api) {
      out.errors.push_back("kubernetesConfigSource: " + api.error().message);
    } else if (!options.token_file.empty() &&
               !read_config_file(options.token_file, 64 * 1024, &error).has_value()) {
      out.errors.push_back("kubernetesConfigSource: tokenFile " + options.token_file + ": " +
                           error);
    } else if (auto source = KubeSource::make(std::move(options))) {
      out.sources.push_back(std::move(source.value()));
    } else {
      out.errors.push_back("kubernetesConfigSource: " + source.error().message);
    }
  }
  if (const auto& secrets = settings.kubernetes_secret_source) {
    auto api = kube::resolve(kube::choose(*secrets, settings.kubernetes));
    Result<http::Url> url = api ? kube::url_of(api.value()) : Result<http::Url>(api.error());
    if (!url) {
      out.errors.push_back("kubernetesSecretSource: " + url.error().message);
    } else {
      KubeSecretSourceOptions o;
      o.url = std::move(url.value());
      o.token_file = api->token_file;
      o.namespaces = secrets->namespaces;
      out.sources.push_back(std::make_unique<KubeSecretSource>(std::move(o)));
    }
  }
  return out;
}

namespace {
std::string tls_fingerprint(const api::StoreTls& t) {
  return "tls{" + t.ca_file + "|" + t.ca_path + "|" + t.cert_file + "|" + t.key_file + "|" +
         t.server_name + "|" + (t.insecure_skip_verify ? "insecure" : "") + "}";
}
}  // namespace

std::string sources_fingerprint(const api::SettingsSpec& settings) {
  std::string out;
  if (const auto& v = settings.vault_secret_source) {
    // The token is hashed: the fingerprint is compared, never shown, but stays free of secrets.
    out += "vault|" + v->address + "|" + std::to_string(std::hash<std::string>{}(v->token)) + "|" +
           v->token_file + "|" + v->role_id + "|" + v->secret_id_file + "|" + v->approle_mount +
           "|" + v->path_prefix + "|" + v->root_key + "|" +
           std::to_string(v->poll_interval.count()) + "|" +
           std::to_string(v->request_timeout.count()) + "|" + tls_fingerprint(v->tls) + "\n";
  }
  if (const auto& kv = settings.consul_kv_source) {
    const api::ConsulSettings& c = settings.consul;
    const std::string secret = std::to_string(std::hash<std::string>{}(c.token + "|" + c.password));
    out += "consulKv{" + c.address + "|" + c.datacenter + "|" + secret + "|" + c.token_file + "|" +
           c.username + "|" + std::to_string(c.wait_time.count()) + "|" + kv->root_key + "|" +
           std::to_string(static_cast<int>(kv->consistency)) + "|" + tls_fingerprint(c.tls) + "}\n";
  }
  if (const auto& etcd = settings.etcd_config_source) {
    out += "etcd " + etcd->address + " " + etcd->prefix + " " +
           std::to_string(etcd->timeout.count()) + "ms " + tls_fingerprint(etcd->tls) + "\n";
  }
  if (const auto& kube = settings.kubernetes_config_source) {
    const api::KubernetesApiSpec& api = kube::choose(*kube, settings.kubernetes);
    out += "kubernetes " + api.address + " " + api.token_file + " [";
    for (const auto& ns : kube->namespaces)
      out += ns + ",";
    out += "] " + tls_fingerprint(api.tls) + "\n";
  }
  if (const auto& secrets = settings.kubernetes_secret_source) {
    const api::KubernetesApiSpec& api = kube::choose(*secrets, settings.kubernetes);
    out += "kubernetesSecrets " + api.address + " " + api.token_file + " [";
    for (const auto& ns : secrets->namespaces)
      out += ns + ",";
    out += "] " + tls_fingerprint(api.tls) + "\n";
  }
  return out;
}

}  // namespace portico::control
