"""DNS discovery through the real binary: Upstream hosts written as names are resolved (A and AAAA)
against a DNS server the Settings name (tests/support/dns_server.py, a real UDP DNS server), looked up
again within the TTL, and the traffic follows the answers: a second address joins, the first leaves,
a name that stops existing (NXDOMAIN) leaves no endpoint and warns on the Upstream, a failing server
(SERVFAIL) keeps the addresses found before. An endpoint change moves only the endpoints version: no
route is translated again."""

import http.client
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from support import portico_testlib as t  # noqa: E402
from support.dns_server import DnsServer  # noqa: E402
from support.portico_testlib import matcher as m, route as r  # noqa: E402


class DnsDiscoveryTest(t.IntegrationTest):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.dns = DnsServer()
        cls.addClassCleanup(cls.dns.close)
        # Two upstream hosts on one port, at two loopback addresses: only DNS tells them apart.
        port = t.free_port()
        cls.a = t.UpstreamServer("a", host="127.0.0.2", port=port).start()
        cls.addClassCleanup(cls.a.stop)
        cls.b = t.UpstreamServer("b", host="127.0.0.3", port=port).start()
        cls.addClassCleanup(cls.b.stop)
        cls.dns.set("svc.test", a=["127.0.0.2"], ttl=1)
        cls.cfg = t.new_config(cls)
        cls.port = t.free_port()
        cls.upstream_port = port
        ups = t.upstream("svc", [("svc.test", port)])
        routes = [r("all", [m(prefix="/")], to="svc")]
        cls.cfg.write_stack(cls.port, [t.virtual_service("vs", routes)], [ups])
        cls.cfg.write_obj("settings.yaml", t.resource("Settings", "default", {
            "dns": {"servers": [f"127.0.0.1:{cls.dns.port}"], "minRefresh": "200ms", "timeout": "500ms"}}))
        cls.portico = t.start_portico(cls, cls.cfg)

    def upstream_of_get(self):
        conn = http.client.HTTPConnection(t.LOCALHOST, self.port, timeout=5)
        try:
            conn.request("GET", "/")
            resp = conn.getresponse()
            resp.read()
            return resp.status, resp.getheader("X-Upstream")
        finally:
            conn.close()

    def seen(self, n=12):
        return {self.upstream_of_get() for _ in range(n)}

    def type_version(self, kind):
        return t.metric_sum(self.portico.stats(), "portico_config_type_version", type=kind)

    def upstream_reasons(self):
        res = self.portico.resource("Upstream", "svc")
        return res["state"], [d.get("message", "") for d in res.get("reasons", [])]

    def test_a_new_name_is_served_from_its_first_publication(self):
        """Cluster warming: the configuration that adds a name is published with its addresses,
        never a moment without any (a 503 window)."""
        self.dns.set("fresh.test", a=["127.0.0.3"], ttl=30)
        ups = [t.upstream("svc", [("svc.test", self.upstream_port)]),
               t.upstream("fresh", [("fresh.test", self.upstream_port)])]
        routes = [r("fresh", [m(prefix="/fresh")], to="fresh"), r("all", [m(prefix="/")], to="svc")]
        self.cfg.write_stack(self.port, [t.virtual_service("vs", routes)], ups)
        # Until the new route serves: the old configuration answers (route "all"), never a 503.
        seen = []
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            conn = http.client.HTTPConnection(t.LOCALHOST, self.port, timeout=5)
            try:
                conn.request("GET", "/fresh")
                resp = conn.getresponse()
                resp.read()
                seen.append((resp.status, resp.getheader("X-Upstream")))
            finally:
                conn.close()
            if seen[-1] == (200, "b"):
                break
        self.assertEqual(seen[-1], (200, "b"), seen[-5:])
        self.assertNotIn(503, [st for st, _ in seen], f"{len(seen)} requests: {sorted(set(seen))}")

    def test_traffic_follows_the_answers(self):
        t.wait_until(lambda: self.seen() == {(200, "a")}, 10, message="svc.test -> 127.0.0.2 serves")
        routes = self.type_version("routes")
        endpoints = self.type_version("endpoints")

        started = time.monotonic()
        self.dns.set("svc.test", a=["127.0.0.2", "127.0.0.3"], ttl=1)
        t.wait_until(lambda: self.seen(20) == {(200, "a"), (200, "b")}, 10, message="both addresses serve")
        print(f"second address serving after {time.monotonic() - started:.2f} s (TTL 1 s)")

        self.dns.set("svc.test", a=["127.0.0.3"], ttl=1)
        t.wait_until(lambda: self.seen() == {(200, "b")}, 10, message="only 127.0.0.3 serves")
        self.assertEqual(self.type_version("routes"), routes, "an endpoint change translated routes")
        self.assertGreater(self.type_version("endpoints"), endpoints)
        dump = self.portico.admin_get("/config_dump").json()
        svc = [c for c in dump["clusters"] if c["name"] == "default/svc"][0]
        self.assertEqual([e["address"] for e in svc["endpoints"]], ["127.0.0.3"])
        self.assertEqual(svc["discovery"][0]["name"], "svc.test")
        self.assertEqual(self.upstream_reasons()[0], "Accepted")

        # The name stops existing: no endpoint, a warning on the Upstream.
        self.dns.remove("svc.test")
        t.wait_until(lambda: self.upstream_reasons()[0] == "Warning", 10, message="NXDOMAIN warned")
        self.assertTrue(any("NXDOMAIN" in x for x in self.upstream_reasons()[1]), self.upstream_reasons())
        statuses = {s for s, _ in self.seen(4)}
        self.assertEqual(statuses, {503})

        # Back, then the server fails: the addresses found before stay.
        self.dns.set("svc.test", a=["127.0.0.2"], ttl=1)
        t.wait_until(lambda: self.seen() == {(200, "a")}, 10, message="back on 127.0.0.2")
        t.wait_until(lambda: self.upstream_reasons()[0] == "Accepted", 10, message="warning cleared")
        failures = t.metric_sum(self.portico.stats(), "portico_dns_lookup_failures_total")
        self.dns.mode = "servfail"
        try:
            t.wait_until(lambda: t.metric_sum(self.portico.stats(), "portico_dns_lookup_failures_total")
                         > failures, 10, message="lookups failing")
            t.wait_until(lambda: self.upstream_reasons()[0] == "Warning", 10, message="failure warned")
            self.assertTrue(any("kept" in x for x in self.upstream_reasons()[1]), self.upstream_reasons())
            self.assertEqual(self.seen(), {(200, "a")})
        finally:
            self.dns.mode = "ok"
        t.wait_until(lambda: self.upstream_reasons()[0] == "Accepted", 10, message="recovered")
        self.assertGreater(self.dns.count("svc.test"), 5)


if __name__ == "__main__":
    t.main()
