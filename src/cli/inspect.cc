// `portico validate`, `portico get` and `portico describe`: read the configuration offline, or ask
// a running portico's admin API for the state of its resources.
#include <arpa/inet.h>
#include <netdb.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "cli/commands.h"
#include "control/pipeline.h"
#include "proxy/http/h1_parser.h"

namespace portico::cli {

bool parse_host_port(const std::string& text, std::string* host, uint16_t* port) {
  std::string h;
  std::string p;
  if (!text.empty() && text[0] == '[') {
    auto close = text.find(']');
    if (close == std::string::npos || close + 1 >= text.size() || text[close + 1] != ':')
      return false;
    h = text.substr(1, close - 1);
    p = text.substr(close + 2);
  } else {
    auto colon = text.rfind(':');
    if (colon == std::string::npos) return false;
    h = text.substr(0, colon);
    p = text.substr(colon + 1);
  }
  if (h.empty() || p.empty() || p.size() > 5) return false;
  unsigned long v = 0;
  for (char c : p) {
    if (c < '0' || c > '9') return false;
    v = v * 10 + static_cast<unsigned long>(c - '0');
  }
  if (v > 65535) return false;
  *host = h;
  *port = static_cast<uint16_t>(v);
  return true;
}

namespace {

constexpr const char* kDefaultAdmin = "127.0.0.1:9901";

// GET http://ADDR:PORT/path with a 5 s deadline. Returns false with a message in *error.
bool admin_get(const std::string& admin, const std::string& path, std::string* body,
               std::string* error) {
  std::string host;
  uint16_t port = 0;
  if (!parse_host_port(admin, &host, &port)) {
    *error = "--admin wants ADDR:PORT, got '" + admin + "'";
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
  timeval tv{5, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  if (fd < 0 || ::connect(fd, res->ai_addr, res->ai_addrlen) != 0) {
    *error = "cannot reach the admin API at " + admin + ": " + std::strerror(errno) +
             " (is `portico run` running? use --admin ADDR:PORT)";
    freeaddrinfo(res);
    if (fd >= 0) ::close(fd);
    return false;
  }
  freeaddrinfo(res);
  std::string req = "GET " + path + " HTTP/1.1\r\nHost: " + admin + "\r\nConnection: close\r\n\r\n";
  if (::send(fd, req.data(), req.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(req.size())) {
    *error = "cannot send to the admin API: " + std::string(std::strerror(errno));
    ::close(fd);
    return false;
  }
  std::string resp;
  char buf[16384];
  for (;;) {
    ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n < 0) {
      *error = "reading the admin API: " + std::string(std::strerror(errno));
      ::close(fd);
      return false;
    }
    if (n == 0) break;
    resp.append(buf, static_cast<size_t>(n));
    if (resp.size() > (64u << 20)) break;
  }
  ::close(fd);
  proxy::http::ResponseHead head;
  auto r = proxy::http::parse_response_head(resp, "GET", head);
  if (r.status != proxy::http::ParseStatus::kComplete) {
    *error = "the admin API sent an invalid response";
    return false;
  }
  if (head.status != 200) {
    *error = "the admin API answered " + std::to_string(head.status);
    return false;
  }
  *body = resp.substr(head.head_bytes);
  return true;
}

// Accepts plural, singular and short names of kinds.
std::string canonical_kind(std::string k) {
  std::transform(k.begin(), k.end(), k.begin(), [](unsigned char c) { return std::tolower(c); });
  if (k == "gateway" || k == "gateways" || k == "gw") return "Gateway";
  if (k == "virtualservice" || k == "virtualservices" || k == "vs") return "VirtualService";
  if (k == "upstream" || k == "upstreams" || k == "us") return "Upstream";
  if (k == "all") return "*";
  return "";
}

struct CommonFlags {
  std::string admin = kDefaultAdmin;
  std::string ns;
  std::string output;  // "" (table) | json
  std::vector<std::string> positional;
};

bool parse_common(const std::vector<std::string>& args, CommonFlags* f, const char* cmd) {
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    if ((a == "--admin" || a == "--namespace" || a == "-n" || a == "-o" || a == "--output") &&
        i + 1 < args.size()) {
      const std::string& v = args[++i];
      if (a == "--admin")
        f->admin = v;
      else if (a == "-o" || a == "--output")
        f->output = v;
      else
        f->ns = v;
    } else if (!a.empty() && a[0] == '-') {
      std::fprintf(stderr, "portico %s: unknown flag '%s'\n", cmd, a.c_str());
      return false;
    } else {
      f->positional.push_back(a);
    }
  }
  return true;
}

bool fetch_resources(const CommonFlags& f, nlohmann::json* out) {
  std::string body;
  std::string error;
  if (!admin_get(f.admin, "/resources", &body, &error)) {
    std::fprintf(stderr, "portico: %s\n", error.c_str());
    return false;
  }
  *out = nlohmann::json::parse(body, nullptr, false);
  if (out->is_discarded()) {
    std::fprintf(stderr, "portico: the admin API sent invalid JSON\n");
    return false;
  }
  if (out->is_object() && out->contains("resources")) *out = (*out)["resources"];
  if (!out->is_array()) {
    std::fprintf(stderr, "portico: unexpected /resources document\n");
    return false;
  }
  return true;
}

std::string str(const nlohmann::json& j, const char* key) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return "";
  return it->is_string() ? it->get<std::string>() : it->dump();
}

std::string first_reason(const nlohmann::json& r) {
  auto it = r.find("reasons");
  if (it == r.end() || !it->is_array() || it->empty()) return "";
  std::string m = str((*it)[0], "message");
  if (it->size() > 1) m += " (+" + std::to_string(it->size() - 1) + " more)";
  if (m.size() > 80) m = m.substr(0, 77) + "...";
  return m;
}

}  // namespace

int validate_command(const std::vector<std::string>& args) {
  if (args.size() != 1 || args[0].empty() || args[0][0] == '-') {
    std::fprintf(stderr, "usage: portico validate DIR\n");
    return 2;
  }
  std::error_code ec;
  if (!std::filesystem::is_directory(args[0], ec)) {
    std::fprintf(stderr, "portico validate: %s is not a directory\n", args[0].c_str());
    return 2;
  }
  control::BuildResult result = control::validate_directory(args[0]);
  size_t errors = 0;
  size_t warnings = 0;
  for (const auto& d : result.file_errors) {
    std::printf("%s\n", d.to_string().c_str());
    ++errors;
  }
  size_t counts[4] = {0, 0, 0, 0};
  for (const auto& r : result.resources) {
    ++counts[static_cast<int>(r.state)];
    for (const auto& d : r.reasons) {
      std::printf("%s\n", d.to_string().c_str());
      if (d.severity == control::Diagnostic::Severity::kError)
        ++errors;
      else
        ++warnings;
    }
  }
  std::printf(
      "%zu resources: %zu accepted, %zu with warnings, %zu rejected; %zu errors, %zu warnings\n",
      result.resources.size(), counts[static_cast<int>(control::State::kAccepted)],
      counts[static_cast<int>(control::State::kWarning)],
      counts[static_cast<int>(control::State::kRejected)], errors, warnings);
  return result.ok() ? 0 : 1;
}

int get_command(const std::vector<std::string>& args) {
  CommonFlags f;
  if (!parse_common(args, &f, "get")) return 2;
  if (f.positional.empty() || f.positional.size() > 2) {
    std::fprintf(stderr, "usage: portico get KIND [NAME] [--namespace NS] [--admin ADDR:PORT]\n");
    return 2;
  }
  std::string kind = canonical_kind(f.positional[0]);
  if (kind.empty()) {
    std::fprintf(stderr, "portico get: unknown kind '%s' (gateways, virtualservices, upstreams)\n",
                 f.positional[0].c_str());
    return 2;
  }
  std::string name = f.positional.size() == 2 ? f.positional[1] : "";
  nlohmann::json all;
  if (!fetch_resources(f, &all)) return 1;
  std::vector<const nlohmann::json*> rows;
  for (const auto& r : all) {
    if (kind != "*" && str(r, "kind") != kind) continue;
    if (!name.empty() && str(r, "name") != name) continue;
    if (!f.ns.empty() && str(r, "namespace") != f.ns) continue;
    rows.push_back(&r);
  }
  if (f.output == "json") {
    nlohmann::json out = nlohmann::json::array();
    for (const auto* r : rows)
      out.push_back(*r);
    std::printf("%s\n", out.dump(2).c_str());
    return rows.empty() && !name.empty() ? 1 : 0;
  }
  if (rows.empty()) {
    std::fprintf(stderr, "no %s%s%s found\n", kind == "*" ? "resources" : kind.c_str(),
                 name.empty() ? "" : " named ", name.c_str());
    return name.empty() ? 0 : 1;
  }
  // KIND is a column only when several kinds are listed.
  const bool show_kind = kind == "*";
  if (show_kind) std::printf("%-16s ", "KIND");
  std::printf("%-16s %-24s %-10s %-24s %s\n", "NAMESPACE", "NAME", "STATUS", "FILE", "REASON");
  for (const auto* r : rows) {
    std::string file = str(*r, "file");
    std::string line = str(*r, "line");
    if (!line.empty() && line != "0") file += ":" + line;
    if (show_kind) std::printf("%-16s ", str(*r, "kind").c_str());
    std::printf("%-16s %-24s %-10s %-24s %s\n", str(*r, "namespace").c_str(),
                str(*r, "name").c_str(), str(*r, "state").c_str(), file.c_str(),
                first_reason(*r).c_str());
  }
  return 0;
}

int describe_command(const std::vector<std::string>& args) {
  CommonFlags f;
  if (!parse_common(args, &f, "describe")) return 2;
  if (f.positional.size() != 2) {
    std::fprintf(stderr,
                 "usage: portico describe KIND NAME [--namespace NS] [--admin ADDR:PORT]\n");
    return 2;
  }
  std::string kind = canonical_kind(f.positional[0]);
  if (kind.empty() || kind == "*") {
    std::fprintf(stderr, "portico describe: unknown kind '%s'\n", f.positional[0].c_str());
    return 2;
  }
  nlohmann::json all;
  if (!fetch_resources(f, &all)) return 1;
  std::string ns = f.ns.empty() ? "default" : f.ns;
  for (const auto& r : all) {
    if (str(r, "kind") != kind || str(r, "name") != f.positional[1] || str(r, "namespace") != ns) {
      continue;
    }
    std::printf("Kind:       %s\n", kind.c_str());
    std::printf("Name:       %s\n", str(r, "name").c_str());
    std::printf("Namespace:  %s\n", ns.c_str());
    std::printf("File:       %s:%s\n", str(r, "file").c_str(), str(r, "line").c_str());
    std::printf("Generation: %s\n", str(r, "generation").c_str());
    std::printf("Status:     %s\n", str(r, "state").c_str());
    auto reasons = r.find("reasons");
    if (reasons != r.end() && reasons->is_array() && !reasons->empty()) {
      std::printf("Reasons:\n");
      for (const auto& d : *reasons) {
        std::printf("  - %s: %s:%s:%s: %s: %s\n", str(d, "severity").c_str(),
                    str(d, "file").c_str(), str(d, "line").c_str(), str(d, "column").c_str(),
                    str(d, "path").c_str(), str(d, "message").c_str());
      }
    }
    auto spec = r.find("spec");
    if (spec != r.end()) std::printf("Spec:\n%s\n", spec->dump(2).c_str());
    return 0;
  }
  std::fprintf(stderr, "portico describe: %s %s/%s not found\n", kind.c_str(), ns.c_str(),
               f.positional[1].c_str());
  return 1;
}

}  // namespace portico::cli
