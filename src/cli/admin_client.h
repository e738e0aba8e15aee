// A tiny blocking HTTP/1.1 client for a running portico's admin API (5 s deadline unless told), for
// the CLI commands. Main thread only.
#pragma once

#include <nlohmann/json.hpp>

#include <string>
#include <string_view>

namespace portico::cli {

class Args;

// The flags that say how to reach a `portico server`'s REST API, for every command that talks to
// one (get, describe, apply, delete): --token-file (the bearer token wanted beyond loopback) and
// --ca, --cert, --key, --server-name (an https:// server). False after a usage error, with the exit
// code in *rc.
bool apply_admin_flags(const Args& a, const char* command, int* rc);

// METHOD http://ADMIN/path, with `body` (Content-Length) unless GET or HEAD. *status and *response
// get the answer's status and body, whatever the status. False with one line in *error when the
// API cannot be reached or does not answer in HTTP.
bool admin_request(const std::string& admin, std::string_view method, const std::string& path,
                   const std::string& body, int* status, std::string* response, std::string* error,
                   int timeout_seconds = 5);

// GET http://ADMIN/path. Returns false with one line in *error (unreachable, bad answer, non-200).
bool admin_get(const std::string& admin, const std::string& path, std::string* body,
               std::string* error);

// GET a JSON document from the admin API. Returns false with one line in *error.
bool admin_get_json(const std::string& admin, const std::string& path, nlohmann::ordered_json* out,
                    std::string* error);

// The array of resources from /resources (each {"kind","namespace","name","state","reasons",...}).
bool fetch_resources(const std::string& admin, nlohmann::ordered_json* out, std::string* error);

}  // namespace portico::cli
