#include "control/sources/kube_api.h"

#include <cctype>
#include <cstdlib>

#include "control/sources/config_dir.h"

namespace portico::control::kube {

using nlohmann::json;

const api::KubernetesApiSpec& choose(const api::KubernetesApiSpec& own,
                                     const api::KubernetesApiSpec& shared) {
  return own == api::KubernetesApiSpec{} ? shared : own;
}

Result<api::KubernetesApiSpec> resolve(const api::KubernetesApiSpec& spec,
                                       const std::function<const char*(const char*)>& env,
                                       const std::string& sa_dir) {
  api::KubernetesApiSpec out = spec;
  if (!out.address.empty()) return out;
  const char* host = env("KUBERNETES_SERVICE_HOST");
  const char* port = env("KUBERNETES_SERVICE_PORT");
  if (host == nullptr || *host == '\0') {
    return Error::invalid(
        "no address given and not in a Kubernetes pod (KUBERNETES_SERVICE_HOST is not set)");
  }
  std::string h = host;
  if (h.find(':') != std::string::npos) h = "[" + h + "]";  // IPv6
  std::string p = port != nullptr && *port != '\0' ? port : "443";
  for (char c : p) {
    if (!std::isdigit(static_cast<unsigned char>(c))) {
      return Error::invalid("KUBERNETES_SERVICE_PORT \"" + p + "\" is not a port");
    }
  }
  out.address = "https://" + h + ":" + p;
  if (out.tls.ca_file.empty() && out.tls.ca_path.empty() && !out.tls.insecure_skip_verify) {
    out.tls.ca_file = sa_dir + "/ca.crt";
  }
  if (out.token_file.empty()) out.token_file = sa_dir + "/token";
  return out;
}

Result<http::Url> url_of(const api::KubernetesApiSpec& resolved) {
  http::TlsOptions o;
  o.ca_file = resolved.tls.ca_file;
  o.ca_path = resolved.tls.ca_path;
  o.cert_file = resolved.tls.cert_file;
  o.key_file = resolved.tls.key_file;
  o.server_name = resolved.tls.server_name;
  o.insecure_skip_verify = resolved.tls.insecure_skip_verify;
  const bool https = resolved.address.rfind("https://", 0) == 0;
  return http::parse_url(resolved.address, https ? 443 : 80, o);
}

std::string label_of(const http::Url& url) {
  const bool v6 = url.host.find(':') != std::string::npos;
  return std::string(url.https ? "https://" : "http://") + (v6 ? "[" + url.host + "]" : url.host) +
         ":" + std::to_string(url.port) + url.path;
}

bool headers(const std::string& token_file, std::vector<std::pair<std::string, std::string>>* out,
             std::string* error) {
  out->clear();
  out->emplace_back("Accept", "application/json");
  if (token_file.empty()) return true;
  std::string why;
  auto text = read_config_file(token_file, 64 * 1024, &why);
  if (!text) {
    *error = "tokenFile " + token_file + ": " + why;
    return false;
  }
  std::string token = *text;
  while (!token.empty() && std::isspace(static_cast<unsigned char>(token.back())))
    token.pop_back();
  if (token.empty()) {
    *error = "tokenFile " + token_file + " is empty";
    return false;
  }
  out->emplace_back("Authorization", "Bearer " + token);
  return true;
}

std::string status_message(int code, const std::string& body) {
  std::string out = "HTTP " + std::to_string(code);
  json j = json::parse(body, nullptr, false);
  if (j.is_object() && j.contains("message") && j["message"].is_string()) {
    out += ": " + j["message"].get<std::string>();
  } else if (!body.empty()) {
    out += ": " + body.substr(0, 200);
  }
  return out;
}

Result<ListResult> list(http::Client& client, const std::string& collection,
                        const std::string& query, const std::string& token_file, size_t limit,
                        http::Millis timeout) {
  ListResult out;
  std::string token;  // metadata.continue of the previous page
  for (;;) {
    http::Request request;
    request.target = collection;
    std::string q = query;
    auto add = [&q](const std::string& part) { q += (q.empty() ? "" : "&") + part; };
    if (limit > 0) add("limit=" + std::to_string(limit));
    if (!token.empty()) add("continue=" + http::url_escape(token));
    if (!q.empty()) request.target += "?" + q;
    std::string error;
    if (!headers(token_file, &request.headers, &error)) return Error::io(error);
    auto response = client.send(request, timeout);
    if (!response) return response.error();
    ++out.pages;
    if (response->status == 410 && !token.empty() && out.restarts < 3) {
      // The continue token expired (the API server compacted past the list's resourceVersion):
      // the pages read so far belong to a snapshot that is gone; list again from the start.
      ++out.restarts;
      out.items.clear();
      token.clear();
      continue;
    }
    if (response->status != 200) {
      return Error::io("list: " + status_message(response->status, response->body));
    }
    json body = json::parse(response->body, nullptr, false);
    if (!body.is_object() || !body.contains("items") || !body["items"].is_array() ||
        !body.contains("metadata") || !body["metadata"].is_object() ||
        !body["metadata"].contains("resourceVersion") ||
        !body["metadata"]["resourceVersion"].is_string()) {
      return Error::io(
          "list: an answer that is not a Kubernetes list (no items or metadata.resourceVersion)");
    }
    for (auto& item : body["items"])
      out.items.push_back(std::move(item));
    out.resource_version = body["metadata"]["resourceVersion"].get<std::string>();
    const json& meta = body["metadata"];
    if (meta.contains("continue") && meta["continue"].is_string() &&
        !meta["continue"].get_ref<const std::string&>().empty()) {
      token = meta["continue"].get<std::string>();
      continue;
    }
    return out;
  }
}

}  // namespace portico::control::kube
