"""Nomad native service discovery through the real binary: an Upstream `nomad: {serviceName, ...}` is
served by the registrations the Nomad double (tests/support/nomad_double.py, with ACLs: the token
comes from Settings nomad.tokenFile) reports on /v1/service/<name>. Allocations registered join within
1 s, deregistered ones leave within 1 s; tags filter; a namespace is a target of its own; canaries:
a route sending 10 % to `canary: only` and 90 % to `canary: exclude` splits as weighted, and a
promotion (canaries re-registered with the normal tags, old allocations removed) moves everything
to the promoted allocations without a failed request (the emptied canary destination's share goes
to the stable one); Nomad stopping keeps the last instances with a Warning on the Upstream. An
endpoint change moves only the endpoints type version (no route translated again)."""

import http.client
import math
import os
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from support import portico_testlib as t  # noqa: E402
from support.nomad_double import NomadDouble  # noqa: E402
from support.portico_testlib import matcher as m, route as r  # noqa: E402

TOKEN = "0f3c5e1a-portico-test"


class Client:
    """One keep-alive connection to the proxy; a failure (exception or non-200) is counted and the
    connection opened again."""

    def __init__(self, port):
        self.port = port
        self.conn = None

    def get(self, path):
        for _ in range(2):
            if self.conn is None:
                self.conn = http.client.HTTPConnection(t.LOCALHOST, self.port, timeout=5)
            try:
                self.conn.request("GET", path)
                resp = self.conn.getresponse()
                resp.read()
                return resp.status, resp.getheader("X-Upstream")
            except (OSError, http.client.HTTPException):
                self.conn.close()
                self.conn = None
        return 0, None

    def close(self):
        if self.conn:
            self.conn.close()


class NomadDiscoveryTest(t.IntegrationTest):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.nomad = NomadDouble(acl=True).start()
        cls.addClassCleanup(cls.nomad.stop)
        cls.nomad.add_token(TOKEN)
        fd, cls.token_file = tempfile.mkstemp(prefix="portico-nomad-token-")
        os.write(fd, (TOKEN + "\n").encode())
        os.close(fd)
        cls.addClassCleanup(os.remove, cls.token_file)
        # Instances at four loopback addresses on one port: only Nomad tells them apart.
        port = t.free_port()
        cls.servers = {}
        for name, host in (("a", "127.0.0.2"), ("b", "127.0.0.3"), ("c", "127.0.0.4"), ("d", "127.0.0.5")):
            s = t.UpstreamServer(name, host=host, port=port).start()
            cls.addClassCleanup(s.stop)
            cls.servers[name] = host
        cls.upstream_port = port
        cls.cfg = t.new_config(cls)
        cls.port = t.free_port()
        shop = {"serviceName": "shop", "canaryTags": ["canary"]}
        ups = [t.resource("Upstream", "web", {"nomad": {"serviceName": "web"}}),
               t.resource("Upstream", "tagged", {"nomad": {"serviceName": "web", "tags": ["v2"]}}),
               t.resource("Upstream", "prod", {"nomad": {"serviceName": "web", "namespace": "prod"}}),
               t.resource("Upstream", "shop-stable", {"nomad": dict(shop, canary="exclude")}),
               t.resource("Upstream", "shop-canary", {"nomad": dict(shop, canary="only")})]
        routes = [r("tagged", [m(prefix="/tagged")], to="tagged"),
                  r("prod", [m(prefix="/prod")], to="prod"),
                  r("shop", [m(prefix="/shop")], weighted=[("shop-stable", 90), ("shop-canary", 10)]),
                  r("all", [m(prefix="/")], to="web")]
        cls.cfg.write_stack(cls.port, [t.virtual_service("vs", routes)], ups)
        cls.cfg.write_obj("settings.yaml", t.resource("Settings", "default", {
            "nomad": {"address": cls.nomad.address, "tokenFile": cls.token_file, "waitTime": "5s"}}))
        cls.portico = t.start_portico(cls, cls.cfg)

    def setUp(self):
        self.client = Client(self.port)
        self.addCleanup(self.client.close)

    def register(self, service, server, tags=(), namespace="default", alloc=None):
        return self.nomad.register(service, self.servers[server], self.upstream_port, tags=tags,
                                   namespace=namespace, alloc_id=alloc)

    def seen(self, path="/", n=12):
        return {self.client.get(path) for _ in range(n)}

    def type_version(self, kind):
        return t.metric_sum(self.portico.stats(), "portico_config_type_version", type=kind)

    def reasons(self, name):
        res = self.portico.resource("Upstream", name)
        return res["state"], [d.get("message", "") for d in res.get("reasons", [])]

    def timed(self, what, fn, limit=1.0):
        started = time.monotonic()
        t.wait_until(fn, 10, interval=0.01, message=what)
        took = time.monotonic() - started
        print(f"{what}: {took:.3f} s")
        self.assertLess(took, limit, what)

    def test_a_lifecycle(self):
        # The service does not exist yet: a warning, no endpoint.
        t.wait_until(lambda: self.reasons("web")[0] == "Warning", 10, message="not-found warning")
        self.assertTrue(any("service not found in Nomad" in x for x in self.reasons("web")[1]),
                        self.reasons("web"))
        routes = self.type_version("routes")
        endpoints = self.type_version("endpoints")

        # Two allocations' services registered: both serve within 1 s.
        ra = self.register("web", "a", alloc="alloc-a")
        self.register("web", "b", tags=["v2"], alloc="alloc-b")
        self.timed("two allocations registered -> both serve",
                   lambda: self.seen(n=20) == {(200, "a"), (200, "b")})
        t.wait_until(lambda: self.reasons("web")[0] == "Accepted", 5, message="warning cleared")
        # The tag filter: only alloc-b carries v2.
        self.assertEqual(self.seen("/tagged"), {(200, "b")})

        self.nomad.deregister(ra)
        self.timed("one allocation deregistered -> gone", lambda: self.seen() == {(200, "b")})
        self.register("web", "c", alloc="alloc-c")
        self.timed("third allocation -> serves", lambda: self.seen(n=20) == {(200, "b"), (200, "c")})
        self.nomad.deregister_alloc("alloc-c")
        self.timed("allocation stopped -> gone", lambda: self.seen() == {(200, "b")})

        self.assertEqual(self.type_version("routes"), routes, "an endpoint change translated routes")
        self.assertGreater(self.type_version("endpoints"), endpoints)
        stats = self.portico.stats()
        self.assertGreater(t.metric_sum(stats, "portico_nomad_discovery_queries_total"), 0)
        self.assertEqual(t.metric_sum(stats, "portico_nomad_discovery_services"), 5)

    def test_b_namespace(self):
        # web in namespace prod is another service than web in default.
        self.register("web", "d", namespace="prod", alloc="alloc-prod")
        self.timed("prod instance -> serves /prod", lambda: self.seen("/prod") == {(200, "d")})
        self.assertNotIn((200, "d"), self.seen(n=20))

    def test_c_canary_split_and_promotion(self):
        # Two stable allocations and one canary (registered with the job's canary_tags).
        self.register("shop", "a", tags=["shop", "v1"], alloc="shop-1")
        self.register("shop", "b", tags=["shop", "v1"], alloc="shop-2")
        self.register("shop", "c", tags=["shop", "canary"], alloc="shop-canary")
        t.wait_until(lambda: self.seen("/shop", n=60) == {(200, "a"), (200, "b"), (200, "c")}, 10,
                     interval=0.05, message="stable and canary serve /shop")
        self.assertEqual(self.reasons("shop-canary")[0], "Accepted", self.reasons("shop-canary"))

        # 10 % to the canary. 400 requests: the count is Binomial(400, 0.1), mean 40, standard
        # deviation 6; 4 deviations either side (16..64, 4 %..16 %) fail by chance once in ~16000 runs.
        n = 400
        counts = {}
        for _ in range(n):
            status, name = self.client.get("/shop")
            self.assertEqual(status, 200)
            counts[name] = counts.get(name, 0) + 1
        canary = counts.get("c", 0)
        sd = math.sqrt(n * 0.1 * 0.9)
        print(f"canary split: {counts} -> {100.0 * canary / n:.1f} % to the canary "
              f"(expected 10 %, accepted {40 - 4 * sd:.0f}..{40 + 4 * sd:.0f} of {n})")
        self.assertGreaterEqual(canary, 40 - 4 * sd)
        self.assertLessEqual(canary, 40 + 4 * sd)
        skipped_before = t.metric_sum(self.portico.stats(), "portico_upstream_weighted_skipped_total",
                                      upstream="default/shop-canary")

        # Promotion under traffic: the canary gets the normal tags, the old allocations go.
        log = []  # (monotonic time, status, upstream)
        stop = threading.Event()

        def load():
            c = Client(self.port)
            while not stop.is_set():
                status, name = c.get("/shop")
                log.append((time.monotonic(), status, name))
            c.close()

        th = threading.Thread(target=load)
        th.start()
        try:
            time.sleep(0.3)
            promoted_at = time.monotonic()
            self.nomad.promote("shop", ["canary"], ["shop", "v1"])
            # Followed: only the promoted allocation answers (50 in a row).
            def followed():
                tail = [x for x in log if x[0] > promoted_at][-50:]
                return len(tail) == 50 and all(x[2] == "c" for x in tail)
            t.wait_until(followed, 10, interval=0.01, message="promotion followed")
            time.sleep(0.3)
        finally:
            stop.set()
            th.join()
        after = [x for x in log if x[0] > promoted_at]
        last_old = max((x[0] for x in after if x[2] != "c"), default=promoted_at)
        failed = [x for x in log if x[1] != 200]
        took = last_old - promoted_at
        print(f"promotion: {len(log)} requests during the change ({len(after)} after it began), "
              f"{len(failed)} failed; the last request to an old allocation {took:.3f} s after the "
              f"promotion began")
        self.assertEqual(failed, [])
        self.assertLess(took, 1.0)
        # Now everything goes to the promoted allocation; the canary destination is empty and
        # gives its share away (counted), with a warning on its Upstream.
        self.assertEqual(self.seen("/shop", n=100), {(200, "c")})
        skipped = t.metric_sum(self.portico.stats(), "portico_upstream_weighted_skipped_total",
                               upstream="default/shop-canary")
        print(f"weighted picks of the empty canary destination sent to the stable one: "
              f"{skipped - skipped_before:.0f}")
        self.assertGreater(skipped, skipped_before)
        t.wait_until(lambda: self.reasons("shop-canary")[0] == "Warning", 5, message="canary warning")
        self.assertTrue(any("no canary instance" in x for x in self.reasons("shop-canary")[1]),
                        self.reasons("shop-canary"))

    def test_z_nomad_stopped_keeps_last_instances(self):
        self.register("web", "b", alloc="alloc-z")
        t.wait_until(lambda: (200, "b") in self.seen(), 10, message="alloc-z serves")
        before = self.seen(n=20)
        failures = t.metric_sum(self.portico.stats(), "portico_nomad_discovery_failures_total")
        self.nomad.stop()
        t.wait_until(lambda: self.reasons("web")[0] == "Warning", 15, message="unreachable warning")
        self.assertTrue(any("Nomad unreachable" in x for x in self.reasons("web")[1]), self.reasons("web"))
        self.assertEqual(self.seen(n=20), before)
        self.assertGreater(t.metric_sum(self.portico.stats(), "portico_nomad_discovery_failures_total"),
                           failures)


if __name__ == "__main__":
    t.main()
