// Subset routing in the control plane: Upstream subsetSpec and consul.subsetTags decoded, static
// host metadata as endpoint labels, destination subsets decoded, checked against the Upstream's
// selectors (Rejected with the key named) and carried by the WeightedClusters.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "api/decode_helpers.h"
#include "control/pipeline.h"
#include "control/translate/translator.h"

namespace portico::control {
namespace {

using ::testing::AllOf;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
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

std::string all_errors(const std::string& yaml) {
  auto f = api::decode_file("u.yaml", yaml);
  std::string out;
  for (const auto& l : lines(f.errors))
    out += l + "\n";
  for (const auto& r : f.resources) {
    for (const auto& l : lines(r.diagnostics))
      out += l + "\n";
  }
  return out;
}

constexpr const char* kConfig = R"(kind: Gateway
metadata: {name: gw}
spec: {bindPort: 8080}
---
kind: Upstream
metadata: {name: web}
spec:
  subsetSpec:
    selectors:
      - keys: [version]
      - keys: [zone, version]
  static:
    hosts:
      - {addr: 10.0.0.1, port: 80, metadata: {envoy.lb: {version: v1, zone: a}}}
      - {addr: 10.0.0.2, port: 80, metadata: {envoy.lb: {version: v2, zone: b}}}
      - {addr: 10.0.0.3, port: 80}
---
kind: Upstream
metadata: {name: svc}
spec:
  consul:
    serviceName: svc
    dataCenters: [dc1, dc2]
    subsetTags: [v1, v2]
---
kind: VirtualService
metadata: {name: v}
spec:
  virtualHost:
    routes:
      - matchers: [{prefix: /v2}]
        routeAction: {single: {upstream: {name: web}, subset: {values: {version: v2}}}}
      - matchers: [{prefix: /canary}]
        routeAction:
          multi:
            destinations:
              - weight: 10
                destination: {upstream: {name: svc}, subset: {values: {tag_v2: "1"}}}
              - weight: 90
                destination: {upstream: {name: svc}, subset: {values: {tag_v2: "0", dc_dc1: "1"}}}
      - matchers: [{prefix: /}]
        routeAction: {single: {upstream: {name: web}}}
)";

TEST(ControlTranslateSubsets, LabelsTargetsAndDestinations) {
  BuildResult r = build_from_files({{"c.yaml", kConfig}}, 1);
  EXPECT_EQ(status(r, "Upstream", "default/web").state, State::kAccepted);
  EXPECT_EQ(status(r, "Upstream", "default/svc").state, State::kAccepted);
  const auto& v = status(r, "VirtualService", "default/v");
  EXPECT_EQ(v.state, State::kAccepted) << ::testing::PrintToString(lines(v.reasons));

  const auto& web = cluster(r, "default/web");
  ASSERT_EQ(web.endpoints.size(), 3u);
  EXPECT_EQ(web.endpoints[0].labels, (snapshot::Labels{{"version", "v1"}, {"zone", "a"}}));
  EXPECT_EQ(web.endpoints[1].labels, (snapshot::Labels{{"version", "v2"}, {"zone", "b"}}));
  EXPECT_TRUE(web.endpoints[2].labels.empty());

  const auto& svc = cluster(r, "default/svc");
  ASSERT_EQ(svc.discovery.size(), 2u);  // one target per data center
  for (const auto& t : svc.discovery) {
    EXPECT_EQ(t.subset_tags, (std::vector<std::string>{"v1", "v2"}));
    EXPECT_EQ(t.subset_datacenters, (std::vector<std::string>{"dc1", "dc2"}));
    EXPECT_THAT(t.key(), HasSubstr("~subsets#v1#v2@dc1@dc2"));
  }

  const auto& routes = r.config->listeners.at(0).virtual_hosts.at(0)->routes;
  ASSERT_EQ(routes.size(), 3u);
  const auto& single = std::get<snapshot::ForwardAction>(routes[0].action);
  ASSERT_EQ(single.clusters.size(), 1u);
  EXPECT_EQ(single.clusters[0].subset, (snapshot::Labels{{"version", "v2"}}));
  const auto& multi = std::get<snapshot::ForwardAction>(routes[1].action);
  ASSERT_EQ(multi.clusters.size(), 2u);
  EXPECT_EQ(multi.clusters[0].weight, 10u);
  EXPECT_EQ(multi.clusters[0].subset, (snapshot::Labels{{"tag_v2", "1"}}));
  EXPECT_EQ(multi.clusters[1].subset, (snapshot::Labels{{"dc_dc1", "1"}, {"tag_v2", "0"}}));
  EXPECT_TRUE(std::get<snapshot::ForwardAction>(routes[2].action).clusters[0].subset.empty());
}

TEST(ControlTranslateSubsets, KeyNotInTheSubsetSpecIsRejected) {
  std::string config = kConfig;
  const std::string from = "subset: {values: {version: v2}}";
  config.replace(config.find(from), from.size(), "subset: {values: {color: blue}}");
  BuildResult r = build_from_files({{"c.yaml", config}}, 1);
  const auto& v = status(r, "VirtualService", "default/v");
  EXPECT_EQ(v.state, State::kRejected);
  EXPECT_THAT(lines(v.reasons),
              ElementsAre(HasSubstr("spec.virtualHost.routes[0].routeAction.single.subset: subset "
                                    "key \"color\" is not in upstream default/web's subsetSpec "
                                    "(selectors: [version], [version, zone])")));
}

TEST(ControlTranslateSubsets, KeysFromTwoSelectorsAreRejected) {
  // tag_v2 and dc_dc1 are in one selector (the implicit {dc_*, tag_*}); version and a tag of
  // another Upstream's are not: every key must be in one selector of the destination's Upstream.
  std::string config = kConfig;
  const std::string from = "subset: {values: {version: v2}}";
  config.replace(config.find(from), from.size(), "subset: {values: {version: v2, tag_v2: \"1\"}}");
  BuildResult r = build_from_files({{"c.yaml", config}}, 1);
  EXPECT_EQ(status(r, "VirtualService", "default/v").state, State::kRejected);
  EXPECT_THAT(lines(status(r, "VirtualService", "default/v").reasons),
              ElementsAre(HasSubstr("subset key \"tag_v2\" is not in upstream default/web's")));
}

TEST(ControlTranslateSubsets, UpstreamWithoutSubsetSpecRejectsSubsets) {
  constexpr const char* kNoSpec = R"(kind: Gateway
metadata: {name: gw}
spec: {bindPort: 8080}
---
kind: Upstream
metadata: {name: plain}
spec:
  static: {hosts: [{addr: 10.0.0.1, port: 80}]}
---
kind: UpstreamGroup
metadata: {name: g}
spec:
  destinations:
    - weight: 1
      destination: {upstream: {name: plain}, subset: {values: {version: v1}}}
---
kind: VirtualService
metadata: {name: v}
spec:
  virtualHost:
    routes:
      - matchers: [{prefix: /}]
        routeAction: {single: {upstream: {name: plain}, subset: {values: {version: v1}}}}
)";
  BuildResult r = build_from_files({{"c.yaml", kNoSpec}}, 1);
  EXPECT_EQ(status(r, "VirtualService", "default/v").state, State::kRejected);
  EXPECT_THAT(lines(status(r, "VirtualService", "default/v").reasons),
              ElementsAre(HasSubstr("upstream default/plain has no subsetSpec")));
  EXPECT_EQ(status(r, "UpstreamGroup", "default/g").state, State::kRejected);
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

TEST(ControlTranslateSubsets, ChangingTheSubsetSpecChecksTheRoutesAgain) {
  // The incremental translation must not keep a route whose subset the Upstream no longer has.
  Translator t;
  auto resources = decode_each(kConfig);
  Translation first = t.translate(resources, 1, 0, /*allow_partial=*/true);
  ASSERT_NE(find(first, "VirtualService", "v"), nullptr);
  EXPECT_EQ(find(first, "VirtualService", "v")->state, State::kAccepted);
  std::string config = kConfig;
  const std::string from = "      - keys: [version]\n      - keys: [zone, version]\n";
  config.replace(config.find(from), from.size(), "      - keys: [zone]\n");
  auto changed = decode_each(config);
  for (size_t i = 0; i < resources.size(); ++i) {
    if (changed[i]->spec_json == resources[i]->spec_json) changed[i] = resources[i];
  }
  Translation second = t.translate(changed, 2, 0, /*allow_partial=*/true);
  ASSERT_NE(find(second, "VirtualService", "v"), nullptr);
  EXPECT_EQ(find(second, "VirtualService", "v")->state, State::kRejected);
}

TEST(ControlTranslateSubsets, DecodeErrorsNameTheField) {
  EXPECT_THAT(all_errors(R"(kind: Upstream
metadata: {name: u}
spec:
  subsetSpec: {selectors: [{keys: [], singleHostPerSubset: true}]}
  static: {hosts: [{addr: 10.0.0.1, port: 80, metadata: {envoy.lb: {a: b}, other: {c: d}}}]}
)"),
              AllOf(HasSubstr("spec.subsetSpec.selectors[0].keys: must list at least one key"),
                    HasSubstr("spec.subsetSpec.selectors[0].singleHostPerSubset"),
                    HasSubstr("spec.static.hosts[0].metadata.other")));
  EXPECT_THAT(all_errors(R"(kind: Upstream
metadata: {name: u}
spec:
  subsetSpec: {selectors: []}
  static: {hosts: [{addr: 10.0.0.1, port: 80}]}
)"),
              HasSubstr("spec.subsetSpec.selectors: must have at least one selector"));
  EXPECT_THAT(all_errors(R"(kind: Upstream
metadata: {name: u}
spec:
  subsetSpec: {selectors: [{keys: [a, a]}]}
  static: {hosts: [{addr: 10.0.0.1, port: 80}]}
)"),
              HasSubstr("spec.subsetSpec.selectors[0].keys[1]: \"a\" is listed twice"));
  EXPECT_THAT(all_errors(R"(kind: VirtualService
metadata: {name: v}
spec:
  virtualHost:
    routes:
      - matchers: [{prefix: /}]
        routeAction: {single: {upstream: {name: u}, subset: {values: {}, extra: 1}}}
)"),
              AllOf(HasSubstr("routeAction.single.subset.values: must name at least one label"),
                    HasSubstr("routeAction.single.subset.extra")));
  EXPECT_THAT(all_errors(R"(kind: VirtualService
metadata: {name: v}
spec:
  virtualHost:
    routes:
      - matchers: [{prefix: /}]
        routeAction: {single: {upstream: {name: u}, subset: {}}}
)"),
              HasSubstr("routeAction.single.subset.values: is required"));
  // consul.subsetTags is decoded; the fields still not implemented are rejected by name.
  EXPECT_THAT(all_errors(R"(kind: Upstream
metadata: {name: u}
spec:
  consul: {serviceName: s, subsetTags: [v1], instanceBlacklistTags: [x]}
)"),
              AllOf(HasSubstr("consul.instanceBlacklistTags is not supported"),
                    ::testing::Not(HasSubstr("consul.subsetTags"))));
  EXPECT_EQ(all_errors(R"(kind: Upstream
metadata: {name: u}
spec:
  consul: {serviceName: s, subsetTags: [v1, v2]}
)"),
            "");
}

}  // namespace
}  // namespace portico::control
