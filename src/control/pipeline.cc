#include "control/pipeline.h"

#include <algorithm>
#include <chrono>
#include <exception>
#include <stdexcept>
#include <tuple>

#include "common/clock.h"
#include "control/discovery/discovery.h"
#include "control/sources/file_source.h"

namespace portico::control {

namespace {

// Translation passes: each pass may put more last good versions in force (a fixed point, usually
// reached after one or two passes).
constexpr int kMaxPasses = 8;

// How long a publication waits for the first answer of a discovery target (Pipeline::sync).
constexpr std::chrono::milliseconds kDiscoveryWarming{2000};

std::string where(const api::Resource& r) {
  return r.file + ":" + std::to_string(r.loc.line) + ":" + std::to_string(r.loc.column);
}

std::string display(const api::Resource& r) {
  return std::string(api::to_string(r.kind)) + " " + r.meta.ns + "/" + r.meta.name;
}

Diagnostic make(Diagnostic::Severity severity, std::string file, int line, int column,
                std::string path, std::string message) {
  Diagnostic d;
  d.severity = severity;
  d.file = std::move(file);
  d.line = line;
  d.column = column;
  d.path = std::move(path);
  d.message = std::move(message);
  return d;
}

std::string status_key(const ResourceStatus& s) {
  return s.kind + "/" + s.ns + "/" + s.name;
}

// The same into `out` (its capacity reused: no allocation per resource in the loops over all).
const std::string& status_key(const ResourceStatus& s, std::string& out) {
  out.assign(s.kind).append("/").append(s.ns).append("/").append(s.name);
  return out;
}

// The "Secret/<ns>/<name>" keys that Gateways, VirtualServices and Upstreams name in their
// sslConfig (secretRef), in their newest versions and in the versions in force.
std::set<std::string> referenced_secrets(const Store& store) {
  std::set<std::string> out;
  auto add = [&](const std::optional<api::ResourceRef>& ref) {
    if (ref && !ref->name.empty()) out.insert("Secret/" + ref->ns + "/" + ref->name);
  };
  auto add_resource = [&](const api::Resource& r) {
    if (r.kind == api::Kind::kGateway && r.gateway().tls) add(r.gateway().tls->secret_ref);
    if (r.kind == api::Kind::kVirtualService && r.virtual_service().tls)
      add(r.virtual_service().tls->secret_ref);
    if (r.kind == api::Kind::kUpstream && r.upstream().tls) add(r.upstream().tls->secret_ref);
  };
  for (const auto& [key, entry] : store.entries()) {
    add_resource(entry.current());
    if (entry.last_good) add_resource(*entry.last_good);
  }
  return out;
}

}  // namespace

bool BuildResult::ok() const {
  if (!file_errors.empty()) return false;
  return std::none_of(resources.begin(), resources.end(),
                      [](const ResourceStatus& r) { return r.state == State::kRejected; });
}

BuildResult build_from_store(const Store& store, const TranslateFn& translate, uint64_t version,
                             int64_t now_ms, std::set<std::string>* accepted, bool allow_partial) {
  BuildResult out;
  for (const auto& [origin, errors] : store.origin_errors())
    out.file_errors.insert(out.file_errors.end(), errors.begin(), errors.end());

  // The newest version of every resource, with duplicate definitions reported: the newcomer is
  // rejected naming the definition in force, which gets a warning.
  // Shared with the store: only a resource defined twice is copied (to carry the warning).
  std::vector<std::pair<const std::string*, ResourcePtr>> newest;
  newest.reserve(store.entries().size());
  for (const auto& [key, entry] : store.entries()) {
    ResourcePtr current = entry.candidates.front().resource;
    if (entry.candidates.size() > 1) {
      auto r = std::make_shared<api::Resource>(*current);
      for (size_t i = 1; i < entry.candidates.size(); ++i) {
        const api::Resource& dup = *entry.candidates[i].resource;
        out.file_errors.push_back(make(Diagnostic::Severity::kError, dup.file, dup.loc.line,
                                       dup.loc.column, "metadata.name",
                                       display(dup) + " is already defined at " + where(*r) +
                                           " (in force); this definition is rejected"));
        r->diagnostics.push_back(make(Diagnostic::Severity::kWarning, r->file, r->loc.line,
                                      r->loc.column, "metadata.name",
                                      display(*r) + " is defined again at " + where(dup) +
                                          " (rejected; this one is in force)"));
      }
      current = std::move(r);
    }
    newest.emplace_back(&key, std::move(current));
  }
  api::sort_by_position(out.file_errors);

  // Translate with the newest versions; put the last good version of every rejected resource in
  // force and translate again, until nothing more changes.
  std::set<std::string> fallback;
  std::map<std::string, std::vector<Diagnostic>> newest_reasons;
  Translation t;
  for (int pass = 0; pass < kMaxPasses; ++pass) {
    std::vector<ResourcePtr> input;
    input.reserve(newest.size());
    for (const auto& [key, r] : newest) {
      if (!fallback.empty() && fallback.count(*key)) {
        input.push_back(store.find(*key)->last_good);
      } else {
        input.push_back(r);
      }
    }
    // Only the first pass can be partial: a later one is relative to the pass before it, which
    // the caller never sees.
    t = translate(input, version, now_ms, allow_partial && pass == 0);
    if (!t.config) throw std::runtime_error("translation returned no configuration");
    if (t.partial && pass != 0) throw std::logic_error("partial translation after the first pass");
    out.translated.virtual_services += t.translated.virtual_services;
    out.translated.routes += t.translated.routes;
    bool more = false;
    for (const auto& s : t.statuses) {
      if (s.state != State::kRejected) continue;
      std::string key = status_key(s);
      if (fallback.count(key)) continue;
      const Store::Entry* e = store.find(key);
      if (e == nullptr || !e->last_good || e->last_good_revision == e->origin().revision) continue;
      fallback.insert(key);
      newest_reasons[key] = s.reasons;
      more = true;
    }
    if (!more) break;
  }

  out.config = std::move(t.config);
  out.resources = std::move(t.statuses);
  out.partial = t.partial;
  std::string key;
  // Statuses and the store's entries mostly come in the same order: the next entry is tried first
  // (a lookup only when namespaces sort differently as text, e.g. "a" and "a-b").
  const auto& entries = store.entries();
  auto next = entries.begin();
  for (auto& s : out.resources) {
    status_key(s, key);
    const Store::Entry* e = nullptr;
    if (next != entries.end() && next->first == key) {
      e = &next->second;
      ++next;
    } else if (auto it = entries.find(key); it != entries.end()) {
      e = &it->second;
      next = std::next(it);
    }
    if (e == nullptr) continue;
    const api::Resource& cur = e->current();
    // The generation of the version in force is known when it was accepted (generation_of hashes
    // the whole spec: not again at every sync for every resource).
    s.generation = e->last_good == e->candidates.front().resource ? e->last_good_generation
                                                                  : generation_of(cur);
    s.source = e->origin().source;
    s.revision = e->origin().revision;
    s.document = e->origin().index;
    s.file = cur.file;
    s.line = cur.loc.line;
    s.spec_json =
        std::shared_ptr<const std::string>(e->candidates.front().resource, &cur.spec_json);
    if (fallback.count(key)) {
      s.state = State::kRejected;
      s.serving_generation = e->last_good_generation;
      s.reasons = newest_reasons[key];
      s.reasons.push_back(
          make(Diagnostic::Severity::kWarning, cur.file, cur.loc.line, cur.loc.column, "",
               "generation " + std::to_string(s.generation) + " is rejected; serving generation " +
                   std::to_string(e->last_good_generation) + " (the last accepted version, from " +
                   e->last_good->file + ")"));
    } else if (s.state != State::kRejected && accepted != nullptr &&
               e->last_good != e->candidates.front().resource) {
      accepted->insert(key);  // newly accepted (the others are recorded already)
    }
  }
  return out;
}

Pipeline::Pipeline(std::unique_ptr<ConfigSource> source, PublishFn publish, TranslateFn translate)
    : publish_(std::move(publish)), translate_(std::move(translate)) {
  sources_.push_back(std::move(source));
  if (!translate_) {
    TranslateOptions options;
    options.base_dir = sources_.front()->base_dir();
    translator_ = std::make_unique<Translator>(options);
    translate_ = [this](const std::vector<ResourcePtr>& r, uint64_t v, int64_t ms, bool partial) {
      return translator_->translate(r, v, ms, partial);
    };
  }
}

bool Pipeline::merge_discovered(const DiscoverySource& source, DiscoveredMap found) {
  const std::string prefix = std::string(source.name()) + ":";
  auto first = discovered_.lower_bound(prefix);
  auto last = first;
  while (last != discovered_.end() && last->first.compare(0, prefix.size(), prefix) == 0)
    ++last;
  if (std::equal(first, last, found.begin(), found.end())) return false;
  discovered_.erase(first, last);
  discovered_.merge(found);
  return true;
}

Pipeline::SyncResult Pipeline::sync(bool full, int64_t seen_unix_ms) {
  SyncResult result;
  result.version = version_;
  if (full) ++metrics_.resyncs;
  try {
    Store::Change change;
    for (auto& source : sources_) {
      Store::Change c = store_.apply(source->poll(full), seen_unix_ms);
      change.semantic = change.semantic || c.semantic;
      change.cosmetic = change.cosmetic || c.cosmetic;
      for (auto& key : c.changed_keys) {
        if (std::find(change.changed_keys.begin(), change.changed_keys.end(), key) ==
            change.changed_keys.end()) {
          change.changed_keys.push_back(std::move(key));
        }
      }
    }
    // Discovery: what the sources found since the previous sync.
    bool discovered = false;
    for (auto& d : discovery_) {
      std::optional<DiscoveredMap> found = d->poll();
      if (!found) continue;
      if (merge_discovered(*d, std::move(*found))) discovered = true;
    }
    if (change.any()) dirty_ = referenced_stale_ = true;
    for (const auto& key : change.changed_keys) {
      timings_[key] = ChangeTimings{seen_unix_ms, -1, -1};
      timings_dirty_.push_back(key);
    }
    // A listener the data plane could not open is tried again at every sync (the port may be free
    // now); an item it could not compile is not (the same input fails the same way: a change to
    // it, or to a file it names, comes as an event).
    const bool retry_listeners =
        std::any_of(listener_failures_.begin(), listener_failures_.end(),
                    [](const ListenerFailure& f) { return !f.listener.empty(); });
    bool publish = publish_pending_ || change.semantic || retry_listeners || discovered;
    if (!dirty_ && !publish) return result;

    std::set<std::string> accepted;
    // A partial build is merged into current_: only when current_ is the last build's, whole
    // (no listener failure reasons added to it).
    const bool allow_partial = partial_ok_ && listener_failures_.empty();
    partial_ok_ = false;  // until this sync succeeds
    BuildResult built = build_from_store(store_, translate_, version_ + 1, common::unix_ms(),
                                         &accepted, allow_partial);
    std::vector<size_t> touched;
    if (built.partial) touched = merge_partial(built);
    const int64_t translated_at = common::unix_ms();
    metrics_.virtual_services_translated += built.translated.virtual_services;
    metrics_.routes_translated += built.translated.routes;
    if (change.semantic) metrics_.translated.observe(translated_at - seen_unix_ms);
    for (const auto& key : change.changed_keys) {
      auto it = timings_.find(key);
      if (it != timings_.end()) it->second.translated_ms = translated_at - seen_unix_ms;
    }

    if (publish) {
      {
        // Each kind of item keeps its version when it did not change since what is in force.
        auto typed = std::make_shared<snapshot::ProxyConfig>(*built.config);
        if (before_publish_) before_publish_();
        for (auto& d : discovery_) {
          auto targets = targets_of(*typed, d->name());
          d->watch(targets);
          // Cluster warming: a target never answered yet is given a moment (bounded), so that a
          // new name (or the first start, or an upgrade) is published with its addresses.
          const bool unanswered = std::any_of(targets.begin(), targets.end(), [&](const auto& t) {
            return discovered_.find(t.key()) == discovered_.end();
          });
          if (unanswered && d->wait_first(kDiscoveryWarming)) {
            if (std::optional<DiscoveredMap> found = d->poll())
              merge_discovered(*d, std::move(*found));
          }
        }
        apply_discovered(*typed, discovered_);
        snapshot::assign_type_versions(*typed, published_.get());
        built.config = std::move(typed);
      }
      std::vector<ListenerFailure> failures = publish_(built.config);
      ++version_;
      published_ = built.config;
      const auto& tv = published_->versions;
      const uint64_t kinds[] = {tv.listeners, tv.routes, tv.clusters, tv.endpoints, tv.secrets};
      std::copy(std::begin(kinds), std::end(kinds), metrics_.type_versions);
      publish_pending_ = false;
      listener_failures_ = std::move(failures);
      in_flight_[version_] = {seen_unix_ms, change.changed_keys};
      while (in_flight_.size() > 64)
        in_flight_.erase(in_flight_.begin());  // never acknowledged (workers stopping)
      result.published = true;
      auto problems = discovery_problems(*published_, discovered_);
      const bool problems_changed = problems != discovery_problems_;
      discovery_problems_ = std::move(problems);
      if (built.partial && (!listener_failures_.empty() || problems_changed)) {
        // Listener failures add reasons to statuses a partial build did not carry: the whole
        // list again (the translation reuses everything it can).
        accepted.clear();
        built = build_from_store(store_, translate_, version_, common::unix_ms(), &accepted, false);
        built.config = published_;
      }
    }
    // What the data plane runs now is what these statuses describe.
    for (const auto& key : accepted)
      store_.accept(key);

    // Listeners that could not be opened: facts about the Gateway, and about the VirtualServices
    // that were to be served there. Items the data plane could not compile: warnings on the
    // resources that produced them.
    for (const auto& f : listener_failures_) {
      std::vector<std::string> hosts;
      if (published_) {
        for (const auto& l : published_->listeners) {
          if (l.name != f.listener) continue;
          for (const auto& vh : l.virtual_hosts)
            hosts.push_back(vh->name);
        }
      }
      for (auto& r : built.resources) {
        std::string id = r.ns + "/" + r.name;
        const std::string key = r.kind + "/" + id;
        if (std::find(f.sources.begin(), f.sources.end(), key) != f.sources.end()) {
          // An item this resource produced was not applied by the data plane.
          r.reasons.push_back(make(Diagnostic::Severity::kWarning, r.file, r.line, 0, "",
                                   "not applied by the data plane: " + f.message));
          if (r.state == State::kAccepted) r.state = State::kWarning;
        }
        if (f.listener.empty()) continue;
        if (r.kind == "Gateway" && id == f.listener) {
          r.reasons.push_back(
              make(Diagnostic::Severity::kError, r.file, r.line, 0, "spec.bindPort", f.message));
          r.state = State::kRejected;
        } else if (r.kind == "VirtualService" &&
                   std::find(hosts.begin(), hosts.end(), id) != hosts.end()) {
          r.reasons.push_back(make(Diagnostic::Severity::kWarning, r.file, r.line, 0, "",
                                   "not served on gateway " + f.listener + ": " + f.message));
          if (r.state == State::kAccepted) r.state = State::kWarning;
        }
      }
    }

    // Discovery problems: warnings on the Upstreams whose names do not resolve. Statuses a
    // partial build carried over hold the same ones (a change of them makes the build whole).
    for (auto& r : built.resources) {
      if (r.kind != "Upstream") continue;
      auto& reasons = r.reasons;
      const size_t before = reasons.size();
      reasons.erase(std::remove_if(reasons.begin(), reasons.end(),
                                   [](const Diagnostic& d) { return d.path == "discovery"; }),
                    reasons.end());
      auto it = discovery_problems_.find(r.kind + "/" + r.ns + "/" + r.name);
      if (it != discovery_problems_.end()) {
        for (const auto& line : it->second)
          reasons.push_back(
              make(Diagnostic::Severity::kWarning, r.file, r.line, 0, "discovery", line));
      }
      if (r.state == State::kAccepted && it != discovery_problems_.end()) r.state = State::kWarning;
      if (r.state == State::kWarning && reasons.size() < before && reasons.empty())
        r.state = State::kAccepted;
    }

    update_statuses(built, translated_at, built.partial ? &touched : nullptr);
    if (!built.partial) timings_all_ = true;  // new statuses: every timing to set again
    current_ = std::move(built);
    current_.partial = false;  // merged: the whole list
    if (published_) current_.config = published_;
    dirty_ = false;
    partial_ok_ = true;
    last_build_ok_ = true;
    last_error_.clear();
    ++metrics_.builds;
    metrics_.last_build_ok = true;
    result.built = true;
    result.version = version_;
    if (referenced_stale_) {
      referenced_stale_ = false;
      auto refs = referenced_secrets(store_);
      if (refs != referenced_) {
        referenced_ = std::move(refs);
        for (auto& source : sources_)
          source->referenced(referenced_);
      }
    }
  } catch (const std::exception& e) {
    last_error_ = e.what();
  } catch (...) {
    last_error_ = "unknown exception";
  }
  if (!result.built) {
    // Nothing half-done reaches the data plane: the previous configuration stays in force, and
    // the next sync (a change, or the periodic resync) tries again.
    last_build_ok_ = false;
    metrics_.last_build_ok = false;
    ++metrics_.build_failures;
    dirty_ = true;
    publish_pending_ = true;  // what changed in the store must still reach the data plane
    if (!result.published) {
      try {
        mark_pending(common::unix_ms());
      } catch (...) {
      }
    }
    result.failed = true;
    result.version = version_;
  }
  try {
    render();
  } catch (...) {
  }
  return result;
}

void Pipeline::report_statuses() {
  if (external_warnings_.empty()) {
    for (const auto& s : sources_)
      s->report_statuses(current_.resources, current_.file_errors);
    return;
  }
  std::vector<ResourceStatus> resources = current_.resources;  // specs shared, not copied
  for (auto& r : resources) {
    auto it = external_warnings_.find(r.kind + "/" + r.ns + "/" + r.name);
    if (it == external_warnings_.end()) continue;
    for (const auto& message : it->second)
      r.reasons.push_back(make(Diagnostic::Severity::kWarning, r.file, r.line, 0, "", message));
    if (r.state == State::kAccepted) r.state = State::kWarning;
  }
  for (const auto& s : sources_)
    s->report_statuses(resources, current_.file_errors);
}

void Pipeline::applied(uint64_t version, int64_t now_ms) {
  auto it = in_flight_.find(version);
  if (it == in_flight_.end()) return;
  // Older versions that never reported are superseded by this one.
  for (auto old = in_flight_.begin(); old != it;) {
    old = in_flight_.erase(old);
  }
  const auto& [seen, keys] = it->second;
  if (!keys.empty()) metrics_.applied.observe(now_ms - seen);
  for (const auto& key : keys) {
    auto t = timings_.find(key);
    if (t != timings_.end() && t->second.seen_unix_ms == seen) {
      t->second.applied_ms = now_ms - seen;
      timings_dirty_.push_back(key);
    }
  }
  in_flight_.erase(it);
  try {
    render();
  } catch (...) {
  }
}

std::vector<size_t> Pipeline::merge_partial(BuildResult& result) {
  // current_ is sorted by kind, namespace, name (as translations and mark_pending sort).
  std::vector<ResourceStatus> all = std::move(current_.resources);
  current_.resources.clear();
  auto less = [](const ResourceStatus& a, const ResourceStatus& b) {
    return std::tie(a.kind, a.ns, a.name) < std::tie(b.kind, b.ns, b.name);
  };
  std::vector<size_t> touched;
  touched.reserve(result.resources.size());
  for (auto& s : result.resources) {
    auto it = std::lower_bound(all.begin(), all.end(), s, less);
    if (it == all.end() || less(s, *it)) {
      throw std::logic_error("partial translation of an unknown resource: " + s.kind + " " + s.ns +
                             "/" + s.name);
    }
    s.last_change = it->last_change;
    *it = std::move(s);
    touched.push_back(static_cast<size_t>(it - all.begin()));
  }
  result.resources = std::move(all);
  return touched;
}

void Pipeline::update_statuses(BuildResult& result, int64_t now_ms,
                               const std::vector<size_t>* touched) {
  if (touched != nullptr) {
    // A partial build: only these changed; the others are in statuses_ as they are.
    for (size_t i : *touched) {
      auto& s = result.resources[i];
      auto [old, inserted] = statuses_.try_emplace(status_key(s));
      if (!inserted && old->second.same_status(s)) {
        s.updated_unix_ms = old->second.updated_unix_ms;
      } else {
        s.updated_unix_ms = now_ms;
        ++metrics_.status_updates;
      }
      old->second = s;
    }
    return;
  }
  // Updated in place (a map rebuilt from scratch would allocate every key and node again).
  std::string key;
  auto next = statuses_.begin();  // the same order, mostly (see build_from_store)
  for (auto& s : result.resources) {
    status_key(s, key);
    auto old = statuses_.end();
    if (next != statuses_.end() && next->first == key) {
      old = next++;
    } else if (old = statuses_.find(key); old != statuses_.end()) {
      next = std::next(old);
    }
    if (old != statuses_.end() && old->second.same_status(s)) {
      s.updated_unix_ms = old->second.updated_unix_ms;  // unchanged: not rewritten
      // Nor copied when nothing else about it changed either (most resources, most syncs).
      const ResourceStatus& o = old->second;
      if (o.revision == s.revision && o.spec_json == s.spec_json && o.line == s.line &&
          o.document == s.document && o.source == s.source && o.file == s.file) {
        continue;
      }
    } else {
      s.updated_unix_ms = now_ms;
      ++metrics_.status_updates;
    }
    if (old == statuses_.end()) old = statuses_.emplace(key, ResourceStatus{}).first;
    old->second = s;
  }
  if (statuses_.size() != result.resources.size()) {  // some resources went away
    std::set<std::string> now;
    for (const auto& s : result.resources)
      now.insert(status_key(s));
    for (auto it = statuses_.begin(); it != statuses_.end();)
      it = now.count(it->first) ? std::next(it) : statuses_.erase(it);
  }
  for (auto it = timings_.begin(); it != timings_.end();) {
    it = statuses_.count(it->first) ? std::next(it) : timings_.erase(it);
  }
}

void Pipeline::mark_pending(int64_t now_ms) {
  // Resources whose newest version was never translated are Pending; the others keep the status
  // of the configuration in force.
  std::vector<ResourceStatus> list;
  for (const auto& [key, entry] : store_.entries()) {
    auto old = statuses_.find(key);
    if (old != statuses_.end() && old->second.revision == entry.origin().revision) {
      list.push_back(old->second);
      continue;
    }
    const api::Resource& r = entry.current();
    ResourceStatus s;
    s.kind = api::to_string(r.kind);
    s.ns = r.meta.ns;
    s.name = r.meta.name;
    s.file = r.file;
    s.line = r.loc.line;
    s.generation = generation_of(r);
    s.state = State::kPending;
    s.spec_json =
        std::shared_ptr<const std::string>(entry.candidates.front().resource, &r.spec_json);
    s.source = entry.origin().source;
    s.revision = entry.origin().revision;
    s.document = entry.origin().index;
    s.reasons.push_back(make(Diagnostic::Severity::kWarning, r.file, r.loc.line, r.loc.column, "",
                             "not translated yet: the configuration build failed (" + last_error_ +
                                 "); the previous configuration is still served"));
    s.updated_unix_ms =
        old != statuses_.end() && old->second.same_status(s) ? old->second.updated_unix_ms : now_ms;
    list.push_back(std::move(s));
  }
  for (auto& s : list)
    statuses_[status_key(s)] = s;
  timings_all_ = true;
  current_.resources.clear();
  for (const auto& [key, s] : statuses_)
    current_.resources.push_back(s);
  std::sort(current_.resources.begin(), current_.resources.end(),
            [](const ResourceStatus& a, const ResourceStatus& b) {
              return std::tie(a.kind, a.ns, a.name) < std::tie(b.kind, b.ns, b.name);
            });
}

void Pipeline::render() {
  auto& list = current_.resources;
  if (!timings_all_ || timings_.size() * 8 < list.size()) {
    // Few resources changed since they were loaded: find those (the list is sorted by kind,
    // namespace, name) rather than look every resource up. The others have no timings (statuses
    // come without them; a timing goes only with its resource).
    auto less = [](const ResourceStatus& s,
                   const std::tuple<std::string_view, std::string_view, std::string_view>& k) {
      return std::tie(s.kind, s.ns, s.name) < k;
    };
    // Only the keys whose timings changed, unless the statuses are new.
    std::vector<const std::string*> keys;
    if (timings_all_) {
      for (const auto& [key, timing] : timings_)
        keys.push_back(&key);
    } else {
      std::sort(timings_dirty_.begin(), timings_dirty_.end());
      timings_dirty_.erase(std::unique(timings_dirty_.begin(), timings_dirty_.end()),
                           timings_dirty_.end());
      for (const auto& key : timings_dirty_)
        keys.push_back(&key);
    }
    for (const std::string* key_ptr : keys) {
      const std::string& key = *key_ptr;
      auto entry = timings_.find(key);
      if (entry == timings_.end()) continue;
      const ChangeTimings& timing = entry->second;
      const size_t a = key.find('/');
      const size_t b = a == std::string::npos ? a : key.find('/', a + 1);
      if (b == std::string::npos) continue;
      const std::string_view k(key);
      const auto wanted =
          std::make_tuple(k.substr(0, a), k.substr(a + 1, b - a - 1), k.substr(b + 1));
      auto it = std::lower_bound(list.begin(), list.end(), wanted, less);
      if (it == list.end() ||
          std::tie(it->kind, it->ns, it->name) !=
              std::tie(std::get<0>(wanted), std::get<1>(wanted), std::get<2>(wanted))) {
        std::string found;
        it = std::find_if(list.begin(), list.end(), [&](const ResourceStatus& s) {
          return status_key(s, found) == key;  // a name with '/' in it: looked for one by one
        });
      }
      if (it != list.end()) it->last_change = timing;
    }
  } else {
    std::string key;
    for (auto& s : list) {
      auto t = timings_.empty() ? timings_.end() : timings_.find(status_key(s, key));
      s.last_change = t == timings_.end() ? ChangeTimings{} : t->second;
    }
  }
  timings_dirty_.clear();
  timings_all_ = false;
  json_stale_ = true;  // rendered by resources_json() when asked
}

namespace {

// One-shot builds keep the API's no-throw promise: an internal error is reported, never thrown.
BuildResult build_once(const Delta& delta, uint64_t version,
                       const std::filesystem::path& base_dir = {}) {
  BuildResult out;
  try {
    Store store;
    (void)store.apply(delta, 0);
    TranslateFn fn = [&](const std::vector<ResourcePtr>& r, uint64_t v, int64_t ms, bool) {
      TranslateOptions options;
      options.base_dir = base_dir;
      return translate(r, v, ms, options);
    };
    out = build_from_store(store, fn, version, common::unix_ms(), nullptr);
  } catch (const std::exception& e) {
    out.file_errors.push_back(make(Diagnostic::Severity::kError, "", 0, 0, "",
                                   std::string("internal error: ") + e.what()));
  }
  if (!out.config) {
    auto empty = std::make_shared<snapshot::ProxyConfig>();
    empty->version = version;
    empty->created_unix_ms = common::unix_ms();
    out.config = std::move(empty);
  }
  return out;
}

}  // namespace

BuildResult validate_directory(const std::filesystem::path& dir) {
  FileSource source(dir);
  Delta delta = source.poll(true);
  return build_once(delta, 0, source.base_dir());
}

BuildResult build_from_files(const std::vector<SourceFile>& files, uint64_t version) {
  std::vector<std::pair<std::string, std::string>> list;
  list.reserve(files.size());
  for (const auto& f : files)
    list.emplace_back(f.name, f.content);
  return build_once(FileSource::from_memory(list), version);
}

}  // namespace portico::control
