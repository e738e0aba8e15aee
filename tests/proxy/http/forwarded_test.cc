// Unit tests of the forwarding-header policy (proxy/http/forwarded.h, docs/forwarding.md).
#include "proxy/http/forwarded.h"

#include <gtest/gtest.h>

#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace portico::proxy::http {
namespace {

using Headers = std::vector<std::pair<std::string_view, std::string_view>>;

struct Request {
  std::string_view peer = "192.0.2.10";
  bool tls = false;
  std::string_view protocol = "1.1";
  std::string_view host = "api.example.com";
  Headers headers;
};

bool clean(std::string_view s) {
  for (const char c : s) {
    const auto b = static_cast<unsigned char>(c);
    if ((b < 0x20 && b != '\t') || b == 0x7f) return false;
  }
  return true;
}

ForwardingHeaders forward(const Request& r, uint32_t hops, bool use_remote_address = true,
                          std::string_view pseudonym = "portico") {
  std::vector<Header> hs;
  for (const auto& [name, value] : r.headers)
    hs.push_back(Header{name, value});
  ForwardingInput in;
  in.peer = r.peer;
  in.tls = r.tls;
  in.protocol = r.protocol;
  in.host = r.host;
  in.headers = hs;
  ForwardingPolicy p;
  p.xff_num_trusted_hops = hops;
  p.use_remote_address = use_remote_address;
  p.via_pseudonym = pseudonym;
  ForwardingHeaders out;
  compute_forwarding(in, p, out);
  for (const std::string_view v :
       {std::string_view(out.client_address), std::string_view(out.x_forwarded_for),
        out.x_forwarded_proto, std::string_view(out.x_forwarded_host),
        std::string_view(out.forwarded), std::string_view(out.via)}) {
    EXPECT_TRUE(clean(v)) << "control character in " << v;
  }
  return out;
}

// ---- X-Forwarded-For and the client address, by number of trusted hops ----

struct XffCase {
  uint32_t hops;
  Headers headers;
  std::string_view client;
  std::string_view xff;
};

TEST(Forwarding, XffTable) {
  const std::vector<XffCase> cases = {
      // 0 trusted hops: the client is the peer; what the client sent is kept, the peer appended.
      {0, {}, "192.0.2.10", "192.0.2.10"},
      {0, {{"X-Forwarded-For", "203.0.113.7"}}, "192.0.2.10", "203.0.113.7, 192.0.2.10"},
      {0,
       {{"X-Forwarded-For", "spoofed, 10.0.0.1"}},
       "192.0.2.10",
       "spoofed, 10.0.0.1, 192.0.2.10"},
      // 1 trusted hop: the last address the trusted peer appended.
      {1, {}, "192.0.2.10", "192.0.2.10"},  // nothing sent: the peer
      {1, {{"X-Forwarded-For", "203.0.113.7"}}, "203.0.113.7", "203.0.113.7, 192.0.2.10"},
      {1,
       {{"X-Forwarded-For", "1.1.1.1, 203.0.113.7"}},
       "203.0.113.7",
       "1.1.1.1, 203.0.113.7, 192.0.2.10"},
      // 2 trusted hops: the second from the right of what was received.
      {2,
       {{"X-Forwarded-For", "1.1.1.1, 203.0.113.7, 198.51.100.2"}},
       "203.0.113.7",
       "1.1.1.1, 203.0.113.7, 198.51.100.2, 192.0.2.10"},
      {2, {{"X-Forwarded-For", "198.51.100.2"}}, "192.0.2.10", "198.51.100.2, 192.0.2.10"},
      // Several lines are one list, in order; whitespace and empty entries are normalised away.
      {2,
       {{"X-Forwarded-For", "1.1.1.1 ,203.0.113.7"}, {"x-forwarded-for", " 198.51.100.2,,"}},
       "203.0.113.7",
       "1.1.1.1, 203.0.113.7, 198.51.100.2, 192.0.2.10"},
      // Unparsable at the chosen position: the peer. Elsewhere: just data.
      {1, {{"X-Forwarded-For", "1.1.1.1, garbage"}}, "192.0.2.10", "1.1.1.1, garbage, 192.0.2.10"},
      {1, {{"X-Forwarded-For", "garbage, 1.1.1.1"}}, "1.1.1.1", "garbage, 1.1.1.1, 192.0.2.10"},
      {1, {{"X-Forwarded-For", "unknown"}}, "192.0.2.10", "unknown, 192.0.2.10"},
      {1, {{"X-Forwarded-For", "1.2.3"}}, "192.0.2.10", "1.2.3, 192.0.2.10"},
      {1, {{"X-Forwarded-For", "256.1.1.1"}}, "192.0.2.10", "256.1.1.1, 192.0.2.10"},
      // IPv4 that is already canonical is taken as is; anything else goes through the parser.
      {1, {{"X-Forwarded-For", "0.0.0.0"}}, "0.0.0.0", "0.0.0.0, 192.0.2.10"},
      {1,
       {{"X-Forwarded-For", "255.255.255.255"}},
       "255.255.255.255",
       "255.255.255.255, 192.0.2.10"},
      {1, {{"X-Forwarded-For", "01.2.3.4"}}, "192.0.2.10", "01.2.3.4, 192.0.2.10"},
      {1, {{"X-Forwarded-For", "1.2.3.0004"}}, "192.0.2.10", "1.2.3.0004, 192.0.2.10"},
      {1, {{"X-Forwarded-For", "1.2.3.4.5"}}, "192.0.2.10", "1.2.3.4.5, 192.0.2.10"},
      {1, {{"X-Forwarded-For", "1..3.4"}}, "192.0.2.10", "1..3.4, 192.0.2.10"},
      // Ports and brackets are accepted and dropped from the client address; IPv6 canonicalised.
      {1, {{"X-Forwarded-For", "203.0.113.7:5555"}}, "203.0.113.7", "203.0.113.7:5555, 192.0.2.10"},
      {1,
       {{"X-Forwarded-For", "[2001:DB8:0::1]:443"}},
       "2001:db8::1",
       "[2001:DB8:0::1]:443, 192.0.2.10"},
      {1, {{"X-Forwarded-For", "[2001:db8::1]"}}, "2001:db8::1", "[2001:db8::1], 192.0.2.10"},
      {1, {{"X-Forwarded-For", "2001:db8::1"}}, "2001:db8::1", "2001:db8::1, 192.0.2.10"},
      {1,
       {{"X-Forwarded-For", "[2001:db8::1]:99999"}},
       "192.0.2.10",
       "[2001:db8::1]:99999, 192.0.2.10"},
      {1, {{"X-Forwarded-For", "1.2.3.4:"}}, "192.0.2.10", "1.2.3.4:, 192.0.2.10"},
      // More hops trusted than there are entries: the peer.
      {5, {{"X-Forwarded-For", "1.1.1.1, 2.2.2.2"}}, "192.0.2.10", "1.1.1.1, 2.2.2.2, 192.0.2.10"},
      {0xffffffffu, {{"X-Forwarded-For", "1.1.1.1"}}, "192.0.2.10", "1.1.1.1, 192.0.2.10"},
  };
  for (const XffCase& c : cases) {
    Request r;
    r.headers = c.headers;
    const ForwardingHeaders out = forward(r, c.hops);
    EXPECT_EQ(out.client_address, c.client) << "hops " << c.hops << " xff " << c.xff;
    EXPECT_EQ(out.x_forwarded_for, c.xff) << "hops " << c.hops;
  }
}

TEST(Forwarding, UseRemoteAddressFalseDoesNotAppendButStillPicksTheSameClient) {
  Request r;
  r.headers = {{"X-Forwarded-For", "203.0.113.7"}};
  ForwardingHeaders out = forward(r, 0, false);
  EXPECT_EQ(out.x_forwarded_for, "203.0.113.7");
  EXPECT_EQ(out.client_address, "192.0.2.10");
  out = forward(r, 1, false);
  EXPECT_EQ(out.x_forwarded_for, "203.0.113.7");
  EXPECT_EQ(out.client_address, "203.0.113.7");
  r.headers.clear();
  out = forward(r, 0, false);
  EXPECT_EQ(out.x_forwarded_for, "");  // nothing to send
}

TEST(Forwarding, ControlCharactersNeverReachOutput) {
  Request r;
  r.host = std::string_view("h\r\nX-Evil: 1", 12);
  r.headers = {
      {"X-Forwarded-For", std::string_view("1.1.1.1\r\nX-Evil: 1, 2.2.2.2", 27)},
      {"X-Forwarded-For", std::string_view("3.3.3.3\0", 8)},
      {"X-Forwarded-Proto", "https\n"},
      {"X-Forwarded-Host", "evil\r.com"},
      {"Forwarded", "for=1.1.1.1\r\n"},
      {"Via", "1.1 a\x7f"},
  };
  for (const uint32_t hops : {0u, 1u, 2u}) {
    const ForwardingHeaders out = forward(r, hops);  // forward() checks every value is clean
    EXPECT_EQ(out.x_forwarded_for, "unknown, 2.2.2.2, unknown, 192.0.2.10") << hops;
    EXPECT_EQ(out.x_forwarded_proto, "http");
    EXPECT_EQ(out.x_forwarded_host, "");
    EXPECT_EQ(out.forwarded, "for=192.0.2.10;proto=http");
    EXPECT_EQ(out.via, "1.1 portico");
  }
  // Received list "unknown, 2.2.2.2, unknown" + peer: 1 hop picks "unknown" (so the peer), 2 hops
  // pick 2.2.2.2, 3 hops "unknown" again.
  EXPECT_EQ(forward(r, 1).client_address, "192.0.2.10");
  EXPECT_EQ(forward(r, 2).client_address, "2.2.2.2");
  EXPECT_EQ(forward(r, 3).client_address, "192.0.2.10");
}

TEST(Forwarding, PeerCornerCases) {
  Request r;
  r.peer = "";
  r.headers = {{"X-Forwarded-For", "1.1.1.1"}};
  ForwardingHeaders out = forward(r, 0);
  EXPECT_EQ(out.client_address, "");
  EXPECT_EQ(out.x_forwarded_for, "1.1.1.1");
  EXPECT_EQ(out.forwarded, "for=unknown;proto=http;host=api.example.com");
  EXPECT_EQ(forward(r, 1).client_address, "1.1.1.1");

  r.peer = "2001:db8::10";
  out = forward(r, 0);
  EXPECT_EQ(out.client_address, "2001:db8::10");
  EXPECT_EQ(out.x_forwarded_for, "1.1.1.1, 2001:db8::10");
  EXPECT_EQ(out.forwarded, "for=\"[2001:db8::10]\";proto=http;host=api.example.com");

  r.peer = "unix:/run/portico.sock";  // not an IP address: one hop all the same
  out = forward(r, 0);
  EXPECT_EQ(out.client_address, "unix:/run/portico.sock");
  EXPECT_EQ(out.x_forwarded_for, "1.1.1.1, unknown");
  EXPECT_EQ(out.forwarded, "for=unknown;proto=http;host=api.example.com");

  r.peer = " 2001:DB8::10 ";  // canonicalised
  out = forward(r, 0);
  EXPECT_EQ(out.client_address, "2001:db8::10");
  EXPECT_EQ(out.x_forwarded_for, "1.1.1.1, 2001:db8::10");

  r.peer = std::string_view("1.2.3.4\r\n", 9);
  out = forward(r, 0);
  EXPECT_EQ(out.client_address, "");
  EXPECT_EQ(out.x_forwarded_for, "1.1.1.1");
}

// ---- X-Forwarded-Proto ----

TEST(Forwarding, XForwardedProto) {
  struct ProtoCase {
    bool tls;
    uint32_t hops;
    Headers headers;
    std::string_view want;
  };
  const std::vector<ProtoCase> cases = {
      {false, 0, {}, "http"},
      {true, 0, {}, "https"},
      {false, 0, {{"X-Forwarded-Proto", "https"}}, "http"},  // untrusted peer: ignored
      {true, 0, {{"X-Forwarded-Proto", "http"}}, "https"},
      {false, 1, {{"X-Forwarded-Proto", "https"}}, "https"},  // trusted peer terminated TLS
      {false, 1, {{"x-forwarded-proto", " HTTPS "}}, "https"},
      {true, 1, {{"X-Forwarded-Proto", "http"}}, "http"},
      {true, 1, {}, "https"},
      {false, 1, {{"X-Forwarded-Proto", "ftp"}}, "http"},
      {false, 1, {{"X-Forwarded-Proto", "https, http"}}, "http"},
      {false, 1, {{"X-Forwarded-Proto", "https"}, {"X-Forwarded-Proto", "https"}}, "http"},
      {false, 2, {{"X-Forwarded-Proto", "https"}}, "https"},
  };
  for (const ProtoCase& c : cases) {
    Request r;
    r.tls = c.tls;
    r.headers = c.headers;
    EXPECT_EQ(forward(r, c.hops).x_forwarded_proto, c.want) << c.tls << " " << c.hops;
  }
}

// ---- X-Forwarded-Host ----

TEST(Forwarding, XForwardedHost) {
  Request r;
  r.host = "api.example.com:8443";
  EXPECT_EQ(forward(r, 0).x_forwarded_host, "api.example.com:8443");
  r.headers = {{"X-Forwarded-Host", "public.example.com"}};
  EXPECT_EQ(forward(r, 0).x_forwarded_host, "api.example.com:8443");  // untrusted: Host
  EXPECT_EQ(forward(r, 1).x_forwarded_host, "public.example.com");    // trusted: kept
  r.headers = {{"X-Forwarded-Host", "a.com"}, {"X-Forwarded-Host", "b.com"}};
  EXPECT_EQ(forward(r, 1).x_forwarded_host, "api.example.com:8443");  // ambiguous: Host
  r.headers = {{"X-Forwarded-Host", "  "}};
  EXPECT_EQ(forward(r, 1).x_forwarded_host, "api.example.com:8443");
  r.host = "";
  r.headers.clear();
  EXPECT_EQ(forward(r, 0).x_forwarded_host, "");  // HTTP/1.0 without Host: not sent
}

// ---- Forwarded (RFC 7239) ----

TEST(Forwarding, ForwardedIsRewritten) {
  Request r;
  r.headers = {{"Forwarded", "for=198.51.100.1;proto=https"}, {"forwarded", "for=unknown"}};
  // Untrusted peer: what it sent is dropped; only this hop's element.
  EXPECT_EQ(forward(r, 0).forwarded, "for=192.0.2.10;proto=http;host=api.example.com");
  // Trusted peer: its elements are kept, this hop's appended.
  EXPECT_EQ(forward(r, 1).forwarded,
            "for=198.51.100.1;proto=https, for=unknown, "
            "for=192.0.2.10;proto=http;host=api.example.com");
  r.headers.clear();
  r.tls = true;
  r.host = "a.example.com:8443";
  EXPECT_EQ(forward(r, 1).forwarded, "for=192.0.2.10;proto=https;host=\"a.example.com:8443\"");
  r.host = "[::1]:80";
  EXPECT_EQ(forward(r, 0).forwarded, "for=192.0.2.10;proto=https;host=\"[::1]:80\"");
  r.host = "we\"ird\\";  // not a valid Host, but quoted safely if it ever arrives
  EXPECT_EQ(forward(r, 0).forwarded, "for=192.0.2.10;proto=https;host=\"we\\\"ird\\\\\"");
}

// ---- Via ----

TEST(Forwarding, Via) {
  Request r;
  EXPECT_EQ(forward(r, 0).via, "1.1 portico");
  r.protocol = "1.0";
  EXPECT_EQ(forward(r, 0).via, "1.0 portico");
  r.protocol = "2";
  EXPECT_EQ(forward(r, 0).via, "2 portico");
  r.protocol = "HTTP/1.1";  // not a version: the default
  EXPECT_EQ(forward(r, 0).via, "1.1 portico");
  r.protocol = "1.1";
  r.headers = {{"Via", "1.0 fred, 1.1 p.example.net"}, {"via", "2 edge"}};
  EXPECT_EQ(forward(r, 0).via, "1.0 fred, 1.1 p.example.net, 2 edge, 1.1 portico");
  EXPECT_EQ(forward(r, 0, true, "gw-eu1").via, "1.0 fred, 1.1 p.example.net, 2 edge, 1.1 gw-eu1");
  r.headers.clear();
  EXPECT_EQ(forward(r, 0, true, "bad name").via, "1.1 portico");
  EXPECT_EQ(forward(r, 0, true, "").via, "1.1 portico");
  EXPECT_EQ(forward(r, 0, true, "x\r\n").via, "1.1 portico");
}

// ---- the examples of docs/forwarding.md, verbatim ----

TEST(Forwarding, DocExamples) {
  Request r;  // peer 192.0.2.10, plain HTTP, HTTP/1.1, Host api.example.com
  r.headers = {{"X-Forwarded-For", "203.0.113.7, 10.0.0.1"},
               {"X-Forwarded-Proto", "https"},
               {"X-Forwarded-Host", "evil.example"},
               {"Forwarded", "for=198.51.100.1"},
               {"Via", "1.1 somewhere"}};
  ForwardingHeaders out = forward(r, 0);
  EXPECT_EQ(out.client_address, "192.0.2.10");
  EXPECT_EQ(out.x_forwarded_for, "203.0.113.7, 10.0.0.1, 192.0.2.10");
  EXPECT_EQ(out.x_forwarded_proto, "http");
  EXPECT_EQ(out.x_forwarded_host, "api.example.com");
  EXPECT_EQ(out.forwarded, "for=192.0.2.10;proto=http;host=api.example.com");
  EXPECT_EQ(out.via, "1.1 somewhere, 1.1 portico");

  r.headers = {{"X-Forwarded-For", "1.1.1.1, 203.0.113.7"}, {"X-Forwarded-Proto", "https"}};
  out = forward(r, 1);
  EXPECT_EQ(out.client_address, "203.0.113.7");
  EXPECT_EQ(out.x_forwarded_for, "1.1.1.1, 203.0.113.7, 192.0.2.10");
  EXPECT_EQ(out.x_forwarded_proto, "https");
  EXPECT_EQ(out.x_forwarded_host, "api.example.com");
  EXPECT_EQ(out.forwarded, "for=192.0.2.10;proto=http;host=api.example.com");
  EXPECT_EQ(out.via, "1.1 portico");
  r.headers = {{"X-Forwarded-For", "garbage"}};
  EXPECT_EQ(forward(r, 1).client_address, "192.0.2.10");
  r.headers.clear();
  EXPECT_EQ(forward(r, 1).client_address, "192.0.2.10");

  r.headers = {{"X-Forwarded-For", "1.1.1.1, 203.0.113.7, 198.51.100.2"},
               {"X-Forwarded-Host", "www.example.com"},
               {"Forwarded", "for=203.0.113.7;proto=https, for=198.51.100.2"}};
  out = forward(r, 2);
  EXPECT_EQ(out.client_address, "203.0.113.7");
  EXPECT_EQ(out.x_forwarded_for, "1.1.1.1, 203.0.113.7, 198.51.100.2, 192.0.2.10");
  EXPECT_EQ(out.x_forwarded_proto, "http");
  EXPECT_EQ(out.x_forwarded_host, "www.example.com");
  EXPECT_EQ(out.forwarded,
            "for=203.0.113.7;proto=https, for=198.51.100.2, "
            "for=192.0.2.10;proto=http;host=api.example.com");
  EXPECT_EQ(out.via, "1.1 portico");
  r.headers = {{"X-Forwarded-For", "198.51.100.2"}};
  EXPECT_EQ(forward(r, 2).client_address, "192.0.2.10");
}

// ---- helpers ----

TEST(Forwarding, IsForwardingHeader) {
  for (const std::string_view n :
       {"X-Forwarded-For", "x-forwarded-proto", "X-FORWARDED-HOST", "Forwarded", "via", "VIA"}) {
    EXPECT_TRUE(is_forwarding_header(n)) << n;
  }
  for (const std::string_view n :
       {"X-Forwarded-Port", "x-real-ip", "vias", "forward", "", "host"}) {
    EXPECT_FALSE(is_forwarding_header(n)) << n;
  }
}

TEST(Forwarding, ParseForwardedAddress) {
  struct AddrCase {
    std::string_view in;
    std::string_view want;  // empty: rejected
  };
  const std::vector<AddrCase> cases = {
      {"192.0.2.1", "192.0.2.1"},
      {"192.0.2.1:80", "192.0.2.1"},
      {"192.0.2.1:65535", "192.0.2.1"},
      {"192.0.2.1:65536", ""},
      {"192.0.2.1:", ""},
      {"192.0.2.1:x", ""},
      {"192.0.2", ""},
      {"192.0.2.1.5", ""},
      {" 192.0.2.1", ""},
      {"2001:db8::1", "2001:db8::1"},
      {"2001:DB8:0:0:0:0:0:1", "2001:db8::1"},
      {"::ffff:192.0.2.1", "::ffff:192.0.2.1"},
      {"[2001:db8::1]", "2001:db8::1"},
      {"[2001:db8::1]:8080", "2001:db8::1"},
      {"[2001:db8::1]8080", ""},
      {"[2001:db8::1", ""},
      {"[192.0.2.1]", ""},
      {"fe80::1%eth0", ""},
      {"unknown", ""},
      {"_hidden", ""},
      {"", ""},
      {"[]", ""},
      {std::string_view("1.2.3.4\0", 8), ""},
      {"1111:2222:3333:4444:5555:6666:7777:8888:9999", ""},
  };
  for (const AddrCase& c : cases) {
    std::string out;
    const bool ok = parse_forwarded_address(c.in, out);
    EXPECT_EQ(ok, !c.want.empty()) << c.in;
    if (ok) {
      EXPECT_EQ(out, c.want) << c.in;
    }
  }
}

TEST(Forwarding, OutputIsReusable) {
  Request r;
  r.headers = {{"X-Forwarded-For", "1.1.1.1"}, {"Via", "1.0 a"}, {"Forwarded", "for=x"}};
  std::vector<Header> hs;
  for (const auto& [name, value] : r.headers)
    hs.push_back(Header{name, value});
  ForwardingInput in;
  in.peer = r.peer;
  in.host = r.host;
  in.headers = hs;
  ForwardingPolicy p;
  p.xff_num_trusted_hops = 1;
  ForwardingHeaders out;
  compute_forwarding(in, p, out);
  compute_forwarding(in, p, out);  // a second request on the same object starts afresh
  EXPECT_EQ(out.x_forwarded_for, "1.1.1.1, 192.0.2.10");
  EXPECT_EQ(out.via, "1.0 a, 1.1 portico");
  EXPECT_EQ(out.forwarded, "for=x, for=192.0.2.10;proto=http;host=api.example.com");
  EXPECT_EQ(out.client_address, "1.1.1.1");
}

// The per-connection cache answers what compute_forwarding answers, and computes again whenever
// an input it depends on differs.
TEST(Forwarding, CacheMatchesComputeAndFollowsEveryInput) {
  auto fresh = [](const ForwardingInput& in, const ForwardingPolicy& p) {
    ForwardingHeaders out;
    compute_forwarding(in, p, out);
    return out;
  };
  auto same = [](const ForwardingHeaders& a, const ForwardingHeaders& b) {
    return a.client_address == b.client_address && a.x_forwarded_for == b.x_forwarded_for &&
           a.x_forwarded_proto == b.x_forwarded_proto && a.x_forwarded_host == b.x_forwarded_host &&
           a.forwarded == b.forwarded && a.via == b.via;
  };
  ForwardingCache cache;
  ForwardingInput in;
  in.peer = "192.0.2.10";
  in.host = "api.example.com";
  in.protocol = "1.1";
  ForwardingPolicy p;
  EXPECT_TRUE(same(cache.get(in, p), fresh(in, p)));
  EXPECT_TRUE(same(cache.get(in, p), fresh(in, p)));
  EXPECT_EQ(cache.computed(), 1u) << "the second request of the connection reuses the answer";
  EXPECT_EQ(cache.get(in, p).forwarded, "for=192.0.2.10;proto=http;host=api.example.com");

  uint64_t n = cache.computed();
  auto changed = [&](const ForwardingInput& i, const ForwardingPolicy& q, const char* what) {
    const ForwardingHeaders& got = cache.get(i, q);
    EXPECT_TRUE(same(got, fresh(i, q))) << what;
    EXPECT_EQ(cache.computed(), ++n) << what;
  };
  ForwardingInput other = in;
  other.host = "www.example.com";
  changed(other, p, "host");
  other.protocol = "1.0";
  changed(other, p, "protocol");
  other.tls = true;
  changed(other, p, "tls");
  other.peer = "2001:db8::1";
  changed(other, p, "peer");
  ForwardingPolicy q = p;
  q.xff_num_trusted_hops = 1;
  changed(other, q, "trusted hops");
  q.use_remote_address = false;
  changed(other, q, "use_remote_address");
  q.via_pseudonym = "edge";
  changed(other, q, "via pseudonym");
  EXPECT_EQ(cache.get(other, q).via, "1.0 edge");
}

}  // namespace
}  // namespace portico::proxy::http
