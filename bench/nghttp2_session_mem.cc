// What one nghttp2 server session holds by itself: the floor under Portico's memory per idle
// HTTP/2 connection (bench/load/idle_conns.py --h2 measures the whole connection). Counts the bytes
// nghttp2 allocates through a counting nghttp2_mem, after nghttp2_session_server_new3 and after the
// server's SETTINGS are serialised (Portico's settings: 100 streams, a 64 KiB stream window).
//
//   build/bench/nghttp2_session_mem
#include <nghttp2/nghttp2.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace {

long live = 0;
long peak = 0;
constexpr size_t kHeader = 16;  // the size, kept in front of each block (keeps 16-byte alignment)

void* count_malloc(size_t n, void*) {
  auto* block = static_cast<char*>(std::malloc(n + kHeader));
  if (!block) return nullptr;
  std::memcpy(block, &n, sizeof n);
  live += static_cast<long>(n);
  if (live > peak) peak = live;
  return block + kHeader;
}
size_t size_of(void* p) {
  size_t n = 0;
  std::memcpy(&n, static_cast<char*>(p) - kHeader, sizeof n);
  return n;
}
void count_free(void* p, void*) {
  if (!p) return;
  live -= static_cast<long>(size_of(p));
  std::free(static_cast<char*>(p) - kHeader);
}
void* count_calloc(size_t count, size_t size, void* user) {
  void* p = count_malloc(count * size, user);
  if (p) std::memset(p, 0, count * size);
  return p;
}
void* count_realloc(void* p, size_t n, void* user) {
  if (!p) return count_malloc(n, user);
  void* q = count_malloc(n, user);
  if (!q) return nullptr;
  const size_t old = size_of(p);
  std::memcpy(q, p, old < n ? old : n);
  count_free(p, user);
  return q;
}

}  // namespace

int main() {
  nghttp2_mem mem{nullptr, count_malloc, count_free, count_calloc, count_realloc};
  nghttp2_session_callbacks* callbacks = nullptr;
  if (nghttp2_session_callbacks_new(&callbacks) != 0) return 1;
  nghttp2_session* session = nullptr;
  if (nghttp2_session_server_new3(&session, callbacks, nullptr, nullptr, &mem) != 0) return 1;
  std::printf("nghttp2_session_bytes after_new=%ld", live);
  nghttp2_settings_entry iv[2] = {{NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, 100},
                                  {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, 65535}};
  nghttp2_submit_settings(session, NGHTTP2_FLAG_NONE, iv, 2);
  const uint8_t* data = nullptr;
  while (nghttp2_session_mem_send(session, &data) > 0) {
  }
  std::printf(" after_settings=%ld peak=%ld\n", live, peak);
  nghttp2_session_del(session);
  nghttp2_session_callbacks_del(callbacks);
  return 0;
}
