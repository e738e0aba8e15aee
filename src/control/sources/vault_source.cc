#include "control/sources/vault_source.h"

#include <algorithm>
#include <ctime>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "api/decode.h"
#include "common/backoff.h"
#include "common/log.h"

namespace portico::control {

namespace vault {

namespace {

using nlohmann::json;

constexpr const char* kSecretGroup = "gloo.solo.io/v1/Secret";

// The JSON object of a body, or an error naming what is wrong.
Result<json> object_of(std::string_view body) {
  json j = json::parse(body.begin(), body.end(), nullptr, false);
  if (j.is_discarded()) return Error::invalid("the answer is not JSON");
  if (!j.is_object()) return Error::invalid("the answer is not a JSON object");
  return j;
}

// An integer field (Vault writes numbers, sometimes as strings); `fallback` when absent or null.
Result<int64_t> int_field(const json& j, const char* key, int64_t fallback) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return fallback;
  if (it->is_number_integer()) return it->get<int64_t>();
  if (it->is_number_unsigned()) return static_cast<int64_t>(it->get<uint64_t>());
  if (it->is_number_float()) return static_cast<int64_t>(it->get<double>());
  if (it->is_string()) {
    const std::string& s = it->get_ref<const std::string&>();
    char* end = nullptr;
    long long v = std::strtoll(s.c_str(), &end, 10);
    if (!s.empty() && end != nullptr && *end == '\0') return static_cast<int64_t>(v);
  }
  return Error::invalid(std::string("\"") + key + "\" is not a number");
}

bool bool_field(const json& j, const char* key) {
  auto it = j.find(key);
  return it != j.end() && it->is_boolean() && it->get<bool>();
}

bool nonempty_string(const json& j, const char* key) {
  auto it = j.find(key);
  return it != j.end() && it->is_string() && !it->get_ref<const std::string&>().empty();
}

}  // namespace

Result<TokenInfo> parse_lookup_self(std::string_view body) {
  auto j = object_of(body);
  if (!j) return j.error();
  auto data = j->find("data");
  if (data == j->end() || !data->is_object()) return Error::invalid("lookup-self: no data");
  TokenInfo out;
  auto ttl = int_field(*data, "ttl", 0);
  if (!ttl) return Error::invalid("lookup-self: " + ttl.error().message);
  auto creation = int_field(*data, "creation_ttl", *ttl);
  if (!creation) return Error::invalid("lookup-self: " + creation.error().message);
  out.ttl_s = std::max<int64_t>(0, *ttl);
  out.creation_ttl_s = std::max<int64_t>(0, *creation);
  out.renewable = bool_field(*data, "renewable");
  return out;
}

Result<TokenInfo> parse_auth(std::string_view body) {
  auto j = object_of(body);
  if (!j) return j.error();
  auto auth = j->find("auth");
  if (auth == j->end() || !auth->is_object()) return Error::invalid("no auth block in the answer");
  TokenInfo out;
  auto token = auth->find("client_token");
  if (token != auth->end() && token->is_string()) out.client_token = token->get<std::string>();
  auto lease = int_field(*auth, "lease_duration", 0);
  if (!lease) return Error::invalid(lease.error().message);
  out.ttl_s = std::max<int64_t>(0, *lease);
  out.creation_ttl_s = out.ttl_s;
  out.renewable = bool_field(*auth, "renewable");
  auto warnings = j->find("warnings");
  if (warnings != j->end() && warnings->is_array()) {
    for (const auto& w : *warnings) {
      if (w.is_string() && w.get_ref<const std::string&>().find("capped") != std::string::npos)
        out.capped = true;
    }
  }
  return out;
}

std::string error_text(std::string_view body) {
  json j = json::parse(body.begin(), body.end(), nullptr, false);
  if (j.is_discarded() || !j.is_object()) return {};
  auto errors = j.find("errors");
  if (errors == j.end() || !errors->is_array()) return {};
  std::string out;
  for (const auto& e : *errors) {
    if (!e.is_string()) continue;
    if (!out.empty()) out += "; ";
    out += e.get<std::string>();
  }
  return out.size() > 300 ? out.substr(0, 300) + "..." : out;
}

Result<KvMetadata> parse_metadata(std::string_view body) {
  auto j = object_of(body);
  if (!j) return j.error();
  auto data = j->find("data");
  if (data == j->end() || !data->is_object()) return Error::invalid("metadata: no data");
  KvMetadata out;
  auto current = int_field(*data, "current_version", -1);
  if (!current || *current < 0) return Error::invalid("metadata: no current_version");
  out.current_version = *current;
  auto versions = data->find("versions");
  if (versions != data->end() && versions->is_object()) {
    auto v = versions->find(std::to_string(out.current_version));
    if (v != versions->end() && v->is_object()) {
      out.current_deleted = nonempty_string(*v, "deletion_time") || bool_field(*v, "destroyed");
    }
  }
  if (out.current_version == 0) out.current_deleted = true;  // metadata without any version
  return out;
}

Result<KvData> parse_data(std::string_view body) {
  auto j = object_of(body);
  if (!j) return j.error();
  auto data = j->find("data");
  if (data == j->end() || !data->is_object()) return Error::invalid("data: no data");
  KvData out;
  auto meta = data->find("metadata");
  if (meta == data->end() || !meta->is_object()) return Error::invalid("data: no metadata");
  auto version = int_field(*meta, "version", -1);
  if (!version || *version < 1) return Error::invalid("data: no metadata.version");
  out.version = *version;
  auto inner = data->find("data");
  if (inner == data->end() || !inner->is_object()) {
    return Error::invalid("data: version " + std::to_string(out.version) + " holds no data");
  }
  out.data_json = inner->dump();
  return out;
}

Action decide(std::optional<int64_t> delivered, const std::optional<KvMetadata>& now) {
  if (!now || now->current_deleted) return delivered ? Action::kRemove : Action::kKeep;
  if (!delivered || *delivered != now->current_version) return Action::kRead;
  return Action::kKeep;
}

std::string kv_path(const api::VaultSecretSourceSpec& spec, std::string_view kind,
                    std::string_view ns, std::string_view name) {
  std::string out = http::url_escape(spec.path_prefix, true);
  out.append("/").append(kind);
  if (!spec.root_key.empty()) out.append("/").append(http::url_escape(spec.root_key, true));
  out.append("/").append(kSecretGroup).append("/");
  out.append(http::url_escape(ns)).append("/").append(http::url_escape(name));
  return out;
}

std::string secret_document(std::string_view ns, std::string_view name,
                            std::string_view data_json) {
  json data = json::parse(data_json.begin(), data_json.end(), nullptr, false);
  json spec = json::object();
  if (data.is_object()) {
    const bool kube =
        data.contains("tls.crt") || data.contains("tls.key") || data.contains("ca.crt");
    for (auto& [key, value] : data.items()) {
      if (key == "metadata") continue;  // Gloo's copy of the name and namespace: the path says
      if (kube && key == "tls.crt") {
        spec["tls"]["certChain"] = value;
      } else if (kube && key == "tls.key") {
        spec["tls"]["privateKey"] = value;
      } else if (kube && key == "ca.crt") {
        spec["tls"]["rootCa"] = value;
      } else {
        spec[key] = value;
      }
    }
  }
  json doc = {{"apiVersion", api::kApiVersion},
              {"kind", "Secret"},
              {"metadata", {{"name", std::string(name)}, {"namespace", std::string(ns)}}},
              {"spec", spec}};
  return doc.dump(-1, ' ', false, json::error_handler_t::replace);
}

}  // namespace vault

namespace {

constexpr const char* kSource = "vault";
constexpr auto kMinBackoff = std::chrono::milliseconds(500);

std::string utc_now() {
  std::time_t t = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%H:%M:%S UTC", &tm);
  return buf;
}

std::string utc_in(int64_t seconds) {
  std::time_t t = std::time(nullptr) + seconds;
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%H:%M:%S UTC", &tm);
  return buf;
}

Result<std::string> read_small_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Error::io(path + ": cannot be read");
  std::string out;
  char buf[4096];
  while (in.read(buf, sizeof buf) || in.gcount() > 0) {
    out.append(buf, static_cast<size_t>(in.gcount()));
    if (out.size() > 64 * 1024) return Error::io(path + ": larger than 64 KiB");
  }
  while (!out.empty() && (out.back() == '\n' || out.back() == '\r' || out.back() == ' '))
    out.pop_back();
  if (out.empty()) return Error::io(path + ": empty");
  return out;
}

// "Secret/<ns>/<name>" -> (ns, name).
bool split_key(const std::string& key, std::string* ns, std::string* name) {
  if (key.rfind("Secret/", 0) != 0) return false;
  size_t slash = key.find('/', 7);
  if (slash == std::string::npos) return false;
  *ns = key.substr(7, slash - 7);
  *name = key.substr(slash + 1);
  return !ns->empty() && !name->empty();
}

}  // namespace

VaultSource::VaultSource(api::VaultSecretSourceSpec spec, http::Url url)
    : spec_(std::move(spec)),
      address_("http://" + url.host + ":" + std::to_string(url.port) + url.path),
      client_(std::move(url)),
      rng_(std::random_device{}()) {}

VaultSource::~VaultSource() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  client_.cancel();
  if (thread_.joinable()) thread_.join();
}

void VaultSource::start(std::function<void()> wake) {
  wake_ = std::move(wake);
  thread_ = std::thread([this] { run(); });
}

void VaultSource::referenced(const std::set<std::string>& keys) {
  std::set<std::string> secrets;
  for (const auto& k : keys) {
    if (k.rfind("Secret/", 0) == 0) secrets.insert(k);
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (secrets == wanted_) return;
    wanted_ = std::move(secrets);
    wanted_changed_ = true;
  }
  cv_.notify_all();
}

std::string VaultSource::problem() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::string out;
  if (!failure_.empty()) {
    out = address_ + ": " + failure_ + ", since " + since_ + "; serving the " +
          std::to_string(current_.size()) + " secret(s) read before";
  }
  if (!token_problem_.empty()) out += (out.empty() ? address_ + ": " : "; ") + token_problem_;
  return out;
}

Delta VaultSource::poll(bool full) {
  (void)full;  // the thread's view is complete: the difference is all there is to give
  std::map<std::string, Held> now;
  {
    std::unique_lock<std::mutex> lock(mu_);
    if (!first_wait_done_ && !wanted_.empty()) {
      // Once, at start: the first read of the referenced secrets is waited for (bounded), so that
      // a start or a binary upgrade does not reject its TLS Gateways for a secret not read yet.
      first_wait_done_ = true;
      cv_.wait_for(lock, spec_.request_timeout * 2, [this] { return stop_ || first_read_done_; });
    }
    now = current_;
  }
  Delta delta;
  delta.source = kSource;
  for (const auto& [key, held] : now) {
    auto it = delivered_.find(key);
    if (it != delivered_.end() && it->second.revision == held.revision &&
        it->second.origin_key == held.origin_key)
      continue;
    if (it != delivered_.end() && it->second.origin_key != held.origin_key)
      delta.removals.push_back(Removal{kSource, it->second.origin_key, key});
    delta.upserts.push_back(
        Upsert{Origin{kSource, held.origin_key, 0, held.revision}, held.resource});
  }
  for (const auto& [key, held] : delivered_) {
    if (!now.count(key)) delta.removals.push_back(Removal{kSource, held.origin_key, key});
  }
  delivered_ = std::move(now);
  return delta;
}

std::string VaultSource::stats() const {
  size_t held = 0;
  {
    std::lock_guard<std::mutex> lock(mu_);
    held = current_.size();
  }
  std::string out;
  out += "# TYPE portico_vault_requests_total counter\n";
  out +=
      "portico_vault_requests_total{kind=\"metadata\"} " + std::to_string(metadata_reads_) + "\n";
  out += "portico_vault_requests_total{kind=\"data\"} " + std::to_string(data_reads_) + "\n";
  out += "portico_vault_requests_total{kind=\"renew\"} " + std::to_string(renewals_) + "\n";
  out += "portico_vault_requests_total{kind=\"login\"} " + std::to_string(logins_) + "\n";
  out += "# TYPE portico_vault_failures_total counter\n";
  out += "portico_vault_failures_total " + std::to_string(failures_) + "\n";
  out += "# TYPE portico_vault_secrets gauge\n";
  out += "portico_vault_secrets " + std::to_string(held) + "\n";
  out += "# TYPE portico_vault_token_ttl_seconds gauge\n";
  out += "portico_vault_token_ttl_seconds " + std::to_string(token_ttl_s_) + "\n";
  return out;
}

VaultSource::Answer VaultSource::call(const std::string& method, const std::string& path,
                                      const std::string& body) {
  http::Request req;
  req.method = method;
  req.target = client_.url().path + "/v1/" + path;
  if (!token_.empty()) req.headers.emplace_back("X-Vault-Token", token_);
  if (!body.empty()) {
    req.headers.emplace_back("Content-Type", "application/json");
    req.body = body;
  }
  Answer a;
  auto r = client_.send(req, spec_.request_timeout);
  if (!r) {
    a.failure = r.error().message;
    return a;
  }
  a.status = r->status;
  a.body = std::move(r->body);
  return a;
}

std::string VaultSource::describe(const Answer& a) const {
  if (a.status == 0) return "unreachable (" + a.failure + ")";
  std::string errors = vault::error_text(a.body);
  std::string what = "answered " + std::to_string(a.status) + (errors.empty() ? "" : " " + errors);
  if (a.status == 503 && errors.find("sealed") != std::string::npos)
    return "Vault is sealed (" + what + ")";
  if (a.status == 403) {
    return "permission denied (" + what + "): the token is invalid, expired or lacks a policy" +
           (token_expires_ && Clock::now() >= *token_expires_ ? " (it expired)" : "");
  }
  return what;
}

void VaultSource::fail(const std::string& why) {
  ++failures_;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (failure_ == why) return;
    if (failure_.empty()) since_ = utc_now();
    failure_ = why;
  }
  LOG_WARN("vault %s: %s; the secrets read before stay in force", address_.c_str(), why.c_str());
}

std::string VaultSource::expiry_text() const {
  if (!token_expires_) return "never";
  auto left =
      std::chrono::duration_cast<std::chrono::seconds>(*token_expires_ - Clock::now()).count();
  if (left <= 0) return "expired";
  return "expires at " + utc_in(left) + " (in " + std::to_string(left) + " s)";
}

void VaultSource::set_token(const vault::TokenInfo& info, const std::string& token) {
  token_ = token;
  token_renewable_ = info.renewable;
  token_creation_ttl_s_ = info.creation_ttl_s > 0 ? info.creation_ttl_s : info.ttl_s;
  token_max_reached_ = false;
  token_ttl_s_ = info.ttl_s;
  const auto now = Clock::now();
  if (info.ttl_s <= 0) {
    token_expires_.reset();
    renew_at_ = Clock::time_point::max();
  } else {
    token_expires_ = now + std::chrono::seconds(info.ttl_s);
    renew_at_ = now + std::chrono::milliseconds(info.ttl_s * 2000 / 3);
  }
  std::string problem;
  if (info.ttl_s > 0 && !info.renewable && spec_.role_id.empty() && spec_.token_file.empty()) {
    problem = "the token is not renewable and " + expiry_text() +
              ": give Portico a renewable token, a tokenFile kept fresh, or appRole";
  }
  std::lock_guard<std::mutex> lock(mu_);
  token_problem_ = problem;
}

bool VaultSource::acquire_token() {
  if (!spec_.role_id.empty()) {
    auto secret_id = read_small_file(spec_.secret_id_file);
    if (!secret_id) {
      fail("AppRole login impossible: appRole.secretIdFile " + secret_id.error().message);
      return false;
    }
    nlohmann::json body = {{"role_id", spec_.role_id}, {"secret_id", *secret_id}};
    token_.clear();
    ++logins_;
    Answer a = call("POST", "auth/" + spec_.approle_mount + "/login", body.dump());
    if (a.status != 200) {
      fail("AppRole login failed: " + describe(a));
      return false;
    }
    auto info = vault::parse_auth(a.body);
    if (!info || info->client_token.empty()) {
      fail("AppRole login: " + (info ? std::string("no client_token") : info.error().message));
      return false;
    }
    set_token(*info, info->client_token);
    LOG_INFO("vault %s: AppRole login done; the token %s", address_.c_str(), expiry_text().c_str());
    return true;
  }
  std::string token = spec_.token;
  if (!spec_.token_file.empty()) {
    auto t = read_small_file(spec_.token_file);
    if (!t) {
      fail("tokenFile " + t.error().message);
      return false;
    }
    token = *t;
  }
  token_ = token;
  Answer a = call("GET", "auth/token/lookup-self", "");
  if (a.status != 200) {
    token_.clear();
    fail("token lookup failed: " + describe(a));
    return false;
  }
  auto info = vault::parse_lookup_self(a.body);
  if (!info) {
    token_.clear();
    fail("token lookup: " + info.error().message);
    return false;
  }
  set_token(*info, token);
  return true;
}

void VaultSource::renew_token() {
  const auto now = Clock::now();
  std::string why;
  if (!spec_.token_file.empty()) {
    // An agent may have written a new token: take it instead of renewing the old one.
    auto t = read_small_file(spec_.token_file);
    if (t && *t != token_) {
      LOG_INFO("vault %s: tokenFile holds a new token", address_.c_str());
      token_.clear();
      return;
    }
  }
  if (token_renewable_ && !token_max_reached_) {
    nlohmann::json body = {{"increment", std::to_string(token_creation_ttl_s_) + "s"}};
    ++renewals_;
    Answer a = call("POST", "auth/token/renew-self", body.dump());
    if (a.status == 200) {
      auto info = vault::parse_auth(a.body);
      if (info) {
        token_ttl_s_ = info->ttl_s;
        token_expires_ = now + std::chrono::seconds(info->ttl_s);
        renew_at_ = now + std::chrono::milliseconds(info->ttl_s * 2000 / 3);
        token_max_reached_ = info->capped || info->ttl_s < token_creation_ttl_s_;
        if (!token_max_reached_) {
          std::lock_guard<std::mutex> lock(mu_);
          token_problem_.clear();
          return;
        }
        why = "it reached its max TTL";
      } else {
        why = "renew-self: " + info.error().message;
      }
    } else if (a.status == 0 || a.status >= 500) {
      // Vault unreachable or sealed: the token is still good; try again soon.
      fail("token renewal failed: " + describe(a));
      renew_at_ = now + std::chrono::seconds(1);
      return;
    } else {
      why = "renew-self " + describe(a);
    }
  } else {
    why = token_renewable_ ? "it reached its max TTL" : "it is not renewable";
  }
  if (!spec_.role_id.empty()) {
    LOG_INFO("vault %s: the token cannot be renewed (%s): AppRole login again", address_.c_str(),
             why.c_str());
    token_.clear();
    return;
  }
  std::string problem = "the token cannot be renewed (" + why + ") and " + expiry_text() +
                        ": give Portico a new token" +
                        (spec_.token_file.empty() ? " (tokenFile or appRole)" : " in tokenFile");
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (token_problem_ != problem) LOG_WARN("vault %s: %s", address_.c_str(), problem.c_str());
    token_problem_ = problem;
  }
  // Look again later (a tokenFile may be rewritten); no renewal is attempted meanwhile.
  auto left = token_expires_ ? *token_expires_ - now : Clock::duration::zero();
  renew_at_ = now + std::max<Clock::duration>(std::chrono::seconds(1), left / 2);
}

bool VaultSource::ensure_token() {
  if (relogin_ && (!spec_.role_id.empty() || !spec_.token_file.empty())) token_.clear();
  relogin_ = false;
  if (token_.empty()) return acquire_token();
  if (Clock::now() >= renew_at_) {
    renew_token();
    if (token_.empty()) return acquire_token();
  }
  return true;
}

bool VaultSource::check(const std::set<std::string>& keys, bool* changed) {
  for (const auto& key : keys) {
    std::string ns, name;
    if (!split_key(key, &ns, &name)) continue;
    std::optional<int64_t> delivered;
    auto it = held_.find(key);
    if (it != held_.end()) delivered = it->second.version;
    int64_t version = 0;
    if (delivered) {
      // Known: the metadata says whether the version moved (no secret material on the wire).
      ++metadata_reads_;
      Answer a = call("GET", vault::kv_path(spec_, "metadata", ns, name), "");
      std::optional<vault::KvMetadata> meta;
      if (a.status == 200) {
        auto m = vault::parse_metadata(a.body);
        if (!m) {
          fail("metadata of " + ns + "/" + name + ": " + m.error().message);
          return false;
        }
        meta = *m;
      } else if (a.status != 404) {
        if (a.status == 403) relogin_ = true;
        fail(describe(a));
        return false;
      }
      auto action = vault::decide(delivered, meta);
      if (action == vault::Action::kKeep) continue;
      if (action == vault::Action::kRemove) {
        LOG_INFO("vault %s: secret %s/%s was deleted", address_.c_str(), ns.c_str(), name.c_str());
        held_.erase(it);
        *changed = true;
        continue;
      }
      version = meta->current_version;
    }
    const std::string data_path = vault::kv_path(spec_, "data", ns, name);
    ++data_reads_;
    Answer a =
        call("GET", data_path + (version > 0 ? "?version=" + std::to_string(version) : ""), "");
    if (a.status == 404) {
      // Absent, or its latest version deleted (Vault answers 404 with the metadata then).
      if (it != held_.end()) {
        held_.erase(it);
        *changed = true;
      }
      continue;
    }
    if (a.status != 200) {
      if (a.status == 403) relogin_ = true;
      fail(describe(a));
      return false;
    }
    auto data = vault::parse_data(a.body);
    if (!data) {
      fail("secret " + ns + "/" + name + ": " + data.error().message);
      return false;
    }
    const std::string& origin = data_path;
    api::DecodedFile decoded =
        api::decode_file("vault:" + origin, vault::secret_document(ns, name, data->data_json));
    if (decoded.resources.size() != 1) {
      std::string why = decoded.errors.empty() ? "no resource" : decoded.errors[0].to_string();
      fail("secret " + ns + "/" + name + " could not be decoded: " + why);
      return false;
    }
    auto resource = std::make_shared<const api::Resource>(std::move(decoded.resources[0]));
    Held h{data->version, resource, origin, revision_of(*resource)};
    if (it == held_.end() || it->second.revision != h.revision) *changed = true;
    LOG_INFO("vault %s: secret %s/%s version %lld read", address_.c_str(), ns.c_str(), name.c_str(),
             static_cast<long long>(data->version));
    held_[key] = std::move(h);
  }
  return true;
}

void VaultSource::publish() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    current_ = held_;
  }
  if (wake_) wake_();
}

void VaultSource::run() {
  auto jitter = [this](std::chrono::milliseconds base) {
    std::uniform_real_distribution<double> d(0.8, 1.2);
    return std::chrono::milliseconds(static_cast<int64_t>(base.count() * d(rng_)));
  };
  const auto max_backoff = std::max(
      spec_.poll_interval,
      std::min<std::chrono::milliseconds>(std::chrono::seconds(30), spec_.poll_interval * 4));
  common::Backoff backoff(kMinBackoff, max_backoff);
  auto next_round = Clock::now();
  while (true) {
    std::set<std::string> wanted;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (stop_) return;
      wanted = wanted_;
      wanted_changed_ = false;
    }
    bool ok = ensure_token();
    bool changed = false;
    if (ok) {
      // Secrets no longer referenced are let go.
      for (auto it = held_.begin(); it != held_.end();) {
        if (!wanted.count(it->first)) {
          it = held_.erase(it);
          changed = true;
        } else {
          ++it;
        }
      }
      const bool full_round = Clock::now() >= next_round;
      std::set<std::string> keys;
      for (const auto& k : wanted) {
        if (full_round || !held_.count(k)) keys.insert(k);
      }
      ok = check(keys, &changed);
      if (ok && full_round) next_round = Clock::now() + jitter(spec_.poll_interval);
    }
    if (changed) publish();
    if (!wanted.empty()) {
      {
        std::lock_guard<std::mutex> lock(mu_);
        first_read_done_ = true;
      }
      cv_.notify_all();
    }
    if (ok) {
      backoff.reset();
      bool recovered = false;
      {
        std::lock_guard<std::mutex> lock(mu_);
        recovered = !failure_.empty();
        failure_.clear();
      }
      if (recovered) LOG_INFO("vault %s: recovered", address_.c_str());
    } else {
      next_round = Clock::now() + backoff.next();
    }
    // A failure waits for its back-off (the token's renewal time may be past when there is none).
    auto wake_at = ok ? std::min(next_round, renew_at_) : next_round;
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait_until(lock, wake_at, [this] { return stop_ || wanted_changed_; });
    if (stop_) return;
    if (!ok && wanted_changed_ && Clock::now() < next_round) {
      // A failing Vault is not hammered because the references changed: wait for the back-off.
      cv_.wait_until(lock, next_round, [this] { return stop_; });
    }
  }
}

}  // namespace portico::control
