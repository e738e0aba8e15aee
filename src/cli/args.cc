#include "cli/args.h"

#include <cctype>
#include <cstdio>

namespace portico::cli {

std::string Args::parse(const std::vector<std::string>& args, const std::vector<FlagSpec>& specs) {
  bool flags_done = false;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (flags_done || a.size() < 2 || a[0] != '-') {
      positional_.push_back(a);
      continue;
    }
    if (a == "--") {
      flags_done = true;
      continue;
    }
    if (a == "--help" || a == "-h") {
      help_ = true;
      continue;
    }
    std::string name = a;
    std::string value;
    bool has_value = false;
    const FlagSpec* spec = nullptr;
    if (a.rfind("--", 0) == 0) {
      size_t eq = a.find('=');
      if (eq != std::string::npos) {
        name = a.substr(0, eq);
        value = a.substr(eq + 1);
        has_value = true;
      }
      for (const auto& s : specs) {
        if (s.name == name) spec = &s;
      }
    } else {
      // "-o", "-ojson", "-o=json"
      name = a.substr(0, 2);
      for (const auto& s : specs) {
        if (!s.short_name.empty() && s.short_name == name) spec = &s;
      }
      if (spec && a.size() > 2) {
        value = a.substr(a[2] == '=' ? 3 : 2);
        has_value = true;
      }
    }
    if (!spec) return "unknown flag '" + name + "'";
    if (!spec->takes_value) {
      if (has_value && value != "true" && value != "false") {
        return spec->name + " takes no value (got '" + value + "')";
      }
      if (has_value && value == "false") {
        values_.erase(spec->name);
      } else {
        values_[spec->name] = {"true"};
      }
      continue;
    }
    if (!has_value) {
      if (i + 1 >= args.size()) return spec->name + " needs a value";
      value = args[++i];
    }
    auto& slot = values_[spec->name];
    if (!spec->repeated) slot.clear();
    slot.push_back(std::move(value));
  }
  return "";
}

std::string Args::get(std::string_view name, std::string fallback) const {
  auto it = values_.find(name);
  if (it == values_.end() || it->second.empty()) return fallback;
  return it->second.back();
}

std::vector<std::string> Args::all(std::string_view name) const {
  auto it = values_.find(name);
  return it == values_.end() ? std::vector<std::string>{} : it->second;
}

bool parse_duration(const std::string& text, std::chrono::milliseconds* out) {
  size_t digits = 0;
  while (digits < text.size() && std::isdigit(static_cast<unsigned char>(text[digits])))
    ++digits;
  if (digits == 0 || digits > 9) return false;
  long long n = std::stoll(text.substr(0, digits));
  std::string unit = text.substr(digits);
  if (unit == "ms") {
    *out = std::chrono::milliseconds(n);
  } else if (unit == "s" || (unit.empty() && n == 0)) {
    *out = std::chrono::seconds(n);
  } else if (unit == "m") {
    *out = std::chrono::minutes(n);
  } else {
    return false;
  }
  return true;
}

bool FlagWalker::next() {
  if (next_ >= args_.size()) return false;
  arg_ = args_[next_++];
  inline_value_.clear();
  has_inline_ = false;
  if (arg_.rfind("--", 0) == 0 && arg_.find('=') != std::string::npos) {
    inline_value_ = arg_.substr(arg_.find('=') + 1);
    arg_.resize(arg_.find('='));
    has_inline_ = true;
  }
  return true;
}

const std::string* FlagWalker::value() {
  if (has_inline_) return &inline_value_;
  if (next_ >= args_.size()) {
    std::fprintf(stderr, "%s: %s needs a value\n", command_.c_str(), arg_.c_str());
    return nullptr;
  }
  return &args_[next_++];
}

}  // namespace portico::cli
