// HTTP filters: the per-stream objects that see a request and its response on the way through
// (auth, WAF, rate limits, header and body changes), the immutable compiled configuration that
// makes them, and the registry that compiles a snapshot::FilterConfig by name.
//
// Shape (Envoy's, without its factory tower): a FilterFactory is compiled once per configuration
// (control thread, when a ProxyConfig is applied) and shared read-only by every worker; each stream
// asks it for a StreamFilter (worker thread, one stream). Filter hooks are coroutines: a filter may
// await a timer or a network call before it answers. Closed status enums are the only control
// signals. Call order per stream: on_request_headers, on_request_body*, on_request_trailers (only
// when the request has trailers), then on_response_headers, on_response_body* (data pieces),
// on_response_trailers (only when the response has trailers: a chunked HTTP/1.1 or an HTTP/2
// response, gRPC's status), the last on_response_body (end_stream), and always on_log.
// Local replies made once a route matched (a filter's, the router's, upstream failures) go through
// the response hooks too, also of filters whose request hooks did not run (docs/architecture.md).
// Only the hooks a factory declares in phases() are called, so a chain without body filters moves
// body bytes with no per-chunk virtual call. A conditional factory (FilterFactory::conditional) is
// asked once per stream, before anything is made, whether it takes part (applies); a stream it
// does not concern runs the chain without it (tables built at compile time), so that a filter on
// every route (gRPC-Web) costs the other requests one check and no per-chunk call.
#pragma once

#include <asio.hpp>

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"
#include "proxy/http/message.h"
#include "proxy/transport/transport.h"
#include "snapshot/proxy_config.h"

namespace portico::proxy::stats {
struct WorkerRow;
}  // namespace portico::proxy::stats

namespace portico::proxy::filters {

enum class HeadersStatus : uint8_t {
  kContinue,  // pass the headers to the next filter
  kStop,      // stop the chain: the filter answered locally (FilterCallbacks::send_local_reply)
  kBuffer,    // hold the headers until the whole body is buffered (within the factory's
              // max_buffer_bytes, 413/500 beyond), pass the body to this filter's body hook in one
              // piece with end_stream, then continue the chain
};

enum class DataStatus : uint8_t {
  kContinue,  // pass the (possibly changed) bytes on
  kStop,      // stop: the filter answered locally or the stream is to be reset
};

enum Phase : uint32_t {
  kRequestHeaders = 1u << 0,
  kRequestBody = 1u << 1,
  kRequestTrailers = 1u << 2,
  kResponseHeaders = 1u << 3,
  kResponseBody = 1u << 4,
  kLog = 1u << 5,
  kResponseTrailers = 1u << 6,
};

// What happened, for on_log.
struct LogInfo {
  int status = 0;  // 0: no response was sent (client gone, stream reset)
  uint64_t request_body_bytes = 0;
  uint64_t response_body_bytes = 0;
  std::chrono::microseconds duration{0};
};

// The stream as a filter sees it. Valid for the filter's whole life.
class FilterCallbacks {
 public:
  virtual ~FilterCallbacks() = default;
  // Records a local reply; the stream sends it when the calling hook returns kStop. Request hooks
  // only (a response hook that wants another answer changes the response instead).
  virtual void send_local_reply(int status, std::string_view body,
                                std::string_view content_type = "text/plain") = 0;
  // Suspends the calling hook for `d` (a timer on the worker's wheel). False when the stream was
  // reset meanwhile.
  virtual asio::awaitable<bool> sleep(std::chrono::milliseconds d) = 0;
  virtual const transport::ConnectionInfo& connection() const = 0;
  virtual const snapshot::Route* route() const = 0;
  virtual asio::any_io_executor executor() = 0;  // for network calls of the filter's own
  // The counters of the worker running the stream (single writer: this worker), for filters
  // that count what they do in /stats; null where there is none (unit tests).
  virtual stats::WorkerRow* worker_stats() { return nullptr; }
};

// Per-stream filter. Every hook has a do-nothing default. `body` hooks may change the bytes in
// place (append, replace, clear); a changed request body is sent upstream with chunked framing
// unless the filter also sets a content-length header.
class StreamFilter {
 public:
  virtual ~StreamFilter() = default;
  virtual asio::awaitable<HeadersStatus> on_request_headers(http::RequestHeaders& headers,
                                                            bool end_stream);
  virtual asio::awaitable<DataStatus> on_request_body(std::string& body, bool end_stream);
  virtual asio::awaitable<DataStatus> on_request_trailers(http::HeaderMap& trailers);
  virtual asio::awaitable<HeadersStatus> on_response_headers(http::ResponseHeaders& headers,
                                                             bool end_stream);
  virtual asio::awaitable<DataStatus> on_response_body(std::string& body, bool end_stream);
  // The response's trailer fields (forwardable ones only), after the last data piece and before
  // the body hooks' end_stream call; may add, change or remove fields (clearing them all ends the
  // response without trailers: a filter may carry them in the body at end_stream instead). kStop
  // resets the stream (the response head is gone already).
  virtual asio::awaitable<DataStatus> on_response_trailers(http::HeaderMap& trailers);
  virtual void on_log(const LogInfo& info) {}
};

// A compiled filter configuration. Immutable; shared by all workers.
class FilterFactory {
 public:
  virtual ~FilterFactory() = default;
  // The hooks the filters it makes implement (a Phase bit set).
  virtual uint32_t phases() const = 0;
  virtual std::unique_ptr<StreamFilter> create(FilterCallbacks& callbacks) const = 0;
  // The most body bytes the filter may ask to buffer (HeadersStatus::kBuffer).
  virtual size_t max_buffer_bytes() const { return 1 << 20; }
  // A conditional filter takes part only in the streams whose request head applies() accepts
  // (asked once per stream on the worker, before any filter is made: a cheap check of the head,
  // no side effect). The others run the chain without it: none of its hooks, none of its phases.
  virtual bool conditional() const { return false; }
  virtual bool applies(const http::RequestHeaders& request) const { return true; }
};

// Compiles one filter's JSON configuration. Control thread; errors name what is wrong.
using CompileFn = Result<std::shared_ptr<const FilterFactory>> (*)(std::string_view json_config);

// Filter names → compile functions. Filled explicitly (register_builtin_filters; tests add theirs),
// never by static initialisers. Read-only once configurations are compiled with it.
class Registry {
 public:
  void add(std::string name, CompileFn fn) { fns_[std::move(name)] = fn; }
  Result<std::shared_ptr<const FilterFactory>> compile(const snapshot::FilterConfig& config) const;
  bool has(std::string_view name) const { return fns_.find(std::string(name)) != fns_.end(); }

 private:
  std::map<std::string, CompileFn, std::less<>> fns_;
};

void register_builtin_filters(Registry& registry);
// The registry of the built-in filters (built once, on first use).
const Registry& builtin_registry();

// The compiled filters of one route (the listener's, then the route's) with one index table per
// phase, built when the configuration is compiled.
struct FilterChain {
  std::vector<std::shared_ptr<const FilterFactory>> factories;
  std::vector<uint16_t> request_headers, request_body, request_trailers, response_headers,
      response_body, response_trailers, log;
  // Conditional factories (indexes into `factories`, at most kMaxConditional; further ones are
  // always made) and the chain for each subset of them that applies: variants[mask] holds the
  // factories whose bit of `mask` is set (bit i: conditional[i]), null when that chain is empty.
  // The full mask is this chain itself and is not stored (variants has 2^n - 1 entries).
  static constexpr size_t kMaxConditional = 4;
  std::vector<uint16_t> conditional;
  std::vector<std::shared_ptr<const FilterChain>> variants;

  bool empty() const { return factories.empty(); }
  // The chain for a stream with this request head: `self` when every conditional filter applies
  // (or there is none), else a variant (null: no filter at all for this stream). Worker thread.
  static std::shared_ptr<const FilterChain> for_stream(
      const std::shared_ptr<const FilterChain>& self, const http::RequestHeaders& request);
};

Result<std::shared_ptr<const FilterChain>> compile_chain(
    const Registry& registry, const std::vector<snapshot::FilterConfig>& listener_filters,
    const std::vector<snapshot::FilterConfig>& route_filters);

}  // namespace portico::proxy::filters
