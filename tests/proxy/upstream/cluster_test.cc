#include "proxy/upstream/cluster.h"

#include "proxy/transport/tcp.h"

#include <gtest/gtest.h>

#include <map>

namespace portico::proxy::upstream {
namespace {

snapshot::Cluster make_cluster(std::vector<std::pair<uint16_t, uint32_t>> ports_weights,
                               snapshot::LbPolicy lb = snapshot::LbPolicy::kRoundRobin) {
  snapshot::Cluster c;
  c.name = "default/up";
  c.lb = lb;
  for (auto [port, weight] : ports_weights)
    c.endpoints.push_back({"127.0.0.1", port, weight});
  return c;
}

struct ClusterTest : ::testing::Test {
  stats::Registry registry{1};
  std::shared_ptr<stats::ClusterSlot> owner = registry.cluster_slot("default/up");
  stats::ClusterSlot* slot = owner.get();
};

TEST_F(ClusterTest, EmptyClusterPicksNothing) {
  Cluster c(make_cluster({}), slot, 0);
  EXPECT_EQ(c.pick(1, nullptr), nullptr);
}

TEST_F(ClusterTest, WeightedRoundRobinFollowsWeightsExactly) {
  Cluster c(make_cluster({{1001, 5}, {1002, 1}, {1003, 1}}), slot, 0);
  std::map<uint16_t, int> seen;
  for (int i = 0; i < 700; ++i)
    ++seen[c.pick(0, nullptr)->config.port];
  EXPECT_EQ(seen[1001], 500);
  EXPECT_EQ(seen[1002], 100);
  EXPECT_EQ(seen[1003], 100);
}

TEST_F(ClusterTest, SmoothRoundRobinInterleaves) {
  // Weights 2:1 give a, b, a (not a, a, b): smooth spreading.
  Cluster c(make_cluster({{1, 2}, {2, 1}}), slot, 0);
  std::vector<uint16_t> order;
  for (int i = 0; i < 6; ++i)
    order.push_back(c.pick(0, nullptr)->config.port);
  EXPECT_EQ(order, (std::vector<uint16_t>{1, 2, 1, 1, 2, 1}));
}

TEST_F(ClusterTest, PickSkipsTriedEndpoint) {
  Cluster c(make_cluster({{1, 1}, {2, 1}}), slot, 0);
  auto first = c.pick(0, nullptr);
  for (int i = 0; i < 10; ++i)
    EXPECT_NE(c.pick(0, first.get()), first);
}

TEST_F(ClusterTest, LeastRequestPrefersIdleEndpoint) {
  Cluster c(make_cluster({{1, 1}, {2, 1}}, snapshot::LbPolicy::kLeastRequest), slot, 0);
  auto busy = c.pick(0, nullptr);
  busy->active_requests = 10;
  for (uint64_t r = 0; r < 50; ++r)
    EXPECT_NE(c.pick(r * 0x9E3779B97F4A7C15ULL, nullptr), busy);
}

TEST_F(ClusterTest, UpdateKeepsSurvivingEndpointsAndMarksRemoved) {
  Cluster c(make_cluster({{1, 1}, {2, 1}}), slot, 0);
  auto one = c.pick(0, nullptr);
  auto two = c.pick(0, nullptr);
  ASSERT_NE(one, two);
  c.update(make_cluster({{1, 1}, {3, 1}}), slot);
  auto keep = one->config.port == 1 ? one : two;
  auto gone = one->config.port == 1 ? two : one;
  EXPECT_FALSE(keep->removed);
  EXPECT_TRUE(gone->removed);
  std::map<uint16_t, int> seen;
  for (int i = 0; i < 10; ++i)
    ++seen[c.pick(0, nullptr)->config.port];
  EXPECT_EQ(seen[1], 5);
  EXPECT_EQ(seen[3], 5);
  EXPECT_EQ(seen.count(2), 0u);
}

std::unique_ptr<Connection> make_connection(asio::io_context& io) {
  return std::make_unique<Connection>(
      std::make_unique<transport::TcpTransport>(asio::ip::tcp::socket(io)));
}

TEST_F(ClusterTest, PoolReturnsConnectionsAndDropsThemForRemovedEndpoints) {
  asio::io_context io;
  Cluster c(make_cluster({{1, 1}}), slot, 0);
  auto ep = c.pick(0, nullptr);
  EXPECT_EQ(c.take_idle(*ep), nullptr);
  auto conn = make_connection(io);
  c.opened();
  EXPECT_EQ(slot->row(0).cx_active.get(), 1u);
  c.give_back(ep, std::move(conn));
  EXPECT_EQ(ep->idle.size(), 1u);
  auto again = c.take_idle(*ep);
  ASSERT_NE(again, nullptr);
  c.update(make_cluster({{2, 1}}), slot);  // endpoint 1 removed
  c.give_back(ep, std::move(again));
  EXPECT_TRUE(ep->idle.empty());
  EXPECT_EQ(slot->row(0).cx_active.get(), 0u);
}

TEST_F(ClusterTest, MaxRequestsPerConnectionClosesOnGiveBack) {
  asio::io_context io;
  auto cfg = make_cluster({{1, 1}});
  cfg.max_requests_per_connection = 2;
  Cluster c(cfg, slot, 0);
  auto ep = c.pick(0, nullptr);
  auto conn = make_connection(io);
  c.opened();
  conn->requests = 2;
  c.give_back(ep, std::move(conn));
  EXPECT_TRUE(ep->idle.empty());
  EXPECT_EQ(slot->row(0).cx_active.get(), 0u);
}

}  // namespace
}  // namespace portico::proxy::upstream

namespace portico::proxy::upstream {
namespace {

TEST(RetryBudget, MinConcurrencyThenPercentOfActiveRequests) {
  snapshot::RetryBudget b;  // 20 %, at least 3
  EXPECT_TRUE(retry_budget_allows(1, 0, b));
  EXPECT_TRUE(retry_budget_allows(1, 2, b));
  EXPECT_FALSE(retry_budget_allows(1, 3, b));  // the floor: 3 retries in flight
  EXPECT_FALSE(retry_budget_allows(10, 3, b));
  EXPECT_TRUE(retry_budget_allows(100, 19, b));  // 20 % of 100
  EXPECT_FALSE(retry_budget_allows(100, 20, b));
  b.min_retry_concurrency = 0;
  b.budget_percent = 0;
  EXPECT_FALSE(retry_budget_allows(1000, 0, b));  // no retries at all
}

TEST_F(ClusterTest, ConnectionsAreCountedAcrossWorkersInTheSlot) {
  stats::Registry two{2};
  auto shared = two.cluster_slot("default/up");
  Cluster w0(make_cluster({{1001, 1}}), shared.get(), 0);
  Cluster w1(make_cluster({{1001, 1}}), shared.get(), 1);
  w0.opened();
  w1.opened();
  EXPECT_EQ(shared->load.connections.load(), 2);
  asio::io_context io;
  auto conn = std::make_unique<Connection>(
      std::make_unique<transport::TcpTransport>(asio::ip::tcp::socket(io)));
  w1.closed(std::move(conn));
  EXPECT_EQ(shared->load.connections.load(), 1);
  EXPECT_EQ(w0.breakers().max_connections, 1024u);
  EXPECT_EQ(w0.retry_budget().budget_percent, 20u);
}

TEST(LoadHold, TakesAndReleasesOnce) {
  std::atomic<int64_t> v{0};
  {
    LoadHold h;
    h.take(v);
    EXPECT_EQ(v.load(), 1);
    h.release();
    h.release();
    EXPECT_EQ(v.load(), 0);
    h.take(v);
  }
  EXPECT_EQ(v.load(), 0);
}

}  // namespace
}  // namespace portico::proxy::upstream
