// kube_secret_document: a core/v1 Secret becomes the Secret resource the decoder reads
// (kubernetes.io/tls -> tls, others -> generic, base64-decoded); the list/watch and rotation run
// against the Kubernetes double in tests/integration/test_kube_secrets.py.
#include "control/sources/kube_secret_source.h"

#include <gtest/gtest.h>

#include "api/decode.h"
#include "common/base64.h"
#include "control/sources/factory.h"

namespace portico::control {
namespace {

using nlohmann::json;

api::Resource decode(const json& secret) {
  std::string why;
  auto text = kube_secret_document(secret, &why);
  EXPECT_TRUE(text) << why;
  auto decoded = api::decode_file("kube", text.value_or(""));
  EXPECT_EQ(decoded.resources.size(), 1u);
  return decoded.resources.empty() ? api::Resource{} : decoded.resources[0];
}

TEST(KubeSecretSourceTest, TlsSecret) {
  json s = {{"metadata", {{"name", "edge"}, {"namespace", "shop"}, {"resourceVersion", "7"}}},
            {"type", "kubernetes.io/tls"},
            {"data",
             {{"tls.crt", common::base64_encode("CERT")},
              {"tls.key", common::base64_encode("KEY")},
              {"ca.crt", common::base64_encode("CA")}}}};
  std::string why;
  auto text = kube_secret_document(s, &why);
  ASSERT_TRUE(text) << why;
  json doc = json::parse(*text);
  EXPECT_EQ(doc["kind"], "Secret");
  EXPECT_EQ(doc["metadata"]["name"], "edge");
  EXPECT_EQ(doc["metadata"]["namespace"], "shop");
  EXPECT_EQ(doc["spec"]["tls"]["certChain"], "CERT");
  EXPECT_EQ(doc["spec"]["tls"]["privateKey"], "KEY");
  EXPECT_EQ(doc["spec"]["tls"]["rootCa"], "CA");
}

TEST(KubeSecretSourceTest, OpaqueSecretIsGeneric) {
  json s = {{"metadata", {{"name", "keys"}, {"namespace", "shop"}}},
            {"type", "Opaque"},
            {"data", {{"api-key", common::base64_encode("s3cr3t")}}}};
  api::Resource r = decode(s);
  EXPECT_FALSE(r.has_errors());
  EXPECT_EQ(r.secret().generic.at("api-key"), "s3cr3t");
  // No type: Opaque.
  s.erase("type");
  EXPECT_EQ(decode(s).secret().generic.at("api-key"), "s3cr3t");
}

TEST(KubeSecretSourceTest, BadSecrets) {
  std::string why;
  json bad = {{"metadata", {{"name", "x"}, {"namespace", "shop"}}},
              {"data", {{"k", "%%% not base64"}}}};
  EXPECT_FALSE(kube_secret_document(bad, &why));
  EXPECT_EQ(why, "data.k is not base64");
  EXPECT_FALSE(kube_secret_document(json{{"metadata", {{"name", "x"}}}}, &why));
  EXPECT_NE(why.find("metadata.namespace"), std::string::npos);
  EXPECT_FALSE(kube_secret_document(json::array(), &why));
}

TEST(KubeSecretSourceTest, FactoryUsesTheSharedConnection) {
  api::SettingsSpec settings;
  settings.kubernetes_secret_source.emplace();
  settings.kubernetes.address = "http://127.0.0.1:1";  // spec.kubernetes
  auto made = make_sources(settings);
  ASSERT_EQ(made.sources.size(), 1u);
  EXPECT_TRUE(made.errors.empty());
  EXPECT_EQ(made.sources[0]->name(), "kubernetes-secrets");
  EXPECT_NE(sources_fingerprint(settings).find("kubernetesSecrets http://127.0.0.1:1 "),
            std::string::npos)
      << sources_fingerprint(settings);

  // Its own connection: TLS files that do not load are an error naming the file.
  settings.kubernetes_secret_source->address = "https://127.0.0.1:1";
  settings.kubernetes_secret_source->tls.ca_file = "/nonexistent/ca.crt";
  made = make_sources(settings);
  EXPECT_TRUE(made.sources.empty());
  ASSERT_EQ(made.errors.size(), 1u);
  EXPECT_NE(made.errors[0].find("/nonexistent/ca.crt"), std::string::npos) << made.errors[0];
}

}  // namespace
}  // namespace portico::control
