// Load balancer micro-benchmarks (src/proxy/upstream/lb.h): pick cost per policy over 10 and 100
// hosts (weights 1..4, every host available, no tried hosts), table build cost for ring hash and
// maglev, and two figures reported as counters: the largest deviation of each policy's shares from
// the weights over 100,000 picks, and the share of 100,000 keys that move when an eleventh host
// joins ten (ring hash, maglev). Single-threaded, no sockets.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "proxy/upstream/cluster.h"
#include "proxy/upstream/lb.h"

namespace {

using portico::proxy::upstream::Endpoint;
using portico::proxy::upstream::PickContext;
using portico::proxy::upstream::lb::Balancer;
using portico::proxy::upstream::lb::build_tables;
using portico::proxy::upstream::lb::hash64;
using portico::snapshot::Cluster;
using portico::snapshot::LbPolicy;

constexpr LbPolicy kPolicies[] = {LbPolicy::kRoundRobin, LbPolicy::kLeastRequest, LbPolicy::kRandom,
                                  LbPolicy::kRingHash, LbPolicy::kMaglev};

struct Fixture {
  Cluster config;
  std::vector<std::unique_ptr<Endpoint>> eps;
  Balancer lb;

  Fixture(LbPolicy policy, int hosts, bool equal_weights = false) {
    config.name = "bench/up";
    config.lb = policy;
    for (int i = 0; i < hosts; ++i) {
      const uint32_t w = equal_weights ? 1 : static_cast<uint32_t>(1 + i % 4);
      config.endpoints.push_back({"10.0." + std::to_string(i / 250) + "." + std::to_string(i % 250),
                                  static_cast<uint16_t>(8000 + i), w});
    }
    std::vector<Endpoint*> raw;
    for (const auto& e : config.endpoints) {
      auto ep = std::make_unique<Endpoint>();
      ep->config = e;
      ep->weight = e.weight;
      raw.push_back(ep.get());
      eps.push_back(std::move(ep));
    }
    lb.assign(config, raw, nullptr);
  }
};

uint64_t mix(uint64_t x) {
  x += 0x9E3779B97F4A7C15ULL;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ULL;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBULL;
  return x ^ (x >> 31);
}

void BM_Pick(benchmark::State& state) {
  const LbPolicy policy = kPolicies[state.range(0)];
  Fixture f(policy, static_cast<int>(state.range(1)));
  uint64_t r = 1;
  PickContext ctx;
  for (auto _ : state) {
    r = mix(r);
    ctx.random = r;
    ctx.hash = r ^ 0x5555;
    Endpoint* e = f.lb.pick(ctx);
    benchmark::DoNotOptimize(e);
  }
}

void BM_BuildTables(benchmark::State& state) {
  const LbPolicy policy = kPolicies[state.range(0)];
  Fixture f(policy, static_cast<int>(state.range(1)));
  for (auto _ : state) {
    auto t = build_tables(f.config);
    benchmark::DoNotOptimize(t);
  }
}

// Largest |share - weight share| / weight share over the hosts, in percent, for 100,000 picks.
void BM_Distribution(benchmark::State& state) {
  const LbPolicy policy = kPolicies[state.range(0)];
  double worst = 0;
  for (auto _ : state) {
    Fixture f(policy, 10);
    std::map<const Endpoint*, int> seen;
    uint64_t r = 7;
    constexpr int kPicks = 100'000;
    for (int i = 0; i < kPicks; ++i) {
      r = mix(r);
      PickContext ctx;
      ctx.random = r;
      ctx.hash = mix(r ^ 0xABCDEF);
      ++seen[f.lb.pick(ctx)];
    }
    double total = 0;
    for (const auto& e : f.eps)
      total += e->weight;
    worst = 0;
    for (const auto& e : f.eps) {
      const double want = e->weight / total;
      const double got = seen[e.get()] / static_cast<double>(kPicks);
      worst = std::max(worst, std::abs(got - want) / want * 100);
    }
  }
  state.counters["max_dev_pct"] = worst;
}

// Share of 100,000 keys that change hosts when an eleventh host joins ten, in percent.
void BM_MovedKeys(benchmark::State& state) {
  const LbPolicy policy = kPolicies[state.range(0)];
  double moved_pct = 0;
  for (auto _ : state) {
    Fixture ten(policy, 10, true);
    Fixture eleven(policy, 11, true);
    int moved = 0;
    constexpr int kKeys = 100'000;
    for (int k = 0; k < kKeys; ++k) {
      PickContext ctx;
      ctx.hash = hash64("key-" + std::to_string(k));
      const Endpoint* a = ten.lb.pick(ctx);
      const Endpoint* b = eleven.lb.pick(ctx);
      if (a->config.port != b->config.port) ++moved;
    }
    moved_pct = moved * 100.0 / kKeys;
  }
  state.counters["moved_pct"] = moved_pct;
}

void policies_and_hosts(benchmark::internal::Benchmark* b) {
  for (int p = 0; p < 5; ++p)
    for (int hosts : {10, 100})
      b->Args({p, hosts});
}

}  // namespace

// Policy index: 0 round robin, 1 least request, 2 random, 3 ring hash, 4 maglev.
BENCHMARK(BM_Pick)->Apply(policies_and_hosts);
BENCHMARK(BM_BuildTables)->Args({3, 10})->Args({3, 100})->Args({4, 10})->Args({4, 100});
BENCHMARK(BM_Distribution)->DenseRange(0, 4)->Iterations(1)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_MovedKeys)->Arg(3)->Arg(4)->Iterations(1)->Unit(benchmark::kMillisecond);
