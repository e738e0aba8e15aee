#!/usr/bin/env python3
"""A fleet through the real binary: one `portico server` and three `portico proxy` processes (bound
to 127.0.0.2, .3 and .4 with --bind-address). A VirtualService added is served by all three (the time
from the file write to all serving is printed); a proxy that cannot bind a new Gateway's port NACKs
and the NACK shows on the Gateway's status (REST and `portico get`), while the other two serve it;
the server killed, the proxies keep serving; the server restarted, they reconnect and apply nothing
new; a TLS Gateway's certificate reaches the proxies through the secrets section, and a proxy
with --gateways serves only those; a wrong token gets 401 and the proxy reports it."""

import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from support import portico_testlib as t  # noqa: E402
from support import fleet as f  # noqa: E402
from support.consul_double import ConsulDouble  # noqa: E402
from support.kube_double import KubeDouble  # noqa: E402
from test_tls import Pki  # noqa: E402  (the test CA, a foreign CA and leaf certificates)
from support.portico_testlib import matcher as m, route as r  # noqa: E402

try:
    import consul  # python3-consul (Debian)
except ImportError:  # pragma: no cover
    consul = None

ADDRESSES = ["127.0.0.2", "127.0.0.3", "127.0.0.4"]
TOKEN = "s3cret-fleet-token"


class FleetTest(t.IntegrationTest):
    def setUp(self):
        super().setUp()
        self.upstream = self.start_upstream("echo")
        self.cfg = self.new_config()
        self.port = t.free_port()
        self.cfg.write_obj("upstream.yaml", t.upstream("echo", [(t.LOCALHOST, self.upstream.port)]))
        self.cfg.write_obj("vs-one.yaml", t.virtual_service("one", [r("one", [m(prefix="/one")], to="echo")]))
        self.cfg.write_obj("gateway.yaml", t.gateway("gw", self.port, ["one"]))
        self.token_file = f.write_token(self.cfg._root, "token", TOKEN)
        self.server = f.register(self, f.Server(self.cfg.path, token_file=self.token_file))
        self.proxies = []
        for i, addr in enumerate(ADDRESSES):
            p = f.Proxy(self.server.url, f"p{i + 1}", addr, token_file=self.token_file)
            self.proxies.append(f.register(self, p))
        for addr in ADDRESSES:
            t.wait_until(lambda: f.serves(addr, self.port, "/one"), 10, message=f"{addr} serves /one")

    def cli(self, *args):
        return t.run_cli(*args, "--admin", self.server.admin)

    def gateway_status(self, name):
        return self.server.resource("Gateway", name)

    def test_fleet(self):
        # Every proxy connected, on the server's REST API and `portico get proxies`.
        proxies = t.wait_until(lambda: [p for p in self.server.admin_get("/proxies").json()
                                        if p["connected"] and p["version"] > 0] if len(
            self.server.admin_get("/proxies").json()) == 3 else None, 10, message="3 proxies ACKed")
        self.assertEqual(sorted(p["node"] for p in proxies), ["p1", "p2", "p3"])
        out = self.cli("get", "proxies")
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertIn("NODE", out.stdout)
        self.assertIn("CONNECTED", out.stdout)
        for n in ("p1", "p2", "p3"):
            self.assertIn(n, out.stdout)

        # 1. A VirtualService added: all three serve it.
        start = time.monotonic()
        self.cfg.write_obj("vs-two.yaml", t.virtual_service("two", [r("two", [m(prefix="/two")], to="echo")],
                                                            domains=["two.example"]))
        self.cfg.write_obj("gateway.yaml", t.gateway("gw", self.port, ["one", "two"]))
        pending = set(ADDRESSES)
        while pending and time.monotonic() - start < 10:
            for addr in list(pending):
                if f.serves(addr, self.port, "/two", host="two.example"):
                    pending.discard(addr)
            time.sleep(0.002)
        took = (time.monotonic() - start) * 1000
        self.assertFalse(pending, f"not serving /two after 10 s: {pending}")
        print(f"\nfleet: VirtualService added -> served by all 3 proxies in {took:.1f} ms", file=sys.stderr)
        # `describe` lists the proxies running a version that contains it.
        vs = t.wait_until(lambda: (lambda v: v if len(v.get("proxies", [])) == 3 else None)(
            self.server.resource("VirtualService", "two")), 5, message="3 proxies run VirtualService two")
        self.assertTrue(all(p.startswith(("p1 ", "p2 ", "p3 ")) for p in vs["proxies"]), vs["proxies"])
        out = self.cli("describe", "vs", "two")
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertIn("Proxies:", out.stdout)
        self.assertIn("p2 (version", out.stdout)

        # 2. One proxy cannot bind a new Gateway's port: it NACKs, the others serve it.
        port2 = t.free_port()
        blocker = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.addCleanup(blocker.close)
        blocker.bind((ADDRESSES[1], port2))
        blocker.listen(1)
        applied_p2 = self.proxies[1].counter("portico_fleet_versions_applied_total")
        self.cfg.write_obj("gateway-2.yaml", t.gateway("gw2", port2, ["one"]))
        for addr in (ADDRESSES[0], ADDRESSES[2]):
            t.wait_until(lambda: f.serves(addr, port2, "/one"), 10, message=f"{addr}:{port2} serves /one")
        gw2 = t.wait_until(lambda: (lambda g: g if g and g["state"] == "Warning" else None)(
            self.gateway_status("gw2")), 10, message="gw2 Warning from p2's NACK")
        messages = [d["message"] for d in gw2["reasons"]]
        self.assertTrue(any(msg.startswith("proxy p2 rejected version ") and
                            f"bind {ADDRESSES[1]}:{port2}" in msg for msg in messages), messages)
        out = self.cli("get", "gw", "gw2")
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertIn("Warning", out.stdout)
        self.assertIn("proxy p2 rejected", out.stdout)
        out = self.cli("get", "proxies")
        line = [ln for ln in out.stdout.splitlines() if ln.startswith("p2")]
        self.assertTrue(line and f"bind {ADDRESSES[1]}:{port2}" in line[0], out.stdout)
        # p2 kept its last good configuration whole: /one and /two still served, nothing applied.
        self.assertTrue(f.serves(ADDRESSES[1], self.port, "/one"))
        self.assertEqual(self.proxies[1].counter("portico_fleet_versions_applied_total"), applied_p2)
        self.assertGreaterEqual(self.proxies[1].counter("portico_fleet_nacks_total"), 1)
        # The other Gateway is not warned.
        self.assertEqual(self.gateway_status("gw")["state"], "Accepted")

        # 3. The server killed: the proxies keep serving.
        applied = [p.counter("portico_fleet_versions_applied_total") for p in self.proxies]
        reconnects = [p.counter("portico_fleet_reconnects_total") for p in self.proxies]
        self.server.send_signal(signal.SIGKILL)
        self.server.wait(10)
        for p in self.proxies:
            t.wait_until(lambda: not p.fleet()["connected"], 10, message=f"{p.node} sees the server gone")
        for addr in ADDRESSES:
            self.assertTrue(f.serves(addr, self.port, "/one"), addr)
        for p in self.proxies:
            self.assertEqual(p.admin_get("/ready").status, 200)

        # 4. The server restarted (same address): the proxies reconnect and apply nothing new.
        self.server.start()
        for i, p in enumerate(self.proxies):
            t.wait_until(lambda: p.fleet()["connected"] and
                         p.counter("portico_fleet_reconnects_total") > reconnects[i], 15,
                         message=f"{p.node} reconnected")
        # p1 and p3 ACK (a message without sections); p2 still cannot bind gw2's port: NACK again.
        def answered():
            by_node = {x["node"]: x for x in self.server.admin_get("/proxies").json()}
            return (len(by_node) == 3 and by_node["p1"]["version"] > 0 and by_node["p3"]["version"] > 0
                    and by_node["p2"]["nackedVersion"] > 0)
        t.wait_until(answered, 10, message="the proxies answered the restarted server")
        time.sleep(0.3)
        self.assertEqual([p.counter("portico_fleet_versions_applied_total") for p in self.proxies], applied)
        for addr in ADDRESSES:
            self.assertTrue(f.serves(addr, self.port, "/one"), addr)

    def test_gateways_and_tls(self):
        # A TLS Gateway: its certificate reaches the proxies through the secrets section. p4 serves
        # only that Gateway (--gateways).
        crt, key = os.path.join(self.cfg._root, "tls.crt"), os.path.join(self.cfg._root, "tls.key")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                        "-nodes", "-keyout", key, "-out", crt, "-days", "2", "-subj", "/CN=tls.example.test",
                        "-addext", "subjectAltName=DNS:tls.example.test"],
                       check=True, capture_output=True, timeout=60)
        tls_port = t.free_port()
        self.cfg.write_obj("secret.yaml", t.resource("Secret", "tls-s", {
            "tls": {"certChainFile": crt, "privateKeyFile": key}}))
        vs = t.virtual_service("sec", [r("one", [m(prefix="/one")], to="echo")], domains=["tls.example.test"])
        vs["spec"]["sslConfig"] = {"secretRef": t.ref("tls-s")}
        self.cfg.write_obj("vs-sec.yaml", vs)
        gw = t.gateway("tlsgw", tls_port, ["sec"])
        gw["spec"]["ssl"] = True
        gw["spec"]["sslConfig"] = {"secretRef": t.ref("tls-s")}
        self.cfg.write_obj("gateway-tls.yaml", gw)
        p4 = f.register(self, f.Proxy(self.server.url, "p4", "127.0.0.6", token_file=self.token_file,
                                      gateways="tlsgw"))
        ctx = ssl.create_default_context(cafile=crt)
        ctx.verify_flags &= ~getattr(ssl, "VERIFY_X509_STRICT", 0)  # a bare self-signed leaf
        last_error = []

        def https_one(addr):
            try:
                with socket.create_connection((addr, tls_port), timeout=2) as raw:
                    with ctx.wrap_socket(raw, server_hostname="tls.example.test") as s:
                        s.sendall(b"GET /one HTTP/1.1\r\nHost: tls.example.test\r\nConnection: close\r\n\r\n")
                        data = b""
                        while chunk := s.recv(65536):
                            data += chunk
                if not data.startswith(b"HTTP/1.1 200"):
                    last_error.append(data[:80])
                return data.startswith(b"HTTP/1.1 200")
            except OSError as e:
                last_error.append(e)
                return False

        for addr in ADDRESSES + ["127.0.0.6"]:
            try:
                t.wait_until(lambda: https_one(addr), 10, message=f"{addr}:{tls_port} serves /one over TLS")
            except AssertionError as e:
                raise AssertionError(f"{e}: {last_error[-2:]}") from None
        dump = p4.admin_get("/config_dump").json()
        self.assertEqual([listener["name"] for listener in dump["listeners"]], ["default/tlsgw"])
        self.assertFalse(f.serves("127.0.0.6", self.port, "/one"))  # not its Gateway
        proxies = {x["node"]: x for x in self.server.admin_get("/proxies").json()}
        self.assertEqual(proxies["p4"]["gateways"], ["tlsgw"])

    def test_each_proxy_gets_only_its_clusters(self):
        # pa serves Gateway ga (-> VirtualService va -> Upstream ua), pb serves gb (-> vb -> ub):
        # each proxy holds only its own cluster, and a change to ub sends pa nothing.
        up_a, up_b, up_b2 = (self.start_upstream(n) for n in ("ua", "ub", "ub2"))
        pa_port, pb_port = t.free_port(), t.free_port()
        self.cfg.write_obj("ua.yaml", t.upstream("ua", [(t.LOCALHOST, up_a.port)]))
        self.cfg.write_obj("ub.yaml", t.upstream("ub", [(t.LOCALHOST, up_b.port)]))
        self.cfg.write_obj("va.yaml", t.virtual_service("va", [r("a", [m(prefix="/")], to="ua")]))
        self.cfg.write_obj("vb.yaml", t.virtual_service("vb", [r("b", [m(prefix="/")], to="ub")]))
        self.cfg.write_obj("ga.yaml", t.gateway("ga", pa_port, ["va"]))
        self.cfg.write_obj("gb.yaml", t.gateway("gb", pb_port, ["vb"]))
        pa = f.register(self, f.Proxy(self.server.url, "pa", "127.0.0.7", token_file=self.token_file,
                                      gateways="ga"), wait_ready=False)
        pb = f.register(self, f.Proxy(self.server.url, "pb", "127.0.0.8", token_file=self.token_file,
                                      gateways="default/gb"), wait_ready=False)
        def served_by(addr, port):
            try:
                status, body = f.get(addr, port, "/x", timeout=1.0)
            except OSError:
                return None
            return json.loads(body)["server"] if status == 200 else None

        t.wait_until(lambda: served_by("127.0.0.7", pa_port) == "ua", 10, message="pa serves ua")
        t.wait_until(lambda: served_by("127.0.0.8", pb_port) == "ub", 10, message="pb serves ub")

        def clusters(p):
            return sorted(c["name"] for c in p.admin_get("/config_dump").json()["clusters"])

        self.assertEqual(clusters(pa), ["default/ua"])
        self.assertEqual(clusters(pb), ["default/ub"])
        self.assertEqual([x["name"] for x in pa.admin_get("/config_dump").json()["listeners"]], ["default/ga"])
        # An unnamed proxy (p1) still gets everything.
        self.assertIn("default/ua", clusters(self.proxies[0]))
        self.assertIn("default/ub", clusters(self.proxies[0]))

        dump_a = pa.admin_get("/config_dump").json()
        messages_a = pa.counter("portico_fleet_messages_total")
        applied_a = pa.counter("portico_fleet_versions_applied_total")
        messages_b = pb.counter("portico_fleet_messages_total")
        self.cfg.write_obj("ub.yaml", t.upstream("ub", [(t.LOCALHOST, up_b2.port)]))
        t.wait_until(lambda: served_by("127.0.0.8", pb_port) == "ub2", 10,
                     message="pb follows ub's change")
        self.assertGreater(pb.counter("portico_fleet_messages_total"), messages_b)
        # The server published a new version (p1 runs it); pa got nothing: no message, no version.
        server_version = t.metric_sum(self.server.stats(), "portico_config_version")
        t.wait_until(lambda: self.proxies[0].fleet()["version"] >= server_version, 10,
                     message="p1 runs the new version")
        time.sleep(0.3)
        self.assertEqual(pa.counter("portico_fleet_messages_total"), messages_a)
        self.assertEqual(pa.counter("portico_fleet_versions_applied_total"), applied_a)
        after = pa.admin_get("/config_dump").json()
        self.assertEqual(after.get("version"), dump_a.get("version"))
        self.assertEqual(after.get("versions"), dump_a.get("versions"))
        by_node = {x["node"]: x for x in self.server.admin_get("/proxies").json()}
        self.assertGreaterEqual(by_node["pa"]["skipped"], 1)
        self.assertLess(by_node["pa"]["version"], server_version)
        self.assertEqual(served_by("127.0.0.7", pa_port), "ua")

        # pa's own upstream moves: it gets it, with the versions of the kinds that did not move
        # for it unchanged.
        up_a2 = self.start_upstream("ua2")
        self.cfg.write_obj("ua.yaml", t.upstream("ua", [(t.LOCALHOST, up_a2.port)]))
        t.wait_until(lambda: served_by("127.0.0.7", pa_port) == "ua2", 10,
                     message="pa follows ua's change")
        moved = pa.admin_get("/config_dump").json()
        self.assertNotEqual(moved["versions"]["endpoints"], dump_a["versions"]["endpoints"])
        for kind in ("listeners", "routes", "clusters", "secrets"):
            self.assertEqual(moved["versions"][kind], dump_a["versions"][kind], kind)

    def test_a_restarted_server_numbering_again_is_not_trusted_blindly(self):
        # The server restarted on a changed Upstream numbers its versions from 1 again: the
        # endpoints section a proxy gets carries the version the proxy already runs, with other
        # content. The proxy must apply the new endpoints (not take them as unchanged).
        def served_by(addr):
            try:
                status, body = f.get(addr, self.port, "/one", timeout=1.0)
            except OSError:
                return None
            return json.loads(body)["server"] if status == 200 else None

        versions = [p.admin_get("/config_dump").json()["versions"] for p in self.proxies]
        echo2 = self.start_upstream("echo2")
        self.server.send_signal(signal.SIGKILL)
        self.server.wait(10)
        self.cfg.write_obj("upstream.yaml", t.upstream("echo", [(t.LOCALHOST, echo2.port)]))
        self.server.start()
        for addr in ADDRESSES:
            t.wait_until(lambda: served_by(addr) == "echo2", 10, message=f"{addr} follows the new endpoints")
        self.assertEqual(t.metric_sum(self.server.stats(), "portico_config_version"), 1)
        after = [p.admin_get("/config_dump").json()["versions"] for p in self.proxies]
        # Not a test of nothing: the restarted server did send the version the proxies ran.
        self.assertEqual(versions[0]["endpoints"], 1)
        self.assertTrue(all(a["endpoints"] != 1 or a["clusters"] == 0 for a in after), after)

    def test_wrong_token(self):
        # The stream without a token, and with a wrong one: 401.
        status, _ = f.get(t.LOCALHOST, self.server.listen_port, "/v1/fleet/stream?node=x")
        self.assertEqual(status, 401)
        bad = f.write_token(self.cfg._root, "bad-token", "wrong")
        p = f.register(self, f.Proxy(self.server.url, "intruder", "127.0.0.5", token_file=bad), wait_ready=False)
        t.wait_until(lambda: p.fleet()["unauthorized"] > 0, 10, message="the proxy sees 401")
        self.assertIn("401", p.fleet()["lastError"])
        r_ready = p.admin_get("/ready")
        self.assertEqual(r_ready.status, 503)
        self.assertIn("401", r_ready.text())
        self.assertNotIn("intruder", [x["node"] for x in self.server.admin_get("/proxies").json()])
        self.assertGreater(t.metric_sum(self.server.stats(), "portico_fleet_unauthorized_total"), 0)
        # The CLI against the REST API on --listen (loopback: no token needed there), the fleet
        # endpoints want it.
        out = t.run_cli("get", "proxies", "--admin", f"{t.LOCALHOST}:{self.server.listen_port}")
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertIn("p1", out.stdout)

    def test_rest_api_beyond_loopback_wants_the_token(self):
        # Without a token file a server refuses a --listen beyond loopback.
        out = t.run_cli("server", self.cfg.path, "--listen", f"0.0.0.0:{t.free_port()}",
                        "--admin", f"{t.LOCALHOST}:{t.free_port()}")
        self.assertEqual(out.returncode, 2)
        self.assertIn("--token-file is required", out.stderr)
        wide = f.register(self, f.Server(self.cfg.path, token_file=self.token_file, listen_host="0.0.0.0"))
        status, _ = f.get(t.LOCALHOST, wide.listen_port, "/resources")
        self.assertEqual(status, 401)
        out = t.run_cli("get", "gw", "--admin", f"{t.LOCALHOST}:{wide.listen_port}")
        self.assertNotEqual(out.returncode, 0)
        self.assertIn("401", out.stderr)
        out = t.run_cli("get", "gw", "--admin", f"{t.LOCALHOST}:{wide.listen_port}", "--token-file",
                        self.token_file)
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertIn("gw", out.stdout)


class FleetStoredStatusBase:
    """The server's configuration partly in a store that keeps statuses: one of three proxies
    rejects a Gateway put there (its port is taken on that proxy's address); the NACK's reason is
    written in the Gateway's stored status, and goes when a later version is ACKed. Subclasses
    say which store (settings, put_gateway, stored_status). A mixin: not run by itself."""

    def setUp(self):
        super().setUp()
        self.upstream = self.start_upstream("echo")
        self.cfg = self.new_config()
        self.port = t.free_port()
        self.cfg.write_obj("upstream.yaml", t.upstream("echo", [(t.LOCALHOST, self.upstream.port)]))
        self.cfg.write_obj("vs-one.yaml", t.virtual_service("one", [r("one", [m(prefix="/one")], to="echo")]))
        self.cfg.write_obj("gateway.yaml", t.gateway("gw", self.port, ["one"]))
        self.cfg.write_obj("settings.yaml", t.resource("Settings", "default", self.settings()))
        self.token_file = f.write_token(self.cfg._root, "token", TOKEN)
        self.server = f.register(self, f.Server(self.cfg.path, token_file=self.token_file))
        self.proxies = [f.register(self, f.Proxy(self.server.url, f"p{i + 1}", addr,
                                                 token_file=self.token_file))
                        for i, addr in enumerate(ADDRESSES)]
        for addr in ADDRESSES:
            t.wait_until(lambda: f.serves(addr, self.port, "/one"), 10, message=f"{addr} serves /one")

    def test_a_nack_is_written_in_the_stored_status(self):
        port2 = t.free_port()
        blocker = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.addCleanup(blocker.close)
        blocker.bind((ADDRESSES[1], port2))
        blocker.listen(1)
        self.put_gateway(t.gateway("gw2", port2, ["one"]))
        for addr in (ADDRESSES[0], ADDRESSES[2]):
            t.wait_until(lambda: f.serves(addr, port2, "/one"), 10, message=f"{addr}:{port2} serves /one")

        def nacked():
            st = self.stored_status("gw2")
            if not st or st["state"] != "Warning":
                return None
            hits = [x for x in st["reasons"] if "proxy p2 rejected version " in x]
            return hits or None

        reasons = t.wait_until(nacked, 10, message="p2's NACK in gw2's stored status")
        self.assertIn(f"bind {ADDRESSES[1]}:{port2}", reasons[0])
        # `portico get` shows it too.
        out = t.run_cli("get", "gw", "gw2", "--admin", self.server.admin)
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertIn("proxy p2 rejected", out.stdout)

        # gw2 moved to a port p2 can bind: every proxy ACKs, and the warning leaves the status.
        port3 = t.free_port()
        self.put_gateway(t.gateway("gw2", port3, ["one"]))
        for addr in ADDRESSES:
            t.wait_until(lambda: f.serves(addr, port3, "/one"), 10, message=f"{addr}:{port3} serves /one")
        st = t.wait_until(lambda: (lambda s: s if s and s["state"] == "Accepted" else None)(
            self.stored_status("gw2")), 10, message="gw2 Accepted again in its stored status")
        self.assertFalse([x for x in st["reasons"] if "rejected" in x], st)


class FleetConsulKvTest(FleetStoredStatusBase, t.IntegrationTest):
    """Consul KV (the double): the status key under <root>.status/."""

    ROOT = "gloo"

    def settings(self):
        if consul is None:
            self.skipTest("python3-consul is not installed")
        self.double = ConsulDouble().start()
        self.addCleanup(self.double.stop)
        self.kv = consul.Consul(host=self.double.host, port=self.double.port)
        self.addCleanup(self.kv.http.session.close)
        return {"consul": {"address": self.double.address, "waitTime": "10s"},
                "consulKvSource": {"rootKey": self.ROOT}}

    def key(self, name):
        return f"{self.ROOT}/gateway.portico.dev/v1/Gateway/{t.NAMESPACE}/{name}"

    def put_gateway(self, gw):
        self.assertTrue(self.kv.kv.put(self.key(gw["metadata"]["name"]), t.to_yaml(gw)))

    def stored_status(self, name):
        _, v = self.kv.kv.get(self.key(name).replace(f"{self.ROOT}/", f"{self.ROOT}.status/", 1))
        st = json.loads(v["Value"]) if v else None
        if st:
            self.assertEqual(st["reportedBy"], "portico")
        return st

    def test_file_sourced_resources_get_no_key(self):
        self.assertIsNone(self.stored_status("gw"))


class FleetKubernetesTest(FleetStoredStatusBase, t.IntegrationTest):
    """Kubernetes (the double): the object's status subresource."""

    def settings(self):
        self.double = KubeDouble(bookmark_interval=0.5).start()
        self.addCleanup(self.double.stop)
        return {"kubernetesConfigSource": {"address": self.double.address}}

    def put_gateway(self, gw):
        self.double.put({**gw, "apiVersion": "gateway.solo.io/v1"})  # the CRDs' group

    def stored_status(self, name):
        obj = self.double.get("gateways", name)
        return (obj or {}).get("status")


class FleetMtlsTest(t.IntegrationTest):
    """mTLS between proxies and server instead of the token: `portico server --tls-cert --tls-key
    --client-ca` and `portico proxy --server https://... --ca --cert --key --server-name`. A proxy
    without a client certificate, or with one a foreign CA signed, is refused and its log says why;
    a proxy that does not trust the server's certificate refuses it; the right one serves. Beyond
    loopback without a token file, the REST API on --listen refuses even a verified client."""

    def setUp(self):
        super().setUp()
        self.pki = Pki()
        self.addCleanup(self.pki.cleanup)
        self.pki.leaf("server", "portico-server", ["DNS:portico-server", "IP:127.0.0.1"])
        self.pki.leaf("client", "proxy-a", ["DNS:proxy-a"], usage="clientAuth")
        self.pki.leaf("intruder", "proxy-x", ["DNS:proxy-x"], usage="clientAuth", ca=self.pki.foreign)
        self.upstream = self.start_upstream("echo")
        self.cfg = self.new_config()
        self.port = t.free_port()
        self.cfg.write_obj("upstream.yaml", t.upstream("echo", [(t.LOCALHOST, self.upstream.port)]))
        self.cfg.write_obj("vs-one.yaml", t.virtual_service("one", [r("one", [m(prefix="/one")], to="echo")]))
        self.cfg.write_obj("gateway.yaml", t.gateway("gw", self.port, ["one"]))

    def tls_server(self, listen_host=t.LOCALHOST):
        p = self.pki.path
        return f.register(self, f.Server(self.cfg.path, scheme="https", listen_host=listen_host, extra_args=[
            "--tls-cert", p("server.crt"), "--tls-key", p("server.key"), "--client-ca", p("ca.crt")]))

    def proxy(self, server, node, addr, cert=None, ca=None):
        p = self.pki.path
        extra = ["--ca", p((ca or self.pki.ca) + ".crt"), "--server-name", "portico-server"]
        if cert:
            extra += ["--cert", p(cert + ".crt"), "--key", p(cert + ".key")]
        return f.register(self, f.Proxy(server.url, node, addr, extra=extra), wait_ready=False)

    def test_client_certificates(self):
        server = self.tls_server()
        bare = self.proxy(server, "bare", "127.0.0.2")
        intruder = self.proxy(server, "intruder", "127.0.0.3", cert="intruder")
        distrustful = self.proxy(server, "distrustful", "127.0.0.5", cert="client", ca=self.pki.foreign)
        good = self.proxy(server, "good", "127.0.0.4", cert="client")
        t.wait_until(lambda: f.serves("127.0.0.4", self.port, "/one"), 10, message="the proxy with its certificate serves")
        self.assertEqual(good.admin_get("/ready").status, 200)
        self.assertTrue(good.fleet()["connected"])
        # Refused, and each says why (the server's alert, or the server's certificate not verified).
        def last_error(p):
            try:
                return p.fleet()["lastError"].lower()
            except OSError:  # its admin API not up yet
                return ""

        for p, why in ((bare, "certificate required"), (intruder, "unknown ca"),
                       (distrustful, "certificate verification failed")):
            t.wait_until(lambda: why in last_error(p), 10, message=f"{p.node}: '{why}' in its last error")
            self.assertIn(why, p.log().lower())
            self.assertEqual(p.admin_get("/ready").status, 503)
            self.assertFalse(f.serves(p.bind_address, self.port, "/one"))
        nodes = [x["node"] for x in server.admin_get("/proxies").json()]
        self.assertEqual(nodes, ["good"])
        self.assertGreaterEqual(t.metric_sum(server.stats(), "portico_fleet_tls_handshake_failures_total"), 2)
        self.assertIn("TLS handshake", server.log())
        # Plain HTTP on the TLS listener gets nothing.
        with self.assertRaises(Exception):
            f.get(t.LOCALHOST, server.listen_port, "/v1/fleet/stream?node=plain", timeout=2)

    def test_flags_fail_closed(self):
        p = self.pki.path
        # TLS options with an http:// server: an error, not silently plain.
        out = t.run_cli("proxy", "--server", "http://127.0.0.1:1", "--node", "n", "--ca", p("ca.crt"))
        self.assertEqual(out.returncode, 2)
        self.assertIn("https://", out.stderr)
        out = t.run_cli("proxy", "--server", "https://127.0.0.1:1", "--node", "n", "--cert", p("client.crt"))
        self.assertEqual(out.returncode, 2)
        out = t.run_cli("server", self.cfg.path, "--client-ca", p("ca.crt"))
        self.assertEqual(out.returncode, 2)
        self.assertIn("--tls-cert", out.stderr)
        out = t.run_cli("server", self.cfg.path, "--tls-cert", p("server.crt"), "--tls-key", p("client.key"),
                        "--listen", f"{t.LOCALHOST}:{t.free_port()}", "--admin", f"{t.LOCALHOST}:{t.free_port()}")
        self.assertEqual(out.returncode, 2)
        self.assertIn("--tls-key", out.stderr)
        self.assertIn("mismatch", out.stderr)

    def test_rest_api_beyond_loopback_without_a_token(self):
        # mTLS alone is enough to start beyond loopback (the fleet endpoints take the certificate);
        # the REST API there still wants a bearer token, which this server has none of.
        server = self.tls_server(listen_host="0.0.0.0")
        good = self.proxy(server, "good", "127.0.0.4", cert="client")
        t.wait_until(lambda: f.serves("127.0.0.4", self.port, "/one"), 10, message="the proxy serves")
        self.assertTrue(good.fleet()["connected"])
        ctx = ssl.create_default_context(cafile=self.pki.path("ca.crt"))
        ctx.load_cert_chain(self.pki.path("client.crt"), self.pki.path("client.key"))
        import http.client
        conn = http.client.HTTPSConnection(t.LOCALHOST, server.listen_port, context=ctx, timeout=5)
        self.addCleanup(conn.close)
        conn.request("GET", "/resources")
        resp = conn.getresponse()
        self.assertEqual(resp.status, 401)
        self.assertIn(b"bearer token", resp.read())
        # The loopback REST API (--admin) is unaffected.
        self.assertEqual(server.admin_get("/resources").status, 200)

    def test_cli_over_https(self):
        # A server with mTLS and a token beyond loopback: `portico get` with --admin https://,
        # its client certificate and the token.
        p = self.pki.path
        token = f.write_token(self.cfg._root, "token", TOKEN)
        server = f.register(self, f.Server(self.cfg.path, scheme="https", listen_host="0.0.0.0",
                                           token_file=token, extra_args=[
                                               "--tls-cert", p("server.crt"), "--tls-key", p("server.key"),
                                               "--client-ca", p("ca.crt")]))
        good = f.register(self, f.Proxy(server.url, "good", "127.0.0.4", token_file=token, extra=[
            "--ca", p("ca.crt"), "--server-name", "portico-server", "--cert", p("client.crt"),
            "--key", p("client.key")]), wait_ready=False)
        t.wait_until(lambda: f.serves("127.0.0.4", self.port, "/one"), 10, message="the proxy serves")
        self.assertTrue(good.fleet()["connected"])
        admin = ["--admin", f"https://{t.LOCALHOST}:{server.listen_port}", "--ca", p("ca.crt"),
                 "--server-name", "portico-server"]
        client = ["--cert", p("client.crt"), "--key", p("client.key")]
        out = t.run_cli("get", "proxies", *admin, *client, "--token-file", token)
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertIn("good", out.stdout)
        out = t.run_cli("get", "gw", *admin, *client, "--token-file", token)
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertIn("gw", out.stdout)
        # Without the token: 401; without the client certificate: refused by the handshake.
        out = t.run_cli("get", "proxies", *admin, *client)
        self.assertNotEqual(out.returncode, 0)
        self.assertIn("401", out.stderr)
        out = t.run_cli("get", "proxies", *admin, "--token-file", token)
        self.assertNotEqual(out.returncode, 0)
        self.assertIn("certificate required", out.stderr.lower())


if __name__ == "__main__":
    t.main()
