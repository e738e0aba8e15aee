#include "proxy/upstream/cluster.h"

#include <sys/socket.h>

#include <algorithm>
#include <cerrno>

#include "proxy/upstream/h2_client.h"

namespace portico::proxy::upstream {

namespace {
// What pooled connections must agree on to be reused: the protocol and the TLS settings.
std::string pool_key_of(const snapshot::Cluster& c) {
  std::string k = c.protocol == snapshot::UpstreamProtocol::kHttp2 ? "h2" : "h1";
  if (c.tls) {
    k += "|tls|" + c.tls->sni + "|" + std::to_string(std::hash<std::string>{}(c.tls->ca_pem)) +
         "|" + (c.tls->insecure_skip_verify ? "insecure" : "verify");
    for (const auto& n : c.tls->verify_names)
      k += "|" + n;
    for (const auto& a : c.tls->alpn)
      k += "|a:" + a;
    if (c.tls->client_certificate) k += "|cert:" + c.tls->client_certificate->secret;
  }
  return k;
}
}  // namespace

Cluster::Cluster(const snapshot::Cluster& config, stats::ClusterSlot* stats, unsigned worker,
                 std::shared_ptr<const lb::HashTables> tables)
    : name_(config.name), stats_(stats), worker_(worker) {
  update(config, stats, std::move(tables));
}

namespace {
// Graceful end of an endpoint's HTTP/2 connections (streams in flight finish).
void shutdown_h2(Endpoint& ep, bool detach) {
  for (auto& c : ep.h2) {
    if (detach) c->detach();
    c->shutdown();
  }
  ep.h2.clear();
}
}  // namespace

Cluster::~Cluster() {
  for (auto& ep : endpoints_) {
    shutdown_h2(*ep, true);
    ep->removed = true;
    for (auto& c : ep->idle)
      closed(std::move(c));
    ep->idle.clear();
  }
  for (auto& w : h2_all_) {
    if (auto c = w.lock()) {
      c->detach();
      c->shutdown();
    }
  }
}

void Cluster::update(const snapshot::Cluster& config, stats::ClusterSlot* stats,
                     std::shared_ptr<const lb::HashTables> tables) {
  stats_ = stats;
  connect_timeout_ = config.connect_timeout;
  idle_timeout_ = config.idle_connection_timeout;
  max_requests_per_connection_ = config.max_requests_per_connection;
  max_connections_ = config.max_connections;
  max_idle_ = config.max_idle_connections;
  breakers_ = config.circuit_breakers;
  retry_budget_ = config.retry_budget;
  protocol_ = config.protocol;
  h2_max_streams_ = config.http2_max_concurrent_streams;
  h2_stream_window_ = config.http2_initial_stream_window;
  h2_connection_window_ = config.http2_initial_connection_window;
  tls_ = config.tls.has_value();
  std::string key = pool_key_of(config);
  const bool flush = key != pool_key_;
  pool_key_ = std::move(key);
  if (flush) {
    // Connections pooled under other protocol or TLS settings are never handed out again.
    for (auto& ep : endpoints_) {
      for (auto& c : ep->idle)
        closed(std::move(c));
      ep->idle.clear();
      shutdown_h2(*ep, false);
    }
  }
  std::vector<std::shared_ptr<Endpoint>> next;
  for (const auto& e : config.endpoints) {
    std::shared_ptr<Endpoint> found;
    for (auto& old : endpoints_) {
      if (old && old->config.address == e.address && old->config.port == e.port) {
        found = std::move(old);
        break;
      }
    }
    if (!found) {
      found = std::make_shared<Endpoint>();
      asio::error_code ec;
      auto addr = asio::ip::make_address(e.address, ec);
      // Validated by the control plane. Kept (unconnectable) rather than skipped: the load
      // balancer's tables index the configuration's endpoints.
      if (!ec) found->address = asio::ip::tcp::endpoint(addr, e.port);
    }
    found->config = e;
    found->weight = e.weight == 0 ? 1 : e.weight;
    found->current_weight = 0;
    next.push_back(std::move(found));
  }
  for (auto& old : endpoints_) {
    if (!old) continue;
    old->removed = true;
    shutdown_h2(*old, false);
    for (auto& c : old->idle)
      closed(std::move(c));
    old->idle.clear();
  }
  endpoints_ = std::move(next);
  std::vector<Endpoint*> hosts;
  hosts.reserve(endpoints_.size());
  for (auto& ep : endpoints_)
    hosts.push_back(ep.get());
  balancer_.assign(config, std::move(hosts), std::move(tables));
  assign_subsets();  // over the new endpoints (set_subsets replaces them when they changed)
}

uint64_t subset_key(const snapshot::Labels& labels) {
  std::string text;
  for (const auto& [k, v] : labels) {
    text += k;
    text += '\0';
    text += v;
    text += '\0';
  }
  const uint64_t h = lb::hash64(text, 0x5375627365747321ull);
  return h == 0 ? 1 : h;
}

std::shared_ptr<const ClusterSubsets> compile_subsets(const snapshot::Cluster& config,
                                                      const std::vector<snapshot::Labels>& sets) {
  if (sets.empty()) return nullptr;
  auto out = std::make_shared<ClusterSubsets>();
  out->subsets.reserve(sets.size());
  for (const auto& labels : sets) {
    SubsetDef d;
    d.labels = labels;
    d.key = subset_key(labels);
    // The balancer's view: the cluster's balancing settings, only the subset's endpoints.
    d.view.name = config.name;
    d.view.lb = config.lb;
    d.view.choice_count = config.choice_count;
    d.view.ring_min_size = config.ring_min_size;
    d.view.ring_max_size = config.ring_max_size;
    d.view.maglev_table_size = config.maglev_table_size;
    d.view.healthy_panic_threshold = config.healthy_panic_threshold;
    for (size_t i = 0; i < config.endpoints.size(); ++i) {
      if (!snapshot::labels_include(config.endpoints[i].labels, labels)) continue;
      d.members.push_back(static_cast<uint32_t>(i));
      d.view.endpoints.push_back(config.endpoints[i]);
    }
    d.tables = lb::build_tables(d.view);
    out->subsets.push_back(std::move(d));
  }
  return out;
}

void Cluster::set_subsets(std::shared_ptr<const ClusterSubsets> subsets) {
  subset_defs_ = std::move(subsets);
  assign_subsets();
}

void Cluster::assign_subsets() {
  subsets_.clear();
  if (!subset_defs_) return;
  subsets_.reserve(subset_defs_->subsets.size());
  for (const auto& d : subset_defs_->subsets) {
    Subset s;
    s.key = d.key;
    std::vector<Endpoint*> hosts;
    hosts.reserve(d.members.size());
    for (uint32_t i : d.members) {
      // A definition compiled for other endpoints (set_subsets follows update() with the
      // configuration's own): endpoints out of range are left out until then.
      hosts.push_back(i < endpoints_.size() ? endpoints_[i].get() : nullptr);
    }
    s.has_endpoints = !d.members.empty();
    s.balancer.assign(d.view, std::move(hosts), d.tables);
    subsets_.push_back(std::move(s));
  }
}

std::shared_ptr<Endpoint> Cluster::pick(const PickContext& ctx, uint64_t key) {
  for (auto& s : subsets_) {
    if (s.key != key) continue;
    Endpoint* e = s.balancer.pick(ctx);
    if (e == nullptr) break;
    if (s.balancer.last_panic()) row().lb_panic.inc();
    if (s.balancer.last_tier() != 0) row().lb_failover.inc();
    return e->shared_from_this();
  }
  row().subset_no_host.inc();
  return nullptr;
}

std::shared_ptr<Endpoint> Cluster::pick(const PickContext& ctx) {
  Endpoint* e = balancer_.pick(ctx);
  if (e == nullptr) return nullptr;
  if (balancer_.last_panic()) row().lb_panic.inc();
  if (balancer_.last_tier() != 0) row().lb_failover.inc();
  return e->shared_from_this();
}

void Cluster::set_health(std::shared_ptr<const ClusterHealth> health) {
  health_ = std::move(health);
  for (size_t i = 0; i < endpoints_.size(); ++i) {
    auto& ep = *endpoints_[i];
    ep.health.reset();
    if (!health_) continue;
    const auto& hosts = health_->hosts;
    // Aligned with the configuration's endpoints unless one was skipped (bad address).
    if (i < hosts.size() && hosts[i]->port == ep.config.port &&
        hosts[i]->address == ep.config.address) {
      ep.health = hosts[i];
      continue;
    }
    for (const auto& h : hosts) {
      if (h->port == ep.config.port && h->address == ep.config.address) ep.health = h;
    }
  }
}

std::unique_ptr<Connection> Cluster::take_idle(Endpoint& ep) {
  const auto now = Clock::now();
  while (!ep.idle.empty()) {
    std::unique_ptr<Connection> c = std::move(ep.idle.back());
    ep.idle.pop_back();
    if (now - c->idle_since > idle_timeout_) {
      closed(std::move(c));
      continue;
    }
    // A connection that waited more than a second may have been closed by the upstream's own
    // keep-alive timeout: look without blocking (EOF or unexpected bytes mean it is unusable).
    if (now - c->idle_since > std::chrono::seconds(1)) {
      char probe;
      ssize_t r =
          ::recv(c->transport->lowest_layer().native_handle(), &probe, 1, MSG_PEEK | MSG_DONTWAIT);
      if (r >= 0 || (errno != EAGAIN && errno != EWOULDBLOCK)) {
        closed(std::move(c));
        continue;
      }
    }
    return c;
  }
  return nullptr;
}

void Cluster::give_back(const std::shared_ptr<Endpoint>& ep, std::unique_ptr<Connection> conn) {
  if (ep->removed || ep->idle.size() >= max_idle_ || !conn->buffer.empty() ||
      (max_requests_per_connection_ != 0 && conn->requests >= max_requests_per_connection_)) {
    closed(std::move(conn));
    return;
  }
  conn->idle_since = Clock::now();
  conn->buffer.release();  // an idle pooled connection holds no read buffer
  ep->idle.push_back(std::move(conn));
}

void Cluster::closed(std::unique_ptr<Connection> conn) {
  if (!conn) return;
  conn->transport->close();
  if (open_ > 0) --open_;
  row().cx_active.dec();
  load().connections.fetch_sub(1, std::memory_order_relaxed);
}

std::shared_ptr<H2ClientConnection> Cluster::h2_connection(Endpoint& ep) {
  std::shared_ptr<H2ClientConnection> best;
  size_t keep = 0;
  for (size_t i = 0; i < ep.h2.size(); ++i) {
    auto& c = ep.h2[i];
    if (c->dead()) continue;  // dropped: its coroutines own it until they end
    if (c->available() && (!best || c->streams() < best->streams())) best = c;
    ep.h2[keep++] = std::move(c);
  }
  ep.h2.resize(keep);
  return best;
}

std::shared_ptr<H2ClientConnection> Cluster::add_h2(Endpoint& ep,
                                                    std::unique_ptr<transport::Transport> transport,
                                                    asio::io_context& io) {
  H2ClientSettings s;
  s.max_streams = h2_max_streams_;
  s.stream_window = h2_stream_window_;
  s.connection_window = h2_connection_window_;
  auto c = std::make_shared<H2ClientConnection>(io, std::move(transport), s, this);
  row().h2_cx_total.inc();
  std::erase_if(h2_all_, [](const std::weak_ptr<H2ClientConnection>& w) { return w.expired(); });
  h2_all_.push_back(c);
  if (!c->start()) {
    c->detach();
    h2_closed();
    return nullptr;
  }
  if (ep.removed) {
    c->shutdown();
  } else {
    ep.h2.push_back(c);
  }
  return c;
}

void Cluster::h2_closed() {
  if (open_ > 0) --open_;
  row().cx_active.dec();
  load().connections.fetch_sub(1, std::memory_order_relaxed);
}

void Cluster::sweep(Clock::time_point now) {
  for (auto& ep : endpoints_) {
    // HTTP/2 connections without a stream for the idle timeout end (GOAWAY); dead ones go.
    size_t k = 0;
    for (size_t i = 0; i < ep->h2.size(); ++i) {
      auto& c = ep->h2[i];
      if (c->dead()) continue;
      if (c->streams() == 0 && now - c->idle_since() > idle_timeout_) {
        c->shutdown();
        continue;
      }
      ep->h2[k++] = std::move(c);
    }
    ep->h2.resize(k);
    auto& idle = ep->idle;
    size_t keep = 0;
    for (size_t i = 0; i < idle.size(); ++i) {
      if (now - idle[i]->idle_since > idle_timeout_) {
        closed(std::move(idle[i]));
      } else {
        idle[keep++] = std::move(idle[i]);
      }
    }
    idle.resize(keep);
  }
}

}  // namespace portico::proxy::upstream
