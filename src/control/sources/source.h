// ConfigSource: the one interface through which configuration storage (files today; etcd, Consul
// KV and Kubernetes later) feeds the resource store, as deltas. Owned and called by the
// control-plane thread only.
#pragma once

#include <filesystem>
#include <functional>
#include <string>
#include <string_view>

#include "control/store/store.h"

namespace portico::control {

class ConfigSource {
 public:
  virtual ~ConfigSource() = default;

  // The source's name, used in every Origin it produces ("file", "etcd", ...).
  virtual std::string_view name() const = 0;

  // What changed since the previous call, as a delta (empty when nothing did). The first call
  // returns everything, in a deterministic order. `full` asks for a complete re-read (the periodic
  // resync that catches missed notifications); the result is still only the difference. Must not
  // throw for input problems: those are origin errors in the delta.
  virtual Delta poll(bool full) = 0;

  // What relative file names in its resources (Secret files, sslFiles) are resolved against:
  // the configuration directory for files; empty (the current directory) for sources without one.
  virtual std::filesystem::path base_dir() const { return {}; }

  // Sources that learn of changes on a thread of their own (etcd and Kubernetes watches, Consul
  // and Vault blocking queries) call `wake` from that thread when poll() has something new: the
  // control-plane loop then syncs soon. Called once, before the first poll(); `wake` stays valid
  // until the source is destroyed. The destructor stops the source's threads.
  virtual void start(std::function<void()> wake) { (void)wake; }

  // What is wrong with the source now, for /ready, `portico check` and /stats: empty when it is
  // fine, else one line naming it ("etcd http://10.0.0.5:2379: connection refused, since 12:03:04;
  // serving what it held before"). A failing source keeps its resources in the store: the last
  // good configuration stays in force.
  virtual std::string problem() const { return {}; }

  // The source's own counters and gauges for /stats, in Prometheus text format with their # TYPE
  // lines (e.g. portico_etcd_revision); empty when it has none.
  virtual std::string stats() const { return {}; }
};

}  // namespace portico::control
