#include "control/sources/file_source.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <set>
#include <unordered_map>

#include "api/decode.h"
#include "api/fields.h"
#include "common/hash.h"
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

// The files a resource refers to by path (TLS material), as written.
std::vector<std::string> referenced_files(const api::Resource& r) {
  std::vector<std::string> out;
  auto add = [&](const api::SecretMaterial& m) {
    if (!m.file.empty()) out.push_back(m.file);
  };
  auto add_files = [&](const std::optional<api::SslFiles>& f) {
    if (!f) return;
    add(f->tls_cert);
    add(f->tls_key);
    add(f->root_ca);
    add(f->ocsp_staple);
  };
  switch (r.kind) {
    case api::Kind::kSecret:
      if (const auto& tls = r.secret().tls) {
        add(tls->cert_chain);
        add(tls->private_key);
        add(tls->root_ca);
        add(tls->ocsp_staple);
      }
      break;
    case api::Kind::kGateway:
      if (const auto& tls = r.gateway().tls) add_files(tls->ssl_files);
      break;
    case api::Kind::kVirtualService:
      if (const auto& tls = r.virtual_service().tls) add_files(tls->ssl_files);
      break;
    case api::Kind::kUpstream:
      if (const auto& tls = r.upstream().tls) add_files(tls->ssl_files);
      break;
    case api::Kind::kRouteTable:
    case api::Kind::kUpstreamGroup:
    case api::Kind::kSettings:
      break;  // name no files
  }
  return out;
}

constexpr size_t kMaxReferencedBytes = 1024 * 1024;

// The content hash of a referenced file; a file that cannot be read hashes to 0 (the translator
// reports why).
uint64_t referenced_hash(const std::filesystem::path& path) {
  std::string error;
  auto content = read_config_file(path, kMaxReferencedBytes, &error);
  return content ? common::content_hash(*content) : 0;
}

std::string with_refs(const std::string& revision, const std::vector<uint64_t>& hashes) {
  if (hashes.empty()) return revision;
  uint64_t h = 14695981039346656037ull;
  for (uint64_t x : hashes) {
    h ^= x;
    h *= 1099511628211ull;
  }
  char buf[20];
  std::snprintf(buf, sizeof buf, "+%016llx", static_cast<unsigned long long>(h));
  return revision + buf;
}

api::Diagnostic keeping(const std::string& name, size_t count) {
  return file_diagnostic(name, 0, 0, "",
                         "keeping the " + std::to_string(count) +
                             " resource(s) of this file's last good version in force",
                         api::Diagnostic::Severity::kWarning);
}

// Writes `text` at `path` atomically: a hidden temporary file beside it (the watcher and the
// listing skip hidden files), flushed to disk, renamed into place. An error message, or "".
std::string write_atomically(const std::filesystem::path& path, std::string_view text) {
  const std::filesystem::path tmp =
      path.parent_path() / ("." + path.filename().string() + ".tmp" + std::to_string(::getpid()));
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return "cannot create " + tmp.string() + ": " + std::strerror(errno);
  size_t done = 0;
  while (done < text.size()) {
    ssize_t n = ::write(fd, text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      std::string error = "cannot write " + tmp.string() + ": " + std::strerror(errno);
      ::close(fd);
      ::unlink(tmp.c_str());
      return error;
    }
    done += static_cast<size_t>(n);
  }
  if (::fsync(fd) != 0 || ::close(fd) != 0) {
    std::string error = "cannot write " + tmp.string() + ": " + std::strerror(errno);
    ::unlink(tmp.c_str());
    return error;
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    std::string error = "cannot rename into " + path.string() + ": " + std::strerror(errno);
    ::unlink(tmp.c_str());
    return error;
  }
  return "";
}

bool valid_kind(std::string_view kind) {
  for (auto k :
       {api::Kind::kGateway, api::Kind::kVirtualService, api::Kind::kUpstream, api::Kind::kSecret,
        api::Kind::kRouteTable, api::Kind::kUpstreamGroup, api::Kind::kSettings}) {
    if (kind == api::to_string(k)) return true;
  }
  return false;
}

}  // namespace

FileSource::FileSource(std::filesystem::path dir) : dir_(std::move(dir)) {}

FileSource::StatSig FileSource::stat_of(const std::filesystem::path& path) {
  FileSource::StatSig sig;
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return sig;
  sig.dev = st.st_dev;
  sig.ino = st.st_ino;
  sig.size = st.st_size;
  sig.mtime_ns = static_cast<int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec;
  return sig;
}

void FileSource::add_file(const std::string& name, std::string_view content, FileState* state,
                          Delta* delta, const std::filesystem::path& base) {
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
  // Each document's text: from its first line to the next document's (or the end).
  std::vector<size_t> line_starts = {0};
  for (size_t i = 0; i < content.size(); ++i)
    if (content[i] == '\n') line_starts.push_back(i + 1);
  auto line_offset = [&](int line) {
    return line >= 1 && static_cast<size_t>(line) <= line_starts.size() ? line_starts[line - 1]
                                                                        : content.size();
  };
  std::unordered_map<std::string, const Doc*> before;
  for (const auto& d : state->docs)
    before.emplace(d.resource_key, &d);
  for (size_t n = 0; n < decoded.resources.size(); ++n) {
    auto& r = decoded.resources[n];
    const size_t from = line_offset(r.loc.line);
    const size_t to = n + 1 < decoded.resources.size()
                          ? line_offset(decoded.resources[n + 1].loc.line)
                          : content.size();
    const uint64_t text_hash =
        common::content_hash(content.substr(from, to > from ? to - from : 0));
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
    Doc doc;
    doc.resource_key = key;
    doc.index = index++;
    doc.text_hash = text_hash;
    auto prior = before.find(key);
    if (prior != before.end() && prior->second->text_hash == text_hash &&
        prior->second->index == doc.index && prior->second->resource &&
        prior->second->refs.empty() &&  // no file named by it that may have changed
        prior->second->resource->loc.line == r.loc.line &&
        prior->second->resource->loc.column == r.loc.column) {
      doc.resource = prior->second->resource;  // the same text: the same object
      doc.content_revision = prior->second->content_revision;
    } else {
      doc.resource = std::make_shared<const api::Resource>(r);
      doc.content_revision = revision_of(*doc.resource);
    }
    std::vector<uint64_t> hashes;
    if (!base.empty()) {
      for (const auto& file : referenced_files(r)) {
        std::filesystem::path p = file;
        if (p.is_relative()) p = base / p;
        Ref ref{p, stat_of(p), referenced_hash(p)};
        hashes.push_back(ref.content_hash);
        doc.refs.push_back(std::move(ref));
      }
    }
    Origin origin{kSource, name, doc.index, with_refs(doc.content_revision, hashes)};
    delta->upserts.push_back(Upsert{std::move(origin), doc.resource});
    docs.push_back(std::move(doc));
  }
  for (const auto& old : state->docs) {
    if (!first.count(old.resource_key)) {
      delta->removals.push_back(Removal{kSource, name, old.resource_key});
    }
  }
  state->docs = std::move(docs);
  delta->origin_errors[name] = std::move(errors);  // empty clears the previous ones
}

void FileSource::note_changed(const std::filesystem::path& path) {
  noted_.insert(path.lexically_normal());
}

void FileSource::refresh_file(const std::string& name, const std::filesystem::path& path, bool full,
                              Delta* delta, std::set<std::string>* just_read) {
  FileState& state = files_[name];
  const StatSig sig = stat_of(path);
  if (state.read && !full && sig.size >= 0 && sig == state.sig) {
    return;  // unchanged since the last read
  }
  std::string error;
  auto content = read_config_file(path, api::kMaxFileBytes, &error);
  if (!content) {
    std::vector<api::Diagnostic> errors{file_diagnostic(name, 0, 0, "", error)};
    if (!state.docs.empty()) errors.push_back(keeping(name, state.docs.size()));
    delta->origin_errors[name] = std::move(errors);
    state.read = false;
    return;
  }
  state.sig = sig;
  uint64_t h = common::content_hash(*content);
  if (state.read && state.content_hash == h) return;  // same bytes: same documents
  state.read = true;
  state.content_hash = h;
  add_file(name, *content, &state, delta, base_);
  for (const auto& d : state.docs) {
    if (!d.refs.empty()) {
      with_refs_.insert(name);  // (left in place when they go: check_refs finds none)
      break;
    }
  }
  just_read->insert(name);
}

void FileSource::remove_file(const std::string& name, Delta* delta) {
  auto it = files_.find(name);
  if (it == files_.end()) return;
  for (const auto& d : it->second.docs)
    delta->removals.push_back(Removal{kSource, it->first, d.resource_key});
  delta->origin_errors[it->first] = {};
  files_.erase(it);
}

bool FileSource::poll_noted(Delta* delta) {
  namespace fs = std::filesystem;
  fs::path base = base_.lexically_normal();
  if (!base.has_filename()) base = base.parent_path();  // "dir/": compared without the slash
  // The names of the directory's files that changed, in path order (as a listing gives them),
  // and the directories whose referenced files may have changed.
  std::set<std::string> names;
  std::set<fs::path> ref_dirs;
  for (const auto& path : noted_) {
    ref_dirs.insert(path.parent_path());
    fs::path rel = path.lexically_relative(base);
    if (rel.empty() || *rel.begin() == "..") continue;  // outside: a referenced file's directory
    if (rel == ".") return false;                       // the directory itself
    bool hidden = false;
    for (const auto& part : rel) {
      std::string s = part.string();
      if (s == "..data") return false;  // a Kubernetes mount's swap: its files all changed
      if (!s.empty() && s[0] == '.') hidden = true;
    }
    if (hidden) continue;  // not listed (editors' files; a mount's timestamped directories)
    std::error_code ec;
    const std::string name = rel.generic_string();
    // `dir_` names one file: nothing else beside it is configuration.
    if (base_ != dir_ && name != dir_.filename().generic_string()) continue;
    if (fs::is_directory(path, ec)) return false;  // a new directory (or a link to one)
    // A path that held files is a directory that went away.
    auto below = files_.lower_bound(name + "/");
    if (below != files_.end() && below->first.compare(0, name.size() + 1, name + "/") == 0)
      return false;
    names.insert(name);
  }
  std::set<std::string> just_read;
  for (const auto& name : names) {
    const fs::path path = base_ / name;
    std::error_code ec;
    const std::string ext = path.extension().string();
    const bool config = ext == ".yaml" || ext == ".yml" || ext == ".json";
    if (!config) continue;  // maybe a referenced file: checked below
    if (fs::is_regular_file(path, ec)) {
      refresh_file(name, path, false, delta, &just_read);
    } else {
      remove_file(name, delta);  // removed, renamed away, or a link that points nowhere now
    }
  }
  check_refs(false, just_read, delta, &ref_dirs);
  return true;
}

Delta FileSource::poll(bool full) {
  Delta delta;
  delta.source = kSource;
  if (!full && listed_ && !relist_ && !noted_.empty()) {
    const bool done = poll_noted(&delta);
    noted_.clear();
    if (done) return delta;
    delta = Delta{};  // nothing was changed: a complete listing below
    delta.source = kSource;
  }
  noted_.clear();
  relist_ = false;
  const std::string dir_label = dir_.string();
  ConfigFileList list = list_config_files(dir_);
  if (!list.base.empty()) base_ = list.base;
  if (!list.error.empty()) {
    // Keep everything: a directory that cannot be listed is not a directory without files.
    delta.origin_errors[dir_label] = {file_diagnostic(dir_label, 0, 0, "", list.error)};
  } else {
    listed_ = true;
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
  std::set<std::string> just_read;
  for (const auto& name : list.files)
    refresh_file(name, list.base / name, full, &delta, &just_read);
  check_refs(full, just_read, &delta);
  return delta;
}

void FileSource::check_refs(bool full, const std::set<std::string>& just_read, Delta* delta,
                            const std::set<std::filesystem::path>* dirs) {
  for (auto named = with_refs_.begin(); named != with_refs_.end();) {
    auto found = files_.find(*named);
    if (found == files_.end()) {
      named = with_refs_.erase(named);  // the file went away
      continue;
    }
    const std::string& name = *named++;
    FileState& state = found->second;
    if (just_read.count(name)) continue;
    for (auto& doc : state.docs) {
      if (doc.refs.empty()) continue;
      bool changed = false;
      std::vector<uint64_t> hashes;
      for (auto& ref : doc.refs) {
        if (dirs != nullptr && !dirs->count(ref.path.parent_path().lexically_normal())) {
          hashes.push_back(ref.content_hash);
          continue;  // no event in its directory
        }
        StatSig sig = stat_of(ref.path);
        if (full || !(sig == ref.sig)) {
          ref.sig = sig;
          uint64_t h = referenced_hash(ref.path);
          if (h != ref.content_hash) {
            ref.content_hash = h;
            changed = true;
          }
        }
        hashes.push_back(ref.content_hash);
      }
      if (!changed) continue;
      // A new object: what the resource stands for changed with the file it names, and the
      // translator tells changes apart by identity.
      doc.resource = std::make_shared<const api::Resource>(*doc.resource);
      Origin origin{kSource, name, doc.index, with_refs(doc.content_revision, hashes)};
      delta->upserts.push_back(Upsert{std::move(origin), doc.resource});
    }
  }
}

std::vector<std::string> FileSource::files_defining(const std::string& resource_key) const {
  std::vector<std::string> out;
  for (const auto& [name, state] : files_) {
    for (const auto& doc : state.docs) {
      if (doc.resource_key == resource_key) {
        out.push_back(name);
        break;
      }
    }
  }
  return out;
}

WriteResult FileSource::write(const WriteOp& op) {
  namespace fs = std::filesystem;
  using Outcome = WriteResult::Outcome;
  const std::string what = op.kind + " " + op.ns + "/" + op.name;
  std::error_code ec;
  if (!fs::is_directory(dir_, ec)) {
    return {Outcome::kUnsupported, "the configuration is the file " + dir_.string() +
                                       ", not a directory: it takes no writes"};
  }
  if (!valid_kind(op.kind)) return {Outcome::kFailed, "unknown kind \"" + op.kind + "\""};
  for (const auto* part : {&op.ns, &op.name}) {
    std::string why = api::check_name(*part);
    if (!why.empty()) return {Outcome::kFailed, what + ": " + why};
  }
  // applied/<namespace>/<Kind>.<name>.yaml: names may hold dots, kinds do not.
  const std::string applied_name = "applied/" + op.ns + "/" + op.kind + "." + op.name + ".yaml";
  const fs::path applied = dir_ / applied_name;
  const std::string key = op.kind + "/" + op.ns + "/" + op.name;
  std::vector<std::string> elsewhere;
  for (auto& name : files_defining(key)) {
    if (name != applied_name) elsewhere.push_back(std::move(name));
  }
  const bool applied_exists = fs::exists(applied, ec);

  if (op.action == WriteOp::Action::kApply) {
    if (!elsewhere.empty()) {
      return {Outcome::kConflict, what + " is defined in " + (dir_ / elsewhere[0]).string() +
                                      ": edit that file (apply never edits an operator's file)"};
    }
    std::string text = op.document;
    if (text.empty() || text.back() != '\n') text.push_back('\n');
    Outcome outcome = Outcome::kCreated;
    if (applied_exists) {
      std::string error;
      auto before = read_config_file(applied, api::kMaxFileBytes, &error);
      if (before && *before == text) return {Outcome::kUnchanged, applied.string()};
      outcome = Outcome::kConfigured;
    }
    fs::create_directories(applied.parent_path(), ec);
    if (ec) {
      return {Outcome::kFailed,
              "cannot create " + applied.parent_path().string() + ": " + ec.message()};
    }
    std::string error = write_atomically(applied, text);
    if (!error.empty()) return {Outcome::kFailed, error};
    return {outcome, applied.string()};
  }

  // Delete: the applied file, or a file that holds this resource alone (read again now: the
  // last poll may be behind).
  if (applied_exists) {
    if (!fs::remove(applied, ec) || ec) {
      return {Outcome::kFailed, "cannot remove " + applied.string() + ": " + ec.message()};
    }
    return {Outcome::kDeleted, applied.string()};
  }
  if (elsewhere.empty()) return {Outcome::kNotFound, what + " is not defined in " + dir_.string()};
  const fs::path file = base_ / elsewhere[0];
  std::string error;
  auto content = read_config_file(file, api::kMaxFileBytes, &error);
  if (!content) return {Outcome::kFailed, file.string() + ": " + error};
  api::DecodedFile decoded = api::decode_file(elsewhere[0], *content);
  if (!decoded.parsed || !decoded.errors.empty() || decoded.resources.size() != 1 ||
      decoded.resources[0].key() != key) {
    return {Outcome::kConflict,
            what + " is defined in " + file.string() + " with other documents: edit that file"};
  }
  if (!fs::remove(file, ec) || ec) {
    return {Outcome::kFailed, "cannot remove " + file.string() + ": " + ec.message()};
  }
  return {Outcome::kDeleted, file.string()};
}

std::vector<std::filesystem::path> FileSource::referenced_dirs() const {
  std::set<std::filesystem::path> dirs;
  for (const auto& name : with_refs_) {
    auto found = files_.find(name);
    if (found == files_.end()) continue;
    for (const auto& doc : found->second.docs) {
      for (const auto& ref : doc.refs)
        dirs.insert(ref.path.parent_path());
    }
  }
  return {dirs.begin(), dirs.end()};
}

Delta FileSource::from_memory(const std::vector<std::pair<std::string, std::string>>& files) {
  Delta delta;
  delta.source = kSource;
  std::map<std::string, FileState> states;
  for (const auto& [name, content] : files)
    add_file(name, content, &states[name], &delta, {});
  return delta;
}

}  // namespace portico::control
