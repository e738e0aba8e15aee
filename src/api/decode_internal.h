// Decoding pieces shared by the files of src/api (references, names, TLS settings, Secrets).
// Internal to src/api; any thread (no shared state), one DocReader per document.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "api/resources.h"
#include "api/yaml_reader.h"

namespace portico::api::detail {

// Reports a bad metadata-style name at `path`; true when the name is valid.
bool check_name_field(yaml::DocReader& doc, const std::string& value, const std::string& path,
                      Location loc);

// {name, namespace} with the namespace defaulted to `default_ns`.
ResourceRef decode_ref(yaml::DocReader& doc, const YAML::Node& node, const std::string& path,
                       Location loc, const std::string& default_ns);

// A list of domain names, each normalized (lower case); a bad one is reported and left out.
std::vector<Domain> decode_domains(yaml::DocReader& doc, const yaml::Field& list);

// A VirtualService's or a Gateway's sslConfig (`on_gateway`: the Gateway's default certificate,
// where sniDomains means nothing).
void decode_downstream_tls(yaml::DocReader& doc, const yaml::Field& f, const std::string& ns,
                           bool on_gateway, DownstreamTls* out);

// An Upstream's sslConfig.
void decode_upstream_tls(yaml::DocReader& doc, const yaml::Field& f, const std::string& ns,
                         UpstreamTls* out);

// A Secret's spec (tls or generic).
void decode_secret(yaml::DocReader& doc, yaml::MapReader& spec, SecretSpec* out);

// Replaces every value of a Secret's spec JSON that could be secret by "<redacted>": only
// certificates, CA bundles, OCSP staples and file names are kept.
void redact_secret_json(nlohmann::json& spec);

// A Gateway's spec.options (Gloo's ListenerOptions): accessLoggingService (decode_ops.cc).
void decode_gateway_options(yaml::DocReader& doc, const yaml::Field& f, GatewaySpec* out);
// A route's options.accessLog: {disabled: bool}.
void decode_route_access_log(yaml::DocReader& doc, const yaml::Field& f,
                             std::optional<bool>* disabled);
// Settings spec.overload: {maxConnections, maxHeapBytes}.
void decode_overload(yaml::DocReader& doc, const yaml::Field& f, SettingsSpec* out);

// Settings spec.vaultSecretSource (decode_vault.cc).
void decode_vault_secret_source(yaml::DocReader& doc, const yaml::Field& f, SettingsSpec* out);
// Replaces the credentials a Settings spec may hold (Vault tokens) by "<redacted>".
void redact_settings_json(nlohmann::json& spec);
// Settings spec.consul {address, datacenter, token | tokenFile, username, password, waitTime} and
// spec.consulKvSource {rootKey, consistencyMode} (decode_consul.cc).
void decode_consul(yaml::DocReader& doc, const yaml::Field& f, ConsulSettings* out);
void decode_consul_kv_source(yaml::DocReader& doc, const yaml::Field& f,
                             ConsulKvSourceSettings* out);
// The TLS fields of a store's settings (decode_store_tls.cc), under the names that store uses
// (Gloo's where it has them); a null name is not read. `address` and `address_at`: the store's
// address as decoded, so that TLS fields given for an http:// address are an error.
struct StoreTlsNames {
  const char* ca_file;
  const char* ca_path;
  const char* cert_file;
  const char* key_file;
  const char* server_name;
  const char* insecure;
};
void decode_store_tls(yaml::DocReader& doc, yaml::MapReader& m, const StoreTlsNames& names,
                      StoreTls* out);
void check_store_tls_address(yaml::DocReader& doc, const StoreTls& tls, const std::string& address,
                             const Location& address_at, const std::string& address_path);
// "http[s]://host[:port][/path]" or "host:port" of a HashiCorp agent (`agent`: "Consul", "Nomad"):
// the normalised "http[s]://..." form in `out`, or false with why not (decode_consul.cc).
bool normalize_agent_address(const std::string& in, std::string_view agent, std::string* out,
                             std::string* why);
// Settings spec.nomad {address, token | tokenFile, region, waitTime} and an Upstream's spec.nomad
// {serviceName, namespace, tags, canaryTags, canary} (decode_nomad.cc).
void decode_nomad_settings(yaml::DocReader& doc, const yaml::Field& f, NomadSettings* out);
void decode_nomad_upstream(yaml::DocReader& doc, const yaml::Field& f, NomadUpstream* out);
// Settings spec.etcdConfigSource: {address, prefix, timeout, TLS} (decode_etcd.cc).
void decode_etcd_config_source(yaml::DocReader& doc, const yaml::Field& f,
                               EtcdConfigSourceSpec* out);
// Settings spec.kubernetesConfigSource and spec.kubernetesSecretSource: {address, tokenFile, TLS,
// namespaces}; spec.kubernetes: {address, tokenFile, TLS}; an Upstream's spec.kube {serviceName,
// serviceNamespace, servicePort} (decode_kube.cc).
void decode_kubernetes_config_source(yaml::DocReader& doc, const yaml::Field& f,
                                     KubernetesConfigSourceSpec* out);
void decode_kubernetes_secret_source(yaml::DocReader& doc, const yaml::Field& f,
                                     KubernetesSecretSourceSpec* out);
void decode_kubernetes_settings(yaml::DocReader& doc, const yaml::Field& f, KubernetesApiSpec* out);
void decode_kube_upstream(yaml::DocReader& doc, const yaml::Field& f,
                          const std::string& upstream_ns, KubeUpstream* out);
// A route's options.retries: {retryOn, retriableStatusCodes, numRetries, perTryTimeout,
// retryBackOff {baseInterval, maxInterval}, retryNonIdempotent}.
void decode_retries(yaml::DocReader& doc, const yaml::Field& f, RetryOptions* out);
// An Upstream's spec.circuitBreakers: {maxConnections, maxPendingRequests, maxRequests,
// maxRetries}.
void decode_circuit_breakers(yaml::DocReader& doc, const yaml::Field& f, UpstreamSpec* out);
// An Upstream's spec.retryBudget: {budgetPercent, minRetryConcurrency}.
void decode_retry_budget(yaml::DocReader& doc, const yaml::Field& f, UpstreamSpec* out);

// An Upstream's loadBalancerConfig and failover, a route's options.lbHash (decode_lb.cc).
void decode_load_balancer_config(yaml::DocReader& doc, const yaml::Field& f, UpstreamSpec* out);
void decode_failover(yaml::DocReader& doc, const yaml::Field& f, UpstreamSpec* out);
void decode_lb_hash(yaml::DocReader& doc, const yaml::Field& f, RouteOptions* out);

}  // namespace portico::api::detail
