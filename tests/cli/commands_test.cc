#include "cli/commands.h"

#include <gtest/gtest.h>

namespace portico::cli {
namespace {

TEST(CliTest, ParsesHostPort) {
  std::string host;
  uint16_t port = 0;
  ASSERT_TRUE(parse_host_port("127.0.0.1:9901", &host, &port));
  EXPECT_EQ(host, "127.0.0.1");
  EXPECT_EQ(port, 9901);
  ASSERT_TRUE(parse_host_port("[::1]:80", &host, &port));
  EXPECT_EQ(host, "::1");
  EXPECT_EQ(port, 80);
  ASSERT_TRUE(parse_host_port("localhost:0", &host, &port));
  EXPECT_EQ(port, 0);
}

TEST(CliTest, RejectsMalformedHostPort) {
  std::string host;
  uint16_t port = 0;
  for (const char* bad :
       {"", "9901", ":9901", "host:", "host:65536", "host:12a", "[::1]80", "[::1", "host:123456"}) {
    EXPECT_FALSE(parse_host_port(bad, &host, &port)) << bad;
  }
}

}  // namespace
}  // namespace portico::cli
