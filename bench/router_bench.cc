// Router micro-benchmarks: virtual-host selection and route matching over a listener of 100 virtual
// hosts × 50 routes (a mix of prefix, case-insensitive prefix, exact, regex, header and query
// routes), as the data plane does on every request. Single-threaded.
#include <benchmark/benchmark.h>

#include <memory>
#include <string>
#include <vector>

#include "proxy/router/router.h"

namespace {

using portico::proxy::http::Header;
using portico::proxy::http::RequestHead;
using portico::proxy::router::CompiledListener;
using portico::snapshot::HeaderMatcher;
using portico::snapshot::Listener;
using portico::snapshot::PathMatchKind;
using portico::snapshot::QueryMatcher;
using portico::snapshot::Regex;
using portico::snapshot::Route;
using portico::snapshot::VirtualHost;

constexpr int kVhosts = 100;
constexpr int kRoutes = 50;

Regex make_regex(const std::string& pattern) {
  return Regex{pattern, true};
}

// Route i of a virtual host. Every 10 routes: 1 regex, 1 case-insensitive prefix, 1 exact, 2 with a
// header matcher, 1 with a query matcher, 4 plain prefixes. The last route is a plain "/svc49/".
Route make_route(int i) {
  Route r;
  r.name = "route-" + std::to_string(i);
  std::string base = "/svc" + std::to_string(i) + "/";
  r.match.path = base;
  if (i == kRoutes - 1) return r;
  switch (i % 10) {
    case 7:
      r.match.kind = PathMatchKind::kRegex;
      r.match.path = "/re" + std::to_string(i) + "/[0-9]+";
      r.match.regex = make_regex(r.match.path);
      break;
    case 3:
      r.match.case_sensitive = false;
      r.match.path = "/Svc" + std::to_string(i) + "/";
      break;
    case 5:
      r.match.kind = PathMatchKind::kExact;
      r.match.path = base + "health";
      break;
    case 4:
    case 8:
      r.match.headers.push_back(HeaderMatcher{.name = "x-env", .value = "canary"});
      break;
    case 9:
      r.match.query.push_back(QueryMatcher{.name = "debug", .present_only = true});
      break;
    default:
      break;
  }
  return r;
}

const Listener& listener() {
  static const Listener* l = [] {
    auto* out = new Listener;
    for (int v = 0; v < kVhosts; ++v) {
      VirtualHost vh;
      vh.name = "ns/vs" + std::to_string(v);
      switch (v % 4) {
        case 0:
        case 1:
          vh.domains = {"host" + std::to_string(v) + ".example.com",
                        "www.host" + std::to_string(v) + ".example.com"};
          break;
        case 2:
          vh.domains = {"*.zone" + std::to_string(v) + ".example.com"};
          break;
        case 3:
          vh.domains = {"api" + std::to_string(v) + ".*"};
          break;
      }
      for (int i = 0; i < kRoutes; ++i)
        vh.routes.push_back(make_route(i));
      out->virtual_hosts.push_back(std::make_shared<VirtualHost>(std::move(vh)));
    }
    portico::snapshot::edit_virtual_host(out->virtual_hosts, out->virtual_hosts.size() - 1)
        .domains.push_back("*");
    return out;
  }();
  return *l;
}

const CompiledListener& compiled() {
  static const CompiledListener c(listener());
  return c;
}

RequestHead make_request(std::string_view path, std::string_view query = {}) {
  RequestHead r;
  r.method = "GET";
  r.path = path;
  r.query = query;
  r.host = "host96.example.com";
  static const std::string_view kNames[] = {"User-Agent", "Accept", "Accept-Encoding", "X-Env",
                                            "X-Request-Id"};
  static const std::string_view kValues[] = {"bench/1.0", "*/*", "gzip", "prod", "abc123"};
  for (size_t i = 0; i < 5; ++i)
    r.headers.push_back(Header{kNames[i], kValues[i]}), ++r.header_count;
  return r;
}

void BM_SelectVirtualHost(benchmark::State& state, std::string host) {
  const auto& c = compiled();
  for (auto _ : state) {
    benchmark::DoNotOptimize(c.select_virtual_host(host));
  }
}
BENCHMARK_CAPTURE(BM_SelectVirtualHost, exact, std::string("host96.example.com"));
BENCHMARK_CAPTURE(BM_SelectVirtualHost, exact_mixed_case_port,
                  std::string("HOST96.Example.com:8080"));
BENCHMARK_CAPTURE(BM_SelectVirtualHost, suffix_wildcard, std::string("a.b.zone98.example.com"));
BENCHMARK_CAPTURE(BM_SelectVirtualHost, prefix_wildcard, std::string("api99.internal.net"));
BENCHMARK_CAPTURE(BM_SelectVirtualHost, catch_all, std::string("unknown.org"));

// Which route is matched: the first, one in the middle, the last (walks all 50), none.
void BM_MatchRoute(benchmark::State& state, std::string path) {
  const VirtualHost& vh = *listener().virtual_hosts[96];
  const portico::proxy::router::RouteRegexes regexes(vh);  // as the data plane compiles them
  RequestHead req = make_request(path, "a=1&b=2");
  for (auto _ : state) {
    benchmark::DoNotOptimize(portico::proxy::router::match_route(
        vh, regexes, portico::proxy::router::RequestView::of(req)));
  }
}
BENCHMARK_CAPTURE(BM_MatchRoute, first, std::string("/svc0/items"));
BENCHMARK_CAPTURE(BM_MatchRoute, middle_26, std::string("/svc26/items"));
BENCHMARK_CAPTURE(BM_MatchRoute, last_50, std::string("/svc49/items"));
BENCHMARK_CAPTURE(BM_MatchRoute, no_match, std::string("/nothing/here"));

// The whole per-request routing step: Host → vhost → route, rotating over hosts and paths.
void BM_SelectAndMatch(benchmark::State& state) {
  const auto& c = compiled();
  std::vector<std::string> hosts;
  std::vector<std::string> paths;
  for (int v = 0; v < kVhosts; ++v) {
    switch (v % 4) {
      case 0:
      case 1:
        hosts.push_back("host" + std::to_string(v) + ".example.com");
        break;
      case 2:
        hosts.push_back("x.zone" + std::to_string(v) + ".example.com");
        break;
      case 3:
        hosts.push_back("api" + std::to_string(v) + ".internal:8443");
        break;
    }
  }
  for (int i = 0; i < kRoutes; ++i)
    paths.push_back("/svc" + std::to_string(i) + "/x");
  std::vector<portico::proxy::router::RouteRegexes> regexes;
  for (const auto& vh : listener().virtual_hosts)
    regexes.emplace_back(*vh);
  RequestHead req = make_request("/", "debug");
  size_t n = 0;
  for (auto _ : state) {
    req.host = hosts[n % hosts.size()];
    req.path = paths[(n * 7) % paths.size()];
    ++n;
    const size_t i = c.select_index(req.host);
    benchmark::DoNotOptimize(portico::proxy::router::match_route(
        *listener().virtual_hosts[i], regexes[i], portico::proxy::router::RequestView::of(req)));
  }
}
BENCHMARK(BM_SelectAndMatch);

// The same walk over 50 plain case-sensitive prefix routes: the cost of the router itself, without
// RE2 and header/query matchers.
void BM_MatchRoutePlainPrefixes(benchmark::State& state, std::string path) {
  VirtualHost vh;
  for (int i = 0; i < kRoutes; ++i) {
    Route r;
    r.match.path = "/svc" + std::to_string(i) + "/";
    vh.routes.push_back(std::move(r));
  }
  const portico::proxy::router::RouteRegexes regexes(vh);
  RequestHead req = make_request(path);
  for (auto _ : state) {
    benchmark::DoNotOptimize(portico::proxy::router::match_route(
        vh, regexes, portico::proxy::router::RequestView::of(req)));
  }
}
BENCHMARK_CAPTURE(BM_MatchRoutePlainPrefixes, last_50, std::string("/svc49/items"));
BENCHMARK_CAPTURE(BM_MatchRoutePlainPrefixes, no_match, std::string("/nothing/here"));

void BM_RewriteTarget(benchmark::State& state) {
  Route r = make_route(1);
  r.options.prefix_rewrite = "/";
  RequestHead req = make_request("/svc1/users/42", "page=2");
  std::string out;
  for (auto _ : state) {
    portico::proxy::router::rewrite_target(r, req, out);
    benchmark::DoNotOptimize(out.data());
  }
}
BENCHMARK(BM_RewriteTarget);

void BM_CompileListener(benchmark::State& state) {
  const Listener& l = listener();
  for (auto _ : state) {
    CompiledListener c(l);
    benchmark::DoNotOptimize(&c);
  }
}
BENCHMARK(BM_CompileListener);

}  // namespace
