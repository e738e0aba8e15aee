// Path normalisation (see path.h for the policy).
#include "proxy/http/path.h"

namespace portico::proxy::http {
namespace {

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

char upper_hex(char c) {
  return (c >= 'a' && c <= 'f') ? static_cast<char>(c - 'a' + 'A') : c;
}

// RFC 3986 §2.3: ALPHA DIGIT - . _ ~
bool is_unreserved(unsigned char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
         c == '.' || c == '_' || c == '~';
}

// Bytes that never appear in a path Portico accepts ('\' and '%' are handled on their own).
bool is_bad_byte(unsigned char c) {
  return c <= 0x20 || c >= 0x7f || c == '#' || c == '?';
}

// Ends the segment that starts at out[seg] (out[seg - 1] is its '/'). `more`: another '/' follows
// in the input.
void end_segment(std::string& out, size_t seg, bool more, const PathOptions& o) {
  const std::string_view s(out.data() + seg, out.size() - seg);
  if (o.normalize && s == ".") {
    out.resize(seg);  // keeps the '/' before it: /a/. -> /a/, /a/./b -> /a/b
    return;
  }
  if (o.normalize && s == "..") {
    out.resize(seg);
    if (seg > 1) {
      // Drop the previous segment and the '/' after it; out[seg - 1] is that '/', so the search
      // starts just before it. out[0] is '/', so it always finds one.
      out.resize(out.rfind('/', seg - 2) + 1);
    }
    return;
  }
  if (s.empty() && o.merge_slashes) return;  // out already ends with '/'
  if (more) out.push_back('/');
}

}  // namespace

std::string_view path_status_text(PathStatus s) {
  switch (s) {
    case PathStatus::kOk:
      return "ok";
    case PathStatus::kEmpty:
      return "empty path";
    case PathStatus::kNotAbsolute:
      return "path does not start with '/'";
    case PathStatus::kBadCharacter:
      return "invalid character in path";
    case PathStatus::kBackslash:
      return "backslash in path";
    case PathStatus::kBadEscape:
      return "bad percent-escape in path";
    case PathStatus::kEscapedSlash:
      return "escaped slash in path";
  }
  return "invalid path";
}

PathStatus normalize_path(std::string_view raw, const PathOptions& o, std::string& out) {
  out.clear();
  if (raw.empty()) return PathStatus::kEmpty;
  if (raw == "*") {
    out.push_back('*');
    return PathStatus::kOk;
  }
  if (raw[0] != '/') return PathStatus::kNotAbsolute;
  out.reserve(raw.size());
  out.push_back('/');
  const size_t n = raw.size();
  size_t seg = 1;  // where the current segment starts in out
  for (size_t i = 1; i <= n; ++i) {
    if (i == n || raw[i] == '/') {
      end_segment(out, seg, i < n, o);
      seg = out.size();
      continue;
    }
    const char c = raw[i];
    if (c == '%') {
      if (n - i < 3) return PathStatus::kBadEscape;
      const int hi = hex_value(raw[i + 1]);
      const int lo = hex_value(raw[i + 2]);
      if (hi < 0 || lo < 0) return PathStatus::kBadEscape;
      const auto v = static_cast<unsigned char>(hi * 16 + lo);
      if ((v == '/' || v == '\\') && o.escaped_slashes == EscapedSlashes::kReject) {
        return PathStatus::kEscapedSlash;
      }
      if (!o.normalize) {
        out.append(raw.substr(i, 3));
      } else if (is_unreserved(v)) {
        out.push_back(static_cast<char>(v));
      } else {
        out.push_back('%');
        out.push_back(upper_hex(raw[i + 1]));
        out.push_back(upper_hex(raw[i + 2]));
      }
      i += 2;
      continue;
    }
    if (c == '\\') return PathStatus::kBackslash;
    if (is_bad_byte(static_cast<unsigned char>(c))) return PathStatus::kBadCharacter;
    out.push_back(c);
  }
  return PathStatus::kOk;
}

}  // namespace portico::proxy::http
