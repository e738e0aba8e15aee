// Per-resource status of one configuration build (state, every reason, generation, spec as JSON),
// and its JSON rendering for the admin /resources endpoint and the CLI. Plain values; built on the
// control-plane thread, safe to copy to any thread.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "api/diagnostic.h"

namespace portico::control {

using Diagnostic = api::Diagnostic;

enum class State { kPending, kAccepted, kWarning, kRejected };
std::string_view to_string(State state);  // "Pending" "Accepted" "Warning" "Rejected"

// When the last change of a resource was seen, translated and applied by every worker.
struct ChangeTimings {
  int64_t seen_unix_ms = 0;    // 0: unknown (one-shot builds)
  int64_t translated_ms = -1;  // after seen; -1 until translated
  int64_t applied_ms = -1;     // after seen; -1 until every worker runs it
};

struct ResourceStatus {
  std::string kind, ns, name, file;
  int line = 0;
  // The observed generation: of the version this status is about (the newest one). Derived from
  // the resource itself (control/store: generation_of), so it survives restarts.
  int64_t generation = 0;
  // Set when the newest version is Rejected and an earlier accepted version is still served.
  int64_t serving_generation = 0;
  State state = State::kPending;
  std::vector<Diagnostic> reasons;  // every error and warning of this resource
  // The spec as JSON (for `describe`), shared with the resource it describes (never copied).
  std::shared_ptr<const std::string> spec_json;
  const std::string& spec() const;  // empty when spec_json is null
  // Where the version in force came from (empty for one-shot builds).
  std::string source, revision;
  int document = 0;
  // When this status last changed (Unix ms; 0 for one-shot builds). Unchanged statuses keep it.
  int64_t updated_unix_ms = 0;
  ChangeTimings last_change;
  // True when state, reasons and generations are the same (what a status writer compares).
  bool same_status(const ResourceStatus& o) const;
};

// At most this many reasons are shown per resource; the rest is summed up as "and N more".
inline constexpr size_t kMaxShownReasons = 20;
// Longer messages are cut (with "...").
inline constexpr size_t kMaxReasonBytes = 1024;

// Rejected when any reason is an error, Warning when there are only warnings, else Accepted.
State state_from(const std::vector<Diagnostic>& reasons);

// JSON array of every ResourceStatus:
// [{"kind","namespace","name","file","line","generation","observedGeneration","state",
//   "reasons":[{"severity","file","line","column","path","message"}],"spec":{...}}]
// plus, when known: "servingGeneration" (an earlier version is served), "origin" {source, key,
// document, revision}, "updatedUnixMs", and "lastChange" {seenUnixMs, translatedMs, appliedMs}.
// Reasons are bounded: kMaxShownReasons, then one entry "and N more"; messages are cut at
// kMaxReasonBytes.
// File errors (unreadable files, unknown kinds, duplicates) are appended as one entry per file with
// kind "File", name and file set to the file's path, state "Rejected" and spec null.
std::string resources_to_json(const std::vector<ResourceStatus>& resources,
                              const std::vector<Diagnostic>& file_errors);

}  // namespace portico::control
