#include "control/sources/keyed_documents.h"

#include <utility>
#include <vector>

#include "api/decode.h"
#include "common/hash.h"

namespace portico::control {

namespace {

api::Diagnostic key_diagnostic(
    const std::string& key, std::string message,
    api::Diagnostic::Severity severity = api::Diagnostic::Severity::kError, std::string path = {}) {
  api::Diagnostic d;
  d.severity = severity;
  d.file = key;
  d.path = std::move(path);
  d.message = std::move(message);
  return d;
}

api::Diagnostic keeping(const std::string& key, const api::Resource& r) {
  return key_diagnostic(key,
                        "keeping this key's last good version of " +
                            std::string(api::to_string(r.kind)) + " " + r.meta.ns + "/" +
                            r.meta.name + " in force",
                        api::Diagnostic::Severity::kWarning);
}

bool is_folder(const std::string& key, std::string_view text) {
  return !key.empty() && key.back() == '/' && text.empty();
}

}  // namespace

KeyedDocuments::KeyedDocuments(std::string source, std::string root)
    : source_(std::move(source)), root_(std::move(root)) {
  while (!root_.empty() && root_.back() == '/')
    root_.pop_back();
}

std::optional<KeyedDocuments::KeyParts> KeyedDocuments::parse_key(std::string_view key,
                                                                  std::string* why) const {
  const std::string layout =
      (root_.empty() ? std::string() : root_ + "/") + "<group>/<version>/<Kind>/<namespace>/<name>";
  std::string_view rest = key;
  if (!root_.empty()) {
    if (rest.size() <= root_.size() || rest.compare(0, root_.size(), root_) != 0 ||
        rest[root_.size()] != '/') {
      *why = "key is not below \"" + root_ + "/\"";
      return std::nullopt;
    }
    rest.remove_prefix(root_.size() + 1);
  }
  std::vector<std::string> parts;
  size_t from = 0;
  while (true) {
    size_t slash = rest.find('/', from);
    parts.emplace_back(
        rest.substr(from, slash == std::string_view::npos ? rest.npos : slash - from));
    if (slash == std::string_view::npos) break;
    from = slash + 1;
  }
  bool empty_part = false;
  for (const auto& p : parts)
    empty_part = empty_part || p.empty();
  if (parts.size() != 5 || empty_part) {
    *why = "key is not in the layout " + layout;
    return std::nullopt;
  }
  return KeyParts{parts[0], parts[1], parts[2], parts[3], parts[4]};
}

std::string KeyedDocuments::key_for(std::string_view group_version, std::string_view kind,
                                    std::string_view ns, std::string_view name) const {
  std::string out = root_.empty() ? std::string() : root_ + "/";
  out.append(group_version)
      .append("/")
      .append(kind)
      .append("/")
      .append(ns)
      .append("/")
      .append(name);
  return out;
}

std::optional<std::string> KeyedDocuments::find_key(std::string_view kind, std::string_view ns,
                                                    std::string_view name) const {
  std::string why;
  for (const auto& [key, value] : view_) {
    auto parts = parse_key(key, &why);
    if (parts && parts->kind == kind && parts->ns == ns && parts->name == name) return key;
  }
  return std::nullopt;
}

std::string KeyedDocuments::new_key(std::string_view api_version, std::string_view kind,
                                    std::string_view ns, std::string_view name) const {
  const bool grouped = api_version.find('/') != std::string_view::npos &&
                       api_version.front() != '/' && api_version.back() != '/' &&
                       api_version.find('/') == api_version.rfind('/');
  return key_for(grouped ? api_version : std::string_view(api::kApiVersion), kind, ns, name);
}

void KeyedDocuments::put(const std::string& key, std::string text, std::string revision) {
  if (is_folder(key, text)) return;
  view_[key] = Value{std::move(text), std::move(revision)};
  mark(key);
}

void KeyedDocuments::erase(const std::string& key) {
  if (view_.erase(key) > 0 || delivered_.count(key)) mark(key);
}

void KeyedDocuments::replace_all(std::map<std::string, Value> view) {
  for (auto it = view.begin(); it != view.end();) {
    if (is_folder(it->first, it->second.text)) {
      it = view.erase(it);
    } else {
      ++it;
    }
  }
  // Gone: known before, absent now.
  for (const auto& [key, value] : view_) {
    if (!view.count(key)) mark(key);
  }
  for (const auto& [key, d] : delivered_) {
    if (!view.count(key)) mark(key);
  }
  // New or changed text (a new revision with the same text decodes to the same thing).
  for (const auto& [key, value] : view) {
    auto old = view_.find(key);
    if (old == view_.end() || old->second.text != value.text) mark(key);
  }
  view_ = std::move(view);
}

std::string KeyedDocuments::revision(const std::string& key) const {
  auto it = view_.find(key);
  return it == view_.end() ? std::string() : it->second.revision;
}

size_t KeyedDocuments::delivered() const {
  size_t n = 0;
  for (const auto& [key, d] : delivered_)
    n += d.resource != nullptr;
  return n;
}

void KeyedDocuments::decode(const std::string& key, const std::string& text, Delivered* d,
                            Delta* delta) const {
  d->text_hash = common::content_hash(text);
  std::vector<api::Diagnostic> errors;
  auto fail = [&](std::vector<api::Diagnostic> errs) {
    if (d->resource) errs.push_back(keeping(key, *d->resource));
    delta->origin_errors[key] = std::move(errs);
  };
  std::string why;
  auto parts = parse_key(key, &why);
  if (!parts) {
    fail({key_diagnostic(key, why)});
    return;
  }
  api::DecodedFile decoded = api::decode_file(key, text);
  if (!decoded.parsed) {
    fail(std::move(decoded.errors));
    return;
  }
  if (decoded.resources.size() != 1) {
    errors = std::move(decoded.errors);
    errors.push_back(key_diagnostic(key, decoded.resources.empty()
                                             ? "holds no resource; a key holds exactly one document"
                                             : "holds " + std::to_string(decoded.resources.size()) +
                                                   " resources; a key holds exactly one document"));
    fail(std::move(errors));
    return;
  }
  api::Resource& r = decoded.resources.front();
  const std::string kind = api::to_string(r.kind);
  if (kind != parts->kind || r.meta.ns != parts->ns || r.meta.name != parts->name) {
    errors = std::move(decoded.errors);
    std::string path = kind != parts->kind      ? "kind"
                       : r.meta.ns != parts->ns ? "metadata.namespace"
                                                : "metadata.name";
    errors.push_back(key_diagnostic(key,
                                    "the document is " + kind + " " + r.meta.ns + "/" +
                                        r.meta.name + " but its key names " + parts->kind + " " +
                                        parts->ns + "/" + parts->name,
                                    api::Diagnostic::Severity::kError, std::move(path)));
    fail(std::move(errors));
    return;
  }
  auto resource = std::make_shared<const api::Resource>(std::move(r));
  Origin origin{source_, key, 0, revision_of(*resource)};
  delta->upserts.push_back(Upsert{std::move(origin), resource});
  d->resource_key = resource->key();
  d->resource = std::move(resource);
  delta->origin_errors[key] = std::move(decoded.errors);  // empty clears the previous ones
}

Delta KeyedDocuments::take_delta() {
  Delta delta;
  delta.source = source_;
  for (const auto& key : dirty_) {
    auto value = view_.find(key);
    auto known = delivered_.find(key);
    if (value == view_.end()) {
      if (known == delivered_.end()) continue;
      if (known->second.resource) {
        delta.removals.push_back(Removal{source_, key, known->second.resource_key});
      }
      delta.origin_errors[key] = {};
      delivered_.erase(known);
      continue;
    }
    if (known != delivered_.end() &&
        known->second.text_hash == common::content_hash(value->second.text)) {
      continue;  // the same text as last decoded (a rewrite, or a change and back)
    }
    Delivered& d = known != delivered_.end() ? known->second : delivered_[key];
    decode(key, value->second.text, &d, &delta);
  }
  dirty_.clear();
  return delta;
}

}  // namespace portico::control
