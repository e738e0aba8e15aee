// Upstream host health: the state active health checks and passive outlier detection share with
// the load balancers, and the health thread that runs the checks. HostHealth and ClusterHealth are
// shared across threads (atomics only: workers read them through Endpoint::available() and report
// exchanges; the health thread writes check verdicts and returns ejected hosts). HealthChecker is
// used from the control thread (apply) and runs on its own thread.
#pragma once

#include <asio.hpp>

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "proxy/stats/stats.h"
#include "proxy/tls/context.h"
#include "snapshot/proxy_config.h"

namespace portico::proxy::upstream {

// Milliseconds on the steady clock (ejection deadlines).
int64_t steady_ms();

// The health of one endpoint of one cluster, kept across configurations while the endpoint stays
// in its cluster (and the cluster keeps or keeps not having a health check).
struct HostHealth {
  HostHealth(std::string a, uint16_t p, bool checked)
      : address(std::move(a)), port(p), check_ok(!checked) {}
  const std::string address;
  const uint16_t port;
  // Active checks: the verdict. A checked host starts unhealthy until its first check passes.
  std::atomic<bool> check_ok;
  // Outlier detection: ejected until ejected_until_ms (the health thread returns it).
  std::atomic<bool> ejected{false};
  std::atomic<int64_t> ejected_until_ms{0};
  std::atomic<uint32_t> ejections{0};  // the ejection time multiplier; decays while not ejected
  std::atomic<int64_t> multiplier_since_ms{0};
  std::atomic<uint32_t> consecutive_5xx{0};
  std::atomic<uint32_t> consecutive_gateway{0};
  std::atomic<uint32_t> consecutive_local{0};

  bool available() const {
    return check_ok.load(std::memory_order_relaxed) && !ejected.load(std::memory_order_relaxed);
  }
};

// Outcomes a worker reports besides a response status.
inline constexpr int kLocalOriginFailure = -1;  // connect refused, timed out, TLS handshake failed
inline constexpr int kGatewayFailure = -2;      // reset, timeout or garbage after the request

// The health of one cluster's endpoints, for one configuration: built by build_runtime on the
// control thread (hosts reused from the previous configuration's), then immutable apart from the
// hosts' atomics.
struct ClusterHealth {
  std::string name;
  std::optional<snapshot::HealthCheck> check;
  std::optional<snapshot::OutlierDetection> outlier;
  std::shared_ptr<const tls::ClientContext> tls;   // TLS clusters: HTTP checks go over TLS
  bool tls_cluster = false;                        // (without a context the checks fail)
  std::vector<std::shared_ptr<HostHealth>> hosts;  // aligned with the cluster's endpoints
  std::shared_ptr<stats::ClusterSlot> stats;

  // Worker: one exchange with `host` ended with `status` (a response status, kLocalOriginFailure
  // or kGatewayFailure). Cheap when nothing failed (loads only). `random` decides the
  // enforcing percentages. Returns true when this report ejected the host.
  bool report(HostHealth& host, int status, uint64_t random) const;
  // Health thread (tests: any thread): returns hosts whose ejection time passed, decays ejection
  // multipliers, refreshes the host gauges.
  void sweep(int64_t now_ms) const;

 private:
  bool eject(HostHealth& host, uint32_t enforcing, uint64_t random) const;
};

// Builds the health of cluster `c` (null when it has neither a health check nor outlier
// detection), reusing the hosts of `previous` (the same cluster in the previous configuration).
std::shared_ptr<const ClusterHealth> make_cluster_health(
    const snapshot::Cluster& c, const ClusterHealth* previous,
    std::shared_ptr<stats::ClusterSlot> stats, std::shared_ptr<const tls::ClientContext> tls);

// The health thread: one checker per (cluster, endpoint) with a health check, for the whole
// process, on its own io_context; a periodic sweep returns ejected hosts.
class HealthChecker {
 public:
  HealthChecker();
  ~HealthChecker();
  HealthChecker(const HealthChecker&) = delete;
  HealthChecker& operator=(const HealthChecker&) = delete;

  void start();
  void stop();  // ends the checks and joins the thread

  // Control thread: the clusters of the configuration now in force (null entries ignored).
  // Checkers of hosts that stay keep running (and their state); new hosts get one; the others
  // stop.
  void apply(std::vector<std::shared_ptr<const ClusterHealth>> clusters);

  size_t checkers() const { return checkers_.load(std::memory_order_relaxed); }

  struct Probe;

 private:
  void on_apply(std::vector<std::shared_ptr<const ClusterHealth>> clusters);
  void schedule_tick();
  void on_tick();

  // Sockets are only touched by the health thread; apply() and stop() post.
  asio::io_context io_{ASIO_CONCURRENCY_HINT_UNSAFE_IO};
  asio::executor_work_guard<asio::io_context::executor_type> work_;
  std::thread thread_;
  asio::steady_timer ticker_;  // starts due checks, times out slow ones, sweeps
  int64_t last_sweep_ms_ = 0;
  std::unordered_map<const HostHealth*, std::shared_ptr<Probe>> probes_;
  // When each probe needs the tick next (its next check, or its deadline while one is in flight).
  std::vector<std::pair<int64_t, std::shared_ptr<Probe>>> due_;
  std::vector<std::shared_ptr<const ClusterHealth>> clusters_;
  std::atomic<size_t> checkers_{0};
  uint64_t rng_ = 0x9E3779B97F4A7C15ULL;
};

}  // namespace portico::proxy::upstream
