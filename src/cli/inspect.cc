// `portico validate`, `get`, `describe`, `check` and `proxy dump`: read a configuration offline, or
// ask a running portico's admin API for the state of its resources and its configuration.
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <iterator>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "cli/admin_client.h"
#include "cli/args.h"
#include "cli/commands.h"
#include "cli/explain.h"
#include "cli/fleet_auth.h"
#include "cli/format.h"
#include "cli/help.h"
#include "cli/local.h"
#include "control/pipeline.h"

namespace portico::cli {

using Json = nlohmann::ordered_json;

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

bool build_local(const std::string& path, control::BuildResult* out, std::string* error) {
  if (path == "-") {
    std::string content((std::istreambuf_iterator<char>(std::cin)),
                        std::istreambuf_iterator<char>());
    if (std::cin.bad()) {
      *error = "cannot read standard input";
      return false;
    }
    *out = control::build_from_files({{"<stdin>", std::move(content)}}, 0);
    return true;
  }
  std::error_code ec;
  auto status = std::filesystem::status(path, ec);
  if (ec || !std::filesystem::exists(status)) {
    *error = path + ": no such file or directory";
    return false;
  }
  if (!std::filesystem::is_directory(status) && !std::filesystem::is_regular_file(status)) {
    *error = path + " is neither a directory nor a file";
    return false;
  }
  *out = control::validate_directory(path);
  return true;
}

Json dump_of(const control::BuildResult& result) {
  return Json::parse(snapshot::to_json(*result.config, false), nullptr, false);
}

std::string describe_action(const Json& route) {
  if (route.contains("forward")) {
    std::string out;
    const Json clusters = route["forward"].is_object()
                              ? route["forward"].value("clusters", Json::array())
                              : Json::array();
    for (const auto& c : clusters) {
      out += (out.empty() ? "" : ", ") + json_str(c, "cluster");
      if (clusters.size() > 1) out += " (weight " + json_str(c, "weight") + ")";
    }
    return "-> " + out;
  }
  if (route.contains("redirect")) return "-> redirect " + json_str(route["redirect"], "code");
  if (route.contains("direct_response")) {
    return "-> direct response " + json_str(route["direct_response"], "status");
  }
  return "";
}

namespace {

const std::vector<FlagSpec> kAdminFlags = {
    {"--admin", "", true, false},       {"--token-file", "", true, false},
    {"--ca", "", true, false},          {"--cert", "", true, false},
    {"--key", "", true, false},         {"--server-name", "", true, false},
    {"--namespace", "-n", true, false}, {"--output", "-o", true, false},
};

// Reasons of a /resources entry as "severity: file:line:column: path: message" lines.
std::vector<std::string> reason_lines(const Json& r) {
  std::vector<std::string> out;
  auto it = r.find("reasons");
  if (it == r.end() || !it->is_array()) return out;
  for (const auto& d : *it) {
    std::string where = json_str(d, "file");
    if (json_str(d, "line") != "0" && !json_str(d, "line").empty()) {
      where += ":" + json_str(d, "line");
      if (json_str(d, "column") != "0") where += ":" + json_str(d, "column");
    }
    std::string path = json_str(d, "path");
    out.push_back(json_str(d, "severity") + ": " + where + ": " +
                  (path.empty() ? "" : path + ": ") + json_str(d, "message"));
  }
  return out;
}

std::string first_reason(const Json& r) {
  auto it = r.find("reasons");
  if (it == r.end() || !it->is_array() || it->empty()) return "";
  std::string m = json_str((*it)[0], "message");
  if (it->size() > 1) m += " (+" + std::to_string(it->size() - 1) + " more)";
  if (m.size() > 100) m = m.substr(0, 97) + "...";
  return m;
}

// A one-word summary of a spec for `get -o wide` (no spaces: tables split on them).
std::string details(const Json& r) {
  const std::string kind = json_str(r, "kind");
  auto it = r.find("spec");
  if (it == r.end() || !it->is_object()) return "";
  const Json& spec = *it;
  auto join = [](const Json& list, auto&& fn) {
    std::string out;
    if (!list.is_array()) return out;
    for (const auto& x : list)
      out += (out.empty() ? "" : ",") + fn(x);
    return out;
  };
  if (kind == "Gateway") {
    std::string addr = spec.contains("bindAddress") ? json_str(spec, "bindAddress") : "0.0.0.0";
    return addr + ":" + json_str(spec, "bindPort");
  }
  if (kind == "VirtualService" && spec.contains("virtualHost")) {
    const Json& vh = spec["virtualHost"];
    std::string domains = join(vh.contains("domains") ? vh["domains"] : Json(), [](const Json& d) {
      return d.is_string() ? d.get<std::string>() : d.dump();
    });
    size_t routes = vh.contains("routes") && vh["routes"].is_array() ? vh["routes"].size() : 0;
    return "domains=" + domains + ";routes=" + std::to_string(routes);
  }
  if (kind == "Upstream") {
    if (spec.contains("static") && spec["static"].contains("hosts")) {
      return "static:" + join(spec["static"]["hosts"], [](const Json& h) {
               return json_str(h, "addr") + ":" + json_str(h, "port");
             });
    }
    if (!spec.empty()) return spec.begin().key();
  }
  return "";
}

bool matches_filter(const Json& r, const std::string& kind, const std::string& name,
                    const std::string& ns) {
  if (kind != "*" && json_str(r, "kind") != kind) return false;
  if (!name.empty() && json_str(r, "name") != name) return false;
  if (!ns.empty() && json_str(r, "namespace") != ns) return false;
  return true;
}

void print_indented(const std::string& text, const char* indent) {
  size_t start = 0;
  while (start < text.size()) {
    size_t nl = text.find('\n', start);
    std::string line = text.substr(start, nl == std::string::npos ? std::string::npos : nl - start);
    std::printf("%s%s\n", indent, line.c_str());
    if (nl == std::string::npos) break;
    start = nl + 1;
  }
}

// What a resource produced in a /config_dump document, as text lines.
std::vector<std::string> produced(const Json& dump, const std::string& kind,
                                  const std::string& id) {
  std::vector<std::string> out;
  if (!dump.is_object()) return out;
  const Json listeners = dump.value("listeners", Json::array());
  const Json clusters = dump.value("clusters", Json::array());
  auto listener_label = [](const Json& l) {
    return "listener " + json_str(l, "name") + " on " + json_str(l, "address") + ":" +
           json_str(l, "port");
  };
  auto domains_of = [](const Json& vh) {
    std::string d;
    for (const auto& x : vh.value("domains", Json::array()))
      d += (d.empty() ? "" : ", ") + x.get<std::string>();
    return d;
  };
  if (kind == "Gateway") {
    for (const auto& l : listeners) {
      if (json_str(l, "name") != id) continue;
      out.push_back(listener_label(l));
      for (const auto& vh : l.value("virtual_hosts", Json::array())) {
        out.push_back("  virtual host " + json_str(vh, "name") + " (" + domains_of(vh) + "), " +
                      std::to_string(vh.value("routes", Json::array()).size()) + " routes");
      }
    }
  } else if (kind == "VirtualService") {
    for (const auto& l : listeners) {
      for (const auto& vh : l.value("virtual_hosts", Json::array())) {
        if (json_str(vh, "name") != id) continue;
        out.push_back("virtual host " + id + " (" + domains_of(vh) + ") on " + listener_label(l));
        size_t n = 0;
        for (const auto& r : vh.value("routes", Json::array())) {
          out.push_back("  " + std::to_string(++n) + ". " + json_str(r, "name") + ": " +
                        describe_match(r.value("match", Json::object())) + " " +
                        describe_action(r));
        }
      }
    }
  } else if (kind == "Upstream") {
    for (const auto& c : clusters) {
      if (json_str(c, "name") != id) continue;
      std::string eps;
      for (const auto& e : c.value("endpoints", Json::array())) {
        eps += (eps.empty() ? "" : ", ") + json_str(e, "address") + ":" + json_str(e, "port");
      }
      out.push_back("cluster " + id + ": " + (eps.empty() ? "no endpoints" : eps));
    }
    for (const auto& l : listeners) {
      for (const auto& vh : l.value("virtual_hosts", Json::array())) {
        for (const auto& r : vh.value("routes", Json::array())) {
          if (!r.contains("forward")) continue;
          for (const auto& c : r["forward"].value("clusters", Json::array())) {
            if (json_str(c, "cluster") == id) {
              out.push_back("  used by route " + json_str(r, "name") + " on " + listener_label(l));
            }
          }
        }
      }
    }
  }
  return out;
}

}  // namespace

int validate_command(const std::vector<std::string>& args) {
  Args a;
  if (int rc = parse_args("validate", args, {{"--output", "-o", true, false}}, &a); rc >= 0) {
    return rc;
  }
  OutputFormat format;
  std::string error;
  if (!parse_output(a.get("--output") == "text" ? "table" : a.get("--output"),
                    {OutputFormat::kTable, OutputFormat::kJson}, &format, &error)) {
    return usage_error("validate",
                       "unknown output format '" + a.get("--output") + "' (valid: text, json)");
  }
  if (a.positional().size() != 1) {
    return usage_error("validate", "wants one DIR, FILE or - (stdin)");
  }
  control::BuildResult result;
  if (!build_local(a.positional()[0], &result, &error)) {
    return fail("validate", error, kExitUnavailable);
  }
  size_t errors = 0;
  size_t warnings = 0;
  size_t counts[4] = {0, 0, 0, 0};
  Json diagnostics = Json::array();
  auto add = [&](const control::Diagnostic& d, const std::string& kind, const std::string& ns,
                 const std::string& name) {
    (d.is_error() ? errors : warnings) += 1;
    if (format == OutputFormat::kJson) {
      Json j{{"file", d.file},
             {"line", d.line},
             {"column", d.column},
             {"path", d.path},
             {"severity", api::to_string(d.severity)},
             {"message", d.message}};
      if (!kind.empty()) {
        j["kind"] = kind;
        j["namespace"] = ns;
        j["name"] = name;
      }
      diagnostics.push_back(std::move(j));
    } else {
      std::printf("%s\n", d.to_string().c_str());
    }
  };
  for (const auto& d : result.file_errors)
    add(d, "", "", "");
  Json resources = Json::array();
  for (const auto& r : result.resources) {
    ++counts[static_cast<int>(r.state)];
    for (const auto& d : r.reasons)
      add(d, r.kind, r.ns, r.name);
    resources.push_back(Json{{"kind", r.kind},
                             {"namespace", r.ns},
                             {"name", r.name},
                             {"file", r.file},
                             {"line", r.line},
                             {"state", std::string(control::to_string(r.state))}});
  }
  const size_t accepted = counts[static_cast<int>(control::State::kAccepted)];
  const size_t warned = counts[static_cast<int>(control::State::kWarning)];
  const size_t rejected = counts[static_cast<int>(control::State::kRejected)];
  if (format == OutputFormat::kJson) {
    Json out{{"valid", result.ok()},
             {"summary", Json{{"resources", result.resources.size()},
                              {"accepted", accepted},
                              {"warning", warned},
                              {"rejected", rejected},
                              {"errors", errors},
                              {"warnings", warnings}}},
             {"resources", std::move(resources)},
             {"diagnostics", std::move(diagnostics)}};
    std::printf("%s\n", out.dump(2, ' ', false, Json::error_handler_t::replace).c_str());
  } else {
    std::printf(
        "%zu resources: %zu accepted, %zu with warnings, %zu rejected; %zu errors, %zu warnings\n",
        result.resources.size(), accepted, warned, rejected, errors, warnings);
  }
  return result.ok() ? kExitOk : kExitFindings;
}

namespace {

// `portico get proxies`: the proxies of a `portico server` (its /proxies).
int get_proxies(const Args& a, OutputFormat format) {
  Json all;
  std::string error;
  if (!admin_get_json(a.get("--admin", kDefaultAdmin), "/proxies", &all, &error)) {
    return fail("get", error, kExitUnavailable);
  }
  if (format == OutputFormat::kJson) {
    std::printf("%s\n", all.dump(2, ' ', false, Json::error_handler_t::replace).c_str());
    return kExitOk;
  }
  if (format == OutputFormat::kYaml) {
    std::fputs(to_yaml(all).c_str(), stdout);
    return kExitOk;
  }
  std::vector<std::vector<std::string>> table;
  table.push_back({"NODE", "GATEWAYS", "CONNECTED", "VERSION", "LAST ERROR"});
  for (const auto& p : all) {
    std::string gateways;
    if (p.contains("gateways") && p["gateways"].is_array()) {
      for (const auto& g : p["gateways"])
        gateways += (gateways.empty() ? "" : ",") + g.get<std::string>();
    }
    std::string version = json_str(p, "version");
    if (json_str(p, "nackedVersion") != "0" && !json_str(p, "nackedVersion").empty()) {
      version += " (rejected " + json_str(p, "nackedVersion") + ")";
    }
    table.push_back({json_str(p, "node"), gateways.empty() ? "(all)" : gateways,
                     json_str(p, "connected") == "true" ? "yes" : "no", version,
                     json_str(p, "lastError")});
  }
  std::fputs(render_table(table).c_str(), stdout);
  return kExitOk;
}

}  // namespace

int get_command(const std::vector<std::string>& args) {
  Args a;
  if (int rc = parse_args("get", args, kAdminFlags, &a); rc >= 0) return rc;
  if (int rc = 0; !apply_admin_flags(a, "get", &rc)) return rc;
  OutputFormat format;
  std::string error;
  if (!parse_output(
          a.get("--output"),
          {OutputFormat::kTable, OutputFormat::kWide, OutputFormat::kYaml, OutputFormat::kJson},
          &format, &error)) {
    return usage_error("get", error);
  }
  const auto& pos = a.positional();
  if (pos.empty() || pos.size() > 2) return usage_error("get", "wants KIND [NAME]");
  if (pos[0] == "proxies" || pos[0] == "proxy") return get_proxies(a, format);
  std::string kind = canonical_kind(pos[0]);
  if (kind.empty()) {
    return usage_error("get", "unknown kind '" + pos[0] + "' (kinds: " + kKindHelp + ")");
  }
  std::string name = pos.size() == 2 ? pos[1] : "";
  std::string ns = a.get("--namespace");
  Json all;
  if (!fetch_resources(a.get("--admin", kDefaultAdmin), &all, &error)) {
    return fail("get", error, kExitUnavailable);
  }
  Json rows = Json::array();
  for (const auto& r : all) {
    if (matches_filter(r, kind, name, ns)) rows.push_back(r);
  }
  if (rows.empty()) {
    std::string what = kind == "*" ? "resources" : kind;
    if (!name.empty()) {
      return fail("get", what + " '" + name + "' not found" + (ns.empty() ? "" : " in " + ns),
                  kExitFindings);
    }
    if (format == OutputFormat::kJson) {
      std::printf("[]\n");
    } else if (format == OutputFormat::kYaml) {
      std::printf("[]\n");
    } else {
      std::fprintf(stderr, "no %s found%s\n", what.c_str(),
                   ns.empty() ? "" : (" in " + ns).c_str());
    }
    return kExitOk;
  }
  if (format == OutputFormat::kJson || format == OutputFormat::kYaml) {
    const Json& out = !name.empty() && rows.size() == 1 ? rows[0] : rows;
    if (format == OutputFormat::kJson) {
      std::printf("%s\n", out.dump(2, ' ', false, Json::error_handler_t::replace).c_str());
    } else {
      std::fputs(to_yaml(out).c_str(), stdout);
    }
    return kExitOk;
  }
  const bool wide = format == OutputFormat::kWide;
  const bool show_kind = kind == "*";  // a KIND column only when several kinds are listed
  std::vector<std::vector<std::string>> table;
  std::vector<std::string> header;
  if (show_kind) header.push_back("KIND");
  header.insert(header.end(), {"NAMESPACE", "NAME", "STATUS"});
  if (wide) header.insert(header.end(), {"GENERATION", "FILE", "DETAILS"});
  header.push_back("REASON");
  table.push_back(header);
  for (const auto& r : rows) {
    std::vector<std::string> row;
    if (show_kind) row.push_back(json_str(r, "kind"));
    row.insert(row.end(), {json_str(r, "namespace"), json_str(r, "name"), json_str(r, "state")});
    if (wide) {
      std::string file = json_str(r, "file");
      std::string line = json_str(r, "line");
      if (!line.empty() && line != "0") file += ":" + line;
      row.insert(row.end(), {json_str(r, "generation"), file, details(r)});
    }
    row.push_back(first_reason(r));
    table.push_back(std::move(row));
  }
  std::fputs(render_table(table).c_str(), stdout);
  return kExitOk;
}

int describe_command(const std::vector<std::string>& args) {
  Args a;
  if (int rc = parse_args("describe", args, kAdminFlags, &a); rc >= 0) return rc;
  if (int rc = 0; !apply_admin_flags(a, "describe", &rc)) return rc;
  std::string out_flag = a.get("--output", "text");
  if (out_flag != "text" && out_flag != "yaml" && out_flag != "json") {
    return usage_error("describe",
                       "unknown output format '" + out_flag + "' (valid: text, yaml, json)");
  }
  const auto& pos = a.positional();
  if (pos.size() != 2) return usage_error("describe", "wants KIND NAME");
  std::string kind = canonical_kind(pos[0]);
  if (kind.empty() || kind == "*") {
    return usage_error("describe", "unknown kind '" + pos[0] + "' (kinds: " + kKindHelp + ")");
  }
  const std::string admin = a.get("--admin", kDefaultAdmin);
  Json all;
  std::string error;
  if (!fetch_resources(admin, &all, &error)) return fail("describe", error, kExitUnavailable);
  std::string ns = a.get("--namespace", "");
  const Json* found = nullptr;
  std::vector<std::string> namespaces;
  for (const auto& r : all) {
    if (!matches_filter(r, kind, pos[1], "")) continue;
    namespaces.push_back(json_str(r, "namespace"));
    if (json_str(r, "namespace") == (ns.empty() ? "default" : ns)) found = &r;
  }
  // Without -n, a name that exists in exactly one namespace is found there.
  if (!found && ns.empty() && namespaces.size() == 1) {
    for (const auto& r : all) {
      if (matches_filter(r, kind, pos[1], "")) found = &r;
    }
  }
  if (!found) {
    std::string hint;
    if (!namespaces.empty()) {
      hint = " (it exists in namespace";
      for (const auto& n : namespaces)
        hint += " " + n;
      hint += ": use -n)";
    }
    return fail("describe",
                kind + " " + (ns.empty() ? "default" : ns) + "/" + pos[1] + " not found" + hint,
                kExitFindings);
  }
  const Json& r = *found;
  const std::string id = json_str(r, "namespace") + "/" + json_str(r, "name");
  Json dump;
  std::string dump_error;
  bool have_dump = admin_get_json(admin, "/config_dump", &dump, &dump_error);
  std::vector<std::string> lines =
      have_dump ? produced(dump, kind, id) : std::vector<std::string>{};
  if (out_flag != "text") {
    Json out = r;
    out["produced"] = lines;
    if (out_flag == "json") {
      std::printf("%s\n", out.dump(2, ' ', false, Json::error_handler_t::replace).c_str());
    } else {
      std::fputs(to_yaml(out).c_str(), stdout);
    }
    return kExitOk;
  }
  std::string file = json_str(r, "file");
  if (json_str(r, "line") != "0" && !json_str(r, "line").empty()) file += ":" + json_str(r, "line");
  std::printf("Kind:        %s\n", json_str(r, "kind").c_str());
  std::printf("Name:        %s\n", json_str(r, "name").c_str());
  std::printf("Namespace:   %s\n", json_str(r, "namespace").c_str());
  std::printf("File:        %s\n", file.c_str());
  std::printf("Generation:  %s\n", json_str(r, "generation").c_str());
  std::printf("Status:      %s\n", json_str(r, "state").c_str());
  if (r.contains("servingGeneration")) {
    std::printf("Serving:     generation %s (the last good version stays in force)\n",
                json_str(r, "servingGeneration").c_str());
  }
  if (r.contains("origin") && r["origin"].is_object()) {
    std::printf("Source:      %s\n", json_str(r["origin"], "source").c_str());
  }
  if (r.contains("lastChange") && r["lastChange"].is_object()) {
    const Json& c = r["lastChange"];
    std::string applied = json_str(c, "appliedMs");
    std::printf(
        "Last change: %s\n",
        applied.empty()
            ? "not yet running on every worker"
            : ("running on every worker " + applied + " ms after the change was seen").c_str());
  }
  auto reasons = reason_lines(r);
  if (!reasons.empty()) {
    std::printf("Reasons:\n");
    for (const auto& l : reasons)
      std::printf("  - %s\n", l.c_str());
  }
  if (r.contains("spec") && !r["spec"].is_null()) {
    std::printf("Spec:\n");
    print_indented(to_yaml(r["spec"]), "  ");
  }
  if (r.contains("proxies") && r["proxies"].is_array()) {
    // From a `portico server`: the proxies whose applied version contains it.
    if (r["proxies"].empty()) {
      std::printf("Proxies:     none runs a version that contains it\n");
    } else {
      std::printf("Proxies:\n");
      for (const auto& p : r["proxies"])
        std::printf("  %s\n", p.is_string() ? p.get<std::string>().c_str() : "?");
    }
  }
  if (!have_dump) {
    std::printf("In the running configuration: unknown (%s)\n", dump_error.c_str());
  } else if (lines.empty()) {
    std::printf("In the running configuration (version %s): nothing%s\n",
                json_str(dump, "version").c_str(),
                json_str(r, "state") == "Rejected" ? " (Rejected resources are left out)" : "");
  } else {
    std::printf("In the running configuration (version %s):\n", json_str(dump, "version").c_str());
    for (const auto& l : lines)
      std::printf("  %s\n", l.c_str());
  }
  return kExitOk;
}

int check_command(const std::vector<std::string>& args) {
  Args a;
  if (int rc = parse_args("check", args,
                          {{"--admin", "", true, false}, {"--output", "-o", true, false}}, &a);
      rc >= 0) {
    return rc;
  }
  std::string out_flag = a.get("--output", "text");
  if (out_flag != "text" && out_flag != "json") {
    return usage_error("check", "unknown output format '" + out_flag + "' (valid: text, json)");
  }
  if (!a.positional().empty()) {
    return usage_error("check", "unexpected argument '" + a.positional()[0] + "'");
  }
  const std::string admin = a.get("--admin", kDefaultAdmin);
  std::string body;
  std::string error;
  std::string ready_error;
  bool ready = admin_get(admin, "/ready", &body, &ready_error);
  Json all;
  if (!fetch_resources(admin, &all, &error)) return fail("check", error, kExitUnavailable);
  Json problems = Json::array();
  std::map<std::string, size_t> counts;
  for (const auto& r : all) {
    std::string state = json_str(r, "state");
    ++counts[state];
    if (state != "Accepted") problems.push_back(r);
  }
  const bool ok = ready && problems.empty();
  if (out_flag == "json") {
    Json out{{"ok", ok}, {"ready", ready}, {"resources", all.size()}, {"problems", problems}};
    if (!ready) out["ready_error"] = ready_error;
    std::printf("%s\n", out.dump(2, ' ', false, Json::error_handler_t::replace).c_str());
    return ok ? kExitOk : kExitFindings;
  }
  if (!ready) std::printf("not ready: %s\n", ready_error.c_str());
  for (const auto& r : problems) {
    std::string file = json_str(r, "file");
    std::printf("%s %s %s/%s (%s)\n", json_str(r, "state").c_str(), json_str(r, "kind").c_str(),
                json_str(r, "namespace").c_str(), json_str(r, "name").c_str(), file.c_str());
    for (const auto& l : reason_lines(r))
      std::printf("    %s\n", l.c_str());
  }
  std::printf("%zu resources: %zu accepted, %zu with warnings, %zu rejected, %zu pending%s\n",
              all.size(), counts["Accepted"], counts["Warning"], counts["Rejected"],
              counts["Pending"], ok ? "; ok" : "");
  return ok ? kExitOk : kExitFindings;
}

int proxy_command(const std::vector<std::string>& args) {
  // `portico proxy --server URL ...`: the data plane fed by a server (fleet_proxy.cc).
  for (const auto& arg : args) {
    if (arg == "--server" || arg.rfind("--server=", 0) == 0) return fleet_proxy_command(args);
  }
  Args a;
  if (int rc = parse_args("proxy", args,
                          {{"--admin", "", true, false},
                           {"--dir", "", true, false},
                           {"--output", "-o", true, false}},
                          &a);
      rc >= 0) {
    return rc;
  }
  const auto& pos = a.positional();
  if (pos.size() != 1 || pos[0] != "dump") {
    return usage_error("proxy", pos.empty() ? "wants a subcommand: dump"
                                            : "unknown subcommand '" + pos[0] + "' (valid: dump)");
  }
  OutputFormat format;
  std::string error;
  if (!parse_output(a.get("--output"), {OutputFormat::kJson, OutputFormat::kYaml}, &format,
                    &error)) {
    return usage_error("proxy dump", error);
  }
  if (a.has("--dir") && a.has("--admin")) {
    return usage_error("proxy dump", "--dir and --admin exclude each other");
  }
  Json dump;
  if (a.has("--dir")) {
    control::BuildResult result;
    if (!build_local(a.get("--dir"), &result, &error)) {
      return fail("proxy dump", error, kExitUnavailable);
    }
    dump = dump_of(result);
  } else if (!admin_get_json(a.get("--admin", kDefaultAdmin), "/config_dump", &dump, &error)) {
    return fail("proxy dump", error, kExitUnavailable);
  }
  if (format == OutputFormat::kYaml) {
    std::fputs(to_yaml(dump).c_str(), stdout);
  } else {
    std::printf("%s\n", dump.dump(2, ' ', false, Json::error_handler_t::replace).c_str());
  }
  return kExitOk;
}

}  // namespace portico::cli
