#include "proxy/runtime.h"

namespace portico::proxy {

std::string listener_key(const std::string& address, uint16_t port) {
  return address + ":" + std::to_string(port);
}

namespace {
stats::RequestSlot* keep(Runtime& rt, std::shared_ptr<stats::RequestSlot> slot) {
  rt.request_slots.push_back(std::move(slot));
  return rt.request_slots.back().get();
}
}  // namespace

std::shared_ptr<const Runtime> build_runtime(std::shared_ptr<const snapshot::ProxyConfig> config,
                                             stats::Registry& registry,
                                             const filters::Registry& filters) {
  auto rt = std::make_shared<Runtime>();
  rt->config = config;
  std::unordered_map<std::string, int> cluster_index;
  for (size_t i = 0; i < config->clusters.size(); ++i) {
    cluster_index[config->clusters[i].name] = static_cast<int>(i);
    rt->cluster_slots.push_back(registry.cluster_slot(config->clusters[i].name));
    rt->cluster_stats.push_back(rt->cluster_slots.back().get());
    const auto& c = config->clusters[i];
    std::shared_ptr<const tls::ClientContext> ctx;
    std::string error;
    if (c.tls) {
      auto made = tls::ClientContext::create(*c.tls);
      if (made.ok()) {
        ctx = std::move(made.value());
      } else {
        error = made.error().message;
      }
    }
    rt->cluster_tls.push_back(std::move(ctx));
    rt->cluster_tls_errors.push_back(std::move(error));
  }
  rt->listeners.reserve(config->listeners.size());
  for (size_t li = 0; li < config->listeners.size(); ++li) {
    const auto& l = config->listeners[li];
    ListenerRuntime lr;
    lr.listener = &l;
    lr.router = std::make_unique<router::CompiledListener>(l);
    lr.no_virtual_host = keep(*rt, registry.request_slot(l.name, "", "", ""));
    if (l.tls) {
      auto made = tls::ServerContext::create(l);
      if (made.ok()) {
        lr.tls = std::move(made.value());
      } else {
        lr.tls_error = made.error().message;
      }
      auto add_identity = [&](const snapshot::TlsServerConfig& t) {
        if (t.client_identity_header.empty()) return;
        for (const auto& n : lr.identity_headers)
          if (n == t.client_identity_header) return;
        lr.identity_headers.push_back(t.client_identity_header);
      };
      add_identity(*l.tls);
      for (const auto& vh : l.virtual_hosts)
        if (vh.tls) add_identity(*vh.tls);
    }
    for (const auto& vh : l.virtual_hosts) {
      VirtualHostRuntime vr;
      vr.no_route = keep(*rt, registry.request_slot(l.name, vh.name, "", ""));
      for (const auto& route : vh.routes) {
        RouteRuntime rr;
        if (const auto* fwd = std::get_if<snapshot::ForwardAction>(&route.action)) {
          for (const auto& wc : fwd->clusters) {
            auto it = cluster_index.find(wc.cluster);
            rr.cluster_index.push_back(it == cluster_index.end() ? -1 : it->second);
            rr.stats.push_back(
                keep(*rt, registry.request_slot(l.name, vh.name, route.name, wc.cluster)));
          }
        } else {
          rr.stats.push_back(keep(*rt, registry.request_slot(l.name, vh.name, route.name, "")));
        }
        auto chain = filters::compile_chain(filters, l.http.filters, route.options.filters);
        if (chain.ok()) {
          rr.chain = std::move(chain.value());
        } else {
          lr.filter_errors.push_back(route.name + ": " + chain.error().message);
        }
        vr.routes.push_back(std::move(rr));
      }
      lr.virtual_hosts.push_back(std::move(vr));
    }
    rt->listener_by_key[listener_key(l.address, l.port)] = li;
    rt->listeners.push_back(std::move(lr));
  }
  return rt;
}

}  // namespace portico::proxy
