#include "proxy/overload/overload.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <thread>
#include <vector>

namespace portico::proxy::overload {
namespace {

using ::testing::HasSubstr;

TEST(Overload, GlobalConnectionLimitIsExactAcrossThreads) {
  // Other tests of this binary build connections that were never admitted (no accept): start the
  // shared count from zero.
  while (connection_count() < 0)
    admit_connection(0);
  while (connection_count() > 0)
    release_connection();
  std::atomic<int> admitted{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 100; ++i)
        if (admit_connection(50)) admitted.fetch_add(1);
    });
  }
  for (auto& t : threads)
    t.join();
  EXPECT_EQ(admitted.load(), 50);
  EXPECT_FALSE(admit_connection(50));
  release_connection();
  EXPECT_TRUE(admit_connection(50));
  EXPECT_TRUE(admit_connection(0));  // 0: no limit
  for (int i = 0; i < 51; ++i)
    release_connection();
  EXPECT_THAT(render_stats(), HasSubstr("portico_overload_connections 0\n"));
}

TEST(Overload, HeapThresholdTurnsOnAndOffAtOnce) {
  EXPECT_GT(heap_bytes(), 0u);
  // Test binaries do not link tcmalloc; sanitizer builds count ASan's allocator.
  EXPECT_THAT(std::string(heap_source()), ::testing::AnyOf("mallinfo2", "sanitizer"));
  EXPECT_FALSE(heap_overloaded());
  snapshot::OverloadConfig low;
  low.max_heap_bytes = 1;
  Monitor::instance().configure(low);
  EXPECT_TRUE(heap_overloaded());
  EXPECT_THAT(render_stats(), HasSubstr("portico_overload_active 1\n"));
  // Sampled on the timer too: still over after a few periods.
  std::this_thread::sleep_for(Monitor::kInterval * 3);
  EXPECT_TRUE(heap_overloaded());
  snapshot::OverloadConfig high;
  high.max_heap_bytes = uint64_t{1} << 50;
  Monitor::instance().configure(high);
  EXPECT_FALSE(heap_overloaded());
  Monitor::instance().configure(snapshot::OverloadConfig{});
  EXPECT_FALSE(heap_overloaded());
  EXPECT_THAT(render_stats(), HasSubstr("portico_overload_heap_limit_bytes 0\n"));
}

}  // namespace
}  // namespace portico::proxy::overload
