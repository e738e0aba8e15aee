// `portico proxy --server URL --node NAME`: the data plane of `portico run`, fed by a `portico
// server`'s stream (docs/architecture.md, "Fleet"). Three threads besides the workers: the main
// thread (io_context: applies configurations, serves the admin API), the stream thread (a blocking
// control::http::Client reading the server's lines, reconnecting with jittered back-off), and the
// ACK thread (POSTs each ACK or NACK). A version that cannot be applied whole (a port that cannot
// be bound, a certificate that does not load) changes nothing: the last good configuration stays
// and the server gets a NACK with the reason.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <asio.hpp>

#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "cli/args.h"
#include "cli/commands.h"
#include "cli/fleet_auth.h"
#include "cli/help.h"
#include "common/backoff.h"
#include "common/clock.h"
#include "common/log.h"
#include "control/fleet/fleet.h"
#include "control/http/client.h"
#include "proxy/access_log/writer.h"
#include "proxy/admin/admin.h"
#include "proxy/overload/overload.h"
#include "proxy/runtime.h"
#include "proxy/server.h"
#include "proxy/stats/stats.h"
#include "snapshot/wire.h"

namespace portico::cli {

namespace {

namespace wire = snapshot::wire;
using Json = nlohmann::ordered_json;

struct ProxyOptions {
  std::string server;  // http://H:P or https://H:P
  control::http::Url url;
  // https://: how the server is verified (--ca; empty: the system's trust store, --server-name;
  // empty: the URL's host) and the client certificate presented (--cert, --key: mTLS).
  control::http::TlsOptions tls;
  std::string node;
  std::string gateways;  // "a,b" as given
  std::string token;
  std::string admin_host = "127.0.0.1";
  uint16_t admin_port = 9901;
  std::string bind_address;  // overrides every listener's address
  unsigned workers = 0;
  std::chrono::milliseconds idle_timeout{15000};  // no line (not even a heartbeat) for this long
};

bool parse_proxy_options(const std::vector<std::string>& args, ProxyOptions* o) {
  FlagWalker w("portico proxy", args);
  while (w.next()) {
    const std::string& a = w.arg();
    const std::string* v = nullptr;
    if (a == "--help" || a == "-h") {
      std::fputs(help_text("proxy"), stdout);
      std::exit(0);
    }
    if (a == "--server") {
      if (!(v = w.value())) return false;
      o->server = *v;
    } else if (a == "--ca" || a == "--cert" || a == "--key" || a == "--server-name") {
      if (!(v = w.value())) return false;
      if (v->empty()) {
        std::fprintf(stderr, "portico proxy: %s wants a value\n", a.c_str());
        return false;
      }
      (a == "--ca"     ? o->tls.ca_file
       : a == "--cert" ? o->tls.cert_file
       : a == "--key"  ? o->tls.key_file
                       : o->tls.server_name) = *v;
    } else if (a == "--node") {
      if (!(v = w.value())) return false;
      o->node = *v;
    } else if (a == "--gateways") {
      if (!(v = w.value())) return false;
      o->gateways = *v;
    } else if (a == "--token-file") {
      if (!(v = w.value())) return false;
      std::string error;
      if (!read_token_file(*v, &o->token, &error)) {
        std::fprintf(stderr, "portico proxy: --token-file: %s\n", error.c_str());
        return false;
      }
    } else if (a == "--admin") {
      if (!(v = w.value())) return false;
      if (!parse_host_port(*v, &o->admin_host, &o->admin_port)) {
        std::fprintf(stderr, "portico proxy: --admin wants ADDR:PORT, got '%s'\n", v->c_str());
        return false;
      }
    } else if (a == "--bind-address") {
      if (!(v = w.value())) return false;
      in6_addr buf{};
      if (inet_pton(AF_INET, v->c_str(), &buf) != 1 && inet_pton(AF_INET6, v->c_str(), &buf) != 1) {
        std::fprintf(stderr, "portico proxy: --bind-address wants an IP address, got '%s'\n",
                     v->c_str());
        return false;
      }
      o->bind_address = *v;
    } else if (a == "--workers") {
      if (!(v = w.value())) return false;
      char* end = nullptr;
      long n = std::strtol(v->c_str(), &end, 10);
      if (*end != '\0' || n < 1 || n > 64) {
        std::fprintf(stderr, "portico proxy: --workers wants 1..64, got '%s'\n", v->c_str());
        return false;
      }
      o->workers = static_cast<unsigned>(n);
    } else if (a == "--idle-timeout") {
      if (!(v = w.value())) return false;
      char* end = nullptr;
      long n = std::strtol(v->c_str(), &end, 10);
      if (std::string(end) != "s" || n < 1 || n > 3600) {
        std::fprintf(stderr, "portico proxy: --idle-timeout wants seconds (15s)\n");
        return false;
      }
      o->idle_timeout = std::chrono::seconds(n);
    } else if (a == "--log-level") {
      if (!(v = w.value())) return false;
      log::Level level;
      if (!log::parse_level(*v, &level)) return false;
      log::set_level(level);
    } else {
      std::fprintf(stderr, "portico proxy: unknown argument '%s'\n", a.c_str());
      return false;
    }
  }
  if (o->server.empty() || o->node.empty()) {
    std::fprintf(stderr,
                 "usage: portico proxy --server http(s)://H:P --node NAME [--gateways a,b] "
                 "[--token-file F] [--ca F] [--cert F --key F] [--server-name NAME] "
                 "[--admin ADDR:PORT] [--bind-address IP]\n");
    return false;
  }
  if (o->tls.cert_file.empty() != o->tls.key_file.empty()) {
    std::fprintf(stderr, "portico proxy: --cert and --key go together\n");
    return false;
  }
  // TLS options with an http:// server are an error (they would silently not apply); the files
  // are read here, so that a wrong one stops the start.
  auto url = control::http::parse_url(o->server, 80, o->tls);
  if (!url) {
    std::fprintf(stderr, "portico proxy: --server %s: %s\n", o->server.c_str(),
                 url.error().message.c_str());
    return false;
  }
  o->url = url.value();
  return true;
}

// Whether a listening socket can be opened at address:port now (as the workers would open it).
std::string probe_bind(const std::string& address, uint16_t port) {
  sockaddr_storage ss{};
  socklen_t len = 0;
  int family = AF_INET;
  if (address.find(':') != std::string::npos) {
    family = AF_INET6;
    auto* a6 = reinterpret_cast<sockaddr_in6*>(&ss);
    a6->sin6_family = AF_INET6;
    a6->sin6_port = htons(port);
    if (inet_pton(AF_INET6, address.c_str(), &a6->sin6_addr) != 1) return "invalid address";
    len = sizeof(sockaddr_in6);
  } else {
    auto* a4 = reinterpret_cast<sockaddr_in*>(&ss);
    a4->sin_family = AF_INET;
    a4->sin_port = htons(port);
    if (inet_pton(AF_INET, address.c_str(), &a4->sin_addr) != 1) return "invalid address";
    len = sizeof(sockaddr_in);
  }
  int fd = ::socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return std::strerror(errno);
  int one = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
  if (family == AF_INET6) ::setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
  std::string error;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&ss), len) != 0 || ::listen(fd, 1) != 0) {
    error = std::strerror(errno);
  }
  ::close(fd);
  return error;
}

class ProxyRunner {
 public:
  ProxyRunner(ProxyOptions options, unsigned workers)
      : options_(std::move(options)),
        registry_(workers),
        server_(workers, registry_),
        admin_(io_,
               [this](const proxy::admin::Request& r) { return admin(r.method, r.path, r.query); }),
        signals_(io_, SIGTERM, SIGINT),
        stream_client_(options_.url, control::http::Options{}),
        ack_client_(options_.url, control::http::Options{}) {}

  int run() {
    server_.start();
    std::string err = admin_.listen(options_.admin_host, options_.admin_port);
    if (!err.empty()) {
      std::fprintf(stderr, "portico proxy: admin listener: %s\n", err.c_str());
      server_.stop();
      server_.join();
      return 1;
    }
    LOG_INFO("portico proxy %s: server %s, gateways %s, admin API on http://%s:%u",
             options_.node.c_str(), options_.server.c_str(),
             options_.gateways.empty() ? "all" : options_.gateways.c_str(),
             options_.admin_host.c_str(), admin_.port());
    stream_thread_ = std::thread([this] { stream_loop(); });
    ack_thread_ = std::thread([this] { ack_loop(); });
    signals_.async_wait([this](const asio::error_code& e, int sig) {
      if (!e) shutdown(sig);
    });
    io_.run();
    stop_threads();
    if (joiner_.joinable()) {
      joiner_.join();
    } else {
      server_.stop();
      server_.join();
    }
    proxy::access_log::Manager::instance().stop();
    proxy::overload::Monitor::instance().stop();
    LOG_INFO("stopped");
    return 0;
  }

 private:
  // ---- the stream thread ----

  std::string target() {
    std::string have;
    {
      std::lock_guard<std::mutex> lock(mu_);
      have = have_;
    }
    std::string t =
        options_.url.path + "/v1/fleet/stream?node=" + control::http::url_escape(options_.node);
    if (!options_.gateways.empty())
      t += "&gateways=" + control::http::url_escape(options_.gateways);
    if (!have.empty()) t += "&have=" + control::http::url_escape(have);
    return t;
  }

  void set_error(std::string error) {
    std::lock_guard<std::mutex> lock(mu_);
    if (error != last_error_ && !error.empty()) {
      LOG_WARN("fleet: server %s: %s", options_.server.c_str(), error.c_str());
    }
    last_error_ = std::move(error);
  }

  void stream_loop() {
    common::Backoff backoff(std::chrono::milliseconds(100), std::chrono::milliseconds(5000));
    bool first = true;
    while (!stopping_) {
      if (!first) ++reconnects_;
      first = false;
      control::http::Request req;
      req.target = target();
      if (!options_.token.empty()) {
        req.headers.emplace_back("Authorization", "Bearer " + options_.token);
      }
      bool got_line = false;
      int status = 0;
      auto r = stream_client_.stream_lines(
          req,
          [&](const control::http::Response& head) {
            status = head.status;
            if (head.status == 401) {
              ++unauthorized_;
              set_error("401 unauthorized: the server refused our token (--token-file)");
              return false;
            }
            if (head.status != 200) {
              set_error("stream answered " + std::to_string(head.status) + ": " +
                        head.body.substr(0, 200));
              return false;
            }
            connected_ = true;
            set_error("");
            LOG_INFO("fleet: connected to %s", options_.server.c_str());
            return true;
          },
          [&](std::string_view line) {
            if (!got_line) backoff.reset();
            got_line = true;
            if (line.empty() || line.find("\"heartbeat\"") != std::string_view::npos) {
              return !stopping_;
            }
            auto m = wire::decode_message(line);
            if (!m) {
              LOG_WARN("fleet: an unreadable message from the server: %s",
                       m.error().message.c_str());
              return false;  // reconnect: the stream is not trustworthy
            }
            asio::post(io_, [this, msg = std::move(m.value())]() mutable { on_message(msg); });
            return !stopping_;
          },
          options_.idle_timeout);
      const bool was_connected = connected_.exchange(false);
      if (stopping_) break;
      if (!r.ok()) {
        set_error(std::string(was_connected ? "stream ended: " : "cannot connect: ") +
                  r.error().message);
      } else if (status == 200) {
        set_error("the server ended the stream");
      }
      auto delay = backoff.next();
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait_for(lock, delay, [this] { return stopping_.load(); });
    }
  }

  // ---- the ACK thread ----

  void send_ack(control::fleet::Ack ack) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      acks_.push_back(std::move(ack));
    }
    cv_.notify_all();
  }

  void ack_loop() {
    for (;;) {
      control::fleet::Ack ack;
      {
        std::unique_lock<std::mutex> lock(mu_);
        cv_.wait(lock, [this] { return stopping_ || !acks_.empty(); });
        if (stopping_) return;
        ack = std::move(acks_.front());
        acks_.pop_front();
      }
      control::http::Request req;
      req.method = "POST";
      req.target = options_.url.path + "/v1/fleet/ack";
      req.headers.emplace_back("Content-Type", "application/json");
      if (!options_.token.empty()) {
        req.headers.emplace_back("Authorization", "Bearer " + options_.token);
      }
      req.body = control::fleet::ack_to_json(ack);
      auto r = ack_client_.send(req, std::chrono::milliseconds(5000));
      if (!r) {
        LOG_WARN("fleet: %s of version %llu not delivered: %s", ack.accepted ? "ACK" : "NACK",
                 static_cast<unsigned long long>(ack.version), r.error().message.c_str());
      } else if (r.value().status != 200) {
        LOG_WARN("fleet: %s of version %llu answered %d: %s", ack.accepted ? "ACK" : "NACK",
                 static_cast<unsigned long long>(ack.version), r.value().status,
                 r.value().body.c_str());
      }
    }
  }

  // ---- the main thread: applying ----

  void ack(const wire::Message& m, bool accepted, std::string error,
           std::vector<std::string> items) {
    control::fleet::Ack a;
    a.node = options_.node;
    a.nonce = m.nonce;
    a.version = m.header.version;
    a.accepted = accepted;
    a.error = std::move(error);
    a.items = std::move(items);
    for (const auto& [name, section] : held_)
      a.sections[name] = section.version;
    if (!accepted) {
      ++nacks_;
      LOG_WARN("fleet: version %llu rejected: %s", static_cast<unsigned long long>(a.version),
               a.error.c_str());
    }
    send_ack(std::move(a));
  }

  void on_message(const wire::Message& m) {
    if (stopping_) return;
    ++messages_;
    if (m.sections.empty() && last_good_) {
      // Nothing of ours moved (a reconnect, or a change to another proxy's Gateways).
      version_ = m.header.version;
      ack(m, true, "", {});
      return;
    }
    wire::Sections candidate = held_;
    for (const auto& [name, section] : m.sections)
      candidate[name] = section;
    auto decoded = wire::decode_sections(candidate, m.header);
    if (!decoded) {
      ack(m, false, decoded.error().message, {});
      return;
    }
    auto config = std::make_shared<snapshot::ProxyConfig>(std::move(decoded.value()));
    if (last_good_) {
      // The data plane takes clusters, endpoints and secrets at the versions in force as
      // unchanged (build_runtime). A restarted server numbers its versions from 1 again: a
      // section whose content moved may come with the version in force. Such a version says
      // nothing: clusters 0 makes the data plane compare every cluster.
      const auto& was = last_good_->versions;
      const auto& now = config->versions;
      const std::pair<const char*, bool> kinds[] = {{"clusters", now.clusters == was.clusters},
                                                    {"endpoints", now.endpoints == was.endpoints},
                                                    {"secrets", now.secrets == was.secrets}};
      for (const auto& [name, same_version] : kinds) {
        auto got = m.sections.find(name);
        auto had = held_.find(name);
        if (same_version && got != m.sections.end() &&
            (had == held_.end() || had->second.version != got->second.version)) {
          config->versions.clusters = 0;
        }
      }
    }
    if (!options_.bind_address.empty()) {
      for (auto& l : config->listeners)
        l.address = options_.bind_address;
    }
    // Listeners new to this proxy: can their sockets be opened? (nothing is applied otherwise)
    std::set<std::string> ours;
    if (last_good_) {
      for (const auto& l : last_good_->listeners)
        ours.insert(proxy::listener_key(l.address, l.port));
    }
    for (const auto& l : config->listeners) {
      if (ours.count(proxy::listener_key(l.address, l.port))) continue;
      std::string e = probe_bind(l.address, l.port);
      if (!e.empty()) {
        ack(m, false, "bind " + l.address + ":" + std::to_string(l.port) + ": " + e, {l.name});
        return;
      }
    }
    auto errors = server_.apply(config);
    if (!errors.empty()) {
      // Back to the last good configuration, whole.
      server_.apply(last_good_ ? last_good_ : std::make_shared<const snapshot::ProxyConfig>());
      std::string message;
      std::vector<std::string> items;
      for (const auto& e : errors) {
        message += (message.empty() ? "" : "; ") + e.message;
        if (!e.listener.empty()) items.push_back(e.listener);
        for (const auto& s : e.sources)
          items.push_back(s);
      }
      ack(m, false, message, items);
      return;
    }
    held_ = std::move(candidate);
    last_good_ = config;
    version_ = m.header.version;
    ++applied_;
    ready_ = true;
    registry_.set_config(m.header.version, common::unix_ms());
    registry_.count_reload();
    std::map<std::string, std::string> have;
    for (const auto& [name, section] : held_)
      have[name] = section.version;
    {
      std::lock_guard<std::mutex> lock(mu_);
      have_ = control::fleet::format_have(have);
    }
    LOG_INFO("fleet: version %llu applied (%zu sections, %zu listeners, %zu clusters)",
             static_cast<unsigned long long>(m.header.version), m.sections.size(),
             config->listeners.size(), config->clusters.size());
    ack(m, true, "", {});
  }

  std::string fleet_stats() const {
    std::string out;
    auto line = [&](const char* name, const char* type, uint64_t v) {
      out +=
          std::string("# TYPE ") + name + " " + type + "\n" + name + " " + std::to_string(v) + "\n";
    };
    line("portico_fleet_connected", "gauge", connected_ ? 1 : 0);
    line("portico_fleet_messages_total", "counter", messages_);
    line("portico_fleet_versions_applied_total", "counter", applied_);
    line("portico_fleet_nacks_total", "counter", nacks_);
    line("portico_fleet_reconnects_total", "counter", reconnects_);
    line("portico_fleet_unauthorized_total", "counter", unauthorized_);
    line("portico_fleet_version", "gauge", version_);
    return out;
  }

  proxy::admin::Response admin(std::string_view method, std::string_view path, std::string_view) {
    if (method != "GET" && method != "HEAD") {
      return {405, "text/plain", "the admin API is read-only: use GET\n"};
    }
    std::string error;
    {
      std::lock_guard<std::mutex> lock(mu_);
      error = last_error_;
    }
    if (path == "/ready") {
      if (stopping_) return {503, "text/plain", "draining\n"};
      if (!ready_) {
        return {503, "text/plain",
                "waiting for a first configuration from " + options_.server +
                    (error.empty() ? "" : " (" + error + ")") + "\n"};
      }
      std::string body = "ready\n";
      if (!connected_)
        body += "server: not connected, serving version " + std::to_string(version_) +
                (error.empty() ? "" : ": " + error) + "\n";
      return {200, "text/plain", body};
    }
    if (path == "/stats") {
      return {200, "text/plain; version=0.0.4",
              registry_.render() + fleet_stats() +
                  proxy::access_log::Manager::instance().render_stats() +
                  proxy::overload::render_stats()};
    }
    if (path == "/config_dump") {
      auto cfg = server_.current();
      return {200, "application/json",
              cfg ? snapshot::to_json(*cfg, true) + "\n" : std::string("{}\n")};
    }
    if (path == "/fleet") {
      Json j;
      j["node"] = options_.node;
      j["server"] = options_.server;
      j["connected"] = connected_.load();
      j["version"] = version_.load();
      j["applied"] = applied_.load();
      j["nacks"] = nacks_.load();
      j["reconnects"] = reconnects_.load();
      j["unauthorized"] = unauthorized_.load();
      j["lastError"] = error;
      return {200, "application/json", j.dump() + "\n"};
    }
    if (path == "/") {
      return {200, "text/plain",
              "portico proxy admin API\n  /ready\n  /stats\n  /config_dump\n  /fleet\n"};
    }
    return {404, "text/plain", "unknown admin path\n"};
  }

  void stop_threads() {
    stopping_ = true;
    stream_client_.cancel();
    ack_client_.cancel();
    cv_.notify_all();
    if (stream_thread_.joinable()) stream_thread_.join();
    if (ack_thread_.joinable()) ack_thread_.join();
  }

  void shutdown(int sig) {
    if (stopping_) return;
    LOG_INFO("signal %d: draining", sig);
    stop_threads();
    auto deadline = std::chrono::milliseconds(10000);
    if (auto cfg = server_.current(); cfg && !cfg->listeners.empty()) {
      deadline = cfg->listeners[0].http.drain_timeout;
      for (const auto& l : cfg->listeners)
        deadline = std::max(deadline, l.http.drain_timeout);
    }
    server_.drain(deadline);
    joiner_ = std::thread([this] {
      server_.join();
      asio::post(io_, [this] {
        admin_.close();
        io_.stop();
      });
    });
    signals_.async_wait([](const asio::error_code& e, int) {
      if (!e) std::_Exit(0);
    });
  }

  ProxyOptions options_;
  asio::io_context io_{1};
  proxy::stats::Registry registry_;
  proxy::Server server_;
  proxy::admin::AdminServer admin_;
  asio::signal_set signals_;
  control::http::Client stream_client_;
  control::http::Client ack_client_;
  std::thread stream_thread_, ack_thread_, joiner_;

  // Main thread only.
  wire::Sections held_;  // the sections of the configuration in force
  std::shared_ptr<const snapshot::ProxyConfig> last_good_;
  bool ready_ = false;

  // Shared.
  std::mutex mu_;
  std::condition_variable cv_;
  std::string have_;                      // guarded by mu_
  std::string last_error_;                // guarded by mu_
  std::deque<control::fleet::Ack> acks_;  // guarded by mu_
  std::atomic<bool> stopping_{false};
  std::atomic<bool> connected_{false};
  std::atomic<uint64_t> version_{0}, messages_{0}, applied_{0}, nacks_{0}, reconnects_{0},
      unauthorized_{0};
};

}  // namespace

int fleet_proxy_command(const std::vector<std::string>& args) {
  ProxyOptions options;
  if (!parse_proxy_options(args, &options)) return 2;
  signal(SIGPIPE, SIG_IGN);
  unsigned workers = options.workers;
  if (workers == 0) workers = std::max(1u, std::thread::hardware_concurrency());
  ProxyRunner runner(std::move(options), workers);
  return runner.run();
}

}  // namespace portico::cli
