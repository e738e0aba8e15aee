#include "proxy/access_log/writer.h"

#include <fcntl.h>
#include <unistd.h>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

namespace portico::proxy::access_log {
namespace {

namespace fs = std::filesystem;

struct TempDir {
  fs::path path;
  TempDir() {
    char tmpl[] = "/tmp/portico_access_log_XXXXXX";
    path = mkdtemp(tmpl);
  }
  ~TempDir() { fs::remove_all(path); }
};

std::string slurp(const fs::path& p) {
  std::ifstream in(p);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

size_t count_lines(const std::string& s) {
  return static_cast<size_t>(std::count(s.begin(), s.end(), '\n'));
}

TEST(AccessLogWriter, WritesEveryWorkersLines) {
  TempDir dir;
  Manager m;
  auto sink = m.sink((dir.path / "access.log").string());
  ASSERT_TRUE(sink.ok()) << sink.error().message;
  auto again = m.sink((dir.path / "access.log").string());
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again.value().get(), sink.value().get());  // one sink per path
  std::thread w0([&] {
    for (int i = 0; i < 1000; ++i)
      m.push(0, **sink, "worker0 line " + std::to_string(i) + "\n");
  });
  std::thread w1([&] {
    for (int i = 0; i < 1000; ++i)
      m.push(1, **sink, "worker1 line " + std::to_string(i) + "\n");
  });
  w0.join();
  w1.join();
  m.flush();
  const std::string content = slurp(dir.path / "access.log");
  EXPECT_EQ(count_lines(content), 2000u);
  EXPECT_EQ(m.lines_written(), 2000u);
  EXPECT_EQ(m.lines_dropped(), 0u);
  EXPECT_NE(content.find("worker1 line 999\n"), std::string::npos);
  EXPECT_THAT(m.render_stats(),
              ::testing::HasSubstr("portico_access_log_lines_written_total 2000"));
}

TEST(AccessLogWriter, ReopenAfterRename) {
  TempDir dir;
  Manager m;
  const fs::path log = dir.path / "access.log";
  auto sink = m.sink(log.string());
  ASSERT_TRUE(sink.ok());
  m.push(0, **sink, "before\n");
  m.flush();
  fs::rename(log, dir.path / "access.log.1");  // logrotate
  m.push(0, **sink, "still old\n");
  m.reopen();
  m.flush();
  m.push(0, **sink, "after\n");
  m.flush();
  EXPECT_EQ(slurp(dir.path / "access.log.1"), "before\nstill old\n");
  EXPECT_EQ(slurp(log), "after\n");
}

TEST(AccessLogWriter, UnwritablePathIsAnError) {
  Manager m;
  auto sink = m.sink("/nonexistent-dir-for-portico/access.log");
  ASSERT_FALSE(sink.ok());
  EXPECT_THAT(sink.error().message, ::testing::HasSubstr("/nonexistent-dir-for-portico"));
}

TEST(AccessLogWriter, LongLinesAreCut) {
  TempDir dir;
  Manager m;
  auto sink = m.sink((dir.path / "a.log").string());
  ASSERT_TRUE(sink.ok());
  m.push(0, **sink, std::string(Manager::kMaxLine * 2, 'x') + "\n");
  m.flush();
  const std::string content = slurp(dir.path / "a.log");
  EXPECT_EQ(content.size(), Manager::kMaxLine);
  EXPECT_EQ(content.back(), '\n');
}

// A writer that cannot write (its pipe is full and nobody reads) never blocks the workers: their
// lines are dropped and counted once their buffer is full, and nothing is lost before that.
TEST(AccessLogWriter, AStuckWriterDropsAndCountsInsteadOfBlocking) {
  int fds[2];
  ASSERT_EQ(::pipe(fds), 0);
  Manager m;
  auto sink = m.sink("/proc/self/fd/" + std::to_string(fds[1]));
  ASSERT_TRUE(sink.ok()) << sink.error().message;
  const std::string line(1000, 'y');
  const std::string with_nl = line + "\n";
  const int n = 5000;  // 5 MB: more than the pipe (64 KiB) and the buffer (1 MiB) hold
  const auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < n; ++i)
    m.push(0, **sink, with_nl);
  const auto took = std::chrono::steady_clock::now() - start;
  EXPECT_LT(took, std::chrono::seconds(2));
  // Give the writer time to fill the pipe and block; then read the pipe until the writer is done.
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  EXPECT_GT(m.lines_dropped(), 0u);
  std::atomic<bool> stop{false};
  ::fcntl(fds[0], F_SETFL, O_NONBLOCK);
  std::thread reader([&] {
    char buf[65536];
    while (!stop.load()) {
      if (::read(fds[0], buf, sizeof buf) <= 0)
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
  });
  m.flush();
  stop = true;
  reader.join();
  EXPECT_EQ(m.lines_written() + m.lines_dropped(), static_cast<uint64_t>(n));
  EXPECT_GE(m.lines_written(), (Manager::kBufferBytes / 1024) / 2);
  ::close(fds[0]);
  sink = Error::io("released");  // the sink goes; the writer closes its file
  m.flush();
  m.flush();
  ::close(fds[1]);
}

}  // namespace
}  // namespace portico::proxy::access_log
