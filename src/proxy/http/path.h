// Request path normalisation before routing (RFC 3986): a pure function, any thread, no exceptions.
//
// What is routed is what is forwarded: the stream handler normalises the path once, routes on the
// result and sends the same bytes upstream, so that a route guarding /admin cannot be walked around
// with /public/../admin or /%61dmin. The policy, decided and documented in docs/routing.md
// ("Path normalisation"):
//
//   1. Validation. The path must start with '/' (or be exactly "*", OPTIONS *, which passes
//      unchanged). Control characters (0x00-0x1F, 0x7F), space, bytes >= 0x80, '#', '?' (the caller
//      splits the query off first) and '\' are rejected, as are escapes that are not '%' followed
//      by two hex digits.
//   2. Percent-decoding of unreserved characters only (ALPHA DIGIT - . _ ~): %41 -> A, %2e -> '.'.
//      Every other escape is kept, its hex digits upper-cased (%2f -> %2F). Escaped slashes (%2F,
//      %5C) are kept or rejected as PathOptions::escaped_slashes says.
//   3. Dot-segment removal (RFC 3986 §5.2.4) on the decoded path: /a/./b -> /a/b, /a/../b -> /b,
//      /.. -> /. A trailing "." or ".." leaves a trailing '/' (/a/b/.. -> /a/).
//   4. merge_slashes: runs of '/' become one, before dot segments are resolved (/a//../b -> /b,
//      as nginx reads it; without merging, RFC 3986 gives /a/b).
//
// Guarantees (checked by tests/proxy/http/path_test.cc and fuzz/path_fuzz.cc): linear time; the
// output is never longer than the input, starts with '/' (or is "*"), contains no "." or ".."
// segment and normalises to itself.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace portico::proxy::http {

// What to do with %2F ('/') and %5C ('\') in a path. Neither is ever decoded: decoding would let
// /a%2F..%2Fadmin reach an upstream as /a/../admin after routing saw one segment.
enum class EscapedSlashes : uint8_t {
  kKeep,    // keep them (hex digits upper-cased); routing sees them as ordinary bytes
  kReject,  // reject the request (400)
};

struct PathOptions {
  // Steps 2 and 3 above (HttpOptions::normalize_path). When false, the path is only validated
  // (step 1 and escaped_slashes) and, if merge_slashes is set, its slashes are merged.
  bool normalize = true;
  bool merge_slashes = false;  // HttpOptions::merge_slashes
  EscapedSlashes escaped_slashes = EscapedSlashes::kKeep;
};

// The outcome; every value but kOk means "answer 400".
enum class PathStatus : uint8_t {
  kOk = 0,
  kEmpty,         // an empty path
  kNotAbsolute,   // does not start with '/' and is not "*"
  kBadCharacter,  // control character, space, byte >= 0x80, '#' or '?'
  kBackslash,     // a literal '\'
  kBadEscape,     // '%' not followed by two hex digits
  kEscapedSlash,  // %2F or %5C with EscapedSlashes::kReject
};

// A short reason phrase for logs and local replies ("bad percent-escape in path").
std::string_view path_status_text(PathStatus s);

// Normalises `raw_path` (the path of the request-target, without '?' and the query) into `out`
// (cleared first; its capacity is reused). On kOk, `out` holds the path to route on and to forward;
// on any other status its content is unspecified. Allocates only when `out` has less capacity than
// raw_path.size().
[[nodiscard]] PathStatus normalize_path(std::string_view raw_path, const PathOptions& options,
                                        std::string& out);

}  // namespace portico::proxy::http
