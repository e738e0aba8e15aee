// Micro-benchmarks of the HTTP/1.1 parser: a typical ~300-byte request head with 8 headers, a
// response head, and chunked decoding.
#include <benchmark/benchmark.h>

#include <string>

#include "proxy/http/h1_parser.h"

namespace {

using namespace portico::proxy::http;

const std::string kRequest =
    "GET /api/v1/users/12345/orders?limit=20&offset=40 HTTP/1.1\r\n"
    "Host: api.example.com\r\n"
    "User-Agent: Mozilla/5.0 (X11; Linux x86_64) portico-bench/1.0\r\n"
    "Accept: application/json\r\n"
    "Accept-Encoding: gzip, deflate, br\r\n"
    "Authorization: Bearer abcdef0123456789\r\n"
    "X-Request-Id: 7f3c2a10-5e1b-4c8e-9d2f\r\n"
    "Connection: keep-alive\r\n"
    "Cookie: session=0123456789abcdef\r\n"
    "\r\n";

const std::string kResponse =
    "HTTP/1.1 200 OK\r\n"
    "Date: Mon, 01 Jan 2024 00:00:00 GMT\r\n"
    "Content-Type: application/json; charset=utf-8\r\n"
    "Content-Length: 1234\r\n"
    "Cache-Control: no-cache\r\n"
    "Server: upstream\r\n"
    "\r\n";

void BM_ParseRequestHead(benchmark::State& state) {
  RequestHead head;
  for (auto _ : state) {
    ParseResult r = parse_request_head(kRequest, head);
    benchmark::DoNotOptimize(r);
    benchmark::DoNotOptimize(head.header_count);
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * kRequest.size()));
  state.counters["bytes"] = static_cast<double>(kRequest.size());
  state.counters["headers"] = static_cast<double>(head.header_count);
}
BENCHMARK(BM_ParseRequestHead);

void BM_ParseResponseHead(benchmark::State& state) {
  ResponseHead head;
  for (auto _ : state) {
    ParseResult r = parse_response_head(kResponse, "GET", head);
    benchmark::DoNotOptimize(r);
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * kResponse.size()));
}
BENCHMARK(BM_ParseResponseHead);

void BM_ChunkedDecode(benchmark::State& state) {
  std::string body;
  for (int i = 0; i < 16; ++i)
    body += "400\r\n" + std::string(1024, 'x') + "\r\n";
  body += "0\r\n\r\n";
  for (auto _ : state) {
    ChunkedDecoder d;
    std::string_view in = body;
    size_t decoded = 0;
    for (;;) {
      ChunkedDecoder::Step s = d.feed(in);
      decoded += s.data.size();
      in.remove_prefix(s.consumed);
      if (s.done || s.error != ParseError::kNone || (s.consumed == 0 && s.data.empty())) break;
    }
    benchmark::DoNotOptimize(decoded);
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * body.size()));
}
BENCHMARK(BM_ChunkedDecode);

}  // namespace
