#include "proxy/filters/header_mutation/header_mutation.h"

#include <nlohmann/json.hpp>

namespace portico::proxy::filters {

namespace {

using nlohmann::json;

class HeaderMutationFactory;

class HeaderMutationFilter final : public StreamFilter {
 public:
  explicit HeaderMutationFilter(const HeaderMutationFactory& f) : f_(f) {}
  asio::awaitable<HeadersStatus> on_request_headers(http::RequestHeaders& h, bool) override;
  asio::awaitable<HeadersStatus> on_response_headers(http::ResponseHeaders& h, bool) override;

 private:
  const HeaderMutationFactory& f_;
};

class HeaderMutationFactory final : public FilterFactory {
 public:
  snapshot::HeaderMutations request, response;
  uint32_t phases() const override {
    uint32_t p = 0;
    if (!request.add.empty() || !request.remove.empty()) p |= kRequestHeaders;
    if (!response.add.empty() || !response.remove.empty()) p |= kResponseHeaders;
    return p;
  }
  std::unique_ptr<StreamFilter> create(FilterCallbacks&) const override {
    return std::make_unique<HeaderMutationFilter>(*this);
  }
};

asio::awaitable<HeadersStatus> HeaderMutationFilter::on_request_headers(http::RequestHeaders& h,
                                                                        bool) {
  apply_mutations(f_.request, h.headers);
  co_return HeadersStatus::kContinue;
}

asio::awaitable<HeadersStatus> HeaderMutationFilter::on_response_headers(http::ResponseHeaders& h,
                                                                         bool) {
  apply_mutations(f_.response, h.headers);
  co_return HeadersStatus::kContinue;
}

bool valid_token(std::string_view s) {
  if (s.empty()) return false;
  for (unsigned char c : s) {
    if (c <= 32 || c >= 127 || c == ':' || c == '"' || c == '(' || c == ')' || c == ',' ||
        c == '/' || c == ';' || c == '<' || c == '=' || c == '>' || c == '?' || c == '@' ||
        c == '[' || c == '\\' || c == ']' || c == '{' || c == '}')
      return false;
  }
  return true;
}

bool valid_value(std::string_view s) {
  for (unsigned char c : s) {
    if ((c < 32 && c != '\t') || c == 127) return false;
  }
  return true;
}

// Reads one side ("request" / "response"); the error names the offending field.
Result<void> read_side(const json& j, const char* side, snapshot::HeaderMutations& out) {
  if (!j.contains(side)) return {};
  const json& s = j[side];
  if (!s.is_object()) return Error::invalid(std::string(side) + ": must be an object");
  for (auto it = s.begin(); it != s.end(); ++it) {
    if (it.key() != "add" && it.key() != "remove") {
      return Error::invalid(std::string(side) + "." + it.key() + ": unknown field");
    }
  }
  if (s.contains("add")) {
    if (!s["add"].is_array()) return Error::invalid(std::string(side) + ".add: must be a list");
    for (const auto& a : s["add"]) {
      if (!a.is_object() || !a.contains("name") || !a["name"].is_string() || !a.contains("value") ||
          !a["value"].is_string()) {
        return Error::invalid(std::string(side) + ".add: each entry needs name and value strings");
      }
      snapshot::HeaderValue hv;
      hv.name = a["name"].get<std::string>();
      hv.value = a["value"].get<std::string>();
      if (!valid_token(hv.name) || !valid_value(hv.value)) {
        return Error::invalid(std::string(side) + ".add: invalid header \"" + hv.name + "\"");
      }
      if (a.contains("append")) {
        if (!a["append"].is_boolean()) {
          return Error::invalid(std::string(side) + ".add.append: must be a boolean");
        }
        hv.append = a["append"].get<bool>();
      }
      out.add.push_back(std::move(hv));
    }
  }
  if (s.contains("remove")) {
    if (!s["remove"].is_array()) {
      return Error::invalid(std::string(side) + ".remove: must be a list");
    }
    for (const auto& r : s["remove"]) {
      if (!r.is_string() || !valid_token(r.get<std::string>())) {
        return Error::invalid(std::string(side) + ".remove: each entry must be a header name");
      }
      out.remove.push_back(r.get<std::string>());
    }
  }
  return {};
}

}  // namespace

void apply_mutations(const snapshot::HeaderMutations& m, http::HeaderMap& headers) {
  for (const auto& name : m.remove)
    headers.remove(name);
  for (const auto& h : m.add) {
    if (h.append) {
      headers.add(h.name, h.value);
    } else {
      headers.set(h.name, h.value);
    }
  }
}

Result<std::shared_ptr<const FilterFactory>> compile_header_mutation(std::string_view text) {
  // nlohmann throws only when asked to: parse without exceptions, then check every type.
  json j = json::parse(text, nullptr, false);
  if (j.is_discarded()) return Error::invalid("configuration is not valid JSON");
  if (!j.is_object()) return Error::invalid("configuration must be an object");
  for (auto it = j.begin(); it != j.end(); ++it) {
    if (it.key() != "request" && it.key() != "response") {
      return Error::invalid(it.key() + ": unknown field");
    }
  }
  auto f = std::make_shared<HeaderMutationFactory>();
  if (auto r = read_side(j, "request", f->request); !r.ok()) return r.error();
  if (auto r = read_side(j, "response", f->response); !r.ok()) return r.error();
  return std::shared_ptr<const FilterFactory>(std::move(f));
}

}  // namespace portico::proxy::filters
