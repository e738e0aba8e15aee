// build_runtime (proxy/runtime.h): the stat slots a compiled configuration holds.
#include "proxy/runtime.h"

#include <gtest/gtest.h>

#include <memory>

namespace portico::proxy {
namespace {

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
