// Fuzz target: normalize_path. The input is a path; it is normalised under every combination of
// options. An accepted path must be no longer than the input, start with '/' (or be "*"), hold no
// "." or ".." segment (and no "//" when merging), normalise to itself, and equal what a literal
// transcription of RFC 3986 §5.2.4 (quadratic, kept here only as a reference) gives.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "fuzz_common.h"
#include "proxy/http/path.h"

namespace {

using namespace portico::proxy::http;

using portico::fuzz::check;

bool has_dot_segment(std::string_view p) {
  size_t start = 0;
  while (start <= p.size()) {
    size_t end = p.find('/', start);
    if (end == std::string_view::npos) end = p.size();
    const std::string_view seg = p.substr(start, end - start);
    if (seg == "." || seg == "..") return true;
    start = end + 1;
  }
  return false;
}

bool unreserved(unsigned char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
         c == '.' || c == '_' || c == '~';
}

int hex(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

char upper(char c) {
  return (c >= 'a' && c <= 'f') ? static_cast<char>(c - 'a' + 'A') : c;
}

// Decodes unreserved escapes and upper-cases the others (the input is known to be valid).
std::string decode(std::string_view in) {
  std::string out;
  for (size_t i = 0; i < in.size(); ++i) {
    if (in[i] != '%') {
      out.push_back(in[i]);
      continue;
    }
    const auto v = static_cast<unsigned char>(hex(in[i + 1]) * 16 + hex(in[i + 2]));
    if (unreserved(v)) {
      out.push_back(static_cast<char>(v));
    } else {
      out.push_back('%');
      out.push_back(upper(in[i + 1]));
      out.push_back(upper(in[i + 2]));
    }
    i += 2;
  }
  return out;
}

std::string merge(std::string_view in) {
  std::string out;
  for (const char c : in) {
    if (c == '/' && !out.empty() && out.back() == '/') continue;
    out.push_back(c);
  }
  return out;
}

void remove_last_segment(std::string& out) {
  const size_t p = out.rfind('/');
  out.resize(p == std::string::npos ? 0 : p);
}

// RFC 3986 §5.2.4, step by step as the RFC writes it.
std::string remove_dot_segments(std::string in) {
  std::string out;
  while (!in.empty()) {
    if (in.starts_with("../")) {
      in.erase(0, 3);
    } else if (in.starts_with("./")) {
      in.erase(0, 2);
    } else if (in.starts_with("/./")) {
      in.replace(0, 3, "/");
    } else if (in == "/.") {
      in = "/";
    } else if (in.starts_with("/../")) {
      in.replace(0, 4, "/");
      remove_last_segment(out);
    } else if (in == "/..") {
      in = "/";
      remove_last_segment(out);
    } else if (in == "." || in == "..") {
      in.clear();
    } else {
      const size_t next = in.find('/', 1);
      out.append(in, 0, next);
      in.erase(0, next);
    }
  }
  return out;
}

bool has_escaped_slash(std::string_view p) {
  for (size_t i = 0; i + 2 < p.size(); ++i) {
    if (p[i] != '%') continue;
    const std::string_view e = p.substr(i + 1, 2);
    if (e == "2F" || e == "2f" || e == "5C" || e == "5c") return true;
  }
  return false;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size > 4096) return 0;  // the reference is quadratic
  const std::string_view in(reinterpret_cast<const char*>(data), size);
  std::string out;
  std::string again;
  PathStatus base = PathStatus::kOk;
  for (int mask = 0; mask < 8; ++mask) {
    PathOptions o;
    o.normalize = (mask & 1) == 0;
    o.merge_slashes = (mask & 2) != 0;
    o.escaped_slashes = (mask & 4) != 0 ? EscapedSlashes::kReject : EscapedSlashes::kKeep;
    const PathStatus s = normalize_path(in, o, out);
    // Validation does not depend on the options, except that kReject adds one reason.
    if (mask == 0) base = s;
    if (mask < 4) {
      check(s == base);
    } else if (base == PathStatus::kOk) {
      check(s == (has_escaped_slash(in) ? PathStatus::kEscapedSlash : PathStatus::kOk));
    } else {
      // Rejected anyway; which reason comes first depends on where in the path it is.
      check(s == base || (s == PathStatus::kEscapedSlash && has_escaped_slash(in)));
    }
    if (s != PathStatus::kOk) continue;
    check(out.size() <= in.size());
    check(out == "*" || (!out.empty() && out[0] == '/'));
    if (o.merge_slashes) check(out.find("//") == std::string::npos);
    if (o.normalize) check(!has_dot_segment(out));
    check(normalize_path(out, o, again) == PathStatus::kOk && again == out);
    if (in == "*") {
      check(out == "*");
    } else if (o.normalize) {
      const std::string decoded = decode(in);
      check(out == remove_dot_segments(o.merge_slashes ? merge(decoded) : decoded));
    } else {
      check(out == (o.merge_slashes ? merge(in) : std::string(in)));
    }
  }
  return 0;
}
