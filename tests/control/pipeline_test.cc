#include "control/pipeline.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <random>

namespace portico::control {
namespace {

namespace fs = std::filesystem;
using ::testing::ElementsAre;
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
    std::ofstream(path_ / name, std::ios::binary | std::ios::trunc) << content;
  }
  void remove(const std::string& name) const { fs::remove(path_ / name); }

 private:
  fs::path path_;
};

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

const ResourceStatus* find(const BuildResult& r, const std::string& kind, const std::string& name) {
  for (const auto& s : r.resources) {
    if (s.kind == kind && s.name == name) return &s;
  }
  return nullptr;
}

std::vector<std::string> lines(const std::vector<Diagnostic>& diags) {
  std::vector<std::string> out;
  for (const auto& d : diags)
    out.push_back(d.to_string());
  return out;
}

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
  FileConfigSource source(dir.path());
  BuildResult r = source.build(7);
  EXPECT_THAT(lines(r.file_errors), IsEmpty());
  EXPECT_TRUE(r.ok());
  ASSERT_EQ(r.resources.size(), 3u);
  EXPECT_EQ(r.resources[0].kind, "Gateway");
  EXPECT_EQ(r.resources[1].kind, "Upstream");
  EXPECT_EQ(r.resources[1].file, "sub/upstream.yml");
  EXPECT_EQ(r.resources[2].kind, "VirtualService");
  EXPECT_EQ(r.resources[2].file, "sub/deeper/shop.json");
  for (const auto& s : r.resources) {
    EXPECT_EQ(s.state, State::kAccepted) << s.name << ": " << lines(s.reasons).size();
    EXPECT_EQ(s.generation, 1);
  }
  ASSERT_TRUE(r.config);
  EXPECT_EQ(r.config->version, 7u);
  ASSERT_EQ(r.config->listeners.size(), 1u);
  ASSERT_EQ(r.config->listeners[0].virtual_hosts.size(), 1u);
  EXPECT_EQ(r.config->listeners[0].virtual_hosts[0].name, "default/shop");
  ASSERT_EQ(r.config->clusters.size(), 1u);
  EXPECT_EQ(r.config->clusters[0].name, "default/echo");
}

TEST(ControlPipeline, BrokenFileKeepsItsPreviousResources) {
  TempDir dir;
  dir.write("gateway.yaml", kGateway);
  dir.write("upstream.yaml", kUpstream);
  dir.write("shop.yaml", kService);
  FileConfigSource source(dir.path());
  ASSERT_TRUE(source.build(1).ok());

  dir.write("upstream.yaml", "kind: Upstream\nmetadata: {name: echo\n");  // unterminated flow map
  BuildResult r = source.build(2);
  EXPECT_FALSE(r.ok());
  ASSERT_EQ(r.file_errors.size(), 2u);
  EXPECT_EQ(r.file_errors[0].file, "upstream.yaml");
  EXPECT_EQ(r.file_errors[0].line, 3);
  EXPECT_THAT(r.file_errors[0].message, ::testing::StartsWith("invalid YAML: "));
  EXPECT_EQ(r.file_errors[1].to_string(),
            "upstream.yaml: warning: keeping the 1 resource(s) of this file's last good version "
            "in force");
  ASSERT_NE(find(r, "Upstream", "echo"), nullptr);
  EXPECT_EQ(find(r, "Upstream", "echo")->state, State::kAccepted);
  EXPECT_EQ(find(r, "VirtualService", "shop")->state, State::kAccepted);
  EXPECT_EQ(r.config->clusters.size(), 1u);
  EXPECT_EQ(r.config->listeners[0].virtual_hosts.size(), 1u);

  // Deleting the file removes its resources: the route now points nowhere.
  dir.remove("upstream.yaml");
  r = source.build(3);
  EXPECT_THAT(lines(r.file_errors), IsEmpty());
  EXPECT_EQ(find(r, "Upstream", "echo"), nullptr);
  const auto* shop = find(r, "VirtualService", "shop");
  ASSERT_NE(shop, nullptr);
  EXPECT_EQ(shop->state, State::kRejected);
  EXPECT_THAT(lines(shop->reasons),
              ElementsAre("shop.yaml:7:42: error: spec.virtualHost.routes[0].routeAction.single."
                          "upstream: upstream default/echo not found"));
  EXPECT_TRUE(r.config->clusters.empty());
  ASSERT_EQ(r.config->listeners.size(), 1u);
  EXPECT_TRUE(r.config->listeners[0].virtual_hosts.empty());  // serves 404s
  EXPECT_FALSE(r.ok());
}

TEST(ControlPipeline, GenerationBumpsOnSpecChangeOnly) {
  TempDir dir;
  dir.write("gateway.yaml", kGateway);
  FileConfigSource source(dir.path());
  EXPECT_EQ(source.build(1).resources.at(0).generation, 1);
  EXPECT_EQ(source.build(2).resources.at(0).generation, 1);
  // Same spec, different layout and labels: no bump.
  dir.write(
      "gateway.yaml",
      "kind: Gateway\nmetadata:\n  name: public\n  labels: {a: b}\nspec:\n  bindPort: 8080\n");
  EXPECT_EQ(source.build(3).resources.at(0).generation, 1);
  dir.write("gateway.yaml", "kind: Gateway\nmetadata: {name: public}\nspec: {bindPort: 8081}\n");
  BuildResult r = source.build(4);
  EXPECT_EQ(r.resources.at(0).generation, 2);
  EXPECT_EQ(r.config->listeners.at(0).port, 8081);
  // Moving the resource to another file keeps its identity.
  dir.remove("gateway.yaml");
  dir.write("other.yaml", "kind: Gateway\nmetadata: {name: public}\nspec: {bindPort: 8081}\n");
  r = source.build(5);
  EXPECT_EQ(r.resources.at(0).generation, 2);
  EXPECT_EQ(r.resources.at(0).file, "other.yaml");
}

TEST(ControlPipeline, DuplicateAcrossFilesIsAnErrorOnTheSecond) {
  TempDir dir;
  dir.write("a.yaml", kGateway);
  dir.write("b.yaml",
            "# comment\nkind: Gateway\nmetadata: {name: public}\nspec: {bindPort: 9090}\n");
  BuildResult r = validate_directory(dir.path());
  EXPECT_FALSE(r.ok());
  EXPECT_THAT(lines(r.file_errors),
              ElementsAre("b.yaml:2:1: error: metadata.name: Gateway default/public is already "
                          "defined at a.yaml:1:1; this definition is ignored"));
  ASSERT_EQ(r.resources.size(), 1u);
  EXPECT_EQ(r.resources[0].state, State::kWarning);
  EXPECT_THAT(lines(r.resources[0].reasons),
              ElementsAre("a.yaml:1:1: warning: metadata.name: Gateway default/public is defined "
                          "again at b.yaml:2:1 (ignored; this one is in force)"));
  EXPECT_EQ(r.config->listeners.at(0).port, 8080);
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
  EXPECT_THAT(r.file_errors[0].message,
              ::testing::HasSubstr("cannot read configuration directory"));
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
  EXPECT_EQ(
      resources_to_json(r.resources, r.file_errors),
      R"j([{"kind":"Gateway","namespace":"default","name":"public","file":"gw.yaml","line":1,)j"
      R"j("generation":1,"state":"Accepted","reasons":[],"spec":{"bindPort":8080}},)j"
      R"j({"kind":"VirtualService","namespace":"default","name":"v","file":"vs.yaml","line":1,)j"
      R"j("generation":1,"state":"Rejected","reasons":[{"severity":"error","file":"vs.yaml",)j"
      R"j("line":3,"column":69,"path":"spec.virtualHost.routes[0].typo","message":)j"
      R"j("unknown field \"typo\": not implemented (refused rather than ignored)"}],)j"
      R"j("spec":{"virtualHost":{"routes":[)j"
      R"j({"directResponseAction":{"status":200},"typo":1}]}}},)j"
      R"j({"kind":"File","namespace":"","name":"bad.yaml","file":"bad.yaml","line":0,)j"
      R"j("generation":0,"state":"Rejected","reasons":[{"severity":"error","file":"bad.yaml",)j"
      R"j("line":1,"column":7,"path":"kind","message":"unknown kind \"Nope\"; expected )j"
      R"j(Gateway, VirtualService, RouteTable, Upstream, UpstreamGroup, Secret or Settings"}],)j"
      R"j("spec":null}])j");
}

}  // namespace
}  // namespace portico::control
