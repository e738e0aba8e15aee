#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "api/decode_helpers.h"
#include "control/pipeline.h"
#include "control/translate/translator.h"

namespace portico::control {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;

using api::test::lines;

const ResourceStatus& status(const BuildResult& r, const std::string& kind,
                             const std::string& ns_name) {
  for (const auto& s : r.resources) {
    if (s.kind == kind && s.ns + "/" + s.name == ns_name) return s;
  }
  static ResourceStatus none;
  ADD_FAILURE() << "no status for " << kind << " " << ns_name;
  return none;
}

const snapshot::Cluster& cluster(const BuildResult& r, const std::string& name) {
  for (const auto& c : r.config->clusters)
    if (c.name == name) return c;
  static snapshot::Cluster none;
  ADD_FAILURE() << "no cluster " << name;
  return none;
}

constexpr const char* kConfig = R"(kind: Gateway
metadata: {name: gw}
spec: {bindPort: 8080}
---
kind: Upstream
metadata: {name: ring}
spec:
  static: {hosts: [{addr: 10.0.0.1, port: 80}, {addr: 10.0.0.2, port: 80, weight: 2}]}
  loadBalancerConfig:
    healthyPanicThreshold: 20
    ringHash: {ringHashConfig: {minimumRingSize: 256, maximumRingSize: 4096}}
  failover:
    prioritizedLocalities:
      - localityEndpoints:
          - locality: {region: eu}
            lbEndpoints: [{address: 10.1.0.1, port: 81, loadBalancingWeight: 4}]
      - localityEndpoints:
          - lbEndpoints: [{address: 10.2.0.1, port: 82}]
---
kind: Upstream
metadata: {name: lr}
spec:
  static: {hosts: [{addr: 10.0.0.3, port: 80}]}
  loadBalancerConfig: {leastRequest: {choiceCount: 4}}
---
kind: Upstream
metadata: {name: mg}
spec:
  static: {hosts: [{addr: 10.0.0.4, port: 80}]}
  loadBalancerConfig: {maglev: {}}
---
kind: VirtualService
metadata: {name: v}
spec:
  virtualHost:
    routes:
      - matchers: [{prefix: /ring}]
        routeAction: {single: {upstream: {name: ring}}}
        options:
          lbHash: {hashPolicies: [{header: x-user, terminal: true}, {sourceIp: true}]}
      - matchers: [{prefix: /maglev}]
        routeAction: {single: {upstream: {name: mg}}}
        options:
          lbHash: {hashPolicies: [{cookie: {name: session}}]}
      - matchers: [{prefix: /lr}]
        routeAction: {single: {upstream: {name: lr}}}
        options:
          lbHash: {hashPolicies: [{header: x-user}]}
)";

TEST(ControlTranslateLb, PoliciesFailoverAndHashPolicies) {
  BuildResult r = build_from_files({{"c.yaml", kConfig}}, 1);
  EXPECT_EQ(status(r, "Upstream", "default/ring").state, State::kAccepted);
  const auto& ring = cluster(r, "default/ring");
  EXPECT_EQ(ring.lb, snapshot::LbPolicy::kRingHash);
  EXPECT_EQ(ring.ring_min_size, 256u);
  EXPECT_EQ(ring.ring_max_size, 4096u);
  EXPECT_EQ(ring.healthy_panic_threshold, 20u);
  ASSERT_EQ(ring.endpoints.size(), 4u);
  EXPECT_EQ(ring.endpoints[0].priority, 0u);
  EXPECT_EQ(ring.endpoints[1].priority, 0u);
  EXPECT_EQ(ring.endpoints[2].address, "10.1.0.1");
  EXPECT_EQ(ring.endpoints[2].priority, 1u);
  EXPECT_EQ(ring.endpoints[2].weight, 4u);
  EXPECT_EQ(ring.endpoints[3].priority, 2u);
  const auto& lr = cluster(r, "default/lr");
  EXPECT_EQ(lr.lb, snapshot::LbPolicy::kLeastRequest);
  EXPECT_EQ(lr.choice_count, 4u);
  EXPECT_EQ(lr.healthy_panic_threshold, 50u);
  EXPECT_EQ(cluster(r, "default/mg").lb, snapshot::LbPolicy::kMaglev);

  const auto& routes = r.config->listeners.at(0).virtual_hosts.at(0)->routes;
  ASSERT_EQ(routes.size(), 3u);
  const auto& hp = routes[0].options.hash_policies;
  ASSERT_EQ(hp.size(), 2u);
  EXPECT_EQ(hp[0].kind, snapshot::HashPolicy::Kind::kHeader);
  EXPECT_EQ(hp[0].name, "x-user");
  EXPECT_TRUE(hp[0].terminal);
  EXPECT_EQ(hp[1].kind, snapshot::HashPolicy::Kind::kSourceIp);
  ASSERT_EQ(routes[1].options.hash_policies.size(), 1u);
  EXPECT_EQ(routes[1].options.hash_policies[0].kind, snapshot::HashPolicy::Kind::kCookie);
  EXPECT_EQ(routes[1].options.hash_policies[0].name, "session");

  // Hash policies on a least-request upstream: a warning (they have no effect), still served.
  const auto& v = status(r, "VirtualService", "default/v");
  EXPECT_EQ(v.state, State::kWarning);
  EXPECT_THAT(lines(v.reasons),
              ElementsAre("c.yaml:48:19: warning: spec.virtualHost.routes[2].options.lbHash: hash "
                          "policies have no effect: upstream default/lr does not use ringHash or "
                          "maglev"));
}

std::vector<ResourcePtr> decode_each(const std::string& config) {
  std::vector<ResourcePtr> out;
  size_t start = 0;
  int n = 0;
  while (start < config.size()) {
    size_t end = config.find("---\n", start);
    if (end == std::string::npos) end = config.size();
    api::DecodedFile f =
        api::decode_file("d" + std::to_string(n++) + ".yaml", config.substr(start, end - start));
    EXPECT_EQ(f.resources.size(), 1u);
    out.push_back(std::make_shared<api::Resource>(std::move(f.resources.at(0))));
    start = end == config.size() ? end : end + 4;
  }
  return out;
}

const ResourceStatus* find(const Translation& t, const std::string& kind, const std::string& name) {
  for (const auto& s : t.statuses)
    if (s.kind == kind && s.name == name) return &s;
  return nullptr;
}

TEST(ControlTranslateLb, ChangingTheUpstreamPolicyUpdatesTheWarning) {
  // An incremental translation must see the Upstream's policy change: the route's warning goes.
  Translator t;
  auto resources = decode_each(kConfig);
  Translation first = t.translate(resources, 1, 0, /*allow_partial=*/true);
  ASSERT_NE(find(first, "VirtualService", "v"), nullptr);
  EXPECT_EQ(find(first, "VirtualService", "v")->state, State::kWarning);
  std::string config = kConfig;
  const std::string from = "loadBalancerConfig: {leastRequest: {choiceCount: 4}}";
  config.replace(config.find(from), from.size(), "loadBalancerConfig: {ringHash: {}}");
  auto changed = decode_each(config);
  for (size_t i = 0; i < resources.size(); ++i) {
    if (changed[i]->spec_json == resources[i]->spec_json) changed[i] = resources[i];
  }
  Translation second = t.translate(changed, 2, 0, /*allow_partial=*/true);
  ASSERT_NE(find(second, "VirtualService", "v"), nullptr);
  EXPECT_EQ(find(second, "VirtualService", "v")->state, State::kAccepted);
  EXPECT_EQ(find(second, "Upstream", "lr")->state, State::kAccepted);
}

}  // namespace
}  // namespace portico::control
