// ConfigSource: the one interface through which configuration storage (files today; etcd, Consul
// KV and Kubernetes later) feeds the resource store, as deltas. Owned and called by the
// control-plane thread only.
#pragma once

#include <filesystem>
#include <functional>
#include <set>
#include <string>
#include <string_view>

#include "control/status/status.h"
#include "control/store/store.h"

namespace portico::control {

// One change asked of a source's store (`portico apply` / `portico delete` through the API).
struct WriteOp {
  enum class Action { kApply, kDelete };
  Action action = Action::kApply;
  std::string kind;         // "VirtualService" (api::to_string(Kind))
  std::string ns;           // metadata.namespace
  std::string name;         // metadata.name
  std::string api_version;  // kApply: the document's apiVersion ("gateway.solo.io/v1")
  // kApply: the text of exactly one YAML or JSON document, decoded and validated without error
  // by the caller.
  std::string document;
};

// What a write did, or why it did not.
struct WriteResult {
  enum class Outcome {
    kCreated,      // applied: the resource was not in the store
    kConfigured,   // applied: it was, with another document
    kUnchanged,    // applied: it was, with the same document
    kDeleted,      // deleted
    kNotFound,     // delete of a resource the store does not hold
    kConflict,     // the store holds it where a write must not go (an operator's file)
    kUnsupported,  // this source does not take writes
    kFailed,       // the store refused or could not be reached
  };
  Outcome outcome = Outcome::kFailed;
  std::string message;  // where it was written, or what went wrong (one line)
  bool ok() const {
    return outcome == Outcome::kCreated || outcome == Outcome::kConfigured ||
           outcome == Outcome::kUnchanged || outcome == Outcome::kDeleted;
  }
};
// "created", "configured", "unchanged", "deleted", "not found", "conflict", "unsupported",
// "failed".
inline const char* to_string(WriteResult::Outcome outcome) {
  switch (outcome) {
    case WriteResult::Outcome::kCreated:
      return "created";
    case WriteResult::Outcome::kConfigured:
      return "configured";
    case WriteResult::Outcome::kUnchanged:
      return "unchanged";
    case WriteResult::Outcome::kDeleted:
      return "deleted";
    case WriteResult::Outcome::kNotFound:
      return "not found";
    case WriteResult::Outcome::kConflict:
      return "conflict";
    case WriteResult::Outcome::kUnsupported:
      return "unsupported";
    case WriteResult::Outcome::kFailed:
      break;
  }
  return "failed";
}

class ConfigSource {
 public:
  virtual ~ConfigSource() = default;

  // The source's name, used in every Origin it produces ("file", "etcd", ...).
  virtual std::string_view name() const = 0;

  // What changed since the previous call, as a delta (empty when nothing did). The first call
  // returns everything, in a deterministic order. `full` asks for a complete re-read (the periodic
  // resync that catches missed notifications); the result is still only the difference. Must not
  // throw for input problems: those are origin errors in the delta.
  virtual Delta poll(bool full) = 0;

  // What relative file names in its resources (Secret files, sslFiles) are resolved against:
  // the configuration directory for files; empty (the current directory) for sources without one.
  virtual std::filesystem::path base_dir() const { return {}; }

  // Sources that learn of changes on a thread of their own (etcd and Kubernetes watches, Consul
  // and Vault blocking queries) call `wake` from that thread when poll() has something new: the
  // control-plane loop then syncs soon. Called once, before the first poll(); `wake` stays valid
  // until the source is destroyed. The destructor stops the source's threads.
  virtual void start(std::function<void()> wake) { (void)wake; }

  // What is wrong with the source now, for /ready, `portico check` and /stats: empty when it is
  // fine, else one line naming it ("etcd http://10.0.0.5:2379: connection refused, since 12:03:04;
  // serving what it held before"). A failing source keeps its resources in the store: the last
  // good configuration stays in force.
  virtual std::string problem() const { return {}; }

  // The Secrets that resources reference ("Secret/<namespace>/<name>": Gateways', VirtualServices'
  // and Upstreams' sslConfig.secretRef, in the versions in force and the newest), after each build
  // that changed them and when the source is added: a secret source reads only those. Called on
  // the control-plane thread; must not block.
  virtual void referenced(const std::set<std::string>& keys) { (void)keys; }

  // The source's own counters and gauges for /stats, in Prometheus text format with their # TYPE
  // lines (e.g. portico_etcd_revision); empty when it has none.
  virtual std::string stats() const { return {}; }

  // After every sync: the statuses in force and the origin errors (keys or files that did not
  // decode), for a source that writes statuses back to its store (Consul KV). It keeps what
  // concerns its own origins and writes from its own thread; it must not block here.
  virtual void report_statuses(const std::vector<ResourceStatus>& resources,
                               const std::vector<api::Diagnostic>& origin_errors) {
    (void)resources;
    (void)origin_errors;
  }

  // False for a source of secrets alone (Vault): never the target of writes.
  virtual bool holds_configuration() const { return true; }

  // Applies one document or deletes one resource in the source's store (control-plane thread;
  // may block on the store for its request timeout). The change reaches the store's resources
  // the way any edit of the store does (the file watcher, the watch): poll() reports it. By
  // default a source takes no writes.
  virtual WriteResult write(const WriteOp& op) {
    return {WriteResult::Outcome::kUnsupported, "the " + std::string(name()) +
                                                    " source does not take writes (" + op.kind +
                                                    " " + op.ns + "/" + op.name + ")"};
  }
};

}  // namespace portico::control
