#include "cli/explain.h"

#include <gtest/gtest.h>

#include "cli/local.h"
#include "control/pipeline.h"
#include "proxy/http/h1_parser.h"
#include "proxy/router/router.h"

namespace portico::cli {
namespace {

using Json = nlohmann::ordered_json;

constexpr const char* kConfig = R"(
apiVersion: gateway.portico.dev/v1
kind: Gateway
metadata: {name: gw}
spec: {bindAddress: 127.0.0.1, bindPort: 8080}
---
apiVersion: gateway.portico.dev/v1
kind: Upstream
metadata: {name: echo}
spec:
  static:
    hosts: [{addr: 127.0.0.1, port: 9000}]
---
apiVersion: gateway.portico.dev/v1
kind: VirtualService
metadata: {name: web}
spec:
  virtualHost:
    domains: [web.example]
    routes:
      - name: health
        matchers: [{exact: /health}]
        directResponseAction: {status: 200, body: ok}
      - name: api-post
        matchers: [{prefix: /api, methods: [POST]}]
        routeAction: {single: {upstream: {name: echo}}}
      - name: api-prod
        matchers:
          - prefix: /api
            headers: [{name: x-env, value: prod}]
            queryParameters: [{name: debug, value: "1"}]
        routeAction: {single: {upstream: {name: echo}}}
      - name: api
        matchers: [{prefix: /api/}]
        routeAction: {single: {upstream: {name: echo}}}
        options:
          prefixRewrite: /v2/
          timeout: 5s
      - name: old
        matchers: [{prefix: /old}]
        redirectAction: {pathRedirect: /new, responseCode: 302}
---
apiVersion: gateway.portico.dev/v1
kind: VirtualService
metadata: {name: more}
spec:
  virtualHost:
    domains: [more.example]
    routes:
      - name: inverted
        matchers: [{prefix: /inv, headers: [{name: x-block, invertMatch: true}]}]
        directResponseAction: {status: 200}
      - name: regexes
        matchers:
          - regex: "/re/[0-9]+"
            headers: [{name: x-id, value: "[a-z]+", regex: true}]
            queryParameters: [{name: v, value: "[0-9]", regex: true}]
        directResponseAction: {status: 201}
      - name: any-case
        matchers: [{prefix: /CI, caseSensitive: false}]
        directResponseAction: {status: 202}
      - name: flag
        matchers: [{prefix: /p, queryParameters: [{name: flag}], methods: [GET, HEAD]}]
        directResponseAction: {status: 203}
)";

Json dump() {
  control::BuildResult r = control::build_from_files({{"config.yaml", kConfig}}, 7);
  EXPECT_TRUE(r.ok());
  for (const auto& d : r.file_errors)
    ADD_FAILURE() << d.to_string();
  for (const auto& s : r.resources) {
    for (const auto& d : s.reasons)
      ADD_FAILURE() << d.to_string();
  }
  return dump_of(r);
}

Json explain(const std::string& method, const std::string& url,
             std::vector<std::string> headers = {}) {
  ExplainRequest req;
  req.method = method;
  req.url = url;
  req.headers = std::move(headers);
  Json out;
  std::string error;
  EXPECT_TRUE(explain_route(dump(), req, &out, &error)) << error;
  return out;
}

TEST(ExplainTest, ForwardWithReasonsForEveryEarlierRoute) {
  Json x = explain("GET", "http://web.example:8080/api/users?id=3");
  EXPECT_EQ(x["outcome"], "forward");
  EXPECT_EQ(x["gateway"]["name"], "default/gw");
  EXPECT_EQ(x["virtual_service"]["name"], "default/web");
  EXPECT_EQ(x["route"]["name"], "default/web/api");
  ASSERT_EQ(x["routes"].size(), 4u) << x.dump(2);
  EXPECT_EQ(x["routes"][0]["reasons"][0], "path \"/api/users\" is not \"/health\"");
  EXPECT_EQ(x["routes"][1]["reasons"][0], "method GET is not one of POST");
  EXPECT_EQ(x["routes"][2]["reasons"],
            Json::array({"header x-env is absent (wanted: equal to \"prod\")",
                         "query parameter debug is absent (wanted: equal to \"1\")"}));
  EXPECT_TRUE(x["routes"][3]["matched"].get<bool>());
  EXPECT_TRUE(x["routes"][3]["reasons"].empty());
  EXPECT_EQ(x["upstreams"][0]["name"], "default/echo");
  EXPECT_EQ(x["upstreams"][0]["endpoints"][0], "127.0.0.1:9000");
  EXPECT_EQ(x["upstream_request"]["target"], "/v2/users?id=3");
  EXPECT_EQ(x["upstream_request"]["host"], "web.example:8080");
  EXPECT_EQ(x["policies"]["timeout_ms"], 5000);
  std::string text = render_explanation(x);
  EXPECT_NE(text.find("default/web/api"), std::string::npos) << text;
  EXPECT_NE(text.find("method GET is not one of POST"), std::string::npos) << text;
  EXPECT_NE(text.find("/v2/users?id=3"), std::string::npos) << text;
}

TEST(ExplainTest, HeadersAndQueryThatMatch) {
  Json x = explain("GET", "http://web.example:8080/api/x?debug=1", {"X-Env: prod"});
  EXPECT_EQ(x["route"]["name"], "default/web/api-prod");
  Json y = explain("GET", "http://web.example:8080/api/x?debug=2", {"X-Env: dev"});
  EXPECT_EQ(y["routes"][2]["reasons"],
            Json::array({"header x-env: \"dev\" is not equal to \"prod\"",
                         "query parameter debug: \"2\" is not equal to \"1\""}));
}

TEST(ExplainTest, HostHeaderReplacesTheUrlsHost) {
  Json x = explain("GET", "http://127.0.0.1:8080/health", {"Host: web.example"});
  EXPECT_EQ(x["outcome"], "direct_response");
  EXPECT_EQ(x["status"], 200);
}

TEST(ExplainTest, Redirect) {
  Json x = explain("GET", "http://web.example:8080/old/page?q=1");
  EXPECT_EQ(x["outcome"], "redirect");
  EXPECT_EQ(x["redirect"]["code"], 302);
  EXPECT_EQ(x["redirect"]["location"], "http://web.example:8080/new?q=1");
}

TEST(ExplainTest, NothingServes) {
  Json a = explain("GET", "http://web.example:9999/");
  EXPECT_EQ(a["outcome"], "no_gateway");
  EXPECT_NE(a["message"].get<std::string>().find("8080"), std::string::npos);
  Json b = explain("GET", "http://other.example:8080/");
  EXPECT_EQ(b["outcome"], "no_virtual_service");
  EXPECT_EQ(b["status"], 404);
  Json c = explain("GET", "http://web.example:8080/nothing");
  EXPECT_EQ(c["outcome"], "no_route");
  EXPECT_EQ(c["routes"].size(), 5u);
  Json d = explain("GET", "http://web.example:8080/", {"Bad Header: x"});
  EXPECT_EQ(d["outcome"], "bad_request");
  EXPECT_EQ(d["status"], 400);
}

TEST(ExplainTest, ReasonsForEveryKindOfMatcher) {
  auto reasons = [](const std::string& url, std::vector<std::string> headers, size_t route) {
    Json x = explain("GET", url, std::move(headers));
    return x["routes"][route]["reasons"];
  };
  EXPECT_EQ(reasons("http://more.example:8080/inv", {"X-Block: yes"}, 0),
            Json::array({"header x-block is present (\"yes\") and the matcher is inverted"}));
  EXPECT_EQ(reasons("http://more.example:8080/re/1a?v=x", {"X-Id: ABC"}, 1),
            Json::array({"path \"/re/1a\" does not match the regex \"/re/[0-9]+\"",
                         "header x-id: \"ABC\" is not matching the regex \"[a-z]+\"",
                         "query parameter v: \"x\" is not matching the regex \"[0-9]\""}));
  EXPECT_EQ(reasons("http://more.example:8080/x", {}, 2),
            Json::array({"path \"/x\" does not start with \"/CI\" (in any case)"}));
  Json x = explain("POST", "http://more.example:8080/p?flagx", {"Content-Length: 0"});
  EXPECT_EQ(x["routes"][3]["reasons"],
            Json::array({"method POST is not one of GET, HEAD",
                         "query parameter flag is absent (wanted: present)"}));
  EXPECT_EQ(explain("GET", "http://more.example:8080/ci")["status"], 202);
}

TEST(ExplainTest, Notes) {
  Json a = explain("GET", "https://web.example:8080/health");
  EXPECT_EQ(a["outcome"], "direct_response");
  ASSERT_EQ(a["notes"].size(), 1u);
  EXPECT_NE(a["notes"][0].get<std::string>().find("plain HTTP"), std::string::npos);
  // What is routed is the normalized path (HttpOptions::normalize_path, on by default).
  Json b = explain("GET", "http://web.example:8080/api/../%68ealth");
  EXPECT_EQ(b["outcome"], "direct_response");
  EXPECT_EQ(b["route"]["name"], "default/web/health");
  EXPECT_EQ(b["request"]["routed_path"], "/health");
  ASSERT_EQ(b["notes"].size(), 1u);
  EXPECT_EQ(b["notes"][0],
            "the path is normalized before routing: \"/api/../%68ealth\" -> \"/health\"");
  Json c = explain("GET", "http://web.example:8080/a%zz");
  EXPECT_EQ(c["outcome"], "bad_request");
  EXPECT_EQ(c["status"], 400);
  EXPECT_FALSE(explain("GET", "http://web.example:8080/health").contains("notes"));
}

// A configuration with match fields or actions the CLI does not know is refused, never explained
// with a guess.
TEST(ExplainTest, UnknownMatchFieldsAreRefused) {
  Json d = dump();
  d["listeners"][0]["virtual_hosts"][0]["routes"][0]["match"]["tls_only"] = true;
  ExplainRequest req{"GET", "http://web.example:8080/", {}};
  Json out;
  std::string error;
  EXPECT_FALSE(explain_route(d, req, &out, &error));
  EXPECT_NE(error.find("\"tls_only\" is not known"), std::string::npos) << error;
  Json e = dump();
  e["listeners"][0]["virtual_hosts"][0]["routes"][0].erase("direct_response");
  e["listeners"][0]["virtual_hosts"][0]["routes"][0]["delegate"] = Json::object();
  EXPECT_FALSE(explain_route(e, req, &out, &error));
  EXPECT_NE(error.find("no action"), std::string::npos) << error;
}

TEST(ExplainTest, InputErrors) {
  ExplainRequest req;
  Json out;
  std::string error;
  req.url = "ftp://x/";
  EXPECT_FALSE(explain_route(dump(), req, &out, &error));
  EXPECT_NE(error.find("ftp"), std::string::npos);
  req.url = "http:///path";
  EXPECT_FALSE(explain_route(dump(), req, &out, &error));
  req.url = "http://web.example:99999/";
  EXPECT_FALSE(explain_route(dump(), req, &out, &error));
  req.url = "http://web.example/";
  req.headers = {"no colon"};
  EXPECT_FALSE(explain_route(dump(), req, &out, &error));
  EXPECT_FALSE(explain_route(Json::object(), ExplainRequest{"GET", "http://a/", {}}, &out, &error));
}

// The configuration read back from /config_dump matches like the one it was dumped from, and
// route_mismatches agrees with route_matches (the hot-path predicate).
TEST(ExplainTest, DecodedConfigurationRoutesLikeTheOriginal) {
  control::BuildResult built = control::build_from_files({{"config.yaml", kConfig}}, 7);
  snapshot::ProxyConfig decoded;
  ASSERT_EQ(proxy_config_from_json(dump_of(built), &decoded), "");
  Json again = Json::parse(snapshot::to_json(decoded, false));
  Json original = dump_of(built);
  ASSERT_EQ(again["listeners"].size(), original["listeners"].size());
  for (size_t l = 0; l < original["listeners"].size(); ++l) {
    EXPECT_EQ(again["listeners"][l]["virtual_hosts"], original["listeners"][l]["virtual_hosts"]);
  }
  const char* requests[] = {
      "GET /api/x HTTP/1.1\r\nHost: web.example\r\n\r\n",
      "POST /api/x HTTP/1.1\r\nHost: web.example\r\n\r\n",
      "GET /api/x?debug=1 HTTP/1.1\r\nHost: web.example\r\nX-Env: prod\r\n\r\n",
      "GET /health HTTP/1.1\r\nHost: web.example\r\n\r\n",
      "GET /HEALTH HTTP/1.1\r\nHost: web.example\r\n\r\n",
      "GET /old HTTP/1.1\r\nHost: web.example\r\n\r\n",
      "DELETE /apix HTTP/1.1\r\nHost: web.example\r\n\r\n",
      "GET /inv HTTP/1.1\r\nHost: more.example\r\nX-Block: 1\r\n\r\n",
      "GET /inv HTTP/1.1\r\nHost: more.example\r\n\r\n",
      "GET /re/12?v=3 HTTP/1.1\r\nHost: more.example\r\nX-Id: abc\r\n\r\n",
      "GET /re/12?v=x HTTP/1.1\r\nHost: more.example\r\nX-Id: ABC\r\n\r\n",
      "GET /re/1a HTTP/1.1\r\nHost: more.example\r\n\r\n",
      "GET /ci/x HTTP/1.1\r\nHost: more.example\r\n\r\n",
      "GET /p?flag HTTP/1.1\r\nHost: more.example\r\n\r\n",
      "POST /p?flag=1 HTTP/1.1\r\nHost: more.example\r\nContent-Length: 0\r\n\r\n",
      "GET /p?flagx=1&&flag2 HTTP/1.1\r\nHost: more.example\r\n\r\n",
  };
  for (const char* text : requests) {
    proxy::http::RequestHead head;
    ASSERT_EQ(proxy::http::parse_request_head(text, head).status,
              proxy::http::ParseStatus::kComplete);
    for (size_t v = 0; v < decoded.listeners[0].virtual_hosts.size(); ++v) {
      const auto& a = *built.config->listeners[0].virtual_hosts[v];
      const auto& b = *decoded.listeners[0].virtual_hosts[v];
      const auto* ra = proxy::router::match_route(a, head);
      const auto* rb = proxy::router::match_route(b, head);
      EXPECT_EQ(ra ? ra->name : "", rb ? rb->name : "") << text;
      for (const auto& r : b.routes) {
        EXPECT_EQ(route_mismatches(r, head).empty(), proxy::router::route_matches(r, head))
            << text << r.name;
      }
    }
  }
}

}  // namespace
}  // namespace portico::cli
