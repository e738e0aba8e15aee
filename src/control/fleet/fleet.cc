#include "control/fleet/fleet.h"

#include <algorithm>
#include <array>
#include <exception>
#include <variant>

namespace portico::control::fleet {

using Json = nlohmann::ordered_json;

std::vector<std::string> split_list(std::string_view text) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start <= text.size()) {
    size_t end = text.find(',', start);
    if (end == std::string_view::npos) end = text.size();
    std::string item(text.substr(start, end - start));
    if (!item.empty()) out.push_back(std::move(item));
    start = end + 1;
  }
  return out;
}

std::map<std::string, std::string> parse_have(std::string_view text) {
  std::map<std::string, std::string> out;
  for (const auto& item : split_list(text)) {
    size_t colon = item.find(':');
    if (colon == std::string::npos || colon == 0 || colon + 1 == item.size()) continue;
    std::string name = item.substr(0, colon);
    bool known = false;
    for (auto k : snapshot::wire::kSections)
      known = known || k == name;
    if (known) out[name] = item.substr(colon + 1);
  }
  return out;
}

std::string format_have(const std::map<std::string, std::string>& have) {
  std::string out;
  for (const auto& [name, version] : have)
    out += (out.empty() ? "" : ",") + name + ":" + version;
  return out;
}

bool serves(const std::vector<std::string>& gateways, const std::string& listener) {
  if (gateways.empty()) return true;
  size_t slash = listener.find('/');
  std::string_view name = slash == std::string::npos ? std::string_view(listener)
                                                     : std::string_view(listener).substr(slash + 1);
  for (const auto& g : gateways) {
    if (g == listener || g == name) return true;
  }
  return false;
}

std::shared_ptr<const snapshot::ProxyConfig> view_for(const snapshot::ProxyConfig& config,
                                                      const std::vector<std::string>& gateways) {
  auto view = std::make_shared<snapshot::ProxyConfig>();
  view->version = config.version;
  view->versions = config.versions;
  view->created_unix_ms = config.created_unix_ms;
  view->overload = config.overload;
  for (const auto& l : config.listeners) {
    if (serves(gateways, l.name)) view->listeners.push_back(l);
  }
  if (gateways.empty()) {
    view->clusters = config.clusters;  // every cluster, shared, not copied
    return view;
  }
  // Only the clusters the routes of those listeners forward to (and so only their endpoints and
  // secrets): a change to a cluster no route of this proxy uses moves none of its sections.
  std::set<std::string_view> used;
  for (const auto& l : view->listeners) {
    for (const auto& vh : l.virtual_hosts) {
      for (const auto& route : vh->routes) {
        if (const auto* forward = std::get_if<snapshot::ForwardAction>(&route.action)) {
          for (const auto& wc : forward->clusters)
            used.insert(wc.cluster);
        }
      }
    }
  }
  std::vector<snapshot::Cluster> clusters;
  clusters.reserve(used.size());
  for (const auto& c : config.clusters) {
    if (used.count(c.name)) clusters.push_back(c);
  }
  if (clusters.size() == config.clusters.size()) {
    view->clusters = config.clusters;  // all of them: shared, not copied
  } else {
    view->clusters = std::move(clusters);
  }
  return view;
}

snapshot::wire::Sections changed_sections(const snapshot::wire::Sections& now,
                                          const std::map<std::string, std::string>& have) {
  snapshot::wire::Sections out;
  for (const auto& [name, section] : now) {
    auto it = have.find(name);
    if (it == have.end() || it->second != section.version) out[name] = section;
  }
  return out;
}

bool parse_ack(std::string_view body, Ack* out, std::string* error) {
  Json j = Json::parse(body, nullptr, false);
  if (j.is_discarded() || !j.is_object()) {
    *error = "the body is not a JSON object";
    return false;
  }
  std::string field;
  try {
    field = "node";
    out->node = j.at("node").get<std::string>();
    field = "nonce";
    out->nonce = j.at("nonce").get<std::string>();
    field = "version";
    out->version = j.at("version").get<uint64_t>();
    field = "accepted";
    out->accepted = j.at("accepted").get<bool>();
    field = "error";
    out->error = j.value("error", std::string());
    field = "items";
    if (j.contains("items")) out->items = j.at("items").get<std::vector<std::string>>();
    field = "sections";
    if (j.contains("sections")) {
      out->sections = j.at("sections").get<std::map<std::string, std::string>>();
    }
  } catch (const std::exception& e) {
    *error = "field " + field + ": " + e.what();
    return false;
  }
  if (out->node.empty()) {
    *error = "field node: empty";
    return false;
  }
  return true;
}

std::string ack_to_json(const Ack& ack) {
  Json j;
  j["node"] = ack.node;
  j["nonce"] = ack.nonce;
  j["version"] = ack.version;
  j["accepted"] = ack.accepted;
  j["error"] = ack.error;
  j["items"] = ack.items;
  Json sections = Json::object();
  for (const auto& [name, v] : ack.sections)
    sections[name] = v;
  j["sections"] = std::move(sections);
  return j.dump(-1, ' ', false, Json::error_handler_t::replace);
}

uint64_t Fleet::connect(const std::string& node, std::vector<std::string> gateways,
                        std::map<std::string, std::string> have, int64_t now_unix_ms) {
  ProxyInfo& p = proxies_[node];
  p.node = node;
  p.gateways = std::move(gateways);
  p.connected = true;
  p.connected_unix_ms = now_unix_ms;
  p.last_seen_unix_ms = now_unix_ms;
  p.have = have;
  p.stream_id = next_stream_++;
  Stream& s = streams_[node];
  s = Stream{};
  s.sent = std::move(have);
  pending_[node].clear();
  return p.stream_id;
}

void Fleet::disconnect(const std::string& node, uint64_t stream_id, int64_t now_unix_ms) {
  auto it = proxies_.find(node);
  if (it == proxies_.end() || it->second.stream_id != stream_id) return;
  it->second.connected = false;
  it->second.last_seen_unix_ms = now_unix_ms;
  streams_.erase(node);
  pending_.erase(node);
}

void Fleet::seen(const std::string& node, int64_t now_unix_ms) {
  auto it = proxies_.find(node);
  if (it != proxies_.end()) it->second.last_seen_unix_ms = now_unix_ms;
}

std::optional<std::string> Fleet::next_message(const std::string& node, uint64_t stream_id,
                                               const snapshot::ProxyConfig& config) {
  auto p = proxies_.find(node);
  auto s = streams_.find(node);
  if (p == proxies_.end() || s == streams_.end() || p->second.stream_id != stream_id) {
    return std::nullopt;
  }
  Stream& stream = s->second;
  if (!stream.first && stream.sent_version >= config.version) return std::nullopt;
  auto view = view_for(config, p->second.gateways);
  snapshot::wire::Sections all = snapshot::wire::encode_sections(*view);
  snapshot::wire::Message m;
  m.sections = changed_sections(all, stream.sent);
  if (!stream.first && m.sections.empty() && p->second.nacked_version == 0) {
    // Nothing of this proxy's view moved (a change to another proxy's Gateways or clusters):
    // nothing is sent, and its version stays the one it runs. (After a NACK it is sent: the
    // proxy's ACK of a configuration it runs clears the NACK.)
    stream.sent_version = config.version;
    ++p->second.skipped;
    return std::nullopt;
  }
  // Each kind's version as this proxy sees it: unchanged while its section's content is.
  m.header = snapshot::wire::header_of(*view);
  snapshot::TypeVersions& tv = m.header.versions;
  const std::array<uint64_t*, 5> kinds = {&tv.listeners, &tv.routes, &tv.clusters, &tv.endpoints,
                                          &tv.secrets};
  static_assert(snapshot::wire::kSections.size() == 5);
  for (size_t i = 0; i < kinds.size(); ++i) {
    const std::string name(snapshot::wire::kSections[i]);
    auto section = all.find(name);
    if (section == all.end()) continue;
    auto& [hash, version] = stream.typed[name];
    if (hash == section->second.version) {
      *kinds[i] = version;
    } else {
      hash = section->second.version;
      version = *kinds[i];
    }
  }
  m.nonce = node + "-" + std::to_string(next_nonce_++);
  Sent sent;
  sent.version = config.version;
  for (const auto& [name, section] : all)
    sent.sections[name] = section.version;
  sent.view = view;
  stream.sent = sent.sections;
  stream.sent_version = config.version;
  stream.first = false;
  auto& pending = pending_[node];
  pending[m.nonce] = std::move(sent);
  while (pending.size() > 64)
    pending.erase(pending.begin());  // a proxy that never answers
  ++p->second.messages;
  return snapshot::wire::encode_message(m);
}

namespace {

// The resources behind the named items of a view (listener, virtual host or cluster names; a
// "<Kind>/<namespace>/<name>" key is taken as it is).
std::set<std::string> sources_of_items(const snapshot::ProxyConfig& view,
                                       const std::vector<std::string>& items) {
  std::set<std::string> out;
  for (const auto& item : items) {
    bool found = false;
    for (const auto& l : view.listeners) {
      if (l.name == item) {
        for (auto& s : snapshot::sources_of(l))
          out.insert(std::move(s));
        found = true;
      }
      for (const auto& vh : l.virtual_hosts) {
        if (vh->name == item) {
          for (auto& s : snapshot::sources_of(*vh))
            out.insert(std::move(s));
          found = true;
        }
      }
    }
    if (const auto* c = view.find_cluster(item)) {
      for (auto& s : snapshot::sources_of(*c))
        out.insert(std::move(s));
      found = true;
    }
    if (!found && std::count(item.begin(), item.end(), '/') >= 2) out.insert(item);
  }
  return out;
}

std::set<std::string> all_sources(const snapshot::ProxyConfig& view) {
  std::set<std::string> out;
  for (const auto& l : view.listeners) {
    for (auto& s : snapshot::sources_of(l))
      out.insert(std::move(s));
    for (const auto& vh : l.virtual_hosts) {
      for (auto& s : snapshot::sources_of(*vh))
        out.insert(std::move(s));
    }
  }
  for (const auto& c : view.clusters) {
    for (auto& s : snapshot::sources_of(c))
      out.insert(std::move(s));
  }
  return out;
}

}  // namespace

bool Fleet::ack(const Ack& ack, int64_t now_unix_ms, std::string* error) {
  auto p = proxies_.find(ack.node);
  if (p == proxies_.end()) {
    *error = "unknown node " + ack.node;
    return false;
  }
  auto& pending = pending_[ack.node];
  auto it = pending.find(ack.nonce);
  if (it == pending.end()) {
    *error = "unknown nonce " + ack.nonce + " for node " + ack.node;
    return false;
  }
  Sent sent = std::move(it->second);
  // Older messages are answered by this one's outcome (a proxy answers in order).
  pending.erase(pending.begin(), std::next(it));
  ProxyInfo& info = p->second;
  info.last_seen_unix_ms = now_unix_ms;
  auto s = streams_.find(ack.node);
  if (ack.accepted) {
    ++info.acks;
    ++acks_;
    info.applied_version = sent.version;
    info.have = ack.sections.empty() ? sent.sections : ack.sections;
    info.applied_sources = all_sources(*sent.view);
    if (info.nacked_version != 0 && sent.version > info.nacked_version) {
      info.nacked_version = 0;
      info.last_error.clear();
      info.nack_sources.clear();
    }
    // The proxy runs something else than the server assumed (a message computed on one it then
    // rejected): the next message is computed on what it runs, and sent at once.
    if (s != streams_.end() && info.have != sent.sections) {
      s->second.sent = info.have;
      s->second.first = true;
    }
  } else {
    ++info.nacks;
    ++nacks_;
    info.nacked_version = sent.version;
    info.last_error = ack.error.empty() ? "rejected (no reason given)" : ack.error;
    info.nack_sources = sources_of_items(*sent.view, ack.items);
    if (info.nack_sources.empty()) {
      // Nothing named: reported on the Gateways it serves.
      for (const auto& l : sent.view->listeners)
        info.nack_sources.insert("Gateway/" + l.name);
    }
    if (!ack.sections.empty()) info.have = ack.sections;
    // The proxy keeps what it had: the next message is computed against that. Messages sent
    // after the rejected one assumed it applied: one more is sent at once (next_message).
    if (s != streams_.end()) {
      s->second.sent = info.have;
      if (s->second.sent_version > sent.version) s->second.first = true;
    }
  }
  return true;
}

size_t Fleet::connected() const {
  size_t n = 0;
  for (const auto& [node, p] : proxies_)
    n += p.connected ? 1 : 0;
  return n;
}

Json Fleet::proxies_json() const {
  Json out = Json::array();
  for (const auto& [node, p] : proxies_) {
    Json j;
    j["node"] = p.node;
    j["gateways"] = p.gateways;
    j["connected"] = p.connected;
    j["connectedUnixMs"] = p.connected_unix_ms;
    j["lastSeenUnixMs"] = p.last_seen_unix_ms;
    j["version"] = p.applied_version;
    Json sections = Json::object();
    for (const auto& [name, v] : p.have)
      sections[name] = v;
    j["sections"] = std::move(sections);
    j["lastError"] = p.last_error;
    j["nackedVersion"] = p.nacked_version;
    j["acks"] = p.acks;
    j["nacks"] = p.nacks;
    j["messages"] = p.messages;
    j["skipped"] = p.skipped;
    out.push_back(std::move(j));
  }
  return out;
}

std::map<std::string, std::vector<std::string>> Fleet::warnings() const {
  std::map<std::string, std::vector<std::string>> out;
  for (const auto& [node, p] : proxies_) {
    if (p.nacked_version == 0) continue;
    std::string message = "proxy " + node + " rejected version " +
                          std::to_string(p.nacked_version) + ": " + p.last_error;
    for (const auto& key : p.nack_sources)
      out[key].push_back(message);
  }
  return out;
}

std::vector<std::string> Fleet::running(const std::string& key) const {
  std::vector<std::string> out;
  for (const auto& [node, p] : proxies_) {
    if (p.applied_sources.count(key)) {
      out.push_back(node + " (version " + std::to_string(p.applied_version) +
                    (p.connected ? "" : ", disconnected") + ")");
    }
  }
  return out;
}

void Fleet::annotate(Json& resources) const {
  if (!resources.is_array()) return;
  auto warned = warnings();
  for (auto& r : resources) {
    if (!r.is_object()) continue;
    std::string key =
        r.value("kind", "") + "/" + r.value("namespace", "") + "/" + r.value("name", "");
    r["proxies"] = running(key);
    auto w = warned.find(key);
    if (w == warned.end()) continue;
    if (r.value("state", "") == "Accepted") r["state"] = "Warning";
    if (!r.contains("reasons") || !r["reasons"].is_array()) r["reasons"] = Json::array();
    for (const auto& message : w->second) {
      Json d;
      d["severity"] = "warning";
      d["file"] = r.value("file", "");
      d["line"] = 0;
      d["column"] = 0;
      d["path"] = "";
      d["message"] = message;
      r["reasons"].push_back(std::move(d));
    }
  }
}

}  // namespace portico::control::fleet
