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
#include <set>
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
  //
  // A poll that is not full after note_changed() (the file watcher's events) stats and re-reads
  // only the noted paths, and the referenced files in the directories they are in: at 10,000
  // files, listing and stating every file was most of a one-file sync. Without noted paths, after
  // note_relist(), and on the first poll, it lists the directory and stats every file.
  Delta poll(bool full) override;

  // A path the file watcher saw change (a file of the directory, a file a resource refers to, or a
  // directory): the next poll that is not full looks at it. A directory, a "..data" link (a
  // Kubernetes mount's swap) or a path that held files makes that poll list everything.
  void note_changed(const std::filesystem::path& path);
  // The next poll lists the directory and stats every file (events were lost, or a directory
  // changed).
  void note_relist() { relist_ = true; }

  // The delta of the given in-memory files (name, content), in order, as a first poll would give
  // (for `portico validate`, tests and fuzzing).
  static Delta from_memory(const std::vector<std::pair<std::string, std::string>>& files);

  const std::filesystem::path& dir() const { return dir_; }
  std::filesystem::path base_dir() const override { return base_; }

  // `portico apply` and `portico delete`: an applied document goes to its own file,
  // `<dir>/applied/<Kind>.<namespace>.<name>.yaml`, written atomically (a hidden temporary file
  // renamed into place); the file watcher then reports it as any edit. A resource that another
  // file of the directory defines is a conflict naming that file: an operator's file is never
  // edited. A delete removes the applied file, or a file that holds that resource alone; a
  // resource in a file with others is a conflict; one that no file holds is not found. Refused
  // when the source is one file rather than a directory.
  WriteResult write(const WriteOp& op) override;

  // The directories of the files that resources refer to (TLS certificates and keys of Secrets
  // and sslFiles), for the file watcher: a rotated certificate changes its resource's revision.
  std::vector<std::filesystem::path> referenced_dirs() const;

 private:
  // stat() of a file: identity, size and modification time.
  struct StatSig {
    dev_t dev = 0;
    ino_t ino = 0;
    off_t size = -1;
    int64_t mtime_ns = -1;
    bool operator==(const StatSig&) const = default;
  };
  // A file a resource refers to, and the hash of its content when last read.
  struct Ref {
    std::filesystem::path path;
    StatSig sig;
    uint64_t content_hash = 0;
  };
  struct Doc {
    std::string resource_key;
    std::shared_ptr<const api::Resource> resource;
    int index = 0;
    std::string content_revision;  // revision_of(resource)
    std::vector<Ref> refs;
    // Hash of the document's text (its lines up to the next document): a re-read file hands the
    // same Resource object on for a document whose text and position did not change, so that
    // the store and the translator see it unchanged (identity is what they compare).
    uint64_t text_hash = 0;
  };
  struct FileState {
    uint64_t content_hash = 0;
    bool read = false;  // content_hash is set
    // stat() of the last read: a file whose identity, size and mtime are unchanged is not re-read
    // (except on a full resync).
    StatSig sig;
    std::vector<Doc> docs;  // of the last successful parse
  };

  static StatSig stat_of(const std::filesystem::path& path);
  // The files (relative names, from the last poll) that define `resource_key`.
  std::vector<std::string> files_defining(const std::string& resource_key) const;
  // Decodes `content` of `name` into `delta` against the file's previous state. Files that the
  // resources refer to are resolved against `base` (not followed when it is empty).
  static void add_file(const std::string& name, std::string_view content, FileState* state,
                       Delta* delta, const std::filesystem::path& base);
  // Re-reads `name` (at `path`) when its stat changed or `full`; adds what changed to `delta`.
  void refresh_file(const std::string& name, const std::filesystem::path& path, bool full,
                    Delta* delta, std::set<std::string>* just_read);
  // The file `name` is gone: its resources are removed.
  void remove_file(const std::string& name, Delta* delta);
  // A poll that looks only at the noted paths; false when it must list everything instead.
  bool poll_noted(Delta* delta);
  // Re-reads the referenced files whose stat changed (all of them when `full`; only those in
  // `dirs` when given); upserts the resources whose referenced content changed.
  void check_refs(bool full, const std::set<std::string>& just_read, Delta* delta,
                  const std::set<std::filesystem::path>* dirs = nullptr);

  std::filesystem::path dir_;
  std::filesystem::path base_;  // the directory the listed names are relative to (last poll)
  std::map<std::string, FileState> files_;  // by path relative to dir_
  // The files with a document that names other files (certificates): what check_refs() and
  // referenced_dirs() look at instead of every file. May name files since removed (skipped).
  std::set<std::string> with_refs_;
  bool listed_ = false;                    // a complete listing was done once
  bool relist_ = false;                    // the next poll lists everything
  std::set<std::filesystem::path> noted_;  // changed paths (lexically normal) since the last poll
};

}  // namespace portico::control
