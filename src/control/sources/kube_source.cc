#include "control/sources/kube_source.h"

#include <algorithm>
#include <cctype>
#include <ctime>
#include <utility>

#include <nlohmann/json.hpp>

#include "api/decode.h"
#include "api/resources.h"
#include "common/backoff.h"
#include "common/log.h"
#include "control/sources/config_dir.h"

namespace portico::control {

namespace {

using http::Millis;
using nlohmann::json;

std::string utc_now() {
  std::time_t t = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%H:%M:%S UTC", &tm);
  return buf;
}

std::string group_version(const KubeSource::KindInfo& k) {
  return std::string(k.group) + "/" + k.version;
}

// An object as the source keeps it: its key, the document handed to the decoder, its
// resourceVersion and its status (JSON, "" when it has none).
struct ObjectDoc {
  std::string key, text, resource_version, status;
};

std::optional<ObjectDoc> object_doc(const KubeSource::KindInfo& kind, const json& object,
                                    std::string* why) {
  if (!object.is_object()) {
    *why = "an object that is not a JSON object";
    return std::nullopt;
  }
  auto m = object.find("metadata");
  if (m == object.end() || !m->is_object()) {
    *why = "an object without metadata";
    return std::nullopt;
  }
  auto name = m->find("name");
  auto ns = m->find("namespace");
  if (name == m->end() || !name->is_string() || name->get_ref<const std::string&>().empty() ||
      ns == m->end() || !ns->is_string() || ns->get_ref<const std::string&>().empty()) {
    *why = "an object without metadata.name or metadata.namespace";
    return std::nullopt;
  }
  ObjectDoc out;
  const std::string& n = name->get_ref<const std::string&>();
  const std::string& space = ns->get_ref<const std::string&>();
  out.key = group_version(kind) + "/" + kind.kind + "/" + space + "/" + n;
  json doc = json::object();
  doc["apiVersion"] = api::kApiVersion;  // the CRD's group says what it is
  doc["kind"] = kind.kind;
  json meta = json::object();
  meta["name"] = n;
  meta["namespace"] = space;
  if (auto labels = m->find("labels"); labels != m->end() && !labels->is_null()) {
    meta["labels"] = *labels;
  }
  if (auto gen = m->find("generation"); gen != m->end() && gen->is_number_integer()) {
    meta["generation"] = *gen;
  }
  doc["metadata"] = std::move(meta);
  if (auto spec = object.find("spec"); spec != object.end()) doc["spec"] = *spec;
  out.text = doc.dump(2, ' ', false, json::error_handler_t::replace) + "\n";
  if (auto rv = m->find("resourceVersion"); rv != m->end() && rv->is_string()) {
    out.resource_version = rv->get<std::string>();
  }
  if (auto st = object.find("status"); st != object.end() && !st->is_null()) {
    out.status = st->dump(-1, ' ', false, json::error_handler_t::replace);
  }
  return out;
}

using kube::status_message;

}  // namespace

const std::vector<KubeSource::KindInfo>& KubeSource::kinds() {
  static const std::vector<KindInfo> kKinds = {
      {"gateway.solo.io", "v1", "Gateway", "gateways"},
      {"gateway.solo.io", "v1", "VirtualService", "virtualservices"},
      {"gateway.solo.io", "v1", "RouteTable", "routetables"},
      {"gloo.solo.io", "v1", "Upstream", "upstreams"},
      {"gloo.solo.io", "v1", "UpstreamGroup", "upstreamgroups"},
      // Not Settings: they choose the sources and are read from portico run's directory at start;
      // a Settings object in the cluster (Gloo's own, for one) would compete with that one.
  };
  return kKinds;
}

std::optional<std::string> KubeSource::document_of(const KindInfo& kind,
                                                   const std::string& object_json, std::string* key,
                                                   std::string* why) {
  json j = json::parse(object_json, nullptr, false);
  auto d = object_doc(kind, j, why);
  if (!d) return std::nullopt;
  *key = d->key;
  return d->text;
}

Result<std::unique_ptr<KubeSource>> KubeSource::make(KubeSourceOptions options) {
  api::KubernetesApiSpec spec;
  spec.address = options.address;
  spec.token_file = options.token_file;
  spec.tls = options.tls;
  auto url = kube::url_of(spec);
  if (!url) return url.error();
  return std::unique_ptr<KubeSource>(new KubeSource(std::move(url.value()), std::move(options)));
}

KubeSource::KubeSource(http::Url url, KubeSourceOptions options)
    : options_(std::move(options)),
      url_(std::move(url)),
      writer_(url_),
      applier_(url_),
      docs_("kubernetes", "") {
  label_ = kube::label_of(url_);
  std::vector<std::string> spaces = options_.namespaces;
  if (spaces.empty()) spaces.push_back("");
  for (const auto& k : kinds()) {
    for (const auto& ns : spaces) {
      auto s = std::make_unique<Slice>();
      s->kind = &k;
      s->ns = ns;
      s->label = std::string(k.plural) + "." + k.group + " (" +
                 (ns.empty() ? std::string("all namespaces") : "namespace " + ns) + ")";
      s->client = std::make_unique<http::Client>(url_);
      slices_.push_back(std::move(s));
    }
  }
}

KubeSource::~KubeSource() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  for (auto& s : slices_)
    s->client->cancel();
  writer_.cancel();
  for (auto& s : slices_) {
    if (s->thread.joinable()) s->thread.join();
  }
  if (writer_thread_.joinable()) writer_thread_.join();
}

void KubeSource::start(std::function<void()> wake) {
  wake_ = std::move(wake);
  for (auto& s : slices_) {
    Slice* slice = s.get();
    slice->thread = std::thread([this, slice] { run(slice); });
  }
  writer_thread_ = std::thread([this] { write_statuses(); });
}

Delta KubeSource::poll(bool full) {
  (void)full;  // a watch misses nothing: a resync has nothing to catch up with
  std::lock_guard lock(mu_);
  return docs_.take_delta();
}

std::string KubeSource::problem() const {
  std::lock_guard lock(mu_);
  std::string what;
  int failing = 0;
  for (const auto& s : slices_) {
    if (s->problem.empty()) continue;
    if (++failing == 1) what = s->label + ": " + s->problem + ", since " + s->problem_since;
  }
  if (failing == 0) return {};
  std::string out = label_ + ": " + what;
  if (failing > 1) out += " (and " + std::to_string(failing - 1) + " more kinds failing)";
  return out + "; serving the " + std::to_string(docs_.delivered()) +
         " resource(s) it delivered before";
}

KubeSource::Counters KubeSource::counters() const {
  std::lock_guard lock(mu_);
  return counters_;
}

std::string KubeSource::stats() const {
  Counters c;
  size_t objects = 0;
  {
    std::lock_guard lock(mu_);
    c = counters_;
    objects = docs_.view().size();
  }
  std::string out;
  auto metric = [&](const char* name, const char* type, uint64_t value) {
    out += std::string("# TYPE ") + name + " " + type + "\n" + name + " " + std::to_string(value) +
           "\n";
  };
  metric("portico_kubernetes_lists_total", "counter", c.lists);
  metric("portico_kubernetes_list_pages_total", "counter", c.list_pages);
  metric("portico_kubernetes_list_restarts_total", "counter", c.list_restarts);
  metric("portico_kubernetes_watches_total", "counter", c.watches);
  metric("portico_kubernetes_events_total", "counter", c.events);
  metric("portico_kubernetes_bookmarks_total", "counter", c.bookmarks);
  metric("portico_kubernetes_expired_total", "counter", c.expired);
  metric("portico_kubernetes_errors_total", "counter", c.errors);
  metric("portico_kubernetes_status_writes_total", "counter", c.status_writes);
  metric("portico_kubernetes_status_conflicts_total", "counter", c.status_conflicts);
  metric("portico_kubernetes_status_write_failures_total", "counter", c.status_write_failures);
  metric("portico_kubernetes_objects", "gauge", objects);
  return out;
}

void KubeSource::notify() {
  if (wake_) wake_();
}

bool KubeSource::stopping() const {
  std::lock_guard lock(mu_);
  return stopping_;
}

bool KubeSource::sleep_for(Millis d) {
  std::unique_lock lock(mu_);
  return !cv_.wait_for(lock, d, [this] { return stopping_; });
}

void KubeSource::set_problem(Slice* s, const std::string& error) {
  bool changed = false;
  {
    std::lock_guard lock(mu_);
    if (!error.empty()) ++counters_.errors;
    if (error != s->problem) {
      if (s->problem.empty()) s->problem_since = utc_now();
      changed = s->problem.empty() != error.empty();
      s->problem = error;
    }
  }
  if (changed) {
    if (error.empty()) {
      LOG_INFO("kubernetes %s %s: answering again", label_.c_str(), s->label.c_str());
    } else {
      LOG_WARN("kubernetes %s %s: %s; serving what it delivered before", label_.c_str(),
               s->label.c_str(), error.c_str());
    }
    notify();  // /ready and portico_config_source_up follow
  }
}

std::string KubeSource::collection(const Slice& s) const {
  std::string out = url_.path + "/apis/" + s.kind->group + "/" + s.kind->version;
  if (!s.ns.empty()) out += "/namespaces/" + http::url_escape(s.ns);
  return out + "/" + s.kind->plural;
}

bool KubeSource::list(Slice* s, std::string* error) {
  auto listed = kube::list(*s->client, collection(*s), "", options_.token_file, options_.page_limit,
                           options_.timeout);
  if (!listed) {
    *error = listed.error().message;
    if (error->find("HTTP 404") != std::string::npos) {
      *error += " (is the CustomResourceDefinition " + std::string(s->kind->plural) + "." +
                s->kind->group + " installed? deploy/kubernetes/)";
    }
    return false;
  }
  {
    std::lock_guard lock(mu_);
    counters_.list_pages += listed->pages;
    counters_.list_restarts += listed->restarts;
  }
  if (listed->restarts > 0) {
    LOG_INFO("kubernetes %s %s: a continue token expired (410): listed again from the start",
             label_.c_str(), s->label.c_str());
  }
  std::map<std::string, KeyedDocuments::Value> mine;
  std::map<std::string, std::string> statuses;
  for (const auto& item : listed->items) {
    std::string why;
    auto d = object_doc(*s->kind, item, &why);
    if (!d) {
      LOG_WARN("kubernetes %s %s: list: %s (skipped)", label_.c_str(), s->label.c_str(),
               why.c_str());
      continue;
    }
    if (!d->status.empty()) statuses[d->key] = d->status;
    mine.emplace(d->key, KeyedDocuments::Value{std::move(d->text), d->resource_version});
  }
  // This slice's keys: "<group>/<version>/<Kind>/" (and "<namespace>/" when it watches one).
  std::string prefix = group_version(*s->kind) + "/" + s->kind->kind + "/";
  if (!s->ns.empty()) prefix += s->ns + "/";
  auto in_slice = [&](const std::string& key) {
    return key.compare(0, prefix.size(), prefix) == 0;
  };
  bool changed = false;
  {
    std::lock_guard lock(mu_);
    std::map<std::string, KeyedDocuments::Value> view;
    for (const auto& [key, value] : docs_.view()) {
      if (!in_slice(key)) view.emplace(key, value);
    }
    for (auto& [key, value] : mine)
      view[key] = std::move(value);
    docs_.replace_all(std::move(view));
    for (auto it = status_seen_.begin(); it != status_seen_.end();) {
      it = in_slice(it->first) ? status_seen_.erase(it) : std::next(it);
    }
    for (auto& [key, st] : statuses)
      status_seen_[key] = std::move(st);
    ++counters_.lists;
    changed = docs_.pending();
  }
  s->resource_version = listed->resource_version;
  if (changed) notify();
  return true;
}

KubeSource::WatchEnd KubeSource::watch(Slice* s, std::string* error, bool* opened) {
  http::Request request;
  request.target = collection(*s) + "?watch=1&allowWatchBookmarks=true&resourceVersion=" +
                   http::url_escape(s->resource_version) +
                   "&timeoutSeconds=" + std::to_string(options_.watch_timeout_seconds);
  if (!headers(&request.headers, error)) return WatchEnd::kBroken;
  WatchEnd end = WatchEnd::kEnded;
  int refused = 0;  // the HTTP status of a refused watch
  std::string refused_body;
  auto on_head = [&](const http::Response& head) {
    if (head.status == 200) {
      *opened = true;
      {
        std::lock_guard lock(mu_);
        ++counters_.watches;
      }
      set_problem(s, {});
      return true;
    }
    refused = head.status;
    return true;  // the body is a Status: read for its message
  };
  auto on_line = [&](std::string_view line) {
    if (refused != 0) {
      if (refused_body.size() < 4096) refused_body.append(line);
      return true;
    }
    if (line.empty()) return true;
    json event = json::parse(line, nullptr, false);
    if (!event.is_object() || !event.contains("type") || !event["type"].is_string() ||
        !event.contains("object")) {
      *error = "a watch event that is not Kubernetes' JSON";
      end = WatchEnd::kBroken;
      return false;
    }
    const std::string& type = event["type"].get_ref<const std::string&>();
    const json& object = event["object"];
    if (type == "ERROR") {
      const int code =
          object.is_object() && object.contains("code") && object["code"].is_number_integer()
              ? object["code"].get<int>()
              : 0;
      std::string message =
          object.is_object() && object.contains("message") && object["message"].is_string()
              ? object["message"].get<std::string>()
              : std::string("an ERROR event");
      std::lock_guard lock(mu_);
      if (code == 410) {
        ++counters_.expired;
        LOG_INFO("kubernetes %s %s: %s (410): listing again", label_.c_str(), s->label.c_str(),
                 message.c_str());
      } else {
        ++counters_.errors;
        LOG_WARN("kubernetes %s %s: the watch failed (%d %s): listing again", label_.c_str(),
                 s->label.c_str(), code, message.c_str());
      }
      end = WatchEnd::kRelist;
      return false;
    }
    std::string rv;
    if (object.is_object() && object.contains("metadata") && object["metadata"].is_object() &&
        object["metadata"].contains("resourceVersion") &&
        object["metadata"]["resourceVersion"].is_string()) {
      rv = object["metadata"]["resourceVersion"].get<std::string>();
    }
    if (type == "BOOKMARK") {
      std::lock_guard lock(mu_);
      ++counters_.bookmarks;
      if (!rv.empty()) s->resource_version = rv;
      return !stopping_;
    }
    if (type != "ADDED" && type != "MODIFIED" && type != "DELETED") {
      *error = "a watch event of unknown type \"" + type + "\"";
      end = WatchEnd::kBroken;
      return false;
    }
    std::string why;
    auto d = object_doc(*s->kind, object, &why);
    bool changed = false;
    {
      std::lock_guard lock(mu_);
      ++counters_.events;
      if (!d) {
        LOG_WARN("kubernetes %s %s: %s event: %s (skipped)", label_.c_str(), s->label.c_str(),
                 type.c_str(), why.c_str());
      } else if (type == "DELETED") {
        docs_.erase(d->key);
        status_seen_.erase(d->key);
      } else {
        const auto& view = docs_.view();
        auto was = view.find(d->key);
        // A status write (or any change that leaves the document as it was) changes only the
        // revision: the document is not decoded again (KeyedDocuments compares the text).
        if (d->status.empty()) {
          status_seen_.erase(d->key);
        } else {
          status_seen_[d->key] = d->status;
        }
        if (was == view.end() || was->second.text != d->text ||
            was->second.revision != d->resource_version) {
          docs_.put(d->key, std::move(d->text), d->resource_version);
        }
      }
      if (!rv.empty()) s->resource_version = rv;
      changed = docs_.pending();
    }
    if (changed) notify();
    return !stopping();
  };
  const Millis idle = Millis(1000LL * options_.watch_timeout_seconds) + Millis(30000);
  auto r = s->client->stream_lines(request, on_head, on_line, idle);
  if (stopping()) return WatchEnd::kStopped;
  if (refused == 410) {
    std::lock_guard lock(mu_);
    ++counters_.expired;
    LOG_INFO("kubernetes %s %s: %s: listing again", label_.c_str(), s->label.c_str(),
             status_message(refused, refused_body).c_str());
    return WatchEnd::kRelist;
  }
  if (refused != 0) {
    *error = "watch: " + status_message(refused, refused_body);
    *opened = false;
    return WatchEnd::kBroken;
  }
  if (end != WatchEnd::kEnded) return end;
  if (!r) {
    *error = r.error().message;
    return WatchEnd::kBroken;
  }
  return WatchEnd::kEnded;  // timeoutSeconds: resumed from the same resourceVersion
}

void KubeSource::run(Slice* s) {
  bool need_list = true;
  common::Backoff backoff(options_.backoff_min, options_.backoff_max);
  for (;;) {
    if (stopping()) return;
    std::string error;
    if (need_list) {
      if (!list(s, &error)) {
        if (stopping()) return;
        set_problem(s, error);
        if (!sleep_for(backoff.next())) return;
        continue;
      }
      need_list = false;
      backoff.reset();
      set_problem(s, {});
    }
    bool opened = false;
    switch (watch(s, &error, &opened)) {
      case WatchEnd::kStopped:
        return;
      case WatchEnd::kRelist:
        need_list = true;
        backoff.reset();
        break;
      case WatchEnd::kEnded:
        backoff.reset();
        break;
      case WatchEnd::kBroken:
        if (opened) {
          // The stream worked and then broke (the API server restarting, a connection cut):
          // resume soon from the last resourceVersion, reporting only when resuming fails.
          backoff.reset();
          {
            std::lock_guard lock(mu_);
            ++counters_.errors;
          }
          LOG_INFO("kubernetes %s %s: %s; resuming the watch from resourceVersion %s",
                   label_.c_str(), s->label.c_str(), error.c_str(), s->resource_version.c_str());
        } else {
          set_problem(s, error);
        }
        if (!sleep_for(backoff.next())) return;
        break;
    }
  }
}

void KubeSource::report_statuses(const std::vector<ResourceStatus>& resources,
                                 const std::vector<api::Diagnostic>& origin_errors) {
  auto reason = [](const api::Diagnostic& d) {
    std::string line = d.to_string();
    if (line.size() > kMaxReasonBytes) line = line.substr(0, kMaxReasonBytes) + "...";
    return line;
  };
  std::map<std::string, json> docs;
  for (const auto& r : resources) {
    if (r.source != name()) continue;
    json& j = docs[r.file];
    j["state"] = std::string(to_string(r.state));
    j["observedGeneration"] = r.generation;
    if (r.serving_generation != 0) j["servingGeneration"] = r.serving_generation;
    json reasons = json::array();
    for (size_t i = 0; i < r.reasons.size() && i < kMaxShownReasons; ++i)
      reasons.push_back(reason(r.reasons[i]));
    if (r.reasons.size() > kMaxShownReasons) {
      reasons.push_back("and " + std::to_string(r.reasons.size() - kMaxShownReasons) + " more");
    }
    j["reasons"] = std::move(reasons);
    j["reportedBy"] = "portico";
  }
  // An object whose document does not decode: Rejected, its last good version (if any) served.
  for (const auto& d : origin_errors) {
    std::string why;
    auto parts = docs_.parse_key(d.file, &why);
    if (!parts) continue;  // not a key of this source's layout (a file, an etcd key...)
    bool known = false;
    for (const auto& k : kinds()) {
      known = known ||
              (parts->group == k.group && parts->version == k.version && parts->kind == k.kind);
    }
    if (!known) continue;
    json& j = docs[d.file];
    if (d.is_error()) {
      if (j.contains("observedGeneration") && !j.contains("servingGeneration") &&
          j["state"] != "Rejected") {
        j["servingGeneration"] = j["observedGeneration"];
      }
      j["state"] = "Rejected";
    } else if (!j.contains("state")) {
      j["state"] = "Warning";
    }
    if (!j.contains("reasons")) j["reasons"] = json::array();
    if (j["reasons"].size() < kMaxShownReasons) j["reasons"].push_back(reason(d));
    j["reportedBy"] = "portico";
  }
  std::map<std::string, std::string> desired;
  for (auto& [key, j] : docs)
    desired.emplace(key, j.dump());
  std::map<std::string, std::string> changes;
  for (const auto& [key, text] : desired) {
    auto was = status_desired_.find(key);
    if (was == status_desired_.end() || was->second != text) changes[key] = text;
  }
  status_desired_ = std::move(desired);
  if (changes.empty()) return;
  {
    std::lock_guard lock(mu_);
    for (auto& [key, text] : changes)
      status_pending_[key] = std::move(text);
  }
  cv_.notify_all();
}

void KubeSource::write_statuses() {
  common::Backoff backoff(options_.backoff_min, options_.backoff_max);
  for (;;) {
    std::map<std::string, std::string> batch;
    {
      std::unique_lock lock(mu_);
      cv_.wait(lock, [this] { return stopping_ || !status_pending_.empty(); });
      if (stopping_) return;
      batch.swap(status_pending_);
    }
    bool failed = false;
    for (const auto& [key, text] : batch) {
      if (write_status(key, text)) continue;
      failed = true;
      std::lock_guard lock(mu_);
      if (stopping_) return;
      ++counters_.status_write_failures;
      status_pending_.emplace(key, text);  // again later, unless a newer one is queued
    }
    if (!failed) {
      backoff.reset();
    } else if (!sleep_for(backoff.next())) {
      return;
    }
  }
}

bool KubeSource::write_status(const std::string& key, const std::string& status_json) {
  std::string why;
  auto parts = docs_.parse_key(key, &why);  // parse_key reads only root_: no lock needed
  if (!parts) return true;
  const KindInfo* kind = nullptr;
  for (const auto& k : kinds()) {
    if (parts->group == k.group && parts->version == k.version && parts->kind == k.kind) kind = &k;
  }
  if (kind == nullptr) return true;
  const std::string path = url_.path + "/apis/" + kind->group + "/" + kind->version +
                           "/namespaces/" + http::url_escape(parts->ns) + "/" + kind->plural + "/" +
                           http::url_escape(parts->name);
  json status = json::parse(status_json, nullptr, false);
  std::string rv;
  {
    std::lock_guard lock(mu_);
    auto seen = status_seen_.find(key);
    if (seen != status_seen_.end() && json::parse(seen->second, nullptr, false) == status) {
      return true;  // the object carries it already
    }
    rv = docs_.revision(key);
  }
  std::string error;
  for (int attempt = 0; attempt < 4; ++attempt) {
    if (rv.empty()) return true;  // the object is gone: nothing to write on
    http::Request put;
    put.method = "PUT";
    put.target = path + "/status";
    if (!headers(&put.headers, &error)) return false;
    put.headers.emplace_back("Content-Type", "application/json");
    json body = json::object();
    body["apiVersion"] = group_version(*kind);
    body["kind"] = kind->kind;
    body["metadata"] = {{"name", parts->name}, {"namespace", parts->ns}, {"resourceVersion", rv}};
    body["status"] = status;
    put.body = body.dump();
    auto done = writer_.send(put, options_.timeout);
    if (!done) return false;
    if (done->status == 200 || done->status == 201) {
      std::lock_guard lock(mu_);
      ++counters_.status_writes;
      return true;
    }
    if (done->status == 404) return true;  // deleted meanwhile
    if (done->status == 401 || done->status == 403) {
      LOG_WARN("kubernetes %s: the status of %s is not written: %s (RBAC: update on %s/status)",
               label_.c_str(), key.c_str(), status_message(done->status, done->body).c_str(),
               kind->plural);
      return true;  // not retried: the rules must change first
    }
    if (done->status != 409) return false;
    {
      std::lock_guard lock(mu_);
      ++counters_.status_conflicts;
    }
    // Changed since the revision known here: read the object again for its resourceVersion.
    http::Request get;
    get.target = path;
    if (!headers(&get.headers, &error)) return false;
    auto current = writer_.send(get, options_.timeout);
    if (!current) return false;
    if (current->status == 404) return true;
    if (current->status != 200) return false;
    json object = json::parse(current->body, nullptr, false);
    if (!object.is_object() || !object.contains("metadata") ||
        !object["metadata"].contains("resourceVersion") ||
        !object["metadata"]["resourceVersion"].is_string()) {
      return false;
    }
    if (object.contains("status") && object["status"] == status) return true;
    rv = object["metadata"]["resourceVersion"].get<std::string>();
  }
  return false;
}

WriteResult KubeSource::write(const WriteOp& op) {
  using Outcome = WriteResult::Outcome;
  const KindInfo* kind = nullptr;
  for (const auto& k : kinds()) {
    if (op.kind == k.kind) kind = &k;
  }
  const std::string what = op.kind + " " + op.ns + "/" + op.name;
  if (kind == nullptr) {
    return {Outcome::kUnsupported, "kubernetes " + label_ + ": no custom resource holds " + what};
  }
  const std::string collection_path = url_.path + "/apis/" + kind->group + "/" + kind->version +
                                      "/namespaces/" + http::url_escape(op.ns) + "/" + kind->plural;
  const std::string path = collection_path + "/" + http::url_escape(op.name);
  const std::string where = "kubernetes " + label_ + " " + std::string(kind->plural) + "." +
                            kind->group + " " + op.ns + "/" + op.name;
  auto failed = [&](const std::string& why) {
    return WriteResult{Outcome::kFailed, where + ": " + why};
  };
  std::string error;
  auto send = [&](std::string method, std::string target,
                  const std::string* body) -> std::optional<http::Response> {
    http::Request req;
    req.method = std::move(method);
    req.target = std::move(target);
    if (!headers(&req.headers, &error)) return std::nullopt;
    if (body != nullptr) {
      req.headers.emplace_back("Content-Type", "application/json");
      req.body = *body;
    }
    auto r = applier_.send(req, options_.timeout);
    if (!r) {
      error = r.error().message;
      return std::nullopt;
    }
    return std::move(r.value());
  };

  if (op.action == WriteOp::Action::kDelete) {
    auto r = send("DELETE", path, nullptr);
    if (!r) return failed(error);
    if (r->status == 200 || r->status == 202) return {Outcome::kDeleted, where};
    if (r->status == 404) return {Outcome::kNotFound, where + ": not in the cluster"};
    return failed(status_message(r->status, r->body));
  }

  // The object to write: the document with the custom resource's apiVersion and no status.
  const std::string doc_json = api::document_to_json(op.document, &error);
  if (doc_json.empty()) return failed("the document does not convert to JSON: " + error);
  json object = json::parse(doc_json, nullptr, false);
  if (!object.is_object()) return failed("the document does not convert to JSON");
  object["apiVersion"] = group_version(*kind);
  object["kind"] = kind->kind;
  object.erase("status");
  json& meta = object["metadata"];
  if (!meta.is_object()) meta = json::object();
  meta["name"] = op.name;
  meta["namespace"] = op.ns;
  meta.erase("resourceVersion");
  auto same = [&](const json& current) {
    static const json kEmpty = json::object();
    const json& cm = current.contains("metadata") ? current["metadata"] : kEmpty;
    auto field = [](const json& m, const char* k) { return m.contains(k) ? m[k] : json(); };
    return field(cm, "labels") == field(meta, "labels") &&
           field(cm, "annotations") == field(meta, "annotations") &&
           field(current, "spec") == field(object, "spec");
  };
  for (int attempt = 0; attempt < 3; ++attempt) {
    auto got = send("GET", path, nullptr);
    if (!got) return failed(error);
    if (got->status == 404) {
      meta.erase("resourceVersion");
      const std::string body = object.dump(-1, ' ', false, json::error_handler_t::replace);
      auto r = send("POST", collection_path, &body);
      if (!r) return failed(error);
      if (r->status == 200 || r->status == 201) return {Outcome::kCreated, where};
      if (r->status == 409) continue;  // created meanwhile: read it again
      return failed(status_message(r->status, r->body));
    }
    if (got->status != 200) return failed(status_message(got->status, got->body));
    json current = json::parse(got->body, nullptr, false);
    if (!current.is_object() || !current.contains("metadata") ||
        !current["metadata"].contains("resourceVersion")) {
      return failed("the API server's object has no metadata.resourceVersion");
    }
    if (same(current)) return {Outcome::kUnchanged, where};
    meta["resourceVersion"] = current["metadata"]["resourceVersion"];
    const std::string body = object.dump(-1, ' ', false, json::error_handler_t::replace);
    auto r = send("PUT", path, &body);
    if (!r) return failed(error);
    if (r->status == 200 || r->status == 201) return {Outcome::kConfigured, where};
    if (r->status == 409) continue;  // changed meanwhile: read it again
    return failed(status_message(r->status, r->body));
  }
  return failed("still conflicting after 3 tries (409)");
}

}  // namespace portico::control
