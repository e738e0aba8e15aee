// Data-plane counters: one row per worker, written only by that worker (relaxed single-writer
// atomics, no read-modify-write on the request path) and summed by the admin thread when scraped.
// Slots are created on the control thread (StatsRegistry) before the configuration that uses them
// is published. Request and cluster slots live as long as a Runtime holds them, so workers keep raw
// pointers to them only while they hold that Runtime.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>

namespace portico::proxy::stats {

// A counter written by one thread and read by others.
struct Counter {
  std::atomic<uint64_t> v{0};
  void inc(uint64_t n = 1) {
    v.store(v.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
  }
  void dec(uint64_t n = 1) {
    v.store(v.load(std::memory_order_relaxed) - n, std::memory_order_relaxed);
  }
  uint64_t get() const { return v.load(std::memory_order_relaxed); }
};

// Upper bounds of the request duration histogram, in microseconds (Prometheus `le` in seconds).
inline constexpr std::array<uint64_t, 13> kDurationBucketsUs = {
    1000,   2500,   5000,    10000,   25000,   50000,   100000,
    250000, 500000, 1000000, 2500000, 5000000, 10000000};

// Requests by status class (index 1..5 for 1xx..5xx, 0 for responses never sent: client gone),
// and how long they took (buckets as above plus +Inf; the sum in microseconds).
struct alignas(64) RequestRow {
  std::array<Counter, 6> by_class;
  std::array<Counter, kDurationBucketsUs.size() + 1> duration;  // not cumulative
  Counter duration_sum_us;
};

// The per-worker rows of one label set {listener, virtual_host, route, upstream}.
struct RequestSlot {
  std::string labels;  // Prometheus label text, e.g. listener="default/gw",virtual_host="..."
  std::unique_ptr<RequestRow[]> rows;
  void count(unsigned worker, int status) {
    unsigned cls = status >= 100 && status < 600 ? static_cast<unsigned>(status / 100) : 0;
    rows[worker].by_class[cls].inc();
  }
  // From the request head received to the last byte of the response written (or the connection
  // given up).
  void observe(unsigned worker, uint64_t micros) {
    size_t b = 0;
    while (b < kDurationBucketsUs.size() && micros > kDurationBucketsUs[b])
      ++b;
    rows[worker].duration[b].inc();
    rows[worker].duration_sum_us.inc(micros);
  }
};

enum class UpstreamError : uint8_t {
  kConnectFailed,  // refused, unreachable, connect timeout
  kNoHealthyHost,  // the cluster has no endpoints
  kTimeout,        // the route timeout passed before the response head
  kReset,          // the connection closed before a complete response
  kProtocol,       // the upstream sent something that is not valid HTTP/1.1
  kCount
};
const char* to_string(UpstreamError e);

// The circuit breakers of a cluster (Upstream circuitBreakers); the text is the value of the
// x-portico-overflow header and of the `breaker` label.
enum class Breaker : uint8_t {
  kMaxConnections,
  kMaxPendingRequests,
  kMaxRequests,
  kMaxRetries,
  kCount
};
const char* to_string(Breaker b);

struct alignas(64) ClusterRow {
  Counter cx_total, cx_active, rq_total, rq_active;
  // Requests sent again: on a fresh connection after a pooled one was dead, or by the route's
  // retry policy.
  Counter retries;
  // ... and those that could not be: not idempotent, a body larger than the replay buffer, or
  // over the cluster's retry budget.
  Counter retries_skipped_method, retries_skipped_body, retries_skipped_budget;
  // Requests answered 503 at once because a circuit breaker was full, by breaker.
  std::array<Counter, static_cast<size_t>(Breaker::kCount)> overflow;
  std::array<Counter, static_cast<size_t>(UpstreamError::kCount)> errors;
  // Load balancer: picks made in panic mode (too few available hosts: availability ignored) and
  // picks answered by a failover tier (priority > 0).
  Counter lb_panic, lb_failover;
  // Requests a weighted route's pick sent to this cluster while it had no endpoint, and that
  // went to another destination of the route instead.
  Counter weighted_skipped;
  // Subset routing: requests of a route's subset that found no endpoint to pick in it (no
  // fallback: answered 503 with the UH flag).
  Counter subset_no_host;
  // HTTP/2 upstreams (useHttp2): connections opened, streams opened, GOAWAY frames received and
  // RST_STREAM frames sent (a cancel: client gone, timeout).
  Counter h2_cx_total, h2_streams, h2_goaway, h2_resets_sent;
};

// Active health check results (HealthCheckResult counters of ClusterSlot).
enum class HealthCheckResult : uint8_t { kSuccess, kFailure, kTimeout, kCount };
const char* to_string(HealthCheckResult r);

// What a cluster has in flight, across every worker and configuration version (the slot lives as
// long as a configuration uses the cluster): the circuit breakers and the retry budget read it.
// Shared read-modify-write atomics, touched a few times per upstream request.
struct ClusterLoad {
  std::atomic<int64_t> connections{0};  // open upstream connections
  std::atomic<int64_t> pending{0};      // requests waiting for a connection to open
  std::atomic<int64_t> requests{0};     // requests in flight (forwarding started, not ended)
  std::atomic<int64_t> retries{0};      // requests in flight that are retrying
};

struct ClusterSlot {
  std::string name;
  std::unique_ptr<ClusterRow[]> rows;
  // Health (not per worker). Shown only for clusters with a health check or outlier detection.
  // Written by the health thread (checks, gauges) except ejections (any worker, fetch_add, rare).
  std::atomic<bool> health_shown{false};
  std::array<Counter, static_cast<size_t>(HealthCheckResult::kCount)> health_checks;
  Counter hosts, hosts_healthy, hosts_ejected;  // gauges, refreshed by the health thread
  std::atomic<uint64_t> ejections{0};
  ClusterLoad load;
  ClusterRow& row(unsigned worker) { return rows[worker]; }
};

// Tunnels by kind (http::TunnelKind: 0 websocket, 1 connect) and upgrade refusals by reason
// (http::UpgradeRefusal); stats.cc checks the sizes against those enums.
inline constexpr size_t kTunnelKinds = 2;
inline constexpr size_t kUpgradeRefusals = 7;
// HTTP/2 floods caught (each closes the connection with GOAWAY(ENHANCE_YOUR_CALM)).
enum class H2Flood : uint8_t {
  kPing,          // PING frames over the budget
  kSettings,      // SETTINGS frames over the budget
  kWindowUpdate,  // WINDOW_UPDATE frames beyond what the DATA sent explains
  kPriority,      // PRIORITY frames beyond what the streams opened explain
  kEmptyData,     // DATA frames with no payload and no END_STREAM
  kContinuation,  // too many CONTINUATION frames for one header block
  kOutboundAck,   // a peer that does not read its PING/SETTINGS acknowledgements (nghttp2)
  kCount
};
const char* to_string(H2Flood f);

struct alignas(64) WorkerRow {
  Counter downstream_cx_total, downstream_cx_active, downstream_rq_total;
  Counter bad_requests;            // rejected by the parser (4xx before routing)
  Counter downstream_cx_overflow;  // closed at once: the listener's maxConnections was reached
  // Tunnels: opened (accepting head sent), open now, bytes client → upstream and upstream → client.
  // tunnels_opened / tunnels_active count HTTP/1.1 clients, h2_tunnels_* HTTP/2 clients (RFC 8441
  // extended CONNECT, CONNECT); the bytes count both.
  std::array<Counter, kTunnelKinds> tunnels_opened, tunnels_active, tunnel_bytes_up,
      tunnel_bytes_down;
  std::array<Counter, kTunnelKinds> h2_tunnels_opened, h2_tunnels_active;
  std::array<Counter, kUpgradeRefusals> upgrades_refused;
  // HTTP/2 (downstream).
  Counter h2_connections;            // connections served as HTTP/2
  Counter h2_streams;                // request streams opened
  Counter h2_refused_streams;        // RST_STREAM(REFUSED_STREAM): over the concurrency limit
  Counter h2_resets_received;        // RST_STREAM frames from clients
  Counter h2_rapid_reset;            // connections closed for resetting too many streams
  Counter h2_header_list_too_large;  // requests answered 431 (header list size / count)
  Counter h2_malformed;              // streams reset: malformed request (RFC 9113 §8.1.1)
  Counter h2_protocol_errors;        // connections ended by a connection-level protocol error
  std::array<Counter, static_cast<size_t>(H2Flood::kCount)> h2_flood;
  // gRPC-Web requests translated to gRPC (the grpc_web filter), by mode (0 binary, 1 text), and
  // those whose -text body was not valid base64 (answered 400).
  std::array<Counter, 2> grpc_web_requests;
  Counter grpc_web_malformed;
};

// Owns every slot. get_* are called on the control thread only; render() on the admin thread.
class Registry {
 public:
  explicit Registry(unsigned workers);
  unsigned workers() const { return workers_; }

  // The slot of a label set, shared by every Runtime that uses it: a Runtime keeps its slots
  // alive, and a slot no Runtime uses any more (its route was removed, and the last request on the
  // old configuration finished) is freed and leaves the exposition.
  std::shared_ptr<RequestSlot> request_slot(const std::string& listener,
                                            const std::string& virtual_host,
                                            const std::string& route, const std::string& upstream);
  size_t request_slots() const;  // live slots (tests)
  // The same for an upstream cluster: a cluster no Runtime uses any more leaves the exposition.
  std::shared_ptr<ClusterSlot> cluster_slot(const std::string& cluster);
  size_t cluster_slots() const;  // live slots (tests)
  WorkerRow& worker_row(unsigned worker) { return worker_rows_[worker]; }

  // Control-plane facts shown with the counters.
  void set_config(uint64_t version, int64_t last_change_unix_ms) {
    config_version_.store(version, std::memory_order_relaxed);
    config_last_change_ms_.store(last_change_unix_ms, std::memory_order_relaxed);
  }
  void count_reload_error() { reload_errors_.fetch_add(1, std::memory_order_relaxed); }
  void count_reload() { reloads_.fetch_add(1, std::memory_order_relaxed); }

  // Prometheus text exposition of everything (sums of the worker rows).
  std::string render() const;

 private:
  unsigned workers_;
  mutable std::mutex mu_;  // guards the maps (control thread inserts, admin thread renders)
  mutable std::map<std::string, std::weak_ptr<RequestSlot>> requests_;  // expired: erased lazily
  mutable std::map<std::string, std::weak_ptr<ClusterSlot>> clusters_;  // expired: erased lazily
  std::unique_ptr<WorkerRow[]> worker_rows_;
  std::atomic<uint64_t> config_version_{0};
  std::atomic<int64_t> config_last_change_ms_{0};
  std::atomic<uint64_t> reload_errors_{0};
  std::atomic<uint64_t> reloads_{0};
};

}  // namespace portico::proxy::stats
