// `portico run DIR`: the embedded default. The control plane (file source, translation, statuses)
// and the data plane (workers) in one process. The main thread runs the control plane and the admin
// API on one io_context; the workers run their own loops.
#include <signal.h>
#include <sys/resource.h>

#include <asio.hpp>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <thread>
#include <unordered_set>

#include "cli/commands.h"
#include "common/log.h"
#include "control/pipeline.h"
#include "control/sources/file_watcher.h"
#include "proxy/admin/admin.h"
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
};

bool parse_run_options(const std::vector<std::string>& args, RunOptions* o) {
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    auto value = [&](const char* flag) -> const std::string* {
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
    std::fprintf(stderr, "usage: portico run DIR [--admin ADDR:PORT] [--workers N]\n");
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

// The canonical text of a configuration, without its version and time, to tell real changes.
std::string canonical(const snapshot::ProxyConfig& config) {
  snapshot::ProxyConfig copy = config;
  copy.version = 0;
  copy.created_unix_ms = 0;
  return snapshot::to_json(copy, false);
}

class Runner {
 public:
  Runner(RunOptions options, unsigned workers)
      : options_(std::move(options)),
        registry_(workers),
        server_(workers, registry_),
        source_(options_.dir),
        admin_(io_, [this](std::string_view m, std::string_view p,
                           std::string_view q) { return admin(m, p, q); }),
        debounce_(io_),
        signals_(io_, SIGTERM, SIGINT),
        inotify_(io_) {}

  int run() {
    std::error_code ec;
    if (!std::filesystem::is_directory(options_.dir, ec)) {
      std::fprintf(stderr, "portico run: %s is not a directory\n", options_.dir.c_str());
      return 2;
    }
    server_.start();
    rebuild();
    std::string err = admin_.listen(options_.admin_host, options_.admin_port);
    if (!err.empty()) {
      std::fprintf(stderr, "portico run: admin listener: %s\n", err.c_str());
      server_.stop();
      server_.join();
      return 1;
    }
    LOG_INFO("admin API on http://%s:%u (ready, stats, config_dump, resources)",
             options_.admin_host.c_str(), admin_.port());
    auto watcher = control::FileWatcher::open(options_.dir);
    if (watcher.ok()) {
      watcher_ = std::move(watcher.value());
      inotify_.assign(::dup(watcher_->fd()));
      wait_for_changes();
    } else {
      LOG_ERROR("configuration changes will not be seen: %s", watcher.error().message.c_str());
    }
    signals_.async_wait([this](const asio::error_code& e, int sig) {
      if (!e) shutdown(sig);
    });
    ready_ = true;
    io_.run();
    // After a signal the joiner thread waits for the workers; otherwise wait here.
    if (joiner_.joinable()) {
      joiner_.join();
    } else {
      server_.join();
    }
    LOG_INFO("stopped");
    return 0;
  }

 private:
  void wait_for_changes() {
    inotify_.async_wait(asio::posix::stream_descriptor::wait_read,
                        [this](const asio::error_code& e) {
                          if (e || draining_) return;
                          if (watcher_->drain()) schedule_rebuild();
                          wait_for_changes();
                        });
  }

  void schedule_rebuild() {
    const auto now = Clock::now();
    if (!pending_) {
      pending_ = true;
      first_event_ = now;
    }
    auto when = std::min(now + kQuiet, first_event_ + kMaxDelay);
    debounce_.expires_at(when);
    debounce_.async_wait([this](const asio::error_code& e) {
      if (e) return;  // re-armed by a newer event
      pending_ = false;
      rebuild();
    });
  }

  void rebuild() {
    const auto started = Clock::now();
    control::BuildResult result = source_.build(version_ + 1);
    std::string text = canonical(*result.config);
    bool changed = text != canonical_ || !listener_errors_.empty();
    if (changed) {
      ++version_;
      auto errors = server_.apply(result.config);
      listener_errors_.clear();
      for (const auto& e : errors) {
        LOG_ERROR("listener %s: %s", e.listener.c_str(), e.message.c_str());
        listener_errors_.push_back(e);
      }
      canonical_ = std::move(text);
      const auto now_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                              std::chrono::system_clock::now().time_since_epoch())
                              .count();
      registry_.set_config(version_, now_ms);
      registry_.count_reload();
    }
    // Listener bind failures are facts about the Gateway: show them on its status.
    for (const auto& e : listener_errors_) {
      for (auto& r : result.resources) {
        if (r.kind == "Gateway" && r.ns + "/" + r.name == e.listener) {
          control::Diagnostic d;
          d.severity = control::Diagnostic::Severity::kError;
          d.file = r.file;
          d.line = r.line;
          d.path = "spec.bindPort";
          d.message = e.message;
          r.reasons.push_back(d);
          r.state = control::State::kRejected;
        }
      }
    }
    if (!result.ok()) registry_.count_reload_error();
    log_diagnostics(result);
    resources_json_ = control::resources_to_json(result.resources, result.file_errors);
    const auto took = std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - started);
    if (changed) {
      LOG_INFO("configuration version %llu applied (%zu listeners, %zu clusters) in %lld us",
               static_cast<unsigned long long>(version_), result.config->listeners.size(),
               result.config->clusters.size(), static_cast<long long>(took.count()));
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
      return ready_ ? proxy::admin::Response{200, "text/plain", "ready\n"}
                    : proxy::admin::Response{503, "text/plain", "starting\n"};
    }
    if (path == "/stats") return {200, "text/plain; version=0.0.4", registry_.render()};
    if (path == "/config_dump") {
      auto cfg = server_.current();
      return {200, "application/json",
              cfg ? snapshot::to_json(*cfg, true) + "\n" : std::string("{}\n")};
    }
    if (path == "/resources") return {200, "application/json", resources_json_ + "\n"};
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
    debounce_.cancel();
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
  control::FileConfigSource source_;
  proxy::admin::AdminServer admin_;
  asio::steady_timer debounce_;
  asio::signal_set signals_;
  asio::posix::stream_descriptor inotify_;
  std::unique_ptr<control::FileWatcher> watcher_;
  std::thread joiner_;
  uint64_t version_ = 0;
  std::string canonical_;
  std::string resources_json_ = "[]";
  std::vector<proxy::ListenerError> listener_errors_;
  std::unordered_set<std::string> last_diagnostics_;  // logged once, not at every reload
  bool pending_ = false;
  Clock::time_point first_event_{};
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
