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
    address: https://consul:8501
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
              ElementsAre(HasSubstr("spec.consul.address: \"https://consul:8501\": https is not "
                                    "supported yet"),
                          HasSubstr("spec.consul.datacenter"), HasSubstr("spec.consul.tokenFile"),
                          HasSubstr("spec.consul.password: is given without username"),
                          HasSubstr("spec.consul.waitTime: must be from 1s to 10m"),
                          HasSubstr("spec.consul.caFile: caFile is not supported yet"),
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

}  // namespace
}  // namespace portico::api
