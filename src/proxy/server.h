// Server: the data plane's front object, used from the control thread. It owns the workers, opens
// the listening sockets (so that a bind error is known at once and can be reported on the Gateway),
// compiles each ProxyConfig into a Runtime and hands it to every worker.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <tuple>
#include <vector>

#include "proxy/runtime.h"
#include "proxy/stats/stats.h"
#include "proxy/upstream/health.h"
#include "proxy/worker.h"
#include "snapshot/proxy_config.h"

namespace portico::proxy {

// Something of a configuration the data plane could not apply: a listener it could not open
// (`listener` set: its Gateway is Rejected), or an item it could not compile (`sources`: the
// resources that produced it, snapshot::sources_of, which get the message as a warning).
struct ListenerError {
  std::string listener;  // snapshot::Listener::name; empty when not about a listener
  std::string message;
  std::vector<std::string> sources;  // "<Kind>/<namespace>/<name>"
};

class Server {
 public:
  Server(unsigned workers, stats::Registry& stats);
  ~Server();

  void start();

  // Publishes `config` to every worker; opens the sockets of new listeners and closes those of
  // removed ones. Returns the listeners that could not be bound (the rest is applied).
  std::vector<ListenerError> apply(std::shared_ptr<const snapshot::ProxyConfig> config);

  // Calls `done` (on a worker thread) once every worker has run everything posted to it so far, in
  // particular the last apply(): the configuration is then in force everywhere.
  void when_applied(std::function<void()> done);

  // Graceful shutdown: stop accepting, let in-flight requests finish for up to `deadline`.
  // `idle_grace`: see Worker::post_drain (binary upgrade).
  void drain(Clock::duration deadline, Clock::duration idle_grace = Clock::duration::zero());
  // Waits for every worker thread to end (after drain or stop).
  void join();
  void stop();

  // Binary upgrade, new process: listening sockets received from the old one, by listener key, in
  // the old process's worker order. apply() adopts them instead of binding (the SAME sockets: what
  // waits in their accept queues is served here). With `hold`, the adopted sockets are not given
  // to the workers until release_held(): a new process that gives up takes nothing from the old.
  void inherit(std::map<std::string, std::vector<int>> sockets, bool hold);
  // Posts the held sockets to the workers, or closes them (the new process gives up).
  void release_held();
  void close_held();
  // Closes the inherited sockets no listener took (after the first apply); returns their keys.
  std::vector<std::string> close_unused_inherited();
  // Binary upgrade, old process: the listening sockets by key, as (worker, fd). The fds stay ours.
  std::vector<std::tuple<std::string, unsigned, int>> listening_sockets() const;

  std::shared_ptr<const snapshot::ProxyConfig> current() const { return current_; }
  unsigned workers() const { return static_cast<unsigned>(workers_.size()); }
  const upstream::HealthChecker& health() const { return health_; }

 private:
  stats::Registry& stats_;
  std::vector<std::unique_ptr<Worker>> workers_;
  std::shared_ptr<const snapshot::ProxyConfig> current_;
  std::shared_ptr<const Runtime> runtime_;  // the last one built (its compiled hosts are reused)
  std::map<std::string, uint16_t> bound_;   // listener keys with sockets on the workers → port
  // The fds of bound_ keys, as (worker, fd): what a binary upgrade hands over.
  std::map<std::string, std::vector<std::pair<unsigned, int>>> fds_;
  std::map<std::string, std::vector<int>> inherited_;  // not taken by a listener yet
  bool hold_ = false;
  std::vector<std::vector<std::pair<std::string, int>>> held_;  // per worker
  upstream::HealthChecker health_;  // one checker per upstream host, on its own thread
};

}  // namespace portico::proxy
