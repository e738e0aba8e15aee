// Small string helpers shared by the API decoder and the data plane's header parsers.
#pragma once

#include <string_view>

namespace portico::common {

// `s` without leading and trailing spaces and tabs (RFC 9110's optional whitespace, OWS).
inline std::string_view trim_ows(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t'))
    s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t'))
    s.remove_suffix(1);
  return s;
}

}  // namespace portico::common
