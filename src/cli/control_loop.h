// The control-plane loop that `portico run` and `portico server` share: the configuration
// directory watched with inotify (changes debounced: 10 ms of quiet, at most 100 ms after the
// first), the sources Settings names beyond it (etcd, Consul KV, Kubernetes, Vault...), the
// discovery sources (DNS, Consul, Nomad, Kubernetes), a periodic full re-read, and each sync of the
// pipeline with its logging. What differs between the two commands (a data plane to hand the
// configuration to, or proxies to stream it to) is the PublishFn and the hooks. Runs on the
// io_context's one thread (the control-plane thread).
#pragma once

#include <asio.hpp>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <unordered_set>

#include "common/clock.h"
#include "control/discovery/discoveries.h"
#include "control/pipeline.h"
#include "control/sources/file_source.h"
#include "control/sources/file_watcher.h"

namespace portico::cli {

using common::unix_ms;

class ControlLoop {
 public:
  using Clock = std::chrono::steady_clock;
  struct Hooks {
    // A build failed: the last good version stays in force (already logged).
    std::function<void()> failed;
    // A build produced something new (SyncResult::built), published or not; `started`: when the
    // sync began. Called before the new diagnostics are logged.
    std::function<void(const control::Pipeline::SyncResult&, Clock::time_point started)> built;
  };

  // `resync`: the period of the full re-read (0: never).
  ControlLoop(asio::io_context& io, std::filesystem::path dir, control::PublishFn publish,
              std::chrono::milliseconds resync);
  ControlLoop(const ControlLoop&) = delete;
  ControlLoop& operator=(const ControlLoop&) = delete;

  void set_hooks(Hooks hooks) { hooks_ = std::move(hooks); }

  // Watches the directory (before the first read, so that nothing written in between is missed),
  // starts discovery, reads everything, then starts the sources Settings names and reads again.
  void start();
  // The periodic full re-read from now on: catches what inotify missed (a full event queue, files
  // behind symlinks that point outside the directory, network filesystems).
  void start_resync();
  // No more syncs: the watch is closed and the timers cancelled.
  void stop();
  bool stopped() const { return stopped_; }
  // A sync soon (debounced): a source or discovery has news.
  void schedule_rebuild();

  control::Pipeline& pipeline() { return pipeline_; }
  const control::Pipeline& pipeline() const { return pipeline_; }

  // The Settings resource in force (its last good version), or null. Before the first
  // translation accepted it, its newest version when that decoded without error.
  const api::SettingsSpec* settings_in_force() const;

  // portico_config_source_up{source} (1 while the source has no problem), the sources' own
  // metrics and the discovery sources' (for /stats).
  std::string source_stats() const;
  std::string discovery_stats() const {
    return discoveries_ ? discoveries_->stats() : std::string();
  }

 private:
  void wait_for_changes();
  void schedule_resync();
  void start_sources();
  void check_sources_changed();
  void rebuild(bool full);
  void log_diagnostics(const control::BuildResult& result);

  asio::io_context& io_;
  std::filesystem::path dir_;
  std::chrono::milliseconds resync_period_;
  Hooks hooks_;
  control::FileSource* files_ = nullptr;  // owned by pipeline_
  control::Pipeline pipeline_;
  std::optional<control::Discoveries> discoveries_;  // DNS, Consul, Nomad, Kubernetes (start())
  std::string sources_fingerprint_;                  // of the sources started (start_sources)
  std::string sources_warned_;
  bool sources_started_ = false;
  asio::steady_timer debounce_;
  asio::steady_timer resync_;
  asio::posix::stream_descriptor inotify_;
  std::unique_ptr<control::FileWatcher> watcher_;
  std::unordered_set<std::string> last_diagnostics_;  // logged once, not at every reload
  bool pending_ = false;
  bool full_pending_ = false;  // inotify lost events: re-read everything
  Clock::time_point first_event_{};
  bool first_event_set_ = false;
  bool stopped_ = false;
};

}  // namespace portico::cli
