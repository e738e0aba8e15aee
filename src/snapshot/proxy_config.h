// ProxyConfig: the contract between the control plane and the data plane. Immutable once built;
// shared across threads as std::shared_ptr<const ProxyConfig>. Built on the control-plane thread by
// the translator (src/control/translate); read by proxy workers. Nothing here refers to user
// resources: names are already resolved (a cluster is referred to by its name, e.g.
// "default/echo").
//
// It is a typed snapshot: five kinds of items (listeners, route configurations = virtual hosts,
// clusters, endpoints, secrets), each kind with its own version (TypeVersions), and each item
// naming the resources that produced it (sources_of). It carries data only: compiled objects
// (regexes, TLS contexts, filter chains, load-balancer tables) are built by the data plane from
// it when a configuration is applied (src/proxy/runtime.h).
#pragma once

#include <chrono>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <optional>
#include <string>
#include <variant>
#include <vector>

namespace portico::snapshot {

using Millis = std::chrono::milliseconds;

// An RE2 pattern (checked by the control plane; compiled by the data plane, which matches the
// whole value against it).
struct Regex {
  std::string pattern;
  bool case_sensitive = true;
  bool operator==(const Regex&) const = default;
};

enum class PathMatchKind { kPrefix, kExact, kRegex };

struct HeaderMatcher {
  std::string name;   // lower-case
  std::string value;  // exact value, when !regex and !present_only
  std::optional<Regex> regex;
  bool present_only = false;  // matches when the header is present (any value)
  bool invert = false;        // the result of the match is inverted
  bool operator==(const HeaderMatcher&) const = default;
};

struct QueryMatcher {
  std::string name;
  std::string value;  // exact value, when !regex and !present_only
  std::optional<Regex> regex;
  bool present_only = false;
  bool operator==(const QueryMatcher&) const = default;
};

struct RouteMatch {
  PathMatchKind kind = PathMatchKind::kPrefix;
  std::string path = "/";      // prefix or exact path; for kRegex, regex.pattern
  std::optional<Regex> regex;  // set when kind == kRegex (full match against the path, no query)
  bool case_sensitive = true;
  std::vector<HeaderMatcher> headers;  // all must match
  std::vector<QueryMatcher> query;     // all must match
  std::vector<std::string> methods;    // upper-case; empty = any method
  bool operator==(const RouteMatch&) const = default;
};

// Endpoint labels (subset routing): key -> value pairs sorted by key, keys unique. Consul
// instances carry "tag_<tag>" and "dc_<data center>" labels ("1" or "0"); static hosts their
// metadata (docs/configuration.md, "Subsets").
using Labels = std::vector<std::pair<std::string, std::string>>;

// Whether `have` carries every pair of `want` (both sorted by key).
inline bool labels_include(const Labels& have, const Labels& want) {
  size_t i = 0;
  for (const auto& w : want) {
    while (i < have.size() && have[i].first < w.first)
      ++i;
    if (i == have.size() || have[i] != w) return false;
    ++i;
  }
  return true;
}

struct WeightedCluster {
  std::string cluster;  // name of a Cluster in ProxyConfig::clusters
  uint32_t weight = 1;
  // Subset routing (destination `subset.values`): only the cluster's endpoints whose labels
  // include all of these; empty: every endpoint. The data plane compiles one load balancer per
  // (cluster, subset) when a configuration is applied (upstream::Cluster).
  Labels subset{};
  bool operator==(const WeightedCluster&) const = default;
};

struct ForwardAction {
  std::vector<WeightedCluster> clusters;  // one or more; weights > 0
  uint32_t total_weight = 0;              // sum of weights
  bool operator==(const ForwardAction&) const = default;
};

struct RedirectAction {
  std::string host;            // replace the host (empty: keep)
  std::string path;            // replace the whole path (empty: keep)
  std::string prefix_rewrite;  // replace the matched prefix (prefix routes only; empty: keep)
  bool https = false;          // scheme https
  uint16_t port = 0;           // 0: keep/none
  uint16_t code = 301;         // 301, 302, 303, 307, 308
  bool strip_query = false;
  bool operator==(const RedirectAction&) const = default;
};

struct DirectResponseAction {
  uint16_t status = 200;
  std::string body;
  std::string content_type = "text/plain";
  bool operator==(const DirectResponseAction&) const = default;
};

struct HeaderValue {
  std::string name;  // as written by the user (case preserved for serialisation)
  std::string value;
  bool append = true;  // false: replace any existing value
  bool operator==(const HeaderValue&) const = default;
};

struct HeaderMutations {
  std::vector<HeaderValue> add;
  std::vector<std::string> remove;  // lower-case names
  bool operator==(const HeaderMutations&) const = default;
};

// A filter's configuration as carried by the snapshot: the filter's registered name and its
// configuration as JSON (validated by the control plane; compiled by the data plane's filter
// registry when a configuration is applied, never per request).
struct FilterConfig {
  std::string name;    // e.g. "cors", "test.header_mutation"
  std::string config;  // JSON text; "{}" when the filter takes none
  bool operator==(const FilterConfig&) const = default;
};

// A route's retry policy (route option `retries`, docs/configuration.md "Retries"). Conditions are
// bits of RetryPolicy::kOn*; a retry also needs the request to be safe to repeat (stream.cc).
struct RetryPolicy {
  static constexpr uint32_t kOn5xx = 1;  // any 5xx, a reset, a connect failure, a try timeout
  static constexpr uint32_t kOnGatewayError = 2;    // 502, 503, 504, a reset, a connect failure...
  static constexpr uint32_t kOnReset = 4;           // no response head: reset, closed, try timeout
  static constexpr uint32_t kOnConnectFailure = 8;  // the connection could not be opened
  static constexpr uint32_t kOnRetriable4xx = 16;   // 409
  static constexpr uint32_t kOnRefusedStream =
      32;                                         // HTTP/2 REFUSED_STREAM (no HTTP/2 upstreams yet)
  static constexpr uint32_t kOnStatusCodes = 64;  // retriable_status_codes
  uint32_t retry_on = 0;
  std::vector<uint16_t> retriable_status_codes;
  uint32_t num_retries = 1;
  Millis per_try_timeout{0};  // 0: none (only the route timeout)
  Millis base_interval{25};   // back-off: full jitter in [0, min(max, base * 2^n)]
  Millis max_interval{250};
  bool retry_non_idempotent = false;  // POST and PATCH may be sent again too
  // A streamed request body is kept this far for a retry (a larger one is not retried).
  uint32_t max_replay_bytes = 64 * 1024;
  bool operator==(const RetryPolicy&) const = default;
};

struct HashPolicy {
  enum class Kind { kHeader, kCookie, kSourceIp };
  Kind kind = Kind::kHeader;
  std::string name;  // header name (lower case) or cookie name
  bool terminal = false;
  bool operator==(const HashPolicy&) const = default;
};

struct RouteOptions {
  std::optional<Millis>
      timeout;  // whole upstream exchange, until the response head arrives; 0 = none
  std::optional<std::string> prefix_rewrite;  // replaces the matched prefix (prefix routes)
  std::string host_rewrite;                   // non-empty: Host sent upstream
  HeaderMutations request_headers;
  HeaderMutations response_headers;
  // Request body limit for this route (413 beyond it); unset: the listener's
  // HttpOptions::max_request_body_bytes.
  std::optional<uint64_t> max_request_body_bytes;
  // The listener's access logs skip this route's requests (route option accessLog.disabled).
  bool access_log_disabled = false;
  // Filters of this route, in order, after the listener's (HttpOptions::filters).
  std::vector<FilterConfig> filters;
  // Tunnels (options.upgrades): an HTTP/1.1 WebSocket upgrade is tunnelled to the upstream that
  // answers 101; a CONNECT request opens a tunnel to the route's upstream. Off: an upgrade request
  // is served as a plain request, a CONNECT is refused (403).
  bool websocket = false;
  bool connect = false;
  // No byte either way on a stream of this route (tunnels included) for this long resets it;
  // unset: the listener's stream idle timeout.
  std::optional<Millis> idle_timeout;
  // Hash policies (options.lbHash): the key for ring hash and maglev upstreams. Policies are
  // evaluated in order and their hashes combined; a terminal policy that produced a hash stops
  // the evaluation. No hash at all: the load balancer picks at random.
  std::vector<HashPolicy> hash_policies;
  std::optional<RetryPolicy> retry;  // unset: no retries beyond a stale pooled connection's
  bool operator==(const RouteOptions&) const = default;
};

struct Route {
  std::string name;  // "<vs-namespace>/<vs-name>/<route-name or index>", used in stats
  RouteMatch match;
  std::variant<ForwardAction, RedirectAction, DirectResponseAction> action;
  RouteOptions options;
  bool operator==(const Route&) const = default;
};

// ---- TLS ----
// Certificates and keys arrive resolved (PEM text read from Secret resources by the control plane);
// the data plane builds OpenSSL contexts from them when a configuration is applied. Private keys
// are never serialised by to_json.

struct TlsCertificate {
  std::string secret;           // "<namespace>/<name>" of the Secret it came from
  std::string cert_chain_pem;   // leaf first, then intermediates
  std::string private_key_pem;  // never shown
  std::string ocsp_staple;      // DER OCSP response to staple; empty: no stapling
  bool operator==(const TlsCertificate&) const = default;
};

enum class TlsVersion { kTls12, kTls13 };

// Downstream TLS: a listener's default, or a virtual host's (chosen by SNI among its domains).
struct TlsServerConfig {
  std::vector<TlsCertificate> certificates;  // one per key type (e.g. ECDSA and RSA); never empty
  TlsVersion min_version = TlsVersion::kTls12;
  TlsVersion max_version = TlsVersion::kTls13;
  // Offered protocols in preference order: "h2" serves the connection as HTTP/2.
  std::vector<std::string> alpn = {"h2", "http/1.1"};
  // Client certificates (mTLS): required and verified against this CA bundle when non-empty.
  std::string client_ca_pem;
  std::string client_ca_secret;                  // "<namespace>/<name>", for reports
  std::vector<std::string> allowed_client_sans;  // empty: any certificate the CA verified
  // Request header carrying the verified client identity upstream (URI SAN, else DNS SAN, else
  // subject); any value the client sent under that name is removed. Empty: not sent.
  std::string client_identity_header;
  bool operator==(const TlsServerConfig&) const = default;
};

// Upstream TLS for a cluster.
struct TlsClientConfig {
  std::string sni;     // server name sent; empty: none
  std::string ca_pem;  // verify the upstream's chain against this bundle; empty: the system store
  std::string ca_secret;                  // "<namespace>/<name>", for reports
  std::vector<std::string> verify_names;  // accepted DNS/URI SANs; empty: the sni (if any)
  bool insecure_skip_verify = false;      // only when the operator says so explicitly
  std::optional<TlsCertificate> client_certificate;  // upstream mTLS
  std::vector<std::string> alpn;                     // empty: none offered
  TlsVersion min_version = TlsVersion::kTls12;
  bool operator==(const TlsClientConfig&) const = default;
};

// Domains: "example.com" (exact), "*.example.com" (suffix), "example.*" (prefix), "*" (any).
// Selection order for a Host: exact, then the longest suffix wildcard, then the longest prefix
// wildcard, then "*". Ports in Host are ignored unless a domain names one.
struct VirtualHost {
  std::string name;                  // "<namespace>/<virtualservice>"
  std::vector<std::string> domains;  // lower-case
  std::vector<Route> routes;         // in order; the first match wins
  // TLS for this virtual host's domains (selected by SNI); unset: the listener's default.
  std::optional<TlsServerConfig> tls;
  // The resources its routes came from, as "<Kind>/<namespace>/<name>": the VirtualService, then
  // the RouteTables its delegation reached and the UpstreamGroups its routes name (sources_of
  // adds the Secrets of `tls`).
  std::vector<std::string> sources;
  bool operator==(const VirtualHost&) const = default;
};

// A copy of the VirtualHost at `i` put in its place, to be edited (tests and tools that build a
// configuration by hand; a published configuration is never edited).
inline VirtualHost& edit_virtual_host(std::vector<std::shared_ptr<const VirtualHost>>& hosts,
                                      size_t i) {
  auto copy = std::make_shared<VirtualHost>(*hosts.at(i));
  hosts.at(i) = copy;
  return *copy;
}

// HTTP/2 on a listener (downstream). TLS listeners offer it by ALPN ("h2", TlsServerConfig::alpn);
// cleartext listeners only with prior knowledge, when enabled. The header list size limit is
// HttpOptions::max_request_headers_bytes (SETTINGS_MAX_HEADER_LIST_SIZE).
struct Http2Options {
  bool cleartext_prior_knowledge = false;  // a plain listener also serves h2c (client preface)
  uint32_t max_concurrent_streams = 100;   // SETTINGS_MAX_CONCURRENT_STREAMS
  uint32_t initial_stream_window =
      65536;  // per-stream receive window (SETTINGS_INITIAL_WINDOW_SIZE)
  uint32_t initial_connection_window = 1 << 20;  // connection-level receive window
  bool operator==(const Http2Options&) const = default;
};

struct HttpOptions {
  uint32_t max_request_headers_bytes = 60 * 1024;
  uint32_t max_headers = 100;
  uint32_t max_connections = 0;  // open client connections per listener and process; 0: no limit
  Millis request_header_timeout{10000};  // time to receive a whole request head
  Millis idle_timeout{60000};            // keep-alive idle time between requests
  // An idle keep-alive connection waits for its next request with its read buffer this long (a
  // busy client's next request comes sooner), then gives the buffer back and waits without one:
  // one more system call when it wakes, no buffer held while idle. 100 ms measured worse at c1000
  // and over TLS (docs/benchmarks.md, section 9); not a Gateway field (tests set it).
  Millis idle_park_after{1000};
  Millis drain_timeout{10000};  // SIGTERM: how long in-flight requests may finish
  bool generate_request_id = true;
  bool use_remote_address = true;  // append the peer to X-Forwarded-For
  std::string server_name;         // Server header on local replies; empty: none
  // Forwarding headers: how many proxies in front of Portico are trusted (Envoy's
  // xff_num_trusted_hops). 0: the client's X-Forwarded-* / Forwarded values are not trusted.
  uint32_t xff_num_trusted_hops = 0;
  // Paths: RFC 3986 dot-segment removal and percent-decoding of unreserved characters before
  // routing (what is routed is what is forwarded); merge_slashes also collapses "//".
  bool normalize_path = true;
  bool merge_slashes = false;
  // Request limits and timeouts.
  uint64_t max_request_body_bytes = 0;  // 0: unlimited (routes may set their own)
  Millis request_timeout{0};            // whole request (head and body) must arrive within; 0: none
  Millis stream_idle_timeout{300000};   // no byte either way on a request for this long: reset
  std::vector<FilterConfig> filters;    // listener-wide filters, before each route's
  Http2Options http2;
  bool operator==(const HttpOptions&) const = default;
};

// One access log of a listener (Gateway options.accessLoggingService): a line per request. The
// formats were checked by the control plane (common/access_log_format.h); the data plane compiles
// them when a configuration is applied.
struct AccessLog {
  std::string path;  // a file (absolute path), "/dev/stdout" or "/dev/stderr"
  bool json = false;
  std::string format;  // text lines: the format, newline-terminated
  std::vector<std::pair<std::string, std::string>> json_fields;  // JSON lines: key -> format
  bool operator==(const AccessLog&) const = default;
};

struct Listener {
  std::string name;  // "<namespace>/<gateway>"
  std::string address = "0.0.0.0";
  uint16_t port = 0;
  HttpOptions http;
  std::vector<std::shared_ptr<const VirtualHost>> virtual_hosts;  // shared between versions
  // TLS on this listener (Gloo's `ssl: true`): the default certificate for clients whose SNI
  // matches no virtual host with its own TLS, or who send no SNI. Unset: plain TCP.
  std::optional<TlsServerConfig> tls;
  std::vector<AccessLog> access_logs;
  // Compares the pointers of virtual_hosts (see same_listener_settings for the settings alone).
  bool operator==(const Listener&) const = default;
};

struct Endpoint {
  std::string address;  // numeric IPv4 or IPv6 address
  uint16_t port = 0;
  uint32_t weight = 1;
  // Failover tier: 0 is the Upstream's own hosts, k + 1 its failover.prioritizedLocalities[k].
  // Tier k + 1 gets traffic only when tiers 0..k have too few available hosts.
  uint32_t priority = 0;
  Labels labels{};  // subset routing: what a route's subset is matched against
  bool operator==(const Endpoint&) const = default;
};

// What the control plane discovers for a cluster: a DNS name (Upstream static hosts written as
// names), a Consul or Nomad service; Kubernetes services later. The data plane ignores it: the
// control plane resolves it into `Cluster::endpoints` before it publishes (control/discovery).
struct DiscoveryTarget {
  std::string source;  // "dns", "consul", "nomad"
  std::string name;    // the DNS name (lower case, no trailing dot), or the service name
  uint16_t port = 0;   // 0: each instance's own port (services)
  uint32_t weight = 1;
  uint32_t priority = 0;  // failover tier of the endpoints it yields
  // Services: only instances carrying every one of these tags; the data center (Consul) or
  // namespace (Nomad) asked for; empty: the agent's own / the default.
  std::vector<std::string> tags;
  std::string datacenter;
  std::string ns;
  // Canaries (Nomad): instances carrying every one of `canary_tags` (the job's canary_tags) are
  // canaries; kExclude drops them, kOnly keeps only them. kInclude (or no canary tag): all.
  enum class Canary : uint8_t { kInclude, kExclude, kOnly };
  Canary canary = Canary::kInclude;
  std::vector<std::string> canary_tags;
  // Subset labels (Consul, Upstream consul.subsetTags and dataCenters): each endpoint found gets
  // "tag_<t>" = "1" or "0" for each of `subset_tags` (whether the instance carries t) and
  // "dc_<d>" = "1" or "0" for each of `subset_datacenters` (whether it runs in d).
  std::vector<std::string> subset_tags{};
  std::vector<std::string> subset_datacenters{};
  // What the source watches (the same target for two clusters is watched once).
  std::string key() const {
    std::string k = source + ":" + name;
    if (!datacenter.empty()) k += "@" + datacenter;
    if (!ns.empty()) k += "/" + ns;
    for (const auto& t : tags)
      k += "#" + t;
    if (canary != Canary::kInclude && !canary_tags.empty()) {
      k += canary == Canary::kOnly ? "~canary-only" : "~canary-excluded";
      for (const auto& t : canary_tags)
        k += "#" + t;
    }
    if (!subset_tags.empty() || !subset_datacenters.empty()) {
      k += "~subsets";
      for (const auto& t : subset_tags)
        k += "#" + t;
      for (const auto& d : subset_datacenters)
        k += "@" + d;
    }
    return k;
  }
  bool operator==(const DiscoveryTarget&) const = default;
};

enum class LbPolicy { kRoundRobin, kLeastRequest, kRandom, kRingHash, kMaglev };

// An active health check of every endpoint of a cluster (Upstream healthChecks). One checker per
// endpoint for the whole process (the data plane's health thread), not one per worker.
struct HealthCheck {
  enum class Kind { kHttp, kTcp, kGrpc };
  Kind kind = Kind::kHttp;
  Millis timeout{1000};                  // a check not answered within this fails
  Millis interval{5000};                 // between two checks of one endpoint
  Millis interval_jitter{0};             // plus a random 0..interval_jitter
  uint32_t interval_jitter_percent = 0;  // plus a random 0..interval*percent/100
  uint32_t unhealthy_threshold = 3;      // consecutive failures that take a healthy endpoint out
  uint32_t healthy_threshold = 2;        // consecutive successes that bring it back
  // HTTP: GET `path` with Host `host` (empty: the endpoint's address:port); healthy when the
  // status is in one of the [start, end) ranges (empty: 200 only).
  // gRPC (grpc.health.v1.Health/Check over HTTP/2): `host` is the :authority (empty: the
  // endpoint's address:port); healthy when the answer is SERVING for `service_name`.
  std::string path = "/";
  std::string host;
  std::vector<std::pair<uint16_t, uint16_t>> expected_statuses;
  std::string service_name;
  std::vector<std::pair<std::string, std::string>> initial_metadata;  // lower-case names
  bool operator==(const HealthCheck&) const = default;
};

// Passive outlier detection (Upstream outlierDetection): workers report each exchange's outcome;
// an endpoint that fails too often in a row is ejected for a time that grows with its ejections.
struct OutlierDetection {
  uint32_t consecutive_5xx = 5;                   // 0: off
  uint32_t consecutive_gateway_failure = 5;       // 502, 503, 504 and local failures; 0: off
  uint32_t consecutive_local_origin_failure = 5;  // connect failures (split mode only); 0: off
  bool split_external_local_origin_errors = false;
  uint32_t enforcing_consecutive_5xx = 100;  // % of detections that eject
  uint32_t enforcing_consecutive_gateway_failure = 0;
  uint32_t enforcing_consecutive_local_origin_failure = 100;
  Millis interval{10000};            // an ejection count decays by one per interval unejected
  Millis base_ejection_time{30000};  // ejection time = base × ejections, up to max_ejection_time
  Millis max_ejection_time{300000};
  uint32_t max_ejection_percent = 10;  // of the cluster's endpoints (at least one may be ejected)
  bool operator==(const OutlierDetection&) const = default;
};

// Process-wide limits of one cluster (Upstream circuitBreakers), counted across workers.
struct CircuitBreakers {
  uint32_t max_connections = 1024;       // open upstream connections
  uint32_t max_pending_requests = 1024;  // requests waiting for a connection to open
  uint32_t max_requests = 1024;          // requests in flight
  uint32_t max_retries = 1024;           // retries in flight
  bool operator==(const CircuitBreakers&) const = default;
};

// Retry budget (Upstream retryBudget): a retry is allowed while the cluster's retries in flight
// stay under max(min_retry_concurrency, budget_percent % of its requests in flight).
struct RetryBudget {
  uint32_t budget_percent = 20;
  uint32_t min_retry_concurrency = 3;
  bool operator==(const RetryBudget&) const = default;
};
enum class UpstreamProtocol { kHttp1, kHttp2 };

struct Cluster {
  std::string name;  // "<namespace>/<upstream>"
  LbPolicy lb = LbPolicy::kRoundRobin;
  std::vector<Endpoint> endpoints;  // ordered by priority (tier 0 first)
  // Endpoints to discover (added to `endpoints` by the control plane as they are found).
  std::vector<DiscoveryTarget> discovery;
  uint32_t choice_count = 2;      // least request: hosts sampled per pick
  uint64_t ring_min_size = 1024;  // ring hash: entries in the ring, at least / at most
  uint64_t ring_max_size = 8 * 1024 * 1024;
  uint32_t maglev_table_size = 65537;  // maglev: entries in the lookup table (a prime)
  // Percent of available hosts (in a tier) below which availability is ignored (panic mode);
  // 0 disables panic mode.
  uint32_t healthy_panic_threshold = 50;
  Millis connect_timeout{2000};
  uint32_t max_requests_per_connection = 0;  // 0: unlimited
  Millis idle_connection_timeout{60000};     // pooled idle connection lifetime
  UpstreamProtocol protocol = UpstreamProtocol::kHttp1;
  // HTTP/2 (protocol kHttp2): concurrent streams per connection (ours; the peer's
  // SETTINGS_MAX_CONCURRENT_STREAMS may lower it), the stream window we announce and the
  // connection's receive window.
  uint32_t http2_max_concurrent_streams = 100;
  uint32_t http2_initial_stream_window = 65535;
  uint32_t http2_initial_connection_window = 1 << 20;
  std::optional<TlsClientConfig> tls;       // unset: plain TCP
  uint32_t max_connections = 0;             // open connections per worker; 0: unlimited
  uint32_t max_idle_connections = 4096;     // pooled idle connections per endpoint and worker
  std::optional<HealthCheck> health_check;  // unset: every endpoint is assumed healthy
  std::optional<OutlierDetection> outlier_detection;
  CircuitBreakers circuit_breakers;
  RetryBudget retry_budget;
  bool operator==(const Cluster&) const = default;
};

// A vector shared by the copies of a ProxyConfig until one of them is changed (copy on write):
// a configuration made from the previous one with one route changed shares its clusters instead
// of copying thousands of them. Reads never copy; a non-const access copies the elements first
// when another configuration still shares them. A published configuration is const and never
// edited.
template <typename T>
class SharedVector {
 public:
  SharedVector() = default;
  SharedVector(std::vector<T> v) : v_(std::make_shared<std::vector<T>>(std::move(v))) {}
  SharedVector(std::initializer_list<T> init) : v_(std::make_shared<std::vector<T>>(init)) {}
  SharedVector& operator=(std::vector<T> v) {
    v_ = std::make_shared<std::vector<T>>(std::move(v));
    return *this;
  }

  const std::vector<T>& get() const { return v_ ? *v_ : none(); }
  size_t size() const { return get().size(); }
  bool empty() const { return get().empty(); }
  const T& operator[](size_t i) const { return get()[i]; }
  const T& at(size_t i) const { return get().at(i); }
  const T& back() const { return get().back(); }
  typename std::vector<T>::const_iterator begin() const { return get().begin(); }
  typename std::vector<T>::const_iterator end() const { return get().end(); }
  // True when both share one vector (nothing was changed since one was copied from the other).
  bool shares_with(const SharedVector& o) const { return v_ == o.v_; }

  // Write access: this configuration's own vector.
  std::vector<T>& edit() {
    if (!v_) {
      v_ = std::make_shared<std::vector<T>>();
    } else if (v_.use_count() > 1) {
      v_ = std::make_shared<std::vector<T>>(*v_);
    }
    return *v_;
  }
  T& operator[](size_t i) { return edit()[i]; }
  T& at(size_t i) { return edit().at(i); }
  T& back() { return edit().back(); }
  void push_back(T x) { edit().push_back(std::move(x)); }
  void clear() { v_.reset(); }

 private:
  static const std::vector<T>& none() {
    static const std::vector<T> none;
    return none;
  }
  std::shared_ptr<std::vector<T>> v_;
};

// Process-wide limits (Settings spec.overload). 0: none.
struct OverloadConfig {
  uint32_t max_connections = 0;  // open client connections, all listeners together
  uint64_t max_heap_bytes = 0;   // beyond it: new requests get 503, keep-alive is off
};

// The version of each kind of item in a ProxyConfig: the ProxyConfig::version at which that kind
// last changed. A data plane (or, later, a remote proxy) that runs a configuration whose version
// of a kind is the same has nothing of that kind to apply. Kinds are separated so that an
// endpoint or certificate change touches neither routes nor listeners:
// - listeners: a Listener's settings (address, port, options, access logs, TLS settings without
//   certificate and key material) and which listeners exist;
// - routes: each listener's virtual hosts and their routes (TLS settings without material);
// - clusters: the clusters' settings (endpoints and TLS material excluded) and which exist;
// - endpoints: each cluster's endpoints;
// - secrets: certificate, key, CA and OCSP material, by Secret name.
struct TypeVersions {
  uint64_t listeners = 0;
  uint64_t routes = 0;
  uint64_t clusters = 0;
  uint64_t endpoints = 0;
  uint64_t secrets = 0;
  bool operator==(const TypeVersions&) const = default;
};

struct ProxyConfig {
  uint64_t version = 0;   // increases with every published config
  TypeVersions versions;  // set by assign_type_versions when published
  int64_t created_unix_ms = 0;
  std::vector<Listener> listeners;
  SharedVector<Cluster> clusters;  // shared with the configuration it was made from, if unchanged
  OverloadConfig overload;

  const Cluster* find_cluster(std::string_view name) const {
    for (const auto& c : clusters) {
      if (c.name == name) return &c;
    }
    return nullptr;
  }
};

// Sets next.versions against `previous` (the configuration published before it; null: none):
// each kind keeps previous's version when none of its items changed, else takes next.version.
// Cost: proportional to what is not shared by pointer between the two (a one-route change
// compares one virtual host and the cluster list's pointer).
void assign_type_versions(ProxyConfig& next, const ProxyConfig* previous);

// The resources that produced an item, as "<Kind>/<namespace>/<name>" (first the resource the item
// is named after, then the others: RouteTables, UpstreamGroups, Secrets). A data plane that
// rejects an item reports it on these.
std::vector<std::string> sources_of(const Listener& listener);
std::vector<std::string> sources_of(const VirtualHost& host);
std::vector<std::string> sources_of(const Cluster& cluster);

// The ProxyConfig as JSON (for /config_dump).
std::string to_json(const ProxyConfig& config, bool pretty = true);

}  // namespace portico::snapshot
