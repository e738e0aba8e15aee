#include "control/discovery/consul_discovery.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "api/decode_helpers.h"
#include "control/pipeline.h"

namespace portico::control {
namespace {

using ::testing::HasSubstr;

constexpr const char* kAnswer = R"([
  {"Node": {"Node": "n1", "Address": "10.0.0.1"},
   "Service": {"ID": "web-1", "Service": "web", "Tags": ["v2", "canary"], "Address": "", "Port": 8080},
   "Checks": []},
  {"Node": {"Node": "n2", "Address": "10.0.0.2"},
   "Service": {"ID": "web-2", "Service": "web", "Tags": ["v2"], "Address": "192.168.1.5", "Port": 9090},
   "Checks": []},
  {"Node": {"Node": "n3", "Address": "10.0.0.3"},
   "Service": {"ID": "web-3", "Service": "web", "Tags": null, "Port": 80},
   "Checks": []}
])";

TEST(ConsulDiscovery, HealthAnswerAddressesAndPorts) {
  auto r = parse_health_service(kAnswer, {});
  ASSERT_TRUE(r) << r.error().message;
  ASSERT_EQ(r.value().size(), 3u);
  // Sorted by address; Service.Address wins over Node.Address, which is the fallback.
  EXPECT_EQ(r.value()[0].address, "10.0.0.1");
  EXPECT_EQ(r.value()[0].port, 8080);
  EXPECT_EQ(r.value()[1].address, "10.0.0.3");
  EXPECT_EQ(r.value()[1].port, 80);
  EXPECT_EQ(r.value()[2].address, "192.168.1.5");
  EXPECT_EQ(r.value()[2].port, 9090);
}

TEST(ConsulDiscovery, InstancesMustCarryEveryTag) {
  auto v2 = parse_health_service(kAnswer, {"v2"});
  ASSERT_TRUE(v2);
  EXPECT_EQ(v2.value().size(), 2u);
  auto canary = parse_health_service(kAnswer, {"v2", "canary"});
  ASSERT_TRUE(canary);
  ASSERT_EQ(canary.value().size(), 1u);
  EXPECT_EQ(canary.value()[0].address, "10.0.0.1");
  auto none = parse_health_service(kAnswer, {"v3"});
  ASSERT_TRUE(none);
  EXPECT_TRUE(none.value().empty());
}

TEST(ConsulDiscovery, EmptyAnswerIsNoInstance) {
  auto r = parse_health_service("[]", {});
  ASSERT_TRUE(r);
  EXPECT_TRUE(r.value().empty());
}

TEST(ConsulDiscovery, GarbageIsAnError) {
  EXPECT_THAT(parse_health_service("<html>", {}).error().message, HasSubstr("not JSON"));
  EXPECT_THAT(parse_health_service("{}", {}).error().message, HasSubstr("not a JSON array"));
  EXPECT_THAT(parse_health_service(R"([{"Node": {"Address": "1.2.3.4"}}])", {}).error().message,
              HasSubstr("no Service"));
  EXPECT_THAT(
      parse_health_service(R"([{"Node": {"Address": "1.2.3.4"}, "Service": {"Port": 0}}])", {})
          .error()
          .message,
      HasSubstr("Service.Port"));
  EXPECT_THAT(parse_health_service(R"([{"Service": {"Port": 80}}])", {}).error().message,
              HasSubstr("Node.Address"));
  EXPECT_THAT(parse_health_service(
                  R"([{"Node": {"Address": "1.2.3.4"}, "Service": {"Port": 80, "Tags": "x"}}])", {})
                  .error()
                  .message,
              HasSubstr("Service.Tags"));
}

TEST(ConsulDiscovery, QueryTarget) {
  ConsulDiscoveryOptions o;
  o.endpoint.datacenter = "dc1";
  o.wait = std::chrono::milliseconds(5000);
  snapshot::DiscoveryTarget t{"consul", "web api", 0, 1, 0, {"v2", "a&b"}, "", "", {}, {}};
  EXPECT_EQ(health_query_target(o, t, 0),
            "/v1/health/service/web%20api?passing&dc=dc1&tag=v2&tag=a%26b");
  t.datacenter = "dc2";
  t.tags.clear();
  EXPECT_EQ(health_query_target(o, t, 42),
            "/v1/health/service/web%20api?passing&dc=dc2&index=42&wait=5000ms");
  o.consistency = consul::Consistency::kStale;
  o.endpoint.datacenter.clear();
  t.datacenter.clear();
  EXPECT_EQ(health_query_target(o, t, 0), "/v1/health/service/web%20api?passing&stale");
}

TEST(ConsulDiscovery, UnconfiguredSourceQueriesNothing) {
  ConsulDiscovery d;
  d.start([] {});
  d.watch({{"consul", "web", 0, 1, 0, {}, "", "", {}, {}},
           {"dns", "x.test", 80, 1, 0, {}, "", "", {}, {}}});
  EXPECT_FALSE(d.wait_first(std::chrono::milliseconds(10)));
  EXPECT_EQ(d.counters().services, 1u);
  EXPECT_EQ(d.counters().queries, 0u);
  EXPECT_FALSE(d.poll());
}

TEST(ConsulDiscovery, UnreachableAgentIsAProblem) {
  ConsulDiscovery d;
  d.start([] {});
  ConsulDiscoveryOptions o;
  o.endpoint.url.host = "127.0.0.1";
  o.endpoint.url.port = 1;  // nothing listens there
  d.configure(o);
  d.watch({{"consul", "web", 0, 1, 0, {}, "", "", {}, {}}});
  EXPECT_TRUE(d.wait_first(std::chrono::milliseconds(3000)));
  auto found = d.poll();
  ASSERT_TRUE(found);
  ASSERT_EQ(found->count("consul:web"), 1u);
  EXPECT_THAT(found->at("consul:web").problem, HasSubstr("Consul unreachable"));
  EXPECT_TRUE(found->at("consul:web").endpoints.empty());
  EXPECT_GE(d.counters().failures, 1u);
  d.watch({});
  EXPECT_EQ(d.counters().services, 0u);
}

TEST(ConsulDiscovery, UpstreamDecodesAndTranslatesToTargets) {
  BuildResult r = build_from_files({{"c.yaml", R"(kind: Upstream
metadata: {name: web}
spec:
  consul:
    serviceName: web
    serviceTags: [v2]
    instanceTags: [v2, canary]
    dataCenters: [dc1, dc2]
)"}},
                                   1);
  ASSERT_TRUE(r.config);
  const snapshot::Cluster* c = nullptr;
  for (const auto& cl : r.config->clusters)
    if (cl.name == "default/web") c = &cl;
  ASSERT_NE(c, nullptr);
  ASSERT_EQ(c->discovery.size(), 2u);
  // The data centers listed also label the instances (dc_dc1, dc_dc2: subset routing).
  EXPECT_EQ(c->discovery[0].key(), "consul:web@dc1#v2#canary~subsets@dc1@dc2");
  EXPECT_EQ(c->discovery[1].key(), "consul:web@dc2#v2#canary~subsets@dc1@dc2");
  EXPECT_EQ(c->discovery[0].port, 0);
  EXPECT_TRUE(c->endpoints.empty());
}

TEST(ConsulDiscovery, UpstreamRejectsWhatIsNotImplemented) {
  auto f = api::decode_file("u.yaml", R"(kind: Upstream
metadata: {name: web}
spec:
  static: {hosts: [{addr: 10.0.0.1, port: 80}]}
  consul:
    serviceName: ""
    instanceBlacklistTags: [a]
    connectEnabled: true
    dataCenters: [""]
    other: 1
)");
  std::string all;
  for (const auto& r : f.resources)
    for (const auto& d : r.diagnostics)
      all += d.to_string() + "\n";
  EXPECT_THAT(all, HasSubstr("spec.consul.serviceName: must not be empty"));
  EXPECT_THAT(all,
              HasSubstr("spec.consul.instanceBlacklistTags: consul.instanceBlacklistTags is not "
                        "supported"));
  EXPECT_THAT(all, HasSubstr("spec.consul.connectEnabled"));
  EXPECT_THAT(all, HasSubstr("spec.consul.dataCenters[0]: must not be empty"));
  EXPECT_THAT(all, HasSubstr("spec.consul.other"));
  EXPECT_THAT(all, HasSubstr("either static or consul"));
  auto g =
      api::decode_file("u.yaml", "kind: Upstream\nmetadata: {name: web}\nspec:\n  consul: {}\n");
  std::string missing;
  for (const auto& r : g.resources)
    for (const auto& d : r.diagnostics)
      missing += d.to_string() + "\n";
  EXPECT_THAT(missing, HasSubstr("serviceName"));
}

}  // namespace
}  // namespace portico::control

namespace portico::control {
namespace {

TEST(ConsulDiscovery, SubsetLabelsInGloosConvention) {
  // Instances of data center dc2 (Node.Datacenter), labelled by the target's subset tags and
  // data centers: "tag_<t>" and "dc_<d>", "1" or "0".
  constexpr const char* kDc2 = R"([
    {"Node": {"Node": "n1", "Address": "10.0.0.1", "Datacenter": "dc2"},
     "Service": {"Tags": ["v2", "canary"], "Port": 8080}},
    {"Node": {"Node": "n2", "Address": "10.0.0.2"},
     "Service": {"Tags": ["v1"], "Port": 8080}}
  ])";
  snapshot::DiscoveryTarget t;
  t.source = "consul";
  t.name = "web";
  t.datacenter = "dc1";  // what was asked for: the fallback when a node does not say
  t.subset_tags = {"v2", "v1"};
  t.subset_datacenters = {"dc1", "dc2"};
  auto r = parse_health_service(kDc2, {}, &t);
  ASSERT_TRUE(r) << r.error().message;
  ASSERT_EQ(r.value().size(), 2u);
  EXPECT_EQ(r.value()[0].labels,
            (snapshot::Labels{{"dc_dc1", "0"}, {"dc_dc2", "1"}, {"tag_v1", "0"}, {"tag_v2", "1"}}));
  EXPECT_EQ(r.value()[1].labels,
            (snapshot::Labels{{"dc_dc1", "1"}, {"dc_dc2", "0"}, {"tag_v1", "1"}, {"tag_v2", "0"}}));
  // Without subsets: no labels (the endpoints are what they were).
  auto plain = parse_health_service(kDc2, {});
  ASSERT_TRUE(plain);
  EXPECT_TRUE(plain.value()[0].labels.empty());
}

}  // namespace
}  // namespace portico::control
