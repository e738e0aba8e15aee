#include "control/sources/file_source.h"

#include <sys/stat.h>

#include <set>

#include "api/decode.h"
#include "control/sources/config_dir.h"

namespace portico::control {

namespace {

constexpr const char* kSource = "file";

api::Diagnostic file_diagnostic(
    std::string file, int line, int column, std::string path, std::string message,
    api::Diagnostic::Severity severity = api::Diagnostic::Severity::kError) {
  api::Diagnostic d;
  d.severity = severity;
  d.file = std::move(file);
  d.line = line;
  d.column = column;
  d.path = std::move(path);
  d.message = std::move(message);
  return d;
}

uint64_t content_hash(std::string_view s) {
  uint64_t h = 14695981039346656037ull;
  for (unsigned char c : s) {
    h ^= c;
    h *= 1099511628211ull;
  }
  return h ^ s.size();
}

api::Diagnostic keeping(const std::string& name, size_t count) {
  return file_diagnostic(name, 0, 0, "",
                         "keeping the " + std::to_string(count) +
                             " resource(s) of this file's last good version in force",
                         api::Diagnostic::Severity::kWarning);
}

}  // namespace

FileSource::FileSource(std::filesystem::path dir) : dir_(std::move(dir)) {}

void FileSource::add_file(const std::string& name, std::string_view content, FileState* state,
                          Delta* delta) {
  api::DecodedFile decoded = api::decode_file(name, content);
  if (!decoded.parsed) {
    auto errors = std::move(decoded.errors);
    if (!state->docs.empty()) errors.push_back(keeping(name, state->docs.size()));
    delta->origin_errors[name] = std::move(errors);
    return;
  }
  std::vector<api::Diagnostic> errors = std::move(decoded.errors);
  std::map<std::string, const api::Resource*> first;
  std::vector<Doc> docs;
  int index = 0;
  for (auto& r : decoded.resources) {
    std::string key = r.key();
    auto [it, inserted] = first.emplace(key, &r);
    if (!inserted) {
      const api::Resource& f = *it->second;
      errors.push_back(file_diagnostic(
          name, r.loc.line, r.loc.column, "metadata.name",
          std::string(api::to_string(r.kind)) + " " + r.meta.ns + "/" + r.meta.name +
              " is already defined at " + f.file + ":" + std::to_string(f.loc.line) + ":" +
              std::to_string(f.loc.column) + "; this definition is rejected"));
      continue;
    }
    docs.push_back(Doc{key});
    Origin origin{kSource, name, index++, revision_of(r)};
    delta->upserts.push_back(Upsert{std::move(origin), std::make_shared<const api::Resource>(r)});
  }
  for (const auto& old : state->docs) {
    if (!first.count(old.resource_key)) {
      delta->removals.push_back(Removal{kSource, name, old.resource_key});
    }
  }
  state->docs = std::move(docs);
  delta->origin_errors[name] = std::move(errors);  // empty clears the previous ones
}

Delta FileSource::poll(bool full) {
  Delta delta;
  delta.source = kSource;
  const std::string dir_label = dir_.string();
  ConfigFileList list = list_config_files(dir_);
  if (!list.base.empty()) base_ = list.base;
  if (!list.error.empty()) {
    // Keep everything: a directory that cannot be listed is not a directory without files.
    delta.origin_errors[dir_label] = {file_diagnostic(dir_label, 0, 0, "", list.error)};
  } else {
    delta.origin_errors[dir_label] = {};
    std::set<std::string> present(list.files.begin(), list.files.end());
    for (auto it = files_.begin(); it != files_.end();) {
      if (present.count(it->first)) {
        ++it;
        continue;
      }
      for (const auto& d : it->second.docs)
        delta.removals.push_back(Removal{kSource, it->first, d.resource_key});
      delta.origin_errors[it->first] = {};
      it = files_.erase(it);
    }
  }
  for (const auto& name : list.files) {
    const std::filesystem::path path = list.base / name;
    FileState& state = files_[name];
    struct stat st {};
    if (::stat(path.c_str(), &st) == 0 && state.read && !full) {
      int64_t mtime = static_cast<int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec;
      if (st.st_dev == state.dev && st.st_ino == state.ino && st.st_size == state.size &&
          mtime == state.mtime_ns) {
        continue;  // unchanged since the last read
      }
    }
    std::string error;
    auto content = read_config_file(path, api::kMaxFileBytes, &error);
    if (!content) {
      std::vector<api::Diagnostic> errors{file_diagnostic(name, 0, 0, "", error)};
      if (!state.docs.empty()) errors.push_back(keeping(name, state.docs.size()));
      delta.origin_errors[name] = std::move(errors);
      state.read = false;
      continue;
    }
    state.dev = st.st_dev;
    state.ino = st.st_ino;
    state.size = st.st_size;
    state.mtime_ns = static_cast<int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec;
    uint64_t h = content_hash(*content);
    if (state.read && state.content_hash == h) continue;  // same bytes: same documents
    state.read = true;
    state.content_hash = h;
    add_file(name, *content, &state, &delta);
  }
  return delta;
}

Delta FileSource::from_memory(const std::vector<std::pair<std::string, std::string>>& files) {
  Delta delta;
  delta.source = kSource;
  std::map<std::string, FileState> states;
  for (const auto& [name, content] : files)
    add_file(name, content, &states[name], &delta);
  return delta;
}

}  // namespace portico::control
