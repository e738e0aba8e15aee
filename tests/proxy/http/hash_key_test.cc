#include "proxy/http/hash_key.h"

#include <gtest/gtest.h>

#include "proxy/upstream/lb.h"

namespace portico::proxy::http {
namespace {

using Kind = snapshot::HashPolicy::Kind;

snapshot::HashPolicy policy(Kind k, std::string name = "", bool terminal = false) {
  snapshot::HashPolicy p;
  p.kind = k;
  p.name = std::move(name);
  p.terminal = terminal;
  return p;
}

TEST(HashKeyTest, NoPolicyInputNoKey) {
  HeaderMap h;
  EXPECT_FALSE(request_hash({policy(Kind::kHeader, "x-user")}, h, "10.0.0.1"));
  EXPECT_FALSE(request_hash({}, h, "10.0.0.1"));
}

TEST(HashKeyTest, HeaderKeyIsTheValueHash) {
  HeaderMap h;
  h.add("x-user", "alice");
  auto k = request_hash({policy(Kind::kHeader, "x-user")}, h, "10.0.0.1");
  ASSERT_TRUE(k);
  EXPECT_EQ(*k, upstream::lb::hash64("alice"));
  HeaderMap other;
  other.add("x-user", "bob");
  EXPECT_NE(*request_hash({policy(Kind::kHeader, "x-user")}, other, "10.0.0.1"), *k);
}

TEST(HashKeyTest, PoliciesCombineAndTerminalStops) {
  HeaderMap h;
  h.add("x-a", "1");
  h.add("x-b", "2");
  const auto a = upstream::lb::hash64("1");
  const auto b = upstream::lb::hash64("2");
  EXPECT_EQ(*request_hash({policy(Kind::kHeader, "x-a"), policy(Kind::kHeader, "x-b")}, h, ""),
            upstream::lb::combine(a, b));
  EXPECT_EQ(
      *request_hash({policy(Kind::kHeader, "x-a", true), policy(Kind::kHeader, "x-b")}, h, ""), a);
  // A terminal policy without input does not stop the evaluation.
  EXPECT_EQ(
      *request_hash({policy(Kind::kHeader, "x-none", true), policy(Kind::kHeader, "x-b")}, h, ""),
      b);
}

TEST(HashKeyTest, SourceIp) {
  HeaderMap h;
  EXPECT_EQ(*request_hash({policy(Kind::kSourceIp)}, h, "192.0.2.7"),
            upstream::lb::hash64("192.0.2.7"));
  EXPECT_FALSE(request_hash({policy(Kind::kSourceIp)}, h, ""));
}

TEST(HashKeyTest, Cookie) {
  HeaderMap h;
  h.add("cookie", "a=1; session=\"xyz\" ;b=2");
  h.add("Cookie", "c=3");  // names keep their case as received
  EXPECT_EQ(find_cookie(h, "session"), "xyz");
  EXPECT_EQ(find_cookie(h, "b"), "2");
  EXPECT_EQ(find_cookie(h, "c"), "3");
  EXPECT_FALSE(find_cookie(h, "sess"));
  EXPECT_EQ(*request_hash({policy(Kind::kCookie, "session")}, h, ""), upstream::lb::hash64("xyz"));
}

}  // namespace
}  // namespace portico::proxy::http
