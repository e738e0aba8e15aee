// The operations side of a stream (kept out of stream.cc): the overload manager's refusal and the
// access log line written when the stream ends. Worker thread, like the rest of StreamHandler.
#include "proxy/access_log/access_log.h"
#include "proxy/http/stream.h"
#include "proxy/overload/overload.h"
#include "proxy/upstream/cluster.h"
#include "proxy/worker.h"

namespace portico::proxy::http {

asio::awaitable<void> StreamHandler::refuse_overloaded() {
  // Before routing (nothing is known of the request yet, so no filter runs): a short 503 that
  // says why, and the connection is not kept (keep-alive is off while overloaded).
  request_timer_.cancel();
  overload::count_refused_request();
  overload_refused_ = true;
  static constexpr std::string_view kBody = "service overloaded: try again later\n";
  ResponseHeaders& r = buf_.response;
  r.clear();
  r.status = 503;
  r.headers.add("x-portico-overload", "heap");
  r.headers.add("Retry-After", "1");
  r.headers.add("Content-Type", "text/plain");
  if (!opts_.server_name.empty()) r.headers.add("Server", opts_.server_name);
  r.has_body = true;
  r.content_length = kBody.size();
  stream_.close_after();
  status_ = 503;
  if (!co_await stream_.send_headers(r, false)) co_return;
  response_bytes_ += kBody.size();
  co_await stream_.send_body(kBody, true);
}

void StreamHandler::log_access() {
  using namespace access_log;
  uint32_t flags = 0;
  if (failure_) {
    switch (*failure_) {
      case upstream::FailureKind::kNoHealthyHost:
        flags |= kNoHealthyUpstream;
        break;
      case upstream::FailureKind::kOverflow:
        flags |= kUpstreamOverflow;
        break;
      case upstream::FailureKind::kConnectFailed:
      case upstream::FailureKind::kConnectTimeout:
        flags |= kUpstreamConnectionFailure;
        break;
      case upstream::FailureKind::kTimeout:
        flags |= kUpstreamRequestTimeout;
        break;
      case upstream::FailureKind::kReset:
        flags |= kUpstreamConnectionTermination;
        break;
      case upstream::FailureKind::kProtocol:
        flags |= kUpstreamProtocolError;
        break;
      case upstream::FailureKind::kDownstream:
        flags |= kDownstreamConnectionTermination;
        break;
      case upstream::FailureKind::kUnsupported:
        break;  // a cluster setting this build cannot serve: no Envoy code says that
    }
  }
  if (!route_ && status_ == 404) flags |= kNoRoute;
  if (route_ && !cluster_ && !failure_ && status_ == 503 &&
      std::holds_alternative<snapshot::ForwardAction>(route_->action)) {
    flags |= kNoClusterFound;
  }
  if (request_timed_out_) flags |= kRequestTimeout;
  if (idle_timed_out_) flags |= kStreamIdleTimeout;
  if (aborted_) flags |= kLocalReset;
  if (body_malformed_) flags |= kDownstreamProtocolError;
  if (client_aborted_ || (status_ == 0 && flags == 0)) flags |= kDownstreamConnectionTermination;
  if (overload_refused_) flags |= kOverloaded;

  const auto now = Clock::now();
  const RequestHeaders& req = stream_.request();
  const transport::ConnectionInfo& conn = stream_.connection();
  Entry e;
  e.request = &req;
  e.response = status_ != 0 ? &buf_.response : nullptr;
  e.connection = &conn;
  e.start = std::chrono::system_clock::now() -
            std::chrono::duration_cast<std::chrono::system_clock::duration>(now - start_);
  e.duration = std::chrono::duration_cast<std::chrono::microseconds>(now - start_);
  e.status = status_;
  e.bytes_received = request_bytes_;
  e.bytes_sent = response_bytes_;
  e.protocol = conn.http2 ? "HTTP/2" : req.http_minor == 0 ? "HTTP/1.0" : "HTTP/1.1";
  if (route_) e.route_name = route_->name;
  if (cluster_) e.upstream_cluster = cluster_->name();
  char host[64];
  if (upstream_tried_) {
    const std::string ip = upstream_host_.address().to_string();
    const bool v6 = upstream_host_.address().is_v6();
    int n = std::snprintf(host, sizeof host, v6 ? "[%s]:%u" : "%s:%u", ip.c_str(),
                          static_cast<unsigned>(upstream_host_.port()));
    if (n > 0) e.upstream_host = std::string_view(host, std::min<size_t>(n, sizeof host - 1));
  }
  e.flags = flags;
  lr_.access_log->log(w_.index(), e);
}

}  // namespace portico::proxy::http
