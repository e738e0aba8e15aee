// Subset routing micro-benchmark (src/proxy/upstream/cluster.h): the cost of one pick through a
// worker's Cluster for a route without a subset (Cluster::pick(ctx), the path every other route
// takes) on a cluster with and without compiled subsets, and for a route with a subset
// (Cluster::pick(ctx, key): the scan of the cluster's subsets by key, then the subset's balancer).
// Round robin over 10 and 100 hosts, half of them labelled version=v2; 1 or 4 subsets compiled.
// Single-threaded, no sockets.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <memory>
#include <string>
#include <vector>

#include "proxy/stats/stats.h"
#include "proxy/upstream/cluster.h"

namespace {

using portico::proxy::upstream::Cluster;
using portico::proxy::upstream::compile_subsets;
using portico::proxy::upstream::PickContext;
using portico::proxy::upstream::subset_key;
namespace snapshot = portico::snapshot;
namespace stats = portico::proxy::stats;

struct Fixture {
  stats::Registry registry{1};
  std::shared_ptr<stats::ClusterSlot> slot = registry.cluster_slot("bench/up");
  snapshot::Cluster config;
  std::unique_ptr<Cluster> cluster;
  std::vector<snapshot::Labels> sets;

  Fixture(int hosts, int subsets) {
    config.name = "bench/up";
    for (int i = 0; i < hosts; ++i) {
      snapshot::Endpoint e{"10.0." + std::to_string(i / 250) + "." + std::to_string(i % 250),
                           static_cast<uint16_t>(8000 + i), 1};
      e.labels = {{"version", i % 2 ? "v2" : "v1"}, {"zone", "z" + std::to_string(i % 4)}};
      config.endpoints.push_back(std::move(e));
    }
    cluster = std::make_unique<Cluster>(config, slot.get(), 0);
    const snapshot::Labels all[] = {{{"version", "v2"}},
                                    {{"version", "v1"}},
                                    {{"zone", "z0"}},
                                    {{"version", "v2"}, {"zone", "z1"}}};
    for (int s = 0; s < subsets; ++s)
      sets.push_back(all[s]);
    std::sort(sets.begin(), sets.end());
    if (!sets.empty()) cluster->set_subsets(compile_subsets(config, sets));
  }
};

// args: hosts, subsets compiled on the cluster (0: none).
void BM_PickWithoutSubset(benchmark::State& state) {
  Fixture f(static_cast<int>(state.range(0)), static_cast<int>(state.range(1)));
  PickContext ctx;
  uint64_t r = 1;
  for (auto _ : state) {
    ctx.random = r++;
    benchmark::DoNotOptimize(f.cluster->pick(ctx));
  }
}

// args: hosts, subsets compiled; picks in the last subset of the cluster's list (the longest scan).
void BM_PickInSubset(benchmark::State& state) {
  Fixture f(static_cast<int>(state.range(0)), static_cast<int>(state.range(1)));
  const uint64_t key = subset_key(f.sets.back());
  PickContext ctx;
  uint64_t r = 1;
  for (auto _ : state) {
    ctx.random = r++;
    benchmark::DoNotOptimize(f.cluster->pick(ctx, key));
  }
}

// args: hosts, subsets: what build_runtime spends compiling a cluster's subsets.
void BM_CompileSubsets(benchmark::State& state) {
  Fixture f(static_cast<int>(state.range(0)), static_cast<int>(state.range(1)));
  for (auto _ : state)
    benchmark::DoNotOptimize(compile_subsets(f.config, f.sets));
}

}  // namespace

BENCHMARK(BM_PickWithoutSubset)->Args({10, 0})->Args({10, 4})->Args({100, 0})->Args({100, 4});
BENCHMARK(BM_PickInSubset)->Args({10, 1})->Args({10, 4})->Args({100, 1})->Args({100, 4});
BENCHMARK(BM_CompileSubsets)->Args({10, 4})->Args({100, 4})->Args({1000, 4});
