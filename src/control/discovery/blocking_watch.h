// What the service-discovery sources of HashiCorp's APIs (Consul catalog, Nomad services) share:
// one thread and one http::Client per watched target, each running a loop of blocking queries
// with the index rules of consul::BlockingIndex (backwards: start over from 0; below 1: 1), at
// most one query per target every 50 ms, a jittered back-off after a failure, and at most
// kMaxTargets targets (a target beyond that gets a problem and no endpoint). A source supplies
// the query itself (a BlockingQuery: what to send, how to read the answer) and the agent's URL;
// this class does the rest of the DiscoverySource work (watch, poll, wait_first, counters).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "control/discovery/discovery.h"
#include "control/http/client.h"

namespace portico::control {

// What one query of a target found.
struct BlockingAnswer {
  // The instances, when the query succeeded; nullopt when it failed (`problem` says why): the
  // instances found before are kept, the index starts over and a back-off follows.
  std::optional<std::vector<snapshot::Endpoint>> endpoints;
  // Why the query failed; or, with endpoints, a remark ("service not found in Nomad").
  std::string problem;
  // The answer's index (X-Consul-Index, X-Nomad-Index), when it had one.
  std::optional<uint64_t> index;
};

// One query of `target` on `client` (blocking on `index` when it is above 0; index 0: answer at
// once). Runs on the target's thread, with no lock held; must bound its own time (wait + margin).
using BlockingQuery = std::function<BlockingAnswer(
    http::Client& client, const snapshot::DiscoveryTarget& target, uint64_t index)>;

class BlockingWatcher {
 public:
  static constexpr size_t kMaxTargets = 256;
  static constexpr std::chrono::milliseconds kMinInterval{50};  // between two queries of a target

  // `source`: the targets' source ("consul", "nomad"); `agent`: how problems name the server
  // ("Consul", "Nomad").
  BlockingWatcher(std::string source, std::string agent);
  ~BlockingWatcher();
  BlockingWatcher(const BlockingWatcher&) = delete;
  BlockingWatcher& operator=(const BlockingWatcher&) = delete;

  // The DiscoverySource calls (see discovery.h).
  void start(std::function<void()> wake);
  void watch(const std::vector<snapshot::DiscoveryTarget>& targets);
  std::optional<DiscoveredMap> poll();
  bool wait_first(std::chrono::milliseconds timeout);

  // Control-plane thread: queries go to `url` and are made by `query` from now on. Queries begin
  // after the first call; every later call restarts every query (a parked one is cancelled), so
  // the caller calls it only when its options changed.
  void configure(const http::Url& url, BlockingQuery query);

  struct Counters {
    uint64_t queries = 0;   // answered or failed, not cancelled
    uint64_t failures = 0;  // of those, failed
    size_t targets = 0;     // watched now
    size_t failing = 0;     // of those, with a problem
  };
  Counters counters() const;

 private:
  struct Shared;
  struct Watch;
  void reconcile();

  std::shared_ptr<Shared> shared_;
};

}  // namespace portico::control
