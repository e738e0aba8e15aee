// `portico route add` and `portico route remove`: edit the routes of a VirtualService in its YAML
// file as text, so that comments, other documents and formatting are kept (yaml-cpp cannot write a
// document back with its comments). The text functions are pure (any thread); the commands run on
// the main thread.
#pragma once

#include <nlohmann/json.hpp>

#include <string>
#include <vector>

namespace portico::cli {

// Where a VirtualService's routes are in a file's text.
struct RoutesLocation {
  bool found = false;              // the VirtualService is defined in this text
  std::string error;               // found, but its routes cannot be edited as text (and why)
  size_t dash_column = 0;          // column of the list's "-"
  std::vector<size_t> item_start;  // offset of each item's first line (with its leading comments)
  std::vector<size_t> item_end;    // offset just after each item's last line
  std::vector<std::string> names;  // each route's name ("" when it has none)
};

// Finds VirtualService NAMESPACE/NAME (namespace "default" when a document does not say) in a YAML
// text that may hold several documents. Never throws.
RoutesLocation locate_routes(const std::string& text, const std::string& name,
                             const std::string& ns);

// Inserts `route` (rendered as block YAML at the list's indentation) before item `index` (== the
// number of routes: at the end). Returns false with *error.
bool insert_route(const std::string& text, const RoutesLocation& where,
                  const nlohmann::ordered_json& route, size_t index, std::string* out,
                  std::string* error);

// Removes item `index`. Returns false with *error.
bool remove_route(const std::string& text, const RoutesLocation& where, size_t index,
                  std::string* out, std::string* error);

// A route name derived from a path ("/api/v1" -> "api-v1", "/" -> "root"), unique among `taken`.
std::string route_name_for(const std::string& path, const std::vector<std::string>& taken);

int route_add_command(const std::vector<std::string>& args);
int route_remove_command(const std::vector<std::string>& args);

}  // namespace portico::cli
