#include "control/discovery/nomad_discovery.h"

#include <arpa/inet.h>

#include <algorithm>
#include <set>

#include <nlohmann/json.hpp>

#include "control/consul/consul_api.h"

namespace portico::control {

namespace {

constexpr std::chrono::milliseconds kMargin{5000};        // beyond ?wait= before a query times out
constexpr std::chrono::milliseconds kPageTimeout{10000};  // a later page (never blocks)
constexpr int kMaxPages = 1000;

const nlohmann::json* member(const nlohmann::json& o, const char* name) {
  auto it = o.find(name);
  return it == o.end() ? nullptr : &*it;
}

bool is_ip(const std::string& s) {
  unsigned char buf[16];
  return ::inet_pton(AF_INET, s.c_str(), buf) == 1 || ::inet_pton(AF_INET6, s.c_str(), buf) == 1;
}

bool carries_all(const std::vector<std::string>& have, const std::vector<std::string>& want) {
  return std::all_of(want.begin(), want.end(), [&](const std::string& t) {
    return std::find(have.begin(), have.end(), t) != have.end();
  });
}

std::string joined(const std::vector<std::string>& v) {
  std::string out;
  for (const auto& s : v)
    out += (out.empty() ? "" : ", ") + s;
  return out;
}

}  // namespace

Result<std::vector<NomadRegistration>> parse_service_registrations(std::string_view body) {
  nlohmann::json doc = nlohmann::json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded()) return Error::invalid("the body is not JSON: " + consul::brief(body));
  if (!doc.is_array()) return Error::invalid("the body is not a JSON array of registrations");
  std::vector<NomadRegistration> out;
  out.reserve(doc.size());
  for (size_t i = 0; i < doc.size(); ++i) {
    const nlohmann::json& e = doc[i];
    const std::string where = "registration " + std::to_string(i) + ": ";
    if (!e.is_object()) return Error::invalid(where + "not an object");
    NomadRegistration reg;
    const nlohmann::json* id = member(e, "ID");
    if (!id || !id->is_string()) return Error::invalid(where + "no ID");
    reg.id = id->get<std::string>();
    const nlohmann::json* address = member(e, "Address");
    if (!address || !address->is_string() || address->get_ref<const std::string&>().empty()) {
      return Error::invalid(where + reg.id + ": no Address");
    }
    reg.address = address->get<std::string>();
    const nlohmann::json* port = member(e, "Port");
    if (!port || !port->is_number_unsigned() || port->get<uint64_t>() == 0 ||
        port->get<uint64_t>() > 65535) {
      return Error::invalid(where + reg.id + ": Port is not a port number");
    }
    reg.port = static_cast<uint16_t>(port->get<uint64_t>());
    if (const nlohmann::json* t = member(e, "Tags"); t && !t->is_null()) {
      if (!t->is_array()) return Error::invalid(where + reg.id + ": Tags is not an array");
      for (const auto& tag : *t) {
        if (!tag.is_string()) return Error::invalid(where + reg.id + ": Tags has a non-string");
        reg.tags.push_back(tag.get<std::string>());
      }
    }
    out.push_back(std::move(reg));
  }
  return out;
}

std::vector<snapshot::Endpoint> select_instances(const std::vector<NomadRegistration>& regs,
                                                 const snapshot::DiscoveryTarget& target,
                                                 size_t* skipped) {
  using Canary = snapshot::DiscoveryTarget::Canary;
  const bool split = target.canary != Canary::kInclude && !target.canary_tags.empty();
  std::vector<snapshot::Endpoint> out;
  for (const auto& r : regs) {
    if (!carries_all(r.tags, target.tags)) continue;
    if (split) {
      const bool canary = carries_all(r.tags, target.canary_tags);
      if (canary != (target.canary == Canary::kOnly)) continue;
    }
    if (!is_ip(r.address)) {
      if (skipped) ++*skipped;
      continue;
    }
    snapshot::Endpoint ep;
    ep.address = r.address;
    ep.port = r.port;
    out.push_back(std::move(ep));
  }
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) {
    return a.address != b.address ? a.address < b.address : a.port < b.port;
  });
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

std::string service_query_target(const NomadDiscoveryOptions& options,
                                 const snapshot::DiscoveryTarget& target, uint64_t index,
                                 std::string_view next_token) {
  std::string out = options.url.path + "/v1/service/" + http::url_escape(target.name) +
                    "?namespace=" + http::url_escape(target.ns.empty() ? "default" : target.ns);
  if (!options.region.empty()) out += "&region=" + http::url_escape(options.region);
  if (!next_token.empty()) {
    out += "&next_token=" + http::url_escape(next_token);
  } else if (index > 0) {
    out += "&index=" + std::to_string(index);
    out += "&wait=" + std::to_string(options.wait.count()) + "ms";
  }
  return out;
}

BlockingAnswer query_nomad_service(const NomadSend& send, const NomadDiscoveryOptions& options,
                                   const snapshot::DiscoveryTarget& target, uint64_t index) {
  BlockingAnswer out;
  std::vector<NomadRegistration> all;
  std::string next;
  for (int page = 0;; ++page) {
    if (page == kMaxPages) {
      out.problem = "Nomad's answer has more than " + std::to_string(kMaxPages) + " pages";
      return out;
    }
    http::Request req;
    req.target = service_query_target(options, target, page == 0 ? index : 0, next);
    if (!options.token.empty()) req.headers.emplace_back("X-Nomad-Token", options.token);
    auto r = send(req, page == 0 ? options.wait + kMargin : kPageTimeout);
    if (!r) {
      out.problem = "Nomad unreachable: " + r.error().message;
      return out;
    }
    const http::Response& resp = r.value();
    if (resp.status != 200) {
      out.problem =
          "Nomad answered " + std::to_string(resp.status) + ": " + consul::brief(resp.body);
      return out;
    }
    auto parsed = parse_service_registrations(resp.body);
    if (!parsed) {
      out.problem = "Nomad's answer is not understood: " + parsed.error().message;
      return out;
    }
    if (page == 0) {
      auto idx = consul::parse_index(resp.header("x-nomad-index"));
      if (!idx) {
        out.problem = "Nomad's answer has no X-Nomad-Index";
        return out;
      }
      out.index = idx;
    }
    for (auto& reg : parsed.value())
      all.push_back(std::move(reg));
    const std::string* token = resp.header("x-nomad-nexttoken");
    if (!token || token->empty()) break;
    if (*token == next) {
      out.problem = "Nomad's next page token does not move (" + consul::brief(*token) + ")";
      return out;
    }
    next = *token;
  }
  size_t skipped = 0;
  out.endpoints = select_instances(all, target, &skipped);
  if (all.empty()) {
    out.problem = "service not found in Nomad";
  } else if (skipped > 0) {
    out.problem =
        std::to_string(skipped) + " registration(s) left out: their Address is not an IP address";
  } else if (out.endpoints->empty()) {
    using Canary = snapshot::DiscoveryTarget::Canary;
    if (target.canary == Canary::kOnly && !target.canary_tags.empty()) {
      out.problem = "no canary instance (none carries " + joined(target.canary_tags) + ")";
    } else if (target.canary == Canary::kExclude && !target.canary_tags.empty()) {
      out.problem = "no instance that is not a canary" +
                    (target.tags.empty() ? "" : " and carries " + joined(target.tags));
    } else {
      out.problem = "no instance carries " + joined(target.tags);
    }
  }
  return out;
}

NomadDiscovery::NomadDiscovery() = default;
NomadDiscovery::~NomadDiscovery() = default;

void NomadDiscovery::start(std::function<void()> wake) {
  watcher_.start(std::move(wake));
}

void NomadDiscovery::watch(const std::vector<snapshot::DiscoveryTarget>& targets) {
  watcher_.watch(targets);
}

std::optional<DiscoveredMap> NomadDiscovery::poll() {
  return watcher_.poll();
}

bool NomadDiscovery::wait_first(std::chrono::milliseconds timeout) {
  return watcher_.wait_first(timeout);
}

void NomadDiscovery::configure(const NomadDiscoveryOptions& options) {
  if (options_ && *options_ == options) return;
  options_ = options;
  watcher_.configure(
      options.url,
      [options](http::Client& client, const snapshot::DiscoveryTarget& target, uint64_t index) {
        NomadSend send = [&client](const http::Request& req, std::chrono::milliseconds timeout) {
          return client.send(req, timeout);
        };
        return query_nomad_service(send, options, target, index);
      });
}

NomadDiscovery::Counters NomadDiscovery::counters() const {
  BlockingWatcher::Counters w = watcher_.counters();
  Counters c;
  c.queries = w.queries;
  c.failures = w.failures;
  c.services = w.targets;
  c.failing = w.failing;
  return c;
}

}  // namespace portico::control
