// The file-based configuration pipeline: a directory of YAML/JSON resources -> decode -> validate
// -> translate into an immutable snapshot::ProxyConfig, with a status for every resource.
// FileConfigSource is owned and called by the control-plane thread only; BuildResult values may
// then be shared.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "api/decode.h"
#include "api/diagnostic.h"
#include "control/status/status.h"
#include "snapshot/proxy_config.h"

namespace portico::control {

// Diagnostic, State, ResourceStatus, to_string(State) and resources_to_json come from
// control/status/status.h.

struct BuildResult {
  std::shared_ptr<const snapshot::ProxyConfig> config;  // never null; from accepted resources only
  std::vector<ResourceStatus> resources;                // sorted by kind, namespace, name
  std::vector<Diagnostic>
      file_errors;  // unparseable files, unknown kinds, duplicate names, I/O errors
  bool ok() const;  // no file errors and no Rejected resource
};

// Reads DIR recursively (*.yaml, *.yml, *.json; multi-document files; hidden files and directories
// skipped), decodes, validates, translates. It remembers each file's last successfully parsed
// documents: a file that no longer parses keeps its previous resources in force (and its error is
// reported in file_errors). Not thread-safe; the control-plane thread owns it.
class FileConfigSource {
 public:
  explicit FileConfigSource(std::filesystem::path dir);
  BuildResult build(uint64_t version);

  const std::filesystem::path& dir() const { return dir_; }

 private:
  struct FileState {
    std::string content;       // of the last successful parse
    api::DecodedFile decoded;  // its documents
  };
  struct Generation {
    std::string spec_json;
    int64_t generation = 0;
  };

  std::filesystem::path dir_;
  std::map<std::string, FileState> files_;         // by path relative to dir_
  std::map<std::string, Generation> generations_;  // by "<Kind>/<namespace>/<name>"
};

// One-shot, no memory (for `portico validate DIR`). DIR may also be a single file.
BuildResult validate_directory(const std::filesystem::path& dir);

// A file given in memory (tests, fuzzing, `portico check -`).
struct SourceFile {
  std::string name;
  std::string content;
};
// Decodes, validates and translates the given files as if they were one directory (no memory).
BuildResult build_from_files(const std::vector<SourceFile>& files, uint64_t version);

}  // namespace portico::control
