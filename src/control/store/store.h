// The resource store: every resource the sources know, keyed by kind/namespace/name, with where it
// came from, the newest version and the last version that was accepted. Fed by ConfigSources as
// deltas. Control-plane thread only (no locking); the resources it hands out are immutable and may
// be shared with any thread.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "api/diagnostic.h"
#include "api/resources.h"

namespace portico::control {

// Where one version of a resource came from.
struct Origin {
  std::string source;    // the ConfigSource's name, e.g. "file"
  std::string key;       // the source's key, e.g. the file path relative to the directory
  int index = 0;         // document index within the key (0-based)
  std::string revision;  // content revision (hash of kind, metadata and spec); equal = same content
  bool same_place(const Origin& o) const { return source == o.source && key == o.key; }
};

// The revision of a decoded resource: a hash of its kind, name, namespace, labels and spec. Two
// documents with the same revision translate identically.
std::string revision_of(const api::Resource& r);

// The observed generation of a resource: stable across restarts because it is derived from the
// resource itself (metadata.generation when given, else a hash of its spec, 32 bits, so that it
// stays readable), never from a counter.
int64_t generation_of(const api::Resource& r);

// One resource version added or replaced at an origin.
struct Upsert {
  Origin origin;
  std::shared_ptr<const api::Resource> resource;  // never null
};

// A resource that an origin no longer defines.
struct Removal {
  std::string source;
  std::string key;           // origin key
  std::string resource_key;  // "<Kind>/<namespace>/<name>"
};

// What a source saw change since its previous delta. Upserts are applied in order: at the first
// delta of a source, the order decides which origin owns a resource defined twice.
struct Delta {
  std::string source;
  std::vector<Upsert> upserts;
  std::vector<Removal> removals;
  // Problems that belong to an origin, not to one resource (syntax errors, unreadable files). An
  // entry replaces that origin's previous list; an empty list clears it.
  std::map<std::string, std::vector<api::Diagnostic>> origin_errors;
  bool empty() const { return upserts.empty() && removals.empty() && origin_errors.empty(); }
};

class Store {
 public:
  struct Candidate {
    Origin origin;
    std::shared_ptr<const api::Resource> resource;
    uint64_t arrival = 0;  // order in which origins first defined the resource
  };
  struct Entry {
    // candidates[0] is in force: the origin that defined the resource first and still does. The
    // others define it too and are rejected (a resource has one owner).
    std::vector<Candidate> candidates;
    // The last version that translation accepted (null before the first acceptance).
    std::shared_ptr<const api::Resource> last_good;
    std::string last_good_revision;
    int64_t last_good_generation = 0;
    // When the current revision of the owner was first seen (Unix ms).
    int64_t seen_unix_ms = 0;
    const api::Resource& current() const { return *candidates.front().resource; }
    const Origin& origin() const { return candidates.front().origin; }
  };
  struct Change {
    bool semantic = false;  // some resource in force changed content, appeared or disappeared
    bool cosmetic = false;  // only positions, diagnostics or origin errors changed
    std::vector<std::string> changed_keys;  // resources whose content in force changed
    bool any() const { return semantic || cosmetic; }
  };

  Change apply(const Delta& delta, int64_t now_unix_ms);

  // Records that `key`'s current version was accepted and is in force.
  void accept(const std::string& key);

  const std::map<std::string, Entry>& entries() const { return entries_; }
  const Entry* find(const std::string& key) const;
  // Origin errors by "<source>:<key>".
  const std::map<std::string, std::vector<api::Diagnostic>>& origin_errors() const {
    return origin_errors_;
  }

 private:
  std::map<std::string, Entry> entries_;  // by "<Kind>/<namespace>/<name>"
  std::map<std::string, std::vector<api::Diagnostic>> origin_errors_;
  uint64_t arrivals_ = 0;
};

}  // namespace portico::control
