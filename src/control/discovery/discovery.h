// Discovery: the endpoints the control plane finds for clusters (DNS names today; Consul, Nomad
// and Kubernetes services are further DiscoverySources). Translation writes what to discover into
// snapshot::Cluster::discovery; the sources watch those targets on threads of their own; before
// each publication the pipeline adds what they found to the clusters' endpoints (apply_discovered),
// so an endpoint change re-translates no route: it moves only the `endpoints` type version.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "snapshot/proxy_config.h"

namespace portico::control {

// What a source found for one target (snapshot::DiscoveryTarget::key()).
struct Discovered {
  // Addresses found; an endpoint's port 0 means "the target's port", weight and priority come from
  // the target (a source that knows an instance's own port sets it).
  std::vector<snapshot::Endpoint> endpoints;
  // Empty when the last lookup succeeded; else why not ("NXDOMAIN", "timeout"), with `endpoints`
  // holding what was found before, if anything (a name that no longer exists holds none).
  std::string problem;
  bool operator==(const Discovered&) const = default;
};
using DiscoveredMap = std::map<std::string, Discovered>;

class DiscoverySource {
 public:
  virtual ~DiscoverySource() = default;
  // Matches snapshot::DiscoveryTarget::source ("dns").
  virtual std::string_view name() const = 0;
  // Called once before anything else; `wake` (any thread) asks the control loop to sync soon.
  virtual void start(std::function<void()> wake) = 0;
  // Control-plane thread: the targets to watch now (every target of this source in the
  // configuration about to be published); the others are forgotten.
  virtual void watch(const std::vector<snapshot::DiscoveryTarget>& targets) = 0;
  // Control-plane thread: everything known now, by target key, when anything changed since the
  // previous call; nullopt otherwise. Never blocks on the network.
  virtual std::optional<DiscoveredMap> poll() = 0;
  // Control-plane thread: waits until every watched target had its first answer, at most
  // `timeout` (cluster warming: a new name is published with its addresses rather than a moment
  // without any). True when all have one.
  virtual bool wait_first(std::chrono::milliseconds timeout) {
    (void)timeout;
    return true;
  }
};

// Every discovery target of a configuration, deduplicated by key, for the source named `source`.
std::vector<snapshot::DiscoveryTarget> targets_of(const snapshot::ProxyConfig& config,
                                                  std::string_view source);

// Sets the endpoints of every cluster that has discovery targets: its own (numeric) endpoints
// followed by what `found` holds for its targets, ordered by priority. Clusters without targets
// are untouched and stay shared with the configuration `config` was copied from. Returns whether
// anything was changed.
bool apply_discovered(snapshot::ProxyConfig& config, const DiscoveredMap& found);

// Problems by the resource that produced the cluster ("Upstream/<ns>/<name>"), one line each,
// e.g. "spec.static.hosts: DNS name api.internal: NXDOMAIN (no endpoints from it)".
std::map<std::string, std::vector<std::string>> discovery_problems(
    const snapshot::ProxyConfig& config, const DiscoveredMap& found);

}  // namespace portico::control
