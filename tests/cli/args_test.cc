#include "cli/args.h"

#include <gtest/gtest.h>

namespace portico::cli {
namespace {

const std::vector<FlagSpec> kSpecs = {
    {"--output", "-o", true, false},
    {"--admin", "", true, false},
    {"--header", "-H", true, true},
    {"--dry-run", "", false, false},
};

TEST(ArgsTest, BothFlagFormsAndPositionals) {
  Args a;
  ASSERT_EQ(a.parse({"get", "--output=json", "vs", "--admin", "1.2.3.4:5"}, kSpecs), "");
  EXPECT_EQ(a.get("--output"), "json");
  EXPECT_EQ(a.get("--admin"), "1.2.3.4:5");
  EXPECT_EQ(a.positional(), (std::vector<std::string>{"get", "vs"}));
  EXPECT_FALSE(a.help());
}

TEST(ArgsTest, ShortForms) {
  for (auto args : std::vector<std::vector<std::string>>{
           {"-o", "yaml"}, {"-oyaml"}, {"-o=yaml"}, {"--output", "yaml"}}) {
    Args a;
    ASSERT_EQ(a.parse(args, kSpecs), "") << args[0];
    EXPECT_EQ(a.get("--output"), "yaml") << args[0];
  }
}

TEST(ArgsTest, LastValueWinsAndRepeatedFlagsKeepAll) {
  Args a;
  ASSERT_EQ(a.parse({"-o", "json", "-o", "yaml", "-H", "A: 1", "--header=B: 2"}, kSpecs), "");
  EXPECT_EQ(a.get("--output"), "yaml");
  EXPECT_EQ(a.all("--header"), (std::vector<std::string>{"A: 1", "B: 2"}));
}

TEST(ArgsTest, BooleanFlags) {
  Args a;
  ASSERT_EQ(a.parse({"--dry-run"}, kSpecs), "");
  EXPECT_TRUE(a.has("--dry-run"));
  Args b;
  ASSERT_EQ(b.parse({"--dry-run=false"}, kSpecs), "");
  EXPECT_FALSE(b.has("--dry-run"));
  Args c;
  EXPECT_EQ(c.parse({"--dry-run=maybe"}, kSpecs), "--dry-run takes no value (got 'maybe')");
}

TEST(ArgsTest, Errors) {
  Args a;
  EXPECT_EQ(a.parse({"--colour", "red"}, kSpecs), "unknown flag '--colour'");
  Args b;
  EXPECT_EQ(b.parse({"vs", "-o"}, kSpecs), "--output needs a value");
  Args c;
  EXPECT_EQ(c.parse({"-x"}, kSpecs), "unknown flag '-x'");
}

TEST(ArgsTest, HelpDashAndDoubleDash) {
  Args a;
  ASSERT_EQ(a.parse({"-", "--help", "--", "--not-a-flag"}, kSpecs), "");
  EXPECT_TRUE(a.help());
  EXPECT_EQ(a.positional(), (std::vector<std::string>{"-", "--not-a-flag"}));
  Args b;
  ASSERT_EQ(b.parse({"-h"}, kSpecs), "");
  EXPECT_TRUE(b.help());
}

TEST(ArgsTest, FallbackWhenAbsent) {
  Args a;
  ASSERT_EQ(a.parse({}, kSpecs), "");
  EXPECT_EQ(a.get("--admin", kDefaultAdmin), "127.0.0.1:9901");
  EXPECT_TRUE(a.all("--header").empty());
}

TEST(FlagWalkerTest, InlineAndSeparateValues) {
  const std::vector<std::string> args = {"dir", "--admin=127.0.0.1:1", "--workers",
                                         "2",   "--upgrade",           "--resync="};
  FlagWalker w("portico run", args);
  std::vector<std::string> seen;
  while (w.next()) {
    std::string item = w.arg();
    if (w.arg() == "--admin" || w.arg() == "--workers" || w.arg() == "--resync") {
      const std::string* v = w.value();
      ASSERT_NE(v, nullptr);
      item += (w.has_inline() ? "=" : " ") + *v;
    }
    seen.push_back(item);
  }
  EXPECT_EQ(seen, (std::vector<std::string>{"dir", "--admin=127.0.0.1:1", "--workers 2",
                                            "--upgrade", "--resync="}));
}

TEST(FlagWalkerTest, AMissingValueIsNull) {
  const std::vector<std::string> args = {"--admin"};
  FlagWalker w("portico run", args);
  ASSERT_TRUE(w.next());
  EXPECT_EQ(w.value(), nullptr);
  EXPECT_FALSE(w.next());
}

TEST(ParseDurationTest, UnitsAndMalformed) {
  std::chrono::milliseconds d{};
  ASSERT_TRUE(parse_duration("30s", &d));
  EXPECT_EQ(d.count(), 30000);
  ASSERT_TRUE(parse_duration("500ms", &d));
  EXPECT_EQ(d.count(), 500);
  ASSERT_TRUE(parse_duration("2m", &d));
  EXPECT_EQ(d.count(), 120000);
  ASSERT_TRUE(parse_duration("0", &d));
  EXPECT_EQ(d.count(), 0);
  for (const char* bad : {"", "5", "s", "-1s", "1h", "10000000000ms", "1.5s"})
    EXPECT_FALSE(parse_duration(bad, &d)) << bad;
}

}  // namespace
}  // namespace portico::cli
