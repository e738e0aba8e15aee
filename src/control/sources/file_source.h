// FileSource: the ConfigSource for a directory of YAML/JSON files (recursively; *.yaml, *.yml,
// *.json; several documents per file). Works with Kubernetes ConfigMap and Secret mounts (files are
// symlinks into a "..data" directory that is swapped atomically). Owned and called by the
// control-plane thread only.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "control/sources/source.h"

namespace portico::control {

class FileSource : public ConfigSource {
 public:
  explicit FileSource(std::filesystem::path dir);

  std::string_view name() const override { return "file"; }

  // Lists the directory, re-reads files whose identity, size or modification time changed (every
  // file when `full`), and reports the documents that changed: one Origin per file (key = path
  // relative to the directory, index = the resource's position in the file, revision = a hash of
  // its content). A file that no longer parses keeps its previous resources (an origin error says
  // so); a file that defines a resource twice keeps the first definition. The first poll lists
  // files in path order, which decides which file owns a resource that two files define.
  Delta poll(bool full) override;

  // The delta of the given in-memory files (name, content), in order, as a first poll would give
  // (for `portico validate`, tests and fuzzing).
  static Delta from_memory(const std::vector<std::pair<std::string, std::string>>& files);

  const std::filesystem::path& dir() const { return dir_; }
  std::filesystem::path base_dir() const override { return base_; }

 private:
  struct Doc {
    std::string resource_key;
  };
  struct FileState {
    uint64_t content_hash = 0;
    bool read = false;  // content_hash is set
    // stat() of the last read: a file whose identity, size and mtime are unchanged is not re-read
    // (except on a full resync).
    dev_t dev = 0;
    ino_t ino = 0;
    off_t size = -1;
    int64_t mtime_ns = -1;
    std::vector<Doc> docs;  // of the last successful parse
  };

  // Decodes `content` of `name` into `delta` against the file's previous state.
  static void add_file(const std::string& name, std::string_view content, FileState* state,
                       Delta* delta);

  std::filesystem::path dir_;
  std::filesystem::path base_;  // the directory the listed names are relative to (last poll)
  std::map<std::string, FileState> files_;  // by path relative to dir_
};

}  // namespace portico::control
