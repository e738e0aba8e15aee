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
#include <optional>
#include <vector>

#include "api/resources.h"
#include "control/status/status.h"
#include "snapshot/proxy_config.h"

namespace portico::control {

using ResourcePtr = std::shared_ptr<const api::Resource>;

// What a translation recomputed (the rest was reused from the previous one, see Translator).
struct TranslateCounts {
  uint64_t virtual_services = 0;  // VirtualServices whose routes were flattened and translated
  uint64_t routes = 0;            // their routes, after delegation
};

struct Translation {
  std::shared_ptr<const snapshot::ProxyConfig> config;  // never null
  std::vector<ResourceStatus> statuses;                 // sorted by kind, namespace, name
  TranslateCounts translated;
  // The statuses of the resources that changed since the previous translation only (every other
  // status is what that translation said). Only when the caller allowed it (Translator).
  bool partial = false;
};

struct TranslateOptions {
  // What api::Resource::file paths are relative to (the configuration directory); files named by
  // Secrets and sslFiles are resolved against the directory of the resource's file within it.
  // Empty: the current directory.
  std::filesystem::path base_dir;
};

// `resources` must be unique by kind/namespace/name. Generations are left at 0 (the caller tracks
// them).
Translation translate(const std::vector<ResourcePtr>& resources, uint64_t version,
                      int64_t created_unix_ms, const TranslateOptions& options = {});
// The same on copies (tests, tools).
Translation translate(const std::vector<api::Resource>& resources, uint64_t version,
                      int64_t created_unix_ms, const TranslateOptions& options = {});

// Incremental translation: the same result as translate() on the same input, but a
// VirtualService's translated VirtualHost (shared with the previous ProxyConfig) and its
// diagnostics are reused when neither it (by resource identity: the store hands out the same
// shared pointer while a resource's revision stays) nor anything its translation read changed: the
// Upstreams and UpstreamGroups its routes name (their existence and accepted/rejected state; a
// group's destinations), the RouteTables its delegation reached or looked for (identity and state),
// every RouteTable when it delegates by selector, and the invalid-route policy of Settings. A
// dependency index (upstream, group, table → VirtualServices) decides what to recompute. Checks
// across resources (gateway binds, selection, domain conflicts, unused resources) run every time
// on the cached results. TLS settings and material (read from Secrets and files at every
// translation) are applied to a cached VirtualHost afterwards: a rotated certificate copies the
// host with its new TLS, it never re-translates its routes. Control-plane thread only.
class Translator {
 public:
  // `incremental` false: nothing is remembered for the next call (a one-shot translation).
  explicit Translator(TranslateOptions options = {}, bool incremental = true);
  ~Translator();
  Translator(const Translator&) = delete;
  Translator& operator=(const Translator&) = delete;

  // `allow_partial`: when the previous call's result is what the caller holds, a change that can
  // only alter the statuses of the changed resources (VirtualServices edited in place: same
  // namespace, labels and domains, no TLS, accepted before and after, the same RouteTables
  // reached and no Upstream becoming used or unused) is translated alone, in time proportional to
  // it: the result is `partial` (the changed statuses only) and the configuration is the previous
  // one with those virtual hosts replaced. Anything else is a full translation (its memos still
  // apply). The input must come in the same order from call to call (the store's).
  Translation translate(const std::vector<ResourcePtr>& resources, uint64_t version,
                        int64_t created_unix_ms, bool allow_partial = false);

  // Since construction (the /stats counters).
  const TranslateCounts& total() const { return total_; }

  struct State;

 private:
  std::optional<Translation> translate_changes(const std::vector<ResourcePtr>& resources,
                                               uint64_t version, int64_t created_unix_ms);

  TranslateOptions options_;
  bool incremental_;
  std::unique_ptr<State> state_;
  TranslateCounts total_;
};

}  // namespace portico::control
