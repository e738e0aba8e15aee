// KubeSource: the ConfigSource for resources kept in Kubernetes as custom resources (Settings
// kubernetesConfigSource), in Gloo's groups: gateway.solo.io/v1 Gateway, VirtualService,
// RouteTable and gloo.solo.io/v1 Upstream, UpstreamGroup (CRDs in deploy/kubernetes/). Not
// Settings: they come from portico run's directory, which chooses the sources.
// One thread per kind and watched namespace (or one per kind for all namespaces) lists the kind,
// then watches it from the list's resourceVersion with allowWatchBookmarks; poll() (control-plane
// thread) only hands over what changed and never touches the network.
//
// Recovery: a watch that ends (timeoutSeconds) or breaks resumes from the last resourceVersion
// seen (an event's or a bookmark's); a watch answered 410 Gone (an ERROR event "too old resource
// version", or an HTTP 410) lists the kind again and delivers the difference (nothing lost, nothing
// applied twice). Failures are retried with jittered exponential back-off; while the API server
// cannot be reached, problem() says so and what was delivered before stays in force.
//
// Each object becomes one document keyed `<group>/<version>/<Kind>/<namespace>/<name>` (see
// keyed_documents.h): its kind, metadata.name, namespace, labels and generation and its spec; the
// API server's bookkeeping (uid, resourceVersion, managedFields...) and status are left out, so a
// status write does not decode the object again. Statuses are written back through the status
// subresource (PUT .../<name>/status with the object's resourceVersion; on 409 Conflict read again
// and retry) by a writer thread of its own; unchanged statuses are not written.
//
// Lists are paginated (limit, then metadata.continue); a continue token answered 410 (expired)
// lists the kind again from the start. http:// or https:// (TLS options, mTLS); the bearer token
// of tokenFile is sent when set (read again for every request, so that a rotated projected token
// is picked up). The in-cluster defaults are filled in by kube::resolve (kube_api.h).
#pragma once

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "api/resources.h"
#include "common/result.h"
#include "control/http/client.h"
#include "control/sources/keyed_documents.h"
#include "control/sources/kube_api.h"
#include "control/sources/source.h"

namespace portico::control {

struct KubeSourceOptions {
  std::string address;                  // "http[s]://host[:port]" of the API server
  std::string token_file;               // empty: no Authorization header
  api::StoreTls tls;                    // with https
  size_t page_limit = 500;              // ?limit= of each list request (0: none)
  std::vector<std::string> namespaces;  // empty: all namespaces
  http::Millis timeout{10000};          // a list, a status write
  http::Millis backoff_min{100};        // first retry delay after a failure (jittered)
  http::Millis backoff_max{5000};
  int watch_timeout_seconds = 300;  // ?timeoutSeconds= of each watch (then resumed)
};

class KubeSource : public ConfigSource {
 public:
  // One kind read from Kubernetes.
  struct KindInfo {
    const char* group;
    const char* version;
    const char* kind;
    const char* plural;
  };
  // Every kind the source lists and watches.
  static const std::vector<KindInfo>& kinds();

  // Fails when the address is not an http[s]:// URL or the TLS files do not load.
  static Result<std::unique_ptr<KubeSource>> make(KubeSourceOptions options);
  ~KubeSource() override;  // stops the threads (cancels the requests in flight)
  KubeSource(const KubeSource&) = delete;
  KubeSource& operator=(const KubeSource&) = delete;

  std::string_view name() const override { return "kubernetes"; }
  Delta poll(bool full) override;
  void start(std::function<void()> wake) override;
  std::string problem() const override;
  // portico_kubernetes_{lists,list_pages,list_restarts,watches,events,bookmarks,expired,errors,
  // status_writes,status_conflicts,status_write_failures}_total and portico_kubernetes_objects.
  std::string stats() const override;
  void report_statuses(const std::vector<ResourceStatus>& resources,
                       const std::vector<api::Diagnostic>& origin_errors) override;
  // `portico apply` / `delete` into the cluster: the object of the kind's custom resource is
  // created (POST), replaced (PUT with the resourceVersion read just before; a 409 reads again,
  // up to 3 times) or deleted; an object whose labels, annotations and spec already match is
  // left unchanged. Its status stays the status subresource's. Control thread.
  WriteResult write(const WriteOp& op) override;

  struct Counters {
    uint64_t lists = 0;          // complete lists of a kind
    uint64_t watches = 0;        // watches the API server accepted
    uint64_t events = 0;         // ADDED, MODIFIED and DELETED events
    uint64_t bookmarks = 0;      // BOOKMARK events
    uint64_t expired = 0;        // watches answered 410 (then listed again)
    uint64_t errors = 0;         // failed requests and broken streams
    uint64_t list_pages = 0;     // list requests (a list of more than page_limit takes several)
    uint64_t list_restarts = 0;  // continue tokens answered 410: the list started again
    uint64_t status_writes = 0;
    uint64_t status_conflicts = 0;  // 409 on a status write (read again, retried)
    uint64_t status_write_failures = 0;
  };
  Counters counters() const;

  // The document made of an object of `kind` (JSON of the API server), as handed to the decoder;
  // nullopt (and `why`) when the object has no metadata.name or namespace.
  static std::optional<std::string> document_of(const KindInfo& kind,
                                                const std::string& object_json, std::string* key,
                                                std::string* why);

 private:
  // One list-and-watch loop: a kind, in one namespace or all.
  struct Slice {
    const KindInfo* kind = nullptr;
    std::string ns;  // empty: all namespaces
    std::string label;
    std::unique_ptr<http::Client> client;
    std::thread thread;
    std::string resource_version;  // the thread's: every event up to it is in docs_
    std::string problem;           // guarded by mu_
    std::string problem_since;     // guarded by mu_
  };
  enum class WatchEnd { kStopped, kRelist, kEnded, kBroken };

  KubeSource(http::Url url, KubeSourceOptions options);
  void run(Slice* s);
  bool list(Slice* s, std::string* error);
  WatchEnd watch(Slice* s, std::string* error, bool* opened);
  // The collection's path: /apis/<group>/<version>[/namespaces/<ns>]/<plural>.
  std::string collection(const Slice& s) const;
  // The Authorization header (the token file read now); false (and `error`) when unreadable.
  bool headers(std::vector<std::pair<std::string, std::string>>* out, std::string* error) const {
    return kube::headers(options_.token_file, out, error);
  }
  void set_problem(Slice* s, const std::string& error);  // empty clears
  void notify();
  bool sleep_for(http::Millis d);  // false when stopping
  void write_statuses();           // the writer thread
  // One status write; false on a failure worth retrying.
  bool write_status(const std::string& key, const std::string& status_json);
  bool stopping() const;

  KubeSourceOptions options_;
  http::Url url_;
  std::string label_;  // "http://127.0.0.1:8001"
  std::vector<std::unique_ptr<Slice>> slices_;
  http::Client writer_;
  http::Client applier_;  // write(): the control thread's
  std::thread writer_thread_;
  std::function<void()> wake_;
  std::map<std::string, std::string> status_desired_;  // control thread: key -> status JSON

  mutable std::mutex mu_;  // guards what follows
  std::condition_variable cv_;
  bool stopping_ = false;
  KeyedDocuments docs_;
  std::map<std::string, std::string> status_seen_;     // key -> status JSON the object carries
  std::map<std::string, std::string> status_pending_;  // key -> status JSON to write
  Counters counters_;
};

}  // namespace portico::control
