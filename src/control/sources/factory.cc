#include "control/sources/factory.h"

#include <functional>

#include "control/http/client.h"
#include "control/sources/config_dir.h"
#include "control/sources/consul_kv_source.h"
#include "control/sources/etcd_source.h"
#include "control/sources/kube_source.h"
#include "control/sources/vault_source.h"

namespace portico::control {

namespace {

// Settings consul + consulKvSource: a ConsulKvSource, or an error line.
void make_consul_kv(const api::SettingsSpec& settings, MadeSources* out) {
  if (!settings.consul_kv_source) return;
  const api::ConsulSettings& c = settings.consul;
  auto url = http::parse_url(c.address, 8500);
  if (!url) {
    out->errors.push_back("consulKvSource: consul.address " + c.address + ": " +
                          url.error().message);
    return;
  }
  ConsulKvSource::Options o;
  o.endpoint.url = url.value();
  o.endpoint.datacenter = c.datacenter;
  o.endpoint.token = c.token;
  o.endpoint.username = c.username;
  o.endpoint.password = c.password;
  if (!c.token_file.empty()) {
    std::string error;
    auto text = read_config_file(c.token_file, 64 * 1024, &error);
    if (!text) {
      out->errors.push_back("consulKvSource: consul.tokenFile " + c.token_file + ": " + error);
      return;
    }
    std::string token = *text;
    while (!token.empty() && (token.back() == '\n' || token.back() == '\r' || token.back() == ' ' ||
                              token.back() == '\t'))
      token.pop_back();
    if (token.empty()) {
      out->errors.push_back("consulKvSource: consul.tokenFile " + c.token_file + " is empty");
      return;
    }
    o.endpoint.token = std::move(token);
  }
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
  o.wait = c.wait_time;
  out->sources.push_back(std::make_unique<ConsulKvSource>(std::move(o)));
}

}  // namespace

MadeSources make_sources(const api::SettingsSpec& settings) {
  MadeSources out;
  if (const auto& v = settings.vault_secret_source) {
    auto url = http::parse_url(v->address, 8200);
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
    auto source = EtcdSource::make(std::move(options));
    if (source) {
      out.sources.push_back(std::move(source.value()));
    } else {
      out.errors.push_back("etcdConfigSource: " + source.error().message);
    }
  }
  if (const auto& kube = settings.kubernetes_config_source) {
    KubeSourceOptions options;
    options.address = kube->address;
    options.token_file = kube->token_file;
    options.namespaces = kube->namespaces;
    std::string error;
    if (!options.token_file.empty() &&
        !read_config_file(options.token_file, 64 * 1024, &error).has_value()) {
      out.errors.push_back("kubernetesConfigSource: tokenFile " + options.token_file + ": " +
                           error);
    } else if (auto source = KubeSource::make(std::move(options))) {
      out.sources.push_back(std::move(source.value()));
    } else {
      out.errors.push_back("kubernetesConfigSource: " + source.error().message);
    }
  }
  return out;
}

std::string sources_fingerprint(const api::SettingsSpec& settings) {
  std::string out;
  if (const auto& v = settings.vault_secret_source) {
    // The token is hashed: the fingerprint is compared, never shown, but stays free of secrets.
    out += "vault|" + v->address + "|" + std::to_string(std::hash<std::string>{}(v->token)) + "|" +
           v->token_file + "|" + v->role_id + "|" + v->secret_id_file + "|" + v->approle_mount +
           "|" + v->path_prefix + "|" + v->root_key + "|" +
           std::to_string(v->poll_interval.count()) + "|" +
           std::to_string(v->request_timeout.count()) + "\n";
  }
  if (const auto& kv = settings.consul_kv_source) {
    const api::ConsulSettings& c = settings.consul;
    const std::string secret = std::to_string(std::hash<std::string>{}(c.token + "|" + c.password));
    out += "consulKv{" + c.address + "|" + c.datacenter + "|" + secret + "|" + c.token_file + "|" +
           c.username + "|" + std::to_string(c.wait_time.count()) + "|" + kv->root_key + "|" +
           std::to_string(static_cast<int>(kv->consistency)) + "}\n";
  }
  if (const auto& etcd = settings.etcd_config_source) {
    out += "etcd " + etcd->address + " " + etcd->prefix + " " +
           std::to_string(etcd->timeout.count()) + "ms\n";
  }
  if (const auto& kube = settings.kubernetes_config_source) {
    out += "kubernetes " + kube->address + " " + kube->token_file + " [";
    for (const auto& ns : kube->namespaces)
      out += ns + ",";
    out += "]\n";
  }
  return out;
}

}  // namespace portico::control
