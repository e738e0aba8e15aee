// Diagnostic: one error or warning about a configuration document, with its file, line, column and
// field path. Plain value type; any thread.
#pragma once

#include <string>
#include <vector>

namespace portico::api {

// A position in a source file, 1-based; 0 when unknown.
struct Location {
  int line = 0;
  int column = 0;
};

struct Diagnostic {
  enum class Severity { kError, kWarning };
  Severity severity = Severity::kError;
  std::string file;  // path as given (relative to the config dir when loading a directory)
  int line = 0;      // 1-based; 0 when unknown
  int column = 0;    // 1-based; 0 when unknown
  std::string
      path;  // field path in the document, e.g. "spec.virtualHost.routes[2].matchers[0].regex"
  std::string message;

  bool is_error() const { return severity == Severity::kError; }
  // "routes.yaml:14:9: error: spec.virtualHost.routes[2].matchers[0].regex: message"; the line,
  // column and path parts are left out when unknown.
  std::string to_string() const;
};

const char* to_string(Diagnostic::Severity severity);  // "error" or "warning"

bool has_errors(const std::vector<Diagnostic>& diagnostics);

// Stable sort by file, line, column: the order a reader goes through the document.
void sort_by_position(std::vector<Diagnostic>& diagnostics);

}  // namespace portico::api
