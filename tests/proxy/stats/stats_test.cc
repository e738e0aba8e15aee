#include "proxy/stats/stats.h"

#include <gtest/gtest.h>

namespace portico::proxy::stats {
namespace {

TEST(StatsTest, SumsWorkerRowsByStatusClass) {
  Registry r(2);
  auto s = r.request_slot("default/gw", "default/vs", "default/vs/0", "default/up");
  s->count(0, 200);
  s->count(1, 204);
  s->count(1, 503);
  s->count(0, 0);  // client went away before a response
  std::string text = r.render();
  EXPECT_NE(text.find("portico_requests_total{listener=\"default/gw\",virtual_host=\"default/vs\","
                      "route=\"default/vs/0\",upstream=\"default/up\",status_class=\"2xx\"} 2\n"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("status_class=\"5xx\"} 1\n"), std::string::npos);
  EXPECT_NE(text.find("status_class=\"none\"} 1\n"), std::string::npos);
}

TEST(StatsTest, Http2CountersSumWorkersAndFloodsByKind) {
  Registry r(2);
  r.worker_row(0).h2_rapid_reset.inc();
  r.worker_row(1).h2_rapid_reset.inc();
  r.worker_row(1).h2_flood[static_cast<size_t>(H2Flood::kPing)].inc(3);
  const std::string text = r.render();
  EXPECT_NE(text.find("portico_http2_rapid_reset_total 2\n"), std::string::npos) << text;
  EXPECT_NE(text.find("portico_http2_floods_total{kind=\"ping\"} 3\n"), std::string::npos);
  EXPECT_NE(text.find("portico_http2_floods_total{kind=\"continuation\"} 0\n"), std::string::npos);
  EXPECT_NE(text.find("# TYPE portico_http2_streams_total counter\n"), std::string::npos);
}

TEST(StatsTest, DurationHistogramIsCumulativeWithSumAndCount) {
  Registry r(2);
  auto s = r.request_slot("l", "v", "r", "u");
  s->observe(0, 800);       // <= 1 ms
  s->observe(1, 3000);      // <= 5 ms
  s->observe(1, 20000000);  // > 10 s: only +Inf
  std::string text = r.render();
  const std::string labels = "listener=\"l\",virtual_host=\"v\",route=\"r\",upstream=\"u\"";
  auto has = [&](const std::string& line) { return text.find(line + "\n") != std::string::npos; };
  EXPECT_TRUE(has("portico_request_duration_seconds_bucket{" + labels + ",le=\"0.001\"} 1"))
      << text;
  EXPECT_TRUE(has("portico_request_duration_seconds_bucket{" + labels + ",le=\"0.0025\"} 1"));
  EXPECT_TRUE(has("portico_request_duration_seconds_bucket{" + labels + ",le=\"0.005\"} 2"));
  EXPECT_TRUE(has("portico_request_duration_seconds_bucket{" + labels + ",le=\"10\"} 2"));
  EXPECT_TRUE(has("portico_request_duration_seconds_bucket{" + labels + ",le=\"+Inf\"} 3"));
  EXPECT_TRUE(has("portico_request_duration_seconds_sum{" + labels + "} 20.003800"));
  EXPECT_TRUE(has("portico_request_duration_seconds_count{" + labels + "} 3"));
}

TEST(StatsTest, NoHistogramLinesForUnusedSlots) {
  Registry r(1);
  r.request_slot("l", "v", "r", "u");
  EXPECT_EQ(r.render().find("portico_request_duration_seconds_bucket"), std::string::npos);
}

TEST(StatsTest, SameLabelsGiveSameSlot) {
  Registry r(1);
  EXPECT_EQ(r.request_slot("a", "b", "c", "d"), r.request_slot("a", "b", "c", "d"));
  EXPECT_NE(r.request_slot("a", "b", "c", "d"), r.request_slot("a", "b", "c", "e"));
  EXPECT_EQ(r.cluster_slot("x"), r.cluster_slot("x"));
}

TEST(StatsTest, EscapesLabelValues) {
  Registry r(1);
  auto slot = r.request_slot("a\"b", "c\\d", "e\nf", "");  // a Runtime would hold it
  slot->count(0, 200);
  std::string text = r.render();
  EXPECT_NE(text.find("listener=\"a\\\"b\",virtual_host=\"c\\\\d\",route=\"e\\nf\""),
            std::string::npos)
      << text;
}

TEST(StatsTest, ClusterGaugesAndConfigFacts) {
  Registry r(2);
  auto c = r.cluster_slot("default/up");
  c->row(0).cx_active.inc();
  c->row(1).cx_active.inc();
  c->row(1).errors[static_cast<size_t>(UpstreamError::kTimeout)].inc();
  r.set_config(7, 1700000000123);
  std::string text = r.render();
  EXPECT_NE(text.find("portico_upstream_connections_active{upstream=\"default/up\"} 2\n"),
            std::string::npos);
  EXPECT_NE(
      text.find("portico_upstream_errors_total{upstream=\"default/up\",reason=\"timeout\"} 1\n"),
      std::string::npos);
  EXPECT_NE(text.find("portico_config_version 7\n"), std::string::npos);
  EXPECT_NE(text.find("portico_config_last_change_timestamp_seconds 1700000000.123\n"),
            std::string::npos);
}

TEST(StatsRegistry, RequestSlotsOfRemovedRoutesAreFreed) {
  Registry r(2);
  auto kept = r.request_slot("l", "v", "kept", "u");
  auto removed = r.request_slot("l", "v", "removed", "u");
  removed->count(0, 200);
  kept->count(0, 200);
  EXPECT_EQ(r.request_slots(), 2u);
  EXPECT_NE(r.render().find("route=\"removed\""), std::string::npos);
  // The same labels give the same slot while it lives.
  EXPECT_EQ(r.request_slot("l", "v", "kept", "u").get(), kept.get());
  removed.reset();  // the last configuration using it is gone
  EXPECT_EQ(r.request_slots(), 1u);
  const std::string text = r.render();
  EXPECT_EQ(text.find("route=\"removed\""), std::string::npos);
  EXPECT_NE(text.find("route=\"kept\""), std::string::npos);
}

TEST(StatsRegistry, ClusterSlotsOfRemovedClustersAreFreed) {
  Registry r(1);
  auto kept = r.cluster_slot("default/kept");
  auto removed = r.cluster_slot("default/removed");
  removed->row(0).rq_total.inc();
  EXPECT_EQ(r.cluster_slots(), 2u);
  EXPECT_NE(r.render().find("upstream=\"default/removed\""), std::string::npos);
  EXPECT_EQ(r.cluster_slot("default/kept").get(), kept.get());  // same slot while it lives
  removed.reset();  // no configuration uses the cluster any more
  EXPECT_EQ(r.cluster_slots(), 1u);
  const std::string text = r.render();
  EXPECT_EQ(text.find("default/removed"), std::string::npos) << text;
  EXPECT_NE(text.find("portico_upstream_requests_total{upstream=\"default/kept\"} 0\n"),
            std::string::npos);
  // A cluster added again later starts from zero.
  auto again = r.cluster_slot("default/removed");
  EXPECT_EQ(again->row(0).rq_total.get(), 0u);
}

}  // namespace
}  // namespace portico::proxy::stats
