#include "proxy/filters/grpc_web/grpc_web.h"

#include <nlohmann/json.hpp>

#include "proxy/filters/grpc_web/codec.h"
#include "proxy/stats/stats.h"

namespace portico::proxy::filters {

namespace {

using grpc_web::Base64Decoder;
using grpc_web::Base64Encoder;
using grpc_web::FrameTracker;
using grpc_web::TrailerFrame;

bool accepts_text(const http::HeaderMap& headers) {
  auto accept = headers.get("accept");
  if (!accept) return false;
  constexpr std::string_view kText = "application/grpc-web-text";
  std::string_view a = *accept;
  for (size_t i = 0; i + kText.size() <= a.size(); ++i) {
    bool match = true;
    for (size_t j = 0; j < kText.size() && match; ++j) {
      char c = a[i + j];
      if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
      match = c == kText[j];
    }
    if (match) return true;
  }
  return false;
}

class GrpcWebFilter final : public StreamFilter {
 public:
  explicit GrpcWebFilter(FilterCallbacks& cb) : cb_(cb) {}

  asio::awaitable<HeadersStatus> on_request_headers(http::RequestHeaders& h, bool) override {
    auto ct = h.headers.get("content-type");
    auto web = ct ? grpc_web::parse_web_content_type(*ct) : std::nullopt;
    if (!web) co_return HeadersStatus::kContinue;  // made for a stream it does not concern
    active_ = true;
    text_ = web->text;
    text_response_ = text_ || accepts_text(h.headers);
    suffix_.assign(web->suffix);  // a copy: the view dies with the header it points into
    h.headers.set("content-type", grpc_web::grpc_content_type(suffix_));
    h.headers.set("te", "trailers");
    h.headers.remove("x-grpc-web");
    if (text_) {
      // The decoded body is shorter than the text: its length is unknown until the end.
      h.content_length.reset();
      h.headers.remove("content-length");
    }
    if (auto* st = cb_.worker_stats()) st->grpc_web_requests[text_ ? 1 : 0].inc();
    co_return HeadersStatus::kContinue;
  }

  asio::awaitable<DataStatus> on_request_body(std::string& body, bool end) override {
    if (!text_) co_return DataStatus::kContinue;
    scratch_.clear();
    if (!decoder_.feed(body, scratch_) || (end && !decoder_.complete())) {
      if (auto* st = cb_.worker_stats()) st->grpc_web_malformed.inc();
      cb_.send_local_reply(400, "bad request: the gRPC-Web text body is not valid base64\n");
      co_return DataStatus::kStop;
    }
    body.swap(scratch_);
    co_return DataStatus::kContinue;
  }

  asio::awaitable<HeadersStatus> on_response_headers(http::ResponseHeaders& h,
                                                     bool end_stream) override {
    if (!active_) co_return HeadersStatus::kContinue;
    auto ct = h.headers.get("content-type");
    auto suffix = ct ? grpc_web::grpc_suffix(*ct) : std::nullopt;
    if (!suffix) co_return HeadersStatus::kContinue;  // not a gRPC answer: untouched
    const std::string web = grpc_web::web_content_type(text_response_, *suffix);
    h.headers.set("content-type", web);
    // Trailers-only (grpc-status in the head, no body): the head says it all.
    if (end_stream || !h.has_body || h.content_length == uint64_t{0}) {
      co_return HeadersStatus::kContinue;
    }
    translating_ = true;
    h.content_length.reset();  // the trailer frame (and base64) change the length
    h.headers.remove("content-length");
    co_return HeadersStatus::kContinue;
  }

  asio::awaitable<DataStatus> on_response_body(std::string& body, bool end) override {
    if (!translating_) co_return DataStatus::kContinue;
    if (!text_response_) {
      if (end && has_trailers_) trailers_.append_to(body);
      co_return DataStatus::kContinue;
    }
    scratch_.clear();
    encoder_.feed(body, scratch_);
    if (end) {
      if (has_trailers_) {
        std::string frame;
        trailers_.append_to(frame);
        encoder_.feed(frame, scratch_);
      }
      encoder_.flush(scratch_);
    } else {
      // A message that ends here is sent whole (its last quantum padded) rather than held back
      // waiting for the next message's first bytes.
      frames_.feed(body);
      if (frames_.at_boundary()) encoder_.flush(scratch_);
    }
    body.swap(scratch_);
    co_return DataStatus::kContinue;
  }

  asio::awaitable<DataStatus> on_response_trailers(http::HeaderMap& trailers) override {
    if (!translating_) co_return DataStatus::kContinue;
    trailers.for_each([&](std::string_view n, std::string_view v) { trailers_.add(n, v); });
    has_trailers_ = true;
    trailers.clear();  // carried in the body instead: no HTTP trailers reach the client
    co_return DataStatus::kContinue;
  }

 private:
  FilterCallbacks& cb_;
  bool active_ = false;         // the request is gRPC-Web (translated upstream)
  bool text_ = false;           // ... in text mode (its body is base64)
  bool text_response_ = false;  // the response is sent in text mode
  bool translating_ = false;    // the response is gRPC with a body: translated back
  bool has_trailers_ = false;
  std::string suffix_;
  std::string scratch_;
  Base64Decoder decoder_;
  Base64Encoder encoder_;
  FrameTracker frames_;
  TrailerFrame trailers_;
};

class GrpcWebFactory final : public FilterFactory {
 public:
  uint32_t phases() const override {
    return kRequestHeaders | kRequestBody | kResponseHeaders | kResponseBody | kResponseTrailers;
  }
  std::unique_ptr<StreamFilter> create(FilterCallbacks& cb) const override {
    return std::make_unique<GrpcWebFilter>(cb);
  }
  bool conditional() const override { return true; }
  bool applies(const http::RequestHeaders& request) const override {
    auto ct = request.headers.get("content-type");
    return ct && grpc_web::parse_web_content_type(*ct).has_value();
  }
};

}  // namespace

Result<std::shared_ptr<const FilterFactory>> compile_grpc_web(std::string_view text) {
  nlohmann::json j = nlohmann::json::parse(text, nullptr, false);
  if (j.is_discarded()) return Error::invalid("configuration is not valid JSON");
  if (!j.is_object()) return Error::invalid("configuration must be an object");
  if (!j.empty()) return Error::invalid(j.begin().key() + ": unknown field");
  return std::shared_ptr<const FilterFactory>(std::make_shared<GrpcWebFactory>());
}

}  // namespace portico::proxy::filters
