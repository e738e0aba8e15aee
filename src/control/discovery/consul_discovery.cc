#include "control/discovery/consul_discovery.h"

#include <algorithm>
#include <condition_variable>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include <nlohmann/json.hpp>

#include "control/http/client.h"

namespace portico::control {

namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

constexpr milliseconds kMinInterval{50};  // between two queries of one target
constexpr milliseconds kMargin{5000};     // beyond ?wait= before a query times out

const nlohmann::json* member(const nlohmann::json& o, const char* name) {
  auto it = o.find(name);
  return it == o.end() ? nullptr : &*it;
}

}  // namespace

Result<std::vector<snapshot::Endpoint>> parse_health_service(std::string_view body,
                                                             const std::vector<std::string>& tags) {
  nlohmann::json doc = nlohmann::json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded()) return Error::invalid("the body is not JSON: " + consul::brief(body));
  if (!doc.is_array()) return Error::invalid("the body is not a JSON array of instances");
  std::vector<snapshot::Endpoint> out;
  for (size_t i = 0; i < doc.size(); ++i) {
    const nlohmann::json& e = doc[i];
    const std::string where = "instance " + std::to_string(i) + ": ";
    if (!e.is_object()) return Error::invalid(where + "not an object");
    const nlohmann::json* service = member(e, "Service");
    if (!service || !service->is_object()) return Error::invalid(where + "no Service object");
    const nlohmann::json* port = member(*service, "Port");
    if (!port || !port->is_number_unsigned() || port->get<uint64_t>() == 0 ||
        port->get<uint64_t>() > 65535) {
      return Error::invalid(where + "Service.Port is not a port number");
    }
    std::set<std::string> have;
    if (const nlohmann::json* t = member(*service, "Tags"); t && !t->is_null()) {
      if (!t->is_array()) return Error::invalid(where + "Service.Tags is not an array");
      for (const auto& tag : *t) {
        if (!tag.is_string()) return Error::invalid(where + "Service.Tags has a non-string");
        have.insert(tag.get<std::string>());
      }
    }
    std::string address;
    if (const nlohmann::json* a = member(*service, "Address"); a && !a->is_null()) {
      if (!a->is_string()) return Error::invalid(where + "Service.Address is not a string");
      address = a->get<std::string>();
    }
    if (address.empty()) {
      const nlohmann::json* node = member(e, "Node");
      const nlohmann::json* a = node && node->is_object() ? member(*node, "Address") : nullptr;
      if (!a || !a->is_string() || a->get_ref<const std::string&>().empty()) {
        return Error::invalid(where + "neither Service.Address nor Node.Address");
      }
      address = a->get<std::string>();
    }
    bool all = std::all_of(tags.begin(), tags.end(),
                           [&](const std::string& tag) { return have.count(tag) > 0; });
    if (!all) continue;
    snapshot::Endpoint ep;
    ep.address = std::move(address);
    ep.port = static_cast<uint16_t>(port->get<uint64_t>());
    out.push_back(std::move(ep));
  }
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) {
    return a.address != b.address ? a.address < b.address : a.port < b.port;
  });
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

std::string health_query_target(const ConsulDiscoveryOptions& options,
                                const snapshot::DiscoveryTarget& target, uint64_t index) {
  consul::Endpoint e = options.endpoint;
  if (!target.datacenter.empty()) e.datacenter = target.datacenter;
  std::string out = options.endpoint.url.path + "/v1/health/service/" +
                    http::url_escape(target.name) + "?passing";
  out += consul::read_params(e, options.consistency, index, options.wait);
  for (const auto& t : target.tags)
    out += "&tag=" + http::url_escape(t);
  return out;
}

struct ConsulDiscovery::Watch {
  snapshot::DiscoveryTarget target;
  std::vector<snapshot::Endpoint> endpoints;
  std::string problem;
  bool answered = false;
  bool stop = false;
  uint64_t generation = 0;               // of the options the thread last started a query with
  std::shared_ptr<http::Client> client;  // guarded by Shared::mu (the thread replaces it)
  std::thread thread;
};

struct ConsulDiscovery::Shared {
  mutable std::mutex mu;
  std::condition_variable cv;  // an answer, a stop, new options
  std::map<std::string, std::shared_ptr<Watch>> watches;
  std::vector<std::shared_ptr<Watch>> stopped;  // joined by reconcile() / the destructor
  ConsulDiscoveryOptions options;
  uint64_t generation = 0;  // of options; 0: not configured
  bool changed = false;
  std::function<void()> wake;
  Counters counters;
};

ConsulDiscovery::ConsulDiscovery() : shared_(std::make_shared<Shared>()) {}

ConsulDiscovery::~ConsulDiscovery() {
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

void ConsulDiscovery::start(std::function<void()> wake) {
  std::lock_guard lock(shared_->mu);
  shared_->wake = std::move(wake);
}

void ConsulDiscovery::configure(const ConsulDiscoveryOptions& options) {
  {
    std::lock_guard lock(shared_->mu);
    if (shared_->generation > 0 && shared_->options == options) return;
    shared_->options = options;
    ++shared_->generation;
    // A query parked with the old options ends now (under the lock: a thread resets its
    // client's cancel under it too, then reads the options); it reads again with the new ones.
    for (auto& [key, w] : shared_->watches) {
      if (w->client) w->client->cancel();
    }
  }
  shared_->cv.notify_all();
  reconcile();
}

void ConsulDiscovery::watch(const std::vector<snapshot::DiscoveryTarget>& targets) {
  std::map<std::string, snapshot::DiscoveryTarget> wanted;
  for (const auto& t : targets) {
    if (t.source == "consul") wanted.emplace(t.key(), t);
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
void ConsulDiscovery::reconcile() {
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
            w->problem = "more than " + std::to_string(kMaxTargets) +
                         " Consul services watched: this one is not (no endpoints from it)";
            w->answered = true;
            shared_->changed = true;
          }
          continue;
        }
        ++running;
        auto url = shared_->options.endpoint.url;
        w->client = std::make_shared<http::Client>(url);
        std::shared_ptr<Shared> shared = shared_;
        std::shared_ptr<Watch> self = w;
        w->thread = std::thread([shared, self] {
          consul::BlockingIndex index;
          consul::Backoff backoff(std::chrono::milliseconds(250), std::chrono::seconds(30));
          uint64_t generation = 0;
          Clock::time_point last{};
          for (;;) {
            // At most one query every kMinInterval.
            const auto next = last + kMinInterval;
            if (Clock::now() < next) std::this_thread::sleep_until(next);
            last = Clock::now();
            ConsulDiscoveryOptions options;
            std::shared_ptr<http::Client> client;
            {
              std::unique_lock lock(shared->mu);
              if (self->stop) return;
              // Before reading the options: a cancel() for newer ones ends this query.
              self->client->reset_cancel();
              options = shared->options;
              if (generation != shared->generation) {
                generation = shared->generation;
                index.reset();
              }
              const http::Url& u = self->client->url();
              if (u.host != options.endpoint.url.host || u.port != options.endpoint.url.port) {
                self->client = std::make_shared<http::Client>(options.endpoint.url);
              }
              client = self->client;
            }
            http::Request req;
            req.target = health_query_target(options, self->target, index.value());
            req.headers = consul::request_headers(options.endpoint);
            auto r = client->send(req, options.wait + kMargin);
            std::string problem;
            std::optional<std::vector<snapshot::Endpoint>> found;
            if (!r) {
              problem = "Consul unreachable: " + r.error().message;
            } else if (r.value().status != 200) {
              problem = "Consul answered " + std::to_string(r.value().status) + ": " +
                        consul::brief(r.value().body);
            } else {
              auto parsed = parse_health_service(r.value().body, self->target.tags);
              if (!parsed) {
                problem = "Consul's answer is not understood: " + parsed.error().message;
              } else {
                auto idx = consul::parse_index(r.value().header("x-consul-index"));
                if (idx) index.update(*idx);
                found = std::move(parsed.value());
              }
            }
            std::function<void()> wake;
            milliseconds delay{0};
            {
              std::lock_guard lock(shared->mu);
              if (self->stop) return;
              if (generation != shared->generation) continue;  // cancelled by new options
              ++shared->counters.queries;
              std::vector<snapshot::Endpoint> endpoints = self->endpoints;
              if (found) {
                backoff.reset();
                endpoints = std::move(*found);
                if (endpoints.empty()) problem = "service not found in Consul";
              } else {
                ++shared->counters.failures;
                index.reset();
                delay = backoff.next();
              }
              if (!self->answered || endpoints != self->endpoints || problem != self->problem) {
                self->endpoints = std::move(endpoints);
                self->problem = std::move(problem);
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

bool ConsulDiscovery::wait_first(std::chrono::milliseconds timeout) {
  std::unique_lock lock(shared_->mu);
  if (shared_->generation == 0) return false;
  return shared_->cv.wait_for(lock, timeout, [this] {
    return std::all_of(shared_->watches.begin(), shared_->watches.end(),
                       [](const auto& w) { return w.second->answered; });
  });
}

std::optional<DiscoveredMap> ConsulDiscovery::poll() {
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

ConsulDiscovery::Counters ConsulDiscovery::counters() const {
  std::lock_guard lock(shared_->mu);
  Counters c = shared_->counters;
  c.services = shared_->watches.size();
  c.failing = 0;
  for (const auto& [key, w] : shared_->watches)
    c.failing += w->problem.empty() ? 0 : 1;
  return c;
}

}  // namespace portico::control
