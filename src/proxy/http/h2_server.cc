#include "proxy/http/h2_server.h"

#include <nghttp2/nghttp2.h>

#include <asio/experimental/as_tuple.hpp>

#include <cstring>
#include <iterator>
#include <optional>
#include <unordered_map>
#include <vector>

#include "proxy/http/codec.h"
#include "proxy/http/h2_fields.h"
#include "proxy/http/stream.h"
#include "proxy/http/upgrade.h"
#include "proxy/overload/overload.h"
#include "proxy/signal.h"
#include "proxy/worker.h"

namespace portico::proxy::http {

namespace {

constexpr auto use_nothrow = asio::experimental::as_tuple(asio::use_awaitable);

// Bytes read from the transport per read, and written per write at most.
constexpr size_t kReadChunk = 16384;
constexpr size_t kWriteChunk = 65536;
// After the last frame (GOAWAY), how long what the client still sends is read and dropped.
constexpr auto kLinger = std::chrono::seconds(2);

// Flood defences: counts per connection over a window; a peer over a budget gets
// GOAWAY(ENHANCE_YOUR_CALM). Generous for real clients (browsers, gRPC keepalive and BDP pings,
// curl), far below what an attack needs to cost anything.
constexpr auto kFloodWindow = std::chrono::seconds(10);
constexpr uint32_t kMaxResets = 200;     // client RST_STREAM (rapid reset, CVE-2023-44487)
constexpr uint32_t kMaxPings = 200;      // PING without ACK
constexpr uint32_t kMaxSettings = 100;   // SETTINGS without ACK
constexpr uint32_t kMaxEmptyData = 100;  // DATA without payload nor END_STREAM
// PRIORITY: this many plus kPriorityPerStream per stream opened in the window.
constexpr uint32_t kMaxPriority = 1000;
constexpr uint32_t kPriorityPerStream = 100;
// WINDOW_UPDATE: this many plus kWindowUpdatesPerData per DATA frame sent in the window.
constexpr uint32_t kMaxWindowUpdates = 1000;
constexpr uint32_t kWindowUpdatesPerData = 10;
// CONTINUATION frames after one HEADERS (nghttp2 enforces the same: NGHTTP2_ERR_TOO_MANY_...).
constexpr size_t kMaxContinuations = 8;
// A response's last piece up to this size is copied by the stream (see H2Stream::send_body).
constexpr size_t kOwnedTail = 16384;

class H2Connection;

// The containers a stream fills. When a stream ends its connection keeps them (cleared, capacity
// kept) for the next stream, so a busy connection allocates no header or body storage per stream;
// a parked (idle) connection drops them.
struct H2Scratch {
  RequestHeaders req;
  StreamBuffers bufs;
  HeaderMap trailers;
  std::string in, out, ws_key, local_body;
  H2Fields fields;

  void clear() {
    req.clear();
    bufs.response.clear();
    bufs.release_if_larger(kKeep);
    trailers.clear();
    trailers.release_if_larger(kKeep);
    req.headers.release_if_larger(kKeep);
    in.clear();
    out.clear();
    ws_key.clear();
    local_body.clear();
    fields.clear();
    if (in.capacity() > kKeep) std::string().swap(in);
    if (out.capacity() > kKeep) std::string().swap(out);
    if (local_body.capacity() > kKeep) std::string().swap(local_body);
  }
  // A kept stream holds at most about this much per container.
  static constexpr size_t kKeep = 4096;
};

class H2Stream final : public ServerStream {
 public:
  H2Stream(H2Connection& c, int32_t id, std::unique_ptr<H2Scratch> scratch);

  // ServerStream.
  uint32_t id() const override { return static_cast<uint32_t>(id_); }
  RequestHeaders& request() override { return req_; }
  const transport::ConnectionInfo& connection() const override;
  ForwardingCache* forwarding_cache() override;
  asio::awaitable<BodyPiece> read_body() override;
  std::string_view buffered_body() const override {
    return out_.empty() ? std::string_view(in_) : std::string_view();
  }
  bool request_complete() const override { return remote_closed_ && in_.empty(); }
  asio::awaitable<bool> send_continue() override;
  asio::awaitable<bool> send_headers(ResponseHeaders& headers, bool end_stream) override;
  asio::awaitable<bool> flush() override { co_return usable(); }
  asio::awaitable<bool> send_body(std::string_view data, bool end_stream) override;
  asio::awaitable<bool> send_trailers(const HeaderMap& trailers) override;
  bool response_started() const override { return response_started_; }
  void stop_reading() override {
    stop_reading_ = true;
    read_ev_.notify();
  }
  void reset() override;
  void close_after() override {}  // one stream does not decide for the connection

  // Tunnel mode: an extended CONNECT (RFC 8441, translated into a WebSocket handshake by the
  // codec) or a CONNECT. The accepting head is :status 200, the bytes are DATA frames under the
  // stream's flow control both ways, the end of a direction is END_STREAM, an abort RST_STREAM.
  asio::awaitable<bool> accept_tunnel(ResponseHeaders& headers) override;
  asio::awaitable<BodyPiece> read_tunnel() override;
  asio::awaitable<bool> write_tunnel(std::string_view data) override;
  asio::awaitable<bool> end_tunnel_write() override;

 private:
  friend class H2Connection;
  bool usable() const;
  // Waits until the data provider took everything given to it (send_view_, and the end).
  asio::awaitable<bool> wait_taken();
  static ssize_t read_data(nghttp2_session* session, int32_t stream_id, uint8_t* buf, size_t length,
                           uint32_t* flags, nghttp2_data_source* source, void* user_data);

  H2Connection& c_;
  int32_t id_;
  std::unique_ptr<H2Scratch> scratch_;  // never null while the stream lives
  RequestHeaders& req_ = scratch_->req;
  StreamBuffers& bufs_ = scratch_->bufs;
  HeaderMap& trailers_ = scratch_->trailers;
  bool has_trailers_ = false;
  // Request body: received bytes not yet handed out, and the piece the handler holds (valid until
  // its next read_body, which gives its flow-control credit back).
  std::string& in_ = scratch_->in;
  std::string& out_ = scratch_->out;
  bool remote_closed_ = false;  // END_STREAM received
  bool stop_reading_ = false;
  bool continue_sent_ = false;
  bool head_request_ = false;
  // The Sec-WebSocket-Key the codec put into a translated extended CONNECT (empty otherwise): the
  // upstream's 101 must answer it.
  std::string& ws_key_ = scratch_->ws_key;
  bool tunnel_ = false;  // accepted as a tunnel
  Signal read_ev_;
  // Response.
  H2Fields& fields_ = scratch_->fields;
  std::string_view send_view_;  // what send_body gave, not yet taken by the data provider
  bool send_end_ = false;
  bool send_trailers_ = false;  // the end carries fields_ as trailers
  bool response_started_ = false;
  bool body_done_ = false;  // END_STREAM (or the trailers) queued: nothing more to send
  bool owns_tail_ = false;  // the rest of the body is the stream's copy (handler may be gone)
  bool end_sent_ = false;   // ... and written into a frame
  bool rst_after_end_ = false;
  std::string& local_body_ = scratch_->local_body;  // a codec-level reply's body
  Signal send_ev_;
  // Life.
  bool closed_ = false;   // nghttp2 closed the stream (or the connection ended)
  bool aborted_ = false;  // ... before the request was complete, or with an error
  bool reset_ = false;    // we reset it
  bool spawned_ = false;  // a handler coroutine was started for it
  bool handler_done_ = false;
  StreamHandler* handler_ = nullptr;
};

class H2Connection final : public DownstreamConnection {
 public:
  H2Connection(Worker& w, std::unique_ptr<transport::Transport> t, std::string key)
      : w_(w),
        t_(std::move(t)),
        info_(t_->info()),
        key_(std::move(key)),
        write_ev_(w.io()),
        done_ev_(w.io()),
        idle_timer_(w.timers(), [this] { on_idle(); }),
        linger_timer_(w.timers(), [this] { t_->close(); }),
        park_timer_(w.timers(), [this] { park(); }) {
    info_.http2 = true;
  }
  ~H2Connection() override {
    if (session_) nghttp2_session_del(session_);
  }

  asio::awaitable<void> run(std::string initial);

  // DownstreamConnection. For HTTP/2, "closing when idle" is a graceful GOAWAY: the streams in
  // flight finish, no new one starts, and the connection closes when the last one ends. So the
  // worker's drain and listener removal (which close idle connections) reach every HTTP/2
  // connection: each reports itself idle.
  std::string_view listener() const override { return key_; }
  bool idle() const override { return true; }
  void close_idle() override { go_away(); }
  void abort() override {
    fail_all();
    t_->close();
  }

 private:
  friend class H2Stream;

  struct Window {
    Clock::time_point start{};
    uint32_t resets = 0, pings = 0, settings = 0, empty_data = 0, priority = 0, window_updates = 0;
    uint32_t streams = 0, data_sent = 0;
  };

  bool setup(const snapshot::HttpOptions& opts);
  void recv(const uint8_t* data, size_t n);
  asio::awaitable<void> writer();
  asio::awaitable<void> run_stream(H2Stream* s, std::shared_ptr<WorkerConfig> cfg,
                                   const ListenerRuntime* lr);
  void start_stream(H2Stream* s);
  void end_stream(H2Stream* s);
  void erase(H2Stream* s);
  void reply(H2Stream* s, int status, std::string_view body);
  void go_away();
  // No stream for idleTimeout: GOAWAY. Still open one idleTimeout later (a header block that
  // never ends keeps nghttp2's stream open): closed.
  void on_idle() {
    if (going_away_) {
      if (active_ <= 1) abort();  // only the writer runs: no handler has anything in flight
      return;
    }
    go_away();
    idle_timer_.arm(idle_timeout_);
  }
  void fail_all();
  // An idle connection (no stream for idle_park_after) cancels its read and waits for
  // readability without a read buffer (as HTTP/1.1's do): 16 KiB less per idle connection.
  void park() {
    if (!streams_.empty() || dead_ || parking_) return;
    if (writing_) {
      park_timer_.arm(park_after_);  // never cancel a write in progress: later
      return;
    }
    parking_ = true;
    spare_.clear();
    std::string().swap(wbuf_);  // the writer waits for news (not writing): it refills it
    t_->cancel();
  }
  void kick() { write_ev_.notify(); }
  void calm_down(stats::Counter& counter);
  Window& window();

  static int on_begin_frame(nghttp2_session*, const nghttp2_frame_hd* hd, void* user);
  static int on_begin_headers(nghttp2_session*, const nghttp2_frame* frame, void* user);
  static int on_header(nghttp2_session*, const nghttp2_frame* frame, const uint8_t* name,
                       size_t namelen, const uint8_t* value, size_t valuelen, uint8_t flags,
                       void* user);
  static int on_invalid_header(nghttp2_session*, const nghttp2_frame* frame, const uint8_t* name,
                               size_t namelen, const uint8_t* value, size_t valuelen, uint8_t flags,
                               void* user);
  static int on_frame_recv(nghttp2_session*, const nghttp2_frame* frame, void* user);
  static int on_data_chunk(nghttp2_session*, uint8_t flags, int32_t stream_id, const uint8_t* data,
                           size_t len, void* user);
  static int on_stream_close(nghttp2_session*, int32_t stream_id, uint32_t error_code, void* user);
  static int on_frame_send(nghttp2_session*, const nghttp2_frame* frame, void* user);

  H2Stream* stream(int32_t id) {
    return static_cast<H2Stream*>(nghttp2_session_get_stream_user_data(session_, id));
  }

  Worker& w_;
  std::unique_ptr<transport::Transport> t_;
  // The transport's, marked HTTP/2 (also in cleartext, where no ALPN says so).
  transport::ConnectionInfo info_;
  std::unique_ptr<ForwardingCache> fwd_cache_;  // the streams' (H2Stream::forwarding_cache)
  std::string key_;
  nghttp2_session* session_ = nullptr;
  std::unordered_map<int32_t, std::unique_ptr<H2Stream>> streams_;
  // Scratch of ended streams, for the next ones (at most max_streams_; dropped when parking).
  std::vector<std::unique_ptr<H2Scratch>> spare_;
  H2RequestBuilder builder_;
  size_t max_header_bytes_ = 0;
  size_t max_headers_ = 0;
  uint32_t max_streams_ = 100;
  Clock::duration idle_timeout_{};
  std::vector<nghttp2_nv> nva_;
  std::string wbuf_;
  std::vector<uint8_t> rbuf_;
  Signal write_ev_;
  Signal done_ev_;
  Timer idle_timer_;
  Timer linger_timer_;
  Timer park_timer_;  // no stream for idle_park_after: the read gives its buffer back
  Clock::duration park_after_{};
  bool writing_ = false;
  bool parking_ = false;
  Window window_;
  size_t continuations_ = 0;
  size_t active_ = 0;  // stream coroutines running
  bool writer_done_ = false;
  bool dead_ = false;        // no more I/O: the transport failed or the connection is ending now
  bool going_away_ = false;  // GOAWAY sent: no new stream
  bool calm_ = false;        // a flood was detected while nghttp2 was parsing
  stats::Counter* calm_counter_ = nullptr;
};

// ---- H2Stream ---------------------------------------------------------------------------------

H2Stream::H2Stream(H2Connection& c, int32_t id, std::unique_ptr<H2Scratch> scratch)
    : c_(c), id_(id), scratch_(std::move(scratch)), read_ev_(c.w_.io()), send_ev_(c.w_.io()) {}

const transport::ConnectionInfo& H2Stream::connection() const {
  return c_.info_;
}

ForwardingCache* H2Stream::forwarding_cache() {
  if (!c_.fwd_cache_) c_.fwd_cache_ = std::make_unique<ForwardingCache>();
  return c_.fwd_cache_.get();
}

bool H2Stream::usable() const {
  return !closed_ && !reset_ && !c_.dead_;
}

asio::awaitable<BodyPiece> H2Stream::read_body() {
  if (!out_.empty()) {
    // The piece handed out last time is consumed: its credit goes back to the peer.
    if (!c_.dead_) {
      nghttp2_session_consume(c_.session_, id_, out_.size());
      c_.kick();
    }
    out_.clear();
  }
  for (;;) {
    if (aborted_ || reset_ || c_.dead_ || stop_reading_) co_return BodyPiece{BodyStatus::kAborted};
    if (!in_.empty()) {
      out_.swap(in_);
      co_return BodyPiece{BodyStatus::kData, out_};
    }
    if (remote_closed_) {
      co_return BodyPiece{BodyStatus::kEnd, {}, has_trailers_ ? &trailers_ : nullptr};
    }
    if (closed_) co_return BodyPiece{BodyStatus::kAborted};
    co_await read_ev_.wait();
  }
}

asio::awaitable<bool> H2Stream::send_continue() {
  if (!req_.expect_continue || continue_sent_ || remote_closed_ || response_started_ ||
      !in_.empty() || !out_.empty()) {
    co_return usable();
  }
  continue_sent_ = true;
  if (!usable()) co_return false;
  static constexpr char kStatus[] = ":status";
  static constexpr char k100[] = "100";
  nghttp2_nv nv{reinterpret_cast<uint8_t*>(const_cast<char*>(kStatus)),
                reinterpret_cast<uint8_t*>(const_cast<char*>(k100)), 7, 3, NGHTTP2_NV_FLAG_NONE};
  const int rv =
      nghttp2_submit_headers(c_.session_, NGHTTP2_FLAG_NONE, id_, nullptr, &nv, 1, nullptr);
  c_.kick();
  co_return rv == 0;
}

asio::awaitable<bool> H2Stream::send_headers(ResponseHeaders& r, bool end_stream) {
  if (!usable() || response_started_) co_return false;
  const bool no_body = head_request_ || r.status == 204 || r.status == 304;
  if (no_body) end_stream = true;
  encode_response(r, fields_);
  auto& nva = c_.nva_;
  nva.clear();
  for (const auto& f : fields_.fields) {
    nva.push_back({reinterpret_cast<uint8_t*>(const_cast<char*>(f.name.data())),
                   reinterpret_cast<uint8_t*>(const_cast<char*>(f.value.data())), f.name.size(),
                   f.value.size(), NGHTTP2_NV_FLAG_NONE});
  }
  nghttp2_data_provider provider{};
  provider.source.ptr = this;
  provider.read_callback = &H2Stream::read_data;
  const int rv = nghttp2_submit_response(c_.session_, id_, nva.data(), nva.size(),
                                         end_stream ? nullptr : &provider);
  response_started_ = true;
  if (end_stream) body_done_ = true;
  c_.kick();
  co_return rv == 0;
}

asio::awaitable<bool> H2Stream::wait_taken() {
  nghttp2_session_resume_data(c_.session_, id_);
  c_.kick();
  while (!send_view_.empty() || (send_end_ && !body_done_)) {
    if (!usable()) {
      send_view_ = {};
      co_return false;
    }
    co_await send_ev_.wait();
  }
  co_return true;
}

asio::awaitable<bool> H2Stream::send_body(std::string_view data, bool end_stream) {
  if (body_done_) co_return usable() || end_sent_;  // HEAD, 204, 304: the body is dropped
  if (!usable() || !response_started_) co_return false;
  if (end_stream && data.size() <= kOwnedTail) {
    // The last piece of a response, and small: the stream keeps a copy, and the handler is done
    // at once instead of waiting for the connection's writer to take it. The stream lives until
    // its end is written (or it is reset).
    local_body_.assign(data);
    send_view_ = local_body_;
    send_end_ = true;
    owns_tail_ = true;
    nghttp2_session_resume_data(c_.session_, id_);
    c_.kick();
    co_return true;
  }
  send_view_ = data;
  send_end_ = end_stream;
  co_return co_await wait_taken();
}

asio::awaitable<bool> H2Stream::send_trailers(const HeaderMap& trailers) {
  if (body_done_) co_return usable() || end_sent_;
  if (!usable() || !response_started_) co_return false;
  encode_trailers(trailers, fields_);
  send_view_ = {};
  send_end_ = true;
  send_trailers_ = !fields_.fields.empty();
  co_return co_await wait_taken();
}

ssize_t H2Stream::read_data(nghttp2_session* session, int32_t, uint8_t* buf, size_t length,
                            uint32_t* flags, nghttp2_data_source* source, void*) {
  auto* s = static_cast<H2Stream*>(source->ptr);
  const size_t n = std::min(length, s->send_view_.size());
  if (n) std::memcpy(buf, s->send_view_.data(), n);
  s->send_view_.remove_prefix(n);
  if (!s->send_view_.empty()) return static_cast<ssize_t>(n);
  if (s->send_end_) {
    *flags |= NGHTTP2_DATA_FLAG_EOF;
    if (s->send_trailers_) {
      auto& nva = s->c_.nva_;
      nva.clear();
      for (const auto& f : s->fields_.fields) {
        nva.push_back({reinterpret_cast<uint8_t*>(const_cast<char*>(f.name.data())),
                       reinterpret_cast<uint8_t*>(const_cast<char*>(f.value.data())), f.name.size(),
                       f.value.size(), NGHTTP2_NV_FLAG_NONE});
      }
      if (nghttp2_submit_trailer(session, s->id_, nva.data(), nva.size()) == 0) {
        *flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM;
      }
    }
    s->body_done_ = true;
  } else if (n == 0) {
    s->send_ev_.notify();
    return NGHTTP2_ERR_DEFERRED;
  }
  s->send_ev_.notify();
  return static_cast<ssize_t>(n);
}

asio::awaitable<bool> H2Stream::accept_tunnel(ResponseHeaders& r) {
  if (!usable() || response_started_) co_return false;
  if (!ws_key_.empty()) {
    // The upstream leg was an HTTP/1.1 WebSocket handshake with our key: Portico is its client,
    // and a client fails a 101 that does not prove it read the key (RFC 6455 §4.1). The HTTP/2
    // client never sees the key nor the accept (RFC 8441 §5): it hears 200.
    const std::optional<std::string_view> accept = r.headers.get("sec-websocket-accept");
    if (r.status != 101 || !accept || *accept != websocket_accept(ws_key_)) {
      c_.w_.row().upgrades_refused[static_cast<size_t>(UpgradeRefusal::kUpstreamDeclined)].inc();
      r.clear();
      r.status = 502;
      r.content_length = 0;
      (void)co_await send_headers(r, true);
      co_return false;
    }
    r.headers.remove("sec-websocket-accept");
    r.status = 200;
  } else if (r.status < 200 || r.status > 299) {
    co_return false;
  }
  r.reason.clear();
  r.content_length.reset();
  tunnel_ = true;
  co_return co_await send_headers(r, false);
}

asio::awaitable<BodyPiece> H2Stream::read_tunnel() {
  if (!tunnel_) co_return BodyPiece{BodyStatus::kAborted};
  BodyPiece p = co_await read_body();
  p.trailers = nullptr;  // fields after a tunnel's DATA only end the client's direction
  co_return p;
}

asio::awaitable<bool> H2Stream::write_tunnel(std::string_view data) {
  if (!tunnel_ || body_done_ || !usable()) co_return false;
  if (data.empty()) co_return true;
  send_view_ = data;
  send_end_ = false;
  co_return co_await wait_taken();
}

asio::awaitable<bool> H2Stream::end_tunnel_write() {
  if (!tunnel_) co_return false;
  if (body_done_) co_return usable() || end_sent_;
  if (!usable()) co_return false;
  send_view_ = {};
  send_end_ = true;
  send_trailers_ = false;
  co_return co_await wait_taken();
}

void H2Stream::reset() {
  if (reset_) return;
  reset_ = true;
  if (!closed_ && !c_.dead_) {
    // A tunnel's broken upstream connection is CONNECT_ERROR (RFC 9113 §8.5).
    nghttp2_submit_rst_stream(c_.session_, NGHTTP2_FLAG_NONE, id_,
                              tunnel_ ? NGHTTP2_CONNECT_ERROR : NGHTTP2_INTERNAL_ERROR);
    c_.kick();
  }
  read_ev_.notify();
  send_ev_.notify();
}

// ---- H2Connection -----------------------------------------------------------------------------

bool H2Connection::setup(const snapshot::HttpOptions& opts) {
  const snapshot::Http2Options& h2 = opts.http2;
  max_header_bytes_ = opts.max_request_headers_bytes;
  max_headers_ = opts.max_headers;
  max_streams_ = h2.max_concurrent_streams;
  idle_timeout_ = opts.idle_timeout;
  park_after_ = opts.idle_park_after;

  nghttp2_session_callbacks* cb = nullptr;
  if (nghttp2_session_callbacks_new(&cb) != 0) return false;
  nghttp2_session_callbacks_set_on_begin_frame_callback(cb, &on_begin_frame);
  nghttp2_session_callbacks_set_on_begin_headers_callback(cb, &on_begin_headers);
  nghttp2_session_callbacks_set_on_header_callback(cb, &on_header);
  nghttp2_session_callbacks_set_on_invalid_header_callback(cb, &on_invalid_header);
  nghttp2_session_callbacks_set_on_frame_recv_callback(cb, &on_frame_recv);
  nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, &on_data_chunk);
  nghttp2_session_callbacks_set_on_stream_close_callback(cb, &on_stream_close);
  nghttp2_session_callbacks_set_on_frame_send_callback(cb, &on_frame_send);
  nghttp2_option* opt = nullptr;
  if (nghttp2_option_new(&opt) != 0) {
    nghttp2_session_callbacks_del(cb);
    return false;
  }
  nghttp2_option_set_no_auto_window_update(opt, 1);
  nghttp2_option_set_no_closed_streams(opt, 1);
  nghttp2_option_set_max_continuations(opt, kMaxContinuations);
  const int rv = nghttp2_session_server_new2(&session_, cb, this, opt);
  nghttp2_option_del(opt);
  nghttp2_session_callbacks_del(cb);
  if (rv != 0) {
    session_ = nullptr;
    return false;
  }
  nghttp2_settings_entry settings[] = {
      {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, h2.max_concurrent_streams},
      {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, h2.initial_stream_window},
      {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, opts.max_request_headers_bytes},
      // RFC 8441: WebSocket over HTTP/2. Always offered (a connection may not withdraw it, and
      // the routes behind a listener change with every configuration): a route that does not
      // enable websocket refuses the stream (403).
      {NGHTTP2_SETTINGS_ENABLE_CONNECT_PROTOCOL, 1},
  };
  if (nghttp2_submit_settings(session_, NGHTTP2_FLAG_NONE, settings, std::size(settings)) != 0)
    return false;
  if (h2.initial_connection_window > NGHTTP2_INITIAL_CONNECTION_WINDOW_SIZE) {
    nghttp2_session_set_local_window_size(session_, NGHTTP2_FLAG_NONE, 0,
                                          static_cast<int32_t>(h2.initial_connection_window));
  }
  return true;
}

asio::awaitable<void> H2Connection::run(std::string initial) {
  w_.add_connection(this);
  w_.row().downstream_cx_total.inc();
  w_.row().downstream_cx_active.inc();
  w_.row().h2_connections.inc();
  struct Cleanup {
    H2Connection& c;
    ~Cleanup() {
      c.t_->close();
      c.w_.row().downstream_cx_active.dec();
      c.w_.release(c.key_);
      c.w_.remove_connection(&c);
    }
  } cleanup{*this};

  {
    const Runtime* rt = w_.config()->runtime.get();
    if (!rt) co_return;
    auto lit = rt->listener_by_key.find(key_);
    if (lit == rt->listener_by_key.end()) co_return;
    if (!setup(rt->listeners[lit->second].listener->http)) co_return;
  }
  if (idle_timeout_.count() > 0) idle_timer_.arm(idle_timeout_);
  park_timer_.arm(park_after_);
  ++active_;  // the writer
  asio::co_spawn(w_.io(), writer(), asio::detached);
  if (w_.draining()) go_away();

  if (!initial.empty()) recv(reinterpret_cast<const uint8_t*>(initial.data()), initial.size());
  rbuf_.resize(kReadChunk);
  while (!dead_) {
    auto [ec, n] = co_await t_->read_some(asio::buffer(rbuf_.data(), rbuf_.size()));
    if (parking_) {
      parking_ = false;
      if (ec == asio::error::operation_aborted && !dead_ && t_->is_open()) {
        std::vector<uint8_t>().swap(rbuf_);
        fwd_cache_.reset();
        asio::error_code wait_ec = co_await t_->wait_readable();
        if (wait_ec || dead_ || !t_->is_open()) break;
        rbuf_.resize(kReadChunk);
        continue;
      }
    }
    if (ec || n == 0) break;
    // After a GOAWAY whose streams are done (or a terminated session), what the client still
    // sends is read and dropped until it closes (lingering: closing with unread bytes would
    // reset the connection and could destroy the GOAWAY before the client reads it).
    if (writer_done_ || !nghttp2_session_want_read(session_)) continue;
    recv(rbuf_.data(), n);
  }
  fail_all();
  t_->close();
  kick();
  while (active_ > 0)
    co_await done_ev_.wait();
  streams_.clear();
}

void H2Connection::recv(const uint8_t* data, size_t n) {
  if (dead_) return;
  const ssize_t rv = nghttp2_session_mem_recv(session_, data, n);
  if (rv < 0) {
    auto& row = w_.row();
    if (rv == NGHTTP2_ERR_FLOODED) {
      row.h2_flood[static_cast<size_t>(stats::H2Flood::kOutboundAck)].inc();
    } else if (rv == NGHTTP2_ERR_TOO_MANY_CONTINUATIONS) {
      row.h2_flood[static_cast<size_t>(stats::H2Flood::kContinuation)].inc();
    } else if (rv != NGHTTP2_ERR_CALLBACK_FAILURE) {
      row.h2_protocol_errors.inc();
    }
    const uint32_t code = rv == NGHTTP2_ERR_FLOODED || rv == NGHTTP2_ERR_TOO_MANY_CONTINUATIONS
                              ? NGHTTP2_ENHANCE_YOUR_CALM
                              : NGHTTP2_PROTOCOL_ERROR;
    nghttp2_session_terminate_session(session_, code);
    going_away_ = true;
  } else if (calm_) {
    calm_ = false;
    nghttp2_session_terminate_session(session_, NGHTTP2_ENHANCE_YOUR_CALM);
    going_away_ = true;
  }
  kick();
}

asio::awaitable<void> H2Connection::writer() {
  bool graceful = false;
  for (;;) {
    if (dead_) break;
    wbuf_.clear();
    while (wbuf_.size() < kWriteChunk) {
      const uint8_t* d = nullptr;
      const ssize_t n = nghttp2_session_mem_send(session_, &d);
      if (n < 0) {
        dead_ = true;
        break;
      }
      if (n == 0) break;
      wbuf_.append(reinterpret_cast<const char*>(d), static_cast<size_t>(n));
    }
    if (dead_) break;
    if (!wbuf_.empty()) {
      std::array<asio::const_buffer, 1> b{asio::buffer(wbuf_)};
      writing_ = true;
      auto [ec, n] = co_await t_->write_batched(b);
      writing_ = false;
      if (ec) {
        dead_ = true;
        break;
      }
      continue;
    }
    if (!nghttp2_session_want_read(session_) && !nghttp2_session_want_write(session_)) {
      graceful = true;
      break;
    }
    co_await write_ev_.wait();
  }
  if (wbuf_.capacity() > kWriteChunk) std::string().swap(wbuf_);
  writer_done_ = true;
  if (graceful && !dead_) {
    // Half-close; the reader drops what still comes until the client closes or kLinger passes.
    (void)co_await t_->shutdown_write();
    linger_timer_.arm(kLinger);
  } else {
    dead_ = true;
    t_->close();  // ends the reader
  }
  --active_;
  done_ev_.notify();
}

void H2Connection::go_away() {
  if (going_away_ || dead_ || !session_) return;
  going_away_ = true;
  idle_timer_.cancel();
  nghttp2_submit_goaway(session_, NGHTTP2_FLAG_NONE,
                        nghttp2_session_get_last_proc_stream_id(session_), NGHTTP2_NO_ERROR,
                        nullptr, 0);
  kick();
}

void H2Connection::fail_all() {
  dead_ = true;
  idle_timer_.cancel();
  park_timer_.cancel();
  for (auto& [id, s] : streams_) {
    if (!s->closed_) {
      s->closed_ = true;
      if (!s->body_done_ || !s->remote_closed_) s->aborted_ = true;
    }
    s->read_ev_.notify();
    s->send_ev_.notify();
    if (s->handler_ && !s->end_sent_) s->handler_->abort();
  }
  kick();
  done_ev_.notify();
}

void H2Connection::calm_down(stats::Counter& counter) {
  if (calm_) return;
  counter.inc();
  calm_ = true;
}

H2Connection::Window& H2Connection::window() {
  const auto now = Clock::now();
  if (now - window_.start > kFloodWindow) {
    window_ = Window{};
    window_.start = now;
  }
  return window_;
}

void H2Connection::start_stream(H2Stream* s) {
  std::shared_ptr<WorkerConfig> cfg = w_.config();
  const Runtime* rt = cfg->runtime.get();
  const ListenerRuntime* lr = nullptr;
  if (rt) {
    auto lit = rt->listener_by_key.find(key_);
    if (lit != rt->listener_by_key.end()) lr = &rt->listeners[lit->second];
  }
  if (!lr) {
    // The listener was removed: this stream is refused (the client may retry it elsewhere).
    nghttp2_submit_rst_stream(session_, NGHTTP2_FLAG_NONE, s->id_, NGHTTP2_REFUSED_STREAM);
    go_away();
    return;
  }
  // While the overload manager refuses requests (this one gets its 503 from the stream handler),
  // the client is told to open no new stream here: HTTP/2's Connection: close.
  if (overload::heap_overloaded()) [[unlikely]]
    go_away();
  s->spawned_ = true;
  s->head_request_ = s->req_.method == "HEAD";
  ++active_;
  idle_timer_.cancel();
  park_timer_.cancel();
  asio::co_spawn(w_.io(), run_stream(s, std::move(cfg), lr), asio::detached);
}

asio::awaitable<void> H2Connection::run_stream(H2Stream* s, std::shared_ptr<WorkerConfig> cfg,
                                               const ListenerRuntime* lr) {
  // A stream reset before its handler started (rapid reset) never reaches the router, so it is
  // never sent upstream. Two yields first: bytes already in the socket (an RST_STREAM that
  // followed the HEADERS in another segment) are read and processed before the handler starts
  // (asio runs the reactor between queued handlers, and the read completes after the first).
  co_await asio::post(w_.io(), asio::use_awaitable);
  co_await asio::post(w_.io(), asio::use_awaitable);
  if (!s->closed_ && !dead_) {
    StreamHandler handler(w_, cfg, *lr, *s, s->bufs_);
    s->handler_ = &handler;
    co_await handler.run();
    s->handler_ = nullptr;
  }
  cfg.reset();
  end_stream(s);
  --active_;
  done_ev_.notify();
}

void H2Connection::end_stream(H2Stream* s) {
  s->handler_done_ = true;
  // Request body bytes never read give their flow-control credit back to the connection.
  const size_t unread = s->in_.size() + s->out_.size();
  s->in_.clear();
  s->out_.clear();
  if (!dead_) {
    if (unread) nghttp2_session_consume(session_, s->id_, unread);
    if (!s->closed_) {
      if (!s->body_done_ && !s->owns_tail_) {
        s->reset();  // the handler ended without a complete response
      } else if (!s->remote_closed_) {
        // Answered before the request was complete (RFC 9113 §8.1): once the response is out,
        // RST_STREAM(NO_ERROR) tells the client to stop sending.
        if (s->end_sent_) {
          nghttp2_submit_rst_stream(session_, NGHTTP2_FLAG_NONE, s->id_, NGHTTP2_NO_ERROR);
        } else {
          s->rst_after_end_ = true;
        }
      }
    }
    kick();
  }
  if (s->closed_) erase(s);
}

void H2Connection::erase(H2Stream* s) {
  if (!dead_ && session_) nghttp2_session_set_stream_user_data(session_, s->id_, nullptr);
  if (!dead_ && spare_.size() < max_streams_) {
    s->scratch_->clear();
    spare_.push_back(std::move(s->scratch_));  // s is destroyed next: nothing uses it any more
  }
  streams_.erase(s->id_);
  if (streams_.empty() && !dead_) {
    if (!going_away_ && idle_timeout_.count() > 0) idle_timer_.arm(idle_timeout_);
    park_timer_.arm(park_after_);
  }
}

void H2Connection::reply(H2Stream* s, int status, std::string_view body) {
  // A codec-level answer (no handler): the head and a short body, then the stream ends.
  ResponseHeaders r;
  r.status = status;
  r.headers.add("content-type", "text/plain");
  r.content_length = body.size();
  encode_response(r, s->fields_);
  nva_.clear();
  for (const auto& f : s->fields_.fields) {
    nva_.push_back({reinterpret_cast<uint8_t*>(const_cast<char*>(f.name.data())),
                    reinterpret_cast<uint8_t*>(const_cast<char*>(f.value.data())), f.name.size(),
                    f.value.size(), NGHTTP2_NV_FLAG_NONE});
  }
  s->local_body_.assign(body);
  s->send_view_ = s->local_body_;
  s->send_end_ = true;
  s->response_started_ = true;
  s->handler_done_ = true;
  s->rst_after_end_ = !s->remote_closed_;
  nghttp2_data_provider provider{};
  provider.source.ptr = s;
  provider.read_callback = &H2Stream::read_data;
  nghttp2_submit_response(session_, s->id_, nva_.data(), nva_.size(), &provider);
}

// ---- nghttp2 callbacks ------------------------------------------------------------------------

int H2Connection::on_begin_frame(nghttp2_session*, const nghttp2_frame_hd* hd, void* user) {
  auto* c = static_cast<H2Connection*>(user);
  auto& row = c->w_.row();
  auto flood = [&](stats::H2Flood kind) -> stats::Counter& {
    return row.h2_flood[static_cast<size_t>(kind)];
  };
  switch (hd->type) {
    case NGHTTP2_HEADERS:
      c->continuations_ = 0;
      break;
    case NGHTTP2_CONTINUATION:
      if (++c->continuations_ > kMaxContinuations)
        c->calm_down(flood(stats::H2Flood::kContinuation));
      break;
    case NGHTTP2_DATA:
      if (hd->length == 0 && !(hd->flags & NGHTTP2_FLAG_END_STREAM) &&
          ++c->window().empty_data > kMaxEmptyData) {
        c->calm_down(flood(stats::H2Flood::kEmptyData));
      }
      break;
    case NGHTTP2_RST_STREAM:
      row.h2_resets_received.inc();
      if (++c->window().resets > kMaxResets) c->calm_down(row.h2_rapid_reset);
      break;
    case NGHTTP2_PING:
      if (!(hd->flags & NGHTTP2_FLAG_ACK) && ++c->window().pings > kMaxPings)
        c->calm_down(flood(stats::H2Flood::kPing));
      break;
    case NGHTTP2_SETTINGS:
      if (!(hd->flags & NGHTTP2_FLAG_ACK) && ++c->window().settings > kMaxSettings)
        c->calm_down(flood(stats::H2Flood::kSettings));
      break;
    case NGHTTP2_PRIORITY: {
      Window& w = c->window();
      if (++w.priority > kMaxPriority + kPriorityPerStream * w.streams)
        c->calm_down(flood(stats::H2Flood::kPriority));
      break;
    }
    case NGHTTP2_WINDOW_UPDATE: {
      Window& w = c->window();
      if (++w.window_updates > kMaxWindowUpdates + kWindowUpdatesPerData * w.data_sent)
        c->calm_down(flood(stats::H2Flood::kWindowUpdate));
      break;
    }
    default:
      break;
  }
  return 0;
}

int H2Connection::on_begin_headers(nghttp2_session* session, const nghttp2_frame* frame,
                                   void* user) {
  auto* c = static_cast<H2Connection*>(user);
  if (frame->hd.type != NGHTTP2_HEADERS || frame->headers.cat != NGHTTP2_HCAT_REQUEST) return 0;
  const int32_t id = frame->hd.stream_id;
  // nghttp2 enforces the advertised limit on open streams; streams it closed whose handlers are
  // still finishing (logging, the last upstream bytes) count here too, with some slack, so that
  // a client opening a stream as soon as it sees END_STREAM is not refused for our lag.
  if (c->calm_ || c->going_away_ || c->streams_.size() >= 2 * size_t{c->max_streams_} + 16) {
    // Refused: the client may retry it (RFC 9113 §8.7). Counted when the RST_STREAM is sent.
    nghttp2_submit_rst_stream(session, NGHTTP2_FLAG_NONE, id, NGHTTP2_REFUSED_STREAM);
    return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
  }
  std::unique_ptr<H2Scratch> scratch;
  if (!c->spare_.empty()) {
    scratch = std::move(c->spare_.back());
    c->spare_.pop_back();
  } else {
    scratch = std::make_unique<H2Scratch>();
  }
  auto s = std::make_unique<H2Stream>(*c, id, std::move(scratch));
  H2Stream* p = s.get();
  c->streams_.emplace(id, std::move(s));
  nghttp2_session_set_stream_user_data(session, id, p);
  c->builder_.start(p->req_, c->t_->info().secure, c->max_header_bytes_, c->max_headers_,
                    /*extended_connect=*/true);
  c->w_.row().h2_streams.inc();
  ++c->window().streams;
  return 0;
}

int H2Connection::on_header(nghttp2_session* session, const nghttp2_frame* frame,
                            const uint8_t* name, size_t namelen, const uint8_t* value,
                            size_t valuelen, uint8_t, void* user) {
  auto* c = static_cast<H2Connection*>(user);
  if (frame->hd.type != NGHTTP2_HEADERS) return 0;
  H2Stream* s = c->stream(frame->hd.stream_id);
  if (!s || c->calm_) return 0;
  const std::string_view n(reinterpret_cast<const char*>(name), namelen);
  const std::string_view v(reinterpret_cast<const char*>(value), valuelen);
  H2FieldError e;
  if (frame->headers.cat == NGHTTP2_HCAT_REQUEST) {
    e = c->builder_.add(n, v);
    if (e == H2FieldError::kTooLarge) return 0;  // answered 431 at the end of the block
  } else {
    e = H2RequestBuilder::add_trailer(s->trailers_, n, v);
    s->has_trailers_ = true;
    if (e == H2FieldError::kNone && s->trailers_.byte_size() > c->max_header_bytes_) {
      e = H2FieldError::kTooLarge;
    }
  }
  if (e == H2FieldError::kNone) return 0;
  // Malformed (RFC 9113 §8.1.1): a stream error; nothing of it goes upstream.
  c->w_.row().h2_malformed.inc();
  nghttp2_submit_rst_stream(session, NGHTTP2_FLAG_NONE, frame->hd.stream_id,
                            NGHTTP2_PROTOCOL_ERROR);
  return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
}

int H2Connection::on_invalid_header(nghttp2_session* session, const nghttp2_frame* frame,
                                    const uint8_t*, size_t, const uint8_t*, size_t, uint8_t,
                                    void* user) {
  // A field nghttp2 would silently drop (an invalid name): the request is malformed instead.
  auto* c = static_cast<H2Connection*>(user);
  c->w_.row().h2_malformed.inc();
  nghttp2_submit_rst_stream(session, NGHTTP2_FLAG_NONE, frame->hd.stream_id,
                            NGHTTP2_PROTOCOL_ERROR);
  return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
}

int H2Connection::on_frame_recv(nghttp2_session* session, const nghttp2_frame* frame, void* user) {
  auto* c = static_cast<H2Connection*>(user);
  const bool end = (frame->hd.flags & NGHTTP2_FLAG_END_STREAM) != 0;
  switch (frame->hd.type) {
    case NGHTTP2_HEADERS: {
      H2Stream* s = c->stream(frame->hd.stream_id);
      if (!s) return 0;
      if (frame->headers.cat == NGHTTP2_HCAT_REQUEST) {
        if (c->calm_) return 0;
        if (end) s->remote_closed_ = true;
        const H2FieldError e = c->builder_.finish(end);
        if (e == H2FieldError::kTooLarge) {
          c->w_.row().h2_header_list_too_large.inc();
          c->reply(s, 431, "request header fields too large\n");
          return 0;
        }
        if (e != H2FieldError::kNone) {
          c->w_.row().h2_malformed.inc();
          nghttp2_submit_rst_stream(session, NGHTTP2_FLAG_NONE, s->id_, NGHTTP2_PROTOCOL_ERROR);
          return 0;
        }
        if (s->req_.upgrade == "websocket") {
          // An extended CONNECT for WebSocket, translated: the HTTP/1.1 handshake upstream needs
          // a key, which Portico makes (and checks in the 101: accept_tunnel).
          s->ws_key_ = websocket_key(c->w_.random(), c->w_.random());
          s->req_.headers.add("sec-websocket-key", s->ws_key_);
        }
        c->start_stream(s);
        return 0;
      }
      // Trailers (nghttp2 requires END_STREAM on them).
      if (end) s->remote_closed_ = true;
      s->read_ev_.notify();
      return 0;
    }
    case NGHTTP2_DATA: {
      if (!end) return 0;
      if (H2Stream* s = c->stream(frame->hd.stream_id)) {
        s->remote_closed_ = true;
        s->read_ev_.notify();
      }
      return 0;
    }
    default:
      return 0;
  }
}

int H2Connection::on_data_chunk(nghttp2_session* session, uint8_t, int32_t stream_id,
                                const uint8_t* data, size_t len, void* user) {
  auto* c = static_cast<H2Connection*>(user);
  H2Stream* s = c->stream(stream_id);
  if (!s || s->handler_done_ || s->stop_reading_ || s->reset_) {
    // Nobody will read it: its credit goes back at once (the stream is being answered or
    // reset).
    nghttp2_session_consume(session, stream_id, len);
    return 0;
  }
  s->in_.append(reinterpret_cast<const char*>(data), len);
  s->read_ev_.notify();
  return 0;
}

int H2Connection::on_stream_close(nghttp2_session* session, int32_t stream_id, uint32_t error_code,
                                  void* user) {
  auto* c = static_cast<H2Connection*>(user);
  H2Stream* s = c->stream(stream_id);
  if (!s) return 0;
  s->closed_ = true;
  if (error_code != NGHTTP2_NO_ERROR || !s->remote_closed_) s->aborted_ = true;
  if (!s->in_.empty()) {
    nghttp2_session_consume_connection(session, s->in_.size());
    s->in_.clear();
  }
  s->read_ev_.notify();
  s->send_ev_.notify();
  // A client that cancels its stream cancels the upstream request too.
  if (s->handler_ && !s->end_sent_) s->handler_->abort();
  if (!s->spawned_ || s->handler_done_) c->erase(s);
  return 0;
}

int H2Connection::on_frame_send(nghttp2_session* session, const nghttp2_frame* frame, void* user) {
  auto* c = static_cast<H2Connection*>(user);
  if (frame->hd.type == NGHTTP2_DATA) ++c->window().data_sent;
  if (frame->hd.type == NGHTTP2_RST_STREAM &&
      frame->rst_stream.error_code == NGHTTP2_REFUSED_STREAM) {
    c->w_.row().h2_refused_streams.inc();  // ours, or nghttp2's (over a limit not yet acked)
  }
  if ((frame->hd.type != NGHTTP2_DATA && frame->hd.type != NGHTTP2_HEADERS) ||
      !(frame->hd.flags & NGHTTP2_FLAG_END_STREAM)) {
    return 0;
  }
  H2Stream* s = c->stream(frame->hd.stream_id);
  if (!s) return 0;
  s->end_sent_ = true;
  if (s->rst_after_end_ && !s->closed_ && !s->remote_closed_) {
    nghttp2_submit_rst_stream(session, NGHTTP2_FLAG_NONE, s->id_, NGHTTP2_NO_ERROR);
  }
  return 0;
}

}  // namespace

asio::awaitable<void> serve_h2(Worker& worker, std::unique_ptr<transport::Transport> transport,
                               std::string listener_key, std::string initial) {
  auto conn = std::make_unique<H2Connection>(worker, std::move(transport), std::move(listener_key));
  co_await conn->run(std::move(initial));
}

}  // namespace portico::proxy::http
