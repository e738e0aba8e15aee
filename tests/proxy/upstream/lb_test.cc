#include "proxy/upstream/lb.h"

#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <set>

#include "proxy/upstream/cluster.h"

namespace portico::proxy::upstream::lb {
namespace {

using snapshot::LbPolicy;

// A cluster's endpoints without sockets: the balancer sees plain Endpoint objects.
struct Hosts {
  snapshot::Cluster config;
  std::vector<std::unique_ptr<Endpoint>> eps;
  std::set<uint16_t> down;  // ports reported unavailable
  Balancer lb;

  Hosts(LbPolicy policy, std::vector<std::pair<uint16_t, uint32_t>> ports_weights,
        std::vector<uint32_t> priorities = {}) {
    config.name = "default/up";
    config.lb = policy;
    for (size_t i = 0; i < ports_weights.size(); ++i) {
      snapshot::Endpoint e{"10.0.0.1", ports_weights[i].first, ports_weights[i].second};
      if (i < priorities.size()) e.priority = priorities[i];
      config.endpoints.push_back(e);
    }
    assign();
  }
  void assign() {
    eps.clear();
    std::vector<Endpoint*> raw;
    for (const auto& e : config.endpoints) {
      auto ep = std::make_unique<Endpoint>();
      ep->config = e;
      ep->weight = e.weight;
      raw.push_back(ep.get());
      eps.push_back(std::move(ep));
    }
    lb.assign(config, raw, nullptr);
    lb.set_availability([this](const Endpoint& e) { return !down.contains(e.config.port); });
  }
  uint16_t pick(uint64_t random, std::optional<uint64_t> hash = std::nullopt,
                std::vector<const Endpoint*> tried = {}) {
    PickContext ctx;
    ctx.random = random;
    ctx.hash = hash;
    ctx.tried = tried;
    Endpoint* e = lb.pick(ctx);
    return e == nullptr ? 0 : e->config.port;
  }
  const Endpoint* ep(uint16_t port) const {
    for (const auto& e : eps)
      if (e->config.port == port) return e.get();
    return nullptr;
  }
};

uint64_t rnd(uint64_t i) {
  return hash64(std::to_string(i), 99);
}

// Counts picks per port over n picks (random numbers and, for hash policies, keys vary).
std::map<uint16_t, int> spread(Hosts& h, int n, bool hashed) {
  std::map<uint16_t, int> seen;
  for (int i = 0; i < n; ++i)
    ++seen[h.pick(rnd(i), hashed ? std::optional<uint64_t>(rnd(i + 1'000'000)) : std::nullopt)];
  return seen;
}

// Every port's share is within `tolerance` (absolute) of its weight's share.
void expect_follows_weights(const std::map<uint16_t, int>& seen,
                            const std::vector<std::pair<uint16_t, uint32_t>>& weights, int n,
                            double tolerance) {
  double total = 0;
  for (auto [p, w] : weights)
    total += w;
  for (auto [p, w] : weights) {
    const double want = w / total;
    const double got = seen.contains(p) ? seen.at(p) / static_cast<double>(n) : 0.0;
    EXPECT_NEAR(got, want, tolerance) << "port " << p;
  }
}

const std::vector<std::pair<uint16_t, uint32_t>> kWeighted = {{1, 1}, {2, 2}, {3, 3}, {4, 4}};

TEST(HashTest, StableAndSpread) {
  EXPECT_EQ(hash64("abc"), hash64("abc"));
  EXPECT_NE(hash64("abc"), hash64("abd"));
  EXPECT_NE(hash64("abc", 1), hash64("abc", 2));
  EXPECT_NE(hash64(""), hash64(std::string_view("\0", 1)));
  // Long inputs use the 8-byte loop and the tail.
  EXPECT_NE(hash64("0123456789abcdef0"), hash64("0123456789abcdef1"));
  // Low bits are balanced.
  int odd = 0;
  for (int i = 0; i < 10000; ++i)
    odd += hash64(std::to_string(i)) & 1;
  EXPECT_NEAR(odd, 5000, 300);
}

TEST(BalancerTest, EmptyPicksNothing) {
  for (auto p : {LbPolicy::kRoundRobin, LbPolicy::kLeastRequest, LbPolicy::kRandom,
                 LbPolicy::kRingHash, LbPolicy::kMaglev}) {
    Hosts h(p, {});
    EXPECT_EQ(h.pick(1, 7), 0);
  }
}

TEST(BalancerTest, RoundRobinExactWeights) {
  Hosts h(LbPolicy::kRoundRobin, kWeighted);
  std::map<uint16_t, int> seen;
  for (int i = 0; i < 1000; ++i)
    ++seen[h.pick(0)];
  EXPECT_EQ(seen[1], 100);
  EXPECT_EQ(seen[2], 200);
  EXPECT_EQ(seen[3], 300);
  EXPECT_EQ(seen[4], 400);
}

TEST(BalancerTest, EachPolicyFollowsWeights) {
  const int n = 100'000;
  for (auto p :
       {LbPolicy::kLeastRequest, LbPolicy::kRandom, LbPolicy::kRingHash, LbPolicy::kMaglev}) {
    Hosts h(p, kWeighted);
    SCOPED_TRACE(static_cast<int>(p));
    // Ring hash places ~1024 points: its shares vary more than the others'.
    expect_follows_weights(spread(h, n, true), kWeighted, n,
                           p == LbPolicy::kRingHash ? 0.03 : 0.01);
  }
}

TEST(BalancerTest, HashPoliciesWithoutKeyPickAtRandom) {
  const int n = 50'000;
  for (auto p : {LbPolicy::kRingHash, LbPolicy::kMaglev}) {
    Hosts h(p, kWeighted);
    expect_follows_weights(spread(h, n, false), kWeighted, n, 0.01);
  }
}

TEST(BalancerTest, SameKeySameHost) {
  for (auto p : {LbPolicy::kRingHash, LbPolicy::kMaglev}) {
    Hosts h(p, kWeighted);
    for (uint64_t key = 0; key < 200; ++key) {
      const uint16_t first = h.pick(1, rnd(key));
      for (uint64_t r = 2; r < 6; ++r)
        EXPECT_EQ(h.pick(rnd(r), rnd(key)), first);
    }
  }
}

TEST(BalancerTest, LeastRequestAvoidsBusyHosts) {
  Hosts h(LbPolicy::kLeastRequest, {{1, 1}, {2, 1}, {3, 1}, {4, 1}});
  h.eps[0]->active_requests = 50;
  h.eps[1]->active_requests = 50;
  std::map<uint16_t, int> seen = spread(h, 10'000, false);
  // A busy host wins only when both (distinct) choices are busy hosts: 2/4 * 1/3 of the picks.
  EXPECT_NEAR((seen[1] + seen[2]) / 10'000.0, 1.0 / 6, 0.02);
}

TEST(BalancerTest, LeastRequestChoiceCount) {
  Hosts h(LbPolicy::kLeastRequest, {{1, 1}, {2, 1}, {3, 1}, {4, 1}});
  h.config.choice_count = 5;
  h.assign();
  h.eps[0]->active_requests = 50;
  h.eps[1]->active_requests = 50;
  std::map<uint16_t, int> seen = spread(h, 10'000, false);
  // Five choices among four hosts: an idle one is (nearly) always among them.
  EXPECT_LT((seen[1] + seen[2]) / 10'000.0, 0.01);
}

TEST(BalancerTest, TriedAvoidedWhileOthersRemain) {
  for (auto p : {LbPolicy::kRoundRobin, LbPolicy::kLeastRequest, LbPolicy::kRandom,
                 LbPolicy::kRingHash, LbPolicy::kMaglev}) {
    Hosts h(p, {{1, 1}, {2, 1}, {3, 1}});
    SCOPED_TRACE(static_cast<int>(p));
    for (uint64_t i = 0; i < 300; ++i) {
      const uint16_t first = h.pick(rnd(i), rnd(i + 7));
      const uint16_t second = h.pick(rnd(i + 1), rnd(i + 7), {h.ep(first)});
      EXPECT_NE(second, first);
      const uint16_t third = h.pick(rnd(i + 2), rnd(i + 7), {h.ep(first), h.ep(second)});
      EXPECT_NE(third, first);
      EXPECT_NE(third, second);
      // Everything tried: one of them again rather than nothing.
      EXPECT_NE(h.pick(rnd(i + 3), rnd(i + 7), {h.ep(1), h.ep(2), h.ep(3)}), 0);
    }
  }
}

TEST(BalancerTest, UnavailableSkipped) {
  for (auto p : {LbPolicy::kRoundRobin, LbPolicy::kLeastRequest, LbPolicy::kRandom,
                 LbPolicy::kRingHash, LbPolicy::kMaglev}) {
    Hosts h(p, {{1, 1}, {2, 1}, {3, 1}, {4, 1}});
    SCOPED_TRACE(static_cast<int>(p));
    h.down = {2};  // 75 % available: above the default panic threshold (50 %)
    std::map<uint16_t, int> seen = spread(h, 3000, true);
    EXPECT_EQ(seen[2], 0);
    EXPECT_EQ(seen[0], 0);
    EXPECT_GT(seen[1], 800);
    EXPECT_GT(seen[3], 800);
    EXPECT_GT(seen[4], 800);
    EXPECT_EQ(h.lb.panic_picks(), 0u);
  }
}

TEST(BalancerTest, HashKeysOfAnUnavailableHostMoveOnlyThem) {
  for (auto p : {LbPolicy::kRingHash, LbPolicy::kMaglev}) {
    Hosts h(p, {{1, 1}, {2, 1}, {3, 1}, {4, 1}});
    std::vector<uint16_t> before;
    for (uint64_t k = 0; k < 2000; ++k)
      before.push_back(h.pick(0, rnd(k)));
    h.down = {3};
    for (uint64_t k = 0; k < 2000; ++k) {
      const uint16_t now = h.pick(0, rnd(k));
      if (before[k] != 3) {
        EXPECT_EQ(now, before[k]);
      }
      EXPECT_NE(now, 3);
    }
  }
}

TEST(BalancerTest, PanicIgnoresAvailability) {
  for (auto p : {LbPolicy::kRoundRobin, LbPolicy::kLeastRequest, LbPolicy::kRandom,
                 LbPolicy::kRingHash, LbPolicy::kMaglev}) {
    Hosts h(p, {{1, 1}, {2, 1}, {3, 1}, {4, 1}});
    SCOPED_TRACE(static_cast<int>(p));
    h.down = {1, 2, 3};  // 25 % available < 50 %: panic, every host
    std::map<uint16_t, int> seen = spread(h, 4000, true);
    for (uint16_t port : {1, 2, 3, 4})
      EXPECT_GT(seen[port], 700) << port;
    EXPECT_GT(h.lb.panic_picks(), 0u);
  }
}

TEST(BalancerTest, PanicThresholdZeroDisablesPanic) {
  Hosts h(LbPolicy::kRandom, {{1, 1}, {2, 1}, {3, 1}, {4, 1}});
  h.config.healthy_panic_threshold = 0;
  h.assign();
  h.down = {1, 2, 3};
  std::map<uint16_t, int> seen = spread(h, 1000, false);
  EXPECT_EQ(seen[4], 1000);
  h.down = {1, 2, 3, 4};
  EXPECT_EQ(h.pick(5), 0);  // no host at all
}

TEST(BalancerTest, PanicThresholdHundred) {
  Hosts h(LbPolicy::kRandom, {{1, 1}, {2, 1}, {3, 1}, {4, 1}});
  h.config.healthy_panic_threshold = 100;
  h.assign();
  h.down = {1};  // 75 % < 100 %: panic
  std::map<uint16_t, int> seen = spread(h, 4000, false);
  EXPECT_GT(seen[1], 700);
}

// ---- failover tiers ----

TEST(FailoverTest, AllTrafficOnTierZeroWhileHealthy) {
  Hosts h(LbPolicy::kRoundRobin, {{1, 1}, {2, 1}, {3, 1}, {11, 1}, {12, 1}}, {0, 0, 0, 1, 1});
  EXPECT_EQ(h.lb.tier_count(), 2u);
  EXPECT_EQ(h.lb.tier_loads(), (std::vector<uint32_t>{100, 0}));
  std::map<uint16_t, int> seen = spread(h, 3000, false);
  EXPECT_EQ(seen[11] + seen[12], 0);
  // One of three down: 2/3 * 1.4 = 93 % stays on tier 0, 7 % goes to tier 1.
  h.down = {1};
  EXPECT_EQ(h.lb.tier_loads(), (std::vector<uint32_t>{93, 7}));
  seen = spread(h, 10'000, false);
  EXPECT_EQ(seen[1], 0);
  EXPECT_NEAR((seen[11] + seen[12]) / 10'000.0, 0.07, 0.015);
}

TEST(FailoverTest, TierZeroDownSendsEverythingToTierOne) {
  Hosts h(LbPolicy::kRandom, {{1, 1}, {2, 1}, {11, 1}, {12, 1}}, {0, 0, 1, 1});
  h.down = {1, 2};
  EXPECT_EQ(h.lb.tier_loads(), (std::vector<uint32_t>{0, 100}));
  std::map<uint16_t, int> seen = spread(h, 2000, false);
  EXPECT_EQ(seen[1] + seen[2], 0);
  EXPECT_EQ(seen[11] + seen[12], 2000);
}

TEST(FailoverTest, ThirdTierOnlyWhenTheFirstTwoFall) {
  Hosts h(LbPolicy::kRoundRobin, {{1, 1}, {11, 1}, {21, 1}}, {0, 1, 2});
  h.down = {1};
  EXPECT_EQ(h.lb.tier_loads(), (std::vector<uint32_t>{0, 100, 0}));
  h.down = {1, 11};
  EXPECT_EQ(h.lb.tier_loads(), (std::vector<uint32_t>{0, 0, 100}));
  EXPECT_EQ(h.pick(3), 21);
  // Nothing available anywhere: tier 0 in panic mode.
  h.down = {1, 11, 21};
  EXPECT_EQ(h.pick(3), 1);
}

TEST(FailoverTest, RetryGoesToAnotherTierWhenTheChosenOneIsExhausted) {
  Hosts h(LbPolicy::kRoundRobin, {{1, 1}, {11, 1}}, {0, 1});
  EXPECT_EQ(h.pick(0), 1);
  EXPECT_EQ(h.pick(0, std::nullopt, {h.ep(1)}), 11);
}

TEST(FailoverTest, HashPoliciesPerTier) {
  Hosts h(LbPolicy::kMaglev, {{1, 1}, {2, 1}, {11, 1}, {12, 1}}, {0, 0, 1, 1});
  std::map<uint16_t, int> seen = spread(h, 2000, true);
  EXPECT_EQ(seen[11] + seen[12], 0);
  h.down = {1, 2};
  seen = spread(h, 2000, true);
  EXPECT_GT(seen[11], 700);
  EXPECT_GT(seen[12], 700);
}

// ---- consistent hashing stability (the target) ----

// Share of 100,000 keys that change hosts when an eleventh host joins ten.
double moved_share(LbPolicy policy) {
  std::vector<std::pair<uint16_t, uint32_t>> ten;
  for (uint16_t p = 1; p <= 10; ++p)
    ten.push_back({p, 1});
  Hosts before(policy, ten);
  auto eleven = ten;
  eleven.push_back({11, 1});
  Hosts after(policy, eleven);
  int moved = 0;
  const int keys = 100'000;
  for (int k = 0; k < keys; ++k) {
    const uint64_t key = hash64("key-" + std::to_string(k));
    if (before.pick(0, key) != after.pick(0, key)) ++moved;
  }
  return moved / static_cast<double>(keys);
}

TEST(ConsistentHashTest, AddingOneHostToTenMovesFewKeys) {
  for (auto p : {LbPolicy::kRingHash, LbPolicy::kMaglev}) {
    const double moved = moved_share(p);
    std::printf("[ figures ] %s: adding one host to ten moved %.2f %% of 100000 keys\n",
                p == LbPolicy::kRingHash ? "ring hash" : "maglev", moved * 100);
    EXPECT_LE(moved, 0.10 + 0.05);
    EXPECT_GE(moved, 0.05);  // the new host does get its share
  }
}

TEST(ConsistentHashTest, TablesFollowConfiguration) {
  snapshot::Cluster c;
  c.lb = LbPolicy::kRingHash;
  c.endpoints = {{"10.0.0.1", 1, 1}, {"10.0.0.2", 1, 3}};
  c.ring_min_size = 64;
  auto t = build_tables(c);
  ASSERT_TRUE(t);
  ASSERT_EQ(t->tiers.size(), 1u);
  EXPECT_GE(t->tiers[0].ring_hashes.size(), 64u);
  EXPECT_TRUE(std::is_sorted(t->tiers[0].ring_hashes.begin(), t->tiers[0].ring_hashes.end()));
  c.ring_max_size = 16;
  c.ring_min_size = 16;
  EXPECT_LE(build_tables(c)->tiers[0].ring_hashes.size(), 17u);
  c.lb = LbPolicy::kMaglev;
  c.maglev_table_size = 251;
  t = build_tables(c);
  ASSERT_EQ(t->tiers[0].maglev.size(), 251u);
  int heavy = 0;
  for (uint32_t h : t->tiers[0].maglev)
    heavy += h == 1;
  EXPECT_NEAR(heavy, 251 * 3 / 4, 3);
  c.lb = LbPolicy::kRandom;
  EXPECT_FALSE(build_tables(c));
}

}  // namespace
}  // namespace portico::proxy::upstream::lb
