// kube::Informer: a local copy of one Kubernetes collection (Secrets, Services, EndpointSlices...),
// kept current by listing it (paginated) and then watching it from the list's resourceVersion with
// bookmarks, as client-go's informers do. A thread of its own runs the requests; objects() (any
// thread) hands out the current objects. Recovery as the configuration source's (kube_source.h): a
// watch that ends or breaks resumes from the last resourceVersion, a 410 lists again (the objects
// are replaced, so deletions missed meanwhile are seen), failures back off with jitter and keep the
// objects held before, with problem() saying why.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include <nlohmann/json.hpp>

#include "control/http/client.h"

namespace portico::control::kube {

struct InformerOptions {
  http::Url url;
  std::string token_file;  // empty: no Authorization header
  // The collection's path below the URL's ("/api/v1/secrets", "/apis/discovery.k8s.io/v1/
  // namespaces/shop/endpointslices").
  std::string collection;
  std::string label_selector;  // ?labelSelector=; empty: every object
  std::string what;            // for logs and problem(): "secrets (all namespaces)"
  size_t page_limit = 500;
  http::Millis timeout{10000};
  http::Millis backoff_min{100};
  http::Millis backoff_max{5000};
  int watch_timeout_seconds = 300;
};

class Informer {
 public:
  // By "<namespace>/<name>" (cluster-scoped objects: "/<name>").
  using Objects = std::map<std::string, std::shared_ptr<const nlohmann::json>>;

  // `on_change` (called from the informer's thread) after a list or an event changed objects(),
  // and when problem() appears or clears.
  Informer(InformerOptions options, std::function<void()> on_change);
  ~Informer();  // stops the thread (cancels the request in flight)
  Informer(const Informer&) = delete;
  Informer& operator=(const Informer&) = delete;

  void start();
  Objects objects() const;
  bool synced() const;          // listed once at least
  uint64_t changes() const;     // increases with every change of objects()
  std::string problem() const;  // empty when the last request succeeded

  struct Counters {
    uint64_t lists = 0;
    uint64_t list_pages = 0;
    uint64_t list_restarts = 0;  // continue tokens answered 410
    uint64_t watches = 0;
    uint64_t events = 0;
    uint64_t expired = 0;  // watches answered 410 (then listed again)
    uint64_t errors = 0;
  };
  Counters counters() const;

 private:
  enum class WatchEnd { kStopped, kRelist, kEnded, kBroken };
  void run();
  bool list(std::string* error);
  WatchEnd watch(std::string* error, bool* opened);
  void set_problem(const std::string& error);
  bool sleep_for(http::Millis d);
  bool stopping() const;

  const InformerOptions options_;
  const std::function<void()> on_change_;
  http::Client client_;
  std::thread thread_;
  std::string resource_version_;  // the thread's

  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;
  Objects objects_;
  bool synced_ = false;
  uint64_t changes_ = 0;
  std::string problem_;
  Counters counters_;
};

}  // namespace portico::control::kube
