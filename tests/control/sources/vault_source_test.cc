// The Vault secret source's pure parts: Vault's answers parsed (tokens, KV v2 metadata and data,
// errors), the version comparison that decides what is read again, Gloo's path layout, and the
// Secret documents made from KV data.
#include "control/sources/vault_source.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "api/decode.h"

namespace portico::control::vault {
namespace {

using ::testing::HasSubstr;

TEST(VaultParse, LookupSelf) {
  auto t = parse_lookup_self(
      R"({"data":{"accessor":"a","creation_ttl":3600,"expire_time":"2026-01-01T00:00:00Z",)"
      R"("explicit_max_ttl":0,"id":"hvs.x","renewable":true,"ttl":1200,"policies":["default"]}})");
  ASSERT_TRUE(t.ok()) << t.error().message;
  EXPECT_EQ(t->ttl_s, 1200);
  EXPECT_EQ(t->creation_ttl_s, 3600);
  EXPECT_TRUE(t->renewable);
  // A root token: no TTL, not renewable, expire_time null.
  auto root = parse_lookup_self(
      R"({"data":{"creation_ttl":0,"expire_time":null,"renewable":false,"ttl":0}})");
  ASSERT_TRUE(root.ok());
  EXPECT_EQ(root->ttl_s, 0);
  EXPECT_FALSE(root->renewable);
  EXPECT_FALSE(parse_lookup_self("<html>").ok());
  EXPECT_FALSE(parse_lookup_self(R"({"data":null})").ok());
  EXPECT_FALSE(parse_lookup_self(R"({"data":{"ttl":"soon"}})").ok());
}

TEST(VaultParse, AuthOfLoginAndRenewal) {
  auto login =
      parse_auth(R"({"auth":{"client_token":"hvs.new","lease_duration":1200,"renewable":true,)"
                 R"("policies":["read"]},"warnings":null})");
  ASSERT_TRUE(login.ok());
  EXPECT_EQ(login->client_token, "hvs.new");
  EXPECT_EQ(login->ttl_s, 1200);
  EXPECT_TRUE(login->renewable);
  EXPECT_FALSE(login->capped);
  auto capped = parse_auth(
      R"({"auth":{"client_token":"hvs.new","lease_duration":50,"renewable":true},)"
      R"("warnings":["TTL of \"100s\" exceeded the effective max_ttl of \"50s\"; TTL value is )"
      R"(capped accordingly"]})");
  ASSERT_TRUE(capped.ok());
  EXPECT_TRUE(capped->capped);
  EXPECT_FALSE(parse_auth(R"({"data":{}})").ok());
}

TEST(VaultParse, Errors) {
  EXPECT_EQ(error_text(R"({"errors":["permission denied"]})"), "permission denied");
  EXPECT_EQ(error_text(R"({"errors":["Vault is sealed","again"]})"), "Vault is sealed; again");
  EXPECT_EQ(error_text(R"({"errors":[]})"), "");
  EXPECT_EQ(error_text("garbage"), "");
}

TEST(VaultParse, Metadata) {
  auto m = parse_metadata(R"({"data":{"current_version":3,"oldest_version":1,"versions":{)"
                          R"("1":{"deletion_time":"","destroyed":false},)"
                          R"("3":{"deletion_time":"","destroyed":false}}}})");
  ASSERT_TRUE(m.ok());
  EXPECT_EQ(m->current_version, 3);
  EXPECT_FALSE(m->current_deleted);
  auto deleted = parse_metadata(
      R"({"data":{"current_version":2,"versions":{"2":{"deletion_time":"2026-12-03T10:00:00Z",)"
      R"("destroyed":false}}}})");
  ASSERT_TRUE(deleted.ok());
  EXPECT_TRUE(deleted->current_deleted);
  auto destroyed = parse_metadata(
      R"({"data":{"current_version":2,"versions":{"2":{"deletion_time":"","destroyed":true}}}})");
  EXPECT_TRUE(destroyed->current_deleted);
  EXPECT_FALSE(parse_metadata(R"({"data":{}})").ok());
  EXPECT_FALSE(parse_metadata("[1]").ok());
}

TEST(VaultParse, Data) {
  auto d = parse_data(R"({"data":{"data":{"tls.crt":"C","tls.key":"K"},)"
                      R"("metadata":{"version":4,"deletion_time":""}}})");
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d->version, 4);
  EXPECT_EQ(d->data_json, R"({"tls.crt":"C","tls.key":"K"})");
  // A deleted version (as the 404 body carries it) has no data.
  auto deleted = parse_data(R"({"data":{"data":null,"metadata":{"version":2}}})");
  ASSERT_FALSE(deleted.ok());
  EXPECT_THAT(deleted.error().message, HasSubstr("version 2 holds no data"));
  EXPECT_FALSE(parse_data("{").ok());
}

TEST(VaultVersions, OnlyAChangedVersionIsReadAgain) {
  KvMetadata v3{3, false};
  EXPECT_EQ(decide(std::nullopt, v3), Action::kRead);          // never read
  EXPECT_EQ(decide(3, v3), Action::kKeep);                     // unchanged
  EXPECT_EQ(decide(2, v3), Action::kRead);                     // rotated
  EXPECT_EQ(decide(4, v3), Action::kRead);                     // rolled back (metadata recreated)
  EXPECT_EQ(decide(3, KvMetadata{3, true}), Action::kRemove);  // latest soft-deleted
  EXPECT_EQ(decide(3, std::nullopt), Action::kRemove);         // metadata deleted (404)
  EXPECT_EQ(decide(std::nullopt, std::nullopt), Action::kKeep);
  EXPECT_EQ(decide(std::nullopt, KvMetadata{0, true}), Action::kKeep);
}

TEST(VaultLayout, GlooPaths) {
  api::VaultSecretSourceSpec spec;
  EXPECT_EQ(kv_path(spec, "data", "default", "tls"),
            "secret/data/gloo/gloo.solo.io/v1/Secret/default/tls");
  spec.path_prefix = "kv/team";
  spec.root_key = "";
  EXPECT_EQ(kv_path(spec, "metadata", "prod", "edge-cert"),
            "kv/team/metadata/gloo.solo.io/v1/Secret/prod/edge-cert");
}

TEST(VaultLayout, SecretDocuments) {
  // Gloo's shape: the resource's fields, metadata ignored (the path names it).
  auto gloo = api::decode_file(
      "vault:x", secret_document("ns1", "s1",
                                 R"({"metadata":{"name":"other"},"tls":{"certChain":"C",)"
                                 R"("privateKey":"K","rootCa":"R"}})"));
  ASSERT_EQ(gloo.resources.size(), 1u);
  const auto& r = gloo.resources[0];
  EXPECT_EQ(r.key(), "Secret/ns1/s1");
  ASSERT_TRUE(r.secret().tls);
  EXPECT_EQ(r.secret().tls->cert_chain.inline_value, "C");
  EXPECT_EQ(r.secret().tls->private_key.inline_value, "K");
  EXPECT_EQ(r.secret().tls->root_ca.inline_value, "R");
  EXPECT_FALSE(r.has_errors());

  // Kubernetes' key names.
  auto kube = api::decode_file(
      "vault:x", secret_document("ns1", "s2", R"({"tls.crt":"C","tls.key":"K","ca.crt":"R"})"));
  ASSERT_EQ(kube.resources.size(), 1u);
  EXPECT_EQ(kube.resources[0].secret().tls->cert_chain.inline_value, "C");
  EXPECT_EQ(kube.resources[0].secret().tls->root_ca.inline_value, "R");
  EXPECT_FALSE(kube.resources[0].has_errors());

  // Anything else is rejected by the decoder, naming the key.
  auto odd = api::decode_file("vault:x", secret_document("ns1", "s3",
                                                         R"({"tls.crt":"C","tls.key":"K",)"
                                                         R"("password":"p"})"));
  ASSERT_EQ(odd.resources.size(), 1u);
  EXPECT_TRUE(odd.resources[0].has_errors());
  bool named = false;
  for (const auto& d : odd.resources[0].diagnostics)
    named = named || d.path.find("password") != std::string::npos;
  EXPECT_TRUE(named);
  auto empty = api::decode_file("vault:x", secret_document("ns1", "s4", "{}"));
  ASSERT_EQ(empty.resources.size(), 1u);
  EXPECT_TRUE(empty.resources[0].has_errors());
}

}  // namespace
}  // namespace portico::control::vault
