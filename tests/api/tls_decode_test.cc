// Decoding of TLS and traffic fields: Secret, sslConfig on VirtualService / Gateway / Upstream,
// Gateway httpOptions and Gloo's httpConnectionManagerSettings, route maxRequestBodyBytes.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "api/decode.h"
#include "api/decode_helpers.h"

namespace portico::api {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;

using test::lines;

Resource decode_one(const std::string& text) {
  return test::decode_one("tls.yaml", text);
}

TEST(ApiTls, DecodesAnInlineTlsSecretAndRedactsItsKey) {
  auto r = decode_one(R"(kind: Secret
metadata: {name: tls, namespace: edge}
spec:
  tls:
    certChain: "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
    privateKey: "-----BEGIN PRIVATE KEY-----\nSECRETKEYBYTES\n-----END PRIVATE KEY-----\n"
    rootCaFile: certs/ca.pem
)");
  EXPECT_THAT(lines(r.diagnostics), IsEmpty());
  ASSERT_EQ(r.kind, Kind::kSecret);
  EXPECT_EQ(r.key(), "Secret/edge/tls");
  const auto& s = r.secret();
  ASSERT_TRUE(s.tls);
  EXPECT_THAT(s.tls->private_key.inline_value, HasSubstr("SECRETKEYBYTES"));
  EXPECT_EQ(s.tls->private_key.path, "spec.tls.privateKey");
  EXPECT_EQ(s.tls->root_ca.file, "certs/ca.pem");
  EXPECT_EQ(s.tls->root_ca.path, "spec.tls.rootCaFile");
  EXPECT_THAT(r.spec_json, Not(HasSubstr("SECRETKEYBYTES")));
  EXPECT_THAT(r.spec_json, HasSubstr(R"("privateKey":"<redacted>")"));
  EXPECT_THAT(r.spec_json, HasSubstr("BEGIN CERTIFICATE"));
  EXPECT_THAT(r.spec_json, HasSubstr(R"("rootCaFile":"certs/ca.pem")"));
}

TEST(ApiTls, GenericSecretValuesAreRedacted) {
  auto r = decode_one(R"(kind: Secret
metadata: {name: keys}
spec:
  generic: {team-a: s3cr3t-value, team-b: other-value}
)");
  EXPECT_THAT(lines(r.diagnostics), IsEmpty());
  EXPECT_EQ(r.secret().generic.at("team-a"), "s3cr3t-value");
  EXPECT_EQ(r.spec_json, R"({"generic":{"team-a":"<redacted>","team-b":"<redacted>"}})");
}

TEST(ApiTls, AKeyPastedIntoCertChainIsNotShown) {
  auto r = decode_one(R"(kind: Secret
metadata: {name: tls}
spec:
  tls:
    certChain: "-----BEGIN PRIVATE KEY-----\nOOPS\n-----END PRIVATE KEY-----\n"
    privateKeyFile: key.pem
)");
  EXPECT_THAT(r.spec_json, Not(HasSubstr("OOPS")));
}

TEST(ApiTls, SecretShapeErrors) {
  auto f = decode_file("tls.yaml", R"(kind: Secret
metadata: {name: a}
spec:
  tls:
    certChain: x
    certChainFile: a.pem
---
kind: Secret
metadata: {name: b}
spec:
  tls:
    privateKeyFile: key.pem
    ocspStaple: abc
    passphrase: hunter2
---
kind: Secret
metadata: {name: c}
spec:
  aws: {accessKey: x}
---
kind: Secret
metadata: {name: d}
spec: {}
)");
  ASSERT_EQ(f.resources.size(), 4u);
  EXPECT_THAT(lines(f.resources[0].diagnostics),
              ElementsAre("tls.yaml:5:5: error: spec.tls: certChain and privateKey go together "
                          "(inline or as files): set both or neither",
                          "tls.yaml:6:20: error: spec.tls.certChainFile: set either certChain or "
                          "certChainFile, not both"));
  EXPECT_THAT(
      lines(f.resources[1].diagnostics),
      ElementsAre("tls.yaml:12:5: error: spec.tls: certChain and privateKey go together (inline "
                  "or as files): set both or neither",
                  "tls.yaml:13:17: error: spec.tls.ocspStaple: needs certChain",
                  "tls.yaml:14:5: error: spec.tls.passphrase: unknown field \"passphrase\": not "
                  "implemented (refused rather than ignored)"));
  EXPECT_THAT(f.resources[1].spec_json, Not(HasSubstr("hunter2")));
  EXPECT_THAT(lines(f.resources[2].diagnostics),
              ElementsAre("tls.yaml:19:8: error: spec.aws: aws secrets are not supported yet; use "
                          "tls or generic"));
  EXPECT_THAT(lines(f.resources[3].diagnostics),
              ElementsAre("tls.yaml:23:7: error: spec: needs tls or generic"));
}

TEST(ApiTls, VirtualServiceSslConfig) {
  auto r = decode_one(R"(kind: VirtualService
metadata: {name: shop, namespace: web}
spec:
  sslConfig:
    secretRef: {name: shop-tls}
    sniDomains: [Shop.Example.com]
    verifySubjectAltName: [spiffe://example.com/client]
    parameters: {minimumProtocolVersion: TLSv1_3, maximumProtocolVersion: TLSv1_3}
    alpnProtocols: [http/1.1]
    clientIdentityHeader: X-Client-Identity
    ocspStaplePolicy: LenientStapling
  virtualHost:
    domains: [shop.example.com]
    routes:
      - directResponseAction: {status: 200}
        options: {maxRequestBodyBytes: 1048576}
)");
  EXPECT_THAT(lines(r.diagnostics), IsEmpty());
  const auto& vs = r.virtual_service();
  ASSERT_TRUE(vs.tls);
  ASSERT_TRUE(vs.tls->secret_ref);
  EXPECT_EQ(vs.tls->secret_ref->to_string(), "web/shop-tls");
  EXPECT_EQ(vs.tls->secret_ref->path, "spec.sslConfig.secretRef");
  ASSERT_TRUE(vs.tls->sni_domains);
  EXPECT_THAT(*vs.tls->sni_domains, ElementsAre("shop.example.com"));
  EXPECT_THAT(vs.tls->verify_subject_alt_names, ElementsAre("spiffe://example.com/client"));
  EXPECT_EQ(vs.tls->min_version, TlsVersion::kTls13);
  EXPECT_EQ(vs.tls->max_version, TlsVersion::kTls13);
  EXPECT_THAT(vs.tls->alpn, ElementsAre("http/1.1"));
  EXPECT_EQ(vs.tls->client_identity_header, "X-Client-Identity");
  EXPECT_FALSE(vs.tls->one_way_tls);
  EXPECT_EQ(vs.routes[0].options.max_request_body_bytes, 1048576u);
}

TEST(ApiTls, SslConfigErrorsNameTheirField) {
  auto r = decode_one(R"(kind: VirtualService
metadata: {name: shop}
spec:
  sslConfig:
    secretRef: {name: a}
    sslFiles: {tlsCert: a.pem}
    parameters:
      minimumProtocolVersion: TLSv1_1
      maximumProtocolVersion: TLSv9
      cipherSuites: [ECDHE-RSA-AES128-SHA]
    alpnProtocols: [h2, spdy/3]
    clientIdentityHeader: "Bad Header"
    ocspStaplePolicy: MustStaple
    sds: {targetUri: x}
  virtualHost:
    routes: [{directResponseAction: {status: 200}}]
)");
  EXPECT_THAT(
      lines(r.diagnostics),
      ElementsAre(
          "tls.yaml:5:5: error: spec.sslConfig: has both secretRef and sslFiles; use one",
          "tls.yaml:6:15: error: spec.sslConfig.sslFiles: tlsCert and tlsKey go together: set "
          "both or neither",
          "tls.yaml:8:31: error: spec.sslConfig.parameters.minimumProtocolVersion: TLSv1_1 is not "
          "supported: TLS 1.0 and 1.1 are insecure; use TLSv1_2 or TLSv1_3",
          "tls.yaml:9:31: error: spec.sslConfig.parameters.maximumProtocolVersion: \"TLSv9\" is "
          "not a TLS version; use TLSv1_2, TLSv1_3 or TLS_AUTO",
          "tls.yaml:10:21: error: spec.sslConfig.parameters.cipherSuites: cipherSuites is not "
          "supported yet: Portico uses its own modern set (TLS 1.2: ECDHE with AES-GCM or "
          "CHACHA20-POLY1305; TLS 1.3: OpenSSL's defaults)",
          "tls.yaml:11:25: error: spec.sslConfig.alpnProtocols[1]: \"spdy/3\" is not a supported "
          "ALPN protocol (h2, http/1.1)",
          "tls.yaml:12:27: error: spec.sslConfig.clientIdentityHeader: \"Bad Header\" is not a "
          "valid header name",
          "tls.yaml:13:23: error: spec.sslConfig.ocspStaplePolicy: MustStaple is not supported "
          "yet; only LenientStapling (a staple is sent when the certificate has one)",
          "tls.yaml:14:5: error: spec.sslConfig.sds: unknown field \"sds\": not implemented "
          "(refused rather than ignored)"));
}

TEST(ApiTls, GatewaySslAndHttpOptions) {
  auto r = decode_one(R"(kind: Gateway
metadata: {name: gw}
spec:
  bindPort: 8443
  ssl: true
  sslConfig:
    sslFiles: {tlsCert: certs/server.pem, tlsKey: certs/server.key}
    oneWayTls: true
  httpOptions:
    xffNumTrustedHops: 2
    normalizePath: false
    mergeSlashes: true
    maxRequestBodyBytes: 10485760
    requestTimeout: 30s
    streamIdleTimeout: 1m
    useRemoteAddress: false
    http2: {cleartextPriorKnowledge: true, maxConcurrentStreams: 50,
            initialStreamWindowSize: 131072, initialConnectionWindowSize: 4194304}
)");
  EXPECT_THAT(lines(r.diagnostics), IsEmpty());
  const auto& g = r.gateway();
  EXPECT_TRUE(g.ssl);
  ASSERT_TRUE(g.tls);
  ASSERT_TRUE(g.tls->ssl_files);
  EXPECT_EQ(g.tls->ssl_files->tls_cert.file, "certs/server.pem");
  EXPECT_EQ(g.tls->ssl_files->tls_key.path, "spec.sslConfig.sslFiles.tlsKey");
  EXPECT_TRUE(g.tls->one_way_tls);
  EXPECT_EQ(g.http.xff_num_trusted_hops, 2u);
  EXPECT_EQ(g.http.normalize_path, false);
  EXPECT_EQ(g.http.merge_slashes, true);
  EXPECT_EQ(g.http.max_request_body_bytes, 10485760u);
  EXPECT_EQ(g.http.request_timeout, Millis(30000));
  EXPECT_EQ(g.http.stream_idle_timeout, Millis(60000));
  EXPECT_EQ(g.http.use_remote_address, false);
  EXPECT_EQ(g.http.http2_cleartext_prior_knowledge, true);
  EXPECT_EQ(g.http.http2_max_concurrent_streams, 50u);
  EXPECT_EQ(g.http.http2_initial_stream_window, 131072u);
  EXPECT_EQ(g.http.http2_initial_connection_window, 4194304u);
}

TEST(ApiTls, Http2OptionsFailClosed) {
  auto r = decode_one(R"(kind: Gateway
metadata: {name: gw}
spec:
  bindPort: 8080
  httpOptions:
    http2: {maxConcurrentStreams: 0, initialStreamWindowSize: 100, h2cUpgrade: true}
)");
  EXPECT_THAT(lines(r.diagnostics),
              ElementsAre("tls.yaml:6:35: error: spec.httpOptions.http2.maxConcurrentStreams: 0 is "
                          "out of range (1-65536)",
                          "tls.yaml:6:63: error: spec.httpOptions.http2.initialStreamWindowSize: "
                          "100 is out of range (65535-2147483647)",
                          "tls.yaml:6:68: error: spec.httpOptions.http2.h2cUpgrade: unknown field "
                          "\"h2cUpgrade\": not implemented (refused rather than ignored)"));
}

TEST(ApiTls, GlooHttpConnectionManagerSettings) {
  auto r = decode_one(R"(kind: Gateway
metadata: {name: gw}
spec:
  bindPort: 8080
  httpOptions: {mergeSlashes: true}
  httpGateway:
    options:
      httpConnectionManagerSettings:
        xffNumTrustedHops: 1
        useRemoteAddress: true
        mergeSlashes: false
        normalizePath: true
        requestTimeout: 10s
        streamIdleTimeout: 20s
        idleTimeout: 30s
        maxRequestHeadersKb: 32
        serverName: edge
        generateRequestId: false
        tracing: {verbose: true}
        forwardClientCertDetails: SANITIZE_SET
        skipXffAppend: true
)");
  EXPECT_THAT(
      lines(r.diagnostics),
      ElementsAre(
          "tls.yaml:11:23: error: spec.httpGateway.options.httpConnectionManagerSettings."
          "mergeSlashes: is also set in spec.httpOptions; set it in one place",
          "tls.yaml:19:18: warning: spec.httpGateway.options.httpConnectionManagerSettings."
          "tracing: is not implemented (ignored: it changes no routing or security)",
          "tls.yaml:20:9: error: spec.httpGateway.options.httpConnectionManagerSettings."
          "forwardClientCertDetails: unknown field \"forwardClientCertDetails\": not implemented "
          "(refused rather than ignored)",
          "tls.yaml:21:9: error: spec.httpGateway.options.httpConnectionManagerSettings."
          "skipXffAppend: unknown field \"skipXffAppend\": not implemented (refused rather than "
          "ignored)"));
  const auto& h = r.gateway().http;
  EXPECT_EQ(h.xff_num_trusted_hops, 1u);
  EXPECT_EQ(h.use_remote_address, true);
  EXPECT_EQ(h.merge_slashes, true);  // the first place wins; the second is an error
  EXPECT_EQ(h.normalize_path, true);
  EXPECT_EQ(h.request_timeout, Millis(10000));
  EXPECT_EQ(h.stream_idle_timeout, Millis(20000));
  EXPECT_EQ(h.idle_timeout, Millis(30000));
  EXPECT_EQ(h.max_request_headers_bytes, 32u * 1024);
  EXPECT_EQ(h.server_name, "edge");
  EXPECT_EQ(h.generate_request_id, false);
}

TEST(ApiTls, GatewayTlsErrors) {
  auto r = decode_one(R"(kind: Gateway
metadata: {name: gw}
spec:
  bindPort: 8080
  sslConfig:
    secretRef: {name: x}
    sniDomains: [a.example.com]
  httpGateway:
    options:
      extauth: {extauthzServerRef: {name: auth}}
)");
  EXPECT_THAT(
      lines(r.diagnostics),
      ElementsAre(
          "tls.yaml:6:5: error: spec.sslConfig: needs ssl: true (a plain gateway serves no "
          "certificate)",
          "tls.yaml:7:17: error: spec.sslConfig.sniDomains: has no meaning on a Gateway: its "
          "sslConfig is the certificate for clients whose SNI matches no virtual service; set "
          "sniDomains on the virtual service",
          "tls.yaml:10:7: error: spec.httpGateway.options.extauth: extauth (authentication) is not "
          "implemented: rejected rather than served without it"));
}

TEST(ApiTls, UpstreamSslConfigAndConnectionLimits) {
  auto r = decode_one(R"(kind: Upstream
metadata: {name: api, namespace: web}
spec:
  static: {hosts: [{addr: 10.0.0.1, port: 443}]}
  sslConfig:
    secretRef: {name: upstream-mtls, namespace: certs}
    sni: api.internal
    verifySubjectAltName: [api.internal]
    alpnProtocols: [http/1.1]
    parameters: {minimumProtocolVersion: TLSv1_3}
  connectionConfig: {maxConnections: 100, maxIdleConnections: 10}
  useHttp2: false
)");
  EXPECT_THAT(lines(r.diagnostics), IsEmpty());
  const auto& u = r.upstream();
  ASSERT_TRUE(u.tls);
  EXPECT_EQ(u.tls->secret_ref->to_string(), "certs/upstream-mtls");
  EXPECT_EQ(u.tls->sni, "api.internal");
  EXPECT_THAT(u.tls->verify_subject_alt_names, ElementsAre("api.internal"));
  EXPECT_EQ(u.tls->min_version, TlsVersion::kTls13);
  EXPECT_FALSE(u.tls->insecure_skip_verify);
  EXPECT_EQ(u.max_connections, 100u);
  EXPECT_EQ(u.max_idle_connections, 10u);
}

TEST(ApiTls, UpstreamErrors) {
  auto r = decode_one(R"(kind: Upstream
metadata: {name: api}
spec:
  static: {hosts: [{addr: 10.0.0.1, port: 443}]}
  useHttp2: true
  sslConfig:
    sslFiles: {rootCa: ca.pem}
    sni: "bad sni"
    insecureSkipVerify: true
    verifySubjectAltName: [a]
    allowRenegotiation: true
)");
  EXPECT_THAT(
      lines(r.diagnostics),
      ElementsAre(
          "tls.yaml:8:10: error: spec.sslConfig.sni: \"bad sni\" is not a valid server name",
          "tls.yaml:9:25: error: spec.sslConfig.insecureSkipVerify: contradicts "
          "verifySubjectAltName: names cannot be checked without verification",
          "tls.yaml:9:25: error: spec.sslConfig.insecureSkipVerify: contradicts sslFiles.rootCa: "
          "nothing would be verified against it",
          "tls.yaml:11:5: error: spec.sslConfig.allowRenegotiation: unknown field "
          "\"allowRenegotiation\": not implemented (refused rather than ignored)"));
}

TEST(ApiTls, UpstreamHttp2) {
  auto r = decode_one(R"(kind: Upstream
metadata: {name: grpc}
spec:
  static: {hosts: [{addr: 10.0.0.1, port: 443}]}
  useHttp2: true
  http2ProtocolOptions:
    maxConcurrentStreams: 50
    initialStreamWindowSize: 1048576
    initialConnectionWindowSize: 4194304
  sslConfig:
    alpnProtocols: [h2]
)");
  EXPECT_THAT(lines(r.diagnostics), IsEmpty());
  const auto& u = r.upstream();
  EXPECT_TRUE(u.use_http2);
  EXPECT_EQ(u.http2_max_concurrent_streams, 50u);
  EXPECT_EQ(u.http2_initial_stream_window, 1048576u);
  EXPECT_EQ(u.http2_initial_connection_window, 4194304u);
  ASSERT_TRUE(u.tls);
  EXPECT_THAT(u.tls->alpn, ElementsAre("h2"));
}

TEST(ApiTls, UpstreamHttp2Errors) {
  auto r = decode_one(R"(kind: Upstream
metadata: {name: grpc}
spec:
  static: {hosts: [{addr: 10.0.0.1, port: 443}]}
  useHttp2: "yes"
  http2ProtocolOptions:
    maxConcurrentStreams: 0
    initialStreamWindowSize: 10
    overrideStreamErrorOnInvalidHttpMessage: true
)");
  const auto l = lines(r.diagnostics);
  ASSERT_EQ(l.size(), 5u) << testing::PrintToString(l);
  using ::testing::Contains;
  EXPECT_THAT(l, Contains(HasSubstr("spec.useHttp2: ")));
  EXPECT_THAT(l, Contains(HasSubstr("spec.http2ProtocolOptions.maxConcurrentStreams: ")));
  EXPECT_THAT(l, Contains(HasSubstr("spec.http2ProtocolOptions.initialStreamWindowSize: ")));
  EXPECT_THAT(l,
              Contains(HasSubstr(
                  "spec.http2ProtocolOptions.overrideStreamErrorOnInvalidHttpMessage: unknown")));
  EXPECT_THAT(l,
              Contains(HasSubstr("spec.http2ProtocolOptions: applies to HTTP/2 upstreams only")));
}

}  // namespace
}  // namespace portico::api
