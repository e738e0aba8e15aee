#include "control/sources/kube_informer.h"

#include <utility>

#include "common/backoff.h"
#include "common/log.h"
#include "control/sources/kube_api.h"

namespace portico::control::kube {

namespace {

using nlohmann::json;

// "<namespace>/<name>" of an object; empty when it has no name.
std::string key_of(const json& object) {
  if (!object.is_object() || !object.contains("metadata") || !object["metadata"].is_object()) {
    return {};
  }
  const json& m = object["metadata"];
  if (!m.contains("name") || !m["name"].is_string()) return {};
  std::string ns = m.contains("namespace") && m["namespace"].is_string()
                       ? m["namespace"].get<std::string>()
                       : std::string();
  return ns + "/" + m["name"].get<std::string>();
}

}  // namespace

Informer::Informer(InformerOptions options, std::function<void()> on_change)
    : options_(std::move(options)), on_change_(std::move(on_change)), client_(options_.url) {}

Informer::~Informer() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  client_.cancel();
  if (thread_.joinable()) thread_.join();
}

void Informer::start() {
  thread_ = std::thread([this] { run(); });
}

Informer::Objects Informer::objects() const {
  std::lock_guard lock(mu_);
  return objects_;
}

bool Informer::synced() const {
  std::lock_guard lock(mu_);
  return synced_;
}

uint64_t Informer::changes() const {
  std::lock_guard lock(mu_);
  return changes_;
}

std::string Informer::problem() const {
  std::lock_guard lock(mu_);
  return problem_;
}

Informer::Counters Informer::counters() const {
  std::lock_guard lock(mu_);
  return counters_;
}

bool Informer::stopping() const {
  std::lock_guard lock(mu_);
  return stopping_;
}

bool Informer::sleep_for(http::Millis d) {
  std::unique_lock lock(mu_);
  return !cv_.wait_for(lock, d, [this] { return stopping_; });
}

void Informer::set_problem(const std::string& error) {
  bool changed = false;
  {
    std::lock_guard lock(mu_);
    if (!error.empty()) ++counters_.errors;
    changed = problem_.empty() != error.empty();
    problem_ = error;
  }
  if (!changed) return;
  const std::string label = label_of(options_.url);
  if (error.empty()) {
    LOG_INFO("kubernetes %s %s: answering again", label.c_str(), options_.what.c_str());
  } else {
    LOG_WARN("kubernetes %s %s: %s; keeping what was read before", label.c_str(),
             options_.what.c_str(), error.c_str());
  }
  on_change_();
}

bool Informer::list(std::string* error) {
  std::string query;
  if (!options_.label_selector.empty()) {
    query = "labelSelector=" + http::url_escape(options_.label_selector);
  }
  auto listed = kube::list(client_, options_.url.path + options_.collection, query,
                           options_.token_file, options_.page_limit, options_.timeout);
  if (!listed) {
    *error = listed.error().message;
    return false;
  }
  Objects next;
  for (auto& item : listed->items) {
    std::string key = key_of(item);
    if (!key.empty()) next[key] = std::make_shared<const json>(std::move(item));
  }
  {
    std::lock_guard lock(mu_);
    objects_ = std::move(next);
    synced_ = true;
    ++changes_;
    ++counters_.lists;
    counters_.list_pages += listed->pages;
    counters_.list_restarts += listed->restarts;
  }
  resource_version_ = listed->resource_version;
  on_change_();
  return true;
}

Informer::WatchEnd Informer::watch(std::string* error, bool* opened) {
  http::Request request;
  request.target =
      options_.url.path + options_.collection +
      "?watch=1&allowWatchBookmarks=true&resourceVersion=" + http::url_escape(resource_version_) +
      "&timeoutSeconds=" + std::to_string(options_.watch_timeout_seconds);
  if (!options_.label_selector.empty()) {
    request.target += "&labelSelector=" + http::url_escape(options_.label_selector);
  }
  if (!headers(options_.token_file, &request.headers, error)) return WatchEnd::kBroken;
  WatchEnd end = WatchEnd::kEnded;
  int refused = 0;
  std::string refused_body;
  auto on_head = [&](const http::Response& head) {
    if (head.status == 200) {
      *opened = true;
      {
        std::lock_guard lock(mu_);
        ++counters_.watches;
      }
      set_problem({});
    } else {
      refused = head.status;
    }
    return true;
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
    const std::string type = event["type"].get<std::string>();
    json& object = event["object"];
    if (type == "ERROR") {
      const bool gone = object.is_object() && object.contains("code") &&
                        object["code"].is_number_integer() && object["code"].get<int>() == 410;
      std::lock_guard lock(mu_);
      ++(gone ? counters_.expired : counters_.errors);
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
      if (!rv.empty()) resource_version_ = rv;
      return !stopping();
    }
    if (type != "ADDED" && type != "MODIFIED" && type != "DELETED") {
      *error = "a watch event of unknown type \"" + type + "\"";
      end = WatchEnd::kBroken;
      return false;
    }
    std::string key = key_of(object);
    {
      std::lock_guard lock(mu_);
      ++counters_.events;
      if (!key.empty()) {
        if (type == "DELETED") {
          objects_.erase(key);
        } else {
          objects_[key] = std::make_shared<const json>(std::move(object));
        }
        ++changes_;
      }
    }
    if (!rv.empty()) resource_version_ = rv;
    if (!key.empty()) on_change_();
    return !stopping();
  };
  const http::Millis idle =
      http::Millis(1000LL * options_.watch_timeout_seconds) + http::Millis(30000);
  auto r = client_.stream_lines(request, on_head, on_line, idle);
  if (stopping()) return WatchEnd::kStopped;
  if (refused == 410) {
    std::lock_guard lock(mu_);
    ++counters_.expired;
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
  return WatchEnd::kEnded;
}

void Informer::run() {
  bool need_list = true;
  common::Backoff backoff(options_.backoff_min, options_.backoff_max);
  for (;;) {
    if (stopping()) return;
    std::string error;
    if (need_list) {
      if (!list(&error)) {
        if (stopping()) return;
        set_problem(error);
        if (!sleep_for(backoff.next())) return;
        continue;
      }
      need_list = false;
      backoff.reset();
      set_problem({});
    }
    bool opened = false;
    switch (watch(&error, &opened)) {
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
          backoff.reset();
          std::lock_guard lock(mu_);
          ++counters_.errors;
        } else {
          set_problem(error);
        }
        if (!sleep_for(backoff.next())) return;
        break;
    }
  }
}

}  // namespace portico::control::kube
