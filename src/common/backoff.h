// Jittered exponential back-off between failed attempts of the control plane's clients (etcd,
// Consul, Vault, Nomad...): the ceiling starts at `min` and doubles after every failure up to
// `max`; each delay is drawn uniformly between half the ceiling (never below `min`) and the
// ceiling, so that many proxies do not retry in step. One instance per retry loop; not shared
// between threads.
#pragma once

#include <chrono>
#include <cstdint>
#include <random>

namespace portico::common {

class Backoff {
 public:
  using Millis = std::chrono::milliseconds;
  Backoff(Millis min, Millis max, uint64_t seed = std::random_device{}());
  // The delay before the next attempt (and one more failure counted).
  Millis next();
  // After a success: the next failure waits `min` again.
  void reset() { failures_ = 0; }
  int failures() const { return failures_; }

 private:
  Millis min_, max_;
  int failures_ = 0;
  std::mt19937_64 rng_;
};

}  // namespace portico::common
