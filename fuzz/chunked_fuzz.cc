// Fuzz target: ChunkedDecoder. Decodes the input whole and in pieces of several sizes; every way of
// splitting it must give the same data, the same end and the same error at the same byte. A decoded
// body re-encoded as one chunk must decode back to itself.
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "fuzz_common.h"
#include "proxy/http/h1_parser.h"

namespace {

using namespace portico::proxy::http;

using portico::fuzz::check;

struct Decoded {
  std::string data;
  size_t consumed = 0;
  bool done = false;
  ParseError error = ParseError::kNone;
};

Decoded decode(std::string_view input, size_t piece, const Limits& l) {
  ChunkedDecoder d(l);
  Decoded out;
  for (size_t off = 0; off < input.size() && !out.done && out.error == ParseError::kNone;) {
    std::string_view chunk = input.substr(off, piece);
    for (;;) {
      const ChunkedDecoder::Step s = d.feed(chunk);
      check(s.consumed <= chunk.size());
      check(s.data.empty() || (s.data.data() >= chunk.data() &&
                               s.data.data() + s.data.size() <= chunk.data() + s.consumed));
      check(!(s.done && s.error != ParseError::kNone));
      out.data.append(s.data);
      out.consumed += s.consumed;
      chunk.remove_prefix(s.consumed);
      if (s.error != ParseError::kNone) {
        out.error = s.error;
        break;
      }
      if (s.done) {
        out.done = true;
        break;
      }
      if (s.consumed == 0 && s.data.empty()) break;
    }
    // Progress: unless finished or failed, every byte given is consumed.
    check(out.done || out.error != ParseError::kNone || chunk.empty());
    off += std::min(piece, input.size() - off);
  }
  check(d.done() == out.done);
  return out;
}

void run(std::string_view in, const Limits& l) {
  const Decoded whole = decode(in, in.size() + 1, l);
  for (size_t piece : {size_t{1}, size_t{2}, size_t{3}, size_t{7}, in.size() / 2 + 1}) {
    const Decoded inc = decode(in, piece, l);
    check(inc.data == whole.data && inc.done == whole.done && inc.error == whole.error &&
          inc.consumed == whole.consumed);
  }
  if (!whole.done) return;
  char size[32];
  std::snprintf(size, sizeof size, "%zx\r\n", whole.data.size());
  std::string enc = whole.data.empty() ? "" : size + whole.data + "\r\n";
  enc += "0\r\n\r\n";
  const Decoded again = decode(enc, enc.size() + 1, l);
  check(again.done && again.data == whole.data && again.consumed == enc.size());
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view in(reinterpret_cast<const char*>(data), size);
  run(in, Limits{});
  Limits small;
  small.max_chunk_extension_bytes = 8;
  small.max_trailer_bytes = 16;
  run(in, small);
  return 0;
}
