// Access log lines: what a finished stream tells the log (Entry), and a format compiled once per
// configuration (Formatter; immutable, shared by the workers) that renders an Entry as a text or
// JSON line. Rendering runs on the worker that finished the stream, into a caller's buffer.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/access_log_format.h"
#include "common/result.h"
#include "proxy/http/message.h"
#include "proxy/transport/transport.h"

namespace portico::proxy::access_log {

using portico::access_log::Op;
using portico::access_log::Token;

// %RESPONSE_FLAGS%: what Portico knows about why a response is what it is (Envoy's codes where
// Envoy has one). Rendered comma-separated in this order; "-" when none.
enum ResponseFlag : uint32_t {
  kNoHealthyUpstream = 1u << 0,                // UH: the upstream has no endpoint
  kUpstreamConnectionFailure = 1u << 1,        // UF: connect refused, failed or timed out
  kUpstreamOverflow = 1u << 2,                 // UO: the upstream's maxConnections was reached
  kNoRoute = 1u << 3,                          // NR: no virtual host or route matched
  kNoClusterFound = 1u << 4,                   // NC: the route's upstream does not exist
  kUpstreamRequestTimeout = 1u << 5,           // UT: the route timeout passed
  kUpstreamConnectionTermination = 1u << 6,    // UC: the upstream closed or reset
  kUpstreamProtocolError = 1u << 7,            // UPE: the upstream's response was invalid
  kDownstreamConnectionTermination = 1u << 8,  // DC: the client went away
  kDownstreamProtocolError = 1u << 9,          // DPE: the client's body was malformed
  kStreamIdleTimeout = 1u << 10,               // SI: nothing moved for streamIdleTimeout
  kRequestTimeout = 1u << 11,                  // RT: the request did not arrive in requestTimeout
  kLocalReset = 1u << 12,                      // LR: Portico ended the stream (drain deadline)
  kOverloaded = 1u << 13,                      // OM: refused by the overload manager
};
// Appends the flags' codes ("UF,UT"), or "-" for none.
void append_flags(uint32_t flags, std::string& out);

// A finished stream, as the stream handler describes it. Views: valid during render() only.
struct Entry {
  const http::RequestHeaders* request = nullptr;
  const http::ResponseHeaders* response = nullptr;  // null: no response was sent
  const transport::ConnectionInfo* connection = nullptr;
  std::chrono::system_clock::time_point start;
  std::chrono::microseconds duration{0};
  int status = 0;  // 0: no response was sent
  uint64_t bytes_received = 0;
  uint64_t bytes_sent = 0;
  std::string_view protocol;  // "HTTP/1.1", "HTTP/2"
  std::string_view route_name;
  std::string_view upstream_cluster;
  std::string_view upstream_host;  // "ip:port"; empty: no upstream was tried
  uint32_t flags = 0;              // ResponseFlag bits
};

class Formatter {
 public:
  // A text format (newline-terminated by the control plane) or JSON fields (key -> format).
  static Result<Formatter> text(std::string_view format);
  static Result<Formatter> json(const std::vector<std::pair<std::string, std::string>>& fields);

  // Appends one line (with its newline) to `out`.
  void render(const Entry& e, std::string& out) const;

 private:
  struct Field {
    std::string key;  // JSON lines: the key, already escaped and quoted ("\"key\":")
    std::vector<Token> tokens;
    bool typed = false;  // one operator alone: a number, or null when it has no value
  };
  bool json_ = false;
  std::vector<Field> fields_;  // text lines: one field without a key
};

// One operator's value appended to `out`; false when it has none (the caller writes "-" or null).
bool append_value(const Token& t, const Entry& e, std::string& out);

}  // namespace portico::proxy::access_log
