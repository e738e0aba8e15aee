#include "control/sources/factory.h"

#include <functional>

#include "control/http/client.h"
#include "control/sources/vault_source.h"

namespace portico::control {

MadeSources make_sources(const api::SettingsSpec& settings) {
  MadeSources out;
  if (const auto& v = settings.vault_secret_source) {
    auto url = http::parse_url(v->address, 8200);
    if (!url) {
      out.errors.push_back("vaultSecretSource.address: " + url.error().message);
    } else {
      out.sources.push_back(std::make_unique<VaultSource>(*v, std::move(url.value())));
    }
  }
  return out;
}

std::string sources_fingerprint(const api::SettingsSpec& settings) {
  std::string out;
  if (const auto& v = settings.vault_secret_source) {
    // The token is hashed: the fingerprint is compared, never shown, but stays free of secrets.
    out += "vault|" + v->address + "|" + std::to_string(std::hash<std::string>{}(v->token)) + "|" +
           v->token_file + "|" + v->role_id + "|" + v->secret_id_file + "|" + v->approle_mount +
           "|" + v->path_prefix + "|" + v->root_key + "|" +
           std::to_string(v->poll_interval.count()) + "|" +
           std::to_string(v->request_timeout.count()) + "\n";
  }
  return out;
}

}  // namespace portico::control
