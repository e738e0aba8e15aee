#include "control/sources/file_source.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

namespace portico::control {
namespace {

namespace fs = std::filesystem;

class FileSourceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/portico-source-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    fs::create_directories(dir_ / "conf");
    fs::create_directories(dir_ / "tls");
  }
  void TearDown() override { fs::remove_all(dir_); }
  // Written beside and renamed into place, as a rotation does.
  void write(const fs::path& p, const std::string& text) {
    std::ofstream(p.string() + ".new") << text;
    fs::rename(p.string() + ".new", p);
  }
  fs::path dir_;
};

TEST_F(FileSourceTest, AReferencedFileChangesTheRevision) {
  write(dir_ / "tls" / "r.crt", "certificate one");
  write(dir_ / "conf" / "key.pem", "key one");
  write(dir_ / "conf" / "secret.yaml",
        "kind: Secret\nmetadata: {name: r}\nspec:\n  tls:\n    certChainFile: " +
            (dir_ / "tls" / "r.crt").string() + "\n    privateKeyFile: key.pem\n");
  FileSource source(dir_ / "conf");
  Delta first = source.poll(false);
  ASSERT_EQ(first.upserts.size(), 1u);
  const std::string rev1 = first.upserts[0].origin.revision;
  std::vector<fs::path> dirs = source.referenced_dirs();
  ASSERT_EQ(dirs.size(), 2u);  // tls/ (absolute) and conf/ (relative to the directory)
  EXPECT_TRUE(source.poll(false).upserts.empty());
  EXPECT_TRUE(source.poll(true).upserts.empty());

  // Rotated: same YAML, new certificate.
  write(dir_ / "tls" / "r.crt", "certificate two");
  Delta rotated = source.poll(false);
  ASSERT_EQ(rotated.upserts.size(), 1u);
  EXPECT_NE(rotated.upserts[0].origin.revision, rev1);
  EXPECT_EQ(rotated.upserts[0].resource->key(), "Secret/default/r");
  EXPECT_TRUE(source.poll(false).upserts.empty());

  // The key, relative to the configuration directory.
  write(dir_ / "conf" / "key.pem", "key two");
  EXPECT_EQ(source.poll(false).upserts.size(), 1u);
}

}  // namespace
}  // namespace portico::control
