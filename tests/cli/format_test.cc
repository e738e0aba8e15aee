#include "cli/format.h"

#include <gtest/gtest.h>
#include <yaml-cpp/yaml.h>

#include "cli/help.h"

namespace portico::cli {
namespace {

using Json = nlohmann::ordered_json;

TEST(FormatTest, OutputFormats) {
  OutputFormat f;
  std::string error;
  const std::vector<OutputFormat> all = {OutputFormat::kTable, OutputFormat::kWide,
                                         OutputFormat::kYaml, OutputFormat::kJson};
  ASSERT_TRUE(parse_output("", all, &f, &error));
  EXPECT_EQ(f, OutputFormat::kTable);
  ASSERT_TRUE(parse_output("wide", all, &f, &error));
  EXPECT_EQ(f, OutputFormat::kWide);
  ASSERT_TRUE(parse_output("json", all, &f, &error));
  EXPECT_EQ(f, OutputFormat::kJson);
  EXPECT_FALSE(parse_output("xml", all, &f, &error));
  EXPECT_EQ(error, "unknown output format 'xml' (valid: table, wide, yaml, json)");
  EXPECT_FALSE(parse_output("wide", {OutputFormat::kJson, OutputFormat::kYaml}, &f, &error));
  EXPECT_EQ(error, "unknown output format 'wide' (valid: json, yaml)");
}

TEST(FormatTest, KindAliases) {
  for (const char* k : {"gw", "gateway", "Gateways", "GATEWAY"})
    EXPECT_EQ(canonical_kind(k), "Gateway") << k;
  for (const char* k : {"vs", "vservice", "virtualservices", "VirtualService", "virtual-service",
                        "virtualservices.gateway.portico.dev"}) {
    EXPECT_EQ(canonical_kind(k), "VirtualService") << k;
  }
  for (const char* k : {"us", "upstream", "upstreams"})
    EXPECT_EQ(canonical_kind(k), "Upstream") << k;
  EXPECT_EQ(canonical_kind("rt"), "RouteTable");
  EXPECT_EQ(canonical_kind("ug"), "UpstreamGroup");
  EXPECT_EQ(canonical_kind("all"), "*");
  EXPECT_EQ(canonical_kind("pods"), "");
  EXPECT_EQ(canonical_kind(""), "");
}

TEST(FormatTest, TableAlignsColumnsAndFillsEmptyCells) {
  std::string t = render_table({{"NAMESPACE", "NAME", "STATUS", "REASON"},
                                {"default", "a-long-name", "Accepted", ""},
                                {"team-b", "x", "Rejected", "bad things happened"}});
  EXPECT_EQ(t,
            "NAMESPACE   NAME          STATUS     REASON\n"
            "default     a-long-name   Accepted   -\n"
            "team-b      x             Rejected   bad things happened\n");
}

TEST(FormatTest, YamlReadsBackAsTheSameValue) {
  Json j = Json::parse(R"({
    "name": "web", "port": 8080, "on": true, "none": null, "ratio": 0.5,
    "tricky": ["*", "*.example.com", "yes", "no", "null", "123", "1.0", "0x1f", "a: b", "x #y",
               "- item", "-flag", "", " padded ", "line\nbreak", "/api", "quote\"d", "colon:"],
    "empty_list": [], "empty_map": {},
    "routes": [{"name": "a", "matchers": [{"prefix": "/a"}]}, [1, 2]],
    "nested": {"deep": {"deeper": "v"}}
  })");
  std::string yaml = to_yaml(j);
  YAML::Node n = YAML::Load(yaml);
  EXPECT_EQ(n["name"].as<std::string>(), "web");
  EXPECT_EQ(n["port"].as<int>(), 8080);
  EXPECT_TRUE(n["on"].as<bool>());
  EXPECT_TRUE(n["none"].IsNull());
  const auto& tricky = j["tricky"];
  ASSERT_EQ(n["tricky"].size(), tricky.size()) << yaml;
  for (size_t i = 0; i < tricky.size(); ++i) {
    EXPECT_EQ(n["tricky"][i].as<std::string>(), tricky[i].get<std::string>()) << yaml;
    const YAML::Node item = n["tricky"][i];
    if (item.Tag() == "?") {  // plain: must not read as a bool, number or null
      bool b = false;
      double d = 0;
      EXPECT_FALSE(YAML::convert<bool>::decode(item, b)) << item.Scalar();
      EXPECT_FALSE(YAML::convert<double>::decode(item, d)) << item.Scalar();
      EXPECT_FALSE(item.IsNull()) << item.Scalar();
    }
  }
  // Quoted when plain YAML would read a bool, null or number.
  EXPECT_NE(yaml.find("- \"yes\""), std::string::npos) << yaml;
  EXPECT_NE(yaml.find("- \"123\""), std::string::npos) << yaml;
  EXPECT_NE(yaml.find("- \"*\""), std::string::npos) << yaml;
  EXPECT_NE(yaml.find("- /api\n"), std::string::npos) << yaml;
  EXPECT_TRUE(n["empty_list"].IsSequence());
  EXPECT_EQ(n["empty_list"].size(), 0u);
  EXPECT_TRUE(n["empty_map"].IsMap());
  EXPECT_EQ(n["routes"][0]["matchers"][0]["prefix"].as<std::string>(), "/a");
  EXPECT_EQ(n["routes"][1][1].as<int>(), 2);
  EXPECT_EQ(n["nested"]["deep"]["deeper"].as<std::string>(), "v");
}

TEST(FormatTest, UnifiedDiff) {
  EXPECT_EQ(unified_diff("a\nb\n", "a\nb\n", "x", "y"), "");
  std::string from;
  std::string to;
  for (int i = 1; i <= 20; ++i) {
    from += std::to_string(i) + "\n";
    to += (i == 5 ? std::string("five") : std::to_string(i)) + "\n";
  }
  to += "21\n";
  EXPECT_EQ(unified_diff(from, to, "a/f", "b/f"),
            "--- a/f\n+++ b/f\n"
            "@@ -2,7 +2,7 @@\n 2\n 3\n 4\n-5\n+five\n 6\n 7\n 8\n"
            "@@ -18,3 +18,4 @@\n 18\n 19\n 20\n+21\n");
  // Changes close to each other share one hunk.
  EXPECT_EQ(unified_diff("1\n2\n3\n", "1\nx\n3\ny\n", "a", "b"),
            "--- a\n+++ b\n@@ -1,3 +1,4 @@\n 1\n-2\n+x\n 3\n+y\n");
  EXPECT_EQ(unified_diff("", "new\n", "a", "b"), "--- a\n+++ b\n@@ -0,0 +1,1 @@\n+new\n");
  EXPECT_EQ(unified_diff("old\n", "", "a", "b"), "--- a\n+++ b\n@@ -1,1 +0,0 @@\n-old\n");
}

TEST(FormatTest, EveryCommandHasHelp) {
  for (const char* c : {"get", "describe", "validate", "check", "proxy", "route", "route explain",
                        "route add", "route remove", "diff", "run"}) {
    ASSERT_NE(help_text(c), nullptr) << c;
    EXPECT_NE(std::string(help_text(c)).find("Usage: portico"), std::string::npos) << c;
  }
  EXPECT_EQ(help_text("proxy dump"), help_text("proxy"));
  EXPECT_EQ(help_text("nope"), nullptr);
}

}  // namespace
}  // namespace portico::cli
