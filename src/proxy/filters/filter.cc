#include "proxy/filters/filter.h"

#include "proxy/filters/header_mutation/header_mutation.h"

namespace portico::proxy::filters {

asio::awaitable<HeadersStatus> StreamFilter::on_request_headers(http::RequestHeaders&, bool) {
  co_return HeadersStatus::kContinue;
}
asio::awaitable<DataStatus> StreamFilter::on_request_body(std::string&, bool) {
  co_return DataStatus::kContinue;
}
asio::awaitable<DataStatus> StreamFilter::on_request_trailers(http::HeaderMap&) {
  co_return DataStatus::kContinue;
}
asio::awaitable<HeadersStatus> StreamFilter::on_response_headers(http::ResponseHeaders&, bool) {
  co_return HeadersStatus::kContinue;
}
asio::awaitable<DataStatus> StreamFilter::on_response_body(std::string&, bool) {
  co_return DataStatus::kContinue;
}
asio::awaitable<DataStatus> StreamFilter::on_response_trailers(http::HeaderMap&) {
  co_return DataStatus::kContinue;
}

Result<std::shared_ptr<const FilterFactory>> Registry::compile(
    const snapshot::FilterConfig& config) const {
  auto it = fns_.find(config.name);
  if (it == fns_.end()) return Error::invalid("unknown filter \"" + config.name + "\"");
  auto r = it->second(config.config.empty() ? std::string_view("{}") : config.config);
  if (!r.ok()) return Error::invalid("filter \"" + config.name + "\": " + r.error().message);
  return r;
}

void register_builtin_filters(Registry& registry) {
  registry.add(std::string(kHeaderMutationName), &compile_header_mutation);
}

const Registry& builtin_registry() {
  static const Registry r = [] {
    Registry reg;
    register_builtin_filters(reg);
    return reg;
  }();
  return r;
}

Result<std::shared_ptr<const FilterChain>> compile_chain(
    const Registry& registry, const std::vector<snapshot::FilterConfig>& listener_filters,
    const std::vector<snapshot::FilterConfig>& route_filters) {
  auto chain = std::make_shared<FilterChain>();
  for (const auto* list : {&listener_filters, &route_filters}) {
    for (const auto& fc : *list) {
      auto f = registry.compile(fc);
      if (!f.ok()) return f.error();
      const uint16_t i = static_cast<uint16_t>(chain->factories.size());
      const uint32_t p = f.value()->phases();
      if (p & kRequestHeaders) chain->request_headers.push_back(i);
      if (p & kRequestBody) chain->request_body.push_back(i);
      if (p & kRequestTrailers) chain->request_trailers.push_back(i);
      if (p & kResponseHeaders) chain->response_headers.push_back(i);
      if (p & kResponseBody) chain->response_body.push_back(i);
      if (p & kResponseTrailers) chain->response_trailers.push_back(i);
      if (p & kLog) chain->log.push_back(i);
      chain->factories.push_back(std::move(f.value()));
    }
  }
  return std::shared_ptr<const FilterChain>(std::move(chain));
}

}  // namespace portico::proxy::filters
