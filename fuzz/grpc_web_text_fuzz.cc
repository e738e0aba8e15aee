// Fuzz target: the gRPC-Web -text codec (src/proxy/filters/grpc_web/codec.h). The input is a
// request body as a client would send it. Decoded whole and in pieces of several sizes, it must
// give the same bytes and the same verdict (every way of splitting agrees); a valid body holds
// whole quanta and decodes to 1 to 3 bytes per quantum. Whatever was decoded, encoded again in
// pieces (with a flush at a random frame boundary) decodes back to itself, and the frame tracker
// agrees with itself across splits.
#include <cstdint>
#include <string>
#include <string_view>

#include "fuzz_common.h"
#include "proxy/filters/grpc_web/codec.h"

namespace {

using namespace portico::proxy::filters::grpc_web;
using portico::fuzz::check;

struct Decoded {
  std::string data;
  bool ok = false;
};

Decoded decode(std::string_view in, size_t piece) {
  Base64Decoder d;
  Decoded out;
  bool ok = true;
  for (size_t off = 0; off < in.size() && ok; off += piece)
    ok = d.feed(in.substr(off, piece), out.data);
  out.ok = ok && d.complete();
  check(d.failed() == !ok);
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view in(reinterpret_cast<const char*>(data), size);
  const Decoded whole = decode(in, in.size() + 1);
  for (size_t piece : {size_t{1}, size_t{2}, size_t{3}, size_t{5}, size_t{7}, size_t{64}}) {
    const Decoded part = decode(in, piece);
    check(part.ok == whole.ok);
    if (whole.ok) check(part.data == whole.data);
  }
  if (whole.ok) {
    check(in.size() % 4 == 0);
    check(whole.data.size() <= in.size() / 4 * 3);
    check(whole.data.size() >= in.size() / 4);  // a padded quantum still holds a byte
  }
  // Round trip of arbitrary bytes (the input itself) through the streaming encoder.
  for (size_t piece : {size_t{1}, size_t{4}, size_t{7}}) {
    Base64Encoder e;
    FrameTracker t;
    std::string text;
    for (size_t off = 0; off < in.size(); off += piece) {
      const std::string_view p = in.substr(off, piece);
      e.feed(p, text);
      t.feed(p);
      check(text.size() % 4 == 0);
      if (t.at_boundary()) e.flush(text);
    }
    e.flush(text);
    const Decoded back = decode(text, text.size() + 1);
    check(back.ok);
    check(back.data == in);
  }
  FrameTracker a, b;
  a.feed(in);
  for (size_t off = 0; off < in.size(); off += 3)
    b.feed(in.substr(off, 3));
  check(a.at_boundary() == b.at_boundary());
  return 0;
}
