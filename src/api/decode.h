// Decoding of configuration files (YAML or JSON, several documents per file) into api::Resource
// values, with every field checked and every problem reported as a Diagnostic. Never throws. Any
// thread (no shared state), but resources are usually decoded on the control-plane thread.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "api/diagnostic.h"
#include "api/resources.h"

namespace portico::api {

inline constexpr size_t kMaxFileBytes = 4 * 1024 * 1024;
inline constexpr int kMaxDepth = 64;
// Nodes visited in one document, aliases expanded (guards against alias bombs and cyclic aliases).
inline constexpr size_t kMaxNodes = 1'000'000;
// YAML documents per file and parser events per file (a 4 MiB file stays well below both).
inline constexpr size_t kMaxDocuments = 10'000;
inline constexpr size_t kMaxEvents = 8'000'000;

// One YAML or JSON document as JSON text, scalars typed as the decoder reads them (plain
// integers, numbers and booleans; everything else a string). "" and `error` when it does not
// parse. For a document the decoder already accepted (the Kubernetes store's writes).
std::string document_to_json(std::string_view text, std::string* error);

struct DecodedFile {
  // False when the file could not be read as a whole (YAML syntax error, too large, nested too
  // deep): callers keep the file's previous resources in force.
  bool parsed = false;
  std::vector<Resource> resources;  // in document order; each with its own diagnostics
  // Problems that are not about one identifiable resource: syntax errors, documents that are not
  // maps, missing or unknown kinds, missing metadata.name.
  std::vector<Diagnostic> errors;
};

// `file` is only used to label diagnostics.
DecodedFile decode_file(const std::string& file, std::string_view content);

}  // namespace portico::api
