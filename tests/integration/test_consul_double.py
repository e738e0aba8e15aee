#!/usr/bin/env python3
"""The Consul double (tests/support/consul_double.py) driven by a real third-party client, python3-consul,
so that it cannot drift from Consul's wire format: KV put/get/CAS/delete/recurse/keys, blocking queries
(return on change, return after the wait, index rules), agent registration then catalog and health
(?passing follows TTL check status), datacenters, ACL tokens, the index going backwards after a restore,
and the fault hooks. Plain HTTP (http.client) where the client hides what Consul sends (headers, ?raw)."""

import http.client
import json
import os
import subprocess
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from support.consul_double import ConsulDouble, parse_duration  # noqa: E402

try:
    import consul  # python3-consul (Debian)
except ImportError:  # pragma: no cover - the package is installed by scripts/install-deps.sh
    consul = None


def raw(double, method, path, body=b"", headers=None):
    conn = http.client.HTTPConnection(double.host, double.port, timeout=30)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        r = conn.getresponse()
        return r.status, dict((k.lower(), v) for k, v in r.getheaders()), r.read()
    finally:
        conn.close()


@unittest.skipIf(consul is None, "python3-consul is not installed")
class ConsulDoubleTest(unittest.TestCase):
    def setUp(self):
        self.double = ConsulDouble(datacenters=("dc1", "dc2")).start()
        self.addCleanup(self.double.stop)
        self.c = self.client(self.double)

    def client(self, double, **kw):
        c = consul.Consul(host=double.host, port=double.port, **kw)
        self.addCleanup(c.http.session.close)
        return c

    # ------------------------------------------------------------------ KV

    def test_kv_put_get_flags_and_404(self):
        idx, v = self.c.kv.get("gloo/missing")
        self.assertIsNone(v)
        self.assertGreaterEqual(int(idx), 1)  # an index even on 404 (a client may block on absence)
        self.assertTrue(self.c.kv.put("gloo/a", "hello", flags=42))
        idx, v = self.c.kv.get("gloo/a")
        self.assertEqual(v["Value"], b"hello")
        self.assertEqual(v["Flags"], 42)
        self.assertEqual(v["CreateIndex"], v["ModifyIndex"])
        self.assertEqual(v["LockIndex"], 0)
        self.assertEqual(int(idx), v["ModifyIndex"])  # a key's read answers its ModifyIndex
        self.assertTrue(self.c.kv.put("gloo/a", b"\x00\xffbinary"))
        _, v2 = self.c.kv.get("gloo/a")
        self.assertEqual(v2["Value"], b"\x00\xffbinary")
        self.assertEqual(v2["CreateIndex"], v["CreateIndex"])
        self.assertGreater(v2["ModifyIndex"], v["ModifyIndex"])
        status, headers, body = raw(self.double, "GET", "/v1/kv/gloo/a?raw")
        self.assertEqual((status, body), (200, b"\x00\xffbinary"))
        self.assertEqual(headers["x-consul-index"], str(v2["ModifyIndex"]))
        self.assertEqual(headers["x-consul-knownleader"], "true")
        status, _, body = raw(self.double, "GET", "/v1/kv/gloo/a")
        doc = json.loads(body)
        self.assertEqual(doc[0]["Value"], "AP9iaW5hcnk=")  # base64 on the wire
        self.assertEqual(sorted(doc[0]), ["CreateIndex", "Flags", "Key", "LockIndex", "ModifyIndex", "Value"])

    def test_cas_put_and_delete(self):
        self.assertTrue(self.c.kv.put("k", "1", cas=0))    # create only if absent
        self.assertFalse(self.c.kv.put("k", "2", cas=0))   # present: refused
        _, v = self.c.kv.get("k")
        self.assertFalse(self.c.kv.put("k", "3", cas=v["ModifyIndex"] + 100))  # stale index
        self.assertTrue(self.c.kv.put("k", "4", cas=v["ModifyIndex"]))
        _, v2 = self.c.kv.get("k")
        self.assertEqual(v2["Value"], b"4")
        self.assertFalse(self.c.kv.delete("k", cas=v["ModifyIndex"]))  # old index: kept
        self.assertEqual(self.c.kv.get("k")[1]["Value"], b"4")
        self.assertTrue(self.c.kv.delete("k", cas=v2["ModifyIndex"]))
        self.assertIsNone(self.c.kv.get("k")[1])
        # Every write went through "raft", failed CAS included: 5 writes since the first.
        self.assertEqual(self.double.index() - v["CreateIndex"], 5)

    def test_recurse_keys_delete_and_tombstones(self):
        for k in ("gloo/a/1", "gloo/a/2", "gloo/b/1", "other/x"):
            self.c.kv.put(k, k)
        idx, items = self.c.kv.get("gloo/", recurse=True)
        self.assertEqual([i["Key"] for i in items], ["gloo/a/1", "gloo/a/2", "gloo/b/1"])
        self.assertEqual(int(idx), max(i["ModifyIndex"] for i in items))
        _, keys = self.c.kv.get("gloo/", keys=True)
        self.assertEqual(keys, ["gloo/a/1", "gloo/a/2", "gloo/b/1"])
        _, keys = self.c.kv.get("gloo/", keys=True, separator="/")
        self.assertEqual(keys, ["gloo/a/", "gloo/b/"])
        self.c.kv.put("other/y", "y")
        idx_after_other, _ = self.c.kv.get("gloo/", recurse=True)
        self.assertEqual(idx_after_other, idx)  # a prefix's index ignores writes elsewhere
        self.assertTrue(self.c.kv.delete("gloo/b/1"))
        idx2, items = self.c.kv.get("gloo/", recurse=True)
        self.assertEqual(len(items), 2)
        self.assertGreater(int(idx2), int(idx))  # the tombstone keeps the index moving forward
        self.assertTrue(self.c.kv.delete("gloo/", recurse=True))
        idx3, items = self.c.kv.get("gloo/", recurse=True)
        self.assertIsNone(items)
        self.assertGreater(int(idx3), int(idx2))
        self.assertEqual(self.c.kv.get("other/x")[1]["Value"], b"other/x")

    # ------------------------------------------------------------------ blocking queries

    def test_blocking_get_returns_on_change(self):
        self.c.kv.put("gloo/a", "1")
        idx, _ = self.c.kv.get("gloo/", recurse=True)
        threading.Timer(0.3, lambda: self.double.kv_put("gloo/b", "2")).start()
        t0 = time.monotonic()
        idx2, items = self.c.kv.get("gloo/", recurse=True, index=idx, wait="5s")
        took = time.monotonic() - t0
        self.assertGreater(int(idx2), int(idx))
        self.assertEqual(len(items), 2)
        self.assertGreater(took, 0.25)
        self.assertLess(took, 2.0)

    def test_blocking_get_returns_after_wait_unchanged(self):
        self.c.kv.put("gloo/a", "1")
        idx, _ = self.c.kv.get("gloo/a")
        # a write elsewhere does not end a query on this key
        threading.Timer(0.2, lambda: self.double.kv_put("elsewhere", "x")).start()
        t0 = time.monotonic()
        idx2, v = self.c.kv.get("gloo/a", index=idx, wait="800ms")
        took = time.monotonic() - t0
        self.assertEqual(idx2, idx)  # a return does not promise a change
        self.assertEqual(v["Value"], b"1")
        self.assertGreaterEqual(took, 0.79)
        self.assertLess(took, 0.8 + 0.8 / 16 + 0.5)  # wait plus at most wait/16 of jitter

    def test_blocking_on_absent_key_and_index_zero(self):
        idx, v = self.c.kv.get("gloo/new")
        self.assertIsNone(v)
        threading.Timer(0.2, lambda: self.double.kv_put("gloo/new", "n")).start()
        idx2, v = self.c.kv.get("gloo/new", index=idx, wait="5s")
        self.assertEqual(v["Value"], b"n")
        t0 = time.monotonic()
        status, headers, _ = raw(self.double, "GET", "/v1/kv/gloo/new?index=0&wait=5s")
        self.assertEqual(status, 200)
        self.assertLess(time.monotonic() - t0, 1.0)  # index 0 does not block

    def test_wait_and_index_parsing(self):
        self.assertEqual(parse_duration("5s"), 5.0)
        self.assertAlmostEqual(parse_duration("100ms"), 0.1)
        self.assertEqual(parse_duration("1m"), 60.0)
        self.assertEqual(parse_duration("1m30s"), 90.0)
        self.assertAlmostEqual(parse_duration("1.5h"), 5400.0)
        for bad in ("5", "s", "5x", "", "1 s"):
            with self.assertRaises(ValueError, msg=bad):
                parse_duration(bad)
        self.assertEqual(raw(self.double, "GET", "/v1/kv/a?index=1&wait=soon")[0], 400)
        self.assertEqual(raw(self.double, "GET", "/v1/kv/a?index=x")[0], 400)
        self.assertEqual(raw(self.double, "GET", "/v1/kv/a?stale&consistent")[0], 400)
        for refused in ("filter=Service.Port%3D%3D80", "near=_agent", "node-meta=a:b", "ns=team"):
            self.assertEqual(raw(self.double, "GET", "/v1/health/service/web?" + refused)[0], 400, refused)
        _, headers, _ = raw(self.double, "GET", "/v1/kv/a?stale")
        self.assertEqual(headers["x-consul-effective-consistency"], "stale")
        with self.assertRaises(consul.base.ConsulException):
            self.c.kv.get("a", consistency="stale", dc="nowhere")

    # ------------------------------------------------------------------ catalog, health, agent

    def test_register_catalog_and_health(self):
        self.assertTrue(self.c.agent.service.register(
            "web", service_id="web-1", address="10.0.0.1", port=8080, tags=["v1", "canary"],
            check=consul.Check.ttl("10s")))
        self.assertTrue(self.c.agent.service.register("web", service_id="web-2", address="10.0.0.2",
                                                      port=8080, tags=["v1"]))
        idx, services = self.c.catalog.services()
        self.assertEqual(sorted(services), ["consul", "web"])
        self.assertEqual(sorted(services["web"]), ["canary", "v1"])
        _, nodes = self.c.catalog.service("web")
        self.assertEqual([n["ServiceID"] for n in nodes], ["web-1", "web-2"])
        self.assertEqual(nodes[0]["ServiceAddress"], "10.0.0.1")
        self.assertEqual(nodes[0]["ServicePort"], 8080)
        self.assertEqual(nodes[0]["Datacenter"], "dc1")
        for field in ("Node", "Address", "ServiceName", "ServiceTags", "ServiceMeta", "ModifyIndex"):
            self.assertIn(field, nodes[0])
        _, canary = self.c.catalog.service("web", tag="canary")
        self.assertEqual([n["ServiceID"] for n in canary], ["web-1"])
        # A TTL check starts critical: web-1 is not passing; web-2 has only the node's serfHealth.
        _, passing = self.c.health.service("web", passing=True)
        self.assertEqual([e["Service"]["ID"] for e in passing], ["web-2"])
        _, every = self.c.health.service("web")
        self.assertEqual(len(every), 2)
        checks = {c["CheckID"]: c["Status"] for c in every[0]["Checks"]}
        self.assertEqual(checks, {"serfHealth": "passing", "service:web-1": "critical"})
        # pass -> passing; blocking query on the service returns on the change
        idx, _ = self.c.health.service("web", passing=True)
        threading.Timer(0.2, lambda: self.c.agent.check.ttl_pass("service:web-1")).start()
        idx2, passing = self.c.health.service("web", passing=True, index=idx, wait="5s")
        self.assertGreater(int(idx2), int(idx))
        self.assertEqual([e["Service"]["ID"] for e in passing], ["web-1", "web-2"])
        self.assertTrue(self.c.agent.check.ttl_warn("service:web-1"))  # warning is not passing
        _, passing = self.c.health.service("web", passing=True)
        self.assertEqual([e["Service"]["ID"] for e in passing], ["web-2"])
        self.assertTrue(self.c.agent.check.ttl_fail("service:web-1", notes="down"))
        _, every = self.c.health.service("web")
        self.assertEqual(every[0]["Checks"][1]["Output"], "down")
        # deregistration
        self.assertTrue(self.c.agent.service.deregister("web-1"))
        _, nodes = self.c.catalog.service("web")
        self.assertEqual([n["ServiceID"] for n in nodes], ["web-2"])
        self.assertTrue(self.c.agent.service.deregister("web-2"))
        _, services = self.c.catalog.services()
        self.assertEqual(sorted(services), ["consul"])
        self.assertFalse(self.c.agent.service.deregister("web-2"))  # 404: unknown service ID

    def test_service_and_check_lists_block_on_their_own_tables(self):
        # What Portico's bulk discovery watches: /v1/catalog/services (the services table's index) and
        # /v1/health/state/any (the checks table's index), each a blocking query.
        self.double.register("web", 8080, address="10.0.0.1", service_id="web-1", status="passing")
        self.double.register("api", 9090, address="10.0.0.2", service_id="api-1", status="passing")
        s_idx, services = self.c.catalog.services()
        c_idx, checks = self.c.health.state("any")
        self.assertEqual(sorted(services), ["api", "consul", "web"])
        by_id = {c["CheckID"]: c for c in checks}
        self.assertEqual(by_id["service:web-1"]["ServiceName"], "web")
        self.assertEqual(by_id["service:web-1"]["Status"], "passing")
        for field in ("Node", "ServiceID", "ModifyIndex", "CreateIndex"):
            self.assertIn(field, by_id["service:web-1"])
        # A check turning critical ends a blocking check list with that check's ModifyIndex ...
        threading.Timer(0.2, lambda: self.double.set_check("service:web-1", "critical")).start()
        t0 = time.monotonic()
        c_idx2, checks = self.c.health.state("any", index=c_idx, wait="5s")
        self.assertLess(time.monotonic() - t0, 2.0)
        self.assertGreater(int(c_idx2), int(c_idx))
        web = [c for c in checks if c["CheckID"] == "service:web-1"][0]
        self.assertEqual(web["Status"], "critical")
        self.assertEqual(web["ModifyIndex"], int(c_idx2))
        # ... and does not move the service list, which stays parked (the wait passes).
        t0 = time.monotonic()
        s_idx2, _ = self.c.catalog.services(index=s_idx, wait="400ms")
        self.assertGreaterEqual(time.monotonic() - t0, 0.39)
        self.assertEqual(s_idx2, s_idx)
        # Re-registering an instance at a new address moves the service list but no check (Consul
        # keeps a check written again unchanged): the check list stays parked.
        threading.Timer(0.2, lambda: self.double.register(
            "api", 9191, address="10.0.0.3", service_id="api-1", status="passing")).start()
        s_idx3, services = self.c.catalog.services(index=s_idx, wait="5s")
        self.assertGreater(int(s_idx3), int(s_idx))
        self.assertEqual(sorted(services), ["api", "consul", "web"])
        t0 = time.monotonic()
        c_idx3, checks = self.c.health.state("any", index=c_idx2, wait="400ms")
        self.assertGreaterEqual(time.monotonic() - t0, 0.39)
        self.assertEqual(c_idx3, c_idx2)
        api = [c for c in checks if c["CheckID"] == "service:api-1"][0]
        self.assertLess(api["ModifyIndex"], int(s_idx3))
        _, entries = self.c.health.service("api", passing=True)
        self.assertEqual((entries[0]["Service"]["Address"], entries[0]["Service"]["Port"]), ("10.0.0.3", 9191))
        # A KV write ends neither; a new service ends both (new instance, new check).
        threading.Timer(0.1, lambda: self.double.kv_put("unrelated", "x")).start()
        threading.Timer(0.3, lambda: self.double.register("db", 5432, service_id="db-1")).start()
        s_idx4, services = self.c.catalog.services(index=s_idx3, wait="5s")
        c_idx4, checks = self.c.health.state("any", index=c_idx3, wait="5s")
        self.assertIn("db", services)
        self.assertEqual(int(s_idx4), int(c_idx4))
        self.assertIn("service:db-1", [c["CheckID"] for c in checks])
        # Consistency modes are taken and reported (python3-consul's consistency= parameter).
        stale = consul.Consul(host=self.double.host, port=self.double.port, consistency="stale")
        self.addCleanup(stale.http.session.close)
        self.assertIn("db", stale.catalog.services()[1])
        self.assertIn("db", self.c.catalog.services(consistency="consistent")[1])
        self.assertIn("stale", [t.split("?", 1)[1] for m, t in self.double.requests
                                if t.startswith("/v1/catalog/services?")][-2])

    def test_ttl_expires_and_non_ttl_checks_refuse_updates(self):
        self.c.agent.service.register("api", port=1, check=consul.Check.ttl("300ms"))
        self.c.agent.check.ttl_pass("service:api")
        _, passing = self.c.health.service("api", passing=True)
        self.assertEqual(len(passing), 1)
        time.sleep(0.6)
        _, passing = self.c.health.service("api", passing=True)
        self.assertEqual(passing, [])
        self.c.agent.service.register("h", port=2, check=consul.Check.http("http://127.0.0.1:1/", "10s"))
        with self.assertRaises(consul.base.ConsulException):  # 500: no associated TTL
            self.c.agent.check.ttl_pass("service:h")
        self.double.set_check("service:h", "passing")         # the test hook can
        _, passing = self.c.health.service("h", passing=True)
        self.assertEqual(len(passing), 1)

    def test_datacenters(self):
        self.assertEqual(self.c.catalog.datacenters(), ["dc1", "dc2"])
        self.double.register("db", 5432, address="10.1.0.1", dc="dc2")
        _, nodes = self.c.catalog.service("db", dc="dc2")
        self.assertEqual([(n["Datacenter"], n["ServicePort"]) for n in nodes], [("dc2", 5432)])
        _, nodes = self.c.catalog.service("db")
        self.assertEqual(nodes, [])
        self.c.kv.put("x", "in dc2", dc="dc2")
        self.assertIsNone(self.c.kv.get("x")[1])
        self.assertEqual(self.c.kv.get("x", dc="dc2")[1]["Value"], b"in dc2")
        status, _, body = raw(self.double, "GET", "/v1/catalog/services?dc=dc9")
        self.assertEqual((status, body), (500, b"No path to datacenter"))
        with self.assertRaisesRegex(consul.base.ConsulException, "No path to datacenter"):
            self.c.catalog.service("db", dc="dc9")

    # ------------------------------------------------------------------ the index going backwards

    def test_restore_moves_index_backwards_and_ends_blocking_queries(self):
        for i in range(20):
            self.c.kv.put(f"gloo/k{i}", str(i))
        idx, items = self.c.kv.get("gloo/", recurse=True)
        result = {}

        def block():
            result["answer"] = self.c.kv.get("gloo/", recurse=True, index=idx, wait="10s")
        th = threading.Thread(target=block)
        t0 = time.monotonic()
        th.start()
        time.sleep(0.2)
        self.double.restore()
        th.join(5)
        self.assertLess(time.monotonic() - t0, 2.0)
        idx2, items2 = result["answer"]
        self.assertLess(int(idx2), int(idx))  # backwards: a client must reset to 0
        self.assertEqual([(i["Key"], i["Value"]) for i in items2], [(i["Key"], i["Value"]) for i in items])
        # restore to an older snapshot: the data comes back too
        snap = self.double.snapshot()
        self.c.kv.put("gloo/late", "x")
        self.double.restore(snapshot=snap)
        self.assertIsNone(self.c.kv.get("gloo/late")[1])

    # ------------------------------------------------------------------ ACL

    def test_acl_tokens(self):
        d = ConsulDouble(master_token="root").start()
        self.addCleanup(d.stop)
        d.add_token("reader", {"key_prefix": {"gloo/": "read"}})
        d.add_token("writer", {"key_prefix": {"gloo/": "write"}, "service_prefix": {"": "read"},
                               "node_prefix": {"": "read"}})
        root = self.client(d, token="root")
        self.assertTrue(root.kv.put("gloo/a", "1"))
        self.assertTrue(root.kv.put("secret/b", "2"))
        anon = self.client(d)
        with self.assertRaisesRegex(consul.ACLPermissionDenied, "Permission denied"):
            anon.kv.get("gloo/a")
        bogus = self.client(d, token="nope")
        with self.assertRaisesRegex(consul.ACLPermissionDenied, "ACL not found"):
            bogus.kv.get("gloo/a")
        reader = self.client(d, token="reader")
        self.assertEqual(reader.kv.get("gloo/a")[1]["Value"], b"1")
        with self.assertRaisesRegex(consul.ACLPermissionDenied, "Permission denied"):
            reader.kv.put("gloo/a", "x")
        with self.assertRaises(consul.ACLPermissionDenied):
            reader.kv.get("secret/b")
        # lists are filtered, not refused
        _, items = reader.kv.get("", recurse=True)
        self.assertEqual([i["Key"] for i in items], ["gloo/a"])
        status, headers, _ = raw(d, "GET", "/v1/kv/?recurse", headers={"X-Consul-Token": "reader"})
        self.assertEqual(status, 200)
        self.assertEqual(headers.get("x-consul-results-filtered-by-acls"), "true")
        # the token in the header, and as a bearer token, as Consul accepts
        self.assertEqual(raw(d, "PUT", "/v1/kv/gloo/h", b"v", {"X-Consul-Token": "writer"})[2], b"true")
        self.assertEqual(raw(d, "PUT", "/v1/kv/gloo/i", b"v", {"Authorization": "Bearer writer"})[2], b"true")
        self.assertEqual(raw(d, "PUT", "/v1/kv/secret/i", b"v", {"X-Consul-Token": "writer"})[0], 403)
        # the catalog is filtered for a token without service:read
        root.agent.service.register("web", port=80)
        self.assertEqual(sorted(root.catalog.services()[1]), ["consul", "web"])
        self.assertEqual(reader.catalog.services()[1], {})
        self.assertEqual(sorted(self.client(d, token="writer").catalog.services()[1]),
                         ["consul", "web"])

    # ------------------------------------------------------------------ fault hooks

    def test_fault_hooks(self):
        self.c.kv.put("gloo/a", "1")
        self.double.fault("500", count=1)
        with self.assertRaises(consul.base.ConsulException):
            self.c.kv.get("gloo/a")
        self.assertEqual(self.c.kv.get("gloo/a")[1]["Value"], b"1")  # only the next one
        self.double.fault("garbage", count=1, path_prefix="/v1/kv/")
        with self.assertRaises(ValueError):
            self.c.kv.get("gloo/a")
        self.double.fault("close", count=1)
        status = None
        try:
            status = raw(self.double, "GET", "/v1/kv/gloo/a")[0]
        except (http.client.HTTPException, OSError):
            pass
        self.assertIsNone(status)
        self.double.delay(0.3)
        t0 = time.monotonic()
        self.c.kv.get("gloo/a")
        self.assertGreater(time.monotonic() - t0, 0.29)
        self.double.delay(0)
        # the same hooks over HTTP, for a double in another process
        self.assertEqual(raw(self.double, "PUT", "/_double/fault?mode=500&count=2")[0], 200)
        self.assertEqual(raw(self.double, "GET", "/v1/kv/gloo/a")[0], 500)
        self.assertEqual(raw(self.double, "GET", "/v1/kv/gloo/a")[0], 500)
        self.assertEqual(raw(self.double, "GET", "/v1/kv/gloo/a")[0], 200)
        before = self.double.index()
        status, _, body = raw(self.double, "PUT", "/_double/restore")
        self.assertEqual(status, 200)
        self.assertLess(json.loads(body)["index"], before)

    def test_standalone_prints_port_and_stops_on_sigterm(self):
        script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support", "consul_double.py")
        proc = subprocess.Popen([sys.executable, script, "--port", "0", "--dc", "east", "--dc", "west"],
                                stdout=subprocess.PIPE, text=True)
        try:
            port = int(proc.stdout.readline())
            c = consul.Consul(host="127.0.0.1", port=port)
            self.addCleanup(c.http.session.close)
            self.assertEqual(c.catalog.datacenters(), ["east", "west"])
            self.assertTrue(c.kv.put("a", "b"))
        finally:
            proc.stdout.close()
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self.assertEqual(proc.returncode, 0)


if __name__ == "__main__":
    unittest.main()
