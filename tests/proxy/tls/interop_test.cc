// Interoperability: the real `openssl s_client` against a tiny server built from this library
// (SNI, ALPN, verification, TLS 1.2 and 1.3, OCSP stapling, close_notify). Skipped when the
// openssl command is not installed.
// asio first, as in the library's precompiled header: asio's allocator choice depends on which
// standard headers came before it, and every TU must make the same one (ODR).
#include <asio.hpp>

#include <gtest/gtest.h>
#include <openssl/ocsp.h>
#include <unistd.h>

#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>

#include "proxy/tls/context.h"
#include "proxy/tls/test_pki.h"
#include "proxy/tls/tls_transport.h"

namespace portico::proxy::tls {
namespace {

using asio::ip::tcp;
using tls_test::Pki;
using namespace std::chrono_literals;

std::string run_command(const std::string& cmd) {
  std::string out;
  FILE* f = popen(cmd.c_str(), "r");
  if (f == nullptr) return out;
  std::array<char, 4096> buf;
  size_t n;
  while ((n = fread(buf.data(), 1, buf.size(), f)) > 0)
    out.append(buf.data(), n);
  pclose(f);
  return out;
}

// "tryLater": a well-formed OCSP response without a body, enough for s_client to print.
std::string ocsp_try_later() {
  OCSP_RESPONSE* resp = OCSP_response_create(OCSP_RESPONSE_STATUS_TRYLATER, nullptr);
  unsigned char* der = nullptr;
  int len = i2d_OCSP_RESPONSE(resp, &der);
  std::string out(reinterpret_cast<char*>(der), static_cast<size_t>(len));
  OPENSSL_free(der);
  OCSP_RESPONSE_free(resp);
  return out;
}

class OpensslInterop : public ::testing::Test {
 protected:
  void SetUp() override {
    if (run_command("command -v openssl").empty()) GTEST_SKIP() << "no openssl command";
    dir_ = std::filesystem::temp_directory_path() /
           ("portico-tls-" + std::to_string(getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::create_directories(dir_);
    std::ofstream(dir_ / "ca.pem") << Pki::get().ca.cert_pem;
  }
  void TearDown() override {
    if (server_.joinable()) {
      io_.stop();
      server_.join();
    }
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }

  // Serves: read a line, answer "pong <alpn> <sni>\n", send close_notify, wait for the end.
  void serve(std::shared_ptr<const ServerContext> ctx) {
    acceptor_.open(tcp::v4());
    acceptor_.bind(tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
    acceptor_.listen();
    port_ = acceptor_.local_endpoint().port();
    asio::co_spawn(
        io_,
        [this, ctx]() -> asio::awaitable<void> {
          for (;;) {
            auto sock = co_await acceptor_.async_accept(asio::use_awaitable);
            auto r = co_await accept(ctx, std::move(sock), 5s);
            if (!r) continue;
            auto& t = *r.value();
            char buf[256];
            auto [ec, n] = co_await t.read_some(asio::buffer(buf));
            if (ec) continue;
            std::string reply = "pong " + t.info().alpn + " " + t.info().sni + "\n";
            asio::const_buffer b = asio::buffer(reply);
            (void)co_await t.write(std::span(&b, 1));
            (void)co_await t.shutdown_write();
            for (;;) {
              auto [ec2, n2] = co_await t.read_some(asio::buffer(buf));
              if (ec2) break;
            }
          }
        },
        asio::detached);
    server_ = std::thread([this] { io_.run(); });
  }

  std::string s_client(const std::string& args) {
    return run_command(
        "echo ping | timeout 20 openssl s_client -connect 127.0.0.1:" + std::to_string(port_) +
        " -CAfile " + (dir_ / "ca.pem").string() + " -ign_eof " + args + " 2>&1");
  }

  asio::io_context io_;
  tcp::acceptor acceptor_{io_};
  std::thread server_;
  uint16_t port_ = 0;
  std::filesystem::path dir_;
};

TEST_F(OpensslInterop, SniAlpnVerificationAndCloseNotify) {
  const auto& pki = Pki::get();
  auto tls = tls_test::server_config(pki.server_ec);
  tls.alpn = {"h2", "http/1.1"};
  tls.certificates[0].ocsp_staple = ocsp_try_later();
  snapshot::Listener l = tls_test::listener_with(tls);
  snapshot::VirtualHost a;
  a.name = "default/a";
  a.domains = {"a.example.com"};
  a.tls = tls_test::server_config(pki.vhost_a);
  l.virtual_hosts = {std::make_shared<snapshot::VirtualHost>(a)};
  auto ctx = ServerContext::create(l);
  ASSERT_TRUE(ctx.ok()) << ctx.error().message;
  serve(ctx.value());

  std::string tls13 =
      s_client("-servername server.test -alpn http/1.1,h2 -status -verify_return_error");
  EXPECT_NE(tls13.find("Protocol  : TLSv1.3"), std::string::npos) << tls13;
  EXPECT_NE(tls13.find("ALPN protocol: h2"), std::string::npos) << tls13;
  EXPECT_NE(tls13.find("Verify return code: 0 (ok)"), std::string::npos) << tls13;
  EXPECT_NE(tls13.find("CN = server-ec"), std::string::npos) << tls13;
  EXPECT_NE(tls13.find("OCSP Response Status: trylater"), std::string::npos) << tls13;
  EXPECT_NE(tls13.find("pong h2 server.test"), std::string::npos) << tls13;

  std::string tls12 = s_client("-tls1_2 -servername a.example.com -verify_return_error");
  EXPECT_NE(tls12.find("Protocol  : TLSv1.2"), std::string::npos) << tls12;
  EXPECT_NE(tls12.find("CN = vhost-a"), std::string::npos) << tls12;
  EXPECT_NE(tls12.find("Verify return code: 0 (ok)"), std::string::npos) << tls12;
  EXPECT_NE(tls12.find("ECDHE-ECDSA-AES128-GCM-SHA256"), std::string::npos) << tls12;
  EXPECT_NE(tls12.find("pong  a.example.com"), std::string::npos) << tls12;  // no ALPN offered

  std::string tls11 = s_client("-tls1_1 -cipher DEFAULT@SECLEVEL=0 -servername server.test");
  EXPECT_EQ(tls11.find("pong"), std::string::npos) << tls11;

  std::string cbc = s_client("-tls1_2 -cipher ECDHE-ECDSA-AES128-SHA -servername server.test");
  EXPECT_EQ(cbc.find("pong"), std::string::npos) << cbc;  // no CBC suites
}

}  // namespace
}  // namespace portico::proxy::tls
