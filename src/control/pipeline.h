// The control-plane pipeline: a ConfigSource feeds the resource store with deltas; the store's
// resources are translated into an immutable snapshot::ProxyConfig (each resource's last good
// version standing in for a newest version that is rejected), published, and every resource gets
// a status. Pipeline is owned and called by the control-plane thread only; BuildResult values and
// the configurations it publishes may be shared with any thread.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "api/decode.h"
#include "api/diagnostic.h"
#include "control/discovery/discovery.h"
#include "control/sources/source.h"
#include "control/status/metrics.h"
#include "control/status/status.h"
#include "control/store/store.h"
#include "control/translate/translator.h"
#include "snapshot/proxy_config.h"

namespace portico::control {

// Diagnostic, State, ResourceStatus, to_string(State) and resources_to_json come from
// control/status/status.h.

struct BuildResult {
  std::shared_ptr<const snapshot::ProxyConfig> config;  // never null
  std::vector<ResourceStatus> resources;                // sorted by kind, namespace, name
  std::vector<Diagnostic> file_errors;  // unparseable files, unknown kinds, duplicates, I/O errors
  TranslateCounts translated;           // what translation recomputed (every pass)
  // `resources` holds only the statuses that may have changed since the previous build (a
  // partial translation); Pipeline merges them into the statuses it holds.
  bool partial = false;
  bool ok() const;  // no file errors and no Rejected resource
};

// Given the resources the store holds (shared, never copied). `allow_partial`: the caller holds
// the previous call's result and can take a partial one (Translator::translate).
using TranslateFn =
    std::function<Translation(const std::vector<ResourcePtr>& resources, uint64_t version,
                              int64_t created_unix_ms, bool allow_partial)>;

// Translates the store's resources. A resource whose newest version is Rejected while an earlier
// version was accepted keeps that earlier version in force: its status is Rejected with the new
// version's reasons and "serving generation N". `accepted` receives the keys whose newest version
// was accepted (Accepted or Warning) and is not the store's last good version yet (Store::accept
// has nothing to do for the others). Throws whatever `translate` throws. `allow_partial`: the
// result may be partial (see BuildResult::partial).
BuildResult build_from_store(const Store& store, const TranslateFn& translate, uint64_t version,
                             int64_t now_unix_ms, std::set<std::string>* accepted,
                             bool allow_partial = false);

// What the data plane could not apply: a listener it could not open (`listener` set: its Gateway
// is Rejected, its VirtualServices warned), and/or items it could not compile, reported as a
// warning on the resources that produced them (`sources`, as snapshot::sources_of).
struct ListenerFailure {
  std::string listener;  // snapshot::Listener::name, "<namespace>/<name>" of the Gateway; or empty
  std::string message;
  std::vector<std::string> sources;  // "<Kind>/<namespace>/<name>"
};
// Hands a configuration to the data plane; returns what it could not apply.
using PublishFn =
    std::function<std::vector<ListenerFailure>(std::shared_ptr<const snapshot::ProxyConfig>)>;

class Pipeline {
 public:
  // `translate` defaults to an incremental control::Translator.
  Pipeline(std::unique_ptr<ConfigSource> source, PublishFn publish, TranslateFn translate = {});

  // Another source (etcd, Consul KV, Kubernetes...): polled after the ones before it, into the
  // same store. A resource that two sources define stays with the one that defined it first.
  // It learns at once which Secrets resources reference (ConfigSource::referenced).
  void add_source(std::unique_ptr<ConfigSource> source) {
    source->referenced(referenced_);
    sources_.push_back(std::move(source));
  }
  // A discovery source (DNS; Consul, Nomad...): it watches the targets of the configuration about
  // to be published, and what it finds is added to the clusters' endpoints before each
  // publication. Its news (start's wake) need a sync; an endpoint change translates nothing.
  void add_discovery(std::unique_ptr<DiscoverySource> source) {
    discovery_.push_back(std::move(source));
  }
  // Called in sync() before a configuration is published (and its discovery targets watched),
  // once the store holds the sources' changes: e.g. to configure a discovery source from Settings.
  void set_before_publish(std::function<void()> fn) { before_publish_ = std::move(fn); }
  // What discovery found, by target key (for /config_dump and tests).
  const DiscoveredMap& discovered() const { return discovered_; }

  // Each source's name and problem (empty: fine), in the order they are polled.
  std::vector<std::pair<std::string, std::string>> source_states() const {
    std::vector<std::pair<std::string, std::string>> out;
    for (const auto& s : sources_)
      out.emplace_back(std::string(s->name()), s->problem());
    return out;
  }
  // The source `portico apply` and `portico delete` write to: the first configuration store that
  // Settings added (etcd, Consul KV, Kubernetes; not a secret source), else the first source (the
  // directory).
  ConfigSource& write_target() {
    for (size_t i = 1; i < sources_.size(); ++i) {
      if (sources_[i]->holds_configuration()) return *sources_[i];
    }
    return *sources_.front();
  }
  // Every source's own metrics for /stats (ConfigSource::stats()), concatenated.
  std::string source_stats() const {
    std::string out;
    for (const auto& s : sources_)
      out += s->stats();
    return out;
  }
  // Hands every source the statuses in force (report_statuses), after a sync, with the
  // external warnings added.
  void report_statuses();
  // Warnings from outside the build, by "<Kind>/<namespace>/<name>" (the fleet's NACKs in force:
  // "proxy p2 rejected version 7: ..."): added to the statuses the sources write back (an
  // Accepted resource becomes Warning). The caller calls report_statuses() when they change.
  void set_external_warnings(std::map<std::string, std::vector<std::string>> warnings) {
    external_warnings_ = std::move(warnings);
  }
  const std::map<std::string, std::vector<std::string>>& external_warnings() const {
    return external_warnings_;
  }
  // The problems alone, one line each, naming their source.
  std::vector<std::string> source_problems() const {
    std::vector<std::string> out;
    for (const auto& [name, problem] : source_states()) {
      if (!problem.empty()) out.push_back(name + ": " + problem);
    }
    return out;
  }

  struct SyncResult {
    bool built = false;      // a translation ran and succeeded
    bool published = false;  // a new version went to the data plane
    bool failed = false;     // an internal error: nothing was published, the previous stays
    uint64_t version = 0;    // in force after this sync
  };
  // Polls the sources (a complete re-read when `full`), applies the deltas to the store and, when
  // anything changed, translates and publishes. `seen_unix_ms` is when the change was first noticed
  // (the first file event), for the propagation timings. Never throws: an exception anywhere is
  // caught, counted and reported (last_error()), and the configuration in force stays.
  SyncResult sync(bool full, int64_t seen_unix_ms);

  // The data plane runs `version` on every worker now.
  void applied(uint64_t version, int64_t now_unix_ms);

  uint64_t version() const { return version_; }
  // The configuration in force (null before the first publication).
  std::shared_ptr<const snapshot::ProxyConfig> config() const { return published_; }
  // Statuses and file errors as shown to operators.
  const BuildResult& current() const { return current_; }
  // Rendered when asked (the admin API's /resources), not on every sync: at 10,000 resources the
  // document is tens of megabytes and rendering it was the largest cost of a sync.
  const std::string& resources_json() const {
    if (json_stale_) {
      resources_json_ = resources_to_json(current_.resources, current_.file_errors);
      json_stale_ = false;
    }
    return resources_json_;
  }
  bool last_build_ok() const { return last_build_ok_; }
  const std::string& last_error() const { return last_error_; }
  const Store& store() const { return store_; }
  const ControlMetrics& metrics() const { return metrics_; }

 private:
  // `touched`: the positions in result.resources that a partial build replaced (null: all).
  void update_statuses(BuildResult& result, int64_t now_unix_ms,
                       const std::vector<size_t>* touched);
  // Puts a partial build's statuses in place in current_'s (moved into `result`); returns their
  // positions.
  std::vector<size_t> merge_partial(BuildResult& result);
  void mark_pending(int64_t now_unix_ms);
  // Replaces what `source` found before by `found` (its whole view). False when that view is
  // what was held already (a source that answers again with the same endpoints publishes nothing).
  bool merge_discovered(const DiscoverySource& source, DiscoveredMap found);
  void render();

  std::vector<std::unique_ptr<ConfigSource>> sources_;
  std::vector<std::unique_ptr<DiscoverySource>> discovery_;
  DiscoveredMap discovered_;
  std::function<void()> before_publish_;
  // set_external_warnings (the fleet's NACKs), by "<Kind>/<namespace>/<name>".
  std::map<std::string, std::vector<std::string>> external_warnings_;
  // Discovery problems in the statuses now, by "Upstream/<ns>/<name>".
  std::map<std::string, std::vector<std::string>> discovery_problems_;
  // The Secrets resources reference, as last told to the sources; stale after a store change.
  std::set<std::string> referenced_;
  bool referenced_stale_ = true;
  PublishFn publish_;
  TranslateFn translate_;
  std::unique_ptr<Translator> translator_;  // the default translate_
  Store store_;
  ControlMetrics metrics_;

  uint64_t version_ = 0;
  std::shared_ptr<const snapshot::ProxyConfig> published_;
  bool publish_pending_ = true;  // nothing published yet, or the last attempt failed
  bool dirty_ = true;            // the store changed since the last successful build
  // current_ describes the translator's last result: the next build may be partial.
  bool partial_ok_ = false;
  std::vector<ListenerFailure> listener_failures_;
  bool last_build_ok_ = true;
  std::string last_error_;

  BuildResult current_;
  std::map<std::string, ResourceStatus> statuses_;  // by "<Kind>/<namespace>/<name>"
  std::map<std::string, ChangeTimings> timings_;    // by key: the last change of each resource
  // Keys whose timings changed since the last render(); every key after a whole new status list.
  std::vector<std::string> timings_dirty_;
  bool timings_all_ = true;
  // Published versions not yet running on every worker: version -> (seen time, keys changed).
  std::map<uint64_t, std::pair<int64_t, std::vector<std::string>>> in_flight_;
  mutable std::string resources_json_ = "[]";
  mutable bool json_stale_ = false;
};

// One-shot, no memory (for `portico validate DIR`). DIR may also be a single file.
BuildResult validate_directory(const std::filesystem::path& dir);

// A file given in memory (tests, fuzzing, `portico check -`).
struct SourceFile {
  std::string name;
  std::string content;
};
// Decodes, validates and translates the given files as if they were one directory (no memory).
BuildResult build_from_files(const std::vector<SourceFile>& files, uint64_t version);

}  // namespace portico::control
