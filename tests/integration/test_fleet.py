#!/usr/bin/env python3
"""A fleet through the real binary: one `portico server` and three `portico proxy` processes (bound
to 127.0.0.2, .3 and .4 with --bind-address). A VirtualService added is served by all three (the time
from the file write to all serving is printed); a proxy that cannot bind a new Gateway's port NACKs
and the NACK shows on the Gateway's status (REST and `portico get`), while the other two serve it;
the server killed, the proxies keep serving; the server restarted, they reconnect and apply nothing
new; a TLS Gateway's certificate reaches the proxies through the secrets section, and a proxy
with --gateways serves only those; a wrong token gets 401 and the proxy reports it."""

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
from support.portico_testlib import matcher as m, route as r  # noqa: E402

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


if __name__ == "__main__":
    t.main()
