#include "common/backoff.h"

#include <algorithm>

namespace portico::common {

Backoff::Backoff(Millis min, Millis max, uint64_t seed)
    : min_(min), max_(std::max(min, max)), rng_(seed) {}

Backoff::Millis Backoff::next() {
  int64_t ceiling = min_.count();
  for (int i = 0; i < failures_ && ceiling < max_.count(); ++i)
    ceiling *= 2;
  if (ceiling > max_.count()) ceiling = max_.count();
  if (failures_ < 64) ++failures_;
  std::uniform_int_distribution<int64_t> pick(std::max(min_.count(), ceiling / 2), ceiling);
  return Millis(pick(rng_));
}

}  // namespace portico::common
