#include "control/sources/file_watcher.h"

#include <gtest/gtest.h>
#include <poll.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>

namespace portico::control {
namespace {

namespace fs = std::filesystem;

class FileWatcherTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/portico-watch-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override { fs::remove_all(dir_); }

  // Waits up to 2 s for the watcher to report a change.
  static bool changed(FileWatcher& w) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(2);
    while (std::chrono::steady_clock::now() < deadline) {
      pollfd p{w.fd(), POLLIN, 0};
      if (poll(&p, 1, 100) > 0 && w.drain()) return true;
    }
    return false;
  }
  static void write(const fs::path& p, const std::string& text) { std::ofstream(p) << text; }

  fs::path dir_;
};

TEST_F(FileWatcherTest, ReportsWritesRenamesAndDeletes) {
  auto w = FileWatcher::open(dir_);
  ASSERT_TRUE(w.ok()) << w.error().message;
  EXPECT_FALSE((*w)->drain());  // nothing yet

  write(dir_ / "a.yaml", "kind: Upstream\n");
  EXPECT_TRUE(changed(**w));

  write(dir_ / "tmp", "x");
  fs::rename(dir_ / "tmp", dir_ / "b.yaml");
  EXPECT_TRUE(changed(**w));

  fs::remove(dir_ / "a.yaml");
  EXPECT_TRUE(changed(**w));
}

TEST_F(FileWatcherTest, WatchesDirectoriesCreatedLater) {
  auto w = FileWatcher::open(dir_);
  ASSERT_TRUE(w.ok());
  fs::create_directory(dir_ / "team-a");
  EXPECT_TRUE(changed(**w));
  write(dir_ / "team-a" / "vs.yaml", "kind: VirtualService\n");
  EXPECT_TRUE(changed(**w));
}

TEST_F(FileWatcherTest, IgnoresHiddenAndBackupFiles) {
  auto w = FileWatcher::open(dir_);
  ASSERT_TRUE(w.ok());
  write(dir_ / ".vs.yaml.swp", "x");
  write(dir_ / "vs.yaml~", "x");
  pollfd p{(*w)->fd(), POLLIN, 0};
  ASSERT_GT(poll(&p, 1, 1000), 0);
  EXPECT_FALSE((*w)->drain());
}

TEST_F(FileWatcherTest, SeesAKubernetesConfigMapSwap) {
  // Files are symlinks into "..data", a symlink to a timestamped directory that is replaced by an
  // atomic rename: no event names a visible file.
  fs::create_directory(dir_ / "..2026_12_01_00_00_00.1");
  write(dir_ / "..2026_12_01_00_00_00.1" / "vs.yaml", "kind: VirtualService\n");
  fs::create_directory_symlink("..2026_12_01_00_00_00.1", dir_ / "..data");
  fs::create_symlink("..data/vs.yaml", dir_ / "vs.yaml");
  auto w = FileWatcher::open(dir_);
  ASSERT_TRUE(w.ok());
  fs::create_directory(dir_ / "..2026_12_01_00_01_00.2");
  write(dir_ / "..2026_12_01_00_01_00.2" / "vs.yaml", "kind: Upstream\n");
  fs::create_directory_symlink("..2026_12_01_00_01_00.2", dir_ / "..data_tmp");
  fs::rename(dir_ / "..data_tmp", dir_ / "..data");
  EXPECT_TRUE(changed(**w));
}

TEST_F(FileWatcherTest, WatchesSymlinkedDirectories) {
  char tmpl[] = "/tmp/portico-watch-target-XXXXXX";
  ASSERT_NE(mkdtemp(tmpl), nullptr);
  fs::path target = tmpl;
  fs::create_directory_symlink(target, dir_ / "team-a");
  auto w = FileWatcher::open(dir_);
  ASSERT_TRUE(w.ok());
  write(target / "vs.yaml", "kind: VirtualService\n");
  EXPECT_TRUE(changed(**w));
  // A symlinked directory added later is watched too.
  char tmpl2[] = "/tmp/portico-watch-target-XXXXXX";
  ASSERT_NE(mkdtemp(tmpl2), nullptr);
  fs::path target2 = tmpl2;
  fs::create_directory_symlink(target2, dir_ / "team-b");
  EXPECT_TRUE(changed(**w));
  write(target2 / "vs.yaml", "kind: VirtualService\n");
  EXPECT_TRUE(changed(**w));
  fs::remove_all(target);
  fs::remove_all(target2);
}

TEST_F(FileWatcherTest, MissingDirectoryIsAnError) {
  auto w = FileWatcher::open(dir_ / "nope");
  ASSERT_FALSE(w.ok());
  EXPECT_NE(w.error().message.find("nope"), std::string::npos);
}

TEST_F(FileWatcherTest, HandsOverThePathsThatChanged) {
  fs::create_directory(dir_ / "sub");
  auto w = FileWatcher::open(dir_);
  ASSERT_TRUE(w.ok());
  write(dir_ / "sub" / "vs.yaml", "kind: VirtualService\n");
  ASSERT_TRUE(changed(**w));
  FileWatcher::Changes c = (*w)->take_changes();
  EXPECT_FALSE(c.relist);
  ASSERT_FALSE(c.paths.empty());
  for (const auto& p : c.paths)
    EXPECT_EQ(p, dir_ / "sub" / "vs.yaml");
  EXPECT_TRUE((*w)->take_changes().paths.empty());  // taken once

  // A new directory is watched, and named.
  fs::create_directory(dir_ / "new");
  ASSERT_TRUE(changed(**w));
  c = (*w)->take_changes();
  EXPECT_NE(std::find(c.paths.begin(), c.paths.end(), dir_ / "new"), c.paths.end());
  write(dir_ / "new" / "u.yaml", "kind: Upstream\n");
  ASSERT_TRUE(changed(**w));
  c = (*w)->take_changes();
  EXPECT_NE(std::find(c.paths.begin(), c.paths.end(), dir_ / "new" / "u.yaml"), c.paths.end());
}

}  // namespace
}  // namespace portico::control
