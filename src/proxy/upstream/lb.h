// Load balancers: pure logic over a cluster's endpoints (no sockets), so that every policy can be
// tested and measured alone. A Balancer belongs to one worker's Cluster and is used on that worker
// only; the ring hash and maglev tables (HashTables) are built once per configuration change and
// shared read-only by every worker.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string_view>
#include <vector>

#include "snapshot/proxy_config.h"

namespace portico::proxy::upstream {

struct Endpoint;

// What a pick needs to know about the request.
struct PickContext {
  uint64_t random = 0;           // a fresh random number per pick
  std::optional<uint64_t> hash;  // the request's hash key (route hash policies); ring hash and
                                 // maglev pick at random without one
  // Endpoints already tried by this request: avoided while other eligible endpoints remain.
  std::span<const Endpoint* const> tried;
};

namespace lb {

// A 64-bit non-cryptographic hash (written here; murmur/xxhash-like multiply-rotate mixing with a
// strong finaliser). Stable across runs and machines: ring positions and request keys use it.
uint64_t hash64(std::string_view data, uint64_t seed = 0);
// Combines the hash of one more policy into `acc` (order matters).
inline uint64_t combine(uint64_t acc, uint64_t h) {
  return ((acc << 1) | (acc >> 63)) ^ h;
}

// Ring hash and maglev lookup tables of one cluster configuration, one per failover tier. Host
// numbers index the tier's endpoints in configuration order.
struct TierTable {
  std::vector<uint64_t> ring_hashes;  // ring hash: sorted positions ...
  std::vector<uint32_t> ring_hosts;   // ... and the host owning each
  std::vector<uint32_t> maglev;       // maglev: table slot -> host
};
struct HashTables {
  std::vector<TierTable> tiers;
};

// Builds the tables `config.lb` needs (null for the other policies). Control thread (or a
// worker applying an update when no prebuilt tables were handed to it).
std::shared_ptr<const HashTables> build_tables(const snapshot::Cluster& config);

// The key an endpoint is placed by on the ring and in the maglev table: "address:port".
std::string host_key(const snapshot::Endpoint& e);

// Whether an endpoint may be picked (health checks, outlier detection). Injectable for tests.
using Availability = std::function<bool(const Endpoint&)>;

// Picks endpoints of one cluster: failover tier first (Envoy's priority load with an
// overprovisioning factor of 1.4), then the policy within the tier, honouring availability (panic
// threshold aside) and avoiding the endpoints already tried.
class Balancer {
 public:
  Balancer();

  // `hosts` in configuration order (ascending priority); `tables` for ring hash and maglev (built
  // here when null). The endpoints must outlive the next assign().
  void assign(const snapshot::Cluster& config, std::vector<Endpoint*> hosts,
              std::shared_ptr<const HashTables> tables);
  // Replaces Endpoint::available() (tests). Empty: back to Endpoint::available().
  void set_availability(Availability a) { available_ = std::move(a); }

  // nullptr when no endpoint may be picked (none configured, or none available with the panic
  // threshold at 0).
  Endpoint* pick(const PickContext& ctx);

  size_t tier_count() const { return tiers_.size(); }
  // The share of traffic (percent) each tier gets with the current availability.
  std::vector<uint32_t> tier_loads() const;
  // Picks made while a tier was in panic mode (availability ignored), since assign().
  uint64_t panic_picks() const { return panic_picks_; }
  // About the last successful pick: whether its tier was in panic mode, and the tier's index.
  bool last_panic() const { return last_panic_; }
  size_t last_tier() const { return last_tier_; }

 private:
  struct Tier {
    std::vector<Endpoint*> hosts;
    std::vector<uint64_t> cumulative;  // prefix sums of weights (weighted random sampling)
    const TierTable* table = nullptr;
  };
  struct Eligible;  // lb.cc: which hosts a pick may take

  // Endpoint::available() unless a predicate was set (called directly: inlined on the hot path).
  bool is_available(const Endpoint& e) const;
  void loads(std::vector<uint32_t>& out, bool& all_empty) const;
  Endpoint* pick_in(const Tier& tier, const Eligible& ok, uint64_t random,
                    const std::optional<uint64_t>& hash);
  Endpoint* round_robin(const Tier& tier, const Eligible& ok);
  Endpoint* weighted_random(const Tier& tier, const Eligible& ok, uint64_t random) const;
  Endpoint* least_request(const Tier& tier, const Eligible& ok, uint64_t random) const;
  Endpoint* ring_hash(const Tier& tier, const Eligible& ok, uint64_t hash) const;
  Endpoint* maglev(const Tier& tier, const Eligible& ok, uint64_t hash) const;

  snapshot::LbPolicy policy_ = snapshot::LbPolicy::kRoundRobin;
  uint32_t choice_count_ = 2;
  uint32_t panic_threshold_ = 50;
  std::vector<Tier> tiers_;
  std::shared_ptr<const HashTables> tables_;
  Availability available_;  // empty: Endpoint::available()
  uint64_t panic_picks_ = 0;
  std::vector<uint32_t> scratch_loads_;  // tier loads of the current pick (no allocation per pick)
  bool last_panic_ = false;
  size_t last_tier_ = 0;
};

}  // namespace lb
}  // namespace portico::proxy::upstream
