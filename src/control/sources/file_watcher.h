// FileWatcher: inotify on a configuration directory and its subdirectories (symlinked ones too).
// The control thread owns it: it waits for fd() to be readable (in its event loop), then calls
// drain().
#pragma once

#include <filesystem>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "common/result.h"

namespace portico::control {

class FileWatcher {
 public:
  static Result<std::unique_ptr<FileWatcher>> open(const std::filesystem::path& dir);
  ~FileWatcher();
  FileWatcher(const FileWatcher&) = delete;
  FileWatcher& operator=(const FileWatcher&) = delete;

  int fd() const { return fd_; }

  // Reads every pending event without blocking; watches directories created since (also through
  // symlinks). Returns true when something that may hold configuration changed (files written,
  // moved, deleted; a Kubernetes ConfigMap/Secret mount's "..data" link swapped).
  bool drain();

  // The paths that changed (a watched directory joined with the event's name; the directory
  // itself for an event about it) since the last call, for FileSource::note_changed(), and
  // whether only a complete listing can tell what changed (the event queue overflowed, an event
  // came from a directory no longer known, too many paths). Directories created, moved or
  // removed are among the paths: FileSource lists everything for them.
  struct Changes {
    std::vector<std::filesystem::path> paths;
    bool relist = false;
  };
  Changes take_changes() {
    Changes c;
    c.paths.assign(paths_.begin(), paths_.end());
    c.relist = relist_;
    paths_.clear();
    relist_ = false;
    return c;
  }

  // Also watches these directories (not their subdirectories): the files that resources refer to
  // (TLS certificates and keys) live there. Directories watched already keep their watch.
  void watch_dirs(const std::vector<std::filesystem::path>& dirs);

  // True once after the kernel's event queue overflowed (events were lost): the caller should
  // re-read everything rather than trust what changed.
  bool take_overflow() {
    bool o = overflowed_;
    overflowed_ = false;
    return o;
  }

 private:
  explicit FileWatcher(int fd) : fd_(fd) {}
  void watch_tree(const std::filesystem::path& dir);

  int fd_;
  std::filesystem::path root_;
  bool overflowed_ = false;
  bool relist_ = false;
  std::set<std::filesystem::path> paths_;
  std::map<int, std::filesystem::path> dirs_;  // watch descriptor → directory
};

}  // namespace portico::control
