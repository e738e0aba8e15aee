// The configuration sources a Settings resource names beyond portico run's directory: storage
// (etcd, Consul KV, Kubernetes) and secrets (Vault, Kubernetes). They are made when portico
// starts, from the Settings the directory holds then; a later change of them is reported and takes
// effect at the next start or binary upgrade (`portico upgrade`). Control-plane thread only.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "api/resources.h"
#include "control/consul/consul_api.h"
#include "control/discovery/nomad_discovery.h"
#include "control/http/client.h"
#include "control/sources/source.h"

namespace portico::control {

struct MadeSources {
  std::vector<std::unique_ptr<ConfigSource>> sources;
  std::vector<std::string> errors;  // a source named but impossible to start (one line each)
};

MadeSources make_sources(const api::SettingsSpec& settings);

// Settings spec.consul as an endpoint: the address (with its TLS settings loaded), datacenter, the
// token or tokenFile (read now), basic authentication. An error names the field
// ("consul.tokenFile /x: ...").
Result<consul::Endpoint> consul_endpoint(const api::ConsulSettings& c);

// Settings spec.nomad as discovery options: the address (with TLS), region, wait, and the token
// or tokenFile (read now). An error names the field.
Result<NomadDiscoveryOptions> nomad_options(const api::NomadSettings& n);

// A store's address with its TLS settings loaded (https: the CA, client certificate and name).
Result<http::Url> store_url(const std::string& address, uint16_t default_port,
                            const api::StoreTls& tls);

// A text that changes when the sources a Settings names change (to tell that a restart is needed).
std::string sources_fingerprint(const api::SettingsSpec& settings);

}  // namespace portico::control
