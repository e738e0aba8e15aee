#include "proxy/http/connection.h"

#include <asio/experimental/as_tuple.hpp>

#include <array>
#include <charconv>
#include <cstdio>
#include <cstring>

#include "proxy/http/h1_parser.h"
#include "proxy/router/router.h"
#include "proxy/worker.h"

namespace portico::proxy::http {

namespace {

constexpr auto use_nothrow = asio::experimental::as_tuple(asio::use_awaitable);
// Body bytes are moved in pieces of up to 64 KiB: fewer system calls per large body, and a bounded
// amount of memory per connection.
constexpr size_t kReadChunk = 65536;

using upstream::Connection;
using UpstreamEndpoint = upstream::Endpoint;

const char* reason_phrase(int status) {
  switch (status) {
    case 100:
      return "Continue";
    case 200:
      return "OK";
    case 201:
      return "Created";
    case 204:
      return "No Content";
    case 301:
      return "Moved Permanently";
    case 302:
      return "Found";
    case 303:
      return "See Other";
    case 304:
      return "Not Modified";
    case 307:
      return "Temporary Redirect";
    case 308:
      return "Permanent Redirect";
    case 400:
      return "Bad Request";
    case 401:
      return "Unauthorized";
    case 403:
      return "Forbidden";
    case 404:
      return "Not Found";
    case 405:
      return "Method Not Allowed";
    case 408:
      return "Request Timeout";
    case 413:
      return "Content Too Large";
    case 429:
      return "Too Many Requests";
    case 431:
      return "Request Header Fields Too Large";
    case 500:
      return "Internal Server Error";
    case 501:
      return "Not Implemented";
    case 502:
      return "Bad Gateway";
    case 503:
      return "Service Unavailable";
    case 504:
      return "Gateway Timeout";
    case 505:
      return "HTTP Version Not Supported";
    default:
      return "Unknown";
  }
}

void append_header(std::string& out, std::string_view name, std::string_view value) {
  out.append(name);
  out.append(": ", 2);
  out.append(value);
  out.append("\r\n", 2);
}

void append_uint(std::string& out, uint64_t v) {
  char buf[24];
  auto r = std::to_chars(buf, buf + sizeof buf, v);
  out.append(buf, static_cast<size_t>(r.ptr - buf));
}

void append_hex(std::string& out, uint64_t v) {
  char buf[24];
  auto r = std::to_chars(buf, buf + sizeof buf, v, 16);
  out.append(buf, static_cast<size_t>(r.ptr - buf));
}

// One chunk of the chunked coding: size line, data, CRLF.
void append_chunk(std::string& out, std::string_view data) {
  append_hex(out, data.size());
  out.append("\r\n");
  out.append(data);
  out.append("\r\n");
}

bool in_list(const std::vector<std::string>& lower_names, std::string_view name) {
  for (const auto& n : lower_names) {
    if (iequals(n, name)) return true;
  }
  return false;
}

// True when `name` is removed by the mutations, or replaced by an add with append: false.
bool dropped_by(const snapshot::HeaderMutations& m, std::string_view name) {
  if (!m.remove.empty() && in_list(m.remove, name)) return true;
  for (const auto& h : m.add) {
    if (!h.append && iequals(h.name, name)) return true;
  }
  return false;
}

// Headers the proxy sets itself and therefore never copies from the received message.
bool is_proxy_managed_request_header(std::string_view name) {
  switch (name.size()) {
    case 4:
      return iequals(name, "host");
    case 6:
      return iequals(name, "expect");
    case 14:
      return iequals(name, "content-length");
    case 15:
      return iequals(name, "x-forwarded-for");
    case 17:
      return iequals(name, "x-forwarded-proto");
    default:
      return false;
  }
}

void append_request_id(std::string& out, Worker& w) {
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
  append_header(out, "X-Request-Id", std::string_view(id, 36));
}

enum class Outcome { kKeepAlive, kClose };

// One client connection.
class Session {
 public:
  Session(Worker& w, asio::ip::tcp::socket socket, std::string key)
      : w_(w), socket_(std::move(socket)), key_(std::move(key)), in_(8192, 1 << 20) {
    asio::error_code ec;
    auto remote = socket_.remote_endpoint(ec);
    if (!ec) peer_ = remote.address().to_string();
    watch_.downstream = &socket_;
    watch_.listener = key_;
  }

  asio::awaitable<void> run() {
    w_.add_watch(&watch_);
    w_.row().downstream_cx_total.inc();
    w_.row().downstream_cx_active.inc();
    for (;;) {
      request_slot_ = nullptr;
      Outcome o = co_await one_request();
      if (request_slot_) {
        const auto took =
            std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - request_start_);
        request_slot_->observe(w_.index(), static_cast<uint64_t>(took.count()));
      }
      // An idle keep-alive connection must not keep an old configuration alive.
      cfg_.reset();
      lr_ = nullptr;
      in_.shrink_if_empty(16384);  // a body's 64 KiB pieces are not kept while idle
      if (o == Outcome::kClose) break;
    }
    asio::error_code ignored;
    socket_.shutdown(asio::ip::tcp::socket::shutdown_send, ignored);
    socket_.close(ignored);
    w_.row().downstream_cx_active.dec();
    w_.release(key_);
    w_.remove_watch(&watch_);
  }

 private:
  // Reads and handles one request. Returns whether the connection may carry another.
  asio::awaitable<Outcome> one_request() {
    cfg_ = w_.config();
    const Runtime* rt = cfg_->runtime.get();
    if (!rt) co_return Outcome::kClose;
    auto lit = rt->listener_by_key.find(key_);
    if (lit == rt->listener_by_key.end()) co_return Outcome::kClose;  // listener removed
    lr_ = &rt->listeners[lit->second];
    const snapshot::HttpOptions& opts = lr_->listener->http;
    Limits limits;
    limits.max_head_bytes = opts.max_request_headers_bytes;
    limits.max_headers = std::min<size_t>(opts.max_headers, kMaxHeadersCapacity);

    // 1. The request head.
    watch_.idle = in_.empty();
    watch_.arm(in_.empty() ? opts.idle_timeout : opts.request_header_timeout);
    for (;;) {
      if (!in_.empty()) {
        ParseResult r = parse_request_head(in_.view(), head_, limits);
        if (r.status == ParseStatus::kComplete) break;
        if (r.status == ParseStatus::kError) {
          w_.row().bad_requests.inc();
          std::string body = "bad request: ";
          body.append(error_text(r.error));
          body.push_back('\n');
          co_await local_reply(error_status(r.error), body, true, nullptr);
          co_return Outcome::kClose;
        }
      }
      if (w_.draining() && in_.empty()) co_return Outcome::kClose;
      auto [buf, cap] = in_.prepare(4096);
      if (cap == 0) {
        co_await local_reply(431, "request head too large\n", true, nullptr);
        co_return Outcome::kClose;
      }
      auto [ec, n] = co_await socket_.async_read_some(asio::buffer(buf, cap), use_nothrow);
      if (ec || n == 0) {
        if (watch_.fired && !in_.empty() && !w_.draining()) {
          co_await local_reply(408, "request head timeout\n", true, nullptr);
        }
        co_return Outcome::kClose;
      }
      in_.commit(n);
      if (watch_.idle) {
        watch_.idle = false;
        watch_.arm(opts.request_header_timeout);
      }
    }
    watch_.idle = false;
    watch_.disarm();
    w_.row().downstream_rq_total.inc();
    request_start_ = Clock::now();
    client_keep_alive_ = head_.keep_alive && !w_.draining();
    client_http10_ = head_.version_minor == 0;
    is_head_ = head_.method == "HEAD";

    // 2. Route.
    const snapshot::VirtualHost* vh = lr_->router->select_virtual_host(head_.host);
    if (!vh) {
      request_slot_ = lr_->no_virtual_host;
      request_slot_->count(w_.index(), 404);
      co_return co_await reply_and_skip_body(404, "no route matched\n", nullptr);
    }
    const VirtualHostRuntime& vhr = lr_->virtual_hosts[vh - lr_->listener->virtual_hosts.data()];
    const snapshot::Route* route = router::match_route(*vh, head_);
    if (!route) {
      request_slot_ = vhr.no_route;
      request_slot_->count(w_.index(), 404);
      co_return co_await reply_and_skip_body(404, "no route matched\n", nullptr);
    }
    const RouteRuntime& rr = vhr.routes[route - vh->routes.data()];

    if (const auto* direct = std::get_if<snapshot::DirectResponseAction>(&route->action)) {
      request_slot_ = rr.stats[0];
      request_slot_->count(w_.index(), direct->status);
      co_return co_await reply_and_skip_body(direct->status, direct->body, route,
                                             direct->content_type);
    }
    if (const auto* redirect = std::get_if<snapshot::RedirectAction>(&route->action)) {
      request_slot_ = rr.stats[0];
      request_slot_->count(w_.index(), redirect->code);
      location_ = router::redirect_location(*redirect, *route, head_, "http");
      co_return co_await reply_and_skip_body(redirect->code, "", route);
    }
    const auto& fwd = std::get<snapshot::ForwardAction>(route->action);
    size_t choice = 0;
    if (fwd.clusters.size() > 1 && fwd.total_weight > 0) {
      uint64_t r = w_.random() % fwd.total_weight;
      for (size_t i = 0; i < fwd.clusters.size(); ++i) {
        if (r < fwd.clusters[i].weight) {
          choice = i;
          break;
        }
        r -= fwd.clusters[i].weight;
      }
    }
    int idx = rr.cluster_index[choice];
    request_slot_ = rr.stats[choice];
    if (idx < 0) {
      rr.stats[choice]->count(w_.index(), 503);
      co_return co_await reply_and_skip_body(503, "upstream unavailable: unknown upstream\n",
                                             route);
    }
    co_return co_await forward(*route, *cfg_->clusters[idx], rr.stats[choice], opts);
  }

  // True when a configuration published during this request no longer has our listener: the
  // response then says Connection: close instead of inviting a request that cannot be served.
  bool listener_removed() const {
    const auto& now = w_.config();
    if (now == cfg_ || !now->runtime) return false;
    return now->runtime->listener_by_key.find(key_) == now->runtime->listener_by_key.end();
  }

  // Answers locally. The request body, if any, is skipped when it is already buffered; otherwise
  // the connection is closed after the reply (reading an unbounded body to keep a connection is not
  // worth it).
  asio::awaitable<Outcome> reply_and_skip_body(int status, std::string_view body,
                                               const snapshot::Route* route,
                                               std::string_view content_type = "text/plain") {
    bool keep = client_keep_alive_;
    if (head_.body == BodyKind::kContentLength &&
        in_.size() - head_.head_bytes >= head_.content_length) {
      in_.consume(head_.head_bytes + head_.content_length);
    } else if (head_.body == BodyKind::kNone) {
      in_.consume(head_.head_bytes);
    } else {
      keep = false;
    }
    bool ok = co_await local_reply(status, body, !keep, route, content_type);
    co_return ok&& keep ? Outcome::kKeepAlive : Outcome::kClose;
  }

  asio::awaitable<bool> local_reply(int status, std::string_view body, bool close,
                                    const snapshot::Route* route,
                                    std::string_view content_type = "text/plain") {
    std::string& out = out_;
    out.clear();
    out.append("HTTP/1.1 ");
    append_uint(out, static_cast<uint64_t>(status));
    out.push_back(' ');
    out.append(reason_phrase(status));
    out.append("\r\n");
    if (!location_.empty()) {
      append_header(out, "Location", location_);
      location_.clear();
    }
    if (!body.empty()) append_header(out, "Content-Type", content_type);
    out.append("Content-Length: ");
    append_uint(out, body.size());
    out.append("\r\n");
    if (lr_ && !lr_->listener->http.server_name.empty()) {
      append_header(out, "Server", lr_->listener->http.server_name);
    }
    if (route) {
      for (const auto& h : route->options.response_headers.add)
        append_header(out, h.name, h.value);
    }
    if (close) {
      out.append("Connection: close\r\n");
    } else if (client_http10_) {
      out.append("Connection: keep-alive\r\n");
    }
    out.append("\r\n");
    std::array<asio::const_buffer, 2> bufs{asio::buffer(out),
                                           asio::buffer(is_head_ ? std::string_view() : body)};
    watch_.arm(lr_ ? lr_->listener->http.idle_timeout : std::chrono::milliseconds(10000));
    auto [ec, n] = co_await asio::async_write(socket_, bufs, use_nothrow);
    watch_.disarm();
    co_return !ec;
  }

  // Serialises the request to send upstream into out_ (never the client's bytes).
  void build_upstream_head(const snapshot::Route& route, const UpstreamEndpoint& ep,
                           const snapshot::HttpOptions& opts) {
    std::string& out = out_;
    out.clear();
    out.append(head_.method);
    out.push_back(' ');
    if (route.options.prefix_rewrite) {
      router::rewrite_target(route, head_, target_);
      out.append(target_);
    } else {
      out.append(head_.path);
      if (!head_.query.empty()) {
        out.push_back('?');
        out.append(head_.query);
      }
    }
    out.append(" HTTP/1.1\r\n");
    if (!route.options.host_rewrite.empty()) {
      append_header(out, "Host", route.options.host_rewrite);
    } else if (!head_.host.empty()) {
      append_header(out, "Host", head_.host);
    } else {
      append_header(out, "Host", ep.config.address);
    }
    const auto& mutations = route.options.request_headers;
    const bool mutate = !mutations.remove.empty() || !mutations.add.empty();
    bool has_request_id = false;
    size_t xff_count = 0;
    for (size_t i = 0; i < head_.header_count; ++i) {
      const Header& h = head_.headers[i];
      if (h.hop_by_hop) continue;
      if (is_proxy_managed_request_header(h.name)) {
        if (h.name.size() == 15) {  // x-forwarded-for: keep, then append the peer
          ++xff_count;
        }
        continue;
      }
      if (mutate && dropped_by(mutations, h.name)) continue;
      if (h.name.size() == 12 && iequals(h.name, "x-request-id")) has_request_id = true;
      append_header(out, h.name, h.value);
    }
    if (opts.use_remote_address) {
      out.append("X-Forwarded-For: ");
      if (xff_count > 0) {
        // Several X-Forwarded-For lines are joined in order.
        for (size_t i = 0; i < head_.header_count; ++i) {
          const Header& h = head_.headers[i];
          if (h.name.size() == 15 && iequals(h.name, "x-forwarded-for")) {
            out.append(h.value);
            out.append(", ");
          }
        }
      }
      out.append(peer_);
      out.append("\r\n");
    }
    out.append("X-Forwarded-Proto: http\r\n");
    if (!has_request_id && opts.generate_request_id) append_request_id(out, w_);
    for (const auto& h : route.options.request_headers.add)
      append_header(out, h.name, h.value);
    if (head_.body == BodyKind::kContentLength) {
      out.append("Content-Length: ");
      append_uint(out, head_.content_length);
      out.append("\r\n");
    } else if (head_.body == BodyKind::kChunked) {
      out.append("Transfer-Encoding: chunked\r\n");
    }
    out.append("\r\n");
  }

  // Decodes the chunked body bytes in `data` (consuming what the decoder used) and appends them to
  // `out`: re-encoded as chunks when `chunked` (the final 0-chunk once the body ends), or as plain
  // bytes for an HTTP/1.0 client that reads until close. False on a malformed body; true when the
  // body ended or more bytes are needed.
  static bool transcode_chunked(ChunkedDecoder& dec, Buffer& data, std::string& out, bool chunked) {
    for (;;) {
      ChunkedDecoder::Step s = dec.feed(data.view());
      if (s.error != ParseError::kNone) return false;
      if (!s.data.empty()) {
        if (chunked) {
          append_chunk(out, s.data);
        } else {
          out.append(s.data);
        }
      }
      data.consume(s.consumed);
      if (s.done) {
        if (chunked) out.append("0\r\n\r\n");
        return true;
      }
      if ((s.consumed == 0 && s.data.empty()) || data.empty()) return true;  // needs more bytes
    }
  }

  // Answers an upstream failure once the request head has been consumed. The connection is kept
  // only if the request body is entirely in our buffer (then it is skipped); `req_left` is what of
  // it remains there.
  asio::awaitable<Outcome> upstream_failure(int status, std::string_view body,
                                            const snapshot::Route& route, stats::RequestSlot* slot,
                                            bool body_buffered, uint64_t req_left) {
    slot->count(w_.index(), status);
    bool keep = client_keep_alive_ && body_buffered;
    if (keep) in_.consume(req_left);
    bool ok = co_await local_reply(status, body, !keep, &route);
    co_return ok&& keep ? Outcome::kKeepAlive : Outcome::kClose;
  }

  // Counts a request in flight on an endpoint (least request) and in the cluster's gauge.
  struct InFlight {
    upstream::Cluster& cluster;
    std::shared_ptr<UpstreamEndpoint> ep;
    void set(const std::shared_ptr<UpstreamEndpoint>& e) {
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

  asio::awaitable<Outcome> forward(const snapshot::Route& route, upstream::Cluster& cluster,
                                   stats::RequestSlot* slot, const snapshot::HttpOptions& opts) {
    const auto timeout = route.options.timeout.value_or(std::chrono::milliseconds(15000));
    const BodyKind req_body = head_.body;
    const uint64_t req_len = head_.content_length;
    const size_t buffered_body = in_.size() - head_.head_bytes;
    // A request can be sent again on a fresh connection only if all of it is still in our buffer.
    const bool replayable = req_body == BodyKind::kNone ||
                            (req_body == BodyKind::kContentLength && buffered_body >= req_len);

    std::shared_ptr<UpstreamEndpoint> ep = cluster.pick(w_.random(), nullptr);
    if (!ep) {
      cluster.row().errors[static_cast<size_t>(stats::UpstreamError::kNoHealthyHost)].inc();
      slot->count(w_.index(), 503);
      co_return co_await reply_and_skip_body(503, "upstream unavailable: no endpoints\n", &route);
    }
    build_upstream_head(route, *ep, opts);
    if (head_.expect_continue && req_body != BodyKind::kNone &&
        !(req_body == BodyKind::kContentLength && buffered_body >= req_len)) {
      static constexpr std::string_view k100 = "HTTP/1.1 100 Continue\r\n\r\n";
      auto [ec, n] = co_await asio::async_write(socket_, asio::buffer(k100), use_nothrow);
      if (ec) co_return Outcome::kClose;
    }
    // From here on the head's views are not used: only out_ and these copies.
    in_.consume(head_.head_bytes);

    std::unique_ptr<Connection> conn;
    const UpstreamEndpoint* tried = nullptr;
    ChunkedDecoder req_dec;
    uint64_t req_left = req_body == BodyKind::kContentLength ? req_len : 0;
    InFlight active{cluster, nullptr};
    for (int attempt = 0;; ++attempt) {
      if (attempt > 0) {
        ep = cluster.pick(w_.random(), tried);
        if (!ep) break;
      }
      conn = cluster.take_idle(*ep);
      const bool reused = conn != nullptr;
      if (!conn) {
        conn = std::make_unique<Connection>(w_.io());
        watch_.upstream = &conn->socket;
        watch_.arm(cluster.connect_timeout());
        auto [ec] = co_await conn->socket.async_connect(ep->address, use_nothrow);
        const bool timed_out = watch_.fired;
        watch_.disarm();
        watch_.upstream = nullptr;
        if (ec) {
          cluster.row().errors[static_cast<size_t>(stats::UpstreamError::kConnectFailed)].inc();
          asio::error_code ignored;
          conn->socket.close(ignored);
          conn.reset();
          tried = ep.get();
          if (attempt == 0 && replayable) continue;  // one more try, on another endpoint if any
          std::string body = timed_out ? "upstream unavailable: connect timeout\n"
                                       : "upstream unavailable: " + ec.message() + "\n";
          co_return co_await upstream_failure(503, body, route, slot, replayable, req_left);
        }
        cluster.opened();
        asio::error_code ignored;
        conn->socket.set_option(asio::ip::tcp::no_delay(true), ignored);
      }
      ++conn->requests;
      active.set(ep);
      // Send the head and whatever body is already buffered, in one write.
      std::array<asio::const_buffer, 2> bufs;
      size_t body_now = 0;
      if (req_body == BodyKind::kContentLength) {
        body_now = std::min<uint64_t>(req_left, in_.size());
        bufs = {asio::buffer(out_), asio::buffer(in_.data(), body_now)};
      } else if (req_body == BodyKind::kChunked) {
        if (!transcode_chunked(req_dec, in_, out_, true)) {
          finish_upstream(cluster, ep, std::move(conn), false);
          co_return co_await upstream_failure(400, "bad request: malformed chunked body\n", route,
                                              slot, false, 0);
        }
        bufs = {asio::buffer(out_), asio::const_buffer()};
      } else {
        bufs = {asio::buffer(out_), asio::const_buffer()};
      }
      watch_.upstream = &conn->socket;
      watch_.arm(timeout);
      auto [wec, wn] = co_await asio::async_write(conn->socket, bufs, use_nothrow);
      if (wec) {
        watch_.upstream = nullptr;
        const bool timed_out = watch_.fired;
        watch_.disarm();
        finish_upstream(cluster, ep, std::move(conn), false);
        if (reused && replayable && attempt == 0 && !timed_out)
          continue;  // stale pooled connection
        cluster.row()
            .errors[static_cast<size_t>(timed_out ? stats::UpstreamError::kTimeout
                                                  : stats::UpstreamError::kReset)]
            .inc();
        co_return co_await upstream_failure(
            timed_out ? 504 : 502,
            timed_out ? "upstream timeout\n" : "bad gateway: upstream connection reset\n", route,
            slot, replayable, req_left);
      }
      if (req_body == BodyKind::kContentLength) {
        // Keep the body bytes until the response starts: a stale connection may need a retry.
        if (!(reused && replayable)) {
          in_.consume(body_now);
          req_left -= body_now;
        }
      }
      // Stream the rest of the request body.
      bool body_ok = true;
      if (req_body == BodyKind::kContentLength && req_left > 0 && !(reused && replayable)) {
        body_ok = co_await stream_request_body_cl(conn->socket, req_left, opts);
      } else if (req_body == BodyKind::kChunked && !req_dec.done()) {
        body_ok = co_await stream_request_body_chunked(conn->socket, req_dec, opts);
      }
      if (!body_ok) {
        watch_.upstream = nullptr;
        watch_.disarm();
        finish_upstream(cluster, ep, std::move(conn), false);
        co_return Outcome::kClose;  // the client went away or sent a broken body
      }
      watch_.arm(timeout);

      // 3. The response head.
      ResponseHead rh;
      ParseResult pr;
      bool got_bytes = false;
      for (;;) {
        if (!conn->buffer.empty()) {
          pr = parse_response_head(conn->buffer.view(), is_head_ ? "HEAD" : "GET", rh);
          if (pr.status == ParseStatus::kComplete) {
            if (rh.status >= 100 && rh.status < 200 && rh.status != 101) {
              conn->buffer.consume(rh.head_bytes);  // interim response: we sent our own 100
              continue;
            }
            break;
          }
          if (pr.status == ParseStatus::kError) break;
        }
        auto [buf, cap] = conn->buffer.prepare(4096);
        if (cap == 0) {
          pr.status = ParseStatus::kError;
          break;
        }
        auto [rec, rn] = co_await conn->socket.async_read_some(asio::buffer(buf, cap), use_nothrow);
        if (rec || rn == 0) {
          pr.status = ParseStatus::kIncomplete;
          break;
        }
        got_bytes = true;
        conn->buffer.commit(rn);
      }
      if (pr.status != ParseStatus::kComplete) {
        watch_.upstream = nullptr;
        const bool timed_out = watch_.fired;
        watch_.disarm();
        finish_upstream(cluster, ep, std::move(conn), false);
        if (!timed_out && pr.status == ParseStatus::kIncomplete && !got_bytes && reused &&
            replayable && attempt == 0) {
          continue;  // the pooled connection had been closed by the upstream: try a fresh one
        }
        stats::UpstreamError e = timed_out ? stats::UpstreamError::kTimeout
                                 : pr.status == ParseStatus::kError
                                     ? stats::UpstreamError::kProtocol
                                     : stats::UpstreamError::kReset;
        cluster.row().errors[static_cast<size_t>(e)].inc();
        co_return co_await upstream_failure(timed_out ? 504 : 502,
                                            timed_out ? "upstream timeout\n"
                                            : pr.status == ParseStatus::kError
                                                ? "bad gateway: upstream sent an invalid response\n"
                                                : "bad gateway: upstream closed the connection\n",
                                            route, slot, replayable, req_left);
      }
      if (reused && replayable && req_body == BodyKind::kContentLength) {
        in_.consume(req_left);
        req_left = 0;
      }
      co_return co_await relay_response(route, cluster, std::move(ep), std::move(conn), rh, slot,
                                        opts);
    }
    cluster.row().errors[static_cast<size_t>(stats::UpstreamError::kNoHealthyHost)].inc();
    co_return co_await upstream_failure(503, "upstream unavailable: no endpoints left to try\n",
                                        route, slot, replayable, req_left);
  }

  asio::awaitable<bool> stream_request_body_cl(asio::ip::tcp::socket& up, uint64_t& left,
                                               const snapshot::HttpOptions& opts) {
    while (left > 0) {
      if (in_.empty()) {
        auto [buf, cap] = in_.prepare(kReadChunk);
        watch_.arm(opts.idle_timeout);
        auto [ec, n] = co_await socket_.async_read_some(asio::buffer(buf, cap), use_nothrow);
        if (ec || n == 0) co_return false;
        in_.commit(n);
      }
      size_t now = std::min<uint64_t>(left, in_.size());
      auto [wec, wn] = co_await asio::async_write(up, asio::buffer(in_.data(), now), use_nothrow);
      if (wec) co_return false;
      in_.consume(now);
      left -= now;
    }
    co_return true;
  }

  asio::awaitable<bool> stream_request_body_chunked(asio::ip::tcp::socket& up, ChunkedDecoder& dec,
                                                    const snapshot::HttpOptions& opts) {
    while (!dec.done()) {
      auto [buf, cap] = in_.prepare(kReadChunk);
      watch_.arm(opts.idle_timeout);
      auto [ec, n] = co_await socket_.async_read_some(asio::buffer(buf, cap), use_nothrow);
      if (ec || n == 0) co_return false;
      in_.commit(n);
      scratch_.clear();
      if (!transcode_chunked(dec, in_, scratch_, true)) co_return false;
      if (!scratch_.empty()) {
        auto [wec, wn] = co_await asio::async_write(up, asio::buffer(scratch_), use_nothrow);
        if (wec) co_return false;
      }
    }
    co_return true;
  }

  asio::awaitable<Outcome> relay_response(const snapshot::Route& route, upstream::Cluster& cluster,
                                          std::shared_ptr<UpstreamEndpoint> ep,
                                          std::unique_ptr<Connection> conn, const ResponseHead& rh,
                                          stats::RequestSlot* slot,
                                          const snapshot::HttpOptions& opts) {
    watch_.disarm();
    std::string& out = out_;
    out.clear();
    out.append("HTTP/1.1 ");
    append_uint(out, static_cast<uint64_t>(rh.status));
    out.push_back(' ');
    out.append(rh.reason.empty() ? std::string_view(reason_phrase(rh.status)) : rh.reason);
    out.append("\r\n");
    const auto& mutations = route.options.response_headers;
    const bool mutate = !mutations.remove.empty() || !mutations.add.empty();
    const bool pass_length = rh.body == BodyKind::kNone && (is_head_ || rh.status == 304);
    for (size_t i = 0; i < rh.header_count; ++i) {
      const Header& h = rh.headers[i];
      if (h.hop_by_hop) continue;
      if (h.name.size() == 14 && iequals(h.name, "content-length") && !pass_length) continue;
      if (mutate && dropped_by(mutations, h.name)) continue;
      append_header(out, h.name, h.value);
    }
    for (const auto& h : route.options.response_headers.add)
      append_header(out, h.name, h.value);
    bool keep = client_keep_alive_ && !w_.draining() && !listener_removed();
    bool rechunk_body = false;
    switch (rh.body) {
      case BodyKind::kNone:
        break;
      case BodyKind::kContentLength:
        out.append("Content-Length: ");
        append_uint(out, rh.content_length);
        out.append("\r\n");
        break;
      case BodyKind::kChunked:
      case BodyKind::kUntilClose:
        if (client_http10_) {
          keep = false;  // an HTTP/1.0 client reads the body until we close
        } else {
          out.append("Transfer-Encoding: chunked\r\n");
          rechunk_body = true;
        }
        break;
    }
    if (!keep) {
      out.append("Connection: close\r\n");
    } else if (client_http10_) {
      out.append("Connection: keep-alive\r\n");
    }
    out.append("\r\n");
    slot->count(w_.index(), rh.status);
    const bool upstream_keep = rh.keep_alive && rh.body != BodyKind::kUntilClose;
    conn->buffer.consume(rh.head_bytes);

    // The head plus whatever body bytes came with it, in one write.
    bool ok = true;
    bool complete = false;
    uint64_t left = rh.body == BodyKind::kContentLength ? rh.content_length : 0;
    ChunkedDecoder dec;
    std::array<asio::const_buffer, 2> bufs{asio::buffer(out), asio::const_buffer()};
    size_t now = 0;
    if (rh.body == BodyKind::kNone) {
      complete = true;
    } else if (rh.body == BodyKind::kContentLength) {
      now = std::min<uint64_t>(left, conn->buffer.size());
      bufs[1] = asio::buffer(conn->buffer.data(), now);
      complete = now == left;
    } else if (rh.body == BodyKind::kChunked) {
      ok = transcode_chunked(dec, conn->buffer, out, rechunk_body);
      complete = dec.done();
      bufs[0] = asio::buffer(out);
    } else {  // until close
      now = conn->buffer.size();
      if (rechunk_body && now > 0) {
        append_chunk(out, conn->buffer.view());
        conn->buffer.consume(now);
        now = 0;
        bufs[0] = asio::buffer(out);
      } else {
        bufs[1] = asio::buffer(conn->buffer.data(), now);
      }
    }
    if (!ok) {
      cluster.row().errors[static_cast<size_t>(stats::UpstreamError::kProtocol)].inc();
      finish_upstream(cluster, ep, std::move(conn), false);
      co_return Outcome::kClose;
    }
    watch_.arm(opts.idle_timeout);
    auto [wec, wn] = co_await asio::async_write(socket_, bufs, use_nothrow);
    if (wec) {
      finish_upstream(cluster, ep, std::move(conn), false);
      co_return Outcome::kClose;
    }
    if (rh.body == BodyKind::kContentLength || rh.body == BodyKind::kUntilClose) {
      conn->buffer.consume(now);
      left -= std::min<uint64_t>(left, now);
    }

    // Stream the rest: read a piece from the upstream, write it to the client, repeat. One piece
    // in flight at a time is the back-pressure: a slow client slows the upstream reads.
    while (!complete) {
      auto [buf, cap] = conn->buffer.prepare(kReadChunk);
      watch_.upstream = &conn->socket;
      watch_.arm(opts.idle_timeout);
      auto [rec, rn] = co_await conn->socket.async_read_some(asio::buffer(buf, cap), use_nothrow);
      watch_.upstream = nullptr;
      if (rec || rn == 0) {
        if (rh.body == BodyKind::kUntilClose && !watch_.fired) {
          complete = true;  // the end of the body
          if (rechunk_body) {
            auto [ec2, n2] =
                co_await asio::async_write(socket_, asio::buffer("0\r\n\r\n", 5), use_nothrow);
            if (ec2) keep = false;
          } else {
            keep = false;
          }
          break;
        }
        cluster.row()
            .errors[static_cast<size_t>(watch_.fired ? stats::UpstreamError::kTimeout
                                                     : stats::UpstreamError::kReset)]
            .inc();
        finish_upstream(cluster, ep, std::move(conn), false);
        co_return Outcome::kClose;  // truncated: the client sees the connection close
      }
      conn->buffer.commit(rn);
      std::array<asio::const_buffer, 1> piece;
      if (rh.body == BodyKind::kContentLength) {
        now = std::min<uint64_t>(left, conn->buffer.size());
        piece[0] = asio::buffer(conn->buffer.data(), now);
      } else if (rh.body == BodyKind::kChunked) {
        scratch_.clear();
        bool good = transcode_chunked(dec, conn->buffer, scratch_, rechunk_body);
        if (!good) {
          cluster.row().errors[static_cast<size_t>(stats::UpstreamError::kProtocol)].inc();
          finish_upstream(cluster, ep, std::move(conn), false);
          co_return Outcome::kClose;
        }
        piece[0] = asio::buffer(scratch_);
      } else {
        now = conn->buffer.size();
        if (rechunk_body) {
          scratch_.clear();
          append_chunk(scratch_, conn->buffer.view());
          conn->buffer.consume(now);
          now = 0;
          piece[0] = asio::buffer(scratch_);
        } else {
          piece[0] = asio::buffer(conn->buffer.data(), now);
        }
      }
      watch_.arm(opts.idle_timeout);
      auto [ec2, n2] = co_await asio::async_write(socket_, piece, use_nothrow);
      if (ec2) {
        finish_upstream(cluster, ep, std::move(conn), false);
        co_return Outcome::kClose;
      }
      if (rh.body == BodyKind::kContentLength) {
        conn->buffer.consume(now);
        left -= now;
        complete = left == 0;
      } else if (rh.body == BodyKind::kChunked) {
        complete = dec.done();
      } else {
        conn->buffer.consume(now);
      }
    }
    watch_.disarm();
    finish_upstream(cluster, ep, std::move(conn), upstream_keep);
    co_return keep ? Outcome::kKeepAlive : Outcome::kClose;
  }

  void finish_upstream(upstream::Cluster& cluster, const std::shared_ptr<UpstreamEndpoint>& ep,
                       std::unique_ptr<Connection> conn, bool reusable) {
    watch_.upstream = nullptr;
    if (reusable) {
      cluster.give_back(ep, std::move(conn));
    } else {
      cluster.closed(std::move(conn));
    }
  }

  Worker& w_;
  asio::ip::tcp::socket socket_;
  std::string key_;
  Watch watch_;
  Buffer in_;
  std::string peer_;
  std::string out_;
  std::string scratch_;
  std::string target_;
  std::string location_;
  std::shared_ptr<WorkerConfig> cfg_;
  const ListenerRuntime* lr_ = nullptr;
  stats::RequestSlot* request_slot_ = nullptr;  // where this request is counted (once routed)
  Clock::time_point request_start_{};
  RequestHead head_;
  bool client_keep_alive_ = true;
  bool client_http10_ = false;
  bool is_head_ = false;
};

}  // namespace

asio::awaitable<void> serve_connection(Worker& worker, asio::ip::tcp::socket socket,
                                       std::string listener_key) {
  auto session = std::make_unique<Session>(worker, std::move(socket), std::move(listener_key));
  co_await session->run();
}

}  // namespace portico::proxy::http
