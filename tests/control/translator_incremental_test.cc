// control::Translator (incremental translation): what it recomputes after a change, and that its
// result always equals a translation from scratch.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "api/decode.h"
#include "control/translate/translator.h"
#include "snapshot/proxy_config.h"

namespace portico::control {
namespace {

using ::testing::HasSubstr;

// Resources by name, each decoded from its own document; a document that did not change keeps its
// decoded resource (the same shared pointer), as the store does.
class World {
 public:
  void set(const std::string& key, std::string yaml) {
    auto it = docs_.find(key);
    if (it != docs_.end() && it->second == yaml) return;
    docs_[key] = std::move(yaml);
    decoded_.erase(key);
  }
  void erase(const std::string& key) {
    docs_.erase(key);
    decoded_.erase(key);
  }
  bool has(const std::string& key) const { return docs_.count(key) != 0; }
  std::vector<ResourcePtr> resources() {
    std::vector<ResourcePtr> out;
    for (const auto& [key, yaml] : docs_) {
      auto it = decoded_.find(key);
      if (it == decoded_.end()) {
        api::DecodedFile f = api::decode_file(key + ".yaml", yaml);
        EXPECT_TRUE(f.errors.empty()) << key << ": " << yaml;
        if (f.resources.size() != 1) continue;
        it =
            decoded_.emplace(key, std::make_shared<api::Resource>(std::move(f.resources[0]))).first;
      }
      out.push_back(it->second);
    }
    return out;
  }

 private:
  std::map<std::string, std::string> docs_;
  std::map<std::string, ResourcePtr> decoded_;
};

std::string gateway() {
  return "kind: Gateway\nmetadata: {name: gw}\nspec:\n  bindPort: 8080\n"
         "  virtualServiceSelector: {labels: {team: a}}\n";
}

std::string upstream(const std::string& name, int port, bool valid = true) {
  return "kind: Upstream\nmetadata: {name: " + name +
         "}\nspec: {static: {hosts: [{addr: " + (valid ? "127.0.0.1" : "not an address!") +
         ", port: " + std::to_string(port) + "}]}}\n";
}

// A VirtualService with `routes` routes forwarding to `up`, and one delegating to `table` when
// given.
std::string virtual_service(const std::string& name, int routes, const std::string& up,
                            const std::string& table = "", const std::string& body = "ok") {
  std::string y = "kind: VirtualService\nmetadata: {name: " + name +
                  ", labels: {team: a}}\nspec:\n  virtualHost:\n    domains: [" + name +
                  ".example.com]\n    routes:\n";
  y += "      - matchers: [{exact: /healthz}]\n        directResponseAction: {status: 200, body: " +
       body + "}\n";
  if (!table.empty()) {
    y += "      - matchers: [{prefix: /t}]\n        delegateAction: {ref: {name: " + table + "}}\n";
  }
  for (int i = 1; i < routes; ++i) {
    y += "      - matchers: [{prefix: /r" + std::to_string(i) +
         "}]\n        routeAction: {single: {upstream: {name: " + up + "}}}\n";
  }
  return y;
}

std::string route_table(const std::string& name, const std::string& up, int routes) {
  std::string y = "kind: RouteTable\nmetadata: {name: " + name + "}\nspec:\n  routes:\n";
  for (int i = 0; i < routes; ++i) {
    y += "    - matchers: [{prefix: /t/" + std::to_string(i) +
         "}]\n      routeAction: {single: {upstream: {name: " + up + "}}}\n";
  }
  return y;
}

// Everything a translation says, as text: the configuration (as /config_dump shows it) and every
// status.
std::string render(const Translation& t) {
  std::string out = snapshot::to_json(*t.config, false) + "\n";
  for (const auto& s : t.statuses) {
    out += s.kind + " " + s.ns + "/" + s.name + " " + std::string(to_string(s.state)) + " " +
           s.spec() + "\n";
    for (const auto& d : s.reasons)
      out += "  " + d.to_string() + "\n";
  }
  return out;
}

const ResourceStatus* find(const Translation& t, const std::string& kind, const std::string& name) {
  for (const auto& s : t.statuses)
    if (s.kind == kind && s.name == name) return &s;
  return nullptr;
}

const snapshot::VirtualHost* host(const Translation& t, const std::string& name) {
  for (const auto& l : t.config->listeners)
    for (const auto& vh : l.virtual_hosts)
      if (vh->name == "default/" + name) return vh.get();
  return nullptr;
}

class Incremental : public ::testing::Test {
 protected:
  void SetUp() override {
    world_.set("gw", gateway());
    world_.set("up-a", upstream("up-a", 9000));
    world_.set("up-b", upstream("up-b", 9001));
    world_.set("table", route_table("table", "up-b", 3));
    world_.set("vs-1", virtual_service("vs-1", 4, "up-a"));
    world_.set("vs-2", virtual_service("vs-2", 5, "up-b"));
    world_.set("vs-3", virtual_service("vs-3", 6, "up-a", "table"));
    Translation first = run();
    EXPECT_EQ(first.translated.virtual_services, 3u);
    EXPECT_EQ(first.translated.routes, 4u + 5u + 6u + 3u);  // vs-3's delegating route: 3 routes
  }
  // Translates incrementally, and checks the result against a translation from scratch.
  Translation run() {
    auto resources = world_.resources();
    Translation t = translator_.translate(resources, ++version_, 0);
    Translation fresh = translate(resources, version_, 0);
    EXPECT_EQ(render(t), render(fresh));
    return t;
  }

  World world_;
  Translator translator_;
  uint64_t version_ = 0;
};

TEST_F(Incremental, NothingChangedTranslatesNothingAndSharesEveryVirtualHost) {
  auto before = run();
  auto after = run();
  EXPECT_EQ(after.translated.virtual_services, 0u);
  EXPECT_EQ(after.translated.routes, 0u);
  EXPECT_EQ(host(before, "vs-1"), host(after, "vs-1"));  // the same object, not a copy
  EXPECT_EQ(translator_.total().virtual_services, 3u);
}

TEST_F(Incremental, OneRouteChangedTranslatesOnlyItsVirtualService) {
  auto before = run();
  world_.set("vs-2", virtual_service("vs-2", 5, "up-b", "", "changed"));
  auto after = run();
  EXPECT_EQ(after.translated.virtual_services, 1u);
  EXPECT_EQ(after.translated.routes, 5u);  // exactly its routes
  EXPECT_NE(host(before, "vs-2"), host(after, "vs-2")) << render(after);
  EXPECT_EQ(host(before, "vs-1"), host(after, "vs-1"));
  EXPECT_EQ(host(before, "vs-3"), host(after, "vs-3"));
}

TEST_F(Incremental, UpstreamPortChangeTranslatesNoRouteAndUpdatesTheCluster) {
  auto before = run();
  world_.set("up-a", upstream("up-a", 9100));
  auto after = run();
  EXPECT_EQ(after.translated.virtual_services, 0u);
  EXPECT_EQ(after.translated.routes, 0u);
  const auto* c = after.config->find_cluster("default/up-a");
  ASSERT_NE(c, nullptr);
  EXPECT_EQ(c->endpoints.at(0).port, 9100);
  EXPECT_EQ(host(before, "vs-1"), host(after, "vs-1"));
}

TEST_F(Incremental, RejectedUpstreamWarnsItsUsersAgain) {
  world_.set("up-a", upstream("up-a", 9000, false));
  auto rejected = run();
  EXPECT_EQ(find(rejected, "Upstream", "up-a")->state, State::kRejected);
  // vs-1 and vs-3 name up-a; vs-2 does not.
  EXPECT_EQ(rejected.translated.virtual_services, 2u);
  for (const char* vs : {"vs-1", "vs-3"}) {
    const auto* s = find(rejected, "VirtualService", vs);
    ASSERT_NE(s, nullptr);
    EXPECT_EQ(s->state, State::kWarning) << vs;
    ASSERT_FALSE(s->reasons.empty());
    EXPECT_THAT(s->reasons[0].message, HasSubstr("upstream default/up-a is rejected")) << vs;
  }
  EXPECT_EQ(find(rejected, "VirtualService", "vs-2")->state, State::kAccepted);
  // A second translation keeps the warnings (reused, not lost).
  auto again = run();
  EXPECT_EQ(again.translated.virtual_services, 0u);
  EXPECT_EQ(find(again, "VirtualService", "vs-1")->state, State::kWarning);
  // Fixed: accepted again.
  world_.set("up-a", upstream("up-a", 9000));
  auto fixed = run();
  EXPECT_EQ(fixed.translated.virtual_services, 2u);
  EXPECT_EQ(find(fixed, "VirtualService", "vs-1")->state, State::kAccepted);
}

TEST_F(Incremental, RouteTableChangeTranslatesItsParentsOnly) {
  auto before = run();
  world_.set("table", route_table("table", "up-b", 5));
  auto after = run();
  EXPECT_EQ(after.translated.virtual_services, 1u);
  EXPECT_EQ(after.translated.routes, 6u + 5u);
  ASSERT_NE(host(after, "vs-3"), nullptr);
  EXPECT_EQ(host(after, "vs-3")->routes.size(), 6u + 5u);
  EXPECT_EQ(host(before, "vs-1"), host(after, "vs-1"));
}

TEST_F(Incremental, DeletingADependencyInvalidatesItsDependents) {
  world_.erase("table");
  auto no_table = run();
  EXPECT_EQ(no_table.translated.virtual_services, 1u);
  EXPECT_THAT(find(no_table, "VirtualService", "vs-3")->reasons.at(0).message,
              HasSubstr("route table default/table not found"));
  world_.erase("up-b");
  auto no_upstream = run();
  EXPECT_EQ(no_upstream.translated.virtual_services, 1u);  // vs-2 (the table is gone)
  EXPECT_THAT(find(no_upstream, "VirtualService", "vs-2")->reasons.at(0).message,
              HasSubstr("upstream default/up-b not found"));
  world_.erase("vs-2");
  auto no_vs = run();
  EXPECT_EQ(no_vs.translated.virtual_services, 0u);
  EXPECT_EQ(host(no_vs, "vs-2"), nullptr);
  // Back: the table and its routes reappear under vs-3.
  world_.set("table", route_table("table", "up-a", 2));
  auto back = run();
  EXPECT_EQ(back.translated.virtual_services, 1u);
  EXPECT_EQ(host(back, "vs-3")->routes.size(), 6u + 2u);
}

TEST_F(Incremental, DomainConflictIsGlobalAndReusesTranslations) {
  // vs-4 takes vs-1's domain: both rejected; vs-4 fixed: vs-1 is served again from its memo.
  std::string clash = virtual_service("vs-4", 2, "up-a");
  clash.replace(clash.find("vs-4.example.com"), 16, "vs-1.example.com");
  world_.set("vs-4", clash);
  auto conflict = run();
  EXPECT_EQ(find(conflict, "VirtualService", "vs-1")->state, State::kRejected);
  EXPECT_EQ(find(conflict, "VirtualService", "vs-4")->state, State::kRejected);
  EXPECT_EQ(host(conflict, "vs-1"), nullptr);
  world_.set("vs-4", virtual_service("vs-4", 2, "up-a"));
  auto fixed = run();
  EXPECT_EQ(find(fixed, "VirtualService", "vs-1")->state, State::kAccepted);
  EXPECT_EQ(fixed.translated.virtual_services, 1u);  // vs-4 only
}

// ---- Equivalence under random edits ----

struct Generated {
  int upstreams, tables, services;
};

void random_world(World& w, std::mt19937& rng, const Generated& g) {
  auto pick = [&](int n) { return static_cast<int>(rng() % static_cast<unsigned>(n)); };
  w.set("gw", gateway());
  for (int i = 0; i < g.upstreams; ++i)
    w.set("up-" + std::to_string(i), upstream("up-" + std::to_string(i), 9000 + i));
  for (int i = 0; i < g.tables; ++i) {
    w.set("table-" + std::to_string(i),
          route_table("table-" + std::to_string(i), "up-" + std::to_string(pick(g.upstreams)),
                      1 + pick(3)));
  }
  for (int i = 0; i < g.services; ++i) {
    std::string table = pick(3) == 0 ? "table-" + std::to_string(pick(g.tables)) : "";
    w.set("vs-" + std::to_string(i),
          virtual_service("vs-" + std::to_string(i), 1 + pick(5),
                          "up-" + std::to_string(pick(g.upstreams)), table));
  }
}

void random_edit(World& w, std::mt19937& rng, const Generated& g, int step) {
  auto pick = [&](int n) { return static_cast<int>(rng() % static_cast<unsigned>(n)); };
  std::string u = "up-" + std::to_string(pick(g.upstreams + 1));  // sometimes one never defined
  std::string t = "table-" + std::to_string(pick(g.tables + 1));
  std::string v = "vs-" + std::to_string(pick(g.services));
  switch (pick(11)) {
    case 0:  // a route's body
      w.set(v, virtual_service(v, 1 + pick(5), u, "", "b" + std::to_string(step)));
      break;
    case 1:  // an endpoint
      w.set(u, upstream(u, 10000 + step));
      break;
    case 2:  // an upstream rejected
      w.set(u, upstream(u, 9000, false));
      break;
    case 3:
      w.erase(u);
      break;
    case 4:
      w.set(t, route_table(t, u, 1 + pick(3)));
      break;
    case 5:
      w.erase(t);
      break;
    case 6:  // a table that delegates back to another table (maybe a cycle)
      w.set(t, "kind: RouteTable\nmetadata: {name: " + t +
                   "}\nspec:\n  routes:\n    - matchers: [{prefix: /t/x}]\n      delegateAction: "
                   "{ref: {name: table-" +
                   std::to_string(pick(g.tables)) + "}}\n");
      break;
    case 7:  // a domain conflict
    {
      std::string other = "vs-" + std::to_string(pick(g.services));
      std::string y = virtual_service(v, 2, u);
      y.replace(y.find(v + ".example.com"), v.size(), other);
      w.set(v, y);
      break;
    }
    case 8:
      w.erase(v);
      break;
    case 9:  // the invalid-route policy
      if (w.has("settings")) {
        w.erase("settings");
      } else {
        w.set("settings",
              "kind: Settings\nmetadata: {name: default}\nspec:\n  invalidConfigPolicy: "
              "{replaceInvalidRoutes: true, invalidRouteResponseCode: 503}\n");
      }
      break;
    default:  // a VirtualService delegating by selector, or with a table
      w.set(v, virtual_service(v, 1 + pick(4), u, pick(2) == 0 ? t : ""));
      break;
  }
}

// A partial translation's statuses merged into the complete list they update (as the pipeline
// does).
void merge(std::vector<ResourceStatus>& all, const Translation& t) {
  if (!t.partial) {
    all = t.statuses;
    return;
  }
  for (const auto& s : t.statuses) {
    auto it = std::find_if(all.begin(), all.end(), [&](const ResourceStatus& o) {
      return o.kind == s.kind && o.ns == s.ns && o.name == s.name;
    });
    ASSERT_NE(it, all.end()) << s.kind << " " << s.ns << "/" << s.name;
    *it = s;
  }
}

TEST_F(Incremental, ALocalEditIsAPartialTranslationOfItsVirtualServiceAlone) {
  auto resources = world_.resources();
  Translator t;
  Translation full = t.translate(resources, 1, 0, /*allow_partial=*/true);
  EXPECT_FALSE(full.partial);  // nothing to compare with yet
  world_.set("vs-2", virtual_service("vs-2", 5, "up-b", "", "changed"));
  resources = world_.resources();
  Translation part = t.translate(resources, 2, 0, true);
  ASSERT_TRUE(part.partial);
  ASSERT_EQ(part.statuses.size(), 1u);
  EXPECT_EQ(part.statuses[0].name, "vs-2");
  EXPECT_EQ(part.translated.virtual_services, 1u);
  EXPECT_EQ(part.translated.routes, 5u);
  EXPECT_EQ(part.config->version, 2u);
  EXPECT_EQ(host(full, "vs-1"), host(part, "vs-1"));  // shared, not copied
  EXPECT_NE(host(full, "vs-2"), host(part, "vs-2"));
  std::vector<ResourceStatus> all = full.statuses;
  merge(all, part);
  Translation fresh = translate(resources, 2, 0);
  Translation merged;
  merged.config = part.config;
  merged.statuses = all;
  EXPECT_EQ(render(merged), render(fresh));
  // A change of domain is not local (conflicts): a full translation.
  std::string moved = virtual_service("vs-2", 5, "up-b", "", "changed");
  moved.replace(moved.find("vs-2.example.com"), 4, "other");
  world_.set("vs-2", moved);
  Translation again = t.translate(world_.resources(), 3, 0, true);
  EXPECT_FALSE(again.partial);
}

TEST(IncrementalEquivalence, RandomEditsGiveTheSameResultAsFromScratch) {
  const Generated configs[] = {{3, 2, 6}, {5, 3, 12}, {2, 1, 20}, {8, 4, 30}};
  uint64_t partials = 0;
  for (unsigned seed = 1; seed <= 4; ++seed) {
    const Generated& g = configs[seed - 1];
    std::mt19937 rng(seed);
    World w;
    random_world(w, rng, g);
    Translator translator;
    Translator partial;  // the same, allowed to answer with the changed statuses only
    std::vector<ResourceStatus> all;
    uint64_t version = 0;
    uint64_t reused = 0;
    for (int step = 0; step < 60; ++step) {
      auto resources = w.resources();
      Translation t = translator.translate(resources, ++version, 0);
      Translation fresh = translate(resources, version, 0);
      ASSERT_EQ(render(t), render(fresh)) << "seed " << seed << " step " << step;
      reused += fresh.translated.virtual_services - t.translated.virtual_services;
      Translation p = partial.translate(resources, version, 0, /*allow_partial=*/true);
      partials += p.partial;
      merge(all, p);
      Translation merged;
      merged.config = p.config;
      merged.statuses = all;
      ASSERT_EQ(render(merged), render(fresh))
          << "seed " << seed << " step " << step << (p.partial ? " (partial)" : "");
      random_edit(w, rng, g, step);
    }
    EXPECT_GT(reused, 0u) << "seed " << seed;  // the memo was used, not bypassed
  }
  EXPECT_GT(partials, 0u);  // the partial path was taken, not always bypassed
}

}  // namespace
}  // namespace portico::control
