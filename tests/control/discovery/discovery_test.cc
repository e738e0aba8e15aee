#include "control/discovery/discovery.h"

#include <chrono>
#include <thread>

#include <gtest/gtest.h>

#include "control/discovery/dns.h"

namespace portico::control {
namespace {

using namespace std::chrono_literals;

snapshot::ProxyConfig config_with_names() {
  snapshot::ProxyConfig c;
  snapshot::Cluster a;
  a.name = "default/a";
  a.endpoints = {{"10.0.0.1", 80, 1, 0}};
  a.discovery = {{"dns", "api.test", 8080, 3, 0, {}, "", "", {}, {}},
                 {"dns", "backup.test", 9090, 1, 1, {}, "", "", {}, {}}};
  snapshot::Cluster b;
  b.name = "default/b";
  b.endpoints = {{"10.0.0.9", 80, 1, 0}};
  snapshot::Cluster c2;
  c2.name = "default/c";
  c2.discovery = {{"dns", "api.test", 81, 1, 0, {}, "", "", {}, {}}};
  c.clusters = std::vector<snapshot::Cluster>{a, b, c2};
  return c;
}

TEST(Discovery, KeysNameEverythingThatChangesTheAnswer) {
  snapshot::DiscoveryTarget t{"consul", "web", 0, 1, 0, {"v2", "canary"}, "dc2", "", {}, {}};
  EXPECT_EQ(t.key(), "consul:web@dc2#v2#canary");
  snapshot::DiscoveryTarget n{"nomad", "api", 0, 1, 0, {}, "", "prod", {}, {}};
  EXPECT_EQ(n.key(), "nomad:api/prod");
}

TEST(Discovery, TargetsAreDeduplicatedByKey) {
  auto c = config_with_names();
  auto targets = targets_of(c, "dns");
  ASSERT_EQ(targets.size(), 2u);
  EXPECT_EQ(targets[0].name, "api.test");
  EXPECT_EQ(targets[1].name, "backup.test");
  EXPECT_TRUE(targets_of(c, "consul").empty());
}

TEST(Discovery, FoundAddressesJoinTheClustersInPriorityOrder) {
  auto c = config_with_names();
  const auto before = c.clusters;
  DiscoveredMap found;
  found["dns:backup.test"] = {{{"10.1.0.1", 0, 1, 0}}, ""};
  found["dns:api.test"] = {{{"10.0.0.2", 0, 1, 0}, {"10.0.0.3", 0, 1, 0}}, ""};
  EXPECT_TRUE(apply_discovered(c, found));
  const auto& a = c.clusters[0];
  ASSERT_EQ(a.endpoints.size(), 4u);
  EXPECT_EQ(a.endpoints[0], (snapshot::Endpoint{"10.0.0.1", 80, 1, 0}));  // its own first
  EXPECT_EQ(a.endpoints[1], (snapshot::Endpoint{"10.0.0.2", 8080, 3, 0}));
  EXPECT_EQ(a.endpoints[2], (snapshot::Endpoint{"10.0.0.3", 8080, 3, 0}));
  EXPECT_EQ(a.endpoints[3], (snapshot::Endpoint{"10.1.0.1", 9090, 1, 1}));  // tier 1 last
  EXPECT_EQ(c.clusters[1], before[1]);                                      // no targets: as it was
  ASSERT_EQ(c.clusters[2].endpoints.size(), 2u);
  EXPECT_EQ(c.clusters[2].endpoints[0].port, 81);
  // The same answers again: nothing to change.
  auto again = config_with_names();
  apply_discovered(again, found);
  EXPECT_FALSE(apply_discovered(again, found));
}

TEST(Discovery, ConfigurationsWithoutTargetsStayShared) {
  snapshot::ProxyConfig c;
  snapshot::Cluster a;
  a.name = "default/a";
  a.endpoints = {{"10.0.0.1", 80, 1, 0}};
  c.clusters = std::vector<snapshot::Cluster>{a};
  snapshot::ProxyConfig copy = c;
  EXPECT_FALSE(apply_discovered(copy, {}));
  EXPECT_TRUE(copy.clusters.shares_with(c.clusters));
}

TEST(Discovery, ProblemsNameTheUpstreamAndTheName) {
  auto c = config_with_names();
  DiscoveredMap found;
  found["dns:api.test"] = {{}, "NXDOMAIN (the name does not exist)"};
  found["dns:backup.test"] = {{{"10.1.0.1", 0, 1, 0}},
                              "lookup failed: Timeout while contacting DNS servers"};
  auto problems = discovery_problems(c, found);
  ASSERT_EQ(problems.size(), 2u);
  ASSERT_EQ(problems["Upstream/default/a"].size(), 2u);
  EXPECT_EQ(problems["Upstream/default/a"][0],
            "dns name api.test: NXDOMAIN (the name does not exist) (no endpoints from it)");
  EXPECT_NE(problems["Upstream/default/a"][1].find("the addresses found before are kept"),
            std::string::npos);
  EXPECT_EQ(problems["Upstream/default/c"].size(), 1u);
  found.erase("dns:api.test");
  EXPECT_EQ(discovery_problems(c, found)["Upstream/default/c"][0],
            "dns name api.test: not resolved yet");
}

// The resolver, for real: "localhost" comes from /etc/hosts through c-ares, on its own thread.
TEST(DnsDiscovery, ResolvesOnItsThreadAndWakesTheLoop) {
  DnsDiscovery dns;
  std::atomic<int> wakes{0};
  dns.start([&] { ++wakes; });
  dns.watch({{"dns", "localhost", 80, 1, 0, {}, "", "", {}, {}},
             {"consul", "ignored", 80, 1, 0, {}, "", "", {}, {}}});
  std::this_thread::sleep_for(50ms);
  EXPECT_EQ(wakes.load(), 0) << "no lookup before configure()";
  dns.configure({});
  std::optional<DiscoveredMap> found;
  for (int i = 0; i < 200 && !found; ++i) {
    std::this_thread::sleep_for(10ms);
    found = dns.poll();
  }
  ASSERT_TRUE(found.has_value());
  EXPECT_GE(wakes.load(), 1);
  ASSERT_EQ(found->count("dns:localhost"), 1u);
  const auto& d = found->at("dns:localhost");
  EXPECT_TRUE(d.problem.empty()) << d.problem;
  bool loopback = false;
  for (const auto& e : d.endpoints)
    loopback = loopback || e.address == "127.0.0.1" || e.address == "::1";
  EXPECT_TRUE(loopback);
  EXPECT_FALSE(dns.poll().has_value()) << "nothing new since";
  EXPECT_EQ(dns.counters().names, 1u);
  // Forgotten when no longer watched.
  dns.watch({});
  auto after = dns.poll();
  ASSERT_TRUE(after.has_value());
  EXPECT_TRUE(after->empty());
}

}  // namespace
}  // namespace portico::control
