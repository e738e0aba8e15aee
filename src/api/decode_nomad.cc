// Settings spec.nomad (how to reach Nomad) and an Upstream's spec.nomad (a Nomad native service).
#include <algorithm>
#include <cctype>
#include <string>

#include "api/decode_internal.h"

namespace portico::api::detail {

using yaml::DocReader;
using yaml::Field;
using yaml::MapReader;

namespace {

// Nomad's namespace and region names: letters, digits and '-' (at most 128).
bool valid_nomad_name(const std::string& s) {
  if (s.empty() || s.size() > 128) return false;
  return std::all_of(s.begin(), s.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '-';
  });
}

// A service name as Nomad registers it (RFC 1123 labels; '_' and '.' tolerated).
bool valid_service_name(const std::string& s) {
  if (s.empty() || s.size() > 255) return false;
  return std::all_of(s.begin(), s.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.';
  });
}

}  // namespace

void decode_nomad_settings(DocReader& doc, const Field& f, NomadSettings* out) {
  MapReader m(doc, f.value, f.path, f.loc);
  if (!m.ok()) return;
  std::string s;
  Location where;
  Location address_at = m.loc();
  if (m.string("address", &s, false, &where)) {
    address_at = where;
    std::string why;
    if (!normalize_agent_address(s, "Nomad", &out->address, &why)) {
      doc.error(where, m.child_path("address"), "\"" + s + "\": " + why);
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
  if (m.string("region", &s, false, &where)) {
    if (!valid_nomad_name(s)) {
      doc.error(where, m.child_path("region"),
                "\"" + s + "\" is not a region name (letters, digits, '-')");
    } else {
      out->region = s;
    }
  }
  std::chrono::milliseconds wait{};
  if (m.duration("waitTime", &wait, false, &where)) {
    if (wait < std::chrono::seconds(1) || wait > std::chrono::minutes(10)) {
      doc.error(where, m.child_path("waitTime"),
                "must be from 1s to 10m (Nomad caps a blocking query's wait at 10m)");
    } else {
      out->wait_time = wait;
    }
  }
  decode_store_tls(
      doc, m, {"caFile", "caPath", "certFile", "keyFile", "tlsServerName", "insecureSkipVerify"},
      &out->tls);
  check_store_tls_address(doc, out->tls, out->address, address_at, m.child_path("address"));
  m.finish();
}

void decode_nomad_upstream(DocReader& doc, const Field& f, NomadUpstream* out) {
  MapReader m(doc, f.value, f.path, f.loc);
  if (!m.ok()) return;
  std::string s;
  Location where;
  if (m.string("serviceName", &s, true, &where)) {
    if (!valid_service_name(s)) {
      doc.error(where, m.child_path("serviceName"),
                s.empty() ? std::string("must not be empty")
                          : "\"" + s + "\" is not a Nomad service name (letters, digits, '-')");
    } else {
      out->service_name = s;
    }
  }
  if (m.string("namespace", &s, false, &where)) {
    if (!valid_nomad_name(s)) {
      doc.error(where, m.child_path("namespace"),
                "\"" + s +
                    "\" is not a Nomad namespace (letters, digits, '-'; \"*\" is not accepted: "
                    "an Upstream reads one namespace)");
    } else {
      out->ns = s;
    }
  }
  auto strings = [&](const char* key, std::vector<std::string>* list) {
    auto l = m.list(key);
    if (!l) return;
    yaml::for_each_item(*l, [&](const YAML::Node& item, const std::string& path, Location loc) {
      std::string v;
      if (!yaml::read_string(doc, item, path, loc, &v)) return;
      if (v.empty()) {
        doc.error(loc, path, "must not be empty");
        return;
      }
      if (std::find(list->begin(), list->end(), v) == list->end()) list->push_back(std::move(v));
    });
  };
  strings("tags", &out->tags);
  strings("canaryTags", &out->canary_tags);
  if (m.string("canary", &s, false, &where)) {
    if (s == "include") {
      out->canary = NomadCanary::kInclude;
    } else if (s == "exclude") {
      out->canary = NomadCanary::kExclude;
    } else if (s == "only") {
      out->canary = NomadCanary::kOnly;
    } else {
      doc.error(where, m.child_path("canary"),
                "\"" + s + "\": expected include (the default), exclude or only");
    }
    if (out->canary != NomadCanary::kInclude && out->canary_tags.empty()) {
      doc.error(
          where, m.child_path("canary"),
          "canary: " + s + " needs canaryTags (the job's canary_tags: what tells a canary apart)");
    }
  }
  for (const char* key : {"filter", "datacenter", "datacenters", "region", "choose"}) {
    if (auto t = m.take(key)) {
      doc.error(t->loc, t->path,
                std::string("nomad.") + key +
                    " is not supported (Nomad discovery reads serviceName, namespace, tags, "
                    "canaryTags and canary)");
    }
  }
  m.finish();
}

}  // namespace portico::api::detail
