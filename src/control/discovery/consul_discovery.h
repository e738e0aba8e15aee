// Consul catalog discovery: the Upstreams written as `consul: {serviceName, ...}`, in one of two
// modes chosen by the number of targets (service, data center, tags):
// - per target (up to kBulkAbove targets): one thread per target runs blocking queries on
//   /v1/health/service/<name>?passing (healthy instances only), following consul_api's index
//   rules, at most one query per target every 50 ms, with a jittered back-off after a failure (the
//   loop is BlockingWatcher's, shared with Nomad);
// - bulk (more targets): ConsulBulkWatcher, a bounded number of connections whatever the number of
//   services (2 per data center + kReaders), see below.
// Consul unreachable or answering garbage: the last instances stay, with a problem. A service that
// is not registered (an empty answer): no endpoints, problem "service not found in Consul".
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"
#include "control/consul/consul_api.h"
#include "control/discovery/blocking_watch.h"
#include "control/discovery/discovery.h"

namespace portico::control {

struct ConsulDiscoveryOptions {
  consul::Endpoint endpoint;  // datacenter: the default for targets naming none
  consul::Consistency consistency = consul::Consistency::kDefault;
  std::chrono::milliseconds wait{60000};
  bool operator==(const ConsulDiscoveryOptions& o) const {
    return http::same_server(endpoint.url, o.endpoint.url) &&
           endpoint.datacenter == o.endpoint.datacenter && endpoint.token == o.endpoint.token &&
           endpoint.username == o.endpoint.username && endpoint.password == o.endpoint.password &&
           consistency == o.consistency && wait == o.wait;
  }
};

// The instances of a /v1/health/service answer carrying every tag of `tags`: address
// Service.Address, else Node.Address; port Service.Port. Sorted, without duplicates. An error
// naming what is wrong when the body is not Consul's JSON.
// With `subsets` (a target with subset_tags or subset_datacenters), each endpoint is labelled in
// Gloo's convention: "tag_<t>" = "1"/"0" per subset tag the instance carries or not, "dc_<d>" =
// "1"/"0" per subset data center it runs in or not (Node.Datacenter, else the target's).
Result<std::vector<snapshot::Endpoint>> parse_health_service(
    std::string_view body, const std::vector<std::string>& tags,
    const snapshot::DiscoveryTarget* subsets = nullptr);

// The request target of a target's query ("/v1/health/service/web?passing&dc=dc2&tag=a...").
std::string health_query_target(const ConsulDiscoveryOptions& options,
                                const snapshot::DiscoveryTarget& target, uint64_t index);

// Bulk mode: which services changed is learnt from two blocking queries per data center, on
// /v1/catalog/services (names and tags) and /v1/health/state/any (every check, with its
// ServiceName, Status and ModifyIndex); only the services that changed are read again
// (/v1/health/service/<name>?passing, not blocking) by kReaders reader threads, each with one
// connection. A change the two lists cannot attribute to a service (the services index moved with
// no name, tag or check changed: an instance's address or port re-registered, an instance without
// checks) makes a node scan: /v1/catalog/nodes, then /v1/catalog/node/<node> for each node (every
// instance with its ModifyIndex), compared with the previous scan; the services that differ are
// read again. With more nodes than targets, or when a scan fails, a sweep instead: every target
// of that data center is read again, behind the attributed reads; so on the recovery of a failed
// list query, and, as anti-entropy, kResweep after the last sweep. Index rules, 50 ms rate limit
// and back-off as BlockingWatcher.
class ConsulBulkWatcher {
 public:
  static constexpr size_t kReaders = 6;
  static constexpr std::chrono::minutes kResweep{5};

  ConsulBulkWatcher();
  ~ConsulBulkWatcher();
  ConsulBulkWatcher(const ConsulBulkWatcher&) = delete;
  ConsulBulkWatcher& operator=(const ConsulBulkWatcher&) = delete;

  void start(std::function<void()> wake);
  void watch(const std::vector<snapshot::DiscoveryTarget>& targets);
  std::optional<DiscoveredMap> poll();
  bool wait_first(std::chrono::milliseconds timeout);
  // Every call restarts the list queries and reads every target again.
  void configure(const ConsulDiscoveryOptions& options);

  struct Counters {
    uint64_t list_queries = 0;   // /v1/catalog/services and /v1/health/state/any answered or failed
    uint64_t list_failures = 0;  // of those, failed
    uint64_t reads = 0;          // /v1/health/service reads answered or failed
    uint64_t read_failures = 0;  // of those, failed
    uint64_t sweeps = 0;         // every target of a data center read again
    uint64_t node_scans = 0;     // /v1/catalog/node/<node> of every node read to find a change
    size_t targets = 0;
    size_t failing = 0;
    size_t queued = 0;  // targets waiting for a read
  };
  Counters counters() const;

  // The state the threads share (consul_bulk.cc).
  struct Shared;
  struct Dc;

 private:
  void reconcile();
  std::shared_ptr<Shared> shared_;
};

// What /v1/health/state/any says, reduced to what tells a change: a fingerprint of each service's
// checks (node, check ID, service ID, status, ModifyIndex) and of each node's own checks
// (serfHealth...), and the services with a check on each node.
struct ChecksView {
  std::map<std::string, uint64_t> by_service;
  std::map<std::string, uint64_t> by_node;
  std::map<std::string, std::set<std::string>> services_on_node;
};
Result<ChecksView> parse_checks(std::string_view body);
// The services whose checks differ between two views (a node's own checks changed: every service
// with a check on that node).
std::set<std::string> changed_services(const ChecksView& before, const ChecksView& after);
// /v1/catalog/services: service name -> tags (sorted).
Result<std::map<std::string, std::vector<std::string>>> parse_catalog_services(
    std::string_view body);
// /v1/catalog/nodes: the node names.
Result<std::vector<std::string>> parse_catalog_nodes(std::string_view body);
// /v1/catalog/node/<node>: adds to `out`, by service name, a fingerprint of each of the node's
// instances (node, node address, service ID, address, port, ModifyIndex); a null body (no such
// node any more) adds nothing.
Result<bool> add_node_services(std::string_view body, std::map<std::string, uint64_t>* out);

class ConsulDiscovery : public DiscoverySource {
 public:
  static constexpr size_t kMaxTargets = BlockingWatcher::kMaxTargets;
  // Above this many targets, bulk mode (at most this many threads and connections per target).
  static constexpr size_t kBulkAbove = 64;

  ConsulDiscovery();
  ~ConsulDiscovery() override;

  std::string_view name() const override { return "consul"; }
  void start(std::function<void()> wake) override;
  void watch(const std::vector<snapshot::DiscoveryTarget>& targets) override;
  std::optional<DiscoveredMap> poll() override;
  bool wait_first(std::chrono::milliseconds timeout) override;

  // Control-plane thread. Queries begin after the first call; a change restarts every query.
  void configure(const ConsulDiscoveryOptions& options);

  struct Counters {
    uint64_t queries = 0;  // per-target queries, list queries and reads of bulk mode
    uint64_t failures = 0;
    size_t services = 0;
    size_t failing = 0;
    bool bulk = false;  // the mode in force
    ConsulBulkWatcher::Counters bulk_counters;
  };
  Counters counters() const;

 private:
  BlockingWatcher watcher_{"consul", "Consul"};
  ConsulBulkWatcher bulk_;
  bool bulk_mode_ = false;
  DiscoveredMap last_single_, last_bulk_;          // what each mode's poll() said last
  std::optional<ConsulDiscoveryOptions> options_;  // in force; unset: not configured yet
};

}  // namespace portico::control
