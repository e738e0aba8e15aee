// Settings spec.vaultSecretSource: Gloo's field names decoded, Portico's additions, and every field
// that is not implemented rejected by name.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "api/decode.h"
#include "api/decode_helpers.h"

namespace portico::api {
namespace {

using test::lines;
using ::testing::AllOf;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;

std::string settings(const std::string& vault) {
  return "apiVersion: gateway.portico.dev/v1\nkind: Settings\nmetadata:\n  name: default\nspec:\n"
         "  vaultSecretSource:\n" +
         vault;
}

TEST(DecodeVault, GlooFieldsAndDefaults) {
  auto r = test::decode_one("settings.yaml", settings(R"(    address: http://127.0.0.1:8200
    accessToken: s.abc
)"));
  EXPECT_THAT(lines(r.diagnostics), IsEmpty());
  ASSERT_TRUE(r.settings().vault_secret_source);
  const auto& v = *r.settings().vault_secret_source;
  EXPECT_EQ(v.address, "http://127.0.0.1:8200");
  EXPECT_EQ(v.token, "s.abc");
  EXPECT_EQ(v.path_prefix, "secret");
  EXPECT_EQ(v.root_key, "gloo");
  EXPECT_EQ(v.poll_interval, Millis(5000));
  // The token never shows in the spec as served by /resources.
  EXPECT_THAT(r.spec_json, Not(HasSubstr("s.abc")));
  EXPECT_THAT(r.spec_json, HasSubstr("<redacted>"));

  auto all = test::decode_one("settings.yaml", settings(R"(    address: http://vault:8200
    token: old-style
    pathPrefix: kv/team
    rootKey: ""
    pollInterval: 1s
    requestTimeout: 2s
)"));
  EXPECT_THAT(lines(all.diagnostics), IsEmpty());
  const auto& w = *all.settings().vault_secret_source;
  EXPECT_EQ(w.token, "old-style");
  EXPECT_EQ(w.path_prefix, "kv/team");
  EXPECT_EQ(w.root_key, "");
  EXPECT_EQ(w.poll_interval, Millis(1000));
  EXPECT_EQ(w.request_timeout, Millis(2000));
}

TEST(DecodeVault, TokenFileAndAppRole) {
  auto f = test::decode_one("settings.yaml", settings(R"(    address: http://127.0.0.1:8200
    tokenFile: /run/vault/token
)"));
  EXPECT_EQ(f.settings().vault_secret_source->token_file, "/run/vault/token");
  auto a = test::decode_one("settings.yaml", settings(R"(    address: http://127.0.0.1:8200
    appRole:
      roleId: r-1
      secretIdFile: /run/vault/secret-id
      mountPath: approle-ci
)"));
  EXPECT_THAT(lines(a.diagnostics), IsEmpty());
  const auto& v = *a.settings().vault_secret_source;
  EXPECT_EQ(v.role_id, "r-1");
  EXPECT_EQ(v.secret_id_file, "/run/vault/secret-id");
  EXPECT_EQ(v.approle_mount, "approle-ci");
}

TEST(DecodeVault, TlsFieldsBesideOrUnderTlsConfig) {
  for (const char* form :
       {"    caCert: /etc/vault/ca.pem\n    clientCert: /c.pem\n    clientKey: "
        "/k.pem\n    tlsServerName: vault.internal\n",
        "    tlsConfig:\n      caCert: /etc/vault/ca.pem\n      clientCert: "
        "/c.pem\n      clientKey: /k.pem\n      tlsServerName: vault.internal\n"}) {
    auto f =
        decode_file("settings.yaml", settings(std::string("    address: https://10.1.2.3:8200\n    "
                                                          "accessToken: t\n") +
                                              form));
    ASSERT_EQ(f.resources.size(), 1u);
    EXPECT_THAT(lines(f.resources[0].diagnostics), ::testing::IsEmpty()) << form;
    const auto& v = *f.resources[0].settings().vault_secret_source;
    EXPECT_EQ(v.tls.ca_file, "/etc/vault/ca.pem");
    EXPECT_EQ(v.tls.cert_file, "/c.pem");
    EXPECT_EQ(v.tls.key_file, "/k.pem");
    EXPECT_EQ(v.tls.server_name, "vault.internal");
  }
  auto plain = decode_file("settings.yaml", settings("    address: http://vault:8200\n    "
                                                     "accessToken: t\n    insecure: true\n"));
  ASSERT_EQ(plain.resources.size(), 1u);
  auto l = lines(plain.resources[0].diagnostics);
  ASSERT_EQ(l.size(), 1u);
  EXPECT_NE(l[0].find("spec.vaultSecretSource.address"), std::string::npos) << l[0];
  EXPECT_NE(l[0].find("not https://"), std::string::npos) << l[0];
}

TEST(DecodeVault, RejectsWhatIsNotImplemented) {
  auto bad = decode_file("settings.yaml", settings(R"(    address: https://vault:8200
    accessToken: t
    caCert: /etc/ca.pem
    tlsConfig: {insecure: true}
    aws: {vaultRole: x}
    pathPrefix: /secret
    pollInterval: 10ms
    extra: 1
)"));
  ASSERT_EQ(bad.resources.size(), 1u);
  auto l = lines(bad.resources[0].diagnostics);
  auto has = [&](const std::string& path, const std::string& what) {
    return std::any_of(l.begin(), l.end(), [&](const std::string& s) {
      return s.find(path) != std::string::npos && s.find(what) != std::string::npos;
    });
  };
  EXPECT_TRUE(has("spec.vaultSecretSource.tlsConfig", "both here and beside it")) << l[0];
  EXPECT_TRUE(has("spec.vaultSecretSource.aws", "AWS IAM"));
  EXPECT_TRUE(has("spec.vaultSecretSource", "more than one of accessToken"));
  EXPECT_TRUE(has("spec.vaultSecretSource.pathPrefix", "not a Vault path"));
  EXPECT_TRUE(has("spec.vaultSecretSource.pollInterval", "between 100ms and 1h"));
  EXPECT_TRUE(has("spec.vaultSecretSource.extra", ""));
}

TEST(DecodeVault, NeedsAddressAndOneAuthMethod) {
  auto none = decode_file("settings.yaml", settings("    pathPrefix: secret\n"));
  ASSERT_EQ(none.resources.size(), 1u);
  auto l = lines(none.resources[0].diagnostics);
  EXPECT_THAT(l, testing::Contains(
                     AllOf(HasSubstr("spec.vaultSecretSource.address"), HasSubstr("required"))));
  EXPECT_THAT(l, testing::Contains(HasSubstr("needs one of accessToken, tokenFile or appRole")));

  auto both = decode_file("settings.yaml", settings(R"(    address: http://v:8200
    accessToken: a
    token: b
)"));
  EXPECT_THAT(lines(both.resources[0].diagnostics),
              ElementsAre(AllOf(HasSubstr("spec.vaultSecretSource.token"),
                                HasSubstr("deprecated name of accessToken"))));

  auto role = decode_file("settings.yaml", settings(R"(    address: http://v:8200
    appRole: {roleId: r}
)"));
  EXPECT_THAT(lines(role.resources[0].diagnostics),
              ElementsAre(HasSubstr("spec.vaultSecretSource.appRole.secretIdFile")));
}

}  // namespace
}  // namespace portico::api
