// etcd v3 through its JSON gateway (`/v3/...`, etcd 3.4 and later): the request bodies, the
// parsing of its answers (64-bit numbers as strings, keys and values in base64, false and zero
// fields left out), and a small client for ranges and compare-and-set writes. The parsing
// functions are pure (any thread); an EtcdClient is used by one thread at a time (its cancel() by
// any thread).
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"
#include "control/http/client.h"

namespace portico::control::etcd {

// The range_end that makes a range (or watch) cover every key starting with `prefix`: the prefix
// with its last byte incremented (bytes 0xff dropped first); "\0" (every key) when none is left.
std::string prefix_range_end(std::string_view prefix);

struct Header {
  std::string cluster_id;  // as etcd writes it (a decimal string)
  int64_t revision = 0;    // the store's revision when the answer was made
};

struct KeyValue {
  std::string key;
  std::string value;  // empty for a DELETE event
  int64_t create_revision = 0;
  int64_t mod_revision = 0;
  int64_t version = 0;
};

struct RangeResponse {
  Header header;
  std::vector<KeyValue> kvs;
  bool more = false;  // a limited range left keys out
};

struct Event {
  bool deleted = false;  // "type":"DELETE"; a PUT has no type field
  KeyValue kv;
};

// One line of a /v3/watch stream.
struct WatchMessage {
  Header header;
  bool created = false;
  bool canceled = false;
  int64_t compact_revision = 0;  // set with canceled when the start revision was compacted
  std::string cancel_reason;
  std::vector<Event> events;
  std::string error;  // a gateway error line ({"error":{...}}), e.g. etcd shutting down
};

// The bodies of POST /v3/kv/range and POST /v3/watch over [key, range_end).
std::string range_body(std::string_view key, std::string_view range_end);
std::string watch_body(std::string_view key, std::string_view range_end, int64_t start_revision);

// Errors name what was wrong ("kvs[2].key: not base64").
Result<RangeResponse> parse_range(std::string_view body);
Result<WatchMessage> parse_watch_line(std::string_view line);

// The outcome of a compare-and-set write.
struct TxnResult {
  bool succeeded = false;  // false: the key's mod_revision was not the one expected
  int64_t revision = 0;    // the store's revision after the transaction
};
// The body of POST /v3/kv/txn that puts `value` at `key` (or deletes `key` when `value` is
// nullopt) only if the key's mod_revision is `expected_mod_revision` (0: the key does not exist).
std::string cas_body(std::string_view key, const std::optional<std::string>& value,
                     int64_t expected_mod_revision);
Result<TxnResult> parse_txn(std::string_view body);

class EtcdClient {
 public:
  EtcdClient(http::Url url, http::Millis timeout);

  // Every key in [key, range_end), at the newest revision.
  Result<RangeResponse> range(std::string_view key, std::string_view range_end);
  // Compare-and-set writes (see cas_body): what `portico apply` through etcd builds on.
  Result<TxnResult> put_if(std::string_view key, std::string_view value,
                           int64_t expected_mod_revision);
  Result<TxnResult> delete_if(std::string_view key, int64_t expected_mod_revision);

  // The watch stream: `on_message` gets each parsed line (return false to stop); ends when the
  // stream does, on a line that does not parse (an error), after `idle` with nothing received,
  // or cancel(). Returns the HTTP status.
  Result<int> watch(std::string_view key, std::string_view range_end, int64_t start_revision,
                    const std::function<bool(const WatchMessage&)>& on_message, http::Millis idle);

  void cancel() { http_.cancel(); }
  void reset_cancel() { http_.reset_cancel(); }
  const http::Url& url() const { return http_.url(); }

 private:
  Result<std::string> post(const std::string& target, std::string body);

  http::Client http_;
  http::Millis timeout_;
};

}  // namespace portico::control::etcd
