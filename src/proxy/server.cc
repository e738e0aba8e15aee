#include "proxy/server.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <set>

#include "common/log.h"
#include "proxy/overload/overload.h"

namespace portico::proxy {

namespace {

constexpr int kBacklog = 4096;

// Opens a listening socket with SO_REUSEPORT (one per worker on the same address and port: the
// kernel spreads new connections across them). Returns the fd or -errno. `reuse_port` false makes
// a probe: it fails when anything else listens there, including another process's SO_REUSEPORT
// sockets, which would otherwise silently share the port with us.
int open_listener(const std::string& address, uint16_t port, bool reuse_port = true) {
  sockaddr_storage ss{};
  socklen_t len = 0;
  int family = AF_INET;
  if (address.find(':') != std::string::npos) {
    family = AF_INET6;
    auto* a6 = reinterpret_cast<sockaddr_in6*>(&ss);
    a6->sin6_family = AF_INET6;
    a6->sin6_port = htons(port);
    if (inet_pton(AF_INET6, address.c_str(), &a6->sin6_addr) != 1) return -EINVAL;
    len = sizeof(sockaddr_in6);
  } else {
    auto* a4 = reinterpret_cast<sockaddr_in*>(&ss);
    a4->sin_family = AF_INET;
    a4->sin_port = htons(port);
    if (inet_pton(AF_INET, address.c_str(), &a4->sin_addr) != 1) return -EINVAL;
    len = sizeof(sockaddr_in);
  }
  int fd = ::socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return -errno;
  int one = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (reuse_port) ::setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
  if (family == AF_INET6) ::setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&ss), len) != 0 || ::listen(fd, kBacklog) != 0) {
    int e = errno;
    ::close(fd);
    return -e;
  }
  return fd;
}

}  // namespace

Server::Server(unsigned workers, stats::Registry& stats) : stats_(stats) {
  for (unsigned i = 0; i < workers; ++i)
    workers_.push_back(std::make_unique<Worker>(i, stats));
}

Server::~Server() {
  stop();
  join();
}

void Server::start() {
  for (auto& w : workers_)
    w->start();
  health_.start();
}

std::vector<ListenerError> Server::apply(std::shared_ptr<const snapshot::ProxyConfig> config) {
  std::vector<ListenerError> errors;
  // Compiled virtual hosts that did not change are taken from the previous runtime.
  auto runtime = build_runtime(config, stats_, filters::builtin_registry(), runtime_.get());
  overload::Monitor::instance().configure(config->overload);
  runtime_ = runtime;
  // Filters that did not compile are reported; their routes answer 500 rather than run without.
  // Each is reported on the resources that produced the item (snapshot::sources_of).
  for (const auto& lr : runtime->listeners) {
    for (const auto& vr : lr.virtual_hosts) {
      for (const auto& e : vr->filter_errors)
        errors.push_back({"",
                          "listener " + lr.listener->name + ": route configuration rejected: " + e,
                          snapshot::sources_of(*vr->host)});
    }
    // A TLS listener whose contexts cannot be built refuses connections (never plaintext).
    if (!lr.tls_error.empty()) {
      auto sources = snapshot::sources_of(*lr.listener);
      sources.erase(sources.begin());  // the Gateway: Rejected through `listener`
      errors.push_back({lr.listener->name, "TLS configuration rejected: " + lr.tls_error, sources});
    }
    for (const auto& e : lr.access_log_errors)
      errors.push_back({lr.listener->name, e});
    if (lr.tls) {
      for (const auto& w : lr.tls->warnings())
        LOG_WARN("listener %s: %s", lr.listener->name.c_str(), w.c_str());
    }
  }
  for (size_t i = 0; i < runtime->cluster_tls_errors.size(); ++i) {
    if (runtime->cluster_tls_errors[i].empty()) continue;
    LOG_WARN("upstream %s: TLS configuration rejected (its requests fail): %s",
             config->clusters[i].name.c_str(), runtime->cluster_tls_errors[i].c_str());
    errors.push_back({"",
                      "upstream TLS configuration rejected (requests to it fail): " +
                          runtime->cluster_tls_errors[i],
                      snapshot::sources_of(config->clusters[i])});
  }

  // New listeners: bind on the control thread first so that errors are known now.
  std::vector<std::vector<std::pair<std::string, int>>> add(workers_.size());
  std::map<std::string, uint16_t> wanted;
  // Ports of our own listeners that stay open until the workers close them: a new listener on such
  // a port (an address moving to 0.0.0.0) would fail the probe against our own sockets.
  std::set<uint16_t> ours;
  for (const auto& [key, port] : bound_)
    ours.insert(port);
  for (const auto& l : config->listeners) {
    std::string key = listener_key(l.address, l.port);
    if (wanted.count(key)) continue;
    if (bound_.count(key)) {
      wanted[key] = l.port;
      continue;
    }
    if (auto in = inherited_.find(key); in != inherited_.end()) {
      // Handed over by the old process: every one of its sockets is served (one per worker, the
      // extra ones spread over our workers), and workers beyond its count get new sockets in the
      // same SO_REUSEPORT group.
      std::vector<int> fds = std::move(in->second);
      inherited_.erase(in);
      auto& to = hold_ ? held_ : add;
      auto& keep = fds_[key];
      for (size_t i = 0; i < fds.size(); ++i) {
        to[i % workers_.size()].emplace_back(key, fds[i]);
        keep.emplace_back(static_cast<unsigned>(i % workers_.size()), fds[i]);
      }
      for (size_t w = fds.size(); w < workers_.size(); ++w) {
        int fd = open_listener(l.address, l.port);
        if (fd < 0) {
          LOG_WARN("listener %s: worker %zu has no socket of its own: %s", key.c_str(), w,
                   std::strerror(-fd));
          continue;
        }
        to[w].emplace_back(key, fd);
        keep.emplace_back(static_cast<unsigned>(w), fd);
      }
      LOG_INFO("listener %s: adopted %zu listening sockets from the previous process", key.c_str(),
               fds.size());
      wanted[key] = l.port;
      continue;
    }
    std::vector<int> fds;
    int err = 0;
    if (!ours.count(l.port)) {
      int probe = open_listener(l.address, l.port, false);
      if (probe < 0) {
        err = -probe;
      } else {
        ::close(probe);
      }
    }
    for (size_t w = 0; err == 0 && w < workers_.size(); ++w) {
      int fd = open_listener(l.address, l.port);
      if (fd < 0) {
        err = -fd;
        break;
      }
      fds.push_back(fd);
    }
    if (err != 0) {
      for (int fd : fds)
        ::close(fd);
      errors.push_back({l.name, "cannot listen on " + key + ": " + std::strerror(err)});
      continue;
    }
    for (size_t w = 0; w < workers_.size(); ++w) {
      add[w].emplace_back(key, fds[w]);
      fds_[key].emplace_back(static_cast<unsigned>(w), fds[w]);
    }
    wanted[key] = l.port;
  }
  std::vector<std::string> remove;
  for (const auto& [key, port] : bound_) {
    if (!wanted.count(key)) {
      remove.push_back(key);
      fds_.erase(key);
    }
  }
  bound_ = std::move(wanted);

  // Runtime first, then sockets: a connection accepted on a new socket finds its listener.
  for (auto& w : workers_)
    w->post_runtime(runtime);
  health_.apply(runtime->cluster_health);
  for (size_t w = 0; w < workers_.size(); ++w) {
    if (!add[w].empty() || !remove.empty()) workers_[w]->post_listeners(std::move(add[w]), remove);
  }
  current_ = std::move(config);
  return errors;
}

void Server::inherit(std::map<std::string, std::vector<int>> sockets, bool hold) {
  inherited_ = std::move(sockets);
  hold_ = hold;
  held_.assign(workers_.size(), {});
}

void Server::release_held() {
  hold_ = false;
  for (size_t w = 0; w < workers_.size() && w < held_.size(); ++w) {
    if (!held_[w].empty()) workers_[w]->post_listeners(std::move(held_[w]), {});
  }
  held_.clear();
}

void Server::close_held() {
  for (auto& list : held_) {
    for (auto& [key, fd] : list)
      ::close(fd);
  }
  held_.clear();
  hold_ = false;
}

std::vector<std::string> Server::close_unused_inherited() {
  std::vector<std::string> keys;
  for (auto& [key, fds] : inherited_) {
    // close(), never shutdown(): the old process may still accept on these sockets.
    for (int fd : fds)
      ::close(fd);
    keys.push_back(key);
  }
  inherited_.clear();
  return keys;
}

std::vector<std::tuple<std::string, unsigned, int>> Server::listening_sockets() const {
  std::vector<std::tuple<std::string, unsigned, int>> out;
  for (const auto& [key, fds] : fds_) {
    for (const auto& [worker, fd] : fds)
      out.emplace_back(key, worker, fd);
  }
  return out;
}

void Server::when_applied(std::function<void()> done) {
  auto left = std::make_shared<std::atomic<size_t>>(workers_.size());
  auto fn = std::make_shared<std::function<void()>>(std::move(done));
  for (auto& w : workers_) {
    asio::post(w->io(), [left, fn] {
      if (left->fetch_sub(1) == 1) (*fn)();
    });
  }
}

void Server::drain(Clock::duration deadline, Clock::duration idle_grace) {
  for (auto& w : workers_)
    w->post_drain(deadline, idle_grace);
}

void Server::stop() {
  health_.stop();
  for (auto& w : workers_)
    w->post_stop();
}

void Server::join() {
  for (auto& w : workers_)
    w->join();
}

}  // namespace portico::proxy
