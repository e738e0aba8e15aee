#include "control/sources/consul_kv_source.h"

#include <algorithm>
#include <ctime>
#include <map>
#include <utility>

#include <nlohmann/json.hpp>

#include "common/log.h"

namespace portico::control {

namespace {

std::string clock_time() {
  std::time_t now = std::time(nullptr);
  std::tm tm{};
  ::gmtime_r(&now, &tm);
  char buf[16];
  std::strftime(buf, sizeof buf, "%H:%M:%S", &tm);
  return buf;
}

std::string url_label(const http::Url& url) {
  const bool v6 = url.host.find(':') != std::string::npos;
  return "http://" + (v6 ? "[" + url.host + "]" : url.host) + ":" + std::to_string(url.port) +
         url.path;
}

}  // namespace

ConsulKvSource::ConsulKvSource(Options options)
    : options_(std::move(options)),
      client_(options_.endpoint.url),
      writer_(options_.endpoint.url),
      applier_(options_.endpoint.url),
      docs_("consul-kv", options_.root_key) {
  while (!options_.root_key.empty() && options_.root_key.back() == '/')
    options_.root_key.pop_back();
  label_ = url_label(options_.endpoint.url) + " " + options_.root_key + "/";
  if (!options_.endpoint.datacenter.empty()) label_ += " (dc " + options_.endpoint.datacenter + ")";
}

ConsulKvSource::~ConsulKvSource() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  client_.cancel();
  writer_.cancel();
  applier_.cancel();
  if (thread_.joinable()) thread_.join();
  if (writer_thread_.joinable()) writer_thread_.join();
}

void ConsulKvSource::start(std::function<void()> wake) {
  wake_ = std::move(wake);
  thread_ = std::thread([this] { run(); });
  writer_thread_ = std::thread([this] { write_statuses(); });
}

Delta ConsulKvSource::poll(bool full) {
  (void)full;
  std::lock_guard<std::mutex> lock(mu_);
  if (answers_ > 0) delivered_once_ = true;
  return docs_.take_delta();
}

std::string ConsulKvSource::problem() const {
  std::lock_guard<std::mutex> lock(mu_);
  if (problem_.empty()) return {};
  std::string out = "consul-kv " + label_ + ": " + problem_ + ", since " + problem_since_;
  if (docs_.delivered() > 0) out += "; serving what it held before";
  return out;
}

uint64_t ConsulKvSource::answers() const {
  std::lock_guard<std::mutex> lock(mu_);
  return answers_;
}

uint64_t ConsulKvSource::next_index() const {
  std::lock_guard<std::mutex> lock(mu_);
  return index_.value();
}

std::string ConsulKvSource::stats() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::string out;
  auto add = [&](const char* name, const char* type, uint64_t v) {
    out +=
        std::string("# TYPE ") + name + " " + type + "\n" + name + " " + std::to_string(v) + "\n";
  };
  add("portico_consul_kv_queries_total", "counter", queries_);
  add("portico_consul_kv_failures_total", "counter", failures_);
  add("portico_consul_kv_index_resets_total", "counter", index_resets_);
  add("portico_consul_kv_index", "gauge", index_.value());
  add("portico_consul_kv_keys", "gauge", docs_.view().size());
  add("portico_consul_kv_status_writes_total", "counter", status_writes_);
  add("portico_consul_kv_status_write_failures_total", "counter", status_write_failures_);
  return out;
}

void ConsulKvSource::set_problem(const std::string& what) {
  std::lock_guard<std::mutex> lock(mu_);
  ++failures_;
  if (problem_.empty()) {
    problem_since_ = clock_time();
    LOG_WARN("consul-kv %s: %s", label_.c_str(), what.c_str());
  }
  problem_ = what;
}

bool ConsulKvSource::sleep_for(consul::Millis d) {
  std::unique_lock<std::mutex> lock(mu_);
  return !cv_.wait_for(lock, d, [this] { return stopping_; });
}

void ConsulKvSource::run() {
  consul::Backoff backoff(options_.backoff_min, options_.backoff_max);
  auto last_start = std::chrono::steady_clock::now() - options_.min_interval;
  for (;;) {
    // Rate limit: a query that returns at once (a reset index, an answer each write) is not
    // followed by the next one sooner than min_interval after it started.
    const auto due = last_start + options_.min_interval;
    const auto now = std::chrono::steady_clock::now();
    if (due > now &&
        !sleep_for(std::chrono::duration_cast<consul::Millis>(due - now) + consul::Millis(1))) {
      return;
    }
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (stopping_) return;
    }
    last_start = std::chrono::steady_clock::now();
    if (query_once()) {
      backoff.reset();
      continue;
    }
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (stopping_) return;
      index_.reset();  // the next answer is read whole and at once
    }
    if (!sleep_for(backoff.next())) return;
  }
}

bool ConsulKvSource::query_once() {
  uint64_t index = 0;
  {
    std::lock_guard<std::mutex> lock(mu_);
    index = index_.value();
    ++queries_;
  }
  http::Request request;
  request.target =
      "/v1/kv/" + http::url_escape(options_.root_key, /*keep_slash=*/true) + "/?recurse" +
      consul::read_params(options_.endpoint, options_.consistency, index, options_.wait);
  if (!options_.endpoint.url.path.empty())
    request.target = options_.endpoint.url.path + request.target;
  request.headers = consul::request_headers(options_.endpoint);
  // Consul answers a blocking query within wait + wait/16; a margin beyond it for a slow network.
  const consul::Millis timeout =
      index > 0 ? options_.wait + options_.wait / 16 + consul::Millis(5000) : consul::Millis(10000);
  auto response = client_.send(request, timeout);
  if (!response) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (stopping_) return false;  // cancelled by the destructor: not a problem of Consul's
    }
    set_problem(response.error().message);
    return false;
  }
  const http::Response& r = response.value();
  if (r.status != 200 && r.status != 404) {
    std::string what = "HTTP " + std::to_string(r.status);
    if (!r.body.empty()) what += " " + consul::brief(r.body);
    if (r.status == 403) what += " (the ACL token in Settings consul.token/tokenFile)";
    set_problem(what);
    return false;
  }
  auto returned = consul::parse_index(r.header("x-consul-index"));
  if (!returned) {
    set_problem("an answer without a valid X-Consul-Index (not Consul?)");
    return false;
  }
  std::map<std::string, KeyedDocuments::Value> view;
  if (r.status == 200) {
    auto entries = consul::parse_kv_entries(r.body);
    if (!entries) {
      set_problem("an answer that is not Consul's KV JSON: " + entries.error().message);
      return false;
    }
    const std::string prefix = options_.root_key + "/";
    for (auto& e : entries.value()) {
      if (e.key.compare(0, prefix.size(), prefix) != 0) continue;  // not asked for
      view[e.key] = KeyedDocuments::Value{std::move(e.value), std::to_string(e.modify_index)};
    }
  }  // 404: no key under the root (they were all deleted, or never written)
  const std::string* filtered = r.header("x-consul-results-filtered-by-acls");
  bool changed = false;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_) return true;
    if (!index_.update(*returned)) {
      ++index_resets_;
      LOG_INFO("consul-kv %s: the index went backwards (%llu after %llu): reading everything again",
               label_.c_str(), static_cast<unsigned long long>(*returned),
               static_cast<unsigned long long>(index));
    }
    docs_.replace_all(std::move(view));
    ++answers_;
    changed = docs_.pending();
    if (filtered != nullptr && *filtered == "true") {
      if (problem_.empty()) problem_since_ = clock_time();
      problem_ = "the ACL token cannot read some keys below " + options_.root_key +
                 "/ (Consul filtered them out)";
    } else if (!problem_.empty()) {
      LOG_INFO("consul-kv %s: Consul answers again (problem since %s: %s)", label_.c_str(),
               problem_since_.c_str(), problem_.c_str());
      problem_.clear();
    }
  }
  if (changed && wake_) wake_();
  return true;
}

std::string ConsulKvSource::status_key(const std::string& key) const {
  return options_.root_key + ".status" + key.substr(options_.root_key.size());
}

uint64_t ConsulKvSource::status_writes() const {
  std::lock_guard<std::mutex> lock(mu_);
  return status_writes_;
}

void ConsulKvSource::report_statuses(const std::vector<ResourceStatus>& resources,
                                     const std::vector<api::Diagnostic>& origin_errors) {
  const std::string prefix = options_.root_key + "/";
  auto mine = [&](const std::string& key) { return key.compare(0, prefix.size(), prefix) == 0; };
  auto reason = [](const api::Diagnostic& d) {
    std::string line = d.to_string();
    if (line.size() > kMaxReasonBytes) line = line.substr(0, kMaxReasonBytes) + "...";
    return line;
  };
  std::map<std::string, nlohmann::ordered_json> docs;
  for (const auto& r : resources) {
    if (r.source != name() || !mine(r.file)) continue;
    nlohmann::ordered_json& j = docs[status_key(r.file)];
    j["kind"] = r.kind;
    j["namespace"] = r.ns;
    j["name"] = r.name;
    j["state"] = std::string(to_string(r.state));
    j["observedGeneration"] = r.generation;
    if (r.serving_generation != 0) j["servingGeneration"] = r.serving_generation;
    nlohmann::ordered_json reasons = nlohmann::ordered_json::array();
    for (size_t i = 0; i < r.reasons.size() && i < kMaxShownReasons; ++i)
      reasons.push_back(reason(r.reasons[i]));
    if (r.reasons.size() > kMaxShownReasons) {
      reasons.push_back("and " + std::to_string(r.reasons.size() - kMaxShownReasons) + " more");
    }
    j["reasons"] = std::move(reasons);
    j["reportedBy"] = "portico";
  }
  // A key whose value does not decode: Rejected, its last good resource (if any) still served.
  for (const auto& d : origin_errors) {
    if (!mine(d.file)) continue;
    nlohmann::ordered_json& j = docs[status_key(d.file)];
    if (d.is_error()) {
      if (j.contains("observedGeneration") && !j.contains("servingGeneration") &&
          j["state"] != "Rejected") {
        j["servingGeneration"] = j["observedGeneration"];
      }
      j["state"] = "Rejected";
    } else if (!j.contains("state")) {
      j["state"] = "Warning";
    }
    if (!j.contains("reasons")) j["reasons"] = nlohmann::ordered_json::array();
    if (j["reasons"].size() < kMaxShownReasons) j["reasons"].push_back(reason(d));
    j["reportedBy"] = "portico";
  }
  std::map<std::string, std::string> desired;
  for (auto& [key, j] : docs)
    desired.emplace(key, j.dump());
  std::map<std::string, std::optional<std::string>> changes;
  for (const auto& [key, text] : desired) {
    auto was = status_desired_.find(key);
    if (was == status_desired_.end() || was->second != text) changes[key] = text;
  }
  for (const auto& [key, text] : status_desired_) {
    if (!desired.count(key)) changes[key] = std::nullopt;  // the key went: so does its status
  }
  status_desired_ = std::move(desired);
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (delivered_once_ && !swept_) {
      swept_ = true;
      sweep_pending_ = true;
      sweep_keep_.clear();
      for (const auto& [key, text] : status_desired_)
        sweep_keep_.push_back(key);
    } else if (changes.empty()) {
      return;
    }
    for (auto& [key, text] : changes)
      status_pending_[key] = std::move(text);
  }
  cv_.notify_all();
}

bool ConsulKvSource::sweep_statuses(const std::vector<std::string>& keep) {
  const std::string root = options_.root_key + ".status/";
  http::Request list;
  list.target = options_.endpoint.url.path + "/v1/kv/" +
                http::url_escape(root, /*keep_slash=*/true) + "?keys";
  if (!options_.endpoint.datacenter.empty())
    list.target += "&dc=" + http::url_escape(options_.endpoint.datacenter);
  list.headers = consul::request_headers(options_.endpoint);
  auto answer = writer_.send(list, consul::Millis(10000));
  if (!answer) return false;
  if (answer->status == 404) return true;  // no status at all
  if (answer->status == 403) return true;  // may not list: nothing to sweep with this token
  if (answer->status != 200) return false;
  nlohmann::json keys = nlohmann::json::parse(answer->body, nullptr, /*allow_exceptions=*/false);
  if (!keys.is_array()) return false;
  bool ok = true;
  for (const auto& k : keys) {
    if (!k.is_string()) continue;
    const std::string& key = k.get_ref<const std::string&>();
    if (std::binary_search(keep.begin(), keep.end(), key)) continue;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (stopping_) return true;
      if (status_pending_.count(key)) continue;  // a newer status is on its way
    }
    ok = write_status(key, std::nullopt) && ok;
  }
  return ok;
}

void ConsulKvSource::write_statuses() {
  consul::Backoff backoff(options_.backoff_min, options_.backoff_max);
  for (;;) {
    std::map<std::string, std::optional<std::string>> batch;
    std::vector<std::string> keep;
    bool sweep = false;
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [this] { return stopping_ || !status_pending_.empty() || sweep_pending_; });
      if (stopping_) return;
      batch.swap(status_pending_);
      sweep = sweep_pending_;
      sweep_pending_ = false;
      keep = sweep_keep_;
    }
    bool failed = false;
    if (sweep && !sweep_statuses(keep)) {
      failed = true;
      std::lock_guard<std::mutex> lock(mu_);
      sweep_pending_ = true;  // again after the back-off
    }
    for (const auto& [key, text] : batch) {
      if (write_status(key, text)) continue;
      failed = true;
      std::lock_guard<std::mutex> lock(mu_);
      if (stopping_) return;
      ++status_write_failures_;
      status_pending_.emplace(key, text);  // again later, unless a newer one is queued
    }
    if (!failed) {
      backoff.reset();
    } else if (!sleep_for(backoff.next())) {
      return;
    }
  }
}

ConsulKvSource::Cas ConsulKvSource::cas(http::Client& client, const std::string& key,
                                        const std::optional<std::string>& text) const {
  // "/v1/kv/<key>?dc=<dc>&" or "/v1/kv/<key>?": a parameter may follow.
  std::string path =
      options_.endpoint.url.path + "/v1/kv/" + http::url_escape(key, /*keep_slash=*/true) + "?";
  if (!options_.endpoint.datacenter.empty())
    path += "dc=" + http::url_escape(options_.endpoint.datacenter) + "&";
  Cas out;
  auto failed = [&](const http::Response& r) {
    out.status = r.status;
    out.error = "HTTP " + std::to_string(r.status) + " " + consul::brief(r.body);
    return out;
  };
  for (int attempt = 0; attempt < 3; ++attempt) {
    // The key's ModifyIndex now (0: absent), for the compare-and-set.
    http::Request get;
    get.target = path.substr(0, path.size() - 1);
    get.headers = consul::request_headers(options_.endpoint);
    auto current = client.send(get, consul::Millis(10000));
    if (!current) {
      out.error = current.error().message;
      return out;
    }
    uint64_t index = 0;
    out.existed = false;
    if (current->status == 200) {
      auto entries = consul::parse_kv_entries(current->body);
      if (!entries || entries->size() != 1) {
        out.error = "an answer that is not one KV entry";
        return out;
      }
      out.existed = true;
      if (text && entries->front().value == *text) {  // already so
        out.done = true;
        return out;
      }
      index = entries->front().modify_index;
    } else if (current->status != 404) {
      return failed(current.value());
    }
    if (!text && index == 0) {  // nothing to delete
      out.done = true;
      return out;
    }
    http::Request write;
    write.method = text ? "PUT" : "DELETE";
    write.target = path + "cas=" + std::to_string(index);
    write.headers = get.headers;
    if (text) write.body = *text;
    auto done = client.send(write, consul::Millis(10000));
    if (!done) {
      out.error = done.error().message;
      return out;
    }
    if (done->status != 200) return failed(done.value());
    if (done->body.find("true") != std::string::npos) {
      out.done = true;
      out.wrote = true;
      return out;
    }
    // false: another writer changed it in between; read it again
  }
  out.error = "changed by other writers during 3 attempts";
  return out;
}

bool ConsulKvSource::write_status(const std::string& key, const std::optional<std::string>& text) {
  Cas r = cas(writer_, key, text);
  if (r.status == 403) {
    std::lock_guard<std::mutex> lock(mu_);
    if (!status_refused_logged_) {
      LOG_WARN(
          "consul-kv %s: statuses are not written back: %s (the token needs write on "
          "%s.status/)",
          label_.c_str(), r.error.c_str(), options_.root_key.c_str());
      status_refused_logged_ = true;
    }
    return true;  // not retried: the token's rules must change first
  }
  if (!r.done) return false;
  if (r.wrote) {
    std::lock_guard<std::mutex> lock(mu_);
    ++status_writes_;
  }
  return true;
}

WriteResult ConsulKvSource::write(const WriteOp& op) {
  using Outcome = WriteResult::Outcome;
  const std::string what = op.kind + " " + op.ns + "/" + op.name;
  std::string key;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto found = docs_.find_key(op.kind, op.ns, op.name);
    if (!found && op.action == WriteOp::Action::kDelete) {
      return {Outcome::kNotFound, what + " is not in Consul KV below " + options_.root_key + "/"};
    }
    key = found ? *found : docs_.new_key(op.api_version, op.kind, op.ns, op.name);
  }
  const std::string where = "consul " + url_label(options_.endpoint.url) + " key " + key;
  const bool del = op.action == WriteOp::Action::kDelete;
  Cas r = cas(applier_, key, del ? std::nullopt : std::optional<std::string>(op.document));
  if (!r.done) return {Outcome::kFailed, where + ": " + r.error};
  if (del) return {r.existed ? Outcome::kDeleted : Outcome::kNotFound, where};
  if (!r.wrote) return {Outcome::kUnchanged, where};
  return {r.existed ? Outcome::kConfigured : Outcome::kCreated, where};
}

}  // namespace portico::control
