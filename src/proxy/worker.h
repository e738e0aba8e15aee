// Worker: one event loop on one thread. It owns its listening sockets (SO_REUSEPORT, one per
// listener per worker), its client connections for their whole life, its upstream connection
// pools and its timer wheel. The control thread talks to it only by posting (apply, set_listeners,
// drain, stop); nothing on the request path locks.
#pragma once

#include <asio.hpp>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "proxy/runtime.h"
#include "proxy/stats/stats.h"
#include "proxy/timer/timer_wheel.h"
#include "proxy/upstream/cluster.h"

namespace portico::proxy {

// What one worker runs on: the shared Runtime plus this worker's cluster states, aligned with
// runtime->config->clusters. Held through a worker-local shared_ptr so that taking a reference per
// request touches no cache line shared with other workers.
struct WorkerConfig {
  std::shared_ptr<const Runtime> runtime;
  std::vector<std::shared_ptr<upstream::Cluster>> clusters;
};

// A client connection as the worker sees it: for draining, listener removal and the drain
// deadline. Registered for the connection's whole life (intrusive list, no allocation).
class DownstreamConnection {
 public:
  virtual ~DownstreamConnection() = default;
  virtual std::string_view listener() const = 0;  // the listener key ("address:port")
  // Between requests with nothing buffered: closed at once when draining.
  virtual bool idle() const = 0;
  virtual void close_idle() = 0;  // closes the connection if it is idle (else nothing)
  virtual void abort() = 0;       // ends the connection now, request in flight or not

 private:
  friend class Worker;
  DownstreamConnection* prev_ = nullptr;
  DownstreamConnection* next_ = nullptr;
};

class Worker {
 public:
  Worker(unsigned index, stats::Registry& stats);
  ~Worker();
  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;

  void start();  // starts the thread
  void join();

  // Control thread → worker.
  void post_runtime(std::shared_ptr<const Runtime> runtime);
  // Adds listening sockets (fds already bound and listening; the worker takes ownership) and closes
  // the acceptors of the keys in `remove`.
  void post_listeners(std::vector<std::pair<std::string, int>> add,
                      std::vector<std::string> remove);
  // Stops accepting, closes idle connections, lets in-flight requests finish; connections still
  // open at the deadline are closed. The event loop then ends. With `idle_grace` (binary upgrade),
  // idle keep-alive connections stay open that long: a request arriving on one is answered with
  // "Connection: close" rather than lost to a close racing with it.
  void post_drain(Clock::duration deadline, Clock::duration idle_grace = Clock::duration::zero());
  void post_stop();

  // Worker thread only.
  unsigned index() const { return index_; }
  asio::io_context& io() { return io_; }
  stats::Registry& stats() { return stats_; }
  stats::WorkerRow& row() { return stats_.worker_row(index_); }
  const std::shared_ptr<WorkerConfig>& config() const { return config_; }
  bool draining() const { return draining_; }
  uint64_t random() {
    // xorshift64*: fast, good enough for load balancing and request ids.
    rng_ ^= rng_ >> 12;
    rng_ ^= rng_ << 25;
    rng_ ^= rng_ >> 27;
    return rng_ * 0x2545F4914F6CDD1DULL;
  }
  // A new connection on listener `key`: false when the listener's maxConnections share of this
  // worker is taken (the caller closes it). Every admitted connection is released when it ends.
  bool admit(const std::string& key);
  void release(const std::string& key);
  void add_connection(DownstreamConnection* c);
  void remove_connection(DownstreamConnection* c);
  TimerWheel& timers() { return timers_; }
  size_t connections() const { return connections_; }

 private:
  void apply(std::shared_ptr<const Runtime> runtime);
  void schedule_tick();
  void sweep_pools();
  void maybe_finish_drain();
  void close_idle_connections();

  unsigned index_;
  stats::Registry& stats_;
  // Sockets are only ever touched by this worker's thread (others post), so the reactor needs no
  // locks; the scheduler keeps its own for posts from the control thread.
  asio::io_context io_{ASIO_CONCURRENCY_HINT_UNSAFE_IO};
  std::thread thread_;
  std::shared_ptr<WorkerConfig> config_;
  std::unordered_map<std::string, std::shared_ptr<upstream::Cluster>> clusters_;
  // Usually one socket per listener key; more after a binary upgrade from a process that had more
  // workers (every socket handed over is served: each has its own accept queue).
  std::map<std::string, std::vector<std::unique_ptr<asio::ip::tcp::acceptor>>> acceptors_;
  std::unordered_map<std::string, uint32_t> listener_connections_;  // open, by listener key
  // Deadlines: the wheel, advanced by one asio timer every tick while any deadline is armed.
  TimerWheel timers_;
  asio::steady_timer ticker_{io_};
  bool ticking_ = false;
  Timer pool_sweep_;
  Timer drain_timer_;
  Timer idle_close_timer_;  // the end of a drain's idle grace
  DownstreamConnection* connections_list_ = nullptr;
  size_t connections_ = 0;
  bool draining_ = false;
  bool stopped_ = false;
  uint64_t rng_;
};

}  // namespace portico::proxy
