#include "common/base64.h"

#include <gtest/gtest.h>

namespace portico::common {
namespace {

TEST(Base64, RoundTripsEveryLength) {
  const std::string bytes("\x00\xff\x10 portico\x80", 13);
  for (size_t n = 0; n <= bytes.size(); ++n) {
    std::string in = bytes.substr(0, n);
    auto out = base64_decode(base64_encode(in));
    ASSERT_TRUE(out.has_value()) << n;
    EXPECT_EQ(*out, in);
  }
}

TEST(Base64, KnownVectors) {
  EXPECT_EQ(base64_encode("foobar"), "Zm9vYmFy");
  EXPECT_EQ(base64_encode("fo"), "Zm8=");
  EXPECT_EQ(base64_encode("f"), "Zg==");
  EXPECT_EQ(base64_decode("Zm9vYg==").value_or("?"), "foob");
}

TEST(Base64, RefusesInvalidText) {
  EXPECT_FALSE(base64_decode("Zm9").has_value());
  EXPECT_FALSE(base64_decode("Zm9v YmFy").has_value());
  EXPECT_FALSE(base64_decode("Z=9v").has_value());
  EXPECT_FALSE(base64_decode("Zm9*").has_value());
}

}  // namespace
}  // namespace portico::common
