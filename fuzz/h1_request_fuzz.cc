// Fuzz target: parse_request_head. Checks, besides memory safety, that parsing is restartable
// (every prefix gives kIncomplete or the same verdict as the whole input), that the head respects
// its limits, and that a parsed head re-serialised from its fields parses back to the same fields.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "fuzz_common.h"
#include "proxy/http/h1_parser.h"

namespace {

using namespace portico::proxy::http;

using portico::fuzz::check;

bool same_head(const RequestHead& a, const RequestHead& b) {
  return a.method == b.method && a.target == b.target && a.path == b.path && a.query == b.query &&
         a.host == b.host && a.expect_continue == b.expect_continue &&
         portico::fuzz::same_message(a, b);
}

bool inside(std::string_view part, std::string_view whole) {
  return part.empty() ||
         (part.data() >= whole.data() && part.data() + part.size() <= whole.data() + whole.size());
}

void check_head(std::string_view in, const RequestHead& h, const Limits& l) {
  check(h.head_bytes > 0 && h.head_bytes <= in.size() && h.head_bytes <= l.max_head_bytes);
  check(h.header_count <= l.max_headers && h.header_count <= kMaxHeadersCapacity);
  check(h.version_minor == 0 || h.version_minor == 1);
  check(h.body != BodyKind::kUntilClose);
  check(h.version_minor == 1 || h.body != BodyKind::kChunked);
  check(!h.method.empty() && inside(h.method, in) && inside(h.target, in) && inside(h.query, in));
  check(h.path == "/" || h.path.empty() || inside(h.path, in));
  for (size_t i = 0; i < h.header_count; ++i) {
    check(!h.headers[i].name.empty() && inside(h.headers[i].name, in));
    check(inside(h.headers[i].value, in));
  }
}

void run(std::string_view in, const Limits& l) {
  static RequestHead whole;
  static RequestHead part;
  const ParseResult r = parse_request_head(in, whole, l);
  check((r.status == ParseStatus::kError) == (r.error != ParseError::kNone));
  if (r.status == ParseStatus::kComplete) check_head(in, whole, l);

  // Restartable: the caller re-parses a growing buffer.
  portico::fuzz::check_prefixes(
      in, r, whole, part,
      [&](std::string_view prefix, RequestHead& h) { return parse_request_head(prefix, h, l); },
      same_head);
  if (r.status != ParseStatus::kComplete) return;

  // Re-serialised from the parsed fields (what the proxy forwards), it must mean the same thing.
  std::string out;
  out.append(whole.method).append(" ").append(whole.target);
  out.append(whole.version_minor == 1 ? " HTTP/1.1\r\n" : " HTTP/1.0\r\n");
  for (size_t i = 0; i < whole.header_count; ++i) {
    out.append(whole.headers[i].name).append(": ").append(whole.headers[i].value).append("\r\n");
  }
  out.append("\r\n");
  Limits big = l;
  big.max_head_bytes = out.size();
  const ParseResult rr = parse_request_head(out, part, big);
  check(rr.status == ParseStatus::kComplete && part.head_bytes == out.size());
  check(same_head(whole, part));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view in(reinterpret_cast<const char*>(data), size);
  run(in, Limits{});
  Limits small;
  small.max_head_bytes = 128;
  small.max_headers = 4;
  run(in, small);
  return 0;
}
