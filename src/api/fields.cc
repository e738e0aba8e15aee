#include "api/fields.h"

#include <cctype>

#include <arpa/inet.h>

#include <cstdint>
#include <cstring>

namespace portico::api {
namespace {

bool is_digit(char c) {
  return c >= '0' && c <= '9';
}
bool is_lower_alnum(char c) {
  return (c >= 'a' && c <= 'z') || is_digit(c);
}

}  // namespace

std::string to_lower(std::string_view text) {
  std::string out(text);
  for (auto& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return out;
}

std::string to_upper(std::string_view text) {
  std::string out(text);
  for (auto& c : out) {
    if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 'a' + 'A');
  }
  return out;
}

std::optional<std::chrono::milliseconds> parse_duration(std::string_view text, std::string* error) {
  constexpr double kMaxMillis = 720.0 * 3600 * 1000;
  if (text.empty()) {
    *error = "empty duration; use e.g. \"5s\"";
    return std::nullopt;
  }
  if (text == "0") return std::chrono::milliseconds(0);
  if (text[0] == '-') {
    *error = "duration \"" + std::string(text) + "\" is negative";
    return std::nullopt;
  }
  double total = 0;
  size_t i = 0;
  while (i < text.size()) {
    size_t start = i;
    double whole = 0;
    bool digits = false;
    while (i < text.size() && is_digit(text[i])) {
      whole = whole * 10 + (text[i] - '0');
      digits = true;
      ++i;
      if (whole > 1e12) break;
    }
    double fraction = 0, scale = 1;
    if (i < text.size() && text[i] == '.') {
      ++i;
      while (i < text.size() && is_digit(text[i])) {
        scale /= 10;
        fraction += (text[i] - '0') * scale;
        digits = true;
        ++i;
      }
    }
    if (!digits) {
      *error =
          "invalid duration \"" + std::string(text) + "\"; use e.g. \"500ms\", \"5s\", \"1m30s\"";
      return std::nullopt;
    }
    size_t unit_start = i;
    while (i < text.size() && !is_digit(text[i]) && text[i] != '.')
      ++i;
    std::string_view unit = text.substr(unit_start, i - unit_start);
    double factor = 0;
    if (unit == "ms") {
      factor = 1;
    } else if (unit == "s") {
      factor = 1000;
    } else if (unit == "m") {
      factor = 60 * 1000;
    } else if (unit == "h") {
      factor = 3600 * 1000;
    } else if (unit.empty()) {
      *error = "duration \"" + std::string(text) + "\" has no unit; use e.g. \"" +
               std::string(text.substr(start, i - start)) + "s\"";
      return std::nullopt;
    } else {
      *error = "unknown unit \"" + std::string(unit) + "\" in duration \"" + std::string(text) +
               "\"; units are ms, s, m, h";
      return std::nullopt;
    }
    total += (whole + fraction) * factor;
    if (total > kMaxMillis) {
      *error = "duration \"" + std::string(text) + "\" is too long (at most 720h)";
      return std::nullopt;
    }
  }
  double rounded = static_cast<double>(static_cast<int64_t>(total));
  if (rounded != total) {
    *error = "duration \"" + std::string(text) + "\" is finer than the 1ms resolution";
    return std::nullopt;
  }
  return std::chrono::milliseconds(static_cast<int64_t>(total));
}

std::string check_name(std::string_view name) {
  if (name.empty()) return "must not be empty";
  if (name.size() > 253) return "is longer than 253 characters";
  bool ok = is_lower_alnum(name.front()) && is_lower_alnum(name.back());
  for (char c : name) {
    if (!is_lower_alnum(c) && c != '-' && c != '.') ok = false;
  }
  if (!ok) {
    // Built by appending: GCC 12 at -O3 reports a false -Wrestrict on "..." + std::string.
    std::string msg = "\"";
    msg.append(name);
    msg.append(
        "\" is not a valid name: use lower-case letters, digits, '-' and '.', starting and "
        "ending with a letter or digit");
    return msg;
  }
  return {};
}

std::string check_host_address(std::string_view address, std::string* out, bool* is_name) {
  *is_name = false;
  if (ip_family(address) != 0) {
    *out = canonical_ip(address);
    return "";
  }
  const std::string quoted = "\"" + std::string(address) + "\"";
  if (!address.empty() && address.front() == '[') {
    return quoted + " is not a numeric IP address (write IPv6 addresses without brackets)";
  }
  std::string_view name = address;
  if (!name.empty() && name.back() == '.') name.remove_suffix(1);  // fully qualified
  if (name.empty() || name.size() > 253) return quoted + " is neither an IP address nor a DNS name";
  std::string lower;
  size_t label = 0;
  bool all_digits = true;  // of the last label: "10.0.0.256" is a typo, not a name
  for (char c : name) {
    if (c == '.') {
      if (label == 0) return quoted + " is not a DNS name (empty label)";
      label = 0;
      all_digits = true;
      lower.push_back(c);
      continue;
    }
    const bool ok = std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_';
    if (!ok) return quoted + " is neither an IP address nor a DNS name";
    if (++label > 63) return quoted + " is not a DNS name (a label longer than 63 characters)";
    if (!std::isdigit(static_cast<unsigned char>(c))) all_digits = false;
    lower.push_back(static_cast<char>(std::tolower(static_cast<unsigned char>(c))));
  }
  if (label == 0) return quoted + " is not a DNS name (empty label)";
  if (all_digits) return quoted + " is not a valid IP address";
  *out = std::move(lower);
  *is_name = true;
  return "";
}

int ip_family(std::string_view address) {
  if (address.empty() || address.size() >= INET6_ADDRSTRLEN) return 0;
  char buf[INET6_ADDRSTRLEN + 1];
  std::memcpy(buf, address.data(), address.size());
  buf[address.size()] = '\0';
  unsigned char out[16];
  if (inet_pton(AF_INET, buf, out) == 1) return 4;
  if (inet_pton(AF_INET6, buf, out) == 1) return 6;
  return 0;
}

std::string canonical_ip(std::string_view address) {
  int family = ip_family(address);
  if (family == 0) return std::string(address);
  char buf[INET6_ADDRSTRLEN + 1];
  std::memcpy(buf, address.data(), address.size());
  buf[address.size()] = '\0';
  unsigned char bin[16];
  char out[INET6_ADDRSTRLEN];
  int af = family == 4 ? AF_INET : AF_INET6;
  if (inet_pton(af, buf, bin) != 1 || inet_ntop(af, bin, out, sizeof(out)) == nullptr) {
    return std::string(address);
  }
  return out;
}

bool is_http_token(std::string_view text) {
  if (text.empty()) return false;
  for (unsigned char c : text) {
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) continue;
    if (std::strchr("!#$%&'*+-.^_`|~", c) != nullptr && c != '\0') continue;
    return false;
  }
  return true;
}

bool is_safe_header_value(std::string_view text) {
  for (char c : text) {
    if (c == '\r' || c == '\n' || c == '\0') return false;
  }
  return true;
}

bool is_reserved_header(std::string_view lower_name) {
  static constexpr std::string_view kReserved[] = {
      "connection", "keep-alive",        "proxy-connection", "te", "trailer", "upgrade",
      "host",       "transfer-encoding", "content-length"};
  for (auto r : kReserved) {
    if (lower_name == r) return true;
  }
  return false;
}

std::optional<std::string> normalize_domain(std::string_view domain, std::string* error) {
  std::string d = to_lower(domain);
  if (d.empty()) {
    *error = "domain must not be empty";
    return std::nullopt;
  }
  std::string host = d;
  // Optional ":port" suffix (IPv6 literals are written in brackets: "[::1]:8080").
  size_t colon = d.rfind(':');
  size_t bracket = d.rfind(']');
  if (colon != std::string::npos && (bracket == std::string::npos || colon > bracket)) {
    std::string port = d.substr(colon + 1);
    host = d.substr(0, colon);
    bool digits = !port.empty() && port.size() <= 5;
    for (char c : port)
      digits = digits && is_digit(c);
    if (!digits || std::stoi(port) < 1 || std::stoi(port) > 65535) {
      *error = "domain \"" + std::string(domain) + "\" has an invalid port \"" + port + "\"";
      return std::nullopt;
    }
  }
  if (host.empty()) {
    *error = "domain \"" + std::string(domain) + "\" has no host";
    return std::nullopt;
  }
  if (host.front() == '[') {
    if (host.back() == ']' && ip_family(host.substr(1, host.size() - 2)) == 6) return d;
    *error = "domain \"" + std::string(domain) + "\" is not a valid bracketed IPv6 address";
    return std::nullopt;
  }
  if (host == "*") return d;
  if (host.size() != d.size() && host.size() > 2 && host.substr(host.size() - 2) == ".*") {
    *error = "domain \"" + std::string(domain) +
             "\": a port cannot follow a prefix wildcard (\"example.*\" matches any port)";
    return std::nullopt;
  }
  std::string_view rest = host;
  if (rest.size() > 2 && rest.substr(0, 2) == "*.") {
    rest.remove_prefix(2);
  } else if (rest.size() > 2 && rest.substr(rest.size() - 2) == ".*") {
    rest.remove_suffix(2);
  }
  if (rest.find('*') != std::string_view::npos) {
    *error = "domain \"" + std::string(domain) +
             "\" uses '*' in an unsupported way; the forms are \"*\", \"*.example.com\", "
             "\"example.*\" and exact names";
    return std::nullopt;
  }
  if (rest.front() == '.' || rest.back() == '.' || rest.find("..") != std::string_view::npos) {
    *error = "domain \"" + std::string(domain) + "\" has an empty label";
    return std::nullopt;
  }
  for (char c : rest) {
    if (!is_lower_alnum(c) && c != '-' && c != '.' && c != '_') {
      *error = "domain \"" + std::string(domain) + "\" contains an invalid character '" +
               std::string(1, c) + "'";
      return std::nullopt;
    }
  }
  return d;
}

}  // namespace portico::api
