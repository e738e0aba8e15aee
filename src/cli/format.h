// Output helpers of the CLI: output formats (-o), kind aliases, aligned tables, JSON rendered as
// YAML, and unified diffs. Pure functions; any thread.
#pragma once

#include <nlohmann/json.hpp>

#include <string>
#include <string_view>
#include <vector>

namespace portico::cli {

enum class OutputFormat { kTable, kWide, kYaml, kJson };

// Parses an -o value among `allowed`. On failure returns false and sets *error to one line naming
// the value and listing the valid ones: "unknown output format 'xml' (valid: table, wide, yaml,
// json)". An empty text is the first allowed format.
bool parse_output(std::string_view text, const std::vector<OutputFormat>& allowed,
                  OutputFormat* out, std::string* error);
const char* to_string(OutputFormat format);

// The resource kind for a user's spelling: "gw", "gateways", "Gateway" -> "Gateway"; "vs",
// "vservice", "virtualservices" -> "VirtualService"; "us", "upstreams" -> "Upstream"; also route
// tables, upstream groups, secrets, auth and rate-limit configs, settings; "all" -> "*"; "" when
// unknown.
std::string canonical_kind(std::string_view text);
// The short list shown when a kind is unknown.
inline constexpr const char* kKindHelp =
    "gateways (gw), virtualservices (vs), upstreams (us), routetables (rt), upstreamgroups (ug), "
    "secrets, authconfigs (ac), ratelimitconfigs (rlc), settings, all";

// Left-aligned columns separated by three spaces; rows[0] is the header. Empty cells print "-"
// (so that every row splits into the same number of words, except the last column).
std::string render_table(const std::vector<std::vector<std::string>>& rows);

// A JSON value as block YAML (maps "key: value", lists "- item"; strings quoted only when plain
// YAML would read them differently). Ends with a newline unless empty.
std::string to_yaml(const nlohmann::ordered_json& value);

// Unified diff of two texts by lines ("--- from", "+++ to", "@@ -a,b +c,d @@" hunks with
// `context` lines around changes). Empty when the texts are equal.
std::string unified_diff(std::string_view from, std::string_view to, std::string_view from_label,
                         std::string_view to_label, int context = 3);

// The string of a JSON field ("" when absent or null; numbers and others as JSON text).
std::string json_str(const nlohmann::ordered_json& j, const char* key);

}  // namespace portico::cli
