#include "proxy/upstream/lb.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>

#include "proxy/upstream/cluster.h"

namespace portico::proxy::upstream::lb {

namespace {

constexpr uint64_t kMul1 = 0x9E3779B185EBCA87ULL;
constexpr uint64_t kMul2 = 0xC2B2AE3D27D4EB4FULL;

inline uint64_t rotl(uint64_t x, int r) {
  return (x << r) | (x >> (64 - r));
}

inline uint64_t finalise(uint64_t h) {
  h ^= h >> 33;
  h *= 0xFF51AFD7ED558CCDULL;
  h ^= h >> 33;
  h *= 0xC4CEB9FE1A85EC53ULL;
  h ^= h >> 33;
  return h;
}

// A new random number from the previous one (splitmix64 step): one caller-provided random number
// feeds the tier choice and every sample of a pick.
inline uint64_t next_random(uint64_t x) {
  x += 0x9E3779B97F4A7C15ULL;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ULL;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBULL;
  return x ^ (x >> 31);
}

// Indexes of config.endpoints per tier (ascending priority), configuration order within a tier.
std::vector<std::vector<uint32_t>> group_tiers(const snapshot::Cluster& config) {
  std::vector<uint32_t> priorities;
  for (const auto& e : config.endpoints)
    priorities.push_back(e.priority);
  std::sort(priorities.begin(), priorities.end());
  priorities.erase(std::unique(priorities.begin(), priorities.end()), priorities.end());
  std::vector<std::vector<uint32_t>> tiers(priorities.size());
  for (uint32_t i = 0; i < config.endpoints.size(); ++i) {
    auto at = std::lower_bound(priorities.begin(), priorities.end(), config.endpoints[i].priority);
    tiers[static_cast<size_t>(at - priorities.begin())].push_back(i);
  }
  return tiers;
}

uint32_t weight_of(const snapshot::Endpoint& e) {
  return e.weight == 0 ? 1 : e.weight;
}

void build_ring(const snapshot::Cluster& config, const std::vector<uint32_t>& hosts,
                TierTable& out) {
  uint64_t total = 0;
  uint32_t min_weight = UINT32_MAX;
  for (uint32_t i : hosts) {
    total += weight_of(config.endpoints[i]);
    min_weight = std::min(min_weight, weight_of(config.endpoints[i]));
  }
  if (total == 0) return;
  // Every host gets entries in proportion to its weight, the lightest at least one, the ring at
  // least ring_min_size entries and at most ring_max_size.
  const double min_share = static_cast<double>(min_weight) / static_cast<double>(total);
  const double min_size = static_cast<double>(std::max<uint64_t>(config.ring_min_size, 1));
  const double max_size = static_cast<double>(std::max(config.ring_max_size, config.ring_min_size));
  // Points per unit of the lightest weight: rounded up to a power of two, so that adding or
  // removing a host seldom changes the other hosts' points (only their own keys move).
  uint64_t per_min = 1;
  while (static_cast<double>(per_min) < std::ceil(min_share * min_size))
    per_min <<= 1;
  double scale = static_cast<double>(per_min) / min_share;  // ring size
  if (scale > max_size) scale = max_size;
  std::vector<std::pair<uint64_t, uint32_t>> ring;
  for (uint32_t h = 0; h < hosts.size(); ++h) {
    const auto& e = config.endpoints[hosts[h]];
    const double share = static_cast<double>(weight_of(e)) / static_cast<double>(total);
    const uint64_t n = std::max<uint64_t>(1, static_cast<uint64_t>(std::llround(share * scale)));
    const std::string key = host_key(e) + "_";
    std::string k;
    for (uint64_t j = 0; j < n; ++j) {
      k = key;
      k += std::to_string(j);
      ring.emplace_back(hash64(k), h);
    }
  }
  std::sort(ring.begin(), ring.end());
  out.ring_hashes.reserve(ring.size());
  out.ring_hosts.reserve(ring.size());
  for (const auto& [hash, host] : ring) {
    out.ring_hashes.push_back(hash);
    out.ring_hosts.push_back(host);
  }
}

void build_maglev(const snapshot::Cluster& config, const std::vector<uint32_t>& hosts,
                  TierTable& out) {
  const uint64_t m = std::max<uint32_t>(config.maglev_table_size, 2);
  const size_t n = hosts.size();
  if (n == 0) return;
  std::vector<uint64_t> offset(n), skip(n), next(n, 0), credit(n, 0);
  uint64_t max_weight = 0;
  for (size_t i = 0; i < n; ++i) {
    const auto& e = config.endpoints[hosts[i]];
    const std::string key = host_key(e);
    offset[i] = hash64(key, 1) % m;
    skip[i] = hash64(key, 2) % (m - 1) + 1;
    max_weight = std::max<uint64_t>(max_weight, weight_of(e));
  }
  constexpr uint32_t kEmpty = UINT32_MAX;
  out.maglev.assign(m, kEmpty);
  uint64_t filled = 0;
  // Each round every host earns its weight; a host places one entry (the next free slot of its
  // own permutation of the table) per max_weight earned: slots in proportion to the weights.
  while (filled < m) {
    for (size_t i = 0; i < n && filled < m; ++i) {
      credit[i] += weight_of(config.endpoints[hosts[i]]);
      if (credit[i] < max_weight) continue;
      credit[i] -= max_weight;
      while (true) {
        const uint64_t slot = (offset[i] + next[i] * skip[i]) % m;
        ++next[i];
        if (out.maglev[slot] == kEmpty) {
          out.maglev[slot] = static_cast<uint32_t>(i);
          ++filled;
          break;
        }
      }
    }
  }
}

}  // namespace

uint64_t hash64(std::string_view data, uint64_t seed) {
  uint64_t h = seed ^ (static_cast<uint64_t>(data.size()) * kMul1);
  const char* p = data.data();
  size_t left = data.size();
  while (left >= 8) {
    uint64_t w;
    std::memcpy(&w, p, 8);
    h ^= rotl(w * kMul2, 31) * kMul1;
    h = rotl(h, 27) * kMul1 + 0x52DCE729;
    p += 8;
    left -= 8;
  }
  if (left > 0) {
    uint64_t w = 0;
    for (size_t i = 0; i < left; ++i)
      w |= static_cast<uint64_t>(static_cast<unsigned char>(p[i])) << (8 * i);
    h ^= rotl(w * kMul2, 31) * kMul1;
  }
  return finalise(h);
}

std::string host_key(const snapshot::Endpoint& e) {
  return e.address + ":" + std::to_string(e.port);
}

std::shared_ptr<const HashTables> build_tables(const snapshot::Cluster& config) {
  if (config.lb != snapshot::LbPolicy::kRingHash && config.lb != snapshot::LbPolicy::kMaglev)
    return nullptr;
  auto tables = std::make_shared<HashTables>();
  for (const auto& hosts : group_tiers(config)) {
    TierTable t;
    if (config.lb == snapshot::LbPolicy::kRingHash) {
      build_ring(config, hosts, t);
    } else {
      build_maglev(config, hosts, t);
    }
    tables->tiers.push_back(std::move(t));
  }
  return tables;
}

// ---- Balancer ---------------------------------------------------------------------------------

inline bool Balancer::is_available(const Endpoint& e) const {
  return available_ ? available_(e) : e.available();
}

struct Balancer::Eligible {
  const Balancer* balancer = nullptr;  // null: panic mode, every host
  std::span<const Endpoint* const> tried;
  bool avoid_tried = true;
  bool operator()(const Endpoint* e) const {
    if (balancer != nullptr && !balancer->is_available(*e)) return false;
    if (avoid_tried) {
      for (const Endpoint* t : tried)
        if (t == e) return false;
    }
    return true;
  }
};

Balancer::Balancer() = default;

void Balancer::assign(const snapshot::Cluster& config, std::vector<Endpoint*> hosts,
                      std::shared_ptr<const HashTables> tables) {
  policy_ = config.lb;
  choice_count_ = std::max<uint32_t>(config.choice_count, 1);
  panic_threshold_ = config.healthy_panic_threshold;
  panic_picks_ = 0;
  if (!tables) tables = build_tables(config);
  tables_ = std::move(tables);
  tiers_.clear();
  auto groups = group_tiers(config);
  for (size_t t = 0; t < groups.size(); ++t) {
    Tier tier;
    uint64_t sum = 0;
    for (uint32_t i : groups[t]) {
      if (i >= hosts.size() || hosts[i] == nullptr) continue;
      tier.hosts.push_back(hosts[i]);
      sum += hosts[i]->weight == 0 ? 1 : hosts[i]->weight;
      tier.cumulative.push_back(sum);
    }
    if (tables_ && t < tables_->tiers.size()) tier.table = &tables_->tiers[t];
    if (!tier.hosts.empty()) tiers_.push_back(std::move(tier));
  }
}

void Balancer::loads(std::vector<uint32_t>& out, bool& all_empty) const {
  // Envoy's priority load: a tier's health is its available share times the overprovisioning
  // factor 1.4 (capped at 100 %); tiers take traffic in order until 100 % is given out. When the
  // healths add up to less than 100 %, the shares are scaled up (the caller draws within the sum).
  out.clear();
  uint32_t left = 100;
  uint32_t sum = 0;
  for (const auto& tier : tiers_) {
    size_t avail = 0;
    for (const Endpoint* e : tier.hosts)
      if (is_available(*e)) ++avail;
    const uint32_t health = static_cast<uint32_t>(
        std::min<uint64_t>(100, avail * 140 / std::max<size_t>(tier.hosts.size(), 1)));
    const uint32_t load = std::min(left, health);
    left -= load;
    sum += load;
    out.push_back(load);
  }
  all_empty = sum == 0;
}

std::vector<uint32_t> Balancer::tier_loads() const {
  std::vector<uint32_t> l;
  bool empty = false;
  loads(l, empty);
  if (empty) {
    for (auto& x : l)
      x = 0;
    if (!l.empty()) l[0] = 100;
    return l;
  }
  uint32_t sum = 0;
  for (uint32_t x : l)
    sum += x;
  for (auto& x : l)
    x = x * 100 / sum;
  return l;
}

Endpoint* Balancer::pick(const PickContext& ctx) {
  if (tiers_.empty()) return nullptr;
  uint64_t r = next_random(ctx.random);
  size_t chosen = 0;
  if (tiers_.size() > 1) {
    std::vector<uint32_t>& l = scratch_loads_;
    bool empty = false;
    loads(l, empty);
    if (!empty) {
      uint32_t sum = 0;
      for (uint32_t x : l)
        sum += x;
      uint32_t x = static_cast<uint32_t>(r % sum);
      while (x >= l[chosen]) {
        x -= l[chosen];
        ++chosen;
      }
    }
    r = next_random(r);
  }
  // The chosen tier first; when every eligible host there was tried already, the other tiers
  // (in order); at last the chosen tier again, tried hosts allowed.
  auto in_tier = [&](size_t t, bool avoid) -> Endpoint* {
    const Tier& tier = tiers_[t];
    // Panic when fewer than threshold % of the tier's hosts are available: count until enough.
    const uint64_t need = (uint64_t{panic_threshold_} * tier.hosts.size() + 99) / 100;
    uint64_t avail = 0;
    for (const Endpoint* e : tier.hosts) {
      if (avail >= need) break;
      if (is_available(*e)) ++avail;
    }
    const bool panic = avail < need;
    Eligible ok{panic ? nullptr : this, ctx.tried, avoid};
    Endpoint* e = pick_in(tier, ok, r, ctx.hash);
    if (e != nullptr) {
      if (panic) ++panic_picks_;
      last_panic_ = panic;
      last_tier_ = t;
    }
    return e;
  };
  if (Endpoint* e = in_tier(chosen, true)) return e;
  if (ctx.tried.empty()) return nullptr;
  for (size_t t = 0; t < tiers_.size(); ++t) {
    if (t == chosen) continue;
    if (Endpoint* e = in_tier(t, true)) return e;
  }
  return in_tier(chosen, false);
}

Endpoint* Balancer::pick_in(const Tier& tier, const Eligible& ok, uint64_t random,
                            const std::optional<uint64_t>& hash) {
  bool any = false;
  for (const Endpoint* e : tier.hosts) {
    if (ok(e)) {
      any = true;
      break;
    }
  }
  if (!any) return nullptr;
  switch (policy_) {
    case snapshot::LbPolicy::kRoundRobin:
      return round_robin(tier, ok);
    case snapshot::LbPolicy::kLeastRequest:
      return least_request(tier, ok, random);
    case snapshot::LbPolicy::kRandom:
      return weighted_random(tier, ok, random);
    case snapshot::LbPolicy::kRingHash:
      if (!hash || tier.table == nullptr || tier.table->ring_hashes.empty())
        return weighted_random(tier, ok, random);
      return ring_hash(tier, ok, *hash);
    case snapshot::LbPolicy::kMaglev:
      if (!hash || tier.table == nullptr || tier.table->maglev.empty())
        return weighted_random(tier, ok, random);
      return maglev(tier, ok, *hash);
  }
  return nullptr;
}

Endpoint* Balancer::round_robin(const Tier& tier, const Eligible& ok) {
  // Smooth weighted round robin over the eligible hosts: each adds its weight to its running
  // total, the largest total wins and gives back the sum of the weights. Picks follow the
  // weights exactly and interleave (2:1 gives a, b, a).
  Endpoint* best = nullptr;
  int64_t total = 0;
  for (Endpoint* e : tier.hosts) {
    if (!ok(e)) continue;
    const int64_t w = e->weight == 0 ? 1 : e->weight;
    e->current_weight += w;
    total += w;
    if (best == nullptr || e->current_weight > best->current_weight) best = e;
  }
  if (best != nullptr) best->current_weight -= total;
  return best;
}

Endpoint* Balancer::weighted_random(const Tier& tier, const Eligible& ok, uint64_t random) const {
  // A few draws over all the tier's weights (a binary search each); an ineligible draw is drawn
  // again. Should they all miss (most hosts ineligible), one exact draw over the eligible ones.
  const uint64_t total = tier.cumulative.back();
  for (int attempt = 0; attempt < 8; ++attempt) {
    const uint64_t x = random % total;
    const size_t i =
        static_cast<size_t>(std::upper_bound(tier.cumulative.begin(), tier.cumulative.end(), x) -
                            tier.cumulative.begin());
    if (ok(tier.hosts[i])) return tier.hosts[i];
    random = next_random(random);
  }
  uint64_t sum = 0;
  for (const Endpoint* e : tier.hosts)
    if (ok(e)) sum += e->weight == 0 ? 1 : e->weight;
  if (sum == 0) return nullptr;
  uint64_t x = random % sum;
  for (Endpoint* e : tier.hosts) {
    if (!ok(e)) continue;
    const uint64_t w = e->weight == 0 ? 1 : e->weight;
    if (x < w) return e;
    x -= w;
  }
  return nullptr;
}

Endpoint* Balancer::least_request(const Tier& tier, const Eligible& ok, uint64_t random) const {
  // choice_count distinct hosts (when there are that many) drawn in proportion to their weights;
  // the one with the fewest active requests wins (the first drawn on a tie). Idle, picks follow
  // the weights; under load, busy hosts lose their share.
  Endpoint* best = nullptr;
  std::array<const Endpoint*, 8> drawn{};
  size_t n_drawn = 0;
  for (uint32_t c = 0; c < choice_count_; ++c) {
    auto fresh = [&](const Endpoint* e) {
      return std::find(drawn.begin(), drawn.begin() + n_drawn, e) == drawn.begin() + n_drawn;
    };
    Endpoint* e = nullptr;
    for (int attempt = 0; attempt < 4; ++attempt) {
      e = weighted_random(tier, ok, random);
      random = next_random(random);
      if (fresh(e)) break;
    }
    if (e != nullptr && !fresh(e)) {
      // Drawn already (few hosts, or one heavy host): the next eligible host not drawn yet.
      const size_t n = tier.hosts.size();
      const size_t start = static_cast<size_t>(random % n);
      for (size_t k = 0; k < n; ++k) {
        Endpoint* other = tier.hosts[(start + k) % n];
        if (ok(other) && fresh(other)) {
          e = other;
          break;
        }
      }
    }
    if (e == nullptr) continue;
    if (n_drawn < drawn.size()) drawn[n_drawn++] = e;
    if (best == nullptr || e->active_requests < best->active_requests) best = e;
  }
  return best;
}

Endpoint* Balancer::ring_hash(const Tier& tier, const Eligible& ok, uint64_t hash) const {
  // The first ring entry at or after the key, clockwise; an ineligible host passes the key on to
  // the next entry (keys of the other hosts do not move).
  const auto& hashes = tier.table->ring_hashes;
  const size_t n = hashes.size();
  size_t i =
      static_cast<size_t>(std::lower_bound(hashes.begin(), hashes.end(), hash) - hashes.begin());
  for (size_t step = 0; step < n; ++step, ++i) {
    if (i == n) i = 0;
    const uint32_t h = tier.table->ring_hosts[i];
    if (h < tier.hosts.size() && ok(tier.hosts[h])) return tier.hosts[h];
  }
  return nullptr;
}

Endpoint* Balancer::maglev(const Tier& tier, const Eligible& ok, uint64_t hash) const {
  // The key's slot; an ineligible host passes the key on to the following slots.
  const auto& table = tier.table->maglev;
  const size_t n = table.size();
  size_t i = static_cast<size_t>(hash % n);
  for (size_t step = 0; step < n; ++step, ++i) {
    if (i == n) i = 0;
    const uint32_t h = table[i];
    if (h < tier.hosts.size() && ok(tier.hosts[h])) return tier.hosts[h];
  }
  return nullptr;
}

}  // namespace portico::proxy::upstream::lb
