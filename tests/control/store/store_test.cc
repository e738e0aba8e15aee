#include "control/store/store.h"

#include <gtest/gtest.h>

#include "api/decode.h"

namespace portico::control {
namespace {

std::shared_ptr<const api::Resource> resource(const std::string& file, const std::string& yaml) {
  api::DecodedFile f = api::decode_file(file, yaml);
  EXPECT_EQ(f.resources.size(), 1u);
  return std::make_shared<const api::Resource>(f.resources.at(0));
}

Upsert upsert(const std::string& file, const std::string& yaml, int index = 0) {
  auto r = resource(file, yaml);
  return Upsert{Origin{"file", file, index, revision_of(*r)}, r};
}

const char* kV1 =
    "kind: Upstream\nmetadata: {name: u}\nspec: {static: {hosts: [{addr: 1.1.1.1, port: 1}]}}\n";
const char* kV2 =
    "kind: Upstream\nmetadata: {name: u}\nspec: {static: {hosts: [{addr: 2.2.2.2, port: 1}]}}\n";

TEST(ControlStore, RevisionAndGenerationComeFromTheContent) {
  auto a = resource("a.yaml", kV1);
  auto b = resource("b.yaml", std::string("# moved\n") + kV1);
  auto c = resource("a.yaml", kV2);
  EXPECT_EQ(revision_of(*a), revision_of(*b));
  EXPECT_EQ(generation_of(*a), generation_of(*b));
  EXPECT_NE(revision_of(*a), revision_of(*c));
  EXPECT_NE(generation_of(*a), generation_of(*c));
  EXPECT_GT(generation_of(*a), 0);
  EXPECT_LE(generation_of(*a), 0xffffffffll);
}

TEST(ControlStore, MetadataGenerationWinsWhenGiven) {
  auto a = resource("a.yaml",
                    "kind: Upstream\nmetadata: {name: u, generation: 7}\nspec: {static: {hosts: "
                    "[{addr: 1.1.1.1, port: 1}]}}\n");
  EXPECT_EQ(generation_of(*a), 7);
  EXPECT_TRUE(a->diagnostics.empty());  // a known field, no warning
  // Only the generation changed: the status must show it (a change), the configuration does not.
  Store s;
  Delta d;
  d.source = "file";
  d.upserts.push_back(upsert("a.yaml", kV1));
  s.apply(d, 1);
  Delta g;
  g.source = "file";
  g.upserts.push_back(upsert("a.yaml",
                             "kind: Upstream\nmetadata: {name: u, generation: 8}\nspec: {static: "
                             "{hosts: [{addr: 1.1.1.1, port: 1}]}}\n"));
  Store::Change c = s.apply(g, 2);
  EXPECT_FALSE(c.semantic);
  EXPECT_TRUE(c.cosmetic);
  EXPECT_EQ(generation_of(s.find("Upstream/default/u")->current()), 8);
}

TEST(ControlStore, DeltasUpsertAndRemove) {
  Store s;
  Delta d;
  d.source = "file";
  d.upserts.push_back(upsert("a.yaml", kV1));
  Store::Change c = s.apply(d, 100);
  EXPECT_TRUE(c.semantic);
  ASSERT_EQ(c.changed_keys.size(), 1u);
  EXPECT_EQ(c.changed_keys[0], "Upstream/default/u");
  const Store::Entry* e = s.find("Upstream/default/u");
  ASSERT_NE(e, nullptr);
  EXPECT_EQ(e->seen_unix_ms, 100);
  EXPECT_EQ(e->last_good, nullptr);
  s.accept("Upstream/default/u");
  EXPECT_EQ(s.find("Upstream/default/u")->last_good_revision, e->origin().revision);

  // The same content again: no change at all.
  EXPECT_FALSE(s.apply(d, 200).any());
  EXPECT_EQ(s.find("Upstream/default/u")->seen_unix_ms, 100);

  // Moved down by a comment: cosmetic (statuses show the new line), not semantic.
  Delta moved;
  moved.source = "file";
  moved.upserts.push_back(upsert("a.yaml", std::string("# x\n") + kV1));
  c = s.apply(moved, 300);
  EXPECT_FALSE(c.semantic);
  EXPECT_TRUE(c.cosmetic);
  EXPECT_EQ(s.find("Upstream/default/u")->current().loc.line, 2);

  // New content: semantic; the last good version stays next to it.
  Delta v2;
  v2.source = "file";
  v2.upserts.push_back(upsert("a.yaml", kV2));
  c = s.apply(v2, 400);
  EXPECT_TRUE(c.semantic);
  e = s.find("Upstream/default/u");
  EXPECT_NE(e->last_good_revision, e->origin().revision);
  EXPECT_EQ(e->last_good->upstream().hosts.at(0).address, "1.1.1.1");
  EXPECT_EQ(e->current().upstream().hosts.at(0).address, "2.2.2.2");

  Delta rm;
  rm.source = "file";
  rm.removals.push_back(Removal{"file", "a.yaml", "Upstream/default/u"});
  EXPECT_TRUE(s.apply(rm, 500).semantic);
  EXPECT_EQ(s.find("Upstream/default/u"), nullptr);
}

TEST(ControlStore, FirstDefinitionOwnsTheResource) {
  Store s;
  Delta d;
  d.source = "file";
  d.upserts.push_back(upsert("z.yaml", kV1));
  s.apply(d, 1);
  Delta later;
  later.source = "file";
  later.upserts.push_back(upsert("a.yaml", kV2));
  Store::Change c = s.apply(later, 2);
  EXPECT_FALSE(c.semantic);  // the newcomer is not in force
  EXPECT_TRUE(c.cosmetic);
  const Store::Entry* e = s.find("Upstream/default/u");
  ASSERT_EQ(e->candidates.size(), 2u);
  EXPECT_EQ(e->origin().key, "z.yaml");
  // A change of the newcomer changes nothing in force either.
  Delta again;
  again.source = "file";
  again.upserts.push_back(upsert("a.yaml", std::string("# c\n") + kV2));
  EXPECT_FALSE(s.apply(again, 3).semantic);
  // The owner goes: the newcomer takes over.
  Delta rm;
  rm.source = "file";
  rm.removals.push_back(Removal{"file", "z.yaml", "Upstream/default/u"});
  c = s.apply(rm, 4);
  EXPECT_TRUE(c.semantic);
  EXPECT_EQ(s.find("Upstream/default/u")->origin().key, "a.yaml");
  EXPECT_EQ(s.find("Upstream/default/u")->seen_unix_ms, 4);
}

TEST(ControlStore, OriginErrorsReplaceAndClear) {
  Store s;
  Delta d;
  d.source = "file";
  api::Diagnostic diag;
  diag.file = "x.yaml";
  diag.message = "invalid YAML";
  d.origin_errors["x.yaml"] = {diag};
  EXPECT_TRUE(s.apply(d, 1).cosmetic);
  EXPECT_FALSE(s.apply(d, 2).any());  // the same errors again: nothing changed
  ASSERT_EQ(s.origin_errors().size(), 1u);
  EXPECT_EQ(s.origin_errors().begin()->first, "file:x.yaml");
  Delta clear;
  clear.source = "file";
  clear.origin_errors["x.yaml"] = {};
  EXPECT_TRUE(s.apply(clear, 3).cosmetic);
  EXPECT_TRUE(s.origin_errors().empty());
  EXPECT_FALSE(s.apply(clear, 4).any());
}

}  // namespace
}  // namespace portico::control
