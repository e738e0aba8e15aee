// The wire codec of a ProxyConfig (see wire.h). The JSON shape of each struct is its fields by
// name (nlohmann's NON_INTRUSIVE macros: every field is required on decode); enums are strings,
// durations milliseconds, optional fields null when unset.
#include "snapshot/wire.h"

#include <cinttypes>
#include <cstdio>
#include <exception>
#include <optional>
#include <set>

#include "common/base64.h"
#include "common/hash.h"

namespace nlohmann {

template <typename T>
struct adl_serializer<std::optional<T>> {
  static void to_json(json& j, const std::optional<T>& o) {
    if (o) {
      j = *o;
    } else {
      j = nullptr;
    }
  }
  static void from_json(const json& j, std::optional<T>& o) {
    if (j.is_null()) {
      o.reset();
    } else {
      o = j.get<T>();
    }
  }
};

template <>
struct adl_serializer<std::chrono::milliseconds> {
  static void to_json(json& j, const std::chrono::milliseconds& d) { j = d.count(); }
  static void from_json(const json& j, std::chrono::milliseconds& d) {
    if (!j.is_number_integer()) throw std::invalid_argument("a duration must be an integer (ms)");
    d = std::chrono::milliseconds(j.get<int64_t>());
  }
};

}  // namespace nlohmann

namespace portico::snapshot {

using Json = nlohmann::json;

namespace {

// A strict enum mapping: an unknown name is an error (nlohmann's own enum macro takes the first).
template <typename E, size_t N>
void enum_to(Json& j, E e, const std::pair<E, const char*> (&names)[N]) {
  for (const auto& [v, n] : names) {
    if (v == e) {
      j = n;
      return;
    }
  }
  throw std::invalid_argument("unknown enum value " + std::to_string(static_cast<int>(e)));
}
template <typename E, size_t N>
void enum_from(const Json& j, E& e, const std::pair<E, const char*> (&names)[N]) {
  if (!j.is_string()) throw std::invalid_argument("an enum must be a string");
  const auto& s = j.get_ref<const std::string&>();
  for (const auto& [v, n] : names) {
    if (s == n) {
      e = v;
      return;
    }
  }
  throw std::invalid_argument("unknown value '" + s + "'");
}

const std::pair<PathMatchKind, const char*> kPathKinds[] = {{PathMatchKind::kPrefix, "prefix"},
                                                            {PathMatchKind::kExact, "exact"},
                                                            {PathMatchKind::kRegex, "regex"}};
const std::pair<TlsVersion, const char*> kTlsVersions[] = {{TlsVersion::kTls12, "1.2"},
                                                           {TlsVersion::kTls13, "1.3"}};
const std::pair<LbPolicy, const char*> kLbPolicies[] = {{LbPolicy::kRoundRobin, "round_robin"},
                                                        {LbPolicy::kLeastRequest, "least_request"},
                                                        {LbPolicy::kRandom, "random"},
                                                        {LbPolicy::kRingHash, "ring_hash"},
                                                        {LbPolicy::kMaglev, "maglev"}};
const std::pair<UpstreamProtocol, const char*> kProtocols[] = {{UpstreamProtocol::kHttp1, "http1"},
                                                               {UpstreamProtocol::kHttp2, "http2"}};
const std::pair<HashPolicy::Kind, const char*> kHashKinds[] = {
    {HashPolicy::Kind::kHeader, "header"},
    {HashPolicy::Kind::kCookie, "cookie"},
    {HashPolicy::Kind::kSourceIp, "source_ip"}};
const std::pair<DiscoveryTarget::Canary, const char*> kCanaries[] = {
    {DiscoveryTarget::Canary::kInclude, "include"},
    {DiscoveryTarget::Canary::kExclude, "exclude"},
    {DiscoveryTarget::Canary::kOnly, "only"}};
const std::pair<HealthCheck::Kind, const char*> kHealthKinds[] = {
    {HealthCheck::Kind::kHttp, "http"},
    {HealthCheck::Kind::kTcp, "tcp"},
    {HealthCheck::Kind::kGrpc, "grpc"}};

}  // namespace

void to_json(Json& j, PathMatchKind e) {
  enum_to(j, e, kPathKinds);
}
void from_json(const Json& j, PathMatchKind& e) {
  enum_from(j, e, kPathKinds);
}
void to_json(Json& j, TlsVersion e) {
  enum_to(j, e, kTlsVersions);
}
void from_json(const Json& j, TlsVersion& e) {
  enum_from(j, e, kTlsVersions);
}
void to_json(Json& j, LbPolicy e) {
  enum_to(j, e, kLbPolicies);
}
void from_json(const Json& j, LbPolicy& e) {
  enum_from(j, e, kLbPolicies);
}
void to_json(Json& j, UpstreamProtocol e) {
  enum_to(j, e, kProtocols);
}
void from_json(const Json& j, UpstreamProtocol& e) {
  enum_from(j, e, kProtocols);
}
void to_json(Json& j, HashPolicy::Kind e) {
  enum_to(j, e, kHashKinds);
}
void from_json(const Json& j, HashPolicy::Kind& e) {
  enum_from(j, e, kHashKinds);
}
void to_json(Json& j, DiscoveryTarget::Canary e) {
  enum_to(j, e, kCanaries);
}
void from_json(const Json& j, DiscoveryTarget::Canary& e) {
  enum_from(j, e, kCanaries);
}
void to_json(Json& j, HealthCheck::Kind e) {
  enum_to(j, e, kHealthKinds);
}
void from_json(const Json& j, HealthCheck::Kind& e) {
  enum_from(j, e, kHealthKinds);
}

// Every field of every struct is encoded by name below. A field added to proxy_config.h and not
// listed here would be dropped silently on the wire (a proxy would run without it): these sizes
// (x86-64, libstdc++) stop the build instead. Add the field to its struct's list below (and to
// rich() in tests/snapshot/wire_test.cc), then update the size.
#if defined(__x86_64__) && defined(__GLIBCXX__)
#define kAddedField "a field was added to this struct: encode it in snapshot/wire.cc"
static_assert(sizeof(Regex) == 40, kAddedField);
static_assert(sizeof(HeaderMatcher) == 120, kAddedField);
static_assert(sizeof(QueryMatcher) == 120, kAddedField);
static_assert(sizeof(RouteMatch) == 168, kAddedField);
static_assert(sizeof(WeightedCluster) == 64, kAddedField);
static_assert(sizeof(ForwardAction) == 32, kAddedField);
static_assert(sizeof(RedirectAction) == 104, kAddedField);
static_assert(sizeof(DirectResponseAction) == 72, kAddedField);
static_assert(sizeof(HeaderValue) == 72, kAddedField);
static_assert(sizeof(HeaderMutations) == 48, kAddedField);
static_assert(sizeof(FilterConfig) == 64, kAddedField);
static_assert(sizeof(RetryPolicy) == 72, kAddedField);
static_assert(sizeof(HashPolicy) == 48, kAddedField);
static_assert(sizeof(RouteOptions) == 360, kAddedField);
static_assert(sizeof(Route) == 672, kAddedField);
static_assert(sizeof(TlsCertificate) == 128, kAddedField);
static_assert(sizeof(TlsServerConfig) == 176, kAddedField);
static_assert(sizeof(TlsClientConfig) == 296, kAddedField);
static_assert(sizeof(VirtualHost) == 288, kAddedField);
static_assert(sizeof(Http2Options) == 16, kAddedField);
static_assert(sizeof(HttpOptions) == 160, kAddedField);
static_assert(sizeof(AccessLog) == 96, kAddedField);
static_assert(sizeof(Listener) == 464, kAddedField);
static_assert(sizeof(Endpoint) == 72, kAddedField);
static_assert(sizeof(DiscoveryTarget) == 248, kAddedField);
static_assert(sizeof(HealthCheck) == 192, kAddedField);
static_assert(sizeof(OutlierDetection) == 64, kAddedField);
static_assert(sizeof(CircuitBreakers) == 16, kAddedField);
static_assert(sizeof(RetryBudget) == 8, kAddedField);
static_assert(sizeof(Cluster) == 768, kAddedField);
static_assert(sizeof(OverloadConfig) == 16, kAddedField);
static_assert(sizeof(TypeVersions) == 40, kAddedField);
#undef kAddedField
#endif

NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(Regex, pattern, case_sensitive)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(HeaderMatcher, name, value, regex, present_only, invert)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(QueryMatcher, name, value, regex, present_only)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(RouteMatch, kind, path, regex, case_sensitive, headers, query,
                                   methods)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(WeightedCluster, cluster, weight, subset)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(ForwardAction, clusters, total_weight)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(RedirectAction, host, path, prefix_rewrite, https, port, code,
                                   strip_query)
// Bytes that need not be UTF-8 (a body, a DER OCSP response) travel as base64.
std::string from_base64(const Json& j) {
  auto bytes = common::base64_decode(j.get<std::string>());
  if (!bytes) throw std::invalid_argument("invalid base64");
  return *bytes;
}
void to_json(Json& j, const DirectResponseAction& a) {
  j = Json{{"status", a.status},
           {"body_base64", common::base64_encode(a.body)},
           {"content_type", a.content_type}};
}
void from_json(const Json& j, DirectResponseAction& a) {
  a.status = j.at("status").get<uint16_t>();
  a.body = from_base64(j.at("body_base64"));
  a.content_type = j.at("content_type").get<std::string>();
}
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(HeaderValue, name, value, append)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(HeaderMutations, add, remove)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(FilterConfig, name, config)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(RetryPolicy, retry_on, retriable_status_codes, num_retries,
                                   per_try_timeout, base_interval, max_interval,
                                   retry_non_idempotent, max_replay_bytes)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(HashPolicy, kind, name, terminal)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(RouteOptions, timeout, prefix_rewrite, host_rewrite,
                                   request_headers, response_headers, max_request_body_bytes,
                                   access_log_disabled, filters, websocket, connect, idle_timeout,
                                   hash_policies, retry)

void to_json(Json& j, const Route& r) {
  j = Json::object();
  j["name"] = r.name;
  j["match"] = r.match;
  j["options"] = r.options;
  if (const auto* f = std::get_if<ForwardAction>(&r.action)) {
    j["forward"] = *f;
  } else if (const auto* d = std::get_if<RedirectAction>(&r.action)) {
    j["redirect"] = *d;
  } else {
    j["direct_response"] = std::get<DirectResponseAction>(r.action);
  }
}
void from_json(const Json& j, Route& r) {
  r.name = j.at("name").get<std::string>();
  r.match = j.at("match").get<RouteMatch>();
  r.options = j.at("options").get<RouteOptions>();
  int actions = 0;
  if (j.contains("forward")) {
    r.action = j.at("forward").get<ForwardAction>();
    ++actions;
  }
  if (j.contains("redirect")) {
    r.action = j.at("redirect").get<RedirectAction>();
    ++actions;
  }
  if (j.contains("direct_response")) {
    r.action = j.at("direct_response").get<DirectResponseAction>();
    ++actions;
  }
  if (actions != 1) {
    throw std::invalid_argument("route " + r.name +
                                ": exactly one of forward, redirect, direct_response");
  }
}

void to_json(Json& j, const TlsCertificate& c) {
  j = Json{{"secret", c.secret},
           {"cert_chain_pem", c.cert_chain_pem},
           {"private_key_pem", c.private_key_pem},
           {"ocsp_staple", common::base64_encode(c.ocsp_staple)}};
}
void from_json(const Json& j, TlsCertificate& c) {
  c.secret = j.at("secret").get<std::string>();
  c.cert_chain_pem = j.at("cert_chain_pem").get<std::string>();
  c.private_key_pem = j.at("private_key_pem").get<std::string>();
  c.ocsp_staple = from_base64(j.at("ocsp_staple"));
}
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(TlsServerConfig, certificates, min_version, max_version, alpn,
                                   client_ca_pem, client_ca_secret, allowed_client_sans,
                                   client_identity_header)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(TlsClientConfig, sni, ca_pem, ca_secret, verify_names,
                                   insecure_skip_verify, client_certificate, alpn, min_version)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(VirtualHost, name, domains, routes, tls, sources)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(Http2Options, cleartext_prior_knowledge, max_concurrent_streams,
                                   initial_stream_window, initial_connection_window)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(HttpOptions, max_request_headers_bytes, max_headers,
                                   max_connections, request_header_timeout, idle_timeout,
                                   idle_park_after, drain_timeout, generate_request_id,
                                   use_remote_address, server_name, xff_num_trusted_hops,
                                   normalize_path, merge_slashes, max_request_body_bytes,
                                   request_timeout, stream_idle_timeout, filters, http2)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(AccessLog, path, json, format, json_fields)
// Without virtual_hosts: those travel in the routes section.
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(Listener, name, address, port, http, tls, access_logs)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(Endpoint, address, port, weight, priority, labels)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(DiscoveryTarget, source, name, port, weight, priority, tags,
                                   datacenter, ns, canary, canary_tags, subset_tags,
                                   subset_datacenters)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(HealthCheck, kind, timeout, interval, interval_jitter,
                                   interval_jitter_percent, unhealthy_threshold, healthy_threshold,
                                   path, host, expected_statuses, service_name, initial_metadata)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(OutlierDetection, consecutive_5xx, consecutive_gateway_failure,
                                   consecutive_local_origin_failure,
                                   split_external_local_origin_errors, enforcing_consecutive_5xx,
                                   enforcing_consecutive_gateway_failure,
                                   enforcing_consecutive_local_origin_failure, interval,
                                   base_ejection_time, max_ejection_time, max_ejection_percent)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(CircuitBreakers, max_connections, max_pending_requests,
                                   max_requests, max_retries)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(RetryBudget, budget_percent, min_retry_concurrency)
// Without endpoints: those travel in the endpoints section.
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(Cluster, name, lb, discovery, choice_count, ring_min_size,
                                   ring_max_size, maglev_table_size, healthy_panic_threshold,
                                   connect_timeout, max_requests_per_connection,
                                   idle_connection_timeout, protocol, tls, max_connections,
                                   max_idle_connections, health_check, outlier_detection,
                                   circuit_breakers, retry_budget, http2_max_concurrent_streams,
                                   http2_initial_stream_window, http2_initial_connection_window)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(OverloadConfig, max_connections, max_heap_bytes)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(TypeVersions, listeners, routes, clusters, endpoints, secrets)

namespace wire {
namespace {

// ---- secrets: material moved out of the TLS settings, and put back ----

struct Material {
  std::optional<Json> cert;  // {cert_chain_pem, private_key_pem, ocsp_staple}
  std::optional<std::string> ca;
};
using SecretMap = std::map<std::string, Material>;

const char* const kCertFields[] = {"cert_chain_pem", "private_key_pem", "ocsp_staple"};

void strip_cert(Json& cert, SecretMap& secrets) {
  const std::string& name = cert.at("secret").get_ref<const std::string&>();
  Json material = Json::object();
  bool any = false;
  for (const char* f : kCertFields) {
    material[f] = cert.at(f);
    any = any || !cert.at(f).get_ref<const std::string&>().empty();
  }
  if (name.empty() || !any) return;
  Material& m = secrets[name];
  if (m.cert && *m.cert != material) return;  // differs from another user's: stays inline
  m.cert = std::move(material);
  for (const char* f : kCertFields)
    cert.erase(f);
  cert["from_secret"] = true;
}

void strip_ca(Json& tls, const char* pem_field, const char* secret_field, SecretMap& secrets) {
  const std::string& name = tls.at(secret_field).get_ref<const std::string&>();
  const std::string& pem = tls.at(pem_field).get_ref<const std::string&>();
  if (name.empty() || pem.empty()) return;
  Material& m = secrets[name];
  if (m.ca && *m.ca != pem) return;
  m.ca = pem;
  tls.erase(pem_field);
  tls["ca_from_secret"] = true;
}

void strip_server_tls(Json& tls, SecretMap& secrets) {
  if (tls.is_null()) return;
  for (auto& c : tls.at("certificates"))
    strip_cert(c, secrets);
  strip_ca(tls, "client_ca_pem", "client_ca_secret", secrets);
}

void strip_client_tls(Json& tls, SecretMap& secrets) {
  if (tls.is_null()) return;
  strip_ca(tls, "ca_pem", "ca_secret", secrets);
  if (!tls.at("client_certificate").is_null()) strip_cert(tls.at("client_certificate"), secrets);
}

const Material& find_secret(const SecretMap& secrets, const std::string& name) {
  auto it = secrets.find(name);
  if (it == secrets.end()) {
    throw std::invalid_argument("secret '" + name + "' is not in the secrets section");
  }
  return it->second;
}

void fill_cert(Json& cert, const SecretMap& secrets) {
  if (!cert.is_object() || !cert.contains("from_secret")) return;
  const Material& m = find_secret(secrets, cert.at("secret").get<std::string>());
  if (!m.cert) {
    throw std::invalid_argument("secret '" + cert.at("secret").get<std::string>() +
                                "' has no certificate in the secrets section");
  }
  for (const char* f : kCertFields)
    cert[f] = m.cert->at(f);
  cert.erase("from_secret");
}

void fill_ca(Json& tls, const char* pem_field, const char* secret_field, const SecretMap& secrets) {
  if (!tls.contains("ca_from_secret")) return;
  const std::string name = tls.at(secret_field).get<std::string>();
  const Material& m = find_secret(secrets, name);
  if (!m.ca) throw std::invalid_argument("secret '" + name + "' has no CA in the secrets section");
  tls[pem_field] = *m.ca;
  tls.erase("ca_from_secret");
}

void fill_server_tls(Json& tls, const SecretMap& secrets) {
  if (tls.is_null()) return;
  if (!tls.is_object()) throw std::invalid_argument("tls must be an object or null");
  for (auto& c : tls.at("certificates"))
    fill_cert(c, secrets);
  fill_ca(tls, "client_ca_pem", "client_ca_secret", secrets);
}

void fill_client_tls(Json& tls, const SecretMap& secrets) {
  if (tls.is_null()) return;
  if (!tls.is_object()) throw std::invalid_argument("tls must be an object or null");
  fill_ca(tls, "ca_pem", "ca_secret", secrets);
  if (tls.contains("client_certificate")) fill_cert(tls.at("client_certificate"), secrets);
}

std::string hex(uint64_t v) {
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016" PRIx64, v);
  return buf;
}

// Strings that are not UTF-8 (nothing the control plane produces: bodies and OCSP travel as
// base64) are replaced rather than thrown on.
std::string dump(const Json& j) {
  return j.dump(-1, ' ', false, Json::error_handler_t::replace);
}

Section make_section(Json body) {
  Section s;
  s.version = hex(common::content_hash(dump(body)));
  s.body = std::move(body);
  return s;
}

// The items array of a section, checked.
const Json& items_of(const Sections& sections, std::string_view name) {
  auto it = sections.find(name);
  if (it == sections.end()) throw std::invalid_argument("missing");
  const Json& body = it->second.body;
  if (!body.is_object() || !body.contains("items") || !body.at("items").is_array()) {
    throw std::invalid_argument("no items array");
  }
  return body.at("items");
}

// "<section>.items[i] (name)".
std::string where(std::string_view section, size_t i, const Json& item) {
  std::string out = std::string(section) + ".items[" + std::to_string(i) + "]";
  if (item.is_object()) {
    for (const char* key : {"name", "listener", "cluster"}) {
      auto it = item.find(key);
      if (it != item.end() && it->is_string()) return out + " (" + it->get<std::string>() + ")";
    }
  }
  return out;
}

}  // namespace

Header header_of(const ProxyConfig& config) {
  return {config.version, config.created_unix_ms, config.versions};
}

Sections encode_sections(const ProxyConfig& config) {
  SecretMap secrets;
  Json listeners = Json::array();
  Json routes = Json::array();
  for (const auto& l : config.listeners) {
    Json lj = l;
    strip_server_tls(lj.at("tls"), secrets);
    listeners.push_back(std::move(lj));
    Json hosts = Json::array();
    for (const auto& vh : l.virtual_hosts) {
      Json hj = *vh;
      strip_server_tls(hj.at("tls"), secrets);
      hosts.push_back(std::move(hj));
    }
    routes.push_back(Json{{"listener", l.name}, {"virtual_hosts", std::move(hosts)}});
  }
  Json clusters = Json::array();
  Json endpoints = Json::array();
  for (const auto& c : config.clusters) {
    Json cj = c;
    strip_client_tls(cj.at("tls"), secrets);
    clusters.push_back(std::move(cj));
    endpoints.push_back(Json{{"cluster", c.name}, {"endpoints", c.endpoints}});
  }
  Json secret_items = Json::array();
  for (const auto& [name, m] : secrets) {
    Json s{{"name", name}};
    if (m.cert) s["certificate"] = *m.cert;
    if (m.ca) s["ca_pem"] = *m.ca;
    secret_items.push_back(std::move(s));
  }
  Sections out;
  out["listeners"] =
      make_section(Json{{"items", std::move(listeners)}, {"overload", config.overload}});
  out["routes"] = make_section(Json{{"items", std::move(routes)}});
  out["clusters"] = make_section(Json{{"items", std::move(clusters)}});
  out["endpoints"] = make_section(Json{{"items", std::move(endpoints)}});
  out["secrets"] = make_section(Json{{"items", std::move(secret_items)}});
  return out;
}

Result<ProxyConfig> decode_sections(const Sections& sections, const Header& header) {
  ProxyConfig config;
  config.version = header.version;
  config.created_unix_ms = header.created_unix_ms;
  config.versions = header.versions;
  std::string_view section;
  std::string item;
  try {
    // Secrets first: the other sections take their material from them.
    SecretMap secrets;
    section = "secrets";
    const Json& secret_items = items_of(sections, section);
    for (size_t i = 0; i < secret_items.size(); ++i) {
      const Json& s = secret_items[i];
      item = where(section, i, s);
      Material m;
      if (s.contains("certificate")) {
        Json cert = s.at("certificate");
        for (const char* f : kCertFields)
          cert.at(f).get<std::string>();  // present and strings
        m.cert = std::move(cert);
      }
      if (s.contains("ca_pem")) m.ca = s.at("ca_pem").get<std::string>();
      if (!secrets.emplace(s.at("name").get<std::string>(), std::move(m)).second) {
        throw std::invalid_argument("duplicate secret");
      }
    }

    section = "listeners";
    item.clear();
    const Json& listener_items = items_of(sections, section);
    {
      auto it = sections.find(section);
      if (!it->second.body.contains("overload")) throw std::invalid_argument("no overload");
      config.overload = it->second.body.at("overload").get<OverloadConfig>();
    }
    for (size_t i = 0; i < listener_items.size(); ++i) {
      Json lj = listener_items[i];
      item = where(section, i, lj);
      if (!lj.is_object()) throw std::invalid_argument("not an object");
      fill_server_tls(lj.at("tls"), secrets);
      config.listeners.push_back(lj.get<Listener>());
    }

    section = "routes";
    item.clear();
    const Json& route_items = items_of(sections, section);
    if (route_items.size() != config.listeners.size()) {
      throw std::invalid_argument(std::to_string(route_items.size()) + " items for " +
                                  std::to_string(config.listeners.size()) + " listeners");
    }
    for (size_t i = 0; i < route_items.size(); ++i) {
      const Json& rj = route_items[i];
      item = where(section, i, rj);
      if (!rj.is_object()) throw std::invalid_argument("not an object");
      if (rj.at("listener").get<std::string>() != config.listeners[i].name) {
        throw std::invalid_argument("names listener " + rj.at("listener").get<std::string>() +
                                    ", the listeners section has " + config.listeners[i].name);
      }
      for (const auto& hj : rj.at("virtual_hosts")) {
        Json h = hj;
        if (!h.is_object()) throw std::invalid_argument("a virtual host is not an object");
        fill_server_tls(h.at("tls"), secrets);
        config.listeners[i].virtual_hosts.push_back(
            std::make_shared<const VirtualHost>(h.get<VirtualHost>()));
      }
    }

    section = "clusters";
    item.clear();
    const Json& cluster_items = items_of(sections, section);
    std::vector<Cluster> clusters;
    for (size_t i = 0; i < cluster_items.size(); ++i) {
      Json cj = cluster_items[i];
      item = where(section, i, cj);
      if (!cj.is_object()) throw std::invalid_argument("not an object");
      fill_client_tls(cj.at("tls"), secrets);
      clusters.push_back(cj.get<Cluster>());
    }

    section = "endpoints";
    item.clear();
    const Json& endpoint_items = items_of(sections, section);
    if (endpoint_items.size() != clusters.size()) {
      throw std::invalid_argument(std::to_string(endpoint_items.size()) + " items for " +
                                  std::to_string(clusters.size()) + " clusters");
    }
    for (size_t i = 0; i < endpoint_items.size(); ++i) {
      const Json& ej = endpoint_items[i];
      item = where(section, i, ej);
      if (!ej.is_object()) throw std::invalid_argument("not an object");
      if (ej.at("cluster").get<std::string>() != clusters[i].name) {
        throw std::invalid_argument("names cluster " + ej.at("cluster").get<std::string>() +
                                    ", the clusters section has " + clusters[i].name);
      }
      clusters[i].endpoints = ej.at("endpoints").get<std::vector<Endpoint>>();
    }
    config.clusters = std::move(clusters);
  } catch (const std::exception& e) {
    std::string at = item.empty() ? std::string(section) : item;
    return Error::invalid("section " + at + ": " + e.what());
  }
  return config;
}

std::string encode_message(const Message& message) {
  Json j = Json::object();
  j["version"] = message.header.version;
  j["nonce"] = message.nonce;
  j["created_unix_ms"] = message.header.created_unix_ms;
  j["type_versions"] = message.header.versions;
  Json sections = Json::object();
  for (const auto& [name, s] : message.sections) {
    Json body = s.body;
    body["version"] = s.version;
    sections[name] = std::move(body);
  }
  j["sections"] = std::move(sections);
  return dump(j);
}

Result<Message> decode_message(std::string_view text) {
  Json j = Json::parse(text, nullptr, false);
  if (j.is_discarded()) return Error::invalid("message: not valid JSON");
  if (!j.is_object()) return Error::invalid("message: not a JSON object");
  Message m;
  std::string at = "message";
  try {
    at = "message.version";
    if (!j.at("version").is_number_unsigned()) throw std::invalid_argument("not a number");
    m.header.version = j.at("version").get<uint64_t>();
    at = "message.nonce";
    m.nonce = j.at("nonce").get<std::string>();
    at = "message.created_unix_ms";
    if (!j.at("created_unix_ms").is_number_integer()) throw std::invalid_argument("not a number");
    m.header.created_unix_ms = j.at("created_unix_ms").get<int64_t>();
    at = "message.type_versions";
    m.header.versions = j.at("type_versions").get<TypeVersions>();
    at = "message.sections";
    const Json& sections = j.at("sections");
    if (!sections.is_object()) throw std::invalid_argument("not an object");
    for (const auto& [name, body] : sections.items()) {
      at = "message.sections." + name;
      bool known = false;
      for (auto k : kSections)
        known = known || k == name;
      if (!known) throw std::invalid_argument("unknown section");
      if (!body.is_object()) throw std::invalid_argument("not an object");
      if (!body.contains("items") || !body.at("items").is_array()) {
        throw std::invalid_argument("no items array");
      }
      Section s;
      s.version = body.at("version").get<std::string>();
      s.body = body;
      s.body.erase("version");
      m.sections[name] = std::move(s);
    }
  } catch (const std::exception& e) {
    return Error::invalid(at + ": " + e.what());
  }
  return m;
}

std::string encode(const ProxyConfig& config) {
  Message m;
  m.header = header_of(config);
  m.sections = encode_sections(config);
  return encode_message(m);
}

Result<ProxyConfig> decode(std::string_view text) {
  auto m = decode_message(text);
  if (!m) return m.error();
  for (auto name : kSections) {
    if (!m.value().sections.count(name)) {
      return Error::invalid("message.sections." + std::string(name) + ": missing");
    }
  }
  return decode_sections(m.value().sections, m.value().header);
}

bool deep_equal(const ProxyConfig& a, const ProxyConfig& b) {
  if (a.version != b.version || !(a.versions == b.versions) ||
      a.created_unix_ms != b.created_unix_ms ||
      a.overload.max_connections != b.overload.max_connections ||
      a.overload.max_heap_bytes != b.overload.max_heap_bytes ||
      a.clusters.get() != b.clusters.get() || a.listeners.size() != b.listeners.size()) {
    return false;
  }
  for (size_t i = 0; i < a.listeners.size(); ++i) {
    Listener x = a.listeners[i];
    const Listener& y = b.listeners[i];
    if (x.virtual_hosts.size() != y.virtual_hosts.size()) return false;
    for (size_t k = 0; k < x.virtual_hosts.size(); ++k) {
      if (!(*x.virtual_hosts[k] == *y.virtual_hosts[k])) return false;
    }
    x.virtual_hosts = y.virtual_hosts;
    if (!(x == y)) return false;
  }
  return true;
}

}  // namespace wire
}  // namespace portico::snapshot
