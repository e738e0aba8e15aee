#include "proxy/stats/stats.h"

#include <cstdio>
#include <vector>

#include "proxy/http/upgrade.h"
#include "proxy/tls/context.h"

namespace portico::proxy::stats {

static_assert(kTunnelKinds == static_cast<size_t>(http::TunnelKind::kCount));
static_assert(kUpgradeRefusals == static_cast<size_t>(http::UpgradeRefusal::kCount));

const char* to_string(HealthCheckResult r) {
  switch (r) {
    case HealthCheckResult::kSuccess:
      return "success";
    case HealthCheckResult::kFailure:
      return "failure";
    case HealthCheckResult::kTimeout:
      return "timeout";
    default:
      return "unknown";
  }
}

const char* to_string(Breaker b) {
  switch (b) {
    case Breaker::kMaxConnections:
      return "max-connections";
    case Breaker::kMaxPendingRequests:
      return "max-pending-requests";
    case Breaker::kMaxRequests:
      return "max-requests";
    case Breaker::kMaxRetries:
      return "max-retries";
    default:
      return "unknown";
  }
}

const char* to_string(UpstreamError e) {
  switch (e) {
    case UpstreamError::kConnectFailed:
      return "connect_failed";
    case UpstreamError::kNoHealthyHost:
      return "no_healthy_host";
    case UpstreamError::kTimeout:
      return "timeout";
    case UpstreamError::kReset:
      return "reset";
    case UpstreamError::kProtocol:
      return "protocol";
    default:
      return "unknown";
  }
}

const char* to_string(H2Flood f) {
  switch (f) {
    case H2Flood::kPing:
      return "ping";
    case H2Flood::kSettings:
      return "settings";
    case H2Flood::kWindowUpdate:
      return "window_update";
    case H2Flood::kPriority:
      return "priority";
    case H2Flood::kEmptyData:
      return "empty_data";
    case H2Flood::kContinuation:
      return "continuation";
    case H2Flood::kOutboundAck:
      return "outbound_ack";
    default:
      return "unknown";
  }
}

namespace {
// Escapes a Prometheus label value: backslash, double quote and newline.
std::string escape(const std::string& v) {
  std::string out;
  out.reserve(v.size());
  for (char c : v) {
    if (c == '\\' || c == '"') {
      out.push_back('\\');
      out.push_back(c);
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out.push_back(c);
    }
  }
  return out;
}
}  // namespace

Registry::Registry(unsigned workers)
    : workers_(workers), worker_rows_(std::make_unique<WorkerRow[]>(workers)) {}

std::shared_ptr<RequestSlot> Registry::request_slot(const std::string& listener,
                                                    const std::string& virtual_host,
                                                    const std::string& route,
                                                    const std::string& upstream) {
  std::string labels = "listener=\"" + escape(listener) + "\",virtual_host=\"" +
                       escape(virtual_host) + "\",route=\"" + escape(route) + "\",upstream=\"" +
                       escape(upstream) + "\"";
  std::lock_guard lock(mu_);
  auto& weak = requests_[labels];
  std::shared_ptr<RequestSlot> slot = weak.lock();
  if (!slot) {
    slot = std::make_shared<RequestSlot>();
    slot->labels = labels;
    slot->rows = std::make_unique<RequestRow[]>(workers_);
    weak = slot;
  }
  return slot;
}

size_t Registry::request_slots() const {
  std::lock_guard lock(mu_);
  size_t n = 0;
  for (const auto& [labels, weak] : requests_)
    n += weak.expired() ? 0 : 1;
  return n;
}

std::shared_ptr<ClusterSlot> Registry::cluster_slot(const std::string& cluster) {
  std::lock_guard lock(mu_);
  auto& weak = clusters_[cluster];
  std::shared_ptr<ClusterSlot> slot = weak.lock();
  if (!slot) {
    slot = std::make_shared<ClusterSlot>();
    slot->name = cluster;
    slot->rows = std::make_unique<ClusterRow[]>(workers_);
    weak = slot;
  }
  return slot;
}

size_t Registry::cluster_slots() const {
  std::lock_guard lock(mu_);
  size_t n = 0;
  for (const auto& [name, weak] : clusters_)
    n += weak.expired() ? 0 : 1;
  return n;
}

std::string Registry::render() const {
  std::string out;
  out.reserve(16384);
  char line[512];
  auto emit_header = [&](const char* name, const char* type, const char* help) {
    snprintf(line, sizeof line, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
    out += line;
  };
  auto sum_worker = [&](auto member) {
    uint64_t s = 0;
    for (unsigned w = 0; w < workers_; ++w)
      s += (worker_rows_[w].*member).get();
    return s;
  };

  emit_header("portico_downstream_connections_total", "counter", "Connections accepted.");
  out += "portico_downstream_connections_total " +
         std::to_string(sum_worker(&WorkerRow::downstream_cx_total)) + "\n";
  emit_header("portico_downstream_connections_active", "gauge", "Open client connections.");
  out += "portico_downstream_connections_active " +
         std::to_string(sum_worker(&WorkerRow::downstream_cx_active)) + "\n";
  emit_header("portico_downstream_requests_total", "counter", "Requests received (parsed heads).");
  out += "portico_downstream_requests_total " +
         std::to_string(sum_worker(&WorkerRow::downstream_rq_total)) + "\n";
  emit_header("portico_downstream_bad_requests_total", "counter",
              "Requests rejected by the HTTP/1.1 parser before routing.");
  out += "portico_downstream_bad_requests_total " +
         std::to_string(sum_worker(&WorkerRow::bad_requests)) + "\n";

  emit_header("portico_downstream_connections_overflow_total", "counter",
              "Connections closed at once because their Gateway's maxConnections or the global "
              "connection limit (Settings overload.maxConnections) was reached.");
  out += "portico_downstream_connections_overflow_total " +
         std::to_string(sum_worker(&WorkerRow::downstream_cx_overflow)) + "\n";

  // Tunnels (WebSocket upgrades and CONNECT).
  {
    using http::TunnelKind;
    using http::UpgradeRefusal;
    auto sum_kind = [&](auto member, size_t i) {
      uint64_t s = 0;
      for (unsigned w = 0; w < workers_; ++w)
        s += (worker_rows_[w].*member)[i].get();
      return s;
    };
    // By kind and by the client's protocol (HTTP/1.1 upgrades and CONNECT; HTTP/2 extended
    // CONNECT and CONNECT).
    auto by_kind_and_downstream = [&](const char* name, auto http1, auto http2) {
      for (size_t k = 0; k < kTunnelKinds; ++k) {
        const std::string kind = to_string(static_cast<TunnelKind>(k));
        out += std::string(name) + "{kind=\"" + kind + "\",downstream=\"http1\"} " +
               std::to_string(sum_kind(http1, k)) + "\n";
        out += std::string(name) + "{kind=\"" + kind + "\",downstream=\"http2\"} " +
               std::to_string(sum_kind(http2, k)) + "\n";
      }
    };
    emit_header("portico_tunnels_opened_total", "counter",
                "Tunnels opened (the accepting 101 or 2xx was sent), by kind and client protocol.");
    by_kind_and_downstream("portico_tunnels_opened_total", &WorkerRow::tunnels_opened,
                           &WorkerRow::h2_tunnels_opened);
    emit_header("portico_tunnels_active", "gauge", "Open tunnels, by kind and client protocol.");
    by_kind_and_downstream("portico_tunnels_active", &WorkerRow::tunnels_active,
                           &WorkerRow::h2_tunnels_active);
    emit_header("portico_tunnel_bytes_total", "counter",
                "Bytes moved through tunnels, by kind and direction.");
    for (size_t k = 0; k < kTunnelKinds; ++k) {
      const std::string kind = to_string(static_cast<TunnelKind>(k));
      out += "portico_tunnel_bytes_total{kind=\"" + kind + "\",direction=\"upstream\"} " +
             std::to_string(sum_kind(&WorkerRow::tunnel_bytes_up, k)) + "\n";
      out += "portico_tunnel_bytes_total{kind=\"" + kind + "\",direction=\"downstream\"} " +
             std::to_string(sum_kind(&WorkerRow::tunnel_bytes_down, k)) + "\n";
    }
    emit_header("portico_upgrades_refused_total", "counter",
                "Upgrade and CONNECT requests not tunnelled, by reason.");
    for (size_t r = 0; r < kUpgradeRefusals; ++r)
      out += std::string("portico_upgrades_refused_total{reason=\"") +
             to_string(static_cast<UpgradeRefusal>(r)) + "\"} " +
             std::to_string(sum_kind(&WorkerRow::upgrades_refused, r)) + "\n";
  }

  // HTTP/2 (downstream).
  auto counter = [&](const char* name, const char* help, Counter WorkerRow::*member) {
    emit_header(name, "counter", help);
    out += std::string(name) + " " + std::to_string(sum_worker(member)) + "\n";
  };
  counter("portico_http2_connections_total", "Client connections served as HTTP/2.",
          &WorkerRow::h2_connections);
  counter("portico_http2_streams_total", "HTTP/2 request streams opened by clients.",
          &WorkerRow::h2_streams);
  counter("portico_http2_refused_streams_total",
          "HTTP/2 streams refused (REFUSED_STREAM): over the concurrent stream limit.",
          &WorkerRow::h2_refused_streams);
  counter("portico_http2_resets_received_total", "RST_STREAM frames received from clients.",
          &WorkerRow::h2_resets_received);
  counter("portico_http2_rapid_reset_total",
          "HTTP/2 connections closed (GOAWAY ENHANCE_YOUR_CALM) for resetting too many streams.",
          &WorkerRow::h2_rapid_reset);
  counter("portico_http2_header_list_too_large_total",
          "HTTP/2 requests answered 431: header list larger than the limit (HPACK bombs).",
          &WorkerRow::h2_header_list_too_large);
  counter("portico_http2_malformed_requests_total",
          "HTTP/2 streams reset for a malformed request (RFC 9113 section 8.1.1).",
          &WorkerRow::h2_malformed);
  counter("portico_http2_protocol_errors_total",
          "HTTP/2 connections ended by a connection-level protocol error.",
          &WorkerRow::h2_protocol_errors);
  emit_header("portico_http2_floods_total", "counter",
              "HTTP/2 connections closed (GOAWAY ENHANCE_YOUR_CALM) for a frame flood, by kind.");
  for (size_t f = 0; f < static_cast<size_t>(H2Flood::kCount); ++f) {
    uint64_t sum = 0;
    for (unsigned w = 0; w < workers_; ++w)
      sum += worker_rows_[w].h2_flood[f].get();
    out += std::string("portico_http2_floods_total{kind=\"") + to_string(static_cast<H2Flood>(f)) +
           "\"} " + std::to_string(sum) + "\n";
  }

  // gRPC-Web (the grpc_web filter).
  emit_header("portico_grpc_web_requests_total", "counter",
              "gRPC-Web requests translated to gRPC, by mode (binary, text).");
  for (size_t m = 0; m < 2; ++m) {
    uint64_t sum = 0;
    for (unsigned w = 0; w < workers_; ++w)
      sum += worker_rows_[w].grpc_web_requests[m].get();
    out += std::string("portico_grpc_web_requests_total{mode=\"") + (m == 0 ? "binary" : "text") +
           "\"} " + std::to_string(sum) + "\n";
  }
  counter("portico_grpc_web_malformed_total",
          "gRPC-Web text requests whose body was not valid base64 (answered 400).",
          &WorkerRow::grpc_web_malformed);

  // TLS handshakes (process-wide counters kept by the TLS layer).
  emit_header("portico_tls_handshakes_total", "counter",
              "TLS handshakes completed, by side (downstream: clients; upstream: to upstreams).");
  emit_header("portico_tls_resumed_total", "counter", "Completed TLS handshakes that resumed.");
  emit_header("portico_tls_handshake_failures_total", "counter",
              "TLS handshakes that failed, by side and reason.");
  for (const char* side : {"downstream", "upstream"}) {
    const tls::HandshakeStats& hs =
        side[0] == 'd' ? tls::downstream_stats() : tls::upstream_stats();
    out += std::string("portico_tls_handshakes_total{side=\"") + side + "\"} " +
           std::to_string(hs.succeeded.load(std::memory_order_relaxed)) + "\n";
    out += std::string("portico_tls_resumed_total{side=\"") + side + "\"} " +
           std::to_string(hs.resumed.load(std::memory_order_relaxed)) + "\n";
    for (size_t f = 0; f < tls::kHandshakeFailureCount; ++f) {
      auto failure = static_cast<tls::HandshakeFailure>(f);
      out += std::string("portico_tls_handshake_failures_total{side=\"") + side + "\",reason=\"" +
             tls::failure_name(failure) + "\"} " + std::to_string(hs.failures(failure)) + "\n";
    }
  }

  std::lock_guard lock(mu_);
  // Slots of removed routes are gone once no configuration uses them: forget their labels.
  std::vector<std::shared_ptr<RequestSlot>> live;
  for (auto it = requests_.begin(); it != requests_.end();) {
    if (auto p = it->second.lock()) {
      live.push_back(std::move(p));
      ++it;
    } else {
      it = requests_.erase(it);
    }
  }
  emit_header("portico_requests_total", "counter",
              "Responses by listener, virtual host, route, upstream and status class.");
  static const char* kClass[6] = {"none", "1xx", "2xx", "3xx", "4xx", "5xx"};
  for (const auto& slot : live) {
    const std::string& labels = slot->labels;
    for (int c = 0; c < 6; ++c) {
      uint64_t s = 0;
      for (unsigned w = 0; w < workers_; ++w)
        s += slot->rows[w].by_class[c].get();
      if (s == 0) continue;
      out += "portico_requests_total{" + labels + ",status_class=\"" + kClass[c] + "\"} " +
             std::to_string(s) + "\n";
    }
  }
  emit_header("portico_request_duration_seconds", "histogram",
              "Time from a request head received to the last byte of its response written, by "
              "listener, virtual host, route and upstream.");
  for (const auto& slot : live) {
    const std::string& labels = slot->labels;
    std::array<uint64_t, kDurationBucketsUs.size() + 1> buckets{};
    uint64_t sum_us = 0;
    for (unsigned w = 0; w < workers_; ++w) {
      for (size_t b = 0; b < buckets.size(); ++b)
        buckets[b] += slot->rows[w].duration[b].get();
      sum_us += slot->rows[w].duration_sum_us.get();
    }
    uint64_t total = 0;
    for (uint64_t n : buckets)
      total += n;
    if (total == 0) continue;
    uint64_t cumulative = 0;
    for (size_t b = 0; b < buckets.size(); ++b) {
      cumulative += buckets[b];
      if (b < kDurationBucketsUs.size()) {
        snprintf(line, sizeof line, "%g", static_cast<double>(kDurationBucketsUs[b]) / 1e6);
      } else {
        snprintf(line, sizeof line, "+Inf");
      }
      out += "portico_request_duration_seconds_bucket{" + labels + ",le=\"" + line + "\"} " +
             std::to_string(cumulative) + "\n";
    }
    snprintf(line, sizeof line, "%.6f", static_cast<double>(sum_us) / 1e6);
    out += "portico_request_duration_seconds_sum{" + labels + "} " + line + "\n";
    out += "portico_request_duration_seconds_count{" + labels + "} " + std::to_string(total) + "\n";
  }
  // Likewise for clusters no configuration uses any more.
  std::vector<std::shared_ptr<ClusterSlot>> live_clusters;
  for (auto it = clusters_.begin(); it != clusters_.end();) {
    if (auto p = it->second.lock()) {
      live_clusters.push_back(std::move(p));
      ++it;
    } else {
      it = clusters_.erase(it);
    }
  }
  struct ClusterMetric {
    const char* name;
    const char* type;
    const char* help;
    Counter ClusterRow::*member;
  };
  static const ClusterMetric kMetrics[] = {
      {"portico_upstream_connections_total", "counter", "Upstream connections opened.",
       &ClusterRow::cx_total},
      {"portico_upstream_connections_active", "gauge",
       "Open upstream connections (in use or pooled).", &ClusterRow::cx_active},
      {"portico_upstream_requests_total", "counter", "Requests sent upstream.",
       &ClusterRow::rq_total},
      {"portico_upstream_requests_active", "gauge", "Requests in flight upstream.",
       &ClusterRow::rq_active},
      {"portico_upstream_lb_panic_total", "counter",
       "Load balancer picks made in panic mode (available hosts below healthyPanicThreshold).",
       &ClusterRow::lb_panic},
      {"portico_upstream_lb_failover_total", "counter",
       "Load balancer picks answered by a failover tier (priority above 0).",
       &ClusterRow::lb_failover},
      {"portico_upstream_weighted_skipped_total", "counter",
       "Requests a weighted route picked this upstream for while it had no endpoint, sent to "
       "another destination of the route instead.",
       &ClusterRow::weighted_skipped},
      {"portico_upstream_subset_no_host_total", "counter",
       "Requests of a route's subset (destination subset.values) that found no endpoint to pick "
       "in the subset: answered 503 (flag UH), no fallback.",
       &ClusterRow::subset_no_host},
      {"portico_upstream_h2_connections_total", "counter",
       "HTTP/2 connections opened to the upstream (useHttp2).", &ClusterRow::h2_cx_total},
      {"portico_upstream_h2_streams_total", "counter",
       "HTTP/2 streams opened to the upstream (one per request sent over HTTP/2).",
       &ClusterRow::h2_streams},
      {"portico_upstream_h2_goaway_total", "counter", "GOAWAY frames received from the upstream.",
       &ClusterRow::h2_goaway},
      {"portico_upstream_h2_resets_sent_total", "counter",
       "RST_STREAM frames sent to the upstream (the client went away, a timeout, a cancel).",
       &ClusterRow::h2_resets_sent},
  };
  for (const auto& m : kMetrics) {
    emit_header(m.name, m.type, m.help);
    for (const auto& slot : live_clusters) {
      uint64_t s = 0;
      for (unsigned w = 0; w < workers_; ++w)
        s += (slot->rows[w].*m.member).get();
      out += std::string(m.name) + "{upstream=\"" + escape(slot->name) + "\"} " +
             std::to_string(s) + "\n";
    }
  }
  emit_header("portico_upstream_errors_total", "counter", "Upstream failures by reason.");
  for (const auto& slot : live_clusters) {
    const std::string& name = slot->name;
    for (size_t e = 0; e < static_cast<size_t>(UpstreamError::kCount); ++e) {
      uint64_t s = 0;
      for (unsigned w = 0; w < workers_; ++w)
        s += slot->rows[w].errors[e].get();
      out += "portico_upstream_errors_total{upstream=\"" + escape(name) + "\",reason=\"" +
             to_string(static_cast<UpstreamError>(e)) + "\"} " + std::to_string(s) + "\n";
    }
  }
  emit_header("portico_upstream_retries_total", "counter",
              "Requests sent again: on a fresh connection after a pooled one turned out dead, or "
              "by the route's retry policy.");
  for (const auto& slot : live_clusters) {
    uint64_t s = 0;
    for (unsigned w = 0; w < workers_; ++w)
      s += slot->rows[w].retries.get();
    out += "portico_upstream_retries_total{upstream=\"" + escape(slot->name) + "\"} " +
           std::to_string(s) + "\n";
  }
  emit_header("portico_upstream_retries_skipped_total", "counter",
              "Requests whose pooled connection turned out dead and that were not sent again, by "
              "reason (not_idempotent; body_too_large: over the 64 KiB replay buffer; budget: "
              "over the upstream's retry budget).");
  for (const auto& slot : live_clusters) {
    uint64_t method = 0, body = 0, budget = 0;
    for (unsigned w = 0; w < workers_; ++w) {
      method += slot->rows[w].retries_skipped_method.get();
      body += slot->rows[w].retries_skipped_body.get();
      budget += slot->rows[w].retries_skipped_budget.get();
    }
    const std::string name = escape(slot->name);
    out += "portico_upstream_retries_skipped_total{upstream=\"" + name +
           "\",reason=\"not_idempotent\"} " + std::to_string(method) + "\n";
    out += "portico_upstream_retries_skipped_total{upstream=\"" + name +
           "\",reason=\"body_too_large\"} " + std::to_string(body) + "\n";
    out += "portico_upstream_retries_skipped_total{upstream=\"" + name + "\",reason=\"budget\"} " +
           std::to_string(budget) + "\n";
  }
  emit_header("portico_upstream_overflow_total", "counter",
              "Requests answered 503 at once because a circuit breaker of the upstream was full "
              "(header x-portico-overflow), by breaker.");
  for (const auto& slot : live_clusters) {
    const std::string name = escape(slot->name);
    for (size_t b = 0; b < static_cast<size_t>(Breaker::kCount); ++b) {
      uint64_t s = 0;
      for (unsigned w = 0; w < workers_; ++w)
        s += slot->rows[w].overflow[b].get();
      out += "portico_upstream_overflow_total{upstream=\"" + name + "\",breaker=\"" +
             to_string(static_cast<Breaker>(b)) + "\"} " + std::to_string(s) + "\n";
    }
  }
  emit_header("portico_upstream_in_flight", "gauge",
              "What an upstream has in flight across workers, as its circuit breakers count it "
              "(kind: connections, pending, requests, retries).");
  for (const auto& slot : live_clusters) {
    const std::string name = escape(slot->name);
    const std::pair<const char*, const std::atomic<int64_t>*> kinds[] = {
        {"connections", &slot->load.connections},
        {"pending", &slot->load.pending},
        {"requests", &slot->load.requests},
        {"retries", &slot->load.retries}};
    for (const auto& [kind, v] : kinds) {
      out += "portico_upstream_in_flight{upstream=\"" + name + "\",kind=\"" + kind + "\"} " +
             std::to_string(v->load(std::memory_order_relaxed)) + "\n";
    }
  }
  std::vector<const ClusterSlot*> health;
  for (const auto& slot : live_clusters) {
    if (slot->health_shown.load(std::memory_order_relaxed)) health.push_back(slot.get());
  }
  if (!health.empty()) {
    emit_header("portico_upstream_health_checks_total", "counter",
                "Active health checks by result (success, failure, timeout).");
    for (const auto* slot : health) {
      for (size_t r = 0; r < static_cast<size_t>(HealthCheckResult::kCount); ++r) {
        out += "portico_upstream_health_checks_total{upstream=\"" + escape(slot->name) +
               "\",result=\"" + to_string(static_cast<HealthCheckResult>(r)) + "\"} " +
               std::to_string(slot->health_checks[r].get()) + "\n";
      }
    }
    struct HealthGauge {
      const char* name;
      const char* help;
      Counter ClusterSlot::*member;
    };
    static const HealthGauge kGauges[] = {
        {"portico_upstream_hosts", "Endpoints of the upstream.", &ClusterSlot::hosts},
        {"portico_upstream_hosts_healthy",
         "Endpoints whose active health check passes (all of them without a check).",
         &ClusterSlot::hosts_healthy},
        {"portico_upstream_hosts_ejected", "Endpoints ejected by outlier detection now.",
         &ClusterSlot::hosts_ejected},
    };
    for (const auto& g : kGauges) {
      emit_header(g.name, "gauge", g.help);
      for (const auto* slot : health) {
        out += std::string(g.name) + "{upstream=\"" + escape(slot->name) + "\"} " +
               std::to_string((slot->*g.member).get()) + "\n";
      }
    }
    emit_header("portico_upstream_ejections_total", "counter",
                "Endpoints ejected by outlier detection.");
    for (const auto* slot : health) {
      out += "portico_upstream_ejections_total{upstream=\"" + escape(slot->name) + "\"} " +
             std::to_string(slot->ejections.load(std::memory_order_relaxed)) + "\n";
    }
  }
  emit_header("portico_config_version", "gauge", "Version of the configuration in force.");
  out += "portico_config_version " + std::to_string(config_version_.load()) + "\n";
  emit_header("portico_config_last_change_timestamp_seconds", "gauge",
              "Unix time at which the configuration in force was published.");
  snprintf(line, sizeof line, "portico_config_last_change_timestamp_seconds %.3f\n",
           static_cast<double>(config_last_change_ms_.load()) / 1000.0);
  out += line;
  emit_header("portico_config_reloads_total", "counter", "Configurations published.");
  out += "portico_config_reloads_total " + std::to_string(reloads_.load()) + "\n";
  emit_header(
      "portico_config_reload_errors_total", "counter",
      "Configuration builds that had errors (the last good configuration stayed in force for "
      "the resources concerned).");
  out += "portico_config_reload_errors_total " + std::to_string(reload_errors_.load()) + "\n";
  return out;
}

}  // namespace portico::proxy::stats
