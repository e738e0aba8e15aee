#include "proxy/upstream/health.h"

#include <pthread.h>
#include <sys/socket.h>

#include <asio/experimental/as_tuple.hpp>
#include <cerrno>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstdint>
#include <mutex>
#include <string_view>

#include "common/log.h"
#include "proxy/tls/tls_transport.h"
#include "proxy/transport/tcp.h"
#include "proxy/upstream/grpc_health.h"

namespace portico::proxy::upstream {

namespace {

constexpr auto use_nothrow = asio::experimental::as_tuple(asio::use_awaitable);
constexpr auto kRelaxed = std::memory_order_relaxed;
// How often the health thread returns ejected hosts and refreshes the gauges.
constexpr int64_t kSweepEveryMs = 250;
// The health thread's one timer: every tick starts the checks that are due and times out those
// that took too long (no timer per check: the checks due in one tick go out together and their
// answers are read in the same wake-ups). Without checks it only sweeps.
constexpr std::chrono::milliseconds kTick{20};
constexpr std::chrono::milliseconds kIdleTick{kSweepEveryMs};
// A health check response larger than this is not read to its end (the connection is closed).
constexpr size_t kMaxResponseBytes = 64 * 1024;

// Ejections are rare: one lock for all of them keeps max_ejection_percent exact across workers.
std::mutex& eject_mutex() {
  static std::mutex mu;
  return mu;
}

void reset_counters(HostHealth& h) {
  if (h.consecutive_5xx.load(kRelaxed) != 0) h.consecutive_5xx.store(0, kRelaxed);
  if (h.consecutive_gateway.load(kRelaxed) != 0) h.consecutive_gateway.store(0, kRelaxed);
  if (h.consecutive_local.load(kRelaxed) != 0) h.consecutive_local.store(0, kRelaxed);
}

// Adds one to `counter`; true when that reaches `threshold` (0: the detector is off), and then
// starts the count again.
bool crossed(std::atomic<uint32_t>& counter, uint32_t threshold) {
  if (threshold == 0) return false;
  if (counter.fetch_add(1, kRelaxed) + 1 < threshold) return false;
  counter.store(0, kRelaxed);
  return true;
}

uint64_t next_random(uint64_t& s) {
  s ^= s >> 12;
  s ^= s << 25;
  s ^= s >> 27;
  return s * 0x2545F4914F6CDD1DULL;
}

}  // namespace

int64_t steady_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// ---- Outlier detection ---------------------------------------------------------------------

bool ClusterHealth::report(HostHealth& h, int status, uint64_t random) const {
  if (!outlier) return false;
  const auto& o = *outlier;
  if (status >= 0 && status < 500) {
    reset_counters(h);
    return false;
  }
  const bool local = status == kLocalOriginFailure;
  if (local && o.split_external_local_origin_errors) {
    // Local failures are counted apart from what the upstream answered.
    if (crossed(h.consecutive_local, o.consecutive_local_origin_failure))
      return eject(h, o.enforcing_consecutive_local_origin_failure, random);
    return false;
  }
  const bool gateway =
      local || status == kGatewayFailure || status == 502 || status == 503 || status == 504;
  bool ejected = false;
  if (crossed(h.consecutive_5xx, o.consecutive_5xx))
    ejected = eject(h, o.enforcing_consecutive_5xx, random);
  if (gateway) {
    if (crossed(h.consecutive_gateway, o.consecutive_gateway_failure) && !ejected)
      ejected = eject(h, o.enforcing_consecutive_gateway_failure, random);
  } else if (h.consecutive_gateway.load(kRelaxed) != 0) {
    h.consecutive_gateway.store(0, kRelaxed);  // a 500 breaks a run of gateway failures
  }
  return ejected;
}

bool ClusterHealth::eject(HostHealth& h, uint32_t enforcing, uint64_t random) const {
  if (enforcing == 0 || (enforcing < 100 && (random >> 16) % 100 >= enforcing)) return false;
  std::lock_guard<std::mutex> lock(eject_mutex());
  if (h.ejected.load(kRelaxed)) return false;
  size_t ejected = 0;
  for (const auto& other : hosts)
    ejected += other->ejected.load(kRelaxed) ? 1 : 0;
  // At most max_ejection_percent of the hosts, but one host may always be ejected.
  if (ejected > 0 && (ejected + 1) * 100 > hosts.size() * outlier->max_ejection_percent)
    return false;
  const uint32_t times = h.ejections.load(kRelaxed) + 1;
  h.ejections.store(times, kRelaxed);
  const int64_t base = outlier->base_ejection_time.count();
  const int64_t cap = std::max(outlier->max_ejection_time.count(), base);
  const int64_t now = steady_ms();
  h.ejected_until_ms.store(now + std::min(base * static_cast<int64_t>(times), cap), kRelaxed);
  h.multiplier_since_ms.store(now, kRelaxed);
  h.ejected.store(true, std::memory_order_release);
  if (stats) {
    stats->ejections.fetch_add(1, kRelaxed);
    stats->hosts_ejected.inc();  // at once; the sweep recounts
  }
  return true;
}

void ClusterHealth::sweep(int64_t now) const {
  size_t healthy = 0, ejected = 0;
  for (const auto& h : hosts) {
    if (h->ejected.load(std::memory_order_acquire)) {
      if (now >= h->ejected_until_ms.load(kRelaxed)) {
        reset_counters(*h);
        h->multiplier_since_ms.store(now, kRelaxed);
        h->ejected.store(false, kRelaxed);
      }
    } else if (outlier && h->ejections.load(kRelaxed) > 0 &&
               now - h->multiplier_since_ms.load(kRelaxed) >= outlier->interval.count()) {
      // Back for a whole interval: the next ejection is one step shorter.
      h->ejections.store(h->ejections.load(kRelaxed) - 1, kRelaxed);
      h->multiplier_since_ms.store(now, kRelaxed);
    }
    healthy += h->check_ok.load(kRelaxed) ? 1 : 0;
    ejected += h->ejected.load(kRelaxed) ? 1 : 0;
  }
  if (stats) {
    stats->hosts.v.store(hosts.size(), kRelaxed);
    stats->hosts_healthy.v.store(healthy, kRelaxed);
    stats->hosts_ejected.v.store(ejected, kRelaxed);
  }
}

std::shared_ptr<const ClusterHealth> make_cluster_health(
    const snapshot::Cluster& c, const ClusterHealth* previous,
    std::shared_ptr<stats::ClusterSlot> stats, std::shared_ptr<const tls::ClientContext> tls) {
  const bool shown = c.health_check.has_value() || c.outlier_detection.has_value();
  if (stats) stats->health_shown.store(shown, kRelaxed);
  if (!shown) return nullptr;
  auto h = std::make_shared<ClusterHealth>();
  h->name = c.name;
  h->check = c.health_check;
  h->outlier = c.outlier_detection;
  h->tls = std::move(tls);
  h->tls_cluster = c.tls.has_value();
  if (c.health_check && c.health_check->kind == snapshot::HealthCheck::Kind::kGrpc && c.tls &&
      h->tls) {
    // gRPC checks need HTTP/2: the Upstream's TLS settings, offering only ALPN h2 (built once:
    // ClientContext::create caches by content). Without it the checks fail.
    snapshot::TlsClientConfig h2 = *c.tls;
    h2.alpn = {"h2"};
    auto made = tls::ClientContext::create(h2);
    h->tls = made.ok() ? std::move(made.value()) : nullptr;
  }
  h->stats = std::move(stats);
  const bool checked = c.health_check.has_value();
  // A host's state carries over while it stays, unless the cluster gained or lost its check
  // (then the verdict would be stale).
  const bool reuse = previous != nullptr && previous->check.has_value() == checked;
  std::unordered_map<std::string, std::shared_ptr<HostHealth>> before;
  if (reuse) {
    for (const auto& p : previous->hosts)
      before.emplace(p->address + "|" + std::to_string(p->port), p);
  }
  h->hosts.reserve(c.endpoints.size());
  for (const auto& e : c.endpoints) {
    std::shared_ptr<HostHealth> host;
    if (auto it = before.find(e.address + "|" + std::to_string(e.port)); it != before.end()) {
      host = it->second;
    } else {
      host = std::make_shared<HostHealth>(e.address, e.port, checked);
    }
    h->hosts.push_back(std::move(host));
  }
  return h;
}

// ---- Active checks -------------------------------------------------------------------------

namespace {
struct ParsedHead {
  int status = 0;
  size_t head_bytes = 0;
  int64_t content_length = -1;  // -1: unknown (read to close or chunked)
  bool keep_alive = true;
};
}  // namespace

struct HealthChecker::Probe {
  std::shared_ptr<const ClusterHealth> cluster;  // the latest configuration of its cluster
  std::shared_ptr<HostHealth> host;
  asio::ip::tcp::endpoint address;
  bool stopped = false;
  bool drop_connection = false;  // the configuration changed: the kept connection is not reused
  bool first = true;             // no verdict yet: the first success makes the host healthy
  uint32_t successes = 0;
  uint32_t failures = 0;
  std::unique_ptr<transport::Transport> conn;          // HTTP, gRPC: kept open between checks
  std::unique_ptr<grpc_health::GrpcHealthSession> h2;  // gRPC: the HTTP/2 session on conn
  std::string authority;                               // gRPC: :authority, built with request
  std::string reason;       // why the last check failed (logged when the host goes down)
  int64_t next_ms = 0;      // steady_ms() at which the next check is due
  int64_t deadline_ms = 0;  // of the check in flight
  int64_t* due = nullptr;   // its entry in HealthChecker::due_ (null once stopped)
  bool in_flight = false;
  bool timed_out = false;
  asio::ip::tcp::socket* connecting = nullptr;
  std::string buf;  // the response being read
  ParsedHead head;  // ... its head, once have_head
  bool have_head = false;
  asio::io_context* io = nullptr;
  std::shared_ptr<const ClusterHealth> fast_cluster;  // of the check on the fast path
  std::string request;  // the HTTP check's request (gRPC: its body), built once per cluster
  std::shared_ptr<const ClusterHealth> request_for;  // ... configuration (held: no ABA)
  uint64_t rng = 0;
};

namespace {

using Probe = HealthChecker::Probe;
using stats::HealthCheckResult;

void schedule_next(Probe& p, const snapshot::HealthCheck& hc);

// The check in flight took longer than its timeout (called by the tick): its socket is closed,
// which ends the pending operation.
void expire(Probe& p) {
  p.timed_out = true;
  asio::error_code ignored;
  if (p.connecting != nullptr) p.connecting->close(ignored);
  if (p.conn) p.conn->close();
}

void stop_probe(const std::shared_ptr<Probe>& p) {
  p->stopped = true;
  p->due = nullptr;
  asio::error_code ignored;
  if (p->connecting != nullptr) p->connecting->close(ignored);
  if (p->conn) p->conn->close();
}

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(a[i])) !=
        std::tolower(static_cast<unsigned char>(b[i])))
      return false;
  }
  return true;
}

// Parses a complete response head (ending in CRLF CRLF) in `buf`; false when it is not one.
bool parse_head(const std::string& buf, ParsedHead* out) {
  const size_t end = buf.find("\r\n\r\n");
  if (end == std::string::npos) return false;
  out->head_bytes = end + 4;
  std::string_view head(buf.data(), end);
  if (head.size() < 12 || head.substr(0, 5) != "HTTP/") return false;
  const size_t sp = head.find(' ');
  if (sp == std::string_view::npos || sp + 4 > head.size()) return false;
  int status = 0;
  for (size_t i = sp + 1; i < sp + 4; ++i) {
    if (!std::isdigit(static_cast<unsigned char>(head[i]))) return false;
    status = status * 10 + (head[i] - '0');
  }
  out->status = status;
  if (head.substr(0, 8) == "HTTP/1.0") out->keep_alive = false;
  size_t pos = head.find("\r\n");
  while (pos != std::string_view::npos && pos + 2 < head.size()) {
    size_t next = head.find("\r\n", pos + 2);
    std::string_view line =
        head.substr(pos + 2, (next == std::string_view::npos ? head.size() : next) - pos - 2);
    pos = next;
    const size_t colon = line.find(':');
    if (colon == std::string_view::npos) continue;
    std::string_view name = line.substr(0, colon);
    std::string_view value = line.substr(colon + 1);
    while (!value.empty() && (value.front() == ' ' || value.front() == '\t'))
      value.remove_prefix(1);
    while (!value.empty() && (value.back() == ' ' || value.back() == '\t'))
      value.remove_suffix(1);
    if (iequals(name, "content-length")) {
      int64_t n = 0;
      for (char ch : value) {
        if (!std::isdigit(static_cast<unsigned char>(ch))) return false;
        n = n * 10 + (ch - '0');
        if (n > (int64_t{1} << 40)) return false;
      }
      out->content_length = n;
    } else if (iequals(name, "transfer-encoding")) {
      out->keep_alive = false;  // chunked bodies are not parsed: the connection is not reused
    } else if (iequals(name, "connection") && iequals(value, "close")) {
      out->keep_alive = false;
    }
  }
  if (status == 204 || status == 304 || (status >= 100 && status < 200)) out->content_length = 0;
  if (out->content_length < 0) out->keep_alive = false;
  return true;
}

bool expected(const snapshot::HealthCheck& hc, int status) {
  if (hc.expected_statuses.empty()) return status == 200;
  for (const auto& [start, end] : hc.expected_statuses) {
    if (status >= start && status < end) return true;
  }
  return false;
}

// Opens a connection (TLS for TLS clusters). Null on failure.
asio::awaitable<std::unique_ptr<transport::Transport>> open(std::shared_ptr<Probe> p,
                                                            const ClusterHealth& c) {
  auto exec = co_await asio::this_coro::executor;
  asio::ip::tcp::socket sock(exec);
  p->connecting = &sock;
  auto [ec] = co_await sock.async_connect(p->address, use_nothrow);
  p->connecting = nullptr;
  if (ec || p->timed_out || p->stopped) {
    if (ec) p->reason = "connect: " + ec.message();
    co_return nullptr;
  }
  asio::error_code ignored;
  sock.set_option(asio::ip::tcp::no_delay(true), ignored);
  if (c.check->kind == snapshot::HealthCheck::Kind::kTcp) {
    co_return std::make_unique<transport::TcpTransport>(std::move(sock));
  }
  if (c.tls_cluster) {
    if (!c.tls) {  // the cluster's TLS settings could not be built
      p->reason = "the Upstream's TLS settings could not be built";
      co_return nullptr;
    }
    auto t = co_await tls::connect(c.tls, std::move(sock), {}, c.check->timeout);
    if (!t.ok()) {
      p->reason = t.error().message;
      co_return nullptr;
    }
    if (c.check->kind == snapshot::HealthCheck::Kind::kGrpc && t.value()->info().alpn != "h2") {
      p->reason = "TLS: the upstream did not select ALPN h2";
      t.value()->close();
      co_return nullptr;
    }
    co_return std::move(t.value());
  }
  co_return std::make_unique<transport::TcpTransport>(std::move(sock));
}

void ensure_request(Probe& p, const std::shared_ptr<const ClusterHealth>& cp) {
  if (p.request_for == cp) return;
  const auto& hc = *cp->check;
  std::string& req = p.request;
  // Appended piece by piece: GCC 12 at -O3 reports a false -Wstringop-overflow on
  // `":" + std::to_string(...)` (as in src/cli/format.cc).
  req.assign("GET ");
  req.append(hc.path);
  req.append(" HTTP/1.1\r\nHost: ");
  if (hc.host.empty()) {
    const bool v6 = p.address.address().is_v6();
    if (v6) req.push_back('[');
    req.append(p.host->address);
    if (v6) req.push_back(']');
    req.push_back(':');
    req.append(std::to_string(p.host->port));
  } else {
    req.append(hc.host);
  }
  req.append("\r\nUser-Agent: portico-health-check\r\nAccept: */*\r\n\r\n");
  p.request_for = cp;
}

enum class Progress { kMore, kDone, kBad };

// Where the response in p.buf stands after bytes were appended to it (or at the end of the
// stream: eof). kDone: p.head.status is the answer.
Progress advance(Probe& p, bool eof) {
  if (!p.have_head) {
    if (parse_head(p.buf, &p.head)) {
      p.have_head = true;
    } else if (eof || p.buf.size() > kMaxResponseBytes ||
               p.buf.find("\r\n\r\n") != std::string::npos) {
      return Progress::kBad;
    } else {
      return Progress::kMore;
    }
  }
  if (p.head.content_length >= 0 &&
      p.buf.size() >= p.head.head_bytes + static_cast<size_t>(p.head.content_length))
    return Progress::kDone;
  if (eof) return p.head.content_length < 0 ? Progress::kDone : Progress::kBad;
  if (p.buf.size() > kMaxResponseBytes) {
    p.head.keep_alive = false;  // not worth reading to the end: the status is known
    return Progress::kDone;
  }
  return Progress::kMore;
}

// After a response: whether its connection may carry the next check. Resets the read state.
bool finish_response(Probe& p) {
  const bool keep = p.have_head && p.head.keep_alive &&
                    p.buf.size() == p.head.head_bytes + static_cast<size_t>(std::max<int64_t>(
                                                            p.head.content_length, 0));
  p.buf.clear();
  if (p.buf.capacity() > 16384) p.buf.shrink_to_fit();  // a large response: not kept per host
  p.have_head = false;
  p.head = ParsedHead{};
  return keep;
}

// One HTTP exchange on p->conn: true with the status, false when the connection failed before a
// complete response (or the response could not be read).
asio::awaitable<bool> http_exchange(std::shared_ptr<Probe> p,
                                    std::shared_ptr<const ClusterHealth> cp, int* status) {
  ensure_request(*p, cp);
  std::array<asio::const_buffer, 1> bufs{asio::buffer(p->request)};
  auto [wec, wn] = co_await p->conn->write(bufs);
  if (wec || !p->conn) co_return false;
  p->buf.clear();
  p->have_head = false;
  char chunk[4096];
  for (;;) {
    if (!p->conn) co_return false;
    auto [rec, n] = co_await p->conn->read_some(asio::buffer(chunk));
    const bool eof = rec || n == 0;
    if (!eof) p->buf.append(chunk, n);
    const Progress pr = advance(*p, eof);
    if (pr == Progress::kMore) continue;
    if (pr == Progress::kBad) {
      finish_response(*p);
      co_return false;
    }
    *status = p->head.status;
    if (!finish_response(*p)) {
      if (p->conn) p->conn->close();
      p->conn.reset();
    }
    co_return true;
  }
}

void ensure_grpc_request(Probe& p, const std::shared_ptr<const ClusterHealth>& cp) {
  if (p.request_for == cp) return;
  const auto& hc = *cp->check;
  p.request = grpc_health::encode_request(hc.service_name);
  if (hc.host.empty()) {
    const bool v6 = p.address.address().is_v6();
    p.authority.assign(v6 ? "[" : "");
    p.authority.append(p.host->address);
    if (v6) p.authority.push_back(']');
    p.authority.push_back(':');
    p.authority.append(std::to_string(p.host->port));
  } else {
    p.authority = hc.host;
  }
  p.request_for = cp;
}

// One gRPC check on p->conn and its session p->h2. True with the verdict in `out`; false when
// the connection could not carry the check (closed before the answer, stream refused): a kept
// connection is then tried once more, fresh.
asio::awaitable<bool> grpc_exchange(std::shared_ptr<Probe> p,
                                    std::shared_ptr<const ClusterHealth> cp,
                                    grpc_health::Verdict* out) {
  auto& s = *p->h2;
  grpc_health::CheckRequest req;
  req.authority = p->authority;
  req.body = p->request;
  req.tls = cp->tls_cluster;
  req.metadata = &cp->check->initial_metadata;
  if (!s.start(req)) {
    *out = {grpc_health::Failure::kRefused, "the connection takes no new stream"};
    co_return false;
  }
  char chunk[4096];
  for (;;) {
    p->buf.clear();
    s.take_output(&p->buf);
    if (!p->buf.empty()) {
      std::array<asio::const_buffer, 1> bufs{asio::buffer(p->buf)};
      auto [wec, wn] = co_await p->conn->write(bufs);
      if (wec) {
        s.connection_closed(p->timed_out ? "timed out" : "write: " + wec.message());
        break;
      }
    }
    if (s.done()) break;
    auto [rec, n] = co_await p->conn->read_some(asio::buffer(chunk));
    if (rec || n == 0) {
      s.connection_closed(p->timed_out ? "timed out"
                          : rec        ? "read: " + rec.message()
                                       : "closed by the upstream before the answer");
      break;
    }
    s.receive(chunk, n);
  }
  p->buf.clear();
  if (p->buf.capacity() > 16384) p->buf.shrink_to_fit();
  *out = s.verdict();
  co_return out->failure != grpc_health::Failure::kConnection &&
      out->failure != grpc_health::Failure::kRefused;
}

asio::awaitable<HealthCheckResult> grpc_check(std::shared_ptr<Probe> p,
                                              std::shared_ptr<const ClusterHealth> c) {
  ensure_grpc_request(*p, c);
  auto drop = [&] {
    if (p->conn) p->conn->close();
    p->conn.reset();
    p->h2.reset();
  };
  // On the kept connection when it can carry the check (once more on a fresh one if not).
  for (int attempt = 0; attempt < 2; ++attempt) {
    const bool reused =
        p->conn != nullptr && p->conn->is_open() && p->h2 != nullptr && p->h2->reusable();
    if (!reused) {
      drop();
      p->conn = co_await open(p, *c);
      if (!p->conn) break;
      p->h2 = std::make_unique<grpc_health::GrpcHealthSession>();
      if (!p->h2->ok()) {
        p->reason = "HTTP/2 session: out of memory";
        break;
      }
    }
    grpc_health::Verdict v;
    const bool answered = co_await grpc_exchange(p, c, &v);
    if (!v.ok()) p->reason = std::string(grpc_health::failure_name(v.failure)) + ": " + v.detail;
    if (answered) {
      if (!p->h2->reusable()) drop();
      co_return v.ok() ? HealthCheckResult::kSuccess : HealthCheckResult::kFailure;
    }
    drop();
    if (!reused || p->timed_out || p->stopped) break;
  }
  drop();
  if (p->timed_out) p->reason = "timeout";
  co_return p->timed_out ? HealthCheckResult::kTimeout : HealthCheckResult::kFailure;
}

asio::awaitable<HealthCheckResult> check_once(std::shared_ptr<Probe> p,
                                              std::shared_ptr<const ClusterHealth> c) {
  const auto& hc = *c->check;
  auto failed = [&] {
    if (p->conn) p->conn->close();
    p->conn.reset();
    if (p->timed_out) p->reason = "timeout";
    return p->timed_out ? HealthCheckResult::kTimeout : HealthCheckResult::kFailure;
  };
  if (hc.kind == snapshot::HealthCheck::Kind::kGrpc) co_return co_await grpc_check(p, c);
  if (hc.kind == snapshot::HealthCheck::Kind::kTcp) {
    auto conn = co_await open(p, *c);
    if (!conn) co_return failed();
    conn->close();
    co_return HealthCheckResult::kSuccess;
  }
  // HTTP: on the kept connection when there is one (once more on a fresh one if it was closed).
  for (int attempt = 0; attempt < 2; ++attempt) {
    const bool reused = p->conn != nullptr;
    if (!p->conn) {
      p->conn = co_await open(p, *c);
      if (!p->conn) co_return failed();
    }
    int status = 0;
    if (co_await http_exchange(p, c, &status)) {
      if (expected(hc, status)) co_return HealthCheckResult::kSuccess;
      p->reason = "HTTP status " + std::to_string(status);
      co_return HealthCheckResult::kFailure;
    }
    if (p->conn) p->conn->close();
    p->conn.reset();
    if (!reused || p->timed_out || p->stopped) break;
  }
  co_return failed();
}

void record(Probe& p, const ClusterHealth& c, HealthCheckResult r) {
  if (c.stats) c.stats->health_checks[static_cast<size_t>(r)].inc();
  const auto& hc = *c.check;
  HostHealth& h = *p.host;
  if (r == HealthCheckResult::kSuccess) {
    p.failures = 0;
    ++p.successes;
    if (!h.check_ok.load(kRelaxed) && (p.first || p.successes >= hc.healthy_threshold)) {
      h.check_ok.store(true, kRelaxed);
      LOG_INFO("upstream %s: %s:%u is healthy", c.name.c_str(), h.address.c_str(), h.port);
    }
  } else {
    p.successes = 0;
    ++p.failures;
    if (h.check_ok.load(kRelaxed) && p.failures >= hc.unhealthy_threshold) {
      h.check_ok.store(false, kRelaxed);
      if (p.reason.empty()) {
        LOG_WARN("upstream %s: %s:%u failed %u health checks: unhealthy", c.name.c_str(),
                 h.address.c_str(), h.port, p.failures);
      } else {
        LOG_WARN("upstream %s: %s:%u failed %u health checks: unhealthy (last: %s)", c.name.c_str(),
                 h.address.c_str(), h.port, p.failures, p.reason.c_str());
      }
    }
  }
  p.first = false;
}

std::chrono::milliseconds next_wait(Probe& p, const snapshot::HealthCheck& hc);

void schedule_next(Probe& p, const snapshot::HealthCheck& hc) {
  p.next_ms = steady_ms() + next_wait(p, hc).count();
  if (p.due != nullptr) *p.due = p.next_ms;
}

std::chrono::milliseconds next_wait(Probe& p, const snapshot::HealthCheck& hc) {
  int64_t wait = hc.interval.count();
  int64_t jitter = hc.interval_jitter.count();
  if (hc.interval_jitter_percent > 0) jitter += wait * hc.interval_jitter_percent / 100;
  if (jitter > 0)
    wait += static_cast<int64_t>(next_random(p.rng) % static_cast<uint64_t>(jitter + 1));
  return std::chrono::milliseconds(wait);
}

// One check of `p`, started by the tick; schedules the next one.
asio::awaitable<void> run_check(std::shared_ptr<Probe> p) {
  if (p->drop_connection) {
    p->drop_connection = false;
    if (p->conn) p->conn->close();
    p->conn.reset();
  }
  std::shared_ptr<const ClusterHealth> c = p->cluster;
  HealthCheckResult r = co_await check_once(p, c);
  p->connecting = nullptr;
  p->in_flight = false;
  if (p->stopped) {
    if (p->conn) p->conn->close();
    p->conn.reset();
    co_return;
  }
  record(*p, *c, r);
  schedule_next(*p, *c->check);
}

// ---- The fast path: an HTTP check on a kept plain-TCP connection, without a coroutine --------
// The request goes out with one send(); the answer is read when the socket is readable. Anything
// unusual (the connection was closed, a partial send) falls back to run_check().

void fast_finish(const std::shared_ptr<Probe>& p, HealthCheckResult r, bool keep) {
  if (!keep) {
    if (p->conn) p->conn->close();
    p->conn.reset();
  }
  p->in_flight = false;
  std::shared_ptr<const ClusterHealth> c = std::move(p->fast_cluster);
  if (p->stopped || !c) return;
  record(*p, *c, r);
  schedule_next(*p, *c->check);
}

void on_readable(const std::shared_ptr<Probe>& p, const asio::error_code& ec);

void wait_response(const std::shared_ptr<Probe>& p) {
  p->conn->lowest_layer().async_wait(asio::socket_base::wait_read,
                                     [p](const asio::error_code& ec) { on_readable(p, ec); });
}

void on_readable(const std::shared_ptr<Probe>& p, const asio::error_code& ec) {
  const auto failure = [&] {
    finish_response(*p);
    return p->timed_out ? HealthCheckResult::kTimeout : HealthCheckResult::kFailure;
  };
  if (ec || p->stopped || !p->conn || !p->conn->is_open()) {
    fast_finish(p, failure(), false);
    return;
  }
  const int fd = p->conn->lowest_layer().native_handle();
  char chunk[4096];
  for (;;) {
    const ssize_t n = ::recv(fd, chunk, sizeof chunk, MSG_DONTWAIT);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      wait_response(p);
      return;
    }
    const bool eof = n <= 0;
    if (eof && p->buf.empty() && !p->timed_out) {
      // The upstream had closed the kept connection: the general path tries a fresh one.
      finish_response(*p);
      p->conn->close();
      p->conn.reset();
      p->fast_cluster.reset();
      asio::co_spawn(*p->io, run_check(p), asio::detached);
      return;
    }
    if (!eof) p->buf.append(chunk, static_cast<size_t>(n));
    const Progress pr = advance(*p, eof);
    if (pr == Progress::kMore) continue;
    if (pr == Progress::kBad) {
      fast_finish(p, failure(), false);
      return;
    }
    const int status = p->head.status;
    const bool keep = finish_response(*p);
    fast_finish(p,
                expected(*p->fast_cluster->check, status) ? HealthCheckResult::kSuccess
                                                          : HealthCheckResult::kFailure,
                keep);
    return;
  }
}

// Starts the check of `p` on the fast path when it can; false: use run_check().
bool try_fast_check(const std::shared_ptr<Probe>& p) {
  const auto& c = p->cluster;
  if (c->check->kind != snapshot::HealthCheck::Kind::kHttp || c->tls_cluster || !p->conn ||
      p->drop_connection || !p->conn->is_open())
    return false;
  ensure_request(*p, c);
  const ssize_t n = ::send(p->conn->lowest_layer().native_handle(), p->request.data(),
                           p->request.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
  if (n != static_cast<ssize_t>(p->request.size())) {
    p->conn->close();  // gone, or a partial send: a fresh connection on the general path
    p->conn.reset();
    return false;
  }
  p->fast_cluster = c;
  p->buf.clear();
  p->have_head = false;
  wait_response(p);
  return true;
}

}  // namespace

HealthChecker::HealthChecker() : work_(asio::make_work_guard(io_)), ticker_(io_) {}

HealthChecker::~HealthChecker() {
  stop();
}

void HealthChecker::start() {
  if (thread_.joinable()) return;
  thread_ = std::thread([this] {
    pthread_setname_np(pthread_self(), "portico-health");  // for top -H and the benchmarks
    schedule_tick();
    io_.run();
  });
}

void HealthChecker::stop() {
  if (!thread_.joinable()) return;
  asio::post(io_, [this] {
    for (auto& [host, p] : probes_)
      stop_probe(p);
    probes_.clear();
    due_.clear();
    clusters_.clear();
    ticker_.cancel();
    work_.reset();
    io_.stop();
  });
  thread_.join();
}

void HealthChecker::apply(std::vector<std::shared_ptr<const ClusterHealth>> clusters) {
  asio::post(io_,
             [this, clusters = std::move(clusters)]() mutable { on_apply(std::move(clusters)); });
}

void HealthChecker::on_apply(std::vector<std::shared_ptr<const ClusterHealth>> clusters) {
  const int64_t now = steady_ms();
  std::unordered_map<const HostHealth*, std::shared_ptr<Probe>> next;
  std::vector<std::shared_ptr<const ClusterHealth>> kept;
  for (auto& c : clusters) {
    if (!c) continue;
    if (c->check) {
      for (const auto& h : c->hosts) {
        auto it = probes_.find(h.get());
        if (it != probes_.end()) {
          auto p = std::move(it->second);
          probes_.erase(it);
          if (p->cluster != c) {
            p->drop_connection = !(*p->cluster->check == *c->check) || p->cluster->tls != c->tls;
            p->cluster = c;
          }
          next.emplace(h.get(), std::move(p));
          continue;
        }
        if (next.count(h.get())) continue;
        asio::error_code ec;
        auto addr = asio::ip::make_address(h->address, ec);
        if (ec) continue;  // validated by the control plane
        auto p = std::make_shared<Probe>();
        p->cluster = c;
        p->host = h;
        p->address = asio::ip::tcp::endpoint(addr, h->port);
        p->rng = next_random(rng_) | 1;
        p->io = &io_;
        // The first check at once, spread over a tenth of the interval (at most 100 ms) across
        // the hosts.
        const int64_t spread = std::min<int64_t>(c->check->interval.count(), 1000) / 10;
        p->next_ms =
            now + static_cast<int64_t>(next_random(p->rng) % static_cast<uint64_t>(spread + 1));
        next.emplace(h.get(), std::move(p));
      }
    }
    kept.push_back(std::move(c));
  }
  for (auto& [host, p] : probes_)
    stop_probe(p);
  probes_ = std::move(next);
  clusters_ = std::move(kept);
  // The tick scans this compact list (not the probes themselves, scattered in memory).
  due_.clear();
  due_.reserve(probes_.size());
  for (auto& [host, p] : probes_) {
    int64_t at = p->next_ms;
    if (p->in_flight) at = p->timed_out ? INT64_MAX : p->deadline_ms;
    due_.emplace_back(at, p);
  }
  for (auto& d : due_)
    d.second->due = &d.first;
  checkers_.store(probes_.size(), kRelaxed);
  for (const auto& c : clusters_)
    c->sweep(now);
  last_sweep_ms_ = now;
  schedule_tick();  // at the pace the probes need now (replaces the pending wait)
}

void HealthChecker::schedule_tick() {
  ticker_.expires_after(probes_.empty() ? kIdleTick : kTick);
  ticker_.async_wait([this](const asio::error_code& ec) {
    if (ec) return;
    on_tick();
    schedule_tick();
  });
}

void HealthChecker::on_tick() {
  const int64_t now = steady_ms();
  for (auto& [at, p] : due_) {
    if (now < at) continue;
    if (p->in_flight) {
      // Past its deadline: its socket is closed; its completion schedules the next check.
      if (!p->timed_out) expire(*p);
      at = INT64_MAX;
      continue;
    }
    p->in_flight = true;
    p->timed_out = false;
    p->reason.clear();
    p->deadline_ms = now + p->cluster->check->timeout.count();
    at = p->deadline_ms;
    if (!try_fast_check(p)) asio::co_spawn(io_, run_check(p), asio::detached);
  }
  if (now - last_sweep_ms_ >= kSweepEveryMs) {
    for (const auto& c : clusters_)
      c->sweep(now);
    last_sweep_ms_ = now;
  }
}

}  // namespace portico::proxy::upstream
