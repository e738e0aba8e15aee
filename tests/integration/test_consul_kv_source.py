#!/usr/bin/env python3
"""Configuration in Consul KV (Settings consulKvSource) through the real binary and the Consul double:
a VirtualService put with python3-consul is served within 1 s (the time is printed), edited, deleted;
bad YAML shows on the key and the previous version keeps serving; Consul stopped or answering garbage:
the last good configuration keeps serving and /ready and /stats show the problem, then it recovers; the
index going backwards (a restore) resyncs without losing anything; ACL token from Settings (token and
tokenFile); the datacenter and the root key from Settings; statuses written back under
<rootKey>.status/ (compare-and-set, unchanged ones never rewritten)."""

import json
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from support import portico_testlib as t  # noqa: E402
from support.consul_double import ConsulDouble  # noqa: E402
from support.portico_testlib import matcher as m, route as r  # noqa: E402

try:
    import consul  # python3-consul (Debian)
except ImportError:  # pragma: no cover
    consul = None

WITHIN = 1.0   # seconds from a KV write to the change serving (the brief's bound)
SLACK = 5.0    # for what has no bound of its own (an outage noticed, recovery after back-off)
ROOT = "gloo"


def vs_key(name, root=ROOT, ns=t.NAMESPACE):
    return f"{root}/gateway.portico.dev/v1/VirtualService/{ns}/{name}"


def vs_yaml(name, body, ns=t.NAMESPACE):
    return t.to_yaml(t.virtual_service(name, [r("dr", [m(prefix="/")], direct=(200, body))], namespace=ns))


class ConsulKvBase(t.IntegrationTest):
    """A Consul double, a configuration directory with a Gateway on a free port serving VirtualService
    "shop", and Settings pointing at the double; the tests put the VirtualService into Consul KV."""

    double_kw: dict = {}
    token: str | None = None   # the token python3-consul writes with

    def setUp(self):
        super().setUp()
        if consul is None:
            self.skipTest("python3-consul is not installed")
        self.double = self.start_double(**self.double_kw)
        self.cfg = self.new_config()
        self.port = t.free_port()
        self.cfg.write_obj("gateway.yaml", t.gateway("gw", self.port, ["shop"]))

    def start_double(self, **kw):
        d = ConsulDouble(**kw).start()
        self.addCleanup(d.stop)
        return d

    def client(self, double=None, **kw):
        d = double or self.double
        kw.setdefault("token", self.token)
        c = consul.Consul(host=d.host, port=d.port, **kw)
        self.addCleanup(c.http.session.close)
        return c

    def settings(self, consul_spec=None, kv_spec=None):
        """Writes Settings; a None value in consul_spec leaves that field out."""
        c = {"address": self.double.address, "waitTime": "10s", **(consul_spec or {})}
        c = {k: v for k, v in c.items() if v is not None}
        spec = {"consul": c, "consulKvSource": kv_spec or {}}
        self.cfg.write_obj("settings.yaml", t.resource("Settings", "default", spec))

    def start(self, consul_spec=None, kv_spec=None):
        self.settings(consul_spec, kv_spec)
        self.portico = self.start_portico(self.cfg)
        return self.portico

    def get(self, path="/"):
        try:
            resp = t.request(self.port, "GET", path, timeout=2)
            return resp.status, resp.text()
        except OSError as e:
            return None, repr(e)

    def serving(self, body, within=WITHIN, message=None):
        """Waits until GET / answers 200 `body`; returns the seconds it took."""
        t0 = time.monotonic()
        t.wait_until(lambda: self.get() == (200, body), within, interval=0.01,
                     message=message or f"{body!r} serving")
        return time.monotonic() - t0

    def ready_text(self):
        return self.portico.admin_get("/ready").text()

    def source_up(self):
        return t.metric_sum(self.portico.stats(), "portico_config_source_up", source="consul-kv")

    def file_entry(self, key):
        for res in self.portico.resources():
            if res["kind"] == "File" and res["name"] == key:
                return res
        return None


class ConsulKvSourceTest(ConsulKvBase):
    def test_put_edit_delete_each_served_within_a_second(self):
        self.start()
        kv = self.client()
        self.assertTrue(kv.kv.put(vs_key("shop"), vs_yaml("shop", "v1")))
        took = self.serving("v1")
        print(f"\nconsul kv put -> served in {took * 1000:.0f} ms", file=sys.stderr)
        res = self.portico.resource("VirtualService", "shop")
        self.assertEqual(res["state"], "Accepted")
        self.assertEqual(res["origin"]["source"], "consul-kv")
        self.assertEqual(res["origin"]["key"], vs_key("shop"))
        self.assertTrue(kv.kv.put(vs_key("shop"), vs_yaml("shop", "v2")))
        took = self.serving("v2")
        print(f"consul kv edit -> served in {took * 1000:.0f} ms", file=sys.stderr)
        self.assertTrue(kv.kv.delete(vs_key("shop")))
        t0 = time.monotonic()
        t.wait_until(lambda: self.get()[0] == 404, WITHIN, interval=0.01, message="shop gone")
        print(f"consul kv delete -> gone in {(time.monotonic() - t0) * 1000:.0f} ms", file=sys.stderr)
        self.assertIsNone(self.portico.resource("VirtualService", "shop"))
        self.assertEqual(self.source_up(), 1)
        self.assertEqual(self.ready_text(), "ready\n")

    def test_bad_yaml_is_shown_and_the_previous_version_keeps_serving(self):
        self.start()
        kv = self.client()
        kv.kv.put(vs_key("shop"), vs_yaml("shop", "v1"))
        self.serving("v1")
        kv.kv.put(vs_key("shop"), "kind: VirtualService\nmetadata: {name: shop\n  spec: [")
        entry = t.wait_until(lambda: self.file_entry(vs_key("shop")), WITHIN, message="the key's error")
        self.assertEqual(entry["state"], "Rejected")
        self.assertEqual(self.get(), (200, "v1"))
        # a document whose name is not its key's
        kv.kv.put(vs_key("other"), vs_yaml("shop", "imposter"))
        entry = t.wait_until(lambda: self.file_entry(vs_key("other")), WITHIN, message="mismatch shown")
        self.assertIn("its key names", str(entry))
        self.assertEqual(self.get(), (200, "v1"))
        kv.kv.put(vs_key("shop"), vs_yaml("shop", "v3"))
        self.serving("v3")
        t.wait_until(lambda: self.file_entry(vs_key("shop")) is None, WITHIN, message="error cleared")

    def test_consul_stopped_keeps_serving_shows_the_problem_and_recovers(self):
        self.start()
        kv = self.client()
        kv.kv.put(vs_key("shop"), vs_yaml("shop", "v1"))
        self.serving("v1")
        port = self.double.port
        self.double.stop()
        t.wait_until(lambda: "source: consul-kv" in self.ready_text(), SLACK, message="/ready shows consul-kv")
        ready = self.ready_text()
        self.assertIn(self.double.address, ready)
        self.assertIn("serving what it held before", ready)
        self.assertEqual(self.source_up(), 0)
        self.assertGreater(t.metric_sum(self.portico.stats(), "portico_consul_kv_failures_total"), 0)
        self.assertEqual(t.metric_sum(self.portico.stats(), "portico_consul_kv_keys"), 1)
        for _ in range(5):
            self.assertEqual(self.get(), (200, "v1"))
            time.sleep(0.1)
        # Consul back on the same address, with the key edited meanwhile (a new cluster: low indices).
        again = self.start_double(port=port)
        again.kv_put(vs_key("shop"), vs_yaml("shop", "v2"))
        self.serving("v2", within=SLACK)
        t.wait_until(lambda: self.ready_text() == "ready\n", SLACK, message="problem cleared")
        self.assertEqual(self.source_up(), 1)

    def test_garbage_and_errors_keep_the_last_good(self):
        self.start()
        kv = self.client()
        kv.kv.put(vs_key("shop"), vs_yaml("shop", "v1"))
        self.serving("v1")
        self.double.fault("garbage", count=-1, path_prefix="/v1/kv/")
        # (written through the double's own API: its faults would hit python3-consul's PUT too)
        self.double.kv_put(vs_key("shop"), vs_yaml("shop", "v2"))   # ends the blocking query
        t.wait_until(lambda: "not Consul's KV JSON" in self.ready_text(), SLACK, message="garbage shown")
        self.assertEqual(self.get(), (200, "v1"))
        self.double.fault("none")
        self.double.fault("500", count=-1, path_prefix="/v1/kv/")
        t.wait_until(lambda: "HTTP 500" in self.ready_text(), SLACK, message="500 shown")
        self.assertEqual(self.get(), (200, "v1"))
        self.double.fault("none")
        self.serving("v2", within=SLACK)
        t.wait_until(lambda: self.ready_text() == "ready\n", SLACK, message="problem cleared")

    def test_index_going_backwards_resyncs_without_losing_anything(self):
        self.start()
        kv = self.client()
        for i in range(30):
            kv.kv.put(f"elsewhere/{i}", "x")   # the index climbs well past what a restore gives
        kv.kv.put(vs_key("shop"), vs_yaml("shop", "v1"))
        self.serving("v1")
        self.assertTrue(self.double.wait_blocked(1))   # Portico's query is parked on the index
        before = self.double.index()
        after = self.double.restore()   # same data, indices from 1: the parked query returns
        self.assertLess(after, before)
        t.wait_until(lambda: t.metric_sum(self.portico.stats(), "portico_consul_kv_index_resets_total") == 1,
                     WITHIN, message="one index reset counted")
        self.assertEqual(self.get(), (200, "v1"))
        self.assertEqual(self.ready_text(), "ready\n")
        # Reset to the new low index: a change is served at once (not after the wait).
        self.assertTrue(self.double.wait_blocked(1))
        kv.kv.put(vs_key("shop"), vs_yaml("shop", "v2"))
        self.serving("v2")
        # A restore to an older snapshot brings its data back: Portico follows it.
        snap = self.double.snapshot()
        kv.kv.put(vs_key("shop"), vs_yaml("shop", "v3"))
        self.serving("v3")
        self.assertTrue(self.double.wait_blocked(1))
        self.double.restore(snapshot=snap)
        self.serving("v2")
        self.assertTrue(self.double.wait_blocked(1))
        kv.kv.put(vs_key("shop"), vs_yaml("shop", "v4"))
        self.serving("v4")

    def test_a_query_with_an_index_from_before_a_restore_resyncs_after_its_wait(self):
        # As with Consul: a query that arrives after the restore with the old, higher index blocks
        # until its wait runs out, then the lower index makes Portico read everything again.
        self.start({"waitTime": "2s"})
        kv = self.client()
        for i in range(30):
            kv.kv.put(f"elsewhere/{i}", "x")
        kv.kv.put(vs_key("shop"), vs_yaml("shop", "v1"))
        self.serving("v1")
        self.assertTrue(self.double.wait_blocked(1))
        self.double.delay(0.5, path_prefix="/v1/kv/gloo/")   # the next query arrives late
        kv.kv.put(vs_key("shop"), vs_yaml("shop", "v2"))   # ends the parked query
        self.double.restore()      # before the next query arrives, with its index from before
        self.double.delay(0)
        kv.kv.put(vs_key("shop"), vs_yaml("shop", "v3"))   # below the old index: no wake-up
        took = self.serving("v3", within=2.0 + 2.0 / 16 + 0.5 + 1.0)
        print(f"\nstale index after a restore -> resynced in {took * 1000:.0f} ms (wait 2s)", file=sys.stderr)

    def test_statuses_written_back_beside_the_keys(self):
        self.start()
        kv = self.client()
        skey = vs_key("shop").replace(f"{ROOT}/", f"{ROOT}.status/", 1)

        def status(key=skey):
            _, v = kv.kv.get(key)
            return (json.loads(v["Value"]), v["ModifyIndex"]) if v else (None, 0)

        kv.kv.put(vs_key("shop"), vs_yaml("shop", "v1"))
        self.serving("v1")
        st, index = t.wait_until(lambda: status()[0] and status(), WITHIN, message="status written")
        res = self.portico.resource("VirtualService", "shop")
        self.assertEqual(st["state"], "Accepted")
        self.assertEqual(st["observedGeneration"], res["observedGeneration"])
        self.assertEqual((st["kind"], st["namespace"], st["name"]), ("VirtualService", "default", "shop"))
        # Another resource's change does not rewrite this status (its ModifyIndex stays).
        kv.kv.put(vs_key("other"), vs_yaml("other", "o"))   # served by no Gateway: a Warning
        other = vs_key("other").replace(f"{ROOT}/", f"{ROOT}.status/", 1)
        st_other, _ = t.wait_until(lambda: status(other)[0] and status(other), WITHIN, message="other's status")
        self.assertEqual(st_other["state"], "Warning")
        self.assertEqual(status()[1], index)
        # A value that does not decode: Rejected on the status, the last good version serving.
        kv.kv.put(vs_key("shop"), "kind: VirtualService\nmetadata: [")
        st, _ = t.wait_until(lambda: status()[0]["state"] == "Rejected" and status(), WITHIN,
                             message="Rejected status")
        self.assertEqual(st["servingGeneration"], res["observedGeneration"])
        self.assertTrue(st["reasons"])
        self.assertEqual(self.get(), (200, "v1"))
        kv.kv.put(vs_key("shop"), vs_yaml("shop", "v1"))
        st, index = t.wait_until(lambda: status()[0]["state"] == "Accepted" and status(), WITHIN,
                                 message="Accepted again")
        # A restart writes nothing that did not change.
        self.portico.stop()
        self.portico = self.start_portico(self.cfg)
        self.serving("v1", within=SLACK)
        time.sleep(0.5)
        self.assertEqual(status()[1], index)
        # The key deleted: its status goes.
        kv.kv.delete(vs_key("shop"))
        t.wait_until(lambda: status()[0] is None, WITHIN, message="status deleted")

    def test_statuses_of_keys_deleted_while_away_are_swept(self):
        gone = vs_key("gone").replace(f"{ROOT}/", f"{ROOT}.status/", 1)
        self.double.kv_put(gone, '{"state":"Accepted","reportedBy":"portico"}')
        self.double.kv_put(vs_key("shop"), vs_yaml("shop", "v1"))
        self.start()
        self.serving("v1", within=SLACK)
        t.wait_until(lambda: self.double.kv_get(gone) is None, WITHIN, message="stale status swept")
        shop = vs_key("shop").replace(f"{ROOT}/", f"{ROOT}.status/", 1)
        t.wait_until(lambda: self.double.kv_get(shop), WITHIN, message="shop's status written")
        self.assertEqual(json.loads(self.double.kv_get(shop))["state"], "Accepted")

    def test_datacenter_root_key_and_consistency_from_settings(self):
        self.double.stop()
        self.double = self.start_double(datacenters=("dc1", "dc2"))
        self.double.kv_put(vs_key("shop", root="cfg/edge"), vs_yaml("shop", "dc1"), dc="dc1")
        self.double.kv_put(vs_key("shop", root="cfg/edge"), vs_yaml("shop", "dc2"), dc="dc2")
        self.double.kv_put(vs_key("shop"), vs_yaml("shop", "gloo root"), dc="dc2")
        self.start({"datacenter": "dc2"}, {"rootKey": "cfg/edge", "consistencyMode": "stale"})
        self.serving("dc2", within=SLACK)
        queries = [p for meth, p in self.double.requests if p.startswith("/v1/kv/cfg/edge/")]
        self.assertTrue(queries)
        self.assertTrue(all(p.startswith("/v1/kv/cfg/edge/?recurse") for p in queries), queries)
        self.assertTrue(all("dc=dc2" in p and "&stale" in p for p in queries), queries)
        # statuses go to the same datacenter, beside the root
        t.wait_until(lambda: self.double.kv_get(vs_key("shop", root="cfg/edge.status"), dc="dc2"), WITHIN,
                     message="status in dc2")
        self.assertIsNone(self.double.kv_get(vs_key("shop", root="cfg/edge.status"), dc="dc1"))
        self.assertTrue(all(p.startswith("/v1/kv/cfg/edge") for meth, p in self.double.requests
                            if p.startswith("/v1/kv/")))
        # an unknown datacenter: Consul's 500 "No path to datacenter" is the problem shown
        self.portico.stop()
        self.start({"datacenter": "dc9"})
        t.wait_until(lambda: "No path to datacenter" in self.ready_text(), SLACK, message="dc9 refused")


class ConsulKvAclTest(ConsulKvBase):
    """ACLs on in the double (default policy deny): the token in Settings decides what Portico reads."""

    double_kw = {"master_token": "root"}
    token = "root"

    def test_token_from_settings_and_from_a_file(self):
        self.double.add_token("portico", {"key_prefix": {f"{ROOT}/": "read"}})
        self.client().kv.put(vs_key("shop"), vs_yaml("shop", "with token"))
        self.start({"token": "portico"})
        self.serving("with token", within=SLACK)
        self.assertEqual(self.ready_text(), "ready\n")
        self.portico.stop()
        tokens = self.new_config()
        tokens.write("token", "portico\n")   # the trailing newline is not part of the token
        self.start({"tokenFile": tokens.file("token")})
        self.serving("with token", within=SLACK)
        self.assertEqual(self.ready_text(), "ready\n")

    def test_no_or_wrong_token_is_refused_and_shown(self):
        self.client().kv.put(vs_key("shop"), vs_yaml("shop", "secret"))
        self.start({"token": "wrong"})
        t.wait_until(lambda: "ACL not found" in self.ready_text(), SLACK, message="ACL not found shown")
        self.assertNotEqual(self.get(), (200, "secret"))
        self.portico.stop()
        # No token: the anonymous token reads nothing; Consul filters the list (a 404 that says so).
        self.start()
        t.wait_until(lambda: "ACL token cannot read some keys" in self.ready_text(), SLACK,
                     message="filtered by ACLs shown")
        self.assertNotEqual(self.get(), (200, "secret"))


if __name__ == "__main__":
    import unittest
    unittest.main()
