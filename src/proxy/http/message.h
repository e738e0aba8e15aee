// Protocol-neutral HTTP messages: request and response heads (pseudo-header fields plus a header
// map) and trailers, owned by the stream that carries them — never views into a connection's
// reused read buffer. Codecs fill them (HTTP/1.1 copies the parser's views in; HTTP/2 will fill
// them from HPACK); filters and the router read and mutate them. One stream, one worker thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace portico::proxy::http {

// An ordered multimap of header fields. Names keep their case as received (HTTP/2 lower-cases
// them); lookups are case-insensitive. Storage is one byte arena plus one index vector, both
// reused after clear(): a stream reused by a keep-alive connection allocates nothing per request
// once warm. Removing marks entries dead; the arena is compacted only by clear().
class HeaderMap {
 public:
  struct Field {
    std::string_view name;
    std::string_view value;
  };

  void add(std::string_view name, std::string_view value);
  // Replaces every value of `name` by one (adds it when absent).
  void set(std::string_view name, std::string_view value);
  // Removes every field named `name`; returns how many.
  size_t remove(std::string_view name);
  // The first value of `name`, or nullopt.
  std::optional<std::string_view> get(std::string_view name) const;
  bool has(std::string_view name) const { return get(name).has_value(); }

  // Live fields, in order.
  size_t size() const { return live_; }
  bool empty() const { return live_ == 0; }
  template <typename F>
  void for_each(F&& f) const {
    for (const auto& e : entries_) {
      if (e.name_len == kDead) continue;
      f(std::string_view(arena_.data() + e.name_off, e.name_len),
        std::string_view(arena_.data() + e.value_off, e.value_len));
    }
  }

  void clear() {
    arena_.clear();
    entries_.clear();
    live_ = 0;
  }
  // Frees the storage when it grew past `keep` bytes (an idle connection keeps little).
  void release_if_larger(size_t keep);
  size_t byte_size() const { return arena_.size(); }

 private:
  static constexpr uint32_t kDead = 0xFFFFFFFF;
  struct Entry {
    uint32_t name_off, name_len, value_off, value_len;
  };
  std::string arena_;
  std::vector<Entry> entries_;
  size_t live_ = 0;
};

struct RequestHeaders {
  std::string method;     // "GET"
  std::string scheme;     // "http" / "https"
  std::string authority;  // Host (HTTP/1.1) or :authority (HTTP/2), port included
  std::string path;       // path without the query, as routed (after normalisation)
  std::string query;      // after '?', without it
  HeaderMap headers;      // end-to-end fields (hop-by-hop ones are dropped by the codec)
  // Body framing facts, protocol neutral: whether a body follows and its declared length.
  bool has_body = false;
  std::optional<uint64_t> content_length;
  bool expect_continue = false;  // the client waits for 100 Continue before the body
  std::string upgrade;           // Upgrade protocol requested ("websocket"); empty: none
  int http_minor = 1;            // HTTP/1.x minor version (HTTP/2: 1)

  void clear();
  // path + ("?" + query) when a query exists.
  std::string target() const;
};

struct ResponseHeaders {
  int status = 200;
  std::string reason;  // HTTP/1.1 reason phrase as received (may be empty)
  HeaderMap headers;
  bool has_body = true;
  std::optional<uint64_t> content_length;

  void clear();
};

// Adds the fields of an HTTP/1.1 trailer section (ChunkedDecoder::trailers()) that may be
// forwarded (forwardable_trailer) to `out`; the others are dropped.
void add_forwardable_trailers(std::string_view section, HeaderMap& out);

// Canonical reason phrase for a status code ("Unknown" when none is known).
const char* reason_phrase(int status);

// True for methods that RFC 9110 §9.2.2 calls idempotent (safe to send twice).
bool is_idempotent(std::string_view method);

}  // namespace portico::proxy::http
