// The pieces every Consul client shares: index rules, read parameters, KV parsing, back-off.
#include "control/consul/consul_api.h"

#include <gtest/gtest.h>

namespace portico::control::consul {
namespace {

using namespace std::chrono_literals;

TEST(ConsulApi, BlockingIndexRules) {
  BlockingIndex i;
  EXPECT_EQ(i.value(), 0u);  // the first read does not block
  EXPECT_TRUE(i.update(42));
  EXPECT_EQ(i.value(), 42u);
  EXPECT_TRUE(i.update(42));  // unchanged (a wait that ran out)
  EXPECT_EQ(i.value(), 42u);
  EXPECT_TRUE(i.update(50));
  EXPECT_EQ(i.value(), 50u);
  EXPECT_FALSE(i.update(7));  // backwards (a restore): start over with a non-blocking read
  EXPECT_EQ(i.value(), 0u);
  EXPECT_TRUE(i.update(7));
  EXPECT_EQ(i.value(), 7u);
  BlockingIndex z;
  EXPECT_TRUE(z.update(0));  // below 1: used as 1, so that the next query blocks
  EXPECT_EQ(z.value(), 1u);
  z.reset();
  EXPECT_EQ(z.value(), 0u);
}

TEST(ConsulApi, ParseIndex) {
  std::string s = "123";
  EXPECT_EQ(parse_index(&s), std::optional<uint64_t>(123));
  s = "18446744073709551615";
  EXPECT_EQ(parse_index(&s), std::optional<uint64_t>(UINT64_MAX));
  for (const char* bad : {"", "-1", "12a", " 1", "18446744073709551616", "1.5"}) {
    s = bad;
    EXPECT_EQ(parse_index(&s), std::nullopt) << bad;
  }
  EXPECT_EQ(parse_index(nullptr), std::nullopt);
}

TEST(ConsulApi, ReadParamsAndHeaders) {
  Endpoint e;
  EXPECT_EQ(read_params(e, Consistency::kDefault, 0, 60s), "");
  EXPECT_EQ(read_params(e, Consistency::kConsistent, 0, 60s), "&consistent");
  e.datacenter = "dc 2";
  EXPECT_EQ(read_params(e, Consistency::kStale, 9, 1500ms), "&dc=dc%202&stale&index=9&wait=1500ms");
  EXPECT_TRUE(request_headers(e).empty());
  e.token = "t0k";
  e.username = "u";
  e.password = "p";
  auto h = request_headers(e);
  ASSERT_EQ(h.size(), 2u);
  EXPECT_EQ(h[0], std::make_pair(std::string("X-Consul-Token"), std::string("t0k")));
  EXPECT_EQ(h[1], std::make_pair(std::string("Authorization"), std::string("Basic dTpw")));
  // Consul Enterprise: every request names the namespace (KV, catalog, health alike).
  e.ns = "team-a";
  h = request_headers(e);
  ASSERT_EQ(h.size(), 3u);
  EXPECT_EQ(h[1], std::make_pair(std::string("X-Consul-Namespace"), std::string("team-a")));
}

TEST(ConsulApi, ParseKvEntries) {
  auto r = parse_kv_entries(R"([
    {"LockIndex":0,"Key":"gloo/a","Flags":3,"Value":"aGVsbG8=","CreateIndex":5,"ModifyIndex":9},
    {"LockIndex":0,"Key":"gloo/folder/","Flags":0,"Value":null,"CreateIndex":6,"ModifyIndex":6},
    {"Key":"gloo/b","Value":""}
  ])");
  ASSERT_TRUE(r.ok()) << r.error().message;
  ASSERT_EQ(r->size(), 3u);
  EXPECT_EQ((*r)[0].key, "gloo/a");
  EXPECT_EQ((*r)[0].value, "hello");
  EXPECT_EQ((*r)[0].flags, 3u);
  EXPECT_EQ((*r)[0].create_index, 5u);
  EXPECT_EQ((*r)[0].modify_index, 9u);
  EXPECT_EQ((*r)[1].value, "");
  EXPECT_EQ((*r)[2].modify_index, 0u);
  EXPECT_TRUE(parse_kv_entries("[]").ok());

  struct Bad {
    const char* body;
    const char* says;
  };
  for (const Bad& b : {Bad{"<html>", "not JSON"}, Bad{"{\"Key\":\"a\"}", "not a JSON array"},
                       Bad{"[1]", "entry 0: not an object"}, Bad{"[{\"Value\":null}]", "no Key"},
                       Bad{"[{\"Key\":\"a\",\"Value\":\"%%%\"}]", "not base64"},
                       Bad{"[{\"Key\":\"a\",\"Value\":7}]", "not a string"},
                       Bad{"[{\"Key\":\"a\",\"ModifyIndex\":-1}]", "non-negative integer"},
                       Bad{"[{\"Key\":\"a\",\"ModifyIndex\":\"9\"}]", "non-negative integer"},
                       Bad{"[{\"Key\":\"a\"}", "not JSON"}}) {
    auto e = parse_kv_entries(b.body);
    ASSERT_FALSE(e.ok()) << b.body;
    EXPECT_NE(e.error().message.find(b.says), std::string::npos)
        << b.body << ": " << e.error().message;
  }
}

TEST(ConsulApi, BackoffDoublesWithJitterWithinBounds) {
  Backoff b(100ms, 10s, 7);
  int64_t ceiling = 100;
  for (int i = 0; i < 12; ++i) {
    Millis d = b.next();
    EXPECT_GE(d.count(), std::max<int64_t>(100, ceiling / 2)) << i;
    EXPECT_LE(d.count(), ceiling) << i;
    ceiling = std::min<int64_t>(ceiling * 2, 10000);
  }
  EXPECT_GE(b.next().count(), 5000);  // at the cap: 5 s to 10 s
  b.reset();
  EXPECT_EQ(b.next().count(), 100);
}

TEST(ConsulApi, Brief) {
  EXPECT_EQ(brief("Permission denied\nmore"), "Permission denied");
  EXPECT_EQ(brief(std::string(300, 'x')), std::string(200, 'x') + "...");
  EXPECT_EQ(brief("a\tb"), "a b");
}

}  // namespace
}  // namespace portico::control::consul
