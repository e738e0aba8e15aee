#include "cli/upgrade.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <set>

namespace portico::cli::upgrade {

namespace {

constexpr std::string_view kMagic = "portico-upgrade";

std::string header(std::string_view verb) {
  return std::string(kMagic) + " " + std::to_string(kProtocolVersion) + " " + std::string(verb);
}

std::vector<std::string_view> split(std::string_view s, char sep) {
  std::vector<std::string_view> out;
  size_t start = 0;
  while (start <= s.size()) {
    size_t end = s.find(sep, start);
    if (end == std::string_view::npos) end = s.size();
    out.push_back(s.substr(start, end - start));
    start = end + 1;
  }
  return out;
}

bool parse_u64(std::string_view s, uint64_t max, uint64_t* out) {
  if (s.empty() || s.size() > 19) return false;
  uint64_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
    v = v * 10 + static_cast<uint64_t>(c - '0');
  }
  if (v > max) return false;
  *out = v;
  return true;
}

bool fill_unix_address(const std::string& path, sockaddr_un* addr, std::string* error) {
  *addr = {};
  addr->sun_family = AF_UNIX;
  if (path.empty() || path.size() >= sizeof addr->sun_path) {
    *error = "upgrade socket path '" + path + "' is empty or longer than " +
             std::to_string(sizeof addr->sun_path - 1) + " bytes";
    return false;
  }
  std::memcpy(addr->sun_path, path.c_str(), path.size() + 1);
  return true;
}

std::string errno_text(const std::string& what) {
  return what + ": " + std::strerror(errno);
}

// Waits until `fd` is readable; false on timeout.
bool wait_readable(int fd, std::chrono::milliseconds timeout) {
  pollfd p{fd, POLLIN, 0};
  for (;;) {
    int n = ::poll(&p, 1, static_cast<int>(timeout.count()));
    if (n < 0 && errno == EINTR) continue;
    return n > 0;
  }
}

}  // namespace

std::string default_socket_path(const std::string& config_dir) {
  std::string dir = config_dir;
  while (dir.size() > 1 && dir.back() == '/')
    dir.pop_back();
  return dir + ".upgrade.sock";
}

std::string hello_message(pid_t pid) {
  return header("hello") + " " + std::to_string(pid);
}

std::string ready_message(pid_t pid) {
  return header("ready") + " " + std::to_string(pid);
}

std::string error_message(std::string_view message) {
  std::string m(message);
  for (char& c : m) {
    if (c == '\n') c = ' ';
  }
  return header("error") + " " + m;
}

std::string sockets_message(uint64_t generation, const std::vector<Socket>& sockets, size_t begin,
                            size_t end, bool more) {
  std::string out =
      header("sockets") + " " + std::to_string(generation) + " " + (more ? "1" : "0") + "\n";
  for (size_t i = begin; i < end; ++i) {
    const Socket& s = sockets[i];
    out += (s.kind == Socket::Kind::kAdmin ? "admin " : "listener ") + s.key + " " +
           std::to_string(s.worker) + "\n";
  }
  return out;
}

std::string parse_message(std::string_view text, Message* out) {
  *out = {};
  auto lines = split(text, '\n');
  if (!lines.empty() && lines.back().empty()) lines.pop_back();
  if (lines.empty()) return "empty message";
  auto words = split(lines[0], ' ');
  if (words.size() < 3 || words[0] != kMagic) return "not a portico upgrade message";
  uint64_t version = 0;
  if (!parse_u64(words[1], 1000000, &version)) return "malformed protocol version";
  if (version != kProtocolVersion) {
    return "protocol version " + std::to_string(version) + " (this process speaks " +
           std::to_string(kProtocolVersion) + ")";
  }
  out->verb = std::string(words[2]);
  if (out->verb == "error") {
    std::string_view first = lines[0];
    size_t at = first.find(" error ");
    out->error = at != std::string_view::npos ? std::string(first.substr(at + 7)) : "(no message)";
    return "";
  }
  if (out->verb == "hello" || out->verb == "ready") {
    uint64_t pid = 0;
    if (words.size() != 4 || lines.size() != 1 || !parse_u64(words[3], 1u << 30, &pid) ||
        pid == 0) {
      return "malformed " + out->verb + " message";
    }
    out->pid = static_cast<pid_t>(pid);
    return "";
  }
  if (out->verb != "sockets") return "unknown message '" + out->verb + "'";
  uint64_t more = 0;
  if (words.size() != 5 || !parse_u64(words[3], UINT64_MAX / 2, &out->generation) ||
      !parse_u64(words[4], 1, &more)) {
    return "malformed sockets header";
  }
  out->more = more == 1;
  for (size_t i = 1; i < lines.size(); ++i) {
    auto w = split(lines[i], ' ');
    uint64_t worker = 0;
    if (w.size() != 3 || (w[0] != "listener" && w[0] != "admin") || w[1].empty() ||
        w[1].find(':') == std::string_view::npos || !parse_u64(w[2], 1023, &worker)) {
      return "malformed socket line '" + std::string(lines[i]) + "'";
    }
    Socket s;
    s.kind = w[0] == "admin" ? Socket::Kind::kAdmin : Socket::Kind::kListener;
    s.key = std::string(w[1]);
    s.worker = static_cast<unsigned>(worker);
    out->sockets.push_back(std::move(s));
  }
  return "";
}

std::string validate_listening_socket(int fd, const std::string& key) {
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISSOCK(st.st_mode)) return "descriptor is not a socket";
  int type = 0, listening = 0;
  socklen_t len = sizeof type;
  if (::getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) != 0 || type != SOCK_STREAM)
    return "not a stream socket";
  len = sizeof listening;
  if (::getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &len) != 0 || listening != 1)
    return "not a listening socket";
  sockaddr_storage ss{};
  len = sizeof ss;
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0)
    return errno_text("getsockname");
  char text[INET6_ADDRSTRLEN] = {};
  uint16_t port = 0;
  if (ss.ss_family == AF_INET) {
    auto* a = reinterpret_cast<sockaddr_in*>(&ss);
    ::inet_ntop(AF_INET, &a->sin_addr, text, sizeof text);
    port = ntohs(a->sin_port);
  } else if (ss.ss_family == AF_INET6) {
    auto* a = reinterpret_cast<sockaddr_in6*>(&ss);
    ::inet_ntop(AF_INET6, &a->sin6_addr, text, sizeof text);
    port = ntohs(a->sin6_port);
  } else {
    return "not a TCP socket";
  }
  // The key names the address as configured ("::" or "0:0::0" alike): compare parsed forms.
  size_t colon = key.rfind(':');
  std::string want_addr = key.substr(0, colon);
  uint64_t want_port = 0;
  if (!parse_u64(std::string_view(key).substr(colon + 1), 65535, &want_port) || want_port != port) {
    return "bound to port " + std::to_string(port) + ", not " + key;
  }
  unsigned char want[sizeof(in6_addr)] = {}, got[sizeof(in6_addr)] = {};
  int family = want_addr.find(':') != std::string::npos ? AF_INET6 : AF_INET;
  if (family != ss.ss_family || ::inet_pton(family, want_addr.c_str(), want) != 1 ||
      ::inet_pton(family, text, got) != 1 ||
      std::memcmp(want, got, family == AF_INET ? sizeof(in_addr) : sizeof(in6_addr)) != 0) {
    return std::string("bound to ") + text + ", not " + key;
  }
  return "";
}

std::string send_message(int sock, const std::string& text, const std::vector<int>& fds) {
  if (text.size() > kMaxMessage || fds.size() > kMaxFdsPerMessage) return "message too large";
  iovec iov{const_cast<char*>(text.data()), text.size()};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  std::vector<char> control;
  if (!fds.empty()) {
    control.resize(CMSG_SPACE(sizeof(int) * fds.size()));
    msg.msg_control = control.data();
    msg.msg_controllen = control.size();
    cmsghdr* c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int) * fds.size());
    std::memcpy(CMSG_DATA(c), fds.data(), sizeof(int) * fds.size());
  }
  for (;;) {
    ssize_t n = ::sendmsg(sock, &msg, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return errno_text("send");
    if (static_cast<size_t>(n) != text.size()) return "short send";
    return "";
  }
}

std::string receive_message(int sock, std::string* text, std::vector<int>* fds) {
  fds->clear();
  text->assign(kMaxMessage, '\0');
  iovec iov{text->data(), text->size()};
  std::vector<char> control(CMSG_SPACE(sizeof(int) * kMaxFdsPerMessage));
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control.data();
  msg.msg_controllen = control.size();
  ssize_t n;
  do {
    n = ::recvmsg(sock, &msg, MSG_CMSG_CLOEXEC);
  } while (n < 0 && errno == EINTR);
  if (n < 0) return errno_text("receive");
  for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
    size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    for (size_t i = 0; i < count; ++i) {
      int fd;
      std::memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof fd);
      fds->push_back(fd);
    }
  }
  auto fail = [&](std::string why) {
    for (int fd : *fds)
      ::close(fd);
    fds->clear();
    return why;
  };
  if (msg.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) return fail("message or descriptors truncated");
  if (n == 0) return fail("closed");
  text->resize(static_cast<size_t>(n));
  return "";
}

int listen_socket(const std::string& path, bool take_over_path, std::string* error) {
  sockaddr_un addr{};
  if (!fill_unix_address(path, &addr, error)) return -1;
  struct stat st {};
  if (!take_over_path && ::lstat(path.c_str(), &st) == 0) {
    if (!S_ISSOCK(st.st_mode)) {
      *error = "upgrade socket path " + path + " exists and is not a socket";
      return -1;
    }
    int probe = ::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
    int rc = ::connect(probe, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
    int e = errno;
    ::close(probe);
    if (rc == 0) {
      *error = "another portico process serves the upgrade socket " + path +
               " (take over from it with --upgrade, or choose another --upgrade-socket)";
      return -1;
    }
    if (e != ECONNREFUSED) {
      *error = "upgrade socket " + path + ": " + std::strerror(e);
      return -1;
    }
    // Nobody listens: a stale file left by a process that died. Replaced below by the rename.
  }
  std::string tmp = path + "." + std::to_string(::getpid()) + ".tmp";
  sockaddr_un tmp_addr{};
  if (!fill_unix_address(tmp, &tmp_addr, error)) return -1;
  ::unlink(tmp.c_str());
  int fd = ::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) {
    *error = errno_text("upgrade socket");
    return -1;
  }
  if (::bind(fd, reinterpret_cast<sockaddr*>(&tmp_addr), sizeof tmp_addr) != 0) {
    *error = errno_text("cannot bind upgrade socket " + tmp);
    ::close(fd);
    return -1;
  }
  if (::chmod(tmp.c_str(), 0600) != 0 || ::listen(fd, 4) != 0 ||
      ::rename(tmp.c_str(), path.c_str()) != 0) {
    *error = errno_text("upgrade socket " + path);
    ::unlink(tmp.c_str());
    ::close(fd);
    return -1;
  }
  return fd;
}

std::string take_over(const std::string& path, std::chrono::milliseconds timeout, Takeover* out) {
  *out = {};
  std::string error;
  sockaddr_un addr{};
  if (!fill_unix_address(path, &addr, &error)) return error;
  int sock = ::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
  if (sock < 0) return errno_text("socket");
  if (::connect(sock, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    std::string e =
        "no running portico process at upgrade socket " + path + ": " + std::strerror(errno);
    ::close(sock);
    return e;
  }
  ucred cred{};
  socklen_t cred_len = sizeof cred;
  if (::getsockopt(sock, SOL_SOCKET, SO_PEERCRED, &cred, &cred_len) == 0) out->old_pid = cred.pid;
  std::vector<Socket> sockets;
  auto fail = [&](std::string why) {
    for (auto& s : sockets)
      ::close(s.fd);
    ::close(sock);
    return why;
  };
  error = send_message(sock, hello_message(::getpid()));
  if (!error.empty()) return fail(error);
  std::set<std::pair<std::string, unsigned>> seen;
  for (;;) {
    if (!wait_readable(sock, timeout)) return fail("no answer from the running process");
    std::string text;
    std::vector<int> fds;
    error = receive_message(sock, &text, &fds);
    if (error == "closed") return fail("the running process closed the upgrade connection");
    if (!error.empty()) return fail(error);
    Message m;
    error = parse_message(text, &m);
    if (error.empty() && m.verb == "error") error = "the running process refused: " + m.error;
    if (error.empty() && m.verb != "sockets") error = "unexpected '" + m.verb + "' message";
    if (error.empty() && m.sockets.size() != fds.size()) {
      error = std::to_string(fds.size()) + " descriptors for " + std::to_string(m.sockets.size()) +
              " sockets";
    }
    // The descriptors are ours from now on (closed by fail()).
    for (size_t i = 0; i < m.sockets.size() && i < fds.size(); ++i) {
      m.sockets[i].fd = fds[i];
      sockets.push_back(m.sockets[i]);
    }
    for (size_t i = m.sockets.size(); i < fds.size(); ++i)
      ::close(fds[i]);
    if (!error.empty()) return fail(error);
    for (size_t i = sockets.size() - m.sockets.size(); i < sockets.size(); ++i) {
      const Socket& s = sockets[i];
      unsigned slot = s.kind == Socket::Kind::kAdmin ? 1u << 20 : s.worker;
      if (!seen.insert({s.key, slot}).second) return fail("socket " + s.key + " sent twice");
      std::string why = validate_listening_socket(s.fd, s.key);
      if (!why.empty()) return fail("socket for " + s.key + ": " + why);
      // Our workers wait on them with epoll: non-blocking, as the old process had them.
      int flags = ::fcntl(s.fd, F_GETFL);
      if (flags < 0 || ::fcntl(s.fd, F_SETFL, flags | O_NONBLOCK) != 0)
        return fail(errno_text("fcntl"));
    }
    out->generation = m.generation;
    if (!m.more) break;
  }
  pid_t old_pid = out->old_pid;
  out->conn = sock;
  out->old_pid = old_pid;
  out->sockets = std::move(sockets);
  return "";
}

void notify_systemd(const std::string& state) {
  const char* path = std::getenv("NOTIFY_SOCKET");
  if (path == nullptr || (path[0] != '/' && path[0] != '@')) return;
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  size_t len = std::strlen(path);
  if (len >= sizeof addr.sun_path) return;
  std::memcpy(addr.sun_path, path, len);
  if (path[0] == '@') addr.sun_path[0] = '\0';  // abstract namespace
  int fd = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return;
  ::sendto(fd, state.data(), state.size(), MSG_NOSIGNAL, reinterpret_cast<sockaddr*>(&addr),
           static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + len));
  ::close(fd);
}

}  // namespace portico::cli::upgrade
