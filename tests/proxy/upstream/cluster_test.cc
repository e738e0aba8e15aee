#include "proxy/upstream/cluster.h"

#include "proxy/transport/tcp.h"

#include <gtest/gtest.h>

#include <map>
#include <set>

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

std::shared_ptr<Endpoint> pick(Cluster& c, uint64_t random, const Endpoint* tried) {
  PickContext ctx;
  ctx.random = random;
  if (tried != nullptr) ctx.tried = std::span<const Endpoint* const>(&tried, 1);
  return c.pick(ctx);
}

struct ClusterTest : ::testing::Test {
  stats::Registry registry{1};
  std::shared_ptr<stats::ClusterSlot> owner = registry.cluster_slot("default/up");
  stats::ClusterSlot* slot = owner.get();
};

TEST_F(ClusterTest, EmptyClusterPicksNothing) {
  Cluster c(make_cluster({}), slot, 0);
  EXPECT_EQ(pick(c, 1, nullptr), nullptr);
}

TEST_F(ClusterTest, WeightedRoundRobinFollowsWeightsExactly) {
  Cluster c(make_cluster({{1001, 5}, {1002, 1}, {1003, 1}}), slot, 0);
  std::map<uint16_t, int> seen;
  for (int i = 0; i < 700; ++i)
    ++seen[pick(c, 0, nullptr)->config.port];
  EXPECT_EQ(seen[1001], 500);
  EXPECT_EQ(seen[1002], 100);
  EXPECT_EQ(seen[1003], 100);
}

TEST_F(ClusterTest, SmoothRoundRobinInterleaves) {
  // Weights 2:1 give a, b, a (not a, a, b): smooth spreading.
  Cluster c(make_cluster({{1, 2}, {2, 1}}), slot, 0);
  std::vector<uint16_t> order;
  for (int i = 0; i < 6; ++i)
    order.push_back(pick(c, 0, nullptr)->config.port);
  EXPECT_EQ(order, (std::vector<uint16_t>{1, 2, 1, 1, 2, 1}));
}

TEST_F(ClusterTest, PickSkipsTriedEndpoint) {
  Cluster c(make_cluster({{1, 1}, {2, 1}}), slot, 0);
  auto first = pick(c, 0, nullptr);
  for (int i = 0; i < 10; ++i)
    EXPECT_NE(pick(c, 0, first.get()), first);
}

TEST_F(ClusterTest, LeastRequestPrefersIdleEndpoint) {
  Cluster c(make_cluster({{1, 1}, {2, 1}}, snapshot::LbPolicy::kLeastRequest), slot, 0);
  auto busy = pick(c, 0, nullptr);
  busy->active_requests = 10;
  for (uint64_t r = 0; r < 50; ++r)
    EXPECT_NE(pick(c, r * 0x9E3779B97F4A7C15ULL, nullptr), busy);
}

TEST_F(ClusterTest, UpdateKeepsSurvivingEndpointsAndMarksRemoved) {
  Cluster c(make_cluster({{1, 1}, {2, 1}}), slot, 0);
  auto one = pick(c, 0, nullptr);
  auto two = pick(c, 0, nullptr);
  ASSERT_NE(one, two);
  c.update(make_cluster({{1, 1}, {3, 1}}), slot);
  auto keep = one->config.port == 1 ? one : two;
  auto gone = one->config.port == 1 ? two : one;
  EXPECT_FALSE(keep->removed);
  EXPECT_TRUE(gone->removed);
  std::map<uint16_t, int> seen;
  for (int i = 0; i < 10; ++i)
    ++seen[pick(c, 0, nullptr)->config.port];
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
  auto ep = pick(c, 0, nullptr);
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
  auto ep = pick(c, 0, nullptr);
  auto conn = make_connection(io);
  c.opened();
  conn->requests = 2;
  c.give_back(ep, std::move(conn));
  EXPECT_TRUE(ep->idle.empty());
  EXPECT_EQ(slot->row(0).cx_active.get(), 0u);
}

TEST_F(ClusterTest, PanicAndFailoverPicksAreCounted) {
  snapshot::Cluster config = make_cluster({{1, 1}, {2, 1}, {11, 1}});
  config.endpoints[2].priority = 1;
  Cluster c(config, slot, 0);
  std::set<uint16_t> down;
  c.balancer().set_availability([&](const Endpoint& e) { return !down.contains(e.config.port); });
  for (int i = 0; i < 10; ++i)
    EXPECT_NE(pick(c, i, nullptr)->config.port, 11);
  EXPECT_EQ(c.row().lb_failover.get(), 0u);
  down = {1, 2};  // tier 0 gone: tier 1 takes everything
  for (int i = 0; i < 10; ++i)
    EXPECT_EQ(pick(c, i, nullptr)->config.port, 11);
  EXPECT_EQ(c.row().lb_failover.get(), 10u);
  EXPECT_EQ(c.row().lb_panic.get(), 0u);
  down = {1, 2, 11};  // nothing anywhere: tier 0 in panic mode
  EXPECT_NE(pick(c, 3, nullptr)->config.port, 11);
  EXPECT_EQ(c.row().lb_panic.get(), 1u);
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

// ---- Subset routing ----
namespace portico::proxy::upstream {
namespace {

// Ports 1 and 2 are v1, port 3 is v2 (in dc2), port 4 has no labels.
snapshot::Cluster labelled(snapshot::LbPolicy lb = snapshot::LbPolicy::kRoundRobin) {
  snapshot::Cluster c = make_cluster({{1, 1}, {2, 1}, {3, 1}, {4, 1}}, lb);
  c.endpoints[0].labels = {{"dc_dc2", "0"}, {"tag_v1", "1"}, {"tag_v2", "0"}};
  c.endpoints[1].labels = {{"dc_dc2", "0"}, {"tag_v1", "1"}, {"tag_v2", "0"}};
  c.endpoints[2].labels = {{"dc_dc2", "1"}, {"tag_v1", "0"}, {"tag_v2", "1"}};
  return c;
}

const snapshot::Labels kV1 = {{"tag_v1", "1"}};
const snapshot::Labels kV2 = {{"tag_v2", "1"}};
const snapshot::Labels kV2InDc2 = {{"dc_dc2", "1"}, {"tag_v2", "1"}};
const snapshot::Labels kV3 = {{"tag_v3", "1"}};

std::shared_ptr<Endpoint> pick_in(Cluster& c, const snapshot::Labels& subset, uint64_t random) {
  PickContext ctx;
  ctx.random = random;
  return c.pick(ctx, subset_key(subset));
}

TEST(SubsetLabels, IncludeComparesSortedPairs) {
  const snapshot::Labels have = {{"a", "1"}, {"b", "2"}, {"c", "3"}};
  EXPECT_TRUE(snapshot::labels_include(have, {}));
  EXPECT_TRUE(snapshot::labels_include(have, {{"a", "1"}, {"c", "3"}}));
  EXPECT_FALSE(snapshot::labels_include(have, {{"a", "1"}, {"c", "4"}}));
  EXPECT_FALSE(snapshot::labels_include(have, {{"d", "1"}}));
  EXPECT_FALSE(snapshot::labels_include({}, {{"a", "1"}}));
  EXPECT_NE(subset_key(kV1), subset_key(kV2));
  EXPECT_NE(subset_key(kV1), 0u);
}

TEST_F(ClusterTest, SubsetPicksOnlyItsEndpoints) {
  snapshot::Cluster config = labelled();
  Cluster c(config, slot, 0);
  c.set_subsets(compile_subsets(config, {kV1, kV2, kV2InDc2, kV3}));
  std::map<uint16_t, int> v1;
  for (int i = 0; i < 10; ++i)
    ++v1[pick_in(c, kV1, i)->config.port];
  EXPECT_EQ(v1, (std::map<uint16_t, int>{{1, 5}, {2, 5}}));  // round robin within the subset
  for (int i = 0; i < 5; ++i) {
    EXPECT_EQ(pick_in(c, kV2, i)->config.port, 3);
    EXPECT_EQ(pick_in(c, kV2InDc2, i)->config.port, 3);
  }
  EXPECT_TRUE(c.has_endpoints(subset_key(kV1)));
  // An empty subset (no fallback): nothing, counted; the cluster's other picks go on.
  EXPECT_FALSE(c.has_endpoints(subset_key(kV3)));
  EXPECT_EQ(pick_in(c, kV3, 0), nullptr);
  EXPECT_EQ(c.row().subset_no_host.get(), 1u);
  // A subset no route selects (unknown key): nothing either.
  EXPECT_EQ(pick_in(c, {{"zone", "a"}}, 0), nullptr);
  EXPECT_EQ(c.row().subset_no_host.get(), 2u);
  std::set<uint16_t> all;
  for (int i = 0; i < 8; ++i)
    all.insert(pick(c, i, nullptr)->config.port);
  EXPECT_EQ(all, (std::set<uint16_t>{1, 2, 3, 4}));
}

TEST_F(ClusterTest, SubsetSharesTheClustersEndpointsAndTheirHealth) {
  snapshot::Cluster config = labelled();
  config.healthy_panic_threshold = 0;
  config.outlier_detection = snapshot::OutlierDetection{};
  Cluster c(config, slot, 0);
  auto health = make_cluster_health(config, nullptr, owner, nullptr);
  ASSERT_NE(health, nullptr);
  c.set_health(health);
  c.set_subsets(compile_subsets(config, {kV1, kV2}));
  auto v2 = pick_in(c, kV2, 0);
  ASSERT_NE(v2, nullptr);
  // The very object the whole cluster picks (one Endpoint per host: one pool, one health).
  std::set<Endpoint*> whole;
  for (int i = 0; i < 8; ++i)
    whole.insert(pick(c, i, nullptr).get());
  EXPECT_TRUE(whole.contains(v2.get()));
  // Port 1 ejected (outlier detection): the v1 subset sends everything to port 2.
  health->hosts[0]->ejected = true;
  for (int i = 0; i < 6; ++i)
    EXPECT_EQ(pick_in(c, kV1, i)->config.port, 2);
  // The v2 subset's only host ejected: no endpoint may be picked (panic mode off).
  health->hosts[2]->ejected = true;
  EXPECT_EQ(pick_in(c, kV2, 0), nullptr);
  health->hosts[2]->ejected = false;
  EXPECT_EQ(pick_in(c, kV2, 0)->config.port, 3);
}

TEST_F(ClusterTest, SubsetsFollowEndpointChanges) {
  snapshot::Cluster config = labelled();
  Cluster c(config, slot, 0);
  c.set_subsets(compile_subsets(config, {kV2}));
  EXPECT_EQ(pick_in(c, kV2, 0)->config.port, 3);
  // The tag moves from port 3 to port 4 (a Consul tag change): only the endpoints changed.
  snapshot::Cluster next = config;
  std::swap(next.endpoints[2].labels, next.endpoints[3].labels);
  next.endpoints[3].labels = {{"dc_dc2", "1"}, {"tag_v1", "0"}, {"tag_v2", "1"}};
  c.update(next, slot);
  c.set_subsets(compile_subsets(next, {kV2}));
  for (int i = 0; i < 4; ++i)
    EXPECT_EQ(pick_in(c, kV2, i)->config.port, 4);
}

TEST_F(ClusterTest, SubsetOfARingHashClusterHashesOverItsOwnEndpoints) {
  snapshot::Cluster config = labelled(snapshot::LbPolicy::kRingHash);
  config.ring_min_size = 64;
  config.ring_max_size = 256;
  Cluster c(config, slot, 0);
  c.set_subsets(compile_subsets(config, {kV1}));
  std::set<uint16_t> seen;
  for (uint64_t h = 0; h < 64; ++h) {
    PickContext ctx;
    ctx.random = h;
    ctx.hash = h * 0x9e3779b97f4a7c15ull;
    auto ep = c.pick(ctx, subset_key(kV1));
    ASSERT_NE(ep, nullptr);
    seen.insert(ep->config.port);
    // Stable: the same key, the same host.
    EXPECT_EQ(c.pick(ctx, subset_key(kV1))->config.port, ep->config.port);
  }
  EXPECT_EQ(seen, (std::set<uint16_t>{1, 2}));
}

}  // namespace
}  // namespace portico::proxy::upstream
