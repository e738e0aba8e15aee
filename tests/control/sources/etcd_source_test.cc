// EtcdSource and the compare-and-set writes against a real etcd (Debian's etcd-server), started
// per test on loopback with ports picked at run time and a temporary data directory, stopped by
// its PID. Skipped when no etcd binary is installed.
#include "control/sources/etcd_source.h"

#include <fcntl.h>
#include <gtest/gtest.h>

#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>
#include <algorithm>

#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace portico::control {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

uint16_t free_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
  socklen_t len = sizeof a;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  ::close(fd);
  return ntohs(a.sin_port);
}

std::string find_etcd() {
  for (const char* p : {"/usr/bin/etcd", "/usr/local/bin/etcd"}) {
    if (::access(p, X_OK) == 0) return p;
  }
  return {};
}

class EtcdSourceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    binary_ = find_etcd();
    if (binary_.empty()) GTEST_SKIP() << "etcd is not installed";
    char tmpl[] = "/tmp/portico-etcd-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    client_port_ = free_port();
    peer_port_ = free_port();
    start_etcd();
  }
  void TearDown() override {
    stop_etcd();
    if (!dir_.empty()) fs::remove_all(dir_);
  }

  std::string address() const { return "http://127.0.0.1:" + std::to_string(client_port_); }

  void start_etcd() {
    const std::string client = address();
    const std::string peer = "http://127.0.0.1:" + std::to_string(peer_port_);
    std::vector<std::string> args = {binary_,
                                     "--name=n",
                                     "--data-dir=" + (dir_ / "data").string(),
                                     "--listen-client-urls=" + client,
                                     "--advertise-client-urls=" + client,
                                     "--listen-peer-urls=" + peer,
                                     "--initial-advertise-peer-urls=" + peer,
                                     "--initial-cluster=n=" + peer};
    const std::string log = (dir_ / "etcd.log").string();
    pid_ = ::fork();
    ASSERT_GE(pid_, 0);
    if (pid_ == 0) {
      int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
      if (fd >= 0) {
        ::dup2(fd, 1);
        ::dup2(fd, 2);
      }
      std::vector<char*> argv;
      for (auto& a : args)
        argv.push_back(a.data());
      argv.push_back(nullptr);
      ::execv(argv[0], argv.data());
      ::_exit(127);
    }
    // Ready when a range answers.
    auto url = http::parse_url(client, 2379);
    ASSERT_TRUE(url);
    etcd::EtcdClient c(url.value(), 1000ms);
    const auto deadline = std::chrono::steady_clock::now() + 10s;
    while (std::chrono::steady_clock::now() < deadline) {
      if (c.range("x", "y")) return;
      int status = 0;
      if (::waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        FAIL() << "etcd exited; see " << log;
      }
      std::this_thread::sleep_for(50ms);
    }
    FAIL() << "etcd did not answer within 10 s";
  }
  void stop_etcd() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGTERM);
    int status = 0;
    ::waitpid(pid_, &status, 0);
    pid_ = -1;
  }

  etcd::EtcdClient client() {
    return etcd::EtcdClient(http::parse_url(address(), 2379).value(), 2000ms);
  }

  std::string binary_;
  fs::path dir_;
  uint16_t client_port_ = 0;
  uint16_t peer_port_ = 0;
  pid_t pid_ = -1;
};

std::string service(const std::string& name, const std::string& body) {
  return "kind: VirtualService\nmetadata: {name: " + name +
         "}\nspec:\n  virtualHost:\n    routes:\n      - matchers: [{prefix: /}]\n"
         "        directResponseAction: {status: 200, body: " +
         body + "}\n";
}

TEST_F(EtcdSourceTest, CompareAndSetWrites) {
  etcd::EtcdClient c = client();
  const std::string key = "portico/gateway.portico.dev/v1/VirtualService/default/shop";
  // Create only if absent.
  auto created = c.put_if(key, service("shop", "one"), 0);
  ASSERT_TRUE(created) << created.error().message;
  EXPECT_TRUE(created.value().succeeded);
  auto again = c.put_if(key, service("shop", "two"), 0);
  ASSERT_TRUE(again);
  EXPECT_FALSE(again.value().succeeded);  // exists already

  auto range = c.range(key, etcd::prefix_range_end(key));
  ASSERT_TRUE(range);
  ASSERT_EQ(range.value().kvs.size(), 1u);
  const int64_t rev = range.value().kvs[0].mod_revision;
  EXPECT_EQ(rev, created.value().revision);

  // A stale revision loses; the current one wins.
  auto stale = c.put_if(key, service("shop", "two"), rev - 1);
  ASSERT_TRUE(stale);
  EXPECT_FALSE(stale.value().succeeded);
  auto updated = c.put_if(key, service("shop", "two"), rev);
  ASSERT_TRUE(updated);
  EXPECT_TRUE(updated.value().succeeded);
  EXPECT_GT(updated.value().revision, rev);

  auto del_stale = c.delete_if(key, rev);
  ASSERT_TRUE(del_stale);
  EXPECT_FALSE(del_stale.value().succeeded);
  auto del = c.delete_if(key, updated.value().revision);
  ASSERT_TRUE(del);
  EXPECT_TRUE(del.value().succeeded);
  auto after = c.range(key, etcd::prefix_range_end(key));
  ASSERT_TRUE(after);
  EXPECT_TRUE(after.value().kvs.empty());
}

TEST_F(EtcdSourceTest, RangesThenWatches) {
  etcd::EtcdClient c = client();
  const std::string a = "portico/gateway.portico.dev/v1/VirtualService/default/a";
  const std::string b = "portico/gateway.portico.dev/v1/VirtualService/default/b";
  ASSERT_TRUE(c.put_if(a, service("a", "one"), 0));
  ASSERT_TRUE(c.put_if("porticox/not/ours", "x", 0));  // beside the prefix: not read

  EtcdSourceOptions options;
  options.address = address();
  auto made = EtcdSource::make(options);
  ASSERT_TRUE(made) << made.error().message;
  std::unique_ptr<EtcdSource> source = std::move(made.value());
  std::mutex mu;
  std::condition_variable cv;
  int wakes = 0;
  source->start([&] {
    std::lock_guard lock(mu);
    ++wakes;
    cv.notify_all();
  });
  // Polls (as the control-plane loop does when woken) until `pred` holds for the merged deltas.
  Delta seen;
  auto poll_until = [&](const std::function<bool()>& pred) {
    const auto deadline = std::chrono::steady_clock::now() + 5s;
    while (std::chrono::steady_clock::now() < deadline) {
      Delta d = source->poll(false);
      for (auto& u : d.upserts)
        seen.upserts.push_back(std::move(u));
      for (auto& r : d.removals)
        seen.removals.push_back(std::move(r));
      if (pred()) return true;
      std::unique_lock lock(mu);
      cv.wait_for(lock, 50ms);
    }
    return false;
  };
  ASSERT_TRUE(poll_until([&] { return seen.upserts.size() == 1; }));
  EXPECT_EQ(seen.upserts[0].origin.key, a);
  EXPECT_EQ(seen.upserts[0].resource->key(), "VirtualService/default/a");
  EXPECT_EQ(source->problem(), "");

  ASSERT_TRUE(c.put_if(b, service("b", "one"), 0));
  ASSERT_TRUE(poll_until([&] { return seen.upserts.size() == 2; }));
  EXPECT_EQ(seen.upserts[1].origin.key, b);
  auto range = c.range(b, etcd::prefix_range_end(b));
  ASSERT_TRUE(range);
  ASSERT_TRUE(c.delete_if(b, range.value().kvs.at(0).mod_revision));
  ASSERT_TRUE(poll_until([&] { return seen.removals.size() == 1; }));
  EXPECT_EQ(seen.removals[0].key, b);

  EtcdSource::Counters counters = source->counters();
  EXPECT_EQ(counters.ranges, 1u);
  EXPECT_EQ(counters.watches, 1u);
  EXPECT_EQ(counters.events, 2u);
  EXPECT_GT(counters.revision, 0);
  EXPECT_NE(source->stats().find("portico_etcd_events_total 2\n"), std::string::npos)
      << source->stats();
  {
    std::lock_guard lock(mu);
    EXPECT_GE(wakes, 3);
  }

  // etcd stopped: the source says so and keeps what it delivered (no removal).
  stop_etcd();
  ASSERT_TRUE(poll_until([&] { return !source->problem().empty(); })) << "no problem reported";
  EXPECT_NE(source->problem().find(address()), std::string::npos) << source->problem();
  EXPECT_NE(source->problem().find("serving the 1 resource(s)"), std::string::npos)
      << source->problem();
  EXPECT_EQ(seen.removals.size(), 1u);

  // Back (same data): the watch resumes where it was, nothing delivered twice.
  start_etcd();
  ASSERT_TRUE(poll_until([&] { return source->problem().empty(); })) << source->problem();
  ASSERT_TRUE(c.put_if(b, service("b", "two"), 0));
  ASSERT_TRUE(poll_until([&] { return seen.upserts.size() == 3; }));
  EXPECT_EQ(seen.upserts[2].origin.key, b);
  EXPECT_EQ(source->counters().ranges, 1u);  // resumed, not read again
  source.reset();                            // stops its thread
}

TEST_F(EtcdSourceTest, ANewClusterIsReadAgain) {
  etcd::EtcdClient c = client();
  const std::string a = "portico/gateway.portico.dev/v1/VirtualService/default/a";
  const std::string b = "portico/gateway.portico.dev/v1/VirtualService/default/b";
  ASSERT_TRUE(c.put_if(a, service("a", "one"), 0));
  ASSERT_TRUE(c.put_if(b, service("b", "one"), 0));
  for (int i = 0; i < 5; ++i)  // the old cluster's revision ends up above the new one's
    ASSERT_TRUE(c.put_if("elsewhere/" + std::to_string(i), "x", 0));

  EtcdSourceOptions options;
  options.address = address();
  auto made = EtcdSource::make(options);
  ASSERT_TRUE(made) << made.error().message;
  std::unique_ptr<EtcdSource> source = std::move(made.value());
  source->start([] {});
  Delta seen;
  std::map<std::string, std::string> in_force;  // origin key -> spec JSON, as a store would hold
  auto poll_until = [&](const std::function<bool()>& pred) {
    const auto deadline = std::chrono::steady_clock::now() + 10s;
    while (std::chrono::steady_clock::now() < deadline) {
      Delta d = source->poll(false);
      for (auto& r : d.removals) {
        in_force.erase(r.key);
        seen.removals.push_back(std::move(r));
      }
      for (auto& u : d.upserts) {
        in_force[u.origin.key] = u.resource->spec_json;
        seen.upserts.push_back(std::move(u));
      }
      if (pred()) return true;
      std::this_thread::sleep_for(20ms);
    }
    return false;
  };
  ASSERT_TRUE(poll_until([&] { return seen.upserts.size() == 2; }));

  // Replaced by a new, empty cluster on the same address (a restore from nothing) holding only a
  // changed a: b goes, a changes, nothing else is delivered.
  stop_etcd();
  fs::remove_all(dir_ / "data");
  start_etcd();
  ASSERT_TRUE(c.put_if(a, service("a", "two"), 0));
  // (Whether the source reads the new cluster before or after the put, it ends the same.)
  ASSERT_TRUE(poll_until([&] {
    return in_force.size() == 1 && in_force.count(a) &&
           in_force[a].find("two") != std::string::npos;
  }));
  // b went. (When the new cluster was read before the put, a went too, for as long as the new
  // cluster did not hold it: removals [a, b], then a upserted again.)
  EXPECT_TRUE(std::any_of(seen.removals.begin(), seen.removals.end(),
                          [&](const auto& r) { return r.key == b; }));
  EXPECT_EQ(seen.upserts.back().origin.key, a);
  EXPECT_GE(source->counters().resyncs, 1u);
  // A range tried while etcd was still starting counts too (and fails): at least one per resync.
  EXPECT_GE(source->counters().ranges, 1u + source->counters().resyncs);
  EXPECT_TRUE(poll_until([&] { return source->problem().empty(); })) << source->problem();
}

}  // namespace
}  // namespace portico::control
