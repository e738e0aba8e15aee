// DNS discovery: the Upstream hosts written as names, resolved (A and AAAA) with c-ares on a
// thread of its own, each name looked up again when its TTL runs out (within [min_refresh,
// max_refresh], a little early rather than late). A name that does not exist (NXDOMAIN) or has no
// address yields no endpoint; a lookup that fails (timeout, SERVFAIL, refused) keeps the
// addresses found before and is retried with a growing, jittered delay.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "control/discovery/discovery.h"

struct ares_addrinfo;

namespace portico::control {

struct DnsOptions {
  std::vector<std::string> servers;  // "ip", "ip:port", "[ipv6]:port"; empty: /etc/resolv.conf
  std::chrono::milliseconds min_refresh{1000};    // a shorter TTL is looked up at this period
  std::chrono::milliseconds max_refresh{300000};  // a longer TTL is looked up at this period
  std::chrono::milliseconds timeout{2000};        // one lookup, all tries together
  bool operator==(const DnsOptions&) const = default;
};

class DnsDiscovery : public DiscoverySource {
 public:
  DnsDiscovery();
  ~DnsDiscovery() override;

  std::string_view name() const override { return "dns"; }
  void start(std::function<void()> wake) override;
  void watch(const std::vector<snapshot::DiscoveryTarget>& targets) override;
  std::optional<DiscoveredMap> poll() override;
  bool wait_first(std::chrono::milliseconds timeout) override;

  // Control-plane thread. Lookups begin after the first call (the Settings are known then); a
  // change of options looks every name up again.
  void configure(const DnsOptions& options);

  struct Counters {
    uint64_t lookups = 0;
    uint64_t failures = 0;
    size_t names = 0;
    size_t failing = 0;
  };
  Counters counters() const;

 private:
  struct Name;
  struct Shared;
  struct Query;
  void run();
  // c-ares' callback (on the DNS thread, inside an ares_* call).
  static void on_answer(void* arg, int status, int timeouts, ares_addrinfo* result);

  std::shared_ptr<Shared> shared_;
  std::thread thread_;
};

}  // namespace portico::control
