#include "control/discovery/discoveries.h"

#include <memory>

#include "common/log.h"
#include "control/sources/factory.h"
#include "control/sources/kube_api.h"

namespace portico::control {

namespace {

// The four figures Consul's and Nomad's discovery both report, in Prometheus text.
template <typename Counters>
std::string watcher_stats(const std::string& prefix, const Counters& c) {
  return "# TYPE " + prefix + "_queries_total counter\n" + prefix + "_queries_total " +
         std::to_string(c.queries) + "\n# TYPE " + prefix + "_failures_total counter\n" + prefix +
         "_failures_total " + std::to_string(c.failures) + "\n# TYPE " + prefix +
         "_services gauge\n" + prefix + "_services " + std::to_string(c.services) + "\n# TYPE " +
         prefix + "_services_failing gauge\n" + prefix + "_services_failing " +
         std::to_string(c.failing) + "\n";
}

// Logs `error` unless it is the one logged last time; remembers it (empty: none).
void note_error(const char* what, const std::string& error, std::string* last) {
  if (!error.empty() && error != *last) LOG_ERROR("%s: %s", what, error.c_str());
  *last = error;
}

}  // namespace

Discoveries::Discoveries(Pipeline& pipeline, const std::function<void()>& wake) {
  auto dns = std::make_unique<DnsDiscovery>();
  dns_ = dns.get();
  dns->start(wake);
  pipeline.add_discovery(std::move(dns));
  auto consul = std::make_unique<ConsulDiscovery>();
  consul_ = consul.get();
  consul->start(wake);
  pipeline.add_discovery(std::move(consul));
  auto nomad = std::make_unique<NomadDiscovery>();
  nomad_ = nomad.get();
  nomad->start(wake);
  pipeline.add_discovery(std::move(nomad));
  auto kube = std::make_unique<KubeDiscovery>();
  kube_ = kube.get();
  kube->start(wake);
  pipeline.add_discovery(std::move(kube));
}

void Discoveries::configure(const api::SettingsSpec* settings) {
  const api::SettingsSpec defaults;
  const api::SettingsSpec& s = settings ? *settings : defaults;

  DnsOptions dns;
  dns.servers = s.dns_servers;
  dns.min_refresh = s.dns_min_refresh;
  dns.max_refresh = s.dns_max_refresh;
  dns.timeout = s.dns_timeout;
  dns_->configure(dns);

  auto endpoint = consul_endpoint(s.consul);
  note_error("Consul discovery", endpoint ? std::string() : endpoint.error().message,
             &consul_error_);
  if (endpoint) {
    ConsulDiscoveryOptions o;
    o.endpoint = std::move(endpoint.value());
    o.wait = s.consul.wait_time;
    consul_->configure(o);
  }

  auto nomad = nomad_options(s.nomad);
  note_error("Nomad discovery", nomad ? std::string() : nomad.error().message, &nomad_error_);
  if (nomad) nomad_->configure(nomad.value());

  // Kubernetes: spec.kubernetes, or in a pod the in-cluster defaults. Without either, Upstreams
  // `kube` get the reason as their problem (logged once, and only when there are some).
  auto api = kube::resolve(s.kubernetes);
  Result<http::Url> url = api ? kube::url_of(api.value()) : Result<http::Url>(api.error());
  if (url) {
    KubeDiscoveryOptions o;
    o.url = std::move(url.value());
    o.token_file = api->token_file;
    kube_->configure(o);
  } else {
    kube_->unconfigure(url.error().message);
  }
}

std::string Discoveries::kube_stats() const {
  auto k = kube_->counters();
  std::string out;
  auto metric = [&out](const char* name, const char* type, uint64_t v) {
    out +=
        std::string("# TYPE ") + name + " " + type + "\n" + name + " " + std::to_string(v) + "\n";
  };
  metric("portico_kube_discovery_lists_total", "counter", k.lists);
  metric("portico_kube_discovery_watches_total", "counter", k.watches);
  metric("portico_kube_discovery_events_total", "counter", k.events);
  metric("portico_kube_discovery_errors_total", "counter", k.errors);
  metric("portico_kube_discovery_services", "gauge", k.services);
  metric("portico_kube_discovery_services_failing", "gauge", k.failing);
  return out;
}

std::string Discoveries::stats() const {
  auto d = dns_->counters();
  return "# TYPE portico_dns_lookups_total counter\nportico_dns_lookups_total " +
         std::to_string(d.lookups) +
         "\n# TYPE portico_dns_lookup_failures_total "
         "counter\nportico_dns_lookup_failures_total " +
         std::to_string(d.failures) + "\n# TYPE portico_dns_names gauge\nportico_dns_names " +
         std::to_string(d.names) +
         "\n# TYPE portico_dns_names_failing gauge\nportico_dns_names_failing " +
         std::to_string(d.failing) + "\n" +
         watcher_stats("portico_consul_discovery", consul_->counters()) +
         watcher_stats("portico_nomad_discovery", nomad_->counters()) + kube_stats();
}

}  // namespace portico::control
