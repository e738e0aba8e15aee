#include "control/status/metrics.h"

#include <cstdio>

namespace portico::control {

void Histogram::observe(int64_t ms) {
  if (ms < 0) ms = 0;
  size_t b = 0;
  while (b < kPropagationBucketsMs.size() && ms > kPropagationBucketsMs[b])
    ++b;
  ++buckets[b];
  ++count;
  sum_ms += ms;
}

namespace {

void histogram(std::string& out, const char* stage, const Histogram& h) {
  char buf[160];
  uint64_t cumulative = 0;
  for (size_t b = 0; b < h.buckets.size(); ++b) {
    cumulative += h.buckets[b];
    if (b < kPropagationBucketsMs.size()) {
      std::snprintf(buf, sizeof buf,
                    "portico_config_propagation_seconds_bucket{stage=\"%s\",le=\"%g\"} %llu\n",
                    stage, static_cast<double>(kPropagationBucketsMs[b]) / 1000.0,
                    static_cast<unsigned long long>(cumulative));
    } else {
      std::snprintf(buf, sizeof buf,
                    "portico_config_propagation_seconds_bucket{stage=\"%s\",le=\"+Inf\"} %llu\n",
                    stage, static_cast<unsigned long long>(cumulative));
    }
    out += buf;
  }
  std::snprintf(buf, sizeof buf, "portico_config_propagation_seconds_sum{stage=\"%s\"} %.3f\n",
                stage, static_cast<double>(h.sum_ms) / 1000.0);
  out += buf;
  std::snprintf(buf, sizeof buf, "portico_config_propagation_seconds_count{stage=\"%s\"} %llu\n",
                stage, static_cast<unsigned long long>(h.count));
  out += buf;
}

void counter(std::string& out, const char* name, const char* type, const char* help,
             uint64_t value) {
  out += std::string("# HELP ") + name + " " + help + "\n# TYPE " + name + " " + type + "\n";
  out += std::string(name) + " " + std::to_string(value) + "\n";
}

}  // namespace

std::string ControlMetrics::render() const {
  std::string out;
  counter(out, "portico_config_builds_total", "counter",
          "Configuration builds (translations) that completed.", builds);
  counter(out, "portico_config_build_failures_total", "counter",
          "Configuration builds that failed with an internal error (nothing was published).",
          build_failures);
  counter(out, "portico_config_last_build_ok", "gauge",
          "1 when the last configuration build succeeded, 0 when it failed.",
          last_build_ok ? 1 : 0);
  counter(out, "portico_config_resyncs_total", "counter",
          "Periodic full re-reads of the configuration sources.", resyncs);
  counter(out, "portico_config_status_updates_total", "counter",
          "Resource statuses that changed (unchanged statuses are not rewritten).", status_updates);
  counter(out, "portico_control_virtual_services_translated_total", "counter",
          "VirtualServices translated (not reused from the previous translation).",
          virtual_services_translated);
  counter(out, "portico_control_routes_translated_total", "counter",
          "Routes translated, after delegation (not reused from the previous translation).",
          routes_translated);
  out +=
      "# HELP portico_config_type_version Version at which each kind of item of the configuration "
      "in force last changed.\n# TYPE portico_config_type_version gauge\n";
  const char* kinds[] = {"listeners", "routes", "clusters", "endpoints", "secrets"};
  for (int i = 0; i < 5; ++i) {
    out += std::string("portico_config_type_version{type=\"") + kinds[i] + "\"} " +
           std::to_string(type_versions[i]) + "\n";
  }
  out +=
      "# HELP portico_config_propagation_seconds Time from a configuration change being seen to it "
      "being translated (stage=translated) and running on every worker (stage=applied).\n"
      "# TYPE portico_config_propagation_seconds histogram\n";
  histogram(out, "translated", translated);
  histogram(out, "applied", applied);
  return out;
}

}  // namespace portico::control
