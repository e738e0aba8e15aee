// Helpers shared by the HTTP/1.1 fuzz targets (single-threaded fuzzer processes).
#pragma once

#include <cstdlib>
#include <string_view>

#include "proxy/http/h1_parser.h"

namespace portico::fuzz {

// A property violated: abort, which is what libFuzzer reports as a finding.
inline void check(bool ok) {
  if (!ok) std::abort();
}

// The fields common to requests and responses, headers included, are equal.
inline bool same_message(const proxy::http::MessageHead& a, const proxy::http::MessageHead& b) {
  if (a.version_minor != b.version_minor || a.header_count != b.header_count || a.body != b.body ||
      a.content_length != b.content_length || a.keep_alive != b.keep_alive ||
      a.connection_upgrade != b.connection_upgrade) {
    return false;
  }
  for (size_t i = 0; i < a.header_count; ++i) {
    if (a.headers[i].name != b.headers[i].name || a.headers[i].value != b.headers[i].value ||
        a.headers[i].hop_by_hop != b.headers[i].hop_by_hop) {
      return false;
    }
  }
  return true;
}

// Restartable parsing: a prefix of the input parses as incomplete, as the same error, or (once it
// holds the whole head) as the same head. `parse(prefix, head)` parses a prefix into `head`;
// `same(a, b)` compares two heads.
template <typename Head, typename Parse, typename Same>
void check_prefixes(std::string_view in, const proxy::http::ParseResult& r, const Head& whole,
                    Head& part, Parse parse, Same same) {
  using proxy::http::ParseStatus;
  const size_t n = in.size();
  const size_t points[] = {0, 1, n / 3, n / 2, n - 1, whole.head_bytes - 1, whole.head_bytes};
  for (size_t k : points) {
    if (k >= n) continue;
    const proxy::http::ParseResult pr = parse(in.substr(0, k), part);
    if (r.status == ParseStatus::kComplete && k >= whole.head_bytes) {
      check(pr.status == ParseStatus::kComplete && same(whole, part));
    } else if (r.status == ParseStatus::kError) {
      check(pr.status == ParseStatus::kIncomplete ||
            (pr.status == ParseStatus::kError && pr.error == r.error));
    } else {
      check(pr.status == ParseStatus::kIncomplete);
    }
  }
}

}  // namespace portico::fuzz
