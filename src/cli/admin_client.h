// A tiny blocking HTTP/1.1 client for a running portico's admin API (GET only, 5 s deadline), for
// the CLI commands. Main thread only.
#pragma once

#include <nlohmann/json.hpp>

#include <string>

namespace portico::cli {

// GET http://ADMIN/path. Returns false with one line in *error (unreachable, bad answer, non-200).
bool admin_get(const std::string& admin, const std::string& path, std::string* body,
               std::string* error);

// GET a JSON document from the admin API. Returns false with one line in *error.
bool admin_get_json(const std::string& admin, const std::string& path, nlohmann::ordered_json* out,
                    std::string* error);

// The array of resources from /resources (each {"kind","namespace","name","state","reasons",...}).
bool fetch_resources(const std::string& admin, nlohmann::ordered_json* out, std::string* error);

}  // namespace portico::cli
