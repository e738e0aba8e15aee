#include "proxy/http/stream.h"

#include <asio/experimental/as_tuple.hpp>
#include <asio/experimental/awaitable_operators.hpp>

#include <array>
#include <charconv>

#include "proxy/filters/header_mutation/header_mutation.h"
#include "proxy/http/forwarded.h"
#include "proxy/http/grpc.h"
#include "proxy/http/hash_key.h"
#include "proxy/http/path.h"
#include "proxy/overload/overload.h"
#include "proxy/router/router.h"
#include "proxy/tls/tls_transport.h"
#include "proxy/transport/tcp.h"
#include "proxy/worker.h"

namespace portico::proxy::http {

namespace {

using namespace asio::experimental::awaitable_operators;
constexpr auto use_nothrow = asio::experimental::as_tuple(asio::use_awaitable);
constexpr auto kDefaultRouteTimeout = std::chrono::milliseconds(15000);
// The replay buffer: an idempotent request's body is kept up to this size (a small body that is
// entirely in the codec's buffer is held before sending; a streamed one is copied while the first
// attempt is in flight), so that the request can be sent again on a fresh connection when a
// pooled one turns out stale. A larger body is not replayed (portico_upstream_retries_skipped).
// Routes with a retry policy set their own (retries.maxReplayBytes).
constexpr size_t kMaxReplayBody = 64 * 1024;

enum Deadline { kRequest, kIdle, kRoute, kConnect };

void append_request_id(HeaderMap& headers, Worker& w) {
  static constexpr char kHex[] = "0123456789abcdef";
  uint64_t a = w.random();
  uint64_t b = w.random();
  char id[36];
  int j = 0;
  for (int i = 0; i < 32; ++i) {
    if (i == 8 || i == 12 || i == 16 || i == 20) id[j++] = '-';
    uint64_t& src = i < 16 ? a : b;
    unsigned nib = src & 0xF;
    src >>= 4;
    if (i == 12) nib = 4;              // version 4
    if (i == 16) nib = 8 | (nib & 3);  // variant 10xx
    id[j++] = kHex[nib];
  }
  headers.add("X-Request-Id", std::string_view(id, 36));
}

// Counts a request in flight on an endpoint (least request) and in the cluster's gauge.
struct InFlight {
  upstream::Cluster& cluster;
  std::shared_ptr<upstream::Endpoint> ep;
  void set(const std::shared_ptr<upstream::Endpoint>& e) {
    clear();
    ep = e;
    ++ep->active_requests;
    cluster.row().rq_active.inc();
    cluster.row().rq_total.inc();
  }
  void clear() {
    if (!ep) return;
    --ep->active_requests;
    cluster.row().rq_active.dec();
    ep.reset();
  }
  ~InFlight() { clear(); }
};

// An upstream connection in use: closed (and counted) unless handed back to the pool.
struct ConnGuard {
  upstream::Cluster& cluster;
  std::shared_ptr<upstream::Endpoint> ep;
  std::unique_ptr<upstream::Connection> conn;
  void close() {
    if (conn) cluster.closed(std::move(conn));
  }
  void give_back() {
    if (conn) cluster.give_back(ep, std::move(conn));
  }
  ~ConnGuard() { close(); }
};

// No byte either way for this long resets a stream: stream_idle_timeout, bounded by the
// listener's idle_timeout (which has always applied to a request's body reads and writes too).
Clock::duration stream_idle_timeout(const snapshot::HttpOptions& o) {
  if (o.stream_idle_timeout.count() <= 0) return o.idle_timeout;
  if (o.idle_timeout.count() <= 0) return o.stream_idle_timeout;
  return std::min(o.stream_idle_timeout, o.idle_timeout);
}

}  // namespace

void StreamBuffers::release_if_larger(size_t keep) {
  response.headers.release_if_larger(keep);
  if (head.capacity() > keep) std::string().swap(head);
  if (target.capacity() > keep) std::string().swap(target);
  if (body.capacity() > keep) std::string().swap(body);
  if (forwarding.forwarded.capacity() > keep || forwarding.x_forwarded_for.capacity() > keep ||
      forwarding.via.capacity() > keep || forwarding.x_forwarded_host.capacity() > keep) {
    forwarding = ForwardingHeaders();
  }
  if (replay.capacity() > keep) std::string().swap(replay);
}

StreamHandler::StreamHandler(Worker& worker, const std::shared_ptr<WorkerConfig>& config,
                             const ListenerRuntime& listener, ServerStream& stream,
                             StreamBuffers& buffers)
    : w_(worker),
      config_(config),
      lr_(listener),
      stream_(stream),
      buf_(buffers),
      opts_(listener.listener->http),
      start_(Clock::now()),
      request_timer_(worker.timers(), [this] { on_deadline(kRequest); }),
      idle_timer_(worker.timers(), [this] { on_deadline(kIdle); }),
      route_timer_(worker.timers(), [this] { on_deadline(kRoute); }),
      connect_timer_(worker.timers(), [this] { on_deadline(kConnect); }),
      idle_timeout_(stream_idle_timeout(opts_)),
      idle_wheel_(worker.timers()) {}

StreamHandler::~StreamHandler() = default;

asio::any_io_executor StreamHandler::executor() {
  return w_.io().get_executor();
}

stats::WorkerRow* StreamHandler::worker_stats() {
  return &w_.row();
}

void StreamHandler::on_deadline(int which) {
  switch (which) {
    case kRequest:
      request_timed_out_ = true;
      break;
    case kIdle: {
      // Activity since the timer was armed moves the deadline: re-armed for the rest, one tick
      // late rather than early (the mark may lag the activity by up to a tick).
      const uint64_t now = idle_wheel_.current_tick();
      const uint64_t due = idle_mark_ + idle_ticks_ + 1;
      if (due > now) {
        idle_timer_.arm(idle_wheel_.tick() * static_cast<Clock::rep>(due - now));
        return;
      }
      idle_timed_out_ = true;
      break;
    }
    case kRoute:
      route_timed_out_ = true;
      if (us_) us_->cancel();
      return;  // the client side is not affected
    case kConnect:
      connect_timed_out_ = true;
      if (connecting_) {
        asio::error_code ignored;
        connecting_->cancel(ignored);
      }
      return;
  }
  // The request did not arrive in time, or nothing moved for too long: stop both sides. Once the
  // response has started there is nothing to answer with: the stream is reset.
  stream_.stop_reading();
  if (us_) us_->cancel();
  if (connecting_) {
    asio::error_code ignored;
    connecting_->cancel(ignored);
  }
  if (sleeping_) sleeping_->cancel();
  if (stream_.response_started()) stream_.reset();
}

void StreamHandler::abort() {
  aborted_ = true;
  if (us_) us_->cancel();
  if (connecting_) {
    asio::error_code ignored;
    connecting_->cancel(ignored);
  }
  if (sleeping_) sleeping_->cancel();
  stream_.reset();
}

void StreamHandler::send_local_reply(int status, std::string_view body,
                                     std::string_view content_type) {
  pending_reply_ = LocalReply{status, std::string(body), std::string(content_type)};
}

asio::awaitable<bool> StreamHandler::sleep(std::chrono::milliseconds d) {
  if (aborted_ || expired()) co_return false;
  asio::steady_timer ev(w_.io(), Clock::time_point::max());
  Timer t(w_.timers(), [&ev] { ev.cancel(); });
  t.arm(d);
  sleeping_ = &ev;
  co_await ev.async_wait(use_nothrow);
  sleeping_ = nullptr;
  co_return !aborted_ && !expired();
}

asio::awaitable<void> StreamHandler::run() {
  w_.row().downstream_rq_total.inc();
  request_timer_.arm(opts_.request_timeout);
  set_idle_timeout(idle_timeout_);
  co_await handle();
  if (slot_) {
    if (status_ == 0) slot_->count(w_.index(), 0);
    const auto took = std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - start_);
    slot_->observe(w_.index(), static_cast<uint64_t>(took.count()));
    if (chain_) {
      filters::LogInfo info{status_, request_bytes_, response_bytes_, took};
      for (uint16_t i : chain_->log)
        filters_[i]->on_log(info);
    }
  }
  if (lr_.access_log && !(route_ && route_->options.access_log_disabled)) log_access();
}

void StreamHandler::set_idle_timeout(Clock::duration d) {
  idle_timeout_ = d;
  if (d.count() <= 0) {
    idle_timer_.cancel();
    return;
  }
  const auto tick = idle_wheel_.tick();
  idle_ticks_ = static_cast<uint64_t>((d + tick - Clock::duration(1)) / tick);
  idle_mark_ = idle_wheel_.clock_tick();
  idle_timer_.arm(d);
}

uint64_t StreamHandler::body_limit() const {
  if (route_ && route_->options.max_request_body_bytes)
    return *route_->options.max_request_body_bytes;
  return opts_.max_request_body_bytes;
}

asio::awaitable<void> StreamHandler::handle() {
  if (overload::heap_overloaded()) [[unlikely]] {
    co_await refuse_overloaded();
    co_return;
  }
  RequestHeaders& req = stream_.request();
  // A CONNECT names no path (its target is host:port): it is routed as "/" on its authority, and
  // only a route that enables connect may open its tunnel (decide_tunnel).
  const bool connect = req.method == "CONNECT";
  if (connect) {
    req.path.assign("/");
    req.query.clear();
  }

  // ---- Path normalisation: what is routed is what is forwarded ----------------------------
  {
    PathOptions po;
    po.normalize = opts_.normalize_path;
    po.merge_slashes = opts_.merge_slashes;
    PathStatus ps = normalize_path(req.path, po, buf_.target);
    if (ps != PathStatus::kOk) {
      slot_ = lr_.no_virtual_host;
      std::string body = "bad request: ";
      body.append(path_status_text(ps));
      body.push_back('\n');
      co_await local_reply(400, body);
      co_return;
    }
    req.path.swap(buf_.target);
  }

  // ---- Route ------------------------------------------------------------------------------
  const size_t vh_at = lr_.router->select_index(req.authority);
  if (vh_at == router::CompiledListener::kNoHost) {
    slot_ = lr_.no_virtual_host;
    if (connect) {
      co_await refuse_connect();
    } else {
      co_await local_reply(404, "no route matched\n");
    }
    co_return;
  }
  const VirtualHostRuntime& vhr = *lr_.virtual_hosts[vh_at];
  const snapshot::VirtualHost* vh = vhr.host.get();

  // ---- TLS: a virtual host's own TLS settings govern it ----------------------------------
  // Its mTLS policy cannot be walked around by connecting with another (or no) server name and
  // naming the host in Host: it is served only on connections whose handshake used its settings
  // and verified the client. Identity headers are only ever set here, never taken from clients.
  if (lr_.listener->tls) {
    const transport::ConnectionInfo& conn = stream_.connection();
    const snapshot::TlsServerConfig& governing = vh->tls ? *vh->tls : *lr_.listener->tls;
    if (!governing.client_ca_pem.empty()) {
      const snapshot::VirtualHost* by_sni =
          conn.sni.empty() ? nullptr : lr_.router->select_virtual_host(conn.sni);
      const snapshot::TlsServerConfig* used =
          by_sni && by_sni->tls ? &*by_sni->tls : &*lr_.listener->tls;
      if (used != &governing || !conn.peer_verified) {
        slot_ = vhr.no_route;
        co_await local_reply(421,
                             "misdirected request: this host needs its own TLS handshake with a "
                             "client certificate (send its name as SNI)\n");
        co_return;
      }
    }
    for (const auto& name : lr_.identity_headers)
      req.headers.remove(name);
    if (!governing.client_identity_header.empty() && conn.peer_verified) {
      std::string id = tls::client_identity(conn);
      if (!id.empty()) req.headers.add(governing.client_identity_header, id);
    }
  }

  route_ = router::match_route(*vh, vhr.regexes, router::RequestView::of(req));
  if (!route_) {
    slot_ = vhr.no_route;
    if (connect) {
      co_await refuse_connect();
    } else {
      co_await local_reply(404, "no route matched\n");
    }
    co_return;
  }
  rr_ = &vhr.routes[route_ - vh->routes.data()];
  slot_ = rr_->stats[0];

  // Forward actions choose their cluster (and with it the stat slot) first.
  int cluster_idx = -1;
  if (const auto* fwd = std::get_if<snapshot::ForwardAction>(&route_->action)) {
    size_t choice = 0;
    if (fwd->clusters.size() > 1 && fwd->total_weight > 0) {
      // A destination whose cluster has no endpoint (or is unknown) gives its share to the
      // others, counted on the destination skipped.
      auto usable = [&](size_t i) {
        const int idx = rr_->cluster_index[i];
        if (idx < 0) return false;
        const uint64_t key = i < rr_->subset_key.size() ? rr_->subset_key[i] : 0;
        return key == 0 ? config_->clusters[idx]->has_endpoints()
                        : config_->clusters[idx]->has_endpoints(key);
      };
      int skipped = -1;
      choice = router::pick_destination(*fwd, w_.random(), usable, &skipped);
      if (skipped >= 0) {
        if (const int idx = rr_->cluster_index[skipped]; idx >= 0)
          config_->clusters[idx]->row().weighted_skipped.inc();
      }
    }
    slot_ = rr_->stats[choice];
    cluster_idx = rr_->cluster_index[choice];
    subset_key_ = choice < rr_->subset_key.size() ? rr_->subset_key[choice] : 0;
  }
  if (route_->options.idle_timeout) set_idle_timeout(*route_->options.idle_timeout);

  // ---- Tunnels: WebSocket upgrade, CONNECT --------------------------------------------------
  if ((connect || !req.upgrade.empty()) &&
      !co_await decide_tunnel(connect,
                              std::holds_alternative<snapshot::ForwardAction>(route_->action))) {
    co_return;
  }

  // ---- Request limits ---------------------------------------------------------------------
  const uint64_t limit = body_limit();
  if (limit != 0 && req.content_length && *req.content_length > limit) {
    co_await local_reply(413, "request body too large\n");
    co_return;
  }

  // ---- Request filters --------------------------------------------------------------------
  if (!rr_->chain) {
    // The route's filters did not compile: never serve it without them (fail closed).
    co_await local_reply(500, "route filters unavailable\n");
    co_return;
  }
  if (create_filters()) {
    for (uint16_t i : chain_->request_headers) {
      filters::HeadersStatus st = co_await filters_[i]->on_request_headers(req, !req.has_body);
      if (aborted_ || expired()) {
        if (!stream_.response_started() && !aborted_)
          co_await local_reply(408, "request timeout\n");
        co_return;
      }
      if (st == filters::HeadersStatus::kStop) {
        if (!co_await send_pending_reply()) stream_.reset();
        co_return;
      }
      if (st == filters::HeadersStatus::kBuffer) buffer_request_ = true;
    }
  }

  // ---- Router: the last request filter ----------------------------------------------------
  if (const auto* direct = std::get_if<snapshot::DirectResponseAction>(&route_->action)) {
    co_await local_reply(direct->status, direct->body, direct->content_type);
    co_return;
  }
  if (const auto* redirect = std::get_if<snapshot::RedirectAction>(&route_->action)) {
    std::string location =
        router::redirect_location(*redirect, *route_, router::RequestView::of(req),
                                  stream_.connection().secure ? "https" : "http");
    co_await local_reply(redirect->code, "", "text/plain", location);
    co_return;
  }
  if (cluster_idx < 0) {
    co_await local_reply(503, "upstream unavailable: unknown upstream\n");
    co_return;
  }
  co_await forward(*route_, *config_->clusters[cluster_idx]);
}

bool StreamHandler::create_filters() {
  if (chain_) return true;
  if (!rr_ || !rr_->chain || rr_->chain->empty()) return false;
  // Conditional filters that do not concern this request are left out (a variant of the chain).
  chain_ = filters::FilterChain::for_stream(rr_->chain, stream_.request());
  if (!chain_) return false;
  filters_.reserve(chain_->factories.size());
  for (const auto& f : chain_->factories)
    filters_.push_back(f->create(*this));
  return true;
}

asio::awaitable<void> StreamHandler::local_reply(int status, std::string_view body,
                                                 std::string_view content_type,
                                                 std::string_view location,
                                                 std::string_view extra_name,
                                                 std::string_view extra_value) {
  request_timer_.cancel();  // the answer is decided: the rest of the request does not matter
  if (stream_.response_started()) {
    status_ = status;
    if (slot_) slot_->count(w_.index(), status);
    stream_.reset();
    co_return;
  }
  ResponseHeaders& r = buf_.response;
  r.clear();
  r.status = status;
  if (!location.empty()) r.headers.add("Location", location);
  if (!extra_name.empty()) r.headers.add(extra_name, extra_value);
  if (!body.empty()) r.headers.add("Content-Type", content_type);
  if (!opts_.server_name.empty()) r.headers.add("Server", opts_.server_name);
  r.has_body = true;
  // Once a route matched, a local reply goes through the route's response side like an upstream
  // response (docs/architecture.md, "Local replies"): its header changes, then the response
  // filters of its chain (made now if the request did not get that far).
  if (route_) {
    filters::apply_mutations(route_->options.response_headers, r.headers);
    if (create_filters()) {
      for (uint16_t i : chain_->response_headers) {
        if (co_await filters_[i]->on_response_headers(r, body.empty()) ==
            filters::HeadersStatus::kStop) {
          stream_.reset();  // counted as "no response" by run()
          co_return;
        }
      }
      if (!chain_->response_body.empty()) {
        buf_.body.assign(body);
        for (uint16_t i : chain_->response_body) {
          if (co_await filters_[i]->on_response_body(buf_.body, true) ==
              filters::DataStatus::kStop) {
            stream_.reset();
            co_return;
          }
        }
        body = buf_.body;
      }
    }
  }
  status_ = r.status;
  if (slot_) slot_->count(w_.index(), r.status);
  r.content_length = body.size();
  if (!co_await stream_.send_headers(r, body.empty())) co_return;
  if (!body.empty()) {
    response_bytes_ += body.size();
    co_await stream_.send_body(body, true);
  }
}

void StreamHandler::prepare_upstream_headers(const snapshot::Route& route) {
  RequestHeaders& req = stream_.request();
  const auto& m = route.options.request_headers;
  for (const auto& name : m.remove)
    req.headers.remove(name);
  // Forwarding headers from the one policy (docs/forwarding.md): every received
  // X-Forwarded-*, Forwarded and Via line is replaced by what compute_forwarding says.
  {
    // compute_forwarding reads only the forwarding fields: the others are not handed to it, and
    // when none came (the usual case) there is nothing to remove either.
    thread_local std::vector<Header> views;
    views.clear();
    req.headers.for_each([&](std::string_view n, std::string_view v) {
      if (is_forwarding_header(n)) views.push_back(Header{n, v, false});
    });
    const bool received_forwarding = !views.empty();
    ForwardingInput in;
    in.peer = stream_.connection().peer_address;
    in.tls = stream_.connection().secure;
    in.protocol = req.http_minor == 0 ? "1.0" : "1.1";
    in.host = req.authority;
    in.headers = views;
    ForwardingPolicy policy;
    policy.xff_num_trusted_hops = opts_.xff_num_trusted_hops;
    policy.use_remote_address = opts_.use_remote_address;
    // A request that brought none of its own: the connection's last answer serves again while
    // its Host and protocol stay the same.
    ForwardingCache* cache = received_forwarding ? nullptr : stream_.forwarding_cache();
    const ForwardingHeaders* computed = &buf_.forwarding;
    if (cache) {
      computed = &cache->get(in, policy);
    } else {
      buf_.forwarding.clear();
      compute_forwarding(in, policy, buf_.forwarding);
    }
    const ForwardingHeaders& fh = *computed;
    views.clear();  // the views die with the removals below
    if (received_forwarding) {
      for (std::string_view name :
           {"x-forwarded-for", "x-forwarded-proto", "x-forwarded-host", "forwarded", "via"})
        req.headers.remove(name);
    }
    if (!fh.x_forwarded_for.empty()) req.headers.add("X-Forwarded-For", fh.x_forwarded_for);
    if (!fh.x_forwarded_proto.empty()) req.headers.add("X-Forwarded-Proto", fh.x_forwarded_proto);
    if (!fh.x_forwarded_host.empty()) req.headers.add("X-Forwarded-Host", fh.x_forwarded_host);
    if (!fh.forwarded.empty()) req.headers.add("Forwarded", fh.forwarded);
    if (!fh.via.empty()) req.headers.add("Via", fh.via);
  }
  if (opts_.generate_request_id && !req.headers.has("x-request-id")) {
    append_request_id(req.headers, w_);
  }
  for (const auto& h : m.add) {
    if (h.append) {
      req.headers.add(h.name, h.value);
    } else {
      req.headers.set(h.name, h.value);
    }
  }
  if (!route.options.host_rewrite.empty()) req.authority = route.options.host_rewrite;
  if (route.options.prefix_rewrite) {
    router::rewrite_target(route, router::RequestView::of(req), buf_.target);
  } else {
    buf_.target.assign(req.path);
    if (!req.query.empty()) {
      buf_.target.push_back('?');
      buf_.target.append(req.query);
    }
  }
}

asio::awaitable<bool> StreamHandler::buffer_request_body() {
  // Reads the whole request body into buf_.body (within the limit) and passes it to the body
  // filters in one piece.
  buf_.body.clear();
  const uint64_t limit = body_limit();
  size_t filter_limit = 0;
  for (uint16_t i : chain_->request_body)
    filter_limit = std::max(filter_limit, chain_->factories[i]->max_buffer_bytes());
  if (filter_limit == 0) filter_limit = 1 << 20;
  co_await stream_.send_continue();
  HeaderMap* trailers = nullptr;
  for (;;) {
    BodyPiece p = co_await stream_.read_body();
    touch();
    if (p.status == BodyStatus::kData) {
      request_bytes_ += p.data.size();
      if ((limit != 0 && request_bytes_ > limit) ||
          buf_.body.size() + p.data.size() > filter_limit) {
        co_await local_reply(413, "request body too large\n");
        co_return false;
      }
      buf_.body.append(p.data);
      continue;
    }
    if (p.status == BodyStatus::kEnd) {
      trailers = p.trailers;
      break;
    }
    if (expired() && !aborted_) {
      co_await local_reply(408, "request timeout\n");
    } else if (p.status == BodyStatus::kMalformed) {
      co_await local_reply(400, "bad request: malformed chunked body\n");
    } else {
      stream_.reset();
    }
    co_return false;
  }
  request_timer_.cancel();
  bool stopped = false;
  for (uint16_t i : chain_->request_body) {
    if (co_await filters_[i]->on_request_body(buf_.body, true) == filters::DataStatus::kStop) {
      stopped = true;
      break;
    }
  }
  // A held body is sent with a Content-Length: its trailers reach the filters, not the upstream.
  if (!stopped && trailers) stopped = !co_await request_trailers(*trailers);
  if (stopped) {
    if (!co_await send_pending_reply()) stream_.reset();
    co_return false;
  }
  RequestHeaders& req = stream_.request();
  req.content_length = buf_.body.size();
  co_return true;
}

asio::awaitable<void> StreamHandler::forward(const snapshot::Route& route,
                                             upstream::Cluster& cluster) {
  using upstream::FailureKind;
  using upstream::UpstreamError;
  RequestHeaders& req = stream_.request();
  cluster_ = &cluster;
  // Circuit breaker: requests in flight to this cluster, across workers.
  stats::ClusterLoad& load = cluster.load();
  if (load.requests.load(std::memory_order_relaxed) >=
      static_cast<int64_t>(cluster.breakers().max_requests)) {
    co_await overflow(stats::Breaker::kMaxRequests);
    co_return;
  }
  upstream::LoadHold in_flight;
  in_flight.take(load.requests);
  struct ReleaseAtEnd {
    upstream::LoadHold& h;
    ~ReleaseAtEnd() { h.release(); }
  } release_retry{retry_hold_};
  // The route's retry policy; never for tunnels.
  policy_ = route.options.retry && !tunnel_ ? &*route.options.retry : nullptr;
  auto timeout = route.options.timeout.value_or(kDefaultRouteTimeout);
  const bool h2_upstream = cluster.protocol() == snapshot::UpstreamProtocol::kHttp2;
  if (req.method.size() == 4 && req.method == "POST") {  // gRPC calls are POSTs: no lookup else
    auto ct = req.headers.get("content-type");
    grpc_ = ct && is_grpc_content_type(*ct);
  }
  if (grpc_) {
    // grpc-timeout is the call's deadline: the route timeout is the smaller of the two.
    if (auto gt = req.headers.get("grpc-timeout")) {
      if (auto d = parse_grpc_timeout(*gt)) {
        if (timeout.count() <= 0 || *d < timeout)
          timeout = std::max(*d, std::chrono::milliseconds(1));
      }
    }
    if (!h2_upstream) {
      // gRPC needs HTTP/2 end to end (trailers, streams both ways): never sent over HTTP/1.1.
      fail_detail_ = "gRPC needs an HTTP/2 upstream (spec.useHttp2 on " + cluster.name() + ")";
      co_await fail(FailureKind::kUnsupported, false);
      co_return;
    }
  }
  if (h2_upstream && tunnel_) {
    fail_detail_ = "tunnels need an HTTP/1.1 upstream (" + cluster.name() + " uses HTTP/2)";
    co_await fail(FailureKind::kUnsupported, false);
    co_return;
  }
  const bool body_filters = chain_ && !chain_->request_body.empty();

  // A body held whole (by a filter's request, or because it is small and already here) is sent
  // with the head; anything else is streamed (and copied for a retry, see record()).
  bool held_body = false;
  if (req.has_body && buffer_request_ && body_filters) {
    if (!co_await buffer_request_body()) co_return;
    held_body = true;
  } else if (req.has_body && !body_filters && req.content_length &&
             *req.content_length <= max_replay() &&
             stream_.buffered_body().size() >= *req.content_length) {
    buf_.body.clear();
    while (buf_.body.size() < *req.content_length) {
      BodyPiece p = co_await stream_.read_body();
      if (p.status != BodyStatus::kData) break;
      buf_.body.append(p.data);
    }
    if (buf_.body.size() != *req.content_length) {
      stream_.reset();
      co_return;
    }
    request_bytes_ = buf_.body.size();
    request_timer_.cancel();
    held_body = true;
  }
  const bool stream_body = req.has_body && !held_body;
  if (!req.has_body) request_timer_.cancel();
  // Repeating is safe for an idempotent method whose whole body (if any) we hold; a streamed
  // body is copied into the replay buffer while the first attempt is in flight (record()). An
  // HTTP/2 upstream may refuse a stream it did not process (REFUSED_STREAM, GOAWAY): that one goes
  // again whatever its method, so its streamed body is kept too.
  repeatable_ = is_idempotent(req.method);
  const bool safe_to_repeat = repeatable_ && (!req.has_body || held_body);
  recording_ =
      stream_body && (repeatable_ || h2_upstream || (policy_ && policy_->retry_non_idempotent));
  stream_body_ = stream_body;
  held_body_ = held_body;
  buf_.replay.clear();
  // A filter may change a streamed body: its length is then unknown.
  const bool chunked_up = stream_body && (body_filters || !req.content_length);
  if (chunked_up) req.content_length.reset();

  const bool connect_tunnel = tunnel_ == TunnelKind::kConnect;
  if (!connect_tunnel) {
    prepare_upstream_headers(route);
    if (!h2_upstream)
      upstream::H1ClientStream::encode_head(req, buf_.target, chunked_up, buf_.head);
  }

  InFlight active{cluster, nullptr};
  // The endpoints this request tried (the first kMaxTried): the next try avoids them all while
  // other endpoints remain. Compared, never dereferenced.
  constexpr size_t kMaxTried = 8;
  std::array<const upstream::Endpoint*, kMaxTried> tried_list{};
  size_t tried_count = 0;
  auto tried = [&](const upstream::Endpoint* e) {
    for (size_t i = 0; i < tried_count; ++i)
      if (tried_list[i] == e) return;
    if (tried_count < kMaxTried) tried_list[tried_count++] = e;
  };
  // The request's key for ring hash / maglev upstreams (route hash policies), computed once.
  const std::optional<uint64_t> hash_key =
      route.options.hash_policies.empty() ? std::nullopt
                                          : request_hash(route.options.hash_policies, req.headers,
                                                         stream_.connection().peer_address);
  // The route timeout bounds the whole exchange, across tries (each try may be shorter: the
  // policy's perTryTimeout).
  deadline_ = timeout.count() > 0 ? Clock::now() + timeout : Clock::time_point::max();
  // A CONNECT tunnel is raw bytes on a connection of its own: never a pooled HTTP connection.
  bool fresh_only = connect_tunnel;
  for (int attempt = 0;; ++attempt) {
    if (aborted_) co_return;
    upstream::PickContext pick;
    pick.random = w_.random();
    pick.hash = hash_key;
    pick.tried = std::span<const upstream::Endpoint* const>(tried_list.data(), tried_count);
    std::shared_ptr<upstream::Endpoint> ep =
        subset_key_ == 0 ? cluster.pick(pick) : cluster.pick(pick, subset_key_);
    if (!ep) {
      co_await fail(FailureKind::kNoHealthyHost, false);
      co_return;
    }
    upstream_host_ = ep->address;
    upstream_tried_ = true;
    endpoint_ = ep.get();
    struct ClearEndpoint {
      upstream::Endpoint*& p;
      ~ClearEndpoint() { p = nullptr; }
    } clear_endpoint{endpoint_};
    // HTTP/2: a connection of the endpoint with room for one more stream (never pooled per
    // request); HTTP/1.1: an idle pooled connection.
    std::shared_ptr<upstream::H2ClientConnection> h2c =
        h2_upstream ? cluster.h2_connection(*ep) : nullptr;
    if (h2_upstream && !h2c && ep->h2_connecting > 0) {
      // Another stream of this worker is connecting to the endpoint: ride on its connection
      // when it is up (bounded by that connect's timeout); else connect below.
      if (!ep->h2_connect_done) {
        ep->h2_connect_done = std::make_unique<asio::steady_timer>(
            w_.io(), std::chrono::steady_clock::time_point::max());
      }
      (void)co_await ep->h2_connect_done->async_wait(use_nothrow);
      if (aborted_ || expired()) {
        if (!aborted_) co_await local_reply(408, "request timeout\n");
        co_return;
      }
      h2c = cluster.h2_connection(*ep);
    }
    ConnGuard guard{cluster, ep, fresh_only || h2_upstream ? nullptr : cluster.take_idle(*ep)};
    const bool reused = guard.conn != nullptr || h2c != nullptr;
    reused_ = reused;
    attempt_ = attempt;
    if (!guard.conn && !h2c) {
      // ---- Upstream transport (one place) ---------------------------------------------------
      // TLS clusters connect through the TLS transport (never in plaintext, also when their
      // context could not be built); HTTP/2 clusters then start the HTTP/2 client codec on it.
      if (cluster.tls() && !cluster.tls_context()) {
        fail_detail_ = "upstream TLS configuration rejected: " + cluster.tls_error();
        co_await fail(FailureKind::kUnsupported, false);
        co_return;
      }
      if (!cluster.can_open()) {
        co_await fail(FailureKind::kOverflow, false);
        co_return;
      }
      // Circuit breakers, across workers: requests waiting for a connection, open connections.
      const snapshot::CircuitBreakers& cb = cluster.breakers();
      if (load.pending.load(std::memory_order_relaxed) >=
          static_cast<int64_t>(cb.max_pending_requests)) {
        co_await overflow(stats::Breaker::kMaxPendingRequests);
        co_return;
      }
      if (load.connections.load(std::memory_order_relaxed) >=
          static_cast<int64_t>(cb.max_connections)) {
        co_await overflow(stats::Breaker::kMaxConnections);
        co_return;
      }
      upstream::LoadHold pending;
      pending.take(load.pending);
      // HTTP/2: streams arriving meanwhile wait for this connect (above) rather than open more.
      struct H2Connecting {
        upstream::Endpoint* ep = nullptr;
        ~H2Connecting() {
          if (!ep) return;
          --ep->h2_connecting;
          if (ep->h2_connect_done) ep->h2_connect_done->cancel();
        }
      } h2_connecting;
      if (h2_upstream) {
        h2_connecting.ep = ep.get();
        ++ep->h2_connecting;
      }
      asio::ip::tcp::socket sock(w_.io());
      connecting_ = &sock;
      connect_timed_out_ = false;
      connect_timer_.arm(cluster.connect_timeout());
      auto [ec] = co_await sock.async_connect(ep->address, use_nothrow);
      connect_timer_.cancel();
      connecting_ = nullptr;
      if (aborted_ || expired()) {
        if (!aborted_) co_await local_reply(408, "request timeout\n");
        co_return;
      }
      if (ec) {
        tried(ep.get());
        report_outcome(upstream::kLocalOriginFailure);
        if (policy_) {
          if (policy_covers(0, true)) {
            const RetryDecision d = co_await policy_retry(false);
            if (d == RetryDecision::kRetry) continue;
            if (d == RetryDecision::kDone) co_return;
          }
        } else if (attempt == 0) {
          continue;  // nothing was sent: one more try, elsewhere if possible
        }
        fail_detail_ = ec.message();
        co_await fail(
            connect_timed_out_ ? FailureKind::kConnectTimeout : FailureKind::kConnectFailed, false);
        co_return;
      }
      asio::error_code ignored;
      sock.set_option(asio::ip::tcp::no_delay(true), ignored);
      std::unique_ptr<transport::Transport> transport;
      if (cluster.tls()) {
        auto t = co_await tls::connect(cluster.tls_context(), std::move(sock), {},
                                       cluster.connect_timeout());
        if (aborted_ || expired()) {
          if (!aborted_) co_await local_reply(408, "request timeout\n");
          co_return;
        }
        if (!t.ok()) {
          // Nothing of the request was sent: the same rule as a failed connect.
          tried(ep.get());
          report_outcome(upstream::kLocalOriginFailure);
          if (policy_) {
            if (policy_covers(0, true)) {
              const RetryDecision d = co_await policy_retry(false);
              if (d == RetryDecision::kRetry) continue;
              if (d == RetryDecision::kDone) co_return;
            }
          } else if (attempt == 0) {
            continue;
          }
          fail_detail_ = t.error().message;
          co_await fail(FailureKind::kConnectFailed, false);
          co_return;
        }
        transport = std::move(t.value());
        // HTTP/2 over TLS is negotiated by ALPN: an upstream that chose another protocol is
        // not spoken to in HTTP/2 (no ALPN at all: prior knowledge).
        const std::string& alpn = transport->info().alpn;
        if (h2_upstream && !alpn.empty() && alpn != "h2") {
          transport->close();
          report_outcome(upstream::kLocalOriginFailure);
          fail_detail_ = "the upstream negotiated \"" + alpn + "\" instead of h2 (ALPN)";
          co_await fail(FailureKind::kConnectFailed, false);
          co_return;
        }
      } else {
        transport = std::make_unique<transport::TcpTransport>(std::move(sock));
      }
      cluster.opened();
      if (h2_upstream) {
        h2c = cluster.add_h2(*ep, std::move(transport), w_.io());
        if (!h2c) {
          fail_detail_ = "HTTP/2 session could not start";
          co_await fail(FailureKind::kConnectFailed, false);
          co_return;
        }
      } else {
        guard.conn = std::make_unique<upstream::Connection>(std::move(transport));
      }
    }
    if (guard.conn) ++guard.conn->requests;
    active.set(ep);
    // The exchange: one codec or the other behind upstream::Exchange. The HTTP/2 stream (large)
    // lives on the heap, so that the HTTP/1.1 path's coroutine frame does not grow with it.
    std::optional<upstream::H1ClientStream> h1s;
    std::unique_ptr<upstream::H2ClientStream> h2s;
    if (h2c) {
      h2s = std::make_unique<upstream::H2ClientStream>(h2c, buf_.response);
      if (!h2s->start(req, buf_.target, cluster.tls(), !req.has_body)) {
        // The connection stopped taking streams meanwhile (GOAWAY, ids exhausted): nothing was
        // sent, another connection takes it.
        if (attempt < 3) continue;
        co_await fail(FailureKind::kReset, false);
        co_return;
      }
    } else {
      h1s.emplace(*guard.conn);
    }
    upstream::Exchange us = h2c ? upstream::Exchange(*h2s) : upstream::Exchange(*h1s);
    us_ = &us;
    struct Clear {
      upstream::Exchange*& p;
      ~Clear() { p = nullptr; }
    } clear{us_};

    if (connect_tunnel) {
      // Nothing is sent upstream: the connection is the tunnel. The client hears 200 once it is
      // open (a failed connect was answered 503 above).
      ResponseHeaders& r = buf_.response;
      r.clear();
      r.status = 200;
      r.reason = "Connection Established";
      r.has_body = false;
      if (co_await accept_tunnel(r)) co_await run_tunnel(*us.h1());
      co_return;  // the guard closes the connection: a tunnel's is never pooled
    }

    // The head (and a held body) in one write.
    std::array<asio::const_buffer, 2> bufs{
        asio::buffer(buf_.head),
        asio::buffer(held_body ? std::string_view(buf_.body) : std::string_view())};
    route_timed_out_ = false;
    per_try_limited_ = false;
    Clock::duration limit{0};  // 0: no timer
    if (deadline_ != Clock::time_point::max()) {
      limit = deadline_ - Clock::now();
      if (limit <= Clock::duration::zero()) {
        co_await fail(FailureKind::kTimeout, attempt > 0);
        co_return;
      }
    }
    if (policy_ && policy_->per_try_timeout.count() > 0 &&
        (limit.count() == 0 || Clock::duration(policy_->per_try_timeout) < limit)) {
      limit = policy_->per_try_timeout;
      per_try_limited_ = true;
    }
    route_timer_.arm(limit);
    const bool wrote = co_await us.send_head(
        bufs, held_body ? std::string_view(buf_.body) : std::string_view(), held_body);
    touch();
    if (!wrote) {
      route_timer_.cancel();
      if (aborted_) co_return;
      if (route_timed_out_) {
        if (per_try_limited_ && policy_covers(0, false)) {
          tried(ep.get());
          report_outcome(upstream::kGatewayFailure);
          const RetryDecision d = co_await policy_retry(true);
          if (d == RetryDecision::kRetry) continue;
          if (d == RetryDecision::kDone) co_return;
        }
        co_await fail(FailureKind::kTimeout, true);
        co_return;
      }
      if (expired()) {
        co_await local_reply(408, "request timeout\n");
        co_return;
      }
      if (reused && (safe_to_repeat || (stream_body && repeatable_ && !replay_overflow_)) &&
          attempt < 2) {
        fresh_only = true;  // a stale pooled connection: once more, on a new connection
        cluster.row().retries.inc();
        continue;
      }
      if (reused && attempt < 2) count_not_replayed();
      if (policy_covers(0, false)) {
        tried(ep.get());
        report_outcome(upstream::kGatewayFailure);
        const RetryDecision d = co_await policy_retry(true);
        if (d == RetryDecision::kRetry) continue;
        if (d == RetryDecision::kDone) co_return;
      }
      co_await fail(FailureKind::kReset, true);
      co_return;
    }
    // A streamed body sent again: what the first attempt read from the client, then its end if
    // that was read too (the rest, if any, is pumped as usual).
    if (stream_body && !buf_.replay.empty() &&
        !co_await us.send_body(buf_.replay, false, chunked_up)) {
      route_timer_.cancel();
      co_await fail(FailureKind::kReset, true);
      co_return;
    }
    if (stream_body && body_end_seen_) {
      const bool sent = end_trailers_ && us.carries_trailers(chunked_up) && !end_trailers_->empty()
                            ? co_await us.send_trailers(*end_trailers_)
                            : co_await us.send_body({}, true, chunked_up);
      if (!sent) {
        route_timer_.cancel();
        co_await fail(FailureKind::kReset, true);
        co_return;
      }
    }
    if (!stream_body || body_end_seen_) {
      request_sent_ = true;
      // Nothing to pump: read the response head here, where a stale connection can be retried.
      auto hs = co_await us.read_head(buf_.response, req.method == "HEAD", req.upgrade);
      route_timer_.cancel();
      touch();
      if (hs == upstream::H1ClientStream::HeadStatus::kOk) {
        if (tunnel_) {
          if (buf_.response.status == 101) {
            if (co_await accept_tunnel(buf_.response)) co_await run_tunnel(*us.h1());
            co_return;  // never pooled
          }
          // Declined: an ordinary response, relayed as such (the connection is not reused).
          count_refusal(UpgradeRefusal::kUpstreamDeclined);
          tunnel_.reset();
        }
        if (policy_covers(buf_.response.status, false)) {
          // A retriable status: the response is dropped with its connection, never relayed.
          tried(ep.get());
          report_outcome(buf_.response.status);
          const RetryDecision d = co_await policy_retry(true);
          if (d == RetryDecision::kRetry) continue;
          if (d == RetryDecision::kDone) co_return;
        }
        co_await relay_response(us, true);
        if (us.reusable()) guard.give_back();
        co_return;
      }
      if (aborted_) co_return;
      if (hs == upstream::HeadStatus::kRefused && attempt < 2 && !route_timed_out_ && !expired() &&
          (!stream_body || (recording_ && !replay_overflow_))) {
        // HTTP/2: the upstream did not process the stream (REFUSED_STREAM, or above its GOAWAY's
        // last stream id): safe to send again, whatever the method.
        cluster.row().retries.inc();
        continue;
      }
      if (hs == upstream::H1ClientStream::HeadStatus::kClosedBeforeResponse && reused &&
          attempt < 2 && !route_timed_out_ && !expired()) {
        if (safe_to_repeat) {
          fresh_only = true;  // the upstream had closed the pooled connection: a fresh one
          cluster.row().retries.inc();
          continue;
        }
        count_not_replayed();
      }
      if (expired()) {
        co_await local_reply(408, "request timeout\n");
        co_return;
      }
      // No response head: a reset, a close, or this try's timeout.
      if (hs != upstream::H1ClientStream::HeadStatus::kInvalid &&
          (!route_timed_out_ || per_try_limited_) && policy_covers(0, false)) {
        tried(ep.get());
        report_outcome(upstream::kGatewayFailure);
        const RetryDecision d = co_await policy_retry(true);
        if (d == RetryDecision::kRetry) continue;
        if (d == RetryDecision::kDone) co_return;
      }
      FailureKind kind = FailureKind::kReset;
      if (route_timed_out_) kind = FailureKind::kTimeout;
      if (hs == upstream::H1ClientStream::HeadStatus::kInvalid) kind = FailureKind::kProtocol;
      co_await fail(kind, true);
      co_return;
    }
    // Request and response bodies move concurrently: an upstream that answers early (401, 413)
    // is answered at once; a client that goes away cancels the upstream request.
    pump_running_ = true;
    retry_ = false;
    co_await (pump_request(us, chunked_up) && relay_response(us, false));
    if (retry_) {
      retry_ = false;
      if (policy_retrying_) {
        // The policy asked for another try (relay_response waited the back-off): the whole body
        // is in the replay buffer.
        policy_retrying_ = false;
        request_sent_ = false;
        upstream_write_failed_ = false;
        tried(ep.get());
        continue;
      }
      // The pooled connection was dead and no response byte came: the body read so far is in the
      // replay buffer (unless it outgrew it meanwhile), so the request goes again on a fresh
      // connection and the pump carries on from where the client is.
      if (aborted_ || client_aborted_) {
        stream_.reset();
        co_return;
      }
      if (too_large_ || body_malformed_ || expired() || pending_reply_ || replay_overflow_) {
        if (!co_await reply_for_request_side()) {
          count_not_replayed();  // the body outgrew the replay buffer meanwhile
          co_await fail(FailureKind::kReset, true);
        }
        co_return;
      }
      cluster.row().retries.inc();
      // Recording goes on: the replay buffer keeps the whole body for a retry by the policy.
      request_sent_ = false;
      upstream_write_failed_ = false;
      fresh_only = true;
      continue;
    }
    if (us.reusable() && request_sent_) guard.give_back();
    co_return;
  }
}

asio::awaitable<void> StreamHandler::pump_request(upstream::Exchange& us, bool chunked) {
  const uint64_t limit = body_limit();
  const bool body_filters = chain_ && !chain_->request_body.empty();
  co_await stream_.send_continue();
  for (;;) {
    BodyPiece p = co_await stream_.read_body();
    touch();
    if (p.status == BodyStatus::kData) {
      request_bytes_ += p.data.size();
      if (limit != 0 && request_bytes_ > limit) {
        too_large_ = true;
        us.cancel();
        break;
      }
      std::string_view out = p.data;
      if (body_filters) {
        buf_.body.assign(p.data);
        bool stop = false;
        for (uint16_t i : chain_->request_body) {
          if (co_await filters_[i]->on_request_body(buf_.body, false) ==
              filters::DataStatus::kStop) {
            stop = true;
            break;
          }
        }
        if (stop) {
          client_aborted_ = !pending_reply_.has_value();
          us.cancel();
          break;
        }
        out = buf_.body;
      }
      if (recording_) record(out);
      if (!co_await us.send_body(out, false, chunked)) {
        upstream_write_failed_ = true;  // the upstream may have answered early: the response
        break;                          // side decides
      }
      touch();
      continue;
    }
    if (p.status == BodyStatus::kEnd) {
      request_timer_.cancel();
      if (body_filters) {
        buf_.body.clear();
        bool stop = false;
        for (uint16_t i : chain_->request_body) {
          if (co_await filters_[i]->on_request_body(buf_.body, true) ==
              filters::DataStatus::kStop) {
            stop = true;  // e.g. a body that ends malformed for the filter
            break;
          }
        }
        if (stop) {
          client_aborted_ = !pending_reply_.has_value();
          us.cancel();
          break;
        }
        if (recording_) record(buf_.body);
      }
      // Trailers go through the trailer filters, then upstream when the body is chunked there
      // (a Content-Length body has nowhere to carry them: they are dropped).
      if (p.trailers && !co_await request_trailers(*p.trailers)) {
        client_aborted_ = !pending_reply_.has_value();
        us.cancel();
        break;
      }
      body_end_seen_ = true;  // a retry sends the end (and the trailers) from the replay buffer
      end_trailers_ = p.trailers;
      if (body_filters && !buf_.body.empty() && !co_await us.send_body(buf_.body, false, chunked)) {
        upstream_write_failed_ = true;
        break;
      }
      const bool sent = p.trailers && us.carries_trailers(chunked) && !p.trailers->empty()
                            ? co_await us.send_trailers(*p.trailers)
                            : co_await us.send_body({}, true, chunked);
      if (!sent) {
        upstream_write_failed_ = true;
        break;
      }
      request_sent_ = true;
      break;
    }
    // The client went away, sent a broken body, or a deadline stopped the read.
    if (!expired() && !aborted_ && !too_large_) {
      client_aborted_ = p.status == BodyStatus::kAborted;
      body_malformed_ = p.status == BodyStatus::kMalformed;
    }
    us.cancel();
    break;
  }
  pump_running_ = false;
}

asio::awaitable<void> StreamHandler::relay_response(upstream::Exchange& us, bool head_read) {
  using upstream::FailureKind;
  ResponseHeaders& resp = buf_.response;
  RequestHeaders& req = stream_.request();
  if (!head_read) {
    auto hs = co_await us.read_head(resp, req.method == "HEAD");
    route_timer_.cancel();
    touch();
    if ((hs == upstream::HeadStatus::kRefused ||
         (hs == upstream::HeadStatus::kClosedBeforeResponse && reused_)) &&
        attempt_ < 2 && !route_timed_out_ && !expired() && !aborted_ && !client_aborted_ &&
        !too_large_ && !body_malformed_ && !pending_reply_) {
      // A stale pooled connection: nothing came back. The request goes again on a fresh one if
      // it may be repeated and its body so far fits the replay buffer (forward() decides once
      // the pump has stopped; the client's body keeps being read).
      // A refused stream was not processed: any method. A pooled connection closed before any
      // answer may have processed it: only a method that may repeat.
      if (recording_ && (hs == upstream::HeadStatus::kRefused || repeatable_ ||
                         (policy_ && policy_->retry_non_idempotent))) {
        retry_ = true;
        us.cancel();
        co_return;
      }
      count_not_replayed();
    }
    // The route's retry policy, once the whole request went upstream (its body is then in the
    // replay buffer when it fitted): a retriable status, or no response head.
    if (policy_ && request_sent_ && !aborted_ && !client_aborted_ && !expired() &&
        !pending_reply_ &&
        (hs == upstream::H1ClientStream::HeadStatus::kOk
             ? policy_covers(resp.status, false)
             : hs != upstream::H1ClientStream::HeadStatus::kInvalid &&
                   (route_timed_out_ ? per_try_limited_
                                     : hs != upstream::H1ClientStream::HeadStatus::kCancelled) &&
                   policy_covers(0, false))) {
      report_outcome(hs == upstream::H1ClientStream::HeadStatus::kOk ? resp.status
                                                                     : upstream::kGatewayFailure);
      const RetryDecision d = co_await policy_retry(true);
      if (d != RetryDecision::kNo) {
        us.cancel();
        if (d == RetryDecision::kRetry) {
          retry_ = true;
          policy_retrying_ = true;
        }
        co_return;
      }
    }
    if (hs != upstream::H1ClientStream::HeadStatus::kOk) {
      us.cancel();
      if (pump_running_) stream_.stop_reading();
      if (aborted_ || client_aborted_) {
        stream_.reset();
        co_return;
      }
      if (!co_await reply_for_request_side()) {
        FailureKind kind = FailureKind::kReset;
        if (route_timed_out_) kind = FailureKind::kTimeout;
        if (hs == upstream::H1ClientStream::HeadStatus::kInvalid) kind = FailureKind::kProtocol;
        co_await fail(kind, true);
      }
      co_return;
    }
  }

  // Response filters (the route's header changes first).
  filters::apply_mutations(route_->options.response_headers, resp.headers);
  if (chain_) {
    for (uint16_t i : chain_->response_headers) {
      filters::HeadersStatus st = co_await filters_[i]->on_response_headers(resp, !resp.has_body);
      if (st == filters::HeadersStatus::kStop) {
        us.cancel();
        if (pump_running_) stream_.stop_reading();
        stream_.reset();
        co_return;
      }
      if (st == filters::HeadersStatus::kBuffer) buffer_response_ = true;
    }
  }
  const bool body_filters = chain_ && !chain_->response_body.empty();
  if (buffer_response_ && body_filters && resp.has_body) {
    buf_.body.clear();
    for (;;) {
      BodyPiece p = co_await us.read_body();
      touch();
      if (p.status == BodyStatus::kData) {
        buf_.body.append(p.data);
        if (buf_.body.size() > (1u << 20)) {
          us.cancel();
          if (pump_running_) stream_.stop_reading();
          co_await fail(FailureKind::kProtocol, true);
          co_return;
        }
        continue;
      }
      if (p.status == BodyStatus::kEnd) break;
      us.cancel();
      if (pump_running_) stream_.stop_reading();
      co_await fail(FailureKind::kReset, true);
      co_return;
    }
    for (uint16_t i : chain_->response_body)
      (void)co_await filters_[i]->on_response_body(buf_.body, true);
    resp.content_length = buf_.body.size();
    status_ = resp.status;
    slot_->count(w_.index(), resp.status);
    report_outcome(resp.status);
    if (co_await stream_.send_headers(resp, buf_.body.empty()) && !buf_.body.empty()) {
      response_bytes_ += buf_.body.size();
      co_await stream_.send_body(buf_.body, true);
    }
  } else {
    // Filters may change the length of a body; a response without one keeps its framing (a
    // trailers-only gRPC answer is "Content-Length: 0" to an HTTP/1.1 client).
    if (body_filters && resp.has_body) resp.content_length.reset();
    status_ = resp.status;
    slot_->count(w_.index(), resp.status);
    report_outcome(resp.status);
    bool ok = co_await stream_.send_headers(resp, !resp.has_body);
    // The head goes out with the first body bytes when they are already here (one write);
    // otherwise now, so that a slow body does not hold the head back.
    if (ok && resp.has_body && !us.body_buffered()) ok = co_await stream_.flush();
    touch();
    while (ok && resp.has_body) {
      BodyPiece p = co_await us.read_body();
      touch();
      if (p.status == BodyStatus::kData) {
        response_bytes_ += p.data.size();
        ok = co_await send_response_body(p.data, false);
        touch();
        continue;
      }
      if (p.status == BodyStatus::kEnd) {
        ok = co_await end_response(p.trailers);
        break;
      }
      // Truncated or broken: the client must see it (no final chunk, connection closed).
      if (cluster_ && !aborted_ && !expired()) {
        cluster_->row()
            .errors[static_cast<size_t>(p.status == BodyStatus::kMalformed
                                            ? stats::UpstreamError::kProtocol
                                            : stats::UpstreamError::kReset)]
            .inc();
      }
      us.cancel();
      stream_.reset();
      ok = false;
      break;
    }
    if (!ok) us.cancel();
  }
  // The response is complete. A request body still arriving is not wanted any more.
  if (pump_running_) {
    stream_.stop_reading();
    if (!request_sent_) us.cancel();
  }
}

// ---- Tunnels ------------------------------------------------------------------------------------

void StreamHandler::count_refusal(UpgradeRefusal r) {
  w_.row().upgrades_refused[static_cast<size_t>(r)].inc();
}

asio::awaitable<void> StreamHandler::refuse_connect() {
  count_refusal(UpgradeRefusal::kConnectRefused);
  stream_.close_after();
  co_await local_reply(403, "CONNECT to this destination is not allowed\n");
}

asio::awaitable<bool> StreamHandler::decide_tunnel(bool connect, bool forwards) {
  RequestHeaders& req = stream_.request();
  if (connect) {
    if (!route_->options.connect || !forwards) {
      co_await refuse_connect();
      co_return false;
    }
    if (req.has_body) {
      count_refusal(UpgradeRefusal::kBadRequest);
      stream_.close_after();
      co_await local_reply(400, "bad request: a CONNECT request has no body\n");
      co_return false;
    }
    req.upgrade.clear();
    tunnel_ = TunnelKind::kConnect;
    co_return true;
  }
  // HTTP/2: the codec translated an extended CONNECT (RFC 8441) into this handshake; it cannot
  // be served as a plain request (the client waits for its tunnel), so every refusal answers.
  const bool h2 = stream_.connection().http2;
  if (!asks_for_websocket(req.upgrade)) {
    if (h2) {
      count_refusal(UpgradeRefusal::kUnknownProtocol);
      co_await local_reply(501, "extended CONNECT: only the websocket protocol is served\n");
      co_return false;
    }
    req.upgrade.clear();  // another protocol (h2c...): served as a plain request
    co_return true;
  }
  if (h2 && (!route_->options.websocket || !forwards)) {
    count_refusal(UpgradeRefusal::kWebSocketDisabled);
    co_await local_reply(403, "WebSocket is not enabled on this route\n");
    co_return false;
  }
  if (!route_->options.websocket || !forwards) {
    // Served as a plain request: the Upgrade and Connection fields were dropped by the codec and
    // nothing asks the upstream to switch (a 101 from it is then an invalid response, 502).
    count_refusal(UpgradeRefusal::kWebSocketDisabled);
    req.upgrade.clear();
    co_return true;
  }
  const HandshakeCheck check = check_websocket_handshake(req);
  if (check != HandshakeCheck::kOk) {
    // Refused here, never sent upstream nor tunnelled.
    count_refusal(check == HandshakeCheck::kBadVersion ? UpgradeRefusal::kBadVersion
                  : check == HandshakeCheck::kBadKey   ? UpgradeRefusal::kBadKey
                                                       : UpgradeRefusal::kBadRequest);
    stream_.close_after();
    if (check == HandshakeCheck::kBadVersion) {
      co_await local_reply(426, "upgrade required: WebSocket version 13\n", "text/plain", {},
                           "Sec-WebSocket-Version", "13");
    } else {
      co_await local_reply(handshake_status(check),
                           check == HandshakeCheck::kBadKey
                               ? "bad request: invalid Sec-WebSocket-Key\n"
                               : "bad request: a WebSocket upgrade is a GET without a body\n");
    }
    co_return false;
  }
  req.upgrade.assign("websocket");
  tunnel_ = TunnelKind::kWebSocket;
  co_return true;
}

asio::awaitable<bool> StreamHandler::accept_tunnel(ResponseHeaders& head) {
  request_timer_.cancel();
  route_timer_.cancel();
  filters::apply_mutations(route_->options.response_headers, head.headers);
  if (chain_) {
    for (uint16_t i : chain_->response_headers) {
      if (co_await filters_[i]->on_response_headers(head, true) == filters::HeadersStatus::kStop) {
        if (us_) us_->cancel();
        stream_.reset();
        co_return false;
      }
    }
  }
  // Counted as the client saw it: the codec may rewrite the head (HTTP/2: 200 for a 101, or the
  // status of the refusal it answered instead).
  const bool accepted = co_await stream_.accept_tunnel(head);
  status_ = head.status;
  slot_->count(w_.index(), head.status);
  if (!accepted) co_return false;
  auto& opened = stream_.connection().http2 ? w_.row().h2_tunnels_opened : w_.row().tunnels_opened;
  opened[static_cast<size_t>(*tunnel_)].inc();
  co_return true;
}

void StreamHandler::break_tunnel() {
  if (tunnel_broken_) return;
  tunnel_broken_ = true;
  if (us_) us_->cancel();
  stream_.reset();
}

asio::awaitable<void> StreamHandler::run_tunnel(upstream::H1ClientStream& us) {
  stats::Counter& active =
      (stream_.connection().http2 ? w_.row().h2_tunnels_active
                                  : w_.row().tunnels_active)[static_cast<size_t>(*tunnel_)];
  active.inc();
  // A tunnel's idle limit: the route's idleTimeout, else the listener's streamIdleTimeout (not
  // bounded by the keep-alive idleTimeout, which is about connections between requests).
  Clock::duration idle = opts_.stream_idle_timeout.count() > 0
                             ? Clock::duration(opts_.stream_idle_timeout)
                             : Clock::duration(opts_.idle_timeout);
  if (route_->options.idle_timeout) idle = *route_->options.idle_timeout;
  set_idle_timeout(idle);
  if (!aborted_ && !expired()) co_await (tunnel_up(us) && tunnel_down(us));
  active.dec();
}

// Client → upstream.
asio::awaitable<void> StreamHandler::tunnel_up(upstream::H1ClientStream& us) {
  stats::Counter& bytes = w_.row().tunnel_bytes_up[static_cast<size_t>(*tunnel_)];
  for (;;) {
    BodyPiece p = co_await stream_.read_tunnel();
    touch();
    if (p.status == BodyStatus::kData) {
      request_bytes_ += p.data.size();
      bytes.inc(p.data.size());
      if (!co_await us.write_raw(p.data)) break;
      touch();
      continue;
    }
    if (p.status == BodyStatus::kEnd && !tunnel_broken_) {
      // The client half-closed: so does Portico toward the upstream; the other way goes on.
      if (co_await us.shutdown_write()) co_return;
    }
    break;
  }
  break_tunnel();
}

// Upstream → client.
asio::awaitable<void> StreamHandler::tunnel_down(upstream::H1ClientStream& us) {
  stats::Counter& bytes = w_.row().tunnel_bytes_down[static_cast<size_t>(*tunnel_)];
  for (;;) {
    BodyPiece p = co_await us.read_raw();
    touch();
    if (p.status == BodyStatus::kData) {
      response_bytes_ += p.data.size();
      bytes.inc(p.data.size());
      if (!co_await stream_.write_tunnel(p.data)) break;
      touch();
      continue;
    }
    if (p.status == BodyStatus::kEnd && !tunnel_broken_) {
      if (co_await stream_.end_tunnel_write()) co_return;
    }
    break;
  }
  break_tunnel();
}

void StreamHandler::record(std::string_view data) {
  if (buf_.replay.size() + data.size() > max_replay()) {
    recording_ = false;  // too large to send again: this request will not be retried
    replay_overflow_ = true;
    buf_.replay.clear();
    return;
  }
  buf_.replay.append(data);
}

// The request side decided the answer while the upstream exchange was failing: the body was too
// large (413) or malformed (400), the request deadline passed (408), or a filter left a local
// reply. False when none of these applies (the caller reports the upstream failure).
asio::awaitable<bool> StreamHandler::reply_for_request_side() {
  if (too_large_) {
    co_await local_reply(413, "request body too large\n");
  } else if (body_malformed_) {
    co_await local_reply(400, "bad request: malformed chunked body\n");
  } else if (expired()) {
    co_await local_reply(408, "request timeout\n");
  } else {
    co_return co_await send_pending_reply();
  }
  co_return true;
}

// Sends the local reply a filter left when it stopped the stream; false when it left none.
asio::awaitable<bool> StreamHandler::send_pending_reply() {
  if (!pending_reply_) co_return false;
  LocalReply r = std::move(*pending_reply_);
  pending_reply_.reset();
  co_await local_reply(r.status, r.body, r.content_type);
  co_return true;
}

void StreamHandler::count_not_replayed() {
  if (!cluster_) return;
  if (!repeatable_) {
    cluster_->row().retries_skipped_method.inc();
  } else if (replay_overflow_) {
    cluster_->row().retries_skipped_body.inc();
  }
}

asio::awaitable<bool> StreamHandler::request_trailers(HeaderMap& trailers) {
  if (!chain_) co_return true;
  for (uint16_t i : chain_->request_trailers) {
    if (co_await filters_[i]->on_request_trailers(trailers) == filters::DataStatus::kStop) {
      co_return false;
    }
  }
  co_return true;
}

asio::awaitable<bool> StreamHandler::end_response(HeaderMap* trailers) {
  // The trailer filters first: they may change the fields, or carry them into the body (gRPC-Web
  // ends its body with a trailer frame and clears them). Then the body filters' last word, then
  // the trailers that remain (on a chunked response; the codec drops them on a Content-Length
  // or close-delimited one), or the end of the body when none remain.
  if (trailers && chain_) {
    for (uint16_t i : chain_->response_trailers) {
      if (co_await filters_[i]->on_response_trailers(*trailers) == filters::DataStatus::kStop) {
        stream_.reset();
        co_return false;
      }
    }
  }
  if (!trailers || trailers->empty()) co_return co_await send_response_body({}, true);
  if (chain_ && !chain_->response_body.empty()) {
    buf_.body.clear();
    for (uint16_t i : chain_->response_body) {
      if (co_await filters_[i]->on_response_body(buf_.body, true) == filters::DataStatus::kStop) {
        stream_.reset();
        co_return false;
      }
    }
    if (!buf_.body.empty() && !co_await stream_.send_body(buf_.body, false)) co_return false;
  }
  co_return co_await stream_.send_trailers(*trailers);
}

asio::awaitable<bool> StreamHandler::send_response_body(std::string_view data, bool end) {
  if (chain_ && !chain_->response_body.empty()) {
    buf_.body.assign(data);
    for (uint16_t i : chain_->response_body) {
      if (co_await filters_[i]->on_response_body(buf_.body, end) == filters::DataStatus::kStop) {
        stream_.reset();
        co_return false;
      }
    }
    co_return co_await stream_.send_body(buf_.body, end);
  }
  co_return co_await stream_.send_body(data, end);
}

void StreamHandler::report_outcome(int status) {
  if (cluster_ && endpoint_) cluster_->report(*endpoint_, status, w_.random());
  endpoint_ = nullptr;  // once per attempt
}

asio::awaitable<void> StreamHandler::fail(upstream::FailureKind kind, bool request_sent) {
  // Built here, not passed in: GCC 12 mishandles non-trivial temporaries in co_await operands.
  upstream::UpstreamError e;
  e.kind = kind;
  e.source =
      kind == upstream::FailureKind::kUnsupported ? ErrorSource::kInternal : ErrorSource::kUpstream;
  e.request_sent = request_sent;
  e.retry_allowed = !request_sent;
  e.detail = std::move(fail_detail_);
  fail_detail_.clear();
  failure_ = kind;
  if (cluster_) cluster_->row().errors[static_cast<size_t>(e.stat())].inc();
  // Outlier detection: what went wrong after the connection was made (connect failures were
  // reported where they happened).
  if (kind == upstream::FailureKind::kReset || kind == upstream::FailureKind::kTimeout ||
      kind == upstream::FailureKind::kProtocol) {
    report_outcome(upstream::kGatewayFailure);
  }
  const std::string body = e.message();
  if (grpc_) {
    // A gRPC client reads grpc-status, not the HTTP status: the route timeout (grpc-timeout)
    // is DEADLINE_EXCEEDED, anything else UNAVAILABLE, with the reason as grpc-message.
    std::string_view m = body;
    if (!m.empty() && m.back() == '\n') m.remove_suffix(1);
    co_await grpc_reply(
        kind == upstream::FailureKind::kTimeout ? kGrpcDeadlineExceeded : kGrpcUnavailable, m);
    co_return;
  }
  co_await local_reply(e.status(), body);
}

asio::awaitable<void> StreamHandler::grpc_reply(int code, std::string_view message) {
  request_timer_.cancel();
  if (stream_.response_started()) {
    // Too late for an answer: the stream is reset (the client sees the call fail).
    status_ = 200;
    if (slot_) slot_->count(w_.index(), 200);
    stream_.reset();
    co_return;
  }
  ResponseHeaders& r = buf_.response;
  r.clear();
  r.status = 200;
  r.headers.add("content-type", "application/grpc");
  char code_s[8];
  auto cr = std::to_chars(code_s, code_s + sizeof code_s, code);
  r.headers.add("grpc-status", std::string_view(code_s, static_cast<size_t>(cr.ptr - code_s)));
  if (!message.empty()) r.headers.add("grpc-message", grpc_percent_encode(message));
  if (!opts_.server_name.empty()) r.headers.add("server", opts_.server_name);
  r.has_body = false;
  r.content_length = 0;
  if (route_) {
    // The route's response side, as for every local reply (gRPC-Web turns the content-type into
    // its own, so that a browser's call reads this status too).
    filters::apply_mutations(route_->options.response_headers, r.headers);
    if (create_filters()) {
      for (uint16_t i : chain_->response_headers) {
        if (co_await filters_[i]->on_response_headers(r, true) == filters::HeadersStatus::kStop) {
          stream_.reset();
          co_return;
        }
      }
    }
  }
  status_ = r.status;
  if (slot_) slot_->count(w_.index(), r.status);
  co_await stream_.send_headers(r, true);
}

asio::awaitable<void> StreamHandler::overflow(stats::Breaker b) {
  if (cluster_) cluster_->row().overflow[static_cast<size_t>(b)].inc();
  failure_ = upstream::FailureKind::kOverflow;
  const std::string_view name = stats::to_string(b);
  std::string body = "upstream overflow: the ";
  body.append(name);
  body.append(" circuit breaker is open\n");
  co_await local_reply(503, body, "text/plain", {}, "x-portico-overflow", name);
}

size_t StreamHandler::max_replay() const {
  return policy_ != nullptr ? policy_->max_replay_bytes : kMaxReplayBody;
}

bool StreamHandler::policy_covers(int status, bool connect) const {
  if (!policy_) return false;
  using P = snapshot::RetryPolicy;
  const uint32_t on = policy_->retry_on;
  // Envoy's reading: 5xx and gateway-error include the failures that leave no response at all.
  if (connect) return (on & (P::kOn5xx | P::kOnGatewayError | P::kOnReset | P::kOnConnectFailure));
  if (status == 0) return (on & (P::kOn5xx | P::kOnGatewayError | P::kOnReset)) != 0;
  if ((on & P::kOn5xx) && status >= 500 && status <= 599) return true;
  if ((on & P::kOnGatewayError) && (status == 502 || status == 503 || status == 504)) return true;
  if ((on & P::kOnRetriable4xx) && status == 409) return true;
  if (on & P::kOnStatusCodes) {
    for (uint16_t c : policy_->retriable_status_codes) {
      if (c == status) return true;
    }
  }
  return false;
}

// Decides a retry by the route's policy after a failed try. Safe only: a request whose bytes
// went upstream is sent again only when its method may repeat (idempotent, or the route's
// retryNonIdempotent) and its whole body can be sent again (held, or in the replay buffer). The
// cluster's max-retries breaker and retry budget apply to the first retry of a request (it then
// counts as retrying until it ends). The back-off (full jitter) is waited here.
asio::awaitable<StreamHandler::RetryDecision> StreamHandler::policy_retry(bool request_sent) {
  if (!policy_ || !cluster_ || policy_retries_ >= policy_->num_retries)
    co_return RetryDecision::kNo;
  if (aborted_ || client_aborted_ || expired() || pending_reply_ || too_large_ || body_malformed_)
    co_return RetryDecision::kNo;
  upstream::Cluster& cluster = *cluster_;
  if (request_sent && !repeatable_ && !policy_->retry_non_idempotent) {
    cluster.row().retries_skipped_method.inc();
    co_return RetryDecision::kNo;
  }
  if (stream_body_ && (request_sent || request_bytes_ > 0) &&
      (!recording_ || replay_overflow_ || (request_sent && !body_end_seen_))) {
    if (replay_overflow_) cluster.row().retries_skipped_body.inc();
    co_return RetryDecision::kNo;
  }
  const auto now = Clock::now();
  if (now >= deadline_) co_return RetryDecision::kNo;
  if (!retry_hold_.held()) {
    stats::ClusterLoad& load = cluster.load();
    const int64_t retrying = load.retries.load(std::memory_order_relaxed);
    if (retrying >= static_cast<int64_t>(cluster.breakers().max_retries)) {
      co_await overflow(stats::Breaker::kMaxRetries);
      co_return RetryDecision::kDone;
    }
    if (!upstream::retry_budget_allows(load.requests.load(std::memory_order_relaxed), retrying,
                                       cluster.retry_budget())) {
      cluster.row().retries_skipped_budget.inc();
      co_return RetryDecision::kNo;
    }
    retry_hold_.take(load.retries);
  }
  ++policy_retries_;
  cluster.row().retries.inc();
  // Back-off with full jitter: uniform in [0, min(maxInterval, baseInterval * 2^(n-1))], within
  // what is left of the route timeout.
  const int64_t base = policy_->base_interval.count();
  const uint32_t shift = std::min<uint32_t>(policy_retries_ - 1, 20);
  const int64_t cap = std::min<int64_t>(policy_->max_interval.count(), base << shift);
  int64_t wait = cap > 0 ? static_cast<int64_t>(w_.random() % static_cast<uint64_t>(cap + 1)) : 0;
  if (deadline_ != Clock::time_point::max()) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline_ - now);
    wait = std::min<int64_t>(wait, left.count());
  }
  if (wait > 0 && !co_await sleep(std::chrono::milliseconds(wait))) {
    if (!aborted_ && expired()) co_await local_reply(408, "request timeout\n");
    co_return RetryDecision::kDone;
  }
  co_return RetryDecision::kRetry;
}

}  // namespace portico::proxy::http
