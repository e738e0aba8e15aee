// KubeSecretSource: the ConfigSource of Secret resources read from Kubernetes core/v1 Secrets
// (Settings spec.kubernetesSecretSource). One informer per watched namespace (or one for all) lists
// and watches the Secrets (kube_informer.h); only those that resources reference are decoded and
// delivered (referenced()), each again when its resourceVersion moves: a rotated certificate
// reaches new handshakes without a restart. kubernetes.io/tls -> tls {certChain, privateKey,
// rootCa from ca.crt}; any other type (Opaque...) -> generic, its data keys base64-decoded.
// poll(), referenced() and problem() are for the control-plane thread and never block on the
// network, except the first poll() after secrets were referenced: it waits (at most 2 s) for the
// first list, so that a start does not reject TLS Gateways for a secret not read yet.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "api/diagnostic.h"
#include "api/resources.h"
#include "control/sources/kube_informer.h"
#include "control/sources/source.h"

namespace portico::control {

struct KubeSecretSourceOptions {
  http::Url url;
  std::string token_file;
  std::vector<std::string> namespaces;  // empty: all namespaces
};

// The Secret document (JSON text) for a core/v1 Secret object; nullopt (and `why`) when its data
// is not base64 or it names no namespace and name.
std::optional<std::string> kube_secret_document(const nlohmann::json& secret, std::string* why);

class KubeSecretSource : public ConfigSource {
 public:
  explicit KubeSecretSource(KubeSecretSourceOptions options);
  ~KubeSecretSource() override;
  KubeSecretSource(const KubeSecretSource&) = delete;
  KubeSecretSource& operator=(const KubeSecretSource&) = delete;

  std::string_view name() const override { return "kubernetes-secrets"; }
  bool holds_configuration() const override { return false; }
  Delta poll(bool full) override;
  void start(std::function<void()> wake) override;
  std::string problem() const override;
  void referenced(const std::set<std::string>& keys) override;
  // portico_kubernetes_secrets (delivered), portico_kubernetes_secret_{lists,events,errors}_total.
  std::string stats() const override;

 private:
  struct Held {
    std::string resource_version;
    std::shared_ptr<const api::Resource> resource;  // null when the Secret did not decode
    std::string revision;
    std::string error;
  };

  KubeSecretSourceOptions options_;
  std::string label_;
  std::function<void()> wake_;
  std::vector<std::unique_ptr<kube::Informer>> informers_;
  std::set<std::string> wanted_;  // "Secret/<ns>/<name>"
  bool first_wait_done_ = false;
  std::map<std::string, Held> delivered_;  // by resource key
};

}  // namespace portico::control
