#include "control/sources/consul_kv_source.h"

#include <ctime>
#include <map>
#include <utility>

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
  if (thread_.joinable()) thread_.join();
}

void ConsulKvSource::start(std::function<void()> wake) {
  wake_ = std::move(wake);
  thread_ = std::thread([this] { run(); });
}

Delta ConsulKvSource::poll(bool full) {
  (void)full;
  std::lock_guard<std::mutex> lock(mu_);
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

void ConsulKvSource::set_problem(const std::string& what) {
  std::lock_guard<std::mutex> lock(mu_);
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
    } else {
      problem_.clear();
    }
  }
  if (changed && wake_) wake_();
  return true;
}

}  // namespace portico::control
