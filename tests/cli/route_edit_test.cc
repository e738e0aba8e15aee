#include "cli/route_edit.h"

#include <gtest/gtest.h>

namespace portico::cli {
namespace {

using Json = nlohmann::ordered_json;

// Two documents, comments everywhere, an item whose '-' is alone on its line.
constexpr const char* kFile = R"(# Upstream first
apiVersion: gateway.portico.dev/v1
kind: Upstream
metadata:
  name: echo
spec:
  static:
    hosts: [{addr: 127.0.0.1, port: 9000}]
---
# The web service
apiVersion: gateway.portico.dev/v1
kind: VirtualService
metadata:
  name: web
spec:
  virtualHost:
    domains: ["*"]   # everything
    routes:
      # health checks first
      - name: health
        matchers:
          - exact: /health
        directResponseAction:
          status: 200

      -
        name: root   # the catch-all
        matchers:
          - prefix: /
        routeAction:
          single:
            upstream:
              name: echo
    # a comment after the routes
  options: {}
)";

Json new_route() {
  return Json::parse(R"({"name": "api", "matchers": [{"prefix": "/api"}],
                         "routeAction": {"single": {"upstream": {"name": "echo"}}}})");
}

TEST(RouteEditTest, LocatesRoutesWithTheirComments) {
  RoutesLocation where = locate_routes(kFile, "web", "default");
  ASSERT_TRUE(where.found);
  ASSERT_EQ(where.error, "");
  EXPECT_EQ(where.dash_column, 6u);
  EXPECT_EQ(where.names, (std::vector<std::string>{"health", "root"}));
  std::string text = kFile;
  EXPECT_EQ(text.substr(where.item_start[0], 27), "      # health checks first");
  EXPECT_EQ(text.substr(where.item_start[1], 8), "      -\n");
  EXPECT_EQ(text.substr(where.item_end[1], 32), "    # a comment after the routes");
  EXPECT_FALSE(locate_routes(kFile, "web", "team-b").found);
  EXPECT_FALSE(locate_routes(kFile, "echo", "default").found);
}

TEST(RouteEditTest, InsertsFirstKeepingEverythingElse) {
  RoutesLocation where = locate_routes(kFile, "web", "default");
  std::string out;
  std::string error;
  ASSERT_TRUE(insert_route(kFile, where, new_route(), 0, &out, &error)) << error;
  const std::string block =
      "      - name: api\n"
      "        matchers:\n"
      "        - prefix: /api\n"
      "        routeAction:\n"
      "          single:\n"
      "            upstream:\n"
      "              name: echo\n"
      "\n";  // the items are separated by blank lines
  std::string expected = kFile;
  expected.insert(expected.find("      # health checks first"), block);
  EXPECT_EQ(out, expected);
  RoutesLocation again = locate_routes(out, "web", "default");
  EXPECT_EQ(again.names, (std::vector<std::string>{"api", "health", "root"}));
}

TEST(RouteEditTest, AppendsAfterTheLastItem) {
  RoutesLocation where = locate_routes(kFile, "web", "default");
  std::string out;
  std::string error;
  ASSERT_TRUE(insert_route(kFile, where, new_route(), 2, &out, &error)) << error;
  RoutesLocation again = locate_routes(out, "web", "default");
  EXPECT_EQ(again.names, (std::vector<std::string>{"health", "root", "api"}));
  EXPECT_NE(out.find("              name: echo\n\n      - name: api\n"), std::string::npos) << out;
  EXPECT_NE(out.find("    # a comment after the routes\n  options: {}\n"), std::string::npos);
  EXPECT_FALSE(insert_route(kFile, where, new_route(), 3, &out, &error));
  EXPECT_NE(error.find("past the end"), std::string::npos);
}

TEST(RouteEditTest, RemovesOneItemWithItsComments) {
  RoutesLocation where = locate_routes(kFile, "web", "default");
  std::string out;
  std::string error;
  ASSERT_TRUE(remove_route(kFile, where, 0, &out, &error)) << error;
  EXPECT_EQ(out.find("health"), std::string::npos) << out;
  EXPECT_NE(out.find("# The web service"), std::string::npos);
  EXPECT_EQ(locate_routes(out, "web", "default").names, (std::vector<std::string>{"root"}));
  ASSERT_TRUE(remove_route(kFile, where, 1, &out, &error)) << error;
  EXPECT_EQ(locate_routes(out, "web", "default").names, (std::vector<std::string>{"health"}));
  EXPECT_NE(out.find("# a comment after the routes"), std::string::npos);
  EXPECT_FALSE(remove_route(kFile, where, 2, &out, &error));
}

TEST(RouteEditTest, CompactListsAndFilesWithoutFinalNewline) {
  std::string text =
      "kind: VirtualService\nmetadata: {name: v, namespace: ns}\nspec:\n  virtualHost:\n"
      "    routes:\n    - name: a\n      matchers: [{prefix: /a}]";
  RoutesLocation where = locate_routes(text, "v", "ns");
  ASSERT_TRUE(where.found);
  ASSERT_EQ(where.error, "");
  EXPECT_EQ(where.dash_column, 4u);
  std::string out;
  std::string error;
  ASSERT_TRUE(insert_route(text, where, new_route(), 1, &out, &error));
  EXPECT_EQ(locate_routes(out, "v", "ns").names, (std::vector<std::string>{"a", "api"}));
}

TEST(RouteEditTest, RefusesFlowStyleLists) {
  std::string text =
      "kind: VirtualService\nmetadata: {name: v}\nspec:\n  virtualHost:\n"
      "    routes: [{name: a, matchers: [{prefix: /a}]}]\n";
  RoutesLocation where = locate_routes(text, "v", "default");
  ASSERT_TRUE(where.found);
  EXPECT_NE(where.error.find("flow-style"), std::string::npos);
  std::string missing = "kind: VirtualService\nmetadata: {name: v}\nspec: {virtualHost: {}}\n";
  EXPECT_NE(locate_routes(missing, "v", "default").error.find("missing"), std::string::npos);
  EXPECT_FALSE(locate_routes("{{{ not yaml", "v", "default").found);
}

TEST(RouteEditTest, RouteNames) {
  EXPECT_EQ(route_name_for("/api/v1", {}), "api-v1");
  EXPECT_EQ(route_name_for("/", {}), "root");
  EXPECT_EQ(route_name_for("/API", {"api"}), "api-2");
  EXPECT_EQ(route_name_for("/api", {"api", "api-2"}), "api-3");
  EXPECT_EQ(route_name_for("^/v[0-9]+/.*$", {}), "v-0-9");
}

}  // namespace
}  // namespace portico::cli
