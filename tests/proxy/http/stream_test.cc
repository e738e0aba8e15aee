// The HTTP/1.1 server codec and the stream handler against byte streams: a LoopbackTransport on
// the client side, a small scripted upstream on a real socket of the same io_context, and the
// test-only filter. Everything runs on the test thread.
#include <gtest/gtest.h>

#include <asio/experimental/as_tuple.hpp>

#include <functional>
#include <string>
#include <vector>

#include "proxy/filters/filter.h"
#include "proxy/filters/test_filter.h"
#include "proxy/http/h1_parser.h"
#include "proxy/http/h1_server.h"
#include "proxy/http/upgrade.h"
#include "proxy/loopback_transport.h"
#include "proxy/runtime.h"
#include "proxy/worker.h"

namespace portico::proxy {
namespace {

using namespace std::chrono_literals;
using testing::LoopbackTransport;
constexpr auto use_nothrow = asio::experimental::as_tuple(asio::use_awaitable);

// A scripted upstream: reads a request (Content-Length or chunked body), records it, answers by
// path:
//   /early    413 right after the head, without reading the body, then closes
//   /silent   reads the request, closes without answering
//   /trunc    a close-delimited body, then a reset before the end
//   other     200 with a body echoing method, target and request body ("<m> <t>|<body>")
struct FakeUpstream {
  explicit FakeUpstream(asio::io_context& io)
      : acceptor(io, {asio::ip::make_address("127.0.0.1"), 0}) {
    port = acceptor.local_endpoint().port();
    asio::co_spawn(io, accept(), asio::detached);
  }
  asio::awaitable<void> accept() {
    for (;;) {
      auto [ec, s] = co_await acceptor.async_accept(use_nothrow);
      if (ec) co_return;
      ++connections;
      asio::co_spawn(acceptor.get_executor(), serve(std::move(s)), asio::detached);
    }
  }
  asio::awaitable<void> serve(asio::ip::tcp::socket s) {
    std::string buf;
    char tmp[4096];
    for (;;) {
      size_t end;
      while ((end = buf.find("\r\n\r\n")) == std::string::npos) {
        auto [ec, n] = co_await s.async_read_some(asio::buffer(tmp), use_nothrow);
        if (ec) co_return;
        buf.append(tmp, n);
      }
      std::string head = buf.substr(0, end + 4);
      buf.erase(0, end + 4);
      std::string target = head.substr(head.find(' ') + 1);
      target = target.substr(0, target.find(' '));
      std::string method = head.substr(0, head.find(' '));
      heads.push_back(head);
      if (target.rfind("/upgrade", 0) == 0) {
        // A WebSocket-like switch: 101, then "early" and an echo of every byte; the end of the
        // proxy's direction is answered "bye" and a close.
        std::string r =
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\nearly" +
            buf;
        buf.clear();
        auto [wec, wn] = co_await asio::async_write(s, asio::buffer(r), use_nothrow);
        if (wec) co_return;
        for (;;) {
          auto [ec, n] = co_await s.async_read_some(asio::buffer(tmp), use_nothrow);
          if (ec) {
            co_await asio::async_write(s, asio::buffer(std::string_view("bye")), use_nothrow);
            co_return;
          }
          tunnelled.append(tmp, n);
          co_await asio::async_write(s, asio::buffer(tmp, n), use_nothrow);
        }
      }
      if (target.rfind("/early", 0) == 0) {
        std::string r = "HTTP/1.1 413 Content Too Large\r\nContent-Length: 4\r\n\r\nnope";
        co_await asio::async_write(s, asio::buffer(r), use_nothrow);
        asio::error_code ignored;
        s.shutdown(asio::ip::tcp::socket::shutdown_send, ignored);
        // Keep reading (and dropping) so that the proxy's writes do not fail at once.
        for (;;) {
          auto [ec, n] = co_await s.async_read_some(asio::buffer(tmp), use_nothrow);
          if (ec) co_return;
        }
      }
      std::string body;
      size_t cl = 0;
      auto lower = head;
      for (auto& c : lower)
        c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      if (auto p = lower.find("content-length: "); p != std::string::npos) {
        cl = std::stoul(lower.substr(p + 16));
        while (buf.size() < cl) {
          auto [ec, n] = co_await s.async_read_some(asio::buffer(tmp), use_nothrow);
          if (ec) co_return;
          buf.append(tmp, n);
        }
        body = buf.substr(0, cl);
        buf.erase(0, cl);
      } else if (lower.find("transfer-encoding: chunked") != std::string::npos) {
        http::ChunkedDecoder dec;
        for (;;) {
          auto st = dec.feed(buf);
          if (st.error != http::ParseError::kNone) co_return;
          body.append(st.data);
          buf.erase(0, st.consumed);
          if (st.done) break;
          if (st.consumed == 0 || buf.empty()) {
            auto [ec, n] = co_await s.async_read_some(asio::buffer(tmp), use_nothrow);
            if (ec) co_return;
            buf.append(tmp, n);
          }
        }
        trailers.emplace_back(dec.trailers());
      }
      bodies.push_back(body);
      if (target.rfind("/silent", 0) == 0) co_return;
      if (target.rfind("/flaky", 0) == 0 && !flaky_done) {
        flaky_done = true;  // the first one: read, then closed without an answer (stale)
        co_return;
      }
      if (target.rfind("/interim", 0) == 0 || target.rfind("/switch", 0) == 0) {
        std::string r =
            target.rfind("/switch", 0) == 0
                ? "HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\n"
                  "Connection: upgrade\r\n\r\n"
                : "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\n"
                  "Link: </s.css>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
        auto [ec, n] = co_await asio::async_write(s, asio::buffer(r), use_nothrow);
        if (ec) co_return;
        continue;
      }
      if (target.rfind("/trailers", 0) == 0) {
        std::string r =
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n"
            "X-Checksum: abc\r\nContent-Type: evil\r\nSet-Cookie: evil\r\n\r\n";
        if (target.rfind("/trailers-cl", 0) == 0) {
          r = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello";
        }
        auto [ec, n] = co_await asio::async_write(s, asio::buffer(r), use_nothrow);
        if (ec) co_return;
        continue;
      }
      if (target.rfind("/trunc", 0) == 0) {
        std::string r = "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\npartial-body";
        co_await asio::async_write(s, asio::buffer(r), use_nothrow);
        asio::steady_timer pause(s.get_executor(), 100ms);  // let the proxy read it first
        co_await pause.async_wait(use_nothrow);
        s.set_option(asio::socket_base::linger(true, 0));  // RST, not FIN
        s.close();
        co_return;
      }
      std::string payload = method + " " + target + "|" + body;
      std::string r = "HTTP/1.1 200 OK\r\nContent-Length: " + std::to_string(payload.size()) +
                      "\r\n\r\n" + payload;
      auto [ec, n] = co_await asio::async_write(s, asio::buffer(r), use_nothrow);
      if (ec) co_return;
    }
  }
  asio::ip::tcp::acceptor acceptor;
  uint16_t port = 0;
  int connections = 0;
  std::vector<std::string> heads;
  std::vector<std::string> bodies;
  std::vector<std::string> trailers;  // of chunked request bodies (ChunkedDecoder::trailers())
  std::string tunnelled;              // bytes received after a 101 (/upgrade)
  bool flaky_done = false;
};

struct Response {
  int status = 0;
  std::string head;
  std::string body;
  size_t bytes = 0;  // of the whole response in the stream
};

// Parses one response from the start of `raw` (Content-Length or chunked). nullopt: incomplete.
std::optional<Response> parse_response(std::string_view raw, bool head_request = false) {
  http::ResponseHead h;
  auto r = http::parse_response_head(raw, head_request ? "HEAD" : "GET", h);
  if (r.status != http::ParseStatus::kComplete) return std::nullopt;
  Response out;
  out.status = h.status;
  out.head = std::string(raw.substr(0, h.head_bytes));
  size_t pos = h.head_bytes;
  if (h.body == http::BodyKind::kContentLength) {
    if (raw.size() < pos + h.content_length) return std::nullopt;
    out.body = std::string(raw.substr(pos, h.content_length));
    pos += h.content_length;
  } else if (h.body == http::BodyKind::kChunked) {
    http::ChunkedDecoder dec;
    std::string_view rest = raw.substr(pos);
    while (!dec.done()) {
      auto s = dec.feed(rest);
      if (s.error != http::ParseError::kNone || (s.consumed == 0 && s.data.empty())) {
        return std::nullopt;
      }
      out.body.append(s.data);
      rest.remove_prefix(s.consumed);
      pos += s.consumed;
    }
  } else if (h.body == http::BodyKind::kUntilClose) {
    out.body = std::string(raw.substr(pos));
    pos = raw.size();
  }
  out.bytes = pos;
  return out;
}

class StreamTest : public ::testing::Test {
 protected:
  StreamTest() : stats_(1), worker_(0, stats_), upstream_(worker_.io()) {
    testing::register_test_filters(registry_);
  }

  snapshot::ProxyConfig config() {
    snapshot::ProxyConfig c;
    c.version = 1;
    snapshot::Listener l;
    l.name = "default/gw";
    l.address = "127.0.0.1";
    l.port = 8080;
    snapshot::VirtualHost vh;
    vh.name = "default/vs";
    vh.domains = {"*"};
    snapshot::Route direct;
    direct.name = "direct";
    direct.match.path = "/direct";
    direct.action = snapshot::DirectResponseAction{200, "hello\n", "text/plain"};
    vh.routes.push_back(direct);
    snapshot::Route fwd;
    fwd.name = "fwd";
    fwd.match.path = "/";
    snapshot::ForwardAction fa;
    fa.clusters = {{"default/up", 1}};
    fa.total_weight = 1;
    fwd.action = fa;
    vh.routes.push_back(fwd);
    l.virtual_hosts.push_back(std::make_shared<snapshot::VirtualHost>(vh));
    c.listeners.push_back(l);
    snapshot::Cluster cl;
    cl.name = "default/up";
    cl.endpoints = {{"127.0.0.1", upstream_.port, 1}};
    c.clusters.push_back(cl);
    return c;
  }
  snapshot::Route& forward_route(snapshot::ProxyConfig& c) {
    return snapshot::edit_virtual_host(c.listeners[0].virtual_hosts, 0).routes[1];
  }

  void apply(const snapshot::ProxyConfig& c) {
    runtime_ = build_runtime(std::make_shared<const snapshot::ProxyConfig>(c), stats_, registry_);
    worker_.post_runtime(runtime_);
    worker_.io().poll();
  }

  std::shared_ptr<LoopbackTransport::Pipe> connect() {
    auto pipe = std::make_shared<LoopbackTransport::Pipe>(worker_.io());
    asio::co_spawn(worker_.io(),
                   http::serve_h1(worker_, std::make_unique<LoopbackTransport>(worker_.io(), pipe),
                                  "127.0.0.1:8080"),
                   asio::detached);
    return pipe;
  }

  bool run_until(const std::function<bool()>& done, std::chrono::milliseconds max = 3000ms) {
    const auto until = Clock::now() + max;
    while (!done()) {
      if (Clock::now() > until) return false;
      worker_.io().run_one_for(5ms);
    }
    return true;
  }

  Response exchange(const std::shared_ptr<LoopbackTransport::Pipe>& p, std::string_view request,
                    size_t nth = 0) {
    p->send(request);
    std::optional<Response> r;
    run_until([&] {
      std::string_view raw = p->to_client;
      for (size_t i = 0;; ++i) {
        r = parse_response(raw);
        if (!r) return false;
        if (i == nth) return true;
        raw.remove_prefix(r->bytes);
      }
    });
    return r.value_or(Response{});
  }

  stats::Registry stats_;
  Worker worker_;
  FakeUpstream upstream_;
  filters::Registry registry_;
  std::shared_ptr<const Runtime> runtime_;
};

TEST_F(StreamTest, DirectResponseAndKeepAlive) {
  apply(config());
  auto p = connect();
  auto r1 = exchange(p, "GET /direct HTTP/1.1\r\nHost: a\r\n\r\n");
  EXPECT_EQ(r1.status, 200);
  EXPECT_EQ(r1.body, "hello\n");
  auto r2 = exchange(p, "GET /direct HTTP/1.1\r\nHost: a\r\n\r\n", 1);
  EXPECT_EQ(r2.status, 200);
  EXPECT_FALSE(p->server_closed);
}

TEST_F(StreamTest, KeepAliveConnectionIdleLongerThanTheParkDelayServesTheNextRequest) {
  // Past the first stage of an idle wait (100 ms here) the connection gives its read buffer back
  // and waits without one; the next request must be read and answered as before.
  auto c = config();
  c.listeners[0].http.idle_park_after = 100ms;
  apply(c);
  auto p = connect();
  EXPECT_EQ(exchange(p, "GET /direct HTTP/1.1\r\nHost: a\r\n\r\n").status, 200);
  EXPECT_FALSE(run_until([&] { return p->server_closed; }, 400ms));
  auto r2 = exchange(p, "GET /direct HTTP/1.1\r\nHost: a\r\n\r\n", 1);
  EXPECT_EQ(r2.status, 200);
  EXPECT_EQ(r2.body, "hello\n");
  EXPECT_FALSE(p->server_closed);
}

TEST_F(StreamTest, KeepAliveTimeoutStillEndsAParkedConnection) {
  auto c = config();
  c.listeners[0].http.idle_timeout = 300ms;
  c.listeners[0].http.idle_park_after = 100ms;
  apply(c);
  auto p = connect();
  EXPECT_EQ(exchange(p, "GET /direct HTTP/1.1\r\nHost: a\r\n\r\n").status, 200);
  const auto start = Clock::now();
  ASSERT_TRUE(run_until([&] { return p->server_closed; }, 2000ms));
  EXPECT_GE(Clock::now() - start, 250ms);  // the park (100 ms) did not end the connection
}

TEST_F(StreamTest, PipelinedRequestsAreAnsweredInOrder) {
  apply(config());
  auto p = connect();
  p->send(
      "GET /a HTTP/1.1\r\nHost: a\r\n\r\nPOST /b HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\n"
      "xyzGET /c HTTP/1.1\r\nHost: a\r\n\r\n");
  std::vector<std::string> bodies;
  ASSERT_TRUE(run_until([&] {
    bodies.clear();
    std::string_view raw = p->to_client;
    while (auto r = parse_response(raw)) {
      bodies.push_back(r->body);
      raw.remove_prefix(r->bytes);
    }
    return bodies.size() == 3;
  }));
  EXPECT_EQ(bodies[0], "GET /a|");
  EXPECT_EQ(bodies[1], "POST /b|xyz");
  EXPECT_EQ(bodies[2], "GET /c|");
}

TEST_F(StreamTest, HeadArrivingByteByByteIsParsed) {
  apply(config());
  auto p = connect();
  std::string req =
      "GET /direct HTTP/1.1\r\nHost: a\r\nX-Long: " + std::string(3000, 'v') + "\r\n\r\n";
  for (char c : req) {
    p->send(std::string_view(&c, 1));
    worker_.io().poll();
  }
  ASSERT_TRUE(run_until([&] { return parse_response(p->to_client).has_value(); }));
  EXPECT_EQ(parse_response(p->to_client)->status, 200);
}

TEST_F(StreamTest, HeaderCountLimitIsWhatTheOperatorSet) {
  auto c = config();
  c.listeners[0].http.max_headers = 300;
  apply(c);
  std::string many;
  for (int i = 0; i < 250; ++i)
    many += "X-H" + std::to_string(i) + ": v\r\n";
  auto p = connect();
  EXPECT_EQ(exchange(p, "GET /direct HTTP/1.1\r\nHost: a\r\n" + many + "\r\n").status, 200);
  for (int i = 250; i < 320; ++i)
    many += "X-H" + std::to_string(i) + ": v\r\n";
  auto q = connect();
  EXPECT_EQ(exchange(q, "GET /direct HTTP/1.1\r\nHost: a\r\n" + many + "\r\n").status, 431);
}

TEST_F(StreamTest, ForwardsAndCopiesTheMessage) {
  apply(config());
  auto p = connect();
  auto r =
      exchange(p, "POST /up?q=1 HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nX-A: 1\r\n\r\nhello");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, "POST /up?q=1|hello");
  ASSERT_EQ(upstream_.heads.size(), 1u);
  EXPECT_NE(upstream_.heads[0].find("X-A: 1\r\n"), std::string::npos);
  EXPECT_NE(upstream_.heads[0].find("X-Forwarded-For: 192.0.2.1\r\n"), std::string::npos);
}

TEST_F(StreamTest, ExpectContinueIsAnsweredBeforeTheBodyIsRead) {
  apply(config());
  auto p = connect();
  p->send("PUT /x HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n");
  ASSERT_TRUE(run_until([&] { return p->to_client.find("100 Continue") != std::string::npos; }));
  p->send("body");
  ASSERT_TRUE(run_until([&] { return p->to_client.find("PUT /x|body") != std::string::npos; }));
  EXPECT_EQ(p->to_client.rfind("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK", 0), 0u);
}

TEST_F(StreamTest, ChunkedRequestBodyIsReframed) {
  apply(config());
  auto p = connect();
  auto r = exchange(p,
                    "POST /c HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
                    "3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n");
  EXPECT_EQ(r.body, "POST /c|abcde");
}

TEST_F(StreamTest, BodyOverTheRouteLimitIs413EvenWhenChunked) {
  auto c = config();
  forward_route(c).options.max_request_body_bytes = 8;
  apply(c);
  auto p = connect();
  EXPECT_EQ(exchange(p, "POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 9\r\n\r\n123456789").status,
            413);
  EXPECT_TRUE(upstream_.heads.empty());  // refused before any upstream work
  auto q = connect();
  auto r = exchange(q,
                    "POST /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
                    "5\r\n12345\r\n5\r\n67890\r\n0\r\n\r\n");
  EXPECT_EQ(r.status, 413);
  EXPECT_TRUE(upstream_.bodies.empty());  // the upstream never saw a complete request
  // Lingering close: the write side is shut before the connection is dropped.
  ASSERT_TRUE(run_until([&] { return q->server_closed; }));
  EXPECT_TRUE(q->server_shut_write);
}

TEST_F(StreamTest, ListenerLimitAppliesWithoutARouteLimit) {
  auto c = config();
  c.listeners[0].http.max_request_body_bytes = 4;
  apply(c);
  auto p = connect();
  EXPECT_EQ(exchange(p, "POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\n12345").status,
            413);
}

TEST_F(StreamTest, UpstreamAnsweringEarlyIsRelayedAtOnce) {
  apply(config());
  auto p = connect();
  // The body is announced but never sent: the upstream's early 413 must still arrive.
  auto r = exchange(p, "POST /early HTTP/1.1\r\nHost: a\r\nContent-Length: 100000\r\n\r\nabc");
  EXPECT_EQ(r.status, 413);
  EXPECT_EQ(r.body, "nope");
  // The rest of the body will not be read: the connection is closed after a lingering close.
  ASSERT_TRUE(run_until([&] { return p->server_closed; }));
}

TEST_F(StreamTest, ClientAbortMidBodyAbortsTheUpstreamRequest) {
  apply(config());
  auto p = connect();
  p->send("POST /abort HTTP/1.1\r\nHost: a\r\nContent-Length: 100\r\n\r\nabc");
  ASSERT_TRUE(run_until([&] { return upstream_.heads.size() == 1; }));
  p->reset();
  ASSERT_TRUE(run_until([&] { return p->server_closed; }));
  // The upstream saw the head and 3 bytes, never a complete request.
  EXPECT_TRUE(upstream_.bodies.empty());
  EXPECT_TRUE(p->to_client.empty());
}

TEST_F(StreamTest, TruncatedCloseDelimitedBodyHasNoFinalChunk) {
  apply(config());
  auto p = connect();
  p->send("GET /trunc HTTP/1.1\r\nHost: a\r\n\r\n");
  ASSERT_TRUE(run_until([&] { return p->server_closed; }));
  EXPECT_NE(p->to_client.find("Transfer-Encoding: chunked"), std::string::npos);
  EXPECT_NE(p->to_client.find("partial-body"), std::string::npos);
  EXPECT_EQ(p->to_client.find("0\r\n\r\n"), std::string::npos) << p->to_client;
}

TEST_F(StreamTest, PostIsNotReplayedWhenThePooledConnectionDies) {
  apply(config());
  auto p = connect();
  EXPECT_EQ(exchange(p, "GET /warm HTTP/1.1\r\nHost: a\r\n\r\n").status, 200);  // pools one
  auto r = exchange(p, "POST /silent HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\nhi", 1);
  EXPECT_EQ(r.status, 502);
  int posts = 0;
  for (const auto& h : upstream_.heads)
    posts += h.rfind("POST /silent", 0) == 0;
  EXPECT_EQ(posts, 1);
}

TEST_F(StreamTest, IdempotentRequestIsRetriedOnAFreshConnection) {
  apply(config());
  auto p = connect();
  EXPECT_EQ(exchange(p, "GET /warm HTTP/1.1\r\nHost: a\r\n\r\n").status, 200);
  // The upstream closes the pooled connection: /silent reads and closes, GET is retried once on
  // a fresh connection and answered (the second attempt is silent too: 502 after one retry).
  const int before = upstream_.connections;
  auto r = exchange(p, "GET /silent HTTP/1.1\r\nHost: a\r\n\r\n", 1);
  EXPECT_EQ(r.status, 502);
  EXPECT_GT(upstream_.connections, before);
}

TEST_F(StreamTest, RequestTimeoutCutsASlowBody) {
  auto c = config();
  c.listeners[0].http.request_timeout = 150ms;
  apply(c);
  auto p = connect();
  p->send("POST /slow HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\n12");
  const auto start = Clock::now();
  ASSERT_TRUE(run_until([&] { return parse_response(p->to_client).has_value(); }));
  EXPECT_EQ(parse_response(p->to_client)->status, 408);
  EXPECT_LT(Clock::now() - start, 1500ms);
}

TEST_F(StreamTest, StreamIdleTimeoutFiresWithNoOperationPending) {
  auto c = config();
  c.listeners[0].http.stream_idle_timeout = 100ms;
  // The filter sleeps longer than the idle timeout: no read or write is pending when the
  // deadline fires, and it must still be honoured.
  c.listeners[0].http.filters = {{"test.filter", "{}"}};
  apply(c);
  auto p = connect();
  p->send("GET /x HTTP/1.1\r\nHost: a\r\nX-Test-Sleep: 400\r\n\r\n");
  ASSERT_TRUE(run_until([&] { return parse_response(p->to_client).has_value(); }, 2000ms));
  EXPECT_EQ(parse_response(p->to_client)->status, 408);
  EXPECT_TRUE(upstream_.heads.empty());
}

TEST_F(StreamTest, PathIsNormalisedBeforeRoutingAndForwardedAsRouted) {
  auto c = config();
  snapshot::Route pub;
  pub.name = "public";
  pub.match.path = "/public";
  pub.action = snapshot::DirectResponseAction{200, "public\n", "text/plain"};
  auto& routes = snapshot::edit_virtual_host(c.listeners[0].virtual_hosts, 0).routes;
  routes.insert(routes.begin(), pub);
  apply(c);
  auto p = connect();
  // Never routed by the /public rule: it is /admin once normalised (forwarded upstream as such).
  auto r = exchange(p, "GET /public/../admin HTTP/1.1\r\nHost: a\r\n\r\n");
  EXPECT_EQ(r.body, "GET /admin|");
  auto r2 = exchange(p, "GET /public/%2e%2e/adm%69n?x=1 HTTP/1.1\r\nHost: a\r\n\r\n", 1);
  EXPECT_EQ(r2.body, "GET /admin?x=1|");
  auto r3 = exchange(p, "GET /a/./b/../c HTTP/1.1\r\nHost: a\r\n\r\n", 2);
  EXPECT_EQ(r3.body, "GET /a/c|");
  ASSERT_EQ(upstream_.heads.size(), 3u);
  EXPECT_EQ(upstream_.heads[0].rfind("GET /admin HTTP/1.1\r\n", 0), 0u);
  auto q = connect();
  EXPECT_EQ(exchange(q, "GET /a%zz HTTP/1.1\r\nHost: a\r\n\r\n").status, 400);
}

TEST_F(StreamTest, ForwardingHeadersFollowThePolicy) {
  apply(config());
  auto p = connect();
  auto r = exchange(p,
                    "GET /f HTTP/1.1\r\nHost: a\r\nX-Forwarded-For: 203.0.113.9\r\n"
                    "X-Forwarded-Proto: https\r\n\r\n");
  EXPECT_EQ(r.status, 200);
  ASSERT_EQ(upstream_.heads.size(), 1u);
  const std::string& h = upstream_.heads[0];
  // No trusted hops: the client's proto is not believed; XFF keeps its entries plus the peer.
  EXPECT_NE(h.find("X-Forwarded-For: 203.0.113.9, 192.0.2.1\r\n"), std::string::npos) << h;
  EXPECT_NE(h.find("X-Forwarded-Proto: http\r\n"), std::string::npos) << h;
  EXPECT_EQ(h.find("https"), std::string::npos) << h;
}

// ---- Filters -------------------------------------------------------------------------------

snapshot::FilterConfig test_filter(std::string config = "{}") {
  return {"test.filter", std::move(config)};
}

TEST_F(StreamTest, FilterMutatesRequestAndResponseHeaders) {
  auto c = config();
  forward_route(c).options.filters = {test_filter()};
  apply(c);
  auto p = connect();
  auto r = exchange(p, "GET /f HTTP/1.1\r\nHost: a\r\n\r\n");
  EXPECT_EQ(r.status, 200);
  EXPECT_NE(r.head.find("x-test-filter: response\r\n"), std::string::npos) << r.head;
  ASSERT_EQ(upstream_.heads.size(), 1u);
  EXPECT_NE(upstream_.heads[0].find("x-test-filter: request\r\n"), std::string::npos);
}

TEST_F(StreamTest, FilterAnswersLocally) {
  auto c = config();
  forward_route(c).options.filters = {test_filter()};
  apply(c);
  auto p = connect();
  auto r = exchange(p, "GET /f HTTP/1.1\r\nHost: a\r\nX-Test-Local: 403\r\n\r\n");
  EXPECT_EQ(r.status, 403);
  EXPECT_EQ(r.body, "denied by test filter\n");
  EXPECT_TRUE(upstream_.heads.empty());
}

TEST_F(StreamTest, FilterAwaitsATimer) {
  auto c = config();
  forward_route(c).options.filters = {test_filter()};
  apply(c);
  auto p = connect();
  const auto start = Clock::now();
  auto r = exchange(p, "GET /f HTTP/1.1\r\nHost: a\r\nX-Test-Sleep: 60\r\n\r\n");
  EXPECT_EQ(r.status, 200);
  EXPECT_GE(Clock::now() - start, 60ms);
  ASSERT_EQ(upstream_.heads.size(), 1u);
  EXPECT_NE(upstream_.heads[0].find("x-test-slept: 60\r\n"), std::string::npos);
}

TEST_F(StreamTest, FilterReplacesABufferedRequestBody) {
  auto c = config();
  forward_route(c).options.filters = {test_filter()};
  apply(c);
  auto p = connect();
  auto r = exchange(p,
                    "POST /f HTTP/1.1\r\nHost: a\r\nX-Test-Buffer: 1\r\nTransfer-Encoding: "
                    "chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n");
  EXPECT_EQ(r.body, "POST /f|replaced:abc");
  ASSERT_EQ(upstream_.heads.size(), 1u);
  EXPECT_NE(upstream_.heads[0].find("Content-Length: 12\r\n"), std::string::npos);
}

TEST_F(StreamTest, FilterReplacesTheResponseBody) {
  auto c = config();
  forward_route(c).options.filters = {test_filter(R"({"response_body": "filtered"})")};
  apply(c);
  auto p = connect();
  auto r = exchange(p, "GET /f HTTP/1.1\r\nHost: a\r\n\r\n");
  EXPECT_EQ(r.body, "filtered");
}

TEST_F(StreamTest, FilterFailureResetsTheStream) {
  auto c = config();
  forward_route(c).options.filters = {test_filter()};
  apply(c);
  auto p = connect();
  p->send("GET /f HTTP/1.1\r\nHost: a\r\nX-Test-Fail: 1\r\n\r\n");
  ASSERT_TRUE(run_until([&] { return p->server_closed; }));
  EXPECT_TRUE(p->to_client.empty());
  EXPECT_TRUE(upstream_.heads.empty());
}

TEST_F(StreamTest, UnknownFilterFailsClosed) {
  auto c = config();
  forward_route(c).options.filters = {{"no.such.filter", "{}"}};
  apply(c);
  ASSERT_EQ(runtime_->listeners[0].filter_errors.size(), 1u);
  auto p = connect();
  EXPECT_EQ(exchange(p, "GET /f HTTP/1.1\r\nHost: a\r\n\r\n").status, 500);
  EXPECT_TRUE(upstream_.heads.empty());
}

TEST_F(StreamTest, BuiltinHeaderMutationFilter) {
  auto c = config();
  c.listeners[0].http.filters = {
      {"header_mutation",
       R"({"request": {"add": [{"name": "x-added", "value": "1"}], "remove": ["x-drop"]},
           "response": {"add": [{"name": "x-resp", "value": "2", "append": false}]}})"}};
  apply(c);
  auto p = connect();
  auto r = exchange(p, "GET /m HTTP/1.1\r\nHost: a\r\nX-Drop: secret\r\n\r\n");
  EXPECT_NE(r.head.find("x-resp: 2\r\n"), std::string::npos);
  ASSERT_EQ(upstream_.heads.size(), 1u);
  EXPECT_NE(upstream_.heads[0].find("x-added: 1\r\n"), std::string::npos);
  EXPECT_EQ(upstream_.heads[0].find("secret"), std::string::npos);
}

TEST(FilterChainTest, PhaseTablesOnlyListTheHooksAFilterHas) {
  filters::Registry r;
  testing::register_test_filters(r);
  auto chain = filters::compile_chain(r, {{"test.headers_only", "{}"}}, {});
  ASSERT_TRUE(chain.ok());
  EXPECT_EQ(chain.value()->request_headers.size(), 1u);
  EXPECT_TRUE(chain.value()->request_body.empty());  // body chunks skip it entirely
  EXPECT_TRUE(chain.value()->response_body.empty());
  auto bad = filters::compile_chain(r, {}, {{"header_mutation", R"({"request": 3})"}});
  EXPECT_FALSE(bad.ok());
  auto unknown = filters::compile_chain(r, {}, {{"nope", "{}"}});
  EXPECT_FALSE(unknown.ok());
}

// ---- Trailers ------------------------------------------------------------------------------

TEST_F(StreamTest, RequestTrailersAreForwardedOnAChunkedBody) {
  apply(config());
  auto p = connect();
  auto r = exchange(p,
                    "POST /t HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
                    "3\r\nabc\r\n0\r\nX-Checksum: 900150983cd24fb0\r\nContent-Length: 7\r\n"
                    "Host: evil\r\nAuthorization: x\r\n\r\n");
  EXPECT_EQ(r.body, "POST /t|abc");
  ASSERT_EQ(upstream_.trailers.size(), 1u);
  // Forwardable fields only: never framing, routing or auth fields.
  EXPECT_EQ(upstream_.trailers[0], "X-Checksum: 900150983cd24fb0\n");
}

TEST_F(StreamTest, RequestTrailersReachTheTrailerFilters) {
  auto c = config();
  forward_route(c).options.filters = {test_filter()};
  apply(c);
  auto p = connect();
  auto r = exchange(p,
                    "POST /t HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
                    "3\r\nabc\r\n0\r\nX-Sum: 1\r\n\r\n");
  EXPECT_EQ(r.status, 200);
  ASSERT_EQ(upstream_.trailers.size(), 1u);
  EXPECT_EQ(upstream_.trailers[0], "X-Sum: 1\nx-test-trailer: seen\n");
}

TEST_F(StreamTest, ResponseTrailersAreForwardedToAChunkedClient) {
  apply(config());
  auto p = connect();
  p->send("GET /trailers HTTP/1.1\r\nHost: a\r\n\r\n");
  ASSERT_TRUE(run_until([&] { return parse_response(p->to_client).has_value(); }));
  const std::string& raw = p->to_client;
  EXPECT_NE(raw.find("Transfer-Encoding: chunked\r\n"), std::string::npos) << raw;
  const size_t body = raw.find("\r\n\r\n") + 4;
  EXPECT_EQ(raw.substr(body), "5\r\nhello\r\n0\r\nX-Checksum: abc\r\n\r\n") << raw;
  // Never turned into headers.
  EXPECT_EQ(raw.substr(0, body).find("X-Checksum"), std::string::npos);
  EXPECT_EQ(raw.find("evil"), std::string::npos);
  // An HTTP/1.0 client reads a close-delimited body: the trailers are dropped.
  auto q = connect();
  q->send("GET /trailers HTTP/1.0\r\nHost: a\r\n\r\n");
  ASSERT_TRUE(run_until([&] { return q->server_closed; }));
  EXPECT_NE(q->to_client.find("\r\n\r\nhello"), std::string::npos) << q->to_client;
  EXPECT_EQ(q->to_client.find("X-Checksum"), std::string::npos) << q->to_client;
}

TEST_F(StreamTest, ResponseTrailersReachTheTrailerFilters) {
  auto c = config();
  forward_route(c).options.filters = {test_filter()};
  apply(c);
  auto p = connect();
  p->send("GET /trailers HTTP/1.1\r\nHost: a\r\n\r\n");
  ASSERT_TRUE(run_until([&] { return parse_response(p->to_client).has_value(); }));
  const std::string& raw = p->to_client;
  const size_t body = raw.find("\r\n\r\n") + 4;
  EXPECT_EQ(raw.substr(body), "5\r\nhello\r\n0\r\nX-Checksum: abc\r\nx-test-trailer: seen\r\n\r\n")
      << raw;
}

// ---- Local replies through the route's response side -----------------------------------------

TEST_F(StreamTest, LocalRepliesGoThroughTheRoutesResponseFilters) {
  auto c = config();
  c.listeners[0].http.server_name = "portico";
  c.listeners[0].http.filters = {
      {"header_mutation", R"({"response": {"add": [{"name": "x-resp", "value": "2"}]}})"}};
  auto& direct = snapshot::edit_virtual_host(c.listeners[0].virtual_hosts, 0).routes[0];
  direct.options.response_headers.add = {{"x-route", "1", false}};
  direct.options.response_headers.remove = {"server"};
  forward_route(c).options.filters = {test_filter()};
  snapshot::Route nowhere;
  nowhere.name = "nowhere";
  nowhere.match.path = "/nowhere";
  snapshot::ForwardAction fa;
  fa.clusters = {{"default/missing", 1}};
  fa.total_weight = 1;
  nowhere.action = fa;
  auto& routes = snapshot::edit_virtual_host(c.listeners[0].virtual_hosts, 0).routes;
  routes.insert(routes.begin(), nowhere);
  snapshot::edit_virtual_host(c.listeners[0].virtual_hosts, 0).domains = {"a"};
  apply(c);
  auto p = connect();
  // A direct response: the route's header changes (remove included) and the listener's filter.
  auto r = exchange(p, "GET /direct HTTP/1.1\r\nHost: a\r\n\r\n");
  EXPECT_EQ(r.status, 200);
  EXPECT_NE(r.head.find("x-route: 1\r\n"), std::string::npos) << r.head;
  EXPECT_NE(r.head.find("x-resp: 2\r\n"), std::string::npos) << r.head;
  EXPECT_EQ(r.head.find("Server:"), std::string::npos) << r.head;
  // A filter's own local reply, and an upstream failure (502), see the response filters.
  auto q = connect();
  auto r2 = exchange(q, "GET /f HTTP/1.1\r\nHost: a\r\nX-Test-Local: 403\r\n\r\n");
  EXPECT_EQ(r2.status, 403);
  EXPECT_NE(r2.head.find("x-test-filter: response\r\n"), std::string::npos) << r2.head;
  EXPECT_NE(r2.head.find("x-resp: 2\r\n"), std::string::npos) << r2.head;
  auto q2 = connect();
  auto r3 = exchange(q2, "GET /silent HTTP/1.1\r\nHost: a\r\n\r\n");
  EXPECT_EQ(r3.status, 502);
  EXPECT_NE(r3.head.find("x-test-filter: response\r\n"), std::string::npos) << r3.head;
  // 503 for an unknown upstream: after routing, so filtered too.
  auto q3 = connect();
  auto r4 = exchange(q3, "GET /nowhere HTTP/1.1\r\nHost: a\r\n\r\n");
  EXPECT_EQ(r4.status, 503);
  EXPECT_NE(r4.head.find("x-resp: 2\r\n"), std::string::npos) << r4.head;
  // Before routing (no virtual host): no route, no filters.
  auto q4 = connect();
  auto r5 = exchange(q4, "GET /direct HTTP/1.1\r\nHost: other\r\n\r\n");
  EXPECT_EQ(r5.status, 404);
  EXPECT_EQ(r5.head.find("x-resp"), std::string::npos) << r5.head;
}

TEST_F(StreamTest, ResponseBodyFilterReplacesALocalReplyBody) {
  auto c = config();
  forward_route(c).options.filters = {test_filter(R"({"response_body": "filtered"})")};
  apply(c);
  auto p = connect();
  auto r = exchange(p, "GET /f HTTP/1.1\r\nHost: a\r\nX-Test-Local: 401\r\n\r\n");
  EXPECT_EQ(r.status, 401);
  EXPECT_EQ(r.body, "filtered");
}

// ---- Replay of a streamed body on a stale pooled connection ----------------------------------

TEST_F(StreamTest, StreamedPutIsReplayedOnAFreshConnection) {
  apply(config());
  auto p = connect();
  EXPECT_EQ(exchange(p, "GET /warm HTTP/1.1\r\nHost: a\r\n\r\n").status, 200);  // pools one
  // The body arrives after the head: it is streamed, not held.
  p->send("PUT /flaky HTTP/1.1\r\nHost: a\r\nContent-Length: 6\r\n\r\nabc");
  ASSERT_TRUE(run_until([&] { return upstream_.heads.size() == 2; }));
  p->send("def");
  std::optional<Response> r;
  ASSERT_TRUE(run_until([&] {
    std::string_view raw = p->to_client;
    auto first = parse_response(raw);
    if (!first) return false;
    raw.remove_prefix(first->bytes);
    r = parse_response(raw);
    return r.has_value();
  }));
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->body, "PUT /flaky|abcdef");
  ASSERT_EQ(upstream_.bodies.size(), 3u);
  EXPECT_EQ(upstream_.bodies[1], "abcdef");  // the attempt on the dead connection
  EXPECT_EQ(upstream_.bodies[2], "abcdef");  // the replay
  EXPECT_NE(stats_.render().find("portico_upstream_retries_total{upstream=\"default/up\"} 1\n"),
            std::string::npos);
}

TEST_F(StreamTest, StreamedPostIsNeverReplayed) {
  apply(config());
  auto p = connect();
  EXPECT_EQ(exchange(p, "GET /warm HTTP/1.1\r\nHost: a\r\n\r\n").status, 200);
  p->send("POST /flaky HTTP/1.1\r\nHost: a\r\nContent-Length: 6\r\n\r\nabc");
  ASSERT_TRUE(run_until([&] { return upstream_.heads.size() == 2; }));
  p->send("def");
  auto r = exchange(p, "", 1);
  EXPECT_EQ(r.status, 502);
  EXPECT_EQ(upstream_.heads.size(), 2u);  // sent once
  EXPECT_NE(stats_.render().find("portico_upstream_retries_skipped_total{upstream=\"default/up\","
                                 "reason=\"not_idempotent\"} 1\n"),
            std::string::npos);
}

TEST_F(StreamTest, BodyLargerThanTheReplayBufferIsNotReplayed) {
  apply(config());
  auto p = connect();
  EXPECT_EQ(exchange(p, "GET /warm HTTP/1.1\r\nHost: a\r\n\r\n").status, 200);
  const size_t n = 70000;
  p->send("PUT /flaky HTTP/1.1\r\nHost: a\r\nContent-Length: " + std::to_string(n) + "\r\n\r\nabc");
  ASSERT_TRUE(run_until([&] { return upstream_.heads.size() == 2; }));
  p->send(std::string(n - 3, 'x'));
  auto r = exchange(p, "", 1);
  EXPECT_EQ(r.status, 502);
  EXPECT_EQ(upstream_.heads.size(), 2u);
  EXPECT_NE(stats_.render().find("portico_upstream_retries_skipped_total{upstream=\"default/up\","
                                 "reason=\"body_too_large\"} 1\n"),
            std::string::npos);
}

// ---- Interim responses -------------------------------------------------------------------

TEST_F(StreamTest, InterimResponsesAreDroppedAndA101IsInvalid) {
  apply(config());
  auto p = connect();
  auto r = exchange(p, "GET /interim HTTP/1.1\r\nHost: a\r\n\r\n");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, "ok");
  EXPECT_EQ(p->to_client.find("HTTP/1.1 10"), std::string::npos) << p->to_client;  // no 100/103
  // No Upgrade is forwarded, so an upstream may not switch protocols: 502, never relayed.
  auto q = connect();
  auto r2 = exchange(q, "GET /switch HTTP/1.1\r\nHost: a\r\n\r\n");
  EXPECT_EQ(r2.status, 502);
  EXPECT_EQ(q->to_client.find("101"), std::string::npos) << q->to_client;
}

// ---- Tunnel mode ---------------------------------------------------------------------------

constexpr std::string_view kUpgrade =
    "GET /upgrade HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
    "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n";

TEST_F(StreamTest, WebSocketUpgradeIsTunnelledBothWaysWithHalfClose) {
  auto c = config();
  forward_route(c).options.websocket = true;
  apply(c);
  auto p = connect();
  p->send(std::string(kUpgrade) + "abc");  // bytes right behind the head go through too
  ASSERT_TRUE(run_until([&] { return p->to_client.find("earlyabc") != std::string::npos; }))
      << p->to_client;
  const std::string head = p->to_client.substr(0, p->to_client.find("\r\n\r\n") + 4);
  EXPECT_EQ(head.rfind("HTTP/1.1 101 Switching Protocols\r\n", 0), 0u) << head;
  EXPECT_NE(head.find("Connection: Upgrade\r\nUpgrade: websocket\r\n"), std::string::npos);
  EXPECT_NE(head.find("Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"), std::string::npos);
  EXPECT_EQ(head.find("Content-Length"), std::string::npos);
  EXPECT_EQ(head.find("Transfer-Encoding"), std::string::npos);
  ASSERT_EQ(upstream_.heads.size(), 1u);
  EXPECT_NE(upstream_.heads[0].find("Connection: Upgrade\r\nUpgrade: websocket\r\n"),
            std::string::npos);
  EXPECT_NE(upstream_.heads[0].find("Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"),
            std::string::npos);
  p->send("xyz");
  ASSERT_TRUE(run_until([&] { return p->to_client.find("earlyabcxyz") != std::string::npos; }));
  EXPECT_FALSE(p->server_shut_write);
  // The client ends its direction: the upstream sees it, answers and closes; Portico ends its
  // direction toward the client, then the connection.
  p->close();
  ASSERT_TRUE(run_until([&] { return p->server_closed; })) << p->to_client;
  EXPECT_TRUE(p->server_shut_write);
  EXPECT_EQ(p->to_client.substr(p->to_client.size() - 14), "earlyabcxyzbye");
  EXPECT_EQ(upstream_.tunnelled, "abcxyz");
  auto& row = stats_.worker_row(0);
  EXPECT_EQ(row.tunnels_opened[0].get(), 1u);
  EXPECT_EQ(row.tunnels_active[0].get(), 0u);
  EXPECT_EQ(row.tunnel_bytes_up[0].get(), 6u);
  EXPECT_EQ(row.tunnel_bytes_down[0].get(), 14u);
  // The tunnel's upstream connection was not pooled: the next request opens another.
  auto q = connect();
  auto r = exchange(q, "GET /after HTTP/1.1\r\nHost: a\r\n\r\n");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(upstream_.connections, 2);
}

TEST_F(StreamTest, MalformedHandshakesAreRefusedBeforeTheUpstream) {
  auto c = config();
  forward_route(c).options.websocket = true;
  apply(c);
  auto p = connect();
  std::string bad_version(kUpgrade);
  bad_version.replace(bad_version.find("Version: 13"), 11, "Version: 8");
  auto r = exchange(p, bad_version);
  EXPECT_EQ(r.status, 426);
  EXPECT_NE(r.head.find("Sec-WebSocket-Version: 13\r\n"), std::string::npos) << r.head;
  EXPECT_NE(r.head.find("Connection: close\r\n"), std::string::npos) << r.head;
  auto q = connect();
  std::string bad_key(kUpgrade);
  bad_key.replace(bad_key.find("dGhl"), 4, "%%%%");
  EXPECT_EQ(exchange(q, bad_key).status, 400);
  EXPECT_TRUE(upstream_.heads.empty());
  auto& row = stats_.worker_row(0);
  EXPECT_EQ(row.upgrades_refused[static_cast<size_t>(http::UpgradeRefusal::kBadVersion)].get(), 1u);
  EXPECT_EQ(row.upgrades_refused[static_cast<size_t>(http::UpgradeRefusal::kBadKey)].get(), 1u);
  EXPECT_EQ(row.tunnels_opened[0].get(), 0u);
}

TEST_F(StreamTest, UpgradeOnARouteWithoutWebSocketIsAPlainRequest) {
  apply(config());
  auto p = connect();
  // The upstream switches anyway: no Upgrade was sent, so its 101 is invalid (502), never relayed.
  auto r = exchange(p, kUpgrade);
  EXPECT_EQ(r.status, 502);
  ASSERT_EQ(upstream_.heads.size(), 1u);
  EXPECT_EQ(upstream_.heads[0].find("Upgrade"), std::string::npos) << upstream_.heads[0];
  EXPECT_EQ(stats_.worker_row(0)
                .upgrades_refused[static_cast<size_t>(http::UpgradeRefusal::kWebSocketDisabled)]
                .get(),
            1u);
}

TEST_F(StreamTest, ConnectOpensATunnelToTheRoutesUpstreamOnly) {
  auto c = config();
  auto& vh = snapshot::edit_virtual_host(c.listeners[0].virtual_hosts, 0);
  snapshot::Route tunnel = vh.routes[1];
  tunnel.name = "tunnel";
  tunnel.match.methods = {"CONNECT"};
  tunnel.options.connect = true;
  vh.routes.insert(vh.routes.begin(), tunnel);
  vh.domains = {"allowed.test"};
  apply(c);
  auto p = connect();
  p->send("CONNECT allowed.test:443 HTTP/1.1\r\nHost: allowed.test:443\r\n\r\n");
  ASSERT_TRUE(run_until([&] { return p->to_client.find("\r\n\r\n") != std::string::npos; }));
  EXPECT_EQ(p->to_client, "HTTP/1.1 200 Connection Established\r\n\r\n");
  // Through the tunnel: whatever the client speaks (here HTTP to the fake upstream).
  p->send("GET /inside HTTP/1.1\r\nHost: x\r\n\r\n");
  ASSERT_TRUE(run_until([&] { return p->to_client.find("GET /inside|") != std::string::npos; }))
      << p->to_client;
  ASSERT_EQ(upstream_.heads.size(), 1u);
  EXPECT_EQ(upstream_.heads[0].rfind("GET /inside HTTP/1.1\r\nHost: x\r\n", 0), 0u);
  EXPECT_EQ(stats_.worker_row(0).tunnels_opened[1].get(), 1u);
  p->close();
  ASSERT_TRUE(run_until([&] { return p->server_closed; }));
  // Another authority, or the same one on a route without connect: 403, nothing sent upstream.
  auto q = connect();
  EXPECT_EQ(exchange(q, "CONNECT other.test:443 HTTP/1.1\r\nHost: other.test:443\r\n\r\n").status,
            403);
  snapshot::edit_virtual_host(c.listeners[0].virtual_hosts, 0).routes[0].options.connect = false;
  apply(c);
  auto w = connect();
  EXPECT_EQ(
      exchange(w, "CONNECT allowed.test:443 HTTP/1.1\r\nHost: allowed.test:443\r\n\r\n").status,
      403);
  EXPECT_EQ(upstream_.heads.size(), 1u);
  EXPECT_EQ(stats_.worker_row(0)
                .upgrades_refused[static_cast<size_t>(http::UpgradeRefusal::kConnectRefused)]
                .get(),
            2u);
}

}  // namespace
}  // namespace portico::proxy
