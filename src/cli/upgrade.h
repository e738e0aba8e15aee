// Zero-downtime binary upgrade: the old `portico run` serves a unix socket (--upgrade-socket); a
// new `portico run --upgrade` connects to it, receives the listening sockets with SCM_RIGHTS (the
// SAME sockets, so that nothing queued in their accept queues is lost), starts serving on them and
// says "ready"; the old process then closes its copies and drains as on SIGTERM.
//
// Protocol (SOCK_SEQPACKET, one text message per packet, version 1):
//   new → old  "portico-upgrade 1 hello <pid>"
//   old → new  "portico-upgrade 1 sockets <generation> <more 0|1>\n" + one line per fd attached:
//              "listener <address:port> <worker>" or "admin <address:port> 0"  (≤
//              kMaxFdsPerMessage) or "portico-upgrade 1 error <message>"
//   new → old  "portico-upgrade 1 ready <pid>"  (its workers accept: the old one may stop)
// A new process that fails before "ready" closes the connection: the old one keeps serving.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace portico::cli::upgrade {

constexpr int kProtocolVersion = 1;
constexpr size_t kMaxFdsPerMessage = 200;  // below the kernel's SCM_MAX_FD (253)
constexpr size_t kMaxMessage = 64 * 1024;

// The default --upgrade-socket: beside the configuration directory, "<DIR>.upgrade.sock"
// (/etc/portico/conf → /etc/portico/conf.upgrade.sock).
std::string default_socket_path(const std::string& config_dir);

struct Socket {
  enum class Kind { kListener, kAdmin };
  Kind kind = Kind::kListener;
  std::string key;  // "address:port" as proxy::listener_key
  unsigned worker = 0;
  int fd = -1;
};

// --- messages (pure, unit tested) ---
std::string hello_message(pid_t pid);
std::string ready_message(pid_t pid);
std::string error_message(std::string_view message);
// A "sockets" message for sockets[begin, end): their fds travel beside it.
std::string sockets_message(uint64_t generation, const std::vector<Socket>& sockets, size_t begin,
                            size_t end, bool more);

struct Message {
  std::string verb;  // hello, ready, sockets, error
  pid_t pid = 0;     // hello, ready
  uint64_t generation = 0;
  bool more = false;
  std::vector<Socket> sockets;  // fds not filled in
  std::string error;            // the peer's error message
};
// Parses a message; "" or an error (wrong protocol, other version, malformed line).
std::string parse_message(std::string_view text, Message* out);

// Checks that `fd` is a listening TCP socket bound to `key` ("" or why not).
std::string validate_listening_socket(int fd, const std::string& key);

// --- transport ---
// Sends `text` with `fds` attached (SCM_RIGHTS). "" or an error.
std::string send_message(int sock, const std::string& text, const std::vector<int>& fds = {});
// Receives one message and the fds attached (close-on-exec). "" or an error; "closed" at EOF.
std::string receive_message(int sock, std::string* text, std::vector<int>* fds);

// Binds the upgrade socket at `path` (0600, bound under a temporary name and renamed over `path`
// so that it appears whole). When `take_over_path` is false and `path` exists: a socket nobody
// serves (a crashed process's) is replaced; a live one is an error (another process serves it); a
// file that is not a socket is an error. Returns the listening fd or -1 with `error` set.
int listen_socket(const std::string& path, bool take_over_path, std::string* error);

// New process: connects to the old one, says hello and receives every socket (validated; on any
// error the fds received are closed). `conn` stays open for ready_message.
struct Takeover {
  int conn = -1;
  pid_t old_pid = 0;        // the peer, from SO_PEERCRED
  uint64_t generation = 0;  // the old process's
  std::vector<Socket> sockets;
};
std::string take_over(const std::string& path, std::chrono::milliseconds timeout, Takeover* out);

// systemd's sd_notify protocol, without libsystemd: `state` to $NOTIFY_SOCKET when it is set.
void notify_systemd(const std::string& state);

}  // namespace portico::cli::upgrade
