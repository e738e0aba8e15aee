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

// Bulk mode's lists: which services changed between two /v1/health/state/any answers.
constexpr const char* kChecks = R"([
  {"Node": "n1", "CheckID": "serfHealth", "Status": "passing", "ServiceID": "", "ServiceName": "",
   "ModifyIndex": 3},
  {"Node": "n1", "CheckID": "service:web-1", "Status": "passing", "ServiceID": "web-1",
   "ServiceName": "web", "ModifyIndex": 5},
  {"Node": "n2", "CheckID": "service:api-1", "Status": "passing", "ServiceID": "api-1",
   "ServiceName": "api", "ModifyIndex": 6},
  {"Node": "n2", "CheckID": "serfHealth", "Status": "passing", "ModifyIndex": 2}
])";

TEST(ConsulBulk, ChecksFingerprintsTellWhichServicesChanged) {
  auto before = parse_checks(kChecks);
  ASSERT_TRUE(before) << before.error().message;
  EXPECT_EQ(before.value().by_service.size(), 2u);
  EXPECT_EQ(before.value().by_node.size(), 2u);
  // The same checks in another order: nothing changed.
  auto reordered = parse_checks(R"([
    {"Node": "n2", "CheckID": "serfHealth", "Status": "passing", "ModifyIndex": 2},
    {"Node": "n2", "CheckID": "service:api-1", "Status": "passing", "ServiceID": "api-1",
     "ServiceName": "api", "ModifyIndex": 6},
    {"Node": "n1", "CheckID": "service:web-1", "Status": "passing", "ServiceID": "web-1",
     "ServiceName": "web", "ModifyIndex": 5},
    {"Node": "n1", "CheckID": "serfHealth", "Status": "passing", "ServiceID": "", "ServiceName": "",
     "ModifyIndex": 3}])");
  ASSERT_TRUE(reordered);
  EXPECT_TRUE(changed_services(before.value(), reordered.value()).empty());
  // web's check critical; a new service db; api's node failing (api is concerned through it).
  std::string text = kChecks;
  text.replace(text.find(R"("Status": "passing", "ServiceID": "web-1")"),
               std::string(R"("Status": "passing")").size(), R"("Status": "critical")");
  auto web = parse_checks(text);
  ASSERT_TRUE(web);
  EXPECT_EQ(changed_services(before.value(), web.value()), (std::set<std::string>{"web"}));
  auto node = parse_checks(R"([
    {"Node": "n1", "CheckID": "serfHealth", "Status": "passing", "ModifyIndex": 3},
    {"Node": "n1", "CheckID": "service:web-1", "Status": "passing", "ServiceID": "web-1",
     "ServiceName": "web", "ModifyIndex": 5},
    {"Node": "n2", "CheckID": "service:api-1", "Status": "passing", "ServiceID": "api-1",
     "ServiceName": "api", "ModifyIndex": 6},
    {"Node": "n2", "CheckID": "serfHealth", "Status": "critical", "ModifyIndex": 9},
    {"Node": "n2", "CheckID": "service:db-1", "Status": "passing", "ServiceID": "db-1",
     "ServiceName": "db", "ModifyIndex": 9}])");
  ASSERT_TRUE(node);
  EXPECT_EQ(changed_services(before.value(), node.value()), (std::set<std::string>{"api", "db"}));
  // A service whose checks are gone (deregistered) changed too.
  EXPECT_EQ(changed_services(node.value(), before.value()), (std::set<std::string>{"api", "db"}));
}

TEST(ConsulBulk, ListsThatAreNotConsulsAreErrors) {
  EXPECT_THAT(parse_checks("<html>").error().message, HasSubstr("not JSON"));
  EXPECT_THAT(parse_checks("{}").error().message, HasSubstr("not a JSON array"));
  EXPECT_THAT(
      parse_checks(R"([{"Node": "n1", "CheckID": "c", "Status": "passing"}])").error().message,
      HasSubstr("ModifyIndex"));
  EXPECT_THAT(
      parse_checks(R"([{"CheckID": "c", "Status": "passing", "ModifyIndex": 1}])").error().message,
      HasSubstr("check 0"));
  auto services = parse_catalog_services(R"({"web": ["v2", "v1", "v2"], "consul": [], "x": null})");
  ASSERT_TRUE(services) << services.error().message;
  EXPECT_EQ(services.value().at("web"), (std::vector<std::string>{"v1", "v2"}));
  EXPECT_TRUE(services.value().at("x").empty());
  EXPECT_THAT(parse_catalog_services("[]").error().message, HasSubstr("not a JSON object"));
  EXPECT_THAT(parse_catalog_services(R"({"web": "v1"})").error().message, HasSubstr("web"));
  EXPECT_THAT(parse_catalog_services(R"({"web": [1]})").error().message, HasSubstr("not a string"));
}

TEST(ConsulBulk, NodeListingsFingerprintEveryInstance) {
  auto nodes = parse_catalog_nodes(R"([{"Node": "n1", "Address": "10.0.0.1"}, {"Node": "n2"}])");
  ASSERT_TRUE(nodes) << nodes.error().message;
  EXPECT_EQ(nodes.value(), (std::vector<std::string>{"n1", "n2"}));
  EXPECT_FALSE(parse_catalog_nodes(R"([{"Address": "x"}])"));
  constexpr const char* kNode = R"({"Node": {"Node": "n1", "Address": "10.0.0.1"},
    "Services": {"web-1": {"ID": "web-1", "Service": "web", "Address": "10.1.1.1", "Port": 80,
                           "ModifyIndex": 7},
                 "api-1": {"ID": "api-1", "Service": "api", "Address": "", "Port": 81,
                           "ModifyIndex": 8}}})";
  std::map<std::string, uint64_t> before, after, moved;
  ASSERT_TRUE(add_node_services(kNode, &before));
  EXPECT_EQ(before.size(), 2u);
  std::string text = kNode;
  text.replace(text.find("10.1.1.1"), 8, "10.1.1.2");
  ASSERT_TRUE(add_node_services(text, &after));
  EXPECT_NE(after.at("web"), before.at("web"));  // the address moved
  EXPECT_EQ(after.at("api"), before.at("api"));
  // The node's own address is every instance's (Service.Address empty: Node.Address).
  text = kNode;
  text.replace(text.find("10.0.0.1"), 8, "10.0.0.9");
  ASSERT_TRUE(add_node_services(text, &moved));
  EXPECT_NE(moved.at("api"), before.at("api"));
  std::map<std::string, uint64_t> none;
  auto gone = add_node_services("null", &none);
  ASSERT_TRUE(gone);
  EXPECT_FALSE(gone.value());
  EXPECT_TRUE(none.empty());
  EXPECT_FALSE(add_node_services(R"({"Node": {}})", &none));
  EXPECT_FALSE(add_node_services(R"({"Node": {"Node": "n"}, "Services": {"x": {}}})", &none));
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
