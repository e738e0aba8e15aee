#include "cli/upgrade.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <cstdlib>
#include <cstring>
#include <filesystem>

namespace portico::cli::upgrade {
namespace {

TEST(UpgradeMessages, HelloAndReadyRoundTrip) {
  Message m;
  ASSERT_EQ(parse_message(hello_message(4242), &m), "");
  EXPECT_EQ(m.verb, "hello");
  EXPECT_EQ(m.pid, 4242);
  ASSERT_EQ(parse_message(ready_message(7), &m), "");
  EXPECT_EQ(m.verb, "ready");
  EXPECT_EQ(m.pid, 7);
}

TEST(UpgradeMessages, SocketsRoundTripInBatches) {
  std::vector<Socket> sockets = {{Socket::Kind::kListener, "127.0.0.1:8080", 0, 5},
                                 {Socket::Kind::kListener, "127.0.0.1:8080", 1, 6},
                                 {Socket::Kind::kListener, "::1:443", 0, 7},
                                 {Socket::Kind::kAdmin, "127.0.0.1:9901", 0, 8}};
  Message m;
  ASSERT_EQ(parse_message(sockets_message(3, sockets, 0, 2, true), &m), "");
  EXPECT_EQ(m.verb, "sockets");
  EXPECT_EQ(m.generation, 3u);
  EXPECT_TRUE(m.more);
  ASSERT_EQ(m.sockets.size(), 2u);
  EXPECT_EQ(m.sockets[1].key, "127.0.0.1:8080");
  EXPECT_EQ(m.sockets[1].worker, 1u);
  ASSERT_EQ(parse_message(sockets_message(3, sockets, 2, 4, false), &m), "");
  EXPECT_FALSE(m.more);
  ASSERT_EQ(m.sockets.size(), 2u);
  EXPECT_EQ(m.sockets[0].key, "::1:443");
  EXPECT_EQ(m.sockets[1].kind, Socket::Kind::kAdmin);
}

TEST(UpgradeMessages, ErrorCarriesText) {
  Message m;
  ASSERT_EQ(parse_message(error_message("this process is draining\nreally"), &m), "");
  EXPECT_EQ(m.verb, "error");
  EXPECT_EQ(m.error, "this process is draining really");
}

TEST(UpgradeMessages, RejectsOtherVersionsAndGarbage) {
  Message m;
  EXPECT_NE(parse_message("portico-upgrade 2 hello 12", &m).find("protocol version 2"),
            std::string::npos);
  EXPECT_NE(parse_message("GET / HTTP/1.1", &m), "");
  EXPECT_NE(parse_message("", &m), "");
  EXPECT_NE(parse_message("portico-upgrade 1 hello", &m), "");
  EXPECT_NE(parse_message("portico-upgrade 1 hello 0", &m), "");
  EXPECT_NE(parse_message("portico-upgrade 1 hello -5", &m), "");
  EXPECT_NE(parse_message("portico-upgrade 1 launch 5", &m), "");
  EXPECT_NE(parse_message("portico-upgrade 1 sockets 0 2\n", &m), "");
  EXPECT_NE(parse_message("portico-upgrade 1 sockets 0 0\nlistener nocolon 0\n", &m), "");
  EXPECT_NE(parse_message("portico-upgrade 1 sockets 0 0\nlistener 1.2.3.4:80 x\n", &m), "");
  EXPECT_NE(parse_message("portico-upgrade 1 sockets 0 0\nlistener 1.2.3.4:80 5000\n", &m), "");
  EXPECT_NE(parse_message("portico-upgrade 1 sockets 0 0\nunix /tmp/x:1 0\n", &m), "");
}

TEST(UpgradeSockets, ValidateChecksAddressPortAndState) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(fd, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  socklen_t len = sizeof a;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  const std::string key = "127.0.0.1:" + std::to_string(ntohs(a.sin_port));
  EXPECT_EQ(validate_listening_socket(fd, key), "not a listening socket");
  ASSERT_EQ(::listen(fd, 4), 0);
  EXPECT_EQ(validate_listening_socket(fd, key), "");
  EXPECT_NE(validate_listening_socket(fd, "127.0.0.2:" + std::to_string(ntohs(a.sin_port))), "");
  EXPECT_NE(validate_listening_socket(fd, "127.0.0.1:1"), "");
  EXPECT_NE(validate_listening_socket(fd, "::1:" + std::to_string(ntohs(a.sin_port))), "");
  ::close(fd);
  int pipefd[2];
  ASSERT_EQ(::pipe(pipefd), 0);
  EXPECT_EQ(validate_listening_socket(pipefd[0], key), "descriptor is not a socket");
  ::close(pipefd[0]);
  ::close(pipefd[1]);
}

TEST(UpgradeSockets, DescriptorsTravelWithTheMessage) {
  int pair[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_SEQPACKET, 0, pair), 0);
  int pipefd[2];
  ASSERT_EQ(::pipe(pipefd), 0);
  ASSERT_EQ(send_message(pair[0], "hello", {pipefd[1]}), "");
  std::string text;
  std::vector<int> fds;
  ASSERT_EQ(receive_message(pair[1], &text, &fds), "");
  EXPECT_EQ(text, "hello");
  ASSERT_EQ(fds.size(), 1u);
  ASSERT_EQ(::write(fds[0], "x", 1), 1);  // the same pipe
  char c = 0;
  ASSERT_EQ(::read(pipefd[0], &c, 1), 1);
  EXPECT_EQ(c, 'x');
  ::close(fds[0]);
  ::close(pair[0]);
  EXPECT_EQ(receive_message(pair[1], &text, &fds), "closed");
  ::close(pair[1]);
  ::close(pipefd[0]);
  ::close(pipefd[1]);
}

TEST(UpgradeSockets, ListenReplacesStaleRefusesLiveAndNonSocket) {
  auto dir = std::filesystem::temp_directory_path() / ("portico-upg-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  const std::string path = (dir / "u.sock").string();
  std::string error;
  int fd = listen_socket(path, false, &error);
  ASSERT_GE(fd, 0) << error;
  struct stat st {};
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  EXPECT_EQ(listen_socket(path, false, &error), -1);
  EXPECT_NE(error.find("another portico process"), std::string::npos) << error;
  ::close(fd);  // the file stays: stale
  fd = listen_socket(path, false, &error);
  EXPECT_GE(fd, 0) << error;
  ::close(fd);
  const std::string file = (dir / "f").string();
  ::close(::creat(file.c_str(), 0600));
  EXPECT_EQ(listen_socket(file, false, &error), -1);
  EXPECT_NE(error.find("not a socket"), std::string::npos) << error;
  Takeover t;
  error = take_over((dir / "none.sock").string(), std::chrono::milliseconds(100), &t);
  EXPECT_NE(error.find("no running portico process"), std::string::npos) << error;
  std::filesystem::remove_all(dir);
}

TEST(UpgradeSockets, NotifiesSystemdWhenAsked) {
  int fd = ::socket(AF_UNIX, SOCK_DGRAM, 0);
  ASSERT_GE(fd, 0);
  const std::string path =
      (std::filesystem::temp_directory_path() / ("portico-notify-" + std::to_string(::getpid())))
          .string();
  ::unlink(path.c_str());
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  ::setenv("NOTIFY_SOCKET", path.c_str(), 1);
  notify_systemd("MAINPID=42\nREADY=1");
  ::unsetenv("NOTIFY_SOCKET");
  notify_systemd("READY=1");  // no NOTIFY_SOCKET: nothing sent
  char buf[128] = {};
  ssize_t n = ::recv(fd, buf, sizeof buf, MSG_DONTWAIT);
  EXPECT_EQ(std::string(buf, n > 0 ? static_cast<size_t>(n) : 0), "MAINPID=42\nREADY=1");
  EXPECT_LT(::recv(fd, buf, sizeof buf, MSG_DONTWAIT), 0);
  ::close(fd);
  ::unlink(path.c_str());
}

TEST(UpgradeSockets, DefaultPathBesideTheConfigDir) {
  EXPECT_EQ(default_socket_path("/etc/portico/conf/"), "/etc/portico/conf.upgrade.sock");
  EXPECT_EQ(default_socket_path("/etc/portico/conf"), "/etc/portico/conf.upgrade.sock");
}

}  // namespace
}  // namespace portico::cli::upgrade
