// The server side of the fleet protocol (docs/architecture.md, "Fleet"): which proxies are there,
// what each of them runs, and what to send each of them next. A proxy opens a stream naming the
// Gateways it serves and the section versions it already has; Fleet answers with messages that
// carry only the sections of that proxy's view (its Gateways' listeners, the clusters their routes
// forward to, only the secrets those use) whose version differs from what the proxy has; the proxy
// ACKs or NACKs each message by its nonce. A NACK is reported as a warning on the resources that
// produced the items that failed, until that proxy ACKs a later version. Control-plane thread only.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "snapshot/proxy_config.h"
#include "snapshot/wire.h"

namespace portico::control::fleet {

// "a,b" -> {"a", "b"} (empty items dropped).
std::vector<std::string> split_list(std::string_view text);

// The `have` parameter, "listeners:0123abcd...,routes:...": section -> version. Unknown sections
// and malformed entries are ignored (the proxy then gets that section again).
std::map<std::string, std::string> parse_have(std::string_view text);
std::string format_have(const std::map<std::string, std::string>& have);

// True when the listener (named "<namespace>/<gateway>") is one of `gateways` (each "name" or
// "namespace/name"); every listener when `gateways` is empty.
bool serves(const std::vector<std::string>& gateways, const std::string& listener);

// The part of `config` a proxy serving `gateways` gets: those listeners and the clusters their
// routes forward to (with no Gateway named: every listener and every cluster).
std::shared_ptr<const snapshot::ProxyConfig> view_for(const snapshot::ProxyConfig& config,
                                                      const std::vector<std::string>& gateways);

// The sections of `now` whose version differs from `have`'s.
snapshot::wire::Sections changed_sections(const snapshot::wire::Sections& now,
                                          const std::map<std::string, std::string>& have);

// An ACK or NACK as POSTed to /v1/fleet/ack.
struct Ack {
  std::string node;
  std::string nonce;
  uint64_t version = 0;
  bool accepted = false;
  std::string error;
  std::vector<std::string> items;  // names of the items that failed (listeners, clusters, ...)
  // The section versions the proxy runs after this message (empty: not said; the server then
  // assumes what it sent).
  std::map<std::string, std::string> sections;
};
// Parses the JSON body; an error names the field.
bool parse_ack(std::string_view body, Ack* out, std::string* error);
std::string ack_to_json(const Ack& ack);

struct ProxyInfo {
  std::string node;
  std::vector<std::string> gateways;
  bool connected = false;
  int64_t connected_unix_ms = 0;
  int64_t last_seen_unix_ms = 0;
  uint64_t applied_version = 0;             // the last version it ACKed (0: none yet)
  std::map<std::string, std::string> have;  // section versions it runs (ACKed or declared)
  std::set<std::string> applied_sources;    // resources in the version it runs
  uint64_t nacked_version = 0;              // its last NACK, until it ACKs a later version
  std::string last_error;
  std::set<std::string> nack_sources;  // resources the NACK is reported on
  uint64_t acks = 0, nacks = 0, messages = 0;
  uint64_t skipped = 0;    // versions that moved nothing of its view (nothing sent)
  uint64_t stream_id = 0;  // the stream in force (a newer one replaces it)
};

class Fleet {
 public:
  // A stream opened by `node`: returns its id. A stream that the same node opened before is
  // replaced (its disconnect is then ignored).
  uint64_t connect(const std::string& node, std::vector<std::string> gateways,
                   std::map<std::string, std::string> have, int64_t now_unix_ms);
  void disconnect(const std::string& node, uint64_t stream_id, int64_t now_unix_ms);
  void seen(const std::string& node, int64_t now_unix_ms);

  // The next message for `node`'s stream, or nothing when `config` was already sent to it. The
  // first message after a connect is always sent (even with no section) so that the proxy ACKs
  // and its version is known.
  std::optional<std::string> next_message(const std::string& node, uint64_t stream_id,
                                          const snapshot::ProxyConfig& config);

  // Records an ACK or NACK. False with a reason when it names no known node or nonce. After a
  // NACK of a message that later messages were computed on, next_message sends again (computed
  // on what the proxy kept): the caller wakes the streams after every ack.
  bool ack(const Ack& ack, int64_t now_unix_ms, std::string* error);

  // For the REST API: [{node, gateways, connected, lastSeenUnixMs, version, sections, lastError,
  // nackedVersion, acks, nacks}], by node.
  nlohmann::ordered_json proxies_json() const;
  // Warnings from NACKs in force, by resource key "<Kind>/<namespace>/<name>".
  std::map<std::string, std::vector<std::string>> warnings() const;
  // "node (version N)" of the proxies whose applied version contains the resource.
  std::vector<std::string> running(const std::string& key) const;
  // Adds warnings and "proxies" to a /resources document (an array of resources).
  void annotate(nlohmann::ordered_json& resources) const;

  const std::map<std::string, ProxyInfo>& proxies() const { return proxies_; }
  size_t connected() const;
  uint64_t acks_total() const { return acks_; }
  uint64_t nacks_total() const { return nacks_; }

 private:
  struct Sent {
    uint64_t version = 0;
    std::map<std::string, std::string> sections;        // after the proxy applies it
    std::shared_ptr<const snapshot::ProxyConfig> view;  // what it carries
  };
  struct Stream {
    uint64_t sent_version = 0;
    bool first = true;
    std::map<std::string, std::string> sent;  // section versions sent (optimistic)
    // Per section: the content hash last sent and the kind's version it was sent with (the
    // configuration's TypeVersions when it moved), so that a change elsewhere in the fleet does
    // not move this proxy's versions.
    std::map<std::string, std::pair<std::string, uint64_t>> typed;
  };
  std::map<std::string, ProxyInfo> proxies_;
  std::map<std::string, Stream> streams_;                       // by node
  std::map<std::string, std::map<std::string, Sent>> pending_;  // node -> nonce -> sent
  uint64_t next_stream_ = 1;
  uint64_t next_nonce_ = 1;
  uint64_t acks_ = 0, nacks_ = 0;
};

}  // namespace portico::control::fleet
