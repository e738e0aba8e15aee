// Type versions (assign_type_versions) and the sources of snapshot items (sources_of).
#include <gtest/gtest.h>

#include <memory>

#include "snapshot/proxy_config.h"

namespace portico::snapshot {
namespace {

TlsCertificate cert(const std::string& secret, const std::string& pem) {
  return TlsCertificate{secret, pem, "KEY-" + pem, ""};
}

ProxyConfig base() {
  ProxyConfig c;
  c.version = 1;
  Listener l;
  l.name = "default/gw";
  l.port = 8443;
  l.tls = TlsServerConfig{};
  l.tls->certificates.push_back(cert("default/site", "A"));
  auto vh = std::make_shared<VirtualHost>();
  vh->name = "default/shop";
  vh->domains = {"shop.example.com"};
  vh->sources = {"VirtualService/default/shop", "RouteTable/team/api"};
  vh->tls = TlsServerConfig{};
  vh->tls->certificates.push_back(cert("default/shop-cert", "S"));
  Route r;
  r.name = "default/shop/0";
  r.action = ForwardAction{{{"default/api", 1}}, 1};
  vh->routes.push_back(r);
  l.virtual_hosts.push_back(vh);
  c.listeners.push_back(l);
  Cluster api;
  api.name = "default/api";
  api.endpoints = {{"10.0.0.1", 80, 1}};
  Cluster tls;
  tls.name = "default/backend";
  tls.endpoints = {{"10.0.0.2", 443, 1}};
  tls.tls = TlsClientConfig{};
  tls.tls->ca_pem = "CA1";
  tls.tls->ca_secret = "default/ca";
  c.clusters = std::vector<Cluster>{api, tls};
  assign_type_versions(c, nullptr);
  return c;
}

ProxyConfig next_of(const ProxyConfig& prev) {
  ProxyConfig n = prev;
  n.version = prev.version + 1;
  return n;
}

TEST(TypeVersions, FirstConfigurationHasItsVersionEverywhere) {
  ProxyConfig c = base();
  EXPECT_EQ(c.versions, (TypeVersions{1, 1, 1, 1, 1}));
}

TEST(TypeVersions, NothingChangedKeepsEveryVersion) {
  ProxyConfig a = base();
  ProxyConfig b = next_of(a);
  assign_type_versions(b, &a);
  EXPECT_EQ(b.versions, a.versions);
  // Equal copies that share nothing are compared by value: still unchanged.
  ProxyConfig c = base();
  c.version = 3;
  c.clusters = std::vector<Cluster>(a.clusters.get());
  edit_virtual_host(c.listeners[0].virtual_hosts, 0);
  assign_type_versions(c, &a);
  EXPECT_EQ(c.versions, a.versions);
}

TEST(TypeVersions, AnEndpointChangeIsOnlyAnEndpointsVersion) {
  ProxyConfig a = base();
  ProxyConfig b = next_of(a);
  b.clusters[0].endpoints.push_back({"10.0.0.9", 80, 1});
  assign_type_versions(b, &a);
  EXPECT_EQ(b.versions, (TypeVersions{1, 1, 1, 2, 1}));
}

TEST(TypeVersions, ARouteChangeIsOnlyARoutesVersion) {
  ProxyConfig a = base();
  ProxyConfig b = next_of(a);
  edit_virtual_host(b.listeners[0].virtual_hosts, 0).routes[0].options.timeout = Millis(5);
  assign_type_versions(b, &a);
  EXPECT_EQ(b.versions, (TypeVersions{1, 2, 1, 1, 1}));
}

TEST(TypeVersions, ARotatedCertificateIsOnlyASecretsVersion) {
  ProxyConfig a = base();
  // The listener's default certificate.
  ProxyConfig b = next_of(a);
  b.listeners[0].tls->certificates[0].cert_chain_pem = "A2";
  assign_type_versions(b, &a);
  EXPECT_EQ(b.versions, (TypeVersions{1, 1, 1, 1, 2}));
  // A virtual host's certificate (its routes are the same).
  ProxyConfig c = next_of(b);
  edit_virtual_host(c.listeners[0].virtual_hosts, 0).tls->certificates[0].private_key_pem = "K2";
  assign_type_versions(c, &b);
  EXPECT_EQ(c.versions, (TypeVersions{1, 1, 1, 1, 3}));
  // An upstream's CA bundle.
  ProxyConfig d = next_of(c);
  d.clusters[1].tls->ca_pem = "CA2";
  assign_type_versions(d, &c);
  EXPECT_EQ(d.versions, (TypeVersions{1, 1, 1, 1, 4}));
}

TEST(TypeVersions, SettingsChangesAreTheirKindsVersions) {
  ProxyConfig a = base();
  ProxyConfig b = next_of(a);
  b.listeners[0].http.idle_timeout = Millis(1);
  assign_type_versions(b, &a);
  EXPECT_EQ(b.versions, (TypeVersions{2, 1, 1, 1, 1}));
  ProxyConfig c = next_of(b);
  c.clusters[0].connect_timeout = Millis(7);
  assign_type_versions(c, &b);
  EXPECT_EQ(c.versions, (TypeVersions{2, 1, 3, 1, 1}));
  // A certificate named differently is a setting of the listener, and new material.
  ProxyConfig d = next_of(c);
  d.listeners[0].tls->certificates[0].secret = "default/other";
  assign_type_versions(d, &c);
  EXPECT_EQ(d.versions, (TypeVersions{4, 1, 3, 1, 4}));
  // A cluster removed: clusters and endpoints.
  ProxyConfig e = next_of(d);
  e.clusters.edit().pop_back();
  assign_type_versions(e, &d);
  EXPECT_EQ(e.versions.clusters, 5u);
  EXPECT_EQ(e.versions.endpoints, 5u);
  EXPECT_EQ(e.versions.secrets, 5u);  // its CA is gone
  // A listener added: listeners and routes.
  ProxyConfig f = next_of(e);
  Listener plain;
  plain.name = "default/plain";
  f.listeners.push_back(plain);
  assign_type_versions(f, &e);
  EXPECT_EQ(f.versions, (TypeVersions{6, 6, 5, 5, 5}));
}

TEST(Sources, ItemsNameTheResourcesThatProducedThem) {
  ProxyConfig c = base();
  EXPECT_EQ(sources_of(c.listeners[0]),
            (std::vector<std::string>{"Gateway/default/gw", "Secret/default/site"}));
  EXPECT_EQ(sources_of(*c.listeners[0].virtual_hosts[0]),
            (std::vector<std::string>{"VirtualService/default/shop", "RouteTable/team/api",
                                      "Secret/default/shop-cert"}));
  EXPECT_EQ(sources_of(c.clusters[0]), (std::vector<std::string>{"Upstream/default/api"}));
  EXPECT_EQ(sources_of(c.clusters[1]),
            (std::vector<std::string>{"Upstream/default/backend", "Secret/default/ca"}));
  // Files named by sslFiles belong to the resource that names them.
  Cluster files;
  files.name = "default/f";
  files.tls = TlsClientConfig{};
  files.tls->ca_secret = "file:ca.pem";
  EXPECT_EQ(sources_of(files), (std::vector<std::string>{"Upstream/default/f"}));
}

}  // namespace
}  // namespace portico::snapshot
