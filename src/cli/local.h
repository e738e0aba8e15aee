// Building a configuration from local files for the CLI (validate, proxy dump --dir, route explain
// --dir, diff, route add/remove), and what the running configuration produced from a resource.
// Main thread only.
#pragma once

#include <nlohmann/json.hpp>

#include <string>

#include "control/pipeline.h"

namespace portico::cli {

// Builds DIR, a single FILE, or "-" (one file from standard input) exactly as `portico run` would.
// Returns false with one line in *error when the path cannot be read at all.
bool build_local(const std::string& path, control::BuildResult* out, std::string* error);

// The ProxyConfig of a build as a /config_dump document.
nlohmann::ordered_json dump_of(const control::BuildResult& result);

// "-> default/echo", "-> redirect 302", "-> direct response 200" for a config_dump route.
std::string describe_action(const nlohmann::ordered_json& route);

}  // namespace portico::cli
