// snapshot::to_json: the ProxyConfig as JSON for /config_dump and `portico route`.
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <nlohmann/json.hpp>

#include <ctime>

#include "snapshot/proxy_config.h"

namespace portico::snapshot {
namespace {

using Json = nlohmann::ordered_json;

const char* kind_name(PathMatchKind kind) {
  switch (kind) {
    case PathMatchKind::kPrefix:
      return "prefix";
    case PathMatchKind::kExact:
      return "exact";
    case PathMatchKind::kRegex:
      return "regex";
  }
  return "prefix";
}

// Labels as a JSON object (key -> value).
Json labels_json(const Labels& labels) {
  Json j = Json::object();
  for (const auto& [k, v] : labels)
    j[k] = v;
  return j;
}

Json match_json(const RouteMatch& m) {
  Json j;
  j[kind_name(m.kind)] = m.kind == PathMatchKind::kRegex && m.regex ? m.regex->pattern : m.path;
  j["case_sensitive"] = m.case_sensitive;
  if (!m.headers.empty()) {
    Json hs = Json::array();
    for (const auto& h : m.headers) {
      Json hj;
      hj["name"] = h.name;
      if (h.present_only) {
        hj["present"] = true;
      } else if (h.regex) {
        hj["regex"] = h.regex->pattern;
      } else {
        hj["value"] = h.value;
      }
      if (h.invert) hj["invert"] = true;
      hs.push_back(std::move(hj));
    }
    j["headers"] = std::move(hs);
  }
  if (!m.query.empty()) {
    Json qs = Json::array();
    for (const auto& q : m.query) {
      Json qj;
      qj["name"] = q.name;
      if (q.present_only) {
        qj["present"] = true;
      } else if (q.regex) {
        qj["regex"] = q.regex->pattern;
      } else {
        qj["value"] = q.value;
      }
      qs.push_back(std::move(qj));
    }
    j["query"] = std::move(qs);
  }
  if (!m.methods.empty()) j["methods"] = m.methods;
  return j;
}

Json mutations_json(const HeaderMutations& h) {
  Json j = Json::object();
  if (!h.add.empty()) {
    Json add = Json::array();
    for (const auto& v : h.add) {
      add.push_back(Json{{"name", v.name}, {"value", v.value}, {"append", v.append}});
    }
    j["add"] = std::move(add);
  }
  if (!h.remove.empty()) j["remove"] = h.remove;
  return j;
}

Json action_json(const Route& r) {
  Json j;
  if (const auto* f = std::get_if<ForwardAction>(&r.action)) {
    Json clusters = Json::array();
    for (const auto& c : f->clusters) {
      Json cj{{"cluster", c.cluster}, {"weight", c.weight}};
      if (!c.subset.empty()) cj["subset"] = labels_json(c.subset);
      clusters.push_back(std::move(cj));
    }
    j["forward"] = Json{{"clusters", std::move(clusters)}, {"total_weight", f->total_weight}};
  } else if (const auto* rd = std::get_if<RedirectAction>(&r.action)) {
    Json a;
    if (!rd->host.empty()) a["host"] = rd->host;
    if (!rd->path.empty()) a["path"] = rd->path;
    if (!rd->prefix_rewrite.empty()) a["prefix_rewrite"] = rd->prefix_rewrite;
    a["https"] = rd->https;
    if (rd->port != 0) a["port"] = rd->port;
    a["code"] = rd->code;
    a["strip_query"] = rd->strip_query;
    j["redirect"] = std::move(a);
  } else if (const auto* d = std::get_if<DirectResponseAction>(&r.action)) {
    j["direct_response"] =
        Json{{"status", d->status}, {"body", d->body}, {"content_type", d->content_type}};
  }
  return j;
}

Json route_json(const Route& r) {
  Json j;
  j["name"] = r.name;
  j["match"] = match_json(r.match);
  Json action = action_json(r);  // iterating a temporary's items() would dangle
  for (auto& [k, v] : action.items())
    j[k] = v;
  Json o = Json::object();
  if (r.options.timeout) o["timeout_ms"] = r.options.timeout->count();
  if (r.options.prefix_rewrite) o["prefix_rewrite"] = *r.options.prefix_rewrite;
  if (!r.options.host_rewrite.empty()) o["host_rewrite"] = r.options.host_rewrite;
  if (r.options.access_log_disabled) o["access_log_disabled"] = true;
  Json req = mutations_json(r.options.request_headers);
  if (!req.empty()) o["request_headers"] = std::move(req);
  Json resp = mutations_json(r.options.response_headers);
  if (!resp.empty()) o["response_headers"] = std::move(resp);
  if (r.options.websocket || r.options.connect) {
    Json up = Json::array();
    if (r.options.websocket) up.push_back("websocket");
    if (r.options.connect) up.push_back("connect");
    o["upgrades"] = std::move(up);
  }
  if (r.options.idle_timeout) o["idle_timeout_ms"] = r.options.idle_timeout->count();
  if (!r.options.hash_policies.empty()) {
    Json hp = Json::array();
    for (const auto& p : r.options.hash_policies) {
      Json one;
      switch (p.kind) {
        case HashPolicy::Kind::kHeader:
          one["header"] = p.name;
          break;
        case HashPolicy::Kind::kCookie:
          one["cookie"] = p.name;
          break;
        case HashPolicy::Kind::kSourceIp:
          one["source_ip"] = true;
          break;
      }
      if (p.terminal) one["terminal"] = true;
      hp.push_back(std::move(one));
    }
    o["hash_policies"] = std::move(hp);
  }
  if (const auto& p = r.options.retry) {
    Json on = Json::array();
    static constexpr std::pair<uint32_t, const char*> kOn[] = {
        {RetryPolicy::kOn5xx, "5xx"},
        {RetryPolicy::kOnGatewayError, "gateway-error"},
        {RetryPolicy::kOnReset, "reset"},
        {RetryPolicy::kOnConnectFailure, "connect-failure"},
        {RetryPolicy::kOnRetriable4xx, "retriable-4xx"},
        {RetryPolicy::kOnRefusedStream, "refused-stream"},
        {RetryPolicy::kOnStatusCodes, "retriable-status-codes"}};
    for (const auto& [bit, name] : kOn) {
      if (p->retry_on & bit) on.push_back(name);
    }
    Json rj{{"retry_on", std::move(on)},
            {"num_retries", p->num_retries},
            {"base_interval_ms", p->base_interval.count()},
            {"max_interval_ms", p->max_interval.count()}};
    if (!p->retriable_status_codes.empty())
      rj["retriable_status_codes"] = p->retriable_status_codes;
    if (p->per_try_timeout.count() > 0) rj["per_try_timeout_ms"] = p->per_try_timeout.count();
    if (p->retry_non_idempotent) rj["retry_non_idempotent"] = true;
    rj["max_replay_bytes"] = p->max_replay_bytes;
    o["retries"] = std::move(rj);
  }
  if (!o.empty()) j["options"] = std::move(o);
  return j;
}

// ---- TLS: certificates are summarised (subject, SANs, expiry); private keys never appear. ----

std::string x509_name(const X509_NAME* name) {
  BIO* bio = BIO_new(BIO_s_mem());
  X509_NAME_print_ex(bio, name, 0, XN_FLAG_RFC2253 & ~ASN1_STRFLGS_ESC_MSB);
  char* data = nullptr;
  long len = BIO_get_mem_data(bio, &data);
  std::string out(data, static_cast<size_t>(len));
  BIO_free(bio);
  return out;
}

std::string asn1_time_iso(const ASN1_TIME* t) {
  struct tm tm {};
  if (ASN1_TIME_to_tm(t, &tm) != 1) return "";
  char buf[32];
  std::strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

Json certificate_json(X509* x) {
  Json j;
  j["subject"] = x509_name(X509_get_subject_name(x));
  j["issuer"] = x509_name(X509_get_issuer_name(x));
  auto* names =
      static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(x, NID_subject_alt_name, nullptr, nullptr));
  Json sans = Json::array();
  for (int i = 0; names != nullptr && i < sk_GENERAL_NAME_num(names); ++i) {
    const GENERAL_NAME* n = sk_GENERAL_NAME_value(names, i);
    const ASN1_STRING* s = nullptr;
    const char* prefix = "";
    if (n->type == GEN_DNS) {
      s = n->d.dNSName;
      prefix = "DNS:";
    } else if (n->type == GEN_URI) {
      s = n->d.uniformResourceIdentifier;
      prefix = "URI:";
    }
    if (s == nullptr) continue;
    sans.push_back(prefix + std::string(reinterpret_cast<const char*>(ASN1_STRING_get0_data(s)),
                                        static_cast<size_t>(ASN1_STRING_length(s))));
  }
  GENERAL_NAMES_free(names);
  j["sans"] = std::move(sans);
  j["not_before"] = asn1_time_iso(X509_get0_notBefore(x));
  j["not_after"] = asn1_time_iso(X509_get0_notAfter(x));
  return j;
}

// Every certificate of a PEM bundle, summarised; {"error": ...} when it does not parse.
Json pem_bundle_json(const std::string& pem) {
  Json out = Json::array();
  BIO* bio = BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size()));
  while (X509* x = PEM_read_bio_X509(bio, nullptr, nullptr, nullptr)) {
    out.push_back(certificate_json(x));
    X509_free(x);
  }
  BIO_free(bio);
  ERR_clear_error();
  if (out.empty() && !pem.empty()) out.push_back(Json{{"error", "no readable PEM certificate"}});
  return out;
}

const char* version_name(TlsVersion v) {
  return v == TlsVersion::kTls13 ? "TLSv1.3" : "TLSv1.2";
}

Json tls_certificate_json(const TlsCertificate& c) {
  Json j;
  j["secret"] = c.secret;
  j["chain"] = pem_bundle_json(c.cert_chain_pem);
  j["private_key"] = c.private_key_pem.empty() ? "" : "[redacted]";
  if (!c.ocsp_staple.empty()) j["ocsp_staple_bytes"] = c.ocsp_staple.size();
  return j;
}

Json tls_server_json(const TlsServerConfig& t) {
  Json j;
  Json certs = Json::array();
  for (const auto& c : t.certificates)
    certs.push_back(tls_certificate_json(c));
  j["certificates"] = std::move(certs);
  j["min_version"] = version_name(t.min_version);
  j["max_version"] = version_name(t.max_version);
  j["alpn"] = t.alpn;
  if (!t.client_ca_pem.empty()) {
    j["client_ca"] =
        Json{{"secret", t.client_ca_secret}, {"certificates", pem_bundle_json(t.client_ca_pem)}};
    j["allowed_client_sans"] = t.allowed_client_sans;
    j["client_identity_header"] = t.client_identity_header;
  }
  return j;
}

Json tls_client_json(const TlsClientConfig& t) {
  Json j;
  j["sni"] = t.sni;
  if (!t.ca_pem.empty()) {
    j["ca"] = Json{{"secret", t.ca_secret}, {"certificates", pem_bundle_json(t.ca_pem)}};
  } else {
    j["ca"] = "system";
  }
  j["verify_names"] = t.verify_names;
  j["insecure_skip_verify"] = t.insecure_skip_verify;
  if (t.client_certificate) j["client_certificate"] = tls_certificate_json(*t.client_certificate);
  j["alpn"] = t.alpn;
  j["min_version"] = version_name(t.min_version);
  return j;
}

Json listener_json(const Listener& l) {
  Json j;
  j["name"] = l.name;
  j["sources"] = sources_of(l);
  j["address"] = l.address;
  j["port"] = l.port;
  j["http"] = Json{{"max_request_headers_bytes", l.http.max_request_headers_bytes},
                   {"max_headers", l.http.max_headers},
                   {"max_connections", l.http.max_connections},
                   {"request_header_timeout_ms", l.http.request_header_timeout.count()},
                   {"idle_timeout_ms", l.http.idle_timeout.count()},
                   {"drain_timeout_ms", l.http.drain_timeout.count()},
                   {"generate_request_id", l.http.generate_request_id},
                   {"use_remote_address", l.http.use_remote_address},
                   {"server_name", l.http.server_name}};
  Json filters = Json::array();
  for (const auto& f : l.http.filters)
    filters.push_back(f.name);
  j["http"]["filters"] = std::move(filters);
  j["http"]["http2"] = Json{{"cleartext_prior_knowledge", l.http.http2.cleartext_prior_knowledge},
                            {"max_concurrent_streams", l.http.http2.max_concurrent_streams},
                            {"initial_stream_window", l.http.http2.initial_stream_window},
                            {"initial_connection_window", l.http.http2.initial_connection_window}};
  Json vhosts = Json::array();
  for (const auto& vh_ptr : l.virtual_hosts) {
    const VirtualHost& vh = *vh_ptr;
    Json v;
    v["name"] = vh.name;
    v["sources"] = sources_of(vh);
    v["domains"] = vh.domains;
    if (vh.tls) v["tls"] = tls_server_json(*vh.tls);
    Json routes = Json::array();
    for (const auto& r : vh.routes)
      routes.push_back(route_json(r));
    v["routes"] = std::move(routes);
    vhosts.push_back(std::move(v));
  }
  j["virtual_hosts"] = std::move(vhosts);
  if (l.tls) j["tls"] = tls_server_json(*l.tls);
  if (!l.access_logs.empty()) {
    Json logs = Json::array();
    for (const auto& a : l.access_logs) {
      Json one{{"path", a.path}};
      if (a.json) {
        Json fields = Json::array();
        for (const auto& [k, v] : a.json_fields)
          fields.push_back(Json{{"key", k}, {"format", v}});
        one["json_format"] = std::move(fields);
      } else {
        one["text_format"] = a.format;
      }
      logs.push_back(std::move(one));
    }
    j["access_logs"] = std::move(logs);
  }
  return j;
}

Json cluster_json(const Cluster& c) {
  Json j;
  j["name"] = c.name;
  j["sources"] = sources_of(c);
  switch (c.lb) {
    case LbPolicy::kRoundRobin:
      j["lb"] = "round_robin";
      break;
    case LbPolicy::kLeastRequest:
      j["lb"] = "least_request";
      j["choice_count"] = c.choice_count;
      break;
    case LbPolicy::kRandom:
      j["lb"] = "random";
      break;
    case LbPolicy::kRingHash:
      j["lb"] = "ring_hash";
      j["ring_min_size"] = c.ring_min_size;
      j["ring_max_size"] = c.ring_max_size;
      break;
    case LbPolicy::kMaglev:
      j["lb"] = "maglev";
      j["maglev_table_size"] = c.maglev_table_size;
      break;
  }
  j["healthy_panic_threshold"] = c.healthy_panic_threshold;
  Json eps = Json::array();
  for (const auto& e : c.endpoints) {
    Json ej{{"address", e.address}, {"port", e.port}, {"weight", e.weight}};
    if (e.priority != 0) ej["priority"] = e.priority;
    if (!e.labels.empty()) ej["labels"] = labels_json(e.labels);
    eps.push_back(std::move(ej));
  }
  j["endpoints"] = std::move(eps);
  if (!c.discovery.empty()) {
    Json ds = Json::array();
    for (const auto& d : c.discovery) {
      Json dj{{"source", d.source}, {"name", d.name}, {"port", d.port}, {"weight", d.weight}};
      if (d.priority != 0) dj["priority"] = d.priority;
      if (!d.tags.empty()) dj["tags"] = d.tags;
      if (!d.datacenter.empty()) dj["datacenter"] = d.datacenter;
      if (!d.ns.empty()) dj["namespace"] = d.ns;
      if (d.canary != DiscoveryTarget::Canary::kInclude && !d.canary_tags.empty()) {
        dj["canary"] = d.canary == DiscoveryTarget::Canary::kOnly ? "only" : "exclude";
        dj["canary_tags"] = d.canary_tags;
      }
      if (!d.subset_tags.empty()) dj["subset_tags"] = d.subset_tags;
      if (!d.subset_datacenters.empty()) dj["subset_datacenters"] = d.subset_datacenters;
      ds.push_back(std::move(dj));
    }
    j["discovery"] = std::move(ds);
  }
  j["connect_timeout_ms"] = c.connect_timeout.count();
  j["max_requests_per_connection"] = c.max_requests_per_connection;
  j["idle_connection_timeout_ms"] = c.idle_connection_timeout.count();
  if (c.protocol == UpstreamProtocol::kHttp2) {
    j["protocol"] = "h2";
    j["http2"] = Json{{"max_concurrent_streams", c.http2_max_concurrent_streams},
                      {"initial_stream_window", c.http2_initial_stream_window},
                      {"initial_connection_window", c.http2_initial_connection_window}};
  }
  if (c.tls) j["tls"] = tls_client_json(*c.tls);
  if (c.health_check) {
    const auto& h = *c.health_check;
    const char* kind = h.kind == HealthCheck::Kind::kTcp    ? "tcp"
                       : h.kind == HealthCheck::Kind::kGrpc ? "grpc"
                                                            : "http";
    Json hc{{"kind", kind},
            {"timeout_ms", h.timeout.count()},
            {"interval_ms", h.interval.count()},
            {"interval_jitter_ms", h.interval_jitter.count()},
            {"interval_jitter_percent", h.interval_jitter_percent},
            {"unhealthy_threshold", h.unhealthy_threshold},
            {"healthy_threshold", h.healthy_threshold}};
    if (h.kind == HealthCheck::Kind::kHttp) {
      hc["path"] = h.path;
      if (!h.host.empty()) hc["host"] = h.host;
      Json ranges = Json::array();
      for (const auto& [start, end] : h.expected_statuses)
        ranges.push_back(Json{{"start", start}, {"end", end}});
      hc["expected_statuses"] = std::move(ranges);
    } else if (h.kind == HealthCheck::Kind::kGrpc) {
      hc["service_name"] = h.service_name;
      if (!h.host.empty()) hc["authority"] = h.host;
      // Names only: metadata values may be credentials.
      Json names = Json::array();
      for (const auto& [name, value] : h.initial_metadata)
        names.push_back(name);
      if (!names.empty()) hc["initial_metadata"] = std::move(names);
    }
    j["health_check"] = std::move(hc);
  }
  if (c.outlier_detection) {
    const auto& o = *c.outlier_detection;
    j["outlier_detection"] =
        Json{{"consecutive_5xx", o.consecutive_5xx},
             {"consecutive_gateway_failure", o.consecutive_gateway_failure},
             {"consecutive_local_origin_failure", o.consecutive_local_origin_failure},
             {"split_external_local_origin_errors", o.split_external_local_origin_errors},
             {"enforcing_consecutive_5xx", o.enforcing_consecutive_5xx},
             {"enforcing_consecutive_gateway_failure", o.enforcing_consecutive_gateway_failure},
             {"enforcing_consecutive_local_origin_failure",
              o.enforcing_consecutive_local_origin_failure},
             {"interval_ms", o.interval.count()},
             {"base_ejection_time_ms", o.base_ejection_time.count()},
             {"max_ejection_time_ms", o.max_ejection_time.count()},
             {"max_ejection_percent", o.max_ejection_percent}};
  }
  const auto& cb = c.circuit_breakers;
  j["circuit_breakers"] = Json{{"max_connections", cb.max_connections},
                               {"max_pending_requests", cb.max_pending_requests},
                               {"max_requests", cb.max_requests},
                               {"max_retries", cb.max_retries}};
  j["retry_budget"] = Json{{"budget_percent", c.retry_budget.budget_percent},
                           {"min_retry_concurrency", c.retry_budget.min_retry_concurrency}};
  return j;
}

}  // namespace

std::string to_json(const ProxyConfig& config, bool pretty) {
  Json j;
  j["version"] = config.version;
  j["versions"] = Json{{"listeners", config.versions.listeners},
                       {"routes", config.versions.routes},
                       {"clusters", config.versions.clusters},
                       {"endpoints", config.versions.endpoints},
                       {"secrets", config.versions.secrets}};
  j["created_unix_ms"] = config.created_unix_ms;
  Json listeners = Json::array();
  for (const auto& l : config.listeners)
    listeners.push_back(listener_json(l));
  j["listeners"] = std::move(listeners);
  Json clusters = Json::array();
  for (const auto& c : config.clusters)
    clusters.push_back(cluster_json(c));
  j["clusters"] = std::move(clusters);
  if (config.overload.max_connections != 0 || config.overload.max_heap_bytes != 0) {
    j["overload"] = Json{{"max_connections", config.overload.max_connections},
                         {"max_heap_bytes", config.overload.max_heap_bytes}};
  }
  // Strings come from configuration files that may hold invalid UTF-8: replace, never throw.
  return j.dump(pretty ? 2 : -1, ' ', false, Json::error_handler_t::replace);
}

}  // namespace portico::snapshot
