#include "proxy/worker.h"

#include <netinet/in.h>
#include <netinet/tcp.h>

#include <random>

#include "common/log.h"
#include "proxy/http/h1_server.h"
#include "proxy/http/h2_server.h"
#include "proxy/tls/tls_transport.h"
#include "proxy/transport/prefixed.h"
#include "proxy/transport/tcp.h"

#include "proxy/overload/overload.h"  // the global connection limit

namespace portico::proxy {

namespace {
constexpr auto kPoolSweepInterval = std::chrono::seconds(1);
constexpr auto use_nothrow = asio::experimental::as_tuple(asio::use_awaitable);

// A TLS connection: the handshake (bounded by the request header timeout), then HTTP/2 when ALPN
// chose "h2", else HTTP/1.1. A failed handshake is counted by the TLS layer and the connection is
// closed.
asio::awaitable<void> serve_tls(Worker& worker, std::shared_ptr<const tls::ServerContext> context,
                                asio::ip::tcp::socket socket, std::string key,
                                std::chrono::milliseconds timeout) {
  auto t = co_await tls::accept(std::move(context), std::move(socket), timeout);
  if (!t.ok()) {
    worker.release(key);
    co_return;
  }
  if (t.value()->info().alpn == "h2") {
    co_await http::serve_h2(worker, std::move(t.value()), key);
    co_return;
  }
  co_await http::serve_h1(worker, std::move(t.value()), key);
}

// A cleartext connection on a listener that also serves HTTP/2 with prior knowledge: the first
// bytes are compared with the client preface (reading stops at the first byte that differs, so an
// HTTP/1.1 request is recognised at once); those bytes go to the codec chosen. Bounded by the
// request header timeout.
asio::awaitable<void> serve_detect(Worker& worker, std::unique_ptr<transport::Transport> t,
                                   std::string key, std::chrono::milliseconds timeout) {
  std::string got;
  Timer deadline(worker.timers(), [&t] { t->cancel(); });
  deadline.arm(timeout);
  const std::string_view preface = http::kH2ClientPreface;
  bool h2 = true;
  while (got.size() < preface.size()) {
    char buf[24];
    auto [ec, n] = co_await t->read_some(asio::buffer(buf, preface.size() - got.size()));
    if (ec || n == 0) {
      worker.release(key);
      co_return;
    }
    got.append(buf, n);
    if (preface.substr(0, got.size()) != got) {
      h2 = false;
      break;
    }
  }
  deadline.cancel();
  if (h2) {
    co_await http::serve_h2(worker, std::move(t), key, std::move(got));
    co_return;
  }
  co_await http::serve_h1(
      worker, std::make_unique<transport::PrefixedTransport>(std::move(t), std::move(got)), key);
}

asio::awaitable<void> accept_loop(Worker& worker, asio::ip::tcp::acceptor& acceptor,
                                  std::string key) {
  for (;;) {
    auto [ec, socket] = co_await acceptor.async_accept(use_nothrow);
    if (ec == asio::error::operation_aborted || !acceptor.is_open()) co_return;
    if (ec) {
      // EMFILE/ENFILE and friends: back off briefly instead of spinning.
      LOG_WARN("worker %u: accept on %s failed: %s", worker.index(), key.c_str(),
               ec.message().c_str());
      asio::steady_timer t(worker.io(), std::chrono::milliseconds(20));
      co_await t.async_wait(use_nothrow);
      continue;
    }
    if (worker.draining()) co_return;
    asio::error_code ignored;
    if (!worker.admit(key)) {
      worker.row().downstream_cx_overflow.inc();
      socket.close(ignored);
      continue;
    }
    socket.set_option(asio::ip::tcp::no_delay(true), ignored);
    // ---- Transport selection (the one place) ---------------------------------------------
    // A listener with TLS wraps the socket in a TLS transport after the handshake; one whose
    // TLS contexts could not be built refuses the connection, never serves it in plaintext.
    const ListenerRuntime* lr = nullptr;
    if (const Runtime* rt = worker.config()->runtime.get()) {
      auto it = rt->listener_by_key.find(key);
      if (it != rt->listener_by_key.end()) lr = &rt->listeners[it->second];
    }
    if (lr && lr->listener->tls) {
      if (!lr->tls) {
        worker.release(key);
        socket.close(ignored);
        continue;
      }
      asio::co_spawn(worker.io(),
                     serve_tls(worker, lr->tls, std::move(socket), key,
                               lr->listener->http.request_header_timeout),
                     asio::detached);
      continue;
    }
    auto transport = std::make_unique<transport::TcpTransport>(std::move(socket));
    if (lr && lr->listener->http.http2.cleartext_prior_knowledge) {
      asio::co_spawn(worker.io(),
                     serve_detect(worker, std::move(transport), key,
                                  lr->listener->http.request_header_timeout),
                     asio::detached);
      continue;
    }
    asio::co_spawn(worker.io(), http::serve_h1(worker, std::move(transport), key), asio::detached);
  }
}
}  // namespace

Worker::Worker(unsigned index, stats::Registry& stats) : index_(index), stats_(stats) {
  std::random_device rd;
  rng_ = (static_cast<uint64_t>(rd()) << 32) ^ rd() ^ (index + 1) * 0x9E3779B97F4A7C15ULL;
  if (rng_ == 0) rng_ = 1;
  config_ = std::make_shared<WorkerConfig>();
  timers_.on_first_timer([this] { schedule_tick(); });
  pool_sweep_.bind(timers_, [this] {
    sweep_pools();
    pool_sweep_.arm(kPoolSweepInterval);
  });
  idle_close_timer_.bind(timers_, [this] { close_idle_connections(); });
  drain_timer_.bind(timers_, [this] {
    // The drain deadline: connections still open are ended now.
    for (DownstreamConnection* c = connections_list_; c;) {
      DownstreamConnection* next = c->next_;
      c->abort();
      c = next;
    }
  });
}

Worker::~Worker() {
  join();
}

void Worker::start() {
  pool_sweep_.arm(kPoolSweepInterval);
  thread_ = std::thread([this] {
    auto guard = asio::make_work_guard(io_);
    io_.run();
  });
}

void Worker::join() {
  if (thread_.joinable()) thread_.join();
}

void Worker::post_runtime(std::shared_ptr<const Runtime> runtime) {
  asio::post(io_, [this, runtime = std::move(runtime)]() mutable { apply(std::move(runtime)); });
}

namespace {
// The ring hash / maglev tables build_runtime made for cluster i (null: the cluster builds them).
std::shared_ptr<const upstream::lb::HashTables> lb_tables(const Runtime& rt, size_t i) {
  return i < rt.cluster_lb.size() ? rt.cluster_lb[i] : nullptr;
}
// The subsets build_runtime compiled for cluster i (null: none).
std::shared_ptr<const upstream::ClusterSubsets> subsets_of(const Runtime& rt, size_t i) {
  return i < rt.cluster_subsets.size() ? rt.cluster_subsets[i] : nullptr;
}
}  // namespace

void Worker::apply(std::shared_ptr<const Runtime> runtime) {
  auto next = std::make_shared<WorkerConfig>();
  const auto& clusters = runtime->config->clusters;
  const Runtime* running = config_ ? config_->runtime.get() : nullptr;
  if (running != nullptr && running->config && runtime->cluster_names_unchanged &&
      runtime->based_on_version == running->config->version &&
      config_->clusters.size() == clusters.size()) {
    // The clusters this worker runs, in the same order: only those that changed are updated (a
    // route change at 5,000 clusters touches none of them).
    next->clusters = config_->clusters;
    for (size_t i = 0; i < clusters.size(); ++i) {
      if (runtime->cluster_unchanged[i]) {
        // Subsets a route added or dropped (the cluster itself as it was).
        auto subsets = subsets_of(*runtime, i);
        if (subsets != next->clusters[i]->subsets()) next->clusters[i]->set_subsets(subsets);
        continue;
      }
      next->clusters[i]->update(clusters[i], runtime->cluster_stats[i], lb_tables(*runtime, i));
      next->clusters[i]->set_tls(runtime->cluster_tls[i], runtime->cluster_tls_errors[i]);
      next->clusters[i]->set_health(runtime->cluster_health[i]);
      next->clusters[i]->set_subsets(subsets_of(*runtime, i));
    }
    next->runtime = std::move(runtime);
    config_ = std::move(next);
    return;
  }
  std::unordered_map<std::string, std::shared_ptr<upstream::Cluster>> by_name;
  for (size_t i = 0; i < clusters.size(); ++i) {
    auto it = clusters_.find(clusters[i].name);
    std::shared_ptr<upstream::Cluster> c;
    if (it != clusters_.end()) {
      c = it->second;
      c->update(clusters[i], runtime->cluster_stats[i], lb_tables(*runtime, i));
    } else {
      c = std::make_shared<upstream::Cluster>(clusters[i], runtime->cluster_stats[i], index_,
                                              lb_tables(*runtime, i));
    }
    c->set_tls(runtime->cluster_tls[i], runtime->cluster_tls_errors[i]);
    c->set_health(runtime->cluster_health[i]);
    c->set_subsets(subsets_of(*runtime, i));
    by_name[clusters[i].name] = c;
    next->clusters.push_back(std::move(c));
  }
  clusters_ = std::move(by_name);  // clusters no longer configured die with their last request
  next->runtime = std::move(runtime);
  config_ = std::move(next);
}

void Worker::post_listeners(std::vector<std::pair<std::string, int>> add,
                            std::vector<std::string> remove) {
  asio::post(io_, [this, add = std::move(add), remove = std::move(remove)]() {
    for (const auto& key : remove) {
      auto it = acceptors_.find(key);
      if (it == acceptors_.end()) continue;
      for (auto& acc : it->second) {
        asio::error_code ignored;
        acc->close(ignored);
        // The accept loop still references the acceptor until it sees the cancellation.
        auto dying = std::shared_ptr<asio::ip::tcp::acceptor>(std::move(acc));
        asio::post(io_, [dying] {});
      }
      acceptors_.erase(it);
      // Idle keep-alive connections of a removed listener are closed now, not failed at their
      // next request; connections with a request in flight finish it first.
      for (DownstreamConnection* c = connections_list_; c;) {
        DownstreamConnection* next = c->next_;
        if (c->idle() && c->listener() == key) c->close_idle();
        c = next;
      }
    }
    for (const auto& [key, fd] : add) {
      if (draining_) {
        ::close(fd);
        continue;
      }
      auto acc = std::make_unique<asio::ip::tcp::acceptor>(io_);
      asio::error_code ec;
      sockaddr_storage ss{};
      socklen_t len = sizeof ss;
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len);
      acc->assign(ss.ss_family == AF_INET6 ? asio::ip::tcp::v6() : asio::ip::tcp::v4(), fd, ec);
      if (ec) {
        LOG_ERROR("worker %u: cannot use listening socket for %s: %s", index_, key.c_str(),
                  ec.message().c_str());
        ::close(fd);
        continue;
      }
      auto& slot = acceptors_[key];
      slot.push_back(std::move(acc));
      asio::co_spawn(io_, accept_loop(*this, *slot.back(), key), asio::detached);
    }
  });
}

void Worker::close_idle_connections() {
  for (DownstreamConnection* c = connections_list_; c;) {
    DownstreamConnection* next = c->next_;
    if (c->idle()) c->close_idle();
    c = next;
  }
}

void Worker::post_drain(Clock::duration deadline, Clock::duration idle_grace) {
  asio::post(io_, [this, deadline, idle_grace] {
    draining_ = true;
    drain_timer_.arm(deadline.count() > 0 ? deadline : Clock::duration(1));
    // Closing does not shut the sockets down: after a binary upgrade the new process holds the
    // same sockets and keeps accepting from their queues.
    for (auto& [key, accs] : acceptors_) {
      for (auto& acc : accs) {
        asio::error_code ignored;
        acc->close(ignored);
      }
    }
    // Closing an acceptor completes its pending accept with operation_aborted; keep the objects
    // alive until the loop ends.
    if (idle_grace.count() > 0 && idle_grace < deadline) {
      idle_close_timer_.arm(idle_grace);
    } else {
      close_idle_connections();
    }
    maybe_finish_drain();
  });
}

void Worker::post_stop() {
  asio::post(io_, [this] {
    stopped_ = true;
    io_.stop();
  });
}

void Worker::maybe_finish_drain() {
  if (draining_ && connections_ == 0 && !stopped_) {
    stopped_ = true;
    ticker_.cancel();
    pool_sweep_.cancel();
    drain_timer_.cancel();
    idle_close_timer_.cancel();
    clusters_.clear();
    config_ = std::make_shared<WorkerConfig>();
    io_.stop();
  }
}

bool Worker::admit(const std::string& key) {
  uint32_t& open = listener_connections_[key];
  uint32_t global_max = 0;
  if (const Runtime* rt = config_->runtime.get()) {
    auto it = rt->listener_by_key.find(key);
    if (it != rt->listener_by_key.end()) {
      const uint32_t max = rt->listeners[it->second].listener->http.max_connections;
      // Each worker takes its share of the limit (rounded up): SO_REUSEPORT spreads connections
      // evenly, and no counter is shared between workers.
      const uint32_t workers = stats_.workers();
      if (max != 0 && open >= (max + workers - 1) / workers) return false;
    }
    global_max = rt->config->overload.max_connections;
  }
  // The overload manager's limit is exact across workers: one shared counter, touched once per
  // connection (not per request).
  if (!overload::admit_connection(global_max)) return false;
  ++open;
  return true;
}

void Worker::release(const std::string& key) {
  overload::release_connection();
  auto it = listener_connections_.find(key);
  if (it != listener_connections_.end() && it->second > 0 && --it->second == 0) {
    listener_connections_.erase(it);
  }
}

void Worker::add_connection(DownstreamConnection* c) {
  c->next_ = connections_list_;
  c->prev_ = nullptr;
  if (connections_list_) connections_list_->prev_ = c;
  connections_list_ = c;
  ++connections_;
}

void Worker::remove_connection(DownstreamConnection* c) {
  if (c->prev_) c->prev_->next_ = c->next_;
  if (c->next_) c->next_->prev_ = c->prev_;
  if (connections_list_ == c) connections_list_ = c->next_;
  c->prev_ = c->next_ = nullptr;
  --connections_;
  if (draining_) maybe_finish_drain();
}

void Worker::schedule_tick() {
  if (ticking_ || stopped_) return;
  ticking_ = true;
  ticker_.expires_after(timers_.tick());
  ticker_.async_wait([this](const asio::error_code& ec) {
    ticking_ = false;
    if (ec || stopped_) return;
    timers_.advance();
    if (timers_.armed() > 0) schedule_tick();
  });
}

void Worker::sweep_pools() {
  const auto now = Clock::now();
  for (auto& [name, c] : clusters_)
    c->sweep(now);
}

}  // namespace portico::proxy
