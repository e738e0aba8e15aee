#include "control/sources/kube_secret_source.h"

#include <chrono>
#include <thread>

#include "api/decode.h"
#include "common/base64.h"
#include "common/log.h"
#include "control/sources/kube_api.h"

namespace portico::control {

using nlohmann::json;

namespace {

constexpr const char* kSource = "kubernetes-secrets";

std::string origin_key(const std::string& ns, const std::string& name) {
  return "v1/Secret/" + ns + "/" + name;
}

}  // namespace

std::optional<std::string> kube_secret_document(const json& secret, std::string* why) {
  if (!secret.is_object() || !secret.contains("metadata") || !secret["metadata"].is_object()) {
    *why = "a Secret without metadata";
    return std::nullopt;
  }
  const json& m = secret["metadata"];
  if (!m.contains("name") || !m["name"].is_string() || !m.contains("namespace") ||
      !m["namespace"].is_string()) {
    *why = "a Secret without metadata.name or metadata.namespace";
    return std::nullopt;
  }
  const std::string type = secret.contains("type") && secret["type"].is_string()
                               ? secret["type"].get<std::string>()
                               : "Opaque";
  std::map<std::string, std::string> data;
  if (secret.contains("data") && secret["data"].is_object()) {
    for (const auto& [key, value] : secret["data"].items()) {
      if (value.is_null()) continue;
      auto bytes = value.is_string() ? common::base64_decode(value.get<std::string>())
                                     : std::optional<std::string>();
      if (!bytes) {
        *why = "data." + key + " is not base64";
        return std::nullopt;
      }
      data[key] = std::move(*bytes);
    }
  }
  json spec = json::object();
  if (type == "kubernetes.io/tls") {
    json tls = json::object();
    for (const auto& [key, value] : data) {
      if (key == "tls.crt") {
        tls["certChain"] = value;
      } else if (key == "tls.key") {
        tls["privateKey"] = value;
      } else if (key == "ca.crt") {
        tls["rootCa"] = value;
      }  // other keys of a TLS Secret are not part of the certificate
    }
    spec["tls"] = std::move(tls);
  } else {
    json generic = json::object();
    for (const auto& [key, value] : data)
      generic[key] = value;
    spec["generic"] = std::move(generic);
  }
  json doc = {{"apiVersion", api::kApiVersion},
              {"kind", "Secret"},
              {"metadata", {{"name", m["name"]}, {"namespace", m["namespace"]}}},
              {"spec", std::move(spec)}};
  return doc.dump(-1, ' ', false, json::error_handler_t::replace);
}

KubeSecretSource::KubeSecretSource(KubeSecretSourceOptions options)
    : options_(std::move(options)), label_(kube::label_of(options_.url)) {}

KubeSecretSource::~KubeSecretSource() {
  informers_.clear();
}

void KubeSecretSource::start(std::function<void()> wake) {
  wake_ = std::move(wake);
  std::vector<std::string> spaces = options_.namespaces;
  if (spaces.empty()) spaces.emplace_back();
  for (const auto& ns : spaces) {
    kube::InformerOptions o;
    o.url = options_.url;
    o.token_file = options_.token_file;
    o.collection =
        ns.empty() ? "/api/v1/secrets" : "/api/v1/namespaces/" + http::url_escape(ns) + "/secrets";
    o.what = "secrets (" + (ns.empty() ? std::string("all namespaces") : "namespace " + ns) + ")";
    informers_.push_back(std::make_unique<kube::Informer>(std::move(o), [this] {
      if (wake_) wake_();
    }));
    informers_.back()->start();
  }
}

void KubeSecretSource::referenced(const std::set<std::string>& keys) {
  wanted_ = keys;
}

Delta KubeSecretSource::poll(bool full) {
  (void)full;  // the informers' copies are complete: the difference is all there is to give
  if (!first_wait_done_ && !wanted_.empty()) {
    first_wait_done_ = true;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(2);
    auto synced = [this] {
      for (const auto& i : informers_) {
        if (!i->synced() && i->problem().empty()) return false;
      }
      return true;
    };
    while (!synced() && std::chrono::steady_clock::now() < deadline)
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  kube::Informer::Objects objects;
  for (const auto& i : informers_) {
    auto mine = i->objects();
    objects.insert(mine.begin(), mine.end());
  }
  Delta delta;
  delta.source = kSource;
  std::map<std::string, Held> now;
  for (const auto& key : wanted_) {
    // "Secret/<ns>/<name>"
    const size_t a = key.find('/'), b = key.find('/', a + 1);
    if (a == std::string::npos || b == std::string::npos || key.compare(0, a, "Secret") != 0) {
      continue;
    }
    const std::string ns = key.substr(a + 1, b - a - 1), name = key.substr(b + 1);
    auto it = objects.find(ns + "/" + name);
    if (it == objects.end()) continue;
    const json& object = *it->second;
    std::string rv;
    if (object["metadata"].contains("resourceVersion") &&
        object["metadata"]["resourceVersion"].is_string()) {
      rv = object["metadata"]["resourceVersion"].get<std::string>();
    }
    auto was = delivered_.find(key);
    if (was != delivered_.end() && !rv.empty() && was->second.resource_version == rv) {
      now[key] = was->second;  // unchanged: not decoded again
      continue;
    }
    Held h;
    h.resource_version = rv;
    std::string why;
    auto text = kube_secret_document(object, &why);
    if (text) {
      api::DecodedFile decoded = api::decode_file(kSource + (":" + origin_key(ns, name)), *text);
      if (decoded.resources.size() == 1) {
        h.resource = std::make_shared<const api::Resource>(std::move(decoded.resources[0]));
        h.revision = revision_of(*h.resource);
      } else {
        why = decoded.errors.empty() ? "no resource" : decoded.errors[0].to_string();
      }
    }
    if (!h.resource) {
      h.error = "Secret " + ns + "/" + name + ": " + why;
      // The version delivered before (if any) stays in force.
      if (was != delivered_.end()) {
        h.resource = was->second.resource;
        h.revision = was->second.revision;
      }
    }
    now[key] = std::move(h);
  }
  for (const auto& [key, h] : now) {
    const std::string& ns_name = key.substr(key.find('/') + 1);
    const std::string origin = "v1/Secret/" + ns_name;
    auto was = delivered_.find(key);
    const bool had_error = was != delivered_.end() && !was->second.error.empty();
    if (!h.error.empty()) {
      api::Diagnostic d;
      d.file = origin;
      d.message = h.error;
      delta.origin_errors[origin] = {d};
    } else if (had_error) {
      delta.origin_errors[origin] = {};
    }
    if (h.resource && (was == delivered_.end() || was->second.revision != h.revision)) {
      delta.upserts.push_back(Upsert{Origin{kSource, origin, 0, h.revision}, h.resource});
      LOG_INFO("kubernetes %s: Secret %s read (resourceVersion %s)", label_.c_str(),
               ns_name.c_str(), h.resource_version.c_str());
    }
  }
  for (const auto& [key, h] : delivered_) {
    if (now.count(key) || !h.resource) continue;
    const std::string origin = "v1/Secret/" + key.substr(key.find('/') + 1);
    delta.removals.push_back(Removal{kSource, origin, key});
    if (!h.error.empty()) delta.origin_errors[origin] = {};
  }
  delivered_ = std::move(now);
  return delta;
}

std::string KubeSecretSource::problem() const {
  for (const auto& i : informers_) {
    std::string p = i->problem();
    if (!p.empty()) {
      return "kubernetes secrets " + label_ + ": " + p + "; serving the " +
             std::to_string(delivered_.size()) + " secret(s) read before";
    }
  }
  return {};
}

std::string KubeSecretSource::stats() const {
  kube::Informer::Counters c;
  for (const auto& i : informers_) {
    auto k = i->counters();
    c.lists += k.lists;
    c.events += k.events;
    c.errors += k.errors;
  }
  std::string out;
  auto metric = [&out](const char* name, const char* type, uint64_t v) {
    out +=
        std::string("# TYPE ") + name + " " + type + "\n" + name + " " + std::to_string(v) + "\n";
  };
  metric("portico_kubernetes_secrets", "gauge", delivered_.size());
  metric("portico_kubernetes_secret_lists_total", "counter", c.lists);
  metric("portico_kubernetes_secret_events_total", "counter", c.events);
  metric("portico_kubernetes_secret_errors_total", "counter", c.errors);
  return out;
}

}  // namespace portico::control
