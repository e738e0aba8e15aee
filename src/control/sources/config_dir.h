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
  std::vector<std::string> files;  // paths relative to the directory, '/'-separated, sorted
  std::string error;               // non-empty when the directory itself cannot be read
};

ConfigFileList list_config_files(const std::filesystem::path& dir);

// Reads `dir / relative`; nullopt with *error set when it cannot be read or exceeds max_bytes.
std::optional<std::string> read_config_file(const std::filesystem::path& path, size_t max_bytes,
                                            std::string* error);

}  // namespace portico::control
