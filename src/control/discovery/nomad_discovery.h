// Nomad native service discovery (Nomad >= 1.3): the Upstreams written as
// `nomad: {serviceName, namespace, tags, canaryTags, canary}`. One thread per watched target
// (service, namespace, tags, canary selection) runs blocking queries on
// /v1/service/<name>?namespace=<ns> (BlockingWatcher: Consul's index rules, at most one query per
// target every 50 ms, a jittered back-off after a failure, at most 256 targets). Each
// registration is an endpoint Address:Port. Canaries: Nomad registers a canary allocation's
// service with the job's canary_tags instead of its tags; a target with canary kOnly / kExclude
// keeps only / drops the registrations carrying every canary tag. Nomad unreachable or answering
// garbage: the last instances stay, with a problem. A service that is not registered (Nomad
// answers an empty list): no endpoints, problem "service not found in Nomad".
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"
#include "control/discovery/blocking_watch.h"
#include "control/discovery/discovery.h"
#include "control/http/client.h"

namespace portico::control {

struct NomadDiscoveryOptions {
  http::Url url;       // the agent's HTTP API (http://127.0.0.1:4646)
  std::string token;   // X-Nomad-Token; empty: none (the anonymous policy applies)
  std::string region;  // ?region=; empty: the agent's own
  std::chrono::milliseconds wait{60000};
  bool operator==(const NomadDiscoveryOptions& o) const {
    return http::same_server(url, o.url) && token == o.token && region == o.region &&
           wait == o.wait;
  }
};

// What Portico reads of one registration of GET /v1/service/<name>.
struct NomadRegistration {
  std::string id;
  std::string address;
  uint16_t port = 0;
  std::vector<std::string> tags;
};

// The registrations of a /v1/service/<name> answer; an error naming what is wrong when the body
// is not Nomad's JSON (an array of objects with a string ID and Address, a port number, Tags an
// array of strings or null).
Result<std::vector<NomadRegistration>> parse_service_registrations(std::string_view body);

// The endpoints of the registrations `target` selects: every tag of target.tags carried, then
// the canary selection (a registration carrying every canary tag is a canary). Registrations
// whose Address is not an IP address are left out (counted in *skipped when given). Sorted,
// without duplicates.
std::vector<snapshot::Endpoint> select_instances(const std::vector<NomadRegistration>& regs,
                                                 const snapshot::DiscoveryTarget& target,
                                                 size_t* skipped = nullptr);

// The request target of a query ("/v1/service/web?namespace=prod&index=42&wait=60000ms");
// `next_token`: a later page (X-Nomad-NextToken of the previous one), never blocking.
std::string service_query_target(const NomadDiscoveryOptions& options,
                                 const snapshot::DiscoveryTarget& target, uint64_t index,
                                 std::string_view next_token = {});

// Sends one request (the agent's client in the source; a stub in tests).
using NomadSend =
    std::function<Result<http::Response>(const http::Request&, std::chrono::milliseconds)>;

// One blocking query of `target`, every page of it (X-Nomad-NextToken: the next page is read at
// once, without blocking, and the answer is the pages together with the first page's index).
BlockingAnswer query_nomad_service(const NomadSend& send, const NomadDiscoveryOptions& options,
                                   const snapshot::DiscoveryTarget& target, uint64_t index);

class NomadDiscovery : public DiscoverySource {
 public:
  static constexpr size_t kMaxTargets = BlockingWatcher::kMaxTargets;

  NomadDiscovery();
  ~NomadDiscovery() override;

  std::string_view name() const override { return "nomad"; }
  void start(std::function<void()> wake) override;
  void watch(const std::vector<snapshot::DiscoveryTarget>& targets) override;
  std::optional<DiscoveredMap> poll() override;
  bool wait_first(std::chrono::milliseconds timeout) override;

  // Control-plane thread. Queries begin after the first call; a change restarts every query.
  void configure(const NomadDiscoveryOptions& options);

  struct Counters {
    uint64_t queries = 0;
    uint64_t failures = 0;
    size_t services = 0;
    size_t failing = 0;
  };
  Counters counters() const;

 private:
  BlockingWatcher watcher_{"nomad", "Nomad"};
  std::optional<NomadDiscoveryOptions> options_;  // in force; unset: not configured yet
};

}  // namespace portico::control
