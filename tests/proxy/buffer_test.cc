#include "proxy/buffer.h"

#include <gtest/gtest.h>

#include <string>

namespace portico::proxy {
namespace {

void put(Buffer& b, std::string_view s) {
  auto [p, cap] = b.prepare(s.size());
  ASSERT_GE(cap, s.size());
  std::memcpy(p, s.data(), s.size());
  b.commit(s.size());
}

TEST(BufferTest, AppendConsumeAndReset) {
  Buffer b(16, 64);
  put(b, "hello");
  EXPECT_EQ(b.view(), "hello");
  b.consume(2);
  EXPECT_EQ(b.view(), "llo");
  b.consume(3);
  EXPECT_TRUE(b.empty());
}

TEST(BufferTest, CompactsBeforeGrowing) {
  Buffer b(16, 16);
  put(b, std::string(12, 'a'));
  b.consume(10);
  put(b, std::string(10, 'b'));  // fits only after compaction
  EXPECT_EQ(b.view(), "aa" + std::string(10, 'b'));
  EXPECT_EQ(b.capacity(), 16u);
}

TEST(BufferTest, GrowsUpToMaxThenReportsFull) {
  Buffer b(16, 64);
  put(b, std::string(60, 'x'));
  EXPECT_EQ(b.capacity(), 64u);
  auto [p, cap] = b.prepare(8);
  EXPECT_EQ(cap, 4u);  // cannot grow past the maximum
  put(b, "1234");
  auto [p2, cap2] = b.prepare(1);
  EXPECT_EQ(cap2, 0u);
  (void)p;
  (void)p2;
}

TEST(BufferTest, ReleasedStorageIsReusedByTheNextBufferOfThatSize) {
  const char* first = nullptr;
  {
    Buffer a(4096, 1 << 20);
    first = a.prepare(1).first;
    put(a, "abc");
    a.consume(3);
    a.release(4096);  // empty: its block goes to this thread's cache
    EXPECT_EQ(a.capacity(), 4096u);
  }
  Buffer b(4096, 1 << 20);
  auto [p, cap] = b.prepare(1);
  EXPECT_EQ(p, first);  // no allocation: the released block
  EXPECT_EQ(cap, 4096u);
  put(b, "xyz");
  EXPECT_EQ(b.view(), "xyz");
}

TEST(BufferTest, ReleaseKeepsDataOfANonEmptyBuffer) {
  Buffer a(64, 1024);
  put(a, "keep");
  a.release(64);
  EXPECT_EQ(a.view(), "keep");
}

}  // namespace
}  // namespace portico::proxy
