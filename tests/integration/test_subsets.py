"""Subset routing through the real binary, with the Consul double (tests/support/consul_double.py):
three instances of one service, tagged v1, v1 and v2, in two data centers. An Upstream with
consul.subsetTags [v1, v2] and dataCenters [dc1, dc2] labels each instance in Gloo's convention
(tag_v1/tag_v2/dc_dc1/dc_dc2 = "1" or "0"); routes select on those labels:
- {tag_v2: "1"} reaches only the v2 instance, {dc_dc1: "1"} only the dc1 one;
- a weighted route sends 10 % to {tag_v2: "1"} and 90 % to {tag_v2: "0"};
- an empty subset answers 503 (no fallback), counted in /stats (portico_upstream_subset_no_host_total);
- a tag change in Consul moves the traffic within 1 s without a route translated again (only the
  endpoints type version moves);
- static hosts with metadata {envoy.lb: {...}} and a subsetSpec are selected the same way;
- a route whose subset key is not in the Upstream's subsetSpec is Rejected, naming the key."""

import http.client
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from support import portico_testlib as t  # noqa: E402
from support.consul_double import ConsulDouble  # noqa: E402
from support.portico_testlib import matcher as m  # noqa: E402


def to(upstream, subset=None):
    d = {"upstream": t.ref(upstream)}
    if subset:
        d["subset"] = {"values": subset}
    return d


def single(name, prefix, upstream, subset=None):
    return {"name": name, "matchers": [m(prefix=prefix)], "routeAction": {"single": to(upstream, subset)}}


class SubsetsTest(t.IntegrationTest):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.consul = ConsulDouble(datacenters=("dc1", "dc2")).start()
        cls.addClassCleanup(cls.consul.stop)
        # Instances at three loopback addresses on one port: only Consul tells them apart.
        port = t.free_port()
        cls.servers = {}
        for name, host in (("a", "127.0.0.2"), ("b", "127.0.0.3"), ("c", "127.0.0.4")):
            s = t.UpstreamServer(name, host=host, port=port).start()
            cls.addClassCleanup(s.stop)
            cls.servers[name] = s
        cls.upstream_port = port
        cls.cfg = t.new_config(cls)
        cls.port = t.free_port()
        ups = [
            t.resource("Upstream", "svc", {"consul": {"serviceName": "svc", "dataCenters": ["dc1", "dc2"],
                                                      "subsetTags": ["v1", "v2"]}}),
            t.resource("Upstream", "fixed", {
                "subsetSpec": {"selectors": [{"keys": ["version"]}]},
                "static": {"hosts": [
                    {"addr": "127.0.0.2", "port": port, "metadata": {"envoy.lb": {"version": "v1"}}},
                    {"addr": "127.0.0.4", "port": port, "metadata": {"envoy.lb": {"version": "v2"}}}]}}),
        ]
        routes = [
            single("v2", "/v2", "svc", {"tag_v2": "1"}),
            single("dc1", "/dc1", "svc", {"dc_dc1": "1"}),
            single("v1-dc2", "/v1-dc2", "svc", {"tag_v1": "1", "dc_dc2": "1"}),
            single("none", "/none", "svc", {"tag_v1": "1", "tag_v2": "1"}),
            {"name": "split", "matchers": [m(prefix="/split")], "routeAction": {"multi": {"destinations": [
                {"weight": 10, "destination": to("svc", {"tag_v2": "1"})},
                {"weight": 90, "destination": to("svc", {"tag_v2": "0"})}]}}},
            single("static-v2", "/static-v2", "fixed", {"version": "v2"}),
            single("all", "/", "svc"),
        ]
        cls.cfg.write_stack(cls.port, [t.virtual_service("vs", routes)], ups)
        cls.cfg.write_obj("settings.yaml", t.resource("Settings", "default", {
            "consul": {"address": cls.consul.address, "waitTime": "5s"}}))
        # Three instances, tags v1/v1/v2, in two data centers.
        cls.consul.register("svc", port, address="127.0.0.2", service_id="svc-a", tags=["v1"], dc="dc1")
        cls.consul.register("svc", port, address="127.0.0.3", service_id="svc-b", tags=["v1"], dc="dc2")
        cls.consul.register("svc", port, address="127.0.0.4", service_id="svc-c", tags=["v2"], dc="dc2")
        cls.portico = t.start_portico(cls, cls.cfg)
        t.wait_until(lambda: cls.seen_cls("/", 30) == {(200, "a"), (200, "b"), (200, "c")}, 10,
                     message="all three instances serve")

    @classmethod
    def get_cls(cls, path):
        conn = http.client.HTTPConnection(t.LOCALHOST, cls.port, timeout=5)
        try:
            conn.request("GET", path)
            resp = conn.getresponse()
            resp.read()
            return resp.status, resp.getheader("X-Upstream")
        finally:
            conn.close()

    @classmethod
    def seen_cls(cls, path, n=12):
        return {cls.get_cls(path) for _ in range(n)}

    def seen(self, path, n=12):
        return self.seen_cls(path, n)

    def type_version(self, kind):
        return t.metric_sum(self.portico.stats(), "portico_config_type_version", type=kind)

    def test_a_subsets_select_instances(self):
        self.assertEqual(self.seen("/v2"), {(200, "c")})
        self.assertEqual(self.seen("/dc1"), {(200, "a")})
        self.assertEqual(self.seen("/v1-dc2"), {(200, "b")})
        self.assertEqual(self.seen("/static-v2"), {(200, "c")})
        self.assertEqual(self.seen("/", 30), {(200, "a"), (200, "b"), (200, "c")})
        self.assertEqual(self.portico.resource("VirtualService", "vs")["state"], "Accepted")

    def test_b_empty_subset_is_503_and_counted(self):
        before = t.metric_sum(self.portico.stats(), "portico_upstream_subset_no_host_total")
        self.assertEqual(self.seen("/none", 5), {(503, None)})
        after = t.metric_sum(self.portico.stats(), "portico_upstream_subset_no_host_total")
        self.assertEqual(after - before, 5)

    def test_c_weighted_subsets_split(self):
        n = 400
        counts = {}
        for _ in range(n):
            status, who = self.get_cls("/split")
            self.assertEqual(status, 200)
            counts[who] = counts.get(who, 0) + 1
        print(f"split over {n} requests: {counts}")
        self.assertEqual(set(counts), {"a", "b", "c"})
        # 10 % to v2 (c), 90 % to the rest: binomial, sd ~ 6 requests of 40.
        self.assertGreater(counts["c"], n * 0.04)
        self.assertLess(counts["c"], n * 0.18)

    def test_d_tag_change_moves_traffic_without_translating_routes(self):
        routes = self.type_version("routes")
        endpoints = self.type_version("endpoints")
        # v2 moves from c to b (re-registered with the other tag).
        self.consul.register("svc", self.upstream_port, address="127.0.0.3", service_id="svc-b",
                             tags=["v2"], dc="dc2")
        self.consul.register("svc", self.upstream_port, address="127.0.0.4", service_id="svc-c",
                             tags=["v1"], dc="dc2")
        started = time.monotonic()
        t.wait_until(lambda: self.seen("/v2") == {(200, "b")}, 10, interval=0.01, message="v2 is b")
        took = time.monotonic() - started
        print(f"tag change -> traffic moved: {took:.3f} s")
        self.assertLess(took, 1.0)
        self.assertEqual(self.seen("/v1-dc2"), {(200, "c")})
        self.assertEqual(self.type_version("routes"), routes, "a tag change translated routes")
        self.assertGreater(self.type_version("endpoints"), endpoints)
        # /config_dump shows the endpoints' labels.
        dump = self.portico.admin_get("/config_dump").text()
        self.assertIn('"tag_v2"', dump)
        self.assertIn('"dc_dc2"', dump)

    def test_e_unknown_subset_key_is_rejected(self):
        bad = t.resource("VirtualService", "bad", {"virtualHost": {"domains": ["bad.example.com"], "routes": [
            single("bad", "/", "svc", {"version": "v2"})]}})
        self.cfg.write_obj("vs-bad.yaml", bad)
        self.cfg.write_obj("gateway-gw.yaml", t.gateway("gw", self.port, ["vs", "bad"]))
        t.wait_until(lambda: self.portico.resource("VirtualService", "bad").get("state") == "Rejected", 10,
                     message="bad VirtualService rejected")
        reasons = [d.get("message", "") for d in self.portico.resource("VirtualService", "bad")["reasons"]]
        self.assertTrue(any('subset key "version" is not in upstream' in x for x in reasons), reasons)
        # The rest keeps working.
        self.assertEqual(self.portico.resource("VirtualService", "vs")["state"], "Accepted")


if __name__ == "__main__":
    t.main()
