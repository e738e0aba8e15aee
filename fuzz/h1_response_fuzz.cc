// Fuzz target: parse_response_head, for responses to GET, HEAD and CONNECT. Checks memory safety,
// restartability (every prefix gives kIncomplete or the same verdict as the whole input), limits,
// and that a head re-serialised from its fields parses back to the same fields.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "fuzz_common.h"
#include "proxy/http/h1_parser.h"

namespace {

using namespace portico::proxy::http;

using portico::fuzz::check;

bool same_head(const ResponseHead& a, const ResponseHead& b) {
  return a.status == b.status && a.reason == b.reason && portico::fuzz::same_message(a, b);
}

void check_head(std::string_view in, std::string_view method, const ResponseHead& h,
                const Limits& l) {
  check(h.head_bytes > 0 && h.head_bytes <= in.size() && h.head_bytes <= l.max_head_bytes);
  check(h.header_count <= l.max_headers && h.header_count <= kMaxHeadersCapacity);
  check(h.version_minor == 0 || h.version_minor == 1);
  check(h.status >= 100 && h.status <= 599);
  if (method == "HEAD" || h.status < 200 || h.status == 204 || h.status == 304) {
    check(h.body == BodyKind::kNone);
  }
  if (h.body == BodyKind::kUntilClose) check(!h.keep_alive);
  if (h.body != BodyKind::kContentLength) check(h.content_length == 0);
}

void run(std::string_view in, std::string_view method, const Limits& l) {
  static ResponseHead whole;
  static ResponseHead part;
  const ParseResult r = parse_response_head(in, method, whole, l);
  check((r.status == ParseStatus::kError) == (r.error != ParseError::kNone));
  if (r.status == ParseStatus::kComplete) check_head(in, method, whole, l);

  portico::fuzz::check_prefixes(
      in, r, whole, part,
      [&](std::string_view prefix, ResponseHead& h) {
        return parse_response_head(prefix, method, h, l);
      },
      same_head);
  if (r.status != ParseStatus::kComplete) return;

  std::string out = whole.version_minor == 1 ? "HTTP/1.1 " : "HTTP/1.0 ";
  out.append(std::to_string(whole.status)).append(" ").append(whole.reason).append("\r\n");
  for (size_t i = 0; i < whole.header_count; ++i) {
    out.append(whole.headers[i].name).append(": ").append(whole.headers[i].value).append("\r\n");
  }
  out.append("\r\n");
  Limits big = l;
  big.max_head_bytes = out.size();
  const ParseResult rr = parse_response_head(out, method, part, big);
  check(rr.status == ParseStatus::kComplete && part.head_bytes == out.size());
  check(same_head(whole, part));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view in(reinterpret_cast<const char*>(data), size);
  Limits small;
  small.max_head_bytes = 128;
  small.max_headers = 4;
  for (std::string_view method : {"GET", "HEAD", "CONNECT"}) {
    run(in, method, Limits{});
    run(in, method, small);
  }
  return 0;
}
