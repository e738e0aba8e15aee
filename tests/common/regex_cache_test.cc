#include "common/regex_cache.h"

#include <gtest/gtest.h>

namespace portico::common {
namespace {

TEST(RegexCache, OneCompiledObjectPerPatternAndOptionsWhileHeld) {
  auto a = shared_regex("/item/[0-9]+", true);
  auto b = shared_regex("/item/[0-9]+", true);
  auto c = shared_regex("/item/[0-9]+", false);
  EXPECT_EQ(a, b);
  EXPECT_NE(a, c);
  EXPECT_TRUE(re2::RE2::FullMatch("/item/42", *a));
  EXPECT_FALSE(re2::RE2::FullMatch("/ITEM/42", *a));
  EXPECT_TRUE(re2::RE2::FullMatch("/ITEM/42", *c));
  const size_t held = shared_regex_count();
  a.reset();
  b.reset();
  EXPECT_EQ(shared_regex_count(), held - 1);  // nobody holds it: forgotten, not kept alive
  EXPECT_TRUE(shared_regex("/item/[0-9]+", true)->ok());
}

TEST(RegexCache, ABadPatternComesBackWithItsError) {
  auto bad = shared_regex("(unclosed", true);
  ASSERT_NE(bad, nullptr);
  EXPECT_FALSE(bad->ok());
  EXPECT_FALSE(bad->error().empty());
}

}  // namespace
}  // namespace portico::common
