#include "api/yaml_reader.h"

#include "api/fields.h"

namespace portico::api::yaml {

void DocReader::add(Diagnostic::Severity severity, Location loc, std::string path,
                    std::string message) {
  Diagnostic d;
  d.severity = severity;
  d.file = file_;
  d.line = loc.line;
  d.column = loc.column;
  d.path = std::move(path);
  d.message = std::move(message);
  out_->push_back(std::move(d));
}

void DocReader::error(Location loc, std::string path, std::string message) {
  add(Diagnostic::Severity::kError, loc, std::move(path), std::move(message));
}

void DocReader::warning(Location loc, std::string path, std::string message) {
  add(Diagnostic::Severity::kWarning, loc, std::move(path), std::move(message));
}

Location location_of(const YAML::Node& node) {
  if (!node.IsDefined()) return {};
  YAML::Mark mark = node.Mark();
  if (mark.is_null() || mark.line < 0 || mark.column < 0) return {};
  return {mark.line + 1, mark.column + 1};
}

std::string describe_type(const YAML::Node& node) {
  if (!node.IsDefined() || node.IsNull()) return "null";
  if (node.IsMap()) return "a map";
  if (node.IsSequence()) return "a list";
  return "a string";
}

std::string join_path(const std::string& parent, std::string_view key) {
  if (parent.empty()) return std::string(key);
  std::string out = parent;
  out += '.';
  out += key;
  return out;
}

std::string index_path(const std::string& parent, size_t index) {
  return parent + "[" + std::to_string(index) + "]";
}

bool is_plain(const YAML::Node& node) {
  return node.Tag() == "?";
}

bool looks_like_int(std::string_view s) {
  if (!s.empty() && (s[0] == '+' || s[0] == '-')) s.remove_prefix(1);
  if (s.empty()) return false;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
  }
  return true;
}

namespace {

std::string short_value(const std::string& s) {
  if (s.size() <= 40) return s;
  return s.substr(0, 37) + "...";
}

}  // namespace

bool read_string(DocReader& doc, const YAML::Node& node, const std::string& path, Location loc,
                 std::string* out) {
  if (!node.IsScalar()) {
    doc.error(loc, path, "expected a string, got " + describe_type(node));
    return false;
  }
  *out = node.Scalar();
  return true;
}

bool read_bool(DocReader& doc, const YAML::Node& node, const std::string& path, Location loc,
               bool* out) {
  if (!node.IsScalar()) {
    doc.error(loc, path, "expected true or false, got " + describe_type(node));
    return false;
  }
  const std::string& s = node.Scalar();
  if (is_plain(node)) {
    if (s == "true" || s == "True" || s == "TRUE") {
      *out = true;
      return true;
    }
    if (s == "false" || s == "False" || s == "FALSE") {
      *out = false;
      return true;
    }
  }
  doc.error(
      loc, path,
      "expected true or false, got " + (is_plain(node) ? "\"" + short_value(s) + "\""
                                                       : "the string \"" + short_value(s) + "\""));
  return false;
}

bool read_uint(DocReader& doc, const YAML::Node& node, const std::string& path, Location loc,
               uint64_t min, uint64_t max, uint64_t* out) {
  std::string range = std::to_string(min) + "-" + std::to_string(max);
  if (!node.IsScalar()) {
    doc.error(loc, path, "expected an integer (" + range + "), got " + describe_type(node));
    return false;
  }
  const std::string& s = node.Scalar();
  if (!is_plain(node)) {
    doc.error(loc, path,
              "expected an integer (" + range + "), got the string \"" + short_value(s) + "\"");
    return false;
  }
  if (!looks_like_int(s)) {
    doc.error(loc, path, "expected an integer (" + range + "), got \"" + short_value(s) + "\"");
    return false;
  }
  bool negative = s[0] == '-';
  uint64_t value = 0;
  bool overflow = false;
  for (char c : s) {
    if (c < '0' || c > '9') continue;
    if (value > (UINT64_MAX - 9) / 10) {
      overflow = true;
      break;
    }
    value = value * 10 + static_cast<uint64_t>(c - '0');
  }
  if ((negative && value != 0) || overflow || value < min || value > max) {
    doc.error(loc, path, short_value(s) + " is out of range (" + range + ")");
    return false;
  }
  *out = value;
  return true;
}

void for_each_item(const Field& field,
                   const std::function<void(const YAML::Node&, const std::string&, Location)>& fn) {
  size_t i = 0;
  for (auto it = field.value.begin(); it != field.value.end(); ++it, ++i) {
    YAML::Node item = *it;
    Location loc = location_of(item);
    if (loc.line == 0) loc = field.loc;
    fn(item, index_path(field.path, i), loc);
  }
}

MapReader::MapReader(DocReader& doc, const YAML::Node& node, std::string path, Location loc)
    : doc_(doc), path_(std::move(path)), loc_(loc) {
  if (!node.IsMap()) {
    doc_.error(loc_, path_, "expected a map, got " + describe_type(node));
    return;
  }
  ok_ = true;
  Location own = location_of(node);
  if (own.line > 0) loc_ = own;
  for (auto it = node.begin(); it != node.end(); ++it) {
    YAML::Node key = it->first;
    Location key_loc = location_of(key);
    if (key_loc.line == 0) key_loc = loc_;
    if (!key.IsScalar()) {
      doc_.error(key_loc, path_, "keys must be strings, got " + describe_type(key));
      continue;
    }
    if (find(key.Scalar()) != nullptr) {
      doc_.error(key_loc, join_path(path_, key.Scalar()), "duplicate key \"" + key.Scalar() + "\"");
      continue;
    }
    entries_.push_back(Entry{key.Scalar(), key, it->second, false});
  }
}

MapReader::Entry* MapReader::find(std::string_view key) {
  for (auto& e : entries_) {
    if (e.key == key) return &e;
  }
  return nullptr;
}

const MapReader::Entry* MapReader::find(std::string_view key) const {
  for (const auto& e : entries_) {
    if (e.key == key) return &e;
  }
  return nullptr;
}

bool MapReader::has(std::string_view key) const {
  const Entry* e = find(key);
  return e != nullptr && e->value.IsDefined() && !e->value.IsNull();
}

std::optional<Field> MapReader::take(std::string_view key) {
  Entry* e = find(key);
  if (e == nullptr) return std::nullopt;
  e->taken = true;
  Field f;
  f.path = join_path(path_, key);
  f.key = e->key_node;
  f.value = e->value;
  Location value_loc =
      (e->value.IsDefined() && !e->value.IsNull()) ? location_of(e->value) : Location{};
  f.loc = value_loc.line > 0 ? value_loc : location_of(e->key_node);
  if (f.loc.line == 0) f.loc = loc_;
  return f;
}

void MapReader::require_error(std::string_view key) {
  doc_.error(loc_, join_path(path_, key), "is required");
}

bool MapReader::string(std::string_view key, std::string* out, bool required, Location* where) {
  auto f = take(key);
  if (f && where != nullptr) *where = f->loc;
  if (!f || f->is_null()) {
    if (required) require_error(key);
    return false;
  }
  return read_string(doc_, f->value, f->path, f->loc, out);
}

bool MapReader::boolean(std::string_view key, bool* out, Location* where) {
  auto f = take(key);
  if (f && where != nullptr) *where = f->loc;
  if (!f || f->is_null()) return false;
  return read_bool(doc_, f->value, f->path, f->loc, out);
}

bool MapReader::uint(std::string_view key, uint64_t min, uint64_t max, uint64_t* out, bool required,
                     Location* where) {
  auto f = take(key);
  if (f && where != nullptr) *where = f->loc;
  if (!f || f->is_null()) {
    if (required) require_error(key);
    return false;
  }
  return read_uint(doc_, f->value, f->path, f->loc, min, max, out);
}

bool MapReader::duration(std::string_view key, std::chrono::milliseconds* out, bool required,
                         Location* where) {
  auto f = take(key);
  if (f && where != nullptr) *where = f->loc;
  if (!f || f->is_null()) {
    if (required) require_error(key);
    return false;
  }
  if (!f->value.IsScalar()) {
    doc_.error(f->loc, f->path,
               "expected a duration such as \"5s\", got " + describe_type(f->value));
    return false;
  }
  std::string error;
  auto d = parse_duration(f->value.Scalar(), &error);
  if (!d) {
    doc_.error(f->loc, f->path, error);
    return false;
  }
  *out = *d;
  return true;
}

std::optional<Field> MapReader::container(std::string_view key, bool required, bool want_map) {
  auto f = take(key);
  if (!f || f->is_null()) {
    if (required) require_error(key);
    return std::nullopt;
  }
  if (want_map ? !f->value.IsMap() : !f->value.IsSequence()) {
    doc_.error(f->loc, f->path,
               std::string(want_map ? "expected a map, got " : "expected a list, got ") +
                   describe_type(f->value));
    return std::nullopt;
  }
  return f;
}

std::optional<Field> MapReader::map(std::string_view key, bool required) {
  return container(key, required, true);
}

std::optional<Field> MapReader::list(std::string_view key, bool required) {
  return container(key, required, false);
}

bool MapReader::string_map(std::string_view key, std::map<std::string, std::string>* out) {
  auto f = map(key);
  if (!f) return false;
  MapReader m(doc_, f->value, f->path, f->loc);
  bool ok = true;
  for (auto& e : m.entries_) {
    e.taken = true;
    Field item = *m.take(e.key);
    if (item.is_null()) {
      (*out)[e.key] = "";
      continue;
    }
    std::string value;
    if (read_string(doc_, item.value, item.path, item.loc, &value)) {
      (*out)[e.key] = value;
    } else {
      ok = false;
    }
  }
  return ok;
}

void MapReader::ignore_harmless(std::string_view key, std::string_view why) {
  auto f = take(key);
  if (!f) return;
  Location loc = location_of(f->key);
  if (loc.line == 0) loc = f->loc;
  doc_.warning(loc, f->path, "is ignored (" + std::string(why) + ")");
}

namespace {

// What a well-known option Portico does not implement would do: named in the error so that the
// reader knows what would have been dropped.
const char* feature_of(std::string_view key) {
  struct Feature {
    std::string_view key;
    const char* what;
  };
  static constexpr Feature kFeatures[] = {
      {"extauth", "authentication"},
      {"extAuth", "authentication"},
      {"jwt", "JWT authentication"},
      {"jwtStaged", "JWT authentication"},
      {"jwtProviders", "JWT authentication"},
      {"basicAuth", "authentication"},
      {"oauth", "authentication"},
      {"oauth2", "authentication"},
      {"apiKeyAuth", "authentication"},
      {"rbac", "authorization"},
      {"opa", "authorization"},
      {"waf", "a web application firewall"},
      {"modSecurity", "a web application firewall"},
      {"dlp", "data loss prevention"},
      {"ratelimit", "rate limiting"},
      {"ratelimitBasic", "rate limiting"},
      {"ratelimitEarly", "rate limiting"},
      {"ratelimitRegular", "rate limiting"},
      {"rateLimitConfigs", "rate limiting"},
      {"rateLimitEarlyConfigs", "rate limiting"},
      {"rateLimitRegularConfigs", "rate limiting"},
      {"cors", "CORS"},
      {"csrf", "CSRF protection"},
      {"transformations", "request and response transformations"},
      {"stagedTransformations", "request and response transformations"},
      {"faults", "fault injection"},
      {"shadowing", "request mirroring"},
      {"regexRewrite", "a path rewrite"},
      {"autoHostRewrite", "a Host rewrite"},
      {"hostRewriteHeader", "a Host rewrite"},
      {"hostRewritePathRegex", "a Host rewrite"},
      {"upgrades", "protocol upgrades (WebSocket)"},
      {"bufferPerRoute", "request buffering limits"},
      {"idleTimeout", "a timeout"},
      {"maxStreamDuration", "a timeout"},
      {"tls", "TLS"},
      {"sslConfig", "TLS"},
  };
  for (const auto& f : kFeatures) {
    if (f.key == key) return f.what;
  }
  return nullptr;
}

}  // namespace

void MapReader::finish() {
  for (const auto& e : entries_) {
    if (e.taken) continue;
    Location loc = location_of(e.key_node);
    if (loc.line == 0) loc = loc_;
    const char* what = feature_of(e.key);
    doc_.error(
        loc, join_path(path_, e.key),
        what != nullptr
            ? e.key + " (" + what + ") is not implemented: rejected rather than served without it"
            : "unknown field \"" + e.key + "\": not implemented (refused rather than ignored)");
  }
}

namespace {

bool walk(const YAML::Node& node, int depth, int max_depth, size_t* budget, int* reached) {
  if (depth > *reached) *reached = depth;
  if (depth > max_depth) return false;
  if (*budget == 0) return false;
  --*budget;
  if (node.IsMap()) {
    for (auto it = node.begin(); it != node.end(); ++it) {
      if (!walk(it->first, depth + 1, max_depth, budget, reached)) return false;
      if (!walk(it->second, depth + 1, max_depth, budget, reached)) return false;
    }
  } else if (node.IsSequence()) {
    for (auto it = node.begin(); it != node.end(); ++it) {
      if (!walk(*it, depth + 1, max_depth, budget, reached)) return false;
    }
  }
  return true;
}

}  // namespace

bool within_bounds(const YAML::Node& node, int max_depth, size_t max_nodes, int* depth_reached) {
  size_t budget = max_nodes;
  int reached = 0;
  bool ok = walk(node, 1, max_depth, &budget, &reached);
  if (depth_reached != nullptr) *depth_reached = reached;
  return ok;
}

}  // namespace portico::api::yaml
