// gRPC health checks: the hand-encoded protobuf and gRPC framing, and GrpcHealthSession against
// an nghttp2 server session wired back to back (no sockets): every answer the health thread must
// tell apart (SERVING, NOT_SERVING, trailers-only errors, resets, GOAWAY, bad framing, limits).
#include "proxy/upstream/grpc_health.h"

#include <nghttp2/nghttp2.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <map>
#include <string>
#include <vector>

namespace portico::proxy::upstream::grpc_health {
namespace {

using namespace std::string_literals;

TEST(GrpcHealthFraming, EncodesTheRequest) {
  EXPECT_EQ(encode_request(""), "\0\0\0\0\0"s);  // an empty message: no field at all
  EXPECT_EQ(encode_request("svc"), "\0\0\0\0\x05\x0a\x03svc"s);
  const std::string long_name(200, 'x');
  // Length 200 is a two-byte varint (0xC8 0x01); the message is 203 bytes.
  EXPECT_EQ(encode_request(long_name), "\0\0\0\0\xcb\x0a\xc8\x01"s + long_name);
}

TEST(GrpcHealthFraming, DecodesTheResponseStatus) {
  uint64_t st = 99;
  std::string err;
  ASSERT_TRUE(decode_response("\x08\x01"s, &st, &err)) << err;
  EXPECT_EQ(st, 1u);
  ASSERT_TRUE(decode_response(""s, &st, &err));  // proto3 default: UNKNOWN
  EXPECT_EQ(st, 0u);
  // Unknown fields of every wire type are skipped; the last status wins.
  ASSERT_TRUE(
      decode_response("\x12\x02"
                      "ab"
                      "\x08\x01"
                      "\x19\x01\x02\x03\x04\x05\x06\x07\x08"
                      "\x25\x01\x02\x03\x04"
                      "\x30\x96\x01"
                      "\x08\x02"s,
                      &st, &err))
      << err;
  EXPECT_EQ(st, 2u);
}

TEST(GrpcHealthFraming, RejectsBrokenResponses) {
  uint64_t st = 0;
  std::string err;
  EXPECT_FALSE(decode_response("\x08"s, &st, &err));  // truncated varint
  EXPECT_EQ(err, "truncated varint");
  EXPECT_FALSE(decode_response("\x0a\x01x"s, &st, &err));  // status is not a varint
  EXPECT_EQ(err, "status (field 1) is not a varint");
  EXPECT_FALSE(decode_response("\x13"s, &st, &err));  // a group (field 2, wire type 3)
  EXPECT_EQ(err, "unsupported wire type 3");
  EXPECT_FALSE(
      decode_response("\x12\x05"
                      "ab"s,
                      &st, &err));
  EXPECT_EQ(err, "truncated length-delimited field");
  EXPECT_FALSE(decode_response("\x08\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01"s, &st, &err));
  EXPECT_FALSE(decode_response("\x1d\x01\x02"s, &st, &err));  // fixed32 cut short
  EXPECT_FALSE(decode_response("\x00\x01"s, &st, &err));      // field number 0
}

TEST(GrpcHealthFraming, UnframesExactlyOneMessage) {
  std::string_view msg;
  std::string err;
  const std::string one = "\0\0\0\0\x02\x08\x01"s, empty = "\0\0\0\0\0"s;
  ASSERT_TRUE(unframe(one, &msg, &err)) << err;  // msg points into the body
  EXPECT_EQ(msg, "\x08\x01"s);
  ASSERT_TRUE(unframe(empty, &msg, &err));
  EXPECT_EQ(msg, "");
  EXPECT_FALSE(unframe("", &msg, &err));
  EXPECT_EQ(err, "no response message");
  EXPECT_FALSE(unframe("\0\0\0"s, &msg, &err));
  EXPECT_EQ(err, "truncated message prefix");
  EXPECT_FALSE(unframe("\x01\0\0\0\x02\x08\x01"s, &msg, &err));
  EXPECT_EQ(err, "compressed message (none was offered)");
  EXPECT_FALSE(unframe("\0\0\0\0\x03\x08\x01"s, &msg, &err));
  EXPECT_EQ(err, "truncated message");
  EXPECT_FALSE(unframe("\0\0\0\0\x02\x08\x01\0\0\0\0\0"s, &msg, &err));
  EXPECT_EQ(err, "more than one message");
  EXPECT_FALSE(unframe("\0\x01\0\0\0"s, &msg, &err));
  EXPECT_EQ(err.rfind("message of 16777216 bytes", 0), 0u) << err;
}

TEST(GrpcHealthFraming, GrpcStatusAndNames) {
  uint32_t code = 9;
  EXPECT_TRUE(parse_grpc_status("0", &code));
  EXPECT_EQ(code, 0u);
  EXPECT_TRUE(parse_grpc_status("14", &code));
  EXPECT_EQ(code, 14u);
  EXPECT_FALSE(parse_grpc_status("", &code));
  EXPECT_FALSE(parse_grpc_status("1a", &code));
  EXPECT_FALSE(parse_grpc_status("-1", &code));
  EXPECT_EQ(serving_status_name(1), "SERVING");
  EXPECT_EQ(serving_status_name(2), "NOT_SERVING");
  EXPECT_EQ(serving_status_name(3), "SERVICE_UNKNOWN");
  EXPECT_EQ(serving_status_name(0), "UNKNOWN");
  EXPECT_EQ(serving_status_name(7), "status 7");
}

// ---- GrpcHealthSession against an nghttp2 server -----------------------------------------

// The server side: records each request, answers as the test says.
class FakeServer {
 public:
  struct Request {
    std::map<std::string, std::string> headers;
    std::string body;
    bool ended = false;
  };

  FakeServer() {
    nghttp2_session_callbacks* cb = nullptr;
    nghttp2_session_callbacks_new(&cb);
    nghttp2_session_callbacks_set_on_header_callback(
        cb, [](nghttp2_session*, const nghttp2_frame* f, const uint8_t* n, size_t nl,
               const uint8_t* v, size_t vl, uint8_t, void* u) {
          static_cast<FakeServer*>(u)
              ->requests[f->hd.stream_id]
              .headers[std::string(reinterpret_cast<const char*>(n), nl)] =
              std::string(reinterpret_cast<const char*>(v), vl);
          return 0;
        });
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(
        cb, [](nghttp2_session*, uint8_t, int32_t id, const uint8_t* d, size_t len, void* u) {
          static_cast<FakeServer*>(u)->requests[id].body.append(reinterpret_cast<const char*>(d),
                                                                len);
          return 0;
        });
    nghttp2_session_callbacks_set_on_frame_recv_callback(
        cb, [](nghttp2_session*, const nghttp2_frame* f, void* u) {
          if ((f->hd.flags & NGHTTP2_FLAG_END_STREAM) != 0 &&
              (f->hd.type == NGHTTP2_DATA || f->hd.type == NGHTTP2_HEADERS)) {
            static_cast<FakeServer*>(u)->requests[f->hd.stream_id].ended = true;
          }
          return 0;
        });
    nghttp2_session_server_new(&session, cb, this);
    nghttp2_session_callbacks_del(cb);
    nghttp2_submit_settings(session, NGHTTP2_FLAG_NONE, nullptr, 0);
  }
  ~FakeServer() { nghttp2_session_del(session); }

  void headers(int32_t id, std::vector<std::pair<std::string, std::string>> h, bool end) {
    std::vector<nghttp2_nv> nva;
    for (auto& [k, v] : h) {
      nva.push_back({reinterpret_cast<uint8_t*>(k.data()), reinterpret_cast<uint8_t*>(v.data()),
                     k.size(), v.size(), NGHTTP2_NV_FLAG_NONE});
    }
    nghttp2_submit_headers(session, end ? NGHTTP2_FLAG_END_STREAM : NGHTTP2_FLAG_NONE, id, nullptr,
                           nva.data(), nva.size(), nullptr);
  }
  void data(int32_t id, std::string bytes, bool end) {
    pending_ = std::move(bytes);
    off_ = 0;
    nghttp2_data_provider p{};
    p.read_callback = [](nghttp2_session*, int32_t id, uint8_t* buf, size_t len, uint32_t* flags,
                         nghttp2_data_source*, void* u) -> ssize_t {
      auto* s = static_cast<FakeServer*>(u);
      const size_t n = std::min(len, s->pending_.size() - s->off_);
      std::memcpy(buf, s->pending_.data() + s->off_, n);
      s->off_ += n;
      if (s->off_ == s->pending_.size()) {
        *flags |= NGHTTP2_DATA_FLAG_EOF;
        if (!s->end_data_) *flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM;
        if (!s->trailers_.empty()) {  // after the DATA, ending the stream
          std::vector<nghttp2_nv> nva;
          for (auto& [k, v] : s->trailers_) {
            nva.push_back({reinterpret_cast<uint8_t*>(k.data()),
                           reinterpret_cast<uint8_t*>(v.data()), k.size(), v.size(),
                           NGHTTP2_NV_FLAG_NONE});
          }
          nghttp2_submit_trailer(s->session, id, nva.data(), nva.size());
          s->trailers_.clear();
        }
      }
      return static_cast<ssize_t>(n);
    };
    end_data_ = end;
    nghttp2_submit_data(session, end ? NGHTTP2_FLAG_END_STREAM : NGHTTP2_FLAG_NONE, id, &p);
  }
  // A whole gRPC answer: headers, one message, trailers.
  void answer(int32_t id, std::string message, const std::string& grpc_status = "0") {
    headers(id, {{":status", "200"}, {"content-type", "application/grpc"}}, false);
    trailers_ = {{"grpc-status", grpc_status}};
    data(id, std::string("\0\0\0\0", 4) + static_cast<char>(message.size()) + message, false);
  }

  nghttp2_session* session = nullptr;
  std::map<int32_t, Request> requests;

 private:
  std::string pending_;
  size_t off_ = 0;
  bool end_data_ = true;
  std::vector<std::pair<std::string, std::string>> trailers_;
};

// Moves bytes both ways until neither side has anything to say.
void pump(GrpcHealthSession& c, FakeServer& s) {
  for (int i = 0; i < 50; ++i) {
    std::string out;
    c.take_output(&out);
    if (!out.empty()) {
      nghttp2_session_mem_recv(s.session, reinterpret_cast<const uint8_t*>(out.data()), out.size());
    }
    std::string back;
    for (;;) {
      const uint8_t* d = nullptr;
      const ssize_t n = nghttp2_session_mem_send(s.session, &d);
      if (n <= 0) break;
      back.append(reinterpret_cast<const char*>(d), static_cast<size_t>(n));
    }
    if (!back.empty()) c.receive(back.data(), back.size());
    if (out.empty() && back.empty()) return;
  }
}

struct GrpcHealthSessionTest : ::testing::Test {
  std::vector<std::pair<std::string, std::string>> metadata{{"x-token", "abc"}};
  std::string body = encode_request("shop.Cart");
  GrpcHealthSession c;
  FakeServer s;

  // Starts a check and delivers the request; returns its stream id.
  int32_t begin() {
    CheckRequest r;
    r.authority = "10.0.0.1:50051";
    r.body = body;
    r.metadata = &metadata;
    EXPECT_TRUE(c.start(r));
    pump(c, s);
    EXPECT_FALSE(c.done());
    EXPECT_FALSE(s.requests.empty());
    return s.requests.rbegin()->first;
  }
};

TEST_F(GrpcHealthSessionTest, ServingIsHealthyAndTheConnectionCarriesTheNextCheck) {
  ASSERT_TRUE(c.ok());
  const int32_t id = begin();
  const auto& req = s.requests[id];
  EXPECT_TRUE(req.ended);
  EXPECT_EQ(req.headers.at(":method"), "POST");
  EXPECT_EQ(req.headers.at(":scheme"), "http");
  EXPECT_EQ(req.headers.at(":path"), "/grpc.health.v1.Health/Check");
  EXPECT_EQ(req.headers.at(":authority"), "10.0.0.1:50051");
  EXPECT_EQ(req.headers.at("content-type"), "application/grpc");
  EXPECT_EQ(req.headers.at("te"), "trailers");
  EXPECT_EQ(req.headers.at("x-token"), "abc");
  EXPECT_EQ(req.body, body);
  s.answer(id, "\x08\x01");
  pump(c, s);
  ASSERT_TRUE(c.done());
  EXPECT_TRUE(c.verdict().ok()) << c.verdict().detail;
  EXPECT_TRUE(c.reusable());

  const int32_t second = begin();
  EXPECT_EQ(second, id + 2);
  s.answer(second, "\x08\x02");
  pump(c, s);
  ASSERT_TRUE(c.done());
  EXPECT_EQ(c.verdict().failure, Failure::kNotServing);
  EXPECT_EQ(c.verdict().detail, "NOT_SERVING");
  EXPECT_TRUE(c.reusable());  // a clean answer: the connection stays
}

TEST_F(GrpcHealthSessionTest, EveryStatusButServingFails) {
  for (const auto& [msg, name] : std::vector<std::pair<std::string, std::string>>{
           {"", "UNKNOWN"}, {"\x08\x03", "SERVICE_UNKNOWN"}, {"\x08\x07", "status 7"}}) {
    const int32_t id = begin();
    s.answer(id, msg);
    pump(c, s);
    ASSERT_TRUE(c.done());
    EXPECT_EQ(c.verdict().failure, Failure::kNotServing) << name;
    EXPECT_EQ(c.verdict().detail, name);
  }
}

TEST_F(GrpcHealthSessionTest, TrailersOnlyErrorIsAGrpcStatusFailure) {
  const int32_t id = begin();
  s.headers(id,
            {{":status", "200"},
             {"content-type", "application/grpc"},
             {"grpc-status", "5"},
             {"grpc-message", "unknown service"}},
            true);
  pump(c, s);
  ASSERT_TRUE(c.done());
  EXPECT_EQ(c.verdict().failure, Failure::kGrpcStatus);
  EXPECT_EQ(c.verdict().detail, "grpc-status 5 (NOT_FOUND): unknown service");
  EXPECT_STREQ(failure_name(c.verdict().failure), "grpc_status");

  // Without content-type (a proxy's answer): still the grpc-status.
  const int32_t again = begin();
  s.headers(again, {{":status", "200"}, {"grpc-status", "14"}}, true);
  pump(c, s);
  ASSERT_TRUE(c.done());
  EXPECT_EQ(c.verdict().failure, Failure::kGrpcStatus);
  EXPECT_EQ(c.verdict().detail, "grpc-status 14 (UNAVAILABLE)");

  const int32_t bad = begin();
  s.headers(bad, {{":status", "200"}, {"content-type", "application/grpc"}, {"grpc-status", "x"}},
            true);
  pump(c, s);
  ASSERT_TRUE(c.done());
  EXPECT_EQ(c.verdict().failure, Failure::kBadResponse);
  EXPECT_EQ(c.verdict().detail, "bad grpc-status \"x\"");
}

TEST_F(GrpcHealthSessionTest, NonZeroGrpcStatusInTrailersFailsEvenWithServing) {
  const int32_t id = begin();
  s.answer(id, "\x08\x01", "14");
  pump(c, s);
  ASSERT_TRUE(c.done());
  EXPECT_EQ(c.verdict().failure, Failure::kGrpcStatus);
  EXPECT_EQ(c.verdict().detail, "grpc-status 14 (UNAVAILABLE)");
}

TEST_F(GrpcHealthSessionTest, HttpStatusOtherThan200Fails) {
  const int32_t id = begin();
  s.headers(id, {{":status", "503"}, {"content-type", "text/plain"}}, true);
  pump(c, s);
  ASSERT_TRUE(c.done());
  EXPECT_EQ(c.verdict().failure, Failure::kHttpStatus);
  EXPECT_EQ(c.verdict().detail, "HTTP status 503");
}

TEST_F(GrpcHealthSessionTest, WrongContentTypeAndMissingGrpcStatusAreBadResponses) {
  int32_t id = begin();
  s.headers(id, {{":status", "200"}, {"content-type", "text/html"}, {"grpc-status", "0"}}, true);
  pump(c, s);
  ASSERT_TRUE(c.done());
  EXPECT_EQ(c.verdict().failure, Failure::kBadResponse);
  EXPECT_EQ(c.verdict().detail, "content-type \"text/html\"");

  id = begin();
  s.headers(id, {{":status", "200"}, {"content-type", "application/grpc"}}, false);
  s.data(id, "\0\0\0\0\x02\x08\x01"s, true);  // no trailers
  pump(c, s);
  ASSERT_TRUE(c.done());
  EXPECT_EQ(c.verdict().failure, Failure::kBadResponse);
  EXPECT_EQ(c.verdict().detail, "no grpc-status");

  id = begin();
  s.headers(id, {{":status", "200"}, {"content-type", "application/grpc+proto"}}, false);
  s.data(id, "\0\0\0\0\x05\x08\x01"s, false);  // prefix says 5 bytes, 2 follow
  pump(c, s);
  s.headers(id, {{"grpc-status", "0"}}, true);
  pump(c, s);
  ASSERT_TRUE(c.done());
  EXPECT_EQ(c.verdict().failure, Failure::kBadResponse);
  EXPECT_EQ(c.verdict().detail, "truncated message");
}

TEST_F(GrpcHealthSessionTest, ResetStreamFails) {
  const int32_t id = begin();
  nghttp2_submit_rst_stream(s.session, NGHTTP2_FLAG_NONE, id, NGHTTP2_INTERNAL_ERROR);
  pump(c, s);
  ASSERT_TRUE(c.done());
  EXPECT_EQ(c.verdict().failure, Failure::kReset);
  EXPECT_EQ(c.verdict().detail, "RST_STREAM INTERNAL_ERROR");
}

TEST_F(GrpcHealthSessionTest, GoawayBeforeTheStreamRefusesItAndEndsTheConnection) {
  const int32_t id = begin();
  ASSERT_EQ(id, 1);
  nghttp2_submit_goaway(s.session, NGHTTP2_FLAG_NONE, 0, NGHTTP2_NO_ERROR, nullptr, 0);
  pump(c, s);
  ASSERT_TRUE(c.done());
  EXPECT_EQ(c.verdict().failure, Failure::kRefused);
  EXPECT_FALSE(c.reusable());
  CheckRequest r;
  r.authority = "a";
  r.body = body;
  EXPECT_FALSE(c.start(r));  // no new stream on it
}

TEST_F(GrpcHealthSessionTest, GracefulGoawayAfterTheStreamStillAnswersButEndsReuse) {
  const int32_t id = begin();
  nghttp2_submit_goaway(s.session, NGHTTP2_FLAG_NONE, id, NGHTTP2_NO_ERROR, nullptr, 0);
  s.answer(id, "\x08\x01");
  pump(c, s);
  ASSERT_TRUE(c.done());
  EXPECT_TRUE(c.verdict().ok()) << c.verdict().detail;
  EXPECT_FALSE(c.reusable());
}

TEST_F(GrpcHealthSessionTest, GoawayWithAnErrorThenCloseIsAProtocolFailure) {
  begin();
  nghttp2_submit_goaway(s.session, NGHTTP2_FLAG_NONE, 1, NGHTTP2_ENHANCE_YOUR_CALM, nullptr, 0);
  pump(c, s);
  ASSERT_FALSE(c.done());
  c.connection_closed("closed by the upstream before the answer");
  ASSERT_TRUE(c.done());
  EXPECT_EQ(c.verdict().failure, Failure::kProtocol);
  EXPECT_EQ(c.verdict().detail,
            "GOAWAY ENHANCE_YOUR_CALM, then closed by the upstream before the answer");
}

TEST_F(GrpcHealthSessionTest, OversizedBodyIsCutShort) {
  const int32_t id = begin();
  s.headers(id, {{":status", "200"}, {"content-type", "application/grpc"}}, false);
  s.data(id, std::string(kMaxBodyBytes + 100, '\0'), false);
  pump(c, s);
  ASSERT_TRUE(c.done());
  EXPECT_EQ(c.verdict().failure, Failure::kBadResponse);
  EXPECT_EQ(c.verdict().detail, "response body over 16384 bytes");
}

TEST_F(GrpcHealthSessionTest, OversizedHeadersAreCutShort) {
  const int32_t id = begin();
  std::vector<std::pair<std::string, std::string>> h{{":status", "200"},
                                                     {"content-type", "application/grpc"}};
  for (int i = 0; i < 40; ++i)
    h.emplace_back("x-filler-" + std::to_string(i), std::string(1000, 'a'));
  s.headers(id, h, false);
  pump(c, s);
  ASSERT_TRUE(c.done());
  EXPECT_EQ(c.verdict().failure, Failure::kBadResponse);
  EXPECT_EQ(c.verdict().detail, "response headers over 16384 bytes");
}

TEST_F(GrpcHealthSessionTest, NotHttp2IsAProtocolFailure) {
  CheckRequest r;
  r.authority = "a";
  r.body = body;
  ASSERT_TRUE(c.start(r));
  std::string out;
  c.take_output(&out);
  EXPECT_EQ(out.rfind("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 0), 0u);  // prior knowledge
  const std::string h1 = "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n";
  c.receive(h1.data(), h1.size());
  out.clear();
  c.take_output(&out);  // the GOAWAY that ends the session
  ASSERT_TRUE(c.done());
  EXPECT_EQ(c.verdict().failure, Failure::kProtocol);
  EXPECT_EQ(c.verdict().detail.rfind("HTTP/2 protocol error (GOAWAY ", 0), 0u)
      << c.verdict().detail;
  EXPECT_FALSE(c.reusable());
}

TEST_F(GrpcHealthSessionTest, ClosedBeforeTheAnswerIsAConnectionFailure) {
  begin();
  c.connection_closed("closed by the upstream before the answer");
  ASSERT_TRUE(c.done());
  EXPECT_EQ(c.verdict().failure, Failure::kConnection);
  EXPECT_FALSE(c.reusable());
}

// What the upstream sends is untrusted: random and mutated input must end every check with a
// verdict, never a crash (the suite also runs under the sanitizers in CI).
TEST(GrpcHealthRobustness, RandomMessagesAndFrames) {
  uint64_t x = 0x243F6A8885A308D3ULL;
  auto next = [&] {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return x;
  };
  for (int i = 0; i < 20000; ++i) {
    std::string b(next() % 24, '\0');
    for (auto& c : b)
      c = static_cast<char>(next() % 4 == 0 ? 0x80 | (next() & 0x7F) : next() & 0x3F);
    uint64_t st = 0;
    std::string err;
    std::string_view msg;
    decode_response(b, &st, &err);
    unframe(b, &msg, &err);
  }
}

TEST(GrpcHealthRobustness, MutatedAnswersAlwaysEndWithAVerdict) {
  uint64_t x = 0x9E3779B97F4A7C15ULL;
  auto next = [&] {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return x;
  };
  const std::string body = encode_request("svc");
  int passed = 0;
  for (int i = 0; i < 2000; ++i) {
    GrpcHealthSession c;
    FakeServer s;
    CheckRequest r;
    r.authority = "h:1";
    r.body = body;
    ASSERT_TRUE(c.start(r));
    std::string out;
    c.take_output(&out);
    nghttp2_session_mem_recv(s.session, reinterpret_cast<const uint8_t*>(out.data()), out.size());
    s.answer(1, "\x08\x01");
    std::string answer;
    for (;;) {
      const uint8_t* d = nullptr;
      const ssize_t n = nghttp2_session_mem_send(s.session, &d);
      if (n <= 0) break;
      answer.append(reinterpret_cast<const char*>(d), static_cast<size_t>(n));
    }
    ASSERT_FALSE(answer.empty());
    const int flips = i == 0 ? 0 : 1 + static_cast<int>(next() % 4);
    for (int k = 0; k < flips; ++k)
      answer[next() % answer.size()] = static_cast<char>(next());
    // Delivered in random pieces.
    for (size_t off = 0; off < answer.size();) {
      const size_t n = std::min<size_t>(answer.size() - off, 1 + next() % 64);
      c.receive(answer.data() + off, n);
      off += n;
    }
    out.clear();
    c.take_output(&out);
    if (!c.done()) c.connection_closed("closed");
    ASSERT_TRUE(c.done());
    if (i == 0) {
      EXPECT_TRUE(c.verdict().ok()) << c.verdict().detail;  // the unmutated answer
    }
    passed += c.verdict().ok() ? 1 : 0;
  }
  EXPECT_LT(passed, 2000);  // mutations were noticed (most flips land in framing or HPACK)
}

}  // namespace
}  // namespace portico::proxy::upstream::grpc_health
