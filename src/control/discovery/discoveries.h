// The discovery sources every control plane runs (`portico run`, `portico server`): DNS names,
// Consul's catalog, Nomad's services and Kubernetes Services (EndpointSlices). Made, started and
// handed to a Pipeline together, and configured together from the Settings in force. Control-plane
// thread only (the sources' own threads only call `wake`).
#pragma once

#include <functional>
#include <string>

#include "api/resources.h"
#include "control/discovery/consul_discovery.h"
#include "control/discovery/dns.h"
#include "control/discovery/kube_discovery.h"
#include "control/discovery/nomad_discovery.h"
#include "control/pipeline.h"

namespace portico::control {

class Discoveries {
 public:
  // Makes the four sources, starts them with `wake` (called from their threads when they have
  // something new: the caller schedules a sync) and adds them to `pipeline`, which owns them and
  // must outlive this object.
  Discoveries(Pipeline& pipeline, const std::function<void()>& wake);

  // Applies Settings spec.dns, spec.consul, spec.nomad and spec.kubernetes (their defaults when
  // `settings` is null) without a restart. Options that cannot be made (a token file that cannot be
  // read, TLS files that do not load) keep the source's options in force and are logged once per
  // distinct error.
  void configure(const api::SettingsSpec* settings);

  // The sources' counters and gauges for /stats (portico_dns_*, portico_consul_discovery_*,
  // portico_nomad_discovery_*, portico_kube_discovery_*).
  std::string stats() const;

 private:
  std::string kube_stats() const;
  DnsDiscovery* dns_ = nullptr;        // owned by the pipeline
  ConsulDiscovery* consul_ = nullptr;  // owned by the pipeline
  NomadDiscovery* nomad_ = nullptr;    // owned by the pipeline
  KubeDiscovery* kube_ = nullptr;      // owned by the pipeline
  std::string consul_error_;           // the last configure error logged, per source
  std::string nomad_error_;
};

}  // namespace portico::control
