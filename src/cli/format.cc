#include "cli/format.h"

#include <algorithm>
#include <cctype>

namespace portico::cli {

using Json = nlohmann::ordered_json;

const char* to_string(OutputFormat format) {
  switch (format) {
    case OutputFormat::kTable:
      return "table";
    case OutputFormat::kWide:
      return "wide";
    case OutputFormat::kYaml:
      return "yaml";
    case OutputFormat::kJson:
      return "json";
  }
  return "table";
}

bool parse_output(std::string_view text, const std::vector<OutputFormat>& allowed,
                  OutputFormat* out, std::string* error) {
  if (text.empty() && !allowed.empty()) {
    *out = allowed.front();
    return true;
  }
  std::string valid;
  for (OutputFormat f : allowed) {
    if (text == to_string(f)) {
      *out = f;
      return true;
    }
    valid += valid.empty() ? "" : ", ";
    valid += to_string(f);
  }
  *error = "unknown output format '" + std::string(text) + "' (valid: " + valid + ")";
  return false;
}

std::string canonical_kind(std::string_view text) {
  std::string k;
  for (char c : text) {
    if (c == '-' || c == '_') continue;
    k.push_back(static_cast<char>(std::tolower(static_cast<unsigned char>(c))));
  }
  // "virtualservices.gateway.portico.dev" as kubectl prints it.
  if (auto dot = k.find('.'); dot != std::string::npos) k.resize(dot);
  struct Alias {
    const char* kind;
    std::vector<const char*> names;
  };
  static const std::vector<Alias> kAliases = {
      {"Gateway", {"gateway", "gateways", "gw", "gws"}},
      {"VirtualService", {"virtualservice", "virtualservices", "vs", "vservice", "vservices"}},
      {"Upstream", {"upstream", "upstreams", "us", "u"}},
      {"RouteTable", {"routetable", "routetables", "rt"}},
      {"UpstreamGroup", {"upstreamgroup", "upstreamgroups", "ug"}},
      {"Secret", {"secret", "secrets"}},
      {"AuthConfig", {"authconfig", "authconfigs", "ac"}},
      {"RateLimitConfig", {"ratelimitconfig", "ratelimitconfigs", "rlc"}},
      {"Settings", {"settings", "setting"}},
      {"File", {"file", "files"}},
      {"*", {"all"}},
  };
  for (const auto& a : kAliases) {
    for (const char* n : a.names) {
      if (k == n) return a.kind;
    }
  }
  return "";
}

std::string render_table(const std::vector<std::vector<std::string>>& rows) {
  std::vector<size_t> widths;
  for (const auto& row : rows) {
    if (widths.size() < row.size()) widths.resize(row.size(), 0);
    for (size_t i = 0; i < row.size(); ++i)
      widths[i] = std::max(widths[i], std::max<size_t>(row[i].size(), 1));
  }
  std::string out;
  for (const auto& row : rows) {
    std::string line;
    for (size_t i = 0; i < row.size(); ++i) {
      const std::string& cell = row[i].empty() ? std::string("-") : row[i];
      line += cell;
      if (i + 1 < row.size()) line.append(widths[i] - cell.size() + 3, ' ');
    }
    while (!line.empty() && line.back() == ' ')
      line.pop_back();
    out += line + "\n";
  }
  return out;
}

namespace {

// True when `s` reads back as the same string in plain (unquoted) YAML.
bool plain_safe(const std::string& s) {
  if (s.empty() || s.size() > 200) return false;
  if (std::isspace(static_cast<unsigned char>(s.front())) ||
      std::isspace(static_cast<unsigned char>(s.back()))) {
    return false;
  }
  if (std::string_view("-?:,[]{}#&*!|>'\"%@`~").find(s.front()) != std::string_view::npos) {
    // "-x" and "/x" style values are common and safe when not followed by a space.
    if (!(s.front() == '-' && s.size() > 1 && s[1] != ' ' &&
          !std::isdigit(static_cast<unsigned char>(s[1])) && s[1] != '.')) {
      return false;
    }
  }
  for (unsigned char c : s) {
    if (c < 0x20 || c == 0x7f) return false;
  }
  if (s.find(": ") != std::string::npos || s.find(" #") != std::string::npos) return false;
  if (s.back() == ':') return false;
  std::string lower;
  for (char c : s)
    lower.push_back(static_cast<char>(std::tolower(static_cast<unsigned char>(c))));
  static const char* kReserved[] = {"true", "false", "yes",  "no",    "on",   "off", "null", "~",
                                    "y",    "n",     ".inf", "-.inf", ".nan", "=",   "<<"};
  for (const char* r : kReserved) {
    if (lower == r) return false;
  }
  // Anything that looks like a number (including 0x1f, 1e3, 1_000, 08).
  bool numeric = true;
  for (char c : s) {
    if (!(std::isdigit(static_cast<unsigned char>(c)) || c == '.' || c == '-' || c == '+' ||
          c == 'e' || c == 'E' || c == '_' || c == 'x' || c == 'o' || c == ':')) {
      numeric = false;
      break;
    }
  }
  if (numeric && std::any_of(s.begin(), s.end(),
                             [](char c) { return std::isdigit(static_cast<unsigned char>(c)); })) {
    return false;
  }
  return true;
}

std::string scalar(const Json& v) {
  if (v.is_string()) {
    const std::string& s = v.get_ref<const std::string&>();
    return plain_safe(s) ? s : v.dump(-1, ' ', false, Json::error_handler_t::replace);
  }
  if (v.is_null()) return "null";
  return v.dump();
}

bool is_scalar(const Json& v) {
  return !(v.is_object() || v.is_array()) || v.empty();
}

std::string inline_value(const Json& v) {
  if (v.is_object()) return "{}";
  if (v.is_array()) return "[]";
  return scalar(v);
}

void emit(const Json& v, int indent, std::string& out);

void emit_object(const Json& v, int indent, std::string& out, bool first_inline) {
  bool first = true;
  for (auto it = v.begin(); it != v.end(); ++it) {
    if (!(first && first_inline)) out.append(static_cast<size_t>(indent), ' ');
    first = false;
    out += scalar(Json(it.key()));
    out += ':';
    if (is_scalar(*it)) {
      out += ' ';
      out += inline_value(*it);
      out += '\n';
    } else if (it->is_array()) {
      out += "\n";
      emit(*it, indent, out);  // lists under a key at the key's indentation (kubectl style)
    } else {
      out += "\n";
      emit(*it, indent + 2, out);
    }
  }
}

void emit(const Json& v, int indent, std::string& out) {
  if (is_scalar(v)) {
    out.append(static_cast<size_t>(indent), ' ');
    out += inline_value(v) + "\n";
    return;
  }
  if (v.is_object()) {
    emit_object(v, indent, out, false);
    return;
  }
  for (const auto& item : v) {
    out.append(static_cast<size_t>(indent), ' ');
    out += "- ";
    if (is_scalar(item)) {
      out += inline_value(item) + "\n";
    } else if (item.is_object()) {
      emit_object(item, indent + 2, out, true);
    } else {
      out += "\n";
      emit(item, indent + 2, out);
    }
  }
}

std::vector<std::string_view> split_lines(std::string_view text) {
  std::vector<std::string_view> lines;
  while (!text.empty()) {
    size_t nl = text.find('\n');
    if (nl == std::string_view::npos) {
      lines.push_back(text);
      break;
    }
    lines.push_back(text.substr(0, nl));
    text.remove_prefix(nl + 1);
  }
  return lines;
}

}  // namespace

std::string to_yaml(const Json& value) {
  std::string out;
  emit(value, 0, out);
  return out;
}

std::string unified_diff(std::string_view from, std::string_view to, std::string_view from_label,
                         std::string_view to_label, int context) {
  if (from == to) return "";
  auto a = split_lines(from);
  auto b = split_lines(to);
  // Longest common subsequence by dynamic programming (configuration documents are small); over
  // the limit, everything is shown as replaced.
  const size_t n = a.size();
  const size_t m = b.size();
  struct Op {
    char kind;  // ' ', '-', '+'
    std::string_view line;
  };
  std::vector<Op> ops;
  if (n * m <= 4'000'000) {
    std::vector<uint32_t> lcs((n + 1) * (m + 1), 0);
    auto at = [&](size_t i, size_t j) -> uint32_t& { return lcs[i * (m + 1) + j]; };
    for (size_t i = n; i-- > 0;) {
      for (size_t j = m; j-- > 0;) {
        at(i, j) = a[i] == b[j] ? at(i + 1, j + 1) + 1 : std::max(at(i + 1, j), at(i, j + 1));
      }
    }
    size_t i = 0;
    size_t j = 0;
    while (i < n || j < m) {
      if (i < n && j < m && a[i] == b[j]) {
        ops.push_back({' ', a[i]});
        ++i;
        ++j;
      } else if (i < n && (j == m || at(i + 1, j) >= at(i, j + 1))) {
        ops.push_back({'-', a[i++]});
      } else {
        ops.push_back({'+', b[j++]});
      }
    }
  } else {
    for (auto l : a)
      ops.push_back({'-', l});
    for (auto l : b)
      ops.push_back({'+', l});
  }
  std::string out = "--- " + std::string(from_label) + "\n+++ " + std::string(to_label) + "\n";
  const size_t ctx = static_cast<size_t>(std::max(context, 0));
  size_t k = 0;
  while (k < ops.size()) {
    // Next change.
    size_t change = k;
    while (change < ops.size() && ops[change].kind == ' ')
      ++change;
    if (change == ops.size()) break;
    size_t start = change >= ctx ? change - ctx : 0;
    start = std::max(start, k);
    // Extend the hunk while changes are within 2*context of each other.
    size_t end = change;
    for (;;) {
      while (end < ops.size() && ops[end].kind != ' ')
        ++end;
      size_t next = end;
      while (next < ops.size() && ops[next].kind == ' ')
        ++next;
      if (next < ops.size() && next - end <= 2 * ctx) {
        end = next;
        continue;
      }
      end = std::min(end + ctx, ops.size());
      break;
    }
    // Line numbers at the hunk's start.
    size_t a_line = 1;
    size_t b_line = 1;
    for (size_t q = 0; q < start; ++q) {
      if (ops[q].kind != '+') ++a_line;
      if (ops[q].kind != '-') ++b_line;
    }
    size_t a_count = 0;
    size_t b_count = 0;
    for (size_t q = start; q < end; ++q) {
      if (ops[q].kind != '+') ++a_count;
      if (ops[q].kind != '-') ++b_count;
    }
    out += "@@ -" + std::to_string(a_count ? a_line : a_line - 1) + "," + std::to_string(a_count) +
           " +" + std::to_string(b_count ? b_line : b_line - 1) + "," + std::to_string(b_count) +
           " @@\n";
    for (size_t q = start; q < end; ++q) {
      out.push_back(ops[q].kind);
      out.append(ops[q].line);
      out.push_back('\n');
    }
    k = end;
  }
  return out;
}

std::string json_str(const Json& j, const char* key) {
  if (!j.is_object()) return "";
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return "";
  return it->is_string() ? it->get<std::string>() : it->dump();
}

}  // namespace portico::cli
