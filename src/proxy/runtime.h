// Runtime: a ProxyConfig compiled for the data plane (router indexes, stat slots resolved). Built
// on the control thread by build_runtime(); immutable afterwards and shared by all workers.
#pragma once

#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "proxy/access_log/access_log.h"
#include "proxy/filters/filter.h"
#include "proxy/router/router.h"
#include "proxy/stats/stats.h"
#include "proxy/tls/context.h"
#include "proxy/upstream/cluster.h"
#include "proxy/upstream/health.h"
#include "proxy/upstream/lb.h"
#include "snapshot/proxy_config.h"

namespace portico::proxy {

struct RouteRuntime {
  // For forward actions: per WeightedCluster, the index of its cluster in config->clusters
  // (-1 if missing) and its stat slot. Other actions: one stat slot with upstream "".
  std::vector<int> cluster_index;
  // Subset routing, aligned with cluster_index: upstream::subset_key of the destination's subset
  // (0: none, every endpoint of the cluster).
  std::vector<uint64_t> subset_key;
  std::vector<stats::RequestSlot*> stats;
  // The listener's filters then the route's, compiled. Null when one of them failed to compile:
  // the route then answers 500 (never served without its filters).
  std::shared_ptr<const filters::FilterChain> chain;
};

// Compiled once per VirtualHost and shared by the Runtimes of later configurations that carry
// the same VirtualHost (by pointer) on the same listener with the same filters and clusters.
struct VirtualHostRuntime {
  std::shared_ptr<const snapshot::VirtualHost> host;  // what this was compiled from
  std::vector<RouteRuntime> routes;                   // aligned with VirtualHost::routes
  router::RouteRegexes regexes;                       // the routes' regexes, compiled here
  stats::RequestSlot* no_route = nullptr;
  // "<route>: <error>" for filter chains and regexes that did not compile (the route answers 500,
  // or never matches).
  std::vector<std::string> filter_errors;
  // Keeps the request slots alive (the raw pointers above point into them).
  std::vector<std::shared_ptr<stats::RequestSlot>> request_slots;
  // The subsets its routes select: (index in config->clusters, labels).
  std::vector<std::pair<int, snapshot::Labels>> subset_uses;
};

struct ListenerRuntime {
  const snapshot::Listener* listener = nullptr;
  std::unique_ptr<router::CompiledListener> router;
  // Aligned with Listener::virtual_hosts.
  std::vector<std::shared_ptr<const VirtualHostRuntime>> virtual_hosts;
  stats::RequestSlot* no_virtual_host = nullptr;
  std::vector<std::string> filter_errors;  // "<route>: <error>" for chains that did not compile
  // TLS (listener->tls set): the contexts, SNI over the virtual hosts. Null with tls_error set
  // when they could not be built: the listener then refuses connections (never plaintext).
  std::shared_ptr<const tls::ServerContext> tls;
  std::string tls_error;
  // Every client-identity header name configured on this listener (its TLS settings and its
  // virtual hosts'): removed from every request, so that a client can never set one itself.
  std::vector<std::string> identity_headers;
  // The listener's access logs (null: none); logs that could not be set up (file not writable).
  std::shared_ptr<const access_log::ListenerLog> access_log;
  std::vector<std::string> access_log_errors;
};

struct Runtime {
  std::shared_ptr<const snapshot::ProxyConfig> config;
  std::vector<ListenerRuntime> listeners;                   // aligned with config->listeners
  std::unordered_map<std::string, size_t> listener_by_key;  // "address:port" → index
  std::vector<stats::ClusterSlot*> cluster_stats;           // aligned with config->clusters
  // Upstream TLS, aligned with config->clusters: null for plain clusters, and for clusters whose
  // context could not be built (cluster_tls_errors says why; their requests fail, never in
  // plaintext).
  std::vector<std::shared_ptr<const tls::ClientContext>> cluster_tls;
  std::vector<std::string> cluster_tls_errors;
  // Ring hash / maglev tables, aligned with config->clusters (null for the other policies): built
  // once here, shared read-only by every worker's Cluster.
  std::vector<std::shared_ptr<const upstream::lb::HashTables>> cluster_lb;
  // Health state, aligned with config->clusters: null for clusters with neither a health check nor
  // outlier detection (their endpoints are always available). Hosts carry over from `previous`.
  std::vector<std::shared_ptr<const upstream::ClusterHealth>> cluster_health;
  // Subset routing, aligned with config->clusters: the subsets the routes select on each cluster
  // (null: none), compiled here; each worker's Cluster builds their balancers over its endpoints.
  // Carried over from `previous` when neither the cluster nor its subsets changed.
  std::vector<std::shared_ptr<const upstream::ClusterSubsets>> cluster_subsets;
  // Keeps this configuration's request and cluster slots alive (the raw pointers above point into
  // them): a removed route's or cluster's slot is freed when the last Runtime using it goes.
  std::vector<std::shared_ptr<stats::RequestSlot>> request_slots;
  std::vector<std::shared_ptr<stats::ClusterSlot>> cluster_slots;
  // Cluster names to positions in config->clusters (shared with `previous` when the names are
  // the same).
  std::shared_ptr<const std::unordered_map<std::string, int>> cluster_index;
  // What changed since `previous` (when there was one: based_on_version is its config's version,
  // 0 otherwise): the same cluster names in the same order, and per cluster whether it is equal.
  // A worker that runs `previous` updates only the clusters that changed.
  uint64_t based_on_version = 0;
  bool cluster_names_unchanged = false;
  std::vector<uint8_t> cluster_unchanged;  // aligned with config->clusters
  // How many virtual hosts were compiled, and how many were taken from `previous`.
  size_t virtual_hosts_compiled = 0;
  size_t virtual_hosts_reused = 0;
};

std::string listener_key(const std::string& address, uint16_t port);

// Compiles `config` (control thread): router indexes, filter chains (with `filters`), stat slots
// (created in `registry` as needed). The compiled virtual hosts of `previous` (the Runtime built
// with the same registries for an earlier configuration) are reused for the VirtualHosts the two
// configurations share by pointer, when their listener (by name) has the same filters and the
// clusters are the same (by name, in order): a configuration where one VirtualService or only
// endpoints changed compiles only what changed.
std::shared_ptr<const Runtime> build_runtime(
    std::shared_ptr<const snapshot::ProxyConfig> config, stats::Registry& registry,
    const filters::Registry& filters = filters::builtin_registry(),
    const Runtime* previous = nullptr);

}  // namespace portico::proxy
