// Settings spec.etcdConfigSource: defaults, every field, and each bad value with its field path.
#include "api/decode.h"
#include "api/decode_helpers.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace portico::api {
namespace {

using test::lines;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

std::string settings(const std::string& etcd) {
  return "apiVersion: gateway.portico.dev/v1\nkind: Settings\nmetadata:\n  name: default\nspec:\n"
         "  etcdConfigSource:" +
         etcd;
}

TEST(EtcdDecode, Defaults) {
  auto r = test::decode_one("settings.yaml", settings(" {}\n"));
  ASSERT_TRUE(r.settings().etcd_config_source);
  EXPECT_EQ(r.settings().etcd_config_source->address, "http://127.0.0.1:2379");
  EXPECT_EQ(r.settings().etcd_config_source->prefix, "portico");
  EXPECT_EQ(r.settings().etcd_config_source->timeout, std::chrono::milliseconds(5000));
  EXPECT_THAT(lines(r.diagnostics), ::testing::IsEmpty());

  auto none = test::decode_one("settings.yaml", settings(" null\n"));
  EXPECT_FALSE(none.settings().etcd_config_source);
}

TEST(EtcdDecode, EveryField) {
  auto r = test::decode_one("settings.yaml", settings(R"(
    address: http://etcd.internal:12379
    prefix: /gloo/
    timeout: 2s
)"));
  ASSERT_TRUE(r.settings().etcd_config_source);
  const auto& e = *r.settings().etcd_config_source;
  EXPECT_EQ(e.address, "http://etcd.internal:12379");
  EXPECT_EQ(e.prefix, "/gloo");  // the trailing '/' is implied
  EXPECT_EQ(e.timeout, std::chrono::milliseconds(2000));
  EXPECT_THAT(lines(r.diagnostics), ::testing::IsEmpty());
}

TEST(EtcdDecode, BadValuesNameTheirField) {
  auto f = decode_file("settings.yaml", settings(R"(
    address: http://etcd:2379
    prefix: /
    timeout: 0s
    username: root
    caFile: /ca.pem
)"));
  ASSERT_EQ(f.resources.size(), 1u);
  EXPECT_THAT(lines(f.resources[0].diagnostics),
              ElementsAre(HasSubstr("spec.etcdConfigSource.address: \"http://etcd:2379\": TLS "
                                    "settings are given but the address is not https://"),
                          HasSubstr("spec.etcdConfigSource.prefix: must name a key prefix"),
                          HasSubstr("spec.etcdConfigSource.timeout: must be greater than 0"),
                          HasSubstr("spec.etcdConfigSource.username")));

  auto tls = decode_file("settings.yaml", settings(R"(
    address: https://etcd:2379
    caFile: /etc/etcd/ca.pem
    certFile: /etc/etcd/client.pem
    keyFile: /etc/etcd/client.key
)"));
  ASSERT_EQ(tls.resources.size(), 1u);
  EXPECT_THAT(lines(tls.resources[0].diagnostics), ::testing::IsEmpty());
  EXPECT_EQ(tls.resources[0].settings().etcd_config_source->tls.cert_file, "/etc/etcd/client.pem");

  for (const char* address : {"etcd:2379", "http://", "http://:2379", "http://u:p@etcd:2379",
                              "http://etcd:2379?x=1", "http://et cd"}) {
    auto bad =
        decode_file("settings.yaml", settings(std::string("\n    address: \"") + address + "\"\n"));
    ASSERT_EQ(bad.resources.size(), 1u);
    EXPECT_THAT(lines(bad.resources[0].diagnostics),
                ElementsAre(HasSubstr("spec.etcdConfigSource.address")))
        << address;
  }
  auto not_map = decode_file("settings.yaml", settings(" http://etcd:2379\n"));
  ASSERT_EQ(not_map.resources.size(), 1u);
  EXPECT_THAT(lines(not_map.resources[0].diagnostics),
              ElementsAre(HasSubstr("spec.etcdConfigSource")));
}

}  // namespace
}  // namespace portico::api
