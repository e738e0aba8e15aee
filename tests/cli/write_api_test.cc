#include "cli/write_api.h"

#include <gtest/gtest.h>
#include <unistd.h>
#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>

#include "control/sources/file_source.h"

namespace portico::cli {
namespace {

namespace fs = std::filesystem;
using Json = nlohmann::ordered_json;

std::string upstream(const std::string& name, int port) {
  return "apiVersion: gateway.portico.dev/v1\nkind: Upstream\nmetadata: {name: " + name +
         "}\nspec:\n  static:\n    hosts:\n      - {addr: 127.0.0.1, port: " +
         std::to_string(port) + "}\n";
}

TEST(WriteApiTest, SplitsDocumentsIntoTheirOwnText) {
  const std::string body = "# leading comment\n---\n" + upstream("a", 1) + "# about b\n---\n\n" +
                           upstream("b", 2) + "...\n";
  ApplyDocuments docs = split_apply_body(body);
  ASSERT_TRUE(docs.errors.empty()) << docs.errors[0].to_string();
  ASSERT_EQ(docs.resources.size(), 2u);
  EXPECT_EQ(docs.texts[0], upstream("a", 1));
  EXPECT_EQ(docs.texts[1], upstream("b", 2));

  // JSON, one line.
  docs = split_apply_body(
      R"({"kind":"Upstream","metadata":{"name":"j"},"spec":{"static":{"hosts":[{"addr":"127.0.0.1","port":3}]}}})");
  ASSERT_TRUE(docs.errors.empty());
  ASSERT_EQ(docs.resources.size(), 1u);
  EXPECT_EQ(docs.resources[0].key(), "Upstream/default/j");
}

TEST(WriteApiTest, AnyErrorRefusesEverything) {
  ApplyDocuments docs = split_apply_body(upstream("a", 1) + "---\n" + upstream("b", 70000));
  ASSERT_FALSE(docs.errors.empty());
  EXPECT_NE(docs.errors[0].path.find("port"), std::string::npos) << docs.errors[0].to_string();
  EXPECT_FALSE(split_apply_body(upstream("a", 1) + "---\n" + upstream("a", 2)).errors.empty());
  EXPECT_FALSE(split_apply_body("").errors.empty());
  EXPECT_FALSE(split_apply_body("kind: [").errors.empty());
  EXPECT_FALSE(split_apply_body("kind: Nope\nmetadata: {name: x}\n").errors.empty());
}

class WriteApiServeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/portico-write-api-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    pipeline_ =
        std::make_unique<control::Pipeline>(std::make_unique<control::FileSource>(dir_),
                                            [](std::shared_ptr<const snapshot::ProxyConfig>) {
                                              return std::vector<control::ListenerFailure>{};
                                            });
    (void)pipeline_->sync(false, 0);
  }
  void TearDown() override { fs::remove_all(dir_); }

  proxy::admin::Response serve(std::string_view method, std::string_view path,
                               std::string_view body = "", std::string_view auth = "",
                               const WriteAccess& access = {}) {
    auto r = serve_write(*pipeline_, proxy::admin::Request{method, path, "", auth, body}, access);
    EXPECT_TRUE(r.has_value()) << method << " " << path;
    return r ? *r : proxy::admin::Response{};
  }

  fs::path dir_;
  std::unique_ptr<control::Pipeline> pipeline_;
};

TEST_F(WriteApiServeTest, ApplyAndDelete) {
  auto r = serve("POST", "/v1/apply", upstream("a", 1) + "---\n" + upstream("b", 2));
  ASSERT_EQ(r.status, 200) << r.body;
  Json j = Json::parse(r.body);
  EXPECT_EQ(j["store"], "file");
  ASSERT_EQ(j["results"].size(), 2u);
  EXPECT_EQ(j["results"][0]["kind"], "Upstream");
  EXPECT_EQ(j["results"][0]["name"], "a");
  EXPECT_EQ(j["results"][0]["result"], "created");
  EXPECT_TRUE(fs::exists(dir_ / "applied" / "default" / "Upstream.b.yaml"));

  r = serve("POST", "/v1/apply", upstream("a", 1) + "---\n" + upstream("c", 99999));
  EXPECT_EQ(r.status, 422) << r.body;
  j = Json::parse(r.body);
  ASSERT_FALSE(j["diagnostics"].empty());
  EXPECT_EQ(j["diagnostics"][0]["name"], "c");
  EXPECT_FALSE(fs::exists(dir_ / "applied" / "default" / "Upstream.c.yaml"));

  r = serve("DELETE", "/v1/resources/upstream/default/a");
  EXPECT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(Json::parse(r.body)["result"], "deleted");
  EXPECT_EQ(serve("DELETE", "/v1/resources/Upstream/default/a").status, 404);
  EXPECT_EQ(serve("DELETE", "/v1/resources/Upstream/a").status, 400);
  EXPECT_EQ(serve("GET", "/v1/apply").status, 405);
  EXPECT_FALSE(serve_write(*pipeline_, proxy::admin::Request{"GET", "/resources", "", "", ""}, {}));
  EXPECT_FALSE(
      serve_write(*pipeline_, proxy::admin::Request{"GET", "/v1/resources/x", "", "", ""}, {}));
}

TEST_F(WriteApiServeTest, TokenAndRefusal) {
  WriteAccess token{"s3cret", {}};
  EXPECT_EQ(serve("POST", "/v1/apply", upstream("a", 1), "", token).status, 401);
  EXPECT_EQ(serve("POST", "/v1/apply", upstream("a", 1), "Bearer nope", token).status, 401);
  EXPECT_EQ(serve("DELETE", "/v1/resources/Upstream/default/a", "", "", token).status, 401);
  EXPECT_FALSE(fs::exists(dir_ / "applied"));
  EXPECT_EQ(serve("POST", "/v1/apply", upstream("a", 1), "Bearer s3cret", token).status, 200);
  EXPECT_EQ(serve("POST", "/v1/apply", upstream("a", 1), "", WriteAccess{{}, "no"}).status, 403);
}

}  // namespace
}  // namespace portico::cli
