#include "control/pipeline.h"
#include "api/decode_helpers.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <random>
#include <stdexcept>
#include <thread>

#include "control/sources/file_source.h"

namespace portico::control {
namespace {

namespace fs = std::filesystem;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

class TempDir {
 public:
  TempDir() {
    std::random_device rd;
    path_ = fs::temp_directory_path() /
            ("portico-pipeline-" + std::to_string(::getpid()) + "-" + std::to_string(rd()));
    fs::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  const fs::path& path() const { return path_; }
  void write(const std::string& name, const std::string& content) const {
    fs::create_directories((path_ / name).parent_path());
    // A new file each time (like an editor's rename), so that its inode changes even when the
    // size and modification time would not.
    fs::path tmp = path_ / (name + ".tmp~");
    std::ofstream(tmp, std::ios::binary | std::ios::trunc) << content;
    fs::rename(tmp, path_ / name);
  }
  void remove(const std::string& name) const { fs::remove(path_ / name); }

 private:
  fs::path path_;
};

int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

const char* kGateway = R"(kind: Gateway
metadata: {name: public}
spec: {bindPort: 8080}
)";

const char* kUpstream = R"(kind: Upstream
metadata: {name: echo}
spec:
  static:
    hosts: [{addr: 127.0.0.1, port: 9000}]
)";

const char* kService = R"(kind: VirtualService
metadata: {name: shop}
spec:
  virtualHost:
    routes:
      - matchers: [{prefix: /}]
        routeAction: {single: {upstream: {name: echo}}}
)";

std::string service_with_route(const std::string& matcher) {
  return "kind: VirtualService\nmetadata: {name: shop}\nspec:\n  virtualHost:\n    routes:\n"
         "      - matchers: [" +
         matcher + "]\n        directResponseAction: {status: 200, body: x}\n";
}

const ResourceStatus* find(const BuildResult& r, const std::string& kind, const std::string& name) {
  for (const auto& s : r.resources) {
    if (s.kind == kind && s.name == name) return &s;
  }
  return nullptr;
}

using api::test::lines;

// A pipeline over a directory whose publications are recorded.
class Harness {
 public:
  explicit Harness(const fs::path& dir, TranslateFn translate = {})
      : pipeline_(
            std::make_unique<FileSource>(dir),
            [this](std::shared_ptr<const snapshot::ProxyConfig> c) {
              if (throw_on_publish) throw std::runtime_error("publish failed");
              published.push_back(c);
              return failures;
            },
            std::move(translate)) {}

  const BuildResult& sync(bool full = false) {
    last = pipeline_.sync(full, now_ms());
    return pipeline_.current();
  }
  Pipeline& pipeline() { return pipeline_; }

  std::vector<std::shared_ptr<const snapshot::ProxyConfig>> published;
  std::vector<ListenerFailure> failures;
  bool throw_on_publish = false;
  Pipeline::SyncResult last;

 private:
  Pipeline pipeline_;
};

TEST(ControlPipeline, BuildsADirectory) {
  TempDir dir;
  dir.write("gateway.yaml", kGateway);
  dir.write("sub/upstream.yml", kUpstream);
  dir.write("sub/deeper/shop.json",
            R"({"kind": "VirtualService", "metadata": {"name": "shop"},
               "spec": {"virtualHost": {"routes": [{"matchers": [{"prefix": "/"}],
                        "routeAction": {"single": {"upstream": {"name": "echo"}}}}]}}})");
  dir.write("notes.txt", "not: [config");
  dir.write(".hidden.yaml", "not: [config");
  Harness h(dir.path());
  const BuildResult& r = h.sync();
  EXPECT_TRUE(h.last.published);
  EXPECT_EQ(h.last.version, 1u);
  EXPECT_THAT(lines(r.file_errors), IsEmpty());
  EXPECT_TRUE(r.ok());
  ASSERT_EQ(r.resources.size(), 3u);
  EXPECT_EQ(r.resources[0].kind, "Gateway");
  EXPECT_EQ(r.resources[1].kind, "Upstream");
  EXPECT_EQ(r.resources[1].file, "sub/upstream.yml");
  EXPECT_EQ(r.resources[1].source, "file");
  EXPECT_EQ(r.resources[2].kind, "VirtualService");
  EXPECT_EQ(r.resources[2].file, "sub/deeper/shop.json");
  for (const auto& s : r.resources) {
    EXPECT_EQ(s.state, State::kAccepted) << s.name << ": " << lines(s.reasons).size();
    EXPECT_NE(s.generation, 0);
    EXPECT_EQ(s.serving_generation, 0);
  }
  ASSERT_EQ(h.published.size(), 1u);
  EXPECT_EQ(h.published[0]->version, 1u);
  ASSERT_EQ(h.published[0]->listeners.size(), 1u);
  ASSERT_EQ(h.published[0]->listeners[0].virtual_hosts.size(), 1u);
  EXPECT_EQ(h.published[0]->listeners[0].virtual_hosts[0]->name, "default/shop");
  ASSERT_EQ(h.published[0]->clusters.size(), 1u);
  EXPECT_EQ(h.published[0]->clusters[0].name, "default/echo");
}

// A discovery source that hands the pipeline `next` at its next poll (nullopt: nothing new).
class FakeDiscovery : public DiscoverySource {
 public:
  std::string_view name() const override { return "dns"; }
  void start(std::function<void()>) override {}
  void watch(const std::vector<snapshot::DiscoveryTarget>&) override {}
  std::optional<DiscoveredMap> poll() override { return std::exchange(next, std::nullopt); }
  std::optional<DiscoveredMap> next;
};

TEST(ControlPipeline, ADiscoveryAnswerThatChangesNothingPublishesNothing) {
  TempDir dir;
  dir.write("gateway.yaml", kGateway);
  dir.write("upstream.yaml", kUpstream);
  dir.write("shop.yaml", kService);
  Harness h(dir.path());
  auto fake = std::make_unique<FakeDiscovery>();
  FakeDiscovery* d = fake.get();
  h.pipeline().add_discovery(std::move(fake));
  h.sync();
  ASSERT_EQ(h.published.size(), 1u);
  snapshot::Endpoint e;
  e.address = "10.0.0.1";
  e.port = 80;
  const DiscoveredMap found = {{"dns:api.internal:80", Discovered{{e}, ""}}};
  d->next = found;
  h.sync();
  EXPECT_EQ(h.published.size(), 2u) << "what discovery found is new";
  // The same answer again (a source re-reading after a reconnect, a first poll after start):
  // nothing to publish.
  d->next = found;
  h.sync();
  EXPECT_FALSE(h.last.published);
  EXPECT_EQ(h.published.size(), 2u);
  d->next = DiscoveredMap{};
  h.sync();
  EXPECT_EQ(h.published.size(), 3u) << "the endpoints went";
  d->next = DiscoveredMap{};
  h.sync();
  EXPECT_EQ(h.published.size(), 3u);
}

TEST(ControlPipeline, BrokenFileKeepsItsPreviousResources) {
  TempDir dir;
  dir.write("gateway.yaml", kGateway);
  dir.write("upstream.yaml", kUpstream);
  dir.write("shop.yaml", kService);
  Harness h(dir.path());
  ASSERT_TRUE(h.sync().ok());

  dir.write("upstream.yaml", "kind: Upstream\nmetadata: {name: echo\n");  // unterminated flow map
  const BuildResult& r = h.sync();
  EXPECT_FALSE(r.ok());
  EXPECT_FALSE(h.last.published);  // the resources in force did not change
  ASSERT_EQ(r.file_errors.size(), 2u);
  EXPECT_EQ(r.file_errors[0].file, "upstream.yaml");
  EXPECT_EQ(r.file_errors[0].to_string(),
            "upstream.yaml: warning: keeping the 1 resource(s) of this file's last good version "
            "in force");
  EXPECT_EQ(r.file_errors[1].line, 3);
  EXPECT_THAT(r.file_errors[1].message, ::testing::StartsWith("invalid YAML: "));
  ASSERT_NE(find(r, "Upstream", "echo"), nullptr);
  EXPECT_EQ(find(r, "Upstream", "echo")->state, State::kAccepted);
  EXPECT_EQ(find(r, "VirtualService", "shop")->state, State::kAccepted);

  // Deleting the file removes its resources: the route now points nowhere and answers 503, the
  // VirtualService stays served with a warning.
  dir.remove("upstream.yaml");
  const BuildResult& r2 = h.sync();
  EXPECT_TRUE(h.last.published);
  EXPECT_THAT(lines(r2.file_errors), IsEmpty());
  EXPECT_EQ(find(r2, "Upstream", "echo"), nullptr);
  const auto* shop = find(r2, "VirtualService", "shop");
  ASSERT_NE(shop, nullptr);
  EXPECT_EQ(shop->state, State::kWarning);
  EXPECT_THAT(lines(shop->reasons),
              ElementsAre("shop.yaml:7:42: warning: spec.virtualHost.routes[0].routeAction.single."
                          "upstream: upstream default/echo not found; the route answers 503"));
  const auto& cfg = *h.published.back();
  EXPECT_TRUE(cfg.clusters.empty());
  ASSERT_EQ(cfg.listeners.size(), 1u);
  ASSERT_EQ(cfg.listeners[0].virtual_hosts.size(), 1u);
  EXPECT_EQ(cfg.listeners[0].virtual_hosts[0]->routes.size(), 1u);
}

TEST(ControlPipeline, GenerationIsDerivedFromTheResourceAndSurvivesRestarts) {
  TempDir dir;
  dir.write("gateway.yaml", kGateway);
  int64_t g1 = 0;
  {
    Harness h(dir.path());
    g1 = h.sync().resources.at(0).generation;
    EXPECT_NE(g1, 0);
    EXPECT_EQ(h.sync().resources.at(0).generation, g1);
  }
  // A new process (a restart) sees the same generation: nothing is counted in memory.
  Harness h(dir.path());
  EXPECT_EQ(h.sync().resources.at(0).generation, g1);
  // Same spec, different layout and labels: same generation.
  dir.write(
      "gateway.yaml",
      "kind: Gateway\nmetadata:\n  name: public\n  labels: {a: b}\nspec:\n  bindPort: 8080\n");
  EXPECT_EQ(h.sync().resources.at(0).generation, g1);
  dir.write("gateway.yaml", "kind: Gateway\nmetadata: {name: public}\nspec: {bindPort: 8081}\n");
  const BuildResult& r = h.sync();
  int64_t g2 = r.resources.at(0).generation;
  EXPECT_NE(g2, g1);
  EXPECT_EQ(h.published.back()->listeners.at(0).port, 8081);
  // Moving the resource to another file keeps its identity.
  dir.remove("gateway.yaml");
  dir.write("other.yaml", "kind: Gateway\nmetadata: {name: public}\nspec: {bindPort: 8081}\n");
  const BuildResult& r2 = h.sync();
  EXPECT_EQ(r2.resources.at(0).generation, g2);
  EXPECT_EQ(r2.resources.at(0).file, "other.yaml");
}

TEST(ControlPipeline, DuplicateAcrossFilesRejectsTheNewcomer) {
  TempDir dir;
  dir.write("a.yaml", kGateway);
  dir.write("b.yaml",
            "# comment\nkind: Gateway\nmetadata: {name: public}\nspec: {bindPort: 9090}\n");
  BuildResult r = validate_directory(dir.path());
  EXPECT_FALSE(r.ok());
  EXPECT_THAT(lines(r.file_errors),
              ElementsAre("b.yaml:2:1: error: metadata.name: Gateway default/public is already "
                          "defined at a.yaml:1:1 (in force); this definition is rejected"));
  ASSERT_EQ(r.resources.size(), 1u);
  EXPECT_EQ(r.resources[0].state, State::kWarning);
  EXPECT_THAT(lines(r.resources[0].reasons),
              ElementsAre("a.yaml:1:1: warning: metadata.name: Gateway default/public is defined "
                          "again at b.yaml:2:1 (rejected; this one is in force)"));
  EXPECT_EQ(r.config->listeners.at(0).port, 8080);
}

TEST(ControlPipeline, TheDefinitionInForceKeepsItAgainstALaterFile) {
  TempDir dir;
  dir.write("m.yaml", kGateway);
  Harness h(dir.path());
  h.sync();
  // "a.yaml" sorts first, but m.yaml's definition is in force: the newcomer is rejected.
  dir.write("a.yaml", "kind: Gateway\nmetadata: {name: public}\nspec: {bindPort: 9090}\n");
  const BuildResult& r = h.sync();
  EXPECT_THAT(lines(r.file_errors),
              ElementsAre("a.yaml:1:1: error: metadata.name: Gateway default/public is already "
                          "defined at m.yaml:1:1 (in force); this definition is rejected"));
  EXPECT_EQ(h.published.back()->listeners.at(0).port, 8080);
  std::string json = h.pipeline().resources_json();
  EXPECT_THAT(json, HasSubstr(R"("kind":"File","namespace":"","name":"a.yaml")"));
  EXPECT_THAT(json, HasSubstr(R"("state":"Rejected")"));
  // When the definition in force goes, the other one takes over.
  dir.remove("m.yaml");
  const BuildResult& r2 = h.sync();
  EXPECT_THAT(lines(r2.file_errors), IsEmpty());
  EXPECT_EQ(h.published.back()->listeners.at(0).port, 9090);
  EXPECT_EQ(r2.resources.at(0).file, "a.yaml");
  EXPECT_EQ(r2.resources.at(0).state, State::kAccepted);
}

TEST(ControlPipeline, InvalidNewVersionKeepsTheLastGoodOneInForce) {
  TempDir dir;
  dir.write("gateway.yaml", kGateway);
  dir.write("shop.yaml", service_with_route("{prefix: /v1}"));
  Harness h(dir.path());
  const int64_t g1 = h.sync().resources.at(1).generation;

  dir.write("shop.yaml", service_with_route("{regex: \"/(unclosed\"}"));
  const BuildResult& r = h.sync();
  const auto* shop = find(r, "VirtualService", "shop");
  ASSERT_NE(shop, nullptr);
  EXPECT_EQ(shop->state, State::kRejected);
  EXPECT_NE(shop->generation, g1);
  EXPECT_EQ(shop->serving_generation, g1);
  ASSERT_GE(shop->reasons.size(), 2u);
  EXPECT_TRUE(shop->reasons[0].is_error());
  EXPECT_THAT(shop->reasons.back().message,
              HasSubstr("is rejected; serving generation " + std::to_string(g1)));
  // The previous routes stay in force.
  const auto& vh = *h.published.back()->listeners.at(0).virtual_hosts.at(0);
  ASSERT_EQ(vh.routes.size(), 1u);
  EXPECT_EQ(vh.routes[0].match.path, "/v1");
  EXPECT_THAT(h.pipeline().resources_json(),
              HasSubstr("\"servingGeneration\":" + std::to_string(g1)));

  // Fixed: the new version is in force.
  dir.write("shop.yaml", service_with_route("{prefix: /v3}"));
  const BuildResult& r3 = h.sync();
  EXPECT_EQ(find(r3, "VirtualService", "shop")->state, State::kAccepted);
  EXPECT_EQ(find(r3, "VirtualService", "shop")->serving_generation, 0);
  EXPECT_EQ(h.published.back()->listeners.at(0).virtual_hosts.at(0)->routes.at(0).match.path,
            "/v3");
}

TEST(ControlPipeline, RejectedUpstreamKeepsItsLastGoodVersion) {
  TempDir dir;
  dir.write("gateway.yaml", kGateway);
  dir.write("upstream.yaml", kUpstream);
  dir.write("shop.yaml", kService);
  Harness h(dir.path());
  h.sync();
  dir.write("upstream.yaml",
            "kind: Upstream\nmetadata: {name: echo}\nspec: {static: {hosts: [{addr: "
            "\"backend local\", port: 80}]}}\n");
  const BuildResult& r = h.sync();
  EXPECT_EQ(find(r, "Upstream", "echo")->state, State::kRejected);
  EXPECT_EQ(find(r, "VirtualService", "shop")->state, State::kAccepted);
  const auto& cfg = *h.published.back();
  ASSERT_EQ(cfg.clusters.size(), 1u);
  EXPECT_EQ(cfg.clusters[0].endpoints.at(0).address, "127.0.0.1");
}

// The counters in /stats prove what a change re-translated: an endpoint change no route, a
// VirtualService change exactly its routes.
TEST(ControlPipeline, TranslatedCountersInStats) {
  TempDir dir;
  dir.write("gateway.yaml", kGateway);
  dir.write("upstream.yaml", kUpstream);
  dir.write("shop.yaml", kService);
  dir.write("other.yaml", R"(kind: VirtualService
metadata: {name: other}
spec:
  virtualHost:
    domains: [other.example.com]
    routes:
      - matchers: [{prefix: /a}]
        routeAction: {single: {upstream: {name: echo}}}
      - matchers: [{prefix: /b}]
        directResponseAction: {status: 200}
)");
  Harness h(dir.path());
  h.sync();
  const ControlMetrics& m = h.pipeline().metrics();
  EXPECT_EQ(m.virtual_services_translated, 2u);
  EXPECT_EQ(m.routes_translated, 3u);
  EXPECT_THAT(m.render(), HasSubstr("portico_control_routes_translated_total 3\n"));
  EXPECT_THAT(m.render(), HasSubstr("portico_control_virtual_services_translated_total 2\n"));

  // The Upstream's port: a new cluster, no route translated.
  std::string moved = kUpstream;
  moved.replace(moved.find("9000"), 4, "9100");
  dir.write("upstream.yaml", moved);
  h.sync();
  EXPECT_TRUE(h.last.published);
  EXPECT_EQ(h.published.back()->clusters.at(0).endpoints.at(0).port, 9100);
  EXPECT_EQ(m.routes_translated, 3u);
  EXPECT_EQ(m.virtual_services_translated, 2u);
  // The VirtualService and its routes are the very objects published before.
  ASSERT_EQ(h.published.size(), 2u);
  EXPECT_EQ(h.published[0]->listeners.at(0).virtual_hosts.at(0),
            h.published[1]->listeners.at(0).virtual_hosts.at(0));

  // One VirtualService changed: exactly its two routes.
  std::string changed = R"(kind: VirtualService
metadata: {name: other}
spec:
  virtualHost:
    domains: [other.example.com]
    routes:
      - matchers: [{prefix: /a}]
        routeAction: {single: {upstream: {name: echo}}}
      - matchers: [{prefix: /c}]
        directResponseAction: {status: 200}
)";
  dir.write("other.yaml", changed);
  h.sync();
  EXPECT_EQ(m.routes_translated, 3u + 2u);
  EXPECT_EQ(m.virtual_services_translated, 3u);
  EXPECT_THAT(m.render(), HasSubstr("portico_control_routes_translated_total 5\n"));
}

TEST(ControlPipeline, NewResourceThatIsInvalidStaysOut) {
  TempDir dir;
  dir.write("gateway.yaml", kGateway);
  dir.write("shop.yaml", service_with_route("{regex: \"/(unclosed\"}"));
  Harness h(dir.path());
  const BuildResult& r = h.sync();
  EXPECT_EQ(find(r, "VirtualService", "shop")->state, State::kRejected);
  EXPECT_EQ(find(r, "VirtualService", "shop")->serving_generation, 0);
  EXPECT_TRUE(h.published.back()->listeners.at(0).virtual_hosts.empty());
}

TEST(ControlPipeline, AnExceptionNeverPublishes) {
  TempDir dir;
  dir.write("gateway.yaml", kGateway);
  bool fail = false;
  Harness h(dir.path(), [&fail](const std::vector<ResourcePtr>& r, uint64_t v, int64_t ms, bool) {
    if (fail) throw std::runtime_error("boom");
    return translate(r, v, ms);
  });
  h.sync();
  ASSERT_EQ(h.published.size(), 1u);
  auto first = h.pipeline().config();

  fail = true;
  dir.write("shop.yaml", kService);
  const BuildResult& r = h.sync();
  EXPECT_TRUE(h.last.failed);
  EXPECT_FALSE(h.last.published);
  EXPECT_EQ(h.published.size(), 1u);  // nothing empty or partial went out
  EXPECT_EQ(h.pipeline().config(), first);
  EXPECT_EQ(h.pipeline().version(), 1u);
  EXPECT_FALSE(h.pipeline().last_build_ok());
  EXPECT_EQ(h.pipeline().last_error(), "boom");
  EXPECT_EQ(h.pipeline().metrics().build_failures, 1u);
  EXPECT_THAT(h.pipeline().metrics().render(), HasSubstr("portico_config_last_build_ok 0\n"));
  // The new resource was never translated: Pending. The Gateway keeps its status.
  ASSERT_NE(find(r, "VirtualService", "shop"), nullptr);
  EXPECT_EQ(find(r, "VirtualService", "shop")->state, State::kPending);
  EXPECT_THAT(find(r, "VirtualService", "shop")->reasons.at(0).message, HasSubstr("boom"));
  EXPECT_EQ(find(r, "Gateway", "public")->state, State::kAccepted);

  // The next sync retries even though no file changed.
  fail = false;
  h.sync();
  EXPECT_TRUE(h.last.published);
  EXPECT_EQ(h.published.size(), 2u);
  EXPECT_TRUE(h.pipeline().last_build_ok());
  EXPECT_THAT(h.pipeline().metrics().render(), HasSubstr("portico_config_last_build_ok 1\n"));
  EXPECT_EQ(find(h.pipeline().current(), "VirtualService", "shop")->state, State::kWarning);
}

TEST(ControlPipeline, AFailedPublicationIsRetried) {
  TempDir dir;
  dir.write("gateway.yaml", kGateway);
  Harness h(dir.path());
  h.throw_on_publish = true;
  h.sync();
  EXPECT_TRUE(h.last.failed);
  EXPECT_EQ(h.pipeline().config(), nullptr);
  EXPECT_EQ(h.pipeline().version(), 0u);
  h.throw_on_publish = false;
  h.sync();
  EXPECT_TRUE(h.last.published);
  EXPECT_EQ(h.pipeline().version(), 1u);
}

TEST(ControlPipeline, UnchangedInputIsNeitherRebuiltNorRepublished) {
  TempDir dir;
  dir.write("gateway.yaml", kGateway);
  dir.write("shop.yaml", service_with_route("{prefix: /}"));
  Harness h(dir.path());
  h.sync();
  const int64_t updated = find(h.pipeline().current(), "Gateway", "public")->updated_unix_ms;
  EXPECT_NE(updated, 0);
  h.sync();
  EXPECT_FALSE(h.last.built);
  h.sync(/*full=*/true);
  EXPECT_FALSE(h.last.built);
  // A comment moves the lines: statuses are recomputed, nothing is republished.
  dir.write("shop.yaml", "# a comment\n" + service_with_route("{prefix: /}"));
  std::this_thread::sleep_for(std::chrono::milliseconds(5));
  const BuildResult& r = h.sync();
  EXPECT_TRUE(h.last.built);
  EXPECT_FALSE(h.last.published);
  EXPECT_EQ(h.published.size(), 1u);
  EXPECT_EQ(find(r, "VirtualService", "shop")->line, 2);
  // Statuses that did not change are not rewritten.
  EXPECT_EQ(find(r, "Gateway", "public")->updated_unix_ms, updated);
  EXPECT_EQ(h.pipeline().metrics().status_updates, 2u);
}

TEST(ControlPipeline, StatusesKeptAcrossSyncsFollowTheirResource) {
  TempDir dir;
  dir.write("gateway.yaml", kGateway);
  dir.write("a.yaml", kUpstream);
  dir.write("shop.yaml", kService);  // routes to the Upstream: no reason on it
  bool fail = false;
  Harness h(dir.path(), [&fail](const std::vector<ResourcePtr>& r, uint64_t v, int64_t ms, bool) {
    if (fail) throw std::runtime_error("boom");
    return translate(r, v, ms);
  });
  h.sync();
  const ResourceStatus before = *find(h.pipeline().current(), "Upstream", "echo");
  EXPECT_EQ(before.file, "a.yaml");
  EXPECT_EQ(before.state, State::kAccepted);

  // Another resource changes: the Upstream's status is the same, timestamp included.
  std::this_thread::sleep_for(std::chrono::milliseconds(5));
  dir.write("gateway.yaml", "kind: Gateway\nmetadata: {name: public}\nspec: {bindPort: 8081}\n");
  const ResourceStatus* up = find(h.sync(), "Upstream", "echo");
  ASSERT_NE(up, nullptr);
  EXPECT_TRUE(h.last.published);
  EXPECT_TRUE(up->same_status(before));
  EXPECT_EQ(up->updated_unix_ms, before.updated_unix_ms);
  EXPECT_EQ(up->file, "a.yaml");
  EXPECT_EQ(up->revision, before.revision);

  // The same Upstream moves to another file: the same status (not rewritten), but the status kept
  // for it says where it is now, also when a failed build shows the statuses kept.
  dir.remove("a.yaml");
  dir.write("b.yaml", "\n" + std::string(kUpstream));
  up = find(h.sync(), "Upstream", "echo");
  ASSERT_NE(up, nullptr);
  EXPECT_EQ(up->file, "b.yaml");
  EXPECT_EQ(up->line, 2);
  EXPECT_EQ(up->updated_unix_ms, before.updated_unix_ms);
  fail = true;
  dir.write("shop.yaml", "# edited\n" + std::string(kService));
  const BuildResult& failed = h.sync();
  EXPECT_TRUE(h.last.failed);
  up = find(failed, "Upstream", "echo");
  ASSERT_NE(up, nullptr);
  EXPECT_EQ(up->file, "b.yaml");
  EXPECT_EQ(up->line, 2);
  EXPECT_EQ(up->state, State::kAccepted);
}

TEST(ControlPipeline, ListenerFailuresShowOnTheGatewayAndItsVirtualServices) {
  TempDir dir;
  dir.write("gateway.yaml", kGateway);
  dir.write("shop.yaml", service_with_route("{prefix: /}"));
  Harness h(dir.path());
  h.failures = {{"default/public", "cannot listen on 0.0.0.0:8080: Address already in use"}};
  const BuildResult& r = h.sync();
  const auto* gw = find(r, "Gateway", "public");
  EXPECT_EQ(gw->state, State::kRejected);
  EXPECT_THAT(lines(gw->reasons),
              ElementsAre("gateway.yaml:1: error: spec.bindPort: cannot listen on 0.0.0.0:8080: "
                          "Address already in use"));
  const auto* shop = find(r, "VirtualService", "shop");
  EXPECT_EQ(shop->state, State::kWarning);
  EXPECT_THAT(lines(shop->reasons),
              ElementsAre("shop.yaml:1: warning: not served on gateway default/public: cannot "
                          "listen on 0.0.0.0:8080: Address already in use"));
  // The next sync tries to bind again; once it works, the statuses clear.
  h.failures.clear();
  const BuildResult& r2 = h.sync();
  EXPECT_TRUE(h.last.published);
  EXPECT_EQ(find(r2, "Gateway", "public")->state, State::kAccepted);
  EXPECT_EQ(find(r2, "VirtualService", "shop")->state, State::kAccepted);
}

// An item the data plane could not compile is reported on the resources that produced it.
TEST(ControlPipeline, DataPlaneRejectionsShowOnTheResourcesThatProducedTheItem) {
  TempDir dir;
  dir.write("gateway.yaml", kGateway);
  dir.write("upstream.yaml", kUpstream);
  dir.write("shop.yaml", kService);
  Harness h(dir.path());
  h.failures = {{"", "upstream TLS configuration rejected: bad CA", {"Upstream/default/echo"}}};
  const BuildResult& r = h.sync();
  const auto* up = find(r, "Upstream", "echo");
  EXPECT_EQ(up->state, State::kWarning);
  EXPECT_THAT(lines(up->reasons),
              ElementsAre("upstream.yaml:1: warning: not applied by the data plane: upstream TLS "
                          "configuration rejected: bad CA"));
  EXPECT_EQ(find(r, "Gateway", "public")->state, State::kAccepted);
  EXPECT_EQ(find(r, "VirtualService", "shop")->state, State::kAccepted);
  // Nothing changed: not published again (unlike a listener that could not be opened), and the
  // warning stays.
  EXPECT_EQ(find(h.sync(true), "Upstream", "echo")->state, State::kWarning);
  EXPECT_EQ(h.published.size(), 1u);
  // The Upstream edited: published, and the data plane's new answer is what its status says.
  h.failures.clear();
  std::string edited = kUpstream;
  edited.replace(edited.find("9000"), 4, "9001");
  dir.write("upstream.yaml", edited);
  EXPECT_EQ(find(h.sync(), "Upstream", "echo")->state, State::kAccepted);
  EXPECT_EQ(h.published.size(), 2u);
}

// Published configurations carry a version per kind of item: an endpoint change moves only the
// endpoints' version, a route change only the routes'.
TEST(ControlPipeline, PublishedConfigurationsCarryTypeVersions) {
  TempDir dir;
  dir.write("gateway.yaml", kGateway);
  dir.write("upstream.yaml", kUpstream);
  dir.write("shop.yaml", service_with_route("{prefix: /a}"));
  Harness h(dir.path());
  h.sync();
  ASSERT_EQ(h.published.size(), 1u);
  EXPECT_EQ(h.published[0]->versions, (snapshot::TypeVersions{1, 1, 1, 1, 1}));
  EXPECT_EQ(h.published[0]->listeners[0].virtual_hosts[0]->sources,
            std::vector<std::string>{"VirtualService/default/shop"});
  std::string up = kUpstream;
  up.replace(up.find("9000"), 4, "9001");
  dir.write("upstream.yaml", up);
  h.sync();
  ASSERT_EQ(h.published.size(), 2u);
  EXPECT_EQ(h.published[1]->versions, (snapshot::TypeVersions{1, 1, 1, 2, 1}));
  dir.write("shop.yaml", service_with_route("{prefix: /b}"));
  h.sync();
  ASSERT_EQ(h.published.size(), 3u);
  EXPECT_EQ(h.published[2]->versions, (snapshot::TypeVersions{1, 3, 1, 2, 1}));
  EXPECT_THAT(h.pipeline().metrics().render(),
              HasSubstr("portico_config_type_version{type=\"routes\"} 3\n"
                        "portico_config_type_version{type=\"clusters\"} 1\n"
                        "portico_config_type_version{type=\"endpoints\"} 2\n"));
}

TEST(ControlPipeline, PropagationTimings) {
  TempDir dir;
  dir.write("gateway.yaml", kGateway);
  Harness h(dir.path());
  h.sync();
  dir.write("shop.yaml", service_with_route("{prefix: /}"));
  const int64_t seen = now_ms() - 40;
  auto res = h.pipeline().sync(false, seen);
  ASSERT_TRUE(res.published);
  const auto* shop = find(h.pipeline().current(), "VirtualService", "shop");
  EXPECT_EQ(shop->last_change.seen_unix_ms, seen);
  EXPECT_GE(shop->last_change.translated_ms, 40);
  EXPECT_EQ(shop->last_change.applied_ms, -1);
  h.pipeline().applied(res.version, seen + 75);
  shop = find(h.pipeline().current(), "VirtualService", "shop");
  EXPECT_EQ(shop->last_change.applied_ms, 75);
  EXPECT_THAT(h.pipeline().resources_json(), HasSubstr("\"appliedMs\":75"));
  std::string m = h.pipeline().metrics().render();
  EXPECT_THAT(m, HasSubstr("portico_config_propagation_seconds_count{stage=\"applied\"} 1\n"));
  EXPECT_THAT(
      m, HasSubstr("portico_config_propagation_seconds_bucket{stage=\"applied\",le=\"0.1\"} 1\n"));
  EXPECT_THAT(
      m, HasSubstr("portico_config_propagation_seconds_bucket{stage=\"applied\",le=\"0.05\"} 0\n"));
}

TEST(ControlPipeline, ConfigMapMountSwap) {
  // The layout of a Kubernetes ConfigMap volume: files are symlinks into "..data", itself a
  // symlink to a timestamped directory, swapped atomically by a rename.
  TempDir dir;
  const fs::path& d = dir.path();
  fs::create_directory(d / "..2026_12_01_00_00_00.1");
  std::ofstream(d / "..2026_12_01_00_00_00.1" / "gateway.yaml") << kGateway;
  std::ofstream(d / "..2026_12_01_00_00_00.1" / "shop.yaml") << service_with_route("{prefix: /a}");
  fs::create_directory_symlink("..2026_12_01_00_00_00.1", d / "..data");
  fs::create_symlink("..data/gateway.yaml", d / "gateway.yaml");
  fs::create_symlink("..data/shop.yaml", d / "shop.yaml");
  Harness h(d);
  const BuildResult& r = h.sync();
  EXPECT_TRUE(r.ok());
  ASSERT_EQ(r.resources.size(), 2u);
  EXPECT_EQ(h.published.back()->listeners.at(0).virtual_hosts.at(0)->routes.at(0).match.path, "/a");

  fs::create_directory(d / "..2026_12_01_00_01_00.2");
  std::ofstream(d / "..2026_12_01_00_01_00.2" / "gateway.yaml") << kGateway;
  std::ofstream(d / "..2026_12_01_00_01_00.2" / "shop.yaml") << service_with_route("{prefix: /b}");
  fs::create_directory_symlink("..2026_12_01_00_01_00.2", d / "..data_tmp");
  fs::rename(d / "..data_tmp", d / "..data");
  fs::remove_all(d / "..2026_12_01_00_00_00.1");
  h.sync();
  EXPECT_TRUE(h.last.published);
  EXPECT_EQ(h.published.back()->listeners.at(0).virtual_hosts.at(0)->routes.at(0).match.path, "/b");
  EXPECT_TRUE(h.pipeline().current().ok());
}

TEST(ControlPipeline, FullResyncReadsFilesWhoseStatLooksUnchanged) {
  TempDir dir;
  dir.write("gateway.yaml", kGateway);
  Harness h(dir.path());
  h.sync();
  // Same size, same modification time, same inode: only a full re-read sees it.
  fs::path p = dir.path() / "gateway.yaml";
  auto mtime = fs::last_write_time(p);
  {
    std::fstream f(p, std::ios::in | std::ios::out | std::ios::binary);
    std::string text(kGateway);
    text.replace(text.find("8080"), 4, "8081");
    f << text;
  }
  fs::last_write_time(p, mtime);
  h.sync();
  EXPECT_FALSE(h.last.published);
  h.sync(/*full=*/true);
  EXPECT_TRUE(h.last.published);
  EXPECT_EQ(h.published.back()->listeners.at(0).port, 8081);
  EXPECT_EQ(h.pipeline().metrics().resyncs, 1u);
}

// A second kind of storage, as etcd or Consul KV will be: it hands out deltas it was given.
class MemorySource : public ConfigSource {
 public:
  std::string_view name() const override { return "memory"; }
  Delta poll(bool) override {
    Delta d = std::move(next);
    next = Delta{};
    d.source = "memory";
    return d;
  }
  void put(const std::string& key, const std::string& yaml) {
    api::DecodedFile f = api::decode_file(key, yaml);
    for (const auto& r : f.resources) {
      next.upserts.push_back(Upsert{Origin{"memory", key, 0, revision_of(r)},
                                    std::make_shared<const api::Resource>(r)});
    }
  }
  void remove(const std::string& key, const std::string& resource_key) {
    next.removals.push_back(Removal{"memory", key, resource_key});
  }
  Delta next;
};

TEST(ControlPipeline, SourcesShareOneStore) {
  TempDir dir;
  dir.write("gateway.yaml", kGateway);
  dir.write("shop.yaml", kService);
  Harness h(dir.path());
  auto memory = std::make_unique<MemorySource>();
  MemorySource* mem = memory.get();
  h.pipeline().add_source(std::move(memory));
  EXPECT_EQ(find(h.sync(), "VirtualService", "shop")->state, State::kWarning);  // no upstream yet

  mem->put("kv/upstreams/echo", kUpstream);
  const BuildResult& r = h.sync();
  EXPECT_TRUE(h.last.published);
  EXPECT_EQ(find(r, "VirtualService", "shop")->state, State::kAccepted);
  EXPECT_EQ(find(r, "Upstream", "echo")->source, "memory");
  EXPECT_EQ(find(r, "Upstream", "echo")->file, "kv/upstreams/echo");
  ASSERT_EQ(h.published.back()->clusters.size(), 1u);

  // The same Gateway from the other source: the file's definition is in force.
  mem->put("kv/gateways/public",
           "kind: Gateway\nmetadata: {name: public}\nspec: {bindPort: 9090}\n");
  const BuildResult& r2 = h.sync();
  EXPECT_THAT(lines(r2.file_errors),
              ElementsAre("kv/gateways/public:1:1: error: metadata.name: Gateway default/public is "
                          "already defined at gateway.yaml:1:1 (in force); this definition is "
                          "rejected"));
  EXPECT_EQ(h.published.back()->listeners.at(0).port, 8080);

  mem->remove("kv/upstreams/echo", "Upstream/default/echo");
  const BuildResult& r3 = h.sync();
  EXPECT_EQ(find(r3, "Upstream", "echo"), nullptr);
  EXPECT_EQ(find(r3, "VirtualService", "shop")->state, State::kWarning);
}

// A source that records what the pipeline says is referenced.
class ReferencesSource : public MemorySource {
 public:
  void referenced(const std::set<std::string>& keys) override { calls.push_back(keys); }
  std::vector<std::set<std::string>> calls;
};

TEST(ControlPipeline, SourcesAreToldWhichSecretsAreReferenced) {
  TempDir dir;
  dir.write("gateway.yaml", R"(kind: Gateway
metadata: {name: tls}
spec:
  bindPort: 8443
  ssl: true
  sslConfig: {secretRef: {name: gw-cert}}
)");
  dir.write("shop.yaml", R"(kind: VirtualService
metadata: {name: shop, namespace: web}
spec:
  sslConfig: {secretRef: {name: shop-cert}}
  virtualHost:
    domains: [shop.example.com]
    routes:
    - directResponseAction: {status: 200}
)");
  Harness h(dir.path());
  h.sync();
  auto source = std::make_unique<ReferencesSource>();
  ReferencesSource* refs = source.get();
  h.pipeline().add_source(std::move(source));
  // Told at once when added, with what the last build referenced.
  ASSERT_EQ(refs->calls.size(), 1u);
  EXPECT_THAT(refs->calls[0], ElementsAre("Secret/default/gw-cert", "Secret/web/shop-cert"));
  // A sync that changes nothing tells nothing again.
  h.sync();
  EXPECT_EQ(refs->calls.size(), 1u);
  // An Upstream naming a CA secret joins; a reference gone leaves.
  refs->put("kv/up", R"(kind: Upstream
metadata: {name: tls-up}
spec:
  static: {hosts: [{addr: 127.0.0.1, port: 9}]}
  sslConfig: {secretRef: {name: up-ca}}
)");
  dir.write("shop.yaml", R"(kind: VirtualService
metadata: {name: shop, namespace: web}
spec:
  virtualHost:
    domains: [shop.example.com]
    routes:
    - directResponseAction: {status: 200}
)");
  h.sync(true);
  ASSERT_EQ(refs->calls.size(), 2u);
  EXPECT_THAT(refs->calls[1], ElementsAre("Secret/default/gw-cert", "Secret/default/up-ca"));
}

// A source that records the statuses it is given to write back.
class StatusSource : public MemorySource {
 public:
  void report_statuses(const std::vector<ResourceStatus>& resources,
                       const std::vector<api::Diagnostic>&) override {
    reports.push_back(resources);
  }
  const ResourceStatus* last(const std::string& kind, const std::string& name) const {
    if (reports.empty()) return nullptr;
    for (const auto& r : reports.back()) {
      if (r.kind == kind && r.name == name) return &r;
    }
    return nullptr;
  }
  std::vector<std::vector<ResourceStatus>> reports;
};

TEST(ControlPipeline, ExternalWarningsReachTheStatusesWrittenBack) {
  TempDir dir;
  dir.write("gateway.yaml", kGateway);
  dir.write("shop.yaml", kService);
  dir.write("echo.yaml", kUpstream);
  Harness h(dir.path());
  auto source = std::make_unique<StatusSource>();
  StatusSource* statuses = source.get();
  h.pipeline().add_source(std::move(source));
  h.sync();
  h.pipeline().report_statuses();
  ASSERT_NE(statuses->last("Gateway", "public"), nullptr);
  EXPECT_EQ(statuses->last("Gateway", "public")->state, State::kAccepted);

  h.pipeline().set_external_warnings(
      {{"Gateway/default/public", {"proxy p2 rejected version 1: bind: in use"}}});
  h.pipeline().report_statuses();
  const ResourceStatus* gw = statuses->last("Gateway", "public");
  ASSERT_NE(gw, nullptr);
  EXPECT_EQ(gw->state, State::kWarning);
  ASSERT_EQ(gw->reasons.size(), 1u);
  EXPECT_EQ(gw->reasons[0].message, "proxy p2 rejected version 1: bind: in use");
  EXPECT_EQ(gw->reasons[0].severity, Diagnostic::Severity::kWarning);
  EXPECT_EQ(statuses->last("VirtualService", "shop")->state, State::kAccepted);  // not named
  // The statuses in force (the REST API's) are not changed: the fleet annotates those itself.
  EXPECT_EQ(find(h.pipeline().current(), "Gateway", "public")->state, State::kAccepted);

  h.pipeline().set_external_warnings({});
  h.pipeline().report_statuses();
  EXPECT_EQ(statuses->last("Gateway", "public")->state, State::kAccepted);
  EXPECT_TRUE(statuses->last("Gateway", "public")->reasons.empty());
}

TEST(ControlPipeline, FileErrors) {
  TempDir dir;
  dir.write("kinds.yaml", R"(kind: AuthConfig
metadata: {name: a}
---
kind: Gatway
metadata: {name: b}
---
- just a list
---
kind: Upstream
metadata: {namespace: x}
---
# empty document
)");
  dir.write("big.yaml", std::string(api::kMaxFileBytes + 1, '#'));
  std::string deep = "kind: Gateway\nmetadata: {name: deep}\nspec: ";
  for (int i = 0; i < 70; ++i)
    deep += "[";
  for (int i = 0; i < 70; ++i)
    deep += "]";
  dir.write("deep.yaml", deep + "\n");
  BuildResult r = validate_directory(dir.path());
  EXPECT_THAT(lines(r.file_errors),
              ElementsAre("big.yaml: error: file is larger than 4 MiB (4194305 bytes)",
                          "deep.yaml:1:1: error: document is nested deeper than 64 levels",
                          "kinds.yaml:1:7: error: kind: kind \"AuthConfig\" is not supported yet",
                          "kinds.yaml:4:7: error: kind: unknown kind \"Gatway\"; expected "
                          "Gateway, VirtualService, RouteTable, Upstream, UpstreamGroup, Secret "
                          "or Settings",
                          "kinds.yaml:7:1: error: a document must be a map with kind, metadata "
                          "and spec, got a list",
                          "kinds.yaml:10:11: error: metadata.name: is required"));
  EXPECT_TRUE(r.resources.empty());
  EXPECT_TRUE(r.config->listeners.empty());
}

TEST(ControlPipeline, ValidatesASingleFile) {
  TempDir dir;
  dir.write("one.yaml", kGateway);
  dir.write("other.yaml", kUpstream);
  BuildResult r = validate_directory(dir.path() / "one.yaml");
  EXPECT_TRUE(r.ok());
  ASSERT_EQ(r.resources.size(), 1u);
  EXPECT_EQ(r.resources[0].file, "one.yaml");
}

TEST(ControlPipeline, MissingDirectory) {
  BuildResult r = validate_directory("/nonexistent/portico-config");
  ASSERT_EQ(r.file_errors.size(), 1u);
  EXPECT_THAT(r.file_errors[0].message, HasSubstr("cannot read configuration directory"));
  ASSERT_TRUE(r.config);
  EXPECT_FALSE(r.ok());
}

TEST(ControlPipeline, ResourcesToJson) {
  BuildResult r =
      build_from_files({{"gw.yaml", kGateway},
                        {"vs.yaml",
                         "kind: VirtualService\nmetadata: {name: v}\nspec: {virtualHost: {routes: "
                         "[{directResponseAction: {status: 200}, typo: 1}]}}\n"},
                        {"bad.yaml", "kind: Nope\nmetadata: {name: x}\n"}},
                       1);
  ASSERT_EQ(r.resources.size(), 2u);
  const std::string gw_gen = std::to_string(r.resources[0].generation);
  const std::string gw_rev = r.resources[0].revision;
  const std::string vs_gen = std::to_string(r.resources[1].generation);
  const std::string vs_rev = r.resources[1].revision;
  EXPECT_EQ(
      resources_to_json(r.resources, r.file_errors),
      R"j([{"kind":"Gateway","namespace":"default","name":"public","file":"gw.yaml","line":1,)j"
      R"j("generation":)j" +
          gw_gen + R"j(,"observedGeneration":)j" + gw_gen +
          R"j(,"state":"Accepted","reasons":[],"origin":{"source":"file","key":"gw.yaml",)j"
          R"j("document":0,"revision":")j" +
          gw_rev +
          R"j("},"spec":{"bindPort":8080}},)j"
          R"j({"kind":"VirtualService","namespace":"default","name":"v","file":"vs.yaml","line":1,)j"
          R"j("generation":)j" +
          vs_gen + R"j(,"observedGeneration":)j" + vs_gen +
          R"j(,"state":"Rejected","reasons":[{"severity":"error","file":"vs.yaml",)j"
          R"j("line":3,"column":69,"path":"spec.virtualHost.routes[0].typo","message":)j"
          R"j("unknown field \"typo\": not implemented (refused rather than ignored)"}],"origin":{"source":"file","key":"vs.yaml",)j"
          R"j("document":0,"revision":")j" +
          vs_rev +
          R"j("},"spec":{"virtualHost":{"routes":[)j"
          R"j({"directResponseAction":{"status":200},"typo":1}]}}},)j"
          R"j({"kind":"File","namespace":"","name":"bad.yaml","file":"bad.yaml","line":0,)j"
          R"j("generation":0,"observedGeneration":0,"state":"Rejected","reasons":[{"severity":"error","file":"bad.yaml",)j"
          R"j("line":1,"column":7,"path":"kind","message":"unknown kind \"Nope\"; expected )j"
          R"j(Gateway, VirtualService, RouteTable, Upstream, UpstreamGroup, Secret or Settings"}],)j"
          R"j("spec":null}])j");
}

TEST(ControlPipeline, ReasonsAreBounded) {
  ResourceStatus s;
  s.kind = "VirtualService";
  s.name = "many";
  for (int i = 0; i < 25; ++i) {
    Diagnostic d;
    d.severity = i == 24 ? Diagnostic::Severity::kError : Diagnostic::Severity::kWarning;
    d.message = i == 0 ? std::string(3000, 'x') : "reason " + std::to_string(i);
    s.reasons.push_back(d);
  }
  s.state = State::kRejected;
  std::string json = resources_to_json({s}, {});
  EXPECT_THAT(json, HasSubstr(R"("message":"and 5 more")"));
  EXPECT_THAT(json, HasSubstr(R"("message":"reason 24")"));  // the error is kept
  EXPECT_THAT(json, ::testing::Not(HasSubstr("reason 23")));
  EXPECT_THAT(json, HasSubstr(std::string(1024, 'x') + "...\""));
  EXPECT_THAT(json, ::testing::Not(HasSubstr(std::string(1025, 'x'))));
}

}  // namespace
}  // namespace portico::control
