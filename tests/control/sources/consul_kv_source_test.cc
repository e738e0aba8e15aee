// ConsulKvSource against a scripted Consul on loopback: the blocking-query index rules as the
// requests show them (reset to 0 when the index goes backwards, at least 1, reset after a failure),
// the rate limit, the back-off, garbage and failures keeping the last good resources.
#include "control/sources/consul_kv_source.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "common/base64.h"

namespace portico::control {
namespace {

using namespace std::chrono_literals;

struct Answer {
  int status = 200;
  std::string index;  // X-Consul-Index; empty: none
  std::string body;
  bool close = false;  // close the connection without answering
  std::chrono::milliseconds delay{0};
};

// A loopback HTTP/1.1 server (keep-alive) that answers every request with script(n, target),
// n counting requests from 0, and records each request's head.
class ScriptedConsul {
 public:
  explicit ScriptedConsul(std::function<Answer(int, const std::string&)> script)
      : script_(std::move(script)) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
    socklen_t len = sizeof a;
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
    ::listen(fd_, 8);
    accept_ = std::thread([this] {
      for (;;) {
        int c = ::accept(fd_, nullptr, nullptr);
        if (c < 0) return;
        std::lock_guard<std::mutex> lock(mu_);
        conns_.push_back(c);
        workers_.emplace_back([this, c] { serve(c); });
      }
    });
  }
  ~ScriptedConsul() {
    stop_ = true;
    ::shutdown(fd_, SHUT_RDWR);
    ::close(fd_);
    accept_.join();
    std::lock_guard<std::mutex> lock(mu_);
    for (int c : conns_)
      ::shutdown(c, SHUT_RDWR);
    for (auto& t : workers_)
      t.join();
    for (int c : conns_)
      ::close(c);
  }
  http::Url url() const { return http::Url{"127.0.0.1", port_, ""}; }
  std::vector<std::string> heads() {
    std::lock_guard<std::mutex> lock(mu_);
    return heads_;
  }
  std::vector<std::string> targets() {
    std::vector<std::string> out;
    for (const auto& h : heads()) {
      auto sp1 = h.find(' ');
      auto sp2 = h.find(' ', sp1 + 1);
      out.push_back(h.substr(sp1 + 1, sp2 - sp1 - 1));
    }
    return out;
  }

 private:
  void serve(int c) {
    std::string in;
    char buf[4096];
    for (;;) {
      size_t end;
      while ((end = in.find("\r\n\r\n")) == std::string::npos) {
        ssize_t n = ::read(c, buf, sizeof buf);
        if (n <= 0) return;
        in.append(buf, static_cast<size_t>(n));
      }
      std::string head = in.substr(0, end);
      in.erase(0, end + 4);
      // A body (a PUT's): by Content-Length, recorded after the head.
      size_t length = 0;
      if (auto cl = head.find("Content-Length: "); cl != std::string::npos) {
        length = std::stoul(head.substr(cl + 16));
      }
      while (in.size() < length) {
        ssize_t n = ::read(c, buf, sizeof buf);
        if (n <= 0) return;
        in.append(buf, static_cast<size_t>(n));
      }
      if (length > 0) head += "\r\n\r\n" + in.substr(0, length);
      in.erase(0, length);
      int n;
      {
        std::lock_guard<std::mutex> lock(mu_);
        heads_.push_back(head);
        n = static_cast<int>(heads_.size()) - 1;
      }
      auto sp1 = head.find(' ');
      Answer a = script_(n, head.substr(sp1 + 1, head.find(' ', sp1 + 1) - sp1 - 1));
      for (auto waited = 0ms; waited < a.delay && !stop_; waited += 10ms)
        std::this_thread::sleep_for(10ms);
      if (a.close || stop_) {
        ::shutdown(c, SHUT_RDWR);
        return;
      }
      std::string out = "HTTP/1.1 " + std::to_string(a.status) +
                        " X\r\nContent-Length: " + std::to_string(a.body.size()) + "\r\n";
      if (!a.index.empty()) out += "X-Consul-Index: " + a.index + "\r\n";
      out += "\r\n" + a.body;
      if (::write(c, out.data(), out.size()) < 0) return;
    }
  }

  std::function<Answer(int, const std::string&)> script_;
  int fd_ = -1;
  uint16_t port_ = 0;
  std::atomic<bool> stop_{false};
  std::thread accept_;
  std::mutex mu_;
  std::vector<int> conns_;
  std::vector<std::thread> workers_;
  std::vector<std::string> heads_;
};

std::string vs_yaml(const std::string& name, const std::string& prefix) {
  return "apiVersion: gateway.portico.dev/v1\nkind: VirtualService\nmetadata:\n  name: " + name +
         "\n  namespace: default\nspec:\n  virtualHost:\n    domains: ['*']\n    routes:\n"
         "    - matchers: [{prefix: " +
         prefix + "}]\n      directResponseAction: {status: 200, body: ok}\n";
}

std::string kv_body(const std::vector<std::pair<std::string, std::string>>& kvs, int modify = 5) {
  std::string out = "[";
  for (const auto& [k, v] : kvs) {
    if (out.size() > 1) out += ",";
    out += R"({"LockIndex":0,"Key":")" + k + R"(","Flags":0,"Value":")" + common::base64_encode(v) +
           R"(","CreateIndex":1,"ModifyIndex":)" + std::to_string(modify) + "}";
  }
  return out + "]";
}

const std::string kKey = "gloo/gateway.portico.dev/v1/VirtualService/default/shop";

ConsulKvSource::Options options(const http::Url& url) {
  ConsulKvSource::Options o;
  o.endpoint.url = url;
  o.wait = 2000ms;
  o.backoff_min = 100ms;
  o.backoff_max = 400ms;
  return o;
}

// Waits until pred() or 5 s.
bool eventually(const std::function<bool()>& pred) {
  for (int i = 0; i < 500; ++i) {
    if (pred()) return true;
    std::this_thread::sleep_for(10ms);
  }
  return pred();
}

bool has_param(const std::string& target, const std::string& p) {
  return target.find("&" + p) != std::string::npos || target.find("?" + p) != std::string::npos;
}

TEST(ConsulKvSource, IndexRulesAsTheRequestsShowThem) {
  ScriptedConsul consul([](int n, const std::string&) {
    const std::string body = kv_body({{kKey, vs_yaml("shop", "/")}});
    switch (n) {
      case 0:
        return Answer{200, "10", body};
      case 1:
        return Answer{200, "5", body};  // backwards: the next read is a non-blocking one
      case 2:
        return Answer{200, "0", body};  // below 1: the next blocks on index 1
      case 3:
        return Answer{200, "12", body};
      default:
        return Answer{200, "12", body, false, 3000ms};  // a blocking query that waits
    }
  });
  std::atomic<int> wakes{0};
  auto source = std::make_unique<ConsulKvSource>(options(consul.url()));
  source->start([&] { ++wakes; });
  ASSERT_TRUE(eventually([&] { return consul.heads().size() >= 5; }));
  auto t = consul.targets();
  EXPECT_EQ(t[0], "/v1/kv/gloo/?recurse&consistent");
  EXPECT_EQ(t[1], "/v1/kv/gloo/?recurse&consistent&index=10&wait=2000ms");
  EXPECT_EQ(t[2], "/v1/kv/gloo/?recurse&consistent");
  EXPECT_EQ(t[3], "/v1/kv/gloo/?recurse&consistent&index=1&wait=2000ms");
  EXPECT_EQ(t[4], "/v1/kv/gloo/?recurse&consistent&index=12&wait=2000ms");
  EXPECT_EQ(source->next_index(), 12u);
  Delta d = source->poll(false);
  ASSERT_EQ(d.upserts.size(), 1u);
  EXPECT_EQ(d.upserts[0].resource->key(), "VirtualService/default/shop");
  EXPECT_EQ(d.source, "consul-kv");
  EXPECT_GE(wakes.load(), 1);
  EXPECT_TRUE(source->poll(false).upserts.empty());  // the same text four times: one upsert
  EXPECT_EQ(source->problem(), "");
  const std::string stats = source->stats();
  for (const char* line :
       {"# TYPE portico_consul_kv_queries_total counter\nportico_consul_kv_queries_total 5\n",
        "portico_consul_kv_failures_total 0\n", "portico_consul_kv_index_resets_total 1\n",
        "# TYPE portico_consul_kv_index gauge\nportico_consul_kv_index 12\n",
        "portico_consul_kv_keys 1\n", "portico_consul_kv_status_writes_total 0\n"}) {
    EXPECT_NE(stats.find(line), std::string::npos) << line << " in\n" << stats;
  }
  const auto begun = std::chrono::steady_clock::now();
  source.reset();  // cancels the blocking query in flight
  EXPECT_LT(std::chrono::steady_clock::now() - begun, 1s);
}

TEST(ConsulKvSource, GarbageAndFailuresKeepTheLastGoodAndRecover) {
  std::atomic<int> phase{0};
  ScriptedConsul consul([&](int n, const std::string&) {
    const std::string good = kv_body({{kKey, vs_yaml("shop", "/")}}, 7);
    if (n == 0) return Answer{200, "7", good};
    switch (phase.load()) {
      case 0:
        return Answer{200, "7", good, false, 2000ms};
      case 1:
        return Answer{200, "8", "{\"not\": [consul"};  // garbage
      case 2:
        return Answer{403, "", "ACL not found"};
      case 3:
        return Answer{200, "", good};  // no index: not Consul
      case 4:
        return Answer{0, "", "", /*close=*/true};
      default:
        return Answer{200, "9", kv_body({{kKey, vs_yaml("shop", "/v2")}}, 9), false,
                      n > 0 && phase.load() == 6 ? 2000ms : 0ms};
    }
  });
  auto o = options(consul.url());
  o.wait = 1000ms;
  ConsulKvSource source(o);
  source.start([] {});
  ASSERT_TRUE(eventually([&] { return source.answers() == 1; }));
  ASSERT_EQ(source.poll(false).upserts.size(), 1u);
  const std::vector<std::pair<int, std::string>> failures = {
      {1, "not Consul's KV JSON"},
      {2, "HTTP 403 ACL not found (the ACL token in Settings consul.token/tokenFile)"},
      {3, "without a valid X-Consul-Index"},
      {4, ""}};
  for (const auto& [p, says] : failures) {
    phase = p;
    ASSERT_TRUE(eventually([&] { return !source.problem().empty(); })) << p;
    if (!says.empty()) {
      ASSERT_TRUE(eventually([&] { return source.problem().find(says) != std::string::npos; }))
          << p << ": " << source.problem();
    }
    EXPECT_NE(source.problem().find("consul-kv http://127.0.0.1:"), std::string::npos);
    EXPECT_NE(source.problem().find("serving what it held before"), std::string::npos);
    Delta d = source.poll(false);
    EXPECT_TRUE(d.removals.empty()) << p;  // an outage removes nothing
    EXPECT_TRUE(d.upserts.empty()) << p;
  }
  // After failures the next read does not block (index reset) and the problem clears.
  const size_t before = consul.heads().size();
  phase = 5;
  ASSERT_TRUE(eventually([&] { return source.problem().empty(); }));
  Delta d = source.poll(false);
  ASSERT_EQ(d.upserts.size(), 1u);
  EXPECT_EQ(d.upserts[0].origin.revision.empty(), false);
  auto targets = consul.targets();
  ASSERT_GT(targets.size(), before);
  EXPECT_FALSE(has_param(targets[before], "index="));
  phase = 6;
}

TEST(ConsulKvSource, RateLimitedWhenConsulAnswersAtOnce) {
  // A Consul answering every blocking query at once with an unchanged index (a misbehaving proxy
  // in front of it) must not make the loop spin: at most one query per 50 ms.
  ScriptedConsul consul([](int, const std::string&) {
    return Answer{200, "3", kv_body({{kKey, vs_yaml("shop", "/")}})};
  });
  ConsulKvSource source(options(consul.url()));
  source.start([] {});
  std::this_thread::sleep_for(500ms);
  const size_t n = consul.heads().size();
  EXPECT_GE(n, 5u);
  EXPECT_LE(n, 12u);  // 500 ms / 50 ms, and the first
}

TEST(ConsulKvSource, BacksOffWithJitterWhileFailing) {
  ScriptedConsul consul([](int, const std::string&) {
    return Answer{500, "", "rpc error: No cluster leader"};
  });
  ConsulKvSource source(options(consul.url()));  // back-off 100 ms doubling to 400 ms
  source.start([] {});
  std::this_thread::sleep_for(1000ms);
  const size_t n = consul.heads().size();
  // 0, then after 100, 100-200, 200-400, 200-400...: 4 to 7 requests in a second, not 20.
  EXPECT_GE(n, 3u);
  EXPECT_LE(n, 8u);
  EXPECT_NE(source.problem().find("HTTP 500 rpc error: No cluster leader"), std::string::npos)
      << source.problem();
  EXPECT_EQ(source.problem().find("serving what it held before"), std::string::npos);
}

TEST(ConsulKvSource, TokenDatacenterConsistencyAndKeysElsewhere) {
  ScriptedConsul consul([](int n, const std::string&) {
    return Answer{
        200, "4",
        kv_body({{"cfg/portico/gateway.portico.dev/v1/VirtualService/default/a", vs_yaml("a", "/")},
                 {"cfg/portico/", ""},          // a folder
                 {"cfg/portico2/x", "junk"}}),  // not below the root (Consul would not send it)
        false, n > 0 ? 3000ms : 0ms};
  });
  auto o = options(consul.url());
  o.endpoint.token = "s3cr3t";
  o.endpoint.datacenter = "east";
  o.root_key = "cfg/portico/";
  o.consistency = consul::Consistency::kStale;
  ConsulKvSource source(o);
  source.start([] {});
  ASSERT_TRUE(eventually([&] { return source.answers() == 1; }));
  auto heads = consul.heads();
  EXPECT_EQ(consul.targets()[0], "/v1/kv/cfg/portico/?recurse&dc=east&stale");
  EXPECT_NE(heads[0].find("\r\nX-Consul-Token: s3cr3t"), std::string::npos) << heads[0];
  Delta d = source.poll(false);
  ASSERT_EQ(d.upserts.size(), 1u);
  EXPECT_EQ(d.upserts[0].resource->key(), "VirtualService/default/a");
  for (const auto& [key, errors] : d.origin_errors)
    EXPECT_TRUE(errors.empty()) << key;
}

TEST(ConsulKvSource, EmptyRootIs404AndRemovesWhatWasDelivered) {
  std::atomic<int> phase{0};
  ScriptedConsul consul([&](int, const std::string&) {
    if (phase == 0) return Answer{200, "4", kv_body({{kKey, vs_yaml("shop", "/")}})};
    return Answer{404, "6", ""};  // every key deleted: Consul answers 404 with an index
  });
  ConsulKvSource source(options(consul.url()));
  source.start([] {});
  ASSERT_TRUE(eventually([&] { return source.answers() >= 1; }));
  ASSERT_EQ(source.poll(false).upserts.size(), 1u);
  phase = 1;
  ASSERT_TRUE(eventually([&] { return source.next_index() == 6; }));
  Delta d = source.poll(false);
  ASSERT_EQ(d.removals.size(), 1u);
  EXPECT_EQ(source.problem(), "");
}

TEST(ConsulKvSource, StatusesWrittenBesideTheKeysWithCompareAndSet) {
  std::atomic<int> phase{0};
  const std::string status_path =
      "/v1/kv/gloo.status/gateway.portico.dev/v1/VirtualService/default/shop";
  ScriptedConsul consul([&](int n, const std::string& target) {
    if (target.rfind("/v1/kv/gloo/?recurse", 0) == 0) {
      return Answer{200, "4", kv_body({{kKey, vs_yaml("shop", "/")}}), false, n > 0 ? 3000ms : 0ms};
    }
    if (target == status_path && phase == 0) return Answer{404, "4", ""};
    if (target == status_path) {
      return Answer{200, "9", R"([{"Key":"gloo.status/x","Value":"e30=","ModifyIndex":9}])"};
    }
    return Answer{200, "", "true"};  // the PUT or DELETE
  });
  ConsulKvSource source(options(consul.url()));
  source.start([] {});
  ASSERT_TRUE(eventually([&] { return source.answers() == 1; }));
  EXPECT_EQ(source.status_key(kKey),
            "gloo.status/gateway.portico.dev/v1/VirtualService/default/shop");
  ResourceStatus st;
  st.kind = "VirtualService";
  st.ns = "default";
  st.name = "shop";
  st.file = kKey;
  st.source = "consul-kv";
  st.state = State::kAccepted;
  st.generation = 3;
  ResourceStatus other = st;  // from the files: not this source's to write
  other.source = "file";
  other.file = "shop.yaml";
  source.report_statuses({st, other}, {});
  ASSERT_TRUE(eventually([&] { return source.status_writes() == 1; }));
  auto writes = [&] {
    std::vector<std::string> out;
    for (const auto& h : consul.heads()) {
      if (h.rfind("GET /v1/kv/gloo/", 0) != 0) out.push_back(h.substr(0, h.find(" HTTP/1.1")));
    }
    return out;
  };
  auto w = writes();
  ASSERT_EQ(w.size(), 2u);
  EXPECT_EQ(w[0], "GET " + status_path);
  EXPECT_EQ(w[1], "PUT " + status_path + "?cas=0");  // created only if still absent
  const auto heads = consul.heads();
  const std::string& put = heads.back();
  EXPECT_NE(put.find(R"({"kind":"VirtualService","namespace":"default","name":"shop",)"
                     R"("state":"Accepted","observedGeneration":3,"reasons":[],)"
                     R"("reportedBy":"portico"})"),
            std::string::npos)
      << put;
  // The same statuses again: nothing written.
  source.report_statuses({st, other}, {});
  std::this_thread::sleep_for(200ms);
  EXPECT_EQ(writes().size(), 2u);
  // A value that no longer decodes: Rejected, the last good generation still served.
  phase = 1;
  api::Diagnostic bad;
  bad.file = kKey;
  bad.message = "expected a map";
  source.report_statuses({st}, {bad});
  ASSERT_TRUE(eventually([&] { return source.status_writes() == 2; }));
  w = writes();
  ASSERT_EQ(w.size(), 4u);
  EXPECT_EQ(w[3], "PUT " + status_path + "?cas=9");  // on the ModifyIndex just read
  for (const char* part : {R"("state":"Rejected")", R"("servingGeneration":3)", "expected a map"})
    EXPECT_NE(consul.heads().back().find(part), std::string::npos) << consul.heads().back();
  // The key went: its status goes too.
  source.report_statuses({}, {});
  ASSERT_TRUE(eventually([&] { return source.status_writes() == 3; }));
  w = writes();
  ASSERT_EQ(w.size(), 6u);
  EXPECT_EQ(w[5], "DELETE " + status_path + "?cas=9");
}

}  // namespace
}  // namespace portico::control
