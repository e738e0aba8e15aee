// ConsulKvSource: configuration stored in Consul KV (Settings consulKvSource), one resource per key
// in Gloo's layout `<rootKey>/<group>/<version>/<Kind>/<namespace>/<name>`, YAML or JSON values.
// Its own thread keeps a recursive blocking query on `<rootKey>/` (GET /v1/kv/<rootKey>/?recurse
// &index=N&wait=W) and hands every answer to KeyedDocuments; the control-plane thread only takes
// the deltas (poll(), problem()), which never block on the network. Consul down, a refused token
// or an answer that is not Consul's: problem() says so and the resources delivered before stay.
// Statuses are written back beside the keys, under the sibling root `<rootKey>.status/` (outside
// the watched prefix: a status write does not wake the watch), one JSON document per resource key,
// by a second thread with compare-and-set on the status key's ModifyIndex; unchanged statuses are
// not written again, and statuses of keys deleted while Portico was away are swept once.
#pragma once

#include <chrono>
#include <condition_variable>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "control/consul/consul_api.h"
#include "control/http/client.h"
#include "control/sources/keyed_documents.h"
#include "control/sources/source.h"

namespace portico::control {

class ConsulKvSource : public ConfigSource {
 public:
  struct Options {
    consul::Endpoint endpoint;
    std::string root_key = "gloo";  // without a trailing '/'
    consul::Consistency consistency = consul::Consistency::kConsistent;
    consul::Millis wait{60000};       // ?wait= of the blocking query
    consul::Millis min_interval{50};  // between the starts of two queries
    consul::Millis backoff_min{100};  // after a failure (jittered, doubling)
    consul::Millis backoff_max{10000};
  };

  explicit ConsulKvSource(Options options);
  ~ConsulKvSource() override;  // stops the thread (cancels the query in flight)
  ConsulKvSource(const ConsulKvSource&) = delete;
  ConsulKvSource& operator=(const ConsulKvSource&) = delete;

  std::string_view name() const override { return "consul-kv"; }
  // What changed in the keys since the previous call. `full` changes nothing: the view is always
  // Consul's whole answer.
  Delta poll(bool full) override;
  void start(std::function<void()> wake) override;
  std::string problem() const override;
  // portico_consul_kv_{queries,failures,index_resets,status_writes,status_write_failures}_total,
  // portico_consul_kv_index and portico_consul_kv_keys.
  std::string stats() const override;
  // Control-plane thread: queues the statuses of this source's keys that changed.
  void report_statuses(const std::vector<ResourceStatus>& resources,
                       const std::vector<api::Diagnostic>& origin_errors) override;

  // `portico apply` / `portico delete`: puts or deletes the resource's key (the key the view holds
  // it at, else <rootKey>/<apiVersion>/<Kind>/<namespace>/<name>) with a compare-and-set on its
  // ModifyIndex (read just before; retried when another writer came in between). Blocks the caller
  // for up to 10 s per request; the blocking query then delivers the change.
  WriteResult write(const WriteOp& op) override;

  // The status key of a resource key ("gloo/a/b" -> "gloo.status/a/b").
  std::string status_key(const std::string& key) const;
  // For tests: status writes done (PUT or DELETE that Consul accepted).
  uint64_t status_writes() const;

  // For tests: the number of answers applied, and the index the next query sends.
  uint64_t answers() const;
  uint64_t next_index() const;

 private:
  void run();
  // One query and what follows from its answer; false when it failed (problem set).
  bool query_once();
  // Sleeps for `d` unless stopped first; false when stopped.
  bool sleep_for(consul::Millis d);
  void set_problem(const std::string& what);
  // The status writer's thread: writes what report_statuses() queued.
  void write_statuses();
  // A compare-and-set write of `key` (nullopt: delete it) through `client`, on the ModifyIndex
  // read just before; up to 3 attempts when another writer comes in between.
  struct Cas {
    bool done = false;     // the key holds `text` now (or is absent, for a delete)
    bool wrote = false;    // a PUT or DELETE was accepted (false: it was so already)
    bool existed = false;  // the key was there before
    int status = 0;        // Consul's refusing status (403: the token may not write)
    std::string error;     // when not done
  };
  Cas cas(http::Client& client, const std::string& key,
          const std::optional<std::string>& text) const;
  // One status key: its text (nullopt: delete it), compare-and-set on its ModifyIndex. False on a
  // failure worth retrying.
  bool write_status(const std::string& key, const std::optional<std::string>& text);
  // Deletes the status keys that are not in `keep` (sorted). False on a failure worth retrying.
  bool sweep_statuses(const std::vector<std::string>& keep);

  Options options_;
  http::Client client_;
  std::string label_;  // "http://127.0.0.1:8500 gloo/"
  std::function<void()> wake_;
  std::thread thread_;
  http::Client writer_;   // the status writer's own connection
  http::Client applier_;  // write()'s (the control-plane thread)
  std::thread writer_thread_;
  std::map<std::string, std::string> status_desired_;  // control thread: status key -> text

  mutable std::mutex mu_;  // guards what follows
  std::condition_variable cv_;
  bool stopping_ = false;
  KeyedDocuments docs_;
  consul::BlockingIndex index_;
  std::string problem_;
  std::string problem_since_;
  uint64_t answers_ = 0;
  std::map<std::string, std::optional<std::string>> status_pending_;  // to write (nullopt: delete)
  uint64_t status_writes_ = 0;
  uint64_t queries_ = 0, failures_ = 0, index_resets_ = 0, status_write_failures_ = 0;
  bool status_refused_logged_ = false;
  // Statuses of keys deleted while no Portico ran: swept once, after the first report that holds
  // this source's first delivery (status keys not in sweep_keep_ are deleted).
  bool delivered_once_ = false;  // poll() handed on a delta made from an answer
  bool swept_ = false;
  bool sweep_pending_ = false;
  std::vector<std::string> sweep_keep_;
};

}  // namespace portico::control
