// VaultSource: the ConfigSource of Secret resources kept in HashiCorp Vault's KV version 2
// (Settings spec.vaultSecretSource). Only the Secrets that resources reference are read (the
// pipeline says which, referenced()); their metadata.version is checked every pollInterval (+-20%
// jitter) and a secret is read again only when its version moved. The token is looked up at start
// and renewed before 2/3 of its TTL (or an AppRole login made again). Vault sealed, unreachable or
// answering 403: problem() says so, the secrets read before stay in force, and the source backs off
// with jitter and recovers by itself. The Vault client runs on the source's own thread; poll(),
// referenced() and problem() are for the control-plane thread and never block on the network,
// except the first poll() after secrets were referenced: it waits (at most 2 x requestTimeout) for
// their first read, so that a start or a binary upgrade does not reject TLS Gateways for it.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <string_view>
#include <thread>

#include "api/resources.h"
#include "common/result.h"
#include "control/http/client.h"
#include "control/sources/source.h"

namespace portico::control {

// Vault's answers, parsed (pure functions; any thread).
namespace vault {

// lookup-self's data, or the auth block of renew-self and of a login.
struct TokenInfo {
  std::string client_token;  // a login's new token; empty for lookup-self and renew-self
  int64_t ttl_s = 0;         // seconds left (lease_duration); 0: the token never expires
  bool renewable = false;
  int64_t creation_ttl_s = 0;  // lookup-self: the TTL the token was made with
  bool capped = false;         // renew-self: Vault capped the TTL at the token's max TTL
};
Result<TokenInfo> parse_lookup_self(std::string_view body);
Result<TokenInfo> parse_auth(std::string_view body);

// The messages of Vault's {"errors":[...]}, joined with "; " (empty when there are none).
std::string error_text(std::string_view body);

// GET <mount>/metadata/<path>: the current version and whether it is deleted or destroyed.
struct KvMetadata {
  int64_t current_version = 0;
  bool current_deleted = false;
};
Result<KvMetadata> parse_metadata(std::string_view body);

// GET <mount>/data/<path>: the version read and its data (a JSON object, as text).
struct KvData {
  int64_t version = 0;
  std::string data_json;
};
Result<KvData> parse_data(std::string_view body);

// What a version check means for a referenced secret, given the version delivered (nullopt: none
// yet) and the metadata now (nullopt: the path does not exist, 404).
enum class Action { kKeep, kRead, kRemove };
Action decide(std::optional<int64_t> delivered, const std::optional<KvMetadata>& now);

// The API path (after /v1/) of a Secret: Gloo's layout,
// "<pathPrefix>/<data|metadata>/<rootKey>/gloo.solo.io/v1/Secret/<namespace>/<name>".
std::string kv_path(const api::VaultSecretSourceSpec& spec, std::string_view kind,
                    std::string_view ns, std::string_view name);

// The Secret document (JSON text, apiVersion/kind/metadata/spec) for the KV data of a secret:
// Gloo's shape ({"tls":{"certChain","privateKey","rootCa"}, "metadata":...}: every key but
// metadata is the spec) or Kubernetes' key names (tls.crt, tls.key, ca.crt). Whatever else the
// data holds goes into the spec as it is, where the decoder rejects it by name.
std::string secret_document(std::string_view ns, std::string_view name, std::string_view data_json);

}  // namespace vault

class VaultSource : public ConfigSource {
 public:
  VaultSource(api::VaultSecretSourceSpec spec, http::Url url);
  ~VaultSource() override;
  VaultSource(const VaultSource&) = delete;
  VaultSource& operator=(const VaultSource&) = delete;

  std::string_view name() const override { return "vault"; }
  bool holds_configuration() const override { return false; }
  Delta poll(bool full) override;
  void start(std::function<void()> wake) override;
  std::string problem() const override;
  void referenced(const std::set<std::string>& keys) override;
  std::string stats() const override;

 private:
  using Clock = std::chrono::steady_clock;
  struct Held {
    int64_t version = 0;
    std::shared_ptr<const api::Resource> resource;
    std::string origin_key;  // the KV data path
    std::string revision;
  };
  // An answer from Vault, or why there is none.
  struct Answer {
    int status = 0;
    std::string body;
    std::string failure;  // transport failure (status 0)
  };

  void run();
  Answer call(const std::string& method, const std::string& path, const std::string& body);
  // Logs in, looks the token up, renews it when due; false (and failure_ set) when there is no
  // usable token.
  bool ensure_token();
  bool acquire_token();
  void renew_token();
  void set_token(const vault::TokenInfo& info, const std::string& token);
  // Checks (and reads when changed) `keys`; false on a failure that ends the round.
  bool check(const std::set<std::string>& keys, bool* changed);
  // The reason an answer is not a success, for problem().
  std::string describe(const Answer& a) const;
  void fail(const std::string& why);
  void publish();
  std::string expiry_text() const;

  const api::VaultSecretSourceSpec spec_;
  const std::string address_;
  http::Client client_;  // the source's thread only (cancel() from the destructor)
  std::function<void()> wake_;
  std::thread thread_;

  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  std::set<std::string> wanted_;  // referenced "Secret/<ns>/<name>" keys
  bool wanted_changed_ = false;
  std::map<std::string, Held> current_;  // what the thread read, by resource key
  std::string failure_;                  // the current failure ("" when fine)
  std::string token_problem_;            // a token about to expire for good
  std::string since_;                    // when the failure started (UTC)
  bool first_read_done_ = false;         // a round ran with referenced secrets (ok or not)

  // The thread's own state.
  std::map<std::string, Held> held_;
  std::string token_;
  bool token_renewable_ = false;
  int64_t token_creation_ttl_s_ = 0;
  bool token_max_reached_ = false;
  std::optional<Clock::time_point> token_expires_;  // nullopt: never
  Clock::time_point renew_at_{};
  bool relogin_ = false;  // a 403: the token is replaced (AppRole, tokenFile) before the next round
  std::mt19937 rng_;

  // Control-plane thread only.
  std::map<std::string, Held> delivered_;
  bool first_wait_done_ = false;

  // Counters for /stats.
  std::atomic<uint64_t> metadata_reads_{0}, data_reads_{0}, renewals_{0}, logins_{0}, failures_{0};
  std::atomic<int64_t> token_ttl_s_{0};
};

}  // namespace portico::control
