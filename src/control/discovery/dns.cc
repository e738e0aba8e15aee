#include "control/discovery/dns.h"

#include <ares.h>
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <unistd.h>

#include <algorithm>
#include <climits>
#include <mutex>
#include <random>
#include <set>

namespace portico::control {

namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

constexpr milliseconds kFailureRetryMax{30000};

std::once_flag g_ares_init;

milliseconds jittered(milliseconds d, double low) {
  thread_local std::mt19937 rng{std::random_device{}()};
  std::uniform_real_distribution<double> f(low, 1.0);
  return milliseconds(static_cast<int64_t>(static_cast<double>(d.count()) * f(rng)));
}

}  // namespace

struct DnsDiscovery::Name {
  std::vector<snapshot::Endpoint> endpoints;
  std::string problem;
  bool resolved = false;
  bool in_flight = false;
  uint32_t failures = 0;
  Clock::time_point due;
  uint64_t generation = 0;  // of the lookup in flight; older answers are ignored
};

struct DnsDiscovery::Shared {
  std::mutex mu;
  std::condition_variable answered;  // any lookup ended
  std::map<std::string, Name> names;
  DnsOptions options;
  bool configured = false;
  bool options_changed = false;
  bool changed = false;
  bool stop = false;
  uint64_t next_generation = 1;
  std::function<void()> wake;
  Counters counters;
  int pipe_r = -1;
  int pipe_w = -1;

  void nudge() const {
    char c = 1;
    [[maybe_unused]] ssize_t n = ::write(pipe_w, &c, 1);
  }
};

struct DnsDiscovery::Query {
  Shared* shared = nullptr;  // outlives the channel: run() destroys it before it returns
  std::string name;
  uint64_t generation = 0;
};

DnsDiscovery::DnsDiscovery() : shared_(std::make_shared<Shared>()) {
  std::call_once(g_ares_init, [] { ares_library_init(ARES_LIB_INIT_ALL); });
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC | O_NONBLOCK) == 0) {
    shared_->pipe_r = fds[0];
    shared_->pipe_w = fds[1];
  }
}

DnsDiscovery::~DnsDiscovery() {
  {
    std::lock_guard lock(shared_->mu);
    shared_->stop = true;
  }
  if (thread_.joinable()) {
    shared_->nudge();
    thread_.join();
  }
  if (shared_->pipe_r >= 0) ::close(shared_->pipe_r);
  if (shared_->pipe_w >= 0) ::close(shared_->pipe_w);
}

void DnsDiscovery::start(std::function<void()> wake) {
  {
    std::lock_guard lock(shared_->mu);
    shared_->wake = std::move(wake);
  }
  if (!thread_.joinable()) thread_ = std::thread([this] { run(); });
}

void DnsDiscovery::configure(const DnsOptions& options) {
  {
    std::lock_guard lock(shared_->mu);
    if (shared_->configured && shared_->options == options) return;
    shared_->options = options;
    shared_->configured = true;
    shared_->options_changed = true;
  }
  shared_->nudge();
}

void DnsDiscovery::watch(const std::vector<snapshot::DiscoveryTarget>& targets) {
  std::set<std::string> wanted;
  for (const auto& t : targets) {
    if (t.source == "dns") wanted.insert(t.name);
  }
  bool added = false;
  {
    std::lock_guard lock(shared_->mu);
    for (auto it = shared_->names.begin(); it != shared_->names.end();) {
      if (wanted.count(it->first)) {
        ++it;
      } else {
        it = shared_->names.erase(it);
        shared_->changed = true;
      }
    }
    for (const auto& name : wanted) {
      auto [it, inserted] = shared_->names.try_emplace(name);
      if (inserted) {
        it->second.due = Clock::now();
        added = true;
      }
    }
  }
  if (added) shared_->nudge();
}

bool DnsDiscovery::wait_first(std::chrono::milliseconds timeout) {
  std::unique_lock lock(shared_->mu);
  if (!shared_->configured) return false;  // no lookup before the Settings are known
  return shared_->answered.wait_for(lock, timeout, [this] {
    return std::all_of(shared_->names.begin(), shared_->names.end(),
                       [](const auto& n) { return n.second.resolved; });
  });
}

std::optional<DiscoveredMap> DnsDiscovery::poll() {
  std::lock_guard lock(shared_->mu);
  if (!shared_->changed) return std::nullopt;
  shared_->changed = false;
  DiscoveredMap out;
  for (const auto& [name, n] : shared_->names) {
    if (!n.resolved) continue;
    out["dns:" + name] = Discovered{n.endpoints, n.problem};
  }
  return out;
}

DnsDiscovery::Counters DnsDiscovery::counters() const {
  std::lock_guard lock(shared_->mu);
  Counters c = shared_->counters;
  c.names = shared_->names.size();
  c.failing = 0;
  for (const auto& [name, n] : shared_->names)
    c.failing += n.problem.empty() ? 0 : 1;
  return c;
}

void DnsDiscovery::on_answer(void* arg, int status, int /*timeouts*/, ares_addrinfo* result) {
  std::unique_ptr<Query> q(static_cast<Query*>(arg));
  Shared& shared = *q->shared;
  std::vector<snapshot::Endpoint> found;
  int ttl = INT_MAX;
  if (status == ARES_SUCCESS && result) {
    for (ares_addrinfo_node* n = result->nodes; n; n = n->ai_next) {
      char text[INET6_ADDRSTRLEN] = {};
      if (n->ai_family == AF_INET) {
        ::inet_ntop(AF_INET, &reinterpret_cast<sockaddr_in*>(n->ai_addr)->sin_addr, text,
                    sizeof text);
      } else if (n->ai_family == AF_INET6) {
        ::inet_ntop(AF_INET6, &reinterpret_cast<sockaddr_in6*>(n->ai_addr)->sin6_addr, text,
                    sizeof text);
      } else {
        continue;
      }
      snapshot::Endpoint e;
      e.address = text;
      if (std::find(found.begin(), found.end(), e) == found.end()) found.push_back(std::move(e));
      ttl = std::min(ttl, std::max(n->ai_ttl, 0));
    }
  }
  if (result) ares_freeaddrinfo(result);
  // Sorted: a server rotating its answers is no change.
  std::sort(found.begin(), found.end(),
            [](const auto& a, const auto& b) { return a.address < b.address; });

  std::function<void()> wake;
  {
    std::lock_guard lock(shared.mu);
    auto it = shared.names.find(q->name);
    if (it == shared.names.end() || it->second.generation != q->generation) return;
    Name& n = it->second;
    n.in_flight = false;
    const auto now = Clock::now();
    if (status == ARES_EDESTRUCTION || status == ARES_ECANCELLED) {
      n.due = now;  // the channel was replaced (new options): look it up again at once
      return;
    }
    ++shared.counters.lookups;
    const DnsOptions& o = shared.options;
    std::vector<snapshot::Endpoint> endpoints = n.endpoints;
    std::string problem;
    if (status == ARES_SUCCESS && !found.empty()) {
      endpoints = std::move(found);
      n.failures = 0;
      milliseconds every = ttl == INT_MAX ? o.min_refresh : milliseconds(int64_t{ttl} * 1000);
      every = std::clamp(every, o.min_refresh, std::max(o.min_refresh, o.max_refresh));
      // Early rather than late: the answer expires at the TTL.
      n.due = now + jittered(every, 0.9);
    } else {
      ++shared.counters.failures;
      ++n.failures;
      if (status == ARES_ENOTFOUND) {
        problem = "NXDOMAIN (the name does not exist)";
        endpoints.clear();
      } else if (status == ARES_SUCCESS || status == ARES_ENODATA) {
        problem = "no A or AAAA record";
        endpoints.clear();
      } else {
        problem = std::string("lookup failed: ") + ares_strerror(status);
      }
      milliseconds retry = o.min_refresh;
      for (uint32_t i = 1; i < n.failures && retry < kFailureRetryMax; ++i)
        retry *= 2;
      retry = std::min({retry, kFailureRetryMax, std::max(o.min_refresh, o.max_refresh)});
      n.due = now + jittered(retry, 0.5);
    }
    if (!n.resolved || endpoints != n.endpoints || problem != n.problem) {
      n.endpoints = std::move(endpoints);
      n.problem = std::move(problem);
      n.resolved = true;
      shared.changed = true;
      wake = shared.wake;
    }
  }
  shared.answered.notify_all();
  if (wake) wake();
}

void DnsDiscovery::run() {
  Shared& shared = *shared_;
  ares_channel channel = nullptr;
  auto destroy = [&] {
    if (channel) ares_destroy(channel);  // answers EDESTRUCTION to what was in flight
    channel = nullptr;
  };
  for (;;) {
    std::vector<std::unique_ptr<Query>> to_send;
    Clock::time_point next_due = Clock::now() + std::chrono::seconds(60);
    bool rebuild = false;
    DnsOptions options;
    {
      std::lock_guard lock(shared.mu);
      if (shared.stop) break;
      if (shared.configured && (shared.options_changed || !channel)) {
        rebuild = true;
        options = shared.options;
        shared.options_changed = false;
      }
    }
    if (rebuild) {
      destroy();
      ares_options o{};
      o.timeout = static_cast<int>(std::max<int64_t>(options.timeout.count() / 2, 100));
      o.tries = 2;
      int rc = ares_init_options(&channel, &o, ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES);
      if (rc == ARES_SUCCESS && !options.servers.empty()) {
        std::string csv;
        for (const auto& s : options.servers)
          csv += (csv.empty() ? "" : ",") + s;
        rc = ares_set_servers_ports_csv(channel, csv.c_str());
      }
      if (rc != ARES_SUCCESS) destroy();
      std::lock_guard lock(shared.mu);
      for (auto& [name, n] : shared.names) {
        n.in_flight = false;
        n.due = Clock::now();
      }
      if (rc != ARES_SUCCESS) {
        for (auto& [name, n] : shared.names) {
          n.problem = std::string("resolver setup failed: ") + ares_strerror(rc);
          n.resolved = true;
        }
        shared.changed = true;
      }
    }
    {
      std::lock_guard lock(shared.mu);
      const auto now = Clock::now();
      for (auto& [name, n] : shared.names) {
        if (n.in_flight || !channel) continue;
        if (n.due <= now) {
          n.in_flight = true;
          n.generation = shared.next_generation++;
          to_send.push_back(std::make_unique<Query>(Query{&shared, name, n.generation}));
        } else {
          next_due = std::min(next_due, n.due);
        }
      }
    }
    // Outside the lock: an answer from /etc/hosts comes back inside the call.
    for (auto& q : to_send) {
      ares_addrinfo_hints hints{};
      hints.ai_family = AF_UNSPEC;
      hints.ai_flags = ARES_AI_NOSORT;
      const std::string name = q->name;
      ares_getaddrinfo(channel, name.c_str(), nullptr, &hints, &DnsDiscovery::on_answer,
                       q.release());
    }
    std::vector<pollfd> fds;
    fds.push_back({shared.pipe_r, POLLIN, 0});
    ares_socket_t socks[ARES_GETSOCK_MAXNUM];
    int bits = channel ? ares_getsock(channel, socks, ARES_GETSOCK_MAXNUM) : 0;
    for (int i = 0; i < ARES_GETSOCK_MAXNUM; ++i) {
      short ev = 0;
      if (ARES_GETSOCK_READABLE(bits, i)) ev |= POLLIN;
      if (ARES_GETSOCK_WRITABLE(bits, i)) ev |= POLLOUT;
      if (ev) fds.push_back({socks[i], ev, 0});
    }
    auto wait = std::chrono::duration_cast<milliseconds>(next_due - Clock::now());
    if (channel) {
      timeval max{static_cast<time_t>(wait.count() / 1000),
                  static_cast<suseconds_t>(wait.count() % 1000 * 1000)};
      timeval tv{};
      if (timeval* t = ares_timeout(channel, &max, &tv)) {
        wait = std::min(wait, milliseconds(t->tv_sec * 1000 + t->tv_usec / 1000));
      }
    }
    int timeout_ms = static_cast<int>(std::clamp<int64_t>(wait.count(), 0, 60000));
    int n = ::poll(fds.data(), fds.size(), timeout_ms);
    if (n > 0 && (fds[0].revents & POLLIN)) {
      char buf[64];
      while (::read(shared.pipe_r, buf, sizeof buf) > 0) {
      }
    }
    if (!channel) continue;
    bool any = false;
    for (size_t i = 1; i < fds.size(); ++i) {
      if (!fds[i].revents) continue;
      any = true;
      ares_socket_t r =
          (fds[i].revents & (POLLIN | POLLERR | POLLHUP)) ? fds[i].fd : ARES_SOCKET_BAD;
      ares_socket_t w = (fds[i].revents & POLLOUT) ? fds[i].fd : ARES_SOCKET_BAD;
      ares_process_fd(channel, r, w);
    }
    if (!any) ares_process_fd(channel, ARES_SOCKET_BAD, ARES_SOCKET_BAD);  // timeouts
  }
  destroy();
}

}  // namespace portico::control
