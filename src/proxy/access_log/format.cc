#include "proxy/access_log/format.h"

#include <time.h>

#include <charconv>
#include <cstdio>
#include <cstring>

namespace portico::proxy::access_log {

namespace {

constexpr struct {
  ResponseFlag flag;
  const char* code;
} kFlagCodes[] = {
    {kNoHealthyUpstream, "UH"},
    {kUpstreamConnectionFailure, "UF"},
    {kUpstreamOverflow, "UO"},
    {kNoRoute, "NR"},
    {kNoClusterFound, "NC"},
    {kUpstreamRequestTimeout, "UT"},
    {kUpstreamConnectionTermination, "UC"},
    {kUpstreamProtocolError, "UPE"},
    {kDownstreamConnectionTermination, "DC"},
    {kDownstreamProtocolError, "DPE"},
    {kStreamIdleTimeout, "SI"},
    {kRequestTimeout, "RT"},
    {kLocalReset, "LR"},
    {kOverloaded, "OM"},
};

void append_uint(uint64_t v, std::string& out) {
  char buf[24];
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v);
  out.append(buf, static_cast<size_t>(end - buf));
}

void append_2(unsigned v, std::string& out) {
  out.push_back(static_cast<char>('0' + v / 10 % 10));
  out.push_back(static_cast<char>('0' + v % 10));
}

// The default START_TIME: 2026-12-02T17:45:41.123Z. The date and time of the second are kept
// per thread, so that most lines cost no gmtime_r.
void append_default_time(std::chrono::system_clock::time_point t, std::string& out) {
  using namespace std::chrono;
  const auto ms = duration_cast<milliseconds>(t.time_since_epoch()).count();
  const int64_t secs = ms >= 0 ? ms / 1000 : (ms - 999) / 1000;
  const unsigned millis = static_cast<unsigned>(ms - secs * 1000);
  thread_local int64_t cached_sec = INT64_MIN;
  thread_local char cached[20];  // "YYYY-MM-DDTHH:MM:SS"
  if (secs != cached_sec) {
    time_t tt = static_cast<time_t>(secs);
    struct tm tm;
    gmtime_r(&tt, &tm);
    auto put = [](char* at, int v, int width) {
      for (int k = width - 1; k >= 0; --k) {
        at[k] = static_cast<char>('0' + v % 10);
        v /= 10;
      }
    };
    put(cached, (tm.tm_year + 1900) % 10000, 4);
    cached[4] = '-';
    put(cached + 5, tm.tm_mon + 1, 2);
    cached[7] = '-';
    put(cached + 8, tm.tm_mday, 2);
    cached[10] = 'T';
    put(cached + 11, tm.tm_hour, 2);
    cached[13] = ':';
    put(cached + 14, tm.tm_min, 2);
    cached[16] = ':';
    put(cached + 17, tm.tm_sec, 2);
    cached_sec = secs;
  }
  out.append(cached, 19);
  out.push_back('.');
  out.push_back(static_cast<char>('0' + millis / 100));
  append_2(millis % 100, out);
  out.push_back('Z');
}

void append_fraction(int64_t nanos, int digits, std::string& out) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "%09lld", static_cast<long long>(nanos));
  out.append(buf, static_cast<size_t>(digits));
}

// %START_TIME(format)%: strftime (UTC), plus Envoy's %E<n>S (seconds with n fractional digits),
// %<n>f / %f (n fractional digits, 9 by default) and %s (seconds since the epoch).
void append_custom_time(std::chrono::system_clock::time_point t, std::string_view fmt,
                        std::string& out) {
  using namespace std::chrono;
  const auto ns = duration_cast<nanoseconds>(t.time_since_epoch()).count();
  int64_t secs = ns >= 0 ? ns / 1000000000 : (ns - 999999999) / 1000000000;
  const int64_t frac = ns - secs * 1000000000;
  time_t tt = static_cast<time_t>(secs);
  struct tm tm;
  gmtime_r(&tt, &tm);
  std::string chunk;
  auto flush = [&] {
    if (chunk.empty()) return;
    char buf[256];
    size_t n = strftime(buf, sizeof buf, chunk.c_str(), &tm);
    out.append(buf, n);
    chunk.clear();
  };
  for (size_t i = 0; i < fmt.size(); ++i) {
    if (fmt[i] != '%' || i + 1 >= fmt.size()) {
      chunk.push_back(fmt[i]);
      continue;
    }
    const char n1 = fmt[i + 1];
    if (n1 == 'E' && i + 3 < fmt.size() && fmt[i + 2] >= '1' && fmt[i + 2] <= '9' &&
        fmt[i + 3] == 'S') {
      flush();
      append_2(static_cast<unsigned>(tm.tm_sec), out);
      out.push_back('.');
      append_fraction(frac, fmt[i + 2] - '0', out);
      i += 3;
    } else if (n1 >= '1' && n1 <= '9' && i + 2 < fmt.size() && fmt[i + 2] == 'f') {
      flush();
      append_fraction(frac, n1 - '0', out);
      i += 2;
    } else if (n1 == 'f') {
      flush();
      append_fraction(frac, 9, out);
      i += 1;
    } else if (n1 == 's') {
      flush();
      append_uint(static_cast<uint64_t>(secs), out);
      i += 1;
    } else {
      chunk.push_back('%');
      chunk.push_back(n1);
      i += 1;
    }
  }
  flush();
}

bool append_view(std::string_view v, uint32_t max, std::string& out) {
  if (v.empty()) return false;
  if (max != 0 && v.size() > max) v = v.substr(0, max);
  out.append(v);
  return true;
}

bool request_header(const http::RequestHeaders& r, const transport::ConnectionInfo* c,
                    const std::string& name, uint32_t max, std::string& out) {
  if (name[0] == ':' || name == "host") {
    if (name == ":method") return append_view(r.method, max, out);
    if (name == ":authority" || name == "host") return append_view(r.authority, max, out);
    if (name == ":scheme") {
      if (!r.scheme.empty()) return append_view(r.scheme, max, out);
      return append_view(c && c->secure ? "https" : "http", max, out);
    }
    if (name == ":path") {
      if (r.path.empty()) return false;
      const size_t before = out.size();
      out.append(r.path);
      if (!r.query.empty()) {
        out.push_back('?');
        out.append(r.query);
      }
      if (max != 0 && out.size() - before > max) out.resize(before + max);
      return true;
    }
    return false;
  }
  auto v = r.headers.get(name);
  return v && append_view(*v, max, out);
}

bool header_value(const Token& t, const Entry& e, const std::string& name, std::string& out) {
  if (t.op == Op::kRequestHeader) {
    return e.request && request_header(*e.request, e.connection, name, t.max_length, out);
  }
  if (!e.response) return false;
  auto v = e.response->headers.get(name);
  return v && append_view(*v, t.max_length, out);
}

void append_address(const std::string& ip, uint16_t port, std::string& out) {
  if (ip.find(':') != std::string::npos) {
    out.push_back('[');
    out.append(ip);
    out.push_back(']');
  } else {
    out.append(ip);
  }
  out.push_back(':');
  append_uint(port, out);
}

// Text lines: bytes that would break the line (controls) are shown as '?'.
void sanitize_text(std::string& out, size_t from) {
  for (size_t i = from; i < out.size(); ++i) {
    const unsigned char c = static_cast<unsigned char>(out[i]);
    if (c < 0x20 || c == 0x7f) out[i] = '?';
  }
}

// JSON string contents: quotes, backslashes and controls escaped; invalid UTF-8 replaced.
void append_json_escaped(std::string_view s, std::string& out) {
  static constexpr char kHex[] = "0123456789abcdef";
  for (size_t i = 0; i < s.size();) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    if (c < 0x80) {
      if (c == '"' || c == '\\') {
        out.push_back('\\');
        out.push_back(static_cast<char>(c));
      } else if (c < 0x20 || c == 0x7f) {
        out.append("\\u00");
        out.push_back(kHex[c >> 4]);
        out.push_back(kHex[c & 15]);
      } else {
        out.push_back(static_cast<char>(c));
      }
      ++i;
      continue;
    }
    // A UTF-8 sequence: kept when well-formed, else U+FFFD for its first byte.
    size_t len = c >= 0xF0 && c <= 0xF4 ? 4 : c >= 0xE0 ? 3 : c >= 0xC2 && c <= 0xDF ? 2 : 0;
    bool ok = len != 0 && i + len <= s.size();
    for (size_t k = 1; ok && k < len; ++k)
      ok = (static_cast<unsigned char>(s[i + k]) & 0xC0) == 0x80;
    if (ok && len == 3) {
      const unsigned char c1 = static_cast<unsigned char>(s[i + 1]);
      ok = !(c == 0xE0 && c1 < 0xA0) && !(c == 0xED && c1 >= 0xA0);  // overlong, surrogates
    } else if (ok && len == 4) {
      const unsigned char c1 = static_cast<unsigned char>(s[i + 1]);
      ok = !(c == 0xF0 && c1 < 0x90) && !(c == 0xF4 && c1 >= 0x90);
    }
    if (ok) {
      out.append(s.substr(i, len));
      i += len;
    } else {
      out.append("\xEF\xBF\xBD");
      ++i;
    }
  }
}

}  // namespace

void append_flags(uint32_t flags, std::string& out) {
  if (flags == 0) {
    out.push_back('-');
    return;
  }
  bool first = true;
  for (const auto& f : kFlagCodes) {
    if ((flags & f.flag) == 0) continue;
    if (!first) out.push_back(',');
    out.append(f.code);
    first = false;
  }
}

bool append_value(const Token& t, const Entry& e, std::string& out) {
  switch (t.op) {
    case Op::kLiteral:
      out.append(t.text);
      return true;
    case Op::kStartTime:
      if (t.text.empty()) {
        append_default_time(e.start, out);
      } else {
        append_custom_time(e.start, t.text, out);
      }
      return true;
    case Op::kRequestHeader:
    case Op::kResponseHeader:
      return header_value(t, e, t.text, out) ||
             (!t.fallback.empty() && header_value(t, e, t.fallback, out));
    case Op::kResponseCode:
      append_uint(static_cast<uint64_t>(e.status < 0 ? 0 : e.status), out);
      return true;
    case Op::kProtocol:
      return append_view(e.protocol, 0, out);
    case Op::kBytesReceived:
      append_uint(e.bytes_received, out);
      return true;
    case Op::kBytesSent:
      append_uint(e.bytes_sent, out);
      return true;
    case Op::kDuration:
      append_uint(static_cast<uint64_t>(e.duration.count() / 1000), out);
      return true;
    case Op::kUpstreamHost:
      return append_view(e.upstream_host, 0, out);
    case Op::kUpstreamCluster:
      return append_view(e.upstream_cluster, 0, out);
    case Op::kDownstreamRemoteAddress:
      if (!e.connection || e.connection->peer_address.empty()) return false;
      append_address(e.connection->peer_address, e.connection->peer_port, out);
      return true;
    case Op::kDownstreamRemoteAddressWithoutPort:
      return e.connection && append_view(e.connection->peer_address, 0, out);
    case Op::kRouteName:
      return append_view(e.route_name, 0, out);
    case Op::kRequestId: {
      if (!e.request) return false;
      auto v = e.request->headers.get("x-request-id");
      return v && append_view(*v, 0, out);
    }
    case Op::kResponseFlags:
      append_flags(e.flags, out);
      return true;
  }
  return false;
}

Result<Formatter> Formatter::text(std::string_view format) {
  auto tokens = portico::access_log::parse_format(format);
  if (!tokens.ok()) return tokens.error();
  Formatter f;
  f.fields_.push_back(Field{"", std::move(tokens.value()), false});
  return f;
}

Result<Formatter> Formatter::json(const std::vector<std::pair<std::string, std::string>>& fields) {
  Formatter f;
  f.json_ = true;
  for (const auto& [key, format] : fields) {
    auto tokens = portico::access_log::parse_format(format);
    if (!tokens.ok()) {
      return Error::invalid("jsonFormat." + key + ": " + tokens.error().message);
    }
    Field field;
    field.key.push_back('"');
    append_json_escaped(key, field.key);
    field.key.append("\":");
    field.tokens = std::move(tokens.value());
    field.typed = field.tokens.size() == 1 && field.tokens[0].op != Op::kLiteral;
    f.fields_.push_back(std::move(field));
  }
  return f;
}

void Formatter::render(const Entry& e, std::string& out) const {
  if (!json_) {
    const size_t line_start = out.size();
    for (const Token& t : fields_[0].tokens) {
      if (t.op == Op::kLiteral) {
        out.append(t.text);
        continue;
      }
      const size_t from = out.size();
      if (!append_value(t, e, out)) {
        out.push_back('-');
      } else {
        sanitize_text(out, from);
      }
    }
    if (out.size() == line_start || out.back() != '\n') out.push_back('\n');
    return;
  }
  thread_local std::string value;
  out.push_back('{');
  bool first = true;
  for (const Field& f : fields_) {
    if (!first) out.push_back(',');
    first = false;
    out.append(f.key);
    if (f.typed) {
      const Token& t = f.tokens[0];
      value.clear();
      if (!append_value(t, e, value)) {
        out.append("null");
      } else if (portico::access_log::is_numeric(t.op)) {
        out.append(value);
      } else {
        out.push_back('"');
        append_json_escaped(value, out);
        out.push_back('"');
      }
      continue;
    }
    value.clear();
    for (const Token& t : f.tokens) {
      if (!append_value(t, e, value)) value.push_back('-');
    }
    out.push_back('"');
    append_json_escaped(value, out);
    out.push_back('"');
  }
  out.append("}\n");
}

}  // namespace portico::proxy::access_log
