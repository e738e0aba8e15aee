// Settings spec.kubernetesConfigSource: every field, and each bad value with its field path.
#include "api/decode.h"
#include "api/decode_helpers.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace portico::api {
namespace {

using test::lines;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

std::string settings(const std::string& kube) {
  return "apiVersion: gateway.portico.dev/v1\nkind: Settings\nmetadata:\n  name: default\nspec:\n"
         "  kubernetesConfigSource:" +
         kube;
}

TEST(KubeDecode, EveryField) {
  auto r = test::decode_one("settings.yaml", settings(R"(
    address: http://127.0.0.1:8001
    tokenFile: /var/run/secrets/kubernetes.io/serviceaccount/token
    namespaces: [default, shop-prod]
)"));
  ASSERT_TRUE(r.settings().kubernetes_config_source);
  const auto& k = *r.settings().kubernetes_config_source;
  EXPECT_EQ(k.address, "http://127.0.0.1:8001");
  EXPECT_EQ(k.token_file, "/var/run/secrets/kubernetes.io/serviceaccount/token");
  EXPECT_THAT(k.namespaces, ElementsAre("default", "shop-prod"));
  EXPECT_THAT(lines(r.diagnostics), ::testing::IsEmpty());

  auto all = test::decode_one("settings.yaml", settings(" {address: \"http://kube:8080\"}\n"));
  ASSERT_TRUE(all.settings().kubernetes_config_source);
  EXPECT_TRUE(all.settings().kubernetes_config_source->namespaces.empty());  // all namespaces
  EXPECT_TRUE(all.settings().kubernetes_config_source->token_file.empty());

  auto none = test::decode_one("settings.yaml", settings(" null\n"));
  EXPECT_FALSE(none.settings().kubernetes_config_source);
}

TEST(KubeDecode, BadValuesNameTheirField) {
  auto f = decode_file("settings.yaml", settings(R"(
    address: https://kubernetes.default.svc
    tokenFile: ""
    namespaces: [default, Default, default]
    kubeconfig: /root/.kube/config
)"));
  ASSERT_EQ(f.resources.size(), 1u);
  EXPECT_THAT(
      lines(f.resources[0].diagnostics),
      ElementsAre(HasSubstr("spec.kubernetesConfigSource.address: https is not supported yet"),
                  HasSubstr("spec.kubernetesConfigSource.tokenFile: must name a file"),
                  HasSubstr("spec.kubernetesConfigSource.namespaces[1]: \"Default\" is not a "
                            "namespace name"),
                  HasSubstr("spec.kubernetesConfigSource.namespaces[2]: \"default\" is listed "
                            "twice"),
                  HasSubstr("spec.kubernetesConfigSource.kubeconfig")));

  auto missing = decode_file("settings.yaml", settings(" {}\n"));
  ASSERT_EQ(missing.resources.size(), 1u);
  EXPECT_THAT(lines(missing.resources[0].diagnostics),
              ElementsAre(HasSubstr("spec.kubernetesConfigSource.address: is required")));

  for (const char* address : {"kube:8080", "http://", "http://:8080", "http://u:p@kube:8080",
                              "http://kube:8080?x=1", "http://ku be"}) {
    auto bad =
        decode_file("settings.yaml", settings(std::string("\n    address: \"") + address + "\"\n"));
    ASSERT_EQ(bad.resources.size(), 1u);
    EXPECT_THAT(lines(bad.resources[0].diagnostics),
                ElementsAre(HasSubstr("spec.kubernetesConfigSource.address")))
        << address;
  }
  // Gloo's other Kubernetes fields stay refused by name.
  auto other = decode_file("settings.yaml",
                           "kind: Settings\nmetadata: {name: default}\nspec:\n"
                           "  kubernetesSecretSource: {}\n");
  ASSERT_EQ(other.resources.size(), 1u);
  EXPECT_THAT(lines(other.resources[0].diagnostics),
              ElementsAre(HasSubstr("kubernetesSecretSource is not supported yet")));
}

}  // namespace
}  // namespace portico::api
