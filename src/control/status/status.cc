#include "control/status/status.h"

#include <map>
#include <nlohmann/json.hpp>

namespace portico::control {

std::string_view to_string(State state) {
  switch (state) {
    case State::kPending:
      return "Pending";
    case State::kAccepted:
      return "Accepted";
    case State::kWarning:
      return "Warning";
    case State::kRejected:
      return "Rejected";
  }
  return "Pending";
}

State state_from(const std::vector<Diagnostic>& reasons) {
  if (api::has_errors(reasons)) return State::kRejected;
  return reasons.empty() ? State::kAccepted : State::kWarning;
}

namespace {

nlohmann::ordered_json diagnostic_json(const Diagnostic& d) {
  nlohmann::ordered_json j;
  j["severity"] = api::to_string(d.severity);
  j["file"] = d.file;
  j["line"] = d.line;
  j["column"] = d.column;
  j["path"] = d.path;
  j["message"] = d.message;
  return j;
}

}  // namespace

std::string resources_to_json(const std::vector<ResourceStatus>& resources,
                              const std::vector<Diagnostic>& file_errors) {
  nlohmann::ordered_json out = nlohmann::ordered_json::array();
  for (const auto& r : resources) {
    nlohmann::ordered_json j;
    j["kind"] = r.kind;
    j["namespace"] = r.ns;
    j["name"] = r.name;
    j["file"] = r.file;
    j["line"] = r.line;
    j["generation"] = r.generation;
    j["state"] = std::string(to_string(r.state));
    j["reasons"] = nlohmann::ordered_json::array();
    for (const auto& d : r.reasons)
      j["reasons"].push_back(diagnostic_json(d));
    nlohmann::ordered_json spec = nullptr;
    if (!r.spec_json.empty()) {
      spec = nlohmann::ordered_json::parse(r.spec_json, nullptr, /*allow_exceptions=*/false);
      if (spec.is_discarded()) spec = nullptr;
    }
    j["spec"] = std::move(spec);
    out.push_back(std::move(j));
  }
  std::map<std::string, std::vector<const Diagnostic*>> by_file;
  for (const auto& d : file_errors)
    by_file[d.file].push_back(&d);
  for (const auto& [file, diags] : by_file) {
    nlohmann::ordered_json j;
    j["kind"] = "File";
    j["namespace"] = "";
    j["name"] = file;
    j["file"] = file;
    j["line"] = 0;
    j["generation"] = 0;
    j["state"] = "Rejected";
    j["reasons"] = nlohmann::ordered_json::array();
    for (const auto* d : diags)
      j["reasons"].push_back(diagnostic_json(*d));
    j["spec"] = nullptr;
    out.push_back(std::move(j));
  }
  return out.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace);
}

}  // namespace portico::control
