#include "cli/admin_client.h"

#include <netdb.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>

#include "cli/args.h"
#include "cli/commands.h"
#include "cli/fleet_auth.h"
#include "cli/help.h"
#include "control/http/client.h"
#include "proxy/http/h1_parser.h"

namespace portico::cli {

namespace {

// METHOD https://ADMIN/path: a `portico server`'s REST API on a TLS --listen (--ca, --cert,
// --key, --server-name: admin_tls()).
bool admin_request_tls(const std::string& admin_flag, std::string_view method,
                       const std::string& path, const std::string& body, int* status,
                       std::string* response, std::string* error, int timeout_seconds) {
  std::string admin = admin_flag;
  while (!admin.empty() && admin.back() == '/')
    admin.pop_back();
  auto url = control::http::parse_url(admin, 443, admin_tls());
  if (!url) {
    *error = "--admin " + admin_flag + ": " + url.error().message;
    return false;
  }
  control::http::Client client(url.value());
  control::http::Request req;
  req.method = std::string(method);
  req.target = url.value().path + path;
  if (!admin_token().empty()) req.headers.emplace_back("Authorization", "Bearer " + admin_token());
  if (method != "GET" && method != "HEAD") {
    req.headers.emplace_back("Content-Type", "application/yaml");
    req.body = body;
  }
  auto r = client.send(req, std::chrono::milliseconds(timeout_seconds * 1000));
  if (!r) {
    *error = "cannot reach the REST API at " + admin + ": " + r.error().message;
    return false;
  }
  *status = r.value().status;
  *response = std::move(r.value().body);
  return true;
}

}  // namespace

bool admin_request(const std::string& admin_flag, std::string_view method, const std::string& path,
                   const std::string& body, int* status, std::string* response, std::string* error,
                   int timeout_seconds) {
  if (admin_flag.rfind("https://", 0) == 0) {
    return admin_request_tls(admin_flag, method, path, body, status, response, error,
                             timeout_seconds);
  }
  // ADDR:PORT, or the admin API's URL (http://ADDR:PORT, http://ADDR:PORT/).
  std::string admin = admin_flag;
  if (admin.rfind("http://", 0) == 0) admin = admin.substr(7);
  while (!admin.empty() && admin.back() == '/')
    admin.pop_back();
  std::string host;
  uint16_t port = 0;
  if (!parse_host_port(admin, &host, &port)) {
    *error =
        "--admin wants ADDR:PORT or http://ADDR:PORT (https://ADDR:PORT for a server with "
        "TLS), got '" +
        admin_flag + "'";
    return false;
  }
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  if (getaddrinfo(host.c_str(), std::to_string(port).c_str(), &hints, &res) != 0 || !res) {
    *error = "cannot resolve " + host;
    return false;
  }
  int fd = ::socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd >= 0) {
    timeval tv{timeout_seconds, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  }
  if (fd < 0 || ::connect(fd, res->ai_addr, res->ai_addrlen) != 0) {
    *error = "cannot reach the admin API at " + admin + ": " + std::strerror(errno) +
             " (is `portico run` running? use --admin ADDR:PORT)";
    freeaddrinfo(res);
    if (fd >= 0) ::close(fd);
    return false;
  }
  freeaddrinfo(res);
  std::string req = std::string(method) + " " + path + " HTTP/1.1\r\nHost: " + admin +
                    "\r\nConnection: close\r\n";
  // A server's REST API beyond loopback wants the token (--token-file).
  if (!admin_token().empty()) req += "Authorization: Bearer " + admin_token() + "\r\n";
  if (method != "GET" && method != "HEAD") {
    req +=
        "Content-Type: application/yaml\r\nContent-Length: " + std::to_string(body.size()) + "\r\n";
  }
  req += "\r\n";
  req += body;
  size_t sent = 0;
  while (sent < req.size()) {
    ssize_t n = ::send(fd, req.data() + sent, req.size() - sent, MSG_NOSIGNAL);
    if (n <= 0) {
      *error = "cannot send to the admin API: " + std::string(std::strerror(errno));
      ::close(fd);
      return false;
    }
    sent += static_cast<size_t>(n);
  }
  std::string resp;
  char buf[16384];
  for (;;) {
    ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n < 0) {
      *error = "reading the admin API at " + admin + ": " + std::strerror(errno);
      ::close(fd);
      return false;
    }
    if (n == 0) break;
    resp.append(buf, static_cast<size_t>(n));
    if (resp.size() > (256u << 20)) break;
  }
  ::close(fd);
  proxy::http::ResponseHead head;
  auto r = proxy::http::parse_response_head(resp, method, head);
  if (r.status != proxy::http::ParseStatus::kComplete) {
    *error = "the admin API at " + admin + " sent an invalid response";
    return false;
  }
  *status = head.status;
  *response = resp.substr(head.head_bytes);
  return true;
}

bool admin_get(const std::string& admin, const std::string& path, std::string* body,
               std::string* error) {
  int status = 0;
  if (!admin_request(admin, "GET", path, "", &status, body, error)) return false;
  if (status != 200) {
    std::string where = admin;
    if (where.rfind("http://", 0) == 0) where = where.substr(7);
    while (!where.empty() && where.back() == '/')
      where.pop_back();
    *error = "the admin API at " + where + " answered " + std::to_string(status) + " to " + path;
    return false;
  }
  return true;
}

bool admin_get_json(const std::string& admin, const std::string& path, nlohmann::ordered_json* out,
                    std::string* error) {
  std::string body;
  if (!admin_get(admin, path, &body, error)) return false;
  *out = nlohmann::ordered_json::parse(body, nullptr, false);
  if (out->is_discarded()) {
    *error = "the admin API at " + admin + " sent invalid JSON for " + path;
    return false;
  }
  return true;
}

bool fetch_resources(const std::string& admin, nlohmann::ordered_json* out, std::string* error) {
  if (!admin_get_json(admin, "/resources", out, error)) return false;
  if (out->is_object() && out->contains("resources")) *out = (*out)["resources"];
  if (!out->is_array()) {
    *error = "unexpected /resources document from " + admin + " (not a list)";
    return false;
  }
  return true;
}

bool apply_admin_flags(const Args& a, const char* command, int* rc) {
  control::http::TlsOptions tls;
  tls.ca_file = a.get("--ca", "");
  tls.cert_file = a.get("--cert", "");
  tls.key_file = a.get("--key", "");
  tls.server_name = a.get("--server-name", "");
  if (tls.cert_file.empty() != tls.key_file.empty()) {
    *rc = usage_error(command, "--cert and --key go together");
    return false;
  }
  set_admin_tls(std::move(tls));
  if (!a.has("--token-file")) return true;
  std::string token, error;
  if (!read_token_file(a.get("--token-file"), &token, &error)) {
    *rc = usage_error(command, "--token-file: " + error);
    return false;
  }
  set_admin_token(std::move(token));
  return true;
}

}  // namespace portico::cli
