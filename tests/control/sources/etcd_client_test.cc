#include "control/sources/etcd_client.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <string>

#include "common/base64.h"

namespace portico::control::etcd {
namespace {

using nlohmann::json;

std::string b64(std::string_view s) {
  return common::base64_encode(s);
}

TEST(EtcdClientTest, PrefixRangeEnd) {
  EXPECT_EQ(prefix_range_end("portico/"), "portico0");
  EXPECT_EQ(prefix_range_end("a"), "b");
  EXPECT_EQ(prefix_range_end(std::string("a\xff", 2)), "b");
  EXPECT_EQ(prefix_range_end(std::string("\xff\xff", 2)), std::string(1, '\0'));
  EXPECT_EQ(prefix_range_end(""), std::string(1, '\0'));
}

TEST(EtcdClientTest, RequestBodies) {
  json range = json::parse(range_body("portico/", "portico0"));
  EXPECT_EQ(range["key"], b64("portico/"));
  EXPECT_EQ(range["range_end"], b64("portico0"));

  json watch = json::parse(watch_body("portico/", "portico0", 12345678901234));
  EXPECT_EQ(watch["create_request"]["key"], b64("portico/"));
  EXPECT_EQ(watch["create_request"]["range_end"], b64("portico0"));
  EXPECT_EQ(watch["create_request"]["start_revision"], "12345678901234");  // 64-bit: a string

  json put = json::parse(cas_body("k", std::string("v"), 7));
  EXPECT_EQ(put["compare"][0]["key"], b64("k"));
  EXPECT_EQ(put["compare"][0]["target"], "MOD");
  EXPECT_EQ(put["compare"][0]["result"], "EQUAL");
  EXPECT_EQ(put["compare"][0]["mod_revision"], "7");
  EXPECT_EQ(put["success"][0]["request_put"]["value"], b64("v"));
  json del = json::parse(cas_body("k", std::nullopt, 0));
  EXPECT_EQ(del["success"][0]["request_delete_range"]["key"], b64("k"));
  EXPECT_EQ(del["compare"][0]["mod_revision"], "0");
}

TEST(EtcdClientTest, ParsesARange) {
  // As etcd 3.4's gateway answers: 64-bit numbers as strings, keys and values in base64.
  const std::string body =
      R"({"header":{"cluster_id":"14841639068965178418","member_id":"10276657743932975437",)"
      R"("revision":"9007199254740993","raft_term":"2"},"kvs":[{"key":")" +
      b64("portico/a") +
      R"(","create_revision":"2","mod_revision":"9007199254740993","version":"1","value":")" +
      b64("kind: X\n") + R"("},{"key":")" + b64("portico/b") +
      R"(","create_revision":"3","mod_revision":"3","version":"1"}],"count":"2"})";
  auto r = parse_range(body);
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r.value().header.cluster_id, "14841639068965178418");
  EXPECT_EQ(r.value().header.revision, 9007199254740993);  // beyond a double's 53 bits
  ASSERT_EQ(r.value().kvs.size(), 2u);
  EXPECT_EQ(r.value().kvs[0].key, "portico/a");
  EXPECT_EQ(r.value().kvs[0].value, "kind: X\n");
  EXPECT_EQ(r.value().kvs[0].mod_revision, 9007199254740993);
  EXPECT_EQ(r.value().kvs[1].value, "");  // an empty value is left out
  EXPECT_FALSE(r.value().more);

  // No kvs at all: an empty prefix.
  auto empty = parse_range(R"({"header":{"cluster_id":"1","revision":"3"}})");
  ASSERT_TRUE(empty);
  EXPECT_TRUE(empty.value().kvs.empty());
  EXPECT_EQ(empty.value().header.revision, 3);
  // Numbers as numbers are read too.
  auto numbers = parse_range(R"({"header":{"revision":4},"more":true})");
  ASSERT_TRUE(numbers);
  EXPECT_EQ(numbers.value().header.revision, 4);
  EXPECT_TRUE(numbers.value().more);
}

TEST(EtcdClientTest, RejectsBadRanges) {
  EXPECT_FALSE(parse_range("not json"));
  EXPECT_FALSE(parse_range("[]"));
  auto bad_key = parse_range(R"({"kvs":[{"key":"!!!"}]})");
  ASSERT_FALSE(bad_key);
  EXPECT_NE(bad_key.error().message.find("kvs[0].key: not base64"), std::string::npos)
      << bad_key.error().message;
  auto bad_rev = parse_range(R"({"header":{"revision":"12x"}})");
  ASSERT_FALSE(bad_rev);
  EXPECT_NE(bad_rev.error().message.find("header.revision"), std::string::npos);
  auto error = parse_range(R"({"error":"etcdserver: request timed out","code":14})");
  ASSERT_FALSE(error);
  EXPECT_NE(error.error().message.find("request timed out"), std::string::npos);
}

TEST(EtcdClientTest, ParsesWatchLines) {
  auto created = parse_watch_line(
      R"({"result":{"header":{"cluster_id":"7","member_id":"8","revision":"3","raft_term":"2"},"created":true}})");
  ASSERT_TRUE(created) << created.error().message;
  EXPECT_TRUE(created.value().created);
  EXPECT_FALSE(created.value().canceled);
  EXPECT_EQ(created.value().header.cluster_id, "7");
  EXPECT_EQ(created.value().header.revision, 3);
  EXPECT_TRUE(created.value().events.empty());

  // A PUT has no type; a DELETE has no value (nor create_revision nor version).
  const std::string events =
      R"({"result":{"header":{"revision":"5"},"events":[{"kv":{"key":")" + b64("portico/a") +
      R"(","create_revision":"2","mod_revision":"4","version":"2","value":")" + b64("hi") +
      R"("}},{"type":"DELETE","kv":{"key":")" + b64("portico/b") + R"(","mod_revision":"5"}}]}})";
  auto ev = parse_watch_line(events);
  ASSERT_TRUE(ev) << ev.error().message;
  ASSERT_EQ(ev.value().events.size(), 2u);
  EXPECT_FALSE(ev.value().events[0].deleted);
  EXPECT_EQ(ev.value().events[0].kv.key, "portico/a");
  EXPECT_EQ(ev.value().events[0].kv.value, "hi");
  EXPECT_EQ(ev.value().events[0].kv.mod_revision, 4);
  EXPECT_TRUE(ev.value().events[1].deleted);
  EXPECT_EQ(ev.value().events[1].kv.key, "portico/b");
  EXPECT_EQ(ev.value().events[1].kv.value, "");
  EXPECT_EQ(ev.value().events[1].kv.mod_revision, 5);

  // After a compaction: canceled, with the compact revision, and no header revision.
  auto compacted = parse_watch_line(
      R"({"result":{"header":{"cluster_id":"7","raft_term":"2"},"canceled":true,"compact_revision":"5"}})");
  ASSERT_TRUE(compacted);
  EXPECT_TRUE(compacted.value().canceled);
  EXPECT_EQ(compacted.value().compact_revision, 5);
  EXPECT_EQ(compacted.value().header.revision, 0);

  auto canceled = parse_watch_line(
      R"({"result":{"canceled":true,"cancel_reason":"etcdserver: permission denied"}})");
  ASSERT_TRUE(canceled);
  EXPECT_EQ(canceled.value().compact_revision, 0);
  EXPECT_EQ(canceled.value().cancel_reason, "etcdserver: permission denied");

  // The gateway's stream error.
  auto error = parse_watch_line(
      R"({"error":{"grpc_code":14,"http_code":503,"message":"transport is closing","http_status":"Service Unavailable"}})");
  ASSERT_TRUE(error);
  EXPECT_EQ(error.value().error, "transport is closing");

  EXPECT_FALSE(parse_watch_line("{\"result\":"));
  EXPECT_FALSE(parse_watch_line(R"({"something":1})"));
  EXPECT_FALSE(parse_watch_line(R"({"result":{"events":[{"type":"BOGUS","kv":{}}]}})"));
  EXPECT_FALSE(parse_watch_line(R"({"result":{"events":[{"type":"PUT"}]}})"));  // no kv
  EXPECT_FALSE(parse_watch_line(R"({"result":{"compact_revision":"x"}})"));
}

TEST(EtcdClientTest, ParsesTxn) {
  auto ok = parse_txn(R"({"header":{"revision":"9"},"succeeded":true,"responses":[{}]})");
  ASSERT_TRUE(ok);
  EXPECT_TRUE(ok.value().succeeded);
  EXPECT_EQ(ok.value().revision, 9);
  // A failed compare: false is left out.
  auto failed = parse_txn(R"({"header":{"revision":"9"}})");
  ASSERT_TRUE(failed);
  EXPECT_FALSE(failed.value().succeeded);
}

}  // namespace
}  // namespace portico::control::etcd
