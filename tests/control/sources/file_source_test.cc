#include "control/sources/file_source.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <set>
#include <string>

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

std::string upstream(const std::string& name, int port) {
  return "kind: Upstream\nmetadata: {name: " + name + "}\nspec:\n  static:\n    hosts:\n" +
         "      - {addr: 127.0.0.1, port: " + std::to_string(port) + "}\n";
}

std::set<std::string> upserted(const Delta& d) {
  std::set<std::string> out;
  for (const auto& u : d.upserts)
    out.insert(u.resource->key());
  return out;
}

std::set<std::string> removed(const Delta& d) {
  std::set<std::string> out;
  for (const auto& r : d.removals)
    out.insert(r.resource_key);
  return out;
}

TEST_F(FileSourceTest, AnEventDrivenPollReadsOnlyTheNotedFiles) {
  const fs::path conf = dir_ / "conf";
  write(conf / "a.yaml", upstream("a", 1001));
  write(conf / "b.yaml", upstream("b", 1002));
  FileSource source(conf);
  ASSERT_EQ(source.poll(false).upserts.size(), 2u);

  // Both change; the watcher saw only a.yaml.
  write(conf / "a.yaml", upstream("a", 2001));
  write(conf / "b.yaml", upstream("b", 2002));
  source.note_changed(conf / "a.yaml");
  EXPECT_EQ(upserted(source.poll(false)), (std::set<std::string>{"Upstream/default/a"}));

  // The periodic full resync catches what no event announced.
  EXPECT_EQ(upserted(source.poll(true)), (std::set<std::string>{"Upstream/default/b"}));
  EXPECT_TRUE(source.poll(true).upserts.empty());

  // A new file and a removed one, by their events.
  write(conf / "c.yaml", upstream("c", 1003));
  fs::remove(conf / "a.yaml");
  source.note_changed(conf / "c.yaml");
  source.note_changed(conf / "a.yaml");
  Delta d = source.poll(false);
  EXPECT_EQ(upserted(d), (std::set<std::string>{"Upstream/default/c"}));
  EXPECT_EQ(removed(d), (std::set<std::string>{"Upstream/default/a"}));

  // Noted paths that hold no configuration (an editor's file, another extension) change nothing.
  write(conf / "notes.txt", "kind: Upstream\n");
  source.note_changed(conf / "notes.txt");
  source.note_changed(conf / ".c.yaml.swp");
  d = source.poll(false);
  EXPECT_TRUE(d.upserts.empty());
  EXPECT_TRUE(d.removals.empty());
}

TEST_F(FileSourceTest, ANotedDirectoryIsListed) {
  const fs::path conf = dir_ / "conf";
  write(conf / "a.yaml", upstream("a", 1001));
  FileSource source(conf);
  ASSERT_EQ(source.poll(false).upserts.size(), 1u);

  fs::create_directories(conf / "team");
  write(conf / "team" / "t.yaml", upstream("t", 1004));
  source.note_changed(conf / "team");
  EXPECT_EQ(upserted(source.poll(false)), (std::set<std::string>{"Upstream/default/t"}));

  // The directory goes away: its files' resources with it.
  fs::remove_all(conf / "team");
  source.note_changed(conf / "team");
  EXPECT_EQ(removed(source.poll(false)), (std::set<std::string>{"Upstream/default/t"}));
}

TEST_F(FileSourceTest, AConfigMapSwapIsSeenThroughItsDataLink) {
  // A Kubernetes mount: files are links into "..data", itself a link swapped atomically.
  const fs::path conf = dir_ / "conf";
  fs::create_directory(conf / "..v1");
  write(conf / "..v1" / "u.yaml", upstream("u", 1001));
  fs::create_directory_symlink("..v1", conf / "..data");
  fs::create_symlink("..data/u.yaml", conf / "u.yaml");
  FileSource source(conf);
  Delta first = source.poll(false);
  ASSERT_EQ(first.upserts.size(), 1u);
  const std::string rev1 = first.upserts[0].origin.revision;

  fs::create_directory(conf / "..v2");
  write(conf / "..v2" / "u.yaml", upstream("u", 2001));
  fs::create_directory_symlink("..v2", conf / "..data_tmp");
  fs::rename(conf / "..data_tmp", conf / "..data");
  source.note_changed(conf / "..data");  // the only event: no visible file is named
  Delta swapped = source.poll(false);
  ASSERT_EQ(swapped.upserts.size(), 1u);
  EXPECT_NE(swapped.upserts[0].origin.revision, rev1);
}

TEST_F(FileSourceTest, AnEventDrivenPollChecksReferencedFilesOfTheNotedDirectories) {
  write(dir_ / "tls" / "r.crt", "certificate one");
  write(dir_ / "conf" / "secret.yaml",
        "kind: Secret\nmetadata: {name: r}\nspec:\n  tls:\n    certChainFile: " +
            (dir_ / "tls" / "r.crt").string() +
            "\n    privateKeyFile: " + (dir_ / "tls" / "r.key").string() + "\n");
  write(dir_ / "tls" / "r.key", "key one");
  write(dir_ / "conf" / "a.yaml", upstream("a", 1001));
  FileSource source(dir_ / "conf");
  ASSERT_EQ(source.poll(false).upserts.size(), 2u);

  // Rotated, but the only event is about another file: the certificate's directory is not looked
  // at (a full resync would).
  write(dir_ / "tls" / "r.crt", "certificate two");
  write(dir_ / "conf" / "a.yaml", upstream("a", 2001));
  source.note_changed(dir_ / "conf" / "a.yaml");
  EXPECT_EQ(upserted(source.poll(false)), (std::set<std::string>{"Upstream/default/a"}));

  // The rotation's event: the Secret's revision changes.
  source.note_changed(dir_ / "tls" / "r.crt");
  EXPECT_EQ(upserted(source.poll(false)), (std::set<std::string>{"Secret/default/r"}));
  // A swap of a Secret mount names only "..data" in the certificate's directory.
  write(dir_ / "tls" / "r.key", "key two");
  source.note_changed(dir_ / "tls" / "..data");
  EXPECT_EQ(upserted(source.poll(false)), (std::set<std::string>{"Secret/default/r"}));
}

WriteOp apply_op(const std::string& name, const std::string& document) {
  WriteOp op;
  op.action = WriteOp::Action::kApply;
  op.kind = "Upstream";
  op.ns = "default";
  op.name = name;
  op.document = document;
  return op;
}

WriteOp delete_op(const std::string& name) {
  WriteOp op;
  op.action = WriteOp::Action::kDelete;
  op.kind = "Upstream";
  op.ns = "default";
  op.name = name;
  return op;
}

std::string slurp(const fs::path& p) {
  std::ifstream in(p);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

TEST_F(FileSourceTest, ApplyWritesOneFilePerResourceAndPollServesIt) {
  FileSource source(dir_ / "conf");
  EXPECT_TRUE(source.poll(false).upserts.empty());
  const fs::path file = dir_ / "conf" / "applied" / "default" / "Upstream.a.yaml";

  WriteResult created = source.write(apply_op("a", upstream("a", 1)));
  EXPECT_EQ(created.outcome, WriteResult::Outcome::kCreated) << created.message;
  EXPECT_EQ(created.message, file.string());
  EXPECT_EQ(slurp(file), upstream("a", 1));
  // Nothing left beside it (the temporary file was renamed).
  EXPECT_EQ(std::distance(fs::directory_iterator(file.parent_path()), fs::directory_iterator()), 1);
  EXPECT_EQ(upserted(source.poll(true)), (std::set<std::string>{"Upstream/default/a"}));

  EXPECT_EQ(source.write(apply_op("a", upstream("a", 1))).outcome,
            WriteResult::Outcome::kUnchanged);
  EXPECT_EQ(source.write(apply_op("a", upstream("a", 2))).outcome,
            WriteResult::Outcome::kConfigured);
  EXPECT_EQ(slurp(file), upstream("a", 2));
  EXPECT_EQ(upserted(source.poll(true)), (std::set<std::string>{"Upstream/default/a"}));

  WriteResult deleted = source.write(delete_op("a"));
  EXPECT_EQ(deleted.outcome, WriteResult::Outcome::kDeleted) << deleted.message;
  EXPECT_FALSE(fs::exists(file));
  EXPECT_EQ(removed(source.poll(true)), (std::set<std::string>{"Upstream/default/a"}));
  EXPECT_EQ(source.write(delete_op("a")).outcome, WriteResult::Outcome::kNotFound);
}

TEST_F(FileSourceTest, ApplyNeverEditsAnOperatorsFile) {
  const std::string both = upstream("a", 1) + "---\n" + upstream("b", 2);
  write(dir_ / "conf" / "both.yaml", both);
  write(dir_ / "conf" / "alone.yaml", upstream("c", 3));
  FileSource source(dir_ / "conf");
  EXPECT_EQ(source.poll(false).upserts.size(), 3u);

  WriteResult conflict = source.write(apply_op("a", upstream("a", 9)));
  EXPECT_EQ(conflict.outcome, WriteResult::Outcome::kConflict);
  EXPECT_NE(conflict.message.find("both.yaml"), std::string::npos) << conflict.message;
  EXPECT_EQ(slurp(dir_ / "conf" / "both.yaml"), both);
  EXPECT_FALSE(fs::exists(dir_ / "conf" / "applied"));

  // A file with other resources is not deleted; a file with that resource alone is.
  EXPECT_EQ(source.write(delete_op("b")).outcome, WriteResult::Outcome::kConflict);
  EXPECT_EQ(slurp(dir_ / "conf" / "both.yaml"), both);
  EXPECT_EQ(source.write(delete_op("c")).outcome, WriteResult::Outcome::kDeleted);
  EXPECT_FALSE(fs::exists(dir_ / "conf" / "alone.yaml"));
  EXPECT_EQ(removed(source.poll(false)), (std::set<std::string>{"Upstream/default/c"}));
}

TEST_F(FileSourceTest, WritesRefusedForOneFileAndBadNames) {
  write(dir_ / "conf" / "one.yaml", upstream("a", 1));
  FileSource one(dir_ / "conf" / "one.yaml");
  (void)one.poll(false);
  EXPECT_EQ(one.write(apply_op("b", upstream("b", 1))).outcome, WriteResult::Outcome::kUnsupported);

  FileSource source(dir_ / "conf");
  (void)source.poll(false);
  EXPECT_EQ(source.write(apply_op("../x", upstream("x", 1))).outcome,
            WriteResult::Outcome::kFailed);
  WriteOp bad_kind = delete_op("a");
  bad_kind.kind = "Nope";
  EXPECT_EQ(source.write(bad_kind).outcome, WriteResult::Outcome::kFailed);
  EXPECT_FALSE(fs::exists(dir_ / "conf" / "applied"));
}

TEST(ConfigSourceWrite, DefaultIsUnsupported) {
  struct ReadOnly : ConfigSource {
    std::string_view name() const override { return "test"; }
    Delta poll(bool) override { return {}; }
  } source;
  WriteResult r = source.write(WriteOp{});
  EXPECT_EQ(r.outcome, WriteResult::Outcome::kUnsupported);
  EXPECT_FALSE(r.ok());
  EXPECT_NE(r.message.find("does not take writes"), std::string::npos);
}

}  // namespace
}  // namespace portico::control
