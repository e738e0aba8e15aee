#!/usr/bin/env python3
"""Configuration kept in a real etcd (Settings spec.etcdConfigSource), through the real binary: a VirtualService
written with etcdctl is served within 1 s (the time is printed), an edit changes the route, a delete removes it;
a bad value is an error on its key while the previous version keeps serving; etcd killed -> portico keeps
serving, /ready names the problem, portico_config_source_up{source="etcd"} is 0; etcd restarted -> recovered
without restarting portico; writes and a compaction while the watch is cut -> the watch is answered
compact_revision, the prefix is read again and nothing is lost.

The Settings, the Gateway and the Upstreams are files; the VirtualServices are in etcd below a prefix in Gloo's
layout. portico reaches etcd through a TCP relay that the compaction test cuts (etcdctl talks to etcd
directly)."""

import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from support import portico_testlib as t  # noqa: E402
from support import etcd_server  # noqa: E402
from support.portico_testlib import matcher as m, route as r  # noqa: E402

PREFIX = "portico-it"


def vs_key(name, namespace="default"):
    return f"{PREFIX}/gateway.portico.dev/v1/VirtualService/{namespace}/{name}"


def vs_yaml(name, routes, domains=None):
    return t.to_yaml(t.virtual_service(name, routes, domains=domains))


class EtcdSourceTest(t.IntegrationTest):
    def setUp(self):
        super().setUp()
        if not etcd_server.available():
            self.skipTest("etcd and etcdctl are not installed")
        self.etcd = etcd_server.Etcd()
        self.addCleanup(self.etcd.cleanup)
        self.etcd.start()
        self.relay = etcd_server.Relay(self.etcd.port).start()
        self.addCleanup(self.relay.stop)
        self.a = self.start_upstream("a")
        self.b = self.start_upstream("b")
        self.port = t.free_port()
        cfg = self.cfg = self.new_config()
        self.write_settings(PREFIX)
        cfg.write_obj("upstreams.yaml", t.upstream("a", [("127.0.0.1", self.a.port)]),
                      t.upstream("b", [("127.0.0.1", self.b.port)]))
        # No virtualServices: the Gateway serves every VirtualService (those from etcd).
        cfg.write_obj("gateway.yaml", t.resource("Gateway", "gw", {"bindAddress": "127.0.0.1",
                                                                     "bindPort": self.port}))
        self.portico = self.start_portico(cfg)

    # helpers

    def write_settings(self, prefix):
        self.cfg.write_obj("settings.yaml", t.resource("Settings", "default", {
            "etcdConfigSource": {"address": f"http://127.0.0.1:{self.relay.port}", "prefix": prefix,
                                 "timeout": "2s"}}))

    def get(self, path, host="shop.example"):
        return t.request(self.port, "GET", path, host=host, timeout=3.0)

    def served_by(self, path, host="shop.example"):
        """The upstream that answered (X-Upstream), or the status when none did."""
        resp = self.get(path, host)
        return resp.header("X-Upstream") if resp.status == 200 else resp.status

    def wait_served_by(self, path, want, timeout=5.0, host="shop.example"):
        return t.wait_until(lambda: self.served_by(path, host) == want, timeout, 0.01,
                            f"{path} served by {want}")

    def source_up(self):
        return t.metric_sum(self.portico.stats(), "portico_config_source_up", source="etcd")

    def stat(self, name):
        return t.metric_sum(self.portico.stats(), name)

    def ready_text(self):
        return self.portico.admin_get("/ready").text()

    def file_entry(self, key):
        for res in self.portico.resources():
            if res.get("kind") == "File" and res.get("name") == key:
                return res
        return None

    def put_shop(self, upstream, prefix="/"):
        self.etcd.put(vs_key("shop"), vs_yaml("shop", [r("main", [m(prefix=prefix)], to=upstream)],
                                              domains=["shop.example"]))

    # tests

    def test_put_edit_delete(self):
        t.wait_until(lambda: self.source_up() == 1, 5.0, message="etcd source up")
        self.assertEqual(self.get("/").status, 404)
        start = time.monotonic()
        self.put_shop("a")
        self.wait_served_by("/x", "a", timeout=1.0)
        elapsed = time.monotonic() - start
        print(f"\netcdctl put -> served in {elapsed * 1000:.0f} ms", file=sys.stderr)
        self.assertLess(elapsed, 1.0)
        res = self.portico.resource("VirtualService", "shop")
        self.assertEqual(res["state"], "Accepted", res)
        self.assertEqual(res["origin"]["source"], "etcd")
        self.assertEqual(res["origin"]["key"], vs_key("shop"))

        # An edit: the route goes to b.
        start = time.monotonic()
        self.put_shop("b")
        self.wait_served_by("/x", "b", timeout=2.0)
        print(f"etcdctl put (edit) -> served in {(time.monotonic() - start) * 1000:.0f} ms", file=sys.stderr)

        # A key beside the prefix is not read.
        self.etcd.put(f"{PREFIX}x/gateway.portico.dev/v1/VirtualService/default/other",
                      vs_yaml("other", [r("o", to="a")], domains=["other.example"]))
        # Deleted: gone.
        self.assertEqual(self.etcd.delete(vs_key("shop")), 1)
        self.wait_served_by("/x", 404, timeout=2.0)
        self.assertIsNone(self.portico.resource("VirtualService", "shop"))
        self.assertIsNone(self.portico.resource("VirtualService", "other"))
        self.assertEqual(self.served_by("/", "other.example"), 404)
        # The sources started are the Settings' own: no "sources changed" warning at start.
        self.assertNotIn("sources changed", self.portico.log())
        self.assertGreaterEqual(self.stat("portico_etcd_events_total"), 3)
        self.assertEqual(self.stat("portico_etcd_ranges_total"), 1)

        # Another prefix in Settings: logged, effective at the next start; the source in force stays.
        self.write_settings("elsewhere")
        t.wait_until(lambda: "sources changed" in self.portico.log(), 3.0, message="the change is logged")
        self.put_shop("a")
        self.wait_served_by("/x", "a", timeout=2.0)

    def test_bad_value_keeps_the_previous_version(self):
        self.put_shop("a")
        self.wait_served_by("/x", "a")
        self.etcd.put(vs_key("shop"), "kind: VirtualService\nmetadata: {name: shop\nspec: [\n")
        entry = t.wait_until(lambda: self.file_entry(vs_key("shop")), 3.0, message="an error on the key")
        self.assertEqual(entry["state"], "Rejected", entry)
        text = str(entry["reasons"])
        self.assertIn("keeping this key's last good version of VirtualService default/shop", text)
        for _ in range(5):
            self.assertEqual(self.served_by("/x"), "a")

        # A document that is not the one its key names: an error naming both; the previous one serves.
        self.etcd.put(vs_key("shop"), vs_yaml("elsewhere", [r("main", to="b")], domains=["shop.example"]))
        t.wait_until(lambda: "its key names VirtualService default/shop" in
                     str((self.file_entry(vs_key("shop")) or {}).get("reasons")), 3.0, message="mismatch")
        self.assertIn("the document is VirtualService default/elsewhere",
                      str(self.file_entry(vs_key("shop"))["reasons"]))
        self.assertIsNone(self.portico.resource("VirtualService", "elsewhere"))
        self.assertEqual(self.served_by("/x"), "a")

        # Fixed: served, and the error is gone.
        self.put_shop("b")
        self.wait_served_by("/x", "b")
        t.wait_until(lambda: self.file_entry(vs_key("shop")) is None, 3.0, message="error cleared")

    def test_etcd_killed_then_restarted(self):
        self.put_shop("a")
        self.wait_served_by("/x", "a")
        self.etcd.kill()
        t.wait_until(lambda: self.source_up() == 0, 5.0, message="portico_config_source_up{etcd} 0")
        ready = self.portico.admin_get("/ready")
        self.assertEqual(ready.status, 200)  # the last good configuration serves
        self.assertIn("source: etcd: http://127.0.0.1:", ready.text())
        self.assertIn("serving the 1 resource(s) it delivered before", ready.text())
        for _ in range(5):
            self.assertEqual(self.served_by("/x"), "a")
        self.assertEqual(self.portico.resource("VirtualService", "shop")["state"], "Accepted")

        # Back, same data: recovered without restarting portico; a new write is served.
        self.etcd.start()
        t.wait_until(lambda: self.source_up() == 1, 15.0, 0.05, message="etcd source up again")
        self.assertNotIn("source: etcd", self.ready_text())
        start = time.monotonic()
        self.put_shop("b")
        self.wait_served_by("/x", "b", timeout=2.0)
        print(f"\nafter the restart: etcdctl put -> served in {(time.monotonic() - start) * 1000:.0f} ms",
              file=sys.stderr)
        self.assertTrue(self.portico.alive())

    def test_compaction_while_the_watch_is_cut(self):
        self.put_shop("a")
        self.etcd.put(vs_key("gone"), vs_yaml("gone", [r("g", to="a")], domains=["gone.example"]))
        self.wait_served_by("/x", "a")
        self.wait_served_by("/", "a", host="gone.example")
        ranges_before = self.stat("portico_etcd_ranges_total")

        self.relay.cut()
        t.wait_until(lambda: self.source_up() == 0, 5.0, message="the cut is noticed")
        # Meanwhile: an edit, a new key, a delete, several writes of another, then a compaction.
        self.put_shop("b", prefix="/")
        self.etcd.put(vs_key("new"), vs_yaml("new", [r("n", to="b")], domains=["new.example"]))
        self.etcd.delete(vs_key("gone"))
        for i in range(5):
            self.etcd.put(vs_key("busy"), vs_yaml("busy", [r("b", direct=(200, f"v{i}"))],
                                                  domains=["busy.example"]))
        self.etcd.compact()
        self.assertEqual(self.served_by("/x"), "a")  # the old configuration still serves

        self.relay.heal()
        t.wait_until(lambda: self.stat("portico_etcd_compacted_total") >= 1, 15.0, 0.05,
                     message="the watch answered compact_revision")
        self.wait_served_by("/x", "b")
        self.wait_served_by("/", "b", host="new.example")
        self.wait_served_by("/", 404, host="gone.example")
        t.wait_until(lambda: self.get("/", host="busy.example").body == b"v4", 3.0, message="last busy write")
        self.assertEqual(self.source_up(), 1)
        self.assertEqual(self.stat("portico_etcd_ranges_total"), ranges_before + 1)
        # Nothing applied twice: each resource once, each Accepted.
        names = sorted(x["name"] for x in self.portico.resources() if x["kind"] == "VirtualService")
        self.assertEqual(names, ["busy", "new", "shop"])


if __name__ == "__main__":
    t.main()
