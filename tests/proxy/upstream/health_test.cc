#include "proxy/upstream/health.h"

#include <gtest/gtest.h>

#include <map>
#include <thread>

#include "proxy/upstream/cluster.h"

namespace portico::proxy::upstream {
namespace {

snapshot::Cluster make_cluster(std::vector<uint16_t> ports) {
  snapshot::Cluster c;
  c.name = "default/up";
  for (auto port : ports)
    c.endpoints.push_back({"127.0.0.1", port, 1});
  return c;
}

snapshot::OutlierDetection outlier(uint32_t consecutive_5xx, uint32_t max_percent = 100) {
  snapshot::OutlierDetection o;
  o.consecutive_5xx = consecutive_5xx;
  o.max_ejection_percent = max_percent;
  o.base_ejection_time = std::chrono::milliseconds(1000);
  o.max_ejection_time = std::chrono::milliseconds(3000);
  return o;
}

struct HealthTest : ::testing::Test {
  stats::Registry registry{1};
  std::shared_ptr<stats::ClusterSlot> slot = registry.cluster_slot("default/up");
};

TEST_F(HealthTest, NoHealthSettingsNoState) {
  auto c = make_cluster({1, 2});
  EXPECT_EQ(make_cluster_health(c, nullptr, slot, nullptr), nullptr);
  EXPECT_FALSE(slot->health_shown.load());
}

TEST_F(HealthTest, CheckedHostsStartUnhealthyUncheckedOnesAvailable) {
  auto c = make_cluster({1, 2});
  c.health_check = snapshot::HealthCheck{};
  auto h = make_cluster_health(c, nullptr, slot, nullptr);
  ASSERT_NE(h, nullptr);
  ASSERT_EQ(h->hosts.size(), 2u);
  EXPECT_FALSE(h->hosts[0]->available());  // until the first check passes
  c.health_check.reset();
  c.outlier_detection = outlier(5);
  auto o = make_cluster_health(c, nullptr, slot, nullptr);
  EXPECT_TRUE(o->hosts[0]->available());
}

TEST_F(HealthTest, HostStateCarriesOverWhileTheHostStays) {
  auto c = make_cluster({1, 2});
  c.health_check = snapshot::HealthCheck{};
  auto first = make_cluster_health(c, nullptr, slot, nullptr);
  first->hosts[1]->check_ok.store(true);
  auto c2 = make_cluster({2, 3});
  c2.health_check = snapshot::HealthCheck{};
  auto second = make_cluster_health(c2, first.get(), slot, nullptr);
  EXPECT_EQ(second->hosts[0], first->hosts[1]);  // port 2 kept its state
  EXPECT_TRUE(second->hosts[0]->available());
  EXPECT_FALSE(second->hosts[1]->available());  // port 3 is new: pending its first check
  // The check removed: verdicts are stale, every host starts afresh (available).
  auto c3 = make_cluster({2, 3});
  c3.outlier_detection = outlier(5);
  auto third = make_cluster_health(c3, second.get(), slot, nullptr);
  EXPECT_NE(third->hosts[0], second->hosts[0]);
  EXPECT_TRUE(third->hosts[1]->available());
}

TEST_F(HealthTest, EjectsAfterConsecutive5xxAndSuccessResets) {
  auto c = make_cluster({1, 2, 3});
  c.outlier_detection = outlier(3);
  auto h = make_cluster_health(c, nullptr, slot, nullptr);
  HostHealth& host = *h->hosts[0];
  EXPECT_FALSE(h->report(host, 500, 0));
  EXPECT_FALSE(h->report(host, 503, 0));
  EXPECT_FALSE(h->report(host, 200, 0));  // a success breaks the run
  EXPECT_FALSE(h->report(host, 500, 0));
  EXPECT_FALSE(h->report(host, 500, 0));
  EXPECT_TRUE(host.available());
  EXPECT_TRUE(h->report(host, 500, 0));
  EXPECT_FALSE(host.available());
  EXPECT_EQ(slot->ejections.load(), 1u);
  EXPECT_TRUE(h->report(*h->hosts[1], kGatewayFailure, 0) == false);
}

TEST_F(HealthTest, LocalFailuresCountAsGatewayFailuresUnlessSplit) {
  auto c = make_cluster({1, 2});
  auto o = outlier(0);  // 5xx detector off
  o.consecutive_gateway_failure = 2;
  o.enforcing_consecutive_gateway_failure = 100;
  c.outlier_detection = o;
  auto h = make_cluster_health(c, nullptr, slot, nullptr);
  EXPECT_FALSE(h->report(*h->hosts[0], kLocalOriginFailure, 0));
  EXPECT_TRUE(h->report(*h->hosts[0], 502, 0));
  // A 500 is no gateway failure: it breaks the run.
  EXPECT_FALSE(h->report(*h->hosts[1], 504, 0));
  EXPECT_FALSE(h->report(*h->hosts[1], 500, 0));
  EXPECT_FALSE(h->report(*h->hosts[1], 504, 0));
  o.split_external_local_origin_errors = true;
  o.consecutive_local_origin_failure = 2;
  c.outlier_detection = o;
  auto split = make_cluster_health(c, nullptr, slot, nullptr);
  EXPECT_FALSE(split->report(*split->hosts[0], kLocalOriginFailure, 0));
  EXPECT_FALSE(split->report(*split->hosts[0], 502, 0));  // not added to the local count
  EXPECT_TRUE(split->report(*split->hosts[0], kLocalOriginFailure, 0));
}

TEST_F(HealthTest, EnforcingZeroDetectsButNeverEjects) {
  auto c = make_cluster({1, 2});
  auto o = outlier(1);
  o.enforcing_consecutive_5xx = 0;
  c.outlier_detection = o;
  auto h = make_cluster_health(c, nullptr, slot, nullptr);
  for (int i = 0; i < 10; ++i)
    EXPECT_FALSE(h->report(*h->hosts[0], 500, 0));
  EXPECT_TRUE(h->hosts[0]->available());
}

TEST_F(HealthTest, MaxEjectionPercentIsRespectedButOneHostMayAlwaysGo) {
  auto c = make_cluster({1, 2, 3, 4});
  c.outlier_detection = outlier(1, 50);
  auto h = make_cluster_health(c, nullptr, slot, nullptr);
  int ejected = 0;
  for (auto& host : h->hosts)
    ejected += h->report(*host, 500, 0) ? 1 : 0;
  EXPECT_EQ(ejected, 2);  // 50 % of 4
  auto c3 = make_cluster({1, 2, 3});
  c3.outlier_detection = outlier(1, 10);
  auto h3 = make_cluster_health(c3, nullptr, slot, nullptr);
  ejected = 0;
  for (auto& host : h3->hosts)
    ejected += h3->report(*host, 500, 0) ? 1 : 0;
  EXPECT_EQ(ejected, 1);  // 10 % of 3 is less than one host: one anyway
}

TEST_F(HealthTest, EjectedHostReturnsAfterItsTimeWhichGrowsWithEjections) {
  auto c = make_cluster({1, 2});
  c.outlier_detection = outlier(1);
  auto h = make_cluster_health(c, nullptr, slot, nullptr);
  HostHealth& host = *h->hosts[0];
  ASSERT_TRUE(h->report(host, 500, 0));
  const int64_t t0 = steady_ms();
  const int64_t until = host.ejected_until_ms.load();
  EXPECT_NEAR(static_cast<double>(until - t0), 1000.0, 50.0);  // base × 1
  h->sweep(t0 + 500);
  EXPECT_FALSE(host.available());
  EXPECT_EQ(slot->hosts_ejected.get(), 1u);
  h->sweep(until);
  EXPECT_TRUE(host.available());
  EXPECT_EQ(slot->hosts_ejected.get(), 0u);
  ASSERT_TRUE(h->report(host, 500, 0));  // again at once: twice as long
  EXPECT_NEAR(static_cast<double>(host.ejected_until_ms.load() - steady_ms()), 2000.0, 50.0);
  h->sweep(host.ejected_until_ms.load());
  ASSERT_TRUE(h->report(host, 500, 0));
  ASSERT_TRUE(host.ejected.load());
  h->sweep(host.ejected_until_ms.load());
  ASSERT_TRUE(h->report(host, 500, 0));  // the fourth: capped at max_ejection_time (3 s)
  EXPECT_NEAR(static_cast<double>(host.ejected_until_ms.load() - steady_ms()), 3000.0, 50.0);
  // Unejected for an interval, the multiplier decays.
  const int64_t back = host.ejected_until_ms.load();
  h->sweep(back);
  const uint32_t before = host.ejections.load();
  h->sweep(back + c.outlier_detection->interval.count());
  EXPECT_EQ(host.ejections.load(), before - 1);
}

std::shared_ptr<Endpoint> pick(Cluster& cluster, uint64_t random) {
  PickContext ctx;
  ctx.random = random;
  return cluster.pick(ctx);
}

TEST_F(HealthTest, PickSkipsUnavailableEndpointsWhileOthersAreUp) {
  for (auto lb : {snapshot::LbPolicy::kRoundRobin, snapshot::LbPolicy::kLeastRequest}) {
    auto c = make_cluster({1, 2, 3});
    c.lb = lb;
    c.outlier_detection = outlier(1, 100);
    auto h = make_cluster_health(c, nullptr, slot, nullptr);
    Cluster cluster(c, slot.get(), 0);
    cluster.set_health(h);
    ASSERT_TRUE(h->report(*h->hosts[1], 500, 0));
    std::map<uint16_t, int> seen;
    uint64_t r = 12345;
    for (int i = 0; i < 300; ++i) {
      r = r * 6364136223846793005ULL + 1442695040888963407ULL;
      ++seen[pick(cluster, r)->config.port];
    }
    EXPECT_EQ(seen[2], 0);
    EXPECT_GT(seen[1], 50);
    EXPECT_GT(seen[3], 50);
    // All down: every endpoint is used rather than none.
    ASSERT_TRUE(h->report(*h->hosts[0], 500, 0));
    ASSERT_TRUE(h->report(*h->hosts[2], 500, 0));
    seen.clear();
    for (int i = 0; i < 300; ++i) {
      r = r * 6364136223846793005ULL + 1442695040888963407ULL;
      ++seen[pick(cluster, r)->config.port];
    }
    EXPECT_EQ(seen.size(), 3u);
  }
}

TEST_F(HealthTest, ClusterReportGoesToTheEndpointsHost) {
  auto c = make_cluster({1, 2});
  c.outlier_detection = outlier(2, 100);
  auto h = make_cluster_health(c, nullptr, slot, nullptr);
  Cluster cluster(c, slot.get(), 0);
  cluster.set_health(h);
  auto ep = pick(cluster, 0);
  cluster.report(*ep, 502, 0);
  cluster.report(*ep, 502, 0);
  EXPECT_FALSE(ep->available());
  for (int i = 0; i < 5; ++i)
    EXPECT_NE(pick(cluster, 0), ep);
}

// The checker against a real listener: a TCP check makes a listening port healthy, a closed one
// stays down.
TEST_F(HealthTest, TcpCheckerMarksListeningPortUpAndClosedPortDown) {
  asio::io_context io;
  asio::ip::tcp::acceptor acceptor(io, {asio::ip::make_address("127.0.0.1"), 0});
  const uint16_t open_port = acceptor.local_endpoint().port();
  uint16_t closed_port = 0;
  {
    asio::ip::tcp::acceptor a(io, {asio::ip::make_address("127.0.0.1"), 0});
    closed_port = a.local_endpoint().port();
  }
  auto c = make_cluster({open_port, closed_port});
  snapshot::HealthCheck hc;
  hc.kind = snapshot::HealthCheck::Kind::kTcp;
  hc.interval = std::chrono::milliseconds(50);
  hc.timeout = std::chrono::milliseconds(200);
  c.health_check = hc;
  auto h = make_cluster_health(c, nullptr, slot, nullptr);
  HealthChecker checker;
  checker.start();
  checker.apply({h});
  for (int i = 0; i < 200 && !h->hosts[0]->available(); ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  EXPECT_TRUE(h->hosts[0]->available());
  EXPECT_FALSE(h->hosts[1]->available());
  EXPECT_EQ(checker.checkers(), 2u);
  checker.apply({});
  for (int i = 0; i < 100 && checker.checkers() != 0; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  EXPECT_EQ(checker.checkers(), 0u);
  checker.stop();
  EXPECT_GT(slot->health_checks[static_cast<size_t>(stats::HealthCheckResult::kSuccess)].get(), 0u);
  EXPECT_GT(slot->health_checks[static_cast<size_t>(stats::HealthCheckResult::kFailure)].get(), 0u);
}

}  // namespace
}  // namespace portico::proxy::upstream
