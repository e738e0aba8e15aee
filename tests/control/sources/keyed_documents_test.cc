#include "control/sources/keyed_documents.h"

#include <gtest/gtest.h>

#include <map>
#include <string>

namespace portico::control {
namespace {

const char* kShopKey = "portico/gateway.portico.dev/v1/VirtualService/default/shop";

std::string service(const std::string& name, const std::string& body = "x",
                    const std::string& ns = "") {
  return "kind: VirtualService\nmetadata: {name: " + name +
         (ns.empty() ? std::string() : ", namespace: " + ns) +
         "}\nspec:\n  virtualHost:\n    routes:\n"
         "      - matchers: [{prefix: /}]\n        directResponseAction: {status: 200, body: " +
         body + "}\n";
}

// The messages of a key's origin errors, joined.
std::string messages(const Delta& d, const std::string& key) {
  auto it = d.origin_errors.find(key);
  if (it == d.origin_errors.end()) return "<none>";
  std::string out;
  for (const auto& e : it->second)
    out += e.to_string() + "\n";
  return out;
}

TEST(KeyedDocumentsTest, ParsesTheLayout) {
  KeyedDocuments docs("etcd", "portico/");
  EXPECT_EQ(docs.root(), "portico");
  std::string why;
  auto parts = docs.parse_key(kShopKey, &why);
  ASSERT_TRUE(parts);
  EXPECT_EQ(parts->group, "gateway.portico.dev");
  EXPECT_EQ(parts->version, "v1");
  EXPECT_EQ(parts->kind, "VirtualService");
  EXPECT_EQ(parts->ns, "default");
  EXPECT_EQ(parts->name, "shop");
  EXPECT_EQ(docs.key_for("gateway.portico.dev/v1", "VirtualService", "default", "shop"), kShopKey);

  EXPECT_FALSE(docs.parse_key("other/gateway.portico.dev/v1/VirtualService/default/shop", &why));
  EXPECT_NE(why.find("not below \"portico/\""), std::string::npos) << why;
  EXPECT_FALSE(docs.parse_key("porticox/g/v1/VirtualService/default/shop", &why));
  EXPECT_FALSE(docs.parse_key("portico/g/v1/VirtualService/shop", &why));
  EXPECT_NE(why.find("portico/<group>/<version>/<Kind>/<namespace>/<name>"), std::string::npos)
      << why;
  EXPECT_FALSE(docs.parse_key("portico/g/v1/VirtualService//shop", &why));
  EXPECT_FALSE(docs.parse_key("portico/g/v1/VirtualService/default/shop/extra", &why));

  KeyedDocuments multi("consul", "a/b");
  EXPECT_TRUE(multi.parse_key("a/b/gateway.solo.io/v1/Upstream/prod/echo", &why));
  KeyedDocuments bare("consul", "");
  EXPECT_TRUE(bare.parse_key("gateway.solo.io/v1/Upstream/prod/echo", &why));
}

TEST(KeyedDocumentsTest, NewChangedAndVanishedKeys) {
  KeyedDocuments docs("etcd", "portico");
  EXPECT_TRUE(docs.take_delta().empty());
  docs.put(kShopKey, service("shop"), "5");
  EXPECT_TRUE(docs.pending());
  Delta first = docs.take_delta();
  EXPECT_EQ(first.source, "etcd");
  ASSERT_EQ(first.upserts.size(), 1u);
  EXPECT_EQ(first.upserts[0].origin.source, "etcd");
  EXPECT_EQ(first.upserts[0].origin.key, kShopKey);
  EXPECT_EQ(first.upserts[0].resource->key(), "VirtualService/default/shop");
  EXPECT_EQ(first.upserts[0].resource->file, kShopKey);
  EXPECT_TRUE(first.removals.empty());
  EXPECT_EQ(messages(first, kShopKey), "");  // cleared
  EXPECT_EQ(docs.revision(kShopKey), "5");
  EXPECT_EQ(docs.delivered(), 1u);
  const std::string rev1 = first.upserts[0].origin.revision;

  // Written again with the same text (a new store revision): nothing to deliver.
  docs.put(kShopKey, service("shop"), "6");
  EXPECT_TRUE(docs.take_delta().empty());
  EXPECT_EQ(docs.revision(kShopKey), "6");

  docs.put(kShopKey, service("shop", "y"), "7");
  Delta changed = docs.take_delta();
  ASSERT_EQ(changed.upserts.size(), 1u);
  EXPECT_NE(changed.upserts[0].origin.revision, rev1);

  docs.erase(kShopKey);
  Delta gone = docs.take_delta();
  EXPECT_TRUE(gone.upserts.empty());
  ASSERT_EQ(gone.removals.size(), 1u);
  EXPECT_EQ(gone.removals[0].source, "etcd");
  EXPECT_EQ(gone.removals[0].key, kShopKey);
  EXPECT_EQ(gone.removals[0].resource_key, "VirtualService/default/shop");
  EXPECT_EQ(docs.delivered(), 0u);
  EXPECT_EQ(docs.revision(kShopKey), "");

  // A delete of a key never seen changes nothing.
  docs.erase("portico/g/v1/VirtualService/default/never");
  EXPECT_TRUE(docs.take_delta().empty());
}

TEST(KeyedDocumentsTest, SeveralEventsOfAKeyCountAsTheLast) {
  KeyedDocuments docs("etcd", "portico");
  docs.put(kShopKey, service("shop"), "2");
  docs.erase(kShopKey);
  EXPECT_TRUE(docs.take_delta().empty());  // created and deleted before anyone looked

  docs.put(kShopKey, service("shop"), "4");
  ASSERT_EQ(docs.take_delta().upserts.size(), 1u);
  docs.erase(kShopKey);
  docs.put(kShopKey, service("shop", "z"), "6");
  Delta d = docs.take_delta();
  EXPECT_TRUE(d.removals.empty());  // it never left: no removal
  ASSERT_EQ(d.upserts.size(), 1u);
}

TEST(KeyedDocumentsTest, ABadValueKeepsTheLastGoodOne) {
  KeyedDocuments docs("etcd", "portico");
  docs.put(kShopKey, service("shop"), "2");
  ASSERT_EQ(docs.take_delta().upserts.size(), 1u);

  docs.put(kShopKey, "kind: VirtualService\nmetadata: {name: shop\n", "3");
  Delta bad = docs.take_delta();
  EXPECT_TRUE(bad.upserts.empty());
  EXPECT_TRUE(bad.removals.empty());
  const std::string text = messages(bad, kShopKey);
  EXPECT_NE(text.find(std::string(kShopKey) + ":"), std::string::npos) << text;
  EXPECT_NE(text.find("error"), std::string::npos) << text;
  EXPECT_NE(text.find("keeping this key's last good version of VirtualService default/shop"),
            std::string::npos)
      << text;
  EXPECT_EQ(docs.delivered(), 1u);

  // Fixed: delivered, and the errors cleared.
  docs.put(kShopKey, service("shop", "fixed"), "4");
  Delta fixed = docs.take_delta();
  ASSERT_EQ(fixed.upserts.size(), 1u);
  EXPECT_EQ(messages(fixed, kShopKey), "");

  // Not a resource at all; then deleted: the resource goes and so do the errors.
  docs.put(kShopKey, "just a string", "5");
  Delta scalar = docs.take_delta();
  EXPECT_TRUE(scalar.upserts.empty());
  EXPECT_NE(messages(scalar, kShopKey).find("keeping"), std::string::npos);
  docs.erase(kShopKey);
  Delta gone = docs.take_delta();
  ASSERT_EQ(gone.removals.size(), 1u);
  EXPECT_EQ(messages(gone, kShopKey), "");
}

TEST(KeyedDocumentsTest, ABadFirstValueIsAnErrorWithNothingKept) {
  KeyedDocuments docs("etcd", "portico");
  docs.put(kShopKey, "{{{", "2");
  Delta d = docs.take_delta();
  EXPECT_TRUE(d.upserts.empty());
  const std::string text = messages(d, kShopKey);
  EXPECT_NE(text.find("error"), std::string::npos);
  EXPECT_EQ(text.find("keeping"), std::string::npos) << text;
  EXPECT_EQ(docs.delivered(), 0u);
}

TEST(KeyedDocumentsTest, TheDocumentMustMatchItsKey) {
  KeyedDocuments docs("etcd", "portico");
  docs.put(kShopKey, service("other"), "2");
  Delta name = docs.take_delta();
  EXPECT_TRUE(name.upserts.empty());
  ASSERT_EQ(name.origin_errors.at(kShopKey).size(), 1u);
  const api::Diagnostic& e = name.origin_errors.at(kShopKey)[0];
  EXPECT_TRUE(e.is_error());
  EXPECT_EQ(e.path, "metadata.name");
  EXPECT_EQ(e.message,
            "the document is VirtualService default/other but its key names VirtualService "
            "default/shop");

  docs.put(kShopKey, service("shop", "x", "prod"), "3");
  Delta ns = docs.take_delta();
  EXPECT_TRUE(ns.upserts.empty());
  EXPECT_EQ(ns.origin_errors.at(kShopKey)[0].path, "metadata.namespace");

  docs.put(kShopKey, "kind: Upstream\nmetadata: {name: shop}\nspec: {static: {hosts: []}}\n", "4");
  Delta kind = docs.take_delta();
  EXPECT_TRUE(kind.upserts.empty());
  EXPECT_NE(messages(kind, kShopKey).find("the document is Upstream default/shop"),
            std::string::npos)
      << messages(kind, kShopKey);

  // Right at last; then a mismatch keeps it.
  docs.put(kShopKey, service("shop"), "5");
  ASSERT_EQ(docs.take_delta().upserts.size(), 1u);
  docs.put(kShopKey, service("other"), "6");
  Delta again = docs.take_delta();
  EXPECT_TRUE(again.upserts.empty());
  EXPECT_TRUE(again.removals.empty());
  EXPECT_NE(messages(again, kShopKey).find("keeping"), std::string::npos);
}

TEST(KeyedDocumentsTest, OneDocumentPerKey) {
  KeyedDocuments docs("etcd", "portico");
  docs.put(kShopKey, service("shop") + "---\n" + service("shop2"), "2");
  Delta two = docs.take_delta();
  EXPECT_TRUE(two.upserts.empty());
  EXPECT_NE(messages(two, kShopKey).find("holds 2 resources; a key holds exactly one document"),
            std::string::npos)
      << messages(two, kShopKey);
  docs.put(kShopKey, "", "3");
  EXPECT_NE(messages(docs.take_delta(), kShopKey).find("holds no resource"), std::string::npos);
}

TEST(KeyedDocumentsTest, AKeyOutsideTheLayoutIsAnError) {
  KeyedDocuments docs("etcd", "portico");
  const std::string key = "portico/VirtualService/shop";
  docs.put(key, service("shop"), "2");
  Delta d = docs.take_delta();
  EXPECT_TRUE(d.upserts.empty());
  EXPECT_NE(messages(d, key).find("not in the layout"), std::string::npos) << messages(d, key);
  docs.erase(key);
  Delta gone = docs.take_delta();
  EXPECT_TRUE(gone.removals.empty());
  EXPECT_EQ(messages(gone, key), "");  // its error cleared
}

TEST(KeyedDocumentsTest, ReplaceAllIsADiffAgainstWhatWasDelivered) {
  KeyedDocuments docs("etcd", "portico");
  const std::string a = "portico/g/v1/VirtualService/default/a";
  const std::string b = "portico/g/v1/VirtualService/default/b";
  const std::string c = "portico/g/v1/VirtualService/default/c";
  docs.put(a, service("a"), "2");
  docs.put(b, service("b"), "3");
  Delta first = docs.take_delta();
  ASSERT_EQ(first.upserts.size(), 2u);
  EXPECT_EQ(first.upserts[0].origin.key, a);  // key order
  EXPECT_EQ(first.upserts[1].origin.key, b);

  // After a broken watch: b changed, a is gone, c is new; a folder key is ignored.
  std::map<std::string, KeyedDocuments::Value> view;
  view[b] = {service("b", "new"), "7"};
  view[c] = {service("c"), "8"};
  view["portico/g/"] = {"", "9"};
  docs.replace_all(view);
  Delta d = docs.take_delta();
  ASSERT_EQ(d.removals.size(), 1u);
  EXPECT_EQ(d.removals[0].key, a);
  ASSERT_EQ(d.upserts.size(), 2u);
  EXPECT_EQ(d.upserts[0].origin.key, b);
  EXPECT_EQ(d.upserts[1].origin.key, c);
  EXPECT_EQ(docs.view().size(), 2u);

  // The same view again (a reconnect with nothing missed): nothing is applied twice.
  docs.replace_all(view);
  EXPECT_TRUE(docs.take_delta().empty());
  EXPECT_EQ(docs.revision(c), "8");
}

TEST(KeyedDocumentsTest, WhereAWriteGoes) {
  KeyedDocuments docs("etcd", "portico");
  EXPECT_EQ(docs.new_key("gateway.solo.io/v1", "VirtualService", "default", "shop"),
            "portico/gateway.solo.io/v1/VirtualService/default/shop");
  // No group: Portico's own.
  EXPECT_EQ(docs.new_key("v1", "Secret", "ns", "s"), "portico/gateway.portico.dev/v1/Secret/ns/s");
  EXPECT_EQ(docs.new_key("", "Upstream", "ns", "u"),
            "portico/gateway.portico.dev/v1/Upstream/ns/u");
  EXPECT_FALSE(docs.find_key("VirtualService", "default", "shop"));
  // Held under another group: that key is the one written over.
  docs.put("portico/gateway.solo.io/v1/VirtualService/default/shop", service("shop"), "1");
  docs.put("portico/gateway.portico.dev/v1/VirtualService/other/shop", service("shop"), "2");
  EXPECT_EQ(docs.find_key("VirtualService", "default", "shop").value_or(""),
            "portico/gateway.solo.io/v1/VirtualService/default/shop");
  EXPECT_EQ(docs.find_key("VirtualService", "other", "shop").value_or(""),
            "portico/gateway.portico.dev/v1/VirtualService/other/shop");
  EXPECT_FALSE(docs.find_key("Upstream", "default", "shop"));
}

}  // namespace
}  // namespace portico::control
