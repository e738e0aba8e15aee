// StreamHandler: the codec-independent life of one request — filters (request headers, body,
// trailers) → router (the last request filter: local answer or upstream request) → response
// filters → log. One per ServerStream, on the worker that owns the connection; it never sees a
// socket or a wire format. See docs/architecture.md for the picture.
//
// Lifetime: constructed when a codec has a complete request head, run() once, destroyed when
// run() returns (every coroutine it started has ended by then). Per-stream deadlines (request
// timeout, stream idle timeout, route timeout, connect timeout) are Timers on the worker's wheel.
#pragma once

#include <asio.hpp>

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "proxy/filters/filter.h"
#include "proxy/http/codec.h"
#include "proxy/http/forwarded.h"
#include "proxy/http/message.h"
#include "proxy/http/upgrade.h"
#include "proxy/runtime.h"
#include "proxy/timer/timer_wheel.h"
#include "proxy/upstream/exchange.h"
#include "proxy/upstream/h1_client.h"

namespace portico::proxy {
class Worker;
struct WorkerConfig;
}  // namespace portico::proxy

namespace portico::proxy::http {

// Buffers a connection lends to its streams, so that a keep-alive connection reuses their
// capacity from one request to the next instead of allocating per request.
struct StreamBuffers {
  ResponseHeaders response;
  std::string head;              // serialised upstream request head
  std::string target;            // request-target sent upstream
  std::string body;              // bodies held for filters or replay
  ForwardingHeaders forwarding;  // computed per request; its strings keep their capacity
  std::string replay;            // a streamed request body kept for a retry (up to 64 KiB)

  void release_if_larger(size_t keep);
};

class StreamHandler final : public filters::FilterCallbacks {
 public:
  StreamHandler(Worker& worker, const std::shared_ptr<WorkerConfig>& config,
                const ListenerRuntime& listener, ServerStream& stream, StreamBuffers& buffers);
  ~StreamHandler() override;
  StreamHandler(const StreamHandler&) = delete;
  StreamHandler& operator=(const StreamHandler&) = delete;

  asio::awaitable<void> run();

  // Called by the codec when the connection must end now (drain deadline): aborts everything.
  void abort();

  // FilterCallbacks.
  void send_local_reply(int status, std::string_view body,
                        std::string_view content_type = "text/plain") override;
  asio::awaitable<bool> sleep(std::chrono::milliseconds d) override;
  const transport::ConnectionInfo& connection() const override { return stream_.connection(); }
  const snapshot::Route* route() const override { return route_; }
  asio::any_io_executor executor() override;
  stats::WorkerRow* worker_stats() override;

 private:
  struct LocalReply {
    int status = 0;
    std::string body;
    std::string content_type;
  };

  asio::awaitable<void> handle();
  // Makes the route's filters (once). False when the route has none.
  bool create_filters();
  asio::awaitable<void> local_reply(int status, std::string_view body,
                                    std::string_view content_type = "text/plain",
                                    std::string_view location = {},
                                    std::string_view extra_name = {},
                                    std::string_view extra_value = {});
  // Tunnels. decide_tunnel: after routing, whether this request becomes one (tunnel_), or is
  // refused (answered here: false), or is served as a plain request.
  asio::awaitable<bool> decide_tunnel(bool connect, bool forwards);
  asio::awaitable<void> refuse_connect();
  // The accepting head (101 or 200) through the route's response header changes and filters.
  asio::awaitable<bool> accept_tunnel(ResponseHeaders& head);
  // Moves bytes both ways until both directions ended (or one failed, or a deadline passed).
  asio::awaitable<void> run_tunnel(upstream::H1ClientStream& us);
  asio::awaitable<void> tunnel_up(upstream::H1ClientStream& us);
  asio::awaitable<void> tunnel_down(upstream::H1ClientStream& us);
  void break_tunnel();
  void count_refusal(UpgradeRefusal r);
  // (Re)starts the stream idle deadline with this limit (<= 0: none).
  void set_idle_timeout(Clock::duration d);
  asio::awaitable<void> forward(const snapshot::Route& route, upstream::Cluster& cluster);
  asio::awaitable<bool> buffer_request_body();
  asio::awaitable<void> pump_request(upstream::Exchange& us, bool chunked);
  asio::awaitable<void> relay_response(upstream::Exchange& us, bool head_read);
  asio::awaitable<void> fail(upstream::FailureKind kind, bool request_sent);
  // A gRPC call answered by Portico itself: a trailers-only response (HTTP 200, content-type
  // application/grpc, grpc-status `code`, grpc-message `message`).
  asio::awaitable<void> grpc_reply(int code, std::string_view message);
  // A circuit breaker of the cluster is full: 503 at once, x-portico-overflow names it.
  asio::awaitable<void> overflow(stats::Breaker b);
  // The route's retry policy (route option `retries`) after a failed try. kRetry: try again (the
  // back-off has been waited); kNo: report this outcome; kDone: the stream was answered or ended.
  enum class RetryDecision { kNo, kRetry, kDone };
  // Whether the policy names this outcome: `status` of a response head, or 0 when none came
  // (`connect`: the connection could not be opened).
  bool policy_covers(int status, bool connect) const;
  // How much of a request body is kept for a retry: the route's retries.maxReplayBytes, else 64
  // KiB.
  size_t max_replay() const;
  asio::awaitable<RetryDecision> policy_retry(bool request_sent);
  asio::awaitable<bool> send_response_body(std::string_view data, bool end);
  // Ends the response: the trailer filters, the body filters' last word, then the trailers that
  // remain (or the end of the body).
  asio::awaitable<bool> end_response(HeaderMap* trailers);
  // Runs the request trailer filters; false when one stopped the stream.
  asio::awaitable<bool> request_trailers(HeaderMap& trailers);
  // Keeps a piece of a streamed request body for a retry, within the replay buffer's bound.
  void record(std::string_view data);
  // Counts a stale pooled connection whose request could not be sent again, and why.
  asio::awaitable<bool> reply_for_request_side();
  asio::awaitable<bool> send_pending_reply();
  void count_not_replayed();
  void prepare_upstream_headers(const snapshot::Route& route);
  uint64_t body_limit() const;
  void on_deadline(int which);
  // Operations (stream_ops.cc): the overload manager's refusal (503, Connection: close) and the
  // access log line of a finished stream.
  asio::awaitable<void> refuse_overloaded();
  void log_access();
  // Notes activity for the idle deadline: a tick number, no clock read and no re-arming; the idle
  // timer, armed once, checks the mark when it fires and re-arms for the rest (see on_deadline).
  void touch() {
    const uint64_t t = idle_wheel_.current_tick();
    if (t > idle_mark_) idle_mark_ = t;
  }
  bool expired() const { return request_timed_out_ || idle_timed_out_; }

  Worker& w_;
  std::shared_ptr<WorkerConfig> config_;
  const ListenerRuntime& lr_;
  ServerStream& stream_;
  StreamBuffers& buf_;
  const snapshot::HttpOptions& opts_;
  const snapshot::Route* route_ = nullptr;
  const RouteRuntime* rr_ = nullptr;
  stats::RequestSlot* slot_ = nullptr;
  Clock::time_point start_;
  std::shared_ptr<const filters::FilterChain> chain_;
  std::vector<std::unique_ptr<filters::StreamFilter>> filters_;
  std::optional<LocalReply> pending_reply_;
  bool buffer_request_ = false;
  bool buffer_response_ = false;
  int status_ = 0;
  uint64_t request_bytes_ = 0;
  uint64_t response_bytes_ = 0;

  // Deadlines. Each sets its sticky flag before it cancels anything, so one that fires while no
  // operation is pending is seen by the next.
  Timer request_timer_;
  Timer idle_timer_;
  Timer route_timer_;
  Timer connect_timer_;
  Clock::duration idle_timeout_{};
  TimerWheel& idle_wheel_;
  uint64_t idle_mark_ = 0;   // the tick of the last activity (at least the stream's start)
  uint64_t idle_ticks_ = 0;  // idle_timeout_ in ticks, rounded up
  bool request_timed_out_ = false;
  bool idle_timed_out_ = false;
  bool route_timed_out_ = false;
  bool connect_timed_out_ = false;
  bool aborted_ = false;

  // Tunnel mode: set once the request is known to become a tunnel.
  std::optional<TunnelKind> tunnel_;
  bool tunnel_broken_ = false;

  // The upstream exchange in progress.
  upstream::Cluster* cluster_ = nullptr;
  // Subset routing: the chosen destination's subset (upstream::subset_key; 0: none).
  uint64_t subset_key_ = 0;
  // The endpoint of the attempt in progress (set while forward() holds it): outcomes are reported
  // to it for outlier detection.
  upstream::Endpoint* endpoint_ = nullptr;
  // Outlier detection: how the attempt's exchange ended (a response status, or
  // upstream::kLocalOriginFailure / kGatewayFailure), reported once per attempt.
  void report_outcome(int status);
  std::string fail_detail_;  // for the next fail()
  upstream::Exchange* us_ = nullptr;
  asio::ip::tcp::socket* connecting_ = nullptr;
  asio::steady_timer* sleeping_ = nullptr;
  bool request_sent_ = false;  // the whole request went upstream
  bool pump_running_ = false;
  bool client_aborted_ = false;  // the client went away or sent a broken body mid-request
  bool body_malformed_ = false;
  bool too_large_ = false;
  bool upstream_write_failed_ = false;
  // Retry of a request whose pooled connection turned out dead.
  bool repeatable_ = false;       // idempotent method
  bool recording_ = false;        // the streamed body is being copied into StreamBuffers::replay
  bool replay_overflow_ = false;  // ... and outgrew it: no retry
  bool body_end_seen_ = false;    // the pump read the whole body (end_trailers_: its trailers)
  bool retry_ = false;            // relay_response asks forward() for another attempt
  bool reused_ = false;           // the attempt in progress uses a pooled connection
  int attempt_ = 0;
  HeaderMap* end_trailers_ = nullptr;
  // The route's retry policy (null: none) and its state for this request.
  const snapshot::RetryPolicy* policy_ = nullptr;
  uint32_t policy_retries_ = 0;   // retries made by the policy so far
  bool policy_retrying_ = false;  // relay_response asks forward() for a retry by the policy
  bool stream_body_ = false;  // the body is streamed (replayable only from StreamBuffers::replay)
  bool held_body_ = false;    // the body is held whole in StreamBuffers::body
  bool per_try_limited_ = false;
  bool grpc_ = false;  // a gRPC call (content-type application/grpc): failures answered per gRPC //
                       // the route timer armed for this try is the per-try timeout
  Clock::time_point deadline_ = Clock::time_point::max();  // the route timeout, across tries
  upstream::LoadHold retry_hold_;  // a unit of the cluster's retries in flight, once retrying

  // For the access log: the last upstream host tried, the failure reported, an overload refusal.
  asio::ip::tcp::endpoint upstream_host_;
  bool upstream_tried_ = false;
  std::optional<upstream::FailureKind> failure_;
  bool overload_refused_ = false;
};

}  // namespace portico::proxy::http
