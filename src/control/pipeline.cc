#include "control/pipeline.h"

#include <algorithm>
#include <chrono>
#include <exception>
#include <set>

#include "control/sources/config_dir.h"
#include "control/translate/translator.h"

namespace portico::control {

namespace {

Diagnostic file_diagnostic(std::string file, int line, int column, std::string path,
                           std::string message,
                           Diagnostic::Severity severity = Diagnostic::Severity::kError) {
  Diagnostic d;
  d.severity = severity;
  d.file = std::move(file);
  d.line = line;
  d.column = column;
  d.path = std::move(path);
  d.message = std::move(message);
  return d;
}

int64_t now_unix_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string where(const api::Resource& r) {
  return r.file + ":" + std::to_string(r.loc.line) + ":" + std::to_string(r.loc.column);
}

// Unique resources in file order (first definition wins), duplicates reported, then translation.
BuildResult assemble(const std::vector<const api::DecodedFile*>& files,
                     std::vector<Diagnostic> file_errors, uint64_t version,
                     const TranslateOptions& options = {}) {
  std::vector<api::Resource> unique;
  std::map<std::string, size_t> index;
  for (const auto* f : files) {
    for (const auto& r : f->resources) {
      auto [it, inserted] = index.emplace(r.key(), unique.size());
      if (inserted) {
        unique.push_back(r);
        continue;
      }
      api::Resource& first = unique[it->second];
      std::string kind_name =
          std::string(api::to_string(r.kind)) + " " + r.meta.ns + "/" + r.meta.name;
      file_errors.push_back(file_diagnostic(
          r.file, r.loc.line, r.loc.column, "metadata.name",
          kind_name + " is already defined at " + where(first) + "; this definition is ignored"));
      first.diagnostics.push_back(file_diagnostic(
          first.file, first.loc.line, first.loc.column, "metadata.name",
          kind_name + " is defined again at " + where(r) + " (ignored; this one is in force)",
          Diagnostic::Severity::kWarning));
    }
  }
  BuildResult out;
  try {
    Translation t = translate(unique, version, now_unix_ms(), options);
    out.config = std::move(t.config);
    out.resources = std::move(t.statuses);
  } catch (const std::exception& e) {
    // A bug, never an input problem; keep the API's no-throw promise.
    file_errors.push_back(
        file_diagnostic("", 0, 0, "", std::string("internal error: ") + e.what()));
  }
  if (!out.config) {
    auto empty = std::make_shared<snapshot::ProxyConfig>();
    empty->version = version;
    empty->created_unix_ms = now_unix_ms();
    out.config = std::move(empty);
  }
  out.file_errors = std::move(file_errors);
  return out;
}

}  // namespace

bool BuildResult::ok() const {
  if (!file_errors.empty()) return false;
  return std::none_of(resources.begin(), resources.end(),
                      [](const ResourceStatus& r) { return r.state == State::kRejected; });
}

FileConfigSource::FileConfigSource(std::filesystem::path dir) : dir_(std::move(dir)) {}

BuildResult FileConfigSource::build(uint64_t version) {
  std::vector<Diagnostic> file_errors;
  std::vector<const api::DecodedFile*> decoded;
  TranslateOptions options;  // files named by Secrets and sslFiles are relative to the directory
  try {
    ConfigFileList list = list_config_files(dir_);
    options.base_dir = list.base;
    if (!list.error.empty()) {
      file_errors.push_back(file_diagnostic(dir_.string(), 0, 0, "", list.error));
    }
    bool listing_complete = list.error.empty();
    std::set<std::string> present(list.files.begin(), list.files.end());
    if (listing_complete) {
      // Deleted files take their resources with them.
      for (auto it = files_.begin(); it != files_.end();) {
        it = present.count(it->first) ? std::next(it) : files_.erase(it);
      }
    }
    for (const auto& name : list.files) {
      std::string error;
      auto content = read_config_file(list.base / name, api::kMaxFileBytes, &error);
      auto cached = files_.find(name);
      bool parsed = false;
      std::vector<Diagnostic> errors;
      if (!content) {
        errors.push_back(file_diagnostic(name, 0, 0, "", error));
      } else if (cached != files_.end() && cached->second.content == *content) {
        parsed = true;  // unchanged since the last successful parse
      } else {
        api::DecodedFile f = api::decode_file(name, *content);
        if (f.parsed) {
          parsed = true;
          files_[name] = FileState{std::move(*content), std::move(f)};
          cached = files_.find(name);
        } else {
          errors = std::move(f.errors);
        }
      }
      if (parsed) {
        const auto& errs = cached->second.decoded.errors;
        file_errors.insert(file_errors.end(), errs.begin(), errs.end());
        continue;
      }
      file_errors.insert(file_errors.end(), errors.begin(), errors.end());
      if (cached != files_.end()) {
        file_errors.push_back(file_diagnostic(
            name, 0, 0, "",
            "keeping the " + std::to_string(cached->second.decoded.resources.size()) +
                " resource(s) of this file's last good version in force",
            Diagnostic::Severity::kWarning));
      }
    }
    // Files that still exist (or could not be listed) contribute their last good documents.
    for (const auto& [name, state] : files_)
      decoded.push_back(&state.decoded);
  } catch (const std::exception& e) {
    file_errors.push_back(file_diagnostic(dir_.string(), 0, 0, "",
                                          std::string("cannot load configuration: ") + e.what()));
  }

  BuildResult out = assemble(decoded, std::move(file_errors), version, options);

  std::map<std::string, Generation> next;
  for (auto& s : out.resources) {
    std::string key = s.kind + "/" + s.ns + "/" + s.name;
    auto it = generations_.find(key);
    Generation g;
    g.spec_json = s.spec_json;
    if (it == generations_.end()) {
      g.generation = 1;
    } else {
      g.generation = it->second.generation + (it->second.spec_json == s.spec_json ? 0 : 1);
    }
    s.generation = g.generation;
    next.emplace(std::move(key), std::move(g));
  }
  generations_ = std::move(next);
  return out;
}

BuildResult validate_directory(const std::filesystem::path& dir) {
  FileConfigSource source(dir);
  return source.build(0);
}

BuildResult build_from_files(const std::vector<SourceFile>& files, uint64_t version) {
  std::vector<api::DecodedFile> decoded;
  decoded.reserve(files.size());
  std::vector<Diagnostic> file_errors;
  for (const auto& f : files) {
    decoded.push_back(api::decode_file(f.name, f.content));
    const auto& errs = decoded.back().errors;
    file_errors.insert(file_errors.end(), errs.begin(), errs.end());
  }
  std::vector<const api::DecodedFile*> ptrs;
  for (const auto& d : decoded)
    ptrs.push_back(&d);
  BuildResult out = assemble(ptrs, std::move(file_errors), version);
  for (auto& s : out.resources)
    s.generation = 1;
  return out;
}

}  // namespace portico::control
