#include "control/consul/consul_api.h"

#include <algorithm>

#include <nlohmann/json.hpp>

#include "common/base64.h"

namespace portico::control::consul {

std::string_view to_string(Consistency c) {
  switch (c) {
    case Consistency::kDefault:
      return "default";
    case Consistency::kStale:
      return "stale";
    case Consistency::kConsistent:
      return "consistent";
  }
  return "default";
}

std::vector<std::pair<std::string, std::string>> request_headers(const Endpoint& e) {
  std::vector<std::pair<std::string, std::string>> out;
  if (!e.token.empty()) out.emplace_back("X-Consul-Token", e.token);
  if (!e.ns.empty()) out.emplace_back("X-Consul-Namespace", e.ns);
  if (!e.username.empty() || !e.password.empty()) {
    out.emplace_back("Authorization",
                     "Basic " + common::base64_encode(e.username + ":" + e.password));
  }
  return out;
}

std::string read_params(const Endpoint& e, Consistency consistency, uint64_t index, Millis wait) {
  std::string out;
  if (!e.datacenter.empty()) out += "&dc=" + http::url_escape(e.datacenter);
  if (consistency == Consistency::kStale) out += "&stale";
  if (consistency == Consistency::kConsistent) out += "&consistent";
  if (index > 0) {
    out += "&index=" + std::to_string(index);
    out += "&wait=" + std::to_string(wait.count()) + "ms";
  }
  return out;
}

bool BlockingIndex::update(uint64_t returned) {
  if (returned < index_) {
    index_ = 0;
    return false;
  }
  index_ = returned < 1 ? 1 : returned;
  return true;
}

std::optional<uint64_t> parse_index(const std::string* header) {
  if (header == nullptr || header->empty() || header->size() > 20) return std::nullopt;
  uint64_t v = 0;
  for (char c : *header) {
    if (c < '0' || c > '9') return std::nullopt;
    const uint64_t digit = static_cast<uint64_t>(c - '0');
    if (v > (UINT64_MAX - digit) / 10) return std::nullopt;
    v = v * 10 + digit;
  }
  return v;
}

namespace {

// A non-negative integer field of an entry; false when present with another type.
bool read_uint(const nlohmann::json& entry, const char* name, uint64_t* out) {
  auto it = entry.find(name);
  if (it == entry.end() || it->is_null()) return true;
  if (!it->is_number_unsigned()) return false;
  *out = it->get<uint64_t>();
  return true;
}

}  // namespace

Result<std::vector<KvEntry>> parse_kv_entries(std::string_view body) {
  nlohmann::json doc = nlohmann::json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded()) return Error::invalid("the body is not JSON: " + brief(body));
  if (!doc.is_array()) return Error::invalid("the body is not a JSON array of KV entries");
  std::vector<KvEntry> out;
  out.reserve(doc.size());
  for (size_t i = 0; i < doc.size(); ++i) {
    const nlohmann::json& e = doc[i];
    const std::string where = "entry " + std::to_string(i) + ": ";
    if (!e.is_object()) return Error::invalid(where + "not an object");
    KvEntry entry;
    auto key = e.find("Key");
    if (key == e.end() || !key->is_string() || key->get_ref<const std::string&>().empty()) {
      return Error::invalid(where + "no Key");
    }
    entry.key = key->get<std::string>();
    auto value = e.find("Value");
    if (value != e.end() && !value->is_null()) {
      if (!value->is_string()) return Error::invalid(where + entry.key + ": Value is not a string");
      auto bytes = common::base64_decode(value->get_ref<const std::string&>());
      if (!bytes) return Error::invalid(where + entry.key + ": Value is not base64");
      entry.value = std::move(*bytes);
    }
    if (!read_uint(e, "Flags", &entry.flags) || !read_uint(e, "CreateIndex", &entry.create_index) ||
        !read_uint(e, "ModifyIndex", &entry.modify_index) ||
        !read_uint(e, "LockIndex", &entry.lock_index)) {
      return Error::invalid(where + entry.key +
                            ": an index or Flags is not a non-negative integer");
    }
    out.push_back(std::move(entry));
  }
  return out;
}

std::string brief(std::string_view body) {
  std::string_view line = body.substr(0, body.find('\n'));
  std::string out(line.substr(0, 200));
  for (char& c : out) {
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) c = ' ';
  }
  if (line.size() > 200) out += "...";
  return out;
}

}  // namespace portico::control::consul
