// `portico run DIR`: the embedded default. The control plane (file source, translation, statuses)
// and the data plane (workers) in one process. The main thread runs the control plane and the admin
// API on one io_context; the workers run their own loops.
#include <signal.h>
#include <sys/resource.h>

#include <asio.hpp>

#include <cctype>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <thread>
#include <unordered_set>

#include "cli/commands.h"
#include "common/log.h"
#include "control/pipeline.h"
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

// Debounce: a burst of file events (an editor's write, a `cp -r`) becomes one rebuild, at most
// kMaxDelay after its first event.
constexpr auto kQuiet = std::chrono::milliseconds(10);
constexpr auto kMaxDelay = std::chrono::milliseconds(100);

struct RunOptions {
  std::filesystem::path dir;
  std::string admin_host = "127.0.0.1";
  uint16_t admin_port = 9901;
  unsigned workers = 0;
  // A full re-read of the configuration this often, for anything inotify missed; 0: never.
  std::chrono::milliseconds resync{30000};
};

// "30s", "500ms", "2m", "0". False when malformed.
bool parse_duration(const std::string& text, std::chrono::milliseconds* out) {
  size_t digits = 0;
  while (digits < text.size() && std::isdigit(static_cast<unsigned char>(text[digits])))
    ++digits;
  if (digits == 0 || digits > 9) return false;
  long long n = std::stoll(text.substr(0, digits));
  std::string unit = text.substr(digits);
  if (unit == "ms") {
    *out = std::chrono::milliseconds(n);
  } else if (unit == "s" || (unit.empty() && n == 0)) {
    *out = std::chrono::seconds(n);
  } else if (unit == "m") {
    *out = std::chrono::minutes(n);
  } else {
    return false;
  }
  return true;
}

bool parse_run_options(const std::vector<std::string>& args, RunOptions* o) {
  for (size_t i = 0; i < args.size(); ++i) {
    std::string a = args[i];
    std::string inline_value;
    bool has_inline = false;
    if (a.rfind("--", 0) == 0 && a.find('=') != std::string::npos) {
      inline_value = a.substr(a.find('=') + 1);
      a = a.substr(0, a.find('='));
      has_inline = true;
    }
    auto value = [&](const char* flag) -> const std::string* {
      if (has_inline) return &inline_value;
      if (i + 1 >= args.size()) {
        std::fprintf(stderr, "portico run: %s needs a value\n", flag);
        return nullptr;
      }
      return &args[++i];
    };
    if (a == "--admin") {
      const std::string* v = value("--admin");
      if (!v || !parse_host_port(*v, &o->admin_host, &o->admin_port)) {
        if (v) std::fprintf(stderr, "portico run: --admin wants ADDR:PORT, got '%s'\n", v->c_str());
        return false;
      }
    } else if (a == "--workers") {
      const std::string* v = value("--workers");
      if (!v) return false;
      char* end = nullptr;
      long n = std::strtol(v->c_str(), &end, 10);
      if (*end != '\0' || n < 1 || n > 64) {
        std::fprintf(stderr, "portico run: --workers wants 1..64, got '%s'\n", v->c_str());
        return false;
      }
      o->workers = static_cast<unsigned>(n);
    } else if (a == "--resync") {
      const std::string* v = value("--resync");
      if (!v || !parse_duration(*v, &o->resync)) {
        if (v) {
          std::fprintf(stderr,
                       "portico run: --resync wants a duration (30s, 500ms, 2m, 0), got '%s'\n",
                       v->c_str());
        }
        return false;
      }
    } else if (a == "--log-level") {
      const std::string* v = value("--log-level");
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
                 "usage: portico run DIR [--admin ADDR:PORT] [--workers N] [--resync 30s]\n");
    return false;
  }
  return true;
}

void raise_fd_limit() {
  rlimit rl{};
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
}

int64_t unix_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

class Runner {
 public:
  Runner(RunOptions options, unsigned workers)
      : options_(std::move(options)),
        registry_(workers),
        server_(workers, registry_),
        pipeline_(
            [this] {
              auto source = std::make_unique<control::FileSource>(options_.dir);
              files_ = source.get();
              return source;
            }(),
            [this](std::shared_ptr<const snapshot::ProxyConfig> config) {
              std::vector<control::ListenerFailure> failures;
              for (auto& e : server_.apply(std::move(config)))
                failures.push_back({e.listener, e.message, e.sources});
              return failures;
            }),
        admin_(io_, [this](std::string_view m, std::string_view p,
                           std::string_view q) { return admin(m, p, q); }),
        debounce_(io_),
        resync_(io_),
        signals_(io_, SIGTERM, SIGINT),
        reopen_signal_(io_, SIGUSR1),
        inotify_(io_) {}

  int run() {
    std::error_code ec;
    if (!std::filesystem::is_directory(options_.dir, ec)) {
      std::fprintf(stderr, "portico run: %s is not a directory\n", options_.dir.c_str());
      return 2;
    }
    server_.start();
    // Watch before the first read, so that nothing written in between is missed.
    auto watcher = control::FileWatcher::open(options_.dir);
    if (watcher.ok()) {
      watcher_ = std::move(watcher.value());
      inotify_.assign(::dup(watcher_->fd()));
      wait_for_changes();
    } else {
      LOG_ERROR("configuration changes will not be seen: %s", watcher.error().message.c_str());
    }
    rebuild(false);
    std::string err = admin_.listen(options_.admin_host, options_.admin_port);
    if (!err.empty()) {
      std::fprintf(stderr, "portico run: admin listener: %s\n", err.c_str());
      server_.stop();
      server_.join();
      return 1;
    }
    LOG_INFO("admin API on http://%s:%u (ready, stats, config_dump, resources)",
             options_.admin_host.c_str(), admin_.port());
    signals_.async_wait([this](const asio::error_code& e, int sig) {
      if (!e) shutdown(sig);
    });
    wait_for_reopen();
    schedule_resync();
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

  void wait_for_changes() {
    inotify_.async_wait(asio::posix::stream_descriptor::wait_read,
                        [this](const asio::error_code& e) {
                          if (e || draining_) return;
                          if (watcher_->drain()) {
                            if (watcher_->take_overflow()) full_pending_ = true;
                            // The next sync re-reads only what changed.
                            auto changes = watcher_->take_changes();
                            if (files_ != nullptr) {
                              if (changes.relist) files_->note_relist();
                              for (const auto& path : changes.paths)
                                files_->note_changed(path);
                            }
                            schedule_rebuild();
                          }
                          wait_for_changes();
                        });
  }

  void schedule_rebuild() {
    const auto now = Clock::now();
    if (!pending_) {
      pending_ = true;
      first_event_ = now;
      first_event_set_ = true;
    }
    auto when = std::min(now + kQuiet, first_event_ + kMaxDelay);
    debounce_.expires_at(when);
    debounce_.async_wait([this](const asio::error_code& e) {
      if (e) return;  // re-armed by a newer event
      pending_ = false;
      bool full = full_pending_;
      full_pending_ = false;
      rebuild(full);
    });
  }

  // The periodic full re-read: catches what inotify missed (a full event queue, files behind
  // symlinks that point outside the directory, network filesystems).
  void schedule_resync() {
    if (options_.resync.count() <= 0 || draining_) return;
    resync_.expires_after(options_.resync);
    resync_.async_wait([this](const asio::error_code& e) {
      if (e || draining_) return;
      rebuild(true);
      schedule_resync();
    });
  }

  void rebuild(bool full) {
    const auto started = Clock::now();
    // When the change was first noticed: the first event of the debounced burst.
    const int64_t seen_ms = unix_ms() - std::chrono::duration_cast<std::chrono::milliseconds>(
                                            started - (first_event_set_ ? first_event_ : started))
                                            .count();
    first_event_set_ = false;
    control::Pipeline::SyncResult result = pipeline_.sync(full, seen_ms);
    // Certificates and keys that resources name by path: a rotation there is a change too.
    if (watcher_ && files_) watcher_->watch_dirs(files_->referenced_dirs());
    if (result.failed) {
      registry_.count_reload_error();
      LOG_ERROR("configuration build failed: %s; version %llu stays in force",
                pipeline_.last_error().c_str(),
                static_cast<unsigned long long>(pipeline_.version()));
      return;
    }
    if (!result.built) return;  // nothing changed
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
    log_diagnostics(current);
    const auto took = std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - started);
    if (result.published) {
      LOG_INFO("configuration version %llu applied (%zu listeners, %zu clusters) in %lld us",
               static_cast<unsigned long long>(result.version), current.config->listeners.size(),
               current.config->clusters.size(), static_cast<long long>(took.count()));
    }
  }

  // Logs diagnostics that were not there in the previous build (each problem once, not per reload).
  void log_diagnostics(const control::BuildResult& result) {
    std::unordered_set<std::string> now;
    auto note = [&](std::string line) {
      if (!last_diagnostics_.count(line)) LOG_WARN("%s", line.c_str());
      now.insert(std::move(line));
    };
    for (const auto& d : result.file_errors)
      note(d.to_string());
    for (const auto& r : result.resources) {
      for (const auto& d : r.reasons)
        note(r.kind + " " + r.ns + "/" + r.name + ": " + d.to_string());
    }
    last_diagnostics_ = std::move(now);
  }

  proxy::admin::Response admin(std::string_view method, std::string_view path,
                               std::string_view query) {
    if (method != "GET" && method != "HEAD") {
      return {405, "text/plain", "the admin API is read-only: use GET\n"};
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
      return {200, "text/plain", body};
    }
    if (path == "/stats") {
      return {200, "text/plain; version=0.0.4",
              registry_.render() + pipeline_.metrics().render() +
                  proxy::access_log::Manager::instance().render_stats() +
                  proxy::overload::render_stats()};
    }
    if (path == "/config_dump") {
      auto cfg = server_.current();
      return {200, "application/json",
              cfg ? snapshot::to_json(*cfg, true) + "\n" : std::string("{}\n")};
    }
    if (path == "/resources") return {200, "application/json", pipeline_.resources_json() + "\n"};
    if (path == "/") {
      return {200, "text/plain",
              "portico admin API\n  /ready\n  /stats\n  /config_dump\n  /resources\n"};
    }
    return {404, "text/plain", "unknown admin path\n"};
  }

  void shutdown(int sig) {
    if (draining_) return;
    draining_ = true;
    // The largest drain timeout of the Gateways in force; 10 s when there is none.
    auto deadline = std::chrono::milliseconds(10000);
    if (auto cfg = server_.current(); cfg && !cfg->listeners.empty()) {
      deadline = cfg->listeners[0].http.drain_timeout;
      for (const auto& l : cfg->listeners)
        deadline = std::max(deadline, l.http.drain_timeout);
    }
    LOG_INFO("signal %d: draining (up to %lld ms)", sig, static_cast<long long>(deadline.count()));
    asio::error_code ignored;
    inotify_.close(ignored);
    reopen_signal_.cancel(ignored);
    debounce_.cancel();
    resync_.cancel();
    server_.drain(deadline);
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
  control::FileSource* files_ = nullptr;  // owned by pipeline_
  control::Pipeline pipeline_;
  proxy::admin::AdminServer admin_;
  asio::steady_timer debounce_;
  asio::steady_timer resync_;
  asio::signal_set signals_;
  asio::signal_set reopen_signal_;
  asio::posix::stream_descriptor inotify_;
  std::unique_ptr<control::FileWatcher> watcher_;
  std::thread joiner_;
  std::unordered_set<std::string> last_diagnostics_;  // logged once, not at every reload
  bool pending_ = false;
  bool full_pending_ = false;  // inotify lost events: re-read everything
  Clock::time_point first_event_{};
  bool first_event_set_ = false;
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
