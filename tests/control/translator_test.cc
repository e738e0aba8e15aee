#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>

#include "api/decode_helpers.h"
#include "control/pipeline.h"

namespace portico::control {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;

using api::test::lines;

const ResourceStatus& status(const BuildResult& r, const std::string& kind,
                             const std::string& ns_name) {
  for (const auto& s : r.resources) {
    if (s.kind == kind && s.ns + "/" + s.name == ns_name) return s;
  }
  static ResourceStatus none;
  ADD_FAILURE() << "no status for " << kind << " " << ns_name;
  return none;
}

BuildResult build(const std::string& yaml) {
  return build_from_files({{"c.yaml", yaml}}, 1);
}

TEST(ControlTranslate, TranslatesRoutesInOrder) {
  BuildResult r = build(R"(kind: Gateway
metadata: {name: gw, namespace: edge}
spec:
  bindAddress: 127.0.0.1
  bindPort: 8080
  httpOptions: {idleTimeout: 30s, serverName: portico}
---
kind: Upstream
metadata: {name: echo}
spec:
  static: {hosts: [{addr: 10.0.0.1, port: 80, weight: 2}, {addr: "::1", port: 81}]}
  loadBalancerConfig: {leastRequest: {}}
  connectionConfig: {connectTimeout: 250ms, maxRequestsPerConnection: 100, idleTimeout: 30s}
---
kind: Upstream
metadata: {name: canary}
spec:
  static: {hosts: [{addr: 10.0.0.2, port: 80}]}
---
kind: VirtualService
metadata: {name: shop}
spec:
  virtualHost:
    domains: [shop.example.com]
    routes:
      - name: api
        matchers: [{prefix: /api, methods: [GET]}, {exact: /v1, caseSensitive: false}]
        routeAction:
          multi:
            destinations:
              - {weight: 9, destination: {upstream: {name: echo}}}
              - {weight: 1, destination: {upstream: {name: canary}}}
        options:
          timeout: 0s
          prefixRewrite: /
          headerManipulation:
            responseHeadersToRemove: [Server]
      - matchers: [{prefix: /old}]
        redirectAction: {pathRedirect: /new, responseCode: 307, stripQuery: true}
      - directResponseAction: {status: 418, body: teapot}
)");
  EXPECT_THAT(lines(r.file_errors), IsEmpty());
  for (const auto& s : r.resources)
    EXPECT_THAT(lines(s.reasons), IsEmpty()) << s.name;
  ASSERT_TRUE(r.ok());
  const auto& cfg = *r.config;
  ASSERT_EQ(cfg.listeners.size(), 1u);
  const auto& l = cfg.listeners[0];
  EXPECT_EQ(l.name, "edge/gw");
  EXPECT_EQ(l.address, "127.0.0.1");
  EXPECT_EQ(l.port, 8080);
  EXPECT_EQ(l.http.idle_timeout, snapshot::Millis(30000));
  EXPECT_EQ(l.http.request_header_timeout, snapshot::Millis(10000));  // default kept
  EXPECT_EQ(l.http.server_name, "portico");
  ASSERT_EQ(l.virtual_hosts.size(), 1u);
  const auto& vh = *l.virtual_hosts[0];
  EXPECT_EQ(vh.name, "default/shop");
  EXPECT_EQ(vh.domains, std::vector<std::string>{"shop.example.com"});
  ASSERT_EQ(vh.routes.size(), 4u);  // route 0 has two matchers

  EXPECT_EQ(vh.routes[0].name, "default/shop/api");
  EXPECT_EQ(vh.routes[0].match.kind, snapshot::PathMatchKind::kPrefix);
  EXPECT_EQ(vh.routes[0].match.path, "/api");
  EXPECT_EQ(vh.routes[0].match.methods, std::vector<std::string>{"GET"});
  EXPECT_EQ(vh.routes[1].name, "default/shop/api");
  EXPECT_EQ(vh.routes[1].match.kind, snapshot::PathMatchKind::kExact);
  EXPECT_FALSE(vh.routes[1].match.case_sensitive);
  for (int i : {0, 1}) {
    const auto& fwd = std::get<snapshot::ForwardAction>(vh.routes[i].action);
    ASSERT_EQ(fwd.clusters.size(), 2u);
    EXPECT_EQ(fwd.clusters[0].cluster, "default/echo");
    EXPECT_EQ(fwd.clusters[0].weight, 9u);
    EXPECT_EQ(fwd.clusters[1].cluster, "default/canary");
    EXPECT_EQ(fwd.total_weight, 10u);
    EXPECT_EQ(vh.routes[i].options.timeout, snapshot::Millis(0));
    EXPECT_EQ(vh.routes[i].options.prefix_rewrite, "/");
    EXPECT_EQ(vh.routes[i].options.response_headers.remove, std::vector<std::string>{"server"});
  }
  EXPECT_EQ(vh.routes[2].name, "default/shop/1");
  const auto& redirect = std::get<snapshot::RedirectAction>(vh.routes[2].action);
  EXPECT_EQ(redirect.path, "/new");
  EXPECT_EQ(redirect.code, 307);
  EXPECT_TRUE(redirect.strip_query);
  EXPECT_EQ(vh.routes[3].name, "default/shop/2");
  EXPECT_EQ(vh.routes[3].match.path, "/");
  const auto& direct = std::get<snapshot::DirectResponseAction>(vh.routes[3].action);
  EXPECT_EQ(direct.status, 418);
  EXPECT_EQ(direct.body, "teapot");

  ASSERT_EQ(cfg.clusters.size(), 2u);  // sorted by namespace/name
  EXPECT_EQ(cfg.clusters[0].name, "default/canary");
  const auto& echo = cfg.clusters[1];
  EXPECT_EQ(echo.name, "default/echo");
  EXPECT_EQ(echo.lb, snapshot::LbPolicy::kLeastRequest);
  ASSERT_EQ(echo.endpoints.size(), 2u);
  EXPECT_EQ(echo.endpoints[0].address, "10.0.0.1");
  EXPECT_EQ(echo.endpoints[0].weight, 2u);
  EXPECT_EQ(echo.endpoints[1].address, "::1");
  EXPECT_EQ(echo.endpoints[1].weight, 1u);
  EXPECT_EQ(echo.connect_timeout, snapshot::Millis(250));
  EXPECT_EQ(echo.max_requests_per_connection, 100u);
  EXPECT_EQ(echo.idle_connection_timeout, snapshot::Millis(30000));
}

TEST(ControlTranslate, MissingUpstreamIsAWarningAndItsRouteAnswers503) {
  BuildResult r = build(R"(kind: Gateway
metadata: {name: gw}
spec: {bindPort: 8080}
---
kind: Upstream
metadata: {name: broken}
spec: {static: {hosts: [{addr: "backend local", port: 80}]}}
---
kind: VirtualService
metadata: {name: a}
spec:
  virtualHost:
    domains: [a.com]
    routes:
      - routeAction: {single: {upstream: {name: missing}}}
      - routeAction: {single: {upstream: {name: broken}}}
---
kind: VirtualService
metadata: {name: b}
spec:
  virtualHost:
    domains: [b.com]
    routes: [{directResponseAction: {status: 200}}]
)");
  EXPECT_FALSE(r.ok());
  EXPECT_THAT(lines(status(r, "Upstream", "default/broken").reasons),
              ElementsAre("c.yaml:7:32: error: spec.static.hosts[0].addr: \"backend local\" is "
                          "neither an IP address nor a DNS name"));
  const auto& a = status(r, "VirtualService", "default/a");
  EXPECT_EQ(a.state, State::kWarning);
  EXPECT_THAT(lines(a.reasons),
              ElementsAre("c.yaml:15:42: warning: spec.virtualHost.routes[0].routeAction.single."
                          "upstream: upstream default/missing not found; the route answers 503",
                          "c.yaml:16:9: warning: spec.virtualHost.routes[1]: route 1 is "
                          "unreachable: route 0 matches first",
                          "c.yaml:16:42: warning: spec.virtualHost.routes[1].routeAction.single."
                          "upstream: upstream default/broken is rejected; the route answers 503"));
  EXPECT_EQ(status(r, "VirtualService", "default/b").state, State::kAccepted);
  EXPECT_EQ(status(r, "Gateway", "default/gw").state, State::kAccepted);
  ASSERT_EQ(r.config->listeners.size(), 1u);
  // Both VirtualServices are served; a's routes point at clusters that do not exist (503).
  ASSERT_EQ(r.config->listeners[0].virtual_hosts.size(), 2u);
  EXPECT_EQ(r.config->listeners[0].virtual_hosts[0]->name, "default/a");
  const auto& fwd = std::get<snapshot::ForwardAction>(
      r.config->listeners[0].virtual_hosts[0]->routes.at(0).action);
  EXPECT_EQ(fwd.clusters.at(0).cluster, "default/missing");
  EXPECT_EQ(r.config->listeners[0].virtual_hosts[1]->name, "default/b");
  EXPECT_TRUE(r.config->clusters.empty());
}

TEST(ControlTranslate, BindConflictRejectsBothGateways) {
  BuildResult r = build(R"(kind: Gateway
metadata: {name: a}
spec: {bindPort: 8080}
---
kind: Gateway
metadata: {name: b}
spec: {bindAddress: 127.0.0.1, bindPort: 8080}
---
kind: Gateway
metadata: {name: c}
spec: {bindAddress: "::1", bindPort: 8080}
---
kind: Gateway
metadata: {name: d}
spec: {bindPort: 8081}
)");
  EXPECT_THAT(lines(status(r, "Gateway", "default/a").reasons),
              ElementsAre("c.yaml:3:18: error: spec.bindPort: bind address 0.0.0.0:8080 conflicts "
                          "with gateway default/b (127.0.0.1:8080)"));
  EXPECT_THAT(lines(status(r, "Gateway", "default/b").reasons),
              ElementsAre("c.yaml:7:42: error: spec.bindPort: bind address 127.0.0.1:8080 "
                          "conflicts with gateway default/a (0.0.0.0:8080)"));
  EXPECT_EQ(status(r, "Gateway", "default/c").state, State::kAccepted);
  EXPECT_EQ(status(r, "Gateway", "default/d").state, State::kAccepted);
  ASSERT_EQ(r.config->listeners.size(), 2u);
  EXPECT_EQ(r.config->listeners[0].name, "default/c");
  EXPECT_EQ(r.config->listeners[0].address, "::1");
  EXPECT_EQ(r.config->listeners[1].name, "default/d");
}

TEST(ControlTranslate, DomainConflictRejectsBothVirtualServices) {
  BuildResult r = build(R"(kind: Gateway
metadata: {name: gw}
spec: {bindPort: 8080}
---
kind: VirtualService
metadata: {name: a}
spec:
  virtualHost:
    domains: [Shop.com, a.com]
    routes: [{directResponseAction: {status: 200}}]
---
kind: VirtualService
metadata: {name: b, namespace: other}
spec:
  virtualHost:
    domains: [shop.com]
    routes: [{directResponseAction: {status: 200}}]
---
kind: VirtualService
metadata: {name: c}
spec:
  virtualHost:
    routes: [{directResponseAction: {status: 200}}]
)");
  EXPECT_THAT(lines(status(r, "VirtualService", "default/a").reasons),
              ElementsAre("c.yaml:9:15: error: spec.virtualHost.domains[0]: domain conflict: "
                          "\"shop.com\" is also served by virtual service other/b on gateway "
                          "default/gw"));
  EXPECT_THAT(lines(status(r, "VirtualService", "other/b").reasons),
              ElementsAre("c.yaml:16:15: error: spec.virtualHost.domains[0]: domain conflict: "
                          "\"shop.com\" is also served by virtual service default/a on gateway "
                          "default/gw"));
  EXPECT_EQ(status(r, "VirtualService", "default/c").state, State::kAccepted);
  ASSERT_EQ(r.config->listeners.at(0).virtual_hosts.size(), 1u);
  EXPECT_EQ(r.config->listeners[0].virtual_hosts[0]->name, "default/c");
  EXPECT_EQ(r.config->listeners[0].virtual_hosts[0]->domains, std::vector<std::string>{"*"});
}

TEST(ControlTranslate, GatewaySelection) {
  BuildResult r = build(R"(kind: Gateway
metadata: {name: by-ref, namespace: edge}
spec:
  bindPort: 8080
  virtualServices:
    - {name: a, namespace: default}
    - {name: nope}
---
kind: Gateway
metadata: {name: by-label}
spec:
  bindPort: 8081
  virtualServiceSelector: {labels: {team: b}}
---
kind: VirtualService
metadata: {name: a}
spec: {virtualHost: {domains: [a.com], routes: [{directResponseAction: {status: 200}}]}}
---
kind: VirtualService
metadata: {name: b, namespace: x, labels: {team: b}}
spec: {virtualHost: {domains: [b.com], routes: [{directResponseAction: {status: 200}}]}}
---
kind: VirtualService
metadata: {name: lonely}
spec: {virtualHost: {domains: [c.com], routes: [{directResponseAction: {status: 200}}]}}
)");
  EXPECT_THAT(lines(status(r, "Gateway", "edge/by-ref").reasons),
              ElementsAre("c.yaml:7:7: warning: spec.virtualServices[1]: virtual service "
                          "edge/nope not found"));
  EXPECT_EQ(status(r, "Gateway", "edge/by-ref").state, State::kWarning);
  EXPECT_THAT(lines(status(r, "VirtualService", "default/lonely").reasons),
              ElementsAre("c.yaml:23:1: warning: not served: no accepted gateway selects this "
                          "virtual service"));
  const auto& cfg = *r.config;
  ASSERT_EQ(cfg.listeners.size(), 2u);
  EXPECT_EQ(cfg.listeners[0].name, "default/by-label");
  ASSERT_EQ(cfg.listeners[0].virtual_hosts.size(), 1u);
  EXPECT_EQ(cfg.listeners[0].virtual_hosts[0]->name, "x/b");
  EXPECT_EQ(cfg.listeners[1].name, "edge/by-ref");
  ASSERT_EQ(cfg.listeners[1].virtual_hosts.size(), 1u);
  EXPECT_EQ(cfg.listeners[1].virtual_hosts[0]->name, "default/a");
}

TEST(ControlTranslate, IdenticalInputGivesIdenticalJson) {
  std::string a =
      "kind: Upstream\nmetadata: {name: u1}\nspec: {static: {hosts: [{addr: 1.1.1.1, "
      "port: 1}]}}\n";
  std::string b =
      "kind: Upstream\nmetadata: {name: u0, namespace: a-b}\nspec: {static: {hosts: "
      "[{addr: 1.1.1.1, port: 1}]}}\n";
  std::string g = "kind: Gateway\nmetadata: {name: g}\nspec: {bindPort: 1}\n";
  BuildResult r1 = build_from_files({{"1.yaml", a}, {"2.yaml", b}, {"3.yaml", g}}, 5);
  BuildResult r2 = build_from_files({{"3.yaml", g}, {"2.yaml", b}, {"1.yaml", a}}, 5);
  auto c1 = *r1.config, c2 = *r2.config;
  c1.created_unix_ms = c2.created_unix_ms = 0;
  EXPECT_EQ(snapshot::to_json(c1), snapshot::to_json(c2));
  ASSERT_EQ(c1.clusters.size(), 2u);
  EXPECT_EQ(c1.clusters[0].name, "a-b/u0");  // by namespace: "a-b" < "default"
  EXPECT_EQ(resources_to_json(r1.resources, r1.file_errors),
            resources_to_json(r2.resources, r2.file_errors));
}

TEST(ControlTranslate, QuickstartExampleIsClean) {
  BuildResult r = validate_directory(std::string(PORTICO_SOURCE_DIR) + "/examples/quickstart");
  EXPECT_THAT(lines(r.file_errors), IsEmpty());
  ASSERT_EQ(r.resources.size(), 3u);
  for (const auto& s : r.resources) {
    EXPECT_EQ(s.state, State::kAccepted) << s.kind << " " << s.name;
    EXPECT_THAT(lines(s.reasons), IsEmpty());
  }
  ASSERT_EQ(r.config->listeners.size(), 1u);
  EXPECT_EQ(r.config->listeners[0].port, 8080);
  ASSERT_EQ(r.config->listeners[0].virtual_hosts.size(), 1u);
  EXPECT_EQ(r.config->listeners[0].virtual_hosts[0]->routes.size(), 5u);
}

}  // namespace
}  // namespace portico::control

namespace portico::control {
namespace {

TEST(ControlTranslate, ReferencesWinOverSelectorAndRejectedServicesAreReported) {
  BuildResult r = build_from_files({{"c.yaml", R"(kind: Gateway
metadata: {name: gw}
spec:
  bindPort: 8080
  virtualServices: [{name: a}, {name: bad}, {name: bad}]
  virtualServiceSelector: {labels: {x: y}}
---
kind: VirtualService
metadata: {name: a}
spec: {virtualHost: {routes: [{directResponseAction: {status: 200}}]}}
---
kind: VirtualService
metadata: {name: bad}
spec: {virtualHost: {routes: [{directResponseAction: {status: 1}}]}}
)"}},
                                   1);
  std::vector<std::string> reasons;
  for (const auto& d : r.resources.at(0).reasons)
    reasons.push_back(d.to_string());
  EXPECT_THAT(reasons,
              ::testing::ElementsAre(
                  "c.yaml:5:32: warning: spec.virtualServices[1]: virtual service default/bad is "
                  "rejected and not served",
                  "c.yaml:5:45: warning: spec.virtualServices[2]: virtual service default/bad is "
                  "listed twice",
                  "c.yaml:6:27: warning: spec.virtualServiceSelector: is ignored because "
                  "virtualServices is set"));
  ASSERT_EQ(r.config->listeners.size(), 1u);
  ASSERT_EQ(r.config->listeners[0].virtual_hosts.size(), 1u);
  EXPECT_EQ(r.config->listeners[0].virtual_hosts[0]->name, "default/a");
}

// ---- TLS: Secrets, sslConfig, sslFiles (certificates made by `openssl` at test time) ----

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using ::testing::Not;

// A temporary configuration directory with a CA, a server certificate signed by it, and a key of
// another pair, in certs/.
class TlsDir {
 public:
  TlsDir() {
    std::random_device rd;
    path_ = fs::temp_directory_path() /
            ("portico-tls-" + std::to_string(::getpid()) + "-" + std::to_string(rd()));
    fs::create_directories(path_ / "certs");
    std::string c = "cd '" + (path_ / "certs").string() + "' && ";
    const char* ec = "-newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes";
    run(c + "openssl req -x509 " + ec + " -keyout ca.key -out ca.crt -subj /CN=test-ca -days 2");
    run(c + "openssl req " + ec + " -keyout server.key -out server.csr -subj /CN=shop.example.com");
    run(c +
        "openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out "
        "server.crt -days 2");
    run(c + "openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out other.key");
  }
  ~TlsDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  // certs/ocsp.der: a DER OCSP response for server.crt signed by the CA, and certs/ocsp.b64.
  void make_ocsp() const {
    std::string c = "cd '" + (path_ / "certs").string() + "' && ";
    run(c +
        "printf 'V\\t301231000000Z\\t\\t%s\\tunknown\\t/CN=shop.example.com\\n' "
        "$(openssl x509 -in server.crt -noout -serial | cut -d= -f2) > index.txt");
    run(c + "openssl ocsp -issuer ca.crt -cert server.crt -reqout req.der -no_nonce");
    run(c +
        "openssl ocsp -index index.txt -rsigner ca.crt -rkey ca.key -CA ca.crt -reqin req.der "
        "-respout ocsp.der -ndays 1");
    run(c + "openssl base64 -A -in ocsp.der -out ocsp.b64");
  }
  const fs::path& path() const { return path_; }
  void write(const std::string& name, const std::string& content) const {
    fs::create_directories((path_ / name).parent_path());
    std::ofstream(path_ / name, std::ios::binary | std::ios::trunc) << content;
  }
  std::string read(const std::string& name) const {
    std::ifstream in(path_ / name, std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  }
  // The PEM as a YAML double-quoted scalar.
  std::string quoted(const std::string& name) const {
    std::string out = "\"";
    for (char ch : read(name)) {
      if (ch == '\n') {
        out += "\\n";
      } else {
        out += ch;
      }
    }
    return out + "\"";
  }

 private:
  static void run(const std::string& cmd) {
    int rc = std::system((cmd + " >/dev/null 2>&1").c_str());
    ASSERT_EQ(rc, 0) << cmd;
  }
  fs::path path_;
};

// The base of a PEM key (a line of its body) that must never be shown anywhere.
std::string key_fragment(const std::string& pem) {
  size_t start = pem.find('\n') + 1;
  return pem.substr(start, 40);
}

void expect_not_shown(const BuildResult& r, const std::string& fragment) {
  for (const auto& s : r.resources) {
    EXPECT_THAT(s.spec(), Not(HasSubstr(fragment))) << s.name;
    for (const auto& d : s.reasons)
      EXPECT_THAT(d.to_string(), Not(HasSubstr(fragment)));
  }
  for (const auto& d : r.file_errors)
    EXPECT_THAT(d.to_string(), Not(HasSubstr(fragment)));
  EXPECT_THAT(snapshot::to_json(*r.config), Not(HasSubstr(fragment)));
}

constexpr const char* kTlsUpstream = R"(kind: Upstream
metadata: {name: echo}
spec: {static: {hosts: [{addr: 127.0.0.1, port: 8080}]}}
)";

TEST(ControlTranslateTls, SecretFilesRelativeToTheResourceServeAnSslGateway) {
  TlsDir dir;
  dir.write("upstream.yaml", kTlsUpstream);
  dir.write("tls/secret.yaml", R"(kind: Secret
metadata: {name: shop-tls, namespace: web}
spec:
  tls:
    certChainFile: ../certs/server.crt
    privateKeyFile: ../certs/server.key
)");
  dir.write("gateway.yaml", R"(kind: Gateway
metadata: {name: https}
spec:
  bindPort: 8443
  ssl: true
---
kind: Gateway
metadata: {name: http}
spec:
  bindPort: 8080
)");
  dir.write("vs.yaml", R"(kind: VirtualService
metadata: {name: shop, namespace: web}
spec:
  sslConfig:
    secretRef: {name: shop-tls}
    parameters: {minimumProtocolVersion: TLSv1_3}
  virtualHost:
    domains: [shop.example.com]
    routes: [{routeAction: {single: {upstream: {name: echo, namespace: default}}}}]
---
kind: VirtualService
metadata: {name: plain}
spec:
  virtualHost:
    domains: [plain.example.com]
    routes: [{routeAction: {single: {upstream: {name: echo}}}}]
)");
  BuildResult r = validate_directory(dir.path());
  EXPECT_THAT(lines(r.file_errors), IsEmpty());
  for (const auto& s : r.resources)
    EXPECT_THAT(lines(s.reasons), IsEmpty()) << s.kind << " " << s.name;
  EXPECT_EQ(status(r, "Secret", "web/shop-tls").state, State::kAccepted);
  ASSERT_EQ(r.config->listeners.size(), 2u);
  // Listeners are sorted by gateway id: default/http, default/https.
  const auto& plain = r.config->listeners[0];
  const auto& tls = r.config->listeners[1];
  EXPECT_FALSE(plain.tls);
  ASSERT_EQ(plain.virtual_hosts.size(), 1u);
  EXPECT_EQ(plain.virtual_hosts[0]->name, "default/plain");  // Gloo: plain gateways, plain VSs
  ASSERT_EQ(tls.virtual_hosts.size(), 1u);
  const auto& vh = *tls.virtual_hosts[0];
  EXPECT_EQ(vh.name, "web/shop");
  ASSERT_TRUE(vh.tls);
  ASSERT_EQ(vh.tls->certificates.size(), 1u);
  EXPECT_EQ(vh.tls->certificates[0].secret, "web/shop-tls");
  EXPECT_EQ(vh.tls->certificates[0].cert_chain_pem, dir.read("certs/server.crt"));
  EXPECT_EQ(vh.tls->certificates[0].private_key_pem, dir.read("certs/server.key"));
  EXPECT_EQ(vh.tls->min_version, snapshot::TlsVersion::kTls13);
  EXPECT_THAT(vh.tls->alpn, ElementsAre("h2", "http/1.1"));  // the default offers HTTP/2
  EXPECT_TRUE(vh.tls->client_ca_pem.empty());
  // No sslConfig on the gateway: the first virtual service's certificate is the default.
  ASSERT_TRUE(tls.tls);
  EXPECT_EQ(tls.tls->certificates[0].secret, "web/shop-tls");
  expect_not_shown(r, key_fragment(dir.read("certs/server.key")));
}

// TLS material is applied to the cached translation of a VirtualService: a rotated certificate is
// served in a new copy of its host, and no route is translated again.
TEST(ControlTranslateTls, ARotatedCertificateTranslatesNoRoute) {
  TlsDir dir;
  dir.write("secret.yaml", R"(kind: Secret
metadata: {name: shop-tls}
spec: {tls: {certChainFile: certs/server.crt, privateKeyFile: certs/server.key}}
)");
  dir.write("rest.yaml", std::string(kTlsUpstream) + R"(---
kind: Gateway
metadata: {name: https}
spec: {bindPort: 8443, ssl: true}
---
kind: VirtualService
metadata: {name: shop}
spec:
  sslConfig: {secretRef: {name: shop-tls}}
  virtualHost:
    domains: [shop.example.com]
    routes:
      - {matchers: [{prefix: /a}], routeAction: {single: {upstream: {name: echo}}}}
      - {matchers: [{prefix: /b}], routeAction: {single: {upstream: {name: echo}}}}
)");
  std::vector<ResourcePtr> resources;
  for (const char* name : {"secret.yaml", "rest.yaml"}) {
    api::DecodedFile f = api::decode_file(name, dir.read(name));
    ASSERT_TRUE(f.errors.empty()) << name;
    for (auto& r : f.resources)
      resources.push_back(std::make_shared<api::Resource>(std::move(r)));
  }
  Translator translator(TranslateOptions{dir.path()});
  Translation first = translator.translate(resources, 1, 0);
  EXPECT_EQ(first.translated.routes, 2u);
  ASSERT_EQ(first.config->listeners.size(), 1u);
  const auto before = first.config->listeners[0].virtual_hosts.at(0);
  ASSERT_TRUE(before->tls);
  // The same resources, the same files: the same host.
  Translation same = translator.translate(resources, 2, 0);
  EXPECT_EQ(same.translated.routes, 0u);
  EXPECT_EQ(same.config->listeners[0].virtual_hosts.at(0), before);
  // The certificate file is replaced (same key, new certificate): no route translated, the new
  // certificate served.
  std::string c = "cd '" + (dir.path() / "certs").string() + "' && ";
  ASSERT_EQ(std::system((c + "openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key "
                             "-CAcreateserial -out server.crt -days 3 >/dev/null 2>&1")
                            .c_str()),
            0);
  Translation rotated = translator.translate(resources, 3, 0);
  EXPECT_EQ(rotated.translated.routes, 0u);
  const auto& after = *rotated.config->listeners[0].virtual_hosts.at(0);
  EXPECT_EQ(after.tls->certificates[0].cert_chain_pem, dir.read("certs/server.crt"));
  EXPECT_NE(after.tls->certificates[0].cert_chain_pem, before->tls->certificates[0].cert_chain_pem);
  EXPECT_EQ(after.routes, before->routes);
  // From scratch, the same configuration.
  EXPECT_EQ(snapshot::to_json(*rotated.config),
            snapshot::to_json(*translate(resources, 3, 0, TranslateOptions{dir.path()}).config));
}

TEST(ControlTranslateTls, InlineSecretWithRootCaRequiresClientCertificates) {
  TlsDir dir;
  std::string yaml = std::string(kTlsUpstream) + R"(---
kind: Secret
metadata: {name: mtls}
spec:
  tls:
    certChain: )" + dir.quoted("certs/server.crt") +
                     R"(
    privateKey: )" + dir.quoted("certs/server.key") +
                     R"(
    rootCa: )" + dir.quoted("certs/ca.crt") +
                     R"(
---
kind: Gateway
metadata: {name: gw}
spec:
  bindPort: 8443
  ssl: true
  sslConfig:
    secretRef: {name: mtls}
    oneWayTls: true
---
kind: VirtualService
metadata: {name: a}
spec:
  sslConfig:
    secretRef: {name: mtls}
    verifySubjectAltName: [spiffe://example.com/client]
    clientIdentityHeader: x-client-id
  virtualHost:
    domains: [a.example.com]
    routes: [{routeAction: {single: {upstream: {name: echo}}}}]
)";
  BuildResult r = build(yaml);
  EXPECT_THAT(lines(r.file_errors), IsEmpty());
  for (const auto& s : r.resources)
    EXPECT_THAT(lines(s.reasons), IsEmpty()) << s.kind << " " << s.name;
  ASSERT_EQ(r.config->listeners.size(), 1u);
  const auto& l = r.config->listeners[0];
  ASSERT_TRUE(l.tls);
  EXPECT_TRUE(l.tls->client_ca_pem.empty());  // oneWayTls: the CA does not require client certs
  ASSERT_EQ(l.virtual_hosts.size(), 1u);
  const auto& vt = *l.virtual_hosts[0]->tls;
  EXPECT_EQ(vt.client_ca_pem, dir.read("certs/ca.crt"));
  EXPECT_EQ(vt.client_ca_secret, "default/mtls");
  EXPECT_THAT(vt.allowed_client_sans, ElementsAre("spiffe://example.com/client"));
  EXPECT_EQ(vt.client_identity_header, "x-client-id");
  const auto& secret = status(r, "Secret", "default/mtls");
  EXPECT_THAT(secret.spec(), HasSubstr(R"("privateKey":"<redacted>")"));
  expect_not_shown(r, key_fragment(dir.read("certs/server.key")));
}

TEST(ControlTranslateTls, BadSecretsAreRejectedAndSoAreTheirUsers) {
  TlsDir dir;
  dir.write("certs/garbage.pem",
            "-----BEGIN CERTIFICATE-----\nnot base64 at all!\n"
            "-----END CERTIFICATE-----\n");
  dir.write("config.yaml", std::string(kTlsUpstream) + R"(---
kind: Secret
metadata: {name: missing}
spec: {tls: {certChainFile: certs/nope.crt, privateKeyFile: certs/server.key}}
---
kind: Secret
metadata: {name: garbage}
spec: {tls: {certChainFile: certs/garbage.pem, privateKeyFile: certs/server.key}}
---
kind: Secret
metadata: {name: mismatch}
spec: {tls: {certChainFile: certs/server.crt, privateKeyFile: certs/other.key}}
---
kind: Secret
metadata: {name: not-a-key}
spec: {tls: {certChainFile: certs/server.crt, privateKeyFile: certs/ca.crt}}
---
kind: Secret
metadata: {name: api-keys}
spec: {generic: {a: b}}
---
kind: VirtualService
metadata: {name: uses-mismatch}
spec:
  sslConfig: {secretRef: {name: mismatch}}
  virtualHost:
    domains: [a.example.com]
    routes: [{routeAction: {single: {upstream: {name: echo}}}}]
---
kind: VirtualService
metadata: {name: uses-generic}
spec:
  sslConfig: {secretRef: {name: api-keys}}
  virtualHost:
    domains: [b.example.com]
    routes: [{routeAction: {single: {upstream: {name: echo}}}}]
---
kind: VirtualService
metadata: {name: uses-nothing}
spec:
  sslConfig: {secretRef: {name: absent}}
  virtualHost:
    domains: [c.example.com]
    routes: [{routeAction: {single: {upstream: {name: echo}}}}]
---
kind: Gateway
metadata: {name: gw}
spec: {bindPort: 8443, ssl: true}
)");
  BuildResult r = validate_directory(dir.path());
  std::string nope = (dir.path() / "certs/nope.crt").string();
  EXPECT_THAT(lines(status(r, "Secret", "default/missing").reasons),
              ElementsAre("config.yaml:7:29: error: spec.tls.certChainFile: cannot read " + nope +
                          ": no such file"));
  EXPECT_THAT(lines(status(r, "Secret", "default/garbage").reasons),
              ElementsAre(HasSubstr("config.yaml:11:29: error: spec.tls.certChainFile: "
                                    "certs/garbage.pem: a certificate does not parse")));
  EXPECT_THAT(lines(status(r, "Secret", "default/mismatch").reasons),
              ElementsAre("config.yaml:15:63: error: spec.tls.privateKeyFile: the private key "
                          "does not match the certificate (the chain's first one)"));
  EXPECT_THAT(lines(status(r, "Secret", "default/not-a-key").reasons),
              ElementsAre(HasSubstr("config.yaml:19:63: error: spec.tls.privateKeyFile: "
                                    "certs/ca.crt: no PEM private key found")));
  EXPECT_EQ(status(r, "Secret", "default/api-keys").state, State::kAccepted);
  EXPECT_THAT(lines(status(r, "VirtualService", "default/uses-mismatch").reasons),
              ElementsAre("config.yaml:28:26: error: spec.sslConfig.secretRef: secret "
                          "default/mismatch is rejected"));
  EXPECT_THAT(lines(status(r, "VirtualService", "default/uses-generic").reasons),
              ElementsAre("config.yaml:36:26: error: spec.sslConfig.secretRef: secret "
                          "default/api-keys has no tls data"));
  EXPECT_THAT(lines(status(r, "VirtualService", "default/uses-nothing").reasons),
              ElementsAre("config.yaml:44:26: error: spec.sslConfig.secretRef: secret "
                          "default/absent not found"));
  // Every virtual service of the ssl gateway is rejected: it has no certificate at all.
  EXPECT_THAT(lines(status(r, "Gateway", "default/gw").reasons),
              ElementsAre("config.yaml:51:29: error: spec.ssl: ssl is true but there is no "
                          "certificate: set spec.sslConfig, or serve a virtual service that has "
                          "sslConfig"));
  EXPECT_TRUE(r.config->listeners.empty());
  expect_not_shown(r, key_fragment(dir.read("certs/server.key")));
  expect_not_shown(r, key_fragment(dir.read("certs/other.key")));
}

TEST(ControlTranslateTls, SslFilesAndSniDomains) {
  TlsDir dir;
  dir.write("config.yaml", std::string(kTlsUpstream) + R"(---
kind: Gateway
metadata: {name: gw}
spec:
  bindPort: 8443
  ssl: true
  sslConfig:
    sslFiles: {tlsCert: certs/server.crt, tlsKey: certs/server.key}
---
kind: VirtualService
metadata: {name: a}
spec:
  sslConfig:
    sslFiles: {tlsCert: certs/server.crt, tlsKey: certs/server.key, rootCa: certs/ca.crt}
    sniDomains: [a.example.com]
  virtualHost:
    domains: [A.example.com]
    routes: [{routeAction: {single: {upstream: {name: echo}}}}]
---
kind: VirtualService
metadata: {name: b}
spec:
  sslConfig:
    sslFiles: {tlsCert: certs/server.crt, tlsKey: certs/server.key}
    sniDomains: [other.example.com]
  virtualHost:
    domains: [b.example.com]
    routes: [{routeAction: {single: {upstream: {name: echo}}}}]
---
kind: VirtualService
metadata: {name: c}
spec:
  sslConfig:
    sslFiles: {tlsCert: certs/server.crt, tlsKey: certs/server.key}
    verifySubjectAltName: [x]
  virtualHost:
    domains: [c.example.com]
    routes: [{routeAction: {single: {upstream: {name: echo}}}}]
)");
  BuildResult r = validate_directory(dir.path());
  EXPECT_THAT(lines(status(r, "VirtualService", "default/a").reasons), IsEmpty());
  EXPECT_THAT(lines(status(r, "VirtualService", "default/b").reasons),
              ElementsAre("config.yaml:28:17: error: spec.sslConfig.sniDomains: sniDomains "
                          "different from the virtual service's domains is not supported yet: the "
                          "certificate is chosen by SNI among the domains; remove sniDomains or "
                          "make it equal"));
  EXPECT_THAT(lines(status(r, "VirtualService", "default/c").reasons),
              ElementsAre("config.yaml:38:27: error: spec.sslConfig.verifySubjectAltName: needs "
                          "client certificates: a rootCa (in the secret or sslFiles) and "
                          "oneWayTls unset"));
  ASSERT_EQ(r.config->listeners.size(), 1u);
  const auto& l = r.config->listeners[0];
  ASSERT_TRUE(l.tls);
  EXPECT_EQ(l.tls->certificates[0].secret, "file:certs/server.crt");
  EXPECT_EQ(l.tls->certificates[0].cert_chain_pem, dir.read("certs/server.crt"));
  ASSERT_EQ(l.virtual_hosts.size(), 1u);
  EXPECT_EQ(l.virtual_hosts[0]->tls->client_ca_pem, dir.read("certs/ca.crt"));
}

TEST(ControlTranslateTls, PlainGatewayDoesNotServeVirtualServicesWithSslConfig) {
  TlsDir dir;
  dir.write("config.yaml", std::string(kTlsUpstream) + R"(---
kind: Gateway
metadata: {name: gw}
spec:
  bindPort: 8080
  virtualServices: [{name: secure}]
---
kind: VirtualService
metadata: {name: secure}
spec:
  sslConfig:
    sslFiles: {tlsCert: certs/server.crt, tlsKey: certs/server.key}
  virtualHost:
    routes: [{routeAction: {single: {upstream: {name: echo}}}}]
)");
  BuildResult r = validate_directory(dir.path());
  EXPECT_THAT(lines(status(r, "Gateway", "default/gw").reasons),
              ElementsAre("config.yaml:9:21: warning: spec.virtualServices[0]: virtual service "
                          "default/secure has sslConfig and is not served on this plain gateway "
                          "(set ssl: true on a gateway to serve it)"));
  EXPECT_THAT(lines(status(r, "VirtualService", "default/secure").reasons),
              ElementsAre("config.yaml:11:1: warning: not served: no accepted gateway selects "
                          "this virtual service"));
  ASSERT_EQ(r.config->listeners.size(), 1u);
  EXPECT_TRUE(r.config->listeners[0].virtual_hosts.empty());
  EXPECT_FALSE(r.config->listeners[0].tls);
}

TEST(ControlTranslateTls, UpstreamTlsAndConnectionLimits) {
  TlsDir dir;
  dir.write("config.yaml", R"(kind: Secret
metadata: {name: client}
spec:
  tls: {certChainFile: certs/server.crt, privateKeyFile: certs/server.key,
        rootCaFile: certs/ca.crt}
---
kind: Upstream
metadata: {name: mtls}
spec:
  static: {hosts: [{addr: 10.0.0.1, port: 443}]}
  sslConfig:
    secretRef: {name: client}
    sni: api.internal
    verifySubjectAltName: [api.internal]
    alpnProtocols: [http/1.1]
  connectionConfig: {maxConnections: 64, maxIdleConnections: 8}
---
kind: Upstream
metadata: {name: system-trust}
spec:
  static: {hosts: [{addr: 10.0.0.2, port: 443}]}
  sslConfig: {sni: example.com}
---
kind: Upstream
metadata: {name: insecure}
spec:
  static: {hosts: [{addr: 10.0.0.3, port: 443}]}
  sslConfig: {insecureSkipVerify: true}
---
kind: Upstream
metadata: {name: contradiction}
spec:
  static: {hosts: [{addr: 10.0.0.4, port: 443}]}
  sslConfig: {secretRef: {name: client}, insecureSkipVerify: true}
---
kind: Upstream
metadata: {name: plain}
spec:
  static: {hosts: [{addr: 10.0.0.5, port: 80}]}
)");
  BuildResult r = validate_directory(dir.path());
  EXPECT_THAT(lines(status(r, "Upstream", "default/contradiction").reasons),
              ElementsAre("config.yaml:34:14: error: spec.sslConfig.insecureSkipVerify: "
                          "contradicts the rootCa of default/client: nothing would be verified"));
  const auto* mtls = r.config->find_cluster("default/mtls");
  ASSERT_NE(mtls, nullptr);
  ASSERT_TRUE(mtls->tls);
  EXPECT_EQ(mtls->tls->sni, "api.internal");
  EXPECT_EQ(mtls->tls->ca_pem, dir.read("certs/ca.crt"));
  EXPECT_EQ(mtls->tls->ca_secret, "default/client");
  EXPECT_THAT(mtls->tls->verify_names, ElementsAre("api.internal"));
  EXPECT_FALSE(mtls->tls->insecure_skip_verify);
  ASSERT_TRUE(mtls->tls->client_certificate);
  EXPECT_EQ(mtls->tls->client_certificate->private_key_pem, dir.read("certs/server.key"));
  EXPECT_THAT(mtls->tls->alpn, ElementsAre("http/1.1"));
  EXPECT_EQ(mtls->max_connections, 64u);
  EXPECT_EQ(mtls->max_idle_connections, 8u);
  const auto* trust = r.config->find_cluster("default/system-trust");
  ASSERT_NE(trust, nullptr);
  ASSERT_TRUE(trust->tls);
  EXPECT_TRUE(trust->tls->ca_pem.empty());  // the system store, never "no verification"
  EXPECT_FALSE(trust->tls->insecure_skip_verify);
  EXPECT_FALSE(trust->tls->client_certificate);
  const auto* insecure = r.config->find_cluster("default/insecure");
  ASSERT_NE(insecure, nullptr);
  EXPECT_TRUE(insecure->tls->insecure_skip_verify);
  const auto* plain = r.config->find_cluster("default/plain");
  ASSERT_NE(plain, nullptr);
  EXPECT_FALSE(plain->tls);
  EXPECT_EQ(plain->max_connections, 0u);
  EXPECT_EQ(plain->max_idle_connections, 4096u);
  EXPECT_EQ(r.config->find_cluster("default/contradiction"), nullptr);
}

TEST(ControlTranslateTls, HttpOptionsAndRouteBodyLimit) {
  BuildResult r = build(std::string(kTlsUpstream) + R"(---
kind: Gateway
metadata: {name: a}
spec:
  bindPort: 8080
  httpOptions: {xffNumTrustedHops: 1, normalizePath: false, maxRequestBodyBytes: 1000,
                requestTimeout: 5s, streamIdleTimeout: 10s, useRemoteAddress: false,
                http2: {cleartextPriorKnowledge: true, maxConcurrentStreams: 7}}
---
kind: Gateway
metadata: {name: b}
spec:
  bindPort: 8081
  httpGateway:
    options:
      httpConnectionManagerSettings: {mergeSlashes: true, xffNumTrustedHops: 2,
                                      maxRequestHeadersKb: 16, requestHeadersTimeout: 3s}
---
kind: VirtualService
metadata: {name: vs}
spec:
  virtualHost:
    routes:
      - matchers: [{prefix: /upload}]
        routeAction: {single: {upstream: {name: echo}}}
        options: {maxRequestBodyBytes: 0}
      - routeAction: {single: {upstream: {name: echo}}}
)");
  ASSERT_TRUE(r.ok()) << ::testing::PrintToString(lines(r.file_errors));
  ASSERT_EQ(r.config->listeners.size(), 2u);
  const auto& a = r.config->listeners[0].http;
  EXPECT_EQ(a.xff_num_trusted_hops, 1u);
  EXPECT_FALSE(a.normalize_path);
  EXPECT_FALSE(a.merge_slashes);
  EXPECT_EQ(a.max_request_body_bytes, 1000u);
  EXPECT_EQ(a.request_timeout, snapshot::Millis(5000));
  EXPECT_EQ(a.stream_idle_timeout, snapshot::Millis(10000));
  EXPECT_FALSE(a.use_remote_address);
  EXPECT_TRUE(a.http2.cleartext_prior_knowledge);
  EXPECT_EQ(a.http2.max_concurrent_streams, 7u);
  EXPECT_EQ(a.http2.initial_stream_window, 65536u);  // the defaults
  EXPECT_EQ(a.http2.initial_connection_window, 1u << 20);
  const auto& b = r.config->listeners[1].http;
  EXPECT_EQ(b.xff_num_trusted_hops, 2u);
  EXPECT_TRUE(b.normalize_path);  // the default
  EXPECT_TRUE(b.merge_slashes);
  EXPECT_EQ(b.max_request_headers_bytes, 16u * 1024);
  EXPECT_EQ(b.request_header_timeout, snapshot::Millis(3000));
  EXPECT_EQ(b.max_request_body_bytes, 0u);
  const auto& routes = r.config->listeners[0].virtual_hosts.at(0)->routes;
  ASSERT_EQ(routes.size(), 2u);
  EXPECT_EQ(routes[0].options.max_request_body_bytes, 0u);
  EXPECT_FALSE(routes[1].options.max_request_body_bytes);
}

// ---- Fail closed and Gloo's Gateway shape ----

TEST(ControlTranslateGloo, AuthIsNeverSilentlyDropped) {
  BuildResult r = build(R"(apiVersion: gateway.solo.io/v1
kind: Gateway
metadata: {name: gateway-proxy, namespace: gloo-system}
spec:
  bindAddress: "::"
  bindPort: 8080
  proxyNames: [gateway-proxy]
  httpGateway: {}
---
apiVersion: gloo.solo.io/v1
kind: Upstream
metadata: {name: petstore, namespace: gloo-system}
spec:
  static: {hosts: [{addr: 10.0.0.7, port: 8080}]}
---
apiVersion: gateway.solo.io/v1
kind: VirtualService
metadata: {name: with-extauth, namespace: gloo-system}
spec:
  virtualHost:
    domains: [a.example.com]
    options:
      extauth: {configRef: {name: basic-auth, namespace: gloo-system}}
    routes:
      - matchers: [{prefix: /}]
        routeAction: {single: {upstream: {name: petstore}}}
---
apiVersion: gateway.solo.io/v1
kind: VirtualService
metadata: {name: with-jwt, namespace: gloo-system}
spec:
  virtualHost:
    domains: [b.example.com]
    routes:
      - matchers: [{prefix: /}]
        routeAction: {single: {upstream: {name: petstore}}}
        options:
          jwt: {disable: false}
---
apiVersion: gateway.solo.io/v1
kind: VirtualService
metadata: {name: open, namespace: gloo-system}
spec:
  virtualHost:
    domains: [c.example.com]
    routes:
      - matchers: [{prefix: /}]
        routeAction: {single: {upstream: {name: petstore}}}
)");
  EXPECT_EQ(status(r, "VirtualService", "gloo-system/with-extauth").state, State::kRejected);
  EXPECT_EQ(status(r, "VirtualService", "gloo-system/with-jwt").state, State::kRejected);
  EXPECT_EQ(status(r, "VirtualService", "gloo-system/open").state, State::kWarning);  // apiVersion
  ASSERT_EQ(r.config->listeners.size(), 1u);
  const auto& hosts = r.config->listeners[0].virtual_hosts;
  ASSERT_EQ(hosts.size(), 1u);
  EXPECT_EQ(hosts[0]->name, "gloo-system/open");
}

TEST(ControlTranslateGloo, SelectionByExpressionsAndNamespaces) {
  auto vs = [](const std::string& ns, const std::string& name, const std::string& labels) {
    return "kind: VirtualService\nmetadata: {name: " + name + ", namespace: " + ns +
           ", labels: " + labels + "}\nspec: {virtualHost: {domains: [" + ns + "." + name +
           ".example.com], routes: [{directResponseAction: {status: 200}}]}}\n---\n";
  };
  std::string yaml = vs("web", "a", "{team: a, version: '3'}") + vs("web", "b", "{team: b}") +
                     vs("web", "c", "{team: a, canary: 'true'}") +
                     vs("shop", "d", "{team: a, version: '5'}") +
                     vs("other", "e", "{team: a, version: '9'}") +
                     vs("web", "f", "{team: a, version: '1'}") + R"(kind: Gateway
metadata: {name: exprs}
spec:
  bindPort: 8080
  httpGateway:
    virtualServiceExpressions:
      expressions:
        - {key: team, operator: Equals, values: [a]}
        - {key: canary, operator: DoesNotExist}
        - {key: version, operator: GreaterThan, values: ["2"]}
    virtualServiceNamespaces: [web, shop]
---
kind: Gateway
metadata: {name: labels}
spec:
  bindPort: 8081
  httpGateway:
    virtualServiceSelector: {team: b}
    virtualServiceNamespaces: ["*"]
---
kind: Gateway
metadata: {name: namespace-only}
spec:
  bindPort: 8082
  virtualServiceSelector: {namespaces: [other]}
)";
  BuildResult r = build(yaml);
  ASSERT_EQ(r.config->listeners.size(), 3u);
  auto names = [](const snapshot::Listener& l) {
    std::vector<std::string> out;
    for (const auto& vh : l.virtual_hosts)
      out.push_back(vh->name);
    return out;
  };
  EXPECT_EQ(r.config->listeners[0].name, "default/exprs");
  EXPECT_THAT(names(r.config->listeners[0]), ElementsAre("shop/d", "web/a"));
  EXPECT_THAT(names(r.config->listeners[1]), ElementsAre("web/b"));
  EXPECT_THAT(names(r.config->listeners[2]), ElementsAre("other/e"));
}

// ---- RouteTables, UpstreamGroups, Settings ----

std::vector<std::string> route_names(const snapshot::VirtualHost& vh) {
  std::vector<std::string> out;
  for (const auto& r : vh.routes)
    out.push_back(r.name);
  return out;
}

TEST(ControlTranslateDelegation, ExampleIsCleanAndOrdered) {
  BuildResult r = validate_directory(std::string(PORTICO_SOURCE_DIR) + "/examples/delegation");
  EXPECT_THAT(lines(r.file_errors), IsEmpty());
  for (const auto& s : r.resources)
    EXPECT_THAT(lines(s.reasons), IsEmpty()) << s.kind << " " << s.ns << "/" << s.name;
  ASSERT_TRUE(r.ok());
  ASSERT_EQ(r.config->listeners.size(), 1u);
  ASSERT_EQ(r.config->listeners[0].virtual_hosts.size(), 1u);
  const auto& vh = *r.config->listeners[0].virtual_hosts[0];
  EXPECT_THAT(route_names(vh),
              ElementsAre("platform/www/shop/shop/shop/cart", "platform/www/shop/shop/shop/catalog",
                          "platform/www/teams/teams/billing/invoices",
                          "platform/www/teams/teams/any-team/any-team", "platform/www/orders",
                          "platform/www/home"));
  // The delegating route's options override the delegated routes'.
  ASSERT_EQ(vh.routes[0].options.response_headers.add.size(), 1u);
  EXPECT_EQ(vh.routes[0].options.response_headers.add[0].value, "shop-team");
  EXPECT_TRUE(vh.routes[2].options.response_headers.add.empty());
  const auto& orders = std::get<snapshot::ForwardAction>(vh.routes[4].action);
  ASSERT_EQ(orders.clusters.size(), 2u);
  EXPECT_EQ(orders.clusters[0].cluster, "platform/orders-v1");
  EXPECT_EQ(orders.clusters[0].weight, 90u);
  EXPECT_EQ(orders.total_weight, 100u);
}

constexpr const char* kDelegationBase = R"(kind: Gateway
metadata: {name: gw}
spec: {bindPort: 8080}
---
kind: Upstream
metadata: {name: echo}
spec: {static: {hosts: [{addr: 127.0.0.1, port: 9000}]}}
---
)";

TEST(ControlTranslateDelegation, GlooRulesOneTeamsBrokenTableNeverBreaksAnother) {
  BuildResult r = build(std::string(kDelegationBase) + R"(kind: VirtualService
metadata: {name: vs}
spec:
  virtualHost:
    routes:
      - name: a
        matchers: [{prefix: /a, headers: [{name: x-team, value: a}], methods: [GET, POST]}]
        delegateAction: {ref: {name: a}}
      - name: broken
        matchers: [{prefix: /b}]
        delegateAction: {ref: {name: broken}}
      - name: cycle
        matchers: [{prefix: /c}]
        delegateAction: {ref: {name: c1}}
      - name: missing
        matchers: [{prefix: /m}]
        delegateAction: {ref: {name: nope}}
      - routeAction: {single: {upstream: {name: echo}}}
---
kind: RouteTable
metadata: {name: a}
spec:
  routes:
    - name: good
      matchers: [{prefix: /a/x, headers: [{name: x-team, value: a}], methods: [GET]}]
      directResponseAction: {status: 200}
    - name: outside
      matchers: [{prefix: /elsewhere, headers: [{name: x-team, value: a}]}]
      directResponseAction: {status: 200}
    - name: no-header
      matchers: [{prefix: /a/y}]
      directResponseAction: {status: 200}
    - name: more-methods
      matchers: [{prefix: /a/z, headers: [{name: x-team, value: a}], methods: [DELETE]}]
      directResponseAction: {status: 200}
---
kind: RouteTable
metadata: {name: broken}
spec:
  routes:
    - matchers: [{prefix: /b}]
      routeAction: {single: {upstream: {name: echo}}}
      typo: 1
---
kind: RouteTable
metadata: {name: c1}
spec:
  routes:
    - matchers: [{prefix: /c/1}]
      delegateAction: {ref: {name: c2}}
---
kind: RouteTable
metadata: {name: c2}
spec:
  routes:
    - matchers: [{prefix: /c/1/2}]
      delegateAction: {ref: {name: c1}}
)");
  const auto& vh = *r.config->listeners.at(0).virtual_hosts.at(0);
  EXPECT_THAT(route_names(vh), ElementsAre("default/vs/a/default/a/good", "default/vs/4"));
  EXPECT_THAT(lines(status(r, "RouteTable", "default/a").reasons),
              ElementsAre(HasSubstr("spec.routes[1].matchers[0]: path \"/elsewhere\" does not "
                                    "start with the parent's prefix \"/a\" (delegated from "
                                    "virtual service default/vs; route dropped)"),
                          HasSubstr("spec.routes[2].matchers[0]: headers must include every "
                                    "header matcher of the parent route"),
                          HasSubstr("spec.routes[3].matchers[0]: methods must be among the "
                                    "parent route's methods")));
  EXPECT_EQ(status(r, "RouteTable", "default/a").state, State::kWarning);
  EXPECT_EQ(status(r, "RouteTable", "default/broken").state, State::kRejected);
  EXPECT_THAT(lines(status(r, "RouteTable", "default/c1").reasons),
              ElementsAre(HasSubstr("delegation cycle detected: [default.c1] -> [default.c2] -> "
                                    "[default.c1]")));
  const auto& vs = status(r, "VirtualService", "default/vs");
  EXPECT_EQ(vs.state, State::kWarning);  // never Rejected because of a team's table
  std::string all;
  for (const auto& d : vs.reasons)
    all += d.to_string() + "\n";
  EXPECT_THAT(all, HasSubstr("route table default/broken is rejected, its routes are dropped: "
                             "c.yaml:"));
  EXPECT_THAT(all, HasSubstr("unknown field \"typo\""));
  EXPECT_THAT(all, HasSubstr("delegation cycle detected"));
  EXPECT_THAT(all, HasSubstr("route table default/nope not found"));
  EXPECT_THAT(all, HasSubstr("route table default/a: spec.routes[1].matchers[0]: path"));
}

TEST(ControlTranslateDelegation, InvalidRoutesReplacedWhenSettingsSaySo) {
  BuildResult r = build(std::string(kDelegationBase) + R"(kind: Settings
metadata: {name: default}
spec:
  invalidConfigPolicy: {replaceInvalidRoutes: true, invalidRouteResponseCode: 503}
---
kind: VirtualService
metadata: {name: vs}
spec:
  virtualHost:
    routes:
      - name: t
        matchers: [{prefix: /t}]
        delegateAction: {selector: {labels: {team: t}}}
      - name: gone
        matchers: [{prefix: /gone}]
        delegateAction: {ref: {name: broken}}
      - routeAction: {single: {upstream: {name: echo}}}
---
kind: RouteTable
metadata: {name: z-first, labels: {team: t}}
spec:
  weight: -1
  routes:
    - matchers: [{exact: /t/z}]
      directResponseAction: {status: 200, body: z}
---
kind: RouteTable
metadata: {name: a-second, labels: {team: t}}
spec:
  weight: 5
  routes:
    - matchers: [{prefix: /outside}]
      directResponseAction: {status: 200}
---
kind: RouteTable
metadata: {name: broken}
spec:
  routes:
    - matchers: [{prefix: /gone}]
      directResponseAction: {status: 1}
)");
  const auto& vh = *r.config->listeners.at(0).virtual_hosts.at(0);
  EXPECT_THAT(route_names(vh),
              ElementsAre("default/vs/t/default/z-first/0", "default/vs/t/default/a-second/0",
                          "default/vs/gone", "default/vs/2"));
  const auto& replaced = std::get<snapshot::DirectResponseAction>(vh.routes[1].action);
  EXPECT_EQ(replaced.status, 503);
  EXPECT_THAT(replaced.body, HasSubstr("does not start with the parent's prefix"));
  EXPECT_EQ(vh.routes[1].match.path, "/outside");
  const auto& gone = std::get<snapshot::DirectResponseAction>(vh.routes[2].action);
  EXPECT_EQ(gone.status, 503);
  EXPECT_EQ(vh.routes[2].match.path, "/gone");  // the parent's prefix: nothing falls through
}

TEST(ControlTranslateDelegation, DelegatingRouteShapeAndUpstreamGroups) {
  BuildResult r = build(std::string(kDelegationBase) + R"(kind: VirtualService
metadata: {name: two-matchers}
spec:
  virtualHost:
    domains: [a.example.com]
    routes:
      - matchers: [{prefix: /a}, {prefix: /b}]
        delegateAction: {ref: {name: t}}
---
kind: VirtualService
metadata: {name: exact}
spec:
  virtualHost:
    domains: [b.example.com]
    routes:
      - matchers: [{exact: /a}]
        delegateAction: {name: t, namespace: default}
---
kind: VirtualService
metadata: {name: group}
spec:
  virtualHost:
    domains: [c.example.com]
    routes:
      - routeAction: {upstreamGroup: {name: missing}}
---
kind: UpstreamGroup
metadata: {name: bad-group}
spec:
  destinations: [{destination: {upstream: {name: absent}}}]
---
kind: RouteTable
metadata: {name: t}
spec: {routes: [{directResponseAction: {status: 200}}]}
)");
  EXPECT_THAT(lines(status(r, "VirtualService", "default/two-matchers").reasons),
              ElementsAre("c.yaml:15:34: error: spec.virtualHost.routes[0].matchers[1]: a "
                          "delegating route has at most one matcher (a prefix)"));
  EXPECT_THAT(lines(status(r, "VirtualService", "default/exact").reasons),
              ElementsAre("c.yaml:24:20: error: spec.virtualHost.routes[0].matchers[0]: a "
                          "delegating route's matcher must be a prefix"));
  EXPECT_THAT(lines(status(r, "VirtualService", "default/group").reasons),
              ElementsAre("c.yaml:33:38: error: spec.virtualHost.routes[0].routeAction."
                          "upstreamGroup: upstream group default/missing not found"));
  EXPECT_THAT(lines(status(r, "UpstreamGroup", "default/bad-group").reasons),
              ElementsAre("c.yaml:38:43: warning: spec.destinations[0].destination.upstream: "
                          "upstream default/absent not found; the route answers 503"));
  EXPECT_THAT(lines(status(r, "Upstream", "default/echo").reasons),
              ElementsAre("c.yaml:5:1: warning: unused: no route of an accepted virtual service "
                          "sends traffic here"));
}

TEST(ControlTranslateDelegation, SettingsSources) {
  BuildResult r = build(R"(kind: Settings
metadata: {name: a}
spec:
  directoryConfigSource: {directory: /etc/portico}
  kubernetesArtifactSource: {}
---
kind: Settings
metadata: {name: b}
spec: {}
)");
  EXPECT_THAT(
      lines(status(r, "Settings", "default/a").reasons),
      ElementsAre(HasSubstr("only one Settings resource may exist (found 2)"),
                  HasSubstr("spec.kubernetesArtifactSource: kubernetesArtifactSource is not "
                            "supported yet")));
}

TEST(ControlTranslateTls, OcspStaplesFromFilesAndInline) {
  TlsDir dir;
  dir.make_ocsp();
  std::string der = dir.read("certs/ocsp.der");
  ASSERT_FALSE(der.empty());
  dir.write("certs/garbage.der", "not an OCSP response");
  dir.write("config.yaml", R"(kind: Secret
metadata: {name: from-file}
spec:
  tls: {certChainFile: certs/server.crt, privateKeyFile: certs/server.key,
        ocspStapleFile: certs/ocsp.der}
---
kind: Secret
metadata: {name: inline}
spec:
  tls: {certChainFile: certs/server.crt, privateKeyFile: certs/server.key,
        ocspStaple: )" + dir.read("certs/ocsp.b64") +
                               R"(}
---
kind: Secret
metadata: {name: garbage}
spec:
  tls: {certChainFile: certs/server.crt, privateKeyFile: certs/server.key,
        ocspStapleFile: certs/garbage.der}
---
kind: Gateway
metadata: {name: gw}
spec:
  bindPort: 8443
  ssl: true
  sslConfig: {secretRef: {name: from-file}}
---
kind: VirtualService
metadata: {name: a}
spec:
  sslConfig: {secretRef: {name: inline}}
  virtualHost:
    domains: [a.example.com]
    routes: [{directResponseAction: {status: 200}}]
)");
  BuildResult r = validate_directory(dir.path());
  EXPECT_THAT(lines(status(r, "Secret", "default/garbage").reasons),
              ElementsAre(HasSubstr("spec.tls.ocspStapleFile: certs/garbage.der: is not a DER "
                                    "OCSP response")));
  EXPECT_EQ(status(r, "Secret", "default/from-file").state, State::kAccepted);
  EXPECT_EQ(status(r, "Secret", "default/inline").state, State::kAccepted);
  ASSERT_EQ(r.config->listeners.size(), 1u);
  const auto& l = r.config->listeners[0];
  ASSERT_TRUE(l.tls);
  EXPECT_EQ(l.tls->certificates[0].ocsp_staple, der);
  ASSERT_EQ(l.virtual_hosts.size(), 1u);
  EXPECT_EQ(l.virtual_hosts[0]->tls->certificates[0].ocsp_staple, der);
}

TEST(ControlTranslateDelegation, ShadowingAcrossTablesAndRegexChildren) {
  BuildResult r = build(std::string(kDelegationBase) + R"(kind: VirtualService
metadata: {name: vs}
spec:
  virtualHost:
    routes:
      - matchers: [{prefix: /t}]
        delegateAction: {selector: {labels: {team: t}}}
      - routeAction: {single: {upstream: {name: echo}}}
---
kind: RouteTable
metadata: {name: a, labels: {team: t}}
spec:
  routes:
    - matchers: [{prefix: /t}]
      directResponseAction: {status: 200, body: a}
---
kind: RouteTable
metadata: {name: b, labels: {team: t}}
spec:
  routes:
    - matchers: [{prefix: /t/x}]
      directResponseAction: {status: 200, body: b}
    - matchers: [{regex: "/t/[0-9]+"}]
      directResponseAction: {status: 200, body: b}
    - matchers: [{regex: "/[a-z]+"}]
      directResponseAction: {status: 200, body: b}
)");
  const auto& vh = *r.config->listeners.at(0).virtual_hosts.at(0);
  EXPECT_THAT(route_names(vh), ElementsAre("default/vs/0/default/a/0", "default/vs/0/default/b/0",
                                           "default/vs/0/default/b/1", "default/vs/1"));
  EXPECT_THAT(lines(status(r, "VirtualService", "default/vs").reasons),
              ::testing::Contains(HasSubstr("route default/vs/0/default/b/0 is unreachable: route "
                                            "default/vs/0/default/a/0 matches first")));
  EXPECT_THAT(lines(status(r, "RouteTable", "default/b").reasons),
              ElementsAre(HasSubstr("spec.routes[2].matchers[0]: a delegated regex must start "
                                    "with the parent's prefix \"/t\"")));
}

}  // namespace
}  // namespace portico::control
