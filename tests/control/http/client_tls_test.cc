// https in the control plane's HTTP client: verification of the chain and the name, a client
// certificate (mTLS), and the errors that name what failed. A real OpenSSL server on loopback.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>

#include <gtest/gtest.h>

#include "control/http/client.h"
#include "proxy/tls/test_pki.h"

namespace portico::control::http {
namespace {

using namespace std::chrono_literals;
using tls_test::Pki;

std::string write_file(const std::filesystem::path& dir, const std::string& name,
                       const std::string& text) {
  const auto p = dir / name;
  std::ofstream(p) << text;
  return p.string();
}

struct Files {
  std::filesystem::path dir;
  std::string ca, foreign_ca, client_cert, client_key;
  Files() {
    char tmpl[] = "/tmp/portico-client-tls-XXXXXX";
    dir = ::mkdtemp(tmpl);
    const Pki& pki = Pki::get();
    ca = write_file(dir, "ca.pem", pki.ca.cert_pem);
    foreign_ca = write_file(dir, "foreign.pem", pki.foreign_ca.cert_pem);
    client_cert = write_file(dir, "client.pem", pki.client.cert_pem);
    client_key = write_file(dir, "client.key", pki.client.key_pem);
  }
  ~Files() { std::filesystem::remove_all(dir); }
};

// A TLS server answering each request with "HTTP/1.1 200 OK" and a body naming the client
// certificate's CN ("none" without one). `require_client`: a client certificate from the test CA
// is required.
class TlsServer {
 public:
  explicit TlsServer(bool require_client) {
    const Pki& pki = Pki::get();
    ctx_ = SSL_CTX_new(TLS_server_method());
    SSL_CTX_use_certificate(ctx_, pki.server_ec.cert.get());
    SSL_CTX_use_PrivateKey(ctx_, pki.server_ec.key.get());
    if (require_client) {
      X509_STORE_add_cert(SSL_CTX_get_cert_store(ctx_), pki.ca.cert.get());
      SSL_CTX_set_verify(ctx_, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, nullptr);
    }
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
    socklen_t len = sizeof a;
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
    ::listen(fd_, 8);
    thread_ = std::thread([this] {
      for (;;) {
        int c = ::accept(fd_, nullptr, nullptr);
        if (c < 0) return;
        serve(c);
        ::close(c);
      }
    });
  }
  ~TlsServer() {
    ::shutdown(fd_, SHUT_RDWR);
    ::close(fd_);
    thread_.join();
    SSL_CTX_free(ctx_);
  }
  uint16_t port() const { return port_; }
  std::atomic<int> handshakes{0};

 private:
  void serve(int c) {
    SSL* ssl = SSL_new(ctx_);
    SSL_set_fd(ssl, c);
    if (SSL_accept(ssl) == 1) {
      ++handshakes;
      std::string in;
      char buf[4096];
      while (in.find("\r\n\r\n") == std::string::npos) {
        int n = SSL_read(ssl, buf, sizeof buf);
        if (n <= 0) break;
        in.append(buf, static_cast<size_t>(n));
      }
      std::string cn = "none";
      if (X509* peer = SSL_get1_peer_certificate(ssl)) {
        char name[256];
        X509_NAME_get_text_by_NID(X509_get_subject_name(peer), NID_commonName, name, sizeof name);
        cn = name;
        X509_free(peer);
      }
      const std::string out = "HTTP/1.1 200 OK\r\nContent-Length: " + std::to_string(cn.size()) +
                              "\r\nConnection: close\r\n\r\n" + cn;
      SSL_write(ssl, out.data(), static_cast<int>(out.size()));
      SSL_shutdown(ssl);
    }
    SSL_free(ssl);
    ERR_clear_error();
  }

  SSL_CTX* ctx_ = nullptr;
  int fd_ = -1;
  uint16_t port_ = 0;
  std::thread thread_;
};

Result<Response> get(const std::string& url, const TlsOptions& tls) {
  auto u = parse_url(url, 443, tls);
  if (!u) return u.error();
  Client client(u.value());
  Request r;
  r.target = "/v1/status";
  return client.send(r, 5s);
}

std::string url_of(const std::string& host, uint16_t port) {
  return "https://" + host + ":" + std::to_string(port);
}

TEST(HttpClientTls, VerifiesTheChainAndTheNameGivenAsServerName) {
  Files files;
  TlsServer server(false);
  TlsOptions o;
  o.ca_file = files.ca;
  o.server_name = "server.test";
  auto r = get(url_of("127.0.0.1", server.port()), o);
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r.value().status, 200);
  EXPECT_EQ(r.value().body, "none");
}

TEST(HttpClientTls, RefusesAnUnknownIssuerAndSaysSo) {
  Files files;
  TlsServer server(false);
  TlsOptions o;
  o.ca_file = files.foreign_ca;
  o.server_name = "server.test";
  auto r = get(url_of("127.0.0.1", server.port()), o);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("certificate verification failed"), std::string::npos)
      << r.error().message;
}

TEST(HttpClientTls, RefusesACertificateForAnotherName) {
  Files files;
  TlsServer server(false);
  TlsOptions o;
  o.ca_file = files.ca;
  o.server_name = "vault.test";  // the server's certificate names server.test and *.wild.test
  auto r = get(url_of("127.0.0.1", server.port()), o);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("hostname mismatch"), std::string::npos) << r.error().message;
  // Without server_name the URL's host is checked: 127.0.0.1 is not in the certificate either.
  o.server_name.clear();
  r = get(url_of("127.0.0.1", server.port()), o);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("certificate verification failed"), std::string::npos);
}

TEST(HttpClientTls, InsecureSkipVerifyTrustsAnything) {
  TlsServer server(false);
  TlsOptions o;
  o.insecure_skip_verify = true;
  auto r = get(url_of("127.0.0.1", server.port()), o);
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r.value().status, 200);
}

TEST(HttpClientTls, PresentsAClientCertificateWhenAsked) {
  Files files;
  TlsServer server(true);
  TlsOptions o;
  o.ca_file = files.ca;
  o.server_name = "server.test";
  auto without = get(url_of("127.0.0.1", server.port()), o);
  EXPECT_FALSE(without.ok());
  o.cert_file = files.client_cert;
  o.key_file = files.client_key;
  auto with = get(url_of("127.0.0.1", server.port()), o);
  ASSERT_TRUE(with.ok()) << with.error().message;
  EXPECT_EQ(with.value().body, "client-1");
}

TEST(HttpClientTls, ConfigurationErrorsNameTheFile) {
  Files files;
  TlsOptions o;
  o.ca_file = (files.dir / "missing.pem").string();
  auto u = parse_url("https://vault.test:8200", 8200, o);
  ASSERT_FALSE(u.ok());
  EXPECT_NE(u.error().message.find("missing.pem"), std::string::npos) << u.error().message;

  TlsOptions half;
  half.cert_file = files.client_cert;
  u = parse_url("https://vault.test:8200", 8200, half);
  ASSERT_FALSE(u.ok());
  EXPECT_NE(u.error().message.find("both"), std::string::npos);

  TlsOptions mismatched;
  mismatched.cert_file = files.client_cert;
  mismatched.key_file = write_file(files.dir, "other.key", Pki::get().server_ec.key_pem);
  u = parse_url("https://vault.test:8200", 8200, mismatched);
  ASSERT_FALSE(u.ok());
  EXPECT_NE(u.error().message.find("other.key"), std::string::npos) << u.error().message;

  TlsOptions any;
  any.ca_file = files.ca;
  u = parse_url("http://vault.test:8200", 8200, any);
  ASSERT_FALSE(u.ok());
  EXPECT_NE(u.error().message.find("https://"), std::string::npos);

  auto plain = parse_url("https://consul.test", 8501);
  ASSERT_TRUE(plain.ok());
  EXPECT_TRUE(plain.value().https);
  EXPECT_EQ(plain.value().port, 8501);
}

TEST(HttpClientTls, PlainHttpServerIsAClearError) {
  // A plain TCP server that answers HTTP to a TLS client: the handshake fails with a reason.
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  socklen_t len = sizeof a;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  ::listen(fd, 1);
  std::thread t([fd] {
    int c = ::accept(fd, nullptr, nullptr);
    if (c < 0) return;
    char buf[1024];
    (void)::recv(c, buf, sizeof buf, 0);
    const char reply[] = "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n";
    (void)::send(c, reply, sizeof reply - 1, MSG_NOSIGNAL);
    ::close(c);
  });
  TlsOptions o;
  o.insecure_skip_verify = true;
  auto r = get(url_of("127.0.0.1", ntohs(a.sin_port)), o);
  t.join();
  ::close(fd);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("TLS handshake"), std::string::npos) << r.error().message;
}

}  // namespace
}  // namespace portico::control::http
