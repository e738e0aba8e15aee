// kube::resolve and kube::choose: which API server a Settings block means, with the in-cluster
// defaults (KUBERNETES_SERVICE_HOST/PORT, the service account's CA and token).
#include "control/sources/kube_api.h"

#include <gtest/gtest.h>

#include <map>
#include <string>

namespace portico::control::kube {
namespace {

std::function<const char*(const char*)> env_of(const std::map<std::string, std::string>& vars) {
  return [vars](const char* name) -> const char* {
    auto it = vars.find(name);
    return it == vars.end() ? nullptr : it->second.c_str();
  };
}

TEST(KubeApiTest, InClusterDefaults) {
  api::KubernetesApiSpec none;
  auto r = resolve(
      none, env_of({{"KUBERNETES_SERVICE_HOST", "10.96.0.1"}, {"KUBERNETES_SERVICE_PORT", "443"}}),
      "/sa");
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->address, "https://10.96.0.1:443");
  EXPECT_EQ(r->tls.ca_file, "/sa/ca.crt");
  EXPECT_EQ(r->token_file, "/sa/token");
  auto url = url_of(*r);
  EXPECT_FALSE(url);  // /sa/ca.crt does not exist: the error names it
  EXPECT_NE(url.error().message.find("/sa/ca.crt"), std::string::npos) << url.error().message;

  // IPv6, no port: 443; a token file and CA of one's own are kept.
  api::KubernetesApiSpec own;
  own.token_file = "/t";
  own.tls.insecure_skip_verify = true;
  auto v6 = resolve(own, env_of({{"KUBERNETES_SERVICE_HOST", "fd00::1"}}), "/sa");
  ASSERT_TRUE(v6);
  EXPECT_EQ(v6->address, "https://[fd00::1]:443");
  EXPECT_EQ(v6->token_file, "/t");
  EXPECT_TRUE(v6->tls.ca_file.empty());  // insecureSkipVerify: no CA

  auto outside = resolve(none, env_of({}), "/sa");
  ASSERT_FALSE(outside);
  EXPECT_NE(outside.error().message.find("KUBERNETES_SERVICE_HOST"), std::string::npos);

  auto bad_port = resolve(
      none, env_of({{"KUBERNETES_SERVICE_HOST", "h"}, {"KUBERNETES_SERVICE_PORT", "x1"}}), "/sa");
  EXPECT_FALSE(bad_port);

  // An address given: nothing filled in.
  api::KubernetesApiSpec given;
  given.address = "http://127.0.0.1:8001";
  auto g = resolve(given, env_of({{"KUBERNETES_SERVICE_HOST", "10.96.0.1"}}), "/sa");
  ASSERT_TRUE(g);
  EXPECT_EQ(*g, given);
  auto gu = url_of(*g);
  ASSERT_TRUE(gu);
  EXPECT_EQ(label_of(*gu), "http://127.0.0.1:8001");
}

TEST(KubeApiTest, ChooseOwnOrShared) {
  api::KubernetesApiSpec own, shared;
  shared.address = "https://kube:6443";
  EXPECT_EQ(&choose(own, shared), &shared);
  own.token_file = "/t";
  EXPECT_EQ(&choose(own, shared), &own);
}

TEST(KubeApiTest, HeadersReadTheTokenEachTime) {
  std::vector<std::pair<std::string, std::string>> h;
  std::string error;
  ASSERT_TRUE(headers("", &h, &error));
  ASSERT_EQ(h.size(), 1u);
  EXPECT_FALSE(headers("/nonexistent/token", &h, &error));
  EXPECT_NE(error.find("/nonexistent/token"), std::string::npos);
}

}  // namespace
}  // namespace portico::control::kube
