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
using ::testing::UnorderedElementsAre;

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
    address: ftp://kubernetes.default.svc
    tokenFile: ""
    namespaces: [default, Default, default]
    kubeconfig: /root/.kube/config
)"));
  ASSERT_EQ(f.resources.size(), 1u);
  EXPECT_THAT(
      lines(f.resources[0].diagnostics),
      ElementsAre(
          HasSubstr("spec.kubernetesConfigSource.address: \"ftp://kubernetes.default.svc\" is "
                    "not an http:// or https:// URL"),
          HasSubstr("spec.kubernetesConfigSource.tokenFile: must name a file"),
          HasSubstr("spec.kubernetesConfigSource.namespaces[1]: \"Default\" is not a "
                    "namespace name"),
          HasSubstr("spec.kubernetesConfigSource.namespaces[2]: \"default\" is listed "
                    "twice"),
          HasSubstr("spec.kubernetesConfigSource.kubeconfig")));

  // No address: spec.kubernetes's connection, or the in-cluster defaults.
  auto in_cluster = decode_file("settings.yaml", settings(" {}\n"));
  ASSERT_EQ(in_cluster.resources.size(), 1u);
  EXPECT_THAT(lines(in_cluster.resources[0].diagnostics), ::testing::IsEmpty());

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
                           "  kubernetesArtifactSource: {}\n");
  ASSERT_EQ(other.resources.size(), 1u);
  EXPECT_THAT(lines(other.resources[0].diagnostics),
              ElementsAre(HasSubstr("kubernetesArtifactSource is not supported yet")));
}

TEST(KubeDecode, HttpsAndTls) {
  auto r = test::decode_one("settings.yaml", settings(R"(
    address: https://10.96.0.1:443
    tokenFile: /run/token
    caFile: /etc/kube/ca.crt
    certFile: /etc/kube/client.crt
    keyFile: /etc/kube/client.key
    serverName: kubernetes.default.svc
)"));
  ASSERT_TRUE(r.settings().kubernetes_config_source);
  const auto& k = *r.settings().kubernetes_config_source;
  EXPECT_EQ(k.address, "https://10.96.0.1:443");
  EXPECT_EQ(k.tls.ca_file, "/etc/kube/ca.crt");
  EXPECT_EQ(k.tls.cert_file, "/etc/kube/client.crt");
  EXPECT_EQ(k.tls.key_file, "/etc/kube/client.key");
  EXPECT_EQ(k.tls.server_name, "kubernetes.default.svc");
  EXPECT_FALSE(k.tls.insecure_skip_verify);

  auto insecure = test::decode_one(
      "settings.yaml", settings(" {address: \"https://kube:6443\", insecureSkipVerify: true}\n"));
  EXPECT_TRUE(insecure.settings().kubernetes_config_source->tls.insecure_skip_verify);

  // In-cluster (no address) with a CA of its own: accepted, the TLS fields apply to it.
  auto own_ca = test::decode_one("settings.yaml", settings(" {caFile: /etc/ca.crt}\n"));
  EXPECT_EQ(own_ca.settings().kubernetes_config_source->tls.ca_file, "/etc/ca.crt");

  auto bad = decode_file("settings.yaml", settings(R"(
    address: http://kube:8080
    caFile: /etc/ca.crt
    certFile: /etc/client.crt
    caPath: /etc/certs
)"));
  ASSERT_EQ(bad.resources.size(), 1u);
  EXPECT_THAT(
      lines(bad.resources[0].diagnostics),
      ElementsAre(HasSubstr("spec.kubernetesConfigSource.keyFile: is required with certFile"),
                  HasSubstr("spec.kubernetesConfigSource.address: \"http://kube:8080\": TLS "
                            "settings are given but the address is not https://"),
                  HasSubstr("spec.kubernetesConfigSource.caPath")));
}

TEST(KubeDecode, SharedConnectionAndSecretSource) {
  auto r = test::decode_one("settings.yaml",
                            "apiVersion: gateway.portico.dev/v1\nkind: Settings\nmetadata:\n"
                            "  name: default\nspec:\n"
                            "  kubernetes: {address: \"https://kube:6443\", caFile: /ca.crt, "
                            "tokenFile: /token}\n"
                            "  kubernetesSecretSource: {namespaces: [shop]}\n");
  EXPECT_EQ(r.settings().kubernetes.address, "https://kube:6443");
  EXPECT_EQ(r.settings().kubernetes.tls.ca_file, "/ca.crt");
  EXPECT_EQ(r.settings().kubernetes.token_file, "/token");
  ASSERT_TRUE(r.settings().kubernetes_secret_source);
  EXPECT_TRUE(r.settings().kubernetes_secret_source->address.empty());
  EXPECT_THAT(r.settings().kubernetes_secret_source->namespaces, ElementsAre("shop"));

  auto bad = decode_file("settings.yaml",
                         "kind: Settings\nmetadata: {name: default}\nspec:\n"
                         "  kubernetes: {rateLimits: {qps: 5}, kubeconfig: x}\n"
                         "  kubernetesSecretSource: {namespaces: [A]}\n");
  ASSERT_EQ(bad.resources.size(), 1u);
  EXPECT_THAT(lines(bad.resources[0].diagnostics),
              UnorderedElementsAre(HasSubstr("spec.kubernetes.rateLimits: is not supported"),
                                   HasSubstr("spec.kubernetes.kubeconfig"),
                                   HasSubstr("spec.kubernetesSecretSource.namespaces[0]")));
}

std::string upstream(const std::string& kube) {
  return "apiVersion: gateway.portico.dev/v1\nkind: Upstream\nmetadata:\n  name: web\n"
         "  namespace: shop\nspec:\n  kube:" +
         kube;
}

TEST(KubeDecode, KubeUpstream) {
  auto r = test::decode_one("us.yaml", upstream(" {serviceName: web, servicePort: 8080}\n"));
  ASSERT_TRUE(r.upstream().kube);
  EXPECT_EQ(r.upstream().kube->service_name, "web");
  EXPECT_EQ(r.upstream().kube->service_namespace, "shop");  // the Upstream's
  EXPECT_EQ(r.upstream().kube->service_port, 8080);
  EXPECT_TRUE(r.upstream().hosts.empty());

  auto other_ns = test::decode_one(
      "us.yaml", upstream(" {serviceName: web, serviceNamespace: prod, servicePort: 80}\n"));
  EXPECT_EQ(other_ns.upstream().kube->service_namespace, "prod");

  auto bad = decode_file("us.yaml", upstream(R"(
    serviceName: Web
    serviceNamespace: "-x"
    servicePort: 0
    selector: {app: web}
    subsetSpec: {}
)"));
  ASSERT_EQ(bad.resources.size(), 1u);
  EXPECT_THAT(lines(bad.resources[0].diagnostics),
              ElementsAre(HasSubstr("spec.kube.serviceName: \"Web\" is not a Service name"),
                          HasSubstr("spec.kube.serviceNamespace: \"-x\" is not a namespace"),
                          HasSubstr("spec.kube.servicePort"),
                          HasSubstr("spec.kube.selector: kube.selector is not supported"),
                          HasSubstr("spec.kube.subsetSpec: kube.subsetSpec is not supported")));

  auto missing = decode_file("us.yaml", upstream(" {}\n"));
  EXPECT_THAT(lines(missing.resources[0].diagnostics),
              ElementsAre(HasSubstr("spec.kube.serviceName"), HasSubstr("spec.kube.servicePort")));

  auto both = decode_file("us.yaml", upstream(" {serviceName: web, servicePort: 80}\n"
                                              "  static: {hosts: [{addr: 1.2.3.4, port: 80}]}\n"));
  EXPECT_THAT(lines(both.resources[0].diagnostics),
              ElementsAre(HasSubstr("either static or kube")));
}

}  // namespace
}  // namespace portico::api
