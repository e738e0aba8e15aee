// Lists and reads the configuration files of a directory (recursively; *.yaml, *.yml, *.json;
// hidden files and directories skipped, which also skips Kubernetes ConfigMap "..data" mounts).
// Bounded reads. Any thread; no shared state.
#pragma once

#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace portico::control {

struct ConfigFileList {
  std::filesystem::path base;      // what `files` are relative to
  std::vector<std::string> files;  // paths relative to base, '/'-separated, sorted
  std::string error;               // non-empty when the directory itself cannot be read
};

// `dir` may also name a single file (any extension): the list is then that file, relative to its
// directory.
ConfigFileList list_config_files(const std::filesystem::path& dir);

// Reads `dir / relative`; nullopt with *error set when it cannot be read or exceeds max_bytes.
std::optional<std::string> read_config_file(const std::filesystem::path& path, size_t max_bytes,
                                            std::string* error);

}  // namespace portico::control
