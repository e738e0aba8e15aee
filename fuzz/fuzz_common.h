// Helpers shared by the HTTP/1.1 fuzz targets (single-threaded fuzzer processes).
#pragma once

#include <cstdlib>

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

}  // namespace portico::fuzz
