// The wire codec of a ProxyConfig: what `portico server` streams to `portico proxy` (the fleet
// protocol, docs/architecture.md). Lossless: decode(encode(c)) is deep_equal to c. A configuration
// travels as five sections, one per kind of item (TypeVersions), each with a version of its own (a
// hash of its encoding) so that a message can carry only the sections that moved:
// - listeners: the listeners' settings without their virtual hosts, and the process overload
//   limits;
// - routes: each listener's virtual hosts, by listener name;
// - clusters: the clusters' settings without their endpoints;
// - endpoints: each cluster's endpoints, by cluster name;
// - secrets: certificate, key, CA and OCSP material by Secret name. The TLS settings of the other
//   sections name the Secret instead of carrying the material ("from_secret"), so that a rotated
//   certificate moves this section alone. Material whose Secret is unnamed, or that differs
//   between two users of one Secret name, stays inline.
// Compiled objects (regexes, TLS contexts) are not carried: the data plane builds them on apply.
// Decoding never throws: garbage gives an Error naming where it went wrong. Any thread.
#pragma once

#include <nlohmann/json.hpp>

#include <array>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>

#include "common/result.h"
#include "snapshot/proxy_config.h"

namespace portico::snapshot::wire {

inline constexpr std::array<std::string_view, 5> kSections = {"listeners", "routes", "clusters",
                                                              "endpoints", "secrets"};

// One section: its version (16 hex digits, a hash of `body`) and its body ({"items": [...], ...}).
struct Section {
  std::string version;
  nlohmann::json body;
  bool operator==(const Section&) const = default;
};
using Sections = std::map<std::string, Section, std::less<>>;  // by name (kSections)

// A configuration split into its five sections.
Sections encode_sections(const ProxyConfig& config);

// The configuration's identity, carried next to its sections.
struct Header {
  uint64_t version = 0;
  int64_t created_unix_ms = 0;
  TypeVersions versions;
};
Header header_of(const ProxyConfig& config);

// Assembles a configuration from all five sections. Errors name the section and item.
Result<ProxyConfig> decode_sections(const Sections& sections, const Header& header);

// One message of the stream: a configuration's header, a nonce, and some (or all) sections.
struct Message {
  Header header;
  std::string nonce;
  Sections sections;  // only those sent
};
// One JSON line (no newline): {"version","nonce","created_unix_ms","type_versions","sections"}.
std::string encode_message(const Message& message);
// Parses a line; every section present is checked for shape (an object with a string version
// and an array of items) but not decoded (decode_sections does).
Result<Message> decode_message(std::string_view text);

// The whole configuration as one message with every section, and back.
std::string encode(const ProxyConfig& config);
Result<ProxyConfig> decode(std::string_view text);

// Deep equality (ProxyConfig has no operator==; Listener's compares virtual host pointers).
bool deep_equal(const ProxyConfig& a, const ProxyConfig& b);

}  // namespace portico::snapshot::wire
