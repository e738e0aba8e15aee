#include "proxy/http/message.h"

#include "proxy/http/h1_parser.h"

namespace portico::proxy::http {

void HeaderMap::add(std::string_view name, std::string_view value) {
  Entry e;
  e.name_off = static_cast<uint32_t>(arena_.size());
  e.name_len = static_cast<uint32_t>(name.size());
  arena_.append(name);
  e.value_off = static_cast<uint32_t>(arena_.size());
  e.value_len = static_cast<uint32_t>(value.size());
  arena_.append(value);
  entries_.push_back(e);
  ++live_;
}

void HeaderMap::set(std::string_view name, std::string_view value) {
  remove(name);
  add(name, value);
}

size_t HeaderMap::remove(std::string_view name) {
  size_t n = 0;
  for (auto& e : entries_) {
    if (e.name_len != name.size()) continue;
    if (!iequals(std::string_view(arena_.data() + e.name_off, e.name_len), name)) continue;
    e.name_len = kDead;
    ++n;
  }
  live_ -= n;
  return n;
}

std::optional<std::string_view> HeaderMap::get(std::string_view name) const {
  for (const auto& e : entries_) {
    if (e.name_len != name.size()) continue;
    if (iequals(std::string_view(arena_.data() + e.name_off, e.name_len), name)) {
      return std::string_view(arena_.data() + e.value_off, e.value_len);
    }
  }
  return std::nullopt;
}

void HeaderMap::release_if_larger(size_t keep) {
  if (arena_.capacity() > keep) {
    std::string().swap(arena_);
    std::vector<Entry>().swap(entries_);
    live_ = 0;
  }
}

void add_forwardable_trailers(std::string_view section, HeaderMap& out) {
  Header h;
  while (next_trailer(section, h)) {
    if (forwardable_trailer(h.name)) out.add(h.name, h.value);
  }
}

void RequestHeaders::clear() {
  method.clear();
  scheme.clear();
  authority.clear();
  path.clear();
  query.clear();
  headers.clear();
  has_body = false;
  content_length.reset();
  expect_continue = false;
  upgrade.clear();
  http_minor = 1;
}

std::string RequestHeaders::target() const {
  std::string t = path;
  if (!query.empty()) {
    t.push_back('?');
    t.append(query);
  }
  return t;
}

void ResponseHeaders::clear() {
  status = 200;
  reason.clear();
  headers.clear();
  has_body = true;
  content_length.reset();
}

const char* reason_phrase(int status) {
  switch (status) {
    case 100:
      return "Continue";
    case 101:
      return "Switching Protocols";
    case 200:
      return "OK";
    case 201:
      return "Created";
    case 202:
      return "Accepted";
    case 204:
      return "No Content";
    case 206:
      return "Partial Content";
    case 301:
      return "Moved Permanently";
    case 302:
      return "Found";
    case 303:
      return "See Other";
    case 304:
      return "Not Modified";
    case 307:
      return "Temporary Redirect";
    case 308:
      return "Permanent Redirect";
    case 400:
      return "Bad Request";
    case 401:
      return "Unauthorized";
    case 403:
      return "Forbidden";
    case 404:
      return "Not Found";
    case 405:
      return "Method Not Allowed";
    case 408:
      return "Request Timeout";
    case 413:
      return "Content Too Large";
    case 417:
      return "Expectation Failed";
    case 421:
      return "Misdirected Request";
    case 429:
      return "Too Many Requests";
    case 431:
      return "Request Header Fields Too Large";
    case 500:
      return "Internal Server Error";
    case 501:
      return "Not Implemented";
    case 502:
      return "Bad Gateway";
    case 503:
      return "Service Unavailable";
    case 504:
      return "Gateway Timeout";
    case 505:
      return "HTTP Version Not Supported";
    default:
      return "Unknown";
  }
}

bool is_idempotent(std::string_view m) {
  return m == "GET" || m == "HEAD" || m == "OPTIONS" || m == "TRACE" || m == "PUT" || m == "DELETE";
}

}  // namespace portico::proxy::http
