// `portico server DIR`: the control plane of `portico run` without a data plane. It binds no
// Gateway: it streams the configuration to `portico proxy` processes over the fleet protocol
// (docs/architecture.md, "Fleet") on --listen, records their ACKs and NACKs, and serves the REST
// API the CLI uses (on --listen, with the bearer token when that is not loopback; and on --admin,
// loopback only). One thread: the control plane, the fleet listener and the admin API share one
// io_context.
#include <signal.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <asio.hpp>
#include <asio/experimental/as_tuple.hpp>
#include <asio/ssl.hpp>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <list>
#include <optional>
#include <set>

#include "cli/args.h"
#include "cli/commands.h"
#include "cli/control_loop.h"
#include "cli/fleet_auth.h"
#include "cli/write_api.h"
#include "common/log.h"
#include "control/discovery/discoveries.h"
#include "control/fleet/fleet.h"
#include "control/pipeline.h"
#include "control/sources/config_dir.h"
#include "control/sources/factory.h"
#include "control/sources/file_source.h"
#include "control/sources/file_watcher.h"
#include "proxy/admin/admin.h"
#include "proxy/http/h1_parser.h"
#include "snapshot/proxy_config.h"

namespace portico::cli {

namespace {

using Clock = std::chrono::steady_clock;
using Json = nlohmann::ordered_json;
constexpr auto use_nothrow = asio::experimental::as_tuple(asio::use_awaitable);
constexpr size_t kMaxBody = proxy::admin::kMaxBody;  // `portico apply`

struct ServerOptions {
  std::filesystem::path dir;
  std::string listen_host = "127.0.0.1";
  uint16_t listen_port = 9977;
  std::string admin_host = "127.0.0.1";
  uint16_t admin_port = 9901;
  bool admin = true;
  std::string token;  // from --token-file
  // TLS on --listen (--tls-cert, --tls-key); with --client-ca, client certificates are required
  // and verified against it (mTLS: the fleet endpoints then need no token).
  std::string tls_cert, tls_key, client_ca;
  std::chrono::milliseconds heartbeat{5000};
  std::chrono::milliseconds resync{30000};
};

bool parse_server_options(const std::vector<std::string>& args, ServerOptions* o) {
  FlagWalker w("portico server", args);
  while (w.next()) {
    const std::string& a = w.arg();
    if (a == "--listen" || a == "--admin") {
      const std::string* v = w.value();
      std::string* host = a == "--listen" ? &o->listen_host : &o->admin_host;
      uint16_t* port = a == "--listen" ? &o->listen_port : &o->admin_port;
      if (!v || !parse_host_port(*v, host, port)) {
        if (v) std::fprintf(stderr, "portico server: %s wants ADDR:PORT\n", a.c_str());
        return false;
      }
    } else if (a == "--token-file") {
      const std::string* v = w.value();
      std::string error;
      if (!v) return false;
      if (!read_token_file(*v, &o->token, &error)) {
        std::fprintf(stderr, "portico server: --token-file: %s\n", error.c_str());
        return false;
      }
    } else if (a == "--tls-cert" || a == "--tls-key" || a == "--client-ca") {
      const std::string* v = w.value();
      if (!v) return false;
      if (v->empty()) {
        std::fprintf(stderr, "portico server: %s wants a file\n", a.c_str());
        return false;
      }
      (a == "--tls-cert" ? o->tls_cert : a == "--tls-key" ? o->tls_key : o->client_ca) = *v;
    } else if (a == "--heartbeat" || a == "--resync") {
      const std::string* v = w.value();
      auto* out = a == "--heartbeat" ? &o->heartbeat : &o->resync;
      if (!v || !parse_duration(*v, out) || (a == "--heartbeat" && out->count() < 100)) {
        if (v) std::fprintf(stderr, "portico server: %s wants a duration (5s, 500ms)\n", a.c_str());
        return false;
      }
    } else if (a == "--log-level") {
      const std::string* v = w.value();
      log::Level level;
      if (!v || !log::parse_level(*v, &level)) return false;
      log::set_level(level);
    } else if (!a.empty() && a[0] == '-') {
      std::fprintf(stderr, "portico server: unknown flag '%s'\n", a.c_str());
      return false;
    } else if (o->dir.empty()) {
      o->dir = a;
    } else {
      std::fprintf(stderr, "portico server: unexpected argument '%s'\n", a.c_str());
      return false;
    }
  }
  if (o->dir.empty()) {
    std::fprintf(stderr,
                 "usage: portico server DIR [--listen ADDR:PORT] [--token-file F] "
                 "[--tls-cert F --tls-key F [--client-ca F]] [--admin ADDR:PORT]\n");
    return false;
  }
  if (o->tls_cert.empty() != o->tls_key.empty()) {
    std::fprintf(stderr, "portico server: --tls-cert and --tls-key go together\n");
    return false;
  }
  if (!o->client_ca.empty() && o->tls_cert.empty()) {
    std::fprintf(stderr, "portico server: --client-ca needs --tls-cert and --tls-key\n");
    return false;
  }
  if (o->token.empty() && o->client_ca.empty() && !is_loopback(o->listen_host)) {
    std::fprintf(stderr,
                 "portico server: --listen %s is beyond loopback: --token-file is required (or "
                 "mTLS: --tls-cert, --tls-key and --client-ca)\n",
                 o->listen_host.c_str());
    return false;
  }
  if (!is_loopback(o->admin_host)) {
    std::fprintf(stderr,
                 "portico server: --admin must be a loopback address (the REST API on --listen "
                 "takes the token for remote use)\n");
    return false;
  }
  return true;
}

struct Request {
  std::string method, path, query, authorization, body;
};

std::string query_param(std::string_view query, std::string_view name) {
  size_t start = 0;
  while (start <= query.size()) {
    size_t end = query.find('&', start);
    if (end == std::string_view::npos) end = query.size();
    std::string_view kv = query.substr(start, end - start);
    size_t eq = kv.find('=');
    if (kv.substr(0, eq) == name) {
      std::string out;
      std::string_view v = eq == std::string_view::npos ? "" : kv.substr(eq + 1);
      auto hex = [](char c) -> int {
        if (c >= '0' && c <= '9') return c - '0';
        if (c >= 'a' && c <= 'f') return c - 'a' + 10;
        if (c >= 'A' && c <= 'F') return c - 'A' + 10;
        return -1;
      };
      for (size_t i = 0; i < v.size(); ++i) {
        if (v[i] == '%' && i + 2 < v.size() && hex(v[i + 1]) >= 0 && hex(v[i + 2]) >= 0) {
          out.push_back(static_cast<char>(hex(v[i + 1]) * 16 + hex(v[i + 2])));
          i += 2;
        } else {
          out.push_back(v[i] == '+' ? ' ' : v[i]);
        }
      }
      return out;
    }
    start = end + 1;
  }
  return "";
}

class ServerRunner {
 public:
  explicit ServerRunner(ServerOptions options)
      : options_(std::move(options)),
        loop_(
            io_, options_.dir,
            [](std::shared_ptr<const snapshot::ProxyConfig>) {
              // No data plane here: the streams send it (notify(), after the sync).
              return std::vector<control::ListenerFailure>{};
            },
            options_.resync),
        pipeline_(loop_.pipeline()),
        admin_(io_,
               [this](const proxy::admin::Request& r) {
                 if (auto w = serve_write(pipeline_, r, {options_.token, {}})) return std::move(*w);
                 return rest(r.method, r.path, r.query);
               }),
        signals_(io_, SIGTERM, SIGINT) {}

  int run() {
    if (!options_.tls_cert.empty()) {
      std::string error = make_tls_context();
      if (!error.empty()) {
        std::fprintf(stderr, "portico server: %s\n", error.c_str());
        return 2;
      }
    }
    std::error_code ec;
    if (!std::filesystem::is_directory(options_.dir, ec)) {
      std::fprintf(stderr, "portico server: %s is not a directory\n", options_.dir.c_str());
      return 2;
    }
    loop_.set_hooks(
        {{}, [this](const control::Pipeline::SyncResult& result, ControlLoop::Clock::time_point) {
           if (!result.published) return;
           // "Applied" here: handed to the streams (each proxy's ACK is on its own
           // status line).
           pipeline_.applied(result.version, unix_ms());
           LOG_INFO("configuration version %llu published to %zu connected proxies",
                    static_cast<unsigned long long>(result.version), fleet_.connected());
           notify();
         }});
    loop_.start();

    std::string err = admin_.listen(options_.admin_host, options_.admin_port);
    if (!err.empty()) {
      std::fprintf(stderr, "portico server: admin listener: %s\n", err.c_str());
      return 1;
    }
    asio::error_code aec;
    auto addr = asio::ip::make_address(options_.listen_host, aec);
    if (aec) {
      std::fprintf(stderr, "portico server: invalid --listen address %s\n",
                   options_.listen_host.c_str());
      return 1;
    }
    asio::ip::tcp::endpoint ep(addr, options_.listen_port);
    acceptor_.open(ep.protocol(), aec);
    if (!aec) acceptor_.set_option(asio::ip::tcp::acceptor::reuse_address(true), aec);
    if (!aec) acceptor_.bind(ep, aec);
    if (!aec) acceptor_.listen(256, aec);
    if (aec) {
      std::fprintf(stderr, "portico server: cannot listen on %s:%u: %s\n",
                   options_.listen_host.c_str(), options_.listen_port, aec.message().c_str());
      return 1;
    }
    asio::co_spawn(io_, accept_loop(), asio::detached);
    const std::string auth = std::string(options_.token.empty() ? "no token" : "bearer token") +
                             (options_.client_ca.empty()
                                  ? ""
                                  : ", client certificates verified against " + options_.client_ca);
    LOG_INFO("portico server: fleet protocol on %s://%s:%u (%s), admin API on http://%s:%u",
             tls_ ? "https" : "http", options_.listen_host.c_str(),
             acceptor_.local_endpoint().port(), auth.c_str(), options_.admin_host.c_str(),
             admin_.port());
    signals_.async_wait([this](const asio::error_code& e, int sig) {
      if (e) return;
      LOG_INFO("signal %d: stopping", sig);
      stopping_ = true;
      loop_.stop();
      asio::error_code ignored;
      acceptor_.close(ignored);
      admin_.close();
      io_.stop();
    });
    loop_.start_resync();
    io_.run();
    LOG_INFO("stopped");
    return 0;
  }

 private:
  // Wakes every stream: each sends what its proxy lacks.
  void notify() {
    for (auto* t : waiting_)
      t->cancel();
  }

  // ---- HTTP: the fleet protocol and the REST API ----

  asio::awaitable<void> accept_loop() {
    for (;;) {
      auto [ec, socket] = co_await acceptor_.async_accept(use_nothrow);
      if (ec == asio::error::operation_aborted || !acceptor_.is_open()) co_return;
      if (ec) continue;
      asio::error_code ignored;
      socket.set_option(asio::ip::tcp::no_delay(true), ignored);
      if (tls_) {
        asio::co_spawn(io_, serve_tls(std::move(socket)), asio::detached);
      } else {
        asio::co_spawn(io_, serve(std::move(socket)), asio::detached);
      }
    }
  }

  // The TLS context of --listen: our certificate and key; with --client-ca, a client certificate
  // signed by it is required (the handshake fails without one). An error names the file.
  std::string make_tls_context() {
    auto ctx = std::make_unique<asio::ssl::context>(asio::ssl::context::tls_server);
    SSL_CTX* native = ctx->native_handle();
    SSL_CTX_set_min_proto_version(native, TLS1_2_VERSION);
    asio::error_code ec;
    ctx->use_certificate_chain_file(options_.tls_cert, ec);
    if (ec) return "--tls-cert " + options_.tls_cert + ": " + ec.message();
    ctx->use_private_key_file(options_.tls_key, asio::ssl::context::pem, ec);
    if (ec) return "--tls-key " + options_.tls_key + ": " + ec.message();
    if (SSL_CTX_check_private_key(native) != 1) {
      return "--tls-key " + options_.tls_key + " does not match --tls-cert " + options_.tls_cert;
    }
    if (!options_.client_ca.empty()) {
      ctx->load_verify_file(options_.client_ca, ec);
      if (ec) return "--client-ca " + options_.client_ca + ": " + ec.message();
      if (STACK_OF(X509_NAME)* names = SSL_load_client_CA_file(options_.client_ca.c_str())) {
        SSL_CTX_set_client_CA_list(native, names);  // the CAs a client is told to pick from
      }
      ctx->set_verify_mode(asio::ssl::verify_peer | asio::ssl::verify_fail_if_no_peer_cert);
    } else {
      ctx->set_verify_mode(asio::ssl::verify_none);
    }
    tls_ = std::move(ctx);
    return {};
  }

  // A TLS connection on --listen: the handshake (bounded: 10 s), then the same HTTP as plain.
  asio::awaitable<void> serve_tls(asio::ip::tcp::socket socket) {
    std::string peer;
    {
      asio::error_code ignored;
      auto ep = socket.remote_endpoint(ignored);
      if (!ignored) peer = ep.address().to_string() + ":" + std::to_string(ep.port());
    }
    asio::ssl::stream<asio::ip::tcp::socket> tls(std::move(socket), *tls_);
    asio::steady_timer deadline(io_);
    deadline.expires_after(std::chrono::seconds(10));
    deadline.async_wait([&tls](const asio::error_code& e) {
      if (e) return;
      asio::error_code ignored;
      tls.lowest_layer().close(ignored);
    });
    auto [ec] = co_await tls.async_handshake(asio::ssl::stream_base::server, use_nothrow);
    deadline.cancel();
    if (ec) {
      ++tls_failures_;
      std::string why = ec.message();
      if (ec.category() == asio::error::get_ssl_category()) {
        char buf[256];
        ERR_error_string_n(static_cast<unsigned long>(ec.value()), buf, sizeof buf);
        why = buf;
      }
      LOG_WARN("fleet: TLS handshake with %s failed: %s", peer.c_str(), why.c_str());
      co_return;
    }
    co_await serve_http(tls);
  }

  template <typename Socket>
  asio::awaitable<void> write_response(Socket& socket, int status, const std::string& type,
                                       const std::string& body, bool keep, bool* ok) {
    std::string out = "HTTP/1.1 " + std::to_string(status) + " " +
                      proxy::admin::reason_phrase(status) + "\r\nContent-Type: " + type +
                      "\r\nContent-Length: " + std::to_string(body.size()) + "\r\n" +
                      (status == 401 ? "WWW-Authenticate: Bearer\r\n" : "") +
                      (keep ? "" : "Connection: close\r\n") + "\r\n" + body;
    auto [ec, n] = co_await asio::async_write(socket, asio::buffer(out), use_nothrow);
    *ok = !ec;
  }

  asio::awaitable<void> serve(asio::ip::tcp::socket socket) { co_await serve_http(socket); }

  template <typename Socket>
  asio::awaitable<void> serve_http(Socket& socket) {
    std::string in;
    char buf[8192];
    for (;;) {
      proxy::http::RequestHead head;
      proxy::http::ParseResult r;
      for (;;) {
        if (!in.empty()) {
          r = proxy::http::parse_request_head(in, head);
          if (r.status != proxy::http::ParseStatus::kIncomplete) break;
        }
        if (in.size() > 64 * 1024) co_return;
        auto [ec, n] = co_await socket.async_read_some(asio::buffer(buf), use_nothrow);
        if (ec || n == 0) co_return;
        in.append(buf, n);
      }
      bool ok = true;
      if (r.status == proxy::http::ParseStatus::kError ||
          head.body == proxy::http::BodyKind::kChunked || head.content_length > kMaxBody) {
        const int status = head.content_length > kMaxBody ? 413 : 400;
        co_await write_response(socket, status, "text/plain", "bad request\n", false, &ok);
        co_return;
      }
      Request req;
      req.method = std::string(head.method);
      req.path = std::string(head.path);
      req.query = std::string(head.query);
      if (const auto* h = head.find("authorization")) req.authorization = std::string(h->value);
      const bool keep = head.keep_alive;
      const size_t want = head.head_bytes + static_cast<size_t>(head.content_length);
      while (in.size() < want) {
        auto [ec, n] = co_await socket.async_read_some(asio::buffer(buf), use_nothrow);
        if (ec || n == 0) co_return;
        in.append(buf, n);
      }
      req.body = in.substr(head.head_bytes, static_cast<size_t>(head.content_length));
      in.erase(0, want);

      const bool fleet_path = req.path.rfind("/v1/fleet/", 0) == 0;
      // The fleet protocol always takes the token when there is one (with --client-ca and no
      // token, the verified client certificate is the credential); the REST API on --listen
      // takes it whenever that is beyond loopback (without a token file it is refused there).
      const bool need_token =
          fleet_path ? !options_.token.empty() : !is_loopback(options_.listen_host);
      if (need_token && !fleet_path && options_.token.empty()) {
        ++unauthorized_;
        co_await write_response(
            socket, 401, "text/plain",
            "unauthorized: the REST API beyond loopback takes a bearer token (the server has no "
            "--token-file); use --admin on the server's host\n",
            false, &ok);
        co_return;
      }
      if (need_token && !bearer_matches(req.authorization, options_.token)) {
        ++unauthorized_;
        LOG_WARN("fleet: %s %s: missing or wrong bearer token (401)", req.method.c_str(),
                 req.path.c_str());
        co_await write_response(socket, 401, "text/plain", "unauthorized: bearer token wanted\n",
                                false, &ok);
        co_return;
      }
      if (req.path == "/v1/fleet/stream" && req.method == "GET") {
        co_await stream(socket, req);
        co_return;
      }
      int status = 200;
      std::string type = "application/json";
      std::string body;
      if (req.path == "/v1/fleet/ack") {
        if (req.method != "POST") {
          status = 405;
          body = "{\"error\":\"POST an ACK\"}\n";
        } else {
          control::fleet::Ack ack;
          std::string error;
          if (!control::fleet::parse_ack(req.body, &ack, &error)) {
            status = 400;
          } else if (!fleet_.ack(ack, unix_ms(), &error)) {
            status = 409;
          } else {
            on_ack(ack);
            notify();  // a NACK may call for a message computed on what the proxy kept
          }
          body = status == 200 ? "{}\n" : Json{{"error", error}}.dump() + "\n";
        }
      } else if (auto w = serve_write(
                     pipeline_, {req.method, req.path, req.query, req.authorization, req.body},
                     {options_.token, {}})) {
        status = w->status;
        type = w->content_type;
        body = std::move(w->body);
      } else {
        auto resp = rest(req.method, req.path, req.query);
        status = resp.status;
        type = resp.content_type;
        body = std::move(resp.body);
      }
      co_await write_response(socket, status, type, body, keep, &ok);
      if (!ok || !keep) co_return;
    }
  }

  void on_ack(const control::fleet::Ack& ack) {
    if (ack.accepted) {
      LOG_DEBUG("fleet: %s runs version %llu", ack.node.c_str(),
                static_cast<unsigned long long>(ack.version));
    } else {
      LOG_WARN("fleet: proxy %s rejected version %llu: %s", ack.node.c_str(),
               static_cast<unsigned long long>(ack.version), ack.error.c_str());
    }
    // NACKs in force are warnings on the statuses the sources write back (Consul KV's .status/
    // keys, Kubernetes' status subresource), not only on the REST API's /resources.
    auto warnings = fleet_.warnings();
    if (warnings != pipeline_.external_warnings()) {
      pipeline_.set_external_warnings(std::move(warnings));
      pipeline_.report_statuses();
    }
  }

  // GET /v1/fleet/stream?node=NAME&gateways=a,b&have=<section>:<version>,...
  template <typename Socket>
  asio::awaitable<void> stream(Socket& socket, const Request& req) {
    const std::string node = query_param(req.query, "node");
    bool ok = true;
    if (node.empty()) {
      co_await write_response(socket, 400, "text/plain", "node wanted\n", false, &ok);
      co_return;
    }
    std::string head =
        "HTTP/1.1 200 OK\r\nContent-Type: application/x-ndjson\r\nTransfer-Encoding: "
        "chunked\r\nCache-Control: no-store\r\n\r\n";
    {
      auto [ec, n] = co_await asio::async_write(socket, asio::buffer(head), use_nothrow);
      if (ec) co_return;
    }
    const uint64_t id =
        fleet_.connect(node, control::fleet::split_list(query_param(req.query, "gateways")),
                       control::fleet::parse_have(query_param(req.query, "have")), unix_ms());
    ++streams_opened_;
    LOG_INFO("fleet: proxy %s connected (gateways: %s)", node.c_str(),
             query_param(req.query, "gateways").empty()
                 ? "all"
                 : query_param(req.query, "gateways").c_str());
    asio::steady_timer timer(io_);
    auto last_write = Clock::now();
    for (;;) {
      std::string line;
      if (auto config = pipeline_.config()) {
        if (auto m = fleet_.next_message(node, id, *config)) line = std::move(*m);
      }
      if (line.empty() && Clock::now() - last_write >= options_.heartbeat) {
        line = "{\"heartbeat\":" + std::to_string(unix_ms()) + "}";
      }
      if (!line.empty()) {
        line += "\n";
        char size[32];
        std::snprintf(size, sizeof size, "%zx\r\n", line.size());
        std::string chunk = size + line + "\r\n";
        auto [ec, n] = co_await asio::async_write(socket, asio::buffer(chunk), use_nothrow);
        if (ec) break;
        last_write = Clock::now();
        fleet_.seen(node, unix_ms());
      }
      if (stopping_ || fleet_.proxies().at(node).stream_id != id) break;
      timer.expires_at(last_write + options_.heartbeat);
      waiting_.insert(&timer);
      co_await timer.async_wait(use_nothrow);
      waiting_.erase(&timer);
      if (stopping_) break;
    }
    fleet_.disconnect(node, id, unix_ms());
    LOG_INFO("fleet: proxy %s disconnected", node.c_str());
  }

  proxy::admin::Response rest(std::string_view method, std::string_view path, std::string_view) {
    if (method != "GET" && method != "HEAD") {
      return {405, "text/plain", "the REST API is read-only here: use GET\n"};
    }
    if (path == "/ready") {
      if (pipeline_.version() == 0) return {503, "text/plain", "starting\n"};
      std::string body = "ready\n";
      if (!pipeline_.last_build_ok()) {
        body += "last configuration build failed: " + pipeline_.last_error() +
                "; serving version " + std::to_string(pipeline_.version()) + "\n";
      }
      for (const auto& problem : pipeline_.source_problems())
        body += "source: " + problem + "\n";
      return {200, "text/plain", body};
    }
    if (path == "/resources") {
      Json resources = Json::parse(pipeline_.resources_json(), nullptr, false);
      if (resources.is_discarded()) return {500, "text/plain", "internal error\n"};
      fleet_.annotate(resources);
      return {200, "application/json",
              resources.dump(-1, ' ', false, Json::error_handler_t::replace) + "\n"};
    }
    if (path == "/proxies") {
      return {200, "application/json",
              fleet_.proxies_json().dump(-1, ' ', false, Json::error_handler_t::replace) + "\n"};
    }
    if (path == "/config_dump") {
      auto cfg = pipeline_.config();
      return {200, "application/json",
              cfg ? snapshot::to_json(*cfg, true) + "\n" : std::string("{}\n")};
    }
    if (path == "/stats") {
      std::string out = pipeline_.metrics().render() + loop_.source_stats() +
                        loop_.discovery_stats() + write_stats();
      out += "# TYPE portico_fleet_proxies_connected gauge\nportico_fleet_proxies_connected " +
             std::to_string(fleet_.connected()) + "\n";
      out +=
          "# TYPE portico_fleet_streams_opened_total counter\n"
          "portico_fleet_streams_opened_total " +
          std::to_string(streams_opened_) + "\n";
      out += "# TYPE portico_fleet_acks_total counter\nportico_fleet_acks_total " +
             std::to_string(fleet_.acks_total()) + "\n";
      out += "# TYPE portico_fleet_nacks_total counter\nportico_fleet_nacks_total " +
             std::to_string(fleet_.nacks_total()) + "\n";
      out += "# TYPE portico_fleet_unauthorized_total counter\nportico_fleet_unauthorized_total " +
             std::to_string(unauthorized_) + "\n";
      out +=
          "# TYPE portico_fleet_tls_handshake_failures_total counter\n"
          "portico_fleet_tls_handshake_failures_total " +
          std::to_string(tls_failures_) + "\n";
      out += "# TYPE portico_config_version gauge\nportico_config_version " +
             std::to_string(pipeline_.version()) + "\n";
      return {200, "text/plain; version=0.0.4", out};
    }
    if (path == "/") {
      return {200, "text/plain",
              "portico server REST API\n  /ready\n  /stats\n  /resources\n  /proxies\n"
              "  /config_dump\n"};
    }
    return {404, "text/plain", "unknown path\n"};
  }

  ServerOptions options_;
  asio::io_context io_{1};
  ControlLoop loop_;
  control::Pipeline& pipeline_;  // loop_'s
  proxy::admin::AdminServer admin_;
  asio::ip::tcp::acceptor acceptor_{io_};
  asio::signal_set signals_;
  control::fleet::Fleet fleet_;
  std::set<asio::steady_timer*> waiting_;  // streams waiting for news
  uint64_t streams_opened_ = 0;
  uint64_t unauthorized_ = 0;
  uint64_t tls_failures_ = 0;
  std::unique_ptr<asio::ssl::context> tls_;  // TLS on --listen (null: plain)
  bool stopping_ = false;
};

}  // namespace

int server_command(const std::vector<std::string>& args) {
  ServerOptions options;
  if (!parse_server_options(args, &options)) return 2;
  signal(SIGPIPE, SIG_IGN);
  ServerRunner runner(std::move(options));
  return runner.run();
}

}  // namespace portico::cli
