// kube_service_endpoints: a Service's port and its EndpointSlices make a target's endpoints (ready
// only, the slice port named as the Service port, IPv4/IPv6 slices only); the list/watch runs
// against the Kubernetes double in tests/integration/test_kube_discovery.py.
#include "control/discovery/kube_discovery.h"

#include <gtest/gtest.h>

namespace portico::control {
namespace {

using nlohmann::json;

snapshot::DiscoveryTarget target(uint16_t port) {
  snapshot::DiscoveryTarget t;
  t.source = "kube";
  t.name = "web:" + std::to_string(port);
  t.ns = "shop";
  t.port = port;
  return t;
}

json service() {
  return json::parse(R"({"metadata": {"name": "web", "namespace": "shop"},
    "spec": {"ports": [{"name": "http", "port": 80, "targetPort": "http"},
                       {"name": "grpc", "port": 9000, "targetPort": 9001}]}})");
}

json slice(const std::string& ns, const std::string& svc, const std::string& type,
           const json& endpoints) {
  return {
      {"metadata",
       {{"name", svc + "-x"},
        {"namespace", ns},
        {"labels", {{"kubernetes.io/service-name", svc}}}}},
      {"addressType", type},
      {"ports", json::parse(R"([{"name": "http", "port": 8080}, {"name": "grpc", "port": 9001}])")},
      {"endpoints", endpoints}};
}

std::vector<std::string> addresses(const Discovered& d) {
  std::vector<std::string> out;
  for (const auto& e : d.endpoints)
    out.push_back(e.address + ":" + std::to_string(e.port));
  return out;
}

TEST(KubeDiscoveryTest, ReadyEndpointsAtTheNamedPort) {
  json svc = service();
  json a = slice("shop", "web", "IPv4", json::parse(R"([
      {"addresses": ["10.0.0.2"], "conditions": {"ready": true}},
      {"addresses": ["10.0.0.1"]},
      {"addresses": ["10.0.0.3"], "conditions": {"ready": false, "serving": true}}])"));
  json b = slice("shop", "web", "IPv6", json::parse(R"([{"addresses": ["fd00::1"]}])"));
  json other_ns = slice("prod", "web", "IPv4", json::parse(R"([{"addresses": ["10.9.9.9"]}])"));
  json other_svc = slice("shop", "api", "IPv4", json::parse(R"([{"addresses": ["10.8.8.8"]}])"));
  json fqdn = slice("shop", "web", "FQDN", json::parse(R"([{"addresses": ["db.example"]}])"));
  std::vector<const json*> all = {&a, &b, &other_ns, &other_svc, &fqdn, &a};
  Discovered d = kube_service_endpoints(target(80), &svc, all);
  EXPECT_TRUE(d.problem.empty()) << d.problem;
  EXPECT_EQ(addresses(d),
            (std::vector<std::string>{"10.0.0.1:8080", "10.0.0.2:8080", "fd00::1:8080"}));
  Discovered g = kube_service_endpoints(target(9000), &svc, all);
  EXPECT_EQ(addresses(g),
            (std::vector<std::string>{"10.0.0.1:9001", "10.0.0.2:9001", "fd00::1:9001"}));
}

TEST(KubeDiscoveryTest, Problems) {
  json svc = service();
  EXPECT_EQ(kube_service_endpoints(target(80), nullptr, {}).problem,
            "Service shop/web not found in Kubernetes");
  EXPECT_EQ(kube_service_endpoints(target(81), &svc, {}).problem,
            "Service shop/web has no port 81 (ports: 80, 9000)");
  json none_ready = slice("shop", "web", "IPv4",
                          json::parse(R"([{"addresses": ["10.0.0.3"], "conditions": {"ready":
                          false}}])"));
  Discovered d = kube_service_endpoints(target(80), &svc, {&none_ready});
  EXPECT_TRUE(d.endpoints.empty());
  EXPECT_EQ(d.problem, "Service shop/web port 80: no ready endpoints");
}

TEST(KubeDiscoveryTest, TargetsOfOnePortEach) {
  // Two ports of one Service are two targets (the key carries the port).
  EXPECT_NE(target(80).key(), target(9000).key());
  EXPECT_EQ(target(80).key(), "kube:web:80/shop");
  EXPECT_EQ(kube_service_name(target(80)), "web");
}

}  // namespace
}  // namespace portico::control
