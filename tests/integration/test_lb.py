#!/usr/bin/env python3
"""Load balancers through the real binary, with three real upstream servers: ring hash keyed by a
header and maglev keyed by a cookie (the same key always reaches the same host, different keys spread
over all three), random and least request (spread over all three), source-IP hashing (stable per client
address), a failover tier unused while the primary host is available, the load balancer counters."""

import collections
import http.client
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from support import portico_testlib as t  # noqa: E402
from support.portico_testlib import matcher as m, route as r  # noqa: E402

NAMES = ("a", "b", "c")


class LoadBalancerTest(t.IntegrationTest):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.servers = {n: t.start_upstream(cls, n) for n in NAMES}
        hosts = [(t.LOCALHOST, cls.servers[n].port) for n in NAMES]
        cls.cfg = t.new_config(cls)
        cls.port = t.free_port()
        ring = t.upstream("ring", hosts)
        ring["spec"]["loadBalancerConfig"] = {"ringHash": {"ringHashConfig": {"minimumRingSize": 256}}}
        maglev = t.upstream("maglev", hosts)
        maglev["spec"]["loadBalancerConfig"] = {"maglev": {}}
        least = t.upstream("least", hosts)
        least["spec"]["loadBalancerConfig"] = {"leastRequest": {"choiceCount": 2}}
        # Failover: tier 0 is host a alone, tier 1 hosts b and c (used only when a is unavailable).
        failover = t.upstream("failover", hosts[:1], lb="random")
        failover["spec"]["failover"] = {"prioritizedLocalities": [{"localityEndpoints": [{
            "locality": {"region": "backup"},
            "lbEndpoints": [{"address": h[0], "port": h[1]} for h in hosts[1:]]}]}]}
        ups = [ring, maglev, least, t.upstream("random", hosts, lb="random"), failover]
        by_header = {"lbHash": {"hashPolicies": [{"header": "x-user", "terminal": True}, {"sourceIp": True}]}}
        by_ip = {"lbHash": {"hashPolicies": [{"sourceIp": True}]}}
        by_cookie = {"lbHash": {"hashPolicies": [{"cookie": {"name": "session"}}]}}
        routes = [
            r("ring", [m(prefix="/ring")], to="ring", options=by_header),
            r("maglev", [m(prefix="/maglev")], to="maglev", options=by_cookie),
            r("ip", [m(prefix="/ip")], to="ring", options=by_ip),
            r("random", [m(prefix="/random")], to="random"),
            r("least", [m(prefix="/least")], to="least"),
            r("failover", [m(prefix="/failover")], to="failover"),
        ]
        cls.cfg.write_stack(cls.port, [t.virtual_service("vs", routes)], ups)
        cls.portico = t.start_portico(cls, cls.cfg)

    def get(self, path, headers=None, source=None):
        """One GET on a new connection (from `source` address when given); returns X-Upstream."""
        conn = http.client.HTTPConnection(t.LOCALHOST, self.port, timeout=10,
                                          source_address=(source, 0) if source else None)
        try:
            conn.request("GET", path, headers=headers or {})
            resp = conn.getresponse()
            resp.read()
            self.assertEqual(resp.status, 200, path)
            return resp.getheader("X-Upstream")
        finally:
            conn.close()

    def test_ring_hash_by_header_is_sticky_and_spreads(self):
        chosen = {}
        for user in range(30):
            hosts = {self.get(f"/ring/{i}", {"x-user": f"user-{user}"}) for i in range(5)}
            self.assertEqual(len(hosts), 1, f"user-{user} reached {hosts}")
            chosen[user] = hosts.pop()
        counts = collections.Counter(chosen.values())
        self.assertEqual(set(counts), set(NAMES), dict(counts))

    def test_maglev_by_cookie_is_sticky_and_spreads(self):
        chosen = {}
        for s in range(30):
            cookie = {"Cookie": f"theme=dark; session=s{s}"}
            hosts = {self.get(f"/maglev/{i}", cookie) for i in range(5)}
            self.assertEqual(len(hosts), 1, f"session s{s} reached {hosts}")
            chosen[s] = hosts.pop()
        self.assertEqual(set(chosen.values()), set(NAMES), collections.Counter(chosen.values()))

    def test_without_key_hash_policies_pick_at_random(self):
        # No x-user header: the sourceIp policy (not terminal-blocked) keys on 127.0.0.1: sticky.
        hosts = {self.get(f"/ring/{i}") for i in range(10)}
        self.assertEqual(len(hosts), 1, hosts)
        # No session cookie at all: no key, random picks over all hosts.
        counts = collections.Counter(self.get(f"/maglev/{i}") for i in range(60))
        self.assertEqual(set(counts), set(NAMES), dict(counts))

    def test_source_ip_hashing_is_stable(self):
        chosen = {}
        for n in range(2, 26):
            source = f"127.0.0.{n}"
            hosts = {self.get(f"/ip/{i}", source=source) for i in range(4)}
            self.assertEqual(len(hosts), 1, f"{source} reached {hosts}")
            chosen[source] = hosts.pop()
        self.assertGreaterEqual(len(set(chosen.values())), 2, chosen)

    def test_random_spreads(self):
        counts = collections.Counter(self.get(f"/random/{i}") for i in range(150))
        self.assertEqual(set(counts), set(NAMES), dict(counts))
        for n in NAMES:
            self.assertGreater(counts[n], 20, dict(counts))

    def test_least_request_spreads(self):
        counts = collections.Counter(self.get(f"/least/{i}") for i in range(150))
        self.assertEqual(set(counts), set(NAMES), dict(counts))
        for n in NAMES:
            self.assertGreater(counts[n], 20, dict(counts))

    def test_config_dump_shows_policies(self):
        resp = self.portico.admin_get("/config_dump")
        self.assertEqual(resp.status, 200)
        dump = resp.json()
        lbs = {c["name"]: c["lb"] for c in dump["clusters"]}
        self.assertEqual(lbs[f"{t.NAMESPACE}/ring"], "ring_hash")
        self.assertEqual(lbs[f"{t.NAMESPACE}/maglev"], "maglev")

    def test_failover_tier_unused_while_the_primary_is_available(self):
        counts = collections.Counter(self.get(f"/failover/{i}") for i in range(40))
        self.assertEqual(dict(counts), {"a": 40})
        dump = self.portico.admin_get("/config_dump").json()
        (cluster,) = [c for c in dump["clusters"] if c["name"] == f"{t.NAMESPACE}/failover"]
        self.assertEqual([e.get("priority", 0) for e in cluster["endpoints"]], [0, 1, 1])

    def test_stats_list_the_load_balancer_counters(self):
        self.get("/ring/x", {"x-user": "someone"})
        names = {n for n, labels, v in self.portico.stats() if labels.get("upstream") == f"{t.NAMESPACE}/ring"}
        self.assertIn("portico_upstream_lb_panic_total", names)
        self.assertIn("portico_upstream_lb_failover_total", names)
        # Every host is available: no panic, no failover.
        self.assertEqual(t.metric_sum(self.portico.stats(), "portico_upstream_lb_panic_total"), 0)
        self.assertEqual(t.metric_sum(self.portico.stats(), "portico_upstream_lb_failover_total"), 0)


if __name__ == "__main__":
    t.main()
