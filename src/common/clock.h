// Wall-clock time as the control plane records it (statuses, propagation timings, fleet ACKs).
#pragma once

#include <chrono>
#include <cstdint>

namespace portico::common {

// Milliseconds since the Unix epoch.
inline int64_t unix_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace portico::common
