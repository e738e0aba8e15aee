#include "proxy/overload/overload.h"

#if defined(__SANITIZE_ADDRESS__)
#define PORTICO_ASAN_HEAP 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define PORTICO_ASAN_HEAP 1
#endif
#endif
#ifdef PORTICO_ASAN_HEAP
// The sanitizer runtime's allocator statistics (declared here: its header is not installed with
// every compiler).
extern "C" size_t __sanitizer_get_current_allocated_bytes();
#endif

#include <malloc.h>

#include "common/log.h"

// gperftools' C interface, resolved when the binary links tcmalloc (the portico binary does;
// test binaries and sanitizer builds do not, and then the symbol is null).
extern "C" int MallocExtension_GetNumericProperty(const char* property, size_t* value)
    __attribute__((weak));

namespace portico::proxy::overload {

namespace {
struct State {
  std::atomic<bool> overloaded{false};
  std::atomic<int64_t> connections{0};
  std::atomic<uint64_t> max_connections{0};
  std::atomic<uint64_t> heap_limit{0};
  std::atomic<uint64_t> last_heap{0};
  std::atomic<uint64_t> connections_refused{0};
  std::atomic<uint64_t> requests_refused{0};
  std::atomic<uint64_t> episodes{0};  // times the heap crossed the threshold
};
State& state() {
  static State s;
  return s;
}
}  // namespace

bool heap_overloaded() {
  return state().overloaded.load(std::memory_order_relaxed);
}

bool admit_connection(uint32_t max) {
  State& s = state();
  const int64_t n = s.connections.fetch_add(1, std::memory_order_relaxed) + 1;
  if (max != 0 && n > static_cast<int64_t>(max)) {
    s.connections.fetch_sub(1, std::memory_order_relaxed);
    s.connections_refused.fetch_add(1, std::memory_order_relaxed);
    return false;
  }
  return true;
}

int64_t connection_count() {
  return state().connections.load(std::memory_order_relaxed);
}

void release_connection() {
  state().connections.fetch_sub(1, std::memory_order_relaxed);
}

void count_refused_request() {
  state().requests_refused.fetch_add(1, std::memory_order_relaxed);
}

const char* heap_source() {
#ifdef PORTICO_ASAN_HEAP
  return "sanitizer";  // ASan's allocator: mallinfo2 says nothing about it
#else
  return MallocExtension_GetNumericProperty ? "tcmalloc" : "mallinfo2";
#endif
}

uint64_t heap_bytes() {
#ifdef PORTICO_ASAN_HEAP
  return __sanitizer_get_current_allocated_bytes();
#endif
  if (MallocExtension_GetNumericProperty) {
    size_t v = 0;
    if (MallocExtension_GetNumericProperty("generic.current_allocated_bytes", &v)) return v;
  }
  struct mallinfo2 mi = mallinfo2();
  return static_cast<uint64_t>(mi.uordblks) + static_cast<uint64_t>(mi.hblkhd);
}

Monitor& Monitor::instance() {
  static Monitor m;
  return m;
}

Monitor::~Monitor() {
  stop();
}

void Monitor::configure(const snapshot::OverloadConfig& config) {
  State& s = state();
  s.max_connections.store(config.max_connections, std::memory_order_relaxed);
  std::lock_guard lock(mu_);
  heap_limit_ = config.max_heap_bytes;
  s.heap_limit.store(heap_limit_, std::memory_order_relaxed);
  check();
  if (heap_limit_ != 0 && !thread_.joinable() && !stopping_) {
    thread_ = std::thread([this] { run(); });
  }
  cv_.notify_one();
}

void Monitor::stop() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  cv_.notify_one();
  if (thread_.joinable()) thread_.join();
}

// mu_ held.
void Monitor::check() {
  State& s = state();
  const uint64_t heap = heap_bytes();
  s.last_heap.store(heap, std::memory_order_relaxed);
  const bool over = heap_limit_ != 0 && heap >= heap_limit_;
  const bool was = s.overloaded.exchange(over, std::memory_order_relaxed);
  if (over && !was) {
    s.episodes.fetch_add(1, std::memory_order_relaxed);
    LOG_WARN("overload: heap %llu bytes >= %llu: refusing new requests, keep-alive off",
             static_cast<unsigned long long>(heap), static_cast<unsigned long long>(heap_limit_));
  } else if (was && !over) {
    LOG_INFO("overload: heap %llu bytes, under the threshold again: serving",
             static_cast<unsigned long long>(heap));
  }
}

void Monitor::run() {
  std::unique_lock lock(mu_);
  while (!stopping_) {
    // Without a threshold there is nothing to sample: sleep until one is configured.
    if (heap_limit_ == 0) {
      cv_.wait(lock, [&] { return stopping_ || heap_limit_ != 0; });
      continue;
    }
    cv_.wait_for(lock, kInterval, [&] { return stopping_; });
    if (!stopping_) check();
  }
}

std::string render_stats() {
  State& s = state();
  std::string out;
  auto metric = [&](const char* name, const char* type, const char* help, uint64_t v) {
    out += std::string("# HELP ") + name + " " + help + "\n# TYPE " + name + " " + type + "\n" +
           name + " " + std::to_string(v) + "\n";
  };
  const uint64_t heap = heap_bytes();
  out += std::string("# HELP portico_heap_allocated_bytes Heap allocated by the process (") +
         heap_source() +
         ").\n# TYPE portico_heap_allocated_bytes gauge\nportico_heap_allocated_bytes{source=\"" +
         heap_source() + "\"} " + std::to_string(heap) + "\n";
  metric("portico_overload_heap_limit_bytes", "gauge",
         "Heap threshold of the overload manager (0: none).",
         s.heap_limit.load(std::memory_order_relaxed));
  metric("portico_overload_active", "gauge",
         "1 while the heap is at or above the threshold (new requests refused, keep-alive off).",
         s.overloaded.load(std::memory_order_relaxed) ? 1 : 0);
  metric("portico_overload_episodes_total", "counter", "Times the heap went over the threshold.",
         s.episodes.load(std::memory_order_relaxed));
  const int64_t conns = s.connections.load(std::memory_order_relaxed);
  metric("portico_overload_connections", "gauge",
         "Client connections open, all listeners together (counted against the global limit).",
         conns > 0 ? static_cast<uint64_t>(conns) : 0);
  metric("portico_overload_max_connections", "gauge", "Global client connection limit (0: none).",
         s.max_connections.load(std::memory_order_relaxed));
  metric("portico_overload_connections_refused_total", "counter",
         "Connections closed at accept because the global connection limit was reached.",
         s.connections_refused.load(std::memory_order_relaxed));
  metric("portico_overload_requests_refused_total", "counter",
         "Requests answered 503 because the heap was over the threshold.",
         s.requests_refused.load(std::memory_order_relaxed));
  return out;
}

}  // namespace portico::proxy::overload
