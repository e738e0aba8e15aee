// Settings spec.consul and spec.consulKvSource: defaults, every field, and errors by path.
#include "api/decode.h"
#include "api/decode_helpers.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace portico::api {
namespace {

using test::lines;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

std::string settings(const std::string& spec) {
  return "apiVersion: gateway.portico.dev/v1\nkind: Settings\nmetadata:\n  name: default\nspec:\n" +
         spec;
}

TEST(DecodeConsul, Defaults) {
  auto r = test::decode_one("s.yaml", settings("  consulKvSource: {}\n"));
  EXPECT_THAT(lines(r.diagnostics), IsEmpty());
  const SettingsSpec& s = r.settings();
  ASSERT_TRUE(s.consul_kv_source.has_value());
  EXPECT_EQ(s.consul_kv_source->root_key, "gloo");
  EXPECT_EQ(s.consul_kv_source->consistency, ConsulConsistency::kConsistent);
  EXPECT_EQ(s.consul.address, "http://127.0.0.1:8500");
  EXPECT_EQ(s.consul.datacenter, "");
  EXPECT_EQ(s.consul.token, "");
  EXPECT_EQ(s.consul.wait_time, std::chrono::seconds(60));

  auto none = test::decode_one("s.yaml", settings("  overload: {maxConnections: 10}\n"));
  EXPECT_FALSE(none.settings().consul_kv_source.has_value());
}

TEST(DecodeConsul, EveryField) {
  auto r = test::decode_one("s.yaml", settings(R"(  consul:
    address: consul.service:8501
    datacenter: dc-2
    namespace: team-a
    token: s3cr3t
    username: u
    password: p
    waitTime: 30s
  consulKvSource:
    rootKey: config/portico/
    consistencyMode: StaleMode
)"));
  EXPECT_THAT(lines(r.diagnostics), IsEmpty());
  const SettingsSpec& s = r.settings();
  EXPECT_EQ(s.consul.address, "http://consul.service:8501");  // Gloo's host:port form
  EXPECT_EQ(s.consul.datacenter, "dc-2");
  EXPECT_EQ(s.consul.ns, "team-a");
  EXPECT_EQ(s.consul.token, "s3cr3t");
  EXPECT_EQ(s.consul.username, "u");
  EXPECT_EQ(s.consul.password, "p");
  EXPECT_EQ(s.consul.wait_time, std::chrono::seconds(30));
  EXPECT_EQ(s.consul_kv_source->root_key, "config/portico");  // trailing '/' dropped
  EXPECT_EQ(s.consul_kv_source->consistency, ConsulConsistency::kStale);

  auto f = test::decode_one("s.yaml", settings(R"(  consul:
    address: http://[::1]:8500
    tokenFile: /run/secrets/consul-token
  consulKvSource: {consistencyMode: default}
)"));
  EXPECT_THAT(lines(f.diagnostics), IsEmpty());
  EXPECT_EQ(f.settings().consul.address, "http://[::1]:8500");
  EXPECT_EQ(f.settings().consul.token_file, "/run/secrets/consul-token");
  EXPECT_EQ(f.settings().consul_kv_source->consistency, ConsulConsistency::kDefault);
}

TEST(DecodeConsul, ErrorsNameTheField) {
  auto r = test::decode_one("s.yaml", settings(R"(  consul:
    address: http://consul:8501
    datacenter: "dc 1"
    token: a
    tokenFile: /t
    password: p
    waitTime: 20m
    caFile: /ca.pem
    serviceDiscovery: {dataCenters: [dc1]}
    bogus: 1
  consulKvSource:
    rootKey: /gloo
    consistencyMode: sometimes
    other: x
)"));
  EXPECT_THAT(lines(r.diagnostics),
              ElementsAre(HasSubstr("spec.consul.address: \"http://consul:8501\": TLS settings "
                                    "are given but the address is not https://"),
                          HasSubstr("spec.consul.datacenter"), HasSubstr("spec.consul.tokenFile"),
                          HasSubstr("spec.consul.password: is given without username"),
                          HasSubstr("spec.consul.waitTime: must be from 1s to 10m"),
                          HasSubstr("spec.consul.serviceDiscovery: serviceDiscovery is not "
                                    "supported yet"),
                          HasSubstr("spec.consul.bogus"),
                          HasSubstr("spec.consulKvSource.rootKey: must not start with '/'"),
                          HasSubstr("spec.consulKvSource.consistencyMode: \"sometimes\""),
                          HasSubstr("spec.consulKvSource.other")));
  for (const char* bad : {"ftp://x:1", "http://:8500", "x:0", "x:99999", "x:", "http://a b:1"}) {
    auto a =
        test::decode_one("s.yaml", settings(std::string("  consul: {address: \"") + bad + "\"}\n"));
    EXPECT_THAT(lines(a.diagnostics), ElementsAre(HasSubstr("spec.consul.address"))) << bad;
  }
}

TEST(DecodeConsul, TlsFields) {
  auto r = test::decode_one("s.yaml", settings(R"(  consul:
    address: https://10.0.0.5:8501
    caFile: /etc/consul/ca.pem
    certFile: /etc/consul/client.pem
    keyFile: /etc/consul/client-key.pem
    tlsServerName: server.dc1.consul
)"));
  EXPECT_THAT(lines(r.diagnostics), IsEmpty());
  const auto& c = r.settings().consul;
  EXPECT_EQ(c.address, "https://10.0.0.5:8501");
  EXPECT_EQ(c.tls.ca_file, "/etc/consul/ca.pem");
  EXPECT_EQ(c.tls.cert_file, "/etc/consul/client.pem");
  EXPECT_EQ(c.tls.key_file, "/etc/consul/client-key.pem");
  EXPECT_EQ(c.tls.server_name, "server.dc1.consul");
  EXPECT_FALSE(c.tls.insecure_skip_verify);

  auto bad = test::decode_one("s.yaml", settings(R"(  consul:
    address: https://consul:8501
    certFile: /c.pem
    caFile: /ca.pem
    insecureSkipVerify: true
)"));
  EXPECT_THAT(lines(bad.diagnostics),
              ElementsAre(HasSubstr("spec.consul.keyFile: is required with certFile"),
                          HasSubstr("spec.consul.insecureSkipVerify: turns verification off")));
}

TEST(DecodeConsul, DiscoveryConsistencyMode) {
  EXPECT_EQ(test::decode_one("s.yaml", settings("  overload: {maxConnections: 10}\n"))
                .settings()
                .consul_discovery_consistency,
            ConsulConsistency::kDefault);
  for (auto [text, want] : {std::pair{"StaleMode", ConsulConsistency::kStale},
                            std::pair{"consistent", ConsulConsistency::kConsistent},
                            std::pair{"DefaultMode", ConsulConsistency::kDefault}}) {
    auto r = test::decode_one(
        "s.yaml", settings(std::string("  consulDiscovery: {consistencyMode: ") + text + "}\n"));
    EXPECT_THAT(lines(r.diagnostics), IsEmpty()) << text;
    EXPECT_EQ(r.settings().consul_discovery_consistency, want) << text;
  }
  auto bad = test::decode_one("s.yaml", settings(R"(  consulDiscovery:
    consistencyMode: Eventually
    useTlsTagging: true
    queryOptions: {useCache: true}
    other: 1
)"));
  EXPECT_THAT(lines(bad.diagnostics),
              ElementsAre(HasSubstr("spec.consulDiscovery.consistencyMode: \"Eventually\""),
                          HasSubstr("spec.consulDiscovery.useTlsTagging: useTlsTagging is not "
                                    "supported"),
                          HasSubstr("spec.consulDiscovery.queryOptions"),
                          HasSubstr("spec.consulDiscovery.other")));
}

}  // namespace
}  // namespace portico::api
