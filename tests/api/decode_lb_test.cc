#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "api/decode.h"

namespace portico::api {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

DecodedFile decode(const std::string& yaml) {
  return decode_file("u.yaml", yaml);
}

std::vector<std::string> diagnostics_of(const std::string& yaml) {
  DecodedFile f = decode(yaml);
  std::vector<std::string> out;
  for (const auto& d : f.errors)
    out.push_back("FILE " + d.to_string());
  for (const auto& r : f.resources) {
    for (const auto& d : r.diagnostics)
      out.push_back(d.to_string());
  }
  return out;
}

std::string upstream(const std::string& extra) {
  return "kind: Upstream\nmetadata: {name: u}\nspec:\n  static: {hosts: [{addr: 10.0.0.1, port: "
         "80}]}\n" +
         extra;
}

std::string route_options(const std::string& options) {
  return "kind: VirtualService\nmetadata: {name: v}\nspec:\n  virtualHost:\n    routes:\n"
         "      - routeAction: {single: {upstream: {name: u}}}\n        options:\n" +
         options;
}

TEST(ApiDecodeLb, EachPolicy) {
  struct Case {
    const char* yaml;
    LbPolicy lb;
  } cases[] = {{"{roundRobin: {}}", LbPolicy::kRoundRobin},
               {"{leastRequest: {choiceCount: 3}}", LbPolicy::kLeastRequest},
               {"{random: {}}", LbPolicy::kRandom},
               {"{ringHash: {ringHashConfig: {minimumRingSize: 64, maximumRingSize: 4096}}}",
                LbPolicy::kRingHash},
               {"{maglev: {}}", LbPolicy::kMaglev},
               {"{healthyPanicThreshold: 30, random: null}", LbPolicy::kRandom}};
  for (const auto& c : cases) {
    DecodedFile f = decode(upstream(std::string("  loadBalancerConfig: ") + c.yaml + "\n"));
    ASSERT_EQ(f.resources.size(), 1u);
    EXPECT_THAT(f.resources[0].diagnostics, IsEmpty()) << c.yaml;
    const auto& u = f.resources[0].upstream();
    EXPECT_EQ(u.lb, c.lb) << c.yaml;
  }
  // The decoded file is kept: its resources own what upstream() refers to.
  const DecodedFile lr_file =
      decode(upstream("  loadBalancerConfig: {leastRequest: {choiceCount: 3}}\n"));
  const auto& lr = lr_file.resources.at(0).upstream();
  EXPECT_EQ(lr.choice_count, 3u);
  EXPECT_EQ(lr.healthy_panic_threshold, 50u);
  const DecodedFile rh_file =
      decode(upstream("  loadBalancerConfig: {ringHash: {ringHashConfig: "
                      "{minimumRingSize: 64, maximumRingSize: 4096}}}\n"));
  const auto& rh = rh_file.resources.at(0).upstream();
  EXPECT_EQ(rh.ring_min_size, 64u);
  EXPECT_EQ(rh.ring_max_size, 4096u);
  EXPECT_EQ(decode(upstream("  loadBalancerConfig: {healthyPanicThreshold: 0.0}\n"))
                .resources[0]
                .upstream()
                .healthy_panic_threshold,
            0u);
}

TEST(ApiDecodeLb, RejectedLoadBalancerFields) {
  EXPECT_THAT(
      diagnostics_of(upstream(R"(  loadBalancerConfig:
    healthyPanicThreshold: 120
    updateMergeWindow: 1s
    random: {}
    maglev: {useHostnameForHashing: true}
---
kind: Upstream
metadata: {name: w}
spec:
  static: {hosts: [{addr: 10.0.0.1, port: 80}]}
  loadBalancerConfig:
    healthyPanicThreshold: 12.5
    leastRequest: {choiceCount: 1, slowStartConfig: {}}
---
kind: Upstream
metadata: {name: x}
spec:
  static: {hosts: [{addr: 10.0.0.1, port: 80}]}
  loadBalancerConfig:
    ringHash: {useHostnameForHashing: true, ringHashConfig: {minimumRingSize: 100, maximumRingSize: 10, x: 1}}
)")),
      ElementsAre(
          "u.yaml:6:28: error: spec.loadBalancerConfig.healthyPanicThreshold: must be a whole "
          "percentage from 0 to 100",
          "u.yaml:7:5: error: spec.loadBalancerConfig.updateMergeWindow: unknown field "
          "\"updateMergeWindow\": not implemented (refused rather than ignored)",
          "u.yaml:9:13: error: spec.loadBalancerConfig.maglev: has both random and maglev; use one",
          "u.yaml:16:28: error: spec.loadBalancerConfig.healthyPanicThreshold: must be a whole "
          "percentage from 0 to 100",
          "u.yaml:17:33: error: spec.loadBalancerConfig.leastRequest.choiceCount: 1 is out of "
          "range (2-100)",
          "u.yaml:17:36: error: spec.loadBalancerConfig.leastRequest.slowStartConfig: unknown "
          "field \"slowStartConfig\": not implemented (refused rather than ignored)",
          "u.yaml:24:16: error: spec.loadBalancerConfig.ringHash.useHostnameForHashing: unknown "
          "field \"useHostnameForHashing\": not implemented (refused rather than ignored)",
          "u.yaml:24:79: error: spec.loadBalancerConfig.ringHash.ringHashConfig.minimumRingSize: "
          "is larger than maximumRingSize (10)",
          "u.yaml:24:105: error: spec.loadBalancerConfig.ringHash.ringHashConfig.x: unknown field "
          "\"x\": not implemented (refused rather than ignored)"));
}

TEST(ApiDecodeLb, Failover) {
  DecodedFile f = decode(upstream(R"(  failover:
    prioritizedLocalities:
      - localityEndpoints:
          - locality: {region: eu, zone: eu-1, subZone: a}
            lbEndpoints:
              - {address: 10.1.0.1, port: 8080}
              - {address: "::2", port: 8081, loadBalancingWeight: 3}
      - localityEndpoints:
          - lbEndpoints: [{address: 10.2.0.1, port: 80}]
)"));
  ASSERT_EQ(f.resources.size(), 1u);
  EXPECT_THAT(f.resources[0].diagnostics, IsEmpty());
  const auto& u = f.resources[0].upstream();
  ASSERT_EQ(u.failover.size(), 2u);
  ASSERT_EQ(u.failover[0].hosts.size(), 2u);
  EXPECT_EQ(u.failover[0].hosts[1].address, "::2");
  EXPECT_EQ(u.failover[0].hosts[1].weight, 3u);
  EXPECT_EQ(u.failover[0].localities, (std::vector<std::string>{"eu/eu-1/a"}));
  EXPECT_EQ(u.failover[1].hosts[0].port, 80);
}

TEST(ApiDecodeLb, RejectedFailoverFields) {
  EXPECT_THAT(
      diagnostics_of(upstream(R"(  failover:
    policy: {overprovisioningFactor: 2}
    prioritizedLocalities:
      - localityEndpoints:
          - loadBalancingWeight: 2
            lbEndpoints:
              - {address: db_local!, port: 8080, healthCheckConfig: {}}
          - lbEndpoints: []
)")),
      ElementsAre(
          "u.yaml:6:5: error: spec.failover.policy: unknown field \"policy\": not implemented "
          "(refused rather than ignored)",
          "u.yaml:9:34: error: "
          "spec.failover.prioritizedLocalities[0].localityEndpoints[0].loadBalancingWeight: "
          "locality weights (locality-weighted load balancing) are not supported",
          "u.yaml:11:27: error: "
          "spec.failover.prioritizedLocalities[0].localityEndpoints[0].lbEndpoints[0].address: "
          "\"db_local!\" is neither an IP address nor a DNS name",
          "u.yaml:11:50: error: "
          "spec.failover.prioritizedLocalities[0].localityEndpoints[0].lbEndpoints[0]."
          "healthCheckConfig: unknown field \"healthCheckConfig\": not implemented (refused rather "
          "than ignored)",
          "u.yaml:12:26: error: "
          "spec.failover.prioritizedLocalities[0].localityEndpoints[1].lbEndpoints: must have at "
          "least one endpoint"));
}

TEST(ApiDecodeLb, HashPolicies) {
  DecodedFile f = decode(route_options(R"(          lbHash:
            hashPolicies:
              - {header: X-User, terminal: true}
              - cookie: {name: session, path: /}
              - {sourceIp: true}
)"));
  ASSERT_EQ(f.resources.size(), 1u);
  EXPECT_THAT(f.resources[0].diagnostics, IsEmpty());
  const auto& o = f.resources[0].virtual_service().routes[0].options;
  ASSERT_EQ(o.hash_policies.size(), 3u);
  EXPECT_EQ(o.hash_policies[0].kind, HashPolicy::Kind::kHeader);
  EXPECT_EQ(o.hash_policies[0].name, "x-user");
  EXPECT_TRUE(o.hash_policies[0].terminal);
  EXPECT_EQ(o.hash_policies[1].kind, HashPolicy::Kind::kCookie);
  EXPECT_EQ(o.hash_policies[1].name, "session");
  EXPECT_FALSE(o.hash_policies[1].terminal);
  EXPECT_EQ(o.hash_policies[2].kind, HashPolicy::Kind::kSourceIp);
}

TEST(ApiDecodeLb, RejectedHashPolicies) {
  EXPECT_THAT(
      diagnostics_of(route_options(R"(          lbHash:
            hashPolicies:
              - cookie: {name: s, ttl: 1h}
              - {header: "bad name"}
              - {sourceIp: false}
              - {terminal: true}
              - {header: x, sourceIp: true}
              - {queryParameter: q}
)")),
      ElementsAre(
          "u.yaml:10:40: error: "
          "spec.virtualHost.routes[0].options.lbHash.hashPolicies[0].cookie.ttl: generating the "
          "cookie (ttl) is not supported: hash on a cookie the client or the application sets "
          "(remove ttl)",
          "u.yaml:11:26: error: spec.virtualHost.routes[0].options.lbHash.hashPolicies[1].header: "
          "\"bad name\" is not a valid header name",
          "u.yaml:12:28: error: "
          "spec.virtualHost.routes[0].options.lbHash.hashPolicies[2].sourceIp: must be true "
          "(remove the policy to hash on something else)",
          "u.yaml:13:17: error: spec.virtualHost.routes[0].options.lbHash.hashPolicies[3]: needs "
          "one of header, cookie or sourceIp",
          "u.yaml:14:17: error: spec.virtualHost.routes[0].options.lbHash.hashPolicies[4]: has "
          "more than one of header, cookie and sourceIp; use one per policy",
          "u.yaml:15:17: error: spec.virtualHost.routes[0].options.lbHash.hashPolicies[5]: needs "
          "one of header, cookie or sourceIp",
          "u.yaml:15:18: error: "
          "spec.virtualHost.routes[0].options.lbHash.hashPolicies[5].queryParameter: unknown field "
          "\"queryParameter\": not implemented (refused rather than ignored)"));
}

}  // namespace
}  // namespace portico::api

namespace portico::api {
namespace {

TEST(ApiDecodeDns, HostsMayBeNames) {
  DecodedFile f = decode(
      "kind: Upstream\nmetadata: {name: u}\nspec:\n  static:\n    hosts:\n"
      "      - {addr: 10.0.0.1, port: 80}\n      - {addr: API.Internal.Example., port: 8080}\n"
      "      - {addr: bad_name!, port: 80}\n      - {addr: 10.0.0.256, port: 80}\n"
      "      - {addr: a..b, port: 80}\n");
  ASSERT_EQ(f.resources.size(), 1u);
  const auto& r = f.resources[0];
  std::vector<std::string> errors;
  for (const auto& d : r.diagnostics)
    errors.push_back(d.to_string());
  EXPECT_THAT(errors,
              ElementsAre(HasSubstr("\"bad_name!\" is neither an IP address nor a DNS name"),
                          HasSubstr("\"10.0.0.256\" is not a valid IP address"),
                          HasSubstr("\"a..b\" is not a DNS name (empty label)")));
  const auto& hosts = std::get<UpstreamSpec>(r.spec).hosts;
  ASSERT_GE(hosts.size(), 2u);
  EXPECT_FALSE(hosts[0].is_name);
  EXPECT_TRUE(hosts[1].is_name);
  EXPECT_EQ(hosts[1].address, "api.internal.example");
}

TEST(ApiDecodeDns, SettingsDns) {
  DecodedFile ok = decode(
      "kind: Settings\nmetadata: {name: s}\nspec:\n  dns:\n    servers: [10.0.0.2, "
      "\"10.0.0.3:5353\", \"[::1]:53\", \"::1\"]\n    minRefresh: 500ms\n    maxRefresh: 1m\n"
      "    timeout: 1s\n");
  ASSERT_EQ(ok.resources.size(), 1u);
  EXPECT_TRUE(ok.resources[0].diagnostics.empty()) << ok.resources[0].diagnostics[0].to_string();
  const auto& s = std::get<SettingsSpec>(ok.resources[0].spec);
  EXPECT_EQ(s.dns_servers.size(), 4u);
  EXPECT_EQ(s.dns_min_refresh.count(), 500);
  EXPECT_EQ(s.dns_max_refresh.count(), 60000);
  EXPECT_EQ(s.dns_timeout.count(), 1000);

  DecodedFile bad = decode(
      "kind: Settings\nmetadata: {name: s}\nspec:\n  dns:\n    servers: [dns.example, "
      "\"10.0.0.3:0\"]\n    minRefresh: 10s\n    maxRefresh: 1s\n    search: [corp]\n");
  ASSERT_EQ(bad.resources.size(), 1u);
  std::vector<std::string> errors;
  for (const auto& d : bad.resources[0].diagnostics)
    errors.push_back(d.to_string());
  EXPECT_THAT(errors, ElementsAre(HasSubstr("spec.dns: maxRefresh is shorter than minRefresh"),
                                  HasSubstr("spec.dns.servers[0]: \"dns.example\" is not a DNS "
                                            "server address"),
                                  HasSubstr("spec.dns.servers[1]"),
                                  HasSubstr("spec.dns.search: unknown field")));
}

}  // namespace
}  // namespace portico::api
