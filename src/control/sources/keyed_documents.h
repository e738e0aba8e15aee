// KeyedDocuments: what every key/value store source (etcd, Consul KV) shares. It holds the store's
// view (key -> value text and store revision) and what was delivered from it, and turns changes of
// the view into Deltas: a new or changed key is decoded (one document per key), a vanished key's
// resource is removed, a value that does not decode or does not match its key is an origin error
// on that key while its last good resource stays in force. Not thread-safe: one thread at a time
// (a source whose watch runs on its own thread guards it with a mutex).
//
// Keys follow Gloo's layout below a root: `<root>/<group>/<version>/<Kind>/<namespace>/<name>`,
// e.g. `portico/gateway.portico.dev/v1/VirtualService/default/shop`. The group and version are
// free (Gloo's `gateway.solo.io/v1` keys read the same); the kind, namespace and name of the
// document must be those of its key.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>

#include "control/store/store.h"

namespace portico::control {

class KeyedDocuments {
 public:
  // One key's value in the store.
  struct Value {
    std::string text;
    std::string
        revision;  // the store's revision of the key (etcd mod_revision, Consul ModifyIndex)
  };

  // `source` names the origins ("etcd"); `root` is the prefix the keys live under, without a
  // trailing '/' ("portico", "gloo" or "a/b").
  KeyedDocuments(std::string source, std::string root);

  // The parts of a key in the layout; nullopt (and `why`) when `key` is not in it.
  struct KeyParts {
    std::string group, version, kind, ns, name;
  };
  std::optional<KeyParts> parse_key(std::string_view key, std::string* why) const;
  // The key a resource is stored at, with the group and version given.
  std::string key_for(std::string_view group_version, std::string_view kind, std::string_view ns,
                      std::string_view name) const;

  // The key of the view that holds kind/ns/name (whatever its group and version; the first in key
  // order), or nullopt: where `portico apply` writes over, and what `portico delete` removes.
  std::optional<std::string> find_key(std::string_view kind, std::string_view ns,
                                      std::string_view name) const;
  // The key a new resource is written at: its apiVersion's group and version
  // (gateway.portico.dev/v1 when the apiVersion names no group).
  std::string new_key(std::string_view api_version, std::string_view kind, std::string_view ns,
                      std::string_view name) const;

  // Incremental changes of the view (a watch's events). A key ending in '/' with an empty value
  // (a Consul "folder") is ignored.
  void put(const std::string& key, std::string text, std::string revision);
  void erase(const std::string& key);
  // The whole view at once (a range or a recursive read after a (re)connect): keys not in `view`
  // are gone. Only keys whose text changed are decoded again at the next take_delta().
  void replace_all(std::map<std::string, Value> view);

  // What changed since the previous take_delta(), as a Delta of `source` (empty when nothing
  // did). Upserts are in key order. Several changes of a key in between count as its last one.
  Delta take_delta();
  bool pending() const { return !dirty_.empty(); }

  // The view now.
  const std::map<std::string, Value>& view() const { return view_; }
  // The store revision of `key` in the view ("" when absent), for compare-and-set writes.
  std::string revision(const std::string& key) const;
  // The number of keys whose resource is in force.
  size_t delivered() const;
  const std::string& root() const { return root_; }

 private:
  struct Delivered {
    uint64_t text_hash = 0;  // of the last text decoded (good or not)
    std::string resource_key;
    std::shared_ptr<const api::Resource> resource;  // the last good one, in force (or null)
  };

  void mark(const std::string& key) { dirty_.insert(key); }
  // Decodes the view's `text` of `key` against what was delivered from it.
  void decode(const std::string& key, const std::string& text, Delivered* d, Delta* delta) const;

  std::string source_;
  std::string root_;
  std::map<std::string, Value> view_;
  std::map<std::string, Delivered> delivered_;
  std::set<std::string> dirty_;
};

}  // namespace portico::control
