// `portico run DIR`: the embedded default. The control plane (file source, translation, statuses)
// and the data plane (workers) in one process. The main thread runs the control plane and the admin
// API on one io_context; the workers run their own loops.
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <asio.hpp>

#include <cctype>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <future>
#include <optional>
#include <thread>
#include <unordered_set>

#include "cli/args.h"
#include "cli/commands.h"
#include "cli/control_loop.h"
#include "cli/fleet_auth.h"
#include "cli/upgrade.h"
#include "cli/write_api.h"
#include "common/log.h"
#include "control/discovery/discoveries.h"
#include "control/pipeline.h"
#include "control/sources/config_dir.h"
#include "control/sources/factory.h"
#include "control/sources/file_source.h"
#include "control/sources/file_watcher.h"
#include "proxy/access_log/writer.h"
#include "proxy/admin/admin.h"
#include "proxy/overload/overload.h"
#include "proxy/server.h"
#include "proxy/stats/stats.h"
#include "snapshot/proxy_config.h"

namespace portico::cli {

namespace {

using Clock = std::chrono::steady_clock;

struct RunOptions {
  std::filesystem::path dir;
  std::string admin_host = "127.0.0.1";
  uint16_t admin_port = 9901;
  unsigned workers = 0;
  // A full re-read of the configuration this often, for anything inotify missed; 0: never.
  std::chrono::milliseconds resync{30000};
  // Binary upgrade: the unix socket this process serves (default upgrade::default_socket_path),
  // and whether to take the listening sockets over from the process serving it.
  std::string upgrade_socket;
  bool upgrade = false;
  std::vector<std::string> args;  // as given, for SIGUSR2's re-execution
};

bool parse_run_options(const std::vector<std::string>& args, RunOptions* o) {
  FlagWalker w("portico run", args);
  while (w.next()) {
    const std::string& a = w.arg();
    if (a == "--admin") {
      const std::string* v = w.value();
      if (!v || !parse_host_port(*v, &o->admin_host, &o->admin_port)) {
        if (v) std::fprintf(stderr, "portico run: --admin wants ADDR:PORT, got '%s'\n", v->c_str());
        return false;
      }
    } else if (a == "--workers") {
      const std::string* v = w.value();
      if (!v) return false;
      char* end = nullptr;
      long n = std::strtol(v->c_str(), &end, 10);
      if (*end != '\0' || n < 1 || n > 64) {
        std::fprintf(stderr, "portico run: --workers wants 1..64, got '%s'\n", v->c_str());
        return false;
      }
      o->workers = static_cast<unsigned>(n);
    } else if (a == "--resync") {
      const std::string* v = w.value();
      if (!v || !parse_duration(*v, &o->resync)) {
        if (v) {
          std::fprintf(stderr,
                       "portico run: --resync wants a duration (30s, 500ms, 2m, 0), got '%s'\n",
                       v->c_str());
        }
        return false;
      }
    } else if (a == "--upgrade-socket") {
      const std::string* v = w.value();
      if (!v || v->empty()) {
        if (v) std::fprintf(stderr, "portico run: --upgrade-socket wants a path\n");
        return false;
      }
      o->upgrade_socket = *v;
    } else if (a == "--upgrade") {
      if (w.has_inline()) {
        std::fprintf(stderr, "portico run: --upgrade takes no value\n");
        return false;
      }
      o->upgrade = true;
    } else if (a == "--log-level") {
      const std::string* v = w.value();
      log::Level level;
      if (!v || !log::parse_level(*v, &level)) {
        if (v) std::fprintf(stderr, "portico run: unknown log level '%s'\n", v->c_str());
        return false;
      }
      log::set_level(level);
    } else if (!a.empty() && a[0] == '-') {
      std::fprintf(stderr, "portico run: unknown flag '%s'\n", a.c_str());
      return false;
    } else if (o->dir.empty()) {
      o->dir = a;
    } else {
      std::fprintf(stderr, "portico run: unexpected argument '%s'\n", a.c_str());
      return false;
    }
  }
  if (o->dir.empty()) {
    std::fprintf(stderr,
                 "usage: portico run DIR [--admin ADDR:PORT] [--workers N] [--resync 30s]\n"
                 "                       [--upgrade-socket PATH] [--upgrade]\n");
    return false;
  }
  if (o->upgrade_socket.empty()) {
    std::error_code ec;
    auto abs = std::filesystem::absolute(o->dir, ec);
    o->upgrade_socket = upgrade::default_socket_path(ec ? o->dir.string() : abs.string());
  }
  o->args = args;
  return true;
}

void raise_fd_limit() {
  rlimit rl{};
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
}

class Runner {
 public:
  Runner(RunOptions options, unsigned workers)
      : options_(std::move(options)),
        registry_(workers),
        server_(workers, registry_),
        loop_(
            io_, options_.dir,
            [this](std::shared_ptr<const snapshot::ProxyConfig> config) {
              std::vector<control::ListenerFailure> failures;
              for (auto& e : server_.apply(std::move(config)))
                failures.push_back({e.listener, e.message, e.sources});
              return failures;
            },
            options_.resync),
        pipeline_(loop_.pipeline()),
        admin_(io_,
               [this](const proxy::admin::Request& r) {
                 // POST /v1/apply, DELETE /v1/resources/...: only on a loopback admin address
                 // (it has no token).
                 WriteAccess access;
                 if (!is_loopback(options_.admin_host)) {
                   access.refused = "writes go through a loopback admin address only";
                 }
                 if (auto w = serve_write(pipeline_, r, access)) return std::move(*w);
                 return admin(r.method, r.path, r.query);
               }),
        signals_(io_, SIGTERM, SIGINT),
        reopen_signal_(io_, SIGUSR1),
        upgrade_signal_(io_, SIGUSR2),
        upgrade_acceptor_(io_) {
    char buf[4096];
    ssize_t n = ::readlink("/proc/self/exe", buf, sizeof buf - 1);
    if (n > 0) self_exe_.assign(buf, static_cast<size_t>(n));
  }

  int run() {
    std::error_code ec;
    if (!std::filesystem::is_directory(options_.dir, ec)) {
      std::fprintf(stderr, "portico run: %s is not a directory\n", options_.dir.c_str());
      return 2;
    }
    start_unix_ms_ = unix_ms();
    upgrade::Takeover takeover;
    int admin_fd = -1;
    std::string admin_key;
    if (options_.upgrade) {
      std::string err =
          upgrade::take_over(options_.upgrade_socket, std::chrono::seconds(10), &takeover);
      if (!err.empty()) {
        std::fprintf(stderr, "portico run --upgrade: %s\n", err.c_str());
        return 1;
      }
      generation_ = takeover.generation + 1;
      std::map<std::string, std::vector<std::pair<unsigned, int>>> by_key;
      for (const auto& s : takeover.sockets) {
        if (s.kind == upgrade::Socket::Kind::kListener) {
          by_key[s.key].emplace_back(s.worker, s.fd);
        } else if (admin_fd < 0) {
          admin_fd = s.fd;
          admin_key = s.key;
        } else {
          ::close(s.fd);
        }
      }
      std::map<std::string, std::vector<int>> inherited;
      std::string summary;
      for (auto& [key, list] : by_key) {
        std::sort(list.begin(), list.end());
        for (const auto& [worker, fd] : list)
          inherited[key].push_back(fd);
        summary += (summary.empty() ? "" : ", ") + key + " x" + std::to_string(list.size());
      }
      LOG_INFO(
          "upgrade: process %d handed over %zu listening sockets (%s) and %s (generation %llu)",
          static_cast<int>(takeover.old_pid), takeover.sockets.size() - (admin_fd >= 0),
          summary.empty() ? "none" : summary.c_str(),
          admin_fd >= 0 ? ("the admin socket " + admin_key).c_str() : "no admin socket",
          static_cast<unsigned long long>(generation_));
      server_.inherit(std::move(inherited), true);
    } else {
      std::string err;
      upgrade_fd_ = upgrade::listen_socket(options_.upgrade_socket, false, &err);
      if (upgrade_fd_ < 0) {
        std::fprintf(stderr, "portico run: %s\n", err.c_str());
        return 1;
      }
    }
    // A new process that gives up before it is ready: the old one keeps serving, untouched.
    auto give_up = [&](const std::string& why) {
      std::fprintf(stderr, "portico run --upgrade: %s; process %d keeps serving\n", why.c_str(),
                   static_cast<int>(takeover.old_pid));
      server_.close_held();
      server_.close_unused_inherited();
      if (admin_fd >= 0) ::close(admin_fd);
      if (upgrade_fd_ >= 0) ::close(upgrade_fd_);
      ::close(takeover.conn);
      server_.stop();
      server_.join();
      return 1;
    };
    server_.start();
    loop_.set_hooks({[this] { registry_.count_reload_error(); },
                     [this](const control::Pipeline::SyncResult& r,
                            ControlLoop::Clock::time_point t) { on_built(r, t); }});
    loop_.start();
    if (options_.upgrade) {
      // Refused whole: a file that does not parse, a Rejected resource (a Gateway whose port
      // cannot be bound among them).
      if (pipeline_.version() == 0 || !pipeline_.last_build_ok()) {
        return give_up("configuration build failed: " + pipeline_.last_error());
      }
      if (!pipeline_.current().ok()) {
        std::string first;
        for (const auto& d : pipeline_.current().file_errors) {
          first = d.to_string();
          break;
        }
        for (const auto& r : pipeline_.current().resources) {
          if (!first.empty()) break;
          if (r.state != control::State::kRejected) continue;
          first = r.kind + " " + r.ns + "/" + r.name + " rejected";
          if (!r.reasons.empty()) first += ": " + r.reasons[0].to_string();
        }
        return give_up("the configuration has errors (" + first + ")");
      }
      for (const auto& key : server_.close_unused_inherited())
        LOG_INFO("upgrade: listener %s is not in the configuration: its sockets closed",
                 key.c_str());
    }
    std::string err;
    if (admin_fd >= 0 &&
        admin_key == options_.admin_host + ":" + std::to_string(options_.admin_port)) {
      err = admin_.adopt(admin_fd);
      admin_fd = -1;
    } else {
      if (admin_fd >= 0) {
        LOG_INFO("upgrade: admin address changed (%s before): binding %s:%u", admin_key.c_str(),
                 options_.admin_host.c_str(), options_.admin_port);
        ::close(admin_fd);
        admin_fd = -1;
      }
      err = admin_.listen(options_.admin_host, options_.admin_port);
    }
    if (!err.empty() && options_.upgrade) return give_up("admin listener: " + err);
    if (!err.empty()) {
      std::fprintf(stderr, "portico run: admin listener: %s\n", err.c_str());
      ::close(upgrade_fd_);
      ::unlink(options_.upgrade_socket.c_str());
      server_.stop();
      server_.join();
      return 1;
    }
    if (options_.upgrade) {
      upgrade_fd_ = upgrade::listen_socket(options_.upgrade_socket, true, &err);
      if (upgrade_fd_ < 0) return give_up(err);
      // Our workers take the sockets; once every one of them accepts, the old process may stop.
      server_.release_held();
      auto applied = std::make_shared<std::promise<void>>();
      auto done = applied->get_future();
      server_.when_applied([applied] { applied->set_value(); });
      if (done.wait_for(std::chrono::seconds(10)) != std::future_status::ready)
        LOG_WARN("upgrade: workers slow to take the sockets");
      err = upgrade::send_message(takeover.conn, upgrade::ready_message(::getpid()));
      ::close(takeover.conn);
      if (!err.empty()) {
        LOG_WARN("upgrade: could not tell process %d to drain: %s",
                 static_cast<int>(takeover.old_pid), err.c_str());
      } else {
        LOG_INFO("upgrade: serving; process %d told to stop accepting and drain",
                 static_cast<int>(takeover.old_pid));
      }
      upgrade::notify_systemd("MAINPID=" + std::to_string(::getpid()) + "\nREADY=1");
    } else {
      upgrade::notify_systemd("READY=1");
    }
    struct stat st {};
    if (::stat(options_.upgrade_socket.c_str(), &st) == 0) {
      upgrade_dev_ = st.st_dev;
      upgrade_ino_ = st.st_ino;
    }
    upgrade_acceptor_.assign(upgrade_fd_);
    upgrade_fd_ = -1;
    accept_upgrades();
    wait_for_upgrade_signal();
    LOG_INFO("admin API on http://%s:%u (ready, stats, config_dump, resources)",
             options_.admin_host.c_str(), admin_.port());
    signals_.async_wait([this](const asio::error_code& e, int sig) {
      if (!e) shutdown(("signal " + std::to_string(sig)).c_str(), false);
    });
    wait_for_reopen();
    loop_.start_resync();
    ready_ = true;
    io_.run();
    // After a signal the joiner thread waits for the workers; otherwise wait here.
    if (joiner_.joinable()) {
      joiner_.join();
    } else {
      server_.join();
    }
    // Every worker is done: the access log lines still buffered are written now.
    proxy::access_log::Manager::instance().stop();
    proxy::overload::Monitor::instance().stop();
    // The upgrade socket's path is removed unless a newer process replaced it.
    struct stat now {};
    if (::stat(options_.upgrade_socket.c_str(), &now) == 0 && now.st_dev == upgrade_dev_ &&
        now.st_ino == upgrade_ino_) {
      ::unlink(options_.upgrade_socket.c_str());
    }
    LOG_INFO("stopped");
    return 0;
  }

 private:
  // SIGUSR1: access log files are reopened (after logrotate renamed them).
  void wait_for_reopen() {
    reopen_signal_.async_wait([this](const asio::error_code& e, int) {
      if (e) return;
      LOG_INFO("SIGUSR1: reopening access log files");
      proxy::access_log::Manager::instance().reopen();
      wait_for_reopen();
    });
  }

  // --- binary upgrade, old side: hand the listening sockets to a new process ---
  void accept_upgrades() {
    upgrade_acceptor_.async_wait(
        asio::posix::stream_descriptor::wait_read, [this](const asio::error_code& e) {
          if (e) return;
          int c = ::accept4(upgrade_acceptor_.native_handle(), nullptr, nullptr, SOCK_CLOEXEC);
          if (c >= 0) on_upgrade_connection(c);
          accept_upgrades();
        });
  }

  void on_upgrade_connection(int c) {
    if (draining_ || upgrade_conn_) {
      upgrade::send_message(
          c, upgrade::error_message(draining_ ? "this process is draining"
                                              : "an upgrade is already in progress"));
      ::close(c);
      return;
    }
    // The file is 0600; the peer's user is checked as well (root or ourselves).
    ucred cred{};
    socklen_t len = sizeof cred;
    if (::getsockopt(c, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0 ||
        (cred.uid != 0 && cred.uid != ::geteuid())) {
      LOG_WARN("upgrade: connection from uid %u refused", static_cast<unsigned>(cred.uid));
      upgrade::send_message(c, upgrade::error_message("permission denied"));
      ::close(c);
      return;
    }
    timeval tv{2, 0};  // sends are bounded; the new process reads at once
    ::setsockopt(c, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    upgrade_conn_ = std::make_unique<asio::posix::stream_descriptor>(io_, c);
    upgrade_peer_ = 0;
    // A peer that does not say hello in time is dropped (it would block later upgrades). Once the
    // sockets are sent there is no deadline: the new process says ready or its end closes the
    // connection.
    upgrade_hello_timer_.expires_after(std::chrono::seconds(10));
    upgrade_hello_timer_.async_wait([this](const asio::error_code& e) {
      if (!e && upgrade_conn_ && upgrade_peer_ == 0) end_upgrade("no hello within 10 s", true);
    });
    wait_upgrade_message();
  }

  void wait_upgrade_message() {
    upgrade_conn_->async_wait(
        asio::posix::stream_descriptor::wait_read, [this](const asio::error_code& e) {
          if (e || !upgrade_conn_) return;
          std::string text;
          std::vector<int> fds;
          std::string err = upgrade::receive_message(upgrade_conn_->native_handle(), &text, &fds);
          for (int fd : fds)
            ::close(fd);  // a new process sends none
          upgrade::Message m;
          if (err.empty()) err = upgrade::parse_message(text, &m);
          if (err == "closed") {
            end_upgrade("it closed the connection before it was ready", false);
          } else if (!err.empty()) {
            end_upgrade(err, true);
          } else if (m.verb == "hello" && upgrade_peer_ == 0) {
            upgrade_hello_timer_.cancel();
            upgrade_peer_ = m.pid;
            if (send_sockets()) wait_upgrade_message();
          } else if (m.verb == "ready" && upgrade_peer_ != 0) {
            LOG_INFO("upgrade: process %d serves on the sockets: stop accepting, drain and exit",
                     static_cast<int>(upgrade_peer_));
            upgrade_conn_.reset();
            ++upgrades_completed_;
            shutdown("upgrade", true);
          } else {
            end_upgrade("unexpected '" + m.verb + "' message", true);
          }
        });
  }

  bool send_sockets() {
    std::vector<upgrade::Socket> sockets;
    std::string summary;
    for (const auto& [key, worker, fd] : server_.listening_sockets()) {
      sockets.push_back({upgrade::Socket::Kind::kListener, key, worker, fd});
      if (summary.find(key + " ") == std::string::npos) summary += key + " ";
    }
    if (int fd = admin_.native_handle(); fd >= 0) {
      sockets.push_back({upgrade::Socket::Kind::kAdmin,
                         options_.admin_host + ":" + std::to_string(admin_.port()), 0, fd});
      summary += "admin " + sockets.back().key;
    }
    size_t begin = 0;
    do {
      size_t end = std::min(sockets.size(), begin + upgrade::kMaxFdsPerMessage);
      std::vector<int> fds;
      for (size_t i = begin; i < end; ++i)
        fds.push_back(sockets[i].fd);
      std::string err = upgrade::send_message(
          upgrade_conn_->native_handle(),
          upgrade::sockets_message(generation_, sockets, begin, end, end < sockets.size()), fds);
      if (!err.empty()) {
        end_upgrade(err, false);
        return false;
      }
      begin = end;
    } while (begin < sockets.size());
    LOG_INFO("upgrade: process %d asked for the listening sockets: sent %zu (%s)",
             static_cast<int>(upgrade_peer_), sockets.size(), summary.c_str());
    return true;
  }

  void end_upgrade(const std::string& why, bool reply) {
    if (reply && upgrade_conn_) {
      upgrade::send_message(upgrade_conn_->native_handle(), upgrade::error_message(why));
    }
    LOG_WARN("upgrade: new process %d: %s; this process keeps serving",
             static_cast<int>(upgrade_peer_), why.c_str());
    ++upgrades_failed_;
    upgrade_conn_.reset();
    upgrade_peer_ = 0;
  }

  // SIGUSR2: this binary (its path as started) re-executed with --upgrade; it takes over.
  void wait_for_upgrade_signal() {
    upgrade_signal_.async_wait([this](const asio::error_code& e, int) {
      if (e) return;
      if (draining_ || upgrade_conn_) {
        LOG_WARN("SIGUSR2: ignored (%s)", draining_ ? "draining" : "an upgrade is in progress");
      } else {
        reexec();
      }
      wait_for_upgrade_signal();
    });
  }

  void reexec() {
    if (self_exe_.empty()) {
      LOG_ERROR("SIGUSR2: cannot tell this binary's path");
      return;
    }
    std::vector<std::string> args = {self_exe_, "run"};
    for (const auto& a : options_.args) {
      if (a != "--upgrade") args.push_back(a);
    }
    args.push_back("--upgrade-socket=" + options_.upgrade_socket);
    args.push_back("--upgrade");
    std::vector<char*> argv;
    for (auto& a : args)
      argv.push_back(a.data());
    argv.push_back(nullptr);
    // Everything is prepared before fork: the children call only async-signal-safe functions.
    // Double fork: the new process is not our child (it outlives us).
    pid_t pid = ::fork();
    if (pid < 0) {
      LOG_ERROR("SIGUSR2: fork: %s", std::strerror(errno));
      return;
    }
    if (pid == 0) {
      if (::fork() == 0) {
        sigset_t none;
        sigemptyset(&none);
        ::sigprocmask(SIG_SETMASK, &none, nullptr);
        // Nothing of ours leaks into it (client connections would stay open in it).
        if (::syscall(SYS_close_range, 3u, ~0u, 0u) != 0) {
          for (int fd = 3; fd < 65536; ++fd)
            ::close(fd);
        }
        ::execv(argv[0], argv.data());
        ::_exit(127);
      }
      ::_exit(0);
    }
    ::waitpid(pid, nullptr, 0);
    LOG_INFO("SIGUSR2: started %s run ... --upgrade", self_exe_.c_str());
  }

  // A new build (published or not): the data plane's version, the listeners it could not open.
  void on_built(const control::Pipeline::SyncResult& result,
                ControlLoop::Clock::time_point started) {
    const auto& current = pipeline_.current();
    if (result.published) {
      registry_.set_config(result.version, unix_ms());
      registry_.count_reload();
      const uint64_t version = result.version;
      server_.when_applied([this, version] {
        asio::post(io_, [this, version] { pipeline_.applied(version, unix_ms()); });
      });
      for (const auto& r : current.resources) {
        if (r.kind != "Gateway" || r.state != control::State::kRejected) continue;
        for (const auto& d : r.reasons) {
          if (d.path == "spec.bindPort" && d.message.rfind("cannot listen", 0) == 0)
            LOG_ERROR("listener %s/%s: %s", r.ns.c_str(), r.name.c_str(), d.message.c_str());
        }
      }
    }
    if (!current.ok()) registry_.count_reload_error();
    const auto took =
        std::chrono::duration_cast<std::chrono::microseconds>(ControlLoop::Clock::now() - started);
    if (result.published) {
      LOG_INFO("configuration version %llu applied (%zu listeners, %zu clusters) in %lld us",
               static_cast<unsigned long long>(result.version), current.config->listeners.size(),
               current.config->clusters.size(), static_cast<long long>(took.count()));
    }
  }

  proxy::admin::Response admin(std::string_view method, std::string_view path,
                               std::string_view query) {
    if (method != "GET" && method != "HEAD") {
      return {405, "text/plain", "use GET (writes: POST /v1/apply, DELETE /v1/resources/...)\n"};
    }
    if (path == "/ready") {
      if (draining_) return {503, "text/plain", "draining\n"};
      if (!ready_) return {503, "text/plain", "starting\n"};
      std::string body = "ready\n";
      if (!pipeline_.last_build_ok()) {
        // Still ready: the last good configuration serves. The detail says what went wrong.
        body += "last configuration build failed: " + pipeline_.last_error() +
                "; serving version " + std::to_string(pipeline_.version()) + "\n";
      }
      for (const auto& problem : pipeline_.source_problems())
        body += "source: " + problem + "\n";
      return {200, "text/plain", body};
    }
    if (path == "/stats") {
      return {200, "text/plain; version=0.0.4",
              registry_.render() + pipeline_.metrics().render() + loop_.source_stats() +
                  loop_.discovery_stats() + upgrade_stats() +
                  proxy::access_log::Manager::instance().render_stats() +
                  proxy::overload::render_stats() + write_stats()};
    }
    if (path == "/config_dump") {
      auto cfg = server_.current();
      return {200, "application/json",
              cfg ? snapshot::to_json(*cfg, true) + "\n" : std::string("{}\n")};
    }
    if (path == "/resources") return {200, "application/json", pipeline_.resources_json() + "\n"};
    if (path == "/") {
      return {200, "text/plain",
              "portico admin API\n  /ready\n  /stats\n  /config_dump\n  /resources\n"
              "  POST /v1/apply\n  DELETE /v1/resources/<Kind>/<namespace>/<name>\n"};
    }
    return {404, "text/plain", "unknown admin path\n"};
  }

  // `upgraded`: a new process took the listening sockets over. They are closed here, never shut
  // down (their queues are the new process's now); idle keep-alive connections get a grace second
  // so that a request racing with their close is answered rather than lost.
  std::string upgrade_stats() const {
    std::string out;
    out += "# TYPE portico_process_start_time_seconds gauge\n";
    out += "portico_process_start_time_seconds " + std::to_string(start_unix_ms_ / 1000) + "." +
           std::to_string(1000 + start_unix_ms_ % 1000).substr(1) + "\n";
    out += "# TYPE portico_binary_upgrade_generation gauge\n";
    out += "portico_binary_upgrade_generation " + std::to_string(generation_) + "\n";
    out += "# TYPE portico_binary_upgrades_total counter\n";
    out += "portico_binary_upgrades_total{result=\"handed_over\"} " +
           std::to_string(upgrades_completed_) + "\n";
    out += "portico_binary_upgrades_total{result=\"aborted\"} " + std::to_string(upgrades_failed_) +
           "\n";
    return out;
  }

  void shutdown(const std::string& why, bool upgraded) {
    if (draining_) return;
    draining_ = true;
    // The largest drain timeout of the Gateways in force; 10 s when there is none.
    auto deadline = std::chrono::milliseconds(10000);
    if (auto cfg = server_.current(); cfg && !cfg->listeners.empty()) {
      deadline = cfg->listeners[0].http.drain_timeout;
      for (const auto& l : cfg->listeners)
        deadline = std::max(deadline, l.http.drain_timeout);
    }
    LOG_INFO("%s: draining (up to %lld ms)", why.c_str(), static_cast<long long>(deadline.count()));
    loop_.stop();
    asio::error_code ignored;
    reopen_signal_.cancel(ignored);
    upgrade_signal_.cancel(ignored);
    upgrade_acceptor_.close(ignored);
    upgrade_conn_.reset();
    upgrade_hello_timer_.cancel();
    if (upgraded) {
      admin_.close();  // the new process answers on the same socket
      server_.drain(deadline, std::min<Clock::duration>(deadline, std::chrono::seconds(1)));
    } else {
      server_.drain(deadline);
    }
    // The workers end when their last connection is done; then the control loop ends too.
    joiner_ = std::thread([this] {
      server_.join();
      asio::post(io_, [this] {
        admin_.close();
        io_.stop();
      });
    });
    // A second signal stops at once.
    signals_.async_wait([this](const asio::error_code& e, int) {
      if (!e) {
        LOG_WARN("second signal: stopping without waiting");
        std::_Exit(0);
      }
    });
  }

  RunOptions options_;
  asio::io_context io_{1};
  proxy::stats::Registry registry_;
  proxy::Server server_;
  ControlLoop loop_;
  control::Pipeline& pipeline_;  // loop_'s
  proxy::admin::AdminServer admin_;
  asio::signal_set signals_;
  asio::signal_set reopen_signal_;
  asio::signal_set upgrade_signal_;
  // Binary upgrade: the unix socket served (its file's identity, removed at exit if still ours),
  // the new process's connection, how many processes preceded this one.
  asio::posix::stream_descriptor upgrade_acceptor_;
  int upgrade_fd_ = -1;
  dev_t upgrade_dev_ = 0;
  ino_t upgrade_ino_ = 0;
  std::unique_ptr<asio::posix::stream_descriptor> upgrade_conn_;
  asio::steady_timer upgrade_hello_timer_{io_};
  pid_t upgrade_peer_ = 0;
  uint64_t generation_ = 0;
  uint64_t upgrades_completed_ = 0;
  uint64_t upgrades_failed_ = 0;
  int64_t start_unix_ms_ = 0;
  std::string self_exe_;
  std::thread joiner_;
  bool ready_ = false;
  bool draining_ = false;
};

}  // namespace

int run_command(const std::vector<std::string>& args) {
  RunOptions options;
  if (!parse_run_options(args, &options)) return 2;
  signal(SIGPIPE, SIG_IGN);
  raise_fd_limit();
  unsigned workers = options.workers;
  if (workers == 0) workers = std::max(1u, std::thread::hardware_concurrency());
  LOG_INFO("portico run %s: %u workers", options.dir.c_str(), workers);
  Runner runner(std::move(options), workers);
  return runner.run();
}

}  // namespace portico::cli
