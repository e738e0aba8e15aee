// The user-facing resources (Gateway, VirtualService, Upstream, Secret) as plain C++ values, as
// decoded from YAML/JSON and validated field by field. Immutable after decoding; any thread.
// Locations are kept on the parts that cross-resource checks (src/control/translate) report on.
#pragma once

#include <re2/re2.h>

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "api/diagnostic.h"

namespace portico::api {

using Millis = std::chrono::milliseconds;

inline constexpr const char* kApiVersion = "gateway.portico.dev/v1";
inline constexpr const char* kDefaultNamespace = "default";

enum class Kind {
  kGateway,
  kVirtualService,
  kUpstream,
  kSecret,
  kRouteTable,
  kUpstreamGroup,
  kSettings
};
// "Gateway", "VirtualService", "Upstream", "Secret", "RouteTable", "UpstreamGroup", "Settings"
const char* to_string(Kind kind);

struct ObjectMeta {
  std::string name;
  std::string ns = kDefaultNamespace;
  std::map<std::string, std::string> labels;
  std::optional<int64_t> generation;  // metadata.generation when written (Kubernetes sets it)
};

// A reference to another resource by name; namespace defaulted to the referring resource's.
struct ResourceRef {
  std::string name;
  std::string ns;
  Location loc;      // of the reference in its document
  std::string path;  // field path of the reference, e.g. "spec.virtualServices[0]"
  std::string to_string() const { return ns + "/" + name; }
};

// A compiled RE2 pattern with its source text.
struct Pattern {
  std::string source;
  std::shared_ptr<const re2::RE2> re;  // never null once decoded without errors
};

// A label expression (Gloo's virtualServiceExpressions, Kubernetes' set-based selectors).
// Equals and DoubleEquals are kIn with one value, NotEquals kNotIn with one value.
enum class LabelOp { kIn, kNotIn, kExists, kDoesNotExist, kGreaterThan, kLessThan };
struct LabelExpression {
  std::string key;
  LabelOp op = LabelOp::kIn;
  std::vector<std::string> values;  // kGreaterThan/kLessThan: one integer
};

// ---- TLS ----

enum class TlsVersion { kTls12, kTls13 };

// One piece of key material, given inline (PEM text; base64 DER for an OCSP staple) or by a file
// (relative paths are relative to the directory of the resource's file). Read and checked by the
// translator; never logged.
struct SecretMaterial {
  std::string inline_value;
  std::string file;
  Location loc;
  std::string path;  // field path, e.g. "spec.tls.certChainFile"
  bool given() const { return !inline_value.empty() || !file.empty(); }
};

// Secret spec.tls (Gloo's shape).
struct TlsSecretData {
  SecretMaterial cert_chain;
  SecretMaterial private_key;
  SecretMaterial root_ca;
  SecretMaterial ocsp_staple;
};

// sslConfig.sslFiles (Gloo's shape): file paths only.
struct SslFiles {
  SecretMaterial tls_cert;
  SecretMaterial tls_key;
  SecretMaterial root_ca;
  SecretMaterial ocsp_staple;
  Location loc;
  std::string path;
};

// The sslConfig of a VirtualService (per-SNI certificate) or of a Gateway (its default
// certificate).
struct DownstreamTls {
  std::optional<ResourceRef> secret_ref;
  std::optional<SslFiles> ssl_files;
  std::optional<std::vector<std::string>> sni_domains;  // lower-case; unset: the domains
  Location sni_loc;
  std::vector<std::string> verify_subject_alt_names;  // allowed client SANs (mTLS)
  Location verify_loc;
  std::optional<TlsVersion> min_version;
  std::optional<TlsVersion> max_version;
  std::vector<std::string> alpn;  // empty: the default ("h2", "http/1.1")
  bool one_way_tls = false;       // a rootCa does not require client certificates
  std::string client_identity_header;
  Location client_identity_loc;
  Location loc;
  std::string path;  // "spec.sslConfig"
};

// Upstream spec.sslConfig.
struct UpstreamTls {
  std::optional<ResourceRef> secret_ref;
  std::optional<SslFiles> ssl_files;
  std::string sni;
  std::vector<std::string> verify_subject_alt_names;
  bool insecure_skip_verify = false;
  std::vector<std::string> alpn;
  std::optional<TlsVersion> min_version;
  Location loc;
  std::string path;
};

// ---- Secret ----

struct SecretSpec {
  std::optional<TlsSecretData> tls;
  std::map<std::string, std::string> generic;  // values never shown
  Location tls_loc;
};

// ---- Gateway ----

struct GatewayHttpOptions {
  std::optional<uint32_t> max_request_headers_bytes;
  std::optional<uint32_t> max_headers;
  std::optional<uint32_t> max_connections;
  std::optional<Millis> request_header_timeout;
  std::optional<Millis> idle_timeout;
  std::optional<Millis> drain_timeout;
  std::optional<bool> generate_request_id;
  std::optional<std::string> server_name;
  std::optional<bool> use_remote_address;
  std::optional<uint32_t> xff_num_trusted_hops;
  std::optional<bool> normalize_path;
  std::optional<bool> merge_slashes;
  std::optional<uint64_t> max_request_body_bytes;  // 0: unlimited
  std::optional<Millis> request_timeout;           // 0: none
  std::optional<Millis> stream_idle_timeout;
  // httpOptions.http2 (downstream HTTP/2).
  std::optional<bool> http2_cleartext_prior_knowledge;
  std::optional<uint32_t> http2_max_concurrent_streams;
  std::optional<uint32_t> http2_initial_stream_window;
  std::optional<uint32_t> http2_initial_connection_window;
  // Gloo's httpGateway.options.grpcWeb.disable: gRPC-Web translation is on unless disabled.
  std::optional<bool> grpc_web_disable;
};

// One access log (options.accessLoggingService.accessLog[i].fileSink, Gloo's shape). The formats
// were parsed (common/access_log_format.h): an unknown operator is a decode error.
struct AccessLogSpec {
  std::string path;  // absolute; "/dev/stdout" or "/dev/stderr" write to the process's streams
  bool json = false;
  std::string format;  // text lines (stringFormat), newline-terminated
  std::vector<std::pair<std::string, std::string>> json_fields;  // jsonFormat: key -> format
  Location loc;
  std::string field_path;
};

struct GatewaySpec {
  std::string bind_address = "0.0.0.0";
  uint16_t bind_port = 0;
  Location bind_loc;  // of bindPort (or of spec when it is missing)
  std::vector<ResourceRef> virtual_services;
  // Which VirtualServices are served, in Gloo's precedence: `virtual_services` when non-empty;
  // else those matching `selector` (every label) or `expressions` (every expression); else all.
  // `namespaces` restricts the last two and "all" (unset or containing "*": every namespace).
  std::optional<std::map<std::string, std::string>> selector;
  std::optional<std::vector<LabelExpression>> expressions;
  std::optional<std::vector<std::string>> namespaces;
  GatewayHttpOptions http;
  bool ssl = false;  // spec.ssl: the listener speaks TLS and serves VirtualServices with sslConfig
  Location ssl_loc;
  std::optional<DownstreamTls> tls;        // spec.sslConfig: the default certificate (ssl: true)
  std::vector<AccessLogSpec> access_logs;  // spec.options.accessLoggingService.accessLog
};

// ---- VirtualService ----

enum class PathKind { kPrefix, kExact, kRegex };

struct HeaderMatch {
  std::string name;                  // lower-case
  std::optional<std::string> value;  // absent: the header only has to be present
  bool regex = false;
  bool invert = false;
  Pattern pattern;  // when regex
  bool operator==(const HeaderMatch& o) const {
    return name == o.name && value == o.value && regex == o.regex && invert == o.invert;
  }
};

struct QueryMatch {
  std::string name;
  std::optional<std::string> value;  // absent: the parameter only has to be present
  bool regex = false;
  Pattern pattern;  // when regex
  bool operator==(const QueryMatch& o) const {
    return name == o.name && value == o.value && regex == o.regex;
  }
};

struct Matcher {
  PathKind kind = PathKind::kPrefix;
  std::string path = "/";  // prefix, exact path, or the regex source
  Pattern regex;           // when kind == kRegex
  bool case_sensitive = true;
  std::vector<HeaderMatch> headers;
  std::vector<QueryMatch> query;
  std::vector<std::string> methods;  // upper-case
  Location loc;
  std::string field_path;  // e.g. "spec.virtualHost.routes[0].matchers[1]"
};

struct Destination {
  ResourceRef upstream;
  uint32_t weight = 1;
  // destination.subset.values (subset routing): only the upstream's endpoints whose labels carry
  // all of these; sorted by key. Checked against the Upstream's subsetSpec by the translator.
  std::vector<std::pair<std::string, std::string>> subset{};
  Location subset_loc{};
  std::string subset_path{};
};

struct ForwardAction {
  bool multi = false;  // written as routeAction.multi
  std::vector<Destination> destinations;
  std::optional<ResourceRef> upstream_group;  // routeAction.upstreamGroup (then no destinations)
};

// delegateAction: routes delegated to RouteTables, by reference or by selector.
struct DelegateAction {
  std::optional<ResourceRef> ref;
  // Selector (when !ref): every label, every expression; in `namespaces` ("*": all; empty: the
  // delegating resource's namespace).
  std::map<std::string, std::string> labels;
  std::vector<LabelExpression> expressions;
  std::vector<std::string> namespaces;
  Location loc;
  std::string path;
};

struct RedirectAction {
  std::string host;
  std::string path;
  std::string prefix_rewrite;
  bool https = false;
  uint16_t port = 0;
  bool strip_query = false;
  uint16_t code = 301;
};

struct DirectResponseAction {
  uint16_t status = 200;
  std::string body;
};

struct HeaderToAdd {
  std::string name;
  std::string value;
  bool append = true;
};

struct HeaderManipulation {
  std::vector<HeaderToAdd> request_add;
  std::vector<std::string> request_remove;  // lower-case
  std::vector<HeaderToAdd> response_add;
  std::vector<std::string> response_remove;  // lower-case
};

// options.upgrades (Gloo's list of {websocket: {enabled}} and {connect: {enabled}}).
struct Upgrades {
  bool websocket = false;  // HTTP/1.1 Upgrade: websocket is tunnelled
  bool connect = false;    // CONNECT opens a tunnel to the route's upstream
};

// options.lbHash.hashPolicies[i]: one input of the request's hash key (ring hash, maglev).
struct HashPolicy {
  enum class Kind { kHeader, kCookie, kSourceIp };
  Kind kind = Kind::kHeader;
  std::string name;  // header (lower case) or cookie name
  bool terminal = false;
};

// options.retries (Gloo's RetryPolicy, plus Portico's retriableStatusCodes and
// retryNonIdempotent); see snapshot::RetryPolicy for the meaning of each field.
struct RetryOptions {
  // Conditions (retryOn), the same bits as snapshot::RetryPolicy's (the translator checks).
  static constexpr uint32_t kOn5xx = 1, kOnGatewayError = 2, kOnReset = 4, kOnConnectFailure = 8,
                            kOnRetriable4xx = 16, kOnRefusedStream = 32, kOnStatusCodes = 64;
  uint32_t retry_on = 0;
  std::vector<uint16_t> retriable_status_codes;
  uint32_t num_retries = 1;
  Millis per_try_timeout{0};
  Millis base_interval{25};
  std::optional<Millis> max_interval;  // unset: 10 x base_interval
  bool retry_non_idempotent = false;
  uint32_t max_replay_bytes = 64 * 1024;  // retries.maxReplayBytes (a Portico field)
};

struct RouteOptions {
  std::optional<Millis> timeout;  // 0: none
  std::optional<std::string> prefix_rewrite;
  std::string host_rewrite;
  HeaderManipulation headers;
  std::optional<bool> access_log_disabled;  // options.accessLog.disabled
  std::optional<uint64_t> max_request_body_bytes;
  std::optional<Upgrades> upgrades;  // unset: none (a delegating parent's list replaces a child's)
  std::optional<Millis> idle_timeout;  // options.idleTimeout (> 0): the route's stream idle limit
  std::vector<HashPolicy> hash_policies;  // options.lbHash.hashPolicies
  std::string lb_hash_path;               // where options.lbHash was written (for warnings)
  Location lb_hash_loc;
  std::optional<RetryOptions> retries;  // options.retries
};

struct Route {
  std::string name;               // as written; empty when not named
  std::vector<Matcher> matchers;  // never empty once decoded (defaults to prefix "/")
  std::variant<std::monostate, ForwardAction, RedirectAction, DirectResponseAction, DelegateAction>
      action;
  RouteOptions options;
  Location loc;
  std::string field_path;  // "spec.virtualHost.routes[N]"
  // The route's label in messages and stats: its name, else its index.
  std::string label(size_t index) const { return name.empty() ? std::to_string(index) : name; }
};

struct Domain {
  std::string value;  // lower-case
  Location loc;
  std::string field_path;
};

struct VirtualServiceSpec {
  std::vector<Domain> domains;  // never empty once decoded (defaults to "*")
  std::vector<Route> routes;
  std::optional<DownstreamTls> tls;  // spec.sslConfig: served on ssl Gateways only
};

// ---- Upstream ----

enum class LbPolicy { kRoundRobin, kLeastRequest, kRandom, kRingHash, kMaglev };

struct StaticHost {
  std::string address;  // numeric IPv4 or IPv6, or a DNS name (is_name)
  uint16_t port = 0;
  uint32_t weight = 1;
  bool is_name = false;  // resolved by the control plane (A and AAAA), refreshed within the TTL
  // metadata."envoy.lb" (subset routing): the host's labels, sorted by key.
  std::vector<std::pair<std::string, std::string>> labels{};
};

// failover.prioritizedLocalities[k]: the hosts of failover tier k + 1 (the locality labels are
// recorded, not used for routing).
struct FailoverTier {
  std::vector<StaticHost> hosts;
  std::vector<std::string> localities;  // "region/zone/subZone" per localityEndpoints entry
};

// Upstream spec.healthChecks[0] (Gloo's copy of Envoy's HealthCheck); defaults as in
// docs/configuration.md.
struct UpstreamHealthCheck {
  bool tcp = false;   // tcpHealthCheck
  bool grpc = false;  // grpcHealthCheck; neither: httpHealthCheck
  Millis timeout{1000};
  Millis interval{5000};
  Millis interval_jitter{0};
  uint32_t interval_jitter_percent = 0;
  uint32_t unhealthy_threshold = 3;
  uint32_t healthy_threshold = 2;
  std::string path = "/";
  std::string host;  // httpHealthCheck.host; grpcHealthCheck.authority
  std::vector<std::pair<uint16_t, uint16_t>> expected_statuses;       // [start, end)
  std::string service_name;                                           // grpcHealthCheck.serviceName
  std::vector<std::pair<std::string, std::string>> initial_metadata;  // lower-case names
};

// Upstream spec.outlierDetection (Envoy's OutlierDetection, the consecutive-failure detectors).
struct UpstreamOutlierDetection {
  uint32_t consecutive_5xx = 5;
  uint32_t consecutive_gateway_failure = 5;
  uint32_t consecutive_local_origin_failure = 5;
  bool split_external_local_origin_errors = false;
  uint32_t enforcing_consecutive_5xx = 100;
  uint32_t enforcing_consecutive_gateway_failure = 0;
  uint32_t enforcing_consecutive_local_origin_failure = 100;
  Millis interval{10000};
  Millis base_ejection_time{30000};
  Millis max_ejection_time{300000};
  uint32_t max_ejection_percent = 10;
};

// spec.consul: the healthy instances of a Consul service (control/discovery/consul_discovery).
struct ConsulUpstream {
  std::string service_name;
  std::vector<std::string> tags;         // serviceTags + instanceTags: instances carry them all
  std::vector<std::string> datacenters;  // dataCenters; empty: the agent's (Settings consul)
  // subsetTags: each instance gets the label "tag_<t>" = "1" or "0" per tag (Gloo's convention);
  // with them (or dataCenters) the Upstream has an implicit subsetSpec (docs/configuration.md).
  std::vector<std::string> subset_tags{};
};

// spec.nomad: the instances of a Nomad native service (control/discovery/nomad_discovery).
enum class NomadCanary { kInclude, kExclude, kOnly };
struct NomadUpstream {
  std::string service_name;
  std::string ns = "default";            // namespace
  std::vector<std::string> tags;         // instances carry them all
  std::vector<std::string> canary_tags;  // canaryTags: an instance carrying all is a canary
  NomadCanary canary = NomadCanary::kInclude;
};

// spec.kube: the ready endpoints of a Kubernetes Service (control/discovery/kube_discovery).
struct KubeUpstream {
  std::string service_name;
  std::string service_namespace;  // serviceNamespace; default: the Upstream's namespace
  uint16_t service_port = 0;      // the Service's port; endpoints use its targetPort
};

struct UpstreamSpec {
  std::vector<StaticHost> hosts;
  std::optional<ConsulUpstream> consul;  // instead of static hosts
  std::optional<NomadUpstream> nomad;    // instead of static hosts
  std::optional<KubeUpstream> kube;      // instead of static hosts
  // subsetSpec.selectors[].keys (subset routing): the label keys routes may select on, one key
  // set per selector (each sorted, unique). Unset: no subsetSpec written (Consul upstreams then
  // have the implicit one of their subsetTags and dataCenters).
  std::optional<std::vector<std::vector<std::string>>> subset_selectors;
  LbPolicy lb = LbPolicy::kRoundRobin;
  uint32_t choice_count = 2;                 // leastRequest.choiceCount
  uint64_t ring_min_size = 1024;             // ringHash.ringHashConfig.minimumRingSize
  uint64_t ring_max_size = 8 * 1024 * 1024;  // ringHash.ringHashConfig.maximumRingSize
  uint32_t healthy_panic_threshold = 50;     // loadBalancerConfig.healthyPanicThreshold (percent)
  std::vector<FailoverTier> failover;        // failover.prioritizedLocalities
  Millis connect_timeout{2000};
  uint32_t max_requests_per_connection = 0;  // 0: unlimited
  Millis idle_timeout{60000};
  std::optional<uint32_t> max_connections;       // per worker; unset: unlimited
  std::optional<uint32_t> max_idle_connections;  // per endpoint and worker
  std::optional<UpstreamTls> tls;
  // spec.useHttp2 and spec.http2ProtocolOptions (Gloo's fields): HTTP/2 to the upstream.
  bool use_http2 = false;
  std::optional<uint32_t> http2_max_concurrent_streams;     // maxConcurrentStreams
  std::optional<uint32_t> http2_initial_stream_window;      // initialStreamWindowSize
  std::optional<uint32_t> http2_initial_connection_window;  // initialConnectionWindowSize
  std::optional<UpstreamHealthCheck> health_check;
  std::optional<UpstreamOutlierDetection> outlier_detection;
  // spec.circuitBreakers and spec.retryBudget (process-wide; defaults in snapshot::Cluster).
  uint32_t cb_max_connections = 1024;
  uint32_t cb_max_pending_requests = 1024;
  uint32_t cb_max_requests = 1024;
  uint32_t cb_max_retries = 1024;
  uint32_t retry_budget_percent = 20;
  uint32_t retry_budget_min_concurrency = 3;
};

// ---- RouteTable, UpstreamGroup, Settings ----

struct RouteTableSpec {
  std::vector<Route> routes;
  int32_t weight = 0;  // tables chosen by one selector are ordered by weight, ascending
};

struct UpstreamGroupSpec {
  std::vector<Destination> destinations;
};

// Settings spec.vaultSecretSource (Gloo's VaultSecrets field names): Secrets read from a Vault KV
// version 2 mount, only those that resources reference (docs/configuration.md, "Vault").
// TLS to a store (Consul, Vault, etcd): how its certificate is verified and the client
// certificate presented. Files are read when the client starts (a bad file: the source's problem).
struct StoreTls {
  std::string ca_file;    // PEM CA bundle; empty (with ca_path): the system's trust store
  std::string ca_path;    // directory of hashed CA certificates
  std::string cert_file;  // client certificate (mTLS), with key_file
  std::string key_file;
  std::string server_name;  // the name the certificate must carry (and SNI); empty: the host
  bool insecure_skip_verify = false;
  bool empty() const {
    return ca_file.empty() && ca_path.empty() && cert_file.empty() && key_file.empty() &&
           server_name.empty() && !insecure_skip_verify;
  }
  bool operator==(const StoreTls&) const = default;
};

struct VaultSecretSourceSpec {
  std::string address;         // "http[s]://host[:port]" (8200 by default)
  std::string token;           // accessToken (or Gloo's deprecated token)
  std::string token_file;      // tokenFile: a file holding the token (read again at each re-login)
  std::string role_id;         // appRole.roleId: AppRole login when set
  std::string secret_id_file;  // appRole.secretIdFile
  std::string approle_mount = "approle";  // appRole.mountPath
  std::string path_prefix = "secret";     // the KV v2 mount (Gloo's pathPrefix)
  std::string root_key = "gloo";          // Gloo's rootKey
  Millis poll_interval{5000};             // pollInterval: version checks, +-20% jitter
  Millis request_timeout{5000};           // requestTimeout
  StoreTls tls;                           // caCert, caPath, clientCert, clientKey, ... (https)
};

// spec.consul: how to reach Consul (the KV storage's, and the catalog discovery's, agent).
struct ConsulSettings {
  std::string address = "http://127.0.0.1:8500";  // "http://host:port" ("host:port" accepted)
  std::string datacenter;                         // empty: the agent's own
  std::string ns;     // Consul Enterprise namespace (X-Consul-Namespace); empty: the token's own
  std::string token;  // the ACL token (X-Consul-Token); or
  std::string token_file;                      // a file holding it (read at start)
  std::string username, password;              // HTTP basic authentication; empty: none
  std::chrono::milliseconds wait_time{60000};  // ?wait= of the blocking queries
  StoreTls tls;                                // caFile, caPath, certFile, keyFile, ... (https)
};

// spec.nomad: how to reach Nomad (native service discovery).
struct NomadSettings {
  std::string address = "http://127.0.0.1:4646";  // "http://host:port" ("host:port" accepted)
  std::string token;                              // the ACL token (X-Nomad-Token); or
  std::string token_file;                         // a file holding it (read at each change)
  std::string region;                             // ?region=; empty: the agent's own
  std::chrono::milliseconds wait_time{60000};     // ?wait= of the blocking queries
  StoreTls tls;                                   // caFile, caPath, certFile, keyFile, ... (https)
};

// Read consistency of Consul queries (?stale, ?consistent, or neither).
enum class ConsulConsistency { kDefault, kStale, kConsistent };

// spec.consulKvSource: configuration in Consul KV, keys
// <rootKey>/<group>/<version>/<Kind>/<ns>/<name>.
struct ConsulKvSourceSettings {
  std::string root_key = "gloo";
  ConsulConsistency consistency = ConsulConsistency::kConsistent;  // Gloo reads KV consistently
};

// spec.etcdConfigSource: resources kept in etcd v3 below a prefix (docs/configuration.md).
struct EtcdConfigSourceSpec {
  std::string address = "http://127.0.0.1:2379";
  std::string prefix = "portico";  // without a trailing '/'
  Millis timeout{5000};            // one range request
  StoreTls tls;                    // caFile, caPath, certFile, keyFile, ... (https)
};

// How to reach the Kubernetes API server: Settings spec.kubernetes (discovery of Upstreams `kube`,
// and the default of the two sources below), or a source's own address. No address: in a cluster
// (KUBERNETES_SERVICE_HOST/PORT set), https://host:port with the service account's CA and token.
struct KubernetesApiSpec {
  std::string address;     // "http[s]://host[:port]"; empty: the in-cluster defaults
  std::string token_file;  // a bearer token, read again when it changes (projected tokens rotate)
  StoreTls tls;            // caFile, certFile, keyFile, serverName, insecureSkipVerify (https)
  bool operator==(const KubernetesApiSpec&) const = default;
};

// spec.kubernetesConfigSource: resources kept in Kubernetes as custom resources in Gloo's groups
// (docs/configuration.md, "Kubernetes"). No address: spec.kubernetes's connection.
struct KubernetesConfigSourceSpec : KubernetesApiSpec {
  std::vector<std::string> namespaces;  // empty: all namespaces
};

// spec.kubernetesSecretSource: Secrets (core/v1) that resources reference, read from Kubernetes.
struct KubernetesSecretSourceSpec : KubernetesApiSpec {
  std::vector<std::string> namespaces;  // empty: all namespaces
};

struct SettingsSpec {
  // invalidConfigPolicy: an invalid delegated route is replaced by a direct response (or dropped).
  bool replace_invalid_routes = false;
  uint16_t invalid_route_status = 500;
  std::optional<std::string> invalid_route_body;  // unset: a body naming the problem
  // spec.overload: process-wide limits of the data plane. Unset: none.
  std::optional<uint32_t> overload_max_connections;
  std::optional<uint64_t> overload_max_heap_bytes;
  std::optional<EtcdConfigSourceSpec> etcd_config_source;
  // spec.dns: how Upstream hosts written as names are resolved (applied without a restart).
  std::vector<std::string> dns_servers;  // "ip", "ip:port", "[ipv6]:port"; empty: /etc/resolv.conf
  Millis dns_min_refresh{1000};
  Millis dns_max_refresh{300000};
  Millis dns_timeout{2000};
  // spec.vaultSecretSource. Unset: no Vault.
  std::optional<VaultSecretSourceSpec> vault_secret_source;
  // spec.consul (defaults when absent) and spec.consulKvSource (unset: configuration is not read
  // from Consul KV).
  ConsulSettings consul;
  std::optional<ConsulKvSourceSettings> consul_kv_source;
  // spec.consulDiscovery.consistencyMode: ?stale / ?consistent on the discovery's queries.
  ConsulConsistency consul_discovery_consistency = ConsulConsistency::kDefault;
  // spec.kubernetesConfigSource. Unset: configuration is not read from Kubernetes.
  std::optional<KubernetesConfigSourceSpec> kubernetes_config_source;
  // spec.kubernetes: the API server for Upstreams `kube` (defaults when absent: in-cluster).
  KubernetesApiSpec kubernetes;
  // spec.kubernetesSecretSource. Unset: Secrets are not read from Kubernetes.
  std::optional<KubernetesSecretSourceSpec> kubernetes_secret_source;
  // spec.nomad (defaults when absent): Upstreams `nomad`.
  NomadSettings nomad;
};

// ---- A decoded document ----

struct Resource {
  Kind kind = Kind::kGateway;
  std::string api_version;
  ObjectMeta meta;
  std::string file;  // as given to the decoder
  Location loc;      // of the document
  std::variant<GatewaySpec, VirtualServiceSpec, UpstreamSpec, SecretSpec, RouteTableSpec,
               UpstreamGroupSpec, SettingsSpec>
      spec;
  std::vector<Diagnostic>
      diagnostics;  // every error and warning found while decoding and validating
  // The spec as written, as canonical JSON (keys sorted); a Secret's private key and generic
  // values are replaced by "<redacted>".
  std::string spec_json;

  bool has_errors() const { return api::has_errors(diagnostics); }
  std::string key() const;  // "<Kind>/<namespace>/<name>"
  const GatewaySpec& gateway() const { return std::get<GatewaySpec>(spec); }
  const VirtualServiceSpec& virtual_service() const { return std::get<VirtualServiceSpec>(spec); }
  const UpstreamSpec& upstream() const { return std::get<UpstreamSpec>(spec); }
  const SecretSpec& secret() const { return std::get<SecretSpec>(spec); }
  const RouteTableSpec& route_table() const { return std::get<RouteTableSpec>(spec); }
  const UpstreamGroupSpec& upstream_group() const { return std::get<UpstreamGroupSpec>(spec); }
  const SettingsSpec& settings() const { return std::get<SettingsSpec>(spec); }
};

}  // namespace portico::api
