// `portico apply -f FILE|DIR|-` and `portico delete KIND NAME | -f FILE`: writes through a running
// portico's API (POST /v1/apply, DELETE /v1/resources/<Kind>/<namespace>/<name>), into whichever
// store it uses (files, etcd, Consul KV). Main thread only.
#include <nlohmann/json.hpp>

#include <cctype>
#include <cstdio>
#include <iostream>
#include <iterator>

#include "api/decode.h"
#include "cli/admin_client.h"
#include "cli/args.h"
#include "cli/commands.h"
#include "cli/fleet_auth.h"
#include "cli/format.h"
#include "cli/help.h"
#include "control/sources/config_dir.h"

namespace portico::cli {

namespace {

using Json = nlohmann::ordered_json;

constexpr int kWriteTimeoutSeconds = 30;  // a store's write may take its own request timeout

const std::vector<FlagSpec> kWriteFlags = {
    {"--filename", "-f", true, true},   {"--admin", "", true, false},
    {"--server", "", true, false},      {"--token-file", "", true, false},
    {"--namespace", "-n", true, false}, {"--ca", "", true, false},
    {"--cert", "", true, false},        {"--key", "", true, false},
    {"--server-name", "", true, false},
};

// One file read for the request, and the line its text starts at in the request body.
struct Part {
  std::string name;
  int first_line = 1;
};

struct Body {
  std::string text;
  std::vector<Part> parts;
};

// "file:line" of a line of the request body.
std::string where(const Body& body, int line) {
  if (line <= 0 || body.parts.empty()) return "";
  const Part* part = &body.parts.front();
  for (const auto& p : body.parts) {
    if (p.first_line <= line) part = &p;
  }
  return part->name + ":" + std::to_string(line - part->first_line + 1);
}

int count_lines(std::string_view text) {
  int n = 0;
  for (char c : text)
    n += c == '\n';
  return n;
}

// Reads FILE, every configuration file of DIR (recursively, in path order) or standard input
// ("-") into one request body, the files separated by "---".
bool read_inputs(const std::vector<std::string>& inputs, Body* body, std::string* error) {
  auto add = [&](const std::string& name, std::string text) {
    if (!body->text.empty()) body->text += "---\n";
    body->parts.push_back({name, count_lines(body->text) + 1});
    if (!text.empty() && text.back() != '\n') text.push_back('\n');
    body->text += text;
  };
  for (const auto& input : inputs) {
    if (input == "-") {
      std::string text((std::istreambuf_iterator<char>(std::cin)),
                       std::istreambuf_iterator<char>());
      add("<stdin>", std::move(text));
      continue;
    }
    control::ConfigFileList list = control::list_config_files(input);
    if (!list.error.empty()) {
      *error = list.error;
      return false;
    }
    std::error_code ec;
    const bool dir = std::filesystem::is_directory(input, ec);
    if (dir && list.files.empty()) {
      *error = input + " holds no .yaml, .yml or .json file";
      return false;
    }
    for (const auto& name : list.files) {
      const auto path = list.base / name;
      auto text = control::read_config_file(path, api::kMaxFileBytes, error);
      if (!text) {
        *error = path.string() + ": " + *error;
        return false;
      }
      add(dir ? path.string() : input, std::move(*text));
    }
  }
  if (body->text.size() > api::kMaxFileBytes) {
    *error = "the documents add up to more than " + std::to_string(api::kMaxFileBytes >> 20) +
             " MiB: apply them in parts";
    return false;
  }
  return true;
}

std::string lower(std::string s) {
  for (char& c : s)
    c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

std::string str(const Json& j, const char* key) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return "";
  return it->is_string() ? it->get<std::string>() : it->dump();
}

// --admin or --server (the same API: `portico run`'s admin listener or `portico server`'s REST).
std::string target(const Args& a) {
  if (a.has("--server")) return a.get("--server");
  return a.get("--admin", kDefaultAdmin);
}

// An answer that is not JSON, or an error without entries: one line.
int answer_error(const char* command, int status, const std::string& response) {
  Json j = Json::parse(response, nullptr, false);
  std::string message = j.is_object() ? str(j, "error") : std::string();
  if (message.empty()) {
    message = response;
    while (!message.empty() && std::isspace(static_cast<unsigned char>(message.back())))
      message.pop_back();
  }
  return fail(command, "the API answered " + std::to_string(status) + ": " + message,
              status == 401 || status == 403 ? kExitUnavailable : kExitFindings);
}

}  // namespace

int apply_command(const std::vector<std::string>& args) {
  Args a;
  if (int rc = parse_args("apply", args, kWriteFlags, &a); rc >= 0) return rc;
  if (int rc = 0; !apply_admin_flags(a, "apply", &rc)) return rc;
  std::vector<std::string> inputs = a.all("--filename");
  for (const auto& p : a.positional())
    inputs.push_back(p);
  if (inputs.empty()) return usage_error("apply", "wants -f FILE|DIR|-");
  if (a.has("--namespace")) return usage_error("apply", "the namespace is the documents' own");
  Body body;
  std::string error;
  if (!read_inputs(inputs, &body, &error)) return fail("apply", error, kExitUnavailable);
  int status = 0;
  std::string response;
  if (!admin_request(target(a), "POST", "/v1/apply", body.text, &status, &response, &error,
                     kWriteTimeoutSeconds)) {
    return fail("apply", error, kExitUnavailable);
  }
  Json j = Json::parse(response, nullptr, false);
  if (status == 422 && j.is_object() && j.contains("diagnostics")) {
    for (const auto& d : j["diagnostics"]) {
      std::string line = "error: ";
      const int at = d.value("line", 0);
      if (at > 0) line += where(body, at) + ":" + std::to_string(d.value("column", 0)) + ": ";
      if (!str(d, "kind").empty()) {
        line += lower(str(d, "kind")) + " " + str(d, "namespace") + "/" + str(d, "name") + ": ";
      }
      if (!str(d, "path").empty()) line += str(d, "path") + ": ";
      line += str(d, "message");
      std::fprintf(stderr, "%s\n", line.c_str());
    }
    return fail("apply", "refused: nothing was applied", kExitFindings);
  }
  if (!j.is_object() || !j.contains("results") || !j["results"].is_array()) {
    return answer_error("apply", status, response);
  }
  bool failed = status != 200;
  for (const auto& r : j["results"]) {
    const std::string what =
        lower(str(r, "kind")) + " " + str(r, "namespace") + "/" + str(r, "name");
    if (str(r, "result") == "error") {
      failed = true;
      std::fprintf(stderr, "%s error: %s\n", what.c_str(), str(r, "message").c_str());
    } else {
      std::printf("%s %s\n", what.c_str(), str(r, "result").c_str());
    }
  }
  return failed ? kExitFindings : kExitOk;
}

int delete_command(const std::vector<std::string>& args) {
  Args a;
  if (int rc = parse_args("delete", args, kWriteFlags, &a); rc >= 0) return rc;
  if (int rc = 0; !apply_admin_flags(a, "delete", &rc)) return rc;
  struct Target {
    std::string kind, ns, name;
  };
  std::vector<Target> targets;
  const auto& pos = a.positional();
  if (a.has("--filename")) {
    if (!pos.empty()) return usage_error("delete", "wants KIND NAME or -f FILE, not both");
    Body body;
    std::string error;
    if (!read_inputs(a.all("--filename"), &body, &error)) {
      return fail("delete", error, kExitUnavailable);
    }
    api::DecodedFile decoded = api::decode_file("request", body.text);
    if (!decoded.parsed || !decoded.errors.empty()) {
      for (const auto& d : decoded.errors) {
        std::fprintf(stderr, "error: %s: %s%s\n", where(body, d.line).c_str(),
                     d.path.empty() ? "" : (d.path + ": ").c_str(), d.message.c_str());
      }
      return fail("delete", "cannot tell which resources the documents name", kExitFindings);
    }
    for (const auto& r : decoded.resources)
      targets.push_back({api::to_string(r.kind), r.meta.ns, r.meta.name});
  } else {
    if (pos.size() != 2) return usage_error("delete", "wants KIND NAME [-n NAMESPACE] or -f FILE");
    std::string kind = canonical_kind(pos[0]);
    if (kind.empty() || kind == "*" || kind == "File") {
      return usage_error("delete", "unknown kind '" + pos[0] + "' (kinds: " + kKindHelp + ")");
    }
    targets.push_back({kind, a.get("--namespace", api::kDefaultNamespace), pos[1]});
  }
  bool failed = false;
  for (const auto& t : targets) {
    const std::string what = lower(t.kind) + " " + t.ns + "/" + t.name;
    int status = 0;
    std::string response, error;
    if (!admin_request(target(a), "DELETE", "/v1/resources/" + t.kind + "/" + t.ns + "/" + t.name,
                       "", &status, &response, &error, kWriteTimeoutSeconds)) {
      return fail("delete", error, kExitUnavailable);
    }
    Json j = Json::parse(response, nullptr, false);
    if (status == 200 && j.is_object()) {
      std::printf("%s %s\n", what.c_str(), str(j, "result").c_str());
      continue;
    }
    if (status == 401 || status == 403 || !j.is_object() || !j.contains("kind")) {
      return answer_error("delete", status, response);
    }
    failed = true;
    std::fprintf(stderr, "%s error: %s\n", what.c_str(), str(j, "message").c_str());
  }
  return failed ? kExitFindings : kExitOk;
}

}  // namespace portico::cli
