// The fleet protocol's server side (control/fleet/fleet.h), and the wire codec's round trip on the
// configurations the examples and the fixtures build.
#include "control/fleet/fleet.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "control/pipeline.h"
#include "snapshot/wire.h"

namespace portico::control::fleet {
namespace {

namespace wire = snapshot::wire;

void expect_round_trip(const snapshot::ProxyConfig& c, const std::string& what) {
  auto d = wire::decode(wire::encode(c));
  ASSERT_TRUE(d.ok()) << what << ": " << d.error().message;
  EXPECT_TRUE(wire::deep_equal(c, d.value())) << what;
}

TEST(FleetWire, ExamplesRoundTrip) {
  for (const char* dir : {"/examples/quickstart", "/examples/delegation"}) {
    BuildResult r = validate_directory(std::string(PORTICO_SOURCE_DIR) + dir);
    ASSERT_TRUE(r.config);
    EXPECT_FALSE(r.config->listeners.empty()) << dir;
    expect_round_trip(*r.config, dir);
  }
}

// Every configuration file of the fuzz corpus that builds (syntax errors build an empty one).
TEST(FleetWire, FixtureConfigurationsRoundTrip) {
  size_t built = 0;
  for (const auto& e : std::filesystem::directory_iterator(std::string(PORTICO_SOURCE_DIR) +
                                                           "/fuzz/corpus/yaml_config")) {
    std::ifstream in(e.path(), std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    BuildResult r = build_from_files({{e.path().filename().string(), ss.str()}}, 7);
    if (!r.config) continue;
    built += r.config->listeners.empty() ? 0 : 1;
    expect_round_trip(*r.config, e.path().string());
  }
  EXPECT_GT(built, 0u);
}

snapshot::ProxyConfig two_gateways(uint64_t version) {
  snapshot::ProxyConfig c;
  c.version = version;
  for (const char* name : {"default/a", "default/b"}) {
    snapshot::Listener l;
    l.name = name;
    l.port = name[8] == 'a' ? 8080 : 8081;
    auto vh = std::make_shared<snapshot::VirtualHost>();
    vh->name = std::string("default/vs-") + name[8];
    vh->domains = {"*"};
    snapshot::Route route;
    route.name = vh->name + "/0";
    route.action = snapshot::ForwardAction{{{"default/echo", 1}}, 1};
    vh->routes.push_back(route);
    l.virtual_hosts.push_back(vh);
    c.listeners.push_back(l);
  }
  snapshot::Cluster cl;
  cl.name = "default/echo";
  cl.endpoints = {{"127.0.0.1", 9000, 1, 0}};
  c.clusters = std::vector<snapshot::Cluster>{cl};
  snapshot::assign_type_versions(c, nullptr);
  return c;
}

// Gateway a's routes forward to default/echo, b's to default/other.
snapshot::ProxyConfig two_upstreams(uint64_t version, uint16_t other_port,
                                    const snapshot::ProxyConfig* previous) {
  auto c = two_gateways(version);
  auto vh = std::make_shared<snapshot::VirtualHost>(*c.listeners[1].virtual_hosts[0]);
  vh->routes[0].action = snapshot::ForwardAction{{{"default/other", 1}}, 1};
  c.listeners[1].virtual_hosts[0] = vh;
  snapshot::Cluster other;
  other.name = "default/other";
  other.endpoints = {{"127.0.0.1", other_port, 1, 0}};
  c.clusters.push_back(other);
  snapshot::assign_type_versions(c, previous);
  return c;
}

TEST(Fleet, HaveParsesAndFormats) {
  auto have = parse_have("listeners:abc,routes:def,bogus:1,broken,:x,clusters:");
  EXPECT_EQ(have.size(), 2u);
  EXPECT_EQ(have["listeners"], "abc");
  EXPECT_EQ(format_have(have), "listeners:abc,routes:def");
  EXPECT_EQ(split_list("a,,b,"), (std::vector<std::string>{"a", "b"}));
}

TEST(Fleet, ViewHasOnlyTheProxysGateways) {
  auto c = two_gateways(1);
  EXPECT_EQ(view_for(c, {})->listeners.size(), 2u);
  auto v = view_for(c, {"b"});
  ASSERT_EQ(v->listeners.size(), 1u);
  EXPECT_EQ(v->listeners[0].name, "default/b");
  EXPECT_EQ(view_for(c, {"default/a"})->listeners[0].name, "default/a");
  EXPECT_TRUE(view_for(c, {"nope"})->listeners.empty());
  EXPECT_EQ(v->clusters.size(), 1u);
}

TEST(Fleet, ViewHasOnlyTheClustersItsRoutesForwardTo) {
  auto c = two_upstreams(1, 9100, nullptr);
  auto names = [](const snapshot::ProxyConfig& v) {
    std::vector<std::string> out;
    for (const auto& cl : v.clusters)
      out.push_back(cl.name);
    return out;
  };
  EXPECT_EQ(names(*view_for(c, {"a"})), (std::vector<std::string>{"default/echo"}));
  EXPECT_EQ(names(*view_for(c, {"default/b"})), (std::vector<std::string>{"default/other"}));
  EXPECT_EQ(names(*view_for(c, {"a", "b"})),
            (std::vector<std::string>{"default/echo", "default/other"}));
  EXPECT_TRUE(view_for(c, {"a", "b"})->clusters.shares_with(c.clusters));  // all: not copied
  EXPECT_EQ(view_for(c, {})->clusters.size(), 2u);  // no Gateway named: everything
  EXPECT_TRUE(view_for(c, {"nope"})->clusters.empty());
}

wire::Message decode(const std::optional<std::string>& text);

TEST(Fleet, AChangeToAnotherProxysClusterSendsNothingAndKeepsItsVersions) {
  Fleet f;
  std::string error;
  auto c1 = two_upstreams(1, 9100, nullptr);
  auto ia = f.connect("pa", {"a"}, {}, 1);
  auto ib = f.connect("pb", {"b"}, {}, 1);
  auto ma = decode(f.next_message("pa", ia, c1));
  auto mb = decode(f.next_message("pb", ib, c1));
  ASSERT_TRUE(f.ack({"pa", ma.nonce, 1, true, "", {}}, 2, &error)) << error;
  ASSERT_TRUE(f.ack({"pb", mb.nonce, 1, true, "", {}}, 2, &error)) << error;
  // pb's upstream moves: pb gets its endpoints, pa nothing at all.
  auto c2 = two_upstreams(2, 9101, &c1);
  ASSERT_NE(c2.versions.endpoints, c1.versions.endpoints);
  EXPECT_FALSE(f.next_message("pa", ia, c2).has_value());
  auto mb2 = decode(f.next_message("pb", ib, c2));
  EXPECT_EQ(mb2.sections.size(), 1u);
  EXPECT_TRUE(mb2.sections.count("endpoints"));
  EXPECT_EQ(mb2.header.versions.endpoints, c2.versions.endpoints);
  ASSERT_TRUE(f.ack({"pb", mb2.nonce, 2, true, "", {}}, 3, &error)) << error;
  EXPECT_EQ(f.proxies().at("pa").applied_version, 1u);
  EXPECT_EQ(f.proxies().at("pa").skipped, 1u);
  EXPECT_EQ(f.proxies().at("pa").messages, 1u);
  // pa's listener moves: its message carries the endpoints version it already runs, not the
  // one pb's change made.
  auto c3 = c2;
  c3.version = 3;
  c3.listeners[0].port = 9090;
  snapshot::assign_type_versions(c3, &c2);
  auto ma3 = decode(f.next_message("pa", ia, c3));
  EXPECT_EQ(ma3.sections.size(), 1u);
  EXPECT_TRUE(ma3.sections.count("listeners"));
  EXPECT_EQ(ma3.header.version, 3u);
  EXPECT_EQ(ma3.header.versions.listeners, c3.versions.listeners);
  EXPECT_EQ(ma3.header.versions.endpoints, ma.header.versions.endpoints);
  EXPECT_EQ(ma3.header.versions.clusters, ma.header.versions.clusters);
  EXPECT_NE(ma3.header.versions.endpoints, c3.versions.endpoints);
}

wire::Message decode(const std::optional<std::string>& text) {
  EXPECT_TRUE(text.has_value());
  auto m = wire::decode_message(*text);
  EXPECT_TRUE(m.ok());
  return m.value();
}

TEST(Fleet, SendsOnlyChangedSectionsAndNothingTwice) {
  Fleet f;
  auto c1 = two_gateways(1);
  auto id = f.connect("p1", {}, {}, 100);
  auto m1 = decode(f.next_message("p1", id, c1));
  EXPECT_EQ(m1.sections.size(), 5u);
  EXPECT_EQ(m1.header.version, 1u);
  EXPECT_FALSE(f.next_message("p1", id, c1).has_value());  // already sent

  auto c2 = two_gateways(2);
  c2.clusters[0].endpoints[0].port = 9001;
  auto m2 = decode(f.next_message("p1", id, c2));
  ASSERT_EQ(m2.sections.size(), 1u);
  EXPECT_TRUE(m2.sections.count("endpoints"));

  // A reconnect (a server restart: version numbers start again) with everything in `have`
  // gets one message without sections.
  std::map<std::string, std::string> have;
  for (const auto& [name, s] : wire::encode_sections(*view_for(c2, {})))
    have[name] = s.version;
  Fleet restarted;
  auto c2again = two_gateways(1);
  c2again.clusters[0].endpoints[0].port = 9001;
  auto id2 = restarted.connect("p1", {}, have, 200);
  auto m3 = decode(restarted.next_message("p1", id2, c2again));
  EXPECT_TRUE(m3.sections.empty());
  EXPECT_FALSE(restarted.next_message("p1", id2, c2again).has_value());
}

TEST(Fleet, AckRecordsTheVersionAndNackWarnsUntilALaterAck) {
  Fleet f;
  auto id = f.connect("p2", {"a"}, {}, 100);
  auto c1 = two_gateways(1);
  auto m1 = decode(f.next_message("p2", id, c1));
  std::string error;
  EXPECT_TRUE(f.ack({"p2", m1.nonce, 1, true, "", {}}, 150, &error)) << error;
  EXPECT_EQ(f.proxies().at("p2").applied_version, 1u);
  EXPECT_EQ(f.running("Gateway/default/a"), (std::vector<std::string>{"p2 (version 1)"}));
  EXPECT_TRUE(f.running("Gateway/default/b").empty());  // not its Gateway
  EXPECT_FALSE(f.ack({"p2", "bogus", 1, true, "", {}}, 150, &error));
  EXPECT_FALSE(f.ack({"p9", m1.nonce, 1, true, "", {}}, 150, &error));

  auto c2 = two_gateways(2);
  c2.listeners[0].port = 9999;
  auto m2 = decode(f.next_message("p2", id, c2));
  EXPECT_TRUE(m2.sections.count("listeners"));
  EXPECT_TRUE(
      f.ack({"p2", m2.nonce, 2, false, "bind 127.0.0.3:9999: address in use", {"default/a"}}, 160,
            &error))
      << error;
  auto w = f.warnings();
  ASSERT_EQ(w.size(), 1u);
  EXPECT_EQ(w["Gateway/default/a"],
            (std::vector<std::string>{
                "proxy p2 rejected version 2: bind 127.0.0.3:9999: address in use"}));
  EXPECT_EQ(f.proxies().at("p2").applied_version, 1u);
  nlohmann::ordered_json resources = nlohmann::ordered_json::array();
  resources.push_back({{"kind", "Gateway"},
                       {"namespace", "default"},
                       {"name", "a"},
                       {"state", "Accepted"},
                       {"reasons", nlohmann::ordered_json::array()}});
  f.annotate(resources);
  EXPECT_EQ(resources[0]["state"], "Warning");
  EXPECT_EQ(resources[0]["reasons"].size(), 1u);
  EXPECT_EQ(resources[0]["proxies"][0], "p2 (version 1)");

  // After the NACK the next message is computed against what the proxy kept: the listeners again.
  auto c3 = two_gateways(3);
  c3.listeners[0].port = 9998;
  c3.clusters[0].endpoints[0].weight = 2;
  auto m3 = decode(f.next_message("p2", id, c3));
  EXPECT_TRUE(m3.sections.count("listeners"));
  EXPECT_TRUE(m3.sections.count("endpoints"));
  EXPECT_TRUE(f.ack({"p2", m3.nonce, 3, true, "", {}}, 170, &error)) << error;
  EXPECT_TRUE(f.warnings().empty());
  EXPECT_EQ(f.proxies().at("p2").applied_version, 3u);
  EXPECT_EQ(f.acks_total(), 2u);
  EXPECT_EQ(f.nacks_total(), 1u);
}

TEST(Fleet, ANackOfAnEarlierMessageResendsAgainstWhatTheProxyKept) {
  Fleet f;
  auto id = f.connect("p", {}, {}, 1);
  auto m1 = decode(f.next_message("p", id, two_gateways(1)));
  std::string error;
  ASSERT_TRUE(f.ack({"p", m1.nonce, 1, true, "", {}}, 2, &error)) << error;
  auto c2 = two_gateways(2);
  c2.listeners[0].port = 9999;
  auto m2 = decode(f.next_message("p", id, c2));
  auto c3 = c2;
  c3.version = 3;
  c3.clusters[0].endpoints[0].weight = 3;
  auto m3 = decode(f.next_message("p", id, c3));  // sent before m2's NACK arrived
  EXPECT_FALSE(m3.sections.count("listeners"));
  ASSERT_TRUE(f.ack({"p", m2.nonce, 2, false, "bind", {"default/a"}}, 3, &error)) << error;
  auto again = decode(f.next_message("p", id, c3));
  EXPECT_EQ(again.header.version, 3u);
  EXPECT_TRUE(again.sections.count("listeners"));
  EXPECT_TRUE(again.sections.count("endpoints"));
  EXPECT_FALSE(f.next_message("p", id, c3).has_value());
}

TEST(Fleet, AnAckSayingWhatTheProxyRunsCorrectsTheServersAssumption) {
  Fleet f;
  auto id = f.connect("p", {}, {}, 1);
  auto m1 = decode(f.next_message("p", id, two_gateways(1)));
  std::string error;
  // The proxy says it runs nothing of it (it lost it): the whole configuration is sent again.
  ASSERT_TRUE(f.ack({"p", m1.nonce, 1, true, "", {}, {{"routes", "0"}}}, 2, &error)) << error;
  auto again = decode(f.next_message("p", id, two_gateways(1)));
  EXPECT_EQ(again.sections.size(), 5u);
}

TEST(Fleet, ANewerStreamReplacesTheOld) {
  Fleet f;
  auto a = f.connect("p", {}, {}, 1);
  auto b = f.connect("p", {}, {}, 2);
  f.disconnect("p", a, 3);  // the old stream ends: the new one stays
  EXPECT_TRUE(f.proxies().at("p").connected);
  EXPECT_FALSE(f.next_message("p", a, two_gateways(1)).has_value());
  EXPECT_TRUE(f.next_message("p", b, two_gateways(1)).has_value());
  f.disconnect("p", b, 4);
  EXPECT_FALSE(f.proxies().at("p").connected);
  EXPECT_EQ(f.connected(), 0u);
}

TEST(Fleet, AckBodiesParse) {
  Ack a;
  std::string error;
  ASSERT_TRUE(parse_ack(ack_to_json({"n", "x", 3, false, "why", {"default/a"}, {{"routes", "ab"}}}),
                        &a, &error));
  EXPECT_EQ(a.sections, (std::map<std::string, std::string>{{"routes", "ab"}}));
  EXPECT_EQ(a.node, "n");
  EXPECT_EQ(a.version, 3u);
  EXPECT_FALSE(a.accepted);
  EXPECT_EQ(a.items, (std::vector<std::string>{"default/a"}));
  EXPECT_FALSE(parse_ack("{", &a, &error));
  EXPECT_FALSE(parse_ack(R"({"node":"n","nonce":"x","version":"3","accepted":true})", &a, &error));
  EXPECT_NE(error.find("version"), std::string::npos);
}

}  // namespace
}  // namespace portico::control::fleet
