#include "proxy/access_log/writer.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <vector>

#include "common/log.h"

namespace portico::proxy::access_log {

namespace {
constexpr uint32_t kWrapMarker = 0xFFFFFFFF;
constexpr auto kPassInterval = std::chrono::milliseconds(50);

size_t round8(size_t n) {
  return (n + 7) & ~size_t{7};
}

int open_append(const std::string& path) {
  return ::open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
}
}  // namespace

// A single-producer (the worker), single-consumer (the writer) ring of records {sink id, length,
// bytes}, each contiguous and 8-byte aligned; a record that would cross the end is preceded by a
// wrap marker. No locks: the producer publishes with a release store of head_, the consumer frees
// space with a release store of tail_.
class Ring {
 public:
  explicit Ring(size_t capacity) : buf_(new char[capacity]), cap_(capacity) {}

  // Producer. False (and counted) when the line does not fit.
  bool push(uint32_t id, std::string_view line, bool* half_full) {
    const size_t need = 8 + round8(line.size());
    const uint64_t h = head_.load(std::memory_order_relaxed);
    size_t pos = static_cast<size_t>(h & (cap_ - 1));
    const size_t to_end = cap_ - pos;
    const size_t total = need <= to_end ? need : to_end + need;
    if (h + total - cached_tail_ > cap_) {
      cached_tail_ = tail_.load(std::memory_order_acquire);
      if (h + total - cached_tail_ > cap_) {
        dropped_.store(dropped_.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
        *half_full = true;
        return false;
      }
    }
    uint64_t at = h;
    if (need > to_end) {
      write_header(pos, kWrapMarker, 0);
      at += to_end;
      pos = 0;
    }
    write_header(pos, id, static_cast<uint32_t>(line.size()));
    std::memcpy(buf_.get() + pos + 8, line.data(), line.size());
    head_.store(at + need, std::memory_order_release);
    // Half full by the stale view: look again before waking the writer (it may have drained).
    if (at + need - cached_tail_ > cap_ / 2) {
      cached_tail_ = tail_.load(std::memory_order_acquire);
      *half_full = at + need - cached_tail_ > cap_ / 2;
    }
    return true;
  }

  // Consumer: calls fn(id, line) for every record published so far, then frees their space.
  template <typename Fn>
  void consume(Fn&& fn) {
    uint64_t t = tail_.load(std::memory_order_relaxed);
    const uint64_t h = head_.load(std::memory_order_acquire);
    while (t < h) {
      const size_t pos = static_cast<size_t>(t & (cap_ - 1));
      uint32_t id = 0, len = 0;
      std::memcpy(&id, buf_.get() + pos, 4);
      std::memcpy(&len, buf_.get() + pos + 4, 4);
      if (id == kWrapMarker) {
        t += cap_ - pos;
        continue;
      }
      fn(id, std::string_view(buf_.get() + pos + 8, len));
      t += 8 + round8(len);
    }
    tail_.store(t, std::memory_order_release);
  }

  uint64_t dropped() const { return dropped_.load(std::memory_order_relaxed); }

 private:
  void write_header(size_t pos, uint32_t id, uint32_t len) {
    std::memcpy(buf_.get() + pos, &id, 4);
    std::memcpy(buf_.get() + pos + 4, &len, 4);
  }

  std::unique_ptr<char[]> buf_;
  const size_t cap_;  // a power of two
  alignas(64) std::atomic<uint64_t> head_{0};
  uint64_t cached_tail_ = 0;          // producer's last look at tail_
  std::atomic<uint64_t> dropped_{0};  // written by the producer only
  alignas(64) std::atomic<uint64_t> tail_{0};
};

Manager::Manager() = default;

Manager::~Manager() {
  stop();
  for (auto& r : rings_)
    delete r.load(std::memory_order_acquire);
  for (auto& [id, f] : files_) {
    if (f.owned && f.fd >= 0) ::close(f.fd);
  }
}

Manager& Manager::instance() {
  static Manager m;
  return m;
}

Result<std::shared_ptr<const Sink>> Manager::sink(const std::string& path) {
  std::shared_ptr<const Sink> s;
  {
    std::lock_guard lock(sinks_mu_);
    auto& weak = by_path_[path];
    s = weak.lock();
    if (!s) {
      File f;
      f.path = path;
      if (path == "/dev/stdout" || path == "/dev/stderr") {
        f.fd = path == "/dev/stdout" ? STDOUT_FILENO : STDERR_FILENO;
        f.owned = false;
      } else {
        f.fd = open_append(path);
        if (f.fd < 0) {
          const int e = errno;
          by_path_.erase(path);
          return Error::io("cannot open access log " + path + ": " + std::strerror(e));
        }
      }
      const uint32_t id = next_id_++;
      s = std::shared_ptr<const Sink>(new Sink(id, path));
      f.sink = s;
      files_.emplace(id, std::move(f));
      weak = s;
    }
  }
  std::lock_guard lock(mu_);
  if (!started_ && !stopping_) {
    started_ = true;
    thread_ = std::thread([this] { run(); });
  }
  return s;
}

Ring* Manager::ring(unsigned worker) {
  if (worker >= kMaxWorkers) return nullptr;
  Ring* r = rings_[worker].load(std::memory_order_acquire);
  if (r) return r;
  auto fresh = std::make_unique<Ring>(kBufferBytes);
  Ring* expected = nullptr;
  if (rings_[worker].compare_exchange_strong(expected, fresh.get(), std::memory_order_acq_rel)) {
    return fresh.release();
  }
  return expected;
}

void Manager::push(unsigned worker, const Sink& sink, std::string_view line) {
  Ring* r = ring(worker);
  if (!r) return;
  if (stopped_.load(std::memory_order_relaxed)) {
    write_dropped_.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  std::string_view l = line;
  thread_local std::string cut;
  if (l.size() > kMaxLine) {
    cut.assign(l.substr(0, kMaxLine - 1));
    cut.push_back('\n');
    l = cut;
  }
  bool half_full = false;
  r->push(sink.id(), l, &half_full);
  if (half_full && !wake_.exchange(true, std::memory_order_relaxed)) cv_.notify_one();
}

void Manager::wake() {
  wake_.store(true, std::memory_order_relaxed);
  cv_.notify_one();
}

void Manager::reopen() {
  reopen_.store(true, std::memory_order_relaxed);
  wake();
}

void Manager::flush() {
  std::unique_lock lock(mu_);
  if (!started_ || stopping_) return;
  const uint64_t want = ++requested_;
  cv_.notify_one();
  done_cv_.wait(lock, [&] { return completed_ >= want || stopping_; });
}

void Manager::stop() {
  {
    std::lock_guard lock(mu_);
    if (stopping_) return;
    stopping_ = true;
  }
  cv_.notify_one();
  if (thread_.joinable()) thread_.join();
  stopped_.store(true, std::memory_order_relaxed);
  pass();  // anything queued meanwhile
}

void Manager::run() {
  std::unique_lock lock(mu_);
  for (;;) {
    cv_.wait_for(lock, kPassInterval, [&] {
      return stopping_ || requested_ > completed_ || wake_.load(std::memory_order_relaxed);
    });
    const bool last = stopping_;
    const uint64_t gen = requested_;
    wake_.store(false, std::memory_order_relaxed);
    lock.unlock();
    pass();
    lock.lock();
    completed_ = gen;
    done_cv_.notify_all();
    if (last) return;
  }
}

void Manager::pass() {
  // Sinks no configuration uses any more: every line for them was queued before they expired, so
  // it is drained below; their files are closed after this pass.
  std::vector<uint32_t> expired;
  {
    std::lock_guard lock(sinks_mu_);
    for (const auto& [id, f] : files_) {
      if (f.sink.expired()) expired.push_back(id);
    }
  }
  for (auto& slot : rings_) {
    Ring* r = slot.load(std::memory_order_acquire);
    if (!r) continue;
    r->consume([&](uint32_t id, std::string_view line) {
      batches_[id].append(line);
      ++batch_lines_[id];
    });
  }
  std::vector<std::pair<uint32_t, int>> fds;
  {
    std::lock_guard lock(sinks_mu_);
    for (const auto& [id, f] : files_)
      fds.emplace_back(id, f.fd);
  }
  for (auto& [id, fd] : fds) {
    auto it = batches_.find(id);
    if (it == batches_.end() || it->second.empty()) continue;
    std::string& batch = it->second;
    const uint64_t lines = batch_lines_[id];
    size_t off = 0;
    bool failed = false;
    while (off < batch.size()) {
      ssize_t n = ::write(fd, batch.data() + off, batch.size() - off);
      if (n > 0) {
        off += static_cast<size_t>(n);
      } else if (n < 0 && errno == EINTR) {
        continue;
      } else {
        failed = true;
        break;
      }
    }
    if (failed) {
      write_errors_.fetch_add(1, std::memory_order_relaxed);
      write_dropped_.fetch_add(lines, std::memory_order_relaxed);
    } else {
      lines_written_.fetch_add(lines, std::memory_order_relaxed);
    }
    // Keep the capacity of a normal batch for the next pass; give a burst's back.
    if (batch.capacity() > (1u << 20)) {
      std::string().swap(batch);
    } else {
      batch.clear();
    }
    batch_lines_[id] = 0;
  }
  // Lines for a sink the writer no longer knows (cannot happen: sinks outlive their lines).
  for (auto& [id, batch] : batches_) {
    if (!batch.empty()) {
      write_dropped_.fetch_add(batch_lines_[id], std::memory_order_relaxed);
      batch.clear();
      batch_lines_[id] = 0;
    }
  }
  if (reopen_.exchange(false, std::memory_order_relaxed)) {
    std::lock_guard lock(sinks_mu_);
    for (auto& [id, f] : files_) {
      if (!f.owned) continue;
      int fd = open_append(f.path);
      if (fd < 0) {
        reopen_errors_.fetch_add(1, std::memory_order_relaxed);
        LOG_WARN("access log %s: reopen failed (%s); still writing to the old file", f.path.c_str(),
                 std::strerror(errno));
        continue;
      }
      ::close(f.fd);
      f.fd = fd;
    }
    reopens_.fetch_add(1, std::memory_order_relaxed);
  }
  if (!expired.empty()) {
    std::lock_guard lock(sinks_mu_);
    for (uint32_t id : expired) {
      auto it = files_.find(id);
      if (it == files_.end()) continue;
      if (it->second.owned && it->second.fd >= 0) ::close(it->second.fd);
      files_.erase(it);
      batches_.erase(id);
      batch_lines_.erase(id);
    }
  }
}

uint64_t Manager::lines_dropped() const {
  uint64_t n = write_dropped_.load(std::memory_order_relaxed);
  for (const auto& slot : rings_) {
    if (Ring* r = slot.load(std::memory_order_acquire)) n += r->dropped();
  }
  return n;
}

std::string Manager::render_stats() const {
  std::string out;
  auto metric = [&](const char* name, const char* help, uint64_t v) {
    out += std::string("# HELP ") + name + " " + help + "\n# TYPE " + name + " counter\n" + name +
           " " + std::to_string(v) + "\n";
  };
  metric("portico_access_log_lines_written_total", "Access log lines written to their files.",
         lines_written());
  metric("portico_access_log_dropped_total",
         "Access log lines dropped: a worker's buffer was full (the writer fell behind) or the "
         "write failed.",
         lines_dropped());
  metric("portico_access_log_write_errors_total", "Failed writes to access log files.",
         write_errors());
  metric("portico_access_log_reopens_total", "Access log files reopened (SIGUSR1).",
         reopens_.load(std::memory_order_relaxed));
  metric("portico_access_log_reopen_errors_total",
         "Access log files that could not be reopened (the old file stays in use).",
         reopen_errors_.load(std::memory_order_relaxed));
  return out;
}

}  // namespace portico::proxy::access_log
