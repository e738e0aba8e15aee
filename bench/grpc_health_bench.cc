// gRPC health check micro-benchmarks (src/proxy/upstream/grpc_health.h), no sockets:
// BM_GrpcCheckOnKeptSession runs one check per iteration on a kept GrpcHealthSession against an
// nghttp2 server session wired back to back (the server's side is included in the time: an upper
// bound for the health thread's protocol work per check); BM_GrpcSessionMemory reports, as the
// counter bytes_per_session, the heap a kept session holds after one check (what each
// gRPC-checked endpoint costs between checks).
#include <benchmark/benchmark.h>
#include <malloc.h>
#include <nghttp2/nghttp2.h>

#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "proxy/upstream/grpc_health.h"

namespace {

using namespace portico::proxy::upstream::grpc_health;

struct Server {
  Server() {
    nghttp2_session_callbacks* cb = nullptr;
    nghttp2_session_callbacks_new(&cb);
    nghttp2_session_callbacks_set_on_frame_recv_callback(
        cb, [](nghttp2_session*, const nghttp2_frame* f, void* u) {
          if (f->hd.type == NGHTTP2_DATA && (f->hd.flags & NGHTTP2_FLAG_END_STREAM) != 0)
            static_cast<Server*>(u)->ended = f->hd.stream_id;
          return 0;
        });
    nghttp2_session_server_new(&session, cb, this);
    nghttp2_session_callbacks_del(cb);
    nghttp2_submit_settings(session, NGHTTP2_FLAG_NONE, nullptr, 0);
  }
  ~Server() { nghttp2_session_del(session); }

  // SERVING, as a trailers-only-free unary answer: headers, one message, trailers.
  void answer(int32_t id) {
    static const char kMessage[] = {0, 0, 0, 0, 2, 0x08, 0x01};
    nghttp2_nv h[] = {
        {(uint8_t*)":status", (uint8_t*)"200", 7, 3, NGHTTP2_NV_FLAG_NONE},
        {(uint8_t*)"content-type", (uint8_t*)"application/grpc", 12, 16, NGHTTP2_NV_FLAG_NONE}};
    nghttp2_submit_headers(session, NGHTTP2_FLAG_NONE, id, nullptr, h, 2, nullptr);
    nghttp2_data_provider p{};
    p.read_callback = [](nghttp2_session* s, int32_t sid, uint8_t* buf, size_t, uint32_t* flags,
                         nghttp2_data_source*, void*) -> ssize_t {
      std::memcpy(buf, kMessage, sizeof kMessage);
      *flags |= NGHTTP2_DATA_FLAG_EOF | NGHTTP2_DATA_FLAG_NO_END_STREAM;
      nghttp2_nv t[] = {{(uint8_t*)"grpc-status", (uint8_t*)"0", 11, 1, NGHTTP2_NV_FLAG_NONE}};
      nghttp2_submit_trailer(s, sid, t, 1);
      return sizeof kMessage;
    };
    nghttp2_submit_data(session, NGHTTP2_FLAG_NONE, id, &p);
  }

  nghttp2_session* session = nullptr;
  int32_t ended = 0;
};

// One check on `c` (kept) against `s`; false when it did not end SERVING.
bool one_check(GrpcHealthSession& c, Server& s, const std::string& body, std::string& wire) {
  CheckRequest r;
  r.authority = "10.0.0.1:50051";
  r.body = body;
  if (!c.start(r)) return false;
  wire.clear();
  c.take_output(&wire);
  nghttp2_session_mem_recv(s.session, reinterpret_cast<const uint8_t*>(wire.data()), wire.size());
  s.answer(s.ended);
  wire.clear();
  const uint8_t* d = nullptr;
  ssize_t n = 0;
  while ((n = nghttp2_session_mem_send(s.session, &d)) > 0)
    wire.append(reinterpret_cast<const char*>(d), static_cast<size_t>(n));
  c.receive(wire.data(), wire.size());
  wire.clear();
  c.take_output(&wire);  // SETTINGS ACK, WINDOW_UPDATE: delivered with the next check
  if (!wire.empty())
    nghttp2_session_mem_recv(s.session, reinterpret_cast<const uint8_t*>(wire.data()), wire.size());
  return c.done() && c.verdict().ok();
}

void BM_GrpcCheckOnKeptSession(benchmark::State& state) {
  const std::string body = encode_request("shop.Cart");
  std::string wire;
  auto c = std::make_unique<GrpcHealthSession>();
  auto s = std::make_unique<Server>();
  uint64_t checks = 0;
  for (auto _ : state) {
    if (!c->reusable() && checks > 0) {
      state.PauseTiming();
      c = std::make_unique<GrpcHealthSession>();
      s = std::make_unique<Server>();
      state.ResumeTiming();
    }
    if (!one_check(*c, *s, body, wire)) {
      state.SkipWithError("the check did not end SERVING");
      break;
    }
    ++checks;
  }
  state.SetItemsProcessed(static_cast<int64_t>(checks));
}
BENCHMARK(BM_GrpcCheckOnKeptSession);

void BM_GrpcSessionMemory(benchmark::State& state) {
  const std::string body = encode_request("shop.Cart");
  std::string wire;
  double per_session = 0;
  for (auto _ : state) {
    std::vector<std::unique_ptr<GrpcHealthSession>> kept;
    kept.reserve(1000);
    const size_t before = mallinfo2().uordblks;
    for (int i = 0; i < 1000; ++i) {
      auto c = std::make_unique<GrpcHealthSession>();
      Server s;
      if (!one_check(*c, s, body, wire)) {
        state.SkipWithError("the check did not end SERVING");
        return;
      }
      kept.push_back(std::move(c));
    }
    per_session = static_cast<double>(mallinfo2().uordblks - before) / 1000.0;
  }
  state.counters["bytes_per_session"] = per_session;
}
BENCHMARK(BM_GrpcSessionMemory)->Iterations(1);

}  // namespace
