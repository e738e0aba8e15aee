// Cross-resource validation and translation of decoded resources into the immutable ProxyConfig.
// Pure function of its input; run on the control-plane thread (the result may be shared with any
// thread).
//
// Rules (docs/configuration.md has the user-facing version):
// - A resource with any error is Rejected and left out of the ProxyConfig entirely; the others are
//   unaffected (Gloo's behaviour: one bad resource never blocks the rest).
// - A route to a missing or Rejected Upstream is a warning on its VirtualService; the route is kept
//   and answers 503 (the data plane's answer for an unknown cluster), the other routes and domains
//   keep working.
// - Two Gateways whose bind addresses overlap on the same port are both Rejected.
// - Two VirtualServices served by one Gateway with a common domain are both Rejected.
// - A Gateway that names a missing or Rejected VirtualService gets a warning and serves the others.
// - TLS: Secrets and sslFiles are read and checked here (files relative to the directory of the
//   resource's file, under TranslateOptions::base_dir); a bad Secret is Rejected, and so is every
//   resource whose TLS needs it. ssl Gateways serve only VirtualServices with sslConfig, plain
//   Gateways only those without (Gloo's rule).
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <vector>

#include "api/resources.h"
#include "control/status/status.h"
#include "snapshot/proxy_config.h"

namespace portico::control {

struct Translation {
  std::shared_ptr<const snapshot::ProxyConfig> config;  // never null
  std::vector<ResourceStatus> statuses;                 // sorted by kind, namespace, name
};

struct TranslateOptions {
  // What api::Resource::file paths are relative to (the configuration directory); files named by
  // Secrets and sslFiles are resolved against the directory of the resource's file within it.
  // Empty: the current directory.
  std::filesystem::path base_dir;
};

// `resources` must be unique by kind/namespace/name. Generations are left at 0 (the caller tracks
// them).
Translation translate(const std::vector<api::Resource>& resources, uint64_t version,
                      int64_t created_unix_ms, const TranslateOptions& options = {});

}  // namespace portico::control
