// The HTTP/2 client codec's state handling against a real HTTP/2 peer: an nghttp2 server session
// on the other end of a loopback TCP connection, scripted per test. A response with a body and
// trailers; GOAWAY below a stream (kRefused, the connection takes no new stream); RST_STREAM from
// the server before the head (kReset); a cancel sends RST_STREAM(CANCEL); the stream cap follows
// the smaller of ours and the peer's SETTINGS_MAX_CONCURRENT_STREAMS; a dead connection fails its
// streams.
#include "proxy/upstream/h2_client.h"

#include <gtest/gtest.h>
#include <nghttp2/nghttp2.h>

#include <asio/experimental/as_tuple.hpp>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "proxy/transport/tcp.h"

namespace portico::proxy::upstream {
namespace {

constexpr auto use_nothrow = asio::experimental::as_tuple(asio::use_awaitable);

// One accepted connection served by an nghttp2 server session. `on_request(id, headers)` runs when
// a request stream ended (END_STREAM); closes record each stream's close code.
class Peer {
 public:
  using Headers = std::map<std::string, std::string>;
  explicit Peer(asio::io_context& io)
      : io_(io), acceptor_(io, {asio::ip::make_address("127.0.0.1"), 0}) {}
  ~Peer() {
    if (session_) nghttp2_session_del(session_);
  }
  uint16_t port() const { return acceptor_.local_endpoint().port(); }

  std::function<void(int32_t, const Headers&)> on_request;
  std::map<int32_t, Headers> requests;
  std::map<int32_t, uint32_t> closes;
  std::string body = "hello";
  uint32_t max_streams = 100;

  void start() { asio::co_spawn(io_, run(), asio::detached); }

  void respond(int32_t id, bool trailers) {
    nghttp2_nv nva[] = {nv(":status", "200"), nv("x-a", "1")};
    nghttp2_data_provider p{};
    p.source.ptr = this;
    p.read_callback = &read_body;
    with_trailers_ = trailers;
    sent_ = 0;
    nghttp2_submit_response(session_, id, nva, 2, &p);
  }
  void goaway(int32_t last) {
    nghttp2_submit_goaway(session_, NGHTTP2_FLAG_NONE, last, NGHTTP2_NO_ERROR, nullptr, 0);
  }
  void rst(int32_t id) {
    nghttp2_submit_rst_stream(session_, NGHTTP2_FLAG_NONE, id, NGHTTP2_INTERNAL_ERROR);
  }
  void close() { sock_.close(); }

 private:
  static nghttp2_nv nv(const char* n, const char* v) {
    return {reinterpret_cast<uint8_t*>(const_cast<char*>(n)),
            reinterpret_cast<uint8_t*>(const_cast<char*>(v)), strlen(n), strlen(v),
            NGHTTP2_NV_FLAG_NONE};
  }
  static ssize_t read_body(nghttp2_session* s, int32_t id, uint8_t* buf, size_t len,
                           uint32_t* flags, nghttp2_data_source* src, void*) {
    auto* self = static_cast<Peer*>(src->ptr);
    const size_t n = std::min(len, self->body.size() - self->sent_);
    memcpy(buf, self->body.data() + self->sent_, n);
    self->sent_ += n;
    if (self->sent_ == self->body.size()) {
      *flags |= NGHTTP2_DATA_FLAG_EOF;
      if (self->with_trailers_) {
        nghttp2_nv t[] = {nv("grpc-status", "0"), nv("grpc-message", "ok")};
        nghttp2_submit_trailer(s, id, t, 2);
        *flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM;
      }
    }
    return static_cast<ssize_t>(n);
  }

  asio::awaitable<void> run() {
    auto [ec, s] = co_await acceptor_.async_accept(use_nothrow);
    if (ec) co_return;
    sock_ = std::move(s);
    nghttp2_session_callbacks* cb = nullptr;
    nghttp2_session_callbacks_new(&cb);
    nghttp2_session_callbacks_set_on_header_callback(
        cb, [](nghttp2_session*, const nghttp2_frame* f, const uint8_t* n, size_t nl,
               const uint8_t* v, size_t vl, uint8_t, void* u) {
          static_cast<Peer*>(u)
              ->requests[f->hd.stream_id][std::string(reinterpret_cast<const char*>(n), nl)] =
              std::string(reinterpret_cast<const char*>(v), vl);
          return 0;
        });
    nghttp2_session_callbacks_set_on_frame_recv_callback(
        cb, [](nghttp2_session*, const nghttp2_frame* f, void* u) {
          auto* self = static_cast<Peer*>(u);
          if ((f->hd.type == NGHTTP2_HEADERS || f->hd.type == NGHTTP2_DATA) &&
              (f->hd.flags & NGHTTP2_FLAG_END_STREAM) && self->on_request) {
            self->on_request(f->hd.stream_id, self->requests[f->hd.stream_id]);
          }
          return 0;
        });
    nghttp2_session_callbacks_set_on_stream_close_callback(
        cb, [](nghttp2_session*, int32_t id, uint32_t code, void* u) {
          static_cast<Peer*>(u)->closes[id] = code;
          return 0;
        });
    nghttp2_session_server_new(&session_, cb, this);
    nghttp2_session_callbacks_del(cb);
    nghttp2_settings_entry e[] = {{NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, max_streams}};
    nghttp2_submit_settings(session_, NGHTTP2_FLAG_NONE, e, 1);
    std::vector<uint8_t> buf(16384);
    for (;;) {
      co_await flush();
      auto [rec, n] = co_await sock_.async_read_some(asio::buffer(buf), use_nothrow);
      if (rec || n == 0) co_return;
      if (nghttp2_session_mem_recv(session_, buf.data(), n) < 0) co_return;
      co_await flush();
    }
  }
  asio::awaitable<void> flush() {
    for (;;) {
      const uint8_t* d = nullptr;
      const ssize_t n = nghttp2_session_mem_send(session_, &d);
      if (n <= 0) co_return;
      co_await asio::async_write(sock_, asio::buffer(d, static_cast<size_t>(n)), use_nothrow);
    }
  }

  asio::io_context& io_;
  asio::ip::tcp::acceptor acceptor_;
  asio::ip::tcp::socket sock_{io_};
  nghttp2_session* session_ = nullptr;
  bool with_trailers_ = false;
  size_t sent_ = 0;
};

class H2ClientTest : public ::testing::Test {
 protected:
  H2ClientTest() : peer_(io_) {}

  // Connects, starts the codec, runs `body` to completion (or fails after 5 s).
  void run(H2ClientSettings settings,
           std::function<asio::awaitable<void>(std::shared_ptr<H2ClientConnection>)> body) {
    peer_.start();
    bool done = false;
    asio::co_spawn(
        io_,
        [&]() -> asio::awaitable<void> {
          asio::ip::tcp::socket s(io_);
          auto [ec] = co_await s.async_connect({asio::ip::make_address("127.0.0.1"), peer_.port()},
                                               use_nothrow);
          EXPECT_FALSE(ec);
          auto c = std::make_shared<H2ClientConnection>(
              io_, std::make_unique<transport::TcpTransport>(std::move(s)), settings, nullptr);
          EXPECT_TRUE(c->start());
          co_await body(c);
          c->shutdown();
          done = true;
        },
        asio::detached);
    io_.run_for(std::chrono::seconds(5));
    EXPECT_TRUE(done) << "the test coroutine did not finish";
  }

  asio::awaitable<void> pause(std::chrono::milliseconds d) {
    asio::steady_timer t(io_, d);
    co_await t.async_wait(use_nothrow);
  }

  http::RequestHeaders get(std::string method = "GET") {
    http::RequestHeaders r;
    r.method = std::move(method);
    r.authority = "peer.test";
    r.path = "/x";
    r.headers.add("Accept", "*/*");
    return r;
  }

  asio::io_context io_;
  Peer peer_;
};

TEST_F(H2ClientTest, ResponseWithBodyAndTrailers) {
  peer_.on_request = [&](int32_t id, const Peer::Headers&) { peer_.respond(id, true); };
  peer_.body = std::string(200000, 'b');  // several stream windows: read_body gives credit back
  run({}, [&](std::shared_ptr<H2ClientConnection> c) -> asio::awaitable<void> {
    http::ResponseHeaders resp;
    H2ClientStream s(c, resp);
    EXPECT_TRUE(s.start(get(), "/x?y=1", false, true));
    EXPECT_EQ(co_await s.read_head(), HeadStatus::kOk);
    EXPECT_EQ(resp.status, 200);
    EXPECT_EQ(resp.headers.get("x-a"), "1");
    EXPECT_TRUE(resp.has_body);
    size_t got = 0;
    const http::HeaderMap* trailers = nullptr;
    for (;;) {
      http::BodyPiece p = co_await s.read_body();
      if (p.status == http::BodyStatus::kData) {
        got += p.data.size();
        continue;
      }
      EXPECT_EQ(p.status, http::BodyStatus::kEnd);
      trailers = p.trailers;
      break;
    }
    EXPECT_EQ(got, 200000u);
    EXPECT_NE(trailers, nullptr);
    if (trailers == nullptr) co_return;
    EXPECT_EQ(trailers->get("grpc-status"), "0");
    EXPECT_EQ(trailers->get("grpc-message"), "ok");
  });
  ASSERT_EQ(peer_.requests.size(), 1u);
  auto& h = peer_.requests.begin()->second;
  EXPECT_EQ(h[":method"], "GET");
  EXPECT_EQ(h[":path"], "/x?y=1");
  EXPECT_EQ(h[":authority"], "peer.test");
  EXPECT_EQ(h[":scheme"], "http");
  EXPECT_EQ(h["te"], "trailers");
  EXPECT_EQ(h["accept"], "*/*");
}

TEST_F(H2ClientTest, RequestBodyAndTrailers) {
  peer_.on_request = [&](int32_t id, const Peer::Headers&) { peer_.respond(id, false); };
  run({}, [&](std::shared_ptr<H2ClientConnection> c) -> asio::awaitable<void> {
    http::ResponseHeaders resp;
    H2ClientStream s(c, resp);
    http::RequestHeaders req = get("POST");
    req.has_body = true;
    EXPECT_TRUE(s.start(req, "/up", false, false));
    const std::string piece(100000, 'u');  // over the peer's 64 KiB window: send_body waits
    EXPECT_TRUE(co_await s.send_body(piece, false));
    http::HeaderMap t;
    t.add("x-sum", "42");
    EXPECT_TRUE(co_await s.send_trailers(t));
    EXPECT_EQ(co_await s.read_head(), HeadStatus::kOk);
  });
  ASSERT_EQ(peer_.requests.size(), 1u);
  EXPECT_EQ(peer_.requests.begin()->second["x-sum"], "42");  // trailers land with the headers map
}

TEST_F(H2ClientTest, GoawayBelowTheStreamIsRefused) {
  peer_.on_request = [&](int32_t id, const Peer::Headers&) { peer_.goaway(std::max(0, id - 2)); };
  run({}, [&](std::shared_ptr<H2ClientConnection> c) -> asio::awaitable<void> {
    http::ResponseHeaders resp;
    H2ClientStream s(c, resp);
    EXPECT_TRUE(s.start(get(), "/", false, true));
    EXPECT_EQ(co_await s.read_head(), HeadStatus::kRefused);
    EXPECT_TRUE(s.refused());
    EXPECT_FALSE(c->available());  // no new stream on a connection that sent GOAWAY
    http::ResponseHeaders r2;
    H2ClientStream s2(c, r2);
    EXPECT_FALSE(s2.start(get(), "/", false, true));
    EXPECT_TRUE(s2.refused());
  });
}

TEST_F(H2ClientTest, ResetBeforeHeadIsReset) {
  peer_.on_request = [&](int32_t id, const Peer::Headers&) { peer_.rst(id); };
  run({}, [&](std::shared_ptr<H2ClientConnection> c) -> asio::awaitable<void> {
    http::ResponseHeaders resp;
    H2ClientStream s(c, resp);
    EXPECT_TRUE(s.start(get(), "/", false, true));
    EXPECT_EQ(co_await s.read_head(), HeadStatus::kReset);
    EXPECT_TRUE(c->available());  // a stream error leaves the connection usable
  });
}

TEST_F(H2ClientTest, CancelSendsRstStream) {
  // The peer never answers: the client gives up.
  run({}, [&](std::shared_ptr<H2ClientConnection> c) -> asio::awaitable<void> {
    http::ResponseHeaders resp;
    H2ClientStream s(c, resp);
    EXPECT_TRUE(s.start(get(), "/", false, true));
    co_await pause(std::chrono::milliseconds(50));
    s.cancel();
    EXPECT_EQ(co_await s.read_head(), HeadStatus::kCancelled);
    co_await pause(std::chrono::milliseconds(100));
  });
  ASSERT_EQ(peer_.closes.size(), 1u);
  EXPECT_EQ(peer_.closes.begin()->second, static_cast<uint32_t>(NGHTTP2_CANCEL));
}

TEST_F(H2ClientTest, StreamCapIsTheSmallerOfOursAndThePeers) {
  peer_.max_streams = 2;
  H2ClientSettings ours;
  ours.max_streams = 3;
  run(ours, [&](std::shared_ptr<H2ClientConnection> c) -> asio::awaitable<void> {
    co_await pause(std::chrono::milliseconds(100));  // the peer's SETTINGS arrive
    http::ResponseHeaders r1, r2;
    H2ClientStream a(c, r1), b(c, r2);
    EXPECT_TRUE(c->available());
    EXPECT_TRUE(a.start(get(), "/", false, true));
    EXPECT_TRUE(c->available());
    EXPECT_TRUE(b.start(get(), "/", false, true));
    EXPECT_FALSE(c->available());  // 2 = min(3, 2)
    EXPECT_EQ(c->streams(), 2u);
  });
}

TEST_F(H2ClientTest, ConnectionLossFailsStreams) {
  peer_.on_request = [&](int32_t, const Peer::Headers&) { peer_.close(); };
  run({}, [&](std::shared_ptr<H2ClientConnection> c) -> asio::awaitable<void> {
    http::ResponseHeaders resp;
    H2ClientStream s(c, resp);
    EXPECT_TRUE(s.start(get(), "/", false, true));
    // Nothing came back: a stale connection, as HTTP/1.1's kClosedBeforeResponse.
    EXPECT_EQ(co_await s.read_head(), HeadStatus::kClosedBeforeResponse);
    EXPECT_TRUE(c->dead());
    EXPECT_FALSE(c->available());
  });
}

}  // namespace
}  // namespace portico::proxy::upstream
