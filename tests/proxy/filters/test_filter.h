// "test.filter": a filter that exists only in the test binaries (registered by them, never by
// register_builtin_filters). It proves what any filter can do: mutate headers, replace a body,
// answer locally, await a timer, fail. Driven by request headers:
//   x-test-local: <status>   answer locally with that status ("denied by test filter")
//   x-test-sleep: <ms>       await a timer on the worker's wheel before continuing
//   x-test-fail: 1           stop without an answer (the stream is reset)
//   x-test-buffer: 1         buffer the request body and replace it by "replaced:" + body
// Always: adds "x-test-filter: request" upstream and "x-test-filter: response" downstream, and
// "x-test-trailer: seen" to request and response trailers (when there are any).
// Config {"response_body": "..."} replaces every response body (buffered) by that text.
#pragma once

#include <nlohmann/json.hpp>

#include <charconv>
#include <string>

#include "proxy/filters/filter.h"

namespace portico::proxy::testing {

class TestFilterFactory;

class TestFilter final : public filters::StreamFilter {
 public:
  TestFilter(const std::string& response_body, filters::FilterCallbacks& cb)
      : response_body_(response_body), cb_(cb) {}

  asio::awaitable<filters::HeadersStatus> on_request_headers(http::RequestHeaders& h,
                                                             bool) override {
    h.headers.add("x-test-filter", "request");
    if (auto ms = h.headers.get("x-test-sleep")) {
      int v = 0;
      std::from_chars(ms->data(), ms->data() + ms->size(), v);
      if (!co_await cb_.sleep(std::chrono::milliseconds(v))) {
        co_return filters::HeadersStatus::kStop;
      }
      h.headers.add("x-test-slept", std::to_string(v));
    }
    if (auto st = h.headers.get("x-test-local")) {
      int v = 0;
      std::from_chars(st->data(), st->data() + st->size(), v);
      cb_.send_local_reply(v, "denied by test filter\n");
      co_return filters::HeadersStatus::kStop;
    }
    if (h.headers.has("x-test-fail")) co_return filters::HeadersStatus::kStop;
    if (h.headers.has("x-test-buffer")) {
      buffer_ = true;
      co_return filters::HeadersStatus::kBuffer;
    }
    co_return filters::HeadersStatus::kContinue;
  }

  asio::awaitable<filters::DataStatus> on_request_body(std::string& body, bool end) override {
    ++request_body_calls;
    if (buffer_ && end) body = "replaced:" + body;
    co_return filters::DataStatus::kContinue;
  }

  asio::awaitable<filters::DataStatus> on_request_trailers(http::HeaderMap& trailers) override {
    trailers.add("x-test-trailer", "seen");
    co_return filters::DataStatus::kContinue;
  }

  asio::awaitable<filters::DataStatus> on_response_trailers(http::HeaderMap& trailers) override {
    trailers.add("x-test-trailer", "seen");
    co_return filters::DataStatus::kContinue;
  }

  asio::awaitable<filters::HeadersStatus> on_response_headers(http::ResponseHeaders& h,
                                                              bool) override {
    h.headers.add("x-test-filter", "response");
    co_return response_body_.empty() ? filters::HeadersStatus::kContinue
                                     : filters::HeadersStatus::kBuffer;
  }

  asio::awaitable<filters::DataStatus> on_response_body(std::string& body, bool end) override {
    if (!response_body_.empty() && end) body = response_body_;
    co_return filters::DataStatus::kContinue;
  }

  static inline int request_body_calls = 0;

 private:
  const std::string& response_body_;
  filters::FilterCallbacks& cb_;
  bool buffer_ = false;
};

class TestFilterFactory final : public filters::FilterFactory {
 public:
  std::string response_body;
  uint32_t phases() const override {
    return filters::kRequestHeaders | filters::kRequestBody | filters::kRequestTrailers |
           filters::kResponseHeaders | filters::kResponseBody | filters::kResponseTrailers;
  }
  std::unique_ptr<filters::StreamFilter> create(filters::FilterCallbacks& cb) const override {
    return std::make_unique<TestFilter>(response_body, cb);
  }
};

// A filter with only a headers hook, to check the per-phase tables.
class HeadersOnlyFactory final : public filters::FilterFactory {
 public:
  uint32_t phases() const override { return filters::kRequestHeaders; }
  std::unique_ptr<filters::StreamFilter> create(filters::FilterCallbacks&) const override {
    return std::make_unique<filters::StreamFilter>();
  }
};

inline Result<std::shared_ptr<const filters::FilterFactory>> compile_test_filter(
    std::string_view text) {
  auto j = nlohmann::json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return Error::invalid("config must be an object");
  auto f = std::make_shared<TestFilterFactory>();
  if (j.contains("response_body")) {
    if (!j["response_body"].is_string()) return Error::invalid("response_body: not a string");
    f->response_body = j["response_body"].get<std::string>();
  }
  return std::shared_ptr<const filters::FilterFactory>(std::move(f));
}

inline Result<std::shared_ptr<const filters::FilterFactory>> compile_headers_only(
    std::string_view) {
  return std::shared_ptr<const filters::FilterFactory>(std::make_shared<HeadersOnlyFactory>());
}

inline void register_test_filters(filters::Registry& r) {
  filters::register_builtin_filters(r);
  r.add("test.filter", &compile_test_filter);
  r.add("test.headers_only", &compile_headers_only);
}

}  // namespace portico::proxy::testing
