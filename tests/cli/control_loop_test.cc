#include "cli/control_loop.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

namespace portico::cli {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

std::string upstream(const std::string& name, int port) {
  return "apiVersion: gateway.portico.dev/v1\nkind: Upstream\nmetadata: {name: " + name +
         "}\nspec:\n  static:\n    hosts:\n      - {addr: 127.0.0.1, port: " +
         std::to_string(port) + "}\n";
}

void write(const fs::path& path, const std::string& text) {
  std::ofstream(path.string() + ".tmp") << text;
  fs::rename(path.string() + ".tmp", path);  // as editors and `kubectl cp` do: one event
}

class ControlLoopTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("portico-loop-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    write(dir_ / "a.yaml", upstream("a", 8001));
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::unique_ptr<ControlLoop> make(std::chrono::milliseconds resync = 0ms) {
    auto loop = std::make_unique<ControlLoop>(
        io_, dir_,
        [this](std::shared_ptr<const snapshot::ProxyConfig> config) {
          published_.push_back(std::move(config));
          return std::vector<control::ListenerFailure>{};
        },
        resync);
    loop->set_hooks(
        {[this] { ++failed_; },
         [this](const control::Pipeline::SyncResult& r, ControlLoop::Clock::time_point) {
           ++built_;
           if (r.published) versions_.push_back(r.version);
         }});
    return loop;
  }

  // Runs the loop until `done` holds or `limit` passes.
  template <typename Pred>
  bool run_until(Pred done, std::chrono::milliseconds limit = 5000ms) {
    const auto end = std::chrono::steady_clock::now() + limit;
    while (!done()) {
      if (std::chrono::steady_clock::now() > end) return false;
      io_.restart();
      io_.run_for(5ms);
    }
    return true;
  }

  std::vector<std::string> clusters() const {
    std::vector<std::string> out;
    for (const auto& c : published_.back()->clusters)
      out.push_back(c.name);
    return out;
  }

  fs::path dir_;
  asio::io_context io_{1};
  std::vector<std::shared_ptr<const snapshot::ProxyConfig>> published_;
  std::vector<uint64_t> versions_;
  int built_ = 0;
  int failed_ = 0;
};

TEST_F(ControlLoopTest, PublishesTheDirectoryAndFollowsItsChanges) {
  auto loop = make();
  loop->start();
  ASSERT_EQ(published_.size(), 1u);
  EXPECT_EQ(clusters(), std::vector<std::string>{"default/a"});
  EXPECT_EQ(versions_, std::vector<uint64_t>{1});
  EXPECT_EQ(loop->settings_in_force(), nullptr);

  write(dir_ / "b.yaml", upstream("b", 8002));
  ASSERT_TRUE(run_until([&] { return published_.size() == 2; }));
  EXPECT_EQ(clusters(), (std::vector<std::string>{"default/a", "default/b"}));
  EXPECT_EQ(loop->pipeline().version(), 2u);

  fs::remove(dir_ / "a.yaml");
  ASSERT_TRUE(run_until([&] { return published_.size() == 3; }));
  EXPECT_EQ(clusters(), std::vector<std::string>{"default/b"});
  EXPECT_EQ(failed_, 0);
  // The source is up and says so in /stats.
  EXPECT_NE(loop->source_stats().find("portico_config_source_up{source=\"file\"} 1"),
            std::string::npos)
      << loop->source_stats();
}

TEST_F(ControlLoopTest, ABurstOfWritesIsOneBuild) {
  auto loop = make();
  loop->start();
  ASSERT_EQ(published_.size(), 1u);
  for (int i = 0; i < 20; ++i)
    write(dir_ / ("u" + std::to_string(i) + ".yaml"), upstream("u" + std::to_string(i), 9000 + i));
  ASSERT_TRUE(run_until([&] { return published_.back()->clusters.size() == 21; }));
  // Debounced: 10 ms of quiet or 100 ms after the first event. Twenty renames in well under
  // 100 ms make one or two builds, never twenty.
  EXPECT_LE(published_.size(), 3u);
  // Nothing more comes without a change.
  const size_t n = published_.size();
  run_until([] { return false; }, 200ms);
  EXPECT_EQ(published_.size(), n);
}

TEST_F(ControlLoopTest, SettingsInForceAndAnInvalidEditKeepsTheLastGood) {
  write(dir_ / "settings.yaml",
        "apiVersion: gateway.portico.dev/v1\nkind: Settings\nmetadata: {name: default}\nspec:\n"
        "  invalidConfigPolicy: {replaceInvalidRoutes: true, invalidRouteResponseCode: 418}\n");
  auto loop = make();
  loop->start();
  ASSERT_NE(loop->settings_in_force(), nullptr);
  EXPECT_EQ(loop->settings_in_force()->invalid_route_status, 418);
  // A Settings edit that does not decode: the last good one stays in force.
  write(dir_ / "settings.yaml",
        "apiVersion: gateway.portico.dev/v1\nkind: Settings\nmetadata: {name: default}\nspec:\n"
        "  invalidConfigPolicy: {invalidRouteResponseCode: not-a-number}\n");
  ASSERT_TRUE(run_until([&] { return built_ >= 2; }));
  ASSERT_NE(loop->settings_in_force(), nullptr);
  EXPECT_EQ(loop->settings_in_force()->invalid_route_status, 418);
}

TEST_F(ControlLoopTest, StoppedSeesNothingMore) {
  auto loop = make();
  loop->start();
  ASSERT_EQ(published_.size(), 1u);
  loop->stop();
  EXPECT_TRUE(loop->stopped());
  write(dir_ / "b.yaml", upstream("b", 8002));
  loop->schedule_rebuild();
  run_until([] { return false; }, 200ms);
  EXPECT_EQ(published_.size(), 1u);
}

TEST_F(ControlLoopTest, ResyncReadsWhatTheWatchMissed) {
  // A file behind a symlink that points outside the directory: the watch does not see it change.
  const fs::path outside = dir_.string() + "-outside";
  fs::create_directories(outside);
  write(outside / "real.yaml", upstream("linked", 8003));
  fs::create_symlink(outside / "real.yaml", dir_ / "linked.yaml");
  for (auto resync : {0ms, 50ms}) {
    SCOPED_TRACE("resync " + std::to_string(resync.count()) + " ms");
    published_.clear();
    write(outside / "real.yaml", upstream("linked", 8003));
    auto loop = make(resync);
    loop->start();
    loop->start_resync();
    ASSERT_EQ(published_.size(), 1u);
    EXPECT_EQ(clusters(), (std::vector<std::string>{"default/a", "default/linked"}));
    write(outside / "real.yaml", upstream("moved", 8004));
    const bool seen = run_until([&] { return published_.size() >= 2; }, 1000ms);
    EXPECT_EQ(seen, resync.count() > 0);
    if (seen) {
      EXPECT_EQ(clusters(), (std::vector<std::string>{"default/a", "default/moved"}));
    }
    loop->stop();
    io_.restart();
    io_.poll();  // the cancelled waits complete before the loop goes
  }
  fs::remove_all(outside);
}

}  // namespace
}  // namespace portico::cli
