// Per-worker upstream state: endpoints with their pools of idle keep-alive connections and the load
// balancer. Owned and used by one worker thread only; nothing here locks.
#pragma once

#include <asio.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "proxy/buffer.h"
#include "proxy/stats/stats.h"
#include "proxy/tls/context.h"
#include "proxy/transport/transport.h"
#include "proxy/upstream/health.h"
#include "proxy/upstream/lb.h"
#include "snapshot/proxy_config.h"

namespace portico::proxy::upstream {

using Clock = std::chrono::steady_clock;

struct Endpoint;
class H2ClientConnection;

// One connection to an upstream host. Lives in an Endpoint's idle pool or with the request using
// it. Codecs use it only through its Transport.
struct Connection {
  explicit Connection(std::unique_ptr<transport::Transport> t)
      : transport(std::move(t)), buffer(16384, 1 << 20) {}
  std::unique_ptr<transport::Transport> transport;
  Buffer buffer;          // response bytes read and not yet consumed; released while pooled
  uint32_t requests = 0;  // requests sent on this connection
  Clock::time_point idle_since{};
};

struct Endpoint : std::enable_shared_from_this<Endpoint> {
  snapshot::Endpoint config;
  asio::ip::tcp::endpoint address;
  uint32_t weight = 1;
  int64_t current_weight = 0;    // smooth weighted round robin state
  uint32_t active_requests = 0;  // for least request
  bool removed = false;          // no longer in the configuration: close connections given back
  // Shared with every worker and the health thread (null: the cluster has neither a health check
  // nor outlier detection).
  std::shared_ptr<HostHealth> health;
  // Whether the load balancer may pick this endpoint. Active health checks and outlier detection
  // take endpoints out; the load balancer honours it (panic threshold aside).
  bool available() const { return health == nullptr || health->available(); }
  std::vector<std::unique_ptr<Connection>> idle;  // LIFO: the most recently used is the warmest
  // HTTP/2 clusters: this worker's connections to the endpoint, shared by concurrent streams.
  std::vector<std::shared_ptr<H2ClientConnection>> h2;
  // HTTP/2 connects to the endpoint in flight on this worker, and the timer the streams that
  // found no connection wait on meanwhile (never expires; cancel() wakes every waiter when a
  // connect ends), so that a burst of streams shares the first connection instead of each
  // opening its own.
  uint32_t h2_connecting = 0;
  std::unique_ptr<asio::steady_timer> h2_connect_done;
};

// Whether one more retry may start: the cluster's retries in flight (`active_retries`) stay under
// max(min_retry_concurrency, budget_percent % of its requests in flight) (Envoy's retry budget).
inline bool retry_budget_allows(int64_t active_requests, int64_t active_retries,
                                const snapshot::RetryBudget& b) {
  const int64_t by_percent = active_requests * static_cast<int64_t>(b.budget_percent) / 100;
  const int64_t limit =
      std::max<int64_t>(static_cast<int64_t>(b.min_retry_concurrency), by_percent);
  return active_retries < limit;
}

// One unit held in a ClusterLoad gauge (a request, a pending connect, a retry) until released.
struct LoadHold {
  std::atomic<int64_t>* v = nullptr;
  LoadHold() = default;
  LoadHold(const LoadHold&) = delete;
  LoadHold& operator=(const LoadHold&) = delete;
  void take(std::atomic<int64_t>& a) {
    release();
    v = &a;
    a.fetch_add(1, std::memory_order_relaxed);
  }
  bool held() const { return v != nullptr; }
  void release() {
    if (v) v->fetch_sub(1, std::memory_order_relaxed);
    v = nullptr;
  }
  ~LoadHold() { release(); }
};

// Subset routing (docs/architecture.md, "Subsets"): one subset of a cluster that a route of
// the configuration selects (WeightedCluster::subset), compiled by build_runtime when a
// configuration is applied, never per request: which of the cluster's endpoints carry the
// labels, and the load balancer's view of them (the cluster's balancing settings with only those
// endpoints; ring hash and maglev tables over them). Immutable; shared by the workers.
struct SubsetDef {
  snapshot::Labels labels;
  uint64_t key = 0;               // subset_key(labels)
  snapshot::Cluster view;         // lb settings and the subset's endpoints (in cluster order)
  std::vector<uint32_t> members;  // the subset's endpoints: indices into the cluster's endpoints
  std::shared_ptr<const lb::HashTables> tables;  // ring hash / maglev over `view`; else null
};
struct ClusterSubsets {
  std::vector<SubsetDef> subsets;  // one per distinct label set, sorted by labels
};
// A route's subset as a number (never 0; 0 stands for "no subset"): what a request looks its
// subset up by on the hot path.
uint64_t subset_key(const snapshot::Labels& labels);
// The subsets of `config` for these label sets (sorted, distinct, none empty). Control thread.
std::shared_ptr<const ClusterSubsets> compile_subsets(const snapshot::Cluster& config,
                                                      const std::vector<snapshot::Labels>& sets);

class Cluster {
 public:
  Cluster(const snapshot::Cluster& config, stats::ClusterSlot* stats, unsigned worker,
          std::shared_ptr<const lb::HashTables> tables = nullptr);
  ~Cluster();

  // Applies a new configuration of the same cluster: keeps the endpoints (and their pools) that are
  // still there, marks the others removed. `tables`: the ring hash / maglev tables built for this
  // configuration by build_runtime (shared by the workers); built here when null.
  void update(const snapshot::Cluster& config, stats::ClusterSlot* stats,
              std::shared_ptr<const lb::HashTables> tables = nullptr);

  // Picks an endpoint with the cluster's load balancer (lb.h): failover tier, then policy;
  // unavailable endpoints skipped (panic threshold aside), the ones in ctx.tried avoided when
  // others remain. nullptr when no endpoint may be picked.
  std::shared_ptr<Endpoint> pick(const PickContext& ctx);
  // The same within the subset `key` (subset_key of a route's labels): only its endpoints, with
  // the cluster's policy; health, outlier state, requests in flight and pools are the cluster's
  // own (the subset's balancer holds the cluster's Endpoint objects). nullptr when the subset
  // has no endpoint that may be picked, or is unknown (no fallback: the request gets 503, UH).
  std::shared_ptr<Endpoint> pick(const PickContext& ctx, uint64_t key);
  // Subset routing: the subsets the routes select (build_runtime; null: none). Call after
  // update() (and after set_health): each subset's balancer is built over the current endpoints.
  void set_subsets(std::shared_ptr<const ClusterSubsets> subsets);
  const std::shared_ptr<const ClusterSubsets>& subsets() const { return subset_defs_; }
  // Whether the subset `key` has any endpoint (healthy or not): a weighted route sends the share
  // of a destination whose subset is empty to its other destinations, as for an empty cluster.
  bool has_endpoints(uint64_t key) const {
    if (key == 0) return has_endpoints();
    for (const auto& s : subsets_)
      if (s.key == key) return s.has_endpoints;
    return false;
  }
  // Whether the configuration gave the cluster any endpoint (healthy or not): a weighted route
  // sends the share of a destination without any to its other destinations.
  bool has_endpoints() const { return !endpoints_.empty(); }
  lb::Balancer& balancer() { return balancer_; }

  // Whether one more connection may be opened (Cluster::max_connections per worker). A refusal is
  // counted as an overflow.
  bool can_open() const { return max_connections_ == 0 || open_ < max_connections_; }
  snapshot::UpstreamProtocol protocol() const { return protocol_; }
  bool tls() const { return tls_; }
  // The upstream TLS context (built by build_runtime on the control thread); null for a plain
  // cluster or when it could not be built (tls_error() says why: requests then fail).
  void set_tls(std::shared_ptr<const tls::ClientContext> context, std::string error) {
    tls_context_ = std::move(context);
    tls_error_ = std::move(error);
  }
  const std::shared_ptr<const tls::ClientContext>& tls_context() const { return tls_context_; }
  // The health state of this configuration (build_runtime; null: none): each endpoint gets its
  // host's. Call after update().
  void set_health(std::shared_ptr<const ClusterHealth> health);
  // Outlier detection: the exchange with `ep` ended with a response `status`, or with
  // kLocalOriginFailure / kGatewayFailure. Cheap when nothing failed.
  void report(Endpoint& ep, int status, uint64_t random) {
    if (health_ && ep.health) health_->report(*ep.health, status, random);
  }
  const std::string& tls_error() const { return tls_error_; }

  // Takes an idle connection to `ep`, or nullptr. Drops pooled connections that the upstream closed
  // or that waited longer than the idle timeout.
  std::unique_ptr<Connection> take_idle(Endpoint& ep);
  // Gives a connection back after a complete exchange (or closes it when the pool is full, the
  // endpoint was removed, or the connection reached max_requests_per_connection).
  void give_back(const std::shared_ptr<Endpoint>& ep, std::unique_ptr<Connection> conn);
  // A connection is gone (closed or failed): update the gauges.
  void closed(std::unique_ptr<Connection> conn);
  void opened() {
    ++open_;
    row().cx_total.inc();
    row().cx_active.inc();
    load().connections.fetch_add(1, std::memory_order_relaxed);
  }
  size_t open_connections() const { return open_; }

  // HTTP/2 (protocol kHttp2): a connection to `ep` that can take one more stream now (dead ones
  // are dropped on the way), or null: open one and adopt it with add_h2.
  std::shared_ptr<H2ClientConnection> h2_connection(Endpoint& ep);
  // Starts HTTP/2 on a freshly opened connection (counted by opened()) and keeps it with `ep`.
  // Null when the session cannot start (the connection is then closed and counted closed).
  std::shared_ptr<H2ClientConnection> add_h2(Endpoint& ep,
                                             std::unique_ptr<transport::Transport> transport,
                                             asio::io_context& io);
  // An HTTP/2 connection ended: the gauges opened() raised go down.
  void h2_closed();

  // Closes idle connections older than the idle timeout (called by the worker's sweeper).
  void sweep(Clock::time_point now);

  const std::string& name() const { return name_; }
  std::chrono::milliseconds connect_timeout() const { return connect_timeout_; }
  stats::ClusterRow& row() { return stats_->row(worker_); }
  // Process-wide: what the cluster has in flight across workers (circuit breakers, retry budget).
  stats::ClusterLoad& load() { return stats_->load; }
  const snapshot::CircuitBreakers& breakers() const { return breakers_; }
  const snapshot::RetryBudget& retry_budget() const { return retry_budget_; }

 private:
  std::string name_;
  std::chrono::milliseconds connect_timeout_{2000};
  std::chrono::milliseconds idle_timeout_{60000};
  uint32_t max_requests_per_connection_ = 0;
  uint32_t max_connections_ = 0;
  uint32_t max_idle_ = 4096;
  snapshot::CircuitBreakers breakers_;
  snapshot::RetryBudget retry_budget_;
  snapshot::UpstreamProtocol protocol_ = snapshot::UpstreamProtocol::kHttp1;
  bool tls_ = false;
  std::shared_ptr<const tls::ClientContext> tls_context_;
  std::string tls_error_;
  std::shared_ptr<const ClusterHealth> health_;
  // Every HTTP/2 connection made here and maybe still alive (also those no endpoint keeps any
  // more): detached when the cluster goes, so that none reaches it afterwards.
  std::vector<std::weak_ptr<H2ClientConnection>> h2_all_;
  uint32_t h2_max_streams_ = 100;
  uint32_t h2_stream_window_ = 65535;
  uint32_t h2_connection_window_ = 1 << 20;
  std::string pool_key_;  // protocol and TLS settings: pooled connections are only reused under
                          // the same ones
  size_t open_ = 0;
  stats::ClusterSlot* stats_;
  unsigned worker_;
  std::vector<std::shared_ptr<Endpoint>> endpoints_;  // aligned with the config's endpoints
  lb::Balancer balancer_;
  // Subset routing: a balancer per subset over endpoints_ (set_subsets).
  struct Subset {
    uint64_t key = 0;
    bool has_endpoints = false;
    lb::Balancer balancer;
  };
  std::shared_ptr<const ClusterSubsets> subset_defs_;
  std::vector<Subset> subsets_;
  void assign_subsets();
};

}  // namespace portico::proxy::upstream
