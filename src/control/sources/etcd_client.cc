#include "control/sources/etcd_client.h"

#include <charconv>
#include <nlohmann/json.hpp>
#include <utility>

#include "common/base64.h"

namespace portico::control::etcd {

namespace {

using nlohmann::json;

Error bad(std::string msg) {
  return {ErrorKind::kIo, ErrorSource::kUpstream, "etcd answered " + std::move(msg)};
}

// A 64-bit field: etcd's gateway writes them as strings; a number is accepted too. Absent: 0.
bool get_int(const json& obj, const char* key, int64_t* out) {
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) {
    *out = 0;
    return true;
  }
  if (it->is_number_integer()) {
    *out = it->get<int64_t>();
    return true;
  }
  if (!it->is_string()) return false;
  const auto& s = it->get_ref<const std::string&>();
  int64_t v = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || end != s.data() + s.size()) return false;
  *out = v;
  return true;
}

bool get_bool(const json& obj, const char* key) {
  auto it = obj.find(key);
  return it != obj.end() && it->is_boolean() && it->get<bool>();
}

// A base64 field; absent: empty.
bool get_bytes(const json& obj, const char* key, std::string* out) {
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) {
    out->clear();
    return true;
  }
  if (!it->is_string()) return false;
  auto decoded = common::base64_decode(it->get_ref<const std::string&>());
  if (!decoded) return false;
  *out = std::move(*decoded);
  return true;
}

Result<Header> parse_header(const json& obj, const std::string& where) {
  Header h;
  auto it = obj.find("header");
  if (it == obj.end()) return h;
  if (!it->is_object()) return bad(where + "header: not an object");
  if (!get_int(*it, "revision", &h.revision)) return bad(where + "header.revision: not a number");
  auto id = it->find("cluster_id");
  if (id != it->end() && id->is_string()) h.cluster_id = id->get<std::string>();
  if (id != it->end() && id->is_number_unsigned())
    h.cluster_id = std::to_string(id->get<uint64_t>());
  return h;
}

Result<KeyValue> parse_kv(const json& obj, const std::string& where) {
  if (!obj.is_object()) return bad(where + ": not an object");
  KeyValue kv;
  if (!get_bytes(obj, "key", &kv.key)) return bad(where + ".key: not base64");
  if (!get_bytes(obj, "value", &kv.value)) return bad(where + ".value: not base64");
  if (!get_int(obj, "create_revision", &kv.create_revision) ||
      !get_int(obj, "mod_revision", &kv.mod_revision) || !get_int(obj, "version", &kv.version)) {
    return bad(where + ": a revision is not a number");
  }
  return kv;
}

Result<json> parse_json(std::string_view text) {
  json j = json::parse(text.begin(), text.end(), nullptr, false);
  if (j.is_discarded()) return bad("something that is not JSON");
  if (!j.is_object()) return bad("JSON that is not an object");
  return j;
}

std::string error_text(const json& e) {
  if (e.is_string()) return e.get<std::string>();
  if (e.is_object()) {
    auto m = e.find("message");
    if (m != e.end() && m->is_string()) return m->get<std::string>();
  }
  return e.dump();
}

}  // namespace

std::string prefix_range_end(std::string_view prefix) {
  std::string end(prefix);
  while (!end.empty()) {
    unsigned char last = static_cast<unsigned char>(end.back());
    if (last < 0xff) {
      end.back() = static_cast<char>(last + 1);
      return end;
    }
    end.pop_back();
  }
  return std::string(1, '\0');
}

std::string range_body(std::string_view key, std::string_view range_end) {
  json j = {{"key", common::base64_encode(key)}, {"range_end", common::base64_encode(range_end)}};
  return j.dump();
}

std::string watch_body(std::string_view key, std::string_view range_end, int64_t start_revision) {
  json create = {{"key", common::base64_encode(key)},
                 {"range_end", common::base64_encode(range_end)},
                 {"start_revision", std::to_string(start_revision)}};
  return json{{"create_request", std::move(create)}}.dump();
}

Result<RangeResponse> parse_range(std::string_view body) {
  auto j = parse_json(body);
  if (!j) return j.error();
  const json& obj = j.value();
  if (auto e = obj.find("error"); e != obj.end()) return bad("an error: " + error_text(*e));
  RangeResponse out;
  auto header = parse_header(obj, "");
  if (!header) return header.error();
  out.header = std::move(header.value());
  out.more = get_bool(obj, "more");
  if (auto kvs = obj.find("kvs"); kvs != obj.end()) {
    if (!kvs->is_array()) return bad("kvs: not a list");
    for (size_t i = 0; i < kvs->size(); ++i) {
      auto kv = parse_kv((*kvs)[i], "kvs[" + std::to_string(i) + "]");
      if (!kv) return kv.error();
      out.kvs.push_back(std::move(kv.value()));
    }
  }
  return out;
}

Result<WatchMessage> parse_watch_line(std::string_view line) {
  auto j = parse_json(line);
  if (!j) return j.error();
  const json& obj = j.value();
  WatchMessage out;
  if (auto e = obj.find("error"); e != obj.end()) {
    out.error = error_text(*e);
    return out;
  }
  auto r = obj.find("result");
  if (r == obj.end() || !r->is_object()) return bad("a watch line without a result");
  auto header = parse_header(*r, "result.");
  if (!header) return header.error();
  out.header = std::move(header.value());
  out.created = get_bool(*r, "created");
  out.canceled = get_bool(*r, "canceled");
  if (!get_int(*r, "compact_revision", &out.compact_revision)) {
    return bad("result.compact_revision: not a number");
  }
  if (auto reason = r->find("cancel_reason"); reason != r->end() && reason->is_string()) {
    out.cancel_reason = reason->get<std::string>();
  }
  if (auto events = r->find("events"); events != r->end()) {
    if (!events->is_array()) return bad("result.events: not a list");
    for (size_t i = 0; i < events->size(); ++i) {
      const json& ev = (*events)[i];
      const std::string where = "result.events[" + std::to_string(i) + "]";
      if (!ev.is_object()) return bad(where + ": not an object");
      Event event;
      if (auto type = ev.find("type"); type != ev.end()) {
        // Enum names as the gateway writes them; numbers (0 PUT, 1 DELETE) accepted too.
        const bool put = (type->is_string() && type->get<std::string>() == "PUT") ||
                         (type->is_number_integer() && type->get<int64_t>() == 0);
        event.deleted = (type->is_string() && type->get<std::string>() == "DELETE") ||
                        (type->is_number_integer() && type->get<int64_t>() == 1);
        if (!put && !event.deleted) return bad(where + ".type: neither PUT nor DELETE");
      }
      auto kv = ev.find("kv");
      if (kv == ev.end()) return bad(where + ": no kv");
      auto parsed = parse_kv(*kv, where + ".kv");
      if (!parsed) return parsed.error();
      event.kv = std::move(parsed.value());
      out.events.push_back(std::move(event));
    }
  }
  return out;
}

std::string cas_body(std::string_view key, const std::optional<std::string>& value,
                     int64_t expected_mod_revision) {
  const std::string k = common::base64_encode(key);
  json compare = json::array({{{"key", k},
                               {"result", "EQUAL"},
                               {"target", "MOD"},
                               {"mod_revision", std::to_string(expected_mod_revision)}}});
  json op = value ? json{{"request_put", {{"key", k}, {"value", common::base64_encode(*value)}}}}
                  : json{{"request_delete_range", {{"key", k}}}};
  return json{{"compare", std::move(compare)}, {"success", json::array({std::move(op)})}}.dump();
}

Result<TxnResult> parse_txn(std::string_view body) {
  auto j = parse_json(body);
  if (!j) return j.error();
  const json& obj = j.value();
  if (auto e = obj.find("error"); e != obj.end()) return bad("an error: " + error_text(*e));
  auto header = parse_header(obj, "");
  if (!header) return header.error();
  return TxnResult{get_bool(obj, "succeeded"), header.value().revision};
}

EtcdClient::EtcdClient(http::Url url, http::Millis timeout)
    : http_(std::move(url)), timeout_(timeout) {}

Result<std::string> EtcdClient::post(const std::string& target, std::string body) {
  http::Request req;
  req.method = "POST";
  req.target = http_.url().path + target;
  req.headers.emplace_back("Content-Type", "application/json");
  req.body = std::move(body);
  auto r = http_.send(req, timeout_);
  if (!r) return r.error();
  if (r.value().status != 200) {
    std::string detail = r.value().body.substr(0, 200);
    while (!detail.empty() && (detail.back() == '\n' || detail.back() == '\r'))
      detail.pop_back();
    return Error{ErrorKind::kUnavailable, ErrorSource::kUpstream,
                 "etcd answered " + target + " with " + std::to_string(r.value().status) +
                     (detail.empty() ? std::string() : ": " + detail)};
  }
  return std::move(r.value().body);
}

Result<RangeResponse> EtcdClient::range(std::string_view key, std::string_view range_end) {
  auto body = post("/v3/kv/range", range_body(key, range_end));
  if (!body) return body.error();
  return parse_range(body.value());
}

Result<TxnResult> EtcdClient::put_if(std::string_view key, std::string_view value,
                                     int64_t expected_mod_revision) {
  auto body = post("/v3/kv/txn", cas_body(key, std::string(value), expected_mod_revision));
  if (!body) return body.error();
  return parse_txn(body.value());
}

Result<TxnResult> EtcdClient::delete_if(std::string_view key, int64_t expected_mod_revision) {
  auto body = post("/v3/kv/txn", cas_body(key, std::nullopt, expected_mod_revision));
  if (!body) return body.error();
  return parse_txn(body.value());
}

Result<int> EtcdClient::watch(std::string_view key, std::string_view range_end,
                              int64_t start_revision,
                              const std::function<bool(const WatchMessage&)>& on_message,
                              http::Millis idle) {
  http::Request req;
  req.method = "POST";
  req.target = http_.url().path + "/v3/watch";
  req.headers.emplace_back("Content-Type", "application/json");
  req.body = watch_body(key, range_end, start_revision);
  std::optional<Error> failed;
  int status = 0;
  auto r = http_.stream_lines(
      req,
      [&](const http::Response& head) {
        status = head.status;
        return head.status == 200;
      },
      [&](std::string_view line) {
        if (line.empty()) return true;
        auto message = parse_watch_line(line);
        if (!message) {
          failed = message.error();
          return false;
        }
        return on_message(message.value());
      },
      idle);
  if (!r) return r.error();
  if (failed) return *failed;
  if (status != 200) {
    return Error{ErrorKind::kUnavailable, ErrorSource::kUpstream,
                 "etcd answered /v3/watch with " + std::to_string(status)};
  }
  return status;
}

}  // namespace portico::control::etcd
