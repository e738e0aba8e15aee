// Settings spec.consul (how to reach Consul) and spec.consulKvSource (configuration in Consul KV).
#include <cctype>
#include <string>

#include "api/decode_internal.h"

namespace portico::api::detail {

using yaml::DocReader;
using yaml::Field;
using yaml::MapReader;

// "http[s]://host[:port][/path]" or Gloo's "host:port" of a HashiCorp agent (`agent`: "Consul",
// "Nomad"); the normalised "http[s]://..." form, or an error message.
bool normalize_agent_address(const std::string& in, std::string_view agent, std::string* out,
                             std::string* why) {
  (void)agent;
  std::string rest = in;
  bool https = false;
  const auto scheme_end = rest.find("://");
  if (scheme_end != std::string::npos) {
    std::string scheme = rest.substr(0, scheme_end);
    for (char& c : scheme)
      c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if (scheme != "http" && scheme != "https") {
      *why = "expected http://host:port or https://host:port, got the scheme \"" + scheme + "\"";
      return false;
    }
    https = scheme == "https";
    rest = rest.substr(scheme_end + 3);
  }
  const std::string authority = rest.substr(0, rest.find('/'));
  if (authority.empty()) {
    *why = "names no host";
    return false;
  }
  std::string port;
  if (authority.front() == '[') {
    const auto close = authority.find(']');
    if (close == std::string::npos || close == 1) {
      *why = "an IPv6 address must be written [addr]:port";
      return false;
    }
    if (close + 1 < authority.size()) {
      if (authority[close + 1] != ':') {
        *why = "unexpected text after the IPv6 address";
        return false;
      }
      port = authority.substr(close + 2);
    }
  } else {
    const auto colon = authority.find(':');
    if (colon == 0) {
      *why = "names no host";
      return false;
    }
    if (colon != std::string::npos) port = authority.substr(colon + 1);
  }
  if (port.size() > 0 || authority.back() == ':') {
    bool digits = !port.empty() && port.size() <= 5;
    unsigned value = 0;
    for (char c : port) {
      digits = digits && c >= '0' && c <= '9';
      value = value * 10 + static_cast<unsigned>(c - '0');
    }
    if (!digits || value < 1 || value > 65535) {
      *why = "the port must be 1-65535";
      return false;
    }
  }
  for (char c : rest) {
    if (static_cast<unsigned char>(c) <= 0x20 || c == 0x7f || c == '?' || c == '#') {
      *why = "must not contain spaces, control characters, '?' or '#'";
      return false;
    }
  }
  *out = (https ? "https://" : "http://") + rest;
  return true;
}

namespace {

bool valid_datacenter(const std::string& dc) {
  if (dc.empty()) return false;
  for (char c : dc) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '_' && c != '.')
      return false;
  }
  return true;
}

}  // namespace

void decode_consul(DocReader& doc, const Field& f, ConsulSettings* out) {
  MapReader m(doc, f.value, f.path, f.loc);
  if (!m.ok()) return;
  std::string s;
  Location where;
  Location address_at = m.loc();
  if (m.string("address", &s, false, &where)) {
    address_at = where;
    std::string why;
    if (!normalize_agent_address(s, "Consul", &out->address, &why)) {
      doc.error(where, m.child_path("address"), "\"" + s + "\": " + why);
    }
  }
  if (m.string("datacenter", &s, false, &where)) {
    if (!valid_datacenter(s)) {
      doc.error(where, m.child_path("datacenter"),
                "\"" + s + "\" is not a datacenter name (letters, digits, '-', '_', '.')");
    } else {
      out->datacenter = s;
    }
  }
  if (m.string("namespace", &s, false, &where)) {
    if (!valid_datacenter(s)) {
      doc.error(where, m.child_path("namespace"),
                "\"" + s + "\" is not a Consul namespace name (letters, digits, '-', '_', '.')");
    } else {
      out->ns = s;
    }
  }
  Location token_at;
  const bool has_token = m.string("token", &out->token, false, &token_at);
  if (has_token && out->token.empty()) {
    doc.error(token_at, m.child_path("token"), "is empty (leave it out to use no token)");
  }
  if (m.string("tokenFile", &out->token_file, false, &where)) {
    if (out->token_file.empty()) {
      doc.error(where, m.child_path("tokenFile"), "is empty");
    } else if (has_token) {
      doc.error(where, m.child_path("tokenFile"), "give token or tokenFile, not both");
    }
  }
  m.string("username", &out->username);
  Location password_at;
  if (m.string("password", &out->password, false, &password_at) && out->username.empty()) {
    doc.error(password_at, m.child_path("password"), "is given without username");
  }
  std::chrono::milliseconds wait{};
  if (m.duration("waitTime", &wait, false, &where)) {
    if (wait < std::chrono::seconds(1) || wait > std::chrono::minutes(10)) {
      doc.error(where, m.child_path("waitTime"),
                "must be from 1s to 10m (Consul caps a blocking query's wait at 10m)");
    } else {
      out->wait_time = wait;
    }
  }
  // Gloo's names (tlsServerName is Portico's: the name to verify when the address is an IP).
  decode_store_tls(
      doc, m, {"caFile", "caPath", "certFile", "keyFile", "tlsServerName", "insecureSkipVerify"},
      &out->tls);
  check_store_tls_address(doc, out->tls, out->address, address_at, m.child_path("address"));
  for (const char* discovery :
       {"serviceDiscovery", "httpAddress", "dnsAddress", "dnsPollingInterval"}) {
    if (auto t = m.take(discovery)) {
      doc.error(t->loc, t->path,
                std::string(discovery) + " is not supported yet (Consul service discovery)");
    }
  }
  m.finish();
}

namespace {

// consistencyMode: Consul's read consistency, in Gloo's spelling or Consul's.
void read_consistency(DocReader& doc, MapReader& m, ConsulConsistency* out) {
  std::string s;
  Location where;
  if (!m.string("consistencyMode", &s, false, &where)) return;
  if (s == "default" || s == "DefaultMode") {
    *out = ConsulConsistency::kDefault;
  } else if (s == "stale" || s == "StaleMode") {
    *out = ConsulConsistency::kStale;
  } else if (s == "consistent" || s == "ConsistentMode") {
    *out = ConsulConsistency::kConsistent;
  } else {
    doc.error(where, m.child_path("consistencyMode"),
              "\"" + s +
                  "\": expected consistent, stale or default (Gloo's ConsistentMode, StaleMode, "
                  "DefaultMode)");
  }
}

}  // namespace

void decode_consul_kv_source(DocReader& doc, const Field& f, ConsulKvSourceSettings* out) {
  MapReader m(doc, f.value, f.path, f.loc);
  if (!m.ok()) return;
  std::string s;
  Location where;
  if (m.string("rootKey", &s, false, &where)) {
    while (!s.empty() && s.back() == '/')
      s.pop_back();
    std::string why;
    if (s.empty()) {
      why = "is empty";
    } else if (s.front() == '/') {
      why = "must not start with '/' (Consul keys do not)";
    } else if (s.find("//") != std::string::npos) {
      why = "has an empty segment (\"//\")";
    } else {
      for (char c : s) {
        if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) why = "has a control character";
      }
    }
    if (!why.empty()) {
      doc.error(where, m.child_path("rootKey"), why);
    } else {
      out->root_key = s;
    }
  }
  read_consistency(doc, m, &out->consistency);
  m.finish();
}

void decode_consul_discovery(DocReader& doc, const Field& f, ConsulConsistency* out) {
  MapReader m(doc, f.value, f.path, f.loc);
  if (!m.ok()) return;
  read_consistency(doc, m, out);
  // Gloo's other fields drive its discovery of Upstreams from Consul's services (Portico watches
  // the services its Upstreams name) or TLS by tag: not implemented, refused by name.
  for (const char* key : {"useTlsTagging", "tlsTagName", "rootCa", "splitTlsServices",
                          "queryOptions", "serviceTagsAllowlist", "edsBlockingQueries"}) {
    if (auto t = m.take(key)) {
      doc.error(t->loc, t->path,
                std::string(key) +
                    " is not supported (Consul discovery reads consistencyMode here; it always "
                    "uses blocking queries)");
    }
  }
  m.finish();
}

}  // namespace portico::api::detail
