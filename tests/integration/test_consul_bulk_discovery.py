"""Consul discovery in bulk mode through the real binary: 320 Upstreams `consul: {serviceName}` (more than
ConsulDiscovery::kBulkAbove) are watched over a bounded number of connections to the Consul double
(/v1/catalog/services and /v1/health/state/any as blocking queries, then /v1/health/service/<name> read
again only for the services that changed). Registration, deregistration, a check turning critical and
passing again, a new service, and an instance re-registered at another address (which changes no check:
the nodes' listings tell which service) are each followed; only the endpoints type version moves. Settings consulDiscovery.consistencyMode
StaleMode puts ?stale on every query."""

import http.client
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from support import portico_testlib as t  # noqa: E402
from support.consul_double import ConsulDouble  # noqa: E402
from support.portico_testlib import matcher as m, route as r  # noqa: E402

N = 320


def svc(i):
    return f"svc-{i:03d}"


class ConsulBulkDiscoveryTest(t.IntegrationTest):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.consul = ConsulDouble().start()
        cls.addClassCleanup(cls.consul.stop)
        port = t.free_port()
        cls.a = t.UpstreamServer("a", host="127.0.0.2", port=port).start()
        cls.addClassCleanup(cls.a.stop)
        cls.b = t.UpstreamServer("b", host="127.0.0.3", port=port).start()
        cls.addClassCleanup(cls.b.stop)
        cls.upstream_port = port
        # Every service but the last has one instance on a (127.0.0.2) before Portico starts.
        for i in range(N - 1):
            cls.consul.register(svc(i), port, address="127.0.0.2", service_id=f"{svc(i)}-a")
        cls.cfg = t.new_config(cls)
        cls.port = t.free_port()
        ups = [t.resource("Upstream", svc(i), {"consul": {"serviceName": svc(i)}}) for i in range(N)]
        routes = [r(svc(i), [m(prefix=f"/{svc(i)}/")], to=svc(i)) for i in range(N)]
        cls.cfg.write_stack(cls.port, [t.virtual_service("vs", routes)], ups)
        cls.cfg.write_obj("settings.yaml", t.resource("Settings", "default", {
            "consul": {"address": cls.consul.address, "waitTime": "5s"},
            "consulDiscovery": {"consistencyMode": "StaleMode"}}))
        cls.portico = t.start_portico(cls, cls.cfg)

    def get(self, path):
        conn = http.client.HTTPConnection(t.LOCALHOST, self.port, timeout=5)
        try:
            conn.request("GET", path)
            resp = conn.getresponse()
            resp.read()
            return resp.status, resp.getheader("X-Upstream")
        finally:
            conn.close()

    def seen(self, i, n=12):
        return {self.get(f"/{svc(i)}/x") for _ in range(n)}

    def stat(self, name):
        return t.metric_sum(self.portico.stats(), name)

    def type_version(self, kind):
        return t.metric_sum(self.portico.stats(), "portico_config_type_version", type=kind)

    def timed(self, what, fn, limit=1.0):
        started = time.monotonic()
        t.wait_until(fn, 15, interval=0.01, message=what)
        took = time.monotonic() - started
        print(f"{what}: {took:.3f} s")
        self.assertLess(took, limit, what)

    def test_a_bulk_lifecycle(self):
        t.wait_until(lambda: self.stat("portico_consul_discovery_services") == N, 20, message="all watched")
        self.assertEqual(self.stat("portico_consul_discovery_bulk_mode"), 1)
        t.wait_until(lambda: self.seen(N - 2, 3) == {(200, "a")}, 20, message="svc-318 serves")
        self.assertEqual(self.seen(0), {(200, "a")})
        self.assertEqual(self.get(f"/{svc(N - 1)}/x")[0], 503)  # not registered: no endpoint
        # Bounded connections: 2 list queries (one data center) + the readers, whatever N.
        with self.consul._server._conns_lock:
            conns = len(self.consul._server._conns)
        self.assertLessEqual(conns, 2 + 6 + 1, conns)
        reads = self.stat("portico_consul_discovery_bulk_reads_total")
        self.assertGreaterEqual(reads, N)
        routes = self.type_version("routes")
        endpoints = self.type_version("endpoints")

        self.consul.register(svc(10), self.upstream_port, address="127.0.0.3", service_id=f"{svc(10)}-b")
        self.timed("instance registered -> serves", lambda: self.seen(10, 20) == {(200, "a"), (200, "b")})
        self.consul.set_check(f"service:{svc(10)}-a", "critical")
        self.timed("check critical -> instance out", lambda: self.seen(10) == {(200, "b")})
        self.consul.set_check(f"service:{svc(10)}-a", "passing")
        self.timed("check passing -> back", lambda: self.seen(10, 20) == {(200, "a"), (200, "b")})
        self.consul.deregister(f"{svc(10)}-b")
        self.timed("instance deregistered -> gone", lambda: self.seen(10) == {(200, "a")})
        self.consul.register(svc(N - 1), self.upstream_port, address="127.0.0.3", service_id="new-b")
        self.timed("new service -> serves", lambda: self.seen(N - 1) == {(200, "b")})
        # Attributed changes read only the services concerned (a handful of reads, no sweep).
        self.assertLess(self.stat("portico_consul_discovery_bulk_reads_total") - reads, 40)
        self.assertEqual(self.stat("portico_consul_discovery_bulk_sweeps_total"), 0)

        # An address change re-registers the instance with an unchanged check: neither list names the
        # service; the nodes' listings do (a node scan), and only that service is read again.
        reads = self.stat("portico_consul_discovery_bulk_reads_total")
        scans = self.stat("portico_consul_discovery_bulk_node_scans_total")
        self.consul.register(svc(20), self.upstream_port, address="127.0.0.3", service_id=f"{svc(20)}-a")
        self.timed("address changed -> follows (node scan)", lambda: self.seen(20) == {(200, "b")}, limit=2.0)
        self.assertGreater(self.stat("portico_consul_discovery_bulk_node_scans_total"), scans)
        self.assertLess(self.stat("portico_consul_discovery_bulk_reads_total") - reads, 10)
        self.assertEqual(self.stat("portico_consul_discovery_bulk_sweeps_total"), 0)

        self.assertEqual(self.type_version("routes"), routes, "an endpoint change translated routes")
        self.assertGreater(self.type_version("endpoints"), endpoints)
        # What the lists were asked: blocking queries on both, never one per service.
        with self.consul.lock:
            targets = [x for _, x in self.consul.requests]
        self.assertTrue(any(x.startswith("/v1/catalog/services?") and "index=" in x for x in targets))
        self.assertTrue(any(x.startswith("/v1/health/state/any?") and "index=" in x for x in targets))
        self.assertFalse(any(x.startswith("/v1/health/service/") and "index=" in x for x in targets))
        # Settings consulDiscovery.consistencyMode StaleMode: every discovery query asks ?stale.
        discovery = [x for x in targets if x.startswith(("/v1/health/", "/v1/catalog/"))]
        self.assertGreater(len(discovery), N)
        self.assertEqual([x for x in discovery if "&stale" not in x and "?stale" not in x], [])

    def test_b_consul_failing_then_back(self):
        self.consul.fault("500", count=-1)
        t.wait_until(lambda: self.portico.resource("Upstream", svc(5))["state"] == "Warning", 15,
                     message="warning while Consul fails")
        self.assertEqual(self.seen(5), {(200, "a")})  # the last instances stay
        self.consul.fault("none")
        t.wait_until(lambda: self.portico.resource("Upstream", svc(5))["state"] == "Accepted", 30,
                     message="warning cleared")
        self.consul.register(svc(5), self.upstream_port, address="127.0.0.3", service_id=f"{svc(5)}-b")
        t.wait_until(lambda: self.seen(5, 20) == {(200, "a"), (200, "b")}, 10, message="follows again")


if __name__ == "__main__":
    t.main()
