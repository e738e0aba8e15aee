#include "control/http/client.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

namespace portico::control::http {
namespace {

using namespace std::chrono_literals;

// A loopback server: each accepted connection is handed to `serve` on the server thread.
class TestServer {
 public:
  explicit TestServer(std::function<void(int fd)> serve) : serve_(std::move(serve)) {
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
        ++accepted;
        serve_(c);
        ::close(c);
      }
    });
  }
  ~TestServer() {
    ::shutdown(fd_, SHUT_RDWR);
    ::close(fd_);
    thread_.join();
  }
  Url url() const { return Url{"127.0.0.1", port_, ""}; }
  std::atomic<int> accepted{0};

 private:
  std::function<void(int)> serve_;
  int fd_ = -1;
  uint16_t port_ = 0;
  std::thread thread_;
};

// Reads one request head (and nothing of a body).
std::string read_request(int fd) {
  std::string in;
  char buf[4096];
  while (in.find("\r\n\r\n") == std::string::npos) {
    ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n <= 0) return in;
    in.append(buf, static_cast<size_t>(n));
  }
  return in;
}

void write_str(int fd, const std::string& s) {
  ASSERT_EQ(::send(fd, s.data(), s.size(), MSG_NOSIGNAL), static_cast<ssize_t>(s.size()));
}

TEST(HttpClient, ParsesUrls) {
  auto u = parse_url("http://consul.service:8501/v1/", 8500);
  ASSERT_TRUE(u.ok());
  EXPECT_EQ(u.value().host, "consul.service");
  EXPECT_EQ(u.value().port, 8501);
  EXPECT_EQ(u.value().path, "/v1");
  auto d = parse_url("http://[::1]", 8200);
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d.value().host, "::1");
  EXPECT_EQ(d.value().port, 8200);
  EXPECT_TRUE(parse_url("https://vault:8200", 8200).value().https);
  EXPECT_FALSE(parse_url("http://vault:8200", 8200).value().https);
  EXPECT_FALSE(parse_url("ftp://vault:8200", 8200).ok());
  EXPECT_FALSE(parse_url("vault:8200", 8200).ok());
  EXPECT_FALSE(parse_url("http://h:99999", 1).ok());
  EXPECT_FALSE(parse_url("http://user:pw@h", 1).ok());
}

TEST(HttpClient, ReadsLengthAndChunkedBodiesOnOneConnection) {
  std::vector<std::string> seen;
  TestServer server([&](int fd) {
    seen.push_back(read_request(fd));
    write_str(fd, "HTTP/1.1 200 OK\r\nX-Consul-Index: 7\r\nContent-Length: 5\r\n\r\nhello");
    seen.push_back(read_request(fd));
    write_str(fd,
              "HTTP/1.1 404 Not Found\r\nTransfer-Encoding: "
              "chunked\r\n\r\n3;x=y\r\nabc\r\n2\r\nde\r\n0\r\n"
              "Trailer: v\r\n\r\n");
    read_request(fd);  // until the client closes
  });
  Client client(server.url());
  Request r;
  r.target = "/v1/kv/a?index=3";
  r.headers.emplace_back("X-Consul-Token", "t");
  auto first = client.send(r, 2s);
  ASSERT_TRUE(first.ok()) << first.error().message;
  EXPECT_EQ(first.value().status, 200);
  EXPECT_EQ(first.value().body, "hello");
  ASSERT_NE(first.value().header("x-consul-index"), nullptr);
  EXPECT_EQ(*first.value().header("x-consul-index"), "7");
  auto second = client.send(r, 2s);
  ASSERT_TRUE(second.ok()) << second.error().message;
  EXPECT_EQ(second.value().status, 404);
  EXPECT_EQ(second.value().body, "abcde");
  EXPECT_EQ(server.accepted.load(), 1);
  ASSERT_GE(seen.size(), 1u);
  EXPECT_NE(seen[0].find("GET /v1/kv/a?index=3 HTTP/1.1\r\n"), std::string::npos);
  EXPECT_NE(seen[0].find("X-Consul-Token: t\r\n"), std::string::npos);
}

TEST(HttpClient, ResendsOnceWhenAnIdleConnectionWasClosed) {
  TestServer server([&](int fd) {
    read_request(fd);
    write_str(fd, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
    // then closes: the next request on this connection fails and goes on a new one
  });
  Client client(server.url());
  ASSERT_TRUE(client.send({}, 2s).ok());
  std::this_thread::sleep_for(50ms);
  auto again = client.send({}, 2s);
  ASSERT_TRUE(again.ok()) << again.error().message;
  EXPECT_EQ(again.value().body, "ok");
  EXPECT_EQ(server.accepted.load(), 2);
}

TEST(HttpClient, TimesOutAndCancels) {
  std::atomic<bool> release{false};
  TestServer server([&](int fd) {
    read_request(fd);
    while (!release)
      std::this_thread::sleep_for(5ms);
  });
  Client client(server.url());
  auto t0 = std::chrono::steady_clock::now();
  auto r = client.send({}, 150ms);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().kind, ErrorKind::kTimeout);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 2s);
  release = true;

  release = false;
  std::thread canceller([&] {
    std::this_thread::sleep_for(100ms);
    client.cancel();
  });
  t0 = std::chrono::steady_clock::now();
  auto c = client.send({}, 10s);
  canceller.join();
  release = true;
  ASSERT_FALSE(c.ok());
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 5s);
  EXPECT_FALSE(client.send({}, 1s).ok());  // still cancelled
  client.reset_cancel();
}

TEST(HttpClient, RefusesMalformedResponses) {
  TestServer server([&](int fd) {
    read_request(fd);
    write_str(fd, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n");
  });
  Client client(server.url());
  auto r = client.send({}, 2s);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("chunked"), std::string::npos);
}

TEST(HttpClient, StreamsLinesOfAChunkedBody) {
  TestServer server([&](int fd) {
    read_request(fd);
    write_str(fd, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n");
    write_str(fd, "6\r\n{\"a\":1\r\n");
    write_str(fd, "4\r\n}\n{\"\r\n");
    write_str(fd, "6\r\nb\":2}\n\r\n0\r\n\r\n");
  });
  Client client(server.url());
  int head_status = 0;
  std::vector<std::string> lines;
  auto r = client.stream_lines(
      Request{"POST", "/v3/watch", {}, "{}"},
      [&](const Response& h) {
        head_status = h.status;
        return true;
      },
      [&](std::string_view l) {
        lines.emplace_back(l);
        return true;
      },
      2s);
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(head_status, 200);
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_EQ(lines[0], "{\"a\":1}");
  EXPECT_EQ(lines[1], "{\"b\":2}");
}

TEST(HttpClient, EscapesUrlParts) {
  EXPECT_EQ(url_escape("a b/c~"), "a%20b%2Fc~");
  EXPECT_EQ(url_escape("gloo/v1/Upstream", true), "gloo/v1/Upstream");
}

}  // namespace
}  // namespace portico::control::http
