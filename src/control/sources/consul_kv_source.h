// ConsulKvSource: configuration stored in Consul KV (Settings consulKvSource), one resource per key
// in Gloo's layout `<rootKey>/<group>/<version>/<Kind>/<namespace>/<name>`, YAML or JSON values.
// Its own thread keeps a recursive blocking query on `<rootKey>/` (GET /v1/kv/<rootKey>/?recurse
// &index=N&wait=W) and hands every answer to KeyedDocuments; the control-plane thread only takes
// the deltas (poll(), problem()), which never block on the network. Consul down, a refused token
// or an answer that is not Consul's: problem() says so and the resources delivered before stay.
#pragma once

#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <string>
#include <thread>

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

  Options options_;
  http::Client client_;
  std::string label_;  // "http://127.0.0.1:8500 gloo/"
  std::function<void()> wake_;
  std::thread thread_;

  mutable std::mutex mu_;  // guards what follows
  std::condition_variable cv_;
  bool stopping_ = false;
  KeyedDocuments docs_;
  consul::BlockingIndex index_;
  std::string problem_;
  std::string problem_since_;
  uint64_t answers_ = 0;
};

}  // namespace portico::control
