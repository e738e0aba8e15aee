#!/usr/bin/env python3
"""Kubernetes Secrets as a secret source (Settings spec.kubernetesSecretSource) end to end, against the
Kubernetes double (tests/support/kube_double.py): a Gateway whose certificate is a kubernetes.io/tls Secret
serves it; the Secret MODIFIED (kubectl apply, or a replace) reaches new handshakes while a connection opened
before keeps working; only referenced Secrets are delivered; the API server stopped keeps the certificate in
force with the problem in /ready. Certificates are made at test time with `openssl` (tests/support/pki.py)."""

import base64
import json
import os
import shutil
import socket
import ssl
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from support import portico_testlib as t  # noqa: E402
from support.kube_double import KubeDouble, Kubectl  # noqa: E402
from support.pki import Pki  # noqa: E402

HOST = "kube.example.test"


def b64(path):
    with open(path, "rb") as f:
        return base64.b64encode(f.read()).decode()


def tls_secret(name, cert_key):
    cert, key = cert_key
    return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name, "namespace": "default"},
            "type": "kubernetes.io/tls", "data": {"tls.crt": b64(cert), "tls.key": b64(key)}}


def connect(port, cafile):
    ctx = ssl.create_default_context(cafile=cafile)
    raw = socket.create_connection((t.LOCALHOST, port), timeout=5)
    return ctx.wrap_socket(raw, server_hostname=HOST)


def served_cn(port, cafile):
    try:
        with connect(port, cafile) as s:
            return dict(x[0] for x in s.getpeercert()["subject"]).get("commonName")
    except (OSError, ssl.SSLError):
        return None


def get_over(sock):
    sock.sendall(f"GET / HTTP/1.1\r\nHost: {HOST}\r\n\r\n".encode())
    return t.read_response(sock).status


class KubeSecretsTest(t.IntegrationTest):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.pki = Pki()
        cls.certs = {cn: cls.pki.issue(cn, dns=[HOST]) for cn in ("edge-v1", "edge-v2", "unused")}

    @classmethod
    def tearDownClass(cls):
        cls.pki.cleanup()

    def setUp(self):
        super().setUp()
        self.double = KubeDouble(bookmark_interval=0.5).start()
        self.addCleanup(self.double.stop)

    def start_stack(self):
        echo = self.start_upstream("echo")
        cfg = self.new_config()
        self.port = t.free_port()
        cfg.write_obj("settings.yaml", t.resource("Settings", "default", {
            "kubernetesSecretSource": {"address": self.double.address}}))
        vs = t.virtual_service("vs", [t.route("all", to="echo")], [HOST])
        vs["spec"]["sslConfig"] = {"secretRef": t.ref("edge")}
        gw = t.gateway("tls", self.port, ["vs"])
        gw["spec"]["ssl"] = True
        gw["spec"]["sslConfig"] = {"secretRef": t.ref("edge")}
        cfg.write_obj("stack.yaml", t.upstream("echo", [(t.LOCALHOST, echo.port)]), vs, gw)
        return self.start_portico(cfg)

    def wait_cn(self, cn, timeout=5.0):
        return t.wait_until(lambda: served_cn(self.port, self.pki.ca) == cn, timeout, 0.01,
                            message=f"new handshakes see {cn}")

    def source_up(self, p):
        return t.metric_sum(p.stats(), "portico_config_source_up", source="kubernetes-secrets")

    def test_tls_secret_rotation_and_referenced_only(self):
        self.double.put(tls_secret("edge", self.certs["edge-v1"]))
        self.double.put(tls_secret("unused", self.certs["unused"]))
        p = self.start_stack()
        # The first list is waited for at start: the TLS listener serves the Secret's certificate at once.
        self.assertEqual(served_cn(self.port, self.pki.ca), "edge-v1")
        old = connect(self.port, self.pki.ca)
        self.addCleanup(old.close)
        self.assertEqual(get_over(old), 200)

        # Rotation with kubectl: the MODIFIED event reaches new handshakes.
        kubectl = Kubectl(self.double.address)
        self.addCleanup(kubectl.cleanup)
        d = tempfile.mkdtemp(prefix="kube-secret-")
        self.addCleanup(shutil.rmtree, d, True)
        path = os.path.join(d, "edge.json")
        with open(path, "w") as f:
            json.dump(tls_secret("edge", self.certs["edge-v2"]), f)
        kubectl.run("replace", "-f", path)
        started = self.double.last_write
        self.wait_cn("edge-v2")
        print(f"\nSecret replaced -> new handshakes see it {(time.monotonic() - started) * 1000:.0f} ms after "
              "the write", file=sys.stderr)
        self.assertLess(time.monotonic() - started, 1.0)
        # The connection opened before keeps working, on the certificate it was made with.
        self.assertEqual(get_over(old), 200)
        self.assertEqual(dict(x[0] for x in old.getpeercert()["subject"])["commonName"], "edge-v1")

        res = p.resource("Secret", "edge")
        self.assertEqual(res["origin"]["source"], "kubernetes-secrets")
        self.assertEqual(res["state"], "Accepted")
        self.assertNotIn("PRIVATE KEY", json.dumps(res))
        # Referenced Secrets only.
        self.assertIsNone(p.resource("Secret", "unused"))
        self.assertEqual(t.metric_sum(p.stats(), "portico_kubernetes_secrets"), 1)
        self.assertEqual(self.source_up(p), 1)

    def test_api_server_down_keeps_the_certificate(self):
        self.double.put(tls_secret("edge", self.certs["edge-v1"]))
        p = self.start_stack()
        self.wait_cn("edge-v1")
        self.double.stop()
        t.wait_until(lambda: self.source_up(p) == 0, 10.0, message="the secret source is down")
        self.assertIn("kubernetes secrets http://127.0.0.1", p.admin_get("/ready").text())
        self.assertEqual(served_cn(self.port, self.pki.ca), "edge-v1")
        # Rotated while it was away: seen when the API server answers again (listed again).
        self.double.put(tls_secret("edge", self.certs["edge-v2"]))
        self.double.start()
        self.wait_cn("edge-v2", timeout=15.0)
        t.wait_until(lambda: self.source_up(p) == 1, 10.0, message="the secret source is up again")


if __name__ == "__main__":
    unittest.main()
