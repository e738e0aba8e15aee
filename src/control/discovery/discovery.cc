#include "control/discovery/discovery.h"

#include <algorithm>
#include <set>

namespace portico::control {

std::vector<snapshot::DiscoveryTarget> targets_of(const snapshot::ProxyConfig& config,
                                                  std::string_view source) {
  std::vector<snapshot::DiscoveryTarget> out;
  std::set<std::string> seen;
  for (const auto& c : config.clusters) {
    for (const auto& t : c.discovery) {
      if (t.source == source && seen.insert(t.key()).second) out.push_back(t);
    }
  }
  return out;
}

namespace {

std::vector<snapshot::Endpoint> endpoints_with(const snapshot::Cluster& c,
                                               const std::vector<snapshot::Endpoint>& own,
                                               const DiscoveredMap& found) {
  std::vector<snapshot::Endpoint> out = own;
  for (const auto& t : c.discovery) {
    auto it = found.find(t.key());
    if (it == found.end()) continue;
    for (const auto& e : it->second.endpoints) {
      snapshot::Endpoint ep = e;
      if (ep.port == 0) ep.port = t.port;
      ep.weight = t.weight;
      ep.priority = t.priority;
      // A name that resolves to an address listed already (or twice for one cluster) adds nothing.
      if (std::find(out.begin(), out.end(), ep) == out.end()) out.push_back(std::move(ep));
    }
  }
  std::stable_sort(out.begin(), out.end(),
                   [](const auto& a, const auto& b) { return a.priority < b.priority; });
  return out;
}

}  // namespace

bool apply_discovered(snapshot::ProxyConfig& config, const DiscoveredMap& found) {
  bool any = std::any_of(config.clusters.begin(), config.clusters.end(),
                         [](const snapshot::Cluster& c) { return !c.discovery.empty(); });
  if (!any) return false;
  bool changed = false;
  auto& clusters = config.clusters.edit();
  for (auto& c : clusters) {
    if (c.discovery.empty()) continue;
    // The translation's endpoints are the numeric hosts only: they are all kept.
    std::vector<snapshot::Endpoint> next = endpoints_with(c, c.endpoints, found);
    if (next != c.endpoints) {
      c.endpoints = std::move(next);
      changed = true;
    }
  }
  return changed;
}

std::map<std::string, std::vector<std::string>> discovery_problems(
    const snapshot::ProxyConfig& config, const DiscoveredMap& found) {
  std::map<std::string, std::vector<std::string>> out;
  for (const auto& c : config.clusters) {
    for (const auto& t : c.discovery) {
      auto it = found.find(t.key());
      std::string line;
      if (it == found.end()) {
        line = "not resolved yet";
      } else if (!it->second.problem.empty()) {
        line = it->second.problem;
        line += it->second.endpoints.empty() ? " (no endpoints from it)"
                                             : " (the addresses found before are kept)";
      } else if (it->second.endpoints.empty()) {
        line = "no addresses";
      } else {
        continue;
      }
      // "dns name api.internal", "consul service web@dc2#tag".
      std::string what = t.source == "dns"
                             ? "dns name " + t.name
                             : t.source + " service " + t.key().substr(t.source.size() + 1);
      out["Upstream/" + c.name].push_back(what + ": " + line);
    }
  }
  return out;
}

}  // namespace portico::control
