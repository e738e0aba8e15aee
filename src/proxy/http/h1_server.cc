#include "proxy/http/h1_server.h"

#include <array>
#include <charconv>

#include "proxy/buffer.h"
#include "proxy/http/codec.h"
#include "proxy/http/h1_parser.h"
#include "proxy/http/stream.h"
#include "proxy/overload/overload.h"
#include "proxy/worker.h"

namespace portico::proxy::http {

namespace {

// Body bytes are read in pieces of up to 64 KiB: few system calls per large body, and a bounded
// amount of memory per connection.
constexpr size_t kReadChunk = 65536;
// An idle connection keeps at most this much in its read buffer (a typical request head fits,
// so a keep-alive connection does not allocate per request) and in each scratch string.
constexpr size_t kIdleKeep = 1024;
// Lingering close: after an answer that left request bytes unread, keep reading (and dropping)
// for this long or this many bytes, so that the client's unread bytes do not turn our close into
// an RST that destroys the answer in flight.
constexpr auto kLingerTime = std::chrono::seconds(2);
constexpr size_t kLingerBytes = 256 * 1024;
// A request body left unread after the response (an early answer) is read and dropped when at
// most this much remains, to keep the connection.
constexpr uint64_t kSkipBodyBytes = 64 * 1024;

void append_header(std::string& out, std::string_view name, std::string_view value) {
  out.append(name);
  out.append(": ", 2);
  out.append(value);
  out.append("\r\n", 2);
}

void append_uint(std::string& out, uint64_t v, int base = 10) {
  char buf[24];
  auto r = std::to_chars(buf, buf + sizeof buf, v, base);
  out.append(buf, static_cast<size_t>(r.ptr - buf));
}

RequestHead& scratch_head() {
  thread_local RequestHead head;
  return head;
}

// What one request/response exchange needs beyond the connection: the owned request, the buffers
// lent to the stream handler, the response head and chunk framing, the request body decoder. A
// connection takes one from its worker's pool when a request starts and gives it back when it
// goes idle, so that an idle keep-alive connection holds none of it while the warm capacity
// (header arenas, head strings) is reused by whichever connection serves the next request.
struct Exchange {
  RequestHeaders req;
  StreamBuffers bufs;
  std::string out;    // response head (or an error reply)
  std::string frame;  // chunk framing of a response body piece
  ChunkedDecoder dec;
  HeaderMap trailers;  // of a chunked request body, once complete
};

// At most this many idle exchanges are kept per worker (a few hundred KiB at most); more are freed.
constexpr size_t kPooledExchanges = 256;

std::vector<std::unique_ptr<Exchange>>& exchange_pool() {
  thread_local std::vector<std::unique_ptr<Exchange>> pool;
  return pool;
}

std::unique_ptr<Exchange> take_exchange() {
  auto& pool = exchange_pool();
  if (pool.empty()) return std::make_unique<Exchange>();
  std::unique_ptr<Exchange> x = std::move(pool.back());
  pool.pop_back();
  return x;
}

void give_exchange(std::unique_ptr<Exchange> x) {
  x->req.headers.release_if_larger(kIdleKeep);
  x->bufs.release_if_larger(kIdleKeep);
  if (x->out.capacity() > kIdleKeep) std::string().swap(x->out);
  if (x->trailers.byte_size() != 0 || !x->dec.trailers().empty()) {
    x->trailers.clear();
    x->trailers.release_if_larger(0);
    x->dec.reset();  // frees the decoder's copy of the trailer section
  }
  auto& pool = exchange_pool();
  if (pool.size() < kPooledExchanges) pool.push_back(std::move(x));
}

class H1Connection final : public ServerStream, public DownstreamConnection {
 public:
  H1Connection(Worker& w, std::unique_ptr<transport::Transport> t, std::string key)
      : w_(w), t_(std::move(t)), key_(std::move(key)), in_(kIdleKeep, 1 << 20) {
    timer_.bind(w.timers(), [this] {
      if (park_armed_) {
        // The first stage of an idle wait is over: the read gives its buffer back (read_head
        // waits without one) and the keep-alive deadline is armed for the rest.
        park_armed_ = false;
        if (idle_) {
          parking_ = true;
          timer_.arm(idle_rest_);
          t_->cancel();
          return;
        }
      }
      timer_fired_ = true;
      t_->cancel();
    });
  }

  asio::awaitable<void> run();

  // ServerStream.
  uint32_t id() const override { return 1; }
  RequestHeaders& request() override { return x().req; }
  const transport::ConnectionInfo& connection() const override { return t_->info(); }
  ForwardingCache* forwarding_cache() override {
    if (!fwd_cache_) fwd_cache_ = std::make_unique<ForwardingCache>();
    return fwd_cache_.get();
  }
  asio::awaitable<BodyPiece> read_body() override;
  std::string_view buffered_body() const override;
  bool request_complete() const override { return body_done_; }
  asio::awaitable<bool> send_continue() override;
  asio::awaitable<bool> send_headers(ResponseHeaders& headers, bool end_stream) override;
  asio::awaitable<bool> flush() override;
  asio::awaitable<bool> send_body(std::string_view data, bool end_stream) override;
  asio::awaitable<bool> send_trailers(const HeaderMap& trailers) override;
  bool response_started() const override { return response_started_; }
  void stop_reading() override {
    stop_reading_ = true;
    if (reading_) t_->cancel();
  }
  void reset() override {
    reset_ = true;
    t_->close();
  }
  void close_after() override { close_after_ = true; }
  asio::awaitable<bool> accept_tunnel(ResponseHeaders& headers) override;
  asio::awaitable<BodyPiece> read_tunnel() override;
  asio::awaitable<bool> write_tunnel(std::string_view data) override;
  asio::awaitable<bool> end_tunnel_write() override;

  // DownstreamConnection.
  std::string_view listener() const override { return key_; }
  bool idle() const override { return idle_; }
  void close_idle() override {
    if (idle_) t_->cancel();
  }
  void abort() override {
    if (handler_) handler_->abort();
    t_->close();
  }

 private:
  enum class HeadResult { kRequest, kClose };
  asio::awaitable<HeadResult> read_head(const ListenerRuntime& lr);
  // The stream handler lives in this coroutine's frame, not in run()'s: an idle connection does
  // not carry its memory (frames come from asio's per-thread recycling allocator).
  asio::awaitable<void> handle_stream(const std::shared_ptr<WorkerConfig>& cfg,
                                      const ListenerRuntime& lr) {
    StreamHandler handler(w_, cfg, lr, *this, x_->bufs);
    handler_ = &handler;
    co_await handler.run();
    handler_ = nullptr;
  }
  asio::awaitable<void> error_reply(int status, std::string_view body);
  asio::awaitable<bool> write(std::span<const asio::const_buffer> bufs);
  asio::awaitable<void> linger_close();
  bool skip_rest_of_body();
  void start_request(const RequestHead& head);
  bool listener_removed(const std::shared_ptr<WorkerConfig>& cfg) const;
  Exchange& x() {
    if (!x_) x_ = take_exchange();
    return *x_;
  }

  Worker& w_;
  std::unique_ptr<transport::Transport> t_;
  std::string key_;
  Buffer in_;
  size_t scanned_ = 0;  // how far the end-of-head search got in in_
  Timer timer_;         // keep-alive idle, request head and lingering-close deadlines
  bool timer_fired_ = false;
  bool idle_ = false;
  bool park_armed_ = false;      // timer_ ends the first stage of an idle wait (idle_park_after)
  bool parking_ = false;         // that stage ended: the pending read is cancelled to park
  Clock::duration idle_rest_{};  // the keep-alive timeout left after the park delay (0: none)
  StreamHandler* handler_ = nullptr;
  std::unique_ptr<ForwardingCache> fwd_cache_;  // from the first request; dropped when parked

  std::unique_ptr<Exchange> x_;  // while a request is in progress (or an error reply is sent)
  bool keep_alive_ = true;
  bool http10_ = false;
  bool head_request_ = false;

  // Request body.
  BodyKind body_kind_ = BodyKind::kNone;
  uint64_t body_left_ = 0;
  size_t pending_consume_ = 0;
  bool body_done_ = true;
  BodyStatus body_error_ = BodyStatus::kEnd;  // kAborted/kMalformed once failed
  // The trailers of a chunked request body, once complete (nullptr: none).
  HeaderMap* trailers() { return x_->trailers.empty() ? nullptr : &x_->trailers; }
  bool stop_reading_ = false;
  bool reading_ = false;
  bool continue_sent_ = false;

  // Response.
  bool response_started_ = false;
  bool response_done_ = false;
  bool head_pending_ = false;
  bool chunked_out_ = false;
  bool close_after_ = false;
  bool reset_ = false;
  bool tunnel_ = false;  // the stream became a tunnel: the connection ends with it
};

bool H1Connection::listener_removed(const std::shared_ptr<WorkerConfig>& cfg) const {
  const auto& now = w_.config();
  if (now == cfg || !now->runtime) return false;
  return now->runtime->listener_by_key.find(key_) == now->runtime->listener_by_key.end();
}

asio::awaitable<void> H1Connection::run() {
  w_.add_connection(this);
  w_.row().downstream_cx_total.inc();
  w_.row().downstream_cx_active.inc();
  // Cleanup runs however the loop ends.
  struct Cleanup {
    H1Connection& c;
    ~Cleanup() {
      c.t_->close();
      c.w_.row().downstream_cx_active.dec();
      c.w_.release(c.key_);
      c.w_.remove_connection(&c);
    }
  } cleanup{*this};

  for (;;) {
    std::shared_ptr<WorkerConfig> cfg = w_.config();
    const Runtime* rt = cfg->runtime.get();
    if (!rt) co_return;
    auto lit = rt->listener_by_key.find(key_);
    if (lit == rt->listener_by_key.end()) co_return;  // listener removed
    const ListenerRuntime& lr = rt->listeners[lit->second];

    if (co_await read_head(lr) == HeadResult::kClose) co_return;

    co_await handle_stream(cfg, lr);
    if (tunnel_ || reset_ || !t_->is_open()) co_return;
    if (!response_done_) co_return;  // the client went away mid-response
    in_.consume(pending_consume_);   // the last body piece handed out
    pending_consume_ = 0;
    bool keep = keep_alive_ && !close_after_ && !w_.draining() && !listener_removed(cfg);
    if (!body_done_ && !skip_rest_of_body()) {
      co_await linger_close();
      co_return;
    }
    if (!keep) {
      if (!body_done_) co_await linger_close();
      co_return;
    }
    // Between requests: an idle keep-alive connection holds little memory and no configuration.
    cfg.reset();
    if (in_.empty() && in_.capacity() > kIdleKeep) in_.release(kIdleKeep);
    if (x_) give_exchange(std::move(x_));
  }
}

asio::awaitable<H1Connection::HeadResult> H1Connection::read_head(const ListenerRuntime& lr) {
  const snapshot::HttpOptions& opts = lr.listener->http;
  Limits limits;
  limits.max_head_bytes = opts.max_request_headers_bytes;
  limits.max_headers = std::min<size_t>(opts.max_headers, kMaxHeadersCapacity);
  idle_ = in_.empty();
  timer_fired_ = false;
  parking_ = false;
  // Idle: first idle_park_after with the read buffer, then without it (snapshot::HttpOptions).
  const bool no_idle_timeout = opts.idle_timeout.count() <= 0;
  park_armed_ = idle_ && (no_idle_timeout || opts.idle_timeout > opts.idle_park_after);
  idle_rest_ = no_idle_timeout ? Clock::duration::zero()
                               : Clock::duration(opts.idle_timeout - opts.idle_park_after);
  if (!idle_) {
    timer_.arm(opts.request_header_timeout);
  } else if (park_armed_) {
    timer_.arm(opts.idle_park_after);
  } else {
    timer_.arm(opts.idle_timeout);
  }
  scanned_ = 0;
  RequestHead& head = scratch_head();
  for (;;) {
    if (!in_.empty()) {
      // Parse only once the head is complete (or cannot be valid): resuming the search where it
      // stopped keeps a head that arrives byte by byte linear, not quadratic.
      std::string_view v = in_.view();
      const size_t from = scanned_ > 3 ? scanned_ - 3 : 0;
      bool parse =
          v.find("\r\n\r\n", from) != std::string_view::npos || v.size() > limits.max_head_bytes;
      if (!parse) {
        // A bare LF is an error the parser reports at once (no waiting for a CRLFCRLF that will
        // never come); so is a request line that cannot start a request.
        for (size_t i = from; i < v.size() && !parse; ++i) {
          if (v[i] == '\n' && (i == 0 || v[i - 1] != '\r')) parse = true;
        }
        if (scanned_ == 0 && !parse) {
          ParseResult early = parse_request_head(v, head, limits);
          parse = early.status == ParseStatus::kError;
        }
      }
      scanned_ = v.size();
      if (parse) {
        ParseResult r = parse_request_head(v, head, limits);
        if (r.status == ParseStatus::kComplete) break;
        if (r.status == ParseStatus::kError) {
          timer_.cancel();
          idle_ = false;
          w_.row().bad_requests.inc();
          std::string body = "bad request: ";
          body.append(error_text(r.error));
          body.push_back('\n');
          co_await error_reply(error_status(r.error), body);
          co_return HeadResult::kClose;
        }
      }
    }
    if (w_.draining() && in_.empty()) co_return HeadResult::kClose;
    if (parking_) {
      // Parked: no read buffer until bytes arrive (the empty buffer goes back to the worker).
      parking_ = false;
      in_.release(kIdleKeep);
      fwd_cache_.reset();
      asio::error_code wait_ec = co_await t_->wait_readable();
      // Woken while draining: the request that arrived is answered (with "Connection: close");
      // an idle connection the drain closes was cancelled above.
      if (wait_ec || timer_fired_ || !t_->is_open()) co_return HeadResult::kClose;
    }
    auto [buf, cap] = in_.prepare(in_.empty() ? 1 : 1024);
    if (cap == 0) {
      timer_.cancel();
      co_await error_reply(431, "request head too large\n");
      co_return HeadResult::kClose;
    }
    // An idle connection reads into its small buffer; a head larger than it grows the buffer.
    const size_t want = std::min(cap, std::max<size_t>(limits.max_head_bytes + 4 - in_.size(), 1));
    auto [ec, n] = co_await t_->read_some(asio::buffer(buf, want));
    if (parking_ && idle_ && ec == asio::error::operation_aborted && t_->is_open()) continue;
    if (ec || n == 0) {
      if (timer_fired_ && !in_.empty() && !w_.draining()) {
        co_await error_reply(408, "request head timeout\n");
      }
      co_return HeadResult::kClose;
    }
    in_.commit(n);
    if (idle_) {
      idle_ = false;
      park_armed_ = parking_ = false;
      timer_.arm(opts.request_header_timeout);
    }
  }
  timer_.cancel();
  idle_ = false;
  park_armed_ = parking_ = false;
  start_request(head);
  in_.consume(head.head_bytes);
  co_return HeadResult::kRequest;
}

void H1Connection::start_request(const RequestHead& head) {
  RequestHeaders& req = x().req;
  req.clear();
  req.method.assign(head.method);
  req.scheme = t_->info().secure ? "https" : "http";
  req.authority.assign(head.host);
  req.path.assign(head.path);
  req.query.assign(head.query);
  for (size_t i = 0; i < head.header_count; ++i) {
    const Header& h = head.headers[i];
    if (h.hop_by_hop) continue;
    // Framing and Host become fields of the message; the proxy answers Expect itself.
    switch (h.name.size()) {
      case 4:
        if (iequals(h.name, "host")) continue;
        break;
      case 6:
        if (iequals(h.name, "expect")) continue;
        break;
      case 14:
        if (iequals(h.name, "content-length")) continue;
        break;
      default:
        break;
    }
    req.headers.add(h.name, h.value);
  }
  req.has_body = head.body != BodyKind::kNone &&
                 !(head.body == BodyKind::kContentLength && head.content_length == 0);
  if (head.body == BodyKind::kContentLength) req.content_length = head.content_length;
  req.expect_continue = head.expect_continue && req.has_body && head.version_minor == 1;
  req.http_minor = head.version_minor;
  // ---- Upgrade (tunnel mode) ----------------------------------------------------------------
  // A request asking to upgrade (Connection: upgrade and Upgrade) has the protocols it named
  // recorded; the Upgrade and Connection headers themselves are hop-by-hop and dropped. The stream
  // handler decides: a WebSocket upgrade on a route that enables it becomes a tunnel
  // (accept_tunnel); any other is served as a plain request (it clears `upgrade`).
  if (head.connection_upgrade) {
    if (const Header* u = head.find("upgrade")) req.upgrade.assign(u->value);
  }

  keep_alive_ = head.keep_alive;
  http10_ = head.version_minor == 0;
  head_request_ = head.method == "HEAD";
  body_kind_ = head.body;
  body_left_ = head.body == BodyKind::kContentLength ? head.content_length : 0;
  body_done_ = !req.has_body;
  body_error_ = BodyStatus::kEnd;
  x_->dec.reset();
  x_->trailers.clear();
  pending_consume_ = 0;
  stop_reading_ = false;
  continue_sent_ = false;
  response_started_ = false;
  response_done_ = false;
  head_pending_ = false;
  chunked_out_ = false;
  close_after_ = false;
}

std::string_view H1Connection::buffered_body() const {
  if (body_kind_ != BodyKind::kContentLength || body_done_) return {};
  std::string_view v = in_.view().substr(pending_consume_);
  return v.substr(0, static_cast<size_t>(std::min<uint64_t>(v.size(), body_left_)));
}

asio::awaitable<BodyPiece> H1Connection::read_body() {
  in_.consume(pending_consume_);
  pending_consume_ = 0;
  for (;;) {
    if (body_error_ != BodyStatus::kEnd) co_return BodyPiece{body_error_};
    if (body_done_) co_return BodyPiece{BodyStatus::kEnd, {}, trailers()};
    if (stop_reading_ || reset_) co_return BodyPiece{BodyStatus::kAborted};
    if (!in_.empty()) {
      if (body_kind_ == BodyKind::kContentLength) {
        size_t now = static_cast<size_t>(std::min<uint64_t>(body_left_, in_.size()));
        body_left_ -= now;
        pending_consume_ = now;
        if (body_left_ == 0) body_done_ = true;
        co_return BodyPiece{BodyStatus::kData, std::string_view(in_.data(), now)};
      }
      ChunkedDecoder::Step s = x_->dec.feed(in_.view());
      if (s.error != ParseError::kNone) {
        body_error_ = BodyStatus::kMalformed;
        close_after_ = true;
        co_return BodyPiece{body_error_};
      }
      if (s.done) {
        body_done_ = true;
        add_forwardable_trailers(x_->dec.trailers(), x_->trailers);
      }
      if (!s.data.empty()) {
        pending_consume_ = s.consumed;
        co_return BodyPiece{BodyStatus::kData, s.data};
      }
      in_.consume(s.consumed);
      if (body_done_) co_return BodyPiece{BodyStatus::kEnd, {}, trailers()};
      if (s.consumed != 0 && !in_.empty()) continue;
    }
    auto [buf, cap] = in_.prepare(kReadChunk);
    reading_ = true;
    auto [ec, n] = co_await t_->read_some(asio::buffer(buf, cap));
    reading_ = false;
    if (stop_reading_ || reset_) co_return BodyPiece{BodyStatus::kAborted};
    if (ec || n == 0) {
      body_error_ = BodyStatus::kAborted;
      close_after_ = true;
      co_return BodyPiece{body_error_};
    }
    in_.commit(n);
  }
}

asio::awaitable<bool> H1Connection::write(std::span<const asio::const_buffer> bufs) {
  if (reset_) co_return false;
  auto [ec, n] = co_await t_->write(bufs);
  if (ec) {
    reset_ = true;
    co_return false;
  }
  co_return true;
}

asio::awaitable<bool> H1Connection::send_continue() {
  if (!x_->req.expect_continue || continue_sent_ || body_done_ || response_started_) co_return true;
  continue_sent_ = true;
  if (!buffered_body().empty()) co_return true;  // the client did not wait
  static constexpr std::string_view k100 = "HTTP/1.1 100 Continue\r\n\r\n";
  std::array<asio::const_buffer, 1> b{asio::buffer(k100)};
  co_return co_await write(b);
}

asio::awaitable<bool> H1Connection::send_headers(ResponseHeaders& r, bool end_stream) {
  std::string& out = x_->out;
  out.clear();
  out.append("HTTP/1.1 ");
  append_uint(out, static_cast<uint64_t>(r.status));
  out.push_back(' ');
  out.append(r.reason.empty() ? std::string_view(reason_phrase(r.status)) : r.reason);
  out.append("\r\n");
  r.headers.for_each([&](std::string_view n, std::string_view v) { append_header(out, n, v); });
  const bool no_body = r.status == 204 || r.status == 304 || (r.status >= 100 && r.status < 200);
  chunked_out_ = false;
  if (!no_body) {
    if (r.content_length) {
      out.append("Content-Length: ");
      append_uint(out, *r.content_length);
      out.append("\r\n");
    } else if (r.has_body && !head_request_) {
      if (http10_) {
        close_after_ = true;  // an HTTP/1.0 client reads the body until we close
      } else {
        out.append("Transfer-Encoding: chunked\r\n");
        chunked_out_ = true;
      }
    } else if (r.has_body && head_request_ && !http10_) {
      out.append("Transfer-Encoding: chunked\r\n");
    }
  }
  // Keep-alive is off while the overload manager refuses requests (heap over its threshold).
  const bool keep = keep_alive_ && !close_after_ && !w_.draining() && !overload::heap_overloaded();
  if (!keep) {
    out.append("Connection: close\r\n");
    close_after_ = true;
  } else if (http10_) {
    out.append("Connection: keep-alive\r\n");
  }
  out.append("\r\n");
  response_started_ = true;
  if (end_stream) {
    response_done_ = true;
    std::array<asio::const_buffer, 1> b{asio::buffer(out)};
    co_return co_await write(b);
  }
  head_pending_ = true;
  co_return !reset_;
}

asio::awaitable<bool> H1Connection::flush() {
  if (!head_pending_) co_return !reset_;
  head_pending_ = false;
  std::array<asio::const_buffer, 1> b{asio::buffer(x_->out)};
  co_return co_await write(b);
}

asio::awaitable<bool> H1Connection::send_body(std::string_view data, bool end_stream) {
  if (reset_) co_return false;
  if (head_request_) data = {};
  std::string_view head = head_pending_ ? std::string_view(x_->out) : std::string_view();
  head_pending_ = false;
  if (end_stream) response_done_ = true;
  if (chunked_out_) {
    std::string& frame = x_->frame;
    frame.clear();
    if (!data.empty()) {
      append_uint(frame, data.size(), 16);
      frame.append("\r\n");
    }
    std::string_view tail =
        !data.empty() ? (end_stream ? "\r\n0\r\n\r\n" : "\r\n") : (end_stream ? "0\r\n\r\n" : "");
    std::array<asio::const_buffer, 4> b{asio::buffer(head), asio::buffer(frame), asio::buffer(data),
                                        asio::buffer(tail)};
    if (head.empty() && frame.empty() && tail.empty()) co_return true;
    co_return co_await write(b);
  }
  if (head.empty() && data.empty()) co_return true;
  std::array<asio::const_buffer, 2> b{asio::buffer(head), asio::buffer(data)};
  co_return co_await write(b);
}

asio::awaitable<bool> H1Connection::send_trailers(const HeaderMap& trailers) {
  if (reset_) co_return false;
  response_done_ = true;
  if (!chunked_out_ || head_request_) co_return co_await send_body({}, true);
  std::string t = "0\r\n";
  trailers.for_each([&](std::string_view n, std::string_view v) { append_header(t, n, v); });
  t.append("\r\n");
  std::string_view head = head_pending_ ? std::string_view(x_->out) : std::string_view();
  head_pending_ = false;
  std::array<asio::const_buffer, 2> b{asio::buffer(head), asio::buffer(t)};
  co_return co_await write(b);
}

asio::awaitable<bool> H1Connection::accept_tunnel(ResponseHeaders& r) {
  std::string& out = x_->out;
  out.clear();
  out.append("HTTP/1.1 ");
  append_uint(out, static_cast<uint64_t>(r.status));
  out.push_back(' ');
  out.append(r.reason.empty() ? std::string_view(reason_phrase(r.status)) : r.reason);
  out.append("\r\n");
  // No framing fields: a 101 has no body, and a 2xx to CONNECT must not carry any (RFC 9110
  // §9.3.6); what follows the head is the tunnel.
  r.headers.for_each([&](std::string_view n, std::string_view v) {
    if (iequals(n, "content-length") || iequals(n, "transfer-encoding")) return;
    append_header(out, n, v);
  });
  if (r.status == 101) {
    append_header(out, "Connection", "Upgrade");
    append_header(out, "Upgrade", x_->req.upgrade);
  }
  out.append("\r\n");
  response_started_ = true;
  response_done_ = true;
  tunnel_ = true;
  close_after_ = true;
  std::array<asio::const_buffer, 1> b{asio::buffer(out)};
  co_return co_await write(b);
}

asio::awaitable<BodyPiece> H1Connection::read_tunnel() {
  // Bytes the client sent after the request head (already in the buffer) come first.
  in_.consume(pending_consume_);
  pending_consume_ = 0;
  if (stop_reading_ || reset_) co_return BodyPiece{BodyStatus::kAborted};
  if (in_.empty()) {
    auto [buf, cap] = in_.prepare(kReadChunk);
    reading_ = true;
    auto [ec, n] = co_await t_->read_some(asio::buffer(buf, cap));
    reading_ = false;
    if (stop_reading_ || reset_) co_return BodyPiece{BodyStatus::kAborted};
    if (ec == asio::error::eof || (!ec && n == 0)) co_return BodyPiece{BodyStatus::kEnd};
    if (ec) co_return BodyPiece{BodyStatus::kAborted};
    in_.commit(n);
  }
  pending_consume_ = in_.size();
  co_return BodyPiece{BodyStatus::kData, in_.view()};
}

asio::awaitable<bool> H1Connection::write_tunnel(std::string_view data) {
  if (data.empty()) co_return !reset_;
  std::array<asio::const_buffer, 1> b{asio::buffer(data)};
  co_return co_await write(b);
}

asio::awaitable<bool> H1Connection::end_tunnel_write() {
  if (reset_ || !t_->is_open()) co_return false;
  co_return !co_await t_->shutdown_write();
}

bool H1Connection::skip_rest_of_body() {
  // The rest of a Content-Length body already in the buffer is dropped; anything else means the
  // connection cannot carry another request.
  if (body_error_ != BodyStatus::kEnd) return false;
  in_.consume(pending_consume_);
  pending_consume_ = 0;
  if (body_kind_ == BodyKind::kContentLength && body_left_ <= in_.size() &&
      body_left_ <= kSkipBodyBytes) {
    in_.consume(static_cast<size_t>(body_left_));
    body_left_ = 0;
    body_done_ = true;
    return true;
  }
  return false;
}

asio::awaitable<void> H1Connection::error_reply(int status, std::string_view body) {
  if (!t_->is_open()) co_return;
  std::string& out = x().out;
  out.clear();
  out.append("HTTP/1.1 ");
  append_uint(out, static_cast<uint64_t>(status));
  out.push_back(' ');
  out.append(reason_phrase(status));
  out.append("\r\nContent-Type: text/plain\r\nContent-Length: ");
  append_uint(out, body.size());
  out.append("\r\n");
  if (const Runtime* rt = w_.config()->runtime.get()) {
    auto it = rt->listener_by_key.find(key_);
    if (it != rt->listener_by_key.end()) {
      const auto& name = rt->listeners[it->second].listener->http.server_name;
      if (!name.empty()) append_header(out, "Server", name);
    }
  }
  out.append("Connection: close\r\n\r\n");
  std::array<asio::const_buffer, 2> b{asio::buffer(out), asio::buffer(body)};
  timer_fired_ = false;
  timer_.arm(kLingerTime);
  if (co_await write(b)) co_await linger_close();
  timer_.cancel();
}

asio::awaitable<void> H1Connection::linger_close() {
  // Half-close, then drain what the client still sends for a bounded time and amount: closing
  // with unread bytes would send an RST that can destroy the answer before the client reads it.
  if (reset_ || !t_->is_open()) co_return;
  (void)co_await t_->shutdown_write();
  timer_fired_ = false;
  timer_.arm(kLingerTime);
  size_t drained = 0;
  char sink[4096];
  in_.clear();
  while (!timer_fired_ && drained < kLingerBytes) {
    auto [ec, n] = co_await t_->read_some(asio::buffer(sink, sizeof sink));
    if (ec || n == 0) break;
    drained += n;
  }
  timer_.cancel();
}

}  // namespace

asio::awaitable<void> serve_h1(Worker& worker, std::unique_ptr<transport::Transport> transport,
                               std::string listener_key) {
  auto conn = std::make_unique<H1Connection>(worker, std::move(transport), std::move(listener_key));
  co_await conn->run();
}

}  // namespace portico::proxy::http
