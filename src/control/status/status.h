// Per-resource status of one configuration build (state, every reason, generation, spec as JSON),
// and its JSON rendering for the admin /resources endpoint and the CLI. Plain values; built on the
// control-plane thread, safe to copy to any thread.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "api/diagnostic.h"

namespace portico::control {

using Diagnostic = api::Diagnostic;

enum class State { kPending, kAccepted, kWarning, kRejected };
std::string_view to_string(State state);  // "Pending" "Accepted" "Warning" "Rejected"

struct ResourceStatus {
  std::string kind, ns, name, file;
  int line = 0;
  int64_t generation = 0;  // bumps when the resource's spec changes across builds
  State state = State::kPending;
  std::vector<Diagnostic> reasons;  // every error and warning of this resource
  std::string spec_json;            // the spec as JSON (for `describe`)
};

// Rejected when any reason is an error, Warning when there are only warnings, else Accepted.
State state_from(const std::vector<Diagnostic>& reasons);

// JSON array of every ResourceStatus:
// [{"kind","namespace","name","file","line","generation","state",
//   "reasons":[{"severity","file","line","column","path","message"}],"spec":{...}}]
// File errors (unreadable files, unknown kinds, duplicates) are appended as one entry per file with
// kind "File", name and file set to the file's path, state "Rejected" and spec null.
std::string resources_to_json(const std::vector<ResourceStatus>& resources,
                              const std::vector<Diagnostic>& file_errors);

}  // namespace portico::control
