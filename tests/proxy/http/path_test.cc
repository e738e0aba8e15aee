// Unit tests of path normalisation (proxy/http/path.h): table-driven, plus the properties every
// accepted path has (no dot segment, never longer than the input, idempotent).
#include "proxy/http/path.h"

#include <gtest/gtest.h>

#include <cctype>
#include <string>
#include <string_view>
#include <vector>

namespace portico::proxy::http {
namespace {

struct Case {
  std::string_view in;
  std::string_view want;  // the normalised path, when status is kOk
  PathStatus status = PathStatus::kOk;
};

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

// Normalises, checks the properties of an accepted path, and returns the status.
PathStatus run(std::string_view in, const PathOptions& o, std::string& out) {
  const PathStatus s = normalize_path(in, o, out);
  if (s != PathStatus::kOk) return s;
  EXPECT_LE(out.size(), in.size()) << in;
  EXPECT_TRUE(out == "*" || (!out.empty() && out[0] == '/')) << in;
  if (o.normalize) {
    EXPECT_FALSE(has_dot_segment(out)) << in << " -> " << out;
  }
  if (o.merge_slashes) {
    EXPECT_EQ(out.find("//"), std::string::npos) << in << " -> " << out;
  }
  std::string again;
  EXPECT_EQ(normalize_path(out, o, again), PathStatus::kOk) << out;
  EXPECT_EQ(again, out) << "not idempotent: " << in;
  return s;
}

void check_table(const std::vector<Case>& cases, const PathOptions& o) {
  for (const Case& c : cases) {
    std::string out;
    const PathStatus s = run(c.in, o, out);
    EXPECT_EQ(s, c.status) << "input " << c.in << ": " << path_status_text(s);
    if (c.status == PathStatus::kOk && s == PathStatus::kOk) {
      EXPECT_EQ(out, c.want) << "input " << c.in;
    }
  }
}

TEST(NormalizePath, Rfc3986Section54) {
  // RFC 3986 §5.4 with base http://a/b/c/d;p?q: the merged paths, through remove_dot_segments.
  check_table(
      {
          {"/b/c/g", "/b/c/g"},
          {"/b/c/./g", "/b/c/g"},              // "./g"
          {"/b/c/g/", "/b/c/g/"},              // "g/"
          {"/g", "/g"},                        // "/g"
          {"/b/c/d;p", "/b/c/d;p"},            // ""
          {"/b/c/.", "/b/c/"},                 // "."
          {"/b/c/./", "/b/c/"},                // "./"
          {"/b/c/..", "/b/"},                  // ".."
          {"/b/c/../", "/b/"},                 // "../"
          {"/b/c/../g", "/b/g"},               // "../g"
          {"/b/c/../..", "/"},                 // "../.."
          {"/b/c/../../", "/"},                // "../../"
          {"/b/c/../../g", "/g"},              // "../../g"
          {"/b/c/../../../g", "/g"},           // "../../../g" (abnormal)
          {"/b/c/../../../../g", "/g"},        // "../../../../g"
          {"/./g", "/g"},                      // "/./g"
          {"/../g", "/g"},                     // "/../g"
          {"/b/c/g.", "/b/c/g."},              // "g."
          {"/b/c/.g", "/b/c/.g"},              // ".g"
          {"/b/c/g..", "/b/c/g.."},            // "g.."
          {"/b/c/..g", "/b/c/..g"},            // "..g"
          {"/b/c/./../g", "/b/g"},             // "./../g"
          {"/b/c/./g/.", "/b/c/g/"},           // "./g/."
          {"/b/c/g/./h", "/b/c/g/h"},          // "g/./h"
          {"/b/c/g/../h", "/b/c/h"},           // "g/../h"
          {"/b/c/g;x=1/./y", "/b/c/g;x=1/y"},  // "g;x=1/./y"
          {"/b/c/g;x=1/../y", "/b/c/y"},       // "g;x=1/../y"
          // §5.2.4's own examples.
          {"/a/b/c/./../../g", "/a/g"},
          {"/mid/content=5/../6", "/mid/6"},
      },
      PathOptions{});
}

TEST(NormalizePath, DotSegments) {
  check_table(
      {
          {"/", "/"},
          {"/a/./b", "/a/b"},
          {"/a/../b", "/b"},
          {"/public/../admin", "/admin"},
          {"/..", "/"},
          {"/.", "/"},
          {"/../..", "/"},
          {"/../../a", "/a"},
          {"/a/..", "/"},
          {"/a/../", "/"},
          {"/a/b/..", "/a/"},
          {"/a/b/../..", "/"},
          {"/a/b/../../..", "/"},
          {"/a/.../b", "/a/.../b"},  // "..." is an ordinary segment
          {"/a/.b./c", "/a/.b./c"},
          {"/a//..", "/a/"},     // RFC: ".." removes the empty segment
          {"/a//../b", "/a/b"},  // without merge_slashes
          {"/a/./././b", "/a/b"},
          {"/a/b/./../c/./d/..", "/a/c/"},
          {"/./", "/"},
          {"/.//", "//"},
      },
      PathOptions{});
}

TEST(NormalizePath, PercentDecodingOfUnreservedOnly) {
  check_table(
      {
          {"/%41", "/A"},
          {"/%61%62c", "/abc"},
          {"/%30%39", "/09"},
          {"/%2D%2E%5F%7E", "/-._~"},
          {"/%2d%2e%5f%7e", "/-._~"},
          {"/%20", "/%20"},        // kept
          {"/%3f", "/%3F"},        // kept, hex upper-cased
          {"/%c3%a9", "/%C3%A9"},  // non-ASCII stays encoded
          {"/%00", "/%00"},        // an escaped NUL is data for the upstream to judge
          {"/%25", "/%25"},        // '%' itself stays escaped, so no double decoding
          {"/%2541", "/%2541"},    // ... and %2541 never becomes A
          {"/a%2Fb", "/a%2Fb"},    // escaped slash kept (default)
          {"/a%2fb", "/a%2Fb"},
          {"/a%5cb", "/a%5Cb"},
          {"/%2e", "/"},  // decoded, then a dot segment
          {"/%2e%2E/", "/"},
          {"/a/%2e%2e/b", "/b"},
          {"/a/.%2e/b", "/b"},
          {"/a/%2E./b", "/b"},
          {"/public/%2e%2e/admin", "/admin"},
          {"/%61dmin", "/admin"},
          {"/a/%2e%2e%2fb", "/a/..%2Fb"},  // "..%2F" is not a dot segment: %2F is not a separator
          {"/a/..%2f..%2fb", "/a/..%2F..%2Fb"},
      },
      PathOptions{});
}

TEST(NormalizePath, Rejections) {
  check_table(
      {
          {"", "", PathStatus::kEmpty},
          {"a/b", "", PathStatus::kNotAbsolute},
          {"%2F", "", PathStatus::kNotAbsolute},
          {"**", "", PathStatus::kNotAbsolute},
          {"http://h/a", "", PathStatus::kNotAbsolute},
          {"/%", "", PathStatus::kBadEscape},
          {"/%4", "", PathStatus::kBadEscape},
          {"/a%", "", PathStatus::kBadEscape},
          {"/%G1", "", PathStatus::kBadEscape},
          {"/%1G", "", PathStatus::kBadEscape},
          {"/%%41", "", PathStatus::kBadEscape},
          {"/% 1", "", PathStatus::kBadEscape},
          {"/%-1", "", PathStatus::kBadEscape},
          {"/a\\b", "", PathStatus::kBackslash},
          {"/..\\admin", "", PathStatus::kBackslash},
          {"/\\", "", PathStatus::kBackslash},
          {std::string_view("/a\0b", 4), "", PathStatus::kBadCharacter},
          {"/a\rb", "", PathStatus::kBadCharacter},
          {"/a\nb", "", PathStatus::kBadCharacter},
          {"/a\tb", "", PathStatus::kBadCharacter},
          {"/a\x7f", "", PathStatus::kBadCharacter},
          {"/a b", "", PathStatus::kBadCharacter},
          {"/\xc3\xa9", "", PathStatus::kBadCharacter},
          {"/a#frag", "", PathStatus::kBadCharacter},
          {"/a?q=1", "", PathStatus::kBadCharacter},
      },
      PathOptions{});
}

TEST(NormalizePath, AsteriskPassesUnchanged) {
  std::string out = "garbage";
  EXPECT_EQ(normalize_path("*", PathOptions{}, out), PathStatus::kOk);
  EXPECT_EQ(out, "*");
  PathOptions raw;
  raw.normalize = false;
  raw.merge_slashes = true;
  EXPECT_EQ(normalize_path("*", raw, out), PathStatus::kOk);
  EXPECT_EQ(out, "*");
}

TEST(NormalizePath, MergeSlashes) {
  PathOptions o;
  o.merge_slashes = true;
  check_table(
      {
          {"//", "/"},
          {"///a", "/a"},
          {"/a//b", "/a/b"},
          {"/a///b//", "/a/b/"},
          {"//a//b//", "/a/b/"},
          {"/a//../b", "/b"},  // merged first, as nginx reads it
          {"//..//a", "/a"},
          {"/a/.//b", "/a/b"},
          {"/a/%2F/b", "/a/%2F/b"},  // an escaped slash is not a separator
          {"/./", "/"},
          {"/.//", "/"},
      },
      o);
}

TEST(NormalizePath, EscapedSlashesReject) {
  PathOptions o;
  o.escaped_slashes = EscapedSlashes::kReject;
  check_table(
      {
          {"/a%2Fb", "", PathStatus::kEscapedSlash},
          {"/a%2fb", "", PathStatus::kEscapedSlash},
          {"/a%5Cb", "", PathStatus::kEscapedSlash},
          {"/a%5cb", "", PathStatus::kEscapedSlash},
          {"/%2e%2e%2f", "", PathStatus::kEscapedSlash},
          {"/a%2Eb", "/a.b"},  // other escapes are unaffected
          {"/a%3Ab", "/a%3Ab"},
          {"/a/b", "/a/b"},
      },
      o);
}

TEST(NormalizePath, WithoutNormalizationOnlyValidatesAndMerges) {
  PathOptions o;
  o.normalize = false;
  check_table(
      {
          {"/a/./b/../c", "/a/./b/../c"},
          {"/%61%2f", "/%61%2f"},  // nothing decoded or upper-cased
          {"/a//b", "/a//b"},
          {"/%G1", "", PathStatus::kBadEscape},
          {"/a\\b", "", PathStatus::kBackslash},
          {"/a\nb", "", PathStatus::kBadCharacter},
      },
      o);
  o.merge_slashes = true;
  check_table({{"/a//./b//", "/a/./b/"}, {"//", "/"}}, o);
  o.escaped_slashes = EscapedSlashes::kReject;
  check_table({{"/a%2f", "", PathStatus::kEscapedSlash}}, o);
}

TEST(NormalizePath, AllowedCharactersPassThrough) {
  // pchar (RFC 3986) and the other printable bytes the HTTP/1.1 parser admits in a target.
  const std::string_view p = "/az-AZ_09.~!$&'()*+,;=:@\"<>[]^`{|}";
  std::string out;
  EXPECT_EQ(run(p, PathOptions{}, out), PathStatus::kOk);
  EXPECT_EQ(out, p);
}

TEST(NormalizePath, ReusesOutputAndClearsIt) {
  std::string out = "/previous/content/that/is/long";
  EXPECT_EQ(normalize_path("/x", PathOptions{}, out), PathStatus::kOk);
  EXPECT_EQ(out, "/x");
}

TEST(NormalizePath, EveryByteAfterSlash) {
  // Each single byte: accepted ones are unchanged (or a dot segment, removed); the others are
  // rejected for a stated reason.
  for (int b = 0; b < 256; ++b) {
    const char c = static_cast<char>(b);
    std::string in = "/";
    in.push_back(c);
    std::string out;
    const PathStatus s = run(in, PathOptions{}, out);
    if (c == '.') {
      EXPECT_EQ(out, "/");
    } else if (c == '/') {
      EXPECT_EQ(out, "//");
    } else if (c == '%') {
      EXPECT_EQ(s, PathStatus::kBadEscape);
    } else if (c == '\\') {
      EXPECT_EQ(s, PathStatus::kBackslash);
    } else if (b <= 0x20 || b >= 0x7f || c == '#' || c == '?') {
      EXPECT_EQ(s, PathStatus::kBadCharacter) << b;
    } else {
      EXPECT_EQ(s, PathStatus::kOk) << b;
      EXPECT_EQ(out, in);
    }
  }
}

TEST(NormalizePath, EveryEscape) {
  // %XX for every byte, both hex cases: unreserved bytes decode, the rest stay (upper-cased).
  static constexpr char kHex[] = "0123456789abcdef";
  for (int b = 0; b < 256; ++b) {
    for (const bool upper : {false, true}) {
      std::string in = "/x";
      in.push_back('%');
      for (const char h : {kHex[b >> 4], kHex[b & 15]}) {
        in.push_back(upper && h >= 'a' ? static_cast<char>(h - 'a' + 'A') : h);
      }
      std::string out;
      ASSERT_EQ(run(in, PathOptions{}, out), PathStatus::kOk) << in;
      const bool unreserved = std::isalnum(b) || b == '-' || b == '.' || b == '_' || b == '~';
      if (unreserved) {
        EXPECT_EQ(out, std::string("/x") + static_cast<char>(b)) << in;
      } else {
        std::string want = "/x%";
        want.push_back(kHex[b >> 4] >= 'a' ? static_cast<char>(kHex[b >> 4] - 'a' + 'A')
                                           : kHex[b >> 4]);
        want.push_back(kHex[b & 15] >= 'a' ? static_cast<char>(kHex[b & 15] - 'a' + 'A')
                                           : kHex[b & 15]);
        EXPECT_EQ(out, want) << in;
      }
    }
  }
}

TEST(NormalizePath, LongInputsAreLinear) {
  // 200k "../" segments and 200k "a/" segments: quadratic work would take seconds.
  std::string in = "/";
  for (int i = 0; i < 200000; ++i)
    in.append("a/");
  for (int i = 0; i < 200000; ++i)
    in.append("../");
  in.append("end");
  std::string out;
  EXPECT_EQ(run(in, PathOptions{}, out), PathStatus::kOk);
  EXPECT_EQ(out, "/end");
  std::string slashes(300000, '/');
  PathOptions merge;
  merge.merge_slashes = true;
  EXPECT_EQ(run(slashes, merge, out), PathStatus::kOk);
  EXPECT_EQ(out, "/");
}

TEST(NormalizePath, StatusTexts) {
  for (const PathStatus s :
       {PathStatus::kOk, PathStatus::kEmpty, PathStatus::kNotAbsolute, PathStatus::kBadCharacter,
        PathStatus::kBackslash, PathStatus::kBadEscape, PathStatus::kEscapedSlash}) {
    EXPECT_FALSE(path_status_text(s).empty());
  }
  EXPECT_EQ(path_status_text(PathStatus::kBadEscape), "bad percent-escape in path");
}

}  // namespace
}  // namespace portico::proxy::http
