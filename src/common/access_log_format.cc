#include "common/access_log_format.h"

#include <cctype>

namespace portico::access_log {

const char* const kDefaultTextFormat =
    "[%START_TIME%] \"%REQ(:METHOD)% %REQ(:PATH)% %PROTOCOL%\" %RESPONSE_CODE% %RESPONSE_FLAGS% "
    "%BYTES_RECEIVED% %BYTES_SENT% %DURATION% \"%REQ(X-FORWARDED-FOR)%\" \"%REQ(USER-AGENT)%\" "
    "\"%REQ(X-REQUEST-ID)%\" \"%REQ(:AUTHORITY)%\" \"%UPSTREAM_HOST%\"\n";

namespace {

struct OpName {
  const char* name;
  Op op;
};

constexpr OpName kOps[] = {
    {"START_TIME", Op::kStartTime},
    {"REQ", Op::kRequestHeader},
    {"RESP", Op::kResponseHeader},
    {"RESPONSE_CODE", Op::kResponseCode},
    {"PROTOCOL", Op::kProtocol},
    {"BYTES_RECEIVED", Op::kBytesReceived},
    {"BYTES_SENT", Op::kBytesSent},
    {"DURATION", Op::kDuration},
    {"UPSTREAM_HOST", Op::kUpstreamHost},
    {"UPSTREAM_CLUSTER", Op::kUpstreamCluster},
    {"DOWNSTREAM_REMOTE_ADDRESS", Op::kDownstreamRemoteAddress},
    {"DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT", Op::kDownstreamRemoteAddressWithoutPort},
    {"ROUTE_NAME", Op::kRouteName},
    {"REQUEST_ID", Op::kRequestId},
    {"RESPONSE_FLAGS", Op::kResponseFlags},
};

bool is_name_char(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
}

// RFC 9110 token characters.
bool is_tchar(char c) {
  if (std::isalnum(static_cast<unsigned char>(c))) return true;
  switch (c) {
    case '!':
    case '#':
    case '$':
    case '%':
    case '&':
    case '\'':
    case '*':
    case '+':
    case '-':
    case '.':
    case '^':
    case '_':
    case '`':
    case '|':
    case '~':
      return true;
    default:
      return false;
  }
}

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out)
    c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

// One header name of %REQ(...)% or %RESP(...)%: lower-cased, checked.
bool header_name(std::string_view raw, bool request, std::string* out, std::string* why) {
  if (raw.empty()) {
    *why = "an empty header name";
    return false;
  }
  std::string name = lower(raw);
  if (name[0] == ':') {
    if (!request || !is_request_pseudo_header(name)) {
      *why = "\"" + std::string(raw) + "\" is not a pseudo-header it knows" +
             (request ? " (:METHOD, :PATH, :AUTHORITY, :SCHEME)" : " (none for responses)");
      return false;
    }
  } else {
    for (char c : name) {
      if (!is_tchar(c) || c == '%') {
        *why = "\"" + std::string(raw) + "\" is not a header name";
        return false;
      }
    }
  }
  *out = std::move(name);
  return true;
}

}  // namespace

bool is_numeric(Op op) {
  switch (op) {
    case Op::kResponseCode:
    case Op::kBytesReceived:
    case Op::kBytesSent:
    case Op::kDuration:
      return true;
    default:
      return false;
  }
}

bool is_request_pseudo_header(std::string_view n) {
  return n == ":method" || n == ":path" || n == ":authority" || n == ":scheme";
}

Result<std::vector<Token>> parse_format(std::string_view f) {
  std::vector<Token> out;
  std::string literal;
  auto flush = [&] {
    if (literal.empty()) return;
    Token t;
    t.text = std::move(literal);
    out.push_back(std::move(t));
    literal.clear();
  };
  size_t i = 0;
  while (i < f.size()) {
    const char c = f[i];
    if (c != '%') {
      literal.push_back(c);
      ++i;
      continue;
    }
    const size_t start = i;
    if (i + 1 < f.size() && f[i + 1] == '%') {
      literal.push_back('%');
      i += 2;
      continue;
    }
    size_t j = i + 1;
    while (j < f.size() && is_name_char(f[j]))
      ++j;
    const std::string_view name = f.substr(i + 1, j - i - 1);
    // What the user wrote, for messages: up to the closing '%' (or 40 characters).
    auto shown = [&] {
      size_t end = f.find('%', start + 1);
      if (end == std::string_view::npos || end - start > 40) {
        return std::string(f.substr(start, std::min<size_t>(40, f.size() - start)));
      }
      return std::string(f.substr(start, end - start + 1));
    };
    auto fail = [&](const std::string& why) -> Result<std::vector<Token>> {
      return Error::invalid("access log format: " + why + " at position " +
                            std::to_string(start + 1));
    };
    if (name.empty()) {
      return fail("'%' starts no command operator (write %% for a literal '%')");
    }
    const OpName* known = nullptr;
    for (const auto& k : kOps) {
      if (name == k.name) known = &k;
    }
    if (!known) {
      return fail("unknown command operator \"%" + std::string(name) +
                  "%\" (Portico knows START_TIME, REQ, RESP, RESPONSE_CODE, PROTOCOL, "
                  "BYTES_RECEIVED, BYTES_SENT, DURATION, UPSTREAM_HOST, UPSTREAM_CLUSTER, "
                  "DOWNSTREAM_REMOTE_ADDRESS, DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT, ROUTE_NAME, "
                  "REQUEST_ID, RESPONSE_FLAGS)");
    }
    Token t;
    t.op = known->op;
    const bool header = t.op == Op::kRequestHeader || t.op == Op::kResponseHeader;
    bool has_arg = false;
    std::string_view arg;
    if (j < f.size() && f[j] == '(') {
      const size_t close = f.find(')', j + 1);
      if (close == std::string_view::npos) return fail("\"" + shown() + "\" has no ')'");
      arg = f.substr(j + 1, close - j - 1);
      has_arg = true;
      j = close + 1;
    }
    if (header && !has_arg) {
      return fail("%" + std::string(name) + "% needs a header name: %" + std::string(name) +
                  "(X-NAME)%");
    }
    if (has_arg && !header && t.op != Op::kStartTime) {
      return fail("%" + std::string(name) + "% takes no argument");
    }
    if (header) {
      std::string why;
      const size_t q = arg.find('?');
      if (!header_name(arg.substr(0, q), t.op == Op::kRequestHeader, &t.text, &why) ||
          (q != std::string_view::npos &&
           !header_name(arg.substr(q + 1), t.op == Op::kRequestHeader, &t.fallback, &why))) {
        return fail("%" + std::string(name) + "(" + std::string(arg) + ")%: " + why);
      }
    } else if (t.op == Op::kStartTime && has_arg) {
      if (arg.empty()) return fail("%START_TIME()% has an empty format");
      t.text = std::string(arg);
    }
    if (j < f.size() && f[j] == ':') {
      if (!header) return fail("%" + std::string(name) + "% takes no length limit");
      size_t k = j + 1;
      uint64_t n = 0;
      while (k < f.size() && f[k] >= '0' && f[k] <= '9' && n < 1000000) {
        n = n * 10 + static_cast<uint64_t>(f[k] - '0');
        ++k;
      }
      if (k == j + 1 || n == 0 || n >= 1000000) {
        return fail("\"" + shown() + "\": the length after ':' must be a number from 1 to 999999");
      }
      t.max_length = static_cast<uint32_t>(n);
      j = k;
    }
    if (j >= f.size() || f[j] != '%') {
      return fail("\"" + shown() + "\" is not closed by '%'");
    }
    flush();
    out.push_back(std::move(t));
    i = j + 1;
  }
  flush();
  return out;
}

}  // namespace portico::access_log
