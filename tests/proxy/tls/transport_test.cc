// TlsTransport over loopback TCP: handshakes, data both ways, SNI, ALPN, versions, mTLS,
// upstream verification, session tickets across rotations, OCSP stapling.
// asio first, as in the library's precompiled header: asio's allocator choice depends on which
// standard headers came before it, and every TU must make the same one (ODR).
#include <asio.hpp>

#include <gtest/gtest.h>
#include <openssl/ssl.h>

#include <asio/experimental/as_tuple.hpp>
#include <chrono>
#include <string>

#include "proxy/tls/context.h"
#include "proxy/tls/test_pki.h"
#include "proxy/tls/tls_transport.h"

namespace portico::proxy::tls {
namespace {

using asio::ip::tcp;
using tls_test::Issued;
using tls_test::Pki;
using Transport = transport::Transport;
using namespace std::chrono_literals;

struct Pair {
  Result<std::unique_ptr<Transport>> server = Error::invalid("not run");
  Result<std::unique_ptr<Transport>> client = Error::invalid("not run");
  HandshakeFailure server_failure = HandshakeFailure::kOther;
  HandshakeFailure client_failure = HandshakeFailure::kOther;
};

void rethrow(std::exception_ptr e) {
  if (e) std::rethrow_exception(e);
}

class TlsTransportTest : public ::testing::Test {
 protected:
  // Runs both handshakes over a fresh loopback connection.
  Pair handshake(std::shared_ptr<const ServerContext> server,
                 std::shared_ptr<const ClientContext> client, std::string sni = {}) {
    Pair p;
    tcp::acceptor acceptor(io_, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
    auto port = acceptor.local_endpoint().port();
    asio::co_spawn(
        io_,
        [&]() -> asio::awaitable<void> {
          auto sock = co_await acceptor.async_accept(asio::use_awaitable);
          p.server = co_await accept(server, std::move(sock), 5s, &p.server_failure);
        },
        rethrow);
    asio::co_spawn(
        io_,
        [&]() -> asio::awaitable<void> {
          tcp::socket sock(io_);
          co_await sock.async_connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), port),
                                      asio::use_awaitable);
          p.client = co_await connect(client, std::move(sock), sni, 5s, &p.client_failure);
        },
        rethrow);
    run();
    return p;
  }

  void run() {
    io_.restart();
    io_.run_for(20s);
  }

  template <typename F>
  void spawn(F&& f) {
    asio::co_spawn(io_, std::forward<F>(f), rethrow);
  }

  static std::shared_ptr<const ServerContext> server_ctx(const snapshot::Listener& l,
                                                         ServerOptions options = {}) {
    auto r = ServerContext::create(l, options);
    EXPECT_TRUE(r.ok()) << (r.ok() ? "" : r.error().message);
    return r.ok() ? r.value() : nullptr;
  }

  static std::shared_ptr<const ClientContext> client_ctx(const snapshot::TlsClientConfig& c) {
    auto r = ClientContext::create(c);
    EXPECT_TRUE(r.ok()) << (r.ok() ? "" : r.error().message);
    return r.ok() ? r.value() : nullptr;
  }

  static snapshot::TlsClientConfig trusting(const std::string& sni,
                                            const Issued& ca = Pki::get().ca) {
    snapshot::TlsClientConfig c;
    c.sni = sni;
    c.ca_pem = ca.cert_pem;
    return c;
  }

  // Server sends `hello`, client reads it (TLS 1.3 tickets arrive with it), both close.
  void exchange(Pair& p) {
    ASSERT_TRUE(p.server.ok()) << p.server.error().message;
    ASSERT_TRUE(p.client.ok()) << p.client.error().message;
    std::string got;
    spawn([&]() -> asio::awaitable<void> {
      std::string hello = "hello";
      asio::const_buffer b = asio::buffer(hello);
      auto [ec, n] = co_await p.server.value()->write(std::span(&b, 1));
      EXPECT_FALSE(ec);
    });
    spawn([&]() -> asio::awaitable<void> {
      char buf[64];
      auto [ec, n] = co_await p.client.value()->read_some(asio::buffer(buf));
      EXPECT_FALSE(ec) << ec.message();
      got.assign(buf, n);
    });
    run();
    EXPECT_EQ(got, "hello");
  }

  static std::string peer_cn(Transport& t) {
    X509* peer = SSL_get0_peer_certificate(native_ssl(t));
    if (peer == nullptr) return {};
    char buf[256] = {};
    X509_NAME_get_text_by_NID(X509_get_subject_name(peer), NID_commonName, buf, sizeof(buf));
    return buf;
  }

  asio::io_context io_;
};

TEST_F(TlsTransportTest, DataBothWaysConcurrentlyThenCloseNotify) {
  const auto& pki = Pki::get();
  auto server = server_ctx(tls_test::listener_with(tls_test::server_config(pki.server_ec)));
  auto cfg = trusting("server.test");
  cfg.alpn = {"h2", "http/1.1"};
  auto p = handshake(server, client_ctx(cfg));
  ASSERT_TRUE(p.server.ok()) << p.server.error().message;
  ASSERT_TRUE(p.client.ok()) << p.client.error().message;
  Transport& s = *p.server.value();
  Transport& c = *p.client.value();
  EXPECT_TRUE(s.info().secure);
  EXPECT_EQ(s.info().sni, "server.test");
  EXPECT_EQ(s.info().tls_version, "TLSv1.3");
  EXPECT_EQ(s.info().alpn, "h2");  // the server's default offer prefers HTTP/2
  EXPECT_EQ(c.info().alpn, "h2");
  EXPECT_FALSE(s.info().peer_verified);
  EXPECT_TRUE(c.info().peer_verified);
  EXPECT_EQ(c.info().peer_subject, "CN=server-ec,O=Portico Test");
  EXPECT_FALSE(s.info().peer_address.empty());

  // 2 MiB each way, both directions at once, each side reading and writing concurrently.
  constexpr size_t kSize = 2 * 1024 * 1024;
  std::string up(kSize, '\0'), down(kSize, '\0');
  for (size_t i = 0; i < kSize; ++i) {
    up[i] = static_cast<char>('a' + i % 26);
    down[i] = static_cast<char>('A' + (i * 7) % 26);
  }
  auto writer = [](Transport& t, const std::string& data) -> asio::awaitable<void> {
    // A head-like small piece and the body as two buffers, then the rest in 100 KiB writes.
    size_t off = 0;
    while (off < data.size()) {
      size_t n = std::min<size_t>(100 * 1024, data.size() - off);
      asio::const_buffer bufs[2] = {asio::buffer(data.data() + off, 10),
                                    asio::buffer(data.data() + off + 10, n - 10)};
      auto [ec, written] = co_await t.write(std::span(bufs, 2));
      EXPECT_FALSE(ec) << ec.message();
      EXPECT_EQ(written, n);
      if (ec) co_return;
      off += n;
    }
    auto ec = co_await t.shutdown_write();
    EXPECT_FALSE(ec) << ec.message();
  };
  std::string got_up, got_down;
  bool server_eof = false, client_eof = false;
  auto reader = [](Transport& t, std::string& out, bool& eof) -> asio::awaitable<void> {
    std::vector<char> buf(7000);
    for (;;) {
      auto [ec, n] = co_await t.read_some(asio::buffer(buf));
      out.append(buf.data(), n);
      if (ec == asio::error::eof) {
        eof = true;
        co_return;
      }
      EXPECT_FALSE(ec) << ec.message();
      if (ec) co_return;
    }
  };
  spawn(writer(c, up));
  spawn(writer(s, down));
  spawn(reader(s, got_up, server_eof));
  spawn(reader(c, got_down, client_eof));
  run();
  EXPECT_TRUE(server_eof);
  EXPECT_TRUE(client_eof);
  EXPECT_EQ(got_up.size(), kSize);
  EXPECT_TRUE(got_up == up);
  EXPECT_EQ(got_down.size(), kSize);
  EXPECT_TRUE(got_down == down);
}

TEST_F(TlsTransportTest, CancelAbortsPendingReadAndTransportStaysUsable) {
  const auto& pki = Pki::get();
  auto server = server_ctx(tls_test::listener_with(tls_test::server_config(pki.server_ec)));
  auto p = handshake(server, client_ctx(trusting("server.test")));
  ASSERT_TRUE(p.server.ok() && p.client.ok());
  Transport& s = *p.server.value();
  asio::error_code first;
  std::string second;
  spawn([&]() -> asio::awaitable<void> {
    char buf[16];
    auto [ec, n] = co_await s.read_some(asio::buffer(buf));
    first = ec;
    auto [ec2, n2] = co_await s.read_some(asio::buffer(buf));
    EXPECT_FALSE(ec2);
    second.assign(buf, n2);
  });
  asio::steady_timer t1(io_);
  t1.expires_after(50ms);
  t1.async_wait([&](asio::error_code) { s.cancel(); });
  spawn([&]() -> asio::awaitable<void> {
    asio::steady_timer t2(io_);
    t2.expires_after(100ms);
    co_await t2.async_wait(asio::use_awaitable);
    std::string msg = "after";
    asio::const_buffer b = asio::buffer(msg);
    (void)co_await p.client.value()->write(std::span(&b, 1));
  });
  run();
  EXPECT_EQ(first, asio::error::operation_aborted);
  EXPECT_EQ(second, "after");
}

TEST_F(TlsTransportTest, SniPicksTheVirtualHostCertificate) {
  const auto& pki = Pki::get();
  snapshot::Listener l = tls_test::listener_with(tls_test::server_config(pki.server_ec));
  snapshot::VirtualHost a;
  a.name = "default/a";
  a.domains = {"a.example.com"};
  a.tls = tls_test::server_config(pki.vhost_a);
  snapshot::VirtualHost wild;
  wild.name = "default/wild";
  wild.domains = {"*.wild.example.com"};
  wild.tls = tls_test::server_config(pki.vhost_wild);
  snapshot::VirtualHost plain;  // no TLS of its own: the listener's default
  plain.name = "default/plain";
  plain.domains = {"x.wild.example.com"};
  l.virtual_hosts = {std::make_shared<snapshot::VirtualHost>(a),
                     std::make_shared<snapshot::VirtualHost>(wild),
                     std::make_shared<snapshot::VirtualHost>(plain)};
  auto server = server_ctx(l);
  snapshot::TlsClientConfig insecure;
  insecure.insecure_skip_verify = true;
  auto client = client_ctx(insecure);

  struct Case {
    std::string sni, cn;
  };
  for (const Case& c :
       {Case{"a.example.com", "vhost-a"}, Case{"A.Example.COM", "vhost-a"},
        Case{"b.wild.example.com", "vhost-wild"}, Case{"x.wild.example.com", "server-ec"},
        Case{"other.test", "server-ec"}, Case{"", "server-ec"}}) {
    auto p = handshake(server, client, c.sni);
    ASSERT_TRUE(p.server.ok()) << c.sni << ": " << p.server.error().message;
    ASSERT_TRUE(p.client.ok()) << c.sni;
    EXPECT_EQ(peer_cn(*p.client.value()), c.cn) << c.sni;
  }
}

TEST_F(TlsTransportTest, UnknownServerNameWithoutDefaultIsRefused) {
  const auto& pki = Pki::get();
  snapshot::Listener l;
  l.name = "default/gw";
  snapshot::VirtualHost a;
  a.name = "default/a";
  a.domains = {"a.example.com"};
  a.tls = tls_test::server_config(pki.vhost_a);
  l.virtual_hosts = {std::make_shared<snapshot::VirtualHost>(a)};
  auto server = server_ctx(l);
  snapshot::TlsClientConfig insecure;
  insecure.insecure_skip_verify = true;
  auto client = client_ctx(insecure);
  auto good = handshake(server, client, "a.example.com");
  EXPECT_TRUE(good.server.ok());
  uint64_t before = downstream_stats().failures(HandshakeFailure::kUnknownServerName);
  auto bad = handshake(server, client, "b.example.com");
  ASSERT_FALSE(bad.server.ok());
  EXPECT_EQ(bad.server_failure, HandshakeFailure::kUnknownServerName);
  EXPECT_NE(bad.server.error().message.find("unknown_server_name"), std::string::npos);
  EXPECT_EQ(downstream_stats().failures(HandshakeFailure::kUnknownServerName), before + 1);
  EXPECT_FALSE(bad.client.ok());
}

TEST_F(TlsTransportTest, EcdsaAndRsaCertificatesChosenBySignatureAlgorithms) {
  const auto& pki = Pki::get();
  snapshot::TlsServerConfig tls;
  tls.certificates = {pki.server_ec.certificate(), pki.server_rsa.certificate()};
  auto server = server_ctx(tls_test::listener_with(tls));
  auto any = client_ctx(trusting("server.test"));
  auto p = handshake(server, any);
  ASSERT_TRUE(p.client.ok());
  EXPECT_EQ(peer_cn(*p.client.value()), "server-ec");

  auto rsa_cfg = trusting("server.test");
  rsa_cfg.alpn = {"rsa-only-client"};  // a distinct context (the test changes its SSL_CTX)
  auto rsa_only = client_ctx(rsa_cfg);
  ASSERT_EQ(SSL_CTX_set1_sigalgs_list(rsa_only->native_handle(), "rsa_pss_rsae_sha256:RSA+SHA256"),
            1);
  auto q = handshake(server, rsa_only);
  ASSERT_TRUE(q.client.ok()) << q.client.error().message;
  EXPECT_EQ(peer_cn(*q.client.value()), "server-rsa");
}

TEST_F(TlsTransportTest, AlpnServerPreference) {
  const auto& pki = Pki::get();
  auto tls = tls_test::server_config(pki.server_ec);
  tls.alpn = {"h2", "http/1.1"};
  auto server = server_ctx(tls_test::listener_with(tls));
  auto cfg = trusting("server.test");
  cfg.alpn = {"http/1.1", "h2"};
  auto p = handshake(server, client_ctx(cfg));
  ASSERT_TRUE(p.server.ok() && p.client.ok());
  EXPECT_EQ(p.server.value()->info().alpn, "h2");
  EXPECT_EQ(p.client.value()->info().alpn, "h2");

  cfg.alpn = {"spdy/3"};
  auto q = handshake(server, client_ctx(cfg));
  ASSERT_TRUE(q.server.ok() && q.client.ok());
  EXPECT_EQ(q.server.value()->info().alpn, "");
}

TEST_F(TlsTransportTest, Tls11ClientRefused) {
  const auto& pki = Pki::get();
  auto server = server_ctx(tls_test::listener_with(tls_test::server_config(pki.server_ec)));
  snapshot::TlsClientConfig cfg;
  cfg.insecure_skip_verify = true;
  cfg.sni = "tls11.test";  // a distinct context (the test changes its SSL_CTX)
  auto client = client_ctx(cfg);
  SSL_CTX* ctx = client->native_handle();
  SSL_CTX_set_security_level(ctx, 0);
  ASSERT_EQ(SSL_CTX_set_min_proto_version(ctx, TLS1_VERSION), 1);
  ASSERT_EQ(SSL_CTX_set_max_proto_version(ctx, TLS1_1_VERSION), 1);
  ASSERT_EQ(SSL_CTX_set_cipher_list(ctx, "DEFAULT:@SECLEVEL=0"), 1);
  uint64_t before = downstream_stats().failures(HandshakeFailure::kVersionTooOld);
  auto p = handshake(server, client);
  EXPECT_FALSE(p.server.ok());
  EXPECT_FALSE(p.client.ok());
  EXPECT_EQ(p.server_failure, HandshakeFailure::kVersionTooOld);
  EXPECT_EQ(downstream_stats().failures(HandshakeFailure::kVersionTooOld), before + 1);
}

TEST_F(TlsTransportTest, Tls12OnlyServerNegotiatesTls12) {
  const auto& pki = Pki::get();
  auto tls = tls_test::server_config(pki.server_ec);
  tls.max_version = snapshot::TlsVersion::kTls12;
  auto server = server_ctx(tls_test::listener_with(tls));
  auto p = handshake(server, client_ctx(trusting("server.test")));
  ASSERT_TRUE(p.server.ok()) << p.server.error().message;
  EXPECT_EQ(p.server.value()->info().tls_version, "TLSv1.2");
  EXPECT_EQ(p.server.value()->info().cipher, "ECDHE-ECDSA-AES128-GCM-SHA256");
}

TEST_F(TlsTransportTest, RenegotiationRefused) {
  const auto& pki = Pki::get();
  auto tls = tls_test::server_config(pki.server_ec);
  tls.max_version = snapshot::TlsVersion::kTls12;  // TLS 1.3 has no renegotiation at all
  auto server = server_ctx(tls_test::listener_with(tls));
  auto p = handshake(server, client_ctx(trusting("server.test")));
  ASSERT_TRUE(p.server.ok() && p.client.ok());
  SSL* client_ssl = native_ssl(*p.client.value());
  SSL_clear_options(client_ssl, SSL_OP_NO_RENEGOTIATION);
  ASSERT_EQ(SSL_renegotiate(client_ssl), 1);
  asio::error_code client_ec, server_ec;
  spawn([&]() -> asio::awaitable<void> {
    char buf[16];
    auto [ec, n] = co_await p.server.value()->read_some(asio::buffer(buf));
    server_ec = ec;
  });
  spawn([&]() -> asio::awaitable<void> {
    char buf[16];
    auto [ec, n] = co_await p.client.value()->read_some(asio::buffer(buf));
    client_ec = ec;
    p.client.value()->close();  // ends the server's read
  });
  run();
  EXPECT_TRUE(client_ec);  // the server answered no_renegotiation: the client gives up
  EXPECT_EQ(SSL_renegotiate_pending(native_ssl(*p.server.value())), 0);
}

TEST_F(TlsTransportTest, MutualTls) {
  const auto& pki = Pki::get();
  auto tls = tls_test::server_config(pki.server_ec);
  tls.client_ca_pem = pki.ca.cert_pem;
  tls.client_identity_header = "x-client-identity";
  auto server = server_ctx(tls_test::listener_with(tls));

  auto none = handshake(server, client_ctx(trusting("server.test")));
  EXPECT_FALSE(none.server.ok());
  EXPECT_EQ(none.server_failure, HandshakeFailure::kNoClientCert);

  auto foreign_cfg = trusting("server.test");
  foreign_cfg.client_certificate = pki.client_foreign.certificate();
  auto foreign = handshake(server, client_ctx(foreign_cfg));
  EXPECT_FALSE(foreign.server.ok());
  EXPECT_EQ(foreign.server_failure, HandshakeFailure::kUnknownCa);

  auto good_cfg = trusting("server.test");
  good_cfg.client_certificate = pki.client.certificate();
  auto good = handshake(server, client_ctx(good_cfg));
  ASSERT_TRUE(good.server.ok()) << good.server.error().message;
  const auto& info = good.server.value()->info();
  EXPECT_TRUE(info.peer_verified);
  EXPECT_EQ(info.peer_subject, "CN=client-1,O=Portico Test");
  EXPECT_EQ(info.peer_uri_sans, std::vector<std::string>{"spiffe://test/client"});
  EXPECT_EQ(info.peer_dns_sans, std::vector<std::string>{"c.test"});
  EXPECT_EQ(client_identity(info), "spiffe://test/client");
  EXPECT_EQ(client_identity_header(*good.server.value()), "x-client-identity");
  EXPECT_EQ(client_identity_header(*good.client.value()), "");  // upstream side: none

  auto dns_cfg = trusting("server.test");
  dns_cfg.client_certificate = pki.client_dns.certificate();
  auto dns = handshake(server, client_ctx(dns_cfg));
  ASSERT_TRUE(dns.server.ok());
  EXPECT_EQ(client_identity(dns.server.value()->info()), "only-dns.test");
}

TEST_F(TlsTransportTest, ClientSanAllowList) {
  const auto& pki = Pki::get();
  auto tls = tls_test::server_config(pki.server_ec);
  tls.client_ca_pem = pki.ca.cert_pem;
  tls.allowed_client_sans = {"spiffe://test/client"};
  auto server = server_ctx(tls_test::listener_with(tls));
  auto good_cfg = trusting("server.test");
  good_cfg.client_certificate = pki.client.certificate();
  auto good = handshake(server, client_ctx(good_cfg));
  EXPECT_TRUE(good.server.ok());

  auto other_cfg = trusting("server.test");
  other_cfg.client_certificate = pki.client_dns.certificate();
  auto other = handshake(server, client_ctx(other_cfg));
  ASSERT_FALSE(other.server.ok());
  EXPECT_EQ(other.server_failure, HandshakeFailure::kSanNotAllowed);
}

TEST_F(TlsTransportTest, UpstreamVerification) {
  const auto& pki = Pki::get();
  auto server = server_ctx(tls_test::listener_with(tls_test::server_config(pki.server_ec)));

  auto wrong = handshake(server, client_ctx(trusting("wrong.test")));
  ASSERT_FALSE(wrong.client.ok());
  EXPECT_EQ(wrong.client_failure, HandshakeFailure::kBadCertificate);

  auto wildcard = handshake(server, client_ctx(trusting("x.wild.test")));
  EXPECT_TRUE(wildcard.client.ok());

  auto override_sni = handshake(server, client_ctx(trusting("wrong.test")), "server.test");
  ASSERT_TRUE(override_sni.client.ok()) << override_sni.client.error().message;
  EXPECT_EQ(override_sni.client.value()->info().sni, "server.test");

  auto untrusted = handshake(server, client_ctx(trusting("server.test", pki.foreign_ca)));
  ASSERT_FALSE(untrusted.client.ok());
  EXPECT_EQ(untrusted.client_failure, HandshakeFailure::kUnknownCa);

  auto by_uri_cfg = trusting("server.test");
  by_uri_cfg.verify_names = {"spiffe://test/server"};
  EXPECT_TRUE(handshake(server, client_ctx(by_uri_cfg)).client.ok());
  by_uri_cfg.verify_names = {"spiffe://test/other"};
  EXPECT_FALSE(handshake(server, client_ctx(by_uri_cfg)).client.ok());

  snapshot::TlsClientConfig insecure;
  insecure.insecure_skip_verify = true;
  insecure.sni = "wrong.test";
  auto skipped = handshake(server, client_ctx(insecure));
  ASSERT_TRUE(skipped.client.ok());
  EXPECT_FALSE(skipped.client.value()->info().peer_verified);
}

TEST_F(TlsTransportTest, UpstreamClientCertificateIsSent) {
  const auto& pki = Pki::get();
  auto tls = tls_test::server_config(pki.server_ec);
  tls.client_ca_pem = pki.ca.cert_pem;
  auto server = server_ctx(tls_test::listener_with(tls));
  auto cfg = trusting("server.test");
  cfg.client_certificate = pki.client.certificate();
  auto p = handshake(server, client_ctx(cfg));
  ASSERT_TRUE(p.server.ok());
  EXPECT_EQ(client_identity(p.server.value()->info()), "spiffe://test/client");
}

TEST_F(TlsTransportTest, SessionTicketsAcrossRotation) {
  const auto& pki = Pki::get();
  auto now = std::chrono::steady_clock::time_point{} + std::chrono::hours(1000);
  auto ring = std::make_shared<TicketKeyRing>(std::chrono::hours(1), 1, [&] { return now; });
  ServerOptions options;
  options.ticket_keys = ring;
  auto server =
      server_ctx(tls_test::listener_with(tls_test::server_config(pki.server_ec)), options);
  auto connect_once = [&](const std::shared_ptr<const ClientContext>& client) {
    auto p = handshake(server, client);
    exchange(p);
    bool server_resumed = SSL_session_reused(native_ssl(*p.server.value())) == 1;
    bool client_resumed = SSL_session_reused(native_ssl(*p.client.value())) == 1;
    EXPECT_EQ(server_resumed, client_resumed);
    return client_resumed;
  };
  auto cfg = trusting("server.test");
  cfg.alpn = {"resumption-test"};
  auto client = client_ctx(cfg);
  EXPECT_FALSE(connect_once(client));
  EXPECT_TRUE(connect_once(client));

  // One rotation: the previous key still decrypts (and the ticket is renewed under the new one).
  ring->rotate();
  EXPECT_TRUE(connect_once(client));

  // The clock passing the period rotates when the next ticket is issued.
  now += std::chrono::minutes(61);
  EXPECT_TRUE(connect_once(client));  // renewed under a fresh key
  ring->rotate();                     // the key before it ages out (one decrypt-only key)
  EXPECT_TRUE(connect_once(client));

  // Two rotations without a connection: the client's ticket key is gone, full handshake.
  ring->rotate();
  ring->rotate();
  EXPECT_FALSE(connect_once(client));
  EXPECT_TRUE(connect_once(client));
}

TEST_F(TlsTransportTest, SessionResumptionOverTls12) {
  const auto& pki = Pki::get();
  auto tls = tls_test::server_config(pki.server_ec);
  tls.max_version = snapshot::TlsVersion::kTls12;
  auto server = server_ctx(tls_test::listener_with(tls));
  auto cfg = trusting("server.test");
  cfg.alpn = {"resumption-tls12"};
  auto client = client_ctx(cfg);
  auto first = handshake(server, client);
  exchange(first);
  auto second = handshake(server, client);
  ASSERT_TRUE(second.client.ok());
  EXPECT_EQ(SSL_session_reused(native_ssl(*second.client.value())), 1);
}

TEST_F(TlsTransportTest, OcspStapleDelivered) {
  const auto& pki = Pki::get();
  auto tls = tls_test::server_config(pki.server_ec);
  tls.certificates[0].ocsp_staple = std::string("\x30\x03\x0a\x01\x00", 5);  // DER, opaque to us
  auto server = server_ctx(tls_test::listener_with(tls));
  auto cfg = trusting("server.test");
  cfg.alpn = {"ocsp-test"};  // a distinct context (the test changes its SSL_CTX)
  auto client = client_ctx(cfg);
  SSL_CTX_set_tlsext_status_type(client->native_handle(), TLSEXT_STATUSTYPE_ocsp);
  auto p = handshake(server, client);
  ASSERT_TRUE(p.client.ok());
  const unsigned char* resp = nullptr;
  long len = SSL_get_tlsext_status_ocsp_resp(native_ssl(*p.client.value()), &resp);
  ASSERT_EQ(len, 5);
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(resp), 5), tls.certificates[0].ocsp_staple);
}

TEST_F(TlsTransportTest, HandshakeTimeoutAndGarbage) {
  const auto& pki = Pki::get();
  auto server = server_ctx(tls_test::listener_with(tls_test::server_config(pki.server_ec)));
  tcp::acceptor acceptor(io_, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
  auto port = acceptor.local_endpoint().port();
  HandshakeFailure silent = HandshakeFailure::kOther, garbage = HandshakeFailure::kOther;
  bool silent_ok = true, garbage_ok = true;
  tcp::socket c1(io_), c2(io_);
  spawn([&]() -> asio::awaitable<void> {
    auto s1 = co_await acceptor.async_accept(asio::use_awaitable);
    auto r1 = co_await accept(server, std::move(s1), 100ms, &silent);
    silent_ok = r1.ok();
    auto s2 = co_await acceptor.async_accept(asio::use_awaitable);
    auto r2 = co_await accept(server, std::move(s2), 5s, &garbage);
    garbage_ok = r2.ok();
  });
  spawn([&]() -> asio::awaitable<void> {
    tcp::endpoint ep(asio::ip::make_address("127.0.0.1"), port);
    co_await c1.async_connect(ep, asio::use_awaitable);  // and says nothing
    co_await c2.async_connect(ep, asio::use_awaitable);
    std::string get = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
    co_await asio::async_write(c2, asio::buffer(get), asio::use_awaitable);
  });
  run();
  EXPECT_FALSE(silent_ok);
  EXPECT_EQ(silent, HandshakeFailure::kTimeout);
  EXPECT_FALSE(garbage_ok);
  EXPECT_EQ(garbage, HandshakeFailure::kProtocol);
}

}  // namespace
}  // namespace portico::proxy::tls

namespace portico::proxy::tls {
namespace {

// A ticket from one virtual host must not resume on another (which may require client
// certificates): that would skip its verification.
TEST_F(TlsTransportTest, TicketFromOneVirtualHostDoesNotResumeOnAnother) {
  const auto& pki = Pki::get();
  for (auto version : {snapshot::TlsVersion::kTls13, snapshot::TlsVersion::kTls12}) {
    auto open_tls = tls_test::server_config(pki.server_ec);
    open_tls.max_version = version;
    snapshot::Listener l = tls_test::listener_with(open_tls);
    snapshot::VirtualHost secure;
    secure.name = "default/secure";
    secure.domains = {"secure.example.com"};
    secure.tls = tls_test::server_config(pki.vhost_a);
    secure.tls->client_ca_pem = pki.ca.cert_pem;
    secure.tls->max_version = version;
    l.virtual_hosts = {std::make_shared<snapshot::VirtualHost>(secure)};
    auto server = server_ctx(l);
    snapshot::TlsClientConfig cfg;
    cfg.insecure_skip_verify = true;
    cfg.alpn = {version == snapshot::TlsVersion::kTls13 ? "cross-13" : "cross-12"};
    auto client = client_ctx(cfg);

    auto first = handshake(server, client, "open.example.com");
    exchange(first);
    SSL_SESSION* session = SSL_get1_session(native_ssl(*first.client.value()));
    ASSERT_NE(session, nullptr);
    ASSERT_EQ(SSL_SESSION_is_resumable(session), 1);
    SSL_SESSION_up_ref(session);
    client->store_session("secure.example.com", session);  // takes a reference
    client->store_session("other.example.com", session);   // takes the other

    auto second = handshake(server, client, "secure.example.com");
    EXPECT_FALSE(second.server.ok()) << "resumed across virtual hosts";
    EXPECT_EQ(second.server_failure, HandshakeFailure::kNoClientCert);

    // Control: the same session offered for another name of the same context does resume, so
    // the refusal above is the server's doing, not the client's.
    auto third = handshake(server, client, "other.example.com");
    ASSERT_TRUE(third.client.ok());
    EXPECT_EQ(SSL_session_reused(native_ssl(*third.client.value())), 1);
  }
}

}  // namespace
}  // namespace portico::proxy::tls
