// The gRPC-Web codec (content types, streaming base64 both ways, frame boundaries, the trailer
// frame) and the grpc_web filter in a real stream: the HTTP/1.1 server codec over a loopback
// transport, the stream handler, and a scripted upstream on a socket of the same io_context that
// answers like a gRPC server would over HTTP/1.1 (chunked body, grpc-status as a trailer).
#include <gtest/gtest.h>

#include <asio/experimental/as_tuple.hpp>

#include <cstdio>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "common/base64.h"
#include "proxy/filters/filter.h"
#include "proxy/filters/grpc_web/codec.h"
#include "proxy/filters/grpc_web/grpc_web.h"
#include "proxy/filters/test_filter.h"
#include "proxy/http/h1_parser.h"
#include "proxy/http/h1_server.h"
#include "proxy/loopback_transport.h"
#include "proxy/runtime.h"
#include "proxy/worker.h"

namespace portico::proxy {
namespace {

using namespace std::chrono_literals;
using namespace filters::grpc_web;
using testing::LoopbackTransport;
constexpr auto use_nothrow = asio::experimental::as_tuple(asio::use_awaitable);

// A gRPC message frame: flag 0, 4-byte big-endian length, payload.
std::string frame(std::string_view payload, uint8_t flag = 0) {
  std::string out;
  out.push_back(static_cast<char>(flag));
  const uint32_t n = static_cast<uint32_t>(payload.size());
  out.push_back(static_cast<char>(n >> 24));
  out.push_back(static_cast<char>((n >> 16) & 255));
  out.push_back(static_cast<char>((n >> 8) & 255));
  out.push_back(static_cast<char>(n & 255));
  out.append(payload);
  return out;
}

std::string trailer_frame(std::string_view lines) {
  return frame(lines, 0x80);
}

// ---- Codec ---------------------------------------------------------------------------------

TEST(GrpcWebCodec, ContentTypes) {
  auto bin = parse_web_content_type("application/grpc-web");
  ASSERT_TRUE(bin);
  EXPECT_FALSE(bin->text);
  EXPECT_EQ(bin->suffix, "");
  auto proto = parse_web_content_type("Application/gRPC-Web+proto; charset=utf-8");
  ASSERT_TRUE(proto);
  EXPECT_FALSE(proto->text);
  EXPECT_EQ(proto->suffix, "proto");
  auto text = parse_web_content_type("application/grpc-web-text");
  ASSERT_TRUE(text);
  EXPECT_TRUE(text->text);
  auto text_json = parse_web_content_type("application/grpc-web-text+json");
  ASSERT_TRUE(text_json);
  EXPECT_TRUE(text_json->text);
  EXPECT_EQ(text_json->suffix, "json");
  for (std::string_view no : {"application/grpc", "application/grpc+proto", "application/grpc-webx",
                              "application/grpc-web+", "application/grpc-web-textual", "text/plain",
                              "", "application/grpc-web+a/b"}) {
    EXPECT_FALSE(parse_web_content_type(no)) << no;
  }
  EXPECT_EQ(grpc_suffix("application/grpc"), std::string_view(""));
  EXPECT_EQ(grpc_suffix("application/grpc+proto"), std::string_view("proto"));
  EXPECT_FALSE(grpc_suffix("application/grpc-web"));
  EXPECT_FALSE(grpc_suffix("text/html"));
  EXPECT_EQ(grpc_content_type(""), "application/grpc");
  EXPECT_EQ(grpc_content_type("proto"), "application/grpc+proto");
  EXPECT_EQ(web_content_type(false, "proto"), "application/grpc-web+proto");
  EXPECT_EQ(web_content_type(true, ""), "application/grpc-web-text");
}

std::string random_bytes(std::mt19937& rng, size_t n) {
  std::string s(n, '\0');
  for (auto& c : s)
    c = static_cast<char>(rng() & 255);
  return s;
}

// Feeds `text` to a decoder cut at the given positions.
std::optional<std::string> decode_split(std::string_view text, const std::vector<size_t>& cuts) {
  Base64Decoder d;
  std::string out;
  size_t at = 0;
  for (size_t c : cuts) {
    if (!d.feed(text.substr(at, c - at), out)) return std::nullopt;
    at = c;
  }
  if (!d.feed(text.substr(at), out) || !d.complete()) return std::nullopt;
  return out;
}

TEST(GrpcWebCodec, Base64DecodesAcrossEverySplit) {
  std::mt19937 rng(7);
  for (size_t n : {0u, 1u, 2u, 3u, 4u, 5u, 17u, 31u}) {
    const std::string bytes = random_bytes(rng, n);
    const std::string text = common::base64_encode(bytes);
    // Every pair of cut points, empty pieces included.
    for (size_t a = 0; a <= text.size(); ++a) {
      for (size_t b = a; b <= text.size(); ++b) {
        auto got = decode_split(text, {a, b});
        ASSERT_TRUE(got) << n << " " << a << " " << b;
        EXPECT_EQ(*got, bytes);
      }
    }
  }
}

TEST(GrpcWebCodec, Base64DecodesRandomSplitsAndPaddingInTheMiddle) {
  std::mt19937 rng(11);
  for (int round = 0; round < 200; ++round) {
    // Messages encoded one by one and concatenated, as a client may send them.
    std::string bytes, text;
    const int messages = 1 + static_cast<int>(rng() % 4);
    for (int m = 0; m < messages; ++m) {
      std::string msg = frame(random_bytes(rng, rng() % 40));
      bytes += msg;
      text += common::base64_encode(msg);
    }
    std::vector<size_t> cuts;
    for (size_t at = 0; at < text.size();) {
      at += 1 + rng() % 7;
      if (at < text.size()) cuts.push_back(at);
    }
    auto got = decode_split(text, cuts);
    ASSERT_TRUE(got) << text;
    EXPECT_EQ(*got, bytes);
  }
}

TEST(GrpcWebCodec, MalformedBase64IsAnErrorThatSticks) {
  for (std::string_view bad : {"AAA*", "A===", "====", "AA=A", "AB\nC", "AAAA AAA", "AAAA=AAA",
                               "QUJD-_==", "\xff\xff\xff\xff"}) {
    Base64Decoder d;
    std::string out;
    EXPECT_FALSE(d.feed(bad, out) && d.complete()) << bad;
  }
  // Incomplete at the end: every piece is fine, the end is not.
  Base64Decoder d;
  std::string out;
  EXPECT_TRUE(d.feed("QUJD", out));
  EXPECT_TRUE(d.complete());
  EXPECT_TRUE(d.feed("QU", out));
  EXPECT_FALSE(d.complete());
  // Sticky: nothing more is decoded after an error.
  EXPECT_FALSE(d.feed("*AAA", out));
  EXPECT_FALSE(d.feed("QUJD", out));
  EXPECT_TRUE(d.failed());
  EXPECT_EQ(out, "ABC");
}

TEST(GrpcWebCodec, Base64EncoderCarriesAcrossPieces) {
  std::mt19937 rng(3);
  for (int round = 0; round < 200; ++round) {
    const std::string bytes = random_bytes(rng, rng() % 50);
    Base64Encoder e;
    std::string out;
    for (size_t at = 0; at < bytes.size();) {
      const size_t n = std::min<size_t>(1 + rng() % 6, bytes.size() - at);
      e.feed(std::string_view(bytes).substr(at, n), out);
      EXPECT_EQ(out.size() % 4, 0u);  // never a partial quantum on the wire
      at += n;
    }
    e.flush(out);
    EXPECT_EQ(out, common::base64_encode(bytes));  // one text, padded only at the end
  }
  // A flush mid-stream pads there; the whole still decodes quantum by quantum.
  Base64Encoder e;
  std::string out;
  e.feed("ab", out);
  EXPECT_EQ(out, "");
  EXPECT_EQ(e.pending(), 2u);
  e.flush(out);
  e.feed("cde", out);
  e.flush(out);
  EXPECT_EQ(out, "YWI=Y2Rl");
  EXPECT_EQ(decode_split(out, {3}), std::optional<std::string>("abcde"));
}

TEST(GrpcWebCodec, FrameTrackerFindsMessageBoundaries) {
  const std::string body = frame("hello") + frame("") + frame(std::string(300, 'x'));
  // Boundaries at 10, 15 and the end; everywhere else inside a frame.
  for (size_t cut = 0; cut <= body.size(); ++cut) {
    FrameTracker t;
    t.feed(std::string_view(body).substr(0, cut));
    const bool boundary = cut == 0 || cut == 10 || cut == 15 || cut == body.size();
    EXPECT_EQ(t.at_boundary(), boundary) << cut;
    t.feed(std::string_view(body).substr(cut));
    EXPECT_TRUE(t.at_boundary());
  }
}

TEST(GrpcWebCodec, TrailerFrame) {
  TrailerFrame t;
  t.add("Grpc-Status", "0");
  t.add("grpc-message", "all good");
  std::string out = "x";
  t.append_to(out);
  const std::string lines = "grpc-status: 0\r\ngrpc-message: all good\r\n";
  EXPECT_EQ(out, "x" + trailer_frame(lines));
  EXPECT_EQ(static_cast<unsigned char>(out[1]), 0x80);
}

// ---- The filter chain: a conditional filter -----------------------------------------------------

TEST(GrpcWebChain, OtherRequestsRunTheChainWithoutIt) {
  filters::Registry r;
  filters::register_builtin_filters(r);
  auto only = filters::compile_chain(r, {{"grpc_web", "{}"}}, {});
  ASSERT_TRUE(only.ok());
  auto both = filters::compile_chain(
      r, {{"grpc_web", "{}"}},
      {{"header_mutation", R"({"request": {"add": [{"name": "x", "value": "1"}]}})"}});
  ASSERT_TRUE(both.ok());
  http::RequestHeaders plain;
  plain.headers.add("content-type", "application/json");
  http::RequestHeaders web;
  web.headers.add("Content-Type", "application/grpc-web-text+proto");
  // Only the gRPC-Web filter: a plain request has no chain at all (no filter is made for it).
  EXPECT_EQ(filters::FilterChain::for_stream(only.value(), plain), nullptr);
  EXPECT_EQ(filters::FilterChain::for_stream(only.value(), web), only.value());
  // With another filter: the plain request gets the chain without gRPC-Web, body tables empty.
  auto v = filters::FilterChain::for_stream(both.value(), plain);
  ASSERT_NE(v, nullptr);
  EXPECT_EQ(v->factories.size(), 1u);
  EXPECT_TRUE(v->request_body.empty());
  EXPECT_TRUE(v->response_body.empty());
  EXPECT_EQ(v->request_headers.size(), 1u);
  EXPECT_EQ(filters::FilterChain::for_stream(both.value(), web), both.value());
  EXPECT_EQ(both.value()->response_body.size(), 1u);
  // The configuration takes no field.
  EXPECT_FALSE(filters::compile_grpc_web(R"({"disable": true})").ok());
  EXPECT_FALSE(filters::compile_grpc_web("[]").ok());
}

// ---- The filter in a stream ----------------------------------------------------------------

// Answers like a gRPC server over HTTP/1.1, by path:
//   /echo       200 application/grpc+proto, the request body (its frames) echoed in one chunk,
//               trailers grpc-status: 0, grpc-message: ok
//   /fail       200 application/grpc, no message, trailers grpc-status: 5, grpc-message: not found
//   /stream     200 application/grpc, three messages in three chunks (the second split in two),
//               trailers grpc-status: 0
//   /only       a trailers-only answer: grpc-status: 7 in the head, Content-Length: 0
//   other       404 text/plain "no such page"
struct GrpcUpstream {
  explicit GrpcUpstream(asio::io_context& io)
      : acceptor(io, {asio::ip::make_address("127.0.0.1"), 0}) {
    port = acceptor.local_endpoint().port();
    asio::co_spawn(io, accept(), asio::detached);
  }
  asio::awaitable<void> accept() {
    for (;;) {
      auto [ec, s] = co_await acceptor.async_accept(use_nothrow);
      if (ec) co_return;
      asio::co_spawn(acceptor.get_executor(), serve(std::move(s)), asio::detached);
    }
  }
  static std::string chunk(std::string_view data) {
    char size[16];
    snprintf(size, sizeof(size), "%zx\r\n", data.size());
    return std::string(size) + std::string(data) + "\r\n";
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
      heads.push_back(head);
      std::string lower = head;
      for (auto& c : lower)
        c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      std::string body;
      if (auto p = lower.find("content-length: "); p != std::string::npos) {
        const size_t cl = std::stoul(lower.substr(p + 16));
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
      }
      bodies.push_back(body);
      const std::string chunked_head =
          "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Type: application/grpc";
      std::vector<std::string> writes;
      if (target == "/echo") {
        writes.push_back(chunked_head + "+proto\r\n\r\n" + (body.empty() ? "" : chunk(body)) +
                         "0\r\ngrpc-status: 0\r\ngrpc-message: ok\r\n\r\n");
      } else if (target == "/fail") {
        writes.push_back(chunked_head +
                         "\r\n\r\n0\r\ngrpc-status: 5\r\ngrpc-message: not found\r\n\r\n");
      } else if (target == "/stream") {
        const std::string second = frame("second message");
        writes.push_back(chunked_head + "\r\n\r\n" + chunk(frame("one")));
        writes.push_back(chunk(second.substr(0, 7)));
        writes.push_back(chunk(second.substr(7)));
        writes.push_back(chunk(frame("three!")) + "0\r\ngrpc-status: 0\r\n\r\n");
      } else if (target == "/only") {
        writes.push_back(
            "HTTP/1.1 200 OK\r\nContent-Type: application/grpc\r\ngrpc-status: 7\r\n"
            "grpc-message: denied\r\nContent-Length: 0\r\n\r\n");
      } else {
        writes.push_back(
            "HTTP/1.1 404 Not Found\r\nContent-Type: text/plain\r\nContent-Length: 12\r\n\r\n"
            "no such page");
      }
      for (const auto& w : writes) {
        auto [ec, n] = co_await asio::async_write(s, asio::buffer(w), use_nothrow);
        if (ec) co_return;
        asio::steady_timer pause(s.get_executor(), 20ms);  // separate reads for the proxy
        co_await pause.async_wait(use_nothrow);
      }
    }
  }
  asio::ip::tcp::acceptor acceptor;
  uint16_t port = 0;
  std::vector<std::string> heads;
  std::vector<std::string> bodies;
};

struct Response {
  int status = 0;
  std::string head;
  std::string body;
  std::string trailers;  // the chunked trailer section, when any
};

std::optional<Response> parse_response(std::string_view raw) {
  http::ResponseHead h;
  auto r = http::parse_response_head(raw, "POST", h);
  if (r.status != http::ParseStatus::kComplete) return std::nullopt;
  Response out;
  out.status = h.status;
  out.head = std::string(raw.substr(0, h.head_bytes));
  std::string_view rest = raw.substr(h.head_bytes);
  if (h.body == http::BodyKind::kContentLength) {
    if (rest.size() < h.content_length) return std::nullopt;
    out.body = std::string(rest.substr(0, h.content_length));
  } else if (h.body == http::BodyKind::kChunked) {
    http::ChunkedDecoder dec;
    while (!dec.done()) {
      auto s = dec.feed(rest);
      if (s.error != http::ParseError::kNone || (s.consumed == 0 && s.data.empty())) {
        return std::nullopt;
      }
      out.body.append(s.data);
      rest.remove_prefix(s.consumed);
    }
    out.trailers = std::string(dec.trailers());
  }
  return out;
}

class GrpcWebStreamTest : public ::testing::Test {
 protected:
  GrpcWebStreamTest() : stats_(1), worker_(0, stats_), upstream_(worker_.io()) {
    testing::register_test_filters(registry_);
  }

  void apply(bool grpc_web = true) {
    snapshot::ProxyConfig c;
    c.version = 1;
    snapshot::Listener l;
    l.name = "default/gw";
    l.address = "127.0.0.1";
    l.port = 8080;
    if (grpc_web) l.http.filters = {{"grpc_web", "{}"}};
    snapshot::VirtualHost vh;
    vh.name = "default/vs";
    vh.domains = {"*"};
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

  // Sends a POST with these headers and body pieces (chunked when more than one) and waits for
  // the whole response.
  Response call(std::string_view path, std::string_view content_type,
                const std::vector<std::string>& pieces, std::string_view extra = "") {
    auto p = connect();
    std::string req = "POST " + std::string(path) +
                      " HTTP/1.1\r\nHost: a\r\nContent-Type: " + std::string(content_type) +
                      "\r\n" + std::string(extra);
    if (pieces.size() == 1) {
      req += "Content-Length: " + std::to_string(pieces[0].size()) + "\r\n\r\n" + pieces[0];
      p->send(req);
    } else {
      p->send(req + "Transfer-Encoding: chunked\r\n\r\n");
      for (const auto& piece : pieces) {
        run_until([] { return false; }, 5ms);
        p->send(GrpcUpstream::chunk(piece));
      }
      p->send("0\r\n\r\n");
    }
    std::optional<Response> r;
    run_until([&] { return (r = parse_response(p->to_client)).has_value(); });
    return r.value_or(Response{});
  }

  stats::Registry stats_;
  Worker worker_;
  GrpcUpstream upstream_;
  filters::Registry registry_;
  std::shared_ptr<const Runtime> runtime_;
};

bool has_line(const std::string& head, std::string_view line) {
  std::string h = head, l(line);
  for (auto& c : h)
    c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  for (auto& c : l)
    c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return h.find("\r\n" + l + "\r\n") != std::string::npos;
}

// ---- The filter's hooks, driven directly
// --------------------------------------------------------- (The translated request is gRPC, which
// the stream sends only to HTTP/2 upstreams: the whole path through the stream to a real gRPC
// server is tests/integration/test_grpc_web.py.)

class FakeCallbacks final : public filters::FilterCallbacks {
 public:
  explicit FakeCallbacks(asio::io_context& io, stats::WorkerRow& row) : io_(io), row_(row) {}
  void send_local_reply(int status, std::string_view body, std::string_view) override {
    reply_status = status;
    reply_body = std::string(body);
  }
  asio::awaitable<bool> sleep(std::chrono::milliseconds) override { co_return true; }
  const transport::ConnectionInfo& connection() const override { return info_; }
  const snapshot::Route* route() const override { return nullptr; }
  asio::any_io_executor executor() override { return io_.get_executor(); }
  stats::WorkerRow* worker_stats() override { return &row_; }

  int reply_status = 0;
  std::string reply_body;

 private:
  asio::io_context& io_;
  stats::WorkerRow& row_;
  transport::ConnectionInfo info_;
};

template <typename T>
asio::awaitable<void> store(asio::awaitable<T> a, std::optional<T>* out) {
  *out = co_await std::move(a);
}

class GrpcWebFilterTest : public ::testing::Test {
 protected:
  GrpcWebFilterTest() : cb_(io_, row_) {
    auto f = filters::compile_grpc_web("{}");
    EXPECT_TRUE(f.ok());
    factory_ = f.value();
    filter_ = factory_->create(cb_);
  }
  template <typename T>
  T run(asio::awaitable<T> a) {
    std::optional<T> out;
    asio::co_spawn(io_, store(std::move(a), &out), asio::detached);
    io_.restart();
    io_.run();
    EXPECT_TRUE(out.has_value());
    return *out;
  }
  http::RequestHeaders request(std::string_view content_type, std::string_view extra_name = {},
                               std::string_view extra_value = {}) {
    http::RequestHeaders h;
    h.method = "POST";
    h.path = "/pkg.Svc/Method";
    h.has_body = true;
    h.content_length = 100;
    h.headers.add("Content-Type", content_type);
    h.headers.add("X-Grpc-Web", "1");
    h.headers.add("X-User-Agent", "grpc-web-javascript/0.1");
    if (!extra_name.empty()) h.headers.add(extra_name, extra_value);
    return h;
  }
  http::ResponseHeaders grpc_response(std::string_view content_type = "application/grpc+proto") {
    http::ResponseHeaders r;
    r.status = 200;
    r.headers.add("content-type", content_type);
    return r;
  }
  // The body hooks over pieces, then the trailers (if any) and the end, as the stream calls them.
  std::string respond(const std::vector<std::string>& pieces, http::HeaderMap* trailers) {
    std::string out;
    for (const auto& p : pieces) {
      std::string b = p;
      EXPECT_EQ(run(filter_->on_response_body(b, false)), filters::DataStatus::kContinue);
      out += b;
    }
    if (trailers) {
      EXPECT_EQ(run(filter_->on_response_trailers(*trailers)), filters::DataStatus::kContinue);
    }
    std::string end;
    EXPECT_EQ(run(filter_->on_response_body(end, true)), filters::DataStatus::kContinue);
    return out + end;
  }

  asio::io_context io_;
  stats::WorkerRow row_;
  FakeCallbacks cb_;
  std::shared_ptr<const filters::FilterFactory> factory_;
  std::unique_ptr<filters::StreamFilter> filter_;
};

TEST_F(GrpcWebFilterTest, BinaryCallIsTranslatedBothWays) {
  auto req = request("application/grpc-web+proto");
  EXPECT_TRUE(factory_->applies(req));
  EXPECT_EQ(run(filter_->on_request_headers(req, false)), filters::HeadersStatus::kContinue);
  EXPECT_EQ(req.headers.get("content-type"), std::string_view("application/grpc+proto"));
  EXPECT_EQ(req.headers.get("te"), std::string_view("trailers"));
  EXPECT_FALSE(req.headers.has("x-grpc-web"));
  EXPECT_EQ(req.headers.get("x-user-agent"), std::string_view("grpc-web-javascript/0.1"));
  EXPECT_EQ(req.content_length, uint64_t{100});  // a binary body keeps its length
  const std::string msg = frame("\x0a\x05hello");
  std::string body = msg;
  EXPECT_EQ(run(filter_->on_request_body(body, true)), filters::DataStatus::kContinue);
  EXPECT_EQ(body, msg);
  EXPECT_EQ(row_.grpc_web_requests[0].get(), 1u);

  auto resp = grpc_response();
  resp.content_length = 10;
  EXPECT_EQ(run(filter_->on_response_headers(resp, false)), filters::HeadersStatus::kContinue);
  EXPECT_EQ(resp.headers.get("content-type"), std::string_view("application/grpc-web+proto"));
  EXPECT_FALSE(resp.content_length.has_value());
  http::HeaderMap trailers;
  trailers.add("Grpc-Status", "0");
  trailers.add("grpc-message", "ok");
  EXPECT_EQ(respond({msg.substr(0, 3), msg.substr(3)}, &trailers),
            msg + trailer_frame("grpc-status: 0\r\ngrpc-message: ok\r\n"));
  EXPECT_TRUE(trailers.empty());  // no HTTP trailers reach the client
}

TEST_F(GrpcWebFilterTest, ErrorStatusArrivesInTheTrailerFrame) {
  auto req = request("application/grpc-web");
  run(filter_->on_request_headers(req, false));
  EXPECT_EQ(req.headers.get("content-type"), std::string_view("application/grpc"));
  auto resp = grpc_response("application/grpc");
  run(filter_->on_response_headers(resp, false));
  EXPECT_EQ(resp.headers.get("content-type"), std::string_view("application/grpc-web"));
  http::HeaderMap trailers;
  trailers.add("grpc-status", "5");
  trailers.add("grpc-message", "not found");
  EXPECT_EQ(respond({}, &trailers), trailer_frame("grpc-status: 5\r\ngrpc-message: not found\r\n"));
}

TEST_F(GrpcWebFilterTest, TextModeDecodesARequestSplitAnywhereAndEncodesTheResponse) {
  auto req = request("application/grpc-web-text");
  run(filter_->on_request_headers(req, false));
  EXPECT_EQ(req.headers.get("content-type"), std::string_view("application/grpc"));
  EXPECT_FALSE(req.content_length.has_value());  // the decoded body is shorter
  EXPECT_EQ(row_.grpc_web_requests[1].get(), 1u);
  const std::string msg = frame("a message of some length, to be split");
  const std::string text = common::base64_encode(msg);
  std::string upstream;
  for (size_t at = 0, n = 1; at < text.size(); at += n, n = n % 7 + 1) {
    std::string piece = text.substr(at, n);
    EXPECT_EQ(run(filter_->on_request_body(piece, false)), filters::DataStatus::kContinue);
    upstream += piece;
  }
  std::string last;
  EXPECT_EQ(run(filter_->on_request_body(last, true)), filters::DataStatus::kContinue);
  EXPECT_EQ(upstream + last, msg);

  auto resp = grpc_response();
  run(filter_->on_response_headers(resp, false));
  EXPECT_EQ(resp.headers.get("content-type"), std::string_view("application/grpc-web-text+proto"));
  http::HeaderMap trailers;
  trailers.add("grpc-status", "0");
  const std::string out = respond({msg.substr(0, 4), msg.substr(4, 9), msg.substr(13)}, &trailers);
  auto decoded = decode_split(out, {});
  ASSERT_TRUE(decoded) << out;
  EXPECT_EQ(*decoded, msg + trailer_frame("grpc-status: 0\r\n"));
}

TEST_F(GrpcWebFilterTest, ServerStreamingInTextModeSendsEachMessageWhole) {
  auto req = request("application/grpc-web-text+proto");
  run(filter_->on_request_headers(req, false));
  auto resp = grpc_response();
  run(filter_->on_response_headers(resp, false));
  // A message that ends with a piece is readable at once: its text is padded there.
  std::string one = frame("one");
  run(filter_->on_response_body(one, false));
  EXPECT_EQ(decode_split(one, {}), std::optional<std::string>(frame("one")));
  const std::string second = frame("second message");
  std::string a = second.substr(0, 7), b = second.substr(7);
  run(filter_->on_response_body(a, false));
  run(filter_->on_response_body(b, false));
  EXPECT_EQ(decode_split(a + b, {}), std::optional<std::string>(second));
  http::HeaderMap trailers;
  trailers.add("grpc-status", "0");
  const std::string rest = respond({frame("three!")}, &trailers);
  EXPECT_EQ(decode_split(one + a + b + rest, {}),
            std::optional<std::string>(frame("one") + second + frame("three!") +
                                       trailer_frame("grpc-status: 0\r\n")));
}

TEST_F(GrpcWebFilterTest, BinaryClientAcceptingTextGetsText) {
  auto req = request("application/grpc-web+proto", "Accept", "application/grpc-web-text");
  run(filter_->on_request_headers(req, false));
  auto resp = grpc_response();
  run(filter_->on_response_headers(resp, false));
  EXPECT_EQ(resp.headers.get("content-type"), std::string_view("application/grpc-web-text+proto"));
  http::HeaderMap trailers;
  trailers.add("grpc-status", "0");
  const std::string msg = frame("hi");
  auto decoded = decode_split(respond({msg}, &trailers), {});
  ASSERT_TRUE(decoded);
  EXPECT_EQ(*decoded, msg + trailer_frame("grpc-status: 0\r\n"));
}

TEST_F(GrpcWebFilterTest, TrailersOnlyResponseKeepsItsStatusInTheHead) {
  auto req = request("application/grpc-web+proto");
  run(filter_->on_request_headers(req, false));
  auto resp = grpc_response("application/grpc");
  resp.has_body = false;
  resp.headers.add("grpc-status", "7");
  resp.headers.add("grpc-message", "denied");
  run(filter_->on_response_headers(resp, true));
  EXPECT_EQ(resp.headers.get("content-type"), std::string_view("application/grpc-web"));
  EXPECT_EQ(resp.headers.get("grpc-status"), std::string_view("7"));
  EXPECT_EQ(resp.headers.get("grpc-message"), std::string_view("denied"));
  EXPECT_EQ(respond({}, nullptr), "");  // no body, no frame
}

TEST_F(GrpcWebFilterTest, MalformedTextBodyStopsWithA400AndIsCounted) {
  auto req = request("application/grpc-web-text");
  run(filter_->on_request_headers(req, false));
  std::string ok = "AAAA";
  EXPECT_EQ(run(filter_->on_request_body(ok, false)), filters::DataStatus::kContinue);
  std::string bad = "AA*A";
  EXPECT_EQ(run(filter_->on_request_body(bad, false)), filters::DataStatus::kStop);
  EXPECT_EQ(cb_.reply_status, 400);
  EXPECT_NE(cb_.reply_body.find("not valid base64"), std::string::npos);
  EXPECT_EQ(row_.grpc_web_malformed.get(), 1u);
  // Truncated: every piece is fine, but the body ends inside a quantum.
  auto f2 = factory_->create(cb_);
  auto req2 = request("application/grpc-web-text");
  run(f2->on_request_headers(req2, false));
  std::string piece = "AAAAAA";
  EXPECT_EQ(run(f2->on_request_body(piece, false)), filters::DataStatus::kContinue);
  std::string end;
  EXPECT_EQ(run(f2->on_request_body(end, true)), filters::DataStatus::kStop);
  EXPECT_EQ(row_.grpc_web_malformed.get(), 2u);
}

TEST_F(GrpcWebFilterTest, NonGrpcAnswersPassUntouched) {
  EXPECT_FALSE(factory_->applies(request("application/json")));
  auto req = request("application/grpc-web");
  run(filter_->on_request_headers(req, false));
  // A local reply or an error page: not gRPC, relayed as it is.
  http::ResponseHeaders page;
  page.status = 404;
  page.headers.add("content-type", "text/plain");
  page.content_length = 12;
  run(filter_->on_response_headers(page, false));
  EXPECT_EQ(page.headers.get("content-type"), std::string_view("text/plain"));
  EXPECT_EQ(page.content_length, uint64_t{12});
  EXPECT_EQ(respond({"no such page"}, nullptr), "no such page");
}

TEST_F(GrpcWebStreamTest, OtherRequestsPassUntouched) {
  apply();
  // Not gRPC-Web: nothing changes, nothing is counted (the route's chain has no filter for it).
  auto plain = call("/echo", "application/json", {"{}"});
  ASSERT_EQ(upstream_.heads.size(), 1u);
  EXPECT_TRUE(has_line(upstream_.heads[0], "content-type: application/json"));
  EXPECT_FALSE(has_line(upstream_.heads[0], "te: trailers"));
  EXPECT_EQ(upstream_.bodies[0], "{}");
  EXPECT_TRUE(has_line(plain.head, "content-type: application/grpc+proto"));  // untouched
  EXPECT_NE(plain.trailers.find("grpc-status: 0"), std::string::npos) << plain.trailers;
  EXPECT_EQ(stats_.worker_row(0).grpc_web_requests[0].get(), 0u);
}

TEST_F(GrpcWebStreamTest, DisabledMeansUntranslated) {
  apply(false);
  auto r = call("/echo", "application/grpc-web", {frame("x")});
  ASSERT_EQ(upstream_.heads.size(), 1u);
  EXPECT_TRUE(has_line(upstream_.heads[0], "content-type: application/grpc-web"));
  EXPECT_TRUE(has_line(r.head, "content-type: application/grpc+proto"));
  EXPECT_NE(r.trailers.find("grpc-status: 0"), std::string::npos) << r.trailers;
}

}  // namespace
}  // namespace portico::proxy
