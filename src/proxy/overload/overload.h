// The overload manager: process-wide limits of the data plane (Settings spec.overload).
//  - a global connection limit across every listener: a connection beyond it is closed at accept;
//  - a heap threshold: while the allocated heap is at or above it, new requests are answered 503
//    (x-portico-overload: heap) and every response carries Connection: close (no keep-alive).
// The heap is sampled on a timer (every 100 ms, by the monitor's thread, only while a threshold is
// set), never per request: workers read one relaxed atomic flag. Thread-safe throughout.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <string>
#include <thread>

#include "snapshot/proxy_config.h"

namespace portico::proxy::overload {

// Worker threads: whether new requests are refused (heap at or above the threshold).
bool heap_overloaded();
// The connections counted now (tests).
int64_t connection_count();
// A new connection (any worker): false, counted, when `max` (0: none) connections are open
// already. Every admitted connection is released once.
bool admit_connection(uint32_t max);
void release_connection();
void count_refused_request();

// The allocated heap now: tcmalloc's generic.current_allocated_bytes when the binary links
// tcmalloc, else glibc's mallinfo2 (in use by the application, mmapped chunks included).
uint64_t heap_bytes();
const char* heap_source();  // "tcmalloc" or "mallinfo2"

// Samples the heap against the configured threshold. One per process (the Server configures it).
class Monitor {
 public:
  static constexpr auto kInterval = std::chrono::milliseconds(100);
  static Monitor& instance();
  ~Monitor();

  // Control thread: the limits of the configuration being applied. A new threshold is checked at
  // once against a fresh sample, so raising it ends the overload without waiting for the timer.
  void configure(const snapshot::OverloadConfig& config);
  // Stops the sampling thread (process shutdown; tests).
  void stop();

 private:
  Monitor() = default;
  void run();
  void check();

  std::mutex mu_;
  std::condition_variable cv_;
  uint64_t heap_limit_ = 0;
  bool stopping_ = false;
  std::thread thread_;
};

// Prometheus text: heap bytes, the limits, the connections counted against the global limit, the
// overload state, connections and requests refused.
std::string render_stats();

}  // namespace portico::proxy::overload
