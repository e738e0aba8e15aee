#include "control/discovery/kube_discovery.h"

#include <algorithm>
#include <thread>

#include "common/log.h"
#include "control/sources/kube_api.h"

namespace portico::control {

using nlohmann::json;

namespace {

constexpr const char* kServiceNameLabel = "kubernetes.io/service-name";

std::string string_at(const json& j, const char* key) {
  if (!j.is_object()) return {};
  auto it = j.find(key);
  return it != j.end() && it->is_string() ? it->get<std::string>() : std::string();
}

}  // namespace

std::string kube_service_name(const snapshot::DiscoveryTarget& target) {
  return target.name.substr(0, target.name.find(':'));
}

Discovered kube_service_endpoints(const snapshot::DiscoveryTarget& target, const json* service,
                                  const std::vector<const json*>& slices) {
  Discovered out;
  const std::string name = kube_service_name(target);
  const std::string what = "Service " + target.ns + "/" + name;
  if (service == nullptr) {
    out.problem = what + " not found in Kubernetes";
    return out;
  }
  // The Service's port: its name is what the slices' ports are called.
  const json* port = nullptr;
  std::string ports_seen;
  if (service->contains("spec") && (*service)["spec"].contains("ports") &&
      (*service)["spec"]["ports"].is_array()) {
    for (const auto& p : (*service)["spec"]["ports"]) {
      if (!p.is_object() || !p.contains("port") || !p["port"].is_number_integer()) continue;
      const int number = p["port"].get<int>();
      ports_seen += (ports_seen.empty() ? "" : ", ") + std::to_string(number);
      if (number == target.port) port = &p;
    }
  }
  if (port == nullptr) {
    out.problem = what + " has no port " + std::to_string(target.port) +
                  " (ports: " + (ports_seen.empty() ? "none" : ports_seen) + ")";
    return out;
  }
  const std::string port_name = string_at(*port, "name");
  for (const json* slice : slices) {
    const json& s = *slice;
    const json& meta = s.contains("metadata") ? s["metadata"] : json();
    if (string_at(meta, "namespace") != target.ns) continue;
    if (!meta.contains("labels") || string_at(meta["labels"], kServiceNameLabel) != name) {
      continue;
    }
    const std::string type = string_at(s, "addressType");
    if (type != "IPv4" && type != "IPv6") continue;  // FQDN slices: names, not addresses
    int number = 0;
    if (s.contains("ports") && s["ports"].is_array()) {
      for (const auto& p : s["ports"]) {
        if (string_at(p, "name") == port_name && p.contains("port") &&
            p["port"].is_number_integer()) {
          number = p["port"].get<int>();
        }
      }
    }
    if (number <= 0 || number > 65535) continue;  // this slice does not carry the port
    if (!s.contains("endpoints") || !s["endpoints"].is_array()) continue;
    for (const auto& e : s["endpoints"]) {
      if (!e.is_object()) continue;
      // Ready: true, or absent (unknown: to be treated as ready).
      if (e.contains("conditions") && e["conditions"].is_object() &&
          e["conditions"].contains("ready") && e["conditions"]["ready"].is_boolean() &&
          !e["conditions"]["ready"].get<bool>()) {
        continue;
      }
      if (!e.contains("addresses") || !e["addresses"].is_array()) continue;
      for (const auto& a : e["addresses"]) {
        if (!a.is_string()) continue;
        snapshot::Endpoint ep;
        ep.address = a.get<std::string>();
        ep.port = static_cast<uint16_t>(number);
        out.endpoints.push_back(std::move(ep));
      }
    }
  }
  std::sort(out.endpoints.begin(), out.endpoints.end(), [](const auto& a, const auto& b) {
    return std::tie(a.address, a.port) < std::tie(b.address, b.port);
  });
  out.endpoints.erase(std::unique(out.endpoints.begin(), out.endpoints.end()), out.endpoints.end());
  if (out.endpoints.empty()) {
    out.problem = what + " port " + std::to_string(target.port) + ": no ready endpoints";
  }
  return out;
}

KubeDiscovery::~KubeDiscovery() {
  services_.reset();
  slices_.reset();
}

void KubeDiscovery::start(std::function<void()> wake) {
  wake_ = std::move(wake);
}

void KubeDiscovery::configure(const KubeDiscoveryOptions& options) {
  unconfigured_.clear();
  if (options_ && *options_ == options) return;
  options_ = options;
  services_.reset();
  slices_.reset();
  targets_changed_ = true;
  ensure_informers();
}

void KubeDiscovery::unconfigure(const std::string& why) {
  if (why != unconfigured_ && !targets_.empty()) {
    LOG_ERROR("Kubernetes discovery: %s", why.c_str());
  }
  if (why != unconfigured_) targets_changed_ = true;
  unconfigured_ = why;
  options_.reset();
  services_.reset();
  slices_.reset();
}

void KubeDiscovery::ensure_informers() {
  if (!options_ || targets_.empty() || services_) return;
  auto make = [this](const std::string& collection, const std::string& selector,
                     const std::string& what) {
    kube::InformerOptions o;
    o.url = options_->url;
    o.token_file = options_->token_file;
    o.collection = collection;
    o.label_selector = selector;
    o.what = what;
    auto informer = std::make_unique<kube::Informer>(std::move(o), [this] {
      if (wake_) wake_();
    });
    informer->start();
    return informer;
  };
  services_ = make("/api/v1/services", "", "services (all namespaces)");
  slices_ = make("/apis/discovery.k8s.io/v1/endpointslices", kServiceNameLabel,
                 "endpointslices.discovery.k8s.io (all namespaces)");
}

void KubeDiscovery::watch(const std::vector<snapshot::DiscoveryTarget>& targets) {
  if (targets.size() != targets_.size() ||
      !std::equal(targets.begin(), targets.end(), targets_.begin(),
                  [](const auto& a, const auto& b) { return a.key() == b.key(); })) {
    if (targets_.empty() && !targets.empty() && !unconfigured_.empty()) {
      LOG_ERROR("Kubernetes discovery: %s", unconfigured_.c_str());
    }
    targets_ = targets;
    targets_changed_ = true;
  }
  ensure_informers();
}

std::optional<DiscoveredMap> KubeDiscovery::poll() {
  const uint64_t s_changes = services_ ? services_->changes() : 0;
  const uint64_t e_changes = slices_ ? slices_->changes() : 0;
  std::string problem = unconfigured_;
  if (services_ && problem.empty()) problem = services_->problem();
  if (slices_ && problem.empty()) problem = slices_->problem();
  if (!targets_changed_ && s_changes == seen_services_ && e_changes == seen_slices_ &&
      problem == seen_problem_) {
    return std::nullopt;
  }
  targets_changed_ = false;
  seen_services_ = s_changes;
  seen_slices_ = e_changes;
  seen_problem_ = problem;
  DiscoveredMap out;
  if (!unconfigured_.empty()) {
    for (const auto& t : targets_)
      out[t.key()] = Discovered{{}, "Kubernetes discovery: " + unconfigured_};
  } else if (services_ && slices_ && services_->synced() && slices_->synced()) {
    const kube::Informer::Objects services = services_->objects();
    const kube::Informer::Objects slices = slices_->objects();
    std::vector<const json*> all;
    all.reserve(slices.size());
    for (const auto& [key, object] : slices)
      all.push_back(object.get());
    for (const auto& t : targets_) {
      auto svc = services.find(t.ns + "/" + kube_service_name(t));
      Discovered d =
          kube_service_endpoints(t, svc == services.end() ? nullptr : svc->second.get(), all);
      if (!problem.empty()) d.problem = "Kubernetes: " + problem;
      out[t.key()] = std::move(d);
    }
  } else if (!problem.empty()) {
    for (const auto& t : targets_)
      out[t.key()] = Discovered{{}, "Kubernetes: " + problem};
  }
  failing_ = 0;
  for (const auto& [key, d] : out)
    failing_ += d.problem.empty() ? 0 : 1;
  if (last_ && *last_ == out) return std::nullopt;
  last_ = out;
  return out;
}

bool KubeDiscovery::wait_first(std::chrono::milliseconds timeout) {
  if (targets_.empty() || !unconfigured_.empty() || !services_) return true;
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    if (services_->synced() && slices_->synced()) return true;
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
}

KubeDiscovery::Counters KubeDiscovery::counters() const {
  Counters c;
  for (const auto* i : {services_.get(), slices_.get()}) {
    if (i == nullptr) continue;
    auto k = i->counters();
    c.lists += k.lists;
    c.watches += k.watches;
    c.events += k.events;
    c.errors += k.errors;
  }
  c.services = targets_.size();
  c.failing = failing_;
  return c;
}

}  // namespace portico::control
