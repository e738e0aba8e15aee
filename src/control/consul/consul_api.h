// Consul's HTTP API, the parts every Consul client of the control plane shares (KV storage,
// catalog discovery): how to reach the agent (address, datacenter, ACL token), the blocking-query
// index rules, read parameters, KV answers, and the jittered back-off. Plain data and pure
// functions (Backoff holds its own state): any thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/backoff.h"
#include "common/result.h"
#include "control/http/client.h"

namespace portico::control::consul {

using Millis = std::chrono::milliseconds;

// Read consistency (Consul's ?stale / ?consistent; default: the leader answers without the extra
// round of a consistent read).
enum class Consistency { kDefault, kStale, kConsistent };
std::string_view to_string(Consistency c);

// How to reach Consul.
struct Endpoint {
  http::Url url;           // the agent's HTTP API
  std::string datacenter;  // ?dc=; empty: the agent's own
  std::string ns;          // X-Consul-Namespace (Consul Enterprise); empty: the token's own
  std::string token;       // X-Consul-Token; empty: none (Consul's anonymous token)
  std::string username;    // HTTP basic authentication (a proxy in front of Consul); empty: none
  std::string password;
};

// The headers every request to `e` carries (the ACL token, the namespace, basic authentication).
std::vector<std::pair<std::string, std::string>> request_headers(const Endpoint& e);

// The query parameters of a read, each prefixed with '&': dc, the consistency mode and, when
// `index` > 0, a blocking query's index and wait ("&index=42&wait=60000ms").
std::string read_params(const Endpoint& e, Consistency consistency, uint64_t index, Millis wait);

// The blocking-query index, by Consul's rules for clients: an index that went backwards (a
// snapshot restore, a new cluster) starts over from 0 (a non-blocking read of everything); an
// index below 1 is used as 1 (index 0 would not block, and the loop would spin).
class BlockingIndex {
 public:
  // What the next query sends as ?index= (0: do not block).
  uint64_t value() const { return index_; }
  // Records the X-Consul-Index of an answer. False when it went backwards (the index is now 0).
  bool update(uint64_t returned);
  // After a failed query: the next one reads at once (Consul may have been restored meanwhile).
  void reset() { index_ = 0; }

 private:
  uint64_t index_ = 0;
};

// X-Consul-Index's value: a decimal uint64; nullopt when absent or malformed.
std::optional<uint64_t> parse_index(const std::string* header);

// One entry of a KV read (GET /v1/kv/<prefix>?recurse), its value decoded from base64 (a null
// Value, as a folder or an empty key has, is empty).
struct KvEntry {
  std::string key;
  std::string value;
  uint64_t flags = 0;
  uint64_t create_index = 0;
  uint64_t modify_index = 0;
  uint64_t lock_index = 0;
};
// The entries of a KV answer's body; an error naming what is wrong when it is not Consul's JSON
// (not an array of objects with a string Key, base64 Value or null, and numeric indices).
Result<std::vector<KvEntry>> parse_kv_entries(std::string_view body);

// Jittered exponential back-off between failed queries (shared by every control-plane client).
using Backoff = common::Backoff;

// The first line of an error body, at most 200 bytes (what a problem() line quotes).
std::string brief(std::string_view body);

}  // namespace portico::control::consul
