// The configuration sources a Settings resource names beyond portico run's directory: storage
// (etcd, Consul KV, Kubernetes) and secrets (Vault, Kubernetes). They are made when portico
// starts, from the Settings the directory holds then; a later change of them is reported and takes
// effect at the next start or binary upgrade (`portico upgrade`). Control-plane thread only.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "api/resources.h"
#include "control/sources/source.h"

namespace portico::control {

struct MadeSources {
  std::vector<std::unique_ptr<ConfigSource>> sources;
  std::vector<std::string> errors;  // a source named but impossible to start (one line each)
};

MadeSources make_sources(const api::SettingsSpec& settings);

// A text that changes when the sources a Settings names change (to tell that a restart is needed).
std::string sources_fingerprint(const api::SettingsSpec& settings);

}  // namespace portico::control
