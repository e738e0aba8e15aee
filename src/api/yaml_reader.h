// Helpers that read a yaml-cpp node tree field by field and turn every problem into a Diagnostic
// (wrong type, missing required field, unknown field, duplicate key). Internal to src/api. Used on
// the control-plane thread only (one DocReader per document; not thread-safe).
#pragma once

#include <yaml-cpp/yaml.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "api/diagnostic.h"

namespace portico::api::yaml {

// Collects the diagnostics of one document.
class DocReader {
 public:
  DocReader(std::string file, std::vector<Diagnostic>* out) : file_(std::move(file)), out_(out) {}

  void error(Location loc, std::string path, std::string message);
  void warning(Location loc, std::string path, std::string message);
  const std::string& file() const { return file_; }

 private:
  void add(Diagnostic::Severity severity, Location loc, std::string path, std::string message);
  std::string file_;
  std::vector<Diagnostic>* out_;
};

// 1-based location of a node; {0, 0} when yaml-cpp does not know it.
Location location_of(const YAML::Node& node);
// "a map", "a list", "a string", "null".
std::string describe_type(const YAML::Node& node);
std::string join_path(const std::string& parent, std::string_view key);
std::string index_path(const std::string& parent, size_t index);

// One field of a map: its key and value nodes and its path.
struct Field {
  std::string path;
  YAML::Node key;
  YAML::Node value;
  Location loc;  // of the value, or of the key when the value has no position (null)
  bool is_null() const { return !value.IsDefined() || value.IsNull(); }
};

// Reads a map. Each field taken is marked; finish() warns about the fields nobody took.
class MapReader {
 public:
  // When `node` is not a map, reports "expected a map" at `loc` and ok() is false (every take()
  // then returns nothing).
  MapReader(DocReader& doc, const YAML::Node& node, std::string path, Location loc);
  ~MapReader() = default;
  MapReader(const MapReader&) = delete;
  MapReader& operator=(const MapReader&) = delete;

  bool ok() const { return ok_; }
  const std::string& path() const { return path_; }
  Location loc() const { return loc_; }
  DocReader& doc() { return doc_; }
  std::string child_path(std::string_view key) const { return join_path(path_, key); }

  bool has(std::string_view key) const;
  // The field, whatever its value (null included); nullopt when absent.
  std::optional<Field> take(std::string_view key);
  // Marks a field as known without reading it.
  void ignore(std::string_view key) { (void)take(key); }
  // Reports "is required" when absent or null.
  void require_error(std::string_view key);

  // Typed accessors. They return true when the field is present, non-null and of the right type
  // (writing *out, and the value's location to *where when given); they report an error when it has
  // the wrong type or is out of range; when `required` they report a missing field. Null counts as
  // absent.
  bool string(std::string_view key, std::string* out, bool required = false,
              Location* where = nullptr);
  bool boolean(std::string_view key, bool* out, Location* where = nullptr);
  bool uint(std::string_view key, uint64_t min, uint64_t max, uint64_t* out, bool required = false,
            Location* where = nullptr);
  bool duration(std::string_view key, std::chrono::milliseconds* out, bool required = false,
                Location* where = nullptr);
  // A map or list field; error when it has another type. Null counts as absent.
  std::optional<Field> map(std::string_view key, bool required = false);
  std::optional<Field> list(std::string_view key, bool required = false);
  // A map of string to string (labels).
  bool string_map(std::string_view key, std::map<std::string, std::string>* out);

  // Marks a field known to be harmless to ignore, with a warning saying so (fail closed keeps an
  // explicit allow-list: everything else Portico does not implement is an error).
  void ignore_harmless(std::string_view key, std::string_view why);
  // Reports every field not taken as an error (fail closed: a field Portico does not implement may
  // change traffic or security, so the resource is rejected rather than served without it).
  // Well-known Gloo features (extauth, jwt, rbac, waf, cors, retries...) get a message naming what
  // they do.
  void finish();

 private:
  // map() and list(): the field when it is present, non-null and a map (want_map) or a list.
  std::optional<Field> container(std::string_view key, bool required, bool want_map);
  struct Entry {
    std::string key;
    YAML::Node key_node;
    YAML::Node value;
    bool taken = false;
  };
  Entry* find(std::string_view key);
  const Entry* find(std::string_view key) const;

  DocReader& doc_;
  std::string path_;
  Location loc_;
  bool ok_ = false;
  std::vector<Entry> entries_;
};

// Scalar readers for list items and fields: report and return false on a type mismatch.
bool read_string(DocReader& doc, const YAML::Node& node, const std::string& path, Location loc,
                 std::string* out);
bool read_bool(DocReader& doc, const YAML::Node& node, const std::string& path, Location loc,
               bool* out);
bool read_uint(DocReader& doc, const YAML::Node& node, const std::string& path, Location loc,
               uint64_t min, uint64_t max, uint64_t* out);

// Calls fn(item, path, loc) for each element of a list field.
void for_each_item(const Field& field,
                   const std::function<void(const YAML::Node&, const std::string&, Location)>& fn);

// Whether a plain scalar is an integer / a boolean in YAML's core schema.
bool is_plain(const YAML::Node& node);
bool looks_like_int(std::string_view s);

// Walks the node tree (following aliases): false when it is deeper than max_depth or has more than
// max_nodes nodes (aliases can make a small file expand enormously, or be cyclic).
bool within_bounds(const YAML::Node& node, int max_depth, size_t max_nodes, int* depth_reached);

}  // namespace portico::api::yaml
