// Consul catalog discovery: the Upstreams written as `consul: {serviceName, ...}`. One thread per
// watched target (service, data center, tags) runs blocking queries on
// /v1/health/service/<name>?passing (healthy instances only), following consul_api's index rules,
// at most one query per target every 50 ms, with a jittered back-off after a failure (the loop is
// BlockingWatcher's, shared with Nomad). At most kMaxTargets targets are watched (one thread
// each); a target beyond that gets a problem and no endpoint. Consul unreachable or answering
// garbage: the last instances stay, with a problem. A service that is not registered (an empty
// answer): no endpoints, problem "service not found in Consul".
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
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

class ConsulDiscovery : public DiscoverySource {
 public:
  static constexpr size_t kMaxTargets = BlockingWatcher::kMaxTargets;

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
    uint64_t queries = 0;
    uint64_t failures = 0;
    size_t services = 0;
    size_t failing = 0;
  };
  Counters counters() const;

 private:
  BlockingWatcher watcher_{"consul", "Consul"};
  std::optional<ConsulDiscoveryOptions> options_;  // in force; unset: not configured yet
};

}  // namespace portico::control
