#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "snapshot/proxy_config.h"

namespace portico::snapshot {
namespace {

ProxyConfig sample() {
  ProxyConfig c;
  c.version = 3;
  c.created_unix_ms = 1700000000000;
  Listener l;
  l.name = "default/gw";
  l.port = 8080;
  VirtualHost vh;
  vh.name = "default/shop";
  vh.domains = {"*"};
  Route fwd;
  fwd.name = "default/shop/api";
  fwd.match.kind = PathMatchKind::kRegex;
  fwd.match.path = "/api/.*";
  fwd.match.regex = Regex{"/api/.*", true};
  HeaderMatcher h;
  h.name = "x-debug";
  h.present_only = true;
  h.invert = true;
  fwd.match.headers.push_back(h);
  fwd.match.query.push_back(QueryMatcher{"q", "1", std::nullopt, false});
  fwd.match.methods = {"GET"};
  fwd.action = ForwardAction{{{"default/a", 3}, {"default/b", 1}}, 4};
  fwd.options.timeout = Millis(1500);
  fwd.options.request_headers.add.push_back({"X-Added", "1", false});
  fwd.options.response_headers.remove = {"server"};
  vh.routes.push_back(fwd);
  Route redirect;
  redirect.name = "default/shop/1";
  RedirectAction ra;
  ra.path = "/new";
  ra.code = 302;
  redirect.action = ra;
  vh.routes.push_back(redirect);
  Route direct;
  direct.name = "default/shop/2";
  direct.action = DirectResponseAction{404, "nope\xff", "text/plain"};
  vh.routes.push_back(direct);
  l.virtual_hosts.push_back(std::make_shared<VirtualHost>(vh));
  c.listeners.push_back(l);
  Cluster cl;
  cl.name = "default/a";
  cl.lb = LbPolicy::kLeastRequest;
  cl.endpoints.push_back({"10.0.0.1", 80, 2});
  c.clusters.push_back(cl);
  return c;
}

TEST(SnapshotJson, DumpsEveryPart) {
  std::string text = to_json(sample(), false);
  auto j = nlohmann::json::parse(text);
  EXPECT_EQ(j["version"], 3);
  EXPECT_EQ(j["created_unix_ms"], 1700000000000);
  const auto& l = j["listeners"][0];
  EXPECT_EQ(l["name"], "default/gw");
  EXPECT_EQ(l["address"], "0.0.0.0");
  EXPECT_EQ(l["port"], 8080);
  EXPECT_EQ(l["http"]["request_header_timeout_ms"], 10000);
  EXPECT_EQ(l["http"]["generate_request_id"], true);
  const auto& routes = l["virtual_hosts"][0]["routes"];
  ASSERT_EQ(routes.size(), 3u);
  EXPECT_EQ(routes[0]["match"]["regex"], "/api/.*");
  EXPECT_EQ(routes[0]["match"]["headers"][0],
            nlohmann::json({{"name", "x-debug"}, {"present", true}, {"invert", true}}));
  EXPECT_EQ(routes[0]["match"]["query"][0], nlohmann::json({{"name", "q"}, {"value", "1"}}));
  EXPECT_EQ(routes[0]["match"]["methods"], nlohmann::json({"GET"}));
  EXPECT_EQ(routes[0]["forward"]["total_weight"], 4);
  EXPECT_EQ(routes[0]["forward"]["clusters"][1]["cluster"], "default/b");
  EXPECT_EQ(routes[0]["options"]["timeout_ms"], 1500);
  EXPECT_EQ(routes[0]["options"]["request_headers"]["add"][0]["append"], false);
  EXPECT_EQ(routes[0]["options"]["response_headers"]["remove"][0], "server");
  EXPECT_EQ(routes[1]["match"]["prefix"], "/");
  EXPECT_EQ(routes[1]["redirect"]["path"], "/new");
  EXPECT_EQ(routes[1]["redirect"]["code"], 302);
  EXPECT_FALSE(routes[1].contains("options"));
  EXPECT_EQ(routes[2]["direct_response"]["status"], 404);
  EXPECT_EQ(routes[2]["direct_response"]["body"], "nope\xEF\xBF\xBD");  // invalid UTF-8 replaced
  const auto& cluster = j["clusters"][0];
  EXPECT_EQ(cluster["lb"], "least_request");
  EXPECT_EQ(cluster["endpoints"][0]["weight"], 2);
  EXPECT_EQ(cluster["connect_timeout_ms"], 2000);
  // Each item names the resources that produced it.
  EXPECT_EQ(cluster["sources"][0], "Upstream/" + cluster["name"].get<std::string>());
  EXPECT_EQ(j["listeners"][0]["sources"][0], "Gateway/default/gw");
  EXPECT_EQ(j["listeners"][0]["virtual_hosts"][0]["sources"][0], "VirtualService/default/shop");
}

TEST(SnapshotJson, GrpcHealthCheckShowsMetadataNamesNotValues) {
  ProxyConfig c;
  Cluster cl;
  cl.name = "default/cart";
  HealthCheck hc;
  hc.kind = HealthCheck::Kind::kGrpc;
  hc.service_name = "shop.Cart";
  hc.host = "cart.internal";
  hc.initial_metadata = {{"x-token", "s3cret"}};
  cl.health_check = hc;
  c.clusters.push_back(cl);
  const std::string text = to_json(c, false);
  auto j = nlohmann::json::parse(text);
  const auto& h = j["clusters"][0]["health_check"];
  EXPECT_EQ(h["kind"], "grpc");
  EXPECT_EQ(h["service_name"], "shop.Cart");
  EXPECT_EQ(h["authority"], "cart.internal");
  EXPECT_EQ(h["initial_metadata"], nlohmann::json::array({"x-token"}));
  EXPECT_FALSE(h.contains("path"));
  EXPECT_EQ(text.find("s3cret"), std::string::npos);
}

TEST(SnapshotJson, PrettyAndCompactAreTheSameDocument) {
  ProxyConfig c = sample();
  EXPECT_NE(to_json(c, true), to_json(c, false));
  EXPECT_EQ(nlohmann::json::parse(to_json(c, true)), nlohmann::json::parse(to_json(c, false)));
  EXPECT_EQ(to_json(ProxyConfig{}, false),
            R"({"version":0,"versions":{"listeners":0,"routes":0,"clusters":0,"endpoints":0,)"
            R"("secrets":0},"created_unix_ms":0,"listeners":[],"clusters":[]})");
}

}  // namespace
}  // namespace portico::snapshot
