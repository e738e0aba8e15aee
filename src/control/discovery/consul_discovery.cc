#include "control/discovery/consul_discovery.h"

#include <algorithm>
#include <set>

#include <nlohmann/json.hpp>

#include "control/http/client.h"

namespace portico::control {

namespace {

constexpr std::chrono::milliseconds kMargin{5000};  // beyond ?wait= before a query times out

const nlohmann::json* member(const nlohmann::json& o, const char* name) {
  auto it = o.find(name);
  return it == o.end() ? nullptr : &*it;
}

}  // namespace

Result<std::vector<snapshot::Endpoint>> parse_health_service(
    std::string_view body, const std::vector<std::string>& tags,
    const snapshot::DiscoveryTarget* subsets) {
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
    if (subsets != nullptr) {
      std::string dc = subsets->datacenter;
      const nlohmann::json* node = member(e, "Node");
      if (const nlohmann::json* d =
              node && node->is_object() ? member(*node, "Datacenter") : nullptr;
          d && d->is_string() && !d->get_ref<const std::string&>().empty()) {
        dc = d->get<std::string>();
      }
      for (const auto& t : subsets->subset_tags)
        ep.labels.emplace_back("tag_" + t, have.count(t) > 0 ? "1" : "0");
      for (const auto& d : subsets->subset_datacenters)
        ep.labels.emplace_back("dc_" + d, d == dc ? "1" : "0");
      std::sort(ep.labels.begin(), ep.labels.end());
      ep.labels.erase(std::unique(ep.labels.begin(), ep.labels.end(),
                                  [](const auto& a, const auto& b) { return a.first == b.first; }),
                      ep.labels.end());
    }
    out.push_back(std::move(ep));
  }
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) {
    return a.address != b.address ? a.address < b.address : a.port < b.port;
  });
  out.erase(std::unique(out.begin(), out.end(),
                        [](const auto& a, const auto& b) {
                          return a.address == b.address && a.port == b.port;
                        }),
            out.end());
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

ConsulDiscovery::ConsulDiscovery() = default;
ConsulDiscovery::~ConsulDiscovery() = default;

void ConsulDiscovery::start(std::function<void()> wake) {
  watcher_.start(wake);
  bulk_.start(std::move(wake));
}

void ConsulDiscovery::watch(const std::vector<snapshot::DiscoveryTarget>& targets) {
  std::vector<snapshot::DiscoveryTarget> mine;
  std::set<std::string> keys;
  for (const auto& t : targets) {
    if (t.source == name() && keys.insert(t.key()).second) mine.push_back(t);
  }
  bulk_mode_ = mine.size() > kBulkAbove;
  if (bulk_mode_) {
    watcher_.watch({});
    bulk_.watch(mine);
  } else {
    bulk_.watch({});
    watcher_.watch(mine);
  }
}

std::optional<DiscoveredMap> ConsulDiscovery::poll() {
  auto single = watcher_.poll();
  auto bulk = bulk_.poll();
  if (!single && !bulk) return std::nullopt;
  if (single) last_single_ = std::move(*single);
  if (bulk) last_bulk_ = std::move(*bulk);
  DiscoveredMap out = last_single_;
  for (const auto& [key, d] : last_bulk_)
    out[key] = d;
  return out;
}

bool ConsulDiscovery::wait_first(std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  bool single = watcher_.wait_first(timeout);
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
      deadline - std::chrono::steady_clock::now());
  bool bulk = bulk_.wait_first(std::max(left, std::chrono::milliseconds(0)));
  return single && bulk;
}

void ConsulDiscovery::configure(const ConsulDiscoveryOptions& options) {
  if (options_ && *options_ == options) return;
  options_ = options;
  bulk_.configure(options);
  watcher_.configure(options.endpoint.url, [options](http::Client& client,
                                                     const snapshot::DiscoveryTarget& target,
                                                     uint64_t index) {
    http::Request req;
    req.target = health_query_target(options, target, index);
    req.headers = consul::request_headers(options.endpoint);
    auto r = client.send(req, options.wait + kMargin);
    BlockingAnswer out;
    if (!r) {
      out.problem = "Consul unreachable: " + r.error().message;
    } else if (r.value().status != 200) {
      out.problem = "Consul answered " + std::to_string(r.value().status) + ": " +
                    consul::brief(r.value().body);
    } else {
      const bool labelled = !target.subset_tags.empty() || !target.subset_datacenters.empty();
      auto parsed = parse_health_service(r.value().body, target.tags, labelled ? &target : nullptr);
      if (!parsed) {
        out.problem = "Consul's answer is not understood: " + parsed.error().message;
      } else {
        out.index = consul::parse_index(r.value().header("x-consul-index"));
        out.endpoints = std::move(parsed.value());
        if (out.endpoints->empty()) out.problem = "service not found in Consul";
      }
    }
    return out;
  });
}

ConsulDiscovery::Counters ConsulDiscovery::counters() const {
  BlockingWatcher::Counters w = watcher_.counters();
  ConsulBulkWatcher::Counters b = bulk_.counters();
  Counters c;
  c.queries = w.queries + b.list_queries + b.reads;
  c.failures = w.failures + b.list_failures + b.read_failures;
  c.services = w.targets + b.targets;
  c.failing = w.failing + b.failing;
  c.bulk = bulk_mode_;
  c.bulk_counters = b;
  return c;
}

}  // namespace portico::control
