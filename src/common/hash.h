// A fast non-cryptographic hash of bytes (FNV-1a, 64 bits, mixed with the length), for telling
// whether a text changed (configuration files, store values). Any thread.
#pragma once

#include <cstdint>
#include <string_view>

namespace portico::common {

inline uint64_t content_hash(std::string_view s) {
  uint64_t h = 14695981039346656037ull;
  for (unsigned char c : s) {
    h ^= c;
    h *= 1099511628211ull;
  }
  return h ^ s.size();
}

}  // namespace portico::common
