// ServerContext / ClientContext construction: precise errors, warnings, SNI selection, caching.
#include "proxy/tls/context.h"

#include <gtest/gtest.h>

#include "proxy/tls/test_pki.h"

namespace portico::proxy::tls {
namespace {

using tls_test::Pki;

std::shared_ptr<const snapshot::VirtualHost> vhost(std::string name,
                                                   std::vector<std::string> domains,
                                                   std::optional<snapshot::TlsServerConfig> tls) {
  auto v = std::make_shared<snapshot::VirtualHost>();
  v->name = std::move(name);
  v->domains = std::move(domains);
  v->tls = std::move(tls);
  return v;
}

TEST(TlsContext, SelectsLikeTheRouter) {
  const auto& pki = Pki::get();
  snapshot::Listener l = tls_test::listener_with(tls_test::server_config(pki.server_ec));
  l.virtual_hosts = {
      vhost("a", {"a.example.com"}, tls_test::server_config(pki.vhost_a)),
      vhost("wild", {"*.example.com"}, tls_test::server_config(pki.vhost_wild)),
      vhost("longer", {"*.deep.example.com"}, tls_test::server_config(pki.client)),
      vhost("prefix", {"api.*"}, tls_test::server_config(pki.client_dns)),
      vhost("plain", {"plain.example.com"}, std::nullopt),
  };
  auto r = ServerContext::create(l);
  ASSERT_TRUE(r.ok()) << r.error().message;
  const ServerContext& s = *r.value();
  SSL_CTX* def = s.select("");
  ASSERT_NE(def, nullptr);
  EXPECT_EQ(s.initial(), def);
  SSL_CTX* a = s.select("a.example.com");
  SSL_CTX* wild = s.select("b.example.com");
  SSL_CTX* longer = s.select("x.deep.example.com");
  SSL_CTX* prefix = s.select("api.other.org");
  EXPECT_NE(a, def);
  EXPECT_NE(wild, def);
  EXPECT_NE(wild, a);
  EXPECT_NE(longer, wild);
  EXPECT_NE(prefix, def);
  EXPECT_EQ(s.select("plain.example.com"), def);  // its virtual host has no TLS of its own
  EXPECT_EQ(s.select("example.com"), def);        // "*." needs at least one character
  EXPECT_EQ(s.select("unknown.org"), def);
  EXPECT_EQ(s.select("api.example.com"), wild);  // suffix wildcards before prefix wildcards
}

TEST(TlsContext, NoDefaultMeansNoMatchIsNull) {
  const auto& pki = Pki::get();
  snapshot::Listener l;
  l.name = "default/gw";
  l.virtual_hosts = {vhost("a", {"a.example.com"}, tls_test::server_config(pki.vhost_a))};
  auto r = ServerContext::create(l);
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_NE(r.value()->select("a.example.com"), nullptr);
  EXPECT_EQ(r.value()->select("b.example.com"), nullptr);
  EXPECT_EQ(r.value()->select(""), nullptr);

  snapshot::Listener plain;
  plain.name = "default/plain";
  auto none = ServerContext::create(plain);
  ASSERT_FALSE(none.ok());
  EXPECT_NE(none.error().message.find("no TLS"), std::string::npos);
}

TEST(TlsContext, PreciseErrors) {
  const auto& pki = Pki::get();
  auto bad_cert = tls_test::server_config(pki.server_ec);
  bad_cert.certificates[0].cert_chain_pem =
      "-----BEGIN CERTIFICATE-----\nnope\n-----END CERTIFICATE-----\n";
  auto r1 = ServerContext::create(tls_test::listener_with(bad_cert));
  ASSERT_FALSE(r1.ok());
  EXPECT_NE(
      r1.error().message.find("listener default/gw: tls: certificate 1 (secret default/test)"),
      std::string::npos)
      << r1.error().message;
  EXPECT_NE(r1.error().message.find("certificate chain"), std::string::npos);

  auto mismatch = tls_test::server_config(pki.server_ec);
  mismatch.certificates[0].private_key_pem = pki.vhost_a.key_pem;
  auto r2 = ServerContext::create(tls_test::listener_with(mismatch));
  ASSERT_FALSE(r2.ok());
  EXPECT_NE(r2.error().message.find("does not match"), std::string::npos) << r2.error().message;

  auto bad_key = tls_test::server_config(pki.server_ec);
  bad_key.certificates[0].private_key_pem =
      "-----BEGIN PRIVATE KEY-----\nc2VjcmV0\n-----END PRIVATE KEY-----\n";
  auto r3 = ServerContext::create(tls_test::listener_with(bad_key));
  ASSERT_FALSE(r3.ok());
  EXPECT_NE(r3.error().message.find("private key"), std::string::npos);
  EXPECT_EQ(r3.error().message.find("c2VjcmV0"), std::string::npos);  // never echo key material

  auto bad_ca = tls_test::server_config(pki.server_ec);
  bad_ca.client_ca_pem = "not a bundle";
  bad_ca.client_ca_secret = "default/ca";
  auto r4 = ServerContext::create(tls_test::listener_with(bad_ca));
  ASSERT_FALSE(r4.ok());
  EXPECT_NE(r4.error().message.find("client CA bundle (secret default/ca)"), std::string::npos)
      << r4.error().message;

  auto two_ec = tls_test::server_config(pki.server_ec);
  two_ec.certificates.push_back(pki.vhost_a.certificate());
  auto r5 = ServerContext::create(tls_test::listener_with(two_ec));
  ASSERT_FALSE(r5.ok());
  EXPECT_NE(r5.error().message.find("same key type"), std::string::npos);

  auto bad_alpn = tls_test::server_config(pki.server_ec);
  bad_alpn.alpn = {""};
  EXPECT_FALSE(ServerContext::create(tls_test::listener_with(bad_alpn)).ok());

  auto sans_without_ca = tls_test::server_config(pki.server_ec);
  sans_without_ca.allowed_client_sans = {"spiffe://x"};
  EXPECT_FALSE(ServerContext::create(tls_test::listener_with(sans_without_ca)).ok());

  snapshot::TlsClientConfig client;
  client.ca_pem = "garbage";
  auto r6 = ClientContext::create(client);
  ASSERT_FALSE(r6.ok());
  EXPECT_NE(r6.error().message.find("CA bundle"), std::string::npos);

  snapshot::TlsClientConfig mixed;
  mixed.insecure_skip_verify = true;
  mixed.verify_names = {"x"};
  EXPECT_FALSE(ClientContext::create(mixed).ok());
}

TEST(TlsContext, ExpiredCertificateIsAWarning) {
  const auto& pki = Pki::get();
  auto r = ServerContext::create(tls_test::listener_with(tls_test::server_config(pki.expired)));
  ASSERT_TRUE(r.ok()) << r.error().message;
  ASSERT_EQ(r.value()->warnings().size(), 1u);
  EXPECT_NE(r.value()->warnings()[0].find("certificate expired (CN=expired"), std::string::npos)
      << r.value()->warnings()[0];
  // A cache hit reports it again.
  auto again = ServerContext::create(tls_test::listener_with(tls_test::server_config(pki.expired)));
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again.value()->warnings().size(), 1u);
}

TEST(TlsContext, UnchangedConfigurationIsNotRebuilt) {
  const auto& pki = Pki::get();
  ContextCache cache;
  ServerOptions options;
  options.cache = &cache;
  auto tls = tls_test::server_config(pki.server_ec);
  auto r1 = ServerContext::create(tls_test::listener_with(tls), options);
  auto r2 = ServerContext::create(tls_test::listener_with(tls), options);
  ASSERT_TRUE(r1.ok() && r2.ok());
  EXPECT_EQ(r1.value()->initial(), r2.value()->initial());
  EXPECT_EQ(cache.size(), 1u);
  tls.alpn = {"http/1.1"};  // differs from the default ({"h2", "http/1.1"})
  auto r3 = ServerContext::create(tls_test::listener_with(tls), options);
  ASSERT_TRUE(r3.ok());
  EXPECT_NE(r3.value()->initial(), r1.value()->initial());
  EXPECT_EQ(cache.size(), 2u);
  r3 = Error::invalid("dropped");
  EXPECT_EQ(cache.size(), 1u);  // weak: a context nobody uses is gone

  snapshot::TlsClientConfig c;
  c.ca_pem = pki.ca.cert_pem;
  c.sni = "cache.test";
  auto c1 = ClientContext::create(c);
  auto c2 = ClientContext::create(c);
  ASSERT_TRUE(c1.ok() && c2.ok());
  EXPECT_EQ(c1.value().get(), c2.value().get());
}

TEST(TlsContext, TicketKeyRingRotation) {
  auto now = std::chrono::steady_clock::time_point{} + std::chrono::hours(10);
  TicketKeyRing ring(std::chrono::hours(1), 2, [&] { return now; });
  auto k1 = ring.current();
  EXPECT_EQ(ring.current().name, k1.name);
  now += std::chrono::minutes(59);
  EXPECT_EQ(ring.current().name, k1.name);
  now += std::chrono::minutes(2);
  auto k2 = ring.current();
  EXPECT_NE(k2.name, k1.name);
  TicketKeyRing::Key found;
  bool current = true;
  ASSERT_TRUE(ring.find(k1.name.data(), &found, &current));
  EXPECT_FALSE(current);
  EXPECT_EQ(found.aes_key, k1.aes_key);
  ring.rotate();
  EXPECT_TRUE(ring.find(k1.name.data(), &found, &current));  // two decrypt-only keys
  ring.rotate();
  EXPECT_FALSE(ring.find(k1.name.data(), &found, &current));
  EXPECT_EQ(ring.ticket_lifetime(), std::chrono::hours(3));
}

}  // namespace
}  // namespace portico::proxy::tls
