"""Consul catalog discovery through the real binary: an Upstream `consul: {serviceName, ...}` is
served by the healthy instances the Consul double (tests/support/consul_double.py) reports on
/v1/health/service/<name>?passing. Instances registered join within 1 s, deregistered ones or ones
whose check turns critical leave within 1 s; tags filter; a second data center is a target of its
own; Consul stopping keeps the last instances with a Warning on the Upstream. An endpoint change
moves only the endpoints type version (no route translated again)."""

import http.client
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from support import portico_testlib as t  # noqa: E402
from support.consul_double import ConsulDouble  # noqa: E402
from support.portico_testlib import matcher as m, route as r  # noqa: E402


class ConsulDiscoveryTest(t.IntegrationTest):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.consul = ConsulDouble(datacenters=("dc1", "dc2")).start()
        cls.addClassCleanup(cls.consul.stop)
        # Instances at three loopback addresses on one port: only Consul tells them apart.
        port = t.free_port()
        cls.a = t.UpstreamServer("a", host="127.0.0.2", port=port).start()
        cls.addClassCleanup(cls.a.stop)
        cls.b = t.UpstreamServer("b", host="127.0.0.3", port=port).start()
        cls.addClassCleanup(cls.b.stop)
        cls.c = t.UpstreamServer("c", host="127.0.0.4", port=port).start()
        cls.addClassCleanup(cls.c.stop)
        cls.upstream_port = port
        cls.cfg = t.new_config(cls)
        cls.port = t.free_port()
        ups = [t.resource("Upstream", "web", {"consul": {"serviceName": "web"}}),
               t.resource("Upstream", "tagged", {"consul": {"serviceName": "web", "serviceTags": ["v2"]}}),
               t.resource("Upstream", "remote", {"consul": {"serviceName": "api", "dataCenters": ["dc2"]}})]
        routes = [r("tagged", [m(prefix="/tagged")], to="tagged"),
                  r("remote", [m(prefix="/remote")], to="remote"),
                  r("all", [m(prefix="/")], to="web")]
        cls.cfg.write_stack(cls.port, [t.virtual_service("vs", routes)], ups)
        cls.cfg.write_obj("settings.yaml", t.resource("Settings", "default", {
            "consul": {"address": cls.consul.address, "waitTime": "5s"}}))
        cls.portico = t.start_portico(cls, cls.cfg)

    def get(self, path="/"):
        conn = http.client.HTTPConnection(t.LOCALHOST, self.port, timeout=5)
        try:
            conn.request("GET", path)
            resp = conn.getresponse()
            resp.read()
            return resp.status, resp.getheader("X-Upstream")
        finally:
            conn.close()

    def seen(self, path="/", n=12):
        return {self.get(path) for _ in range(n)}

    def type_version(self, kind):
        return t.metric_sum(self.portico.stats(), "portico_config_type_version", type=kind)

    def reasons(self, name):
        res = self.portico.resource("Upstream", name)
        return res["state"], [d.get("message", "") for d in res.get("reasons", [])]

    def timed(self, what, fn):
        started = time.monotonic()
        t.wait_until(fn, 10, interval=0.01, message=what)
        took = time.monotonic() - started
        print(f"{what}: {took:.3f} s")
        self.assertLess(took, 1.0, what)

    def test_a_lifecycle(self):
        # The service does not exist yet: a warning, no endpoint.
        t.wait_until(lambda: self.reasons("web")[0] == "Warning", 10, message="not-found warning")
        self.assertTrue(any("service not found in Consul" in x for x in self.reasons("web")[1]),
                        self.reasons("web"))
        routes = self.type_version("routes")
        endpoints = self.type_version("endpoints")

        self.consul.register("web", self.upstream_port, address="127.0.0.2", service_id="web-a")
        self.consul.register("web", self.upstream_port, address="127.0.0.3", service_id="web-b",
                             tags=["v2"])
        self.timed("two instances registered -> both serve",
                   lambda: self.seen(n=20) == {(200, "a"), (200, "b")})
        t.wait_until(lambda: self.reasons("web")[0] == "Accepted", 5, message="warning cleared")
        # The tag filter: only web-b carries v2.
        self.assertEqual(self.seen("/tagged"), {(200, "b")})

        self.consul.deregister("web-a")
        self.timed("one instance deregistered -> gone", lambda: self.seen() == {(200, "b")})

        self.consul.register("web", self.upstream_port, address="127.0.0.4", service_id="web-c")
        self.timed("third instance -> serves", lambda: self.seen(n=20) == {(200, "b"), (200, "c")})
        self.consul.set_check("service:web-c", "critical")
        self.timed("check critical -> instance out", lambda: self.seen() == {(200, "b")})
        self.consul.set_check("service:web-c", "passing")
        self.timed("check passing -> instance back", lambda: self.seen(n=20) == {(200, "b"), (200, "c")})

        self.assertEqual(self.type_version("routes"), routes, "an endpoint change translated routes")
        self.assertGreater(self.type_version("endpoints"), endpoints)
        stats = self.portico.stats()
        self.assertGreater(t.metric_sum(stats, "portico_consul_discovery_queries_total"), 0)
        self.assertEqual(t.metric_sum(stats, "portico_consul_discovery_services"), 3)

    def test_b_second_datacenter(self):
        # api exists only in dc2 (the Upstream asks for dc2; the agent's dc is dc1).
        self.consul.register("api", self.upstream_port, address="127.0.0.4", service_id="api-1", dc="dc2")
        self.consul.register("api", self.upstream_port, address="127.0.0.2", service_id="api-x", dc="dc1")
        self.timed("dc2 instance -> serves", lambda: self.seen("/remote") == {(200, "c")})

    def test_c_consistency_mode(self):
        # Settings consulDiscovery.consistencyMode, applied without a restart: the queries ask for it.
        with self.consul.lock:
            seen = len(self.consul.requests)
        self.assertFalse(any("consistent" in x for _, x in self.consul.requests))
        self.cfg.write_obj("settings.yaml", t.resource("Settings", "default", {
            "consul": {"address": self.consul.address, "waitTime": "5s"},
            "consulDiscovery": {"consistencyMode": "ConsistentMode"}}))

        def asked():
            with self.consul.lock:
                return [x for _, x in self.consul.requests[seen:] if x.startswith("/v1/health/service/web?")]
        # Both targets (web, web with tag v2) ask with it; from then on every query of a target does.
        # (A blocking query of the watcher replaced may still arrive just before: not counted.)
        t.wait_until(lambda: {"tag=" in x for x in asked() if "&consistent" in x} == {True, False}, 10,
                     message="?consistent sent for both targets")
        for tagged in (False, True):
            queries = [x for x in asked() if ("tag=" in x) == tagged]
            first = next(i for i, x in enumerate(queries) if "&consistent" in x)
            self.assertTrue(all("&consistent" in x for x in queries[first:]), queries)
        self.consul.register("web", self.upstream_port, address="127.0.0.4", service_id="web-c2")
        t.wait_until(lambda: (200, "c") in self.seen(n=20), 5, message="still follows")

    def test_z_consul_stopped_keeps_last_instances(self):
        self.consul.register("web", self.upstream_port, address="127.0.0.3", service_id="web-b")
        t.wait_until(lambda: (200, "b") in self.seen(), 10, message="web-b serves")
        before = self.seen(n=20)
        failures = t.metric_sum(self.portico.stats(), "portico_consul_discovery_failures_total")
        self.consul.stop()
        t.wait_until(lambda: self.reasons("web")[0] == "Warning", 15, message="unreachable warning")
        self.assertTrue(any("Consul unreachable" in x for x in self.reasons("web")[1]), self.reasons("web"))
        self.assertEqual(self.seen(n=20), before)
        self.assertGreater(t.metric_sum(self.portico.stats(), "portico_consul_discovery_failures_total"),
                           failures)


if __name__ == "__main__":
    t.main()
