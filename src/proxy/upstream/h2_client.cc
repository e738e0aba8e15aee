#include "proxy/upstream/h2_client.h"

#include <nghttp2/nghttp2.h>

#include <algorithm>
#include <array>
#include <cstring>

#include "proxy/upstream/cluster.h"

namespace portico::proxy::upstream {

namespace {

constexpr size_t kReadChunk = 16384;
constexpr size_t kWriteChunk = 65536;
constexpr size_t kMaxContinuations = 8;

nghttp2_nv nv(std::string_view name, std::string_view value) {
  return {reinterpret_cast<uint8_t*>(const_cast<char*>(name.data())),
          reinterpret_cast<uint8_t*>(const_cast<char*>(value.data())), name.size(), value.size(),
          NGHTTP2_NV_FLAG_NONE};
}

void to_nva(const http::H2Fields& f, std::vector<nghttp2_nv>& out) {
  out.clear();
  out.reserve(f.fields.size());
  for (const auto& x : f.fields)
    out.push_back(nv(x.name, x.value));
}

}  // namespace

// ---- nghttp2 callbacks ----------------------------------------------------------------------

struct H2ClientCallbacks {
  static H2ClientConnection& conn(void* user) { return *static_cast<H2ClientConnection*>(user); }

  static int on_begin_headers(nghttp2_session*, const nghttp2_frame* frame, void* user) {
    if (frame->hd.type != NGHTTP2_HEADERS) return 0;
    H2ClientStream* s = conn(user).stream(frame->hd.stream_id);
    if (s == nullptr || s->invalid_) return 0;
    s->got_frame_ = true;
    if (s->head_done_) {
      s->in_trailers_ = true;
      s->trailers_.clear();
    } else {
      s->builder_.start(s->response_, s->conn_->settings_.max_header_bytes);
    }
    return 0;
  }

  static int on_header(nghttp2_session*, const nghttp2_frame* frame, const uint8_t* name,
                       size_t namelen, const uint8_t* value, size_t valuelen, uint8_t, void* user) {
    if (frame->hd.type != NGHTTP2_HEADERS) return 0;
    H2ClientStream* s = conn(user).stream(frame->hd.stream_id);
    if (s == nullptr || s->invalid_) return 0;
    const std::string_view n(reinterpret_cast<const char*>(name), namelen);
    const std::string_view v(reinterpret_cast<const char*>(value), valuelen);
    const http::H2FieldError e = s->in_trailers_
                                     ? http::H2RequestBuilder::add_trailer(s->trailers_, n, v)
                                     : s->builder_.add(n, v);
    if (e != http::H2FieldError::kNone) {
      s->invalid_ = true;
      return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;  // nghttp2 resets the stream
    }
    return 0;
  }

  // A field nghttp2 itself finds invalid (upper case, CR, LF, NUL...): the response is
  // malformed, never relayed with the field dropped.
  static int on_invalid_header(nghttp2_session*, const nghttp2_frame* frame, const uint8_t*, size_t,
                               const uint8_t*, size_t, uint8_t, void* user) {
    if (frame->hd.type != NGHTTP2_HEADERS) return 0;
    H2ClientStream* s = conn(user).stream(frame->hd.stream_id);
    if (s != nullptr) s->invalid_ = true;
    return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
  }

  static int on_frame_recv(nghttp2_session*, const nghttp2_frame* frame, void* user) {
    H2ClientConnection& c = conn(user);
    switch (frame->hd.type) {
      case NGHTTP2_GOAWAY:
        c.goaway_ = true;
        c.goaway_last_id_ = frame->goaway.last_stream_id;
        if (c.cluster_) c.cluster_->row().h2_goaway.inc();
        return 0;
      case NGHTTP2_SETTINGS:
        return 0;
      case NGHTTP2_HEADERS: {
        H2ClientStream* s = c.stream(frame->hd.stream_id);
        if (s == nullptr || s->invalid_) return 0;
        const bool end = (frame->hd.flags & NGHTTP2_FLAG_END_STREAM) != 0;
        if (s->in_trailers_) {
          s->in_trailers_ = false;
          if (end) s->remote_end_ = true;
          s->read_ev_.notify();
          return 0;
        }
        if (s->builder_.finish(end, s->head_request_) != http::H2FieldError::kNone) {
          s->invalid_ = true;
          s->rst(NGHTTP2_PROTOCOL_ERROR);
          s->read_ev_.notify();
          return 0;
        }
        if (s->builder_.status() < 200) return 0;  // interim: the final head follows
        s->head_done_ = true;
        if (end) s->remote_end_ = true;
        s->read_ev_.notify();
        return 0;
      }
      case NGHTTP2_DATA: {
        if ((frame->hd.flags & NGHTTP2_FLAG_END_STREAM) == 0) return 0;
        H2ClientStream* s = c.stream(frame->hd.stream_id);
        if (s == nullptr) return 0;
        s->remote_end_ = true;
        s->read_ev_.notify();
        return 0;
      }
      default:
        return 0;
    }
  }

  static int on_data_chunk(nghttp2_session* session, uint8_t, int32_t stream_id,
                           const uint8_t* data, size_t len, void* user) {
    // The connection window goes back at once: each stream is bounded by its own window, whose
    // credit returns only when the handler has taken the bytes (read_body).
    nghttp2_session_consume_connection(session, len);
    H2ClientStream* s = conn(user).stream(stream_id);
    if (s == nullptr || s->invalid_ || s->cancelled_) return 0;
    s->got_frame_ = true;
    s->in_.append(reinterpret_cast<const char*>(data), len);
    s->read_ev_.notify();
    return 0;
  }

  static int on_stream_close(nghttp2_session*, int32_t stream_id, uint32_t error_code, void* user) {
    H2ClientStream* s = conn(user).stream(stream_id);
    if (s == nullptr) return 0;
    s->closed_ = true;
    if (error_code == NGHTTP2_REFUSED_STREAM && !s->got_frame_) {
      s->refused_ = true;
    } else if (error_code != NGHTTP2_NO_ERROR) {
      s->reset_by_peer_ = !s->rst_sent_;
    }
    s->wake();
    return 0;
  }

  // A request HEADERS that never went out (GOAWAY received meanwhile, stream ids exhausted): not
  // processed, safe to send elsewhere.
  static int on_frame_not_send(nghttp2_session*, const nghttp2_frame* frame, int, void* user) {
    if (frame->hd.type != NGHTTP2_HEADERS) return 0;
    H2ClientStream* s = conn(user).stream(frame->hd.stream_id);
    if (s == nullptr) return 0;
    s->refused_ = true;
    s->closed_ = true;
    s->wake();
    return 0;
  }

  // Looked up by id, never through a pointer nghttp2 keeps: a stream whose handler is gone is
  // no longer in the connection's list (and was reset).
  static ssize_t read_data(nghttp2_session* session, int32_t stream_id, uint8_t* buf, size_t length,
                           uint32_t* flags, nghttp2_data_source*, void* user) {
    H2ClientStream* s = conn(user).stream(stream_id);
    if (s == nullptr) return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    const size_t n = std::min(length, s->send_view_.size());
    if (n) std::memcpy(buf, s->send_view_.data(), n);
    s->send_view_.remove_prefix(n);
    if (!s->send_view_.empty()) return static_cast<ssize_t>(n);
    if (s->send_end_) {
      *flags |= NGHTTP2_DATA_FLAG_EOF;
      if (s->send_trailers_) {
        std::vector<nghttp2_nv> nva;
        to_nva(s->fields_, nva);
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
};

// ---- H2ClientConnection ----------------------------------------------------------------------

H2ClientConnection::H2ClientConnection(asio::io_context& io,
                                       std::unique_ptr<transport::Transport> t,
                                       const H2ClientSettings& settings, Cluster* cluster)
    : io_(io),
      t_(std::move(t)),
      settings_(settings),
      cluster_(cluster),
      write_ev_(io),
      idle_since_(Clock::now()) {}

H2ClientConnection::~H2ClientConnection() {
  if (session_) nghttp2_session_del(session_);
}

bool H2ClientConnection::start() {
  nghttp2_session_callbacks* cb = nullptr;
  if (nghttp2_session_callbacks_new(&cb) != 0) return false;
  nghttp2_session_callbacks_set_on_begin_headers_callback(cb, &H2ClientCallbacks::on_begin_headers);
  nghttp2_session_callbacks_set_on_header_callback(cb, &H2ClientCallbacks::on_header);
  nghttp2_session_callbacks_set_on_invalid_header_callback(cb,
                                                           &H2ClientCallbacks::on_invalid_header);
  nghttp2_session_callbacks_set_on_frame_recv_callback(cb, &H2ClientCallbacks::on_frame_recv);
  nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, &H2ClientCallbacks::on_data_chunk);
  nghttp2_session_callbacks_set_on_stream_close_callback(cb, &H2ClientCallbacks::on_stream_close);
  nghttp2_session_callbacks_set_on_frame_not_send_callback(cb,
                                                           &H2ClientCallbacks::on_frame_not_send);
  nghttp2_option* opt = nullptr;
  if (nghttp2_option_new(&opt) != 0) {
    nghttp2_session_callbacks_del(cb);
    return false;
  }
  nghttp2_option_set_no_auto_window_update(opt, 1);
  nghttp2_option_set_max_continuations(opt, kMaxContinuations);
  const int rv = nghttp2_session_client_new2(&session_, cb, this, opt);
  nghttp2_option_del(opt);
  nghttp2_session_callbacks_del(cb);
  if (rv != 0) {
    session_ = nullptr;
    return false;
  }
  nghttp2_settings_entry entries[] = {
      {NGHTTP2_SETTINGS_ENABLE_PUSH, 0},
      {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, settings_.stream_window},
      {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, settings_.max_header_bytes},
  };
  if (nghttp2_submit_settings(session_, NGHTTP2_FLAG_NONE, entries, std::size(entries)) != 0) {
    return false;
  }
  if (settings_.connection_window > NGHTTP2_INITIAL_CONNECTION_WINDOW_SIZE) {
    nghttp2_session_set_local_window_size(session_, NGHTTP2_FLAG_NONE, 0,
                                          static_cast<int32_t>(settings_.connection_window));
  }
  auto self = shared_from_this();
  asio::co_spawn(io_, reader(self), asio::detached);
  asio::co_spawn(io_, writer(self), asio::detached);
  return true;
}

uint32_t H2ClientConnection::cap() const {
  const uint32_t peer =
      nghttp2_session_get_remote_settings(session_, NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS);
  return std::min(peer, settings_.max_streams);
}

bool H2ClientConnection::available() const {
  if (dead_ || goaway_ || shutting_down_ || session_ == nullptr) return false;
  if (!nghttp2_session_want_read(session_) && !nghttp2_session_want_write(session_)) return false;
  return streams_.size() < cap();
}

H2ClientStream* H2ClientConnection::stream(int32_t id) const {
  for (H2ClientStream* s : streams_)
    if (s->id_ == id) return s;
  return nullptr;
}

void H2ClientConnection::detach_stream(H2ClientStream* s) {
  auto it = std::find(streams_.begin(), streams_.end(), s);
  if (it == streams_.end()) return;
  *it = streams_.back();
  streams_.pop_back();
  if (streams_.empty()) {
    idle_since_ = Clock::now();
    finish_if_idle();
  }
}

void H2ClientConnection::shutdown() {
  if (shutting_down_ || dead_) return;
  shutting_down_ = true;
  if (session_) nghttp2_session_terminate_session(session_, NGHTTP2_NO_ERROR);
  kick();
  finish_if_idle();
}

void H2ClientConnection::finish_if_idle() {
  if (!streams_.empty() || dead_) return;
  if (shutting_down_ || goaway_) {
    // Nothing in flight and nothing new may start: let the writer flush, then close.
    kick();
  }
}

void H2ClientConnection::recv(const uint8_t* data, size_t n) {
  if (dead_) return;
  const ssize_t rv = nghttp2_session_mem_recv(session_, data, n);
  if (rv < 0) {
    // A connection error in what the upstream sent: GOAWAY(PROTOCOL_ERROR) goes out, and every
    // stream still open fails.
    nghttp2_session_terminate_session(session_, NGHTTP2_PROTOCOL_ERROR);
    goaway_ = true;
  }
  kick();
}

asio::awaitable<void> H2ClientConnection::reader(std::shared_ptr<H2ClientConnection> self) {
  std::vector<uint8_t> buf(kReadChunk);
  while (!dead_) {
    auto [ec, n] = co_await t_->read_some(asio::buffer(buf.data(), buf.size()));
    if (ec || n == 0 || dead_) break;
    recv(buf.data(), n);
  }
  fail();
}

asio::awaitable<void> H2ClientConnection::writer(std::shared_ptr<H2ClientConnection> self) {
  for (;;) {
    if (dead_) break;
    wbuf_.clear();
    bool broken = false;
    while (wbuf_.size() < kWriteChunk) {
      const uint8_t* d = nullptr;
      const ssize_t n = nghttp2_session_mem_send(session_, &d);
      if (n < 0) {
        broken = true;
        break;
      }
      if (n == 0) break;
      wbuf_.append(reinterpret_cast<const char*>(d), static_cast<size_t>(n));
    }
    if (broken) break;
    if (!wbuf_.empty()) {
      std::array<asio::const_buffer, 1> b{asio::buffer(wbuf_)};
      auto [ec, n] = co_await t_->write_batched(b);
      if (ec) break;
      continue;
    }
    // Nothing to write. The session is over (GOAWAY both ways done, or nothing in flight after
    // GOAWAY / shutdown): close.
    if (!nghttp2_session_want_read(session_) && !nghttp2_session_want_write(session_)) break;
    if ((goaway_ || shutting_down_) && streams_.empty()) break;
    co_await write_ev_.wait();
  }
  fail();
}

void H2ClientConnection::fail() {
  if (dead_) return;
  dead_ = true;
  t_->close();
  write_ev_.notify();
  // Copy: waking a stream does not detach it, but be safe against reentry.
  std::vector<H2ClientStream*> streams = streams_;
  for (H2ClientStream* s : streams) {
    if (!s->closed_) {
      s->closed_ = true;
      // Above the GOAWAY's last id, or never sent: not processed.
      if (!s->got_frame_ && ((goaway_last_id_ >= 0 && s->id_ > goaway_last_id_) || s->id_ < 0)) {
        s->refused_ = true;
      }
    }
    s->wake();
  }
  if (cluster_ && !closed_counted_) {
    closed_counted_ = true;
    cluster_->h2_closed();
  }
}

// ---- H2ClientStream --------------------------------------------------------------------------

H2ClientStream::H2ClientStream(std::shared_ptr<H2ClientConnection> c,
                               http::ResponseHeaders& response)
    : conn_(std::move(c)), response_(response), read_ev_(conn_->io_), send_ev_(conn_->io_) {}

H2ClientStream::~H2ClientStream() {
  if (id_ >= 0 && !closed_ && !conn_->dead_) {
    // Abandoned before its end (the handler is done with it): the upstream stops too.
    if (!rst_sent_) rst(NGHTTP2_CANCEL);
  }
  conn_->detach_stream(this);
}

bool H2ClientStream::start(const http::RequestHeaders& req, std::string_view target, bool tls,
                           bool end_stream) {
  H2ClientConnection& c = *conn_;
  if (!c.available()) {
    refused_ = true;
    return false;
  }
  head_request_ = req.method == "HEAD";
  http::encode_request(req, target, tls, fields_);
  std::vector<nghttp2_nv> nva;
  to_nva(fields_, nva);
  nghttp2_data_provider provider{};
  provider.read_callback = &H2ClientCallbacks::read_data;
  const int32_t id = nghttp2_submit_request(c.session_, nullptr, nva.data(), nva.size(),
                                            end_stream ? nullptr : &provider, nullptr);
  if (id < 0) {
    // Stream ids exhausted (or no memory): this connection takes no more streams.
    c.shutting_down_ = true;
    refused_ = true;
    return false;
  }
  id_ = id;
  body_done_ = end_stream;
  c.attach(this);
  if (c.cluster_) c.cluster_->row().h2_streams.inc();
  c.kick();
  return true;
}

asio::awaitable<bool> H2ClientStream::wait_taken() {
  if (!usable()) co_return false;
  nghttp2_session_resume_data(conn_->session_, id_);
  conn_->kick();
  while (!send_view_.empty() || (send_end_ && !body_done_)) {
    if (!usable()) {
      send_view_ = {};
      co_return false;
    }
    co_await send_ev_.wait();
  }
  co_return true;
}

asio::awaitable<bool> H2ClientStream::send_head(std::string_view held, bool held_body) {
  if (!usable() && !remote_end_) co_return false;
  if (!held_body) co_return true;
  co_return co_await send_body(held, true);
}

asio::awaitable<bool> H2ClientStream::send_body(std::string_view data, bool end) {
  if (body_done_) co_return data.empty();
  if (!usable()) co_return false;
  if (data.empty() && !end) co_return true;
  send_view_ = data;
  send_end_ = end;
  send_trailers_ = false;
  co_return co_await wait_taken();
}

asio::awaitable<bool> H2ClientStream::send_trailers(const http::HeaderMap& trailers) {
  if (body_done_) co_return false;
  if (!usable()) co_return false;
  http::encode_trailers(trailers, fields_);
  send_view_ = {};
  send_end_ = true;
  send_trailers_ = !fields_.fields.empty();
  co_return co_await wait_taken();
}

asio::awaitable<HeadStatus> H2ClientStream::read_head() {
  for (;;) {
    if (cancelled_) co_return HeadStatus::kCancelled;
    if (invalid_) co_return HeadStatus::kInvalid;
    if (head_done_) co_return HeadStatus::kOk;
    if (refused_) co_return HeadStatus::kRefused;
    if (closed_ || conn_->dead_) {
      co_return (got_frame_ || reset_by_peer_) ? HeadStatus::kReset
                                               : HeadStatus::kClosedBeforeResponse;
    }
    co_await read_ev_.wait();
  }
}

asio::awaitable<http::BodyPiece> H2ClientStream::read_body() {
  using http::BodyPiece;
  using http::BodyStatus;
  if (!out_.empty()) {
    // The piece handed out last time is consumed: its credit goes back to the upstream.
    if (!closed_ && !conn_->dead_) {
      nghttp2_session_consume_stream(conn_->session_, id_, out_.size());
      conn_->kick();
    }
    out_.clear();
  }
  for (;;) {
    if (cancelled_ || invalid_) co_return BodyPiece{BodyStatus::kAborted};
    if (!in_.empty()) {
      out_.swap(in_);
      co_return BodyPiece{BodyStatus::kData, out_};
    }
    if (remote_end_) {
      co_return BodyPiece{BodyStatus::kEnd, {}, trailers_.empty() ? nullptr : &trailers_};
    }
    if (closed_ || conn_->dead_) co_return BodyPiece{BodyStatus::kAborted};
    co_await read_ev_.wait();
  }
}

void H2ClientStream::rst(uint32_t code) {
  if (rst_sent_ || id_ < 0 || conn_->dead_) return;
  rst_sent_ = true;
  nghttp2_submit_rst_stream(conn_->session_, NGHTTP2_FLAG_NONE, id_, code);
  if (conn_->cluster_) conn_->cluster_->row().h2_resets_sent.inc();
  conn_->kick();
}

void H2ClientStream::cancel() {
  if (cancelled_) return;
  cancelled_ = true;
  if (!closed_) rst(NGHTTP2_CANCEL);
  wake();
}

}  // namespace portico::proxy::upstream
