// ConsulBulkWatcher (consul_discovery.h): Consul discovery over a bounded number of connections.
#include <algorithm>
#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>

#include <nlohmann/json.hpp>

#include "control/discovery/consul_discovery.h"
#include "control/http/client.h"

namespace portico::control {

namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

constexpr milliseconds kMargin{5000};        // beyond ?wait= before a list query times out
constexpr milliseconds kReadTimeout{10000};  // one /v1/health/service read
constexpr milliseconds kMinInterval{50};     // between two list queries of a kind
// How long an unattributed move of the services index waits for the checks list to catch up
// (the write that moved it may have changed a check too: then that check names the service).
constexpr milliseconds kExplainWait{200};
constexpr size_t kExplained = 256;  // indexes of attributed check changes remembered

uint64_t fnv(uint64_t h, std::string_view s) {
  for (unsigned char c : s) {
    h ^= c;
    h *= 1099511628211ull;
  }
  h ^= 0xff;  // field separator
  h *= 1099511628211ull;
  return h;
}

const std::string* string_member(const nlohmann::json& o, const char* name) {
  auto it = o.find(name);
  if (it == o.end() || !it->is_string()) return nullptr;
  return &it->get_ref<const std::string&>();
}

}  // namespace

Result<ChecksView> parse_checks(std::string_view body) {
  nlohmann::json doc = nlohmann::json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded()) return Error::invalid("the body is not JSON: " + consul::brief(body));
  if (!doc.is_array()) return Error::invalid("the body is not a JSON array of checks");
  ChecksView out;
  for (size_t i = 0; i < doc.size(); ++i) {
    const nlohmann::json& c = doc[i];
    const std::string where = "check " + std::to_string(i) + ": ";
    if (!c.is_object()) return Error::invalid(where + "not an object");
    const std::string* node = string_member(c, "Node");
    const std::string* id = string_member(c, "CheckID");
    const std::string* status = string_member(c, "Status");
    if (!node || !id || !status) return Error::invalid(where + "no Node, CheckID or Status");
    auto mi = c.find("ModifyIndex");
    if (mi == c.end() || !mi->is_number_unsigned()) {
      return Error::invalid(where + "ModifyIndex is not a non-negative integer");
    }
    const std::string* service = string_member(c, "ServiceName");
    const std::string* service_id = string_member(c, "ServiceID");
    uint64_t h = 14695981039346656037ull;
    h = fnv(h, *node);
    h = fnv(h, *id);
    h = fnv(h, service_id ? *service_id : std::string());
    h = fnv(h, *status);
    h = fnv(h, std::to_string(mi->get<uint64_t>()));
    // Summed: the order of the list does not matter.
    if (service && !service->empty()) {
      out.by_service[*service] += h;
      out.services_on_node[*node].insert(*service);
    } else {
      out.by_node[*node] += h;
    }
  }
  return out;
}

std::set<std::string> changed_services(const ChecksView& before, const ChecksView& after) {
  std::set<std::string> out;
  auto diff = [](const std::map<std::string, uint64_t>& a, const std::map<std::string, uint64_t>& b,
                 const std::function<void(const std::string&)>& changed) {
    for (const auto& [name, h] : a) {
      auto it = b.find(name);
      if (it == b.end() || it->second != h) changed(name);
    }
    for (const auto& [name, h] : b) {
      if (!a.count(name)) changed(name);
    }
  };
  diff(before.by_service, after.by_service, [&](const std::string& s) { out.insert(s); });
  diff(before.by_node, after.by_node, [&](const std::string& node) {
    for (const ChecksView* v : {&before, &after}) {
      auto it = v->services_on_node.find(node);
      if (it != v->services_on_node.end()) out.insert(it->second.begin(), it->second.end());
    }
  });
  return out;
}

Result<std::map<std::string, std::vector<std::string>>> parse_catalog_services(
    std::string_view body) {
  nlohmann::json doc = nlohmann::json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded()) return Error::invalid("the body is not JSON: " + consul::brief(body));
  if (!doc.is_object()) return Error::invalid("the body is not a JSON object of services");
  std::map<std::string, std::vector<std::string>> out;
  for (auto it = doc.begin(); it != doc.end(); ++it) {
    std::vector<std::string>& tags = out[it.key()];
    if (it.value().is_null()) continue;
    if (!it.value().is_array()) return Error::invalid(it.key() + ": the tags are not an array");
    for (const auto& t : it.value()) {
      if (!t.is_string()) return Error::invalid(it.key() + ": a tag is not a string");
      tags.push_back(t.get<std::string>());
    }
    std::sort(tags.begin(), tags.end());
    tags.erase(std::unique(tags.begin(), tags.end()), tags.end());
  }
  return out;
}

Result<std::vector<std::string>> parse_catalog_nodes(std::string_view body) {
  nlohmann::json doc = nlohmann::json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded()) return Error::invalid("the body is not JSON: " + consul::brief(body));
  if (!doc.is_array()) return Error::invalid("the body is not a JSON array of nodes");
  std::vector<std::string> out;
  for (const auto& n : doc) {
    const std::string* name = n.is_object() ? string_member(n, "Node") : nullptr;
    if (!name) return Error::invalid("a node without a Node name");
    out.push_back(*name);
  }
  return out;
}

Result<bool> add_node_services(std::string_view body, std::map<std::string, uint64_t>* out) {
  nlohmann::json doc = nlohmann::json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded()) return Error::invalid("the body is not JSON: " + consul::brief(body));
  if (doc.is_null()) return false;
  if (!doc.is_object()) return Error::invalid("the body is not a JSON object");
  auto node = doc.find("Node");
  const std::string* name =
      node != doc.end() && node->is_object() ? string_member(*node, "Node") : nullptr;
  if (!name) return Error::invalid("no Node.Node");
  const std::string* address = string_member(*node, "Address");
  auto services = doc.find("Services");
  if (services == doc.end() || services->is_null()) return true;
  if (!services->is_object()) return Error::invalid(*name + ": Services is not an object");
  for (auto it = services->begin(); it != services->end(); ++it) {
    const nlohmann::json& v = it.value();
    const std::string* service = v.is_object() ? string_member(v, "Service") : nullptr;
    if (!service) return Error::invalid(*name + ": instance " + it.key() + " names no Service");
    auto port = v.find("Port");
    auto mi = v.find("ModifyIndex");
    const std::string* a = string_member(v, "Address");
    uint64_t h = 14695981039346656037ull;
    h = fnv(h, *name);
    h = fnv(h, address ? *address : std::string());
    h = fnv(h, it.key());
    h = fnv(h, a ? *a : std::string());
    h = fnv(h, port != v.end() ? port->dump() : std::string());
    h = fnv(h, mi != v.end() ? mi->dump() : std::string());
    (*out)[*service] += h;
  }
  return true;
}

namespace {

enum class Queued { kNo, kUrgent, kSweep };

struct Target {
  snapshot::DiscoveryTarget target;
  std::vector<snapshot::Endpoint> endpoints;
  std::string problem;
  bool answered = false;
  Queued queued = Queued::kNo;
};

enum class List { kServices, kChecks };

}  // namespace

// The list queries of one data center ("" names the agent's, or Settings' datacenter).
struct ConsulBulkWatcher::Dc {
  std::string name;
  bool stop = false;
  std::shared_ptr<http::Client> clients[2];  // by List
  std::thread threads[2];
  std::string problems[2];  // a list query failing
  // What the lists said last (reset by a new configuration).
  bool have_services = false;
  std::map<std::string, std::vector<std::string>> services;
  bool have_checks = false;
  ChecksView checks;
  uint64_t checks_seen = 0;                   // the index of the last checks answer
  std::set<uint64_t> explained;               // indexes at which the checks list named what changed
  Clock::time_point last_sweep{};             // or the first answer
  bool have_nodes = false;                    // node_view holds a scan
  bool nodes_tried = false;                   // the baseline scan was made (or failed)
  std::map<std::string, uint64_t> node_view;  // by service: fingerprint of its instances
};

struct ConsulBulkWatcher::Shared {
  mutable std::mutex mu;
  std::condition_variable cv;  // work queued, an answer, a stop, a new configuration
  std::map<std::string, Target> targets;
  std::map<std::string, std::shared_ptr<Dc>> dcs;
  std::vector<std::shared_ptr<Dc>> stopped;
  std::deque<std::string> urgent, sweep;  // target keys to read
  std::shared_ptr<const ConsulDiscoveryOptions> options;
  uint64_t generation = 0;  // of options; 0: not configured
  std::vector<std::thread> readers;
  std::vector<std::shared_ptr<http::Client>> reader_clients;
  bool stopping = false;
  bool changed = false;
  std::function<void()> wake;
  Counters counters;

  // Lock held.
  void enqueue(const std::string& key, Queued how) {
    auto it = targets.find(key);
    if (it == targets.end()) return;
    Target& t = it->second;
    if (t.queued == how || t.queued == Queued::kUrgent) return;
    t.queued = how;
    (how == Queued::kUrgent ? urgent : sweep).push_back(key);
  }
  void enqueue_service(const std::string& dc, const std::string& service) {
    for (auto& [key, t] : targets) {
      if (t.target.datacenter == dc && t.target.name == service) enqueue(key, Queued::kUrgent);
    }
  }
  void sweep_dc(Dc& d) {
    for (auto& [key, t] : targets) {
      if (t.target.datacenter == d.name) enqueue(key, Queued::kSweep);
    }
    d.last_sweep = Clock::now();
    ++counters.sweeps;
  }
  // Whether the targets can be read: every data center's lists have their first answer (or are
  // failing) and its baseline node scan was tried. A read made before a list's first answer could
  // miss a change made between the two (the first answer is not compared with anything).
  bool baselines() const {
    for (const auto& [name, d] : dcs) {
      const bool failing = !d->problems[0].empty() || !d->problems[1].empty();
      if (!failing && !(d->have_services && d->have_checks && d->nodes_tried)) return false;
    }
    return true;
  }
  // The client of a thread, made again when the configuration names another server.
  static void refresh(std::shared_ptr<http::Client>& client, const http::Url& url) {
    if (!client || !http::same_server(client->url(), url))
      client = std::make_shared<http::Client>(url);
  }
};

ConsulBulkWatcher::ConsulBulkWatcher() : shared_(std::make_shared<Shared>()) {}

ConsulBulkWatcher::~ConsulBulkWatcher() {
  std::vector<std::thread> threads;
  {
    std::lock_guard lock(shared_->mu);
    shared_->stopping = true;
    for (auto& c : shared_->reader_clients) {
      if (c) c->cancel();
    }
    for (auto& [name, d] : shared_->dcs) {
      d->stop = true;
      shared_->stopped.push_back(d);
    }
    shared_->dcs.clear();
    for (auto& d : shared_->stopped) {
      for (auto& c : d->clients) {
        if (c) c->cancel();
      }
      for (auto& t : d->threads)
        threads.push_back(std::move(t));
    }
    shared_->stopped.clear();
    for (auto& t : shared_->readers)
      threads.push_back(std::move(t));
  }
  shared_->cv.notify_all();
  for (auto& t : threads) {
    if (t.joinable()) t.join();
  }
}

void ConsulBulkWatcher::start(std::function<void()> wake) {
  std::lock_guard lock(shared_->mu);
  shared_->wake = std::move(wake);
}

void ConsulBulkWatcher::configure(const ConsulDiscoveryOptions& options) {
  {
    std::lock_guard lock(shared_->mu);
    shared_->options = std::make_shared<const ConsulDiscoveryOptions>(options);
    ++shared_->generation;
    for (auto& c : shared_->reader_clients) {
      if (c) c->cancel();
    }
    for (auto& [name, d] : shared_->dcs) {
      for (auto& c : d->clients) {
        if (c) c->cancel();
      }
      d->have_services = d->have_checks = d->have_nodes = d->nodes_tried = false;
      d->explained.clear();
    }
    for (auto& [key, t] : shared_->targets)
      shared_->enqueue(key, Queued::kSweep);
  }
  shared_->cv.notify_all();
  reconcile();
}

void ConsulBulkWatcher::watch(const std::vector<snapshot::DiscoveryTarget>& targets) {
  std::map<std::string, snapshot::DiscoveryTarget> wanted;
  for (const auto& t : targets) {
    if (t.source == "consul") wanted.emplace(t.key(), t);
  }
  {
    std::lock_guard lock(shared_->mu);
    Shared& s = *shared_;
    for (auto it = s.targets.begin(); it != s.targets.end();) {
      if (wanted.count(it->first)) {
        ++it;
      } else {
        it = s.targets.erase(it);  // its queue entries are skipped
        s.changed = true;
      }
    }
    std::set<std::string> dcs;
    for (auto& [key, t] : wanted) {
      dcs.insert(t.datacenter);
      auto [it, inserted] = s.targets.try_emplace(key);
      if (inserted) {
        it->second.target = t;
        s.enqueue(key, Queued::kUrgent);
      }
    }
    for (auto it = s.dcs.begin(); it != s.dcs.end();) {
      if (dcs.count(it->first)) {
        ++it;
        continue;
      }
      it->second->stop = true;
      for (auto& c : it->second->clients) {
        if (c) c->cancel();
      }
      s.stopped.push_back(it->second);
      it = s.dcs.erase(it);
    }
    for (const auto& name : dcs) {
      auto [it, inserted] = s.dcs.try_emplace(name);
      if (inserted) {
        it->second = std::make_shared<Dc>();
        it->second->name = name;
      }
    }
  }
  shared_->cv.notify_all();
  reconcile();
}

namespace {

// One list query's loop (a data center's /v1/catalog/services or /v1/health/state/any).
void list_loop(std::shared_ptr<ConsulBulkWatcher::Shared> shared,
               std::shared_ptr<ConsulBulkWatcher::Dc> dc, List kind);

// One reader's loop: takes queued targets (attributed changes first) and reads them.
void reader_loop(std::shared_ptr<ConsulBulkWatcher::Shared> shared, size_t slot);

}  // namespace

// Starts the readers and the list threads (once configured) and joins stopped data centers'.
void ConsulBulkWatcher::reconcile() {
  std::vector<std::thread> to_join;
  {
    std::lock_guard lock(shared_->mu);
    for (auto& d : shared_->stopped) {
      for (auto& t : d->threads)
        to_join.push_back(std::move(t));
    }
    shared_->stopped.clear();
    if (shared_->generation > 0) {
      if (shared_->readers.empty() && !shared_->targets.empty()) {
        shared_->reader_clients.resize(kReaders);
        for (size_t i = 0; i < kReaders; ++i)
          shared_->readers.emplace_back(reader_loop, shared_, i);
      }
      for (auto& [name, d] : shared_->dcs) {
        for (List kind : {List::kServices, List::kChecks}) {
          auto& t = d->threads[static_cast<int>(kind)];
          if (!t.joinable()) t = std::thread(list_loop, shared_, d, kind);
        }
      }
    }
  }
  for (auto& t : to_join) {
    if (t.joinable()) t.join();
  }
}

namespace {

void reader_loop(std::shared_ptr<ConsulBulkWatcher::Shared> shared, size_t slot) {
  using Shared = ConsulBulkWatcher::Shared;
  Shared& s = *shared;
  common::Backoff backoff(milliseconds(250), std::chrono::seconds(30));
  for (;;) {
    std::string key;
    snapshot::DiscoveryTarget target;
    std::shared_ptr<const ConsulDiscoveryOptions> options;
    std::shared_ptr<http::Client> client;
    uint64_t generation = 0;
    {
      std::unique_lock lock(s.mu);
      for (;;) {
        if (s.stopping) return;
        // The next queued target still watched and still queued where it was found.
        auto take = [&](std::deque<std::string>& q, Queued how) {
          while (!q.empty()) {
            std::string k = std::move(q.front());
            q.pop_front();
            auto it = s.targets.find(k);
            if (it == s.targets.end() || it->second.queued != how) continue;
            it->second.queued = Queued::kNo;
            key = std::move(k);
            target = it->second.target;
            return true;
          }
          return false;
        };
        if (s.baselines() && (take(s.urgent, Queued::kUrgent) || take(s.sweep, Queued::kSweep)))
          break;
        s.cv.wait(lock);
      }
      options = s.options;
      generation = s.generation;
      auto& c = s.reader_clients[slot];
      Shared::refresh(c, options->endpoint.url);
      c->reset_cancel();
      client = c;
    }
    http::Request req;
    req.target = health_query_target(*options, target, 0);
    req.headers = consul::request_headers(options->endpoint);
    auto r = client->send(req, kReadTimeout);
    std::optional<std::vector<snapshot::Endpoint>> endpoints;
    std::string problem;
    if (!r) {
      problem = "Consul unreachable: " + r.error().message;
    } else if (r.value().status != 200) {
      problem = "Consul answered " + std::to_string(r.value().status) + ": " +
                consul::brief(r.value().body);
    } else {
      const bool labelled = !target.subset_tags.empty() || !target.subset_datacenters.empty();
      auto parsed = parse_health_service(r.value().body, target.tags, labelled ? &target : nullptr);
      if (!parsed) {
        problem = "Consul's answer is not understood: " + parsed.error().message;
      } else {
        endpoints = std::move(parsed.value());
        if (endpoints->empty()) problem = "service not found in Consul";
      }
    }
    std::function<void()> wake;
    milliseconds delay{0};
    {
      std::lock_guard lock(s.mu);
      if (s.stopping) return;
      auto it = s.targets.find(key);
      if (generation != s.generation || it == s.targets.end()) continue;  // read again if queued
      Target& t = it->second;
      ++s.counters.reads;
      std::vector<snapshot::Endpoint> now = t.endpoints;
      if (endpoints) {
        backoff.reset();
        now = std::move(*endpoints);
      } else {
        ++s.counters.read_failures;
        delay = backoff.next();
        s.enqueue(key, Queued::kSweep);  // again, after this reader's back-off
      }
      if (!t.answered || now != t.endpoints || problem != t.problem) {
        t.endpoints = std::move(now);
        t.problem = std::move(problem);
        t.answered = true;
        s.changed = true;
        wake = s.wake;
      }
    }
    s.cv.notify_all();
    if (wake) wake();
    if (delay.count() > 0) {
      std::unique_lock lock(s.mu);
      s.cv.wait_for(lock, delay, [&] { return s.stopping || generation != s.generation; });
    }
  }
}

// Every node's instances (see add_node_services), or an error (more than `max_nodes` nodes: a
// sweep is cheaper; a failed request).
Result<std::map<std::string, uint64_t>> scan_nodes(http::Client& client,
                                                   const ConsulDiscoveryOptions& options,
                                                   const consul::Endpoint& e, size_t max_nodes) {
  std::string params = consul::read_params(e, options.consistency, 0, options.wait);
  if (!params.empty()) params[0] = '?';
  http::Request req;
  req.headers = consul::request_headers(options.endpoint);
  auto get = [&](const std::string& path) -> Result<std::string> {
    req.target = options.endpoint.url.path + path + params;
    auto r = client.send(req, kReadTimeout);
    if (!r) return Error::invalid("Consul unreachable: " + r.error().message);
    if (r.value().status != 200) {
      return Error::invalid("Consul answered " + std::to_string(r.value().status) + ": " +
                            consul::brief(r.value().body));
    }
    return std::move(r.value().body);
  };
  auto body = get("/v1/catalog/nodes");
  if (!body) return body.error();
  auto nodes = parse_catalog_nodes(body.value());
  if (!nodes) return nodes.error();
  if (nodes.value().size() > max_nodes) return Error::invalid("more nodes than services");
  std::map<std::string, uint64_t> out;
  for (const auto& node : nodes.value()) {
    auto b = get("/v1/catalog/node/" + http::url_escape(node));
    if (!b) return b.error();
    auto added = add_node_services(b.value(), &out);
    if (!added) return added.error();
  }
  return out;
}

void list_loop(std::shared_ptr<ConsulBulkWatcher::Shared> shared,
               std::shared_ptr<ConsulBulkWatcher::Dc> dc, List kind) {
  using Shared = ConsulBulkWatcher::Shared;
  Shared& s = *shared;
  const int k = static_cast<int>(kind);
  consul::BlockingIndex index;
  common::Backoff backoff(milliseconds(250), std::chrono::seconds(30));
  uint64_t generation = 0;
  bool recovering = false;  // the previous query failed, or the index went backwards
  Clock::time_point last{};
  for (;;) {
    const auto next = last + kMinInterval;
    if (Clock::now() < next) std::this_thread::sleep_until(next);
    last = Clock::now();
    std::shared_ptr<const ConsulDiscoveryOptions> options;
    std::shared_ptr<http::Client> client;
    {
      std::lock_guard lock(s.mu);
      if (s.stopping || dc->stop) return;
      options = s.options;
      if (generation != s.generation) {
        generation = s.generation;
        index.reset();
        recovering = false;  // configure() queued every target already
      }
      Shared::refresh(dc->clients[k], options->endpoint.url);
      dc->clients[k]->reset_cancel();
      client = dc->clients[k];
    }
    consul::Endpoint e = options->endpoint;
    if (!dc->name.empty()) e.datacenter = dc->name;
    std::string params = consul::read_params(e, options->consistency, index.value(), options->wait);
    if (!params.empty()) params[0] = '?';
    http::Request req;
    req.target = options->endpoint.url.path +
                 (kind == List::kServices ? "/v1/catalog/services" : "/v1/health/state/any") +
                 params;
    req.headers = consul::request_headers(options->endpoint);
    auto r = client->send(req, options->wait + kMargin);
    std::string problem;
    std::optional<uint64_t> answer_index;
    std::optional<std::map<std::string, std::vector<std::string>>> services;
    std::optional<ChecksView> checks;
    if (!r) {
      problem = "Consul unreachable: " + r.error().message;
    } else if (r.value().status != 200) {
      problem = "Consul answered " + std::to_string(r.value().status) + ": " +
                consul::brief(r.value().body);
    } else {
      answer_index = consul::parse_index(r.value().header("x-consul-index"));
      if (kind == List::kServices) {
        auto p = parse_catalog_services(r.value().body);
        if (p) {
          services = std::move(p.value());
        } else {
          problem = "Consul's answer is not understood: " + p.error().message;
        }
      } else {
        auto p = parse_checks(r.value().body);
        if (p) {
          checks = std::move(p.value());
        } else {
          problem = "Consul's answer is not understood: " + p.error().message;
        }
      }
    }
    std::function<void()> wake;
    milliseconds delay{0};
    bool scan = false;           // a node scan to find what changed
    bool baseline_scan = false;  // a node scan only to have one to compare with
    size_t targets_here = 0;
    {
      std::unique_lock lock(s.mu);
      if (s.stopping || dc->stop) return;
      if (generation != s.generation) continue;  // cancelled by a new configuration
      ++s.counters.list_queries;
      const uint64_t previous = index.value();
      if (!problem.empty()) {
        ++s.counters.list_failures;
        index.reset();
        recovering = true;
        delay = backoff.next();
      } else {
        backoff.reset();
        const uint64_t now = answer_index.value_or(0);
        if (answer_index && !index.update(now)) recovering = true;  // went backwards
        if (kind == List::kChecks) {
          if (dc->have_checks) {
            std::set<std::string> names = changed_services(dc->checks, *checks);
            for (const auto& name : names)
              s.enqueue_service(dc->name, name);
            if (!names.empty()) {
              dc->explained.insert(now);
              while (dc->explained.size() > kExplained)
                dc->explained.erase(dc->explained.begin());
            }
          }
          dc->checks = std::move(*checks);
          dc->have_checks = true;
          dc->checks_seen = now;
        } else {
          bool attributed = false;
          if (dc->have_services) {
            for (const auto& [name, tags] : *services) {
              auto it = dc->services.find(name);
              if (it == dc->services.end() || it->second != tags) {
                s.enqueue_service(dc->name, name);
                attributed = true;
              }
            }
            for (const auto& [name, tags] : dc->services) {
              if (!services->count(name)) {
                s.enqueue_service(dc->name, name);
                attributed = true;
              }
            }
          }
          const bool first = !dc->have_services;
          dc->services = std::move(*services);
          dc->have_services = true;
          bool sweep = false;
          if (first) {
            dc->last_sweep = Clock::now();
            sweep = recovering;
            baseline_scan = !dc->have_nodes;
          } else if (now > previous && previous > 0 && !attributed) {
            // The services index moved and the list does not say why: the checks list may.
            s.cv.wait_for(lock, kExplainWait, [&] {
              return s.stopping || dc->stop || generation != s.generation || dc->checks_seen >= now;
            });
            if (s.stopping || dc->stop) return;
            if (generation != s.generation) continue;
            // Else the nodes' listings will.
            scan = !dc->explained.count(now);
          }
          if (recovering && !first) sweep = true;
          if (Clock::now() - dc->last_sweep >= ConsulBulkWatcher::kResweep) sweep = true;
          if (sweep) {
            s.sweep_dc(*dc);
            scan = false;
            baseline_scan = true;  // what the sweep reads is the new baseline
          }
          if (scan || baseline_scan) {
            for (const auto& [key, t] : s.targets)
              targets_here += t.target.datacenter == dc->name ? 1 : 0;
          }
        }
        recovering = false;
      }
      if (problem != dc->problems[k]) {
        dc->problems[k] = problem;
        s.changed = true;
        wake = s.wake;
      }
    }
    s.cv.notify_all();
    if (wake) wake();
    if (scan || baseline_scan) {
      consul::Endpoint e = options->endpoint;
      if (!dc->name.empty()) e.datacenter = dc->name;
      auto view = scan_nodes(*client, *options, e, std::max<size_t>(targets_here, 1));
      std::lock_guard lock(s.mu);
      if (s.stopping || dc->stop) return;
      if (generation != s.generation) continue;
      ++s.counters.node_scans;
      dc->nodes_tried = true;
      if (!view) {
        if (scan) s.sweep_dc(*dc);
        dc->have_nodes = false;
      } else {
        if (scan && !dc->have_nodes) {
          s.sweep_dc(*dc);  // nothing to compare with
        } else if (scan) {
          const auto& before = dc->node_view;
          const auto& after = view.value();
          for (const auto& [name, h] : after) {
            auto it = before.find(name);
            if (it == before.end() || it->second != h) s.enqueue_service(dc->name, name);
          }
          for (const auto& [name, h] : before) {
            if (!after.count(name)) s.enqueue_service(dc->name, name);
          }
        }
        dc->node_view = std::move(view.value());
        dc->have_nodes = true;
      }
      s.cv.notify_all();
    }
    if (delay.count() > 0) {
      std::unique_lock lock(s.mu);
      s.cv.wait_for(lock, delay,
                    [&] { return s.stopping || dc->stop || generation != s.generation; });
    }
  }
}

}  // namespace

bool ConsulBulkWatcher::wait_first(std::chrono::milliseconds timeout) {
  std::unique_lock lock(shared_->mu);
  if (shared_->generation == 0) return false;
  return shared_->cv.wait_for(lock, timeout, [this] {
    return std::all_of(shared_->targets.begin(), shared_->targets.end(),
                       [](const auto& t) { return t.second.answered; });
  });
}

std::optional<DiscoveredMap> ConsulBulkWatcher::poll() {
  std::lock_guard lock(shared_->mu);
  if (!shared_->changed) return std::nullopt;
  shared_->changed = false;
  DiscoveredMap out;
  for (const auto& [key, t] : shared_->targets) {
    if (!t.answered) continue;
    std::string problem = t.problem;
    if (problem.empty()) {
      auto d = shared_->dcs.find(t.target.datacenter);
      if (d != shared_->dcs.end()) {
        for (const auto& p : d->second->problems) {
          if (!p.empty()) {
            problem = "watching Consul's service list: " + p;
            break;
          }
        }
      }
    }
    out[key] = Discovered{t.endpoints, std::move(problem)};
  }
  return out;
}

ConsulBulkWatcher::Counters ConsulBulkWatcher::counters() const {
  std::lock_guard lock(shared_->mu);
  Counters c = shared_->counters;
  c.targets = shared_->targets.size();
  c.failing = 0;
  c.queued = 0;
  for (const auto& [key, t] : shared_->targets) {
    c.failing += t.problem.empty() ? 0 : 1;
    c.queued += t.queued == Queued::kNo ? 0 : 1;
  }
  return c;
}

}  // namespace portico::control
