// How the control plane's Kubernetes clients (the configuration source, the secret source and
// discovery) reach the API server: the connection (address, TLS, bearer token file) with the
// in-cluster defaults filled in, the request headers, and paginated lists (limit + continue).
// Pure functions and blocking calls on a caller's http::Client: any thread that owns the client.
#pragma once

#include <cstdint>
#include <cstdlib>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "api/resources.h"
#include "common/result.h"
#include "control/http/client.h"

namespace portico::control::kube {

// Where a pod's service account credentials are mounted.
inline constexpr const char* kServiceAccountDir = "/var/run/secrets/kubernetes.io/serviceaccount";

// The connection a block of Settings says: `own` when it says anything, else `shared`
// (spec.kubernetes).
const api::KubernetesApiSpec& choose(const api::KubernetesApiSpec& own,
                                     const api::KubernetesApiSpec& shared);

// `spec` with the in-cluster defaults filled in when it has no address: https://$KUBERNETES_
// SERVICE_HOST:$KUBERNETES_SERVICE_PORT, CA <sa_dir>/ca.crt (unless caFile or insecureSkipVerify is
// given) and token <sa_dir>/token (unless tokenFile is given). An error when there is no address
// and the environment names no API server. `env` reads an environment variable (nullptr: unset).
Result<api::KubernetesApiSpec> resolve(
    const api::KubernetesApiSpec& spec,
    const std::function<const char*(const char*)>& env =
        [](const char* n) { return std::getenv(n); },
    const std::string& sa_dir = kServiceAccountDir);

// The http::Url of a resolved spec (TLS files loaded; 443 for https, 80 for http by default).
Result<http::Url> url_of(const api::KubernetesApiSpec& resolved);

// "https://10.0.0.1:443" for logs and problem lines.
std::string label_of(const http::Url& url);

// Accept: application/json, and Authorization: Bearer <token> when `token_file` is set (read now:
// a rotated projected token is picked up by the next request). False (and `error`) when the file
// cannot be read or is empty.
bool headers(const std::string& token_file, std::vector<std::pair<std::string, std::string>>* out,
             std::string* error);

// "HTTP <code>: <message of the Status object>" (or the start of the body).
std::string status_message(int code, const std::string& body);

struct ListResult {
  std::vector<nlohmann::json> items;
  std::string resource_version;  // the list's (watch from it)
  uint64_t pages = 0;            // requests that made this list
  uint64_t restarts = 0;         // continue tokens answered 410 (expired): listed from scratch
};

// Lists `collection` (a path: "/api/v1/secrets") page by page, `limit` objects per request
// (0: no limit), following metadata.continue; a 410 on a continue token (it expired) lists again
// from the start (at most 3 times). `query` is added to each request ("labelSelector=..."; may be
// empty). An error names the HTTP status and the API server's message.
Result<ListResult> list(http::Client& client, const std::string& collection,
                        const std::string& query, const std::string& token_file, size_t limit,
                        http::Millis timeout);

}  // namespace portico::control::kube
