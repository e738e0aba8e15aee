// KubeSource: how an object of the API server becomes the document the decoder reads, and what
// the factory makes of Settings kubernetesConfigSource. The list/watch/410/status behaviour runs
// against the Kubernetes double in tests/integration/test_kube_source.py.
#include "control/sources/kube_source.h"

#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <thread>

#include "api/decode.h"
#include "control/http/client.h"
#include "control/sources/factory.h"

namespace portico::control {
namespace {

const KubeSource::KindInfo& kind(const std::string& name) {
  for (const auto& k : KubeSource::kinds()) {
    if (name == k.kind) return k;
  }
  ADD_FAILURE() << name;
  return KubeSource::kinds().front();
}

TEST(KubeSourceTest, ObjectBecomesADocumentWithoutBookkeeping) {
  const std::string object = R"({
    "apiVersion": "gateway.solo.io/v1", "kind": "VirtualService",
    "metadata": {"name": "shop", "namespace": "prod", "labels": {"team": "web"}, "generation": 3,
                 "resourceVersion": "42", "uid": "u-1", "creationTimestamp": "2026-01-01T00:00:00Z",
                 "managedFields": [{"manager": "kubectl"}],
                 "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{}"}},
    "spec": {"virtualHost": {"domains": ["shop.example"], "routes": [
      {"matchers": [{"prefix": "/"}], "directResponseAction": {"status": 200, "body": "hi"}}]}},
    "status": {"state": "Accepted"}})";
  std::string key, why;
  auto text = KubeSource::document_of(kind("VirtualService"), object, &key, &why);
  ASSERT_TRUE(text) << why;
  EXPECT_EQ(key, "gateway.solo.io/v1/VirtualService/prod/shop");
  EXPECT_EQ(text->find("resourceVersion"), std::string::npos) << *text;
  EXPECT_EQ(text->find("managedFields"), std::string::npos) << *text;
  EXPECT_EQ(text->find("Accepted"), std::string::npos) << *text;  // the status is left out
  auto decoded = api::decode_file(key, *text);
  ASSERT_TRUE(decoded.parsed);
  ASSERT_EQ(decoded.resources.size(), 1u);
  const api::Resource& r = decoded.resources[0];
  EXPECT_TRUE(r.diagnostics.empty()) << r.diagnostics.front().to_string();
  EXPECT_EQ(r.meta.name, "shop");
  EXPECT_EQ(r.meta.ns, "prod");
  EXPECT_EQ(r.meta.generation, 3);
  EXPECT_EQ(r.meta.labels.at("team"), "web");
  EXPECT_EQ(r.api_version, api::kApiVersion);

  // The same object with another resourceVersion and status: the same document.
  std::string again = object;
  again.replace(again.find("\"42\""), 4, "\"57\"");
  again.replace(again.find("\"Accepted\""), 10, "\"Rejected\"");
  std::string key2;
  EXPECT_EQ(KubeSource::document_of(kind("VirtualService"), again, &key2, &why), text);

  EXPECT_FALSE(
      KubeSource::document_of(kind("Upstream"), R"({"metadata": {"name": "x"}})", &key, &why));
  EXPECT_NE(why.find("metadata.namespace"), std::string::npos) << why;
  EXPECT_FALSE(KubeSource::document_of(kind("Upstream"), "[1]", &key, &why));
}

TEST(KubeSourceTest, KindsAreGloos) {
  std::set<std::string> names;
  for (const auto& k : KubeSource::kinds())
    names.insert(std::string(k.group) + "/" + k.version + " " + k.kind + " " + k.plural);
  EXPECT_EQ(names, (std::set<std::string>{
                       "gateway.solo.io/v1 Gateway gateways",
                       "gateway.solo.io/v1 RouteTable routetables",
                       "gateway.solo.io/v1 VirtualService virtualservices",
                       "gloo.solo.io/v1 Upstream upstreams",
                       "gloo.solo.io/v1 UpstreamGroup upstreamgroups",
                   }));
}

TEST(KubeSourceTest, Factory) {
  api::SettingsSpec settings;
  settings.kubernetes_config_source.emplace();
  settings.kubernetes_config_source->address = "http://127.0.0.1:1";
  settings.kubernetes_config_source->namespaces = {"a", "b"};
  auto made = make_sources(settings);
  ASSERT_EQ(made.sources.size(), 1u);
  EXPECT_TRUE(made.errors.empty());
  EXPECT_EQ(made.sources[0]->name(), "kubernetes");
  EXPECT_NE(sources_fingerprint(settings).find("kubernetes http://127.0.0.1:1  [a,b,]"),
            std::string::npos)
      << sources_fingerprint(settings);

  settings.kubernetes_config_source->token_file = "/nonexistent/token";
  made = make_sources(settings);
  EXPECT_TRUE(made.sources.empty());
  ASSERT_EQ(made.errors.size(), 1u);
  EXPECT_NE(made.errors[0].find("kubernetesConfigSource: tokenFile /nonexistent/token"),
            std::string::npos)
      << made.errors[0];
}

// The source against the Kubernetes double (tests/support/kube_double.py, python3), started per
// test on a port picked at run time and stopped by its PID.
class KubeSourceAgainstDouble : public ::testing::Test {
 protected:
  void SetUp() override {
    port_ = free_port();
    const std::string script = std::string(PORTICO_SOURCE_DIR) + "/tests/support/kube_double.py";
    pid_ = ::fork();
    ASSERT_GE(pid_, 0);
    if (pid_ == 0) {
      const std::string port = std::to_string(port_);
      ::execlp("python3", "python3", script.c_str(), "--port", port.c_str(), "--bookmark-interval",
               "0.2", static_cast<char*>(nullptr));
      ::_exit(127);
    }
    http::Client c(url());
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(15);
    while (std::chrono::steady_clock::now() < deadline) {
      http::Request r;
      r.target = "/version";
      auto answer = c.send(r, std::chrono::milliseconds(1000));
      if (answer && answer->status == 200) return;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    FAIL() << "the Kubernetes double did not answer within 15 s";
  }
  void TearDown() override {
    source_.reset();
    if (pid_ > 0) {
      ::kill(pid_, SIGTERM);
      int status = 0;
      ::waitpid(pid_, &status, 0);
    }
  }

  static uint16_t free_port() {
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
    socklen_t len = sizeof a;
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
    ::close(fd);
    return ntohs(a.sin_port);
  }
  http::Url url() const { return http::parse_url(address(), 80).value(); }
  std::string address() const { return "http://127.0.0.1:" + std::to_string(port_); }

  // An HTTP exchange with the double; the status and the body parsed.
  std::pair<int, nlohmann::json> call(const std::string& method, const std::string& target,
                                      const nlohmann::json& body = nullptr) {
    http::Client c(url());
    http::Request r;
    r.method = method;
    r.target = target;
    if (!body.is_null()) {
      r.body = body.dump();
      r.headers.emplace_back("Content-Type", "application/json");
    }
    auto answer = c.send(r, std::chrono::milliseconds(5000));
    if (!answer) return {0, nullptr};
    return {answer->status, nlohmann::json::parse(answer->body, nullptr, false)};
  }
  static nlohmann::json vs(const std::string& name, const std::string& body) {
    return {{"apiVersion", "gateway.solo.io/v1"},
            {"kind", "VirtualService"},
            {"metadata", {{"name", name}}},
            {"spec",
             {{"virtualHost",
               {{"routes",
                 {{{"matchers", {{{"prefix", "/"}}}},
                   {"directResponseAction", {{"status", 200}, {"body", body}}}}}}}}}}};
  }

  void start_source() {
    KubeSourceOptions o;
    o.address = address();
    auto made = KubeSource::make(o);
    ASSERT_TRUE(made);
    source_ = std::move(made.value());
    source_->start([this] { wakes_++; });
  }

  // Polls until `pred(delta)` holds for a delta (each delta is offered once); false on timeout.
  template <typename Pred>
  bool poll_until(Pred pred, std::chrono::milliseconds timeout = std::chrono::milliseconds(5000)) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
      Delta d = source_->poll(false);
      if (pred(d)) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return false;
  }

  static constexpr const char* kBase =
      "/apis/gateway.solo.io/v1/namespaces/default/virtualservices";
  uint16_t port_ = 0;
  pid_t pid_ = -1;
  std::unique_ptr<KubeSource> source_;
  std::atomic<int> wakes_{0};
};

TEST_F(KubeSourceAgainstDouble, ListWatchStatusAndRelist) {
  ASSERT_EQ(call("POST", kBase, vs("one", "1")).first, 201);
  start_source();
  const std::string one = "gateway.solo.io/v1/VirtualService/default/one";
  const std::string two = "gateway.solo.io/v1/VirtualService/default/two";
  auto upserted = [](const std::string& key) {
    return [key](const Delta& d) {
      for (const auto& u : d.upserts) {
        if (u.origin.key == key) return true;
      }
      return false;
    };
  };
  ASSERT_TRUE(poll_until(upserted(one))) << "listed";
  EXPECT_GT(wakes_.load(), 0);
  ASSERT_EQ(call("POST", kBase, vs("two", "2")).first, 201);
  ASSERT_TRUE(poll_until(upserted(two))) << "watched";
  ASSERT_EQ(call("DELETE", std::string(kBase) + "/one").first, 200);
  ASSERT_TRUE(poll_until([&](const Delta& d) {
    for (const auto& r : d.removals) {
      if (r.key == one) return true;
    }
    return false;
  })) << "deleted";
  EXPECT_TRUE(source_->problem().empty()) << source_->problem();

  // A status through the status subresource; the object's spec and generation stay.
  ResourceStatus st;
  st.kind = "VirtualService";
  st.ns = "default";
  st.name = "two";
  st.file = two;
  st.source = "kubernetes";
  st.generation = 1;
  st.state = State::kAccepted;
  source_->report_statuses({st}, {});
  nlohmann::json object;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (std::chrono::steady_clock::now() < deadline) {
    object = call("GET", std::string(kBase) + "/two").second;
    if (object.contains("status")) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  ASSERT_TRUE(object.contains("status")) << object.dump();
  EXPECT_EQ(object["status"]["state"], "Accepted");
  EXPECT_EQ(object["status"]["observedGeneration"], 1);
  EXPECT_EQ(object["metadata"]["generation"], 1);
  // The status write changed the resourceVersion only: nothing to decode again.
  EXPECT_FALSE(poll_until(upserted(two), std::chrono::milliseconds(500)));
  EXPECT_EQ(source_->counters().status_writes, 1u);

  // A watch left behind (410): the kind is listed again; what changed meanwhile is applied once.
  const uint64_t lists = source_->counters().lists;
  ASSERT_EQ(call("POST", "/_double/expire_watches").first, 200);
  ASSERT_EQ(call("PUT", std::string(kBase) + "/two",
                 [&] {
                   nlohmann::json edit = object;
                   edit["spec"] = vs("two", "changed")["spec"];
                   return edit;
                 }())
                .first,
            200);
  ASSERT_TRUE(poll_until(upserted(two))) << "the edit after the 410";
  EXPECT_GE(source_->counters().expired, 1u);
  EXPECT_GT(source_->counters().lists, lists);
  EXPECT_GT(source_->counters().bookmarks, 0u);
  EXPECT_NE(source_->stats().find("portico_kubernetes_expired_total"), std::string::npos);
}

TEST_F(KubeSourceAgainstDouble, AMissingApiServerIsAProblem) {
  ::kill(pid_, SIGTERM);
  int status = 0;
  ::waitpid(pid_, &status, 0);
  pid_ = -1;
  start_source();
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (source_->problem().empty() && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  const std::string p = source_->problem();
  EXPECT_NE(p.find(address()), std::string::npos) << p;
  EXPECT_NE(p.find("serving the 0 resource(s) it delivered before"), std::string::npos) << p;
}

}  // namespace
}  // namespace portico::control
