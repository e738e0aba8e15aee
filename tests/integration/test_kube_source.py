#!/usr/bin/env python3
"""Configuration kept in Kubernetes (Settings spec.kubernetesConfigSource), through the real binary and the
Kubernetes double (tests/support/kube_double.py), written with a real kubectl: a VirtualService applied with
kubectl is served within 1 s (the time is printed), an edit changes the route, a delete removes it; the status
Portico writes through the status subresource shows in `kubectl get -o yaml` (Accepted with the observed
generation, Rejected with the reasons); the API server stopped -> portico keeps serving, /ready names the
problem, portico_config_source_up{source="kubernetes"} is 0; restarted -> the watch resumes from its
resourceVersion and what changed meanwhile is applied; changes and a compaction while it is away -> the watch
is answered 410, the kinds are listed again and nothing is lost or applied twice.

The Settings and the Gateway are files; the Upstreams and VirtualServices are custom resources in Gloo's groups
(gateway.solo.io/v1, gloo.solo.io/v1) in the double."""

import json
import os
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from support import portico_testlib as t  # noqa: E402
from support.kube_double import KubeDouble, Kubectl  # noqa: E402


def vs_doc(name, upstream=None, domains=("shop.example",), prefix="/", direct=None, extra_route=None):
    route = {"matchers": [{"prefix": prefix}]}
    if direct is not None:
        route["directResponseAction"] = {"status": 200, "body": direct}
    else:
        route["routeAction"] = {"single": {"upstream": {"name": upstream, "namespace": "default"}}}
    if extra_route:
        route.update(extra_route)
    return {"apiVersion": "gateway.solo.io/v1", "kind": "VirtualService",
            "metadata": {"name": name, "namespace": "default"},
            "spec": {"virtualHost": {"domains": list(domains), "routes": [route]}}}


def upstream_doc(name, port):
    return {"apiVersion": "gloo.solo.io/v1", "kind": "Upstream",
            "metadata": {"name": name, "namespace": "default"},
            "spec": {"static": {"hosts": [{"addr": "127.0.0.1", "port": port}]}}}


@unittest.skipIf(not Kubectl.binary(), "no kubectl (install kubernetes-client, or set PORTICO_KUBECTL)")
class KubeSourceTest(t.IntegrationTest):
    def setUp(self):
        super().setUp()
        self.double = KubeDouble(bookmark_interval=0.5).start()
        self.addCleanup(self.double.stop)
        self.kubectl = Kubectl(self.double.address)
        self.addCleanup(self.kubectl.cleanup)
        self.files = tempfile.mkdtemp(prefix="kube-src-")
        self.a = self.start_upstream("a")
        self.b = self.start_upstream("b")
        self.apply(upstream_doc("a", self.a.port), upstream_doc("b", self.b.port))
        self.port = t.free_port()
        cfg = self.cfg = self.new_config()
        cfg.write_obj("settings.yaml", t.resource("Settings", "default", {
            "kubernetesConfigSource": {"address": self.double.address}}))
        # No virtualServices: the Gateway serves every VirtualService (those from Kubernetes).
        cfg.write_obj("gateway.yaml", t.resource("Gateway", "gw", {"bindAddress": "127.0.0.1",
                                                                     "bindPort": self.port}))
        self.portico = self.start_portico(cfg)

    # helpers

    def apply(self, *docs):
        path = os.path.join(self.files, "apply.json")
        with open(path, "w") as f:
            json.dump({"apiVersion": "v1", "kind": "List", "items": list(docs)}, f)
        return self.kubectl.run("apply", "-f", path).stdout

    def get(self, path, host="shop.example"):
        return t.request(self.port, "GET", path, host=host, timeout=3.0)

    def served_by(self, path, host="shop.example"):
        resp = self.get(path, host)
        return resp.header("X-Upstream") if resp.status == 200 else resp.status

    def wait_served_by(self, path, want, timeout=5.0, host="shop.example"):
        return t.wait_until(lambda: self.served_by(path, host) == want, timeout, 0.01,
                            f"{path} served by {want}")

    def source_up(self):
        return t.metric_sum(self.portico.stats(), "portico_config_source_up", source="kubernetes")

    def stat(self, name):
        return t.metric_sum(self.portico.stats(), name)

    def kube_status(self, name, kind="virtualservices.gateway.solo.io"):
        p = self.kubectl.run("get", kind, name, "-o", "json", check=False)
        if p.returncode != 0:
            return None
        return json.loads(p.stdout).get("status")

    # tests

    def test_apply_edit_delete_and_status(self):
        t.wait_until(lambda: self.source_up() == 1, 5.0, message="kubernetes source up")
        self.assertEqual(self.get("/").status, 404)
        start = time.monotonic()
        self.apply(vs_doc("shop", "a"))
        self.wait_served_by("/x", "a", timeout=2.0)
        served = time.monotonic()
        # From the write in the API server (kubectl itself takes a few hundred ms to start and discover).
        elapsed = served - self.double.last_write
        print(f"\nkubectl apply -> served {elapsed * 1000:.0f} ms after the write "
              f"({(served - start) * 1000:.0f} ms after kubectl started)", file=sys.stderr)
        self.assertLess(elapsed, 1.0)
        res = self.portico.resource("VirtualService", "shop")
        self.assertEqual(res["state"], "Accepted", res)
        self.assertEqual(res["origin"]["source"], "kubernetes")
        self.assertEqual(res["origin"]["key"], "gateway.solo.io/v1/VirtualService/default/shop")
        # The status, written through the status subresource, as kubectl shows it.
        st = t.wait_until(lambda: self.kube_status("shop"), 3.0, message="a status on the object")
        self.assertEqual(st["state"], "Accepted", st)
        self.assertEqual(st["observedGeneration"], 1, st)
        self.assertEqual(st["reportedBy"], "portico")
        yaml_text = self.kubectl.run("get", "vs", "shop", "-o", "yaml").stdout
        self.assertIn("state: Accepted", yaml_text)
        self.assertEqual(self.double.get("upstreams", "a")["status"]["state"], "Accepted")

        # An edit: the route goes to b; the generation and the observed generation follow.
        self.apply(vs_doc("shop", "b"))
        self.wait_served_by("/x", "b", timeout=2.0)
        print(f"kubectl apply (edit) -> served {(time.monotonic() - self.double.last_write) * 1000:.0f} ms "
              "after the write", file=sys.stderr)
        t.wait_until(lambda: (self.kube_status("shop") or {}).get("observedGeneration") == 2, 3.0,
                     message="observedGeneration 2")

        # A bad edit: Rejected with the reason, visible with kubectl; the previous version keeps serving.
        self.apply(vs_doc("shop", "a", extra_route={"unknownOption": True}))
        st = t.wait_until(lambda: (lambda s: s if s and s.get("state") == "Rejected" else None)(
            self.kube_status("shop")), 3.0, message="Rejected status")
        self.assertIn("unknownOption", json.dumps(st["reasons"]))
        self.assertEqual(st["servingGeneration"], 2, st)
        for _ in range(5):
            self.assertEqual(self.served_by("/x"), "b")

        # Deleted: gone.
        self.kubectl.run("delete", "vs", "shop")
        self.wait_served_by("/x", 404, timeout=2.0)
        self.assertIsNone(self.portico.resource("VirtualService", "shop"))
        self.assertNotIn("sources changed", self.portico.log())
        self.assertGreaterEqual(self.stat("portico_kubernetes_status_writes_total"), 4)
        self.assertEqual(self.stat("portico_kubernetes_lists_total"), 5)  # one per kind
        self.assertGreater(self.stat("portico_kubernetes_bookmarks_total"), 0)

    def test_api_server_restarted(self):
        self.apply(vs_doc("shop", "a"), vs_doc("gone", direct="gone", domains=["gone.example"]))
        self.wait_served_by("/x", "a")
        lists_before = self.stat("portico_kubernetes_lists_total")
        self.double.stop()
        t.wait_until(lambda: self.source_up() == 0, 10.0, message="portico_config_source_up{kubernetes} 0")
        ready = self.portico.admin_get("/ready")
        self.assertEqual(ready.status, 200)  # the last good configuration serves
        self.assertIn("source: kubernetes: http://127.0.0.1:", ready.text())
        self.assertIn("it delivered before", ready.text())
        for _ in range(5):
            self.assertEqual(self.served_by("/x"), "a")
        # Changes while it is away (written to the store behind it, as etcd keeps them).
        self.double.put(vs_doc("shop", "b"))
        self.double.delete("virtualservices", "gone")
        self.double.put(vs_doc("new", direct="new", domains=["new.example"]))

        start = time.monotonic()
        self.double.start()
        t.wait_until(lambda: self.source_up() == 1, 15.0, 0.05, message="kubernetes source up again")
        self.wait_served_by("/x", "b")
        self.wait_served_by("/", 404, host="gone.example")
        t.wait_until(lambda: self.get("/", host="new.example").body == b"new", 3.0, message="new served")
        print(f"\nrestarted -> caught up in {(time.monotonic() - start) * 1000:.0f} ms", file=sys.stderr)
        # Resumed from its resourceVersion: no list again.
        self.assertEqual(self.stat("portico_kubernetes_lists_total"), lists_before)
        self.assertEqual(self.stat("portico_kubernetes_expired_total"), 0)
        self.assertTrue(self.portico.alive())

    def test_compaction_410_relist(self):
        self.apply(vs_doc("shop", "a"), vs_doc("gone", direct="gone", domains=["gone.example"]))
        self.wait_served_by("/x", "a")
        t.wait_until(lambda: self.get("/", host="gone.example").body == b"gone", 5.0, message="gone served")
        lists_before = self.stat("portico_kubernetes_lists_total")
        self.double.stop()
        t.wait_until(lambda: self.source_up() == 0, 10.0, message="the outage is noticed")
        # Meanwhile: an edit, a new object, a delete, several writes of another, then a compaction.
        self.double.put(vs_doc("shop", "b"))
        self.double.put(vs_doc("new", direct="new", domains=["new.example"]))
        self.double.delete("virtualservices", "gone")
        for i in range(5):
            self.double.put(vs_doc("busy", direct=f"v{i}", domains=["busy.example"]))
        self.double.compact()
        self.assertEqual(self.served_by("/x"), "a")  # the old configuration still serves

        self.double.start()
        t.wait_until(lambda: self.stat("portico_kubernetes_expired_total") >= 1, 15.0, 0.05,
                     message="a watch answered 410")
        self.wait_served_by("/x", "b")
        self.wait_served_by("/", 404, host="gone.example")
        t.wait_until(lambda: self.get("/", host="new.example").body == b"new", 3.0, message="new served")
        t.wait_until(lambda: self.get("/", host="busy.example").body == b"v4", 3.0, message="last busy write")
        # Every kind back (each retries on its own back-off, up to 5 s).
        t.wait_until(lambda: self.source_up() == 1, 15.0, 0.05, message="kubernetes source up again")
        self.assertGreater(self.stat("portico_kubernetes_lists_total"), lists_before)
        # Nothing applied twice: each resource once.
        names = sorted(x["name"] for x in self.portico.resources() if x["kind"] == "VirtualService")
        self.assertEqual(names, ["busy", "new", "shop"])

    def test_many_objects_listed_in_pages_and_an_expired_continue(self):
        """1,200 VirtualServices listed in pages of 500 (limit + continue); the first continue token is
        answered 410 Expired (the list restarts from scratch, nothing lost or doubled)."""
        t.wait_until(lambda: self.source_up() == 1, 5.0, message="kubernetes source up")
        count = 1200
        for i in range(count):
            self.double.put(vs_doc(f"vs{i:04d}", direct=f"r{i}", domains=[f"h{i}.example"]))
        pages_before = self.stat("portico_kubernetes_list_pages_total")
        self.double.expire_continues(1)
        start = time.monotonic()
        self.double.expire_watches()  # every kind lists again: the VirtualServices take 3 pages
        t.wait_until(lambda: self.stat("portico_kubernetes_list_restarts_total") == 1, 15.0, 0.05,
                     message="a list restarted after an expired continue token")
        t.wait_until(lambda: self.get("/", host=f"h{count - 1}.example").body == f"r{count - 1}".encode(), 30.0,
                     0.05, message="the last VirtualService served")
        print(f"\n{count} VirtualServices listed in pages of 500 (one continue expired) and served in "
              f"{(time.monotonic() - start) * 1000:.0f} ms", file=sys.stderr)
        self.assertEqual(self.get("/", host="h0.example").body, b"r0")
        names = [x["name"] for x in self.portico.resources() if x["kind"] == "VirtualService"]
        self.assertEqual(len(names), count)
        self.assertEqual(len(set(names)), count)
        # 500 + (continue: 410) + 500 + 500 + 200 for the VirtualServices; 1 page for each other kind.
        self.assertGreaterEqual(self.stat("portico_kubernetes_list_pages_total") - pages_before, 4 + 4)
        self.assertEqual(self.double.state()["continuesExpired"], 1)
        self.assertTrue(any("virtualservices?limit=500&continue=" in target for _, target in self.double.requests))


if __name__ == "__main__":
    t.main()
