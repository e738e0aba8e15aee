#include "proxy/filters/filter.h"

#include "proxy/filters/grpc_web/grpc_web.h"
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
  registry.add(std::string(kGrpcWebName), &compile_grpc_web);
}

const Registry& builtin_registry() {
  static const Registry r = [] {
    Registry reg;
    register_builtin_filters(reg);
    return reg;
  }();
  return r;
}

namespace {

void add_to_chain(FilterChain& chain, std::shared_ptr<const FilterFactory> f) {
  const uint16_t i = static_cast<uint16_t>(chain.factories.size());
  const uint32_t p = f->phases();
  if (p & kRequestHeaders) chain.request_headers.push_back(i);
  if (p & kRequestBody) chain.request_body.push_back(i);
  if (p & kRequestTrailers) chain.request_trailers.push_back(i);
  if (p & kResponseHeaders) chain.response_headers.push_back(i);
  if (p & kResponseBody) chain.response_body.push_back(i);
  if (p & kResponseTrailers) chain.response_trailers.push_back(i);
  if (p & kLog) chain.log.push_back(i);
  chain.factories.push_back(std::move(f));
}

}  // namespace

Result<std::shared_ptr<const FilterChain>> compile_chain(
    const Registry& registry, const std::vector<snapshot::FilterConfig>& listener_filters,
    const std::vector<snapshot::FilterConfig>& route_filters) {
  auto chain = std::make_shared<FilterChain>();
  for (const auto* list : {&listener_filters, &route_filters}) {
    for (const auto& fc : *list) {
      auto f = registry.compile(fc);
      if (!f.ok()) return f.error();
      if (f.value()->conditional() && chain->conditional.size() < FilterChain::kMaxConditional) {
        chain->conditional.push_back(static_cast<uint16_t>(chain->factories.size()));
      }
      add_to_chain(*chain, std::move(f.value()));
    }
  }
  // One chain per subset of the conditional filters (the full set is `chain` itself).
  const size_t n = chain->conditional.size();
  if (n > 0) {
    const size_t full = (size_t{1} << n) - 1;
    chain->variants.resize(full);
    for (size_t mask = 0; mask < full; ++mask) {
      auto v = std::make_shared<FilterChain>();
      size_t c = 0;
      for (size_t i = 0; i < chain->factories.size(); ++i) {
        if (c < n && chain->conditional[c] == i) {
          if (mask & (size_t{1} << c++)) add_to_chain(*v, chain->factories[i]);
          continue;
        }
        add_to_chain(*v, chain->factories[i]);
      }
      if (!v->empty()) chain->variants[mask] = std::move(v);
    }
  }
  return std::shared_ptr<const FilterChain>(std::move(chain));
}

std::shared_ptr<const FilterChain> FilterChain::for_stream(
    const std::shared_ptr<const FilterChain>& self, const http::RequestHeaders& request) {
  const size_t n = self->conditional.size();
  if (n == 0) return self;
  const size_t full = (size_t{1} << n) - 1;
  size_t mask = 0;
  for (size_t c = 0; c < n; ++c) {
    if (self->factories[self->conditional[c]]->applies(request)) mask |= size_t{1} << c;
  }
  return mask == full ? self : self->variants[mask];
}

}  // namespace portico::proxy::filters
