#include "proxy/router/router.h"

#include <gtest/gtest.h>

#include <initializer_list>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace portico::proxy::router {
namespace {

using snapshot::HeaderMatcher;
using snapshot::Listener;
using snapshot::PathMatchKind;
using snapshot::QueryMatcher;
using snapshot::RedirectAction;
using snapshot::Route;
using snapshot::VirtualHost;

snapshot::Regex regex(const std::string& pattern) {
  return snapshot::Regex{pattern, true};
}

VirtualHost vhost(std::string name, std::vector<std::string> domains) {
  VirtualHost v;
  v.name = std::move(name);
  v.domains = std::move(domains);
  return v;
}

Route prefix_route(std::string name, std::string prefix, bool case_sensitive = true) {
  Route r;
  r.name = std::move(name);
  r.match.kind = PathMatchKind::kPrefix;
  r.match.path = std::move(prefix);
  r.match.case_sensitive = case_sensitive;
  return r;
}

Route exact_route(std::string name, std::string path, bool case_sensitive = true) {
  Route r = prefix_route(std::move(name), std::move(path), case_sensitive);
  r.match.kind = PathMatchKind::kExact;
  return r;
}

Route regex_route(std::string name, const std::string& pattern) {
  Route r;
  r.name = std::move(name);
  r.match.kind = PathMatchKind::kRegex;
  r.match.path = pattern;
  r.match.regex = regex(pattern);
  return r;
}

// A request head whose views point at string literals.
http::RequestHead request(
    std::string_view method, std::string_view path, std::string_view query = {},
    std::string_view host = "example.com",
    std::initializer_list<std::pair<std::string_view, std::string_view>> headers = {}) {
  http::RequestHead r;
  r.method = method;
  r.path = path;
  r.query = query;
  r.host = host;
  r.target = path;
  for (const auto& [name, value] : headers)
    r.headers.push_back(http::Header{name, value}), ++r.header_count;
  return r;
}

// ---------------------------------------------------------------------------------------------
// Virtual host selection

class RouterVhostTest : public ::testing::Test {
 protected:
  // Builds the listener from `vhosts` and returns the name of the selected vhost ("" for none).
  std::string select(std::string_view host) {
    if (!compiled_) compiled_ = std::make_unique<CompiledListener>(listener_);
    const VirtualHost* v = compiled_->select_virtual_host(host);
    return v == nullptr ? "" : v->name;
  }
  void add(std::string name, std::vector<std::string> domains) {
    listener_.virtual_hosts.push_back(
        std::make_shared<VirtualHost>(vhost(std::move(name), std::move(domains))));
  }

  Listener listener_;
  std::unique_ptr<CompiledListener> compiled_;
};

TEST_F(RouterVhostTest, ExactDomainIsCaseInsensitiveAndIgnoresPort) {
  add("a", {"example.com"});
  EXPECT_EQ(select("example.com"), "a");
  EXPECT_EQ(select("EXAMPLE.Com"), "a");
  EXPECT_EQ(select("example.com:8080"), "a");
  EXPECT_EQ(select("example.com:80"), "a");
  EXPECT_EQ(select("www.example.com"), "");
  EXPECT_EQ(select("example.co"), "");
  EXPECT_EQ(select(""), "");
}

TEST_F(RouterVhostTest, UpperCaseDomainInConfigIsLowered) {
  add("a", {"Example.COM"});
  EXPECT_EQ(select("example.com"), "a");
}

TEST_F(RouterVhostTest, ExactDomainWithPortMatchesOnlyThatPort) {
  add("p", {"example.com:8080"});
  EXPECT_EQ(select("example.com:8080"), "p");
  EXPECT_EQ(select("EXAMPLE.COM:8080"), "p");
  EXPECT_EQ(select("example.com:9090"), "");
  EXPECT_EQ(select("example.com"), "");
}

TEST_F(RouterVhostTest, DomainWithPortBeatsDomainWithout) {
  add("any-port", {"example.com"});
  add("port", {"example.com:8080"});
  EXPECT_EQ(select("example.com:8080"), "port");
  EXPECT_EQ(select("example.com:8081"), "any-port");
  EXPECT_EQ(select("example.com"), "any-port");
}

TEST_F(RouterVhostTest, Ipv6Literals) {
  add("v6", {"[::1]"});
  add("v6port", {"[2001:db8::1]:8443"});
  EXPECT_EQ(select("[::1]"), "v6");
  EXPECT_EQ(select("[::1]:80"), "v6");
  EXPECT_EQ(select("[2001:DB8::1]:8443"), "v6port");
  EXPECT_EQ(select("[2001:db8::1]:443"), "");
  EXPECT_EQ(select("[2001:db8::1]"), "");
}

TEST_F(RouterVhostTest, SuffixWildcardNeedsAtLeastOneCharacter) {
  add("w", {"*.a.com"});
  EXPECT_EQ(select("b.a.com"), "w");
  EXPECT_EQ(select("x.y.a.com"), "w");
  EXPECT_EQ(select("B.A.COM:8080"), "w");
  EXPECT_EQ(select("a.com"), "");
  EXPECT_EQ(select(".a.com"), "");
  EXPECT_EQ(select("ba.com"), "");
}

TEST_F(RouterVhostTest, LongestSuffixWins) {
  add("short", {"*.com"});
  add("long", {"*.b.a.com"});
  add("mid", {"*.a.com"});
  EXPECT_EQ(select("x.b.a.com"), "long");
  EXPECT_EQ(select("x.c.a.com"), "mid");
  EXPECT_EQ(select("b.a.com"), "mid");  // "*.b.a.com" needs a character before ".b.a.com"
  EXPECT_EQ(select("z.com"), "short");
}

TEST_F(RouterVhostTest, SuffixWildcardWithPort) {
  add("any", {"*.a.com"});
  add("port", {"*.a.com:8080"});
  EXPECT_EQ(select("b.a.com:8080"), "port");
  EXPECT_EQ(select("b.a.com:9090"), "any");
  EXPECT_EQ(select("b.a.com"), "any");
}

TEST_F(RouterVhostTest, ExactBeatsSuffixBeatsPrefixBeatsAny) {
  add("any", {"*"});
  add("prefix", {"api.*"});
  add("suffix", {"*.example.com"});
  add("exact", {"api.example.com"});
  EXPECT_EQ(select("api.example.com"), "exact");
  EXPECT_EQ(select("web.example.com"), "suffix");
  EXPECT_EQ(select("api.example.org"), "prefix");
  EXPECT_EQ(select("other.org"), "any");
  EXPECT_EQ(select(""), "any");
}

TEST_F(RouterVhostTest, LongestPrefixWinsAndNeedsAtLeastOneCharacter) {
  add("short", {"api.*"});
  add("long", {"api.v2.*"});
  EXPECT_EQ(select("api.v2.example.com"), "long");
  EXPECT_EQ(select("api.v1.example.com"), "short");
  EXPECT_EQ(select("API.V2.x:8080"), "long");  // the port is ignored
  EXPECT_EQ(select("api.v2."), "short");
  EXPECT_EQ(select("api."), "");
  EXPECT_EQ(select("api"), "");
}

TEST_F(RouterVhostTest, FirstVirtualHostNamingADomainWins) {
  add("first", {"example.com", "*.x.com"});
  add("second", {"example.com", "*.x.com"});
  EXPECT_EQ(select("example.com"), "first");
  EXPECT_EQ(select("a.x.com"), "first");
}

TEST_F(RouterVhostTest, SeveralDomainsPerVirtualHost) {
  add("a", {"a.com", "www.a.com", "*.cdn.a.com"});
  add("b", {"b.com"});
  EXPECT_EQ(select("a.com"), "a");
  EXPECT_EQ(select("www.a.com"), "a");
  EXPECT_EQ(select("img.cdn.a.com"), "a");
  EXPECT_EQ(select("b.com"), "b");
}

TEST_F(RouterVhostTest, LongHostIsLoweredToo) {
  std::string long_name(300, 'A');
  add("long", {std::string(300, 'a') + ".com", "*.b.com"});
  EXPECT_EQ(select(long_name + ".COM"), "long");
  EXPECT_EQ(select(std::string(400, 'X') + ".b.com"), "long");
}

TEST_F(RouterVhostTest, DomainIndexIsSharedWhenOnlyHostObjectsChanged) {
  add("a", {"a.com", "*.a.com"});
  add("b", {"b.com"});
  EXPECT_EQ(select("x.a.com"), "a");

  // "b" replaced by a host with the same domains (a route changed): the index is shared and
  // selection returns the new host object.
  Listener next = listener_;
  next.virtual_hosts[1] = std::make_shared<VirtualHost>(vhost("b2", {"b.com"}));
  CompiledListener reused(next, compiled_.get());
  EXPECT_TRUE(reused.reused_index());
  EXPECT_EQ(reused.select_virtual_host("B.com:80"), next.virtual_hosts[1].get());
  EXPECT_EQ(reused.select_virtual_host("y.a.com"), next.virtual_hosts[0].get());
  EXPECT_EQ(reused.index_of(next.virtual_hosts[1].get()), 1u);

  // Other domains, or another number of hosts: built again.
  Listener moved = listener_;
  moved.virtual_hosts[1] = std::make_shared<VirtualHost>(vhost("b", {"c.com"}));
  CompiledListener rebuilt(moved, compiled_.get());
  EXPECT_FALSE(rebuilt.reused_index());
  EXPECT_EQ(rebuilt.select_virtual_host("b.com"), nullptr);
  EXPECT_EQ(rebuilt.select_virtual_host("c.com"), moved.virtual_hosts[1].get());
  Listener more = listener_;
  more.virtual_hosts.push_back(std::make_shared<VirtualHost>(vhost("c", {"c.com"})));
  CompiledListener grown(more, compiled_.get());
  EXPECT_FALSE(grown.reused_index());
  EXPECT_EQ(grown.select_virtual_host("c.com"), more.virtual_hosts[2].get());
}

TEST(RouterSplitHostPort, Forms) {
  using P = std::pair<std::string_view, std::string_view>;
  EXPECT_EQ(split_host_port("a.com"), P("a.com", ""));
  EXPECT_EQ(split_host_port("a.com:80"), P("a.com", "80"));
  EXPECT_EQ(split_host_port("a.com:"), P("a.com", ""));
  EXPECT_EQ(split_host_port("[::1]"), P("[::1]", ""));
  EXPECT_EQ(split_host_port("[::1]:8080"), P("[::1]", "8080"));
  EXPECT_EQ(split_host_port("[::1]:"), P("[::1]", ""));
  EXPECT_EQ(split_host_port("::1"), P("::1", ""));
  EXPECT_EQ(split_host_port(""), P("", ""));
}

// ---------------------------------------------------------------------------------------------
// Path matching

TEST(RouterPathTest, PrefixCaseSensitiveAndInsensitive) {
  Route cs = prefix_route("cs", "/Api");
  Route ci = prefix_route("ci", "/Api", /*case_sensitive=*/false);
  EXPECT_TRUE(route_matches(cs, request("GET", "/Api/users")));
  EXPECT_TRUE(route_matches(cs, request("GET", "/Api")));
  EXPECT_TRUE(route_matches(cs, request("GET", "/Apis")));  // a prefix, not a segment
  EXPECT_FALSE(route_matches(cs, request("GET", "/api/users")));
  EXPECT_FALSE(route_matches(cs, request("GET", "/Ap")));
  EXPECT_TRUE(route_matches(ci, request("GET", "/api/users")));
  EXPECT_TRUE(route_matches(ci, request("GET", "/API")));
  EXPECT_FALSE(route_matches(ci, request("GET", "/ap")));
  EXPECT_TRUE(route_matches(prefix_route("root", "/"), request("GET", "/anything")));
  EXPECT_TRUE(route_matches(prefix_route("empty", ""), request("GET", "/anything")));
  EXPECT_FALSE(route_matches(prefix_route("long", "/a/b/c"), request("GET", "/a/b")));
  EXPECT_FALSE(route_matches(prefix_route("mid", "/a/x/c"), request("GET", "/a/b/c")));
}

TEST(RouterPathTest, ExactCaseSensitiveAndInsensitive) {
  Route cs = exact_route("cs", "/Health");
  Route ci = exact_route("ci", "/Health", false);
  EXPECT_TRUE(route_matches(cs, request("GET", "/Health")));
  EXPECT_FALSE(route_matches(cs, request("GET", "/health")));
  EXPECT_FALSE(route_matches(cs, request("GET", "/Health/")));
  EXPECT_FALSE(route_matches(cs, request("GET", "/Healt")));
  EXPECT_TRUE(route_matches(ci, request("GET", "/HEALTH")));
  EXPECT_FALSE(route_matches(ci, request("GET", "/HEALTHZ")));
}

TEST(RouterPathTest, QueryIsNotPartOfThePath) {
  Route r = exact_route("e", "/search");
  EXPECT_TRUE(route_matches(r, request("GET", "/search", "q=1")));
}

TEST(RouterPathTest, RegexIsAFullMatch) {
  Route r = regex_route("re", "/users/[0-9]+");
  EXPECT_TRUE(route_matches(r, request("GET", "/users/42")));
  EXPECT_TRUE(route_matches(r, request("GET", "/users/42", "x=1")));
  EXPECT_FALSE(route_matches(r, request("GET", "/users/42/posts")));
  EXPECT_FALSE(route_matches(r, request("GET", "/v1/users/42")));
  EXPECT_FALSE(route_matches(r, request("GET", "/users/")));
  Route ci = regex_route("ci", "(?i)/users/[a-z]+");
  EXPECT_TRUE(route_matches(ci, request("GET", "/USERS/Bob")));
}

TEST(RouterPathTest, FirstMatchingRouteWins) {
  VirtualHost v = vhost("v", {"*"});
  v.routes.push_back(exact_route("exact", "/api/health"));
  v.routes.push_back(prefix_route("api", "/api"));
  v.routes.push_back(prefix_route("api-shadowed", "/api/v2"));
  v.routes.push_back(prefix_route("root", "/"));
  auto name = [&](std::string_view path) {
    const Route* r = match_route(v, request("GET", path));
    return r == nullptr ? std::string() : r->name;
  };
  EXPECT_EQ(name("/api/health"), "exact");
  EXPECT_EQ(name("/api/v2/x"), "api");
  EXPECT_EQ(name("/other"), "root");
}

TEST(RouterPathTest, NoMatchIsNull) {
  VirtualHost v = vhost("v", {"*"});
  EXPECT_EQ(match_route(v, request("GET", "/")), nullptr);  // no routes at all
  v.routes.push_back(prefix_route("api", "/api"));
  EXPECT_EQ(match_route(v, request("GET", "/web")), nullptr);
  EXPECT_NE(match_route(v, request("GET", "/api")), nullptr);
}

// ---------------------------------------------------------------------------------------------
// Methods

TEST(RouterMethodTest, EmptyListMatchesAnyMethod) {
  Route r = prefix_route("r", "/");
  EXPECT_TRUE(route_matches(r, request("GET", "/")));
  EXPECT_TRUE(route_matches(r, request("PURGE", "/")));
}

TEST(RouterMethodTest, ListIsExactAndCaseSensitive) {
  Route r = prefix_route("r", "/");
  r.match.methods = {"GET", "HEAD"};
  EXPECT_TRUE(route_matches(r, request("GET", "/")));
  EXPECT_TRUE(route_matches(r, request("HEAD", "/")));
  EXPECT_FALSE(route_matches(r, request("POST", "/")));
  EXPECT_FALSE(route_matches(r, request("get", "/")));
  EXPECT_FALSE(route_matches(r, request("GETX", "/")));
}

TEST(RouterMethodTest, MethodAndPathMustBothMatch) {
  VirtualHost v = vhost("v", {"*"});
  Route post = prefix_route("post", "/items");
  post.match.methods = {"POST"};
  v.routes.push_back(post);
  v.routes.push_back(prefix_route("any", "/items"));
  EXPECT_EQ(match_route(v, request("POST", "/items"))->name, "post");
  EXPECT_EQ(match_route(v, request("GET", "/items"))->name, "any");
}

// ---------------------------------------------------------------------------------------------
// Headers

Route with_header(HeaderMatcher m) {
  Route r = prefix_route("h", "/");
  r.match.headers.push_back(std::move(m));
  return r;
}

TEST(RouterHeaderTest, PresentOnly) {
  Route r = with_header({.name = "x-debug", .present_only = true});
  EXPECT_TRUE(route_matches(r, request("GET", "/", "", "h", {{"X-Debug", ""}})));
  EXPECT_TRUE(route_matches(r, request("GET", "/", "", "h", {{"x-debug", "1"}})));
  EXPECT_FALSE(route_matches(r, request("GET", "/", "", "h", {{"x-debugger", "1"}})));
  EXPECT_FALSE(route_matches(r, request("GET", "/")));
}

TEST(RouterHeaderTest, ExactValueNameCaseInsensitiveValueCaseSensitive) {
  Route r = with_header({.name = "x-env", .value = "canary"});
  EXPECT_TRUE(route_matches(r, request("GET", "/", "", "h", {{"X-ENV", "canary"}})));
  EXPECT_FALSE(route_matches(r, request("GET", "/", "", "h", {{"x-env", "Canary"}})));
  EXPECT_FALSE(route_matches(r, request("GET", "/", "", "h", {{"x-env", "canary2"}})));
  EXPECT_FALSE(route_matches(r, request("GET", "/", "", "h", {{"x-env", ""}})));
  EXPECT_FALSE(route_matches(r, request("GET", "/")));
}

TEST(RouterHeaderTest, AnyHeaderWithTheNameMayCarryTheValue) {
  Route r = with_header({.name = "x-env", .value = "canary"});
  EXPECT_TRUE(
      route_matches(r, request("GET", "/", "", "h", {{"x-env", "prod"}, {"X-Env", "canary"}})));
  EXPECT_FALSE(
      route_matches(r, request("GET", "/", "", "h", {{"x-env", "prod"}, {"x-other", "canary"}})));
}

TEST(RouterHeaderTest, EmptyExpectedValueMatchesOnlyAnEmptyValue) {
  Route r = with_header({.name = "x-empty", .value = ""});
  EXPECT_TRUE(route_matches(r, request("GET", "/", "", "h", {{"x-empty", ""}})));
  EXPECT_FALSE(route_matches(r, request("GET", "/", "", "h", {{"x-empty", "v"}})));
  EXPECT_FALSE(route_matches(r, request("GET", "/")));
}

TEST(RouterHeaderTest, RegexIsAFullMatchOfTheValue) {
  Route r = with_header({.name = "x-version", .regex = regex("v[0-9]+")});
  EXPECT_TRUE(route_matches(r, request("GET", "/", "", "h", {{"x-version", "v12"}})));
  EXPECT_FALSE(route_matches(r, request("GET", "/", "", "h", {{"x-version", "v12-beta"}})));
  EXPECT_FALSE(route_matches(r, request("GET", "/", "", "h", {{"x-version", "xv1"}})));
  EXPECT_TRUE(
      route_matches(r, request("GET", "/", "", "h", {{"x-version", "no"}, {"x-version", "v1"}})));
  EXPECT_FALSE(route_matches(r, request("GET", "/")));
}

TEST(RouterHeaderTest, InvertedValue) {
  Route r = with_header({.name = "x-env", .value = "canary", .invert = true});
  EXPECT_FALSE(route_matches(r, request("GET", "/", "", "h", {{"x-env", "canary"}})));
  EXPECT_TRUE(route_matches(r, request("GET", "/", "", "h", {{"x-env", "prod"}})));
  EXPECT_TRUE(route_matches(r, request("GET", "/")));  // absent header + invert → match
  // One header carrying the value is enough for the (non-inverted) match, so the inversion fails.
  EXPECT_FALSE(
      route_matches(r, request("GET", "/", "", "h", {{"x-env", "prod"}, {"x-env", "canary"}})));
}

TEST(RouterHeaderTest, InvertedPresenceAndRegex) {
  Route absent = with_header({.name = "authorization", .present_only = true, .invert = true});
  EXPECT_TRUE(route_matches(absent, request("GET", "/")));
  EXPECT_FALSE(route_matches(absent, request("GET", "/", "", "h", {{"Authorization", "x"}})));
  Route not_v = with_header({.name = "x-version", .regex = regex("v[0-9]+"), .invert = true});
  EXPECT_FALSE(route_matches(not_v, request("GET", "/", "", "h", {{"x-version", "v2"}})));
  EXPECT_TRUE(route_matches(not_v, request("GET", "/", "", "h", {{"x-version", "beta"}})));
  EXPECT_TRUE(route_matches(not_v, request("GET", "/")));
}

TEST(RouterHeaderTest, EveryMatcherMustMatch) {
  Route r = prefix_route("h", "/");
  r.match.headers.push_back({.name = "x-a", .value = "1"});
  r.match.headers.push_back({.name = "x-b", .present_only = true});
  EXPECT_TRUE(route_matches(r, request("GET", "/", "", "h", {{"x-a", "1"}, {"x-b", "z"}})));
  EXPECT_FALSE(route_matches(r, request("GET", "/", "", "h", {{"x-a", "1"}})));
  EXPECT_FALSE(route_matches(r, request("GET", "/", "", "h", {{"x-b", "z"}})));
}

// ---------------------------------------------------------------------------------------------
// Query parameters

Route with_query(QueryMatcher m) {
  Route r = prefix_route("q", "/");
  r.match.query.push_back(std::move(m));
  return r;
}

bool query_ok(const Route& r, std::string_view query) {
  return route_matches(r, request("GET", "/", query));
}

TEST(RouterQueryTest, PresentOnly) {
  Route r = with_query({.name = "debug", .present_only = true});
  EXPECT_TRUE(query_ok(r, "debug=1"));
  EXPECT_TRUE(query_ok(r, "a=1&debug"));  // no '='
  EXPECT_TRUE(query_ok(r, "debug="));     // empty value
  EXPECT_TRUE(query_ok(r, "x=debug&debug=0"));
  EXPECT_FALSE(query_ok(r, "x=debug"));  // a value is not a name
  EXPECT_FALSE(query_ok(r, "debugger=1"));
  EXPECT_FALSE(query_ok(r, "Debug=1"));  // names are compared exactly
  EXPECT_FALSE(query_ok(r, ""));
}

TEST(RouterQueryTest, ExactValue) {
  Route r = with_query({.name = "v", .value = "2"});
  EXPECT_TRUE(query_ok(r, "v=2"));
  EXPECT_TRUE(query_ok(r, "a=1&v=2&b=3"));
  EXPECT_FALSE(query_ok(r, "v=20"));
  EXPECT_FALSE(query_ok(r, "v=%32"));  // no percent-decoding
  EXPECT_FALSE(query_ok(r, "v"));
  EXPECT_FALSE(query_ok(r, "V=2"));
}

TEST(RouterQueryTest, EmptyValueAndMissingEquals) {
  Route r = with_query({.name = "flag", .value = ""});
  EXPECT_TRUE(query_ok(r, "flag="));
  EXPECT_TRUE(query_ok(r, "flag"));  // no '=' means an empty value
  EXPECT_FALSE(query_ok(r, "flag=1"));
  EXPECT_FALSE(query_ok(r, ""));
}

TEST(RouterQueryTest, FirstEqualsSplitsNameAndValue) {
  Route r = with_query({.name = "expr", .value = "a=b"});
  EXPECT_TRUE(query_ok(r, "expr=a=b"));
  EXPECT_FALSE(query_ok(r, "expr=a"));
  Route empty_name = with_query({.name = "", .value = "x"});
  EXPECT_TRUE(query_ok(empty_name, "=x"));
}

TEST(RouterQueryTest, RepeatedNamesMatchWhenAnyOccurrenceMatches) {
  Route r = with_query({.name = "tag", .value = "b"});
  EXPECT_TRUE(query_ok(r, "tag=a&tag=b"));
  EXPECT_TRUE(query_ok(r, "tag=b&tag=a"));
  EXPECT_FALSE(query_ok(r, "tag=a&tag=c"));
}

TEST(RouterQueryTest, EmptySegmentsAreSkipped) {
  Route r = with_query({.name = "b", .value = "2"});
  EXPECT_TRUE(query_ok(r, "a=1&&b=2"));
  EXPECT_TRUE(query_ok(r, "&b=2&"));
  EXPECT_TRUE(query_ok(r, "&&&b=2"));
}

TEST(RouterQueryTest, RegexIsAFullMatchOfTheValue) {
  Route r = with_query({.name = "id", .regex = regex("[0-9]{3}")});
  EXPECT_TRUE(query_ok(r, "id=123"));
  EXPECT_FALSE(query_ok(r, "id=1234"));
  EXPECT_FALSE(query_ok(r, "id=12"));
  EXPECT_TRUE(query_ok(r, "id=x&id=999"));
  EXPECT_FALSE(query_ok(r, "id"));
}

TEST(RouterQueryTest, EveryMatcherMustMatch) {
  Route r = prefix_route("q", "/");
  r.match.query.push_back({.name = "a", .value = "1"});
  r.match.query.push_back({.name = "b", .present_only = true});
  EXPECT_TRUE(query_ok(r, "b&a=1"));
  EXPECT_FALSE(query_ok(r, "a=1"));
  EXPECT_FALSE(query_ok(r, "b=1"));
}

// The data plane compiles the snapshot's patterns (the snapshot carries none compiled).
TEST(RouterRegexesTest, CompiledPerVirtualHostInMatcherOrder) {
  VirtualHost v = vhost("v", {"*"});
  Route plain = prefix_route("plain", "/p");
  Route re = regex_route("re", "/item/[0-9]+");
  re.match.headers.push_back({.name = "x-id", .regex = regex("a+")});
  re.match.headers.push_back({.name = "x-any", .present_only = true});
  re.match.query.push_back({.name = "q", .regex = regex("[a-z]")});
  v.routes = {plain, re};
  RouteRegexes regexes(v);
  EXPECT_TRUE(regexes.errors().empty());
  ASSERT_NE(regexes.route(1), nullptr);
  EXPECT_NE(regexes.route(1)[0], nullptr);  // the path
  EXPECT_NE(regexes.route(1)[1], nullptr);  // x-id
  EXPECT_EQ(regexes.route(1)[2], nullptr);  // x-any: not a regex
  EXPECT_NE(regexes.route(1)[3], nullptr);  // q
  auto head = request("GET", "/item/42", "q=z", "example.com", {{"X-Id", "aaa"}, {"x-any", ""}});
  EXPECT_EQ(match_route(v, regexes, RequestView::of(head)), &v.routes[1]);
  auto wrong = request("GET", "/item/42", "q=Z", "example.com", {{"X-Id", "aaa"}, {"x-any", ""}});
  EXPECT_EQ(match_route(v, regexes, RequestView::of(wrong)), nullptr);
  // A virtual host without any regex has no slots at all.
  VirtualHost none = vhost("n", {"*"});
  none.routes = {plain};
  EXPECT_EQ(RouteRegexes(none).route(0), nullptr);
}

TEST(RouterRegexesTest, CaseInsensitivePathRegexAndBadPatterns) {
  VirtualHost v = vhost("v", {"*"});
  Route re = regex_route("re", "/api/v[0-9]");
  re.match.case_sensitive = false;
  re.match.regex->case_sensitive = false;
  Route bad = regex_route("bad", "/(unclosed");
  v.routes = {bad, re};
  RouteRegexes regexes(v);
  ASSERT_EQ(regexes.errors().size(), 1u);
  EXPECT_NE(regexes.errors()[0].find("/(unclosed"), std::string::npos);
  // The bad pattern never matches (fail closed); the next route still does, in any case.
  auto head = request("GET", "/API/V2");
  EXPECT_EQ(match_route(v, regexes, RequestView::of(head)), &v.routes[1]);
  auto other = request("GET", "/(unclosed");
  EXPECT_EQ(match_route(v, regexes, RequestView::of(other)), nullptr);
}

// ---------------------------------------------------------------------------------------------
// Weighted clusters

TEST(RouterPickClusterTest, WeightsPartitionTheRange) {
  snapshot::ForwardAction a;
  a.clusters = {{"blue", 1}, {"green", 3}, {"red", 6}};
  a.total_weight = 10;
  EXPECT_EQ(pick_cluster(a, 0), "blue");
  EXPECT_EQ(pick_cluster(a, 1), "green");
  EXPECT_EQ(pick_cluster(a, 3), "green");
  EXPECT_EQ(pick_cluster(a, 4), "red");
  EXPECT_EQ(pick_cluster(a, 9), "red");
  EXPECT_EQ(pick_cluster(a, 10), "red");  // out of range: the last one
  int counts[3] = {0, 0, 0};
  for (uint32_t r = 0; r < a.total_weight; ++r) {
    const std::string& c = pick_cluster(a, r);
    counts[c == "blue" ? 0 : c == "green" ? 1 : 2]++;
  }
  EXPECT_EQ(counts[0], 1);
  EXPECT_EQ(counts[1], 3);
  EXPECT_EQ(counts[2], 6);
}

TEST(RouterPickClusterTest, SingleAndEmpty) {
  snapshot::ForwardAction one;
  one.clusters = {{"only", 5}};
  one.total_weight = 5;
  EXPECT_EQ(pick_cluster(one, 0), "only");
  EXPECT_EQ(pick_cluster(one, 4), "only");
  snapshot::ForwardAction none;
  EXPECT_EQ(pick_cluster(none, 0), "");
}

TEST(RouterPickDestinationTest, AllUsableIsThePlainWeightedPick) {
  snapshot::ForwardAction a;
  a.clusters = {{"stable", 90}, {"canary", 10}};
  a.total_weight = 100;
  int skipped = 0;
  int asked = 0;
  auto all = [&](size_t) {
    ++asked;
    return true;
  };
  EXPECT_EQ(pick_destination(a, 89, all, &skipped), 0u);
  EXPECT_EQ(skipped, -1);
  EXPECT_EQ(pick_destination(a, 90, all, &skipped), 1u);
  EXPECT_EQ(pick_destination(a, 199, all, &skipped), 1u);  // modulo total_weight
  EXPECT_EQ(asked, 3);                                     // once per request
  int counts[2] = {0, 0};
  for (uint64_t r = 0; r < 1000; ++r)
    counts[pick_destination(a, r, all, &skipped)]++;
  EXPECT_EQ(counts[0], 900);
  EXPECT_EQ(counts[1], 100);
}

TEST(RouterPickDestinationTest, AnEmptyDestinationGivesItsShareToTheOthers) {
  snapshot::ForwardAction a;
  a.clusters = {{"stable", 90}, {"canary", 10}, {"other", 100}};
  a.total_weight = 200;
  auto no_canary = [](size_t i) { return i != 1; };
  int counts[3] = {0, 0, 0};
  int skips = 0;
  for (uint64_t r = 0; r < 200 * 190; ++r) {
    int skipped = -1;
    size_t i = pick_destination(a, r, no_canary, &skipped);
    counts[i]++;
    if (skipped >= 0) {
      EXPECT_EQ(skipped, 1);
      ++skips;
    }
  }
  EXPECT_EQ(counts[1], 0);
  EXPECT_EQ(skips, 10 * 190);
  // The canary's share split by weight between the others: 90:100 overall.
  EXPECT_EQ(counts[0], 90 * 200);
  EXPECT_EQ(counts[2], 100 * 200);
}

TEST(RouterPickDestinationTest, NoUsableDestinationKeepsThePlainPick) {
  snapshot::ForwardAction a;
  a.clusters = {{"a", 1}, {"b", 1}};
  a.total_weight = 2;
  int skipped = 0;
  auto none = [](size_t) { return false; };
  EXPECT_EQ(pick_destination(a, 0, none, &skipped), 0u);
  EXPECT_EQ(pick_destination(a, 1, none, &skipped), 1u);
  EXPECT_EQ(skipped, -1);
  snapshot::ForwardAction one;
  one.clusters = {{"only", 5}};
  one.total_weight = 5;
  EXPECT_EQ(pick_destination(one, 3, none, &skipped), 0u);
  EXPECT_EQ(skipped, -1);
}

// ---------------------------------------------------------------------------------------------
// Rewrites

std::string rewritten(const Route& route, const http::RequestHead& req) {
  std::string out = "garbage";
  rewrite_target(route, req, out);
  return out;
}

TEST(RouterRewriteTest, NoRewriteKeepsPathAndQuery) {
  Route r = prefix_route("r", "/api");
  EXPECT_EQ(rewritten(r, request("GET", "/api/users")), "/api/users");
  EXPECT_EQ(rewritten(r, request("GET", "/api/users", "a=1&b")), "/api/users?a=1&b");
}

TEST(RouterRewriteTest, PrefixRewriteReplacesTheMatchedPrefix) {
  Route r = prefix_route("r", "/api/");
  r.options.prefix_rewrite = "/";
  EXPECT_EQ(rewritten(r, request("GET", "/api/users")), "/users");
  EXPECT_EQ(rewritten(r, request("GET", "/api/users", "x=1")), "/users?x=1");
  EXPECT_EQ(rewritten(r, request("GET", "/api/")), "/");
  r.options.prefix_rewrite = "/v2/";
  EXPECT_EQ(rewritten(r, request("GET", "/api/users")), "/v2/users");
}

TEST(RouterRewriteTest, PrefixRewriteIsLiteral) {
  Route r = prefix_route("r", "/api");
  r.options.prefix_rewrite = "/";
  EXPECT_EQ(rewritten(r, request("GET", "/api/users")), "//users");
}

TEST(RouterRewriteTest, CaseInsensitivePrefixIsReplacedAsReceived) {
  Route r = prefix_route("r", "/api", false);
  r.options.prefix_rewrite = "/internal";
  EXPECT_EQ(rewritten(r, request("GET", "/API/users")), "/internal/users");
}

TEST(RouterRewriteTest, EmptyResultBecomesSlash) {
  Route r = prefix_route("r", "/api");
  r.options.prefix_rewrite = "";
  EXPECT_EQ(rewritten(r, request("GET", "/api")), "/");
  EXPECT_EQ(rewritten(r, request("GET", "/api", "q")), "/?q");
  EXPECT_EQ(rewritten(r, request("GET", "/api/x")), "/x");
}

TEST(RouterRewriteTest, ExactAndRegexRoutesReplaceTheWholePath) {
  Route e = exact_route("e", "/old");
  e.options.prefix_rewrite = "/new";
  EXPECT_EQ(rewritten(e, request("GET", "/old", "k=v")), "/new?k=v");
  Route re = regex_route("re", "/users/[0-9]+");
  re.options.prefix_rewrite = "/user";
  EXPECT_EQ(rewritten(re, request("GET", "/users/7")), "/user");
}

// ---------------------------------------------------------------------------------------------
// Redirects

std::string location(const RedirectAction& a, const Route& r, const http::RequestHead& req,
                     std::string_view scheme = "http") {
  return redirect_location(a, r, req, scheme);
}

TEST(RouterRedirectTest, HttpsRedirectKeepsHostPathAndQuery) {
  Route r = prefix_route("r", "/");
  RedirectAction a{.https = true};
  EXPECT_EQ(location(a, r, request("GET", "/a/b", "x=1", "example.com")),
            "https://example.com/a/b?x=1");
  // The old scheme's default port is dropped; another port is kept.
  EXPECT_EQ(location(a, r, request("GET", "/", "", "example.com:80")), "https://example.com/");
  EXPECT_EQ(location(a, r, request("GET", "/", "", "example.com:8080")),
            "https://example.com:8080/");
}

TEST(RouterRedirectTest, KeepsTheRequestSchemeWithoutHttps) {
  Route r = prefix_route("r", "/");
  RedirectAction a{.path = "/moved"};
  EXPECT_EQ(location(a, r, request("GET", "/old", "", "a.com:8443"), "https"),
            "https://a.com:8443/moved");
  EXPECT_EQ(location(a, r, request("GET", "/old", "", "a.com:443"), "https"),
            "https://a.com/moved");
}

TEST(RouterRedirectTest, HostReplacement) {
  Route r = prefix_route("r", "/");
  RedirectAction a{.host = "new.example.com"};
  EXPECT_EQ(location(a, r, request("GET", "/p", "q=1", "old.example.com:8080")),
            "http://new.example.com/p?q=1");
  RedirectAction with_port{.host = "new.example.com:9000"};
  EXPECT_EQ(location(with_port, r, request("GET", "/p", "", "old.example.com")),
            "http://new.example.com:9000/p");
}

TEST(RouterRedirectTest, PortReplacement) {
  Route r = prefix_route("r", "/");
  RedirectAction a{.port = 8443};
  EXPECT_EQ(location(a, r, request("GET", "/p", "", "a.com:8080")), "http://a.com:8443/p");
  EXPECT_EQ(location(a, r, request("GET", "/p", "", "a.com")), "http://a.com:8443/p");
  EXPECT_EQ(location(a, r, request("GET", "/p", "", "[::1]:8080")), "http://[::1]:8443/p");
  RedirectAction https_443{.https = true, .port = 443};
  EXPECT_EQ(location(https_443, r, request("GET", "/p", "", "a.com:8080")), "https://a.com/p");
  RedirectAction host_and_port{.host = "b.com", .port = 9000};
  EXPECT_EQ(location(host_and_port, r, request("GET", "/p", "", "a.com:8080")),
            "http://b.com:9000/p");
}

TEST(RouterRedirectTest, PathReplacementAndItsOwnQuery) {
  Route r = prefix_route("r", "/");
  RedirectAction a{.path = "/new"};
  EXPECT_EQ(location(a, r, request("GET", "/old", "a=1", "h.com")), "http://h.com/new?a=1");
  RedirectAction with_query{.path = "/new?lang=en"};
  EXPECT_EQ(location(with_query, r, request("GET", "/old", "a=1", "h.com")),
            "http://h.com/new?lang=en");
}

TEST(RouterRedirectTest, PrefixRewrite) {
  Route r = prefix_route("r", "/old/");
  RedirectAction a{.prefix_rewrite = "/new/"};
  EXPECT_EQ(location(a, r, request("GET", "/old/page", "x", "h.com")), "http://h.com/new/page?x");
}

TEST(RouterRedirectTest, StripQuery) {
  Route r = prefix_route("r", "/");
  RedirectAction a{.https = true, .strip_query = true};
  EXPECT_EQ(location(a, r, request("GET", "/p", "secret=1", "h.com")), "https://h.com/p");
  EXPECT_EQ(location(a, r, request("GET", "/p", "", "h.com")), "https://h.com/p");
}

TEST(RouterRedirectTest, WithoutAnyHostTheLocationIsRelative) {
  Route r = prefix_route("r", "/");
  RedirectAction a{.path = "/login"};
  EXPECT_EQ(location(a, r, request("GET", "/p", "n=1", "")), "/login?n=1");
}

}  // namespace
}  // namespace portico::proxy::router
