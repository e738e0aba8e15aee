#!/usr/bin/env python3
"""`portico apply` / `portico delete` when Settings select a store: a real etcd, the Consul KV double and
the Kubernetes double (the object of the kind's custom resource, created, replaced, deleted).
The resource's key is written in Gloo's layout (<prefix>/gateway.portico.dev/v1/VirtualService/default/shop),
read back from the store itself (etcdctl, python3-consul), and served through the gateway within 1 s; a
second apply of the same document is "unchanged"; delete removes the key (404 through the gateway);
an invalid document writes nothing."""

import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from support import portico_testlib as t  # noqa: E402
from support import etcd_server  # noqa: E402
from support.consul_double import ConsulDouble  # noqa: E402
from support.kube_double import KubeDouble  # noqa: E402
from support.portico_testlib import matcher as m, route as r  # noqa: E402

try:
    import consul  # python3-consul (Debian)
except ImportError:  # pragma: no cover
    consul = None

WITHIN = 1.0


def shop(body):
    return t.to_yaml(t.virtual_service("shop", [r("dr", [m(prefix="/")], direct=(200, body))],
                                       domains=["shop.example"]))


def cli(*args, stdin=""):
    return subprocess.run([t.PORTICO_BIN, *args], capture_output=True, text=True, timeout=60,
                          input=stdin)


class StoreApplyBase(t.IntegrationTest):
    ROOT = "portico-apply"

    def key(self):
        return f"{self.ROOT}/gateway.portico.dev/v1/VirtualService/default/shop"

    def setUp(self):
        super().setUp()
        self.port = t.free_port()
        self.cfg = self.new_config()
        self.cfg.write_obj("gateway.yaml", t.resource("Gateway", "gw", {"bindAddress": t.LOCALHOST,
                                                                         "bindPort": self.port}))

    def get(self):
        try:
            resp = t.request(self.port, "GET", "/", host="shop.example", timeout=2)
            return resp.status, resp.text()
        except OSError as e:
            return None, repr(e)

    def apply_edit_delete(self, read_key):
        out = cli("apply", "-f", "-", "--admin", self.portico.admin, stdin=shop("v1"))
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertEqual(out.stdout.strip(), "virtualservice default/shop created")
        start = time.monotonic()
        t.wait_until(lambda: self.get() == (200, "v1"), WITHIN, 0.01, "v1 served")
        print(f"\napply -> served in {(time.monotonic() - start) * 1000:.0f} ms", file=sys.stderr)
        self.assertEqual(read_key(), shop("v1"))
        res = self.portico.resource("VirtualService", "shop")
        self.assertEqual(res["origin"]["key"], self.key())
        # Nothing went to the directory.
        self.assertFalse(os.path.exists(os.path.join(self.cfg.path, "applied")))

        out = cli("apply", "-f", "-", "--admin", self.portico.admin, stdin=shop("v1"))
        self.assertEqual(out.stdout.strip(), "virtualservice default/shop unchanged", out.stderr)
        out = cli("apply", "-f", "-", "--admin", self.portico.admin, stdin=shop("v2"))
        self.assertEqual(out.stdout.strip(), "virtualservice default/shop configured", out.stderr)
        t.wait_until(lambda: self.get() == (200, "v2"), WITHIN, 0.01, "v2 served")

        # Invalid: refused, the key keeps v2.
        out = cli("apply", "-f", "-", "--admin", self.portico.admin,
                  stdin=shop("v3").replace("status: 200", "status: 9999"))
        self.assertEqual(out.returncode, 1)
        self.assertIn("nothing was applied", out.stderr)
        self.assertEqual(read_key(), shop("v2"))

        out = cli("delete", "vs", "shop", "--admin", self.portico.admin)
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertEqual(out.stdout.strip(), "virtualservice default/shop deleted")
        t.wait_until(lambda: self.get()[0] == 404, WITHIN, 0.01, "shop gone")
        self.assertIsNone(read_key())
        out = cli("delete", "vs", "shop", "--admin", self.portico.admin)
        self.assertEqual(out.returncode, 1)


class EtcdApplyTest(StoreApplyBase):
    def setUp(self):
        super().setUp()
        if not etcd_server.available():
            self.skipTest("etcd and etcdctl are not installed")
        self.etcd = etcd_server.Etcd()
        self.addCleanup(self.etcd.cleanup)
        self.etcd.start()
        self.cfg.write_obj("settings.yaml", t.resource("Settings", "default", {
            "etcdConfigSource": {"address": self.etcd.url, "prefix": self.ROOT, "timeout": "2s"}}))
        self.portico = self.start_portico(self.cfg)
        t.wait_until(lambda: t.metric_sum(self.portico.stats(), "portico_config_source_up",
                                          source="etcd") == 1, 5.0, message="etcd source up")

    def read_key(self):
        out = self.etcd.ctl("get", self.key(), "--print-value-only")
        return out[:-1] if out.endswith("\n") else (out or None)

    def test_apply_edit_delete(self):
        self.apply_edit_delete(self.read_key)


class ConsulKvApplyTest(StoreApplyBase):
    def setUp(self):
        super().setUp()
        if consul is None:
            self.skipTest("python3-consul is not installed")
        self.double = ConsulDouble().start()
        self.addCleanup(self.double.stop)
        self.kv = consul.Consul(host=self.double.host, port=self.double.port)
        self.addCleanup(self.kv.http.session.close)
        self.cfg.write_obj("settings.yaml", t.resource("Settings", "default", {
            "consul": {"address": self.double.address, "waitTime": "10s"},
            "consulKvSource": {"rootKey": self.ROOT}}))
        self.portico = self.start_portico(self.cfg)
        t.wait_until(lambda: t.metric_sum(self.portico.stats(), "portico_config_source_up",
                                          source="consul-kv") == 1, 5.0, message="consul-kv source up")

    def read_key(self):
        _, entry = self.kv.kv.get(self.key())
        return entry["Value"].decode() if entry else None

    def test_apply_edit_delete(self):
        self.apply_edit_delete(self.read_key)


class KubernetesApplyTest(StoreApplyBase):
    def setUp(self):
        super().setUp()
        self.double = KubeDouble().start()
        self.addCleanup(self.double.stop)
        self.cfg.write_obj("settings.yaml", t.resource("Settings", "default", {
            "kubernetesConfigSource": {"address": self.double.address}}))
        self.portico = self.start_portico(self.cfg)
        t.wait_until(lambda: t.metric_sum(self.portico.stats(), "portico_config_source_up",
                                          source="kubernetes") == 1, 5.0,
                     message="kubernetes source up")

    def stored_body(self):
        obj = self.double.get("virtualservices", "shop")
        if obj is None:
            return None
        routes = obj["spec"]["virtualHost"]["routes"]
        return routes[0]["directResponseAction"]["body"]

    def test_apply_edit_delete(self):
        out = cli("apply", "-f", "-", "--admin", self.portico.admin, stdin=shop("v1"))
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertEqual(out.stdout.strip(), "virtualservice default/shop created")
        start = time.monotonic()
        t.wait_until(lambda: self.get() == (200, "v1"), WITHIN, 0.01, "v1 served")
        print(f"\napply -> served in {(time.monotonic() - start) * 1000:.0f} ms", file=sys.stderr)
        obj = self.double.get("virtualservices", "shop")
        self.assertEqual(obj["apiVersion"], "gateway.solo.io/v1")  # the custom resource's group
        self.assertEqual(self.stored_body(), "v1")
        self.assertFalse(os.path.exists(os.path.join(self.cfg.path, "applied")))

        out = cli("apply", "-f", "-", "--admin", self.portico.admin, stdin=shop("v1"))
        self.assertEqual(out.stdout.strip(), "virtualservice default/shop unchanged", out.stderr)
        out = cli("apply", "-f", "-", "--admin", self.portico.admin, stdin=shop("v2"))
        self.assertEqual(out.stdout.strip(), "virtualservice default/shop configured", out.stderr)
        t.wait_until(lambda: self.get() == (200, "v2"), WITHIN, 0.01, "v2 served")
        self.assertEqual(self.stored_body(), "v2")

        out = cli("apply", "-f", "-", "--admin", self.portico.admin,
                  stdin=shop("v3").replace("status: 200", "status: 9999"))
        self.assertEqual(out.returncode, 1)
        self.assertEqual(self.stored_body(), "v2")

        out = cli("delete", "vs", "shop", "--admin", self.portico.admin)
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertEqual(out.stdout.strip(), "virtualservice default/shop deleted")
        t.wait_until(lambda: self.get()[0] == 404, WITHIN, 0.01, "shop gone")
        self.assertIsNone(self.double.get("virtualservices", "shop"))
        out = cli("delete", "vs", "shop", "--admin", self.portico.admin)
        self.assertEqual(out.returncode, 1)


if __name__ == "__main__":
    t.main()
