#include "control/status/status.h"

#include <algorithm>
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

const std::string& ResourceStatus::spec() const {
  static const std::string kEmpty;
  return spec_json ? *spec_json : kEmpty;
}

bool ResourceStatus::same_status(const ResourceStatus& o) const {
  if (state != o.state || generation != o.generation ||
      serving_generation != o.serving_generation || reasons.size() != o.reasons.size()) {
    return false;
  }
  // What Diagnostic::to_string() shows, field by field (no string built per reason and sync).
  for (size_t i = 0; i < reasons.size(); ++i) {
    const Diagnostic& a = reasons[i];
    const Diagnostic& b = o.reasons[i];
    if (a.severity != b.severity || a.line != b.line || a.message != b.message ||
        a.path != b.path || a.file != b.file || (a.line > 0 && a.column != b.column)) {
      return false;
    }
  }
  return true;
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
  if (d.message.size() > kMaxReasonBytes) {
    j["message"] = d.message.substr(0, kMaxReasonBytes) + "...";
  } else {
    j["message"] = d.message;
  }
  return j;
}

template <typename List, typename Get>
nlohmann::ordered_json reasons_json(const List& list, Get get) {
  nlohmann::ordered_json out = nlohmann::ordered_json::array();
  size_t shown = std::min(list.size(), kMaxShownReasons);
  // Errors first when some must be left out: they say why the resource is rejected.
  std::vector<const Diagnostic*> order;
  for (const auto& item : list)
    order.push_back(&get(item));
  if (list.size() > kMaxShownReasons) {
    std::stable_partition(order.begin(), order.end(),
                          [](const Diagnostic* d) { return d->is_error(); });
  }
  for (size_t i = 0; i < shown; ++i)
    out.push_back(diagnostic_json(*order[i]));
  if (list.size() > shown) {
    Diagnostic more;
    more.severity = Diagnostic::Severity::kWarning;
    more.message = "and " + std::to_string(list.size() - shown) + " more";
    out.push_back(diagnostic_json(more));
  }
  return out;
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
    j["observedGeneration"] = r.generation;
    if (r.serving_generation != 0) j["servingGeneration"] = r.serving_generation;
    j["state"] = std::string(to_string(r.state));
    j["reasons"] =
        reasons_json(r.reasons, [](const Diagnostic& d) -> const Diagnostic& { return d; });
    if (!r.source.empty()) {
      nlohmann::ordered_json o;
      o["source"] = r.source;
      o["key"] = r.file;
      o["document"] = r.document;
      o["revision"] = r.revision;
      j["origin"] = std::move(o);
    }
    if (r.updated_unix_ms != 0) j["updatedUnixMs"] = r.updated_unix_ms;
    if (r.last_change.seen_unix_ms != 0) {
      nlohmann::ordered_json c;
      c["seenUnixMs"] = r.last_change.seen_unix_ms;
      c["translatedMs"] = r.last_change.translated_ms < 0
                              ? nlohmann::ordered_json(nullptr)
                              : nlohmann::ordered_json(r.last_change.translated_ms);
      c["appliedMs"] = r.last_change.applied_ms < 0
                           ? nlohmann::ordered_json(nullptr)
                           : nlohmann::ordered_json(r.last_change.applied_ms);
      j["lastChange"] = std::move(c);
    }
    nlohmann::ordered_json spec = nullptr;
    if (!r.spec().empty()) {
      spec = nlohmann::ordered_json::parse(r.spec(), nullptr, /*allow_exceptions=*/false);
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
    j["observedGeneration"] = 0;
    bool errors =
        std::any_of(diags.begin(), diags.end(), [](const Diagnostic* d) { return d->is_error(); });
    j["state"] = errors ? "Rejected" : "Warning";
    j["reasons"] = reasons_json(diags, [](const Diagnostic* d) -> const Diagnostic& { return *d; });
    j["spec"] = nullptr;
    out.push_back(std::move(j));
  }
  return out.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace);
}

}  // namespace portico::control
