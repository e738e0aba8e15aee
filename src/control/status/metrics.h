// Control-plane metrics: configuration builds, their failures, and how long a change takes from
// being seen to being translated and to running on every worker. Written on the control-plane
// thread; render() is called there too (the admin API runs on that thread).
#pragma once

#include <array>
#include <cstdint>
#include <string>

namespace portico::control {

// Upper bounds of the propagation histograms, in milliseconds.
inline constexpr std::array<int64_t, 13> kPropagationBucketsMs = {
    1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000};

struct Histogram {
  std::array<uint64_t, kPropagationBucketsMs.size() + 1> buckets{};  // not cumulative; last: +Inf
  uint64_t count = 0;
  int64_t sum_ms = 0;
  void observe(int64_t ms);
};

struct ControlMetrics {
  uint64_t builds = 0;          // translations that completed
  uint64_t build_failures = 0;  // internal errors: nothing published
  bool last_build_ok = true;
  uint64_t resyncs = 0;         // full re-reads of the sources
  uint64_t status_updates = 0;  // resource statuses that changed
  // What translation recomputed: VirtualServices flattened and translated, and their routes (the
  // others were reused from the previous translation).
  uint64_t virtual_services_translated = 0;
  uint64_t routes_translated = 0;
  // The version of each kind of item of the configuration in force (snapshot::TypeVersions:
  // listeners, routes, clusters, endpoints, secrets).
  uint64_t type_versions[5] = {0, 0, 0, 0, 0};
  Histogram translated;  // change seen -> translated
  Histogram applied;     // change seen -> running on every worker
  // Prometheus text exposition (portico_config_* families).
  std::string render() const;
};

}  // namespace portico::control
