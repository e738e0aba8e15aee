#include "cli/control_loop.h"

#include <unistd.h>

#include <algorithm>
#include <utility>

#include "common/log.h"
#include "control/sources/factory.h"

namespace portico::cli {

namespace {
constexpr auto kQuiet = std::chrono::milliseconds(10);
constexpr auto kMaxDelay = std::chrono::milliseconds(100);
}  // namespace

ControlLoop::ControlLoop(asio::io_context& io, std::filesystem::path dir,
                         control::PublishFn publish, std::chrono::milliseconds resync)
    : io_(io),
      dir_(std::move(dir)),
      resync_period_(resync),
      pipeline_(
          [this] {
            auto source = std::make_unique<control::FileSource>(dir_);
            files_ = source.get();
            return source;
          }(),
          std::move(publish)),
      debounce_(io),
      resync_(io),
      inotify_(io) {}

void ControlLoop::start() {
  auto watcher = control::FileWatcher::open(dir_);
  if (watcher.ok()) {
    watcher_ = std::move(watcher.value());
    inotify_.assign(::dup(watcher_->fd()));
    wait_for_changes();
  } else {
    LOG_ERROR("configuration changes will not be seen: %s", watcher.error().message.c_str());
  }
  // DNS names, Consul's catalog, Nomad's and Kubernetes' services, always on: they begin once the
  // Settings are known, and are configured from the Settings in force before each publication.
  discoveries_.emplace(pipeline_, [this] {
    asio::post(io_, [this] {
      if (!stopped_) schedule_rebuild();
    });
  });
  pipeline_.set_before_publish([this] { discoveries_->configure(settings_in_force()); });
  rebuild(false);
  start_sources();
}

void ControlLoop::stop() {
  stopped_ = true;
  asio::error_code ignored;
  inotify_.close(ignored);
  debounce_.cancel();
  resync_.cancel();
}

void ControlLoop::wait_for_changes() {
  inotify_.async_wait(asio::posix::stream_descriptor::wait_read, [this](const asio::error_code& e) {
    if (e || stopped_) return;
    if (watcher_->drain()) {
      if (watcher_->take_overflow()) full_pending_ = true;
      // The next sync re-reads only what changed.
      auto changes = watcher_->take_changes();
      if (changes.relist) files_->note_relist();
      for (const auto& path : changes.paths)
        files_->note_changed(path);
      schedule_rebuild();
    }
    wait_for_changes();
  });
}

void ControlLoop::schedule_rebuild() {
  if (stopped_) return;
  const auto now = Clock::now();
  if (!pending_) {
    pending_ = true;
    first_event_ = now;
    first_event_set_ = true;
  }
  debounce_.expires_at(std::min(now + kQuiet, first_event_ + kMaxDelay));
  debounce_.async_wait([this](const asio::error_code& e) {
    if (e) return;  // re-armed by a newer event
    pending_ = false;
    bool full = full_pending_;
    full_pending_ = false;
    rebuild(full);
  });
}

void ControlLoop::start_resync() {
  if (resync_period_.count() <= 0 || stopped_) return;
  resync_.expires_after(resync_period_);
  resync_.async_wait([this](const asio::error_code& e) {
    if (e || stopped_) return;
    rebuild(true);
    start_resync();
  });
}

const api::SettingsSpec* ControlLoop::settings_in_force() const {
  const auto& entries = pipeline_.store().entries();
  for (auto it = entries.lower_bound("Settings/");
       it != entries.end() && it->first.rfind("Settings/", 0) == 0; ++it) {
    const auto& entry = it->second;
    if (entry.last_good) return &entry.last_good->settings();
    const api::Resource& r = entry.current();
    if (std::none_of(r.diagnostics.begin(), r.diagnostics.end(), [](const api::Diagnostic& d) {
          return d.severity == api::Diagnostic::Severity::kError;
        })) {
      return &r.settings();
    }
  }
  return nullptr;
}

// Made once the directory was read. A later change to them is logged and waits for a restart or
// a binary upgrade.
void ControlLoop::start_sources() {
  sources_started_ = true;
  const api::SettingsSpec* settings = settings_in_force();
  if (!settings) return;
  sources_fingerprint_ = control::sources_fingerprint(*settings);
  control::MadeSources made = control::make_sources(*settings);
  for (const auto& e : made.errors)
    LOG_ERROR("Settings: %s", e.c_str());
  if (made.sources.empty()) return;
  for (auto& source : made.sources) {
    LOG_INFO("configuration source %.*s started", static_cast<int>(source->name().size()),
             source->name().data());
    source->start([this] {
      asio::post(io_, [this] {
        if (!stopped_) schedule_rebuild();
      });
    });
    pipeline_.add_source(std::move(source));
  }
  rebuild(false);
}

std::string ControlLoop::source_stats() const {
  std::string out;
  for (const auto& [name, problem] : pipeline_.source_states()) {
    if (out.empty()) out = "# TYPE portico_config_source_up gauge\n";
    out +=
        "portico_config_source_up{source=\"" + name + "\"} " + (problem.empty() ? "1" : "0") + "\n";
  }
  return out + pipeline_.source_stats();
}

void ControlLoop::check_sources_changed() {
  if (!sources_started_) return;  // the first build, before start_sources(): nothing to compare
  const api::SettingsSpec* settings = settings_in_force();
  std::string now = settings ? control::sources_fingerprint(*settings) : std::string();
  if (now != sources_fingerprint_ && now != sources_warned_) {
    LOG_WARN(
        "Settings: the configuration, secret or discovery sources changed; they take effect at "
        "the next start or binary upgrade (portico upgrade)");
    sources_warned_ = now;
  }
}

void ControlLoop::rebuild(bool full) {
  const auto started = Clock::now();
  // When the change was first noticed: the first event of the debounced burst.
  const int64_t seen_ms = unix_ms() - std::chrono::duration_cast<std::chrono::milliseconds>(
                                          started - (first_event_set_ ? first_event_ : started))
                                          .count();
  first_event_set_ = false;
  control::Pipeline::SyncResult result = pipeline_.sync(full, seen_ms);
  pipeline_.report_statuses();  // sources that write statuses back (Consul KV, Kubernetes)
  // Certificates and keys that resources name by path: a rotation there is a change too.
  if (watcher_ && files_) watcher_->watch_dirs(files_->referenced_dirs());
  if (result.failed) {
    LOG_ERROR("configuration build failed: %s; version %llu stays in force",
              pipeline_.last_error().c_str(), static_cast<unsigned long long>(pipeline_.version()));
    if (hooks_.failed) hooks_.failed();
    return;
  }
  if (discoveries_) discoveries_->configure(settings_in_force());
  if (!result.built) return;  // nothing changed
  check_sources_changed();
  if (hooks_.built) hooks_.built(result, started);
  log_diagnostics(pipeline_.current());
}

// Logs diagnostics that were not there in the previous build (each problem once, not per reload).
void ControlLoop::log_diagnostics(const control::BuildResult& result) {
  std::unordered_set<std::string> now;
  auto note = [&](std::string line) {
    if (!last_diagnostics_.count(line)) LOG_WARN("%s", line.c_str());
    now.insert(std::move(line));
  };
  for (const auto& d : result.file_errors)
    note(d.to_string());
  for (const auto& r : result.resources) {
    for (const auto& d : r.reasons)
      note(r.kind + " " + r.ns + "/" + r.name + ": " + d.to_string());
  }
  last_diagnostics_ = std::move(now);
}

}  // namespace portico::cli
