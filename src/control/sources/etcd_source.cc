#include "control/sources/etcd_source.h"

#include "control/sources/factory.h"

#include <algorithm>
#include <ctime>
#include <map>
#include <random>
#include <utility>

#include "common/backoff.h"
#include "common/log.h"

namespace portico::control {

namespace {

using http::Millis;

std::string utc_now() {
  std::time_t t = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%H:%M:%S UTC", &tm);
  return buf;
}

}  // namespace

Result<std::unique_ptr<EtcdSource>> EtcdSource::make(EtcdSourceOptions options) {
  auto url = store_url(options.address, 2379, options.tls);
  if (!url) return url.error();
  return std::unique_ptr<EtcdSource>(new EtcdSource(std::move(url.value()), std::move(options)));
}

EtcdSource::EtcdSource(http::Url url, EtcdSourceOptions options)
    : options_(std::move(options)),
      client_(url, options_.timeout),
      writer_(std::move(url), options_.timeout),
      docs_("etcd", options_.prefix) {
  key_prefix_ = docs_.root() + "/";
  range_end_ = etcd::prefix_range_end(key_prefix_);
}

WriteResult EtcdSource::write(const WriteOp& op) {
  using Outcome = WriteResult::Outcome;
  const std::string what = op.kind + " " + op.ns + "/" + op.name;
  std::string key;
  {
    std::lock_guard lock(mu_);
    auto found = docs_.find_key(op.kind, op.ns, op.name);
    if (!found && op.action == WriteOp::Action::kDelete) {
      return {Outcome::kNotFound, what + " is not in etcd below " + key_prefix_};
    }
    key = found ? *found : docs_.new_key(op.api_version, op.kind, op.ns, op.name);
  }
  const std::string where = "etcd " + options_.address + " key " + key;
  for (int attempt = 0; attempt < 3; ++attempt) {
    auto now = writer_.range(key, "");
    if (!now) return {Outcome::kFailed, where + ": " + now.error().message};
    const bool exists = !now->kvs.empty();
    const int64_t mod = exists ? now->kvs.front().mod_revision : 0;
    Result<etcd::TxnResult> done = etcd::TxnResult{};
    if (op.action == WriteOp::Action::kDelete) {
      if (!exists) return {Outcome::kNotFound, what + " is not in etcd (" + key + ")"};
      done = writer_.delete_if(key, mod);
    } else {
      if (exists && now->kvs.front().value == op.document) return {Outcome::kUnchanged, where};
      done = writer_.put_if(key, op.document, mod);
    }
    if (!done) return {Outcome::kFailed, where + ": " + done.error().message};
    if (!done->succeeded) continue;  // another writer in between: read it again
    if (op.action == WriteOp::Action::kDelete) return {Outcome::kDeleted, where};
    return {exists ? Outcome::kConfigured : Outcome::kCreated, where};
  }
  return {Outcome::kFailed, where + ": changed by other writers during 3 attempts"};
}

EtcdSource::~EtcdSource() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  client_.cancel();
  writer_.cancel();
  if (thread_.joinable()) thread_.join();
}

void EtcdSource::start(std::function<void()> wake) {
  wake_ = std::move(wake);
  thread_ = std::thread([this] { run(); });
}

Delta EtcdSource::poll(bool full) {
  (void)full;  // a watch misses nothing: a resync has nothing to catch up with
  std::lock_guard lock(mu_);
  return docs_.take_delta();
}

std::string EtcdSource::problem() const {
  std::lock_guard lock(mu_);
  if (problem_.empty()) return {};
  return options_.address + " (keys " + key_prefix_ + "): " + problem_ + ", since " +
         problem_since_ + "; serving the " + std::to_string(docs_.delivered()) +
         " resource(s) it delivered before";
}

EtcdSource::Counters EtcdSource::counters() const {
  std::lock_guard lock(mu_);
  return counters_;
}

std::string EtcdSource::stats() const {
  Counters c = counters();
  size_t keys = 0;
  {
    std::lock_guard lock(mu_);
    keys = docs_.view().size();
  }
  std::string out;
  auto metric = [&](const char* name, const char* type, const std::string& value) {
    out += std::string("# TYPE ") + name + " " + type + "\n" + name + " " + value + "\n";
  };
  metric("portico_etcd_ranges_total", "counter", std::to_string(c.ranges));
  metric("portico_etcd_watches_total", "counter", std::to_string(c.watches));
  metric("portico_etcd_events_total", "counter", std::to_string(c.events));
  metric("portico_etcd_compacted_total", "counter", std::to_string(c.compacted));
  metric("portico_etcd_resyncs_total", "counter", std::to_string(c.resyncs));
  metric("portico_etcd_errors_total", "counter", std::to_string(c.errors));
  metric("portico_etcd_revision", "gauge", std::to_string(c.revision));
  metric("portico_etcd_keys", "gauge", std::to_string(keys));
  return out;
}

void EtcdSource::notify() {
  if (wake_) wake_();
}

void EtcdSource::set_problem(const std::string& error) {
  bool changed = false;
  {
    std::lock_guard lock(mu_);
    if (!error.empty()) ++counters_.errors;
    if (error != problem_) {
      if (problem_.empty()) problem_since_ = utc_now();
      changed = problem_.empty() != error.empty();
      problem_ = error;
    }
  }
  if (changed) {
    if (error.empty()) {
      LOG_INFO("etcd %s: connected again", options_.address.c_str());
    } else {
      LOG_WARN("etcd %s: %s; serving what it delivered before", options_.address.c_str(),
               error.c_str());
    }
    notify();
  }
}

bool EtcdSource::sleep_for(Millis d) {
  std::unique_lock lock(mu_);
  return !cv_.wait_for(lock, d, [this] { return stopping_; });
}

bool EtcdSource::range_all(std::string* error) {
  auto r = client_.range(key_prefix_, range_end_);
  if (!r) {
    *error = r.error().message;
    return false;
  }
  etcd::RangeResponse& range = r.value();
  std::map<std::string, KeyedDocuments::Value> view;
  for (auto& kv : range.kvs) {
    view.emplace(std::move(kv.key),
                 KeyedDocuments::Value{std::move(kv.value), std::to_string(kv.mod_revision)});
  }
  bool changed = false;
  {
    std::lock_guard lock(mu_);
    docs_.replace_all(std::move(view));
    changed = docs_.pending();
    ++counters_.ranges;
    counters_.revision = range.header.revision;
  }
  revision_ = range.header.revision;
  cluster_id_ = range.header.cluster_id;
  if (changed) notify();
  return true;
}

EtcdSource::WatchEnd EtcdSource::watch_once(std::string* error, bool* created) {
  WatchEnd end = WatchEnd::kBroken;
  auto on_message = [&](const etcd::WatchMessage& m) {
    if (!m.error.empty()) {
      *error = "the watch failed: " + m.error;
      end = WatchEnd::kBroken;
      return false;
    }
    if (m.created) {
      *created = true;
      // Another cluster, or one restored from an older backup: what was delivered is no guide.
      if ((!cluster_id_.empty() && !m.header.cluster_id.empty() &&
           m.header.cluster_id != cluster_id_) ||
          m.header.revision < revision_) {
        LOG_WARN(
            "etcd %s: the cluster changed (id %s, revision %lld; was %s, %lld): reading %s "
            "again",
            options_.address.c_str(), m.header.cluster_id.c_str(),
            static_cast<long long>(m.header.revision), cluster_id_.c_str(),
            static_cast<long long>(revision_), key_prefix_.c_str());
        std::lock_guard lock(mu_);
        ++counters_.resyncs;
        end = WatchEnd::kRange;
        return false;
      }
      {
        std::lock_guard lock(mu_);
        ++counters_.watches;
      }
      set_problem({});  // etcd answers again
    }
    if (m.canceled) {
      if (m.compact_revision > 0) {
        LOG_INFO("etcd %s: revision %lld was compacted (compact revision %lld): reading %s again",
                 options_.address.c_str(), static_cast<long long>(revision_ + 1),
                 static_cast<long long>(m.compact_revision), key_prefix_.c_str());
        std::lock_guard lock(mu_);
        ++counters_.compacted;
      } else {
        LOG_WARN("etcd %s: the watch was canceled (%s): reading %s again", options_.address.c_str(),
                 m.cancel_reason.c_str(), key_prefix_.c_str());
      }
      end = WatchEnd::kRange;
      return false;
    }
    bool changed = false;
    if (!m.events.empty()) {
      std::lock_guard lock(mu_);
      for (const auto& ev : m.events) {
        if (ev.deleted) {
          docs_.erase(ev.kv.key);
        } else {
          docs_.put(ev.kv.key, ev.kv.value, std::to_string(ev.kv.mod_revision));
        }
        revision_ = std::max(revision_, ev.kv.mod_revision);
      }
      counters_.events += m.events.size();
      counters_.revision = std::max(counters_.revision, revision_);
      changed = docs_.pending();
    } else if (!m.created && m.header.revision > revision_) {
      revision_ = m.header.revision;  // a progress notification: nothing before it is pending
    }
    if (changed) notify();
    std::lock_guard lock(mu_);
    return !stopping_;
  };
  auto r = client_.watch(key_prefix_, range_end_, revision_ + 1, on_message, options_.watch_idle);
  {
    std::lock_guard lock(mu_);
    if (stopping_) return WatchEnd::kStopped;
  }
  if (end == WatchEnd::kRange) return end;
  if (!r) {
    if (r.error().kind == ErrorKind::kTimeout && *created) return WatchEnd::kIdle;
    *error = r.error().message;
    return WatchEnd::kBroken;
  }
  if (error->empty()) *error = "the watch stream ended";
  return WatchEnd::kBroken;
}

void EtcdSource::run() {
  bool need_range = true;
  common::Backoff backoff(options_.backoff_min, options_.backoff_max);
  auto back_off = [&]() { return sleep_for(backoff.next()); };
  for (;;) {
    {
      std::lock_guard lock(mu_);
      if (stopping_) return;
    }
    std::string error;
    if (need_range) {
      if (!range_all(&error)) {
        set_problem(error);
        if (!back_off()) return;
        continue;
      }
      need_range = false;
      backoff.reset();
      set_problem({});
    }
    bool created = false;
    WatchEnd end = watch_once(&error, &created);
    switch (end) {
      case WatchEnd::kStopped:
        return;
      case WatchEnd::kRange:
        need_range = true;
        backoff.reset();
        set_problem({});
        break;
      case WatchEnd::kIdle:
        backoff.reset();
        break;
      case WatchEnd::kBroken:
        if (created) {
          // The stream worked and then broke (etcd restarting, a connection cut): resume soon,
          // reporting only when resuming fails.
          backoff.reset();
          {
            std::lock_guard lock(mu_);
            ++counters_.errors;
          }
          LOG_INFO("etcd %s: %s; resuming the watch from revision %lld", options_.address.c_str(),
                   error.c_str(), static_cast<long long>(revision_ + 1));
        } else {
          set_problem(error);
        }
        if (!back_off()) return;
        break;
    }
  }
}

}  // namespace portico::control
