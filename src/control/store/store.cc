#include "control/store/store.h"

#include <algorithm>
#include <cstdio>

namespace portico::control {

namespace {

uint64_t fnv1a(uint64_t h, std::string_view s) {
  for (unsigned char c : s) {
    h ^= c;
    h *= 1099511628211ull;
  }
  // A separator, so that ("ab","c") and ("a","bc") differ.
  h ^= 0xff;
  h *= 1099511628211ull;
  return h;
}

constexpr uint64_t kFnvBasis = 14695981039346656037ull;

// Same place in the text and the same diagnostics: nothing a status would show differently.
bool same_presentation(const api::Resource& a, const api::Resource& b) {
  if (a.file != b.file || a.loc.line != b.loc.line || a.loc.column != b.loc.column) return false;
  if (a.meta.generation != b.meta.generation) return false;
  if (a.diagnostics.size() != b.diagnostics.size()) return false;
  for (size_t i = 0; i < a.diagnostics.size(); ++i) {
    if (a.diagnostics[i].to_string() != b.diagnostics[i].to_string()) return false;
  }
  return true;
}

std::string origin_id(const std::string& source, const std::string& key) {
  return source + ":" + key;
}

bool same_diagnostics(const std::vector<api::Diagnostic>& a,
                      const std::vector<api::Diagnostic>& b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (a[i].to_string() != b[i].to_string()) return false;
  }
  return true;
}

}  // namespace

std::string revision_of(const api::Resource& r) {
  uint64_t h = kFnvBasis;
  h = fnv1a(h, api::to_string(r.kind));
  h = fnv1a(h, r.meta.ns);
  h = fnv1a(h, r.meta.name);
  for (const auto& [k, v] : r.meta.labels) {
    h = fnv1a(h, k);
    h = fnv1a(h, v);
  }
  h = fnv1a(h, r.spec_json);
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(h));
  return buf;
}

int64_t generation_of(const api::Resource& r) {
  if (r.meta.generation && *r.meta.generation > 0) return *r.meta.generation;
  uint64_t h = fnv1a(kFnvBasis, r.spec_json);
  uint64_t folded = (h ^ (h >> 32)) & 0xffffffffu;
  return folded == 0 ? 1 : static_cast<int64_t>(folded);
}

const Store::Entry* Store::find(const std::string& key) const {
  auto it = entries_.find(key);
  return it == entries_.end() ? nullptr : &it->second;
}

Store::Change Store::apply(const Delta& delta, int64_t now_unix_ms) {
  Change change;
  auto mark = [&](const std::string& key) {
    change.semantic = true;
    if (std::find(change.changed_keys.begin(), change.changed_keys.end(), key) ==
        change.changed_keys.end()) {
      change.changed_keys.push_back(key);
    }
  };

  for (const auto& removal : delta.removals) {
    auto it = entries_.find(removal.resource_key);
    if (it == entries_.end()) continue;
    auto& cands = it->second.candidates;
    for (size_t i = 0; i < cands.size(); ++i) {
      if (cands[i].origin.source != removal.source || cands[i].origin.key != removal.key) continue;
      bool owner = i == 0;
      std::string before = owner ? cands[0].origin.revision : std::string();
      cands.erase(cands.begin() + static_cast<std::ptrdiff_t>(i));
      if (cands.empty()) {
        entries_.erase(it);
        mark(removal.resource_key);
      } else if (owner) {
        // The next definition takes over.
        if (cands[0].origin.revision != before) {
          it->second.seen_unix_ms = now_unix_ms;
          mark(removal.resource_key);
        } else {
          change.cosmetic = true;
        }
      } else {
        change.cosmetic = true;  // a rejected duplicate went away
      }
      break;
    }
  }

  for (const auto& up : delta.upserts) {
    std::string key = up.resource->key();
    Entry& e = entries_[key];
    auto& cands = e.candidates;
    auto it = std::find_if(cands.begin(), cands.end(),
                           [&](const Candidate& c) { return c.origin.same_place(up.origin); });
    if (it == cands.end()) {
      cands.push_back(Candidate{up.origin, up.resource, ++arrivals_});
      if (cands.size() == 1) {
        e.seen_unix_ms = now_unix_ms;
        mark(key);
      } else {
        change.cosmetic = true;  // a duplicate: rejected, reported
      }
      continue;
    }
    bool owner = it == cands.begin();
    bool same_revision = it->origin.revision == up.origin.revision;
    bool same_look = same_revision && it->origin.index == up.origin.index &&
                     same_presentation(*it->resource, *up.resource);
    it->origin = up.origin;
    it->resource = up.resource;
    if (same_look) continue;
    if (owner && !same_revision) {
      e.seen_unix_ms = now_unix_ms;
      mark(key);
    } else {
      change.cosmetic = true;
    }
  }

  for (const auto& [key, errors] : delta.origin_errors) {
    std::string id = origin_id(delta.source, key);
    auto it = origin_errors_.find(id);
    if (errors.empty()) {
      if (it != origin_errors_.end()) {
        origin_errors_.erase(it);
        change.cosmetic = true;
      }
      continue;
    }
    if (it != origin_errors_.end() && same_diagnostics(it->second, errors)) continue;
    origin_errors_[id] = errors;
    change.cosmetic = true;
  }
  return change;
}

void Store::accept(const std::string& key) {
  auto it = entries_.find(key);
  if (it == entries_.end()) return;
  Entry& e = it->second;
  // Accepted already: nothing to record (generation_of hashes the whole spec).
  if (e.last_good == e.candidates.front().resource) return;
  e.last_good = e.candidates.front().resource;
  e.last_good_revision = e.candidates.front().origin.revision;
  e.last_good_generation = generation_of(*e.last_good);
}

}  // namespace portico::control
