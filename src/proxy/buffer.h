// Buffer: a contiguous byte buffer with a read and a write position, growable up to a limit. Owned
// by one connection on one worker thread. Views into it stay valid until the next prepare() (which
// may compact or grow the storage). Storage is never zero-filled, and storage freed by release()
// goes to a small per-thread cache that the next buffer of that size takes it from: a pooled
// upstream connection that gives its buffer back between requests allocates nothing per request.
#pragma once

#include <cstddef>
#include <cstring>
#include <memory>
#include <string_view>
#include <utility>
#include <vector>

namespace portico::proxy {

class Buffer {
 public:
  explicit Buffer(size_t initial = 8192, size_t max = 1 << 20) : cap_(initial), max_(max) {}

  std::string_view view() const { return {data_.get() + begin_, end_ - begin_}; }
  const char* data() const { return data_.get() + begin_; }
  size_t size() const { return end_ - begin_; }
  bool empty() const { return begin_ == end_; }
  size_t capacity() const { return cap_; }

  void consume(size_t n) {
    begin_ += n;
    if (begin_ >= end_) begin_ = end_ = 0;
  }
  void clear() { begin_ = end_ = 0; }

  // Makes room for at least `min` more bytes after the data (compacting first, then growing up to
  // max). Returns the writable region, or an empty region when the buffer is full at its maximum.
  std::pair<char*, size_t> prepare(size_t min = 1) {
    if (!data_) data_ = take_block(cap_);
    if (cap_ - end_ >= min) return {data_.get() + end_, cap_ - end_};
    if (begin_ > 0) {
      std::memmove(data_.get(), data_.get() + begin_, end_ - begin_);
      end_ -= begin_;
      begin_ = 0;
      if (cap_ - end_ >= min) return {data_.get() + end_, cap_ - end_};
    }
    size_t want = cap_;
    while (want - end_ < min && want < max_)
      want *= 2;
    if (want > max_) want = max_;
    if (want > cap_) {
      auto bigger = std::make_unique_for_overwrite<char[]>(want);
      std::memcpy(bigger.get(), data_.get(), end_);
      data_ = std::move(bigger);
      cap_ = want;
    }
    return {data_.get() + end_, cap_ - end_};
  }
  void commit(size_t n) { end_ += n; }

  // Frees the storage of an empty buffer (allocated again, at `initial` bytes, by the next
  // prepare()).
  void release(size_t initial = 8192) {
    if (!empty()) return;
    if (data_) give_block(std::move(data_), cap_);
    begin_ = end_ = 0;
    cap_ = initial;
  }

  // Releases the storage of an idle buffer grown past `keep` bytes (keep-alive connections that
  // wait cost little memory, while the usual body piece size stays allocated).
  void shrink_if_empty(size_t keep = 65536) {
    if (empty() && cap_ > keep) {
      data_.reset();
      cap_ = 8192;
    }
  }

 private:
  // The per-thread cache of released blocks: one list per size class (4, 8 and 16 KiB, the sizes
  // buffers start at and grow through), at most kCacheBlocks blocks each (under 4 MiB per worker),
  // so that taking and giving are O(1) whatever mix of sizes the worker's connections use. Other
  // sizes are not cached.
  static constexpr size_t kCacheBlocks = 128;
  static constexpr size_t kCacheBlockMax = 16384;
  static int size_class(size_t n) {
    switch (n) {
      case 4096:
        return 0;
      case 8192:
        return 1;
      case 16384:
        return 2;
      default:
        return -1;
    }
  }
  static std::vector<std::unique_ptr<char[]>>& cache(int cls) {
    thread_local std::vector<std::unique_ptr<char[]>> c[3];
    return c[cls];
  }
  static std::unique_ptr<char[]> take_block(size_t n) {
    const int cls = size_class(n);
    if (cls >= 0) {
      auto& c = cache(cls);
      if (!c.empty()) {
        std::unique_ptr<char[]> b = std::move(c.back());
        c.pop_back();
        return b;
      }
    }
    return std::make_unique_for_overwrite<char[]>(n);
  }
  static void give_block(std::unique_ptr<char[]> b, size_t n) {
    const int cls = size_class(n);
    if (cls < 0) return;  // freed here
    auto& c = cache(cls);
    if (c.size() >= kCacheBlocks) return;
    if (c.capacity() == 0) c.reserve(kCacheBlocks);
    c.push_back(std::move(b));
  }

  std::unique_ptr<char[]> data_;
  size_t cap_;
  size_t max_;
  size_t begin_ = 0;
  size_t end_ = 0;
};

}  // namespace portico::proxy
