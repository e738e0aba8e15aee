// Kubernetes discovery: the Upstreams written as `kube: {serviceName, serviceNamespace,
// servicePort}`. Two informers (kube_informer.h) keep copies of the cluster's Services and of its
// EndpointSlices (discovery.k8s.io/v1, those labelled kubernetes.io/service-name), listed and
// watched on threads of their own once a target exists. A target's endpoints: the Service's port
// `servicePort` names a port (by its name; the slices' ports carry the same name) whose number in
// each slice is the targetPort; every ready endpoint (conditions.ready true or absent) of the
// Service's slices gives address x that port. Only the endpoints move (no route is translated
// again). A Service that does not exist, or lacks the port: no endpoints, with a problem. The API
// server unreachable: the endpoints known before stay, with the informers' problem.
// poll(), watch() and configure() are for the control-plane thread and never block on the network.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "control/discovery/discovery.h"
#include "control/http/client.h"
#include "control/sources/kube_informer.h"

namespace portico::control {

struct KubeDiscoveryOptions {
  http::Url url;           // the API server
  std::string token_file;  // bearer token; empty: none
  bool operator==(const KubeDiscoveryOptions& o) const {
    return http::same_server(url, o.url) && token_file == o.token_file;
  }
};

// The Service a target names: its name is "<service>:<port>" (so that two ports of one Service are
// two targets, DiscoveryTarget::key()).
std::string kube_service_name(const snapshot::DiscoveryTarget& target);

// The endpoints of `target` (ns = the Service's namespace, name, port = the Service's port) given
// the Service (null: none) and the EndpointSlices of the cluster (those of other Services are
// skipped). Sorted, without duplicates; `problem` says why there are none.
Discovered kube_service_endpoints(const snapshot::DiscoveryTarget& target,
                                  const nlohmann::json* service,
                                  const std::vector<const nlohmann::json*>& slices);

class KubeDiscovery : public DiscoverySource {
 public:
  KubeDiscovery() = default;
  ~KubeDiscovery() override;

  std::string_view name() const override { return "kube"; }
  void start(std::function<void()> wake) override;
  void watch(const std::vector<snapshot::DiscoveryTarget>& targets) override;
  std::optional<DiscoveredMap> poll() override;
  bool wait_first(std::chrono::milliseconds timeout) override;

  // Applies spec.kubernetes (resolved: kube::resolve). A change restarts the informers.
  void configure(const KubeDiscoveryOptions& options);
  // No API server can be reached as configured (`why`): targets get it as their problem.
  void unconfigure(const std::string& why);

  struct Counters {
    uint64_t lists = 0;
    uint64_t watches = 0;
    uint64_t events = 0;
    uint64_t errors = 0;
    size_t services = 0;  // targets watched
    size_t failing = 0;   // targets with a problem
  };
  Counters counters() const;

 private:
  void ensure_informers();

  std::function<void()> wake_;
  std::optional<KubeDiscoveryOptions> options_;
  std::string unconfigured_;  // why there are no options
  std::vector<snapshot::DiscoveryTarget> targets_;
  bool targets_changed_ = false;
  std::unique_ptr<kube::Informer> services_, slices_;
  uint64_t seen_services_ = 0, seen_slices_ = 0;
  std::string seen_problem_;
  std::optional<DiscoveredMap> last_;
  size_t failing_ = 0;
};

}  // namespace portico::control
