// The access log writer: per-worker line buffers drained by one writer thread per process, which
// writes them to their files in batches (one write(2) per file per pass). Workers never block on
// it and never make a system call for a line: a line that does not fit in its worker's buffer
// (the writer fell behind) is dropped and counted.
//
// Threads: sink() on the control thread (it opens the file, so that an error is reported on the
// Gateway); push() on worker `worker` only (one producer per buffer); reopen(), flush(), stop()
// and render_stats() on any thread. The writer thread starts with the first sink.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>

#include "common/result.h"

namespace portico::proxy::access_log {

// One destination file, shared by every listener (and configuration) that writes to that path.
// The file stays open while a configuration uses it; the writer closes it after the last one.
class Sink {
 public:
  uint32_t id() const { return id_; }
  const std::string& path() const { return path_; }

 private:
  friend class Manager;
  Sink(uint32_t id, std::string path) : id_(id), path_(std::move(path)) {}
  uint32_t id_;
  std::string path_;
};

class Ring;

class Manager {
 public:
  // Lines per worker buffer: at most this many bytes are held per worker (1 MiB).
  static constexpr size_t kBufferBytes = size_t{1} << 20;
  // A longer line is cut to this size (its newline kept).
  static constexpr size_t kMaxLine = 64 * 1024;
  static constexpr unsigned kMaxWorkers = 1024;

  Manager();
  ~Manager();
  Manager(const Manager&) = delete;
  Manager& operator=(const Manager&) = delete;

  // The process's writer (Portico runs one; tests may make their own).
  static Manager& instance();

  // The sink of `path` ("/dev/stdout" and "/dev/stderr" write to the process's streams), opened
  // for appending now if no live sink has that path. Control thread.
  Result<std::shared_ptr<const Sink>> sink(const std::string& path);

  // Queues one line (newline-terminated) for `sink`. Worker `worker` only.
  void push(unsigned worker, const Sink& sink, std::string_view line);

  // Reopens every file at the writer's next pass (SIGUSR1, after logrotate renamed them): lines
  // queued before go to the old file, later ones to the new file.
  void reopen();
  // Waits until every line queued before the call has been written (or dropped).
  void flush();
  // Flushes and ends the writer thread (process shutdown). push() after it drops lines.
  void stop();

  // Prometheus text: lines written, dropped, write errors, reopens.
  std::string render_stats() const;
  uint64_t lines_written() const { return lines_written_.load(std::memory_order_relaxed); }
  uint64_t lines_dropped() const;
  uint64_t write_errors() const { return write_errors_.load(std::memory_order_relaxed); }

 private:
  struct File {
    std::string path;
    int fd = -1;
    bool owned = true;  // false for stdout/stderr: never closed or reopened
    std::weak_ptr<const Sink> sink;
  };
  void run();
  void pass();
  void wake();
  Ring* ring(unsigned worker);

  std::atomic<Ring*> rings_[kMaxWorkers] = {};

  mutable std::mutex sinks_mu_;  // files_ and by_path_ (control thread adds; writer reopens and
                                 // closes)
  std::unordered_map<uint32_t, File> files_;
  std::map<std::string, std::weak_ptr<const Sink>> by_path_;
  uint32_t next_id_ = 1;

  std::mutex mu_;  // the writer's wake-ups, flush and stop
  std::condition_variable cv_;
  std::condition_variable done_cv_;
  uint64_t requested_ = 0;  // flush generations asked for ...
  uint64_t completed_ = 0;  // ... and done
  bool stopping_ = false;
  bool started_ = false;
  std::thread thread_;
  std::atomic<bool> wake_{false};
  std::atomic<bool> reopen_{false};
  std::atomic<bool> stopped_{false};

  // Writer-only scratch: one batch per sink id.
  std::unordered_map<uint32_t, std::string> batches_;
  std::unordered_map<uint32_t, uint64_t> batch_lines_;

  std::atomic<uint64_t> lines_written_{0};
  std::atomic<uint64_t> write_dropped_{0};  // lines of batches that could not be written
  std::atomic<uint64_t> write_errors_{0};
  std::atomic<uint64_t> reopens_{0};
  std::atomic<uint64_t> reopen_errors_{0};
};

}  // namespace portico::proxy::access_log
