#include "control/discovery/blocking_watch.h"

#include <algorithm>
#include <condition_variable>
#include <map>
#include <mutex>
#include <thread>

#include "common/backoff.h"
#include "control/consul/consul_api.h"

namespace portico::control {

namespace {
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;
}  // namespace

struct BlockingWatcher::Watch {
  snapshot::DiscoveryTarget target;
  std::vector<snapshot::Endpoint> endpoints;
  std::string problem;
  bool answered = false;
  bool stop = false;
  std::shared_ptr<http::Client> client;  // guarded by Shared::mu (the thread replaces it)
  std::thread thread;
};

struct BlockingWatcher::Shared {
  std::string source, agent;
  mutable std::mutex mu;
  std::condition_variable cv;  // an answer, a stop, a new configuration
  std::map<std::string, std::shared_ptr<Watch>> watches;
  std::vector<std::shared_ptr<Watch>> stopped;  // joined by reconcile() / the destructor
  http::Url url;
  std::shared_ptr<const BlockingQuery> query;
  uint64_t generation = 0;  // of url and query; 0: not configured
  bool changed = false;
  std::function<void()> wake;
  Counters counters;
};

BlockingWatcher::BlockingWatcher(std::string source, std::string agent)
    : shared_(std::make_shared<Shared>()) {
  shared_->source = std::move(source);
  shared_->agent = std::move(agent);
}

BlockingWatcher::~BlockingWatcher() {
  std::vector<std::shared_ptr<Watch>> all;
  {
    std::lock_guard lock(shared_->mu);
    for (auto& [key, w] : shared_->watches) {
      w->stop = true;
      if (w->client) w->client->cancel();
      all.push_back(w);
    }
    shared_->watches.clear();
    for (auto& w : shared_->stopped)
      all.push_back(w);
    shared_->stopped.clear();
  }
  shared_->cv.notify_all();
  for (auto& w : all) {
    if (w->thread.joinable()) w->thread.join();
  }
}

void BlockingWatcher::start(std::function<void()> wake) {
  std::lock_guard lock(shared_->mu);
  shared_->wake = std::move(wake);
}

void BlockingWatcher::configure(const http::Url& url, BlockingQuery query) {
  {
    std::lock_guard lock(shared_->mu);
    shared_->url = url;
    shared_->query = std::make_shared<const BlockingQuery>(std::move(query));
    ++shared_->generation;
    // A query parked with the old configuration ends now (under the lock: a thread resets its
    // client's cancel under it too, then reads the configuration); it reads again with the new.
    for (auto& [key, w] : shared_->watches) {
      if (w->client) w->client->cancel();
    }
  }
  shared_->cv.notify_all();
  reconcile();
}

void BlockingWatcher::watch(const std::vector<snapshot::DiscoveryTarget>& targets) {
  std::map<std::string, snapshot::DiscoveryTarget> wanted;
  for (const auto& t : targets) {
    if (t.source == shared_->source) wanted.emplace(t.key(), t);
  }
  {
    std::lock_guard lock(shared_->mu);
    for (auto it = shared_->watches.begin(); it != shared_->watches.end();) {
      if (wanted.count(it->first)) {
        ++it;
        continue;
      }
      it->second->stop = true;
      if (it->second->client) it->second->client->cancel();
      shared_->stopped.push_back(it->second);
      it = shared_->watches.erase(it);
      shared_->changed = true;
    }
    for (auto& [key, t] : wanted) {
      auto [it, inserted] = shared_->watches.try_emplace(key);
      if (inserted) {
        it->second = std::make_shared<Watch>();
        it->second->target = t;
      }
    }
  }
  shared_->cv.notify_all();
  reconcile();
}

// Starts the threads of watches without one (once configured, up to kMaxTargets) and joins the
// stopped ones.
void BlockingWatcher::reconcile() {
  std::vector<std::shared_ptr<Watch>> to_join;
  {
    std::lock_guard lock(shared_->mu);
    to_join.swap(shared_->stopped);
    if (shared_->generation > 0) {
      size_t running = 0;
      for (auto& [key, w] : shared_->watches) {
        if (w->thread.joinable()) ++running;
      }
      for (auto& [key, w] : shared_->watches) {
        if (w->thread.joinable()) continue;
        if (running >= kMaxTargets) {
          if (w->problem.empty()) {
            w->problem = "more than " + std::to_string(kMaxTargets) + " " + shared_->agent +
                         " services watched: this one is not (no endpoints from it)";
            w->answered = true;
            shared_->changed = true;
          }
          continue;
        }
        ++running;
        w->client = std::make_shared<http::Client>(shared_->url);
        std::shared_ptr<Shared> shared = shared_;
        std::shared_ptr<Watch> self = w;
        w->thread = std::thread([shared, self] {
          consul::BlockingIndex index;
          common::Backoff backoff(milliseconds(250), std::chrono::seconds(30));
          uint64_t generation = 0;
          Clock::time_point last{};
          for (;;) {
            // At most one query every kMinInterval.
            const auto next = last + kMinInterval;
            if (Clock::now() < next) std::this_thread::sleep_until(next);
            last = Clock::now();
            std::shared_ptr<const BlockingQuery> query;
            std::shared_ptr<http::Client> client;
            {
              std::unique_lock lock(shared->mu);
              if (self->stop) return;
              // Before reading the configuration: a cancel() for a newer one ends this query.
              self->client->reset_cancel();
              query = shared->query;
              if (generation != shared->generation) {
                generation = shared->generation;
                index.reset();
              }
              const http::Url& u = self->client->url();
              if (u.host != shared->url.host || u.port != shared->url.port) {
                self->client = std::make_shared<http::Client>(shared->url);
              }
              client = self->client;
            }
            BlockingAnswer answer = (*query)(*client, self->target, index.value());
            if (answer.endpoints && answer.index) index.update(*answer.index);
            std::function<void()> wake;
            milliseconds delay{0};
            {
              std::lock_guard lock(shared->mu);
              if (self->stop) return;
              if (generation != shared->generation) continue;  // cancelled by a new configuration
              ++shared->counters.queries;
              std::vector<snapshot::Endpoint> endpoints = self->endpoints;
              if (answer.endpoints) {
                backoff.reset();
                endpoints = std::move(*answer.endpoints);
              } else {
                ++shared->counters.failures;
                index.reset();
                delay = backoff.next();
              }
              if (!self->answered || endpoints != self->endpoints ||
                  answer.problem != self->problem) {
                self->endpoints = std::move(endpoints);
                self->problem = std::move(answer.problem);
                self->answered = true;
                shared->changed = true;
                wake = shared->wake;
              }
            }
            shared->cv.notify_all();
            if (wake) wake();
            if (delay.count() > 0) {
              std::unique_lock lock(shared->mu);
              shared->cv.wait_for(lock, delay,
                                  [&] { return self->stop || generation != shared->generation; });
            }
          }
        });
      }
    }
  }
  for (auto& w : to_join) {
    if (w->thread.joinable()) w->thread.join();
  }
}

bool BlockingWatcher::wait_first(std::chrono::milliseconds timeout) {
  std::unique_lock lock(shared_->mu);
  if (shared_->generation == 0) return false;
  return shared_->cv.wait_for(lock, timeout, [this] {
    return std::all_of(shared_->watches.begin(), shared_->watches.end(),
                       [](const auto& w) { return w.second->answered; });
  });
}

std::optional<DiscoveredMap> BlockingWatcher::poll() {
  std::lock_guard lock(shared_->mu);
  if (!shared_->changed) return std::nullopt;
  shared_->changed = false;
  DiscoveredMap out;
  for (const auto& [key, w] : shared_->watches) {
    if (!w->answered) continue;
    out[key] = Discovered{w->endpoints, w->problem};
  }
  return out;
}

BlockingWatcher::Counters BlockingWatcher::counters() const {
  std::lock_guard lock(shared_->mu);
  Counters c = shared_->counters;
  c.targets = shared_->watches.size();
  c.failing = 0;
  for (const auto& [key, w] : shared_->watches)
    c.failing += w->problem.empty() ? 0 : 1;
  return c;
}

}  // namespace portico::control
