// EtcdSource: the ConfigSource for resources kept in etcd v3 below a prefix, one YAML or JSON
// document per key in Gloo's layout (`<prefix>/<group>/<version>/<Kind>/<namespace>/<name>`, see
// keyed_documents.h), read through etcd's JSON gateway. A thread of its own ranges the prefix,
// then watches it from the range's revision on; poll() (control-plane thread) only hands over
// what changed and never touches the network.
//
// Recovery: a broken or silent watch stream resumes from the last revision seen (etcd replays what
// happened meanwhile); a watch canceled because that revision was compacted, a cluster whose id
// changed or whose revision went back ranges the prefix again and delivers the difference (nothing
// lost, nothing applied twice). Failures are retried with jittered exponential back-off; while etcd
// cannot be reached, problem() says so and what was delivered before stays in force.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>

#include "api/resources.h"
#include "common/result.h"
#include "control/sources/etcd_client.h"
#include "control/sources/keyed_documents.h"
#include "control/sources/source.h"

namespace portico::control {

struct EtcdSourceOptions {
  std::string address = "http://127.0.0.1:2379";
  std::string prefix = "portico";  // keys below "<prefix>/"
  http::Millis timeout{5000};      // one range request
  api::StoreTls tls;               // with an https:// address
  http::Millis backoff_min{100};   // first retry delay after a failure (jittered: half to all)
  http::Millis backoff_max{10000};
  // A watch on which nothing arrived for this long is created again from the same revision (a
  // peer that vanished without closing the connection is noticed then).
  http::Millis watch_idle{60000};
};

class EtcdSource : public ConfigSource {
 public:
  // Fails when the address is not an http:// URL.
  static Result<std::unique_ptr<EtcdSource>> make(EtcdSourceOptions options);
  ~EtcdSource() override;

  std::string_view name() const override { return "etcd"; }
  Delta poll(bool full) override;
  void start(std::function<void()> wake) override;
  std::string problem() const override;
  std::string stats() const override;
  // `portico apply` / `portico delete`: puts or deletes the resource's key (the key the view holds
  // it at, else <prefix>/<apiVersion>/<Kind>/<namespace>/<name>) with a compare-and-set on its
  // mod_revision, read just before (retried when another writer came in between). Blocks the
  // caller for up to the request timeout; the watch then delivers the change.
  WriteResult write(const WriteOp& op) override;

  struct Counters {
    uint64_t ranges = 0;     // complete reads of the prefix
    uint64_t watches = 0;    // watches created
    uint64_t events = 0;     // put and delete events received
    uint64_t compacted = 0;  // watches canceled because their revision was compacted
    uint64_t resyncs = 0;    // ranges again because the cluster changed or went back
    uint64_t errors = 0;     // failed requests and broken streams
    int64_t revision = 0;    // the last revision seen
  };
  Counters counters() const;

 private:
  EtcdSource(http::Url url, EtcdSourceOptions options);

  enum class WatchEnd { kStopped, kRange, kBroken, kIdle };
  void run();
  // Ranges the prefix into docs_; false (error set) on failure.
  bool range_all(std::string* error);
  WatchEnd watch_once(std::string* error, bool* created);
  void set_problem(const std::string& error);  // empty clears
  void notify();                               // calls wake_
  bool sleep_for(http::Millis d);              // false when stopping

  EtcdSourceOptions options_;
  std::string key_prefix_;  // "<prefix>/"
  std::string range_end_;
  etcd::EtcdClient client_;  // the thread's
  etcd::EtcdClient writer_;  // write()'s (the control-plane thread)

  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;
  KeyedDocuments docs_;  // guarded by mu_
  std::string problem_;  // guarded by mu_
  std::string problem_since_;
  Counters counters_;  // guarded by mu_

  std::function<void()> wake_;
  std::thread thread_;
  // The thread's state.
  int64_t revision_ = 0;    // every event up to it is in docs_
  std::string cluster_id_;  // of the last range
};

}  // namespace portico::control
