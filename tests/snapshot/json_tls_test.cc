// config_dump of TLS settings: certificates summarised, private keys never shown.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "proxy/tls/test_pki.h"
#include "snapshot/proxy_config.h"

namespace portico::snapshot {
namespace {

using tls_test::issue;
using tls_test::KeyKind;

TEST(SnapshotJsonTls, CertificatesSummarisedKeysRedacted) {
  auto ca = issue("Dump CA", KeyKind::kEcdsa, nullptr, {}, true);
  auto leaf = issue("shop.example.com", KeyKind::kEcdsa, &ca,
                    "DNS:shop.example.com,URI:spiffe://example/shop");
  ProxyConfig c;
  Listener l;
  l.name = "default/gw";
  TlsServerConfig tls;
  tls.certificates.push_back(leaf.certificate(ca.cert_pem));
  tls.certificates[0].ocsp_staple = "abc";
  tls.max_version = TlsVersion::kTls12;
  tls.client_ca_pem = ca.cert_pem;
  tls.client_ca_secret = "default/ca";
  tls.allowed_client_sans = {"spiffe://example/client"};
  l.tls = tls;
  VirtualHost vh;
  vh.name = "default/shop";
  vh.domains = {"shop.example.com"};
  vh.tls = tls;
  l.virtual_hosts.push_back(std::make_shared<VirtualHost>(vh));
  c.listeners.push_back(l);
  Cluster cl;
  cl.name = "default/up";
  TlsClientConfig up;
  up.sni = "up.internal";
  up.client_certificate = leaf.certificate();
  up.verify_names = {"up.internal"};
  cl.tls = up;
  c.clusters.push_back(cl);

  std::string text = to_json(c, false);
  EXPECT_EQ(text.find("PRIVATE KEY"), std::string::npos);
  EXPECT_EQ(text.find(leaf.key_pem.substr(40, 40)), std::string::npos);
  EXPECT_EQ(text.find("BEGIN CERTIFICATE"), std::string::npos);  // summarised, not dumped

  auto j = nlohmann::json::parse(text);
  const auto& t = j["listeners"][0]["tls"];
  ASSERT_EQ(t["certificates"].size(), 1u);
  const auto& cert = t["certificates"][0];
  EXPECT_EQ(cert["secret"], "default/test");
  EXPECT_EQ(cert["private_key"], "[redacted]");
  EXPECT_EQ(cert["ocsp_staple_bytes"], 3);
  ASSERT_EQ(cert["chain"].size(), 2u);
  EXPECT_EQ(cert["chain"][0]["subject"], "CN=shop.example.com,O=Portico Test");
  EXPECT_EQ(cert["chain"][0]["issuer"], "CN=Dump CA,O=Portico Test");
  EXPECT_EQ(cert["chain"][0]["sans"],
            nlohmann::json({"DNS:shop.example.com", "URI:spiffe://example/shop"}));
  EXPECT_EQ(cert["chain"][0]["not_after"].get<std::string>().size(), 20u);  // 2026-01-02T03:04:05Z
  EXPECT_EQ(t["max_version"], "TLSv1.2");
  EXPECT_EQ(t["client_ca"]["secret"], "default/ca");
  EXPECT_EQ(t["client_ca"]["certificates"][0]["subject"], "CN=Dump CA,O=Portico Test");
  EXPECT_EQ(t["allowed_client_sans"][0], "spiffe://example/client");
  EXPECT_EQ(j["listeners"][0]["virtual_hosts"][0]["tls"], t);
  const auto& u = j["clusters"][0]["tls"];
  EXPECT_EQ(u["sni"], "up.internal");
  EXPECT_EQ(u["ca"], "system");
  EXPECT_EQ(u["client_certificate"]["private_key"], "[redacted]");
  EXPECT_EQ(u["insecure_skip_verify"], false);
}

TEST(SnapshotJsonTls, UnparsableCertificateIsReportedNotDumped) {
  ProxyConfig c;
  Listener l;
  TlsServerConfig tls;
  TlsCertificate cert;
  cert.cert_chain_pem = "garbage";
  cert.private_key_pem = "secret-key-material";
  tls.certificates.push_back(cert);
  l.tls = tls;
  c.listeners.push_back(l);
  std::string text = to_json(c, false);
  EXPECT_EQ(text.find("secret-key-material"), std::string::npos);
  EXPECT_EQ(text.find("garbage"), std::string::npos);
  auto j = nlohmann::json::parse(text);
  EXPECT_EQ(j["listeners"][0]["tls"]["certificates"][0]["chain"][0]["error"],
            "no readable PEM certificate");
}

}  // namespace
}  // namespace portico::snapshot
