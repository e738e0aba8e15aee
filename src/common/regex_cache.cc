#include "common/regex_cache.h"

#include <mutex>
#include <unordered_map>

namespace portico::common {
namespace {

struct Cache {
  std::mutex mu;
  std::unordered_map<std::string, std::weak_ptr<const re2::RE2>> entries;
  size_t prune_at = 1024;
};

Cache& cache() {
  static Cache* c = new Cache();  // never destroyed: used until the last thread exits
  return *c;
}

}  // namespace

std::shared_ptr<const re2::RE2> shared_regex(const std::string& pattern, bool case_sensitive) {
  std::string key;
  key.reserve(pattern.size() + 1);
  key.push_back(case_sensitive ? 's' : 'i');
  key += pattern;
  Cache& c = cache();
  std::lock_guard<std::mutex> lock(c.mu);
  auto& slot = c.entries[key];
  if (auto held = slot.lock()) return held;
  re2::RE2::Options options;
  options.set_log_errors(false);
  options.set_case_sensitive(case_sensitive);
  auto re = std::make_shared<const re2::RE2>(pattern, options);
  slot = re;
  if (c.entries.size() >= c.prune_at) {
    // Forget the patterns nobody holds any more; amortised over as many insertions as remain.
    for (auto it = c.entries.begin(); it != c.entries.end();) {
      it = it->second.expired() ? c.entries.erase(it) : std::next(it);
    }
    c.prune_at = std::max<size_t>(1024, c.entries.size() * 2);
  }
  return re;
}

size_t shared_regex_count() {
  Cache& c = cache();
  std::lock_guard<std::mutex> lock(c.mu);
  size_t n = 0;
  for (const auto& [key, weak] : c.entries)
    n += weak.expired() ? 0 : 1;
  return n;
}

}  // namespace portico::common
