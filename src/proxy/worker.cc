#include "proxy/worker.h"

#include <netinet/in.h>
#include <netinet/tcp.h>

#include <random>

#include "common/log.h"
#include "proxy/http/connection.h"

namespace portico::proxy {

namespace {
constexpr auto kSweepInterval = std::chrono::milliseconds(50);
constexpr auto use_nothrow = asio::experimental::as_tuple(asio::use_awaitable);

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
    asio::co_spawn(worker.io(), http::serve_connection(worker, std::move(socket), key),
                   asio::detached);
  }
}
}  // namespace

Worker::Worker(unsigned index, stats::Registry& stats) : index_(index), stats_(stats) {
  std::random_device rd;
  rng_ = (static_cast<uint64_t>(rd()) << 32) ^ rd() ^ (index + 1) * 0x9E3779B97F4A7C15ULL;
  if (rng_ == 0) rng_ = 1;
  config_ = std::make_shared<WorkerConfig>();
}

Worker::~Worker() {
  join();
}

void Worker::start() {
  schedule_sweep();
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

void Worker::apply(std::shared_ptr<const Runtime> runtime) {
  auto next = std::make_shared<WorkerConfig>();
  const auto& clusters = runtime->config->clusters;
  std::unordered_map<std::string, std::shared_ptr<upstream::Cluster>> by_name;
  for (size_t i = 0; i < clusters.size(); ++i) {
    auto it = clusters_.find(clusters[i].name);
    std::shared_ptr<upstream::Cluster> c;
    if (it != clusters_.end()) {
      c = it->second;
      c->update(clusters[i], runtime->cluster_stats[i]);
    } else {
      c = std::make_shared<upstream::Cluster>(clusters[i], runtime->cluster_stats[i], index_);
    }
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
      asio::error_code ignored;
      it->second->close(ignored);
      // The accept loop still references the acceptor until it sees the cancellation.
      auto dying = std::shared_ptr<asio::ip::tcp::acceptor>(std::move(it->second));
      acceptors_.erase(it);
      asio::post(io_, [dying] {});
      // Idle keep-alive connections of a removed listener are closed now, not failed at their
      // next request; connections with a request in flight finish it first.
      for (Watch* w = watches_; w; w = w->next) {
        if (w->idle && w->listener == key && w->downstream) {
          asio::error_code ignored;
          w->downstream->cancel(ignored);
        }
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
      if (slot) {
        asio::error_code ignored;
        slot->close(ignored);
      }
      slot = std::move(acc);
      asio::co_spawn(io_, accept_loop(*this, *slot, key), asio::detached);
    }
  });
}

void Worker::post_drain(Clock::duration deadline) {
  asio::post(io_, [this, deadline] {
    draining_ = true;
    drain_deadline_ = Clock::now() + deadline;
    for (auto& [key, acc] : acceptors_) {
      asio::error_code ignored;
      acc->close(ignored);
    }
    // Closing an acceptor completes its pending accept with operation_aborted; keep the objects
    // alive until the loop ends.
    for (Watch* w = watches_; w; w = w->next) {
      if (w->idle && w->downstream) {
        asio::error_code ignored;
        w->downstream->cancel(ignored);
      }
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
    sweeper_.cancel();
    clusters_.clear();
    config_ = std::make_shared<WorkerConfig>();
    io_.stop();
  }
}

bool Worker::admit(const std::string& key) {
  uint32_t& open = listener_connections_[key];
  if (const Runtime* rt = config_->runtime.get()) {
    auto it = rt->listener_by_key.find(key);
    if (it != rt->listener_by_key.end()) {
      const uint32_t max = rt->listeners[it->second].listener->http.max_connections;
      // Each worker takes its share of the limit (rounded up): SO_REUSEPORT spreads connections
      // evenly, and no counter is shared between workers.
      const uint32_t workers = stats_.workers();
      if (max != 0 && open >= (max + workers - 1) / workers) return false;
    }
  }
  ++open;
  return true;
}

void Worker::release(const std::string& key) {
  auto it = listener_connections_.find(key);
  if (it != listener_connections_.end() && it->second > 0 && --it->second == 0) {
    listener_connections_.erase(it);
  }
}

void Worker::add_watch(Watch* w) {
  w->next = watches_;
  w->prev = nullptr;
  if (watches_) watches_->prev = w;
  watches_ = w;
  ++connections_;
}

void Worker::remove_watch(Watch* w) {
  if (w->prev) w->prev->next = w->next;
  if (w->next) w->next->prev = w->prev;
  if (watches_ == w) watches_ = w->next;
  w->prev = w->next = nullptr;
  --connections_;
  if (draining_) maybe_finish_drain();
}

void Worker::schedule_sweep() {
  sweeper_.expires_after(kSweepInterval);
  sweeper_.async_wait([this](const asio::error_code& ec) {
    if (ec || stopped_) return;
    sweep();
    schedule_sweep();
  });
}

void Worker::sweep() {
  const auto now = Clock::now();
  const bool past_drain = draining_ && now >= drain_deadline_;
  for (Watch* w = watches_; w; w = w->next) {
    if (now >= w->deadline || past_drain || (draining_ && w->idle)) {
      w->fired = true;
      w->deadline = Clock::time_point::max();
      asio::error_code ignored;
      if (w->downstream) w->downstream->cancel(ignored);
      if (w->upstream) w->upstream->cancel(ignored);
    }
  }
  if (now - last_pool_sweep_ > std::chrono::seconds(1)) {
    last_pool_sweep_ = now;
    for (auto& [name, c] : clusters_)
      c->sweep(now);
  }
}

}  // namespace portico::proxy
