#include "control/discovery/nomad_discovery.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <deque>

#include "api/decode_helpers.h"
#include "control/pipeline.h"

namespace portico::control {
namespace {

using ::testing::HasSubstr;
using Canary = snapshot::DiscoveryTarget::Canary;

// Shaped as Nomad answers GET /v1/service/web: two stable allocations, one canary (registered with
// the job's canary_tags), one on another port of the first node.
constexpr const char* kAnswer = R"([
  {"ID": "_nomad-task-a1-group-web-web-http", "ServiceName": "web", "Namespace": "default",
   "NodeID": "n1", "Datacenter": "dc1", "JobID": "web", "AllocID": "a1",
   "Tags": ["web", "v1"], "Address": "10.0.0.2", "Port": 8080, "CreateIndex": 10, "ModifyIndex": 10},
  {"ID": "_nomad-task-a2-group-web-web-http", "ServiceName": "web", "Namespace": "default",
   "NodeID": "n2", "Datacenter": "dc1", "JobID": "web", "AllocID": "a2",
   "Tags": ["web", "v1"], "Address": "10.0.0.1", "Port": 8080, "CreateIndex": 11, "ModifyIndex": 11},
  {"ID": "_nomad-task-a3-group-web-web-http", "ServiceName": "web", "Namespace": "default",
   "NodeID": "n3", "Datacenter": "dc1", "JobID": "web", "AllocID": "a3",
   "Tags": ["web", "canary"], "Address": "10.0.0.3", "Port": 9090, "CreateIndex": 12, "ModifyIndex": 12},
  {"ID": "_nomad-task-a4-group-web-web-admin", "ServiceName": "web", "Namespace": "default",
   "NodeID": "n1", "Datacenter": "dc1", "JobID": "web", "AllocID": "a4",
   "Tags": null, "Address": "10.0.0.2", "Port": 8081, "CreateIndex": 13, "ModifyIndex": 13}
])";

snapshot::DiscoveryTarget target(std::vector<std::string> tags = {},
                                 Canary canary = Canary::kInclude,
                                 std::vector<std::string> canary_tags = {}) {
  snapshot::DiscoveryTarget t;
  t.source = "nomad";
  t.name = "web";
  t.ns = "default";
  t.tags = std::move(tags);
  t.canary = canary;
  t.canary_tags = std::move(canary_tags);
  return t;
}

std::vector<std::string> addresses(const std::vector<snapshot::Endpoint>& eps) {
  std::vector<std::string> out;
  for (const auto& e : eps)
    out.push_back(e.address + ":" + std::to_string(e.port));
  return out;
}

TEST(NomadDiscovery, RegistrationsParse) {
  auto r = parse_service_registrations(kAnswer);
  ASSERT_TRUE(r) << r.error().message;
  ASSERT_EQ(r.value().size(), 4u);
  EXPECT_EQ(r.value()[2].id, "_nomad-task-a3-group-web-web-http");
  EXPECT_EQ(r.value()[2].address, "10.0.0.3");
  EXPECT_EQ(r.value()[2].port, 9090);
  EXPECT_EQ(r.value()[2].tags, (std::vector<std::string>{"web", "canary"}));
  EXPECT_TRUE(r.value()[3].tags.empty());
  auto empty = parse_service_registrations("[]");
  ASSERT_TRUE(empty);
  EXPECT_TRUE(empty.value().empty());
}

TEST(NomadDiscovery, EveryRegistrationIsAnEndpointSorted) {
  auto r = parse_service_registrations(kAnswer);
  ASSERT_TRUE(r);
  EXPECT_EQ(addresses(select_instances(r.value(), target())),
            (std::vector<std::string>{"10.0.0.1:8080", "10.0.0.2:8080", "10.0.0.2:8081",
                                      "10.0.0.3:9090"}));
  EXPECT_EQ(addresses(select_instances(r.value(), target({"web", "v1"}))),
            (std::vector<std::string>{"10.0.0.1:8080", "10.0.0.2:8080"}));
  EXPECT_TRUE(select_instances(r.value(), target({"v3"})).empty());
}

TEST(NomadDiscovery, CanarySelection) {
  auto r = parse_service_registrations(kAnswer);
  ASSERT_TRUE(r);
  EXPECT_EQ(addresses(select_instances(r.value(), target({"web"}, Canary::kOnly, {"canary"}))),
            (std::vector<std::string>{"10.0.0.3:9090"}));
  EXPECT_EQ(addresses(select_instances(r.value(), target({"web"}, Canary::kExclude, {"canary"}))),
            (std::vector<std::string>{"10.0.0.1:8080", "10.0.0.2:8080"}));
  // include: every instance, canaries or not.
  EXPECT_EQ(select_instances(r.value(), target({"web"}, Canary::kInclude, {"canary"})).size(), 3u);
  // A canary carries every canary tag: one of two is not enough.
  EXPECT_TRUE(select_instances(r.value(), target({}, Canary::kOnly, {"canary", "v2"})).empty());
}

TEST(NomadDiscovery, AddressesThatAreNotIpsAreLeftOut) {
  std::vector<NomadRegistration> regs = {{"a", "web.internal", 80, {}}, {"b", "::1", 81, {}}};
  size_t skipped = 0;
  EXPECT_EQ(addresses(select_instances(regs, target(), &skipped)),
            (std::vector<std::string>{"::1:81"}));
  EXPECT_EQ(skipped, 1u);
}

TEST(NomadDiscovery, GarbageIsAnError) {
  EXPECT_THAT(parse_service_registrations("<html>").error().message, HasSubstr("not JSON"));
  EXPECT_THAT(parse_service_registrations("{}").error().message, HasSubstr("not a JSON array"));
  EXPECT_THAT(parse_service_registrations(R"([{"Address": "1.2.3.4", "Port": 1}])").error().message,
              HasSubstr("no ID"));
  EXPECT_THAT(parse_service_registrations(R"([{"ID": "x", "Port": 1}])").error().message,
              HasSubstr("x: no Address"));
  EXPECT_THAT(parse_service_registrations(R"([{"ID": "x", "Address": "1.2.3.4", "Port": 0}])")
                  .error()
                  .message,
              HasSubstr("Port"));
  EXPECT_THAT(
      parse_service_registrations(R"([{"ID": "x", "Address": "1.2.3.4", "Port": 80, "Tags": "a"}])")
          .error()
          .message,
      HasSubstr("Tags is not an array"));
}

TEST(NomadDiscovery, QueryTarget) {
  NomadDiscoveryOptions o;
  o.wait = std::chrono::milliseconds(5000);
  auto t = target();
  t.name = "web api";
  t.ns = "prod";
  EXPECT_EQ(service_query_target(o, t, 0), "/v1/service/web%20api?namespace=prod");
  EXPECT_EQ(service_query_target(o, t, 42),
            "/v1/service/web%20api?namespace=prod&index=42&wait=5000ms");
  o.region = "eu";
  o.url.path = "/nomad";
  EXPECT_EQ(service_query_target(o, t, 42, "_nomad-task-x"),
            "/nomad/v1/service/web%20api?namespace=prod&region=eu&next_token=_nomad-task-x");
}

// A stub agent: the requests sent, and the answers to give in order.
struct Stub {
  std::vector<http::Request> sent;
  std::deque<Result<http::Response>> answers;
  NomadSend send() {
    return [this](const http::Request& req, std::chrono::milliseconds) {
      sent.push_back(req);
      Result<http::Response> r = std::move(answers.front());
      answers.pop_front();
      return r;
    };
  }
  void answer(std::string body, std::string index, std::string next = {}, int status = 200) {
    http::Response r;
    r.status = status;
    r.body = std::move(body);
    if (!index.empty()) r.headers.emplace_back("x-nomad-index", index);
    if (!next.empty()) r.headers.emplace_back("x-nomad-nexttoken", next);
    answers.push_back(std::move(r));
  }
};

std::string reg(const std::string& id, const std::string& address) {
  return R"({"ID": ")" + id + R"(", "Address": ")" + address + R"(", "Port": 80, "Tags": []})";
}

TEST(NomadDiscovery, PagesAreReadTogetherWithTheFirstIndex) {
  Stub stub;
  stub.answer("[" + reg("a", "10.0.0.1") + "," + reg("b", "10.0.0.2") + "]", "42", "c");
  stub.answer("[" + reg("c", "10.0.0.3") + "]", "43");
  NomadDiscoveryOptions o;
  o.token = "secret";
  BlockingAnswer a = query_nomad_service(stub.send(), o, target(), 41);
  ASSERT_TRUE(a.endpoints) << a.problem;
  EXPECT_EQ(a.problem, "");
  EXPECT_EQ(a.endpoints->size(), 3u);
  EXPECT_EQ(a.index, 42u);
  ASSERT_EQ(stub.sent.size(), 2u);
  EXPECT_EQ(stub.sent[0].target, "/v1/service/web?namespace=default&index=41&wait=60000ms");
  EXPECT_EQ(stub.sent[1].target, "/v1/service/web?namespace=default&next_token=c");
  for (const auto& req : stub.sent) {
    ASSERT_EQ(req.headers.size(), 1u);
    EXPECT_EQ(req.headers[0].first, "X-Nomad-Token");
    EXPECT_EQ(req.headers[0].second, "secret");
  }
}

TEST(NomadDiscovery, FailuresAndEmptyAnswers) {
  Stub stub;
  stub.answer("Permission denied", "", "", 403);
  BlockingAnswer denied = query_nomad_service(stub.send(), {}, target(), 0);
  EXPECT_FALSE(denied.endpoints);
  EXPECT_EQ(denied.problem, "Nomad answered 403: Permission denied");

  stub.answer("[]", "");
  BlockingAnswer no_index = query_nomad_service(stub.send(), {}, target(), 0);
  EXPECT_FALSE(no_index.endpoints);
  EXPECT_THAT(no_index.problem, HasSubstr("X-Nomad-Index"));

  stub.answer("[" + reg("a", "10.0.0.1") + "]", "7", "x");
  stub.answer("{not json", "7");
  BlockingAnswer bad_page = query_nomad_service(stub.send(), {}, target(), 0);
  EXPECT_FALSE(bad_page.endpoints);
  EXPECT_THAT(bad_page.problem, HasSubstr("not understood"));

  stub.answers.push_back(Error::invalid("connection refused"));
  BlockingAnswer down = query_nomad_service(stub.send(), {}, target(), 0);
  EXPECT_FALSE(down.endpoints);
  EXPECT_THAT(down.problem, HasSubstr("Nomad unreachable: connection refused"));

  stub.answer("[]", "9");
  BlockingAnswer none = query_nomad_service(stub.send(), {}, target(), 0);
  ASSERT_TRUE(none.endpoints);
  EXPECT_TRUE(none.endpoints->empty());
  EXPECT_EQ(none.problem, "service not found in Nomad");

  stub.answer("[" + reg("a", "10.0.0.1") + "]", "10");
  BlockingAnswer no_canary =
      query_nomad_service(stub.send(), {}, target({}, Canary::kOnly, {"canary"}), 0);
  ASSERT_TRUE(no_canary.endpoints);
  EXPECT_TRUE(no_canary.endpoints->empty());
  EXPECT_THAT(no_canary.problem, HasSubstr("no canary instance"));
}

TEST(NomadDiscovery, UnreachableAgentIsAProblem) {
  NomadDiscovery d;
  d.start([] {});
  d.watch({target()});
  EXPECT_FALSE(d.wait_first(std::chrono::milliseconds(10)));  // not configured: no query
  EXPECT_EQ(d.counters().queries, 0u);
  NomadDiscoveryOptions o;
  o.url.host = "127.0.0.1";
  o.url.port = 1;  // nothing listens there
  d.configure(o);
  EXPECT_TRUE(d.wait_first(std::chrono::milliseconds(3000)));
  auto found = d.poll();
  ASSERT_TRUE(found);
  ASSERT_EQ(found->count("nomad:web/default"), 1u);
  EXPECT_THAT(found->at("nomad:web/default").problem, HasSubstr("Nomad unreachable"));
  EXPECT_GE(d.counters().failures, 1u);
  EXPECT_EQ(d.counters().services, 1u);
  d.watch({});
  EXPECT_EQ(d.counters().services, 0u);
}

const snapshot::Cluster* cluster(const BuildResult& r, const std::string& name) {
  for (const auto& c : r.config->clusters)
    if (c.name == name) return &c;
  return nullptr;
}

TEST(NomadDiscovery, UpstreamDecodesAndTranslatesToTargets) {
  BuildResult r = build_from_files({{"n.yaml", R"(kind: Upstream
metadata: {name: web}
spec:
  nomad:
    serviceName: web
    namespace: prod
    tags: [http]
---
kind: Upstream
metadata: {name: web-canary}
spec:
  nomad: {serviceName: web, canaryTags: [canary, v2], canary: only}
---
kind: Upstream
metadata: {name: web-stable}
spec:
  nomad: {serviceName: web, canaryTags: [canary], canary: exclude}
)"}},
                                   1);
  ASSERT_TRUE(r.config);
  const snapshot::Cluster* c = cluster(r, "default/web");
  ASSERT_NE(c, nullptr);
  ASSERT_EQ(c->discovery.size(), 1u);
  EXPECT_EQ(c->discovery[0].key(), "nomad:web/prod#http");
  EXPECT_EQ(c->discovery[0].port, 0);
  EXPECT_TRUE(c->endpoints.empty());
  const snapshot::Cluster* canary = cluster(r, "default/web-canary");
  ASSERT_NE(canary, nullptr);
  ASSERT_EQ(canary->discovery.size(), 1u);
  EXPECT_EQ(canary->discovery[0].key(), "nomad:web/default~canary-only#canary#v2");
  EXPECT_EQ(canary->discovery[0].canary, Canary::kOnly);
  const snapshot::Cluster* stable = cluster(r, "default/web-stable");
  ASSERT_NE(stable, nullptr);
  EXPECT_EQ(stable->discovery[0].key(), "nomad:web/default~canary-excluded#canary");
}

std::string diagnostics(const std::string& yaml) {
  auto f = api::decode_file("u.yaml", yaml);
  std::string all;
  for (const auto& r : f.resources)
    for (const auto& d : r.diagnostics)
      all += d.to_string() + "\n";
  return all;
}

TEST(NomadDiscovery, UpstreamRejectsWhatIsNotImplemented) {
  std::string all = diagnostics(R"(kind: Upstream
metadata: {name: web}
spec:
  static: {hosts: [{addr: 10.0.0.1, port: 80}]}
  nomad:
    serviceName: "web/x"
    namespace: "*"
    tags: [""]
    canary: sometimes
    filter: 'Tags contains "x"'
    other: 1
)");
  EXPECT_THAT(all, HasSubstr("spec.nomad.serviceName: \"web/x\" is not a Nomad service name"));
  EXPECT_THAT(all, HasSubstr("spec.nomad.namespace: \"*\" is not a Nomad namespace"));
  EXPECT_THAT(all, HasSubstr("spec.nomad.tags[0]: must not be empty"));
  EXPECT_THAT(all, HasSubstr("spec.nomad.canary: \"sometimes\": expected include"));
  EXPECT_THAT(all, HasSubstr("spec.nomad.filter: nomad.filter is not supported"));
  EXPECT_THAT(all, HasSubstr("spec.nomad.other"));
  EXPECT_THAT(all, HasSubstr("either static or nomad"));
  EXPECT_THAT(diagnostics("kind: Upstream\nmetadata: {name: web}\nspec:\n  nomad: {}\n"),
              HasSubstr("serviceName"));
  EXPECT_THAT(diagnostics("kind: Upstream\nmetadata: {name: web}\nspec:\n  nomad: {serviceName: "
                          "web, canary: only}\n"),
              HasSubstr("spec.nomad.canary: canary: only needs canaryTags"));
  EXPECT_THAT(diagnostics("kind: Upstream\nmetadata: {name: web}\nspec:\n  consul: {serviceName: "
                          "web}\n  nomad: {serviceName: web}\n"),
              HasSubstr("either consul or nomad"));
}

TEST(NomadDiscovery, SettingsDecode) {
  std::string ok = diagnostics(R"(kind: Settings
metadata: {name: default}
spec:
  nomad: {address: "nomad.internal:4646", token: t, region: eu-west, waitTime: 30s}
)");
  EXPECT_EQ(ok, "");
  std::string bad = diagnostics(R"(kind: Settings
metadata: {name: default}
spec:
  nomad:
    address: "http://nomad:4646"
    token: t
    tokenFile: /run/t
    region: "eu west"
    waitTime: 11m
    caFile: /ca.pem
    other: 1
)");
  EXPECT_THAT(bad, HasSubstr("spec.nomad.address: \"http://nomad:4646\": TLS settings are given "
                             "but the address is not https://"));
  EXPECT_THAT(bad, HasSubstr("spec.nomad.tokenFile: give token or tokenFile, not both"));
  EXPECT_THAT(bad, HasSubstr("spec.nomad.region: \"eu west\" is not a region name"));
  EXPECT_THAT(bad, HasSubstr("spec.nomad.waitTime: must be from 1s to 10m"));
  EXPECT_THAT(bad, HasSubstr("spec.nomad.other"));
}

}  // namespace
}  // namespace portico::control
