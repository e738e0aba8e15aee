// The wire codec (snapshot/wire.h): lossless round trips, sections, and garbage rejected cleanly.
#include "snapshot/wire.h"

#include <gtest/gtest.h>

#include <memory>
#include <random>

namespace portico::snapshot::wire {
namespace {

TlsCertificate cert(const std::string& secret, const std::string& pem) {
  return TlsCertificate{secret, "CHAIN-" + pem, "KEY-" + pem, "OCSP-" + pem};
}

// A configuration that sets (nearly) every field away from its default.
ProxyConfig rich() {
  ProxyConfig c;
  c.version = 42;
  c.created_unix_ms = 1700000000123;
  c.overload.max_connections = 7;
  c.overload.max_heap_bytes = 1 << 30;
  Listener l;
  l.name = "default/gw";
  l.address = "127.0.0.2";
  l.port = 8443;
  l.http.max_headers = 17;
  l.http.idle_timeout = Millis(1234);
  l.http.server_name = "portico";
  l.http.filters.push_back({"cors", R"({"allowOrigin":["*"]})"});
  l.http.http2.cleartext_prior_knowledge = true;
  l.http.http2.max_concurrent_streams = 9;
  l.tls = TlsServerConfig{};
  l.tls->certificates.push_back(cert("default/site", "A"));
  l.tls->certificates.push_back(cert("", "inline"));  // unnamed: stays inline
  l.tls->client_ca_pem = "CLIENT-CA";
  l.tls->client_ca_secret = "default/client-ca";
  l.tls->allowed_client_sans = {"spiffe://x"};
  l.tls->client_identity_header = "x-client";
  l.tls->min_version = TlsVersion::kTls13;
  l.tls->alpn = {"http/1.1"};
  AccessLog log;
  log.path = "/dev/stdout";
  log.json = true;
  log.json_fields = {{"status", "%RESPONSE_CODE%"}, {"path", "%REQ(:PATH)%"}};
  l.access_logs.push_back(log);
  AccessLog text;
  text.path = "/tmp/x.log";
  text.format = "%START_TIME%\n";
  l.access_logs.push_back(text);

  auto vh = std::make_shared<VirtualHost>();
  vh->name = "default/shop";
  vh->domains = {"shop.example.com", "*.shop.example.com"};
  vh->sources = {"VirtualService/default/shop", "RouteTable/team/api"};
  vh->tls = TlsServerConfig{};
  vh->tls->certificates.push_back(cert("default/shop-cert", "S"));
  vh->tls->certificates.push_back(cert("default/site", "A"));  // same Secret as the listener's
  Route fwd;
  fwd.name = "default/shop/0";
  fwd.match.kind = PathMatchKind::kRegex;
  fwd.match.path = "/api/[0-9]+";
  fwd.match.regex = Regex{"/api/[0-9]+", false};
  fwd.match.case_sensitive = false;
  fwd.match.headers.push_back({"x-a", "b", std::nullopt, false, true});
  fwd.match.headers.push_back({"x-r", "", Regex{"v[0-9]", true}, false, false});
  fwd.match.query.push_back({"q", "", std::nullopt, true});
  fwd.match.methods = {"GET", "POST"};
  fwd.action =
      ForwardAction{{{"default/api", 3, {{"tag_v2", "1"}}}, {"default/backend", 1, {}}}, 4};
  fwd.options.timeout = Millis(0);
  fwd.options.prefix_rewrite = "/";
  fwd.options.host_rewrite = "api.internal";
  fwd.options.request_headers.add.push_back({"X-Tenant", "shop", false});
  fwd.options.request_headers.remove = {"x-debug"};
  fwd.options.response_headers.add.push_back({"X-Served-By", "portico", true});
  fwd.options.max_request_body_bytes = 1024;
  fwd.options.access_log_disabled = true;
  fwd.options.filters.push_back({"test.header_mutation", "{}"});
  fwd.options.websocket = true;
  fwd.options.idle_timeout = Millis(99);
  fwd.options.hash_policies.push_back({HashPolicy::Kind::kCookie, "session", true});
  fwd.options.hash_policies.push_back({HashPolicy::Kind::kSourceIp, "", false});
  RetryPolicy retry;
  retry.retry_on = RetryPolicy::kOn5xx | RetryPolicy::kOnStatusCodes;
  retry.retriable_status_codes = {503, 429};
  retry.num_retries = 3;
  retry.per_try_timeout = Millis(250);
  fwd.options.retry = retry;
  vh->routes.push_back(fwd);
  Route redirect;
  redirect.name = "default/shop/1";
  redirect.match.kind = PathMatchKind::kExact;
  redirect.match.path = "/old";
  redirect.action = RedirectAction{"new.example.com", "/new", "", true, 8443, 308, true};
  vh->routes.push_back(redirect);
  Route direct;
  direct.name = "default/shop/2";
  direct.action = DirectResponseAction{418, "teapot\n\xff binary", "text/teapot"};
  vh->routes.push_back(direct);
  l.virtual_hosts.push_back(vh);
  auto plain = std::make_shared<VirtualHost>();
  plain->name = "default/plain";
  plain->domains = {"*"};
  l.virtual_hosts.push_back(plain);
  c.listeners.push_back(l);
  Listener empty;
  empty.name = "default/empty";
  empty.port = 8080;
  c.listeners.push_back(empty);

  Cluster api;
  api.name = "default/api";
  api.lb = LbPolicy::kMaglev;
  api.http2_max_concurrent_streams = 7;
  api.http2_initial_stream_window = 1 << 18;
  api.endpoints = {{"10.0.0.1", 80, 1, 0, {{"dc_dc1", "1"}, {"tag_v2", "0"}}},
                   {"::1", 81, 5, 1, {}}};
  api.discovery.push_back(
      {"consul", "api", 0, 2, 1, {"v1", "blue"}, "dc1", "ns", {}, {}, {"v2"}, {"dc1", "dc2"}});
  api.discovery.push_back(
      {"nomad", "api", 0, 1, 0, {"v2"}, "", "default", DiscoveryTarget::Canary::kOnly, {"canary"}});
  api.health_check = HealthCheck{};
  api.health_check->kind = HealthCheck::Kind::kGrpc;
  api.health_check->expected_statuses = {{200, 300}};
  api.health_check->initial_metadata = {{"x-k", "v"}};
  api.outlier_detection = OutlierDetection{};
  api.outlier_detection->split_external_local_origin_errors = true;
  api.circuit_breakers.max_retries = 3;
  api.retry_budget.budget_percent = 50;
  api.protocol = UpstreamProtocol::kHttp2;
  Cluster tls;
  tls.name = "default/backend";
  tls.endpoints = {{"10.0.0.2", 443, 1, 0}};
  tls.tls = TlsClientConfig{};
  tls.tls->sni = "backend.internal";
  tls.tls->ca_pem = "CA1";
  tls.tls->ca_secret = "default/ca";
  tls.tls->client_certificate = cert("default/client", "C");
  tls.tls->alpn = {"h2"};
  tls.tls->verify_names = {"backend.internal"};
  Cluster insecure;
  insecure.name = "default/insecure";
  insecure.tls = TlsClientConfig{};
  insecure.tls->insecure_skip_verify = true;
  insecure.tls->ca_pem = "INLINE-CA";  // no Secret name: stays inline
  c.clusters = std::vector<Cluster>{api, tls, insecure};
  c.versions = TypeVersions{42, 41, 40, 39, 38};
  return c;
}

TEST(Wire, EmptyConfigurationRoundTrips) {
  ProxyConfig c;
  auto d = decode(encode(c));
  ASSERT_TRUE(d.ok()) << d.error().message;
  EXPECT_TRUE(deep_equal(c, d.value()));
}

TEST(Wire, RichConfigurationRoundTrips) {
  ProxyConfig c = rich();
  std::string text = encode(c);
  EXPECT_EQ(text.find('\n'), std::string::npos);  // one line
  auto d = decode(text);
  ASSERT_TRUE(d.ok()) << d.error().message;
  EXPECT_TRUE(deep_equal(c, d.value()));
  // Encoding is deterministic: the decoded copy encodes to the same text.
  EXPECT_EQ(encode(d.value()), text);
}

TEST(Wire, DeepEqualSeesADifference) {
  ProxyConfig a = rich();
  ProxyConfig b = rich();
  EXPECT_TRUE(deep_equal(a, b));
  edit_virtual_host(b.listeners[0].virtual_hosts, 0).domains.push_back("x");
  EXPECT_FALSE(deep_equal(a, b));
  ProxyConfig e = rich();
  e.clusters[0].endpoints[0].port = 1;
  EXPECT_FALSE(deep_equal(a, e));
}

TEST(Wire, MaterialTravelsInTheSecretsSection) {
  Sections s = encode_sections(rich());
  ASSERT_EQ(s.size(), 5u);
  std::string listeners = s["listeners"].body.dump();
  std::string routes = s["routes"].body.dump();
  std::string clusters = s["clusters"].body.dump();
  EXPECT_EQ(listeners.find("KEY-A"), std::string::npos);
  EXPECT_EQ(listeners.find("CLIENT-CA"), std::string::npos);
  EXPECT_NE(listeners.find("KEY-inline"), std::string::npos);  // unnamed Secret
  EXPECT_EQ(routes.find("KEY-S"), std::string::npos);
  EXPECT_EQ(clusters.find("CA1"), std::string::npos);
  EXPECT_EQ(clusters.find("KEY-C"), std::string::npos);
  EXPECT_NE(clusters.find("INLINE-CA"), std::string::npos);
  std::string secrets = s["secrets"].body.dump();
  for (const char* m : {"KEY-A", "KEY-S", "KEY-C", "CA1", "CLIENT-CA"})
    EXPECT_NE(secrets.find(m), std::string::npos) << m;
}

TEST(Wire, SectionVersionsMoveWithTheirContentOnly) {
  ProxyConfig a = rich();
  ProxyConfig b = rich();
  b.version = 43;  // the configuration's own version is not part of any section
  b.clusters[0].endpoints[0].weight = 9;
  Sections sa = encode_sections(a);
  Sections sb = encode_sections(b);
  EXPECT_EQ(sa["listeners"].version, sb["listeners"].version);
  EXPECT_EQ(sa["routes"].version, sb["routes"].version);
  EXPECT_EQ(sa["clusters"].version, sb["clusters"].version);
  EXPECT_EQ(sa["secrets"].version, sb["secrets"].version);
  EXPECT_NE(sa["endpoints"].version, sb["endpoints"].version);
  // A rotated certificate moves the secrets section alone.
  ProxyConfig r = rich();
  r.listeners[0].tls->certificates[0].cert_chain_pem = "CHAIN-A2";
  edit_virtual_host(r.listeners[0].virtual_hosts, 0).tls->certificates[1].cert_chain_pem =
      "CHAIN-A2";
  Sections sr = encode_sections(r);
  EXPECT_EQ(sa["listeners"].version, sr["listeners"].version);
  EXPECT_EQ(sa["routes"].version, sr["routes"].version);
  EXPECT_NE(sa["secrets"].version, sr["secrets"].version);
  auto d = decode_sections(sr, header_of(r));
  ASSERT_TRUE(d.ok()) << d.error().message;
  EXPECT_TRUE(deep_equal(r, d.value()));
}

TEST(Wire, OneSecretWithTwoMaterialsStaysLossless) {
  ProxyConfig c = rich();
  // The virtual host's copy of default/site differs from the listener's: it stays inline.
  edit_virtual_host(c.listeners[0].virtual_hosts, 0).tls->certificates[1].ocsp_staple = "OTHER";
  auto d = decode(encode(c));
  ASSERT_TRUE(d.ok()) << d.error().message;
  EXPECT_TRUE(deep_equal(c, d.value()));
}

TEST(Wire, MessageCarriesOnlyTheSectionsGiven) {
  Message m;
  m.header = header_of(rich());
  m.nonce = "n-1";
  Sections all = encode_sections(rich());
  m.sections["endpoints"] = all["endpoints"];
  auto back = decode_message(encode_message(m));
  ASSERT_TRUE(back.ok()) << back.error().message;
  EXPECT_EQ(back.value().nonce, "n-1");
  EXPECT_EQ(back.value().header.version, 42u);
  EXPECT_EQ(back.value().header.versions, (TypeVersions{42, 41, 40, 39, 38}));
  ASSERT_EQ(back.value().sections.size(), 1u);
  EXPECT_EQ(back.value().sections.at("endpoints"), all["endpoints"]);
  // Not a whole configuration.
  auto d = decode(encode_message(m));
  ASSERT_FALSE(d.ok());
  EXPECT_NE(d.error().message.find("listeners"), std::string::npos) << d.error().message;
}

TEST(Wire, ErrorsNameWhere) {
  ProxyConfig c = rich();
  Sections s = encode_sections(c);
  s["clusters"].body["items"][1].erase("lb");
  auto d = decode_sections(s, header_of(c));
  ASSERT_FALSE(d.ok());
  EXPECT_NE(d.error().message.find("clusters.items[1] (default/backend)"), std::string::npos)
      << d.error().message;

  s = encode_sections(c);
  s["routes"].body["items"][0]["virtual_hosts"][0]["routes"][0]["match"]["kind"] = "glob";
  d = decode_sections(s, header_of(c));
  ASSERT_FALSE(d.ok());
  EXPECT_NE(d.error().message.find("routes.items[0]"), std::string::npos) << d.error().message;
  EXPECT_NE(d.error().message.find("glob"), std::string::npos) << d.error().message;

  s = encode_sections(c);
  s["secrets"].body["items"] = nlohmann::json::array();
  d = decode_sections(s, header_of(c));
  ASSERT_FALSE(d.ok());
  EXPECT_NE(d.error().message.find("is not in the secrets section"), std::string::npos)
      << d.error().message;

  s = encode_sections(c);
  s["endpoints"].body["items"].erase(0);
  d = decode_sections(s, header_of(c));
  ASSERT_FALSE(d.ok());
  EXPECT_NE(d.error().message.find("endpoints"), std::string::npos) << d.error().message;

  auto m = decode_message(R"({"version":1,"nonce":"x","created_unix_ms":0,)"
                          R"("type_versions":{"listeners":1,"routes":1,"clusters":1,)"
                          R"("endpoints":1,"secrets":1},"sections":{"bogus":{"items":[]}}})");
  ASSERT_FALSE(m.ok());
  EXPECT_NE(m.error().message.find("message.sections.bogus"), std::string::npos)
      << m.error().message;
}

TEST(Wire, TruncatedInputsAreRejected) {
  std::string text = encode(rich());
  for (size_t n = 0; n < text.size(); n += 1 + n / 50) {
    auto d = decode(std::string_view(text).substr(0, n));
    EXPECT_FALSE(d.ok()) << "prefix of " << n << " bytes";
  }
}

TEST(Wire, MutatedInputsNeverCrash) {
  std::string text = encode(rich());
  std::mt19937 rng(7);
  size_t rejected = 0;
  const int rounds = 3000;
  for (int i = 0; i < rounds; ++i) {
    std::string m = text;
    int edits = 1 + static_cast<int>(rng() % 4);
    for (int e = 0; e < edits; ++e) {
      size_t at = rng() % m.size();
      switch (rng() % 3) {
        case 0:
          m[at] = static_cast<char>(rng() % 256);
          break;
        case 1:
          m.erase(at, 1 + rng() % 8);
          break;
        default:
          m.insert(at, 1, "{}[]\",:0a-"[rng() % 10]);
      }
      if (m.empty()) m = "x";
    }
    auto d = decode(m);  // must not throw or crash; may decode when the edit was harmless
    if (!d.ok()) {
      ++rejected;
      EXPECT_FALSE(d.error().message.empty());
    }
  }
  EXPECT_GT(rejected, static_cast<size_t>(rounds / 2));
}

}  // namespace
}  // namespace portico::snapshot::wire
