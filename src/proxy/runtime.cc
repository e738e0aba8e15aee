#include "proxy/runtime.h"

#include <algorithm>

namespace portico::proxy {

std::string listener_key(const std::string& address, uint16_t port) {
  return address + ":" + std::to_string(port);
}

namespace {
stats::RequestSlot* keep(Runtime& rt, std::shared_ptr<stats::RequestSlot> slot) {
  rt.request_slots.push_back(std::move(slot));
  return rt.request_slots.back().get();
}
stats::RequestSlot* keep(VirtualHostRuntime& vr, std::shared_ptr<stats::RequestSlot> slot) {
  vr.request_slots.push_back(std::move(slot));
  return vr.request_slots.back().get();
}

bool same_filters(const std::vector<snapshot::FilterConfig>& a,
                  const std::vector<snapshot::FilterConfig>& b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (a[i].name != b[i].name || a[i].config != b[i].config) return false;
  }
  return true;
}

bool same_cluster_names(const snapshot::ProxyConfig& a, const snapshot::ProxyConfig& b) {
  if (a.clusters.size() != b.clusters.size()) return false;
  for (size_t i = 0; i < a.clusters.size(); ++i) {
    if (a.clusters[i].name != b.clusters[i].name) return false;
  }
  return true;
}

std::shared_ptr<const VirtualHostRuntime> compile_virtual_host(
    const snapshot::Listener& l, const std::shared_ptr<const snapshot::VirtualHost>& host,
    const std::unordered_map<std::string, int>& cluster_index, stats::Registry& registry,
    const filters::Registry& filters) {
  const snapshot::VirtualHost& vh = *host;
  auto vr = std::make_shared<VirtualHostRuntime>();
  vr->host = host;
  vr->no_route = keep(*vr, registry.request_slot(l.name, vh.name, "", ""));
  vr->regexes = router::RouteRegexes(vh);
  for (const auto& e : vr->regexes.errors())
    vr->filter_errors.push_back("regex " + e);
  vr->routes.reserve(vh.routes.size());
  for (const auto& route : vh.routes) {
    RouteRuntime rr;
    if (const auto* fwd = std::get_if<snapshot::ForwardAction>(&route.action)) {
      for (const auto& wc : fwd->clusters) {
        auto it = cluster_index.find(wc.cluster);
        rr.cluster_index.push_back(it == cluster_index.end() ? -1 : it->second);
        rr.subset_key.push_back(wc.subset.empty() ? 0 : upstream::subset_key(wc.subset));
        if (!wc.subset.empty() && it != cluster_index.end())
          vr->subset_uses.emplace_back(it->second, wc.subset);
        rr.stats.push_back(
            keep(*vr, registry.request_slot(l.name, vh.name, route.name, wc.cluster)));
      }
    } else {
      rr.stats.push_back(keep(*vr, registry.request_slot(l.name, vh.name, route.name, "")));
    }
    auto chain = filters::compile_chain(filters, l.http.filters, route.options.filters);
    if (chain.ok()) {
      rr.chain = std::move(chain.value());
    } else {
      vr->filter_errors.push_back(route.name + ": " + chain.error().message);
    }
    vr->routes.push_back(std::move(rr));
  }
  return vr;
}
}  // namespace

std::shared_ptr<const Runtime> build_runtime(std::shared_ptr<const snapshot::ProxyConfig> config,
                                             stats::Registry& registry,
                                             const filters::Registry& filters,
                                             const Runtime* previous) {
  auto rt = std::make_shared<Runtime>();
  rt->config = config;
  const auto& clusters = config->clusters;
  const bool same_names = previous != nullptr && previous->config && previous->cluster_index &&
                          same_cluster_names(*previous->config, *config);
  if (previous != nullptr && previous->config) rt->based_on_version = previous->config->version;
  rt->cluster_names_unchanged = same_names;
  rt->cluster_unchanged.assign(clusters.size(), 0);
  if (same_names) {
    rt->cluster_index = previous->cluster_index;
  } else {
    auto index = std::make_shared<std::unordered_map<std::string, int>>();
    index->reserve(clusters.size());
    for (size_t i = 0; i < clusters.size(); ++i)
      (*index)[clusters[i].name] = static_cast<int>(i);
    rt->cluster_index = std::move(index);
  }
  const auto& cluster_index = *rt->cluster_index;
  rt->cluster_slots.reserve(clusters.size());
  rt->cluster_stats.reserve(clusters.size());
  rt->cluster_tls.reserve(clusters.size());
  rt->cluster_tls_errors.reserve(clusters.size());
  rt->cluster_lb.reserve(clusters.size());
  rt->cluster_health.reserve(clusters.size());
  // Type versions (set when the configuration was published): clusters, endpoints and secrets all
  // at the versions `previous` ran means no cluster changed; nothing to compare.
  const snapshot::TypeVersions& pv = previous != nullptr && previous->config
                                         ? previous->config->versions
                                         : snapshot::TypeVersions{};
  const snapshot::TypeVersions& nv = config->versions;
  const bool clusters_as_before = same_names && nv.clusters != 0 && nv.clusters == pv.clusters &&
                                  nv.endpoints == pv.endpoints && nv.secrets == pv.secrets;
  for (size_t i = 0; i < clusters.size(); ++i) {
    const auto& c = clusters[i];
    if (same_names && (clusters_as_before || previous->config->clusters[i] == c)) {
      // The same cluster: its slot and TLS context as they are.
      rt->cluster_unchanged[i] = 1;
      rt->cluster_slots.push_back(previous->cluster_slots[i]);
      rt->cluster_stats.push_back(previous->cluster_stats[i]);
      rt->cluster_tls.push_back(previous->cluster_tls[i]);
      rt->cluster_tls_errors.push_back(previous->cluster_tls_errors[i]);
      rt->cluster_lb.push_back(previous->cluster_lb[i]);
      rt->cluster_health.push_back(previous->cluster_health[i]);
      continue;
    }
    rt->cluster_slots.push_back(registry.cluster_slot(c.name));
    rt->cluster_stats.push_back(rt->cluster_slots.back().get());
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
    // The previous configuration's health of this cluster (by name): its hosts carry over.
    const upstream::ClusterHealth* before = nullptr;
    if (previous != nullptr && previous->cluster_index) {
      if (auto it = previous->cluster_index->find(c.name);
          it != previous->cluster_index->end() &&
          static_cast<size_t>(it->second) < previous->cluster_health.size()) {
        before = previous->cluster_health[it->second].get();
      }
    }
    rt->cluster_health.push_back(
        upstream::make_cluster_health(c, before, rt->cluster_slots.back(), ctx));
    rt->cluster_tls.push_back(std::move(ctx));
    rt->cluster_tls_errors.push_back(std::move(error));
    rt->cluster_lb.push_back(upstream::lb::build_tables(c));
  }
  // Listeners of `previous` whose compiled virtual hosts may be reused, by name.
  std::unordered_map<std::string, const ListenerRuntime*> reusable;
  if (same_names) {
    for (const auto& plr : previous->listeners)
      reusable.emplace(plr.listener->name, &plr);
  }
  rt->listeners.reserve(config->listeners.size());
  for (size_t li = 0; li < config->listeners.size(); ++li) {
    const auto& l = config->listeners[li];
    ListenerRuntime lr;
    lr.listener = &l;
    // The domain index of the previous listener of that name, when its hosts' domains are the
    // same (a route changed): not rebuilt.
    const router::CompiledListener* before_router = nullptr;
    if (previous != nullptr) {
      for (const auto& plr : previous->listeners) {
        if (plr.listener->name == l.name) before_router = plr.router.get();
      }
    }
    lr.router = std::make_unique<router::CompiledListener>(l, before_router);
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
        if (vh->tls) add_identity(*vh->tls);
    }
    // The previous listener's compiled hosts: looked up by position first (hosts keep their
    // places when routes change), by pointer only when that misses.
    const ListenerRuntime* prior = nullptr;
    if (auto it = reusable.find(l.name);
        it != reusable.end() && same_filters(it->second->listener->http.filters, l.http.filters)) {
      prior = it->second;
    }
    // The position, then its neighbours (one host added or removed before it shifts the rest by
    // one), then, after a few misses (hosts reordered), a map of them all.
    std::unordered_map<const snapshot::VirtualHost*, std::shared_ptr<const VirtualHostRuntime>>
        before;
    size_t misses = 0;
    auto prior_at = [&](size_t i, const snapshot::VirtualHost* vh) {
      return i < prior->virtual_hosts.size() && prior->virtual_hosts[i]->host.get() == vh;
    };
    lr.virtual_hosts.reserve(l.virtual_hosts.size());
    for (size_t i = 0; i < l.virtual_hosts.size(); ++i) {
      const auto& vh = l.virtual_hosts[i];
      std::shared_ptr<const VirtualHostRuntime> vr;
      if (prior != nullptr) {
        if (prior_at(i, vh.get())) {
          vr = prior->virtual_hosts[i];
        } else if (prior_at(i + 1, vh.get())) {
          vr = prior->virtual_hosts[i + 1];
        } else if (i > 0 && prior_at(i - 1, vh.get())) {
          vr = prior->virtual_hosts[i - 1];
        } else if (++misses > 4) {
          if (before.empty()) {
            for (const auto& p : prior->virtual_hosts)
              before.emplace(p->host.get(), p);
          }
          if (auto it = before.find(vh.get()); it != before.end()) vr = it->second;
        }
      }
      if (vr) {
        ++rt->virtual_hosts_reused;
      } else {
        vr = compile_virtual_host(l, vh, cluster_index, registry, filters);
        ++rt->virtual_hosts_compiled;
      }
      if (!vr->filter_errors.empty()) {
        lr.filter_errors.insert(lr.filter_errors.end(), vr->filter_errors.begin(),
                                vr->filter_errors.end());
      }
      lr.virtual_hosts.push_back(std::move(vr));
    }
    auto logs = access_log::ListenerLog::compile(l.access_logs, access_log::Manager::instance());
    lr.access_log = std::move(logs.log);
    lr.access_log_errors = std::move(logs.errors);
    rt->listener_by_key[listener_key(l.address, l.port)] = li;
    rt->listeners.push_back(std::move(lr));
  }
  // Subset routing: per cluster, the label sets its routes select, compiled once here (taken
  // from `previous` when the cluster and its label sets are the same).
  std::vector<std::vector<snapshot::Labels>> sets(clusters.size());
  for (const auto& lr : rt->listeners) {
    for (const auto& vr : lr.virtual_hosts) {
      for (const auto& [idx, labels] : vr->subset_uses)
        if (idx >= 0 && static_cast<size_t>(idx) < sets.size()) sets[idx].push_back(labels);
    }
  }
  rt->cluster_subsets.resize(clusters.size());
  for (size_t i = 0; i < clusters.size(); ++i) {
    auto& s = sets[i];
    if (s.empty()) continue;
    std::sort(s.begin(), s.end());
    s.erase(std::unique(s.begin(), s.end()), s.end());
    if (rt->cluster_unchanged[i] && i < previous->cluster_subsets.size()) {
      const auto& before = previous->cluster_subsets[i];
      if (before && before->subsets.size() == s.size() &&
          std::equal(s.begin(), s.end(), before->subsets.begin(),
                     [](const snapshot::Labels& a, const upstream::SubsetDef& b) {
                       return a == b.labels;
                     })) {
        rt->cluster_subsets[i] = before;
        continue;
      }
    }
    rt->cluster_subsets[i] = upstream::compile_subsets(clusters[i], s);
  }
  return rt;
}

}  // namespace portico::proxy
