// `portico diff DIR|FILE`: what applying files to a running portico would change, without applying
// anything: resources added, removed and changed (unified diff of their specs), status changes,
// and the change of the data plane's configuration.
#include <cstdio>
#include <filesystem>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "cli/admin_client.h"
#include "cli/args.h"
#include "cli/commands.h"
#include "cli/format.h"
#include "cli/help.h"
#include "cli/local.h"
#include "control/pipeline.h"
#include "control/sources/config_dir.h"

namespace portico::cli {

namespace {

using Json = nlohmann::ordered_json;

constexpr const char* kApiVersion = "gateway.portico.dev/v1";

std::string key_of(const std::string& kind, const std::string& ns, const std::string& name) {
  return kind + " " + ns + "/" + name;
}

Json spec_of(const std::string& spec_json) {
  if (spec_json.empty()) return nullptr;
  Json j = Json::parse(spec_json, nullptr, false);
  return j.is_discarded() ? Json(nullptr) : j;
}

// The configuration without what changes at every publication.
std::string comparable(Json dump) {
  if (dump.is_object()) {
    dump.erase("version");
    dump.erase("versions");  // per kind: the running one has a history, files have none
    dump.erase("created_unix_ms");
  }
  return to_yaml(dump);
}

std::vector<std::string> reasons_of(const control::ResourceStatus& s) {
  std::vector<std::string> out;
  for (const auto& d : s.reasons)
    out.push_back(d.to_string());
  return out;
}

}  // namespace

int diff_command(const std::vector<std::string>& args) {
  constexpr std::string_view kCmd = "diff";
  Args a;
  if (int rc = parse_args(kCmd, args,
                          {{"--admin", "", true, false}, {"--output", "-o", true, false}}, &a);
      rc >= 0) {
    return rc;
  }
  std::string out_flag = a.get("--output", "text");
  if (out_flag != "text" && out_flag != "json") {
    return usage_error(kCmd, "unknown output format '" + out_flag + "' (valid: text, json)");
  }
  if (a.positional().size() != 1) return usage_error(kCmd, "wants one DIR or FILE");
  const std::string path = a.positional()[0];
  const std::string admin = a.get("--admin", kDefaultAdmin);

  Json running;
  Json running_dump;
  std::string error;
  if (!fetch_resources(admin, &running, &error) ||
      !admin_get_json(admin, "/config_dump", &running_dump, &error)) {
    return fail(kCmd, error, kExitUnavailable);
  }
  control::BuildResult local;
  if (!build_local(path, &local, &error)) return fail(kCmd, error, kExitUnavailable);

  // A single file is laid over the running resources: what it does not define stays.
  std::error_code ec;
  const bool overlay = path == "-" || std::filesystem::is_regular_file(path, ec);
  std::set<std::string> in_file;
  if (overlay) {
    for (const auto& s : local.resources)
      in_file.insert(key_of(s.kind, s.ns, s.name));
    std::string others;
    for (const auto& r : running) {
      std::string kind = json_str(r, "kind");
      if (kind == "File" ||
          in_file.count(key_of(kind, json_str(r, "namespace"), json_str(r, "name")))) {
        continue;
      }
      Json doc{{"apiVersion", kApiVersion},
               {"kind", kind},
               {"metadata",
                Json{{"name", json_str(r, "name")}, {"namespace", json_str(r, "namespace")}}},
               {"spec", r.contains("spec") ? r["spec"] : Json(nullptr)}};
      others += "---\n" + doc.dump() + "\n";
    }
    std::vector<control::SourceFile> sources{{"(running)", others}};
    std::string content;
    std::string read_error;
    if (path == "-") {
      // build_local consumed stdin; rebuild the file from the decoded specs.
      for (const auto& s : local.resources) {
        Json doc{{"apiVersion", kApiVersion},
                 {"kind", s.kind},
                 {"metadata", Json{{"name", s.name}, {"namespace", s.ns}}},
                 {"spec", spec_of(s.spec())}};
        content += "---\n" + doc.dump() + "\n";
      }
      sources.push_back({"<stdin>", content});
    } else {
      auto text = control::read_config_file(path, api::kMaxFileBytes, &read_error);
      if (!text) return fail(kCmd, path + ": " + read_error, kExitUnavailable);
      sources.push_back({std::filesystem::path(path).filename().string(), *text});
    }
    local = control::build_from_files(sources, 0);
  }

  std::map<std::string, const Json*> before;
  for (const auto& r : running) {
    if (json_str(r, "kind") == "File") continue;
    before[key_of(json_str(r, "kind"), json_str(r, "namespace"), json_str(r, "name"))] = &r;
  }
  std::map<std::string, const control::ResourceStatus*> after;
  for (const auto& s : local.resources)
    after[key_of(s.kind, s.ns, s.name)] = &s;

  Json added = Json::array();
  Json removed = Json::array();
  Json changed = Json::array();
  std::string text;
  size_t unchanged = 0;
  for (const auto& [key, s] : after) {
    std::string state(control::to_string(s->state));
    auto it = before.find(key);
    if (it == before.end()) {
      added.push_back(Json{{"kind", s->kind},
                           {"namespace", s->ns},
                           {"name", s->name},
                           {"state", state},
                           {"reasons", reasons_of(*s)}});
      text += "+ " + key + " (would be " + state + ")\n";
      if (s->state != control::State::kAccepted) {
        for (const auto& r : reasons_of(*s))
          text += "    " + r + "\n";
      }
      continue;
    }
    const Json& r = *it->second;
    std::string old_state = json_str(r, "state");
    Json old_spec = r.contains("spec") ? r["spec"] : Json(nullptr);
    Json new_spec = spec_of(s->spec());
    std::string spec_diff =
        unified_diff(to_yaml(old_spec), to_yaml(new_spec), "running/" + key, "local/" + key);
    if (spec_diff.empty() && old_state == state) {
      ++unchanged;
      continue;
    }
    changed.push_back(Json{{"kind", s->kind},
                           {"namespace", s->ns},
                           {"name", s->name},
                           {"state_before", old_state},
                           {"state", state},
                           {"reasons", reasons_of(*s)},
                           {"spec_diff", spec_diff}});
    text += "~ " + key;
    text += old_state == state ? " (" + state + ")\n"
                               : ": " + old_state + " -> would be " + state + "\n";
    if (s->state != control::State::kAccepted) {
      for (const auto& reason : reasons_of(*s))
        text += "    " + reason + "\n";
    }
    size_t start = 0;
    while (start < spec_diff.size()) {
      size_t nl = spec_diff.find('\n', start);
      text += "    " + spec_diff.substr(start, nl - start) + "\n";
      start = nl == std::string::npos ? spec_diff.size() : nl + 1;
    }
  }
  for (const auto& [key, r] : before) {
    if (after.count(key)) continue;
    if (overlay) continue;  // a single file removes nothing
    removed.push_back(Json{{"kind", json_str(*r, "kind")},
                           {"namespace", json_str(*r, "namespace")},
                           {"name", json_str(*r, "name")},
                           {"state_before", json_str(*r, "state")}});
    text += "- " + key + "\n";
  }
  Json file_errors = Json::array();
  for (const auto& d : local.file_errors) {
    file_errors.push_back(d.to_string());
    text += "! " + d.to_string() + "\n";
  }
  std::string config_diff = unified_diff(comparable(running_dump), comparable(dump_of(local)),
                                         "running/config_dump", "local/config_dump");
  const bool differs = !added.empty() || !removed.empty() || !changed.empty() ||
                       !file_errors.empty() || !config_diff.empty();
  if (out_flag == "json") {
    Json out{{"differs", differs},
             {"added", added},
             {"removed", removed},
             {"changed", changed},
             {"unchanged", unchanged},
             {"file_errors", file_errors},
             {"proxy_config_diff", config_diff}};
    std::printf("%s\n", out.dump(2, ' ', false, Json::error_handler_t::replace).c_str());
    return differs ? kExitFindings : kExitOk;
  }
  std::fputs(text.c_str(), stdout);
  if (!config_diff.empty()) {
    std::printf("Data plane configuration (config_dump) would change:\n%s", config_diff.c_str());
  }
  std::printf("%zu added, %zu removed, %zu changed, %zu unchanged%s\n", added.size(),
              removed.size(), changed.size(), unchanged,
              differs ? "" : ": the running configuration already matches");
  return differs ? kExitFindings : kExitOk;
}

}  // namespace portico::cli
