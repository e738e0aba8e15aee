// proxy::build_runtime: the stat slots a compiled configuration holds; compiled virtual hosts are
// reused from the previous Runtime when the configuration shares them (by pointer), and compiled
// again when anything they depend on changed.
#include "proxy/runtime.h"

#include <gtest/gtest.h>

#include <memory>
#include <string>

namespace portico::proxy {
namespace {

std::shared_ptr<const snapshot::VirtualHost> host(const std::string& name,
                                                  const std::string& cluster) {
  auto vh = std::make_shared<snapshot::VirtualHost>();
  vh->name = name;
  vh->domains = {name + ".example.com"};
  snapshot::Route r;
  r.name = name + "/0";
  snapshot::ForwardAction a;
  a.clusters = {{cluster, 1}};
  a.total_weight = 1;
  r.action = a;
  vh->routes.push_back(r);
  return vh;
}

snapshot::Cluster cluster(const std::string& name, uint16_t port) {
  snapshot::Cluster c;
  c.name = name;
  c.endpoints = {{"127.0.0.1", port, 1}};
  return c;
}

std::shared_ptr<const snapshot::ProxyConfig> config(
    std::vector<std::shared_ptr<const snapshot::VirtualHost>> hosts,
    std::vector<snapshot::Cluster> clusters) {
  auto c = std::make_shared<snapshot::ProxyConfig>();
  snapshot::Listener l;
  l.name = "default/gw";
  l.port = 8080;
  l.virtual_hosts = std::move(hosts);
  c->listeners.push_back(std::move(l));
  c->clusters = std::move(clusters);
  return c;
}

TEST(BuildRuntime, SaysWhichClustersChangedAndSharesWhatDidNot) {
  stats::Registry registry(1);
  auto a = host("a", "default/up");
  auto first = build_runtime(
      config({a}, {cluster("default/up", 9000), cluster("default/other", 9001)}), registry);
  EXPECT_FALSE(first->cluster_names_unchanged);
  EXPECT_EQ(first->based_on_version, 0u);
  auto next_config = config({a}, {cluster("default/up", 9000), cluster("default/other", 9002)});
  const_cast<snapshot::ProxyConfig&>(*next_config).version = 2;
  auto second = build_runtime(next_config, registry, filters::builtin_registry(), first.get());
  EXPECT_TRUE(second->cluster_names_unchanged);
  EXPECT_EQ(second->based_on_version, first->config->version);
  ASSERT_EQ(second->cluster_unchanged.size(), 2u);
  EXPECT_EQ(second->cluster_unchanged[0], 1);  // equal: the same slot
  EXPECT_EQ(second->cluster_unchanged[1], 0);  // its endpoint moved
  EXPECT_EQ(second->cluster_stats[0], first->cluster_stats[0]);
  EXPECT_EQ(second->cluster_index, first->cluster_index);  // shared, not rebuilt
  EXPECT_EQ(second->virtual_hosts_reused, 1u);
  // A cluster added: names differ, nothing is taken for unchanged.
  auto third = build_runtime(config({a}, {cluster("default/up", 9000)}), registry,
                             filters::builtin_registry(), second.get());
  EXPECT_FALSE(third->cluster_names_unchanged);
  EXPECT_EQ(third->cluster_unchanged[0], 0);
  EXPECT_EQ(third->virtual_hosts_compiled, 1u);  // cluster positions moved: compiled again
}

TEST(BuildRuntime, ReusesTheCompiledVirtualHostsTheConfigurationsShare) {
  stats::Registry registry(1);
  auto a = host("a", "default/up"), b = host("b", "default/up");
  auto first = build_runtime(config({a, b}, {cluster("default/up", 9000)}), registry);
  EXPECT_EQ(first->virtual_hosts_compiled, 2u);
  EXPECT_EQ(first->virtual_hosts_reused, 0u);

  // b changed (a new VirtualHost), a is shared; an endpoint moved.
  auto b2 = host("b", "default/up");
  auto second = build_runtime(config({a, b2}, {cluster("default/up", 9100)}), registry,
                              filters::builtin_registry(), first.get());
  EXPECT_EQ(second->virtual_hosts_compiled, 1u);
  EXPECT_EQ(second->virtual_hosts_reused, 1u);
  const auto& l1 = first->listeners.at(0);
  const auto& l2 = second->listeners.at(0);
  EXPECT_EQ(l2.virtual_hosts.at(0), l1.virtual_hosts.at(0));  // the same compiled object
  EXPECT_NE(l2.virtual_hosts.at(1), l1.virtual_hosts.at(1));
  EXPECT_EQ(l2.virtual_hosts.at(0)->routes.at(0).cluster_index.at(0), 0);
  // Routing in the new runtime finds the reused host at its position.
  const auto* vh = l2.router->select_virtual_host("a.example.com");
  ASSERT_NE(vh, nullptr);
  EXPECT_EQ(l2.router->index_of(vh), 0u);
  EXPECT_EQ(l2.virtual_hosts.at(l2.router->index_of(vh))->host.get(), a.get());
}

TEST(BuildRuntime, CompilesAgainWhenTheClustersChange) {
  stats::Registry registry(1);
  auto a = host("a", "default/up");
  auto first = build_runtime(config({a}, {cluster("default/up", 9000)}), registry);
  // A cluster added before it: every cluster index may have moved.
  auto second =
      build_runtime(config({a}, {cluster("default/aaa", 9001), cluster("default/up", 9000)}),
                    registry, filters::builtin_registry(), first.get());
  EXPECT_EQ(second->virtual_hosts_reused, 0u);
  EXPECT_EQ(second->virtual_hosts_compiled, 1u);
  EXPECT_EQ(second->listeners.at(0).virtual_hosts.at(0)->routes.at(0).cluster_index.at(0), 1);
}

TEST(BuildRuntime, CompilesAgainWhenTheListenerFiltersChange) {
  stats::Registry registry(1);
  auto a = host("a", "default/up");
  auto first = build_runtime(config({a}, {cluster("default/up", 9000)}), registry);
  auto changed =
      std::make_shared<snapshot::ProxyConfig>(*config({a}, {cluster("default/up", 9000)}));
  changed->listeners[0].http.filters.push_back({"header_mutation", "{}"});
  auto second = build_runtime(changed, registry, filters::builtin_registry(), first.get());
  EXPECT_EQ(second->virtual_hosts_reused, 0u);
  EXPECT_EQ(second->virtual_hosts_compiled, 1u);
}

std::shared_ptr<const snapshot::ProxyConfig> with_clusters(
    std::initializer_list<const char*> names) {
  auto c = std::make_shared<snapshot::ProxyConfig>();
  for (const char* n : names) {
    snapshot::Cluster cl;
    cl.name = n;
    cl.endpoints = {{"127.0.0.1", 9, 1}};
    c->clusters.push_back(cl);
  }
  return c;
}

TEST(RuntimeTest, ClusterSlotLivesAsLongAsARuntimeUsesIt) {
  stats::Registry registry(1);
  auto first = build_runtime(with_clusters({"default/kept", "default/removed"}), registry);
  EXPECT_EQ(registry.cluster_slots(), 2u);
  first->cluster_stats[1]->row(0).rq_total.inc();
  // A reload without default/removed: the kept cluster keeps its slot (and its counts).
  auto second = build_runtime(with_clusters({"default/kept"}), registry);
  EXPECT_EQ(second->cluster_stats[0], first->cluster_stats[0]);
  EXPECT_EQ(registry.cluster_slots(), 2u);  // the first configuration is still in use
  EXPECT_NE(registry.render().find("upstream=\"default/removed\""), std::string::npos);
  first.reset();  // its last request finished
  EXPECT_EQ(registry.cluster_slots(), 1u);
  const std::string text = registry.render();
  EXPECT_EQ(text.find("default/removed"), std::string::npos) << text;
  EXPECT_NE(text.find("upstream=\"default/kept\""), std::string::npos);
}

}  // namespace
}  // namespace portico::proxy

namespace portico::proxy {
namespace {

TEST(BuildRuntime, CompilesTheSubsetsRoutesSelectOncePerCluster) {
  stats::Registry registry(1);
  snapshot::Cluster up = cluster("default/up", 9000);
  up.endpoints[0].labels = {{"version", "v2"}};
  up.endpoints.push_back({"127.0.0.2", 9000, 1, 0, {{"version", "v1"}}});
  const snapshot::Labels v2 = {{"version", "v2"}};
  auto with_subset = [&](const std::string& name, const snapshot::Labels& labels) {
    auto vh = std::make_shared<snapshot::VirtualHost>(*host(name, "default/up"));
    auto& fwd = std::get<snapshot::ForwardAction>(vh->routes[0].action);
    fwd.clusters[0].subset = labels;
    return std::shared_ptr<const snapshot::VirtualHost>(vh);
  };
  auto a = with_subset("a", v2);
  auto b = with_subset("b", v2);  // the same subset from another host: compiled once
  auto plain = host("c", "default/up");
  auto first = build_runtime(config({a, b, plain}, {up, cluster("default/other", 9001)}), registry);
  ASSERT_EQ(first->cluster_subsets.size(), 2u);
  ASSERT_NE(first->cluster_subsets[0], nullptr);
  EXPECT_EQ(first->cluster_subsets[1], nullptr);  // no route selects a subset of it
  ASSERT_EQ(first->cluster_subsets[0]->subsets.size(), 1u);
  const auto& def = first->cluster_subsets[0]->subsets[0];
  EXPECT_EQ(def.labels, v2);
  EXPECT_EQ(def.members, (std::vector<uint32_t>{0}));
  const auto& rr = first->listeners[0].virtual_hosts[0]->routes[0];
  ASSERT_EQ(rr.subset_key.size(), 1u);
  EXPECT_EQ(rr.subset_key[0], upstream::subset_key(v2));
  EXPECT_EQ(first->listeners[0].virtual_hosts[2]->routes[0].subset_key[0], 0u);

  // Nothing changed: the compiled subsets are shared; a new subset compiles the cluster's again.
  auto same = config({a, b, plain}, {up, cluster("default/other", 9001)});
  const_cast<snapshot::ProxyConfig&>(*same).version = 2;
  auto second = build_runtime(same, registry, filters::builtin_registry(), first.get());
  EXPECT_EQ(second->cluster_subsets[0], first->cluster_subsets[0]);
  auto more = config({a, with_subset("b", {{"version", "v1"}}), plain},
                     {up, cluster("default/other", 9001)});
  const_cast<snapshot::ProxyConfig&>(*more).version = 3;
  auto third = build_runtime(more, registry, filters::builtin_registry(), second.get());
  ASSERT_NE(third->cluster_subsets[0], second->cluster_subsets[0]);
  EXPECT_EQ(third->cluster_subsets[0]->subsets.size(), 2u);
}

}  // namespace
}  // namespace portico::proxy
